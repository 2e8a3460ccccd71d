/* test_condition.c - Condition: its own RLock or a lent Lock/RLock, wait
 * with timeouts, notify(n)/notify_all releasing exactly the waiters that
 * were present, wait_for, the three homes, bad arguments, processes, and
 * the dead: a waiter killed inside wait, and a lock holder killed while
 * others wait (G-COND-1).
 *
 * Forked children never call cmocka: they report through their exit
 * status (0 = fine, other values name the step that failed). Helper
 * threads record what they saw; the case checks it after joining. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- helpers --------------------------------------------------------- */

/* Shared between the case, its threads and its children. */
typedef struct board {
  int entered; /* waiters that got as far as wait; under the lock */
  int flag;    /* the state a predicate looks at; under the lock */
  atomic_int woke;
} board;

/* until_entered waits until n waiters are inside wait: they count
 * themselves under the lock just before waiting, and wait releases the
 * lock only once the waiter is registered. */
static void until_entered(mp_condition *c, board *b, int n) {
  double end = mp_test_now() + mp_test_slack(30);
  for (;;) {
    assert_rc(mp_condition_acquire(c, mp_test_slack(30)), 0);
    int seen = b->entered;
    assert_rc(mp_condition_release(c), 0);
    if (seen >= n)
      return;
    if (mp_test_now() > end)
      fail_msg("only %d of %d waiters arrived", seen, n);
    usleep(1000);
  }
}

typedef struct waiter {
  mp_condition *cond;
  board *b;
  double timeout;
  int rc;
} waiter;

static void *wait_once(void *arg) {
  waiter *w = arg;
  w->rc = mp_condition_acquire(w->cond, mp_test_slack(30));
  if (w->rc != 0)
    return NULL;
  w->b->entered++;
  w->rc = mp_condition_wait(w->cond, w->timeout);
  atomic_fetch_add(&w->b->woke, 1);
  mp_condition_release(w->cond);
  return NULL;
}

static void start_waiters(pthread_t *t, waiter *w, int n, mp_condition *c,
                          board *b) {
  for (int i = 0; i < n; i++) {
    w[i] = (waiter){.cond = c, .b = b, .timeout = mp_test_slack(30)};
    assert_int_equal(pthread_create(&t[i], NULL, wait_once, &w[i]), 0);
  }
  until_entered(c, b, n);
}

static void until_woke(board *b, int n) {
  double end = mp_test_now() + mp_test_slack(30);
  while (atomic_load(&b->woke) < n) {
    if (mp_test_now() > end)
      fail_msg("only %d of %d waiters woke", atomic_load(&b->woke), n);
    usleep(1000);
  }
}

static int flag_is_set(void *arg) {
  return ((board *)arg)->flag != 0;
}

/* ---- basics ------------------------------------------------------------ */

static void wait_releases_and_reacquires(void **state) {
  (void)state;
  mp_condition *c;
  assert_rc(mp_condition_new(&c, NULL), 0);
  /* The own lock is an RLock: take it twice. */
  assert_rc(mp_condition_acquire(c, MP_FOREVER), 0);
  assert_rc(mp_condition_acquire(c, 0), 0);
  assert_rc(mp_condition_wait(c, 0), MP_EAGAIN);
  double t0 = mp_test_now();
  assert_rc(mp_condition_wait(c, 0.2), MP_ETIMEDOUT);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.19);
  assert_true(took < mp_test_slack(5));
  /* Both levels are back. */
  assert_rc(mp_condition_release(c), 0);
  assert_rc(mp_condition_release(c), 0);
  assert_rc(mp_condition_release(c), MP_EPERM);
  mp_condition_free(c);
  mp_condition_free(NULL);
}

static void not_holding_is_eperm(void **state) {
  (void)state;
  mp_condition *c;
  board b = {0};
  assert_rc(mp_condition_new(&c, NULL), 0);
  assert_rc(mp_condition_wait(c, 0.1), MP_EPERM);
  assert_rc(mp_condition_wait_for(c, flag_is_set, &b, 0.1), MP_EPERM);
  assert_rc(mp_condition_notify(c, 1), MP_EPERM);
  assert_rc(mp_condition_notify_all(c), MP_EPERM);
  assert_rc(mp_condition_release(c), MP_EPERM);
  mp_condition_free(c);
}

