/* test_lock.c - Lock: life cycle in its three homes (anonymous, named, in
 * place), bad arguments, timeouts, exclusion between threads and between
 * processes, and the holder that dies (G-LOCK-1) or relocks (G-LOCK-2).
 *
 * Forked children never call cmocka: they report through their exit
 * status (0 = fine, other values name the step that failed). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- helpers --------------------------------------------------------- */

static void segment_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "/dev/shm/mp_%s", name);
}

/* Writes size bytes of garbage at offset off of the named segment,
 * creating the file if needed. */
static void scribble(const char *name, off_t off, size_t size) {
  char path[512];
  segment_path(path, sizeof path, name);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  unsigned char buf[4096];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char)(i * 37 + 11);
  while (size > 0) {
    size_t n = size < sizeof buf ? size : sizeof buf;
    assert_int_equal(pwrite(fd, buf, n, off), (ssize_t)n);
    off += (off_t)n;
    size -= n;
  }
  close(fd);
}

static void unlink_segment(const char *name) {
  char path[512];
  segment_path(path, sizeof path, name);
  unlink(path);
}

static void kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
}

/* ---- life cycle ------------------------------------------------------- */

static void new_acquire_release_free(void **state) {
  (void)state;
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  assert_int_equal(mp_lock_locked(lock), 0);
  assert_rc(mp_lock_acquire(lock, MP_FOREVER), 0);
  assert_int_equal(mp_lock_locked(lock), 1);
  assert_rc(mp_lock_release(lock), 0);
  assert_int_equal(mp_lock_locked(lock), 0);
  assert_rc(mp_lock_acquire(lock, 0), 0);
  assert_rc(mp_lock_release(lock), 0);
  assert_rc(mp_lock_acquire(lock, 1.0), 0);
  assert_rc(mp_lock_release(lock), 0);
  mp_lock_free(lock);
  mp_lock_free(NULL);
}

static void bad_arguments(void **state) {
  (void)state;
  assert_rc(mp_lock_new(NULL, NULL), MP_EINVAL);
  assert_rc(mp_lock_acquire(NULL, 0), MP_EINVAL);
  assert_rc(mp_lock_release(NULL), MP_EINVAL);
  assert_rc(mp_lock_locked(NULL), MP_EINVAL);
  assert_rc(mp_lock_init(NULL), MP_EINVAL);
  assert_rc(mp_lock_destroy(NULL), MP_EINVAL);
  mp_lock *out = NULL;
  assert_rc(mp_lock_open(&out, NULL), MP_EINVAL);
  assert_rc(mp_lock_open(NULL, "x"), MP_EINVAL);
  /* A misaligned in-place lock is refused. */
  _Alignas(8) unsigned char buf[MP_LOCK_SIZE + 8];
  assert_rc(mp_lock_init((mp_lock *)(buf + 4)), MP_EINVAL);
}

static void uninitialised_memory_is_einval(void **state) {
  (void)state;
  mp_lock zero, junk;
  memset(&zero, 0, sizeof zero);
  memset(&junk, 0x5a, sizeof junk);
  mp_lock *locks[] = {&zero, &junk};
  for (int i = 0; i < 2; i++) {
    assert_rc(mp_lock_acquire(locks[i], 0), MP_EINVAL);
    assert_rc(mp_lock_acquire(locks[i], MP_FOREVER), MP_EINVAL);
    assert_rc(mp_lock_release(locks[i]), MP_EINVAL);
    assert_rc(mp_lock_locked(locks[i]), MP_EINVAL);
    assert_rc(mp_lock_destroy(locks[i]), MP_EINVAL);
  }
  /* Another type's object is not a lock either. */
  mp_semaphore *sem;
  assert_rc(mp_semaphore_new(&sem, 1, NULL), 0);
  assert_rc(mp_lock_acquire((mp_lock *)sem, 0), MP_EINVAL);
  mp_lock_free((mp_lock *)sem); /* not a lock: ignored */
  mp_semaphore_free(sem);
}

