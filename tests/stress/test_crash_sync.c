/* test_crash_sync.c - bounded chaos for the sync objects: child processes
 * hammer a Lock, an RLock, a Semaphore, a Condition or a Barrier while the
 * case SIGKILLs one of them at a random moment, again and again, for
 * MP_STRESS_SECONDS (default 3) per case. Whatever the moment of death, no
 * survivor may hang or see a result the documentation does not allow, and
 * the object must work afterwards (G-LOCK-1, G-SEM-1, G-COND-1,
 * G-BARRIER-1).
 *
 * Children never call cmocka: they count what they saw in shared memory,
 * and the case checks the counts. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

enum { KIDS = 3 };

static double stress_seconds(void) {
  const char *env = getenv("MP_STRESS_SECONDS");
  double s = env ? atof(env) : 3.0;
  return s > 0 ? s : 3.0;
}

/* What every case shares with its children. */
typedef struct arena {
  mp_lock lock;
  mp_rlock rlock;
  mp_semaphore sem;
  mp_condition cond;
  mp_barrier barrier;
  _Atomic pid_t inside;  /* who is in the critical section */
  atomic_uint holders;   /* semaphore holders right now, one bit each */
  int entered;           /* a waiter reached wait; under the lock */
  atomic_long progress;  /* operations completed */
  atomic_int errors;     /* results the docs do not allow */
  atomic_int owner_dead; /* MP_EOWNERDEAD seen */
  atomic_int broken;     /* MP_EBROKEN seen */
  int last_error;
} arena;

static arena *g_arena;
static unsigned g_seed;

static void note_error(int rc) {
  g_arena->last_error = rc;
  atomic_fetch_add(&g_arena->errors, 1);
}

/* Drives one case: keep KIDS children running child_fn, kill one at a
 * random moment, check with `after_kill`, start a new one; until the time
 * is up. Then kill them all. */
/* Whether the children showed what the case checks: progress, and for the
 * Barrier a round broken by a kill. */
static bool g_want_broken;
static bool saw_enough(void) {
  return atomic_load(&g_arena->progress) > 0 &&
         (!g_want_broken || atomic_load(&g_arena->broken) > 0);
}

static void chaos(int (*child_fn)(void *), void (*after_kill)(void)) {
  pid_t kids[KIDS];
  int ids[KIDS];
  for (int i = 0; i < KIDS; i++) {
    ids[i] = i;
    kids[i] = mp_test_fork(child_fn, &ids[i]);
  }
  g_seed = (unsigned)getpid() ^ (unsigned)time(NULL);
  double end = mp_test_now() + stress_seconds();
  /* On a loaded machine the kill window can pass before the children made
   * any round: keep going until they have (the checks after need it), for
   * as long as the machine's slack allows. */
  double hard_end = end + mp_test_slack(20);
  int kills = 0;
  while (mp_test_now() < end ||
         (!saw_enough() && mp_test_now() < hard_end)) {
    usleep(1000 + (unsigned)rand_r(&g_seed) % 30000);
    int victim = rand_r(&g_seed) % KIDS;
    kill(kids[victim], SIGKILL);
    int status;
    assert_int_equal(waitpid(kids[victim], &status, 0), kids[victim]);
    if (!WIFSIGNALED(status))
      fail_msg("child exited %d before it was killed (last error %s)",
               WEXITSTATUS(status), mp_err_name(g_arena->last_error));
    kills++;
    if (after_kill != NULL)
      after_kill();
    kids[victim] = mp_test_fork(child_fn, &ids[victim]);
  }
  for (int i = 0; i < KIDS; i++) {
    kill(kids[i], SIGKILL);
    int status;
    waitpid(kids[i], &status, 0);
  }
  assert_true(kills > 0);
  if (atomic_load(&g_arena->errors) != 0)
    fail_msg("%d disallowed results, the last %s",
             atomic_load(&g_arena->errors), mp_err_name(g_arena->last_error));
}

/* ---- Lock and RLock ---------------------------------------------------- */

/* enter/leave check mutual exclusion; a dead holder leaves its mark. */
static void enter(int rc) {
  pid_t me = getpid();
  pid_t before = atomic_exchange(&g_arena->inside, me);
  if (rc == MP_EOWNERDEAD)
    atomic_fetch_add(&g_arena->owner_dead, 1);
  else if (before != 0)
    note_error(-1000); /* two inside at once */
}

static void leave(void) {
  atomic_store(&g_arena->inside, 0);
}