static void bad_arguments(void **state) {
  (void)state;
  mp_condition *c;
  assert_rc(mp_condition_new(NULL, NULL), MP_EINVAL);
  assert_rc(mp_condition_init(NULL, NULL), MP_EINVAL);
  assert_rc(mp_condition_destroy(NULL), MP_EINVAL);
  assert_rc(mp_condition_acquire(NULL, 0), MP_EINVAL);
  assert_rc(mp_condition_release(NULL), MP_EINVAL);
  assert_rc(mp_condition_wait(NULL, 0), MP_EINVAL);
  assert_rc(mp_condition_wait_for(NULL, flag_is_set, NULL, 0), MP_EINVAL);
  assert_rc(mp_condition_notify(NULL, 1), MP_EINVAL);
  assert_rc(mp_condition_notify_all(NULL), MP_EINVAL);
  mp_condition zero, junk;
  memset(&zero, 0, sizeof zero);
  memset(&junk, 0x77, sizeof junk);
  mp_condition *bad[] = {&zero, &junk};
  for (int i = 0; i < 2; i++) {
    assert_rc(mp_condition_acquire(bad[i], 0), MP_EINVAL);
    assert_rc(mp_condition_wait(bad[i], 0), MP_EINVAL);
    assert_rc(mp_condition_notify(bad[i], 1), MP_EINVAL);
    assert_rc(mp_condition_destroy(bad[i]), MP_EINVAL);
  }
  /* Lending both kinds, or a lock that is not one, is refused. */
  mp_lock *lock;
  mp_rlock *rlock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  assert_rc(mp_rlock_new(&rlock, NULL), 0);
  mp_condition_opts both = {.lock = lock, .rlock = rlock};
  assert_rc(mp_condition_new(&c, &both), MP_EINVAL);
  mp_lock notlock;
  memset(&notlock, 0, sizeof notlock);
  mp_condition_opts bogus = {.lock = &notlock};
  assert_rc(mp_condition_new(&c, &bogus), MP_EINVAL);
  mp_condition_opts wrongtype = {.rlock = (mp_rlock *)lock};
  assert_rc(mp_condition_new(&c, &wrongtype), MP_EINVAL);
  /* A NULL predicate. */
  assert_rc(mp_condition_new(&c, NULL), 0);
  assert_rc(mp_condition_acquire(c, 0), 0);
  assert_rc(mp_condition_wait_for(c, NULL, NULL, 0), MP_EINVAL);
  assert_rc(mp_condition_release(c), 0);
  mp_condition_free(c);
  _Alignas(8) unsigned char buf[MP_CONDITION_SIZE + 8];
  assert_rc(mp_condition_init((mp_condition *)(buf + 4), NULL), MP_EINVAL);
  mp_lock_free(lock);
  mp_rlock_free(rlock);
}

static void names(void **state) {
  (void)state;
  mp_condition *a, *b;
  mp_condition_opts bad = {.name = "x y"};
  assert_rc(mp_condition_new(&a, &bad), MP_EINVAL);
  char longname[MP_SYNC_NAME_MAX + 2];
  memset(longname, 'c', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  mp_condition_opts toolong = {.name = longname};
  assert_rc(mp_condition_new(&a, &toolong), MP_ENAMETOOLONG);
  char name[64];
  mp_test_name(name, sizeof name, "cond-names");
  mp_condition_opts o = {.name = name};
  assert_rc(mp_condition_open(&a, name), MP_ENOENT);
  assert_rc(mp_condition_new(&a, &o), 0);
  assert_rc(mp_condition_new(&b, &o), MP_EEXIST);
  assert_rc(mp_condition_open(&b, name), 0);
  /* The same lock through both handles. */
  assert_rc(mp_condition_acquire(a, 0), 0);
  assert_rc(mp_condition_release(b), 0);
  mp_condition_free(b);
  mp_condition_free(a);
  assert_rc(mp_condition_open(&a, name), MP_ENOENT);
}

static void named_with_lent_lock_cannot_be_opened(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "cond-lent");
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  mp_condition_opts o = {.name = name, .lock = lock};
  mp_condition *c, *opened;
  assert_rc(mp_condition_new(&c, &o), 0);
  assert_rc(mp_condition_open(&opened, name), MP_EINVAL);
  /* The creator uses it normally. */
  assert_rc(mp_lock_acquire(lock, 0), 0);
  assert_rc(mp_condition_notify(c, 1), 0);
  assert_rc(mp_condition_release(c), 0);
  mp_condition_free(c);
  mp_lock_free(lock);
}

