/* test_shared_memory.c - named SharedMemory (Python's rules for names and
 * sizes) and the resource tracker: what a process tree created is unlinked
 * once the whole tree has died, SIGKILL included (G-SHM-1), an attacher
 * never unlinks (G-SHM-2), and the listing and clean-up behind mp-shm
 * (G-SHM-3). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include <limits.h>

#include "os/os.h"
#include "os/shm.h"

/* Generous bound for a tracker to notice a dead tree (sanitizers, load). */
#define CLEANUP_TIMEOUT 20.0

static bool shm_exists(const char *name) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  return access(path, F_OK) == 0;
}

/* Waits until name is gone (true) or the timeout passes (false). */
static bool wait_gone(const char *name, double timeout) {
  double end = mp_test_now() + timeout;
  while (shm_exists(name)) {
    if (mp_test_now() > end)
      return false;
    usleep(2000);
  }
  return true;
}

static bool wait_pid_dead(pid_t pid, double timeout) {
  double end = mp_test_now() + timeout;
  while (mp__os_pid_alive(pid)) {
    if (mp_test_now() > end)
      return false;
    usleep(2000);
  }
  return true;
}

/* A child that waits for the test to SIGKILL it; if the test fails first,
 * the alarm ends the child so nothing hangs. */
static void wait_to_be_killed(void) {
  alarm(60);
  for (;;)
    pause();
}

/* Waits until the listing shows name (trackers read registrations
 * asynchronously). */
static int find_object(const mp_tracked_object *o, void *arg);
typedef struct found {
  const char *name;
  int seen;
  mp_tracked_object obj;
} found;

static void list_until_seen(found *f) {
  double end = mp_test_now() + CLEANUP_TIMEOUT;
  do {
    f->seen = 0;
    assert_rc(mp_resource_tracker_list(find_object, f), 0);
    if (f->seen > 0)
      return;
    usleep(2000);
  } while (mp_test_now() < end);
}

/* ---- SharedMemory --------------------------------------------------------- */
static void create_attach_same_bytes(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "haha");
  mp_shared_memory *a, *b;
  assert_rc(mp_shared_memory_new(&a, name, 256, NULL), 0);
  assert_string_equal(mp_shared_memory_name(a), name);
  assert_int_equal(mp_shared_memory_size(a), 256);
  unsigned char *buf = mp_shared_memory_buf(a);
  assert_non_null(buf);
  /* Python's rule: "name" is shm_open("/name"), no prefix of ours. */
  assert_true(shm_exists(name));
  buf[0] = 0xab;
  assert_rc(mp_shared_memory_open(&b, name), 0);
  assert_int_equal(mp_shared_memory_size(b), 256);
  unsigned char *buf2 = mp_shared_memory_buf(b);
  assert_int_equal(buf2[0], 0xab);
  buf2[255] = 7;
  assert_int_equal(buf[255], 7);
  mp_shared_memory_free(b);
  assert_rc(mp_shared_memory_unlink(a), 0);
  assert_false(shm_exists(name));
  /* The mapping outlives the name, as in Python. */
  assert_int_equal(buf[0], 0xab);
  mp_shared_memory_free(a);
}

static void new_block_is_zeroed(void **state) {
  (void)state;
  char name[64];
  mp_shared_memory *a;
  assert_rc(mp_shared_memory_new(&a, mp_test_name(name, sizeof name, "z"),
                                 10000, NULL),
            0);
  unsigned char *p = mp_shared_memory_buf(a);
  for (size_t i = 0; i < 10000; i++)
    assert_int_equal(p[i], 0);
  assert_rc(mp_shared_memory_unlink(a), 0);
  mp_shared_memory_free(a);
}

static void generated_name_like_python(void **state) {
  (void)state;
  mp_shared_memory *a, *b;
  assert_rc(mp_shared_memory_new(&a, NULL, 64, NULL), 0);
  assert_rc(mp_shared_memory_new(&b, NULL, 64, NULL), 0);
  const char *n = mp_shared_memory_name(a);
  assert_int_equal(strlen(n), 12);
  assert_memory_equal(n, "psm_", 4);
  for (int i = 4; i < 12; i++)
    assert_non_null(strchr("0123456789abcdef", n[i]));
  assert_string_not_equal(n, mp_shared_memory_name(b));
  assert_true(shm_exists(n));
  assert_rc(mp_shared_memory_unlink(a), 0);
  assert_rc(mp_shared_memory_unlink(b), 0);
  mp_shared_memory_free(a);
  mp_shared_memory_free(b);
}

