/* bench_value.c - what a shared integer costs: two processes each add 1 to
 * one shared integer 1,000,000 times, under its lock and with the atomic
 * add, against a raw robust pthread mutex and a plain C11 atomic on the
 * same kind of memory. (Python's Value('i') with get_lock() is measured by
 * bench/peers/py_value.py in the same `make bench` run.)
 *
 * value_increment/locked   multiproc: mp_value_acquire, mp_value_get_int,
 *                          mp_value_set_int, mp_value_release on a
 *                          Value('i') -- Python's
 *                          "with v.get_lock(): v.value += 1";
 *                          pthread_robust: a robust process-shared mutex
 *                          around counter++. ns per increment.
 *                          Target: 10x Python or better.
 * value_increment/atomic   multiproc: mp_value_fetch_add(v, 1) on a
 *                          Value('i'); c11_atomic: atomic_fetch_add on an
 *                          int in MAP_SHARED memory (the limit).
 *                          Target: 50x Python or better.
 * The final count must be exactly 2,000,000 in every case. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <multiproc.h>

#include "bench.h"

#define ITERS 2000000
#define SMOKE_ITERS 2000

typedef struct job {
  mp_value *value;               /* multiproc cases */
  pthread_mutex_t *mutex;        /* pthread_robust */
  volatile int *counter;         /* pthread_robust */
  _Atomic int *atomic;           /* c11_atomic */
  uint64_t share[2];
} job;

/* The shared area of the raw peers: mutex and counter on their own lines. */
typedef struct raw_area {
  _Alignas(64) pthread_mutex_t mutex;
  _Alignas(64) volatile int counter;
  _Alignas(64) _Atomic int atomic;
} raw_area;

static int worker_locked(void *arg, int index) {
  job *j = arg;
  for (uint64_t i = 0; i < j->share[index]; i++) {
    int64_t x;
    if (mp_value_acquire(j->value, MP_FOREVER) != 0 ||
        mp_value_get_int(j->value, &x) != 0 ||
        mp_value_set_int(j->value, x + 1) != 0 ||
        mp_value_release(j->value) != 0)
      return 1;
  }
  return 0;
}

static int worker_atomic(void *arg, int index) {
  job *j = arg;
  for (uint64_t i = 0; i < j->share[index]; i++)
    if (mp_value_fetch_add(j->value, 1, NULL) != 0)
      return 1;
  return 0;
}

static int worker_mutex(void *arg, int index) {
  job *j = arg;
  for (uint64_t i = 0; i < j->share[index]; i++) {
    if (pthread_mutex_lock(j->mutex) != 0)
      return 1;
    *j->counter = *j->counter + 1;
    pthread_mutex_unlock(j->mutex);
  }
  return 0;
}

static int worker_c11(void *arg, int index) {
  job *j = arg;
  for (uint64_t i = 0; i < j->share[index]; i++)
    atomic_fetch_add(j->atomic, 1);
  return 0;
}

/* Runs two workers over j and times them from the gate to the last end. */
static int two_workers(bench_run *run, job *j, bench_worker_fn fn) {
  j->share[0] = run->iters / 2;
  j->share[1] = run->iters - run->iters / 2;
  bench_workers w;
  int rc = bench_workers_start(run, &w, 2, fn, j);
  if (rc != 0)
    return rc;
  int64_t t0 = bench_workers_go(&w), t1 = 0;
  rc = bench_workers_wait(run, &w, 300.0, &t1);
  bench_timer_set(run, t0, t1);
  return rc;
}

static int value_case(bench_run *run, bench_worker_fn fn) {
  job j;
  memset(&j, 0, sizeof j);
  int rc = mp_value_new(&j.value, 'i', NULL, NULL);
  if (rc != 0)
    return bench_fail(run, "mp_value_new: %s", mp_strerror(rc));
  rc = two_workers(run, &j, fn);
  int64_t x = -1;
  mp_value_get_int(j.value, &x);
  run->done = (uint64_t)x;
  mp_value_free(j.value);
  return rc;
}

static int multiproc_locked(bench_run *run) {
  return value_case(run, worker_locked);
}

static int multiproc_atomic(bench_run *run) {
  return value_case(run, worker_atomic);
}

static int raw_case(bench_run *run, bench_worker_fn fn) {
  raw_area *a = bench_shared_new(sizeof *a);
  if (a == NULL)
    return bench_fail(run, "mmap failed");
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&a->mutex, &attr);
  pthread_mutexattr_destroy(&attr);
  job j;
  memset(&j, 0, sizeof j);
  j.mutex = &a->mutex;
  j.counter = &a->counter;
  j.atomic = &a->atomic;
  int rc = two_workers(run, &j, fn);
  run->done = fn == worker_c11 ? (uint64_t)atomic_load(&a->atomic)
                               : (uint64_t)a->counter;
  pthread_mutex_destroy(&a->mutex);
  bench_shared_free(a, sizeof *a);
  return rc;
}

static int pthread_locked(bench_run *run) {
  return raw_case(run, worker_mutex);
}

static int c11_atomic(bench_run *run) { return raw_case(run, worker_c11); }

static const bench_case cases[] = {
    {"value_increment", "locked", "multiproc", "2 procs", ITERS, SMOKE_ITERS,
     "ns/op", multiproc_locked, NULL},
    {"value_increment", "locked", "pthread_robust", "2 procs", ITERS,
     SMOKE_ITERS, "ns/op", pthread_locked, NULL},
    {"value_increment", "atomic", "multiproc", "2 procs", ITERS, SMOKE_ITERS,
     "ns/op", multiproc_atomic, NULL},
    {"value_increment", "atomic", "c11_atomic", "2 procs", ITERS, SMOKE_ITERS,
     "ns/op", c11_atomic, NULL},
};

int main(int argc, char **argv) {
  static const bench_suite suite = BENCH_SUITE("bench_value", cases);
  return bench_main(argc, argv, &suite);
}
