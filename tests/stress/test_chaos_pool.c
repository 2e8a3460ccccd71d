/* test_chaos_pool.c - bounded chaos for pools (G-POOL-1): long maps and
 * streams of apply_async run while a killer thread SIGKILLs a random
 * worker every few milliseconds, for MP_STRESS_SECONDS (default 3) per
 * case. Every item must end either with its correct result or with
 * MP_EWORKERDIED (and the signal SIGKILL), the counts must add up, no
 * more items may fail than workers were killed, and nothing may hang:
 * every wait is bounded. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static double stress_seconds(void) {
  const char *env = getenv("MP_STRESS_SECONDS");
  double s = env != NULL ? atof(env) : 0;
  return s > 0 ? s : 3.0;
}

static double slack(double s) { return mp_test_sanitized() ? s * 5 : s; }

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* work is an item that takes a few microseconds: a value only the item's
 * input determines, so a wrong or stale result is caught. */
static uint64_t mix(uint64_t x) {
  for (int i = 0; i < 200; i++) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 29;
  }
  return x;
}

static int work(const void *in, void *out) {
  *(uint64_t *)out = mix(*(const uint64_t *)in);
  return 0;
}

static int work_bytes(const void *in, size_t n, void *out, size_t cap,
                      size_t *len) {
  if (n != sizeof(uint64_t) || cap < sizeof(uint64_t))
    return MP_EINVAL;
  uint64_t v = mix(*(const uint64_t *)in);
  memcpy(out, &v, sizeof v);
  *len = sizeof v;
  return 0;
}

/* The killer: SIGKILLs a random live worker every 1 to 10 ms. */
struct killer {
  mp_pool *pool;
  _Atomic int stop;
  _Atomic long kills;
  unsigned seed;
};

static void killer_main(void *arg) {
  struct killer *k = arg;
  while (!atomic_load(&k->stop)) {
    sleep_us(1000 + rand_r(&k->seed) % 9000);
    pid_t pids[16];
    ssize_t n = mp_pool_worker_pids(k->pool, pids, 16);
    if (n <= 0)
      continue;
    unsigned live = (unsigned)(n < 16 ? n : 16);
    pid_t victim = pids[rand_r(&k->seed) % live];
    if (kill(victim, SIGKILL) == 0)
      atomic_fetch_add(&k->kills, 1);
  }
}


static mp_thread *start_killer(struct killer *k) {
  mp_thread *t;
  assert_rc(mp_thread_new(&t, killer_main, k, NULL), 0);
  assert_rc(mp_thread_start(t), 0);
  return t;
}

static void stop_killer(mp_thread *t, struct killer *k) {
  atomic_store(&k->stop, 1);
  assert_rc(mp_thread_join(t, 30), 0);
  mp_thread_free(t);
}

