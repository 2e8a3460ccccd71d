/* test_semaphore.c - Semaphore and BoundedSemaphore: counting, the bound,
 * overflow, timeouts, wake-ups between threads and processes, the three
 * homes, bad arguments, and what a dead process does and does not cost
 * (G-SEM-1).
 *
 * Forked children never call cmocka: they report through their exit
 * status (0 = fine, other values name the step that failed). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- helpers --------------------------------------------------------- */

/* wait_sleeping waits until task tid (a thread of ours, or a process) is
 * asleep in the kernel, which in these cases means inside the futex wait. */
static void wait_sleeping(pid_t tid, double timeout) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
  double end = mp_test_now() + timeout;
  while (mp_test_now() < end) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    if (paren != NULL && paren[2] == 'S')
      return;
    usleep(1000);
  }
  fail_msg("task %d never went to sleep", (int)tid);
}

static void kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
}

/* ---- counting ---------------------------------------------------------- */

static void counts_down_and_up(void **state) {
  (void)state;
  mp_semaphore *sem;
  assert_rc(mp_semaphore_new(&sem, 2, NULL), 0);
  assert_int_equal(mp_semaphore_get_value(sem), 2);
  assert_rc(mp_semaphore_acquire(sem, MP_FOREVER), 0);
  assert_rc(mp_semaphore_acquire(sem, 0), 0);
  assert_int_equal(mp_semaphore_get_value(sem), 0);
  assert_rc(mp_semaphore_acquire(sem, 0), MP_EAGAIN);
  /* Unbounded: releases may exceed the initial value. */
  for (int i = 0; i < 5; i++)
    assert_rc(mp_semaphore_release(sem), 0);
  assert_int_equal(mp_semaphore_get_value(sem), 5);
  mp_semaphore_free(sem);
  mp_semaphore_free(NULL);
}

static void bounded_refuses_release_past_bound(void **state) {
  (void)state;
  mp_semaphore *sem;
  assert_rc(mp_bounded_semaphore_new(&sem, 2, NULL), 0);
  assert_rc(mp_semaphore_release(sem), MP_EVALUE);
  assert_rc(mp_semaphore_acquire(sem, 0), 0);
  assert_rc(mp_semaphore_release(sem), 0);
  assert_rc(mp_semaphore_release(sem), MP_EVALUE);
  assert_int_equal(mp_semaphore_get_value(sem), 2);
  mp_semaphore_free(sem);
  /* In place, the same. */
  mp_semaphore in;
  assert_rc(mp_semaphore_init(&in, 0, 1), 0);
  assert_rc(mp_semaphore_release(&in), MP_EVALUE);
  assert_rc(mp_semaphore_destroy(&in), 0);
}

static void overflow_and_value_limits(void **state) {
  (void)state;
  mp_semaphore *sem;
  assert_rc(mp_semaphore_new(&sem, (unsigned)INT32_MAX + 1u, NULL), MP_EINVAL);
  assert_rc(mp_semaphore_new(&sem, INT32_MAX, NULL), 0);
  assert_rc(mp_semaphore_release(sem), MP_EOVERFLOW);
  assert_int_equal(mp_semaphore_get_value(sem), INT32_MAX);
  mp_semaphore_free(sem);
  mp_semaphore in;
  assert_rc(mp_semaphore_init(&in, (unsigned)INT32_MAX + 1u, 0), MP_EINVAL);
}

static void bad_arguments(void **state) {
  (void)state;
  assert_rc(mp_semaphore_new(NULL, 1, NULL), MP_EINVAL);
  assert_rc(mp_bounded_semaphore_new(NULL, 1, NULL), MP_EINVAL);
  assert_rc(mp_semaphore_init(NULL, 1, 0), MP_EINVAL);
  assert_rc(mp_semaphore_acquire(NULL, 0), MP_EINVAL);
  assert_rc(mp_semaphore_release(NULL), MP_EINVAL);
  assert_rc(mp_semaphore_get_value(NULL), MP_EINVAL);
  assert_rc(mp_semaphore_destroy(NULL), MP_EINVAL);
  mp_semaphore zero, junk;
  memset(&zero, 0, sizeof zero);
  memset(&junk, 0x33, sizeof junk);
  mp_semaphore *bad[] = {&zero, &junk};
  for (int i = 0; i < 2; i++) {
    assert_rc(mp_semaphore_acquire(bad[i], 0), MP_EINVAL);
    assert_rc(mp_semaphore_acquire(bad[i], 0.1), MP_EINVAL);
    assert_rc(mp_semaphore_release(bad[i]), MP_EINVAL);
    assert_rc(mp_semaphore_get_value(bad[i]), MP_EINVAL);
    assert_rc(mp_semaphore_destroy(bad[i]), MP_EINVAL);
  }
  _Alignas(8) unsigned char buf[MP_SEMAPHORE_SIZE + 8];
  assert_rc(mp_semaphore_init((mp_semaphore *)(buf + 2), 1, 0), MP_EINVAL);
}

