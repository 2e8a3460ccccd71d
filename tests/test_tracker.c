/* test_tracker.c - the resource tracker's state files are files anyone can
 * plant in /dev/shm (issue 8, defect 3): mp-shm clean (and a new tracker
 * at start) acts only on a state file that is the caller's own, written by
 * nobody else, not a link; and removes only segments the caller owns.
 * Also: a state file of another PID namespace is never acted on.
 *
 * And the registration window (issue 8): a creator SIGKILLed at any moment
 * of creating a named segment (fault points, src/fault.h) leaves nothing
 * once its tracker has seen its tree die, and never costs the owner of an
 * existing name its segment.
 *
 * The cases run as root in CI (they hand files to uid 65534 with fchown);
 * elsewhere those skip. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "os/os.h"
#include "os/shm.h"

#define NOBODY 65534
/* Room for "/dev/shm/" and any name the kernel allows. */
#define SHM_PATH_MAX (sizeof "/dev/shm/" + NAME_MAX)

static pid_t dead_pid(void) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(0);
  assert_int_equal(waitpid(pid, NULL, 0), pid);
  return pid;
}

static bool shm_exists(const char *name) {
  char path[SHM_PATH_MAX];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  struct stat st;
  return lstat(path, &st) == 0;
}

static void shm_remove(const char *name) {
  char path[SHM_PATH_MAX];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  unlink(path);
}

/* make_segment creates /dev/shm/<name> (8 bytes), owned by uid. */
static uint64_t make_segment(const char *name, uid_t uid) {
  char path[SHM_PATH_MAX];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, 8), 0);
  if (uid != geteuid())
    assert_int_equal(fchown(fd, uid, (gid_t)-1), 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  close(fd);
  return (uint64_t)st.st_ino;
}

/* plant writes a state file for the dead tracker pid listing segment name
 * (inode ino) with a dead creator, owned by uid with the given mode. */
static void plant(const char *file, pid_t dead, const char *name, uint64_t ino,
                  uid_t uid, mode_t mode) {
  char hex[256] = {0}, text[1024], path[256];
  for (size_t i = 0; name[i]; i++)
    sprintf(hex + 2 * i, "%02x", (unsigned char)name[i]);
  int n = snprintf(text, sizeof text, "mp-tracker 1 %d 0\n%d 0 8 %llu %s\n",
                   (int)dead, (int)dead, (unsigned long long)ino, hex);
  snprintf(path, sizeof path, "/dev/shm/%s", file);
  int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, (size_t)n), n);
  if (uid != geteuid())
    assert_int_equal(fchown(fd, uid, (gid_t)-1), 0);
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

static void need_root(void) {
  if (geteuid() != 0)
    mp_test_skip("needs root to give files to another user");
}

/* The control: our own private file naming our own segment of a dead
 * creator is acted on. */
static void own_private_state_file_is_cleaned(void **state) {
  (void)state;
  char seg[64], file[64];
  mp_test_name(seg, sizeof seg, "seg");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, geteuid());
  plant(file, dead, seg, ino, geteuid(), 0600);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  assert_false(shm_exists(seg));
  assert_false(shm_exists(file));
  assert_true(removed >= 1);
}

/* The case: a file planted by uid 65534 naming the user's segment
 * made mp-shm clean, run by the user, unlink it. */
static void state_file_of_another_user_is_ignored(void **state) {
  (void)state;
  need_root();
  char seg[64], file[64];
  mp_test_name(seg, sizeof seg, "seg");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, geteuid());
  plant(file, dead, seg, ino, NOBODY, 0600);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  bool kept = shm_exists(seg);
  shm_remove(seg);
  shm_remove(file);
  assert_true(kept);
  assert_int_equal(removed, 0);
}