static int lock_child(void *arg) {
  (void)arg;
  for (;;) {
    int rc = mp_lock_acquire(&g_arena->lock, mp_test_slack(10));
    if (rc != 0 && rc != MP_EOWNERDEAD) {
      note_error(rc);
      continue;
    }
    enter(rc);
    atomic_fetch_add(&g_arena->progress, 1);
    leave();
    if ((rc = mp_lock_release(&g_arena->lock)) != 0)
      note_error(rc);
  }
  return 0; /* not reached: the case kills us */
}

static void lock_after_kill(void) {
  /* The lock is never lost: we get it within a bounded time. */
  int rc = mp_lock_acquire(&g_arena->lock, mp_test_slack(10));
  if (rc != 0 && rc != MP_EOWNERDEAD)
    fail_msg("acquire after a kill: %s", mp_err_name(rc));
  if (rc == MP_EOWNERDEAD)
    atomic_store(&g_arena->inside, 0);
  assert_rc(mp_lock_release(&g_arena->lock), 0);
}

static void lock_holders_killed(void **state) { /* G-LOCK-1 */
  (void)state;
  g_arena = mp_test_shared_map(sizeof *g_arena);
  assert_rc(mp_lock_init(&g_arena->lock), 0);
  chaos(lock_child, lock_after_kill);
  int rc = mp_lock_acquire(&g_arena->lock, mp_test_slack(10));
  assert_true(rc == 0 || rc == MP_EOWNERDEAD);
  assert_rc(mp_lock_release(&g_arena->lock), 0);
  assert_rc(mp_lock_acquire(&g_arena->lock, 0), 0);
  assert_rc(mp_lock_release(&g_arena->lock), 0);
  assert_true(atomic_load(&g_arena->progress) > 0);
  assert_rc(mp_lock_destroy(&g_arena->lock), 0);
  munmap(g_arena, sizeof *g_arena);
}

static int rlock_child(void *arg) {
  (void)arg;
  for (;;) {
    int rc = mp_rlock_acquire(&g_arena->rlock, mp_test_slack(10));
    if (rc != 0 && rc != MP_EOWNERDEAD) {
      note_error(rc);
      continue;
    }
    enter(rc);
    for (int i = 0; i < 2; i++)
      if ((rc = mp_rlock_acquire(&g_arena->rlock, 0)) != 0)
        note_error(rc);
    if (mp_rlock_depth(&g_arena->rlock) != 3)
      note_error(-1001);
    atomic_fetch_add(&g_arena->progress, 1);
    for (int i = 0; i < 2; i++)
      if ((rc = mp_rlock_release(&g_arena->rlock)) != 0)
        note_error(rc);
    leave();
    if ((rc = mp_rlock_release(&g_arena->rlock)) != 0)
      note_error(rc);
  }
  return 0; /* not reached: the case kills us */
}

static void rlock_after_kill(void) {
  int rc = mp_rlock_acquire(&g_arena->rlock, mp_test_slack(10));
  if (rc != 0 && rc != MP_EOWNERDEAD)
    fail_msg("acquire after a kill: %s", mp_err_name(rc));
  if (rc == MP_EOWNERDEAD)
    atomic_store(&g_arena->inside, 0);
  assert_int_equal(mp_rlock_depth(&g_arena->rlock), 1);
  assert_rc(mp_rlock_release(&g_arena->rlock), 0);
}

static void rlock_holders_killed(void **state) { /* G-LOCK-1 */
  (void)state;
  g_arena = mp_test_shared_map(sizeof *g_arena);
  assert_rc(mp_rlock_init(&g_arena->rlock), 0);
  chaos(rlock_child, rlock_after_kill);
  int rc = mp_rlock_acquire(&g_arena->rlock, mp_test_slack(10));
  assert_true(rc == 0 || rc == MP_EOWNERDEAD);
  assert_rc(mp_rlock_release(&g_arena->rlock), 0);
  assert_int_equal(mp_rlock_depth(&g_arena->rlock), 0);
  assert_true(atomic_load(&g_arena->progress) > 0);
  assert_rc(mp_rlock_destroy(&g_arena->rlock), 0);
  munmap(g_arena, sizeof *g_arena);
}

/* ---- Semaphore ---------------------------------------------------------- */

enum { UNITS = 2 };

static int sem_child(void *arg) {
  unsigned bit = 1u << *(int *)arg;
  for (;;) {
    int rc = mp_semaphore_acquire(&g_arena->sem, 0.05);
    if (rc == MP_ETIMEDOUT)
      continue; /* units lost to the dead: allowed, the case refills */
    if (rc != 0) {
      note_error(rc);
      continue;
    }
    unsigned before = atomic_fetch_or(&g_arena->holders, bit);
    if (__builtin_popcount(before | bit) > UNITS)
      note_error(-1002); /* more holders than units */
    atomic_fetch_add(&g_arena->progress, 1);
    atomic_fetch_and(&g_arena->holders, ~bit);
    if ((rc = mp_semaphore_release(&g_arena->sem)) != 0)
      note_error(rc);
  }
  return 0; /* not reached: the case kills us */
}