static void names(void **state) {
  (void)state;
  mp_semaphore *a, *b;
  mp_sync_opts bad = {.name = "bad name"};
  assert_rc(mp_semaphore_new(&a, 1, &bad), MP_EINVAL);
  assert_rc(mp_semaphore_open(&a, "bad name"), MP_EINVAL);
  char longname[MP_SYNC_NAME_MAX + 2];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  mp_sync_opts toolong = {.name = longname};
  assert_rc(mp_bounded_semaphore_new(&a, 1, &toolong), MP_ENAMETOOLONG);
  char name[64];
  mp_test_name(name, sizeof name, "sem-names");
  mp_sync_opts o = {.name = name};
  assert_rc(mp_semaphore_open(&a, name), MP_ENOENT);
  assert_rc(mp_bounded_semaphore_new(&a, 3, &o), 0);
  assert_rc(mp_semaphore_new(&b, 1, &o), MP_EEXIST);
  assert_rc(mp_semaphore_open(&b, name), 0);
  assert_rc(mp_semaphore_acquire(b, 0), 0);
  assert_int_equal(mp_semaphore_get_value(a), 2);
  /* The bound travels with the object. */
  assert_rc(mp_semaphore_release(b), 0);
  assert_rc(mp_semaphore_release(b), MP_EVALUE);
  mp_semaphore_free(b);
  mp_semaphore_free(a);
  assert_rc(mp_semaphore_open(&a, name), MP_ENOENT);
}

static void open_corrupt(void **state) {
  (void)state;
  char name[64], path[512];
  mp_test_name(name, sizeof name, "sem-corrupt");
  snprintf(path, sizeof path, "/dev/shm/mp_%s", name);
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  unsigned char junk[65536];
  assert_true(page <= sizeof junk);
  for (size_t i = 0; i < page; i++)
    junk[i] = (unsigned char)(i ^ 0x5c);
  assert_int_equal(write(fd, junk, page), (ssize_t)page);
  close(fd);
  mp_semaphore *sem;
  assert_rc(mp_semaphore_open(&sem, name), MP_ECORRUPT);
  unlink(path);
}

/* ---- timeouts and wake-ups --------------------------------------------- */

static void timeout_expires(void **state) {
  (void)state;
  mp_semaphore *sem;
  assert_rc(mp_semaphore_new(&sem, 0, NULL), 0);
  double t0 = mp_test_now();
  assert_rc(mp_semaphore_acquire(sem, 0.2), MP_ETIMEDOUT);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.19);
  assert_true(took < mp_test_slack(5));
  assert_int_equal(mp_semaphore_get_value(sem), 0);
  mp_semaphore_free(sem);
}

typedef struct waiter {
  mp_semaphore *sem;
  double timeout;
  _Atomic pid_t tid;
  int rc;
} waiter;

static void *acquire_one(void *arg) {
  waiter *w = arg;
  atomic_store(&w->tid, (pid_t)syscall(SYS_gettid));
  w->rc = mp_semaphore_acquire(w->sem, w->timeout);
  return NULL;
}

static pid_t start_waiter(pthread_t *t, waiter *w) {
  assert_int_equal(pthread_create(t, NULL, acquire_one, w), 0);
  while (atomic_load(&w->tid) == 0)
    usleep(100);
  return atomic_load(&w->tid);
}

static void release_wakes_a_waiting_thread(void **state) {
  (void)state;
  waiter w = {.timeout = mp_test_slack(30)};
  assert_rc(mp_semaphore_new(&w.sem, 0, NULL), 0);
  pthread_t t;
  wait_sleeping(start_waiter(&t, &w), mp_test_slack(30));
  assert_rc(mp_semaphore_release(w.sem), 0);
  pthread_join(t, NULL);
  assert_rc(w.rc, 0);
  assert_int_equal(mp_semaphore_get_value(w.sem), 0);
  mp_semaphore_free(w.sem);
}

static void destroy_with_waiter_is_ebusy(void **state) {
  (void)state;
  mp_semaphore sem;
  assert_rc(mp_semaphore_init(&sem, 0, 0), 0);
  waiter w = {.sem = &sem, .timeout = mp_test_slack(30)};
  pthread_t t;
  wait_sleeping(start_waiter(&t, &w), mp_test_slack(30));
  assert_rc(mp_semaphore_destroy(&sem), MP_EBUSY);
  assert_rc(mp_semaphore_release(&sem), 0);
  pthread_join(t, NULL);
  assert_rc(w.rc, 0);
  assert_rc(mp_semaphore_destroy(&sem), 0);
  assert_rc(mp_semaphore_acquire(&sem, 0), MP_EINVAL);
}

