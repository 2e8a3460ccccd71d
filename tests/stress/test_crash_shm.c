/* test_crash_shm.c - G-SHM-1 under load: a process tree holding named
 * objects of every kind (SharedMemory, ShareableList, Value, Array, and the
 * named sync objects) is SIGKILLed at a random moment while it works on
 * them, again and again for MP_STRESS_SECONDS (default 3); each time
 * /dev/shm must be clean of the tree's names within a bounded time.
 *
 * The kill comes after every process of the tree has created its objects
 * (the microseconds between creating a segment and registering it are the
 * one window the tracker cannot cover; docs/shared.md says so). */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define CLEANUP_TIMEOUT 30.0
#define MEMBERS 3

typedef struct tree {
  char tag[64]; /* "t<pid>-c<round>-" */
  int ready;    /* write end: one byte per member when its objects exist */
} tree;

static int member_work(const tree *t, int index) {
  char name[128];
  mp_shared_memory *shm;
  mp_value *v;
  mp_array *a;
  mp_lock *lock;
  mp_semaphore *sem;
  mp_shareable_list *sl;
  snprintf(name, sizeof name, "%sshm%d", t->tag, index);
  if (mp_shared_memory_new(&shm, name, 4096, NULL) != 0)
    return 1;
  snprintf(name, sizeof name, "%sval%d", t->tag, index);
  mp_value_opts vo = {.name = name};
  if (mp_value_new(&v, 'q', NULL, &vo) != 0)
    return 2;
  snprintf(name, sizeof name, "%sarr%d", t->tag, index);
  if (mp_array_new(&a, 'd', 100, NULL, &vo) != 0)
    return 3;
  snprintf(name, sizeof name, "%slock%d", t->tag, index);
  mp_sync_opts so = {.name = name};
  if (mp_lock_new(&lock, &so) != 0)
    return 4;
  snprintf(name, sizeof name, "%ssem%d", t->tag, index);
  if (mp_semaphore_new(&sem, 1, &so) != 0)
    return 5;
  snprintf(name, sizeof name, "%ssl%d", t->tag, index);
  mp_shareable_item items[] = {mp_shareable_int(0), mp_shareable_str("x")};
  if (mp_shareable_list_new(&sl, items, 2, name, NULL) != 0)
    return 6;
  char c = 1;
  if (write(t->ready, &c, 1) != 1)
    return 7;
  /* Work until killed: the kill lands anywhere in here. */
  alarm(60);
  unsigned char *buf = mp_shared_memory_buf(shm);
  for (uint64_t i = 0;; i++) {
    mp_lock_acquire(lock, MP_FOREVER);
    buf[i % 4096] = (unsigned char)i;
    mp_value_fetch_add(v, 1, NULL);
    mp_array_set_double(a, (ssize_t)(i % 100), (double)i);
    mp_lock_release(lock);
    mp_semaphore_acquire(sem, MP_FOREVER);
    mp_shareable_item it = mp_shareable_int((int64_t)i);
    mp_shareable_list_set(sl, 0, &it);
    mp_semaphore_release(sem);
  }
}

static int tree_root(void *p) {
  tree *t = p;
  /* A group of its own: the test kills the whole tree at once. */
  setpgid(0, 0);
  for (int i = 1; i < MEMBERS; i++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
      _exit(member_work(t, i));
  }
  return member_work(t, 0);
}

typedef struct count_arg {
  const char *tag;
  int n;
} count_arg;

static int count_tagged(const char *tag) {
  DIR *d = opendir("/dev/shm");
  if (d == NULL)
    return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strstr(e->d_name, tag) != NULL)
      n++;
  closedir(d);
  return n;
}

static double stress_seconds(void) {
  const char *s = getenv("MP_STRESS_SECONDS");
  double v = s != NULL ? atof(s) : 0;
  return v > 0 ? v : 3.0;
}

static void sigkilled_trees_leave_nothing(void **state) {
  (void)state;
  double end = mp_test_now() + stress_seconds();
  unsigned seed = (unsigned)getpid();
  int rounds = 0;
  do {
    tree t;
    snprintf(t.tag, sizeof t.tag, "t%d-c%d-", (int)getpid(), rounds);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    t.ready = fds[1];
    pid_t root = mp_test_fork(tree_root, &t);
    close(fds[1]);
    for (int i = 0; i < MEMBERS; i++) {
      char c;
      if (read(fds[0], &c, 1) != 1) {
        kill(-root, SIGKILL);
        mp_test_wait(root, 30);
        fail_msg("round %d: a member failed to create its objects", rounds);
      }
    }
    close(fds[0]);
    /* 6 segments per member, as member_work creates. */
    assert_int_equal(count_tagged(t.tag), 6 * MEMBERS);
    usleep((useconds_t)(rand_r(&seed) % 20000));
    kill(-root, SIGKILL);
    int status = mp_test_wait(root, 30);
    assert_true(WIFSIGNALED(status));
    double deadline = mp_test_now() + CLEANUP_TIMEOUT;
    while (count_tagged(t.tag) > 0) {
      if (mp_test_now() > deadline)
        fail_msg("round %d: %d segments left in /dev/shm after %.0f s",
                 rounds, count_tagged(t.tag), CLEANUP_TIMEOUT);
      usleep(5000);
    }
    rounds++;
  } while (mp_test_now() < end);
  print_message("%d process trees killed, nothing left behind\n", rounds);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(sigkilled_trees_leave_nothing),
};

MP_TEST_MAIN(tests)