static void sem_after_kill(int victim) {
  /* A dead holder's unit is gone (sync.h). We know who held one (its
   * bit), so we give that unit back for it; a death in the instants
   * between acquire and setting the bit, or clearing it and release, loses
   * a unit for good, which only slows the survivors down. */
  unsigned bit = 1u << victim;
  unsigned before = atomic_fetch_and(&g_arena->holders, ~bit);
  int value = mp_semaphore_get_value(&g_arena->sem);
  assert_true(value >= 0 && value <= UNITS);
  if (before & bit)
    assert_rc(mp_semaphore_release(&g_arena->sem), 0);
}

static void sem_holders_and_waiters_killed(void **state) { /* G-SEM-1 */
  (void)state;
  g_arena = mp_test_shared_map(sizeof *g_arena);
  assert_rc(mp_semaphore_init(&g_arena->sem, UNITS, 1), 0);
  pid_t kids[KIDS];
  int ids[KIDS];
  for (int i = 0; i < KIDS; i++) {
    ids[i] = i;
    kids[i] = mp_test_fork(sem_child, &ids[i]);
  }
  unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
  double end = mp_test_now() + stress_seconds();
  while (mp_test_now() < end) {
    usleep(1000 + (unsigned)rand_r(&seed) % 30000);
    int victim = rand_r(&seed) % KIDS;
    kill(kids[victim], SIGKILL);
    int status;
    assert_int_equal(waitpid(kids[victim], &status, 0), kids[victim]);
    sem_after_kill(victim);
    kids[victim] = mp_test_fork(sem_child, &ids[victim]);
  }
  for (int i = 0; i < KIDS; i++) {
    kill(kids[i], SIGKILL);
    int status;
    waitpid(kids[i], &status, 0);
  }
  if (atomic_load(&g_arena->errors) != 0)
    fail_msg("%d disallowed results, the last %s",
             atomic_load(&g_arena->errors), mp_err_name(g_arena->last_error));
  /* The count is sane and still works. */
  int value = mp_semaphore_get_value(&g_arena->sem);
  assert_true(value >= 0 && value <= UNITS);
  while (mp_semaphore_release(&g_arena->sem) == 0)
    ;
  assert_int_equal(mp_semaphore_get_value(&g_arena->sem), UNITS);
  for (int i = 0; i < UNITS; i++)
    assert_rc(mp_semaphore_acquire(&g_arena->sem, 0), 0);
  assert_rc(mp_semaphore_acquire(&g_arena->sem, 0.02), MP_ETIMEDOUT);
  assert_true(atomic_load(&g_arena->progress) > 0);
  munmap(g_arena, sizeof *g_arena);
}

/* ---- Condition ---------------------------------------------------------- */

static int cond_child(void *arg) {
  (void)arg;
  for (;;) {
    int rc = mp_condition_acquire(&g_arena->cond, mp_test_slack(10));
    if (rc == MP_EOWNERDEAD) {
      atomic_fetch_add(&g_arena->owner_dead, 1);
    } else if (rc != 0) {
      note_error(rc);
      continue;
    }
    atomic_fetch_add(&g_arena->progress, 1);
    if ((rc = mp_condition_notify(&g_arena->cond, 1)) != 0)
      note_error(rc);
    rc = mp_condition_wait(&g_arena->cond, 0.05);
    if (rc == MP_EOWNERDEAD)
      atomic_fetch_add(&g_arena->owner_dead, 1);
    else if (rc != 0 && rc != MP_ETIMEDOUT)
      note_error(rc);
    if ((rc = mp_condition_release(&g_arena->cond)) != 0)
      note_error(rc);
  }
  return 0; /* not reached: the case kills us */
}

typedef struct cond_waiter {
  int rc;
} cond_waiter;

static void *cond_wait_thread(void *arg) {
  cond_waiter *w = arg;
  w->rc = mp_condition_acquire(&g_arena->cond, mp_test_slack(10));
  if (w->rc != 0 && w->rc != MP_EOWNERDEAD)
    return NULL;
  g_arena->entered = 1; /* under the lock */
  w->rc = mp_condition_wait(&g_arena->cond, mp_test_slack(10));
  mp_condition_release(&g_arena->cond);
  return NULL;
}