static void attached_size_from_segment(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "odd");
  mp_shared_memory *a, *b;
  assert_rc(mp_shared_memory_new(&a, name, 5001, NULL), 0);
  assert_rc(mp_shared_memory_open(&b, name), 0);
  /* Not rounded to pages: the segment's own size, as Python reports. */
  assert_int_equal(mp_shared_memory_size(b), 5001);
  mp_shared_memory_free(b);
  assert_rc(mp_shared_memory_unlink(a), 0);
  mp_shared_memory_free(a);
}

static void size_zero_is_einval(void **state) {
  (void)state;
  char name[64];
  mp_shared_memory *a = (void *)1;
  assert_rc(mp_shared_memory_new(&a, mp_test_name(name, sizeof name, "z0"),
                                 0, NULL),
            MP_EINVAL);
  assert_ptr_equal(a, (void *)1); /* untouched */
  assert_false(shm_exists(name));
  assert_rc(mp_shared_memory_new(&a, NULL, 0, NULL), MP_EINVAL);
}

static void attach_missing_is_enoent(void **state) {
  (void)state;
  char name[64];
  mp_shared_memory *a = (void *)1;
  assert_rc(mp_shared_memory_open(&a, mp_test_name(name, sizeof name, "no")),
            MP_ENOENT);
  assert_ptr_equal(a, (void *)1);
  /* A missing name on attach is an error (Python needs create=True). */
  assert_rc(mp_shared_memory_open(&a, NULL), MP_EINVAL);
}

static void bad_names(void **state) {
  (void)state;
  mp_shared_memory *a;
  assert_rc(mp_shared_memory_new(&a, "", 8, NULL), MP_EINVAL);
  assert_rc(mp_shared_memory_new(&a, "a/b", 8, NULL), MP_EINVAL);
  assert_rc(mp_shared_memory_new(&a, "/lead", 8, NULL), MP_EINVAL);
  assert_rc(mp_shared_memory_new(&a, ".", 8, NULL), MP_EINVAL);
  assert_rc(mp_shared_memory_new(&a, "..", 8, NULL), MP_EINVAL);
  assert_rc(mp_shared_memory_open(&a, ".."), MP_EINVAL);
  char longname[300];
  memset(longname, 'x', sizeof longname);
  longname[MP_SHARED_MEMORY_NAME_MAX + 1] = '\0';
  assert_rc(mp_shared_memory_new(&a, longname, 8, NULL), MP_ENAMETOOLONG);
  assert_rc(mp_shared_memory_open(&a, longname), MP_ENAMETOOLONG);
  assert_rc(mp_shared_memory_new(NULL, "x", 8, NULL), MP_EINVAL);
  assert_rc(mp_shared_memory_open(NULL, "x"), MP_EINVAL);
}

static void longest_name_works(void **state) {
  (void)state;
  char name[MP_SHARED_MEMORY_NAME_MAX + 1];
  mp_test_name(name, sizeof name, "");
  size_t n = strlen(name);
  memset(name + n, 'y', MP_SHARED_MEMORY_NAME_MAX - n);
  name[MP_SHARED_MEMORY_NAME_MAX] = '\0';
  mp_shared_memory *a, *b;
  assert_rc(mp_shared_memory_new(&a, name, 8, NULL), 0);
  assert_rc(mp_shared_memory_open(&b, name), 0);
  mp_shared_memory_free(b);
  assert_rc(mp_shared_memory_unlink(a), 0);
  mp_shared_memory_free(a);
}

static void name_taken_is_eexist(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "dup");
  mp_shared_memory *a, *b = (void *)1;
  assert_rc(mp_shared_memory_new(&a, name, 8, NULL), 0);
  assert_rc(mp_shared_memory_new(&b, name, 8, NULL), MP_EEXIST);
  assert_ptr_equal(b, (void *)1);
  assert_rc(mp_shared_memory_unlink(a), 0);
  mp_shared_memory_free(a);
}