/* The seeds' Semaphore(5): never more than five inside. */
typedef struct room {
  mp_semaphore *sem;
  atomic_int inside, most, errors;
} room;

static void *visit(void *arg) {
  room *r = arg;
  for (int i = 0; i < 100; i++) {
    if (mp_semaphore_acquire(r->sem, mp_test_slack(30)) != 0) {
      atomic_fetch_add(&r->errors, 1);
      continue;
    }
    int now = atomic_fetch_add(&r->inside, 1) + 1;
    int most = atomic_load(&r->most);
    while (now > most && !atomic_compare_exchange_weak(&r->most, &most, now))
      ;
    sched_yield();
    atomic_fetch_sub(&r->inside, 1);
    if (mp_semaphore_release(r->sem) != 0)
      atomic_fetch_add(&r->errors, 1);
  }
  return NULL;
}

static void five_at_most_inside(void **state) {
  (void)state;
  enum { THREADS = 20 };
  room r = {0};
  assert_rc(mp_bounded_semaphore_new(&r.sem, 5, NULL), 0);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, visit, &r), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(atomic_load(&r.errors), 0);
  assert_true(atomic_load(&r.most) >= 1);
  assert_true(atomic_load(&r.most) <= 5);
  assert_int_equal(mp_semaphore_get_value(r.sem), 5);
  mp_semaphore_free(r.sem);
}

/* ---- processes --------------------------------------------------------- */

static mp_semaphore *g_sem;
static char g_name[64];
static mp_test_signal g_sig;

static int take_then_give_back(void *arg) {
  (void)arg;
  /* Waits until the parent releases one. */
  if (mp_semaphore_acquire(g_sem, mp_test_slack(30)) != 0)
    return 1;
  if (mp_semaphore_release(g_sem) != 0)
    return 2;
  return 0;
}

static void processes_anonymous_and_in_place(void **state) {
  (void)state;
  mp_semaphore *anon;
  assert_rc(mp_semaphore_new(&anon, 0, NULL), 0);
  mp_semaphore *in = mp_test_shared_map(sizeof *in);
  assert_rc(mp_semaphore_init(in, 0, 0), 0);
  mp_semaphore *sems[] = {anon, in};
  for (int i = 0; i < 2; i++) {
    g_sem = sems[i];
    pid_t pids[3];
    for (int k = 0; k < 3; k++)
      pids[k] = mp_test_fork(take_then_give_back, NULL);
    /* One unit passes through all three children in turn. */
    assert_rc(mp_semaphore_release(g_sem), 0);
    for (int k = 0; k < 3; k++)
      mp_test_wait_exit(pids[k], 0, mp_test_slack(60));
    assert_int_equal(mp_semaphore_get_value(g_sem), 1);
  }
  assert_rc(mp_semaphore_destroy(in), 0);
  munmap(in, sizeof *in);
  mp_semaphore_free(anon);
}

static int child_by_name(void *arg) {
  (void)arg;
  mp_semaphore *sem;
  if (mp_semaphore_open(&sem, g_name) != 0)
    return 1;
  if (mp_semaphore_acquire(sem, 0) != MP_EAGAIN)
    return 2;
  mp_test_signal_post(&g_sig);
  if (mp_semaphore_acquire(sem, mp_test_slack(30)) != 0)
    return 3;
  mp_semaphore_free(sem);
  return 0;
}

static void named_from_child(void **state) {
  (void)state;
  mp_test_name(g_name, sizeof g_name, "sem-child");
  mp_sync_opts o = {.name = g_name};
  mp_semaphore *sem;
  assert_rc(mp_semaphore_new(&sem, 0, &o), 0);
  mp_test_signal_open(&g_sig);
  pid_t pid = mp_test_fork(child_by_name, NULL);
  assert_true(mp_test_signal_wait(&g_sig, mp_test_slack(30)));
  assert_rc(mp_semaphore_release(sem), 0);
  mp_test_wait_exit(pid, 0, mp_test_slack(30));
  assert_int_equal(mp_semaphore_get_value(sem), 0);
  mp_test_signal_close(&g_sig);
  mp_semaphore_free(sem);
}

/* ---- dead processes: G-SEM-1 ------------------------------------------- */

static int wait_forever(void *arg) {
  (void)arg;
  mp_test_signal_post(&g_sig);
  mp_semaphore_acquire(g_sem, MP_FOREVER);
  return 9; /* never: the parent kills us first */
}

