/* test_rlock.c - RLock: re-entry and depth, owner-checked release, its
 * three homes, bad arguments, timeouts, threads and processes, and the
 * holder that dies at depth 3 (G-LOCK-1).
 *
 * Forked children never call cmocka: they report through their exit
 * status (0 = fine, other values name the step that failed). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- helpers --------------------------------------------------------- */

static void scribble(const char *name, off_t off, size_t size) {
  char path[512];
  snprintf(path, sizeof path, "/dev/shm/mp_%s", name);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  unsigned char buf[4096];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char)(i * 53 + 7);
  assert_true(size <= sizeof buf);
  assert_int_equal(pwrite(fd, buf, size, off), (ssize_t)size);
  close(fd);
}

static void kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
}

/* ---- life cycle and arguments ------------------------------------------ */

static void reentry_counts_depth(void **state) {
  (void)state;
  mp_rlock *lock;
  assert_rc(mp_rlock_new(&lock, NULL), 0);
  assert_int_equal(mp_rlock_depth(lock), 0);
  assert_rc(mp_rlock_acquire(lock, MP_FOREVER), 0);
  assert_rc(mp_rlock_acquire(lock, 0), 0);
  assert_rc(mp_rlock_acquire(lock, 1.0), 0);
  assert_int_equal(mp_rlock_depth(lock), 3);
  assert_rc(mp_rlock_release(lock), 0);
  assert_int_equal(mp_rlock_depth(lock), 2);
  assert_rc(mp_rlock_release(lock), 0);
  assert_rc(mp_rlock_release(lock), 0);
  assert_int_equal(mp_rlock_depth(lock), 0);
  assert_rc(mp_rlock_release(lock), MP_EPERM);
  mp_rlock_free(lock);
  mp_rlock_free(NULL);
}

static void bad_arguments(void **state) {
  (void)state;
  assert_rc(mp_rlock_new(NULL, NULL), MP_EINVAL);
  assert_rc(mp_rlock_acquire(NULL, 0), MP_EINVAL);
  assert_rc(mp_rlock_release(NULL), MP_EINVAL);
  assert_rc(mp_rlock_depth(NULL), MP_EINVAL);
  assert_rc(mp_rlock_init(NULL), MP_EINVAL);
  assert_rc(mp_rlock_destroy(NULL), MP_EINVAL);
  mp_rlock *out;
  assert_rc(mp_rlock_open(&out, NULL), MP_EINVAL);
  mp_rlock zero, junk;
  memset(&zero, 0, sizeof zero);
  memset(&junk, 0xa5, sizeof junk);
  mp_rlock *bad[] = {&zero, &junk};
  for (int i = 0; i < 2; i++) {
    assert_rc(mp_rlock_acquire(bad[i], 0), MP_EINVAL);
    assert_rc(mp_rlock_release(bad[i]), MP_EINVAL);
    assert_rc(mp_rlock_depth(bad[i]), MP_EINVAL);
    assert_rc(mp_rlock_destroy(bad[i]), MP_EINVAL);
  }
  /* A Lock is not an RLock. */
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  assert_rc(mp_rlock_acquire((mp_rlock *)lock, 0), MP_EINVAL);
  mp_lock_free(lock);
}

static void names(void **state) {
  (void)state;
  mp_rlock *a, *b;
  mp_sync_opts bad = {.name = "no/slash"};
  assert_rc(mp_rlock_new(&a, &bad), MP_EINVAL);
  char longname[MP_SYNC_NAME_MAX + 2];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  mp_sync_opts toolong = {.name = longname};
  assert_rc(mp_rlock_new(&a, &toolong), MP_ENAMETOOLONG);
  char name[64];
  mp_test_name(name, sizeof name, "rlock-names");
  mp_sync_opts o = {.name = name};
  assert_rc(mp_rlock_open(&b, name), MP_ENOENT);
  assert_rc(mp_rlock_new(&a, &o), 0);
  assert_rc(mp_rlock_new(&b, &o), MP_EEXIST);
  assert_rc(mp_rlock_open(&b, name), 0);
  /* Both handles are the same lock. */
  assert_rc(mp_rlock_acquire(a, 0), 0);
  assert_int_equal(mp_rlock_depth(b), 1);
  assert_rc(mp_rlock_release(b), 0);
  mp_rlock_free(b);
  mp_rlock_free(a);
  assert_rc(mp_rlock_open(&b, name), MP_ENOENT);
}