static void open_corrupt(void **state) {
  (void)state;
  char name[64], path[512];
  mp_test_name(name, sizeof name, "cond-corrupt");
  snprintf(path, sizeof path, "/dev/shm/mp_%s", name);
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (size_t i = 0; i < page; i += 8) {
    uint64_t junk = 0x9e3779b97f4a7c15ull * (i + 1);
    assert_int_equal(write(fd, &junk, 8), 8);
  }
  close(fd);
  mp_condition *c;
  assert_rc(mp_condition_open(&c, name), MP_ECORRUPT);
  unlink(path);
}

static void destroy_rules(void **state) {
  (void)state;
  mp_condition c;
  board b = {0};
  assert_rc(mp_condition_init(&c, NULL), 0);
  pthread_t t;
  waiter w;
  start_waiters(&t, &w, 1, &c, &b);
  assert_rc(mp_condition_destroy(&c), MP_EBUSY);
  assert_rc(mp_condition_acquire(&c, mp_test_slack(30)), 0);
  assert_rc(mp_condition_notify(&c, 1), 0);
  assert_rc(mp_condition_release(&c), 0);
  pthread_join(t, NULL);
  assert_rc(w.rc, 0);
  /* Held: busy too. */
  assert_rc(mp_condition_acquire(&c, 0), 0);
  assert_rc(mp_condition_destroy(&c), MP_EBUSY);
  assert_rc(mp_condition_release(&c), 0);
  assert_rc(mp_condition_destroy(&c), 0);
  assert_rc(mp_condition_acquire(&c, 0), MP_EINVAL);
}

/* ---- notify ------------------------------------------------------------ */

static void notify_one_releases_exactly_one(void **state) {
  (void)state;
  enum { N = 3 };
  mp_condition *c;
  board b = {0};
  assert_rc(mp_condition_new(&c, NULL), 0);
  pthread_t t[N];
  waiter w[N];
  start_waiters(t, w, N, c, &b);
  assert_rc(mp_condition_acquire(c, mp_test_slack(30)), 0);
  assert_rc(mp_condition_notify(c, 1), 0);
  assert_rc(mp_condition_release(c), 0);
  until_woke(&b, 1);
  usleep(200 * 1000);
  assert_int_equal(atomic_load(&b.woke), 1);
  assert_rc(mp_condition_acquire(c, mp_test_slack(30)), 0);
  assert_rc(mp_condition_notify(c, 1), 0);
  assert_rc(mp_condition_release(c), 0);
  until_woke(&b, 2);
  usleep(100 * 1000);
  assert_int_equal(atomic_load(&b.woke), 2);
  assert_rc(mp_condition_acquire(c, mp_test_slack(30)), 0);
  assert_rc(mp_condition_notify_all(c), 0);
  assert_rc(mp_condition_release(c), 0);
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    assert_rc(w[i].rc, 0);
  }
  mp_condition_free(c);
}