/* Ours, but group- or world-writable: anyone may have written it. */
static void state_file_writable_by_others_is_ignored(void **state) {
  (void)state;
  char seg[64], file[64];
  mp_test_name(seg, sizeof seg, "seg");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, geteuid());
  mode_t modes[] = {0666, 0620};
  for (int i = 0; i < 2; i++) {
    plant(file, dead, seg, ino, geteuid(), modes[i]);
    size_t removed = 0;
    assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
    bool kept = shm_exists(seg);
    shm_remove(file);
    if (!kept)
      fail_msg("mode %o: the segment was removed", (unsigned)modes[i]);
  }
  shm_remove(seg);
}

/* A link under a state file's name is not followed. */
static void state_file_link_is_not_followed(void **state) {
  (void)state;
  char seg[64], file[64], target[64], tpath[300], fpath[300];
  mp_test_name(seg, sizeof seg, "seg");
  mp_test_name(target, sizeof target, "target");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, geteuid());
  plant(target, dead, seg, ino, geteuid(), 0600);
  snprintf(tpath, sizeof tpath, "/dev/shm/%s", target);
  snprintf(fpath, sizeof fpath, "/dev/shm/%s", file);
  assert_int_equal(symlink(tpath, fpath), 0);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  bool kept = shm_exists(seg);
  shm_remove(file);
  shm_remove(target);
  shm_remove(seg);
  assert_true(kept);
}

/* Our own file may name another user's segment: never removed. */
static void segment_of_another_user_is_not_removed(void **state) {
  (void)state;
  need_root();
  char seg[64], file[64];
  mp_test_name(seg, sizeof seg, "seg");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, NOBODY);
  plant(file, dead, seg, ino, geteuid(), 0600);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  bool kept = shm_exists(seg);
  shm_remove(seg);
  shm_remove(file);
  assert_true(kept);
  assert_int_equal(removed, 0);
}

/* A state file of another PID namespace: its pids mean nothing here. */
static void state_file_of_another_namespace_is_left(void **state) {
  (void)state;
  char seg[64], file[64], path[300], text[512], hex[256] = {0};
  mp_test_name(seg, sizeof seg, "seg");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, geteuid());
  for (size_t i = 0; seg[i]; i++)
    sprintf(hex + 2 * i, "%02x", (unsigned char)seg[i]);
  uint64_t other_ns = mp__os_pidns() + 1;
  int n = snprintf(text, sizeof text, "mp-tracker 1 %d 0 %llu\n%d 0 8 %llu %s\n",
                   (int)dead, (unsigned long long)other_ns, (int)dead,
                   (unsigned long long)ino, hex);
  snprintf(path, sizeof path, "/dev/shm/%s", file);
  int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, (size_t)n), n);
  close(fd);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  bool kept = shm_exists(seg) && shm_exists(file);
  shm_remove(seg);
  shm_remove(file);
  assert_true(kept);
}

/* Two trackers of one pid in two PID namespaces sharing /dev/shm (two
 * containers) keep two state files: a tracker started as pid k of a new
 * namespace leaves the file of this namespace's pid k as it was. The
 * first processes of a new namespace are numbered from 1, so the files of
 * pids 2..PLANTED+1 are planted here (with this namespace in their first
 * line) before a child of a new namespace starts its tracker. */
#define PLANTED 4
typedef struct ns_tracker {
  char seg[64];
} ns_tracker;

/* own_state_files counts the state files named with the caller's PID
 * namespace. */
static int own_state_files(void) {
  char suffix[32];
  snprintf(suffix, sizeof suffix, ".%llu", (unsigned long long)mp__os_pidns());
  DIR *d = opendir("/dev/shm");
  if (d == NULL)
    return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    size_t len = strlen(e->d_name), sl = strlen(suffix);
    if (strncmp(e->d_name, "mp-tracker.", 11) == 0 && len > sl &&
        strcmp(e->d_name + len - sl, suffix) == 0)
      n++;
  }
  closedir(d);
  return n;
}