static void empty_segment_is_einval(void **state) {
  (void)state;
  char name[64], path[80];
  mp_test_name(name, sizeof name, "empty");
  snprintf(path, sizeof path, "/%s", name);
  int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
  assert_true(fd >= 0);
  close(fd);
  mp_shared_memory *a;
  assert_rc(mp_shared_memory_open(&a, name), MP_EINVAL);
  shm_unlink(path);
}

static void close_unlink_free_rules(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "life");
  mp_shared_memory *a;
  assert_rc(mp_shared_memory_new(&a, name, 100, NULL), 0);
  assert_rc(mp_shared_memory_close(a), 0);
  assert_null(mp_shared_memory_buf(a));
  assert_rc(mp_shared_memory_close(a), 0); /* idempotent */
  assert_int_equal(mp_shared_memory_size(a), 100);
  assert_string_equal(mp_shared_memory_name(a), name);
  assert_rc(mp_shared_memory_unlink(a), 0); /* after close, as Python */
  assert_rc(mp_shared_memory_unlink(a), MP_ENOENT);
  mp_shared_memory_free(a);
  mp_shared_memory_free(NULL);
  assert_rc(mp_shared_memory_close(NULL), MP_EINVAL);
  assert_rc(mp_shared_memory_unlink(NULL), MP_EINVAL);
  assert_null(mp_shared_memory_buf(NULL));
  assert_int_equal(mp_shared_memory_size(NULL), 0);
  assert_null(mp_shared_memory_name(NULL));
}

static void free_does_not_unlink(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "keep");
  mp_shared_memory *a, *b;
  assert_rc(mp_shared_memory_new(&a, name, 16, NULL), 0);
  mp_shared_memory_free(a);
  assert_true(shm_exists(name));
  assert_rc(mp_shared_memory_open(&b, name), 0);
  assert_rc(mp_shared_memory_unlink(b), 0);
  mp_shared_memory_free(b);
}

typedef struct child_arg {
  char name[64];
  int fd; /* a pipe to report on, or -1 */
} child_arg;

static int child_writes(void *p) {
  child_arg *c = p;
  mp_shared_memory *b;
  if (mp_shared_memory_open(&b, c->name) != 0)
    return 1;
  unsigned char *buf = mp_shared_memory_buf(b);
  int ok = buf[0] == 0xab;
  buf[1] = 0xcd;
  mp_shared_memory_free(b);
  return ok ? 0 : 2;
}

static void between_processes(void **state) {
  (void)state;
  child_arg c = {.fd = -1};
  mp_test_name(c.name, sizeof c.name, "proc");
  mp_shared_memory *a;
  assert_rc(mp_shared_memory_new(&a, c.name, 256, NULL), 0);
  unsigned char *buf = mp_shared_memory_buf(a);
  buf[0] = 0xab;
  mp_test_wait_exit(mp_test_fork(child_writes, &c), 0, 30);
  assert_int_equal(buf[1], 0xcd);
  assert_rc(mp_shared_memory_unlink(a), 0);
  mp_shared_memory_free(a);
}

static void out_of_memory_leaves_nothing(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "oom");
  mp_shared_memory *a = (void *)1;
  mp__alloc_fail_after(1);
  assert_rc(mp_shared_memory_new(&a, name, 8, NULL), MP_ENOMEM);
  mp__alloc_fail_after(0);
  assert_ptr_equal(a, (void *)1);
  assert_false(shm_exists(name));
  assert_int_equal(mp_resource_tracker_pid(), 0);
}

/* ---- resource tracker ------------------------------------------------------ */
/* The name of the state file a live tracker of ours keeps: its pid and
 * its PID namespace. */
static void tracker_state_file(char *buf, size_t cap, pid_t tracker) {
  snprintf(buf, cap, "mp-tracker.%d.%llu", (int)tracker,
           (unsigned long long)mp__os_pidns());
}