static void bad_names(void **state) {
  (void)state;
  mp_lock *lock;
  const char *bad[] = {"", "a/b", "sp ace", "..", ".", "tab\t", "é"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mp_sync_opts o = {.name = bad[i]};
    assert_rc(mp_lock_new(&lock, &o), MP_EINVAL);
    assert_rc(mp_lock_open(&lock, bad[i]), MP_EINVAL);
  }
  char name[MP_SYNC_NAME_MAX + 2];
  memset(name, 'n', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  mp_sync_opts o = {.name = name};
  assert_rc(mp_lock_new(&lock, &o), MP_ENAMETOOLONG);
  assert_rc(mp_lock_open(&lock, name), MP_ENAMETOOLONG);
  /* Exactly MP_SYNC_NAME_MAX bytes is fine. */
  char tag[16];
  mp_test_name(tag, sizeof tag, "");
  memcpy(name, tag, strlen(tag));
  name[MP_SYNC_NAME_MAX] = '\0';
  assert_rc(mp_lock_new(&lock, &o), 0);
  mp_lock *again;
  assert_rc(mp_lock_open(&again, name), 0);
  mp_lock_free(again);
  mp_lock_free(lock);
}

static void named_exists_and_missing(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "lock-exists");
  mp_sync_opts o = {.name = name};
  mp_lock *a, *b;
  assert_rc(mp_lock_open(&b, name), MP_ENOENT);
  assert_rc(mp_lock_new(&a, &o), 0);
  assert_rc(mp_lock_new(&b, &o), MP_EEXIST);
  mp_lock_free(a);
  /* The creator's free unlinked the name. */
  assert_rc(mp_lock_open(&b, name), MP_ENOENT);
}

static void open_garbage_is_ecorrupt(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "lock-garbage");
  mp_lock *lock;
  /* A segment of the right size full of garbage. */
  scribble(name, 0, (size_t)sysconf(_SC_PAGESIZE));
  assert_rc(mp_lock_open(&lock, name), MP_ECORRUPT);
  unlink_segment(name);
  /* One of the wrong size. */
  scribble(name, 0, 100);
  assert_rc(mp_lock_open(&lock, name), MP_ECORRUPT);
  unlink_segment(name);
}

static void open_scribbled_is_ecorrupt(void **state) {
  (void)state;
  char name[64], path[512];
  mp_test_name(name, sizeof name, "lock-scribbled");
  segment_path(path, sizeof path, name);
  mp_sync_opts o = {.name = name};
  mp_lock *lock, *opened;
  /* The segment header, then the object's own head. */
  off_t where[] = {0, 256};
  for (int i = 0; i < 2; i++) {
    assert_rc(mp_lock_new(&lock, &o), 0);
    unsigned char saved[16];
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, saved, sizeof saved, where[i]), 16);
    scribble(name, where[i], sizeof saved);
    assert_rc(mp_lock_open(&opened, name), MP_ECORRUPT);
    /* Put it back so that the creator's free recognises its object. */
    assert_int_equal(pwrite(fd, saved, sizeof saved, where[i]), 16);
    close(fd);
    mp_lock_free(lock);
  }
}

static void open_other_type_is_ecorrupt(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "lock-type");
  mp_sync_opts o = {.name = name};
  mp_event *ev;
  mp_lock *lock;
  assert_rc(mp_event_new(&ev, &o), 0);
  assert_rc(mp_lock_open(&lock, name), MP_ECORRUPT);
  mp_event_free(ev);
}

static void destroy_rules(void **state) {
  (void)state;
  mp_lock lock;
  assert_rc(mp_lock_init(&lock), 0);
  assert_rc(mp_lock_acquire(&lock, 0), 0);
  assert_rc(mp_lock_destroy(&lock), MP_EBUSY);
  assert_rc(mp_lock_release(&lock), 0);
  assert_rc(mp_lock_destroy(&lock), 0);
  assert_rc(mp_lock_acquire(&lock, 0), MP_EINVAL);
  assert_rc(mp_lock_destroy(&lock), MP_EINVAL);
  /* A destroyed segment object is still freed. */
  mp_lock *seg;
  assert_rc(mp_lock_new(&seg, NULL), 0);
  assert_rc(mp_lock_destroy(seg), 0);
  mp_lock_free(seg);
}

/* ---- ownership --------------------------------------------------------- */