static int start_tracker_in_ns(void *arg) {
  ns_tracker *t = arg;
  mp_shared_memory *s;
  if (mp_shared_memory_new(&s, t->seg, 64, NULL) != 0)
    return 1;
  int named = own_state_files();
  (void)mp_shared_memory_unlink(s);
  mp_shared_memory_free(s);
  /* The tracker, left without names, exits and removes its file; wait for
   * that, as the end of this process kills the whole namespace. */
  for (int i = 0; i < 500 && own_state_files() > 0; i++)
    usleep(10000);
  if (named != 1)
    return 2;
  return own_state_files() == 0 ? 0 : 3;
}

static bool read_small(const char *name, char *buf, size_t cap) {
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return false;
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
  return true;
}

static void trackers_of_one_pid_in_two_namespaces_keep_two_files(void **state) {
  (void)state;
  MP_TEST_NEED_PID_NS();
  ns_tracker t;
  mp_test_name(t.seg, sizeof t.seg, "seg");
  char file[PLANTED][64], text[PLANTED][128];
  bool planted[PLANTED] = {false};
  for (int k = 0; k < PLANTED; k++) {
    char path[300];
    snprintf(file[k], sizeof file[k], "mp-tracker.%d", k + 2);
    snprintf(text[k], sizeof text[k], "mp-tracker 1 %d 0 %llu\n", k + 2,
             (unsigned long long)mp__os_pidns());
    snprintf(path, sizeof path, "/dev/shm/%s", file[k]);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd < 0)
      continue; /* a tracker of this namespace runs as that pid */
    planted[k] = write(fd, text[k], strlen(text[k])) == (ssize_t)strlen(text[k]);
    close(fd);
  }
  int rc = mp_test_in_pid_ns(MP_TEST_PROC_OWN, start_tracker_in_ns, &t);
  bool intact = true;
  for (int k = 0; k < PLANTED; k++) {
    char now[256];
    if (planted[k] &&
        (!read_small(file[k], now, sizeof now) || strcmp(now, text[k]) != 0))
      intact = false;
    if (planted[k])
      shm_remove(file[k]);
  }
  shm_remove(t.seg);
  assert_int_equal(rc, 0);
  assert_true(intact);
}

/* find_seg notes whether the tracker list shows found_name's creator and
 * tracker as alive (1), not (0), or does not show it (-1). */
static char found_name[64];
static int found_alive;
static int find_seg(const mp_tracked_object *o, void *arg) {
  (void)arg;
  if (strcmp(o->name, found_name) == 0)
    found_alive = o->creator_alive && o->tracker_alive;
  return 0;
}

/* A state file whose tracker could not know its PID namespace (it ran
 * without /proc, and wrote 0): its pids may mean nothing here either, so
 * it is left alone and listed as alive (unknown means alive). Only a file
 * without the field (an older tracker's) counts as the reader's. */
static void state_file_of_unknown_namespace_is_left(void **state) {
  (void)state;
  char seg[64], file[64], path[300], text[512], hex[256] = {0};
  mp_test_name(seg, sizeof seg, "seg");
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(seg, geteuid());
  for (size_t i = 0; seg[i]; i++)
    sprintf(hex + 2 * i, "%02x", (unsigned char)seg[i]);
  int n = snprintf(text, sizeof text, "mp-tracker 1 %d 0 0\n%d 0 8 %llu %s\n",
                   (int)dead, (int)dead, (unsigned long long)ino, hex);
  snprintf(path, sizeof path, "/dev/shm/%s", file);
  int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, (size_t)n), n);
  close(fd);
  found_alive = -1;
  strcpy(found_name, seg);
  assert_rc(mp_resource_tracker_list(find_seg, NULL), 0);
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  bool kept = shm_exists(seg) && shm_exists(file);
  shm_remove(seg);
  shm_remove(file);
  assert_true(kept);
  assert_int_equal(removed, 0);
  assert_int_equal(found_alive, 1);
}