static void tracker_connection_only_while_needed(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "rt");
  assert_int_equal(mp_resource_tracker_pid(), 0);
  mp_shared_memory *a, *u;
  assert_rc(mp_shared_memory_new(&a, name, 8, NULL), 0);
  pid_t t = mp_resource_tracker_pid();
  assert_true(t > 0);
  /* The tracker is nobody's child here (the harness checks that too). */
  assert_int_equal(waitpid(t, NULL, WNOHANG), -1);
  char state_file[64];
  tracker_state_file(state_file, sizeof state_file, t);
  assert_true(shm_exists(state_file));
  /* An untracked block does not need a tracker. */
  char name2[64];
  mp_shared_memory_opts untracked = {.untracked = 1};
  assert_rc(mp_shared_memory_new(&u, mp_test_name(name2, sizeof name2, "u"),
                                 8, &untracked),
            0);
  assert_rc(mp_shared_memory_unlink(a), 0);
  mp_shared_memory_free(a);
  /* Nothing registered any more: the connection is closed (the harness
   * counts descriptors), and the tracker, with no member left, exits. */
  assert_int_equal(mp_resource_tracker_pid(), 0);
  assert_true(wait_pid_dead(t, CLEANUP_TIMEOUT));
  assert_true(wait_gone(state_file, CLEANUP_TIMEOUT));
  assert_rc(mp_shared_memory_unlink(u), 0);
  mp_shared_memory_free(u);
}

typedef struct tree_arg {
  char shm[64], value[64], lock[64], shm2[64];
  int report; /* write end of a pipe to the test */
} tree_arg;

static int grandchild_creates(void *p) {
  tree_arg *t = p;
  mp_shared_memory *s;
  if (mp_shared_memory_new(&s, t->shm2, 4096, NULL) != 0)
    return 1;
  pid_t me = getpid();
  if (write(t->report, &me, sizeof me) != sizeof me)
    return 1;
  wait_to_be_killed();
  return 0;
}

/* A process tree: the child creates a block, a named Value and a named
 * Lock (through the sync objects' segment code), forks a grandchild that
 * creates one more, reports the pids, and waits to be killed. */
static int tree_root(void *p) {
  tree_arg *t = p;
  mp_shared_memory *s;
  mp_value *v;
  mp_lock *l;
  mp_value_opts vo = {.name = t->value};
  mp_sync_opts lo = {.name = t->lock};
  if (mp_shared_memory_new(&s, t->shm, 4096, NULL) != 0 ||
      mp_value_new(&v, 'i', NULL, &vo) != 0 || mp_lock_new(&l, &lo) != 0)
    return 1;
  pid_t me = getpid(), tracker = mp_resource_tracker_pid();
  if (write(t->report, &me, sizeof me) != sizeof me ||
      write(t->report, &tracker, sizeof tracker) != sizeof tracker)
    return 1;
  fflush(NULL);
  pid_t g = fork();
  if (g == 0)
    _exit(grandchild_creates(t));
  wait_to_be_killed();
  return 0;
}

static pid_t read_pid(int fd) {
  pid_t pid = 0;
  assert_int_equal(read(fd, &pid, sizeof pid), sizeof pid);
  return pid;
}

static void tree_names(tree_arg *t) {
  mp_test_name(t->shm, sizeof t->shm, "tree-shm");
  mp_test_name(t->value, sizeof t->value, "tree-val");
  mp_test_name(t->lock, sizeof t->lock, "tree-lock");
  mp_test_name(t->shm2, sizeof t->shm2, "tree-shm2");
}

static void tree_shm_names(const tree_arg *t, char out[4][80]) {
  snprintf(out[0], 80, "%s", t->shm);
  snprintf(out[1], 80, "mp_%s", t->value);
  snprintf(out[2], 80, "mp_%s", t->lock);
  snprintf(out[3], 80, "%s", t->shm2);
}

/* G-SHM-1: a SIGKILLed process tree leaves nothing in /dev/shm. */
static void tracker_cleans_up_after_sigkill(void **state) {
  (void)state;
  tree_arg t;
  tree_names(&t);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  t.report = fds[1];
  pid_t root = mp_test_fork(tree_root, &t);
  close(fds[1]);
  read_pid(fds[0]);
  pid_t tracker = read_pid(fds[0]);
  pid_t grandchild = read_pid(fds[0]);
  close(fds[0]);
  char names[4][80];
  tree_shm_names(&t, names);
  for (int i = 0; i < 4; i++)
    assert_true(shm_exists(names[i]));
  assert_true(tracker > 0);
  /* Kill every process of the tree, the root first. */
  kill(root, SIGKILL);
  kill(grandchild, SIGKILL);
  int status = mp_test_wait(root, 30);
  assert_true(WIFSIGNALED(status));
  for (int i = 0; i < 4; i++)
    assert_true(wait_gone(names[i], CLEANUP_TIMEOUT));
  assert_true(wait_pid_dead(tracker, CLEANUP_TIMEOUT));
}