static void relock_is_edeadlk(void **state) { /* G-LOCK-2 */
  (void)state;
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  assert_rc(mp_lock_acquire(lock, MP_FOREVER), 0);
  assert_rc(mp_lock_acquire(lock, MP_FOREVER), MP_EDEADLK);
  assert_rc(mp_lock_acquire(lock, 0), MP_EDEADLK);
  assert_rc(mp_lock_acquire(lock, 0.5), MP_EDEADLK);
  assert_rc(mp_lock_release(lock), 0);
  mp_lock_free(lock);
}

static void release_unheld_is_eperm(void **state) {
  (void)state;
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  assert_rc(mp_lock_release(lock), MP_EPERM);
  mp_lock_free(lock);
}

typedef struct holder {
  mp_lock *lock;
  mp_test_signal held, done;
  int rc;
} holder;

static void *hold_until_done(void *arg) {
  holder *h = arg;
  h->rc = mp_lock_acquire(h->lock, MP_FOREVER);
  mp_test_signal_post(&h->held);
  mp_test_signal_wait(&h->done, 60);
  if (h->rc == 0)
    h->rc = mp_lock_release(h->lock);
  return NULL;
}

static void other_thread_holds(void **state) {
  (void)state;
  holder h = {0};
  assert_rc(mp_lock_new(&h.lock, NULL), 0);
  mp_test_signal_open(&h.held);
  mp_test_signal_open(&h.done);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, hold_until_done, &h), 0);
  assert_true(mp_test_signal_wait(&h.held, 30));
  assert_int_equal(mp_lock_locked(h.lock), 1);
  /* Only the holder may release. */
  assert_rc(mp_lock_release(h.lock), MP_EPERM);
  assert_rc(mp_lock_acquire(h.lock, 0), MP_EAGAIN);
  double t0 = mp_test_now();
  assert_rc(mp_lock_acquire(h.lock, 0.2), MP_ETIMEDOUT);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.19);
  assert_true(took < mp_test_slack(5));
  mp_test_signal_post(&h.done);
  pthread_join(t, NULL);
  assert_rc(h.rc, 0);
  assert_rc(mp_lock_acquire(h.lock, 0), 0);
  assert_rc(mp_lock_release(h.lock), 0);
  mp_test_signal_close(&h.held);
  mp_test_signal_close(&h.done);
  mp_lock_free(h.lock);
}

/* ---- exclusion: the seeds' counter ------------------------------------ */

typedef struct counter {
  mp_lock *lock;
  long value;
  int iterations;
  int errors;
} counter;