/* The reading and writing calls themselves say why they refuse. */
static void private_file_calls_refuse_with_a_reason(void **state) {
  (void)state;
  char file[64];
  mp_test_name(file, sizeof file, "pf");
  assert_rc(mp__os_shm_write_file(file, "abc", 3), 0);
  char *data;
  size_t len;
  assert_rc(mp__os_shm_read_file(file, 100, &data, &len), 0);
  assert_int_equal(len, 3);
  mp__free(data);
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", file);
  assert_int_equal(chmod(path, 0622), 0);
  assert_rc(mp__os_shm_read_file(file, 100, &data, &len), MP_EPERM);
  assert_non_null(strstr(mp_error_detail(), "writable"));
  assert_rc(mp__os_shm_write_file(file, "abc", 3), MP_EPERM);
  shm_remove(file);
}


/* ---- the registration window ---------------------------------------------- */
#define CLEANUP_TIMEOUT 20.0

/* tracked counts the entries any tracker of ours lists under name. */
typedef struct find_arg {
  const char *name;
  int seen, exists;
} find_arg;

static int find_entry(const mp_tracked_object *o, void *arg) {
  find_arg *f = arg;
  if (strcmp(o->name, f->name) == 0) {
    f->seen++;
    f->exists += o->exists != 0;
  }
  return 0;
}

static int tracked(const char *name) {
  find_arg f = {.name = name};
  assert_rc(mp_resource_tracker_list(find_entry, &f), 0);
  return f.seen;
}

/* Waits until no tracker lists name any more (its tracker saw the tree die,
 * acted, and removed its state file): true, or false after timeout. */
static bool wait_untracked(const char *name, double timeout) {
  double end = mp_test_now() + timeout;
  while (tracked(name) > 0) {
    if (mp_test_now() > end)
      return false;
    usleep(2000);
  }
  return true;
}

/* Waits until a tracker lists name as registered with the inode it has
 * now (the tracker reads its socket on its own time). */
static bool wait_tracked_as_is(const char *name, double timeout) {
  double end = mp_test_now() + timeout;
  for (;;) {
    find_arg f = {.name = name};
    assert_rc(mp_resource_tracker_list(find_entry, &f), 0);
    if (f.seen == 1 && f.exists == 1)
      return true;
    if (f.seen > 1 || mp_test_now() > end)
      return false;
    usleep(2000);
  }
}

static bool wait_shm_gone(const char *name, double timeout) {
  double end = mp_test_now() + timeout;
  while (shm_exists(name)) {
    if (mp_test_now() > end)
      return false;
    usleep(2000);
  }
  return true;
}

static void need_unnamed_segments(void) {
  int fd;
  uint64_t ino;
  if (mp__os_shm_create_unnamed(8, &fd, &ino) != 0)
    mp_test_skip("no O_TMPFILE in /dev/shm: the plain order is used");
  close(fd);
}

/* The victim: a child that creates a named block and SIGKILLs itself at
 * the fault point given (the test's stand-in for a kill at that moment). */
typedef struct victim {
  mp__fault_point point;
  char name[64];
  int queue; /* a named Queue rather than a SharedMemory block */
} victim;

static victim *the_victim;

static void kill_here(mp__fault_point point, void *arg) {
  if (point == the_victim->point && strstr(arg, the_victim->name) != NULL)
    raise(SIGKILL);
}

static int create_and_die(void *arg) {
  the_victim = arg;
  mp__fault_set(kill_here);
  if (the_victim->queue) {
    mp_queue *q;
    mp_queue_opts o = {.name = the_victim->name};
    return mp_queue_new(&q, &o) == 0 ? 1 : 2;
  }
  mp_shared_memory *s;
  return mp_shared_memory_new(&s, the_victim->name, 4096, NULL) == 0 ? 1 : 2;
}

static void run_victim(victim *v) {
  /* This process registers nothing: the child's tree is the child alone,
   * so its tracker acts as soon as the child dies. */
  assert_int_equal(mp_resource_tracker_pid(), 0);
  pid_t pid = mp_test_fork(create_and_die, v);
  int st = mp_test_wait(pid, mp_test_slack(30));
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
    fail_msg("the child was not killed at the fault point (status %#x)", st);
}