/* The tree lives on in its grandchild: nothing is removed until it dies. */
static void tracker_waits_for_whole_tree(void **state) {
  (void)state;
  tree_arg t;
  tree_names(&t);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  t.report = fds[1];
  pid_t root = mp_test_fork(tree_root, &t);
  close(fds[1]);
  read_pid(fds[0]);
  pid_t tracker = read_pid(fds[0]);
  pid_t grandchild = read_pid(fds[0]);
  close(fds[0]);
  char names[4][80];
  tree_shm_names(&t, names);
  kill(root, SIGKILL);
  mp_test_wait(root, 30);
  /* The grandchild still holds the tracker's socket: the tracker must stay
   * and keep every name. */
  usleep(200000);
  assert_true(mp__os_pid_alive(tracker));
  for (int i = 0; i < 4; i++)
    assert_true(shm_exists(names[i]));
  kill(grandchild, SIGKILL);
  for (int i = 0; i < 4; i++)
    assert_true(wait_gone(names[i], CLEANUP_TIMEOUT));
}

typedef struct attach_arg {
  char theirs[64], ours[64];
  int report;
} attach_arg;

static int attacher(void *p) {
  attach_arg *a = p;
  mp_shared_memory *t, *o;
  if (mp_shared_memory_open(&t, a->theirs) != 0 ||
      mp_shared_memory_new(&o, a->ours, 64, NULL) != 0)
    return 1;
  char c = 1;
  if (write(a->report, &c, 1) != 1)
    return 1;
  wait_to_be_killed();
  return 0;
}

/* G-SHM-2: a process that only attached never unlinks the block, even
 * when its own tree dies and its tracker cleans up. */