static void killed_waiter_costs_nothing(void **state) { /* G-SEM-1 */
  (void)state;
  assert_rc(mp_semaphore_new(&g_sem, 0, NULL), 0);
  mp_test_signal_open(&g_sig);
  pid_t pid = mp_test_fork(wait_forever, NULL);
  assert_true(mp_test_signal_wait(&g_sig, mp_test_slack(30)));
  wait_sleeping(pid, mp_test_slack(30));
  kill_and_reap(pid);
  /* The unit is not lost to the dead waiter... */
  assert_rc(mp_semaphore_release(g_sem), 0);
  assert_int_equal(mp_semaphore_get_value(g_sem), 1);
  assert_rc(mp_semaphore_acquire(g_sem, 0), 0);
  /* ...and a live waiter is still woken. */
  waiter w = {.sem = g_sem, .timeout = mp_test_slack(30)};
  pthread_t t;
  wait_sleeping(start_waiter(&t, &w), mp_test_slack(30));
  assert_rc(mp_semaphore_release(g_sem), 0);
  pthread_join(t, NULL);
  assert_rc(w.rc, 0);
  mp_test_signal_close(&g_sig);
  mp_semaphore_free(g_sem);
}

static int take_and_die(void *arg) {
  (void)arg;
  if (mp_semaphore_acquire(g_sem, 0) != 0)
    return 1;
  mp_test_signal_post(&g_sig);
  for (;;)
    pause();
}

/* A semaphore has no owner: units a dead process took are gone, as with
 * POSIX and Python semaphores. What remains works. */
static void killed_holder_loses_its_unit(void **state) { /* G-SEM-1 */
  (void)state;
  assert_rc(mp_bounded_semaphore_new(&g_sem, 2, NULL), 0);
  mp_test_signal_open(&g_sig);
  pid_t pid = mp_test_fork(take_and_die, NULL);
  assert_true(mp_test_signal_wait(&g_sig, mp_test_slack(30)));
  kill_and_reap(pid);
  assert_int_equal(mp_semaphore_get_value(g_sem), 1);
  assert_rc(mp_semaphore_acquire(g_sem, 0), 0);
  assert_rc(mp_semaphore_acquire(g_sem, 0.05), MP_ETIMEDOUT);
  assert_rc(mp_semaphore_release(g_sem), 0);
  assert_rc(mp_semaphore_release(g_sem), 0);
  assert_rc(mp_semaphore_release(g_sem), MP_EVALUE);
  mp_test_signal_close(&g_sig);
  mp_semaphore_free(g_sem);
}

/* A count over INT32_MAX can only have been written by another program
 * (the count word is the first after the 8-byte head): every call says
 * MP_ECORRUPT instead of handing out a negative value or taking a unit. */
static void overwritten_count_is_corrupt(void **state) {
  (void)state;
  mp_semaphore sem;
  assert_rc(mp_semaphore_init(&sem, 1, 0), 0);
  uint32_t bad = 0x80000005u;
  memcpy(sem.opaque + 8, &bad, sizeof bad);
  assert_rc(mp_semaphore_get_value(&sem), MP_ECORRUPT);
  assert_rc(mp_semaphore_acquire(&sem, 0), MP_ECORRUPT);
  assert_rc(mp_semaphore_acquire(&sem, 0.01), MP_ECORRUPT);
  assert_rc(mp_semaphore_release(&sem), MP_ECORRUPT);
  assert_non_null(strstr(mp_error_detail(), "INT32_MAX"));
  /* Written back to a valid count, it works again. */
  uint32_t one = 1;
  memcpy(sem.opaque + 8, &one, sizeof one);
  assert_rc(mp_semaphore_acquire(&sem, 0), 0);
  assert_int_equal(mp_semaphore_get_value(&sem), 0);
  assert_rc(mp_semaphore_destroy(&sem), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(counts_down_and_up),
    cmocka_unit_test(bounded_refuses_release_past_bound),
    cmocka_unit_test(overflow_and_value_limits),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(names),
    cmocka_unit_test(open_corrupt),
    cmocka_unit_test(timeout_expires),
    cmocka_unit_test(release_wakes_a_waiting_thread),
    cmocka_unit_test(destroy_with_waiter_is_ebusy),
    cmocka_unit_test(five_at_most_inside),
    cmocka_unit_test(processes_anonymous_and_in_place),
    cmocka_unit_test(named_from_child),
    cmocka_unit_test(killed_waiter_costs_nothing),
    cmocka_unit_test(killed_holder_loses_its_unit),
    cmocka_unit_test(overwritten_count_is_corrupt),
};

MP_TEST_MAIN(tests)
