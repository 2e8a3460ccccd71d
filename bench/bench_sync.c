/* bench_sync.c - what a lock costs: mp_lock and mp_rlock against a raw
 * process-shared robust pthread mutex and a POSIX process-shared unnamed
 * semaphore, uncontended in one thread and contended by two processes.
 * (Python's multiprocessing.Lock is measured by bench/peers/py_sync.py in
 * the same `make bench` run.)
 *
 * lock_uncontended/lock    acquire + release in one thread, ns per pair:
 *                          multiproc (mp_lock), pthread_robust (a robust
 *                          process-shared mutex of the default type),
 *                          pthread_robust_ec (the same, error-checking, as
 *                          mp_lock is built on), posix_sem (sem_wait +
 *                          sem_post). Target: mp_lock within 1.3x of
 *                          pthread_robust.
 * lock_uncontended/rlock   the same for mp_rlock against a robust
 *                          recursive pthread mutex.
 * lock_contended/2procs    two processes each add 1 to a shared counter
 *                          under the lock 1,000,000 times; ns per locked
 *                          increment (2,000,000 in all), and the final
 *                          count must be exactly 2,000,000.
 *
 * Every object lives in the same kind of memory, anonymous MAP_SHARED,
 * initialised in place, so only the lock differs between the lines. The
 * protected counter sits on its own cache line. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>

#include <multiproc.h>

#include "bench.h"

/* lock_area is the shared memory of one run: the lock under test and the
 * counter it protects. */
typedef struct lock_area {
  _Alignas(64) union {
    mp_lock lock;
    mp_rlock rlock;
    pthread_mutex_t mutex;
    sem_t sem;
  } u;
  _Alignas(64) volatile uint64_t counter;
} lock_area;

/* lock_system is one implementation of "a lock in shared memory". The
 * loops below are inlined with a constant lock_system, so each system's
 * calls are direct, as they would be in a program using it. */
typedef struct lock_system {
  int (*init)(void *m);
  int (*acquire)(void *m);
  int (*release)(void *m);
  int (*destroy)(void *m);
} lock_system;

/* ---- multiproc ---------------------------------------------------------- */

static int mplock_init(void *m) {
  return mp_lock_init(m);
}
static int mplock_acquire(void *m) {
  return mp_lock_acquire(m, MP_FOREVER);
}
static int mplock_release(void *m) {
  return mp_lock_release(m);
}
static int mplock_destroy(void *m) {
  return mp_lock_destroy(m);
}
static const lock_system sys_mp_lock = {mplock_init, mplock_acquire,
                                        mplock_release, mplock_destroy};

static int mprlock_init(void *m) {
  return mp_rlock_init(m);
}
static int mprlock_acquire(void *m) {
  return mp_rlock_acquire(m, MP_FOREVER);
}
static int mprlock_release(void *m) {
  return mp_rlock_release(m);
}
static int mprlock_destroy(void *m) {
  return mp_rlock_destroy(m);
}
static const lock_system sys_mp_rlock = {mprlock_init, mprlock_acquire,
                                         mprlock_release, mprlock_destroy};

/* ---- robust pthread mutexes --------------------------------------------- */