static void notify_more_than_waiting_leaves_nothing_behind(void **state) {
  (void)state;
  mp_condition *c;
  board b = {0};
  assert_rc(mp_condition_new(&c, NULL), 0);
  /* No one waits: the notify is not remembered. */
  assert_rc(mp_condition_acquire(c, 0), 0);
  assert_rc(mp_condition_notify(c, 3), 0);
  assert_rc(mp_condition_notify_all(c), 0);
  assert_rc(mp_condition_wait(c, 0.05), MP_ETIMEDOUT);
  assert_rc(mp_condition_release(c), 0);
  pthread_t t[2];
  waiter w[2];
  start_waiters(t, w, 2, c, &b);
  assert_rc(mp_condition_acquire(c, mp_test_slack(30)), 0);
  assert_rc(mp_condition_notify(c, 5), 0);
  assert_rc(mp_condition_release(c), 0);
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    assert_rc(w[i].rc, 0);
  }
  /* The three extra were never issued. */
  assert_rc(mp_condition_acquire(c, 0), 0);
  assert_rc(mp_condition_wait(c, 0.05), MP_ETIMEDOUT);
  assert_rc(mp_condition_release(c), 0);
  mp_condition_free(c);
}

/* A notify is for the waiters present: one that comes later, even the
 * notifier itself, does not take it. */
static void later_waiter_does_not_take_earlier_notify(void **state) {
  (void)state;
  mp_condition *c;
  board b = {0};
  assert_rc(mp_condition_new(&c, NULL), 0);
  pthread_t t;
  waiter w;
  start_waiters(&t, &w, 1, c, &b);
  assert_rc(mp_condition_acquire(c, mp_test_slack(30)), 0);
  assert_rc(mp_condition_notify(c, 1), 0);
  assert_rc(mp_condition_wait(c, 0.2), MP_ETIMEDOUT);
  assert_rc(mp_condition_release(c), 0);
  pthread_join(t, NULL);
  assert_rc(w.rc, 0);
  mp_condition_free(c);
}

/* A barrier built on a condition, as threading.Barrier is: the last
 * arrival notifies all, and the fast ones come straight back to wait for
 * the next round. Every waiter of a round must be released by its
 * notify_all, or the next round never completes. */
typedef struct rounds {
  mp_condition *c;
  int parties, arrived, generation, errors;
} rounds;

static void *run_rounds(void *arg) {
  rounds *r = arg;
  for (int round = 0; round < 200; round++) {
    if (mp_condition_acquire(r->c, mp_test_slack(30)) != 0) {
      __atomic_add_fetch(&r->errors, 1, __ATOMIC_RELAXED);
      return NULL;
    }
    int gen = r->generation;
    if (++r->arrived == r->parties) {
      r->arrived = 0;
      r->generation++;
      mp_condition_notify_all(r->c);
    } else {
      while (r->generation == gen) {
        int rc = mp_condition_wait(r->c, mp_test_slack(20));
        if (rc != 0) {
          __atomic_add_fetch(&r->errors, 1, __ATOMIC_RELAXED);
          r->generation++; /* let the others out */
          mp_condition_notify_all(r->c);
          break;
        }
      }
    }
    mp_condition_release(r->c);
  }
  return NULL;
}

static void notify_all_releases_every_present_waiter(void **state) {
  (void)state;
  enum { N = 4 };
  rounds r = {.parties = N};
  assert_rc(mp_condition_new(&r.c, NULL), 0);
  pthread_t t[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(pthread_create(&t[i], NULL, run_rounds, &r), 0);
  for (int i = 0; i < N; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(r.errors, 0);
  assert_int_equal(r.generation, 200);
  mp_condition_free(r.c);
}

/* ---- wait_for ---------------------------------------------------------- */

typedef struct setter {
  mp_condition *c;
  board *b;
} setter;

static void *set_flag_later(void *arg) {
  setter *s = arg;
  usleep(50 * 1000);
  if (mp_condition_acquire(s->c, mp_test_slack(30)) == 0) {
    s->b->flag = 1;
    mp_condition_notify_all(s->c);
    mp_condition_release(s->c);
  }
  return NULL;
}

/* True from its second call on. */
static int second_call(void *arg) {
  return ++*(int *)arg >= 2;
}

static void wait_for_predicate(void **state) {
  (void)state;
  mp_condition *c;
  board b = {0};
  assert_rc(mp_condition_new(&c, NULL), 0);
  assert_rc(mp_condition_acquire(c, 0), 0);
  /* False, and it stays false: timeouts. */
  assert_rc(mp_condition_wait_for(c, flag_is_set, &b, 0), MP_EAGAIN);
  double t0 = mp_test_now();
  assert_rc(mp_condition_wait_for(c, flag_is_set, &b, 0.2), MP_ETIMEDOUT);
  assert_true(mp_test_now() - t0 >= 0.19);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  /* True already: no wait at all. */
  b.flag = 1;
  assert_rc(mp_condition_wait_for(c, flag_is_set, &b, 0), 0);
  b.flag = 0;
  /* Made true by another thread. */
  setter s = {c, &b};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, set_flag_later, &s), 0);
  assert_rc(mp_condition_wait_for(c, flag_is_set, &b, mp_test_slack(30)), 0);
  assert_int_equal(b.flag, 1);
  assert_rc(mp_condition_release(c), 0);
  pthread_join(t, NULL);
  /* As Python, the predicate has the last word after a timeout. */
  int calls = 0;
  assert_rc(mp_condition_acquire(c, 0), 0);
  assert_rc(mp_condition_wait_for(c, second_call, &calls, 0), 0);
  assert_int_equal(calls, 2);
  assert_rc(mp_condition_release(c), 0);
  mp_condition_free(c);
}