/* G-POOL-1 under chaos: maps of many small chunks. */
static void chaos_map(void **state) {
  (void)state;
  mp_pool *p;
  assert_rc(mp_pool_new(&p, &(mp_pool_opts){.processes = 3}), 0);
  struct killer k = {.pool = p, .seed = (unsigned)getpid()};
  enum { N = 20000 };
  uint64_t *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
  int *st = malloc(N * sizeof *st);
  mp_thread *t = start_killer(&k);
  double end = mp_test_now() + stress_seconds();
  long maps = 0, ok = 0, died = 0;
  while (mp_test_now() < end) {
    for (int i = 0; i < N; i++) {
      in[i] = (uint64_t)maps * N + (uint64_t)i;
      out[i] = 0;
      st[i] = 12345;
    }
    mp_pool_map_opts mo = {.chunksize = (size_t)(1 + maps % 50),
                           .statuses = st};
    mp_async_result *r;
    assert_rc(mp_pool_map_async(p, &r, work, in, N, sizeof *in, out,
                                sizeof *out, &mo),
              0);
    int rc = mp_async_result_get(r, slack(60));
    if (rc == MP_ETIMEDOUT && !mp_async_result_ready(r))
      fail_msg("map %ld did not finish within %.0f s", maps, slack(60));
    assert_true(rc == 0 || rc == MP_EWORKERDIED);
    if (rc == MP_EWORKERDIED) {
      mp_task_error err;
      assert_rc(mp_async_result_error(r, &err), 0);
      assert_int_equal(err.exit.signal, SIGKILL);
      assert_int_equal(st[err.index], MP_EWORKERDIED);
    }
    mp_async_result_free(r);
    for (int i = 0; i < N; i++) {
      if (st[i] == 0) {
        if (out[i] != mix(in[i]))
          fail_msg("map %ld item %d: wrong result", maps, i);
        ok++;
      } else if (st[i] == MP_EWORKERDIED) {
        died++;
      } else {
        fail_msg("map %ld item %d: status %s", maps, i, mp_err_name(st[i]));
      }
    }
    maps++;
  }
  stop_killer(t, &k);
  assert_int_equal(ok + died, maps * N);
  assert_true(atomic_load(&k.kills) > 0);
  /* A kill fails at most the one item its worker was running. */
  assert_true(died <= atomic_load(&k.kills));
  assert_rc(mp_pool_error(p, NULL), 0);
  fprintf(stderr, "chaos_map: %ld maps, %ld items ok, %ld died, %ld kills\n",
          maps, ok, died, atomic_load(&k.kills));
  free(in);
  free(out);
  free(st);
  mp_pool_free(p);
}

/* G-POOL-1 under chaos: a stream of apply_async tasks, some abandoned. */
static void chaos_apply_async(void **state) {
  (void)state;
  mp_pool *p;
  assert_rc(mp_pool_new(&p, &(mp_pool_opts){.processes = 2}), 0);
  struct killer k = {.pool = p, .seed = (unsigned)getpid() * 7u};
  mp_thread *t = start_killer(&k);
  double end = mp_test_now() + stress_seconds();
  enum { BATCH = 500 };
  mp_async_result *r[BATCH];
  uint64_t in[BATCH];
  long ok = 0, died = 0, rounds = 0;
  while (mp_test_now() < end) {
    for (int i = 0; i < BATCH; i++) {
      in[i] = (uint64_t)rounds * BATCH + (uint64_t)i;
      assert_rc(mp_pool_apply_async(p, &r[i], work_bytes, &in[i],
                                    sizeof in[i], NULL),
                0);
    }
    /* Every tenth result is let go before it is ready. */
    for (int i = 0; i < BATCH; i += 10) {
      mp_async_result_free(r[i]);
      r[i] = NULL;
    }
    for (int i = 0; i < BATCH; i++) {
      if (r[i] == NULL)
        continue;
      int rc = mp_async_result_get(r[i], slack(60));
      if (rc == MP_ETIMEDOUT && !mp_async_result_ready(r[i]))
        fail_msg("task did not finish within %.0f s", slack(60));
      if (rc == 0) {
        size_t len = 0;
        const uint64_t *v = mp_async_result_data(r[i], &len);
        assert_int_equal(len, sizeof *v);
        assert_true(*v == mix(in[i]));
        ok++;
      } else if (rc == MP_EWORKERDIED) {
        died++;
      } else {
        fail_msg("task: %s", mp_err_name(rc));
      }
      mp_async_result_free(r[i]);
    }
    rounds++;
  }
  stop_killer(t, &k);
  assert_int_equal(ok + died, rounds * (BATCH - BATCH / 10));
  assert_true(died <= atomic_load(&k.kills));
  assert_rc(mp_pool_error(p, NULL), 0);
  fprintf(stderr, "chaos_apply_async: %ld ok, %ld died, %ld kills\n", ok,
          died, atomic_load(&k.kills));
  /* Terminate while the killer has just been busy: prompt, nothing left. */
  double t0 = mp_test_now();
  mp_pool_free(p);
  assert_true(mp_test_now() - t0 < slack(10));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(chaos_map),
    cmocka_unit_test(chaos_apply_async),
};

MP_TEST_MAIN(tests)