/* The case: a creator killed after its segment got its name and
 * before mp_shared_memory_new registered it left the segment behind for
 * good (the chaos run's five entries). Now it is registered first. */
static void creator_killed_after_naming_leaves_nothing(void **state) {
  (void)state;
  need_unnamed_segments();
  victim v = {.point = MP__FAULT_SHM_CREATED};
  mp_test_name(v.name, sizeof v.name, "win");
  run_victim(&v);
  bool gone = wait_shm_gone(v.name, mp_test_slack(CLEANUP_TIMEOUT));
  if (!gone)
    shm_remove(v.name);
  assert_true(gone);
  assert_true(wait_untracked(v.name, mp_test_slack(CLEANUP_TIMEOUT)));
}

/* Killed while registered and not yet named: the name never appears, and
 * the tracker (which the dead creator started) ends with nothing left. */
static void creator_killed_before_naming_leaves_nothing(void **state) {
  (void)state;
  need_unnamed_segments();
  victim v = {.point = MP__FAULT_SHM_UNNAMED};
  mp_test_name(v.name, sizeof v.name, "unnamed");
  run_victim(&v);
  assert_false(shm_exists(v.name));
  assert_true(wait_untracked(v.name, mp_test_slack(CLEANUP_TIMEOUT)));
  assert_false(shm_exists(v.name));
}

/* The same window for a named Queue (its segment is "mp_<name>"). */
static void queue_creator_killed_before_naming_leaves_nothing(void **state) {
  (void)state;
  need_unnamed_segments();
  victim v = {.point = MP__FAULT_SHM_UNNAMED, .queue = 1};
  mp_test_name(v.name, sizeof v.name, "q");
  char seg[80];
  snprintf(seg, sizeof seg, "mp_%s", v.name);
  run_victim(&v);
  assert_false(shm_exists(seg));
  assert_true(wait_untracked(seg, mp_test_slack(CLEANUP_TIMEOUT)));
}

/* The name exists (someone else's segment): the creator registered the
 * name with its own segment's inode and was killed before linkat would
 * have failed. Its tracker must leave the existing segment alone. */
static void creator_killed_over_an_existing_name_spares_it(void **state) {
  (void)state;
  need_unnamed_segments();
  victim v = {.point = MP__FAULT_SHM_UNNAMED};
  mp_test_name(v.name, sizeof v.name, "taken");
  uint64_t ino = make_segment(v.name, geteuid());
  run_victim(&v);
  bool untracked = wait_untracked(v.name, mp_test_slack(CLEANUP_TIMEOUT));
  uint64_t now = 0;
  bool kept = mp__os_shm_inode(v.name, &now) == 0 && now == ino;
  shm_remove(v.name);
  assert_true(untracked);
  assert_true(kept);
}

/* Without a kill: MP_EEXIST, the existing segment untouched, and the
 * registration taken back (no tracker connection left open). The tracker
 * process reads the taking back on its own time: under ASan, beside the
 * rest of the suite, a listing made at once still showed the name. */
static void create_over_an_existing_name_takes_back_its_registration(
    void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "exists");
  uint64_t ino = make_segment(name, geteuid());
  mp_shared_memory *s = (void *)1;
  assert_rc(mp_shared_memory_new(&s, name, 64, NULL), MP_EEXIST);
  assert_ptr_equal(s, (void *)1);
  assert_int_equal(mp_resource_tracker_pid(), 0);
  assert_true(wait_untracked(name, mp_test_slack(CLEANUP_TIMEOUT)));
  uint64_t now = 0;
  assert_rc(mp__os_shm_inode(name, &now), 0);
  assert_int_equal(now, ino);
  shm_remove(name);
}

/* The segment appears under its name already registered, at its full
 * size, and mp__tracker_register afterwards adds nothing. */