static void open_corrupt(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "rlock-corrupt");
  mp_rlock *lock;
  scribble(name, 0, (size_t)sysconf(_SC_PAGESIZE));
  assert_rc(mp_rlock_open(&lock, name), MP_ECORRUPT);
  char path[512];
  snprintf(path, sizeof path, "/dev/shm/mp_%s", name);
  unlink(path);
  /* A Lock under the name is not an RLock. */
  mp_sync_opts o = {.name = name};
  mp_lock *other;
  assert_rc(mp_lock_new(&other, &o), 0);
  assert_rc(mp_rlock_open(&lock, name), MP_ECORRUPT);
  mp_lock_free(other);
}

static void destroy_rules(void **state) {
  (void)state;
  mp_rlock lock;
  assert_rc(mp_rlock_init(&lock), 0);
  assert_rc(mp_rlock_acquire(&lock, 0), 0);
  assert_rc(mp_rlock_destroy(&lock), MP_EBUSY);
  assert_rc(mp_rlock_release(&lock), 0);
  assert_rc(mp_rlock_destroy(&lock), 0);
  assert_rc(mp_rlock_acquire(&lock, 0), MP_EINVAL);
}

/* ---- threads ----------------------------------------------------------- */

typedef struct holder {
  mp_rlock *lock;
  mp_test_signal held, done;
  int rc;
} holder;

static void *hold_twice_until_done(void *arg) {
  holder *h = arg;
  h->rc = mp_rlock_acquire(h->lock, MP_FOREVER);
  if (h->rc == 0)
    h->rc = mp_rlock_acquire(h->lock, MP_FOREVER);
  mp_test_signal_post(&h->held);
  mp_test_signal_wait(&h->done, 60);
  if (h->rc == 0 && mp_rlock_depth(h->lock) != 2)
    h->rc = -1000;
  if (h->rc == 0)
    h->rc = mp_rlock_release(h->lock);
  if (h->rc == 0)
    h->rc = mp_rlock_release(h->lock);
  return NULL;
}

static void other_thread_holds(void **state) {
  (void)state;
  holder h = {0};
  assert_rc(mp_rlock_new(&h.lock, NULL), 0);
  mp_test_signal_open(&h.held);
  mp_test_signal_open(&h.done);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, hold_twice_until_done, &h), 0);
  assert_true(mp_test_signal_wait(&h.held, 30));
  /* Not ours: depth 0, release refused, acquire waits. */
  assert_int_equal(mp_rlock_depth(h.lock), 0);
  assert_rc(mp_rlock_release(h.lock), MP_EPERM);
  assert_rc(mp_rlock_acquire(h.lock, 0), MP_EAGAIN);
  double t0 = mp_test_now();
  assert_rc(mp_rlock_acquire(h.lock, 0.2), MP_ETIMEDOUT);
  assert_true(mp_test_now() - t0 >= 0.19);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  mp_test_signal_post(&h.done);
  pthread_join(t, NULL);
  assert_rc(h.rc, 0);
  assert_rc(mp_rlock_acquire(h.lock, 0), 0);
  assert_rc(mp_rlock_release(h.lock), 0);
  mp_test_signal_close(&h.held);
  mp_test_signal_close(&h.done);
  mp_rlock_free(h.lock);
}

typedef struct counter {
  mp_rlock *lock;
  long value;
  int errors;
} counter;