static void *decrement(void *arg) {
  counter *c = arg;
  for (int i = 0; i < c->iterations; i++) {
    if (mp_lock_acquire(c->lock, MP_FOREVER) != 0) {
      __atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
      continue;
    }
    long v = c->value;
    sched_yield();
    c->value = v - 1;
    if (mp_lock_release(c->lock) != 0)
      __atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

static void hundred_threads_decrement_to_zero(void **state) {
  (void)state;
  enum { THREADS = 100, EACH = 100 };
  counter c = {.value = THREADS * EACH, .iterations = EACH};
  assert_rc(mp_lock_new(&c.lock, NULL), 0);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, decrement, &c), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(c.errors, 0);
  assert_int_equal(c.value, 0);
  mp_lock_free(c.lock);
}

typedef struct shared_counter {
  mp_lock lock; /* in place, first, so it is aligned */
  long value;
} shared_counter;

static mp_lock *g_lock;
static long *g_value;

static int increment_many(void *arg) {
  int n = *(int *)arg;
  for (int i = 0; i < n; i++) {
    if (mp_lock_acquire(g_lock, MP_FOREVER) != 0)
      return 1;
    long v = *g_value;
    if (i % 64 == 0)
      sched_yield();
    *g_value = v + 1;
    if (mp_lock_release(g_lock) != 0)
      return 2;
  }
  return 0;
}

static void run_increments(mp_lock *lock, long *value) {
  enum { PROCS = 4 };
  int each = 5000;
  g_lock = lock;
  g_value = value;
  pid_t pids[PROCS];
  for (int i = 0; i < PROCS; i++)
    pids[i] = mp_test_fork(increment_many, &each);
  for (int i = 0; i < PROCS; i++)
    mp_test_wait_exit(pids[i], 0, mp_test_slack(60));
  assert_int_equal(*value, PROCS * each);
}

static void processes_count_under_anonymous_lock(void **state) {
  (void)state;
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  long *value = mp_test_shared_map(sizeof *value);
  *value = 0;
  run_increments(lock, value);
  munmap(value, sizeof *value);
  mp_lock_free(lock);
}

static void processes_count_under_in_place_lock(void **state) {
  (void)state;
  shared_counter *sc = mp_test_shared_map(sizeof *sc);
  assert_rc(mp_lock_init(&sc->lock), 0);
  sc->value = 0;
  run_increments(&sc->lock, &sc->value);
  assert_rc(mp_lock_destroy(&sc->lock), 0);
  munmap(sc, sizeof *sc);
}

/* A child that opens the lock by name, as an unrelated process would. */
static char g_name[64];
static mp_test_signal g_checked;

static int child_by_name(void *arg) {
  long *value = arg;
  mp_lock *lock;
  if (mp_lock_open(&lock, g_name) != 0)
    return 1;
  /* The parent holds it until we say we have seen that. */
  if (mp_lock_acquire(lock, 0) != MP_EAGAIN)
    return 2;
  if (mp_lock_locked(lock) != 1)
    return 3;
  mp_test_signal_post(&g_checked);
  if (mp_lock_acquire(lock, mp_test_slack(30)) != 0)
    return 4;
  *value = 42;
  if (mp_lock_release(lock) != 0)
    return 5;
  mp_lock_free(lock);
  return 0;
}

static void named_lock_from_child(void **state) {
  (void)state;
  mp_test_name(g_name, sizeof g_name, "lock-named");
  mp_sync_opts o = {.name = g_name};
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, &o), 0);
  long *value = mp_test_shared_map(sizeof *value);
  *value = 0;
  mp_test_signal_open(&g_checked);
  assert_rc(mp_lock_acquire(lock, 0), 0);
  pid_t pid = mp_test_fork(child_by_name, value);
  assert_true(mp_test_signal_wait(&g_checked, mp_test_slack(30)));
  assert_int_equal(*value, 0);
  assert_rc(mp_lock_release(lock), 0);
  mp_test_wait_exit(pid, 0, mp_test_slack(30));
  assert_int_equal(*value, 42);
  mp_test_signal_close(&g_checked);
  munmap(value, sizeof *value);
  mp_lock_free(lock);
}

/* ---- dead holders: G-LOCK-1 -------------------------------------------- */

static mp_test_signal g_held;

static int hold_forever(void *arg) {
  mp_lock *lock = arg;
  if (mp_lock_acquire(lock, MP_FOREVER) != 0)
    return 1;
  mp_test_signal_post(&g_held);
  for (;;)
    pause();
}

static void killed_holder_gives_eownerdead(void **state) { /* G-LOCK-1 */
  (void)state;
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  mp_test_signal_open(&g_held);
  pid_t pid = mp_test_fork(hold_forever, lock);
  assert_true(mp_test_signal_wait(&g_held, mp_test_slack(30)));
  assert_int_equal(mp_lock_locked(lock), 1);
  assert_rc(mp_lock_acquire(lock, 0), MP_EAGAIN);
  kill_and_reap(pid);
  double t0 = mp_test_now();
  assert_rc(mp_lock_acquire(lock, mp_test_slack(10)), MP_EOWNERDEAD);
  assert_true(mp_test_now() - t0 < mp_test_slack(10));
  /* Held by us now, and fully usable afterwards. */
  assert_int_equal(mp_lock_locked(lock), 1);
  assert_rc(mp_lock_release(lock), 0);
  assert_rc(mp_lock_acquire(lock, 0), 0);
  assert_rc(mp_lock_release(lock), 0);
  mp_test_signal_close(&g_held);
  mp_lock_free(lock);
}

static void *kill_later(void *arg) {
  usleep(200 * 1000);
  kill(*(pid_t *)arg, SIGKILL);
  return NULL;
}

