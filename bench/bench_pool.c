/* bench_pool.c - what a process pool costs and gains: task throughput of
 * mp_pool against Python's multiprocessing.Pool(2) (measured by
 * bench/peers/py_pool.py in the same `make bench` run), and the speed-up
 * of a CPU-bound map on two workers.
 *
 * pool_map/chunksize1        Pool(2).map of a trivial function (x * x)
 *                            over 100,000 integers with chunksize 1:
 *                            every item its own task. ns per item.
 *                            Target: 20x faster than Python.
 * pool_map/default           the same with the default chunksize
 *                            (Python's rule). ns per item.
 * pool_apply_async/10000     10,000 apply_async of a trivial bytes task,
 *                            then get() of every result. ns per task.
 *                            Target: 10x faster than Python.
 * pool_cpu_loop/2x400M       the seed's counter loop, two counts of
 *                            400,000,000: multiproc runs them as
 *                            Pool(2).map(counter, [n, n]); serial runs
 *                            them one after the other in this process.
 *                            ns per increment. Target: a speed-up of at
 *                            least 1.95 (multiproc / serial <= 0.513).
 *
 * Each run creates its Pool(2) before the timed section and frees it
 * after, as a program keeps one pool for many maps. The work check adds
 * up the results: every square, every echoed int, every increment. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <multiproc.h>

#include "bench.h"

/* How long one map or get may take before the case fails. */
#define WAIT_TIMEOUT 300.0

static int square(const void *in, void *out) {
  int64_t x = *(const int64_t *)in;
  *(int64_t *)out = x * x;
  return 0;
}

static int echo(const void *in, size_t n, void *out, size_t cap,
                size_t *len) {
  if (n > cap)
    return MP_ETOOBIG;
  memcpy(out, in, n);
  *len = n;
  return 0;
}

/* count is the seed's loop: i = i + 1, n times, each step done. */
/* Not inlined: the serial case and the workers run the same machine
 * code. */
__attribute__((noinline)) static uint64_t count(uint64_t n) {
  uint64_t i = 0;
  for (uint64_t k = 0; k < n; k++) {
    i = i + 1;
    __asm__ volatile("" : "+r"(i));
  }
  return i;
}

static int counter(const void *in, void *out) {
  *(uint64_t *)out = count(*(const uint64_t *)in);
  return 0;
}

static int new_pool2(bench_run *run, mp_pool **p) {
  int rc = mp_pool_new(p, &(mp_pool_opts){.processes = 2});
  if (rc != 0)
    return bench_fail(run, "mp_pool_new: %s", mp_err_name(rc));
  return 0;
}

/* map_case maps square over run->iters integers with the given chunksize
 * (0: the default) and counts the right squares. */
static int map_case(bench_run *run, size_t chunksize) {
  size_t n = (size_t)run->iters;
  int64_t *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
  if (in == NULL || out == NULL) {
    free(in);
    free(out);
    return bench_fail(run, "out of memory");
  }
  for (size_t i = 0; i < n; i++)
    in[i] = (int64_t)i;
  mp_pool *p;
  int rc = new_pool2(run, &p);
  if (rc == 0) {
    mp_pool_map_opts mo = {.chunksize = chunksize};
    bench_timer_start(run);
    rc = mp_pool_map(p, square, in, n, sizeof *in, out, sizeof *out, &mo);
    bench_timer_stop(run);
    mp_pool_free(p);
    if (rc != 0)
      rc = bench_fail(run, "mp_pool_map: %s", mp_err_name(rc));
  }
  if (rc == 0)
    for (size_t i = 0; i < n; i++)
      run->done += out[i] == (int64_t)i * (int64_t)i;
  free(in);
  free(out);
  return rc;
}

static int map_chunksize1(bench_run *run) { return map_case(run, 1); }
static int map_default(bench_run *run) { return map_case(run, 0); }

static int apply_async_case(bench_run *run) {
  size_t n = (size_t)run->iters;
  mp_async_result **r = calloc(n, sizeof *r);
  if (r == NULL)
    return bench_fail(run, "out of memory");
  mp_pool *p;
  int rc = new_pool2(run, &p);
  if (rc != 0) {
    free(r);
    return rc;
  }
  bench_timer_start(run);
  for (size_t i = 0; i < n && rc == 0; i++) {
    int64_t v = (int64_t)i;
    rc = mp_pool_apply_async(p, &r[i], echo, &v, sizeof v, NULL);
  }
  for (size_t i = 0; i < n && r[i] != NULL; i++) {
    if (mp_async_result_get(r[i], WAIT_TIMEOUT) == 0) {
      size_t len = 0;
      const int64_t *v = mp_async_result_data(r[i], &len);
      run->done += len == sizeof *v && *v == (int64_t)i;
    }
  }
  bench_timer_stop(run);
  for (size_t i = 0; i < n; i++)
    mp_async_result_free(r[i]);
  free(r);
  mp_pool_free(p);
  if (rc != 0)
    return bench_fail(run, "mp_pool_apply_async: %s", mp_err_name(rc));
  return 0;
}

/* The CPU-bound loop: run->iters increments in two counts. */
static int cpu_pool_case(bench_run *run) {
  uint64_t in[2] = {run->iters / 2, run->iters - run->iters / 2}, out[2];
  mp_pool *p;
  int rc = new_pool2(run, &p);
  if (rc != 0)
    return rc;
  bench_timer_start(run);
  rc = mp_pool_map(p, counter, in, 2, sizeof in[0], out, sizeof out[0], NULL);
  bench_timer_stop(run);
  mp_pool_free(p);
  if (rc != 0)
    return bench_fail(run, "mp_pool_map: %s", mp_err_name(rc));
  run->done = out[0] + out[1];
  return 0;
}

static int cpu_serial_case(bench_run *run) {
  bench_timer_start(run);
  uint64_t a = count(run->iters / 2);
  uint64_t b = count(run->iters - run->iters / 2);
  bench_timer_stop(run);
  run->done = a + b;
  return 0;
}

static const bench_case cases[] = {
    {"pool_map", "chunksize1", "multiproc", "1 int", 100000, 1000, "ns/op",
     map_chunksize1, NULL},
    {"pool_map", "default", "multiproc", "1 int", 100000, 1000, "ns/op",
     map_default, NULL},
    {"pool_apply_async", "10000", "multiproc", "1 task", 10000, 200, "ns/op",
     apply_async_case, NULL},
    {"pool_cpu_loop", "2x400M", "multiproc", "1 increment", 800000000, 2000,
     "ns/op", cpu_pool_case, NULL},
    {"pool_cpu_loop", "2x400M", "serial", "1 increment", 800000000, 2000,
     "ns/op", cpu_serial_case, NULL},
};

int main(int argc, char **argv) {
  static const bench_suite suite = BENCH_SUITE("bench_pool", cases);
  return bench_main(argc, argv, &suite);
}