static void *nested_increments(void *arg) {
  counter *c = arg;
  for (int i = 0; i < 200; i++) {
    int ok = mp_rlock_acquire(c->lock, MP_FOREVER) == 0 &&
             mp_rlock_acquire(c->lock, MP_FOREVER) == 0;
    long v = c->value;
    sched_yield();
    c->value = v + 1;
    ok = ok && mp_rlock_depth(c->lock) == 2 && mp_rlock_release(c->lock) == 0 &&
         mp_rlock_release(c->lock) == 0;
    if (!ok)
      __atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

static void threads_exclude_each_other(void **state) {
  (void)state;
  enum { THREADS = 20 };
  counter c = {0};
  assert_rc(mp_rlock_new(&c.lock, NULL), 0);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, nested_increments, &c), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(c.errors, 0);
  assert_int_equal(c.value, THREADS * 200);
  mp_rlock_free(c.lock);
}

/* ---- processes --------------------------------------------------------- */

typedef struct shared_counter {
  mp_rlock lock;
  long value;
} shared_counter;

static mp_rlock *g_lock;
static long *g_value;

static int nested_increments_proc(void *arg) {
  (void)arg;
  for (int i = 0; i < 3000; i++) {
    if (mp_rlock_acquire(g_lock, MP_FOREVER) != 0 ||
        mp_rlock_acquire(g_lock, 5.0) != 0)
      return 1;
    *g_value += 1;
    if (mp_rlock_release(g_lock) != 0 || mp_rlock_release(g_lock) != 0)
      return 2;
  }
  return 0;
}

static void run_procs(mp_rlock *lock, long *value) {
  enum { PROCS = 3 };
  g_lock = lock;
  g_value = value;
  pid_t pids[PROCS];
  for (int i = 0; i < PROCS; i++)
    pids[i] = mp_test_fork(nested_increments_proc, NULL);
  for (int i = 0; i < PROCS; i++)
    mp_test_wait_exit(pids[i], 0, mp_test_slack(60));
  assert_int_equal(*value, PROCS * 3000);
}

static void processes_anonymous(void **state) {
  (void)state;
  mp_rlock *lock;
  assert_rc(mp_rlock_new(&lock, NULL), 0);
  long *value = mp_test_shared_map(sizeof *value);
  run_procs(lock, value);
  munmap(value, sizeof *value);
  mp_rlock_free(lock);
}

static void processes_in_place(void **state) {
  (void)state;
  shared_counter *sc = mp_test_shared_map(sizeof *sc);
  assert_rc(mp_rlock_init(&sc->lock), 0);
  run_procs(&sc->lock, &sc->value);
  assert_rc(mp_rlock_destroy(&sc->lock), 0);
  munmap(sc, sizeof *sc);
}

static char g_name[64];
static mp_test_signal g_sig;

static int child_by_name(void *arg) {
  (void)arg;
  mp_rlock *lock;
  if (mp_rlock_open(&lock, g_name) != 0)
    return 1;
  if (mp_rlock_acquire(lock, 0) != MP_EAGAIN)
    return 2;
  if (mp_rlock_release(lock) != MP_EPERM)
    return 3;
  mp_test_signal_post(&g_sig);
  if (mp_rlock_acquire(lock, mp_test_slack(30)) != 0)
    return 4;
  if (mp_rlock_acquire(lock, 0) != 0 || mp_rlock_depth(lock) != 2)
    return 5;
  mp_rlock_release(lock);
  mp_rlock_release(lock);
  mp_rlock_free(lock);
  return 0;
}

static void named_from_child(void **state) {
  (void)state;
  mp_test_name(g_name, sizeof g_name, "rlock-child");
  mp_sync_opts o = {.name = g_name};
  mp_rlock *lock;
  assert_rc(mp_rlock_new(&lock, &o), 0);
  mp_test_signal_open(&g_sig);
  assert_rc(mp_rlock_acquire(lock, 0), 0);
  pid_t pid = mp_test_fork(child_by_name, NULL);
  assert_true(mp_test_signal_wait(&g_sig, mp_test_slack(30)));
  assert_rc(mp_rlock_release(lock), 0);
  mp_test_wait_exit(pid, 0, mp_test_slack(30));
  mp_test_signal_close(&g_sig);
  mp_rlock_free(lock);
}

/* ---- dead holders: G-LOCK-1 -------------------------------------------- */

static int hold_at_depth_3(void *arg) {
  mp_rlock *lock = arg;
  for (int i = 0; i < 3; i++)
    if (mp_rlock_acquire(lock, MP_FOREVER) != 0)
      return 1;
  mp_test_signal_post(&g_sig);
  for (;;)
    pause();
}

static void killed_holder_at_depth_3(void **state) { /* G-LOCK-1 */
  (void)state;
  mp_rlock *lock;
  assert_rc(mp_rlock_new(&lock, NULL), 0);
  mp_test_signal_open(&g_sig);
  pid_t pid = mp_test_fork(hold_at_depth_3, lock);
  assert_true(mp_test_signal_wait(&g_sig, mp_test_slack(30)));
  assert_rc(mp_rlock_acquire(lock, 0), MP_EAGAIN);
  kill_and_reap(pid);
  double t0 = mp_test_now();
  assert_rc(mp_rlock_acquire(lock, mp_test_slack(10)), MP_EOWNERDEAD);
  assert_true(mp_test_now() - t0 < mp_test_slack(10));
  /* Depth restarts at 1: one release frees it. */
  assert_int_equal(mp_rlock_depth(lock), 1);
  assert_rc(mp_rlock_release(lock), 0);
  assert_int_equal(mp_rlock_depth(lock), 0);
  assert_rc(mp_rlock_release(lock), MP_EPERM);
  assert_rc(mp_rlock_acquire(lock, 0), 0);
  assert_rc(mp_rlock_release(lock), 0);
  mp_test_signal_close(&g_sig);
  mp_rlock_free(lock);
}

static void *acquire_twice_and_exit(void *arg) {
  mp_rlock_acquire(arg, MP_FOREVER);
  mp_rlock_acquire(arg, MP_FOREVER);
  return NULL;
}

static void holder_thread_exit(void **state) { /* G-LOCK-1 */
  (void)state;
  mp_rlock lock;
  assert_rc(mp_rlock_init(&lock), 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, acquire_twice_and_exit, &lock), 0);
  pthread_join(t, NULL);
  assert_rc(mp_rlock_acquire(&lock, mp_test_slack(10)), MP_EOWNERDEAD);
  assert_int_equal(mp_rlock_depth(&lock), 1);
  assert_rc(mp_rlock_release(&lock), 0);
  assert_rc(mp_rlock_destroy(&lock), 0);
}