static void created_segment_is_registered_with_its_inode(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "reg");
  mp_shared_memory *s;
  assert_rc(mp_shared_memory_new(&s, name, 5000, NULL), 0);
  assert_true(wait_tracked_as_is(name, mp_test_slack(CLEANUP_TIMEOUT)));
  struct stat st;
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 5000);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_rc(mp__tracker_register(name, 5000), 0);
  assert_true(wait_tracked_as_is(name, mp_test_slack(CLEANUP_TIMEOUT)));
  assert_rc(mp_shared_memory_unlink(s), 0);
  mp_shared_memory_free(s);
  assert_int_equal(mp_resource_tracker_pid(), 0);
}

/* A tracker starts as a fork of the process that first registers: it
 * drops what that process had mapped shared, which would otherwise keep
 * those segments' memory as long as the tracker runs (and make it look
 * like their user). */
static bool maps_inode(pid_t pid, unsigned long ino) {
  char path[64], line[512], want[32];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  snprintf(want, sizeof want, " %lu ", ino);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return false;
  bool found = false;
  while (!found && fgets(line, sizeof line, f) != NULL)
    found = strstr(line, want) != NULL;
  fclose(f);
  return found;
}

static void tracker_drops_what_its_starter_mapped(void **state) {
  (void)state;
  assert_int_equal(mp_resource_tracker_pid(), 0);
  char plain[64], name[64];
  mp_test_name(plain, sizeof plain, "mapped");
  mp_test_name(name, sizeof name, "starts");
  int fd;
  assert_rc(mp__os_shm_create(plain, 8192, &fd), 0);
  void *map = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  assert_true(map != MAP_FAILED);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  close(fd);
  assert_true(maps_inode(getpid(), (unsigned long)st.st_ino));
  mp_shared_memory *s;
  assert_rc(mp_shared_memory_new(&s, name, 64, NULL), 0);
  pid_t tracker = mp_resource_tracker_pid();
  assert_true(tracker > 0);
  /* It unmapped before it answered the start. */
  bool held = maps_inode(tracker, (unsigned long)st.st_ino);
  munmap(map, 8192);
  shm_remove(plain);
  assert_rc(mp_shared_memory_unlink(s), 0);
  mp_shared_memory_free(s);
  assert_false(held);
}

/* Two members of one tree create the same name: the one that finds it
 * taken must not unguard the other's segment (the tracker keeps an entry
 * per name and inode, and the loser takes back only its own). */
typedef struct collide {
  char taken[64], other[64];
} collide;

static int collide_root(void *arg) {
  collide *c = arg;
  int go[2];
  if (pipe(go) != 0)
    return 10;
  mp_shared_memory *other, *taken;
  if (mp_shared_memory_new(&other, c->other, 64, NULL) != 0)
    return 11;
  pid_t g = fork();
  if (g == 0) {
    char b;
    close(go[1]);
    if (read(go[0], &b, 1) != 1)
      _exit(20);
    mp_shared_memory *s = NULL;
    _exit(mp_shared_memory_new(&s, c->taken, 64, NULL) == MP_EEXIST ? 0 : 21);
  }
  close(go[0]);
  if (g < 0 || mp_shared_memory_new(&taken, c->taken, 64, NULL) != 0)
    return 12;
  if (write(go[1], "x", 1) != 1)
    return 13;
  int st;
  if (waitpid(g, &st, 0) != g || !WIFEXITED(st))
    return 14;
  /* Dies without unlinking: the tree's tracker must remove both. */
  return WEXITSTATUS(st);
}

static void colliding_member_keeps_the_others_guard(void **state) {
  (void)state;
  need_unnamed_segments();
  collide c;
  mp_test_name(c.taken, sizeof c.taken, "taken");
  mp_test_name(c.other, sizeof c.other, "other");
  pid_t pid = mp_test_fork(collide_root, &c);
  int st = mp_test_wait(pid, mp_test_slack(30));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  bool gone = wait_shm_gone(c.taken, mp_test_slack(CLEANUP_TIMEOUT)) &&
              wait_shm_gone(c.other, mp_test_slack(CLEANUP_TIMEOUT));
  shm_remove(c.taken);
  shm_remove(c.other);
  assert_true(gone);
}