/* ---- lent locks -------------------------------------------------------- */

typedef struct lent_waiter {
  mp_lock *lock;
  mp_condition *c;
  board *b;
  int rc;
} lent_waiter;

static void *wait_with_lent_lock(void *arg) {
  lent_waiter *w = arg;
  w->rc = mp_lock_acquire(w->lock, mp_test_slack(30));
  if (w->rc != 0)
    return NULL;
  w->b->entered++;
  w->rc = mp_condition_wait_for(w->c, flag_is_set, w->b, mp_test_slack(30));
  mp_lock_release(w->lock);
  return NULL;
}

static void lent_lock(void **state) {
  (void)state;
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  mp_condition_opts o = {.lock = lock};
  mp_condition *c;
  board b = {0};
  assert_rc(mp_condition_new(&c, &o), 0);
  /* The condition's acquire is the lock's. */
  assert_rc(mp_condition_acquire(c, 0), 0);
  assert_int_equal(mp_lock_locked(lock), 1);
  assert_rc(mp_condition_acquire(c, 0), MP_EDEADLK);
  assert_rc(mp_lock_release(lock), 0);
  assert_rc(mp_condition_release(c), MP_EPERM);
  lent_waiter w = {lock, c, &b, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, wait_with_lent_lock, &w), 0);
  until_entered(c, &b, 1);
  assert_rc(mp_lock_acquire(lock, mp_test_slack(30)), 0);
  b.flag = 1;
  assert_rc(mp_condition_notify(c, 1), 0);
  assert_rc(mp_lock_release(lock), 0);
  pthread_join(t, NULL);
  assert_rc(w.rc, 0);
  mp_condition_free(c);
  mp_lock_free(lock);
}

static void lent_rlock_keeps_depth(void **state) {
  (void)state;
  mp_rlock rlock;
  assert_rc(mp_rlock_init(&rlock), 0);
  mp_condition_opts o = {.rlock = &rlock};
  mp_condition c;
  assert_rc(mp_condition_init(&c, &o), 0);
  assert_rc(mp_rlock_acquire(&rlock, 0), 0);
  assert_rc(mp_rlock_acquire(&rlock, 0), 0);
  assert_rc(mp_rlock_acquire(&rlock, 0), 0);
  assert_rc(mp_condition_wait(&c, 0.05), MP_ETIMEDOUT);
  assert_int_equal(mp_rlock_depth(&rlock), 3);
  for (int i = 0; i < 3; i++)
    assert_rc(mp_rlock_release(&rlock), 0);
  assert_rc(mp_condition_destroy(&c), 0);
  /* The lent lock is the caller's: it outlives the condition. */
  assert_rc(mp_rlock_acquire(&rlock, 0), 0);
  assert_rc(mp_rlock_release(&rlock), 0);
  assert_rc(mp_rlock_destroy(&rlock), 0);
}

/* ---- processes --------------------------------------------------------- */

static mp_condition *g_cond;
static board *g_board;
static char g_name[64];
static mp_test_signal g_sig;