static void holder_killed_while_we_wait(void **state) { /* G-LOCK-1 */
  (void)state;
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  mp_test_signal_open(&g_held);
  pid_t pid = mp_test_fork(hold_forever, lock);
  assert_true(mp_test_signal_wait(&g_held, mp_test_slack(30)));
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, kill_later, &pid), 0);
  /* Blocked in the acquire when the holder dies. */
  assert_rc(mp_lock_acquire(lock, mp_test_slack(20)), MP_EOWNERDEAD);
  pthread_join(t, NULL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_rc(mp_lock_release(lock), 0);
  mp_test_signal_close(&g_held);
  mp_lock_free(lock);
}

static void *acquire_and_exit(void *arg) {
  mp_lock_acquire(arg, MP_FOREVER);
  return NULL;
}

static void holder_thread_exit_gives_eownerdead(void **state) {
  (void)state;
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, acquire_and_exit, lock), 0);
  pthread_join(t, NULL);
  assert_rc(mp_lock_acquire(lock, mp_test_slack(10)), MP_EOWNERDEAD);
  assert_rc(mp_lock_release(lock), 0);
  assert_rc(mp_lock_acquire(lock, 0), 0);
  assert_rc(mp_lock_release(lock), 0);
  mp_lock_free(lock);
}

static void killed_holder_of_in_place_lock(void **state) { /* G-LOCK-1 */
  (void)state;
  shared_counter *sc = mp_test_shared_map(sizeof *sc);
  assert_rc(mp_lock_init(&sc->lock), 0);
  mp_test_signal_open(&g_held);
  pid_t pid = mp_test_fork(hold_forever, &sc->lock);
  assert_true(mp_test_signal_wait(&g_held, mp_test_slack(30)));
  kill_and_reap(pid);
  assert_rc(mp_lock_acquire(&sc->lock, mp_test_slack(10)), MP_EOWNERDEAD);
  assert_rc(mp_lock_release(&sc->lock), 0);
  assert_rc(mp_lock_destroy(&sc->lock), 0);
  mp_test_signal_close(&g_held);
  munmap(sc, sizeof *sc);
}

/* Freeing a lock the caller holds gives it back first. */
static int hold_then_free(void *arg) {
  (void)arg;
  mp_lock *lock;
  if (mp_lock_open(&lock, g_name) != 0)
    return 1;
  if (mp_lock_acquire(lock, 0) != 0)
    return 2;
  mp_lock_free(lock);
  mp_test_signal_post(&g_held);
  for (;;)
    pause();
}

static void free_releases_a_held_lock(void **state) {
  (void)state;
  mp_test_name(g_name, sizeof g_name, "lock-free-held");
  mp_sync_opts o = {.name = g_name};
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, &o), 0);
  mp_test_signal_open(&g_held);
  pid_t pid = mp_test_fork(hold_then_free, NULL);
  assert_true(mp_test_signal_wait(&g_held, mp_test_slack(30)));
  /* The child lives on, but no longer holds the lock. */
  assert_rc(mp_lock_acquire(lock, 0), 0);
  assert_rc(mp_lock_release(lock), 0);
  kill_and_reap(pid);
  mp_test_signal_close(&g_held);
  mp_lock_free(lock);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(new_acquire_release_free),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(uninitialised_memory_is_einval),
    cmocka_unit_test(bad_names),
    cmocka_unit_test(named_exists_and_missing),
    cmocka_unit_test(open_garbage_is_ecorrupt),
    cmocka_unit_test(open_scribbled_is_ecorrupt),
    cmocka_unit_test(open_other_type_is_ecorrupt),
    cmocka_unit_test(destroy_rules),
    cmocka_unit_test(relock_is_edeadlk),
    cmocka_unit_test(release_unheld_is_eperm),
    cmocka_unit_test(other_thread_holds),
    cmocka_unit_test(hundred_threads_decrement_to_zero),
    cmocka_unit_test(processes_count_under_anonymous_lock),
    cmocka_unit_test(processes_count_under_in_place_lock),
    cmocka_unit_test(named_lock_from_child),
    cmocka_unit_test(killed_holder_gives_eownerdead),
    cmocka_unit_test(holder_killed_while_we_wait),
    cmocka_unit_test(holder_thread_exit_gives_eownerdead),
    cmocka_unit_test(killed_holder_of_in_place_lock),
    cmocka_unit_test(free_releases_a_held_lock),
};

MP_TEST_MAIN(tests)