/* A depth no holder can reach was written by another program (the depth
 * is the word at offset 48, after the head and the 40-byte owner-word lock,
 * lock.c). */
static void overwritten_depth_is_corrupt(void **state) {
  (void)state;
  mp_rlock l;
  assert_rc(mp_rlock_init(&l), 0);
  assert_rc(mp_rlock_acquire(&l, 0), 0);
  uint32_t bad = 0x90000000u, one = 1;
  memcpy(l.opaque + 48, &bad, sizeof bad);
  assert_rc(mp_rlock_depth(&l), MP_ECORRUPT);
  memcpy(l.opaque + 48, &one, sizeof one);
  assert_int_equal(mp_rlock_depth(&l), 1);
  assert_rc(mp_rlock_release(&l), 0);
  assert_rc(mp_rlock_destroy(&l), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(reentry_counts_depth),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(names),
    cmocka_unit_test(open_corrupt),
    cmocka_unit_test(destroy_rules),
    cmocka_unit_test(other_thread_holds),
    cmocka_unit_test(threads_exclude_each_other),
    cmocka_unit_test(processes_anonymous),
    cmocka_unit_test(processes_in_place),
    cmocka_unit_test(named_from_child),
    cmocka_unit_test(killed_holder_at_depth_3),
    cmocka_unit_test(holder_thread_exit),
    cmocka_unit_test(overwritten_depth_is_corrupt),
};

MP_TEST_MAIN(tests)