static int set_flag_and_notify(void *arg) {
  mp_condition *c = arg ? arg : g_cond;
  if (mp_condition_acquire(c, mp_test_slack(30)) != 0)
    return 1;
  g_board->flag = 1;
  if (mp_condition_notify_all(c) != 0)
    return 2;
  if (mp_condition_release(c) != 0)
    return 3;
  return 0;
}

static void fork_inherited_between_processes(void **state) {
  (void)state;
  assert_rc(mp_condition_new(&g_cond, NULL), 0);
  g_board = mp_test_shared_map(sizeof *g_board);
  assert_rc(mp_condition_acquire(g_cond, 0), 0);
  pid_t pid = mp_test_fork(set_flag_and_notify, NULL);
  assert_rc(mp_condition_wait_for(g_cond, flag_is_set, g_board, mp_test_slack(30)), 0);
  assert_rc(mp_condition_release(g_cond), 0);
  mp_test_wait_exit(pid, 0, mp_test_slack(30));
  munmap(g_board, sizeof *g_board);
  mp_condition_free(g_cond);
}

/* A struct the program shares, with the lock and the condition in it. */
typedef struct shared_struct {
  mp_lock lock;
  mp_condition cond;
  board b;
} shared_struct;

static void in_place_with_lent_lock_between_processes(void **state) {
  (void)state;
  shared_struct *ss = mp_test_shared_map(sizeof *ss);
  assert_rc(mp_lock_init(&ss->lock), 0);
  mp_condition_opts o = {.lock = &ss->lock};
  assert_rc(mp_condition_init(&ss->cond, &o), 0);
  g_board = &ss->b;
  assert_rc(mp_lock_acquire(&ss->lock, 0), 0);
  pid_t pids[2];
  for (int i = 0; i < 2; i++)
    pids[i] = mp_test_fork(set_flag_and_notify, &ss->cond);
  assert_rc(mp_condition_wait_for(&ss->cond, flag_is_set, &ss->b, mp_test_slack(30)),
            0);
  assert_rc(mp_lock_release(&ss->lock), 0);
  for (int i = 0; i < 2; i++)
    mp_test_wait_exit(pids[i], 0, mp_test_slack(30));
  assert_rc(mp_condition_destroy(&ss->cond), 0);
  assert_rc(mp_lock_destroy(&ss->lock), 0);
  munmap(ss, sizeof *ss);
}

static int notify_by_name(void *arg) {
  (void)arg;
  mp_condition *c;
  if (mp_condition_open(&c, g_name) != 0)
    return 1;
  int rc = set_flag_and_notify(c);
  mp_condition_free(c);
  return rc;
}

static void named_from_child(void **state) {
  (void)state;
  mp_test_name(g_name, sizeof g_name, "cond-child");
  mp_condition_opts o = {.name = g_name};
  mp_condition *c;
  assert_rc(mp_condition_new(&c, &o), 0);
  g_board = mp_test_shared_map(sizeof *g_board);
  assert_rc(mp_condition_acquire(c, 0), 0);
  pid_t pid = mp_test_fork(notify_by_name, NULL);
  assert_rc(mp_condition_wait_for(c, flag_is_set, g_board, mp_test_slack(30)), 0);
  assert_rc(mp_condition_release(c), 0);
  mp_test_wait_exit(pid, 0, mp_test_slack(30));
  munmap(g_board, sizeof *g_board);
  mp_condition_free(c);
}

/* ---- the dead: G-COND-1 ------------------------------------------------ */

static int wait_forever(void *arg) {
  (void)arg;
  if (mp_condition_acquire(g_cond, mp_test_slack(30)) != 0)
    return 1;
  g_board->entered++;
  mp_condition_wait(g_cond, MP_FOREVER);
  return 9; /* never: the parent kills us */
}