static void cond_parties_killed(void **state) { /* G-COND-1 */
  (void)state;
  g_arena = mp_test_shared_map(sizeof *g_arena);
  assert_rc(mp_condition_init(&g_arena->cond, NULL), 0);
  chaos(cond_child, NULL);
  /* With every child dead: a waiter and a notifier still meet. */
  cond_waiter w = {0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, cond_wait_thread, &w), 0);
  double end = mp_test_now() + mp_test_slack(30);
  for (;;) {
    int rc = mp_condition_acquire(&g_arena->cond, mp_test_slack(10));
    assert_true(rc == 0 || rc == MP_EOWNERDEAD);
    if (g_arena->entered == 1) {
      assert_rc(mp_condition_notify(&g_arena->cond, 1), 0);
      assert_rc(mp_condition_release(&g_arena->cond), 0);
      break;
    }
    assert_rc(mp_condition_release(&g_arena->cond), 0);
    assert_true(mp_test_now() < end);
    usleep(1000);
  }
  pthread_join(t, NULL);
  assert_rc(w.rc, 0);
  assert_true(atomic_load(&g_arena->progress) > 0);
  munmap(g_arena, sizeof *g_arena);
}

/* ---- Barrier ------------------------------------------------------------ */

static int barrier_child(void *arg) {
  (void)arg;
  for (;;) {
    int rc = mp_barrier_wait(&g_arena->barrier, mp_test_slack(10));
    if (rc >= 0) {
      atomic_fetch_add(&g_arena->progress, 1);
      continue;
    }
    if (rc != MP_EBROKEN) {
      note_error(rc);
      continue;
    }
    atomic_fetch_add(&g_arena->broken, 1);
    /* Wait for the case to reset it. */
    double end = mp_test_now() + mp_test_slack(10);
    while (mp_barrier_broken(&g_arena->barrier) == 1) {
      if (mp_test_now() > end) {
        note_error(-1003);
        break;
      }
      usleep(1000);
    }
  }
  return 0; /* not reached: the case kills us */
}

static void barrier_after_kill(void) {
  /* Survivors waiting for the dead party notice it within a slice and are
   * told MP_EBROKEN. A party killed before it ever waited was never a
   * member, so nobody can notice it: give up looking after a while. Then
   * a reset makes the barrier usable again. */
  double end = mp_test_now() + mp_test_slack(1);
  while (mp_barrier_n_waiting(&g_arena->barrier) > 0 &&
         mp_barrier_broken(&g_arena->barrier) == 0 && mp_test_now() < end)
    usleep(1000);
  assert_rc(mp_barrier_reset(&g_arena->barrier), 0);
}

static void *barrier_round(void *arg) {
  (void)arg;
  if (mp_barrier_wait(&g_arena->barrier, mp_test_slack(10)) < 0)
    atomic_fetch_add(&g_arena->errors, 1);
  return NULL;
}

static void barrier_parties_killed(void **state) { /* G-BARRIER-1 */
  (void)state;
  g_arena = mp_test_shared_map(sizeof *g_arena);
  assert_rc(mp_barrier_init(&g_arena->barrier, KIDS, NULL), 0);
  g_want_broken = true;
  chaos(barrier_child, barrier_after_kill);
  g_want_broken = false;
  /* Every child is dead: a lone waiter notices the dead members (or, if
   * they were all noticed already, times out), and the barrier breaks. */
  assert_rc(mp_barrier_reset(&g_arena->barrier), 0);
  int rc = mp_barrier_wait(&g_arena->barrier, mp_test_slack(2));
  assert_true(rc == MP_EBROKEN || rc == MP_ETIMEDOUT);
  assert_rc(mp_barrier_reset(&g_arena->barrier), 0);
  assert_true(atomic_load(&g_arena->progress) > 0);
  assert_true(atomic_load(&g_arena->broken) > 0);
  /* Three parties of our own still make rounds. */
  pthread_t t[KIDS - 1];
  for (int i = 0; i < KIDS - 1; i++)
    assert_int_equal(pthread_create(&t[i], NULL, barrier_round, NULL), 0);
  assert_true(mp_barrier_wait(&g_arena->barrier, mp_test_slack(10)) >= 0);
  for (int i = 0; i < KIDS - 1; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(mp_barrier_broken(&g_arena->barrier), 0);
  assert_rc(mp_barrier_destroy(&g_arena->barrier), 0);
  munmap(g_arena, sizeof *g_arena);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(lock_holders_killed),
    cmocka_unit_test(rlock_holders_killed),
    cmocka_unit_test(sem_holders_and_waiters_killed),
    cmocka_unit_test(cond_parties_killed),
    cmocka_unit_test(barrier_parties_killed),
};

MP_TEST_MAIN(tests)
