/* test_csp_stress.c - bounded chaos for CSP channels: six processes, each a
 * reader and a writer of four channels (two rendezvous, two buffered), make
 * random choices (PriSelect, AltSelect, FairSelect; one or two output
 * guards carrying the same message, inputs on every live channel, now and
 * then a timeout or skip guard) until each has sent its quota. Checks that
 * every message is received exactly once and whole (G-CSP-3), and that
 * every process ends. The chaos case SIGKILLs one process half way: no
 * message is then seen twice or torn, and every other process still ends
 * (G-CSP-1). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define NPROC 6
#define NCHAN 4
#define QUOTA 1000
#define MSG_WORDS 16

typedef struct shared {
  _Atomic uint32_t seen[NPROC * QUOTA];
  _Atomic uint32_t torn;
  _Atomic uint32_t sent[NPROC];
} shared;

typedef struct proc_arg {
  unsigned id;
  mp_channel_end *r[NCHAN], *w[NCHAN];
  shared *sh;
  int kill_me_at; /* -1: never */
} proc_arg;

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* A message: id, length in words, then words derived from the id. */
static size_t make_msg(uint32_t *m, uint32_t id, uint64_t *rng) {
  uint32_t words = 3 + (uint32_t)(rng_next(rng) % (MSG_WORDS - 3));
  m[0] = id;
  m[1] = words;
  for (uint32_t i = 2; i < words; i++)
    m[i] = id * 2654435761u + i;
  return words * sizeof(uint32_t);
}

static bool check_msg(const uint32_t *m, size_t len) {
  if (len < 3 * sizeof(uint32_t) || len % 4 != 0 || m[1] != len / 4 ||
      m[0] >= NPROC * QUOTA)
    return false;
  for (uint32_t i = 2; i < m[1]; i++)
    if (m[i] != m[0] * 2654435761u + i)
      return false;
  return true;
}

static void received(shared *sh, const uint32_t *m, size_t len) {
  if (!check_msg(m, len)) {
    atomic_fetch_add(&sh->torn, 1);
    return;
  }
  atomic_fetch_add(&sh->seen[m[0]], 1);
}

static int proc_fn(void *p) {
  proc_arg *a = p;
  uint64_t rng = 0x9e3779b97f4a7c15ull * (a->id + 1);
  bool live[NCHAN];
  for (int c = 0; c < NCHAN; c++)
    live[c] = true;
  unsigned sent = 0, nlive = NCHAN;
  uint32_t out[MSG_WORDS], in[NCHAN][MSG_WORDS];
  size_t out_len = make_msg(out, a->id * QUOTA, &rng);
  for (unsigned round = 0; round < 1000000; round++) {
    if ((int)sent == a->kill_me_at)
      raise(SIGKILL);
    if (sent == QUOTA && nlive == 0)
      return 0;
    mp_guard g[NCHAN + 3];
    int map[NCHAN + 3];
    unsigned n = 0;
    if (sent < QUOTA) {
      unsigned c1 = (unsigned)(rng_next(&rng) % NCHAN);
      map[n] = -1;
      g[n++] = MP_GUARD_OUT(a->w[c1], out, out_len);
      if (rng_next(&rng) % 3 == 0) {
        unsigned c2 = (c1 + 1) % NCHAN;
        map[n] = -1;
        g[n++] = MP_GUARD_OUT(a->w[c2], out, out_len);
      }
    }
    for (int c = 0; c < NCHAN; c++)
      if (live[c]) {
        map[n] = c;
        g[n++] = MP_GUARD_IN(a->r[c], in[c], sizeof in[c]);
      }
    unsigned extra = (unsigned)(rng_next(&rng) % 10);
    if (extra == 0) {
      map[n] = -2;
      g[n++] = MP_GUARD_SKIP_;
    } else if (extra == 1) {
      map[n] = -2;
      g[n++] = MP_GUARD_TIMEOUT_S(0.001);
    }
    unsigned flavour = (unsigned)(rng_next(&rng) % 3);
    int i = flavour == 0   ? mp_pri_select(g, n)
            : flavour == 1 ? mp_alt_select(g, n)
                           : mp_fair_select(g, n);
    if (i == MP_ERETIRED) {
      /* Find the retired inputs; a read that succeeds counts. */
      for (int c = 0; c < NCHAN; c++) {
        if (!live[c])
          continue;
        ssize_t len = mp_channel_read(a->r[c], in[c], sizeof in[c], 0);
        if (len == MP_ERETIRED)
          live[c] = false, nlive--;
        else if (len >= 0)
          received(a->sh, in[c], (size_t)len);
      }
      continue;
    }
    if (i < 0)
      return i; /* poisoned by a dead peer (chaos), or a bug */
    if (map[i] == -1) {
      atomic_fetch_add(&a->sh->sent[a->id], 1);
      if (++sent == QUOTA) {
        for (int c = 0; c < NCHAN; c++)
          mp_channel_retire(a->w[c]);
      } else {
        out_len = make_msg(out, a->id * QUOTA + sent, &rng);
      }
    } else if (map[i] >= 0) {
      received(a->sh, in[map[i]], g[i].received);
    }
  }
  return MP_ETIMEDOUT;
}