static void killed_waiter_blocks_nobody(void **state) { /* G-COND-1 */
  (void)state;
  assert_rc(mp_condition_new(&g_cond, NULL), 0);
  g_board = mp_test_shared_map(sizeof *g_board);
  pid_t pid = mp_test_fork(wait_forever, NULL);
  until_entered(g_cond, g_board, 1);
  kill(pid, SIGKILL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  /* Live waiters are still notified, one by one and all at once. */
  g_board->entered = 0;
  pthread_t t[2];
  waiter w[2];
  start_waiters(t, w, 2, g_cond, g_board);
  assert_rc(mp_condition_acquire(g_cond, mp_test_slack(30)), 0);
  assert_rc(mp_condition_notify(g_cond, 1), 0);
  assert_rc(mp_condition_release(g_cond), 0);
  until_woke(g_board, 1);
  assert_rc(mp_condition_acquire(g_cond, mp_test_slack(30)), 0);
  assert_rc(mp_condition_notify_all(g_cond), 0);
  assert_rc(mp_condition_release(g_cond), 0);
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    assert_rc(w[i].rc, 0);
  }
  /* What the dead waiter left costs at most a spurious wake-up. */
  assert_rc(mp_condition_acquire(g_cond, 0), 0);
  int rc = mp_condition_wait(g_cond, 0.2);
  assert_true(rc == 0 || rc == MP_ETIMEDOUT);
  rc = mp_condition_wait(g_cond, 0.05);
  assert_true(rc == 0 || rc == MP_ETIMEDOUT);
  assert_rc(mp_condition_release(g_cond), 0);
  munmap(g_board, sizeof *g_board);
  mp_condition_free(g_cond);
}

static int acquire_and_die(void *arg) {
  (void)arg;
  /* Gets the lock once the parent's wait has released it. */
  if (mp_condition_acquire(g_cond, mp_test_slack(30)) != 0)
    return 1;
  raise(SIGKILL);
  return 2;
}

static void holder_killed_while_waiting(void **state) { /* G-COND-1 */
  (void)state;
  assert_rc(mp_condition_new(&g_cond, NULL), 0);
  assert_rc(mp_condition_acquire(g_cond, 0), 0);
  assert_rc(mp_condition_acquire(g_cond, 0), 0);
  pid_t pid = mp_test_fork(acquire_and_die, NULL);
  double t0 = mp_test_now();
  assert_rc(mp_condition_wait(g_cond, mp_test_slack(10)), MP_EOWNERDEAD);
  assert_true(mp_test_now() - t0 < mp_test_slack(10));
  int status = mp_test_wait(pid, mp_test_slack(30));
  assert_true(status != -1 && WIFSIGNALED(status));
  /* We hold it again, at both levels, and it works. */
  assert_rc(mp_condition_release(g_cond), 0);
  assert_rc(mp_condition_release(g_cond), 0);
  assert_rc(mp_condition_release(g_cond), MP_EPERM);
  assert_rc(mp_condition_acquire(g_cond, 0), 0);
  assert_rc(mp_condition_wait(g_cond, 0.05), MP_ETIMEDOUT);
  assert_rc(mp_condition_release(g_cond), 0);
  mp_condition_free(g_cond);
}

static mp_lock *g_lock;

static int lock_and_die(void *arg) {
  (void)arg;
  if (mp_lock_acquire(g_lock, mp_test_slack(30)) != 0)
    return 1;
  raise(SIGKILL);
  return 2;
}

static void holder_of_lent_lock_killed_while_waiting(void **state) {
  (void)state; /* G-COND-1 */
  assert_rc(mp_lock_new(&g_lock, NULL), 0);
  mp_condition_opts o = {.lock = g_lock};
  mp_condition *c;
  assert_rc(mp_condition_new(&c, &o), 0);
  assert_rc(mp_lock_acquire(g_lock, 0), 0);
  pid_t pid = mp_test_fork(lock_and_die, NULL);
  assert_rc(mp_condition_wait(c, mp_test_slack(10)), MP_EOWNERDEAD);
  int status = mp_test_wait(pid, mp_test_slack(30));
  assert_true(status != -1 && WIFSIGNALED(status));
  assert_int_equal(mp_lock_locked(g_lock), 1);
  assert_rc(mp_lock_release(g_lock), 0);
  assert_rc(mp_lock_acquire(g_lock, 0), 0);
  assert_rc(mp_lock_release(g_lock), 0);
  mp_condition_free(c);
  mp_lock_free(g_lock);
}