static void attacher_never_unlinks(void **state) {
  (void)state;
  attach_arg a;
  mp_test_name(a.theirs, sizeof a.theirs, "theirs");
  mp_test_name(a.ours, sizeof a.ours, "ours");
  mp_shared_memory *theirs;
  mp_shared_memory_opts untracked = {.untracked = 1};
  assert_rc(mp_shared_memory_new(&theirs, a.theirs, 64, &untracked), 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  a.report = fds[1];
  pid_t child = mp_test_fork(attacher, &a);
  close(fds[1]);
  char c;
  assert_int_equal(read(fds[0], &c, 1), 1);
  close(fds[0]);
  kill(child, SIGKILL);
  mp_test_wait(child, 30);
  assert_true(wait_gone(a.ours, CLEANUP_TIMEOUT));
  assert_true(shm_exists(a.theirs));
  assert_rc(mp_shared_memory_unlink(theirs), 0);
  mp_shared_memory_free(theirs);
}

typedef struct recreate_arg {
  char name[64];
  int report;
} recreate_arg;

static int creator_then_wait(void *p) {
  recreate_arg *r = p;
  mp_shared_memory *s;
  if (mp_shared_memory_new(&s, r->name, 64, NULL) != 0)
    return 1;
  pid_t t = mp_resource_tracker_pid();
  if (write(r->report, &t, sizeof t) != sizeof t)
    return 1;
  wait_to_be_killed();
  return 0;
}

/* A name unlinked behind the creator's back and created again by someone
 * else is a different segment: the tracker leaves it alone. */
static void tracker_spares_recreated_name(void **state) {
  (void)state;
  recreate_arg r;
  mp_test_name(r.name, sizeof r.name, "again");
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  r.report = fds[1];
  pid_t child = mp_test_fork(creator_then_wait, &r);
  close(fds[1]);
  pid_t tracker = read_pid(fds[0]);
  close(fds[0]);
  char path[80];
  snprintf(path, sizeof path, "/%s", r.name);
  assert_int_equal(shm_unlink(path), 0);
  mp_shared_memory *mine;
  mp_shared_memory_opts untracked = {.untracked = 1};
  assert_rc(mp_shared_memory_new(&mine, r.name, 128, &untracked), 0);
  kill(child, SIGKILL);
  mp_test_wait(child, 30);
  assert_true(wait_pid_dead(tracker, CLEANUP_TIMEOUT));
  assert_true(shm_exists(r.name));
  assert_rc(mp_shared_memory_unlink(mine), 0);
  mp_shared_memory_free(mine);
}

static int restart_after_tracker_killed(void *p) {
  recreate_arg *r = p;
  char second[80];
  snprintf(second, sizeof second, "%s-2", r->name);
  mp_shared_memory *a, *b;
  if (mp_shared_memory_new(&a, r->name, 64, NULL) != 0)
    return 1;
  pid_t t1 = mp_resource_tracker_pid();
  kill(t1, SIGKILL);
  if (!wait_pid_dead(t1, CLEANUP_TIMEOUT))
    return 2;
  /* The next registration finds the tracker gone, starts a new one and
   * registers both names with it. */
  if (mp_shared_memory_new(&b, second, 64, NULL) != 0)
    return 3;
  pid_t t2 = mp_resource_tracker_pid();
  if (t2 <= 0 || t2 == t1)
    return 4;
  if (write(r->report, &t1, sizeof t1) != sizeof t1 ||
      write(r->report, &t2, sizeof t2) != sizeof t2)
    return 5;
  wait_to_be_killed();
  return 0;
}

static void tracker_restarted_when_killed(void **state) {
  (void)state;
  recreate_arg r;
  mp_test_name(r.name, sizeof r.name, "restart");
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  r.report = fds[1];
  pid_t child = mp_test_fork(restart_after_tracker_killed, &r);
  close(fds[1]);
  pid_t t1 = 0, t2 = 0;
  ssize_t n1 = read(fds[0], &t1, sizeof t1);
  ssize_t n2 = read(fds[0], &t2, sizeof t2);
  close(fds[0]);
  if (n1 != sizeof t1 || n2 != sizeof t2) {
    mp_test_wait_exit(child, 0, 30); /* reports the child's failure */
    fail();
  }
  kill(child, SIGKILL);
  mp_test_wait(child, 30);
  char second[80];
  snprintf(second, sizeof second, "%s-2", r.name);
  assert_true(wait_gone(r.name, CLEANUP_TIMEOUT));
  assert_true(wait_gone(second, CLEANUP_TIMEOUT));
  /* The killed tracker's state file is cleaned up by the listing tool;
   * do it here so the test leaves nothing. */
  size_t removed = 99;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  char state_file[64];
  tracker_state_file(state_file, sizeof state_file, t1);
  assert_false(shm_exists(state_file));
}

static int find_object(const mp_tracked_object *o, void *arg) {
  found *f = arg;
  if (strcmp(o->name, f->name) == 0) {
    f->seen++;
    f->obj = *o;
  }
  return 0;
}

/* G-SHM-3: a tracker that was itself killed leaves its list; the listing
 * shows who created what and whether they live, and remove_dead unlinks
 * what the dead left. */
static void list_and_remove_dead(void **state) {
  (void)state;
  recreate_arg r;
  mp_test_name(r.name, sizeof r.name, "listed");
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  r.report = fds[1];
  pid_t child = mp_test_fork(creator_then_wait, &r);
  close(fds[1]);
  pid_t tracker = read_pid(fds[0]);
  close(fds[0]);
  found f = {.name = r.name};
  list_until_seen(&f);
  assert_int_equal(f.seen, 1);
  assert_int_equal(f.obj.size, 64);
  assert_int_equal(f.obj.creator_pid, child);
  assert_true(f.obj.creator_alive);
  assert_int_equal(f.obj.tracker_pid, tracker);
  assert_true(f.obj.tracker_alive);
  assert_true(f.obj.exists);
  /* While the creator lives, nothing is removed. */
  size_t removed = 99;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  assert_true(shm_exists(r.name));
  /* Kill the tracker first, then the tree: nobody cleans up. */
  kill(tracker, SIGKILL);
  assert_true(wait_pid_dead(tracker, CLEANUP_TIMEOUT));
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  assert_true(shm_exists(r.name)); /* the creator still runs */
  kill(child, SIGKILL);
  mp_test_wait(child, 30);
  assert_true(shm_exists(r.name));
  f.seen = 0;
  assert_rc(mp_resource_tracker_list(find_object, &f), 0);
  assert_int_equal(f.seen, 1);
  assert_false(f.obj.creator_alive);
  assert_false(f.obj.tracker_alive);
  assert_true(f.obj.exists);
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  assert_true(removed >= 1);
  assert_false(shm_exists(r.name));
  f.seen = 0;
  assert_rc(mp_resource_tracker_list(find_object, &f), 0);
  assert_int_equal(f.seen, 0);
  assert_rc(mp_resource_tracker_list(NULL, NULL), MP_EINVAL);
}

static int stop_at_first(const mp_tracked_object *o, void *arg) {
  (void)o;
  (*(int *)arg)++;
  return 42;
}

/* A state file is untrusted text: garbage is skipped, a line naming a
 * segment that is not the registered one (other inode) spares it. */
static void malformed_state_file(void **state) {
  (void)state;
  /* A pid that is surely dead: a child we forked and reaped. */
  pid_t dead = fork();
  if (dead == 0)
    _exit(0);
  waitpid(dead, NULL, 0);
  char victim[64], bystander[64], state_file[64];
  mp_test_name(victim, sizeof victim, "victim");
  mp_test_name(bystander, sizeof bystander, "bystander");
  snprintf(state_file, sizeof state_file, "mp-tracker.%d", (int)dead);
  mp_shared_memory *v, *b;
  mp_shared_memory_opts untracked = {.untracked = 1};
  assert_rc(mp_shared_memory_new(&v, victim, 8, &untracked), 0);
  assert_rc(mp_shared_memory_new(&b, bystander, 8, &untracked), 0);
  uint64_t ino;
  assert_rc(mp__os_shm_inode(victim, &ino), 0);
  char hexv[200], hexb[200], text[2048];
  for (size_t i = 0; victim[i]; i++)
    sprintf(hexv + 2 * i, "%02x", (unsigned char)victim[i]);
  for (size_t i = 0; bystander[i]; i++)
    sprintf(hexb + 2 * i, "%02x", (unsigned char)bystander[i]);
  int n = snprintf(text, sizeof text,
                   "mp-tracker 1 %d 12345\n"
                   "garbage line\n\x01\x02\xff\n"
                   "%d 0 8 %llu zz\n"       /* bad hex */
                   "%d 0 8 %llu 2f2f\n"     /* "//": not a name */
                   "99999999999999999999 0 8 1 %s\n" /* pid overflow */
                   "%d 0 8 %llu %s\n"       /* the victim */
                   "%d 0 8 %llu %s\n"       /* other inode */
                   "%d 0 8",                /* truncated */
                   (int)dead, (int)dead, (unsigned long long)ino, (int)dead,
                   (unsigned long long)ino, hexv, (int)dead,
                   (unsigned long long)ino, hexv, (int)dead,
                   (unsigned long long)ino ^ 0x5a5a5a, hexb, (int)dead);
  assert_rc(mp__os_shm_write_file(state_file, text, (size_t)n), 0);
  int calls = 0;
  assert_int_equal(mp_resource_tracker_list(stop_at_first, &calls), 42);
  assert_int_equal(calls, 1);
  found f = {.name = victim};
  assert_rc(mp_resource_tracker_list(find_object, &f), 0);
  assert_int_equal(f.seen, 1);
  assert_false(f.obj.tracker_alive);
  assert_false(f.obj.creator_alive);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  assert_true(removed >= 1);
  assert_false(shm_exists(victim));
  assert_true(shm_exists(bystander));
  assert_false(shm_exists(state_file));
  assert_rc(mp_shared_memory_unlink(b), 0);
  mp_shared_memory_free(b);
  mp_shared_memory_free(v);
}

typedef struct reuse_arg {
  char theirs[64], mine[64];
  pid_t parent_tracker;
} reuse_arg;

/* The child of a process that holds a tracker connection closes every
 * descriptor (as a fork server or a daemon does) and a pipe gets the
 * socket's number. Creating a block then must start a tracker of its own,
 * and must neither write to nor close the pipe that now has that number. */
static int child_after_closing_everything(void *p) {
  reuse_arg *r = p;
  int pfd[2];
  if (pipe(pfd) != 0)
    return 1;
  int reused = -1;
  for (int fd = 3; fd < 1024; fd++) {
    char link[64], target[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
      continue;
    target[n] = '\0';
    if (strncmp(target, "socket:", 7) == 0) {
      dup2(pfd[0], fd); /* the socket's number now names our pipe */
      reused = fd;
    }
  }
  if (reused < 0)
    return 2;
  mp_shared_memory *s;
  if (mp_shared_memory_new(&s, r->mine, 64, NULL) != 0)
    return 3;
  pid_t t = mp_resource_tracker_pid();
  if (t <= 0 || t == r->parent_tracker)
    return 4;
  if (fcntl(reused, F_GETFD) < 0)
    return 5; /* closed behind our back */
  int flags = fcntl(pfd[0], F_GETFL);
  fcntl(pfd[0], F_SETFL, flags | O_NONBLOCK);
  char c;
  if (read(pfd[0], &c, 1) != -1 || errno != EAGAIN)
    return 6;
  mp_shared_memory_unlink(s);
  mp_shared_memory_free(s);
  return 0;
}

static void closed_connection_is_not_reused(void **state) {
  (void)state;
  reuse_arg r;
  mp_test_name(r.theirs, sizeof r.theirs, "parent");
  mp_test_name(r.mine, sizeof r.mine, "child");
  mp_shared_memory *s;
  assert_rc(mp_shared_memory_new(&s, r.theirs, 64, NULL), 0);
  r.parent_tracker = mp_resource_tracker_pid();
  mp_test_wait_exit(mp_test_fork(child_after_closing_everything, &r), 0, 30);
  /* The child did not unregister our name: our tracker still has it. */
  found f = {.name = r.theirs};
  list_until_seen(&f);
  assert_int_equal(f.seen, 1);
  assert_int_equal(f.obj.tracker_pid, r.parent_tracker);
  assert_int_equal(mp_resource_tracker_pid(), r.parent_tracker);
  assert_rc(mp_shared_memory_unlink(s), 0);
  mp_shared_memory_free(s);
}

/* The mp-shm tool, when it has been built beside the tests. */
static void tool_lists_and_cleans(void **state) {
  (void)state;
  char tool[512];
  snprintf(tool, sizeof tool, "%s/mp-shm", MP_BINARY_DIR);
  if (access(tool, X_OK) != 0)
    skip();
  recreate_arg r;
  mp_test_name(r.name, sizeof r.name, "tool");
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  r.report = fds[1];
  pid_t child = mp_test_fork(creator_then_wait, &r);
  close(fds[1]);
  pid_t tracker = read_pid(fds[0]);
  close(fds[0]);
  char cmd[700], line[512];
  snprintf(cmd, sizeof cmd, "%s list", tool);
  found fo = {.name = r.name};
  list_until_seen(&fo);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  int seen = 0;
  while (fgets(line, sizeof line, f) != NULL)
    if (strstr(line, r.name) != NULL && strstr(line, "alive") != NULL)
      seen++;
  assert_int_equal(pclose(f), 0);
  assert_int_equal(seen, 1);
  kill(tracker, SIGKILL);
  assert_true(wait_pid_dead(tracker, CLEANUP_TIMEOUT));
  kill(child, SIGKILL);
  mp_test_wait(child, 30);
  assert_true(shm_exists(r.name));
  snprintf(cmd, sizeof cmd, "%s clean >/dev/null", tool);
  assert_int_equal(system(cmd), 0);
  assert_false(shm_exists(r.name));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(create_attach_same_bytes),
    cmocka_unit_test(new_block_is_zeroed),
    cmocka_unit_test(generated_name_like_python),
    cmocka_unit_test(attached_size_from_segment),
    cmocka_unit_test(size_zero_is_einval),
    cmocka_unit_test(attach_missing_is_enoent),
    cmocka_unit_test(bad_names),
    cmocka_unit_test(longest_name_works),
    cmocka_unit_test(name_taken_is_eexist),
    cmocka_unit_test(empty_segment_is_einval),
    cmocka_unit_test(close_unlink_free_rules),
    cmocka_unit_test(free_does_not_unlink),
    cmocka_unit_test(between_processes),
    cmocka_unit_test(out_of_memory_leaves_nothing),
    cmocka_unit_test(tracker_connection_only_while_needed),
    cmocka_unit_test(tracker_cleans_up_after_sigkill),
    cmocka_unit_test(tracker_waits_for_whole_tree),
    cmocka_unit_test(attacher_never_unlinks),
    cmocka_unit_test(tracker_spares_recreated_name),
    cmocka_unit_test(tracker_restarted_when_killed),
    cmocka_unit_test(list_and_remove_dead),
    cmocka_unit_test(malformed_state_file),
    cmocka_unit_test(closed_connection_is_not_reused),
    cmocka_unit_test(tool_lists_and_cleans),
};

MP_TEST_MAIN(tests)