static void run(int victim) {
  mp_channel *ch[NCHAN];
  for (int c = 0; c < NCHAN; c++)
    assert_rc(mp_channel_new(&ch[c], &(mp_channel_opts){
                                         .buffer = c % 2 ? 2 : 0,
                                         .msg_max = MSG_WORDS * 4}),
              0);
  shared *sh = mp_test_shared_map(sizeof *sh);
  proc_arg args[NPROC];
  mp_channel_end *ends[NPROC][2 * NCHAN];
  mp_csp_process procs[NPROC];
  for (unsigned p = 0; p < NPROC; p++) {
    args[p] = (proc_arg){.id = p, .sh = sh,
                         .kill_me_at = (int)p == victim ? QUOTA / 2 : -1};
    for (int c = 0; c < NCHAN; c++) {
      assert_rc(mp_channel_reader(ch[c], &args[p].r[c]), 0);
      assert_rc(mp_channel_writer(ch[c], &args[p].w[c]), 0);
      ends[p][2 * c] = args[p].r[c];
      ends[p][2 * c + 1] = args[p].w[c];
    }
    procs[p] = (mp_csp_process){.fn = proc_fn, .arg = &args[p],
                                .ends = ends[p], .nends = 2 * NCHAN};
  }
  double t0 = mp_test_now();
  assert_rc(mp_csp_parallel(procs, NPROC), 0);
  double took = mp_test_now() - t0;
  fprintf(stderr, "  %d processes, %d messages each: %.2f s\n", NPROC, QUOTA,
          took);
  assert_int_equal(atomic_load(&sh->torn), 0);
  if (victim < 0) {
    for (unsigned p = 0; p < NPROC; p++)
      assert_rc(procs[p].result, 0);
    for (unsigned i = 0; i < NPROC * QUOTA; i++)
      if (atomic_load(&sh->seen[i]) != 1)
        fail_msg("message %u seen %u times", i, atomic_load(&sh->seen[i]));
  } else {
    assert_rc(procs[victim].result, MP_EWORKERDIED);
    for (unsigned i = 0; i < NPROC * QUOTA; i++)
      if (atomic_load(&sh->seen[i]) > 1)
        fail_msg("message %u seen %u times", i, atomic_load(&sh->seen[i]));
    /* Every message whose write completed by a live sender arrived. */
    for (unsigned p = 0; p < NPROC; p++) {
      if ((int)p == victim || procs[p].result != 0)
        continue;
      for (unsigned k = 0; k < QUOTA; k++)
        assert_int_equal(atomic_load(&sh->seen[p * QUOTA + k]), 1);
    }
  }
  for (unsigned p = 0; p < NPROC; p++)
    for (int k = 0; k < 2 * NCHAN; k++)
      mp_channel_end_free(ends[p][k]);
  for (int c = 0; c < NCHAN; c++)
    mp_channel_free(ch[c]);
  munmap(sh, sizeof *sh);
}

static void random_choices_exactly_once(void **s) {
  (void)s;
  run(-1);
}

static void random_choices_one_killed(void **s) {
  (void)s;
  run(2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(random_choices_exactly_once),
    cmocka_unit_test(random_choices_one_killed),
};

MP_TEST_MAIN(tests)