/* Another process recovers the lock (MP_EOWNERDEAD) before our waiter
 * looks: the waiter still learns of the death. */
static int hold_forever(void *arg) {
  (void)arg;
  if (mp_condition_acquire(g_cond, mp_test_slack(30)) != 0)
    return 1;
  mp_test_signal_post(&g_sig);
  for (;;)
    pause();
}

static int recover_and_hold(void *arg) {
  (void)arg;
  mp_test_signal_post(&g_sig);
  int rc = mp_condition_acquire(g_cond, mp_test_slack(30));
  /* Usually we win the race with the parent's waiter (the kernel hands us
   * the dead holder's mutex at once); either way we hold it now. */
  if (rc != MP_EOWNERDEAD && rc != 0)
    return 1;
  usleep(300 * 1000);
  return mp_condition_release(g_cond) == 0 ? 0 : 2;
}

static void wait_sleeping(pid_t tid, double timeout) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
  double end = mp_test_now() + timeout;
  while (mp_test_now() < end) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
      return;
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    if (paren != NULL && paren[2] == 'S')
      return;
    usleep(1000);
  }
}

typedef struct stager {
  pid_t holder, recoverer;
  int ok;
} stager;

/* Runs beside the waiting case: once the holder holds the lock, start a
 * process that blocks acquiring it, then kill the holder. */
static void *stage_death(void *arg) {
  stager *st = arg;
  if (!mp_test_signal_wait(&g_sig, mp_test_slack(30)))
    return NULL;
  st->recoverer = mp_test_fork(recover_and_hold, NULL);
  if (!mp_test_signal_wait(&g_sig, mp_test_slack(30)))
    return NULL;
  wait_sleeping(st->recoverer, mp_test_slack(10));
  kill(st->holder, SIGKILL);
  st->ok = 1;
  return NULL;
}

static void waiter_learns_of_death_recovered_by_another(void **state) {
  (void)state; /* G-COND-1 */
  assert_rc(mp_condition_new(&g_cond, NULL), 0);
  mp_test_signal_open(&g_sig);
  assert_rc(mp_condition_acquire(g_cond, 0), 0);
  stager st = {0};
  st.holder = mp_test_fork(hold_forever, NULL);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, stage_death, &st), 0);
  assert_rc(mp_condition_wait(g_cond, mp_test_slack(10)), MP_EOWNERDEAD);
  assert_rc(mp_condition_release(g_cond), 0);
  pthread_join(t, NULL);
  assert_true(st.ok);
  int status = mp_test_wait(st.holder, mp_test_slack(30));
  assert_true(status != -1 && WIFSIGNALED(status));
  mp_test_wait_exit(st.recoverer, 0, mp_test_slack(30));
  mp_test_signal_close(&g_sig);
  mp_condition_free(g_cond);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(wait_releases_and_reacquires),
    cmocka_unit_test(not_holding_is_eperm),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(names),
    cmocka_unit_test(named_with_lent_lock_cannot_be_opened),
    cmocka_unit_test(open_corrupt),
    cmocka_unit_test(destroy_rules),
    cmocka_unit_test(notify_one_releases_exactly_one),
    cmocka_unit_test(notify_more_than_waiting_leaves_nothing_behind),
    cmocka_unit_test(later_waiter_does_not_take_earlier_notify),
    cmocka_unit_test(notify_all_releases_every_present_waiter),
    cmocka_unit_test(wait_for_predicate),
    cmocka_unit_test(lent_lock),
    cmocka_unit_test(lent_rlock_keeps_depth),
    cmocka_unit_test(fork_inherited_between_processes),
    cmocka_unit_test(in_place_with_lent_lock_between_processes),
    cmocka_unit_test(named_from_child),
    cmocka_unit_test(killed_waiter_blocks_nobody),
    cmocka_unit_test(holder_killed_while_waiting),
    cmocka_unit_test(holder_of_lent_lock_killed_while_waiting),
    cmocka_unit_test(waiter_learns_of_death_recovered_by_another),
};

MP_TEST_MAIN(tests)