/* A registered name that ends with '+' guards a family: the clean-up
 * after a dead tracker removes the guard and the regular files of ours
 * whose names begin with it; not another user's file, a link (nor what
 * it points to), a FIFO (opening one would block), nor a name outside. */
static void family_goes_with_its_guard_but_not_what_is_planted(void **state) {
  (void)state;
  need_root();
  char base[64], guard[80], mine[80], theirs[80], link[80], fifo[80],
      outside[80], target[80], file[64], path[SHM_PATH_MAX], to[SHM_PATH_MAX];
  mp_test_name(base, sizeof base, "fam");
  snprintf(guard, sizeof guard, "%s+", base);
  snprintf(mine, sizeof mine, "%s+1.2", base);
  snprintf(theirs, sizeof theirs, "%s+3.4", base);
  snprintf(link, sizeof link, "%s+s0", base);
  snprintf(fifo, sizeof fifo, "%s+s1", base);
  snprintf(outside, sizeof outside, "%sx", base);
  snprintf(target, sizeof target, "%s-target", base);
  pid_t dead = dead_pid();
  snprintf(file, sizeof file, "mp-tracker.%d", (int)dead);
  uint64_t ino = make_segment(guard, geteuid());
  make_segment(mine, geteuid());
  make_segment(theirs, NOBODY);
  make_segment(outside, geteuid());
  make_segment(target, geteuid());
  snprintf(path, sizeof path, "/dev/shm/%s", link);
  snprintf(to, sizeof to, "/dev/shm/%s", target);
  assert_int_equal(symlink(to, path), 0);
  snprintf(path, sizeof path, "/dev/shm/%s", fifo);
  assert_int_equal(mkfifo(path, 0600), 0);
  plant(file, dead, guard, ino, geteuid(), 0600);
  size_t removed = 0;
  int rc = mp_resource_tracker_remove_dead(&removed);
  bool gone = !shm_exists(guard) && !shm_exists(mine) && !shm_exists(file);
  bool kept = shm_exists(theirs) && shm_exists(link) && shm_exists(fifo) &&
              shm_exists(outside) && shm_exists(target);
  const char *left[] = {guard, mine, theirs, link, fifo, outside, target, file};
  for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
    shm_remove(left[i]);
  assert_rc(rc, 0);
  assert_true(gone);
  assert_true(kept);
  assert_int_equal(removed, 2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(own_private_state_file_is_cleaned),
    cmocka_unit_test(state_file_of_another_user_is_ignored),
    cmocka_unit_test(state_file_writable_by_others_is_ignored),
    cmocka_unit_test(state_file_link_is_not_followed),
    cmocka_unit_test(segment_of_another_user_is_not_removed),
    cmocka_unit_test(state_file_of_another_namespace_is_left),
    cmocka_unit_test(state_file_of_unknown_namespace_is_left),
    cmocka_unit_test(trackers_of_one_pid_in_two_namespaces_keep_two_files),
    cmocka_unit_test(private_file_calls_refuse_with_a_reason),
    cmocka_unit_test(creator_killed_after_naming_leaves_nothing),
    cmocka_unit_test(creator_killed_before_naming_leaves_nothing),
    cmocka_unit_test(queue_creator_killed_before_naming_leaves_nothing),
    cmocka_unit_test(creator_killed_over_an_existing_name_spares_it),
    cmocka_unit_test(create_over_an_existing_name_takes_back_its_registration),
    cmocka_unit_test(created_segment_is_registered_with_its_inode),
    cmocka_unit_test(colliding_member_keeps_the_others_guard),
    cmocka_unit_test(family_goes_with_its_guard_but_not_what_is_planted),
    cmocka_unit_test(tracker_drops_what_its_starter_mapped),
};

MP_TEST_MAIN(tests)