static int mutex_init_type(void *m, int type) {
  pthread_mutexattr_t a;
  int rc = pthread_mutexattr_init(&a);
  if (rc != 0)
    return -rc;
  if ((rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
      (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0 &&
      (rc = pthread_mutexattr_settype(&a, type)) == 0)
    rc = pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  return -rc;
}
static int mutex_init_normal(void *m) {
  return mutex_init_type(m, PTHREAD_MUTEX_NORMAL);
}
static int mutex_init_errorcheck(void *m) {
  return mutex_init_type(m, PTHREAD_MUTEX_ERRORCHECK);
}
static int mutex_init_recursive(void *m) {
  return mutex_init_type(m, PTHREAD_MUTEX_RECURSIVE);
}
/* A robust mutex's user must handle EOWNERDEAD; the branch is part of its
 * cost. */
static int mutex_acquire(void *m) {
  int rc = pthread_mutex_lock(m);
  if (rc == EOWNERDEAD)
    rc = pthread_mutex_consistent(m);
  return -rc;
}
static int mutex_release(void *m) {
  return -pthread_mutex_unlock(m);
}
static int mutex_destroy(void *m) {
  return -pthread_mutex_destroy(m);
}
static const lock_system sys_mutex = {mutex_init_normal, mutex_acquire,
                                      mutex_release, mutex_destroy};
static const lock_system sys_mutex_ec = {mutex_init_errorcheck, mutex_acquire,
                                         mutex_release, mutex_destroy};
static const lock_system sys_mutex_rec = {mutex_init_recursive, mutex_acquire,
                                          mutex_release, mutex_destroy};

/* ---- POSIX unnamed process-shared semaphore ----------------------------- */

static int sem_init1(void *m) {
  return sem_init(m, 1, 1) == 0 ? 0 : -errno;
}
static int sem_acquire(void *m) {
  while (sem_wait(m) != 0)
    if (errno != EINTR)
      return -errno;
  return 0;
}
static int sem_release(void *m) {
  return sem_post(m) == 0 ? 0 : -errno;
}
static int sem_destroy1(void *m) {
  return sem_destroy(m) == 0 ? 0 : -errno;
}
static const lock_system sys_sem = {sem_init1, sem_acquire, sem_release,
                                    sem_destroy1};

/* ---- the measurements --------------------------------------------------- */

/* area_new maps and initialises one run's shared area. */
static lock_area *area_new(bench_run *run, const lock_system *sys) {
  lock_area *a = bench_shared_new(sizeof *a);
  if (a == NULL) {
    bench_fail(run, "mmap failed");
    return NULL;
  }
  int rc = sys->init(&a->u);
  if (rc != 0) {
    bench_fail(run, "init: %s", mp_strerror(rc));
    bench_shared_free(a, sizeof *a);
    return NULL;
  }
  return a;
}

static int area_free(bench_run *run, lock_area *a, const lock_system *sys) {
  int rc = sys->destroy(&a->u);
  bench_shared_free(a, sizeof *a);
  return rc == 0 ? 0 : bench_fail(run, "destroy: %s", mp_strerror(rc));
}

/* locked_increments adds 1 to a->counter n times, each under the lock.
 * Returns 0 or the first failing call's code. */
static inline __attribute__((always_inline)) int
locked_increments(lock_area *a, const lock_system *sys, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    int rc = sys->acquire(&a->u);
    if (rc != 0)
      return rc;
    a->counter++;
    rc = sys->release(&a->u);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static inline __attribute__((always_inline)) int
uncontended(bench_run *run, const lock_system *sys) {
  lock_area *a = area_new(run, sys);
  if (a == NULL)
    return BENCH_FAILED;
  bench_timer_start(run);
  int rc = locked_increments(a, sys, run->iters);
  bench_timer_stop(run);
  run->done = a->counter;
  if (rc != 0) {
    area_free(run, a, sys);
    return bench_fail(run, "acquire/release: %s", mp_strerror(rc));
  }
  return area_free(run, a, sys);
}

/* contended_job is what each of the two workers gets (copied by fork). */
typedef struct contended_job {
  lock_area *area;
  uint64_t share[2]; /* increments for worker 0 and worker 1 */
} contended_job;

static inline __attribute__((always_inline)) int
contended_worker(void *arg, int index, const lock_system *sys) {
  contended_job *job = arg;
  return locked_increments(job->area, sys, job->share[index]) == 0 ? 0 : 1;
}

static int contended(bench_run *run, const lock_system *sys,
                     bench_worker_fn worker) {
  lock_area *a = area_new(run, sys);
  if (a == NULL)
    return BENCH_FAILED;
  contended_job job = {a, {run->iters / 2, run->iters - run->iters / 2}};
  bench_workers w;
  int rc = bench_workers_start(run, &w, 2, worker, &job);
  if (rc != 0) {
    area_free(run, a, sys);
    return rc;
  }
  int64_t t0 = bench_workers_go(&w), t1 = 0;
  rc = bench_workers_wait(run, &w, 300.0, &t1);
  bench_timer_set(run, t0, t1);
  run->done = a->counter;
  if (rc != 0) {
    /* A worker that died holding a robust lock leaves it owner-dead;
     * destroying it is still safe, and the failure is already recorded. */
    sys->destroy(&a->u);
    bench_shared_free(a, sizeof *a);
    return rc;
  }
  return area_free(run, a, sys);
}

/* One case function per system and measurement; each passes its constant
 * system to the inlined loops above. */
#define UNCONTENDED_CASE(sys)                                                  \
  static int uncontended_##sys(bench_run *run) {                               \
    return uncontended(run, &sys);                                             \
  }
#define CONTENDED_CASE(sys)                                                    \
  static int worker_##sys(void *arg, int index) {                              \
    return contended_worker(arg, index, &sys);                                 \
  }                                                                            \
  static int contended_##sys(bench_run *run) {                                 \
    return contended(run, &sys, worker_##sys);                                 \
  }

UNCONTENDED_CASE(sys_mp_lock)
UNCONTENDED_CASE(sys_mp_rlock)
UNCONTENDED_CASE(sys_mutex)
UNCONTENDED_CASE(sys_mutex_ec)
UNCONTENDED_CASE(sys_mutex_rec)
UNCONTENDED_CASE(sys_sem)
CONTENDED_CASE(sys_mp_lock)
CONTENDED_CASE(sys_mutex)
CONTENDED_CASE(sys_sem)

#define UNCONTENDED_ITERS 10000000
#define CONTENDED_ITERS 2000000

static const bench_case cases[] = {
    {"lock_uncontended", "lock", "multiproc", "1 lock", UNCONTENDED_ITERS, 1000,
     "ns/op", uncontended_sys_mp_lock, NULL},
    {"lock_uncontended", "lock", "pthread_robust", "1 lock", UNCONTENDED_ITERS,
     1000, "ns/op", uncontended_sys_mutex, NULL},
    {"lock_uncontended", "lock", "pthread_robust_ec", "1 lock",
     UNCONTENDED_ITERS, 1000, "ns/op", uncontended_sys_mutex_ec, NULL},
    {"lock_uncontended", "lock", "posix_sem", "1 lock", UNCONTENDED_ITERS, 1000,
     "ns/op", uncontended_sys_sem, NULL},
    {"lock_uncontended", "rlock", "multiproc", "1 rlock", UNCONTENDED_ITERS,
     1000, "ns/op", uncontended_sys_mp_rlock, NULL},
    {"lock_uncontended", "rlock", "pthread_robust", "1 rlock",
     UNCONTENDED_ITERS, 1000, "ns/op", uncontended_sys_mutex_rec, NULL},
    {"lock_contended", "2procs", "multiproc", "2 procs", CONTENDED_ITERS, 2000,
     "ns/op", contended_sys_mp_lock, NULL},
    {"lock_contended", "2procs", "pthread_robust", "2 procs", CONTENDED_ITERS,
     2000, "ns/op", contended_sys_mutex, NULL},
    {"lock_contended", "2procs", "posix_sem", "2 procs", CONTENDED_ITERS, 2000,
     "ns/op", contended_sys_sem, NULL},
};

int main(int argc, char **argv) {
  static const bench_suite suite = BENCH_SUITE("bench_sync", cases);
  return bench_main(argc, argv, &suite);
}
