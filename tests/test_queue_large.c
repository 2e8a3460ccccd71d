/* test_queue_large.c - how a large message's bytes get into and out of its
 * segment: streamed in (non-temporal stores from 64 KiB on, memcpy below),
 * from sources at any alignment and of any length, into fresh and
 * recycled segments (which kept one a producer takes, and when it waits
 * for one; a kept one that will not move is passed over), read by copy
 * and in place; what is left once every user of the queue has ended (the
 * tracker removes it with the queue's guard, or, for a named queue, with
 * the link of the last tree that used it, never while another tree's
 * process still does); and a producer or a
 * consumer killed in the middle of that copy while a recycled segment is
 * in flight leaves every other message whole and no segment behind.
 *
 * White-box where it counts segments: includes src/queue_internal.h for a
 * queue's segment name prefix. Forked children report through their exit
 * status and never call cmocka. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "harness.h"
#include "os/os.h"
#include "queue_fixture.h"
#include "queue_internal.h"

/* A message: its seed in the first 4 bytes, then a pattern of the seed. */
static void fill(unsigned char *p, size_t n, uint32_t seed) {
  for (size_t i = 4; i < n; i++)
    p[i] = (unsigned char)(i * 13 + seed);
  memcpy(p, &seed, 4);
}

static bool whole(const unsigned char *p, size_t n, uint32_t *seed) {
  uint32_t s;
  memcpy(&s, p, 4);
  for (size_t i = 4; i < n; i++)
    if (p[i] != (unsigned char)(i * 13 + s))
      return false;
  if (seed != NULL)
    *seed = s;
  return true;
}

/* Lengths on both sides of the streaming threshold (64 KiB) and of a
 * 64-byte line, from sources at every offset in 16 bytes; each segment is
 * recycled for later, shorter and longer, messages. */
static void copy_any_alignment(void **state) {
  (void)state;
  /* 64 KiB of ring: messages over 16 KiB are large. */
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 64 << 10});
  static const size_t lens[] = {
      (16 << 10) + 1, (64 << 10) - 1, 64 << 10,  (64 << 10) + 1,
      (64 << 10) + 63, 200001,        1 << 20,   (1 << 20) + 13,
      100000,          (64 << 10) + 7};
  size_t nl = sizeof lens / sizeof lens[0];
  unsigned char *src = malloc((1 << 20) + 64), *out = malloc((1 << 20) + 64);
  assert_non_null(src);
  assert_non_null(out);
  for (unsigned round = 0; round < 2; round++)
    for (size_t k = 0; k < nl; k++) {
      size_t len = lens[k], off = (k + round * 7) % 16, got = 0;
      uint32_t seed = (uint32_t)(round * 100 + k), s = 0;
      fill(src + off, len, seed);
      /* Copied out... */
      assert_rc(mp_queue_put(q, src + off, len, 0), 0);
      memset(out, 0, len + 1);
      assert_rc(mp_queue_get(q, out + 1, len + 32, &got, 0), 0);
      assert_int_equal(got, len);
      assert_true(whole(out + 1, len, &s));
      assert_int_equal(s, seed);
      /* ...and read in place. */
      fill(src + off, len, seed + 50);
      assert_rc(mp_queue_put(q, src + off, len, 0), 0);
      mp_queue_msg m = {0};
      assert_rc(mp_queue_get_msg(q, &m, 0), 0);
      assert_int_equal(m.len, len);
      assert_true(whole(m.data, m.len, &s));
      assert_int_equal(s, seed + 50);
      mp_queue_msg_release(&m);
    }
  assert_int_equal(count_large(q), 0);
  free(src);
  free(out);
  mp_queue_free(q);
}

/* An in-place claim of a recycled segment (its lines are flushed from the
 * caches before it is handed out) holds exactly what was written, at
 * lengths on both sides of the threshold. */
static void claim_recycled_any_length(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 64 << 10});
  static const size_t lens[] = {(1 << 20) + 5, (64 << 10) + 1, 70000,
                                (16 << 10) + 9, 1 << 20};
  for (unsigned round = 0; round < 3; round++)
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
      size_t len = lens[k];
      uint32_t seed = (uint32_t)(round * 10 + k), s = 0;
      void *at = NULL;
      assert_rc(mp_queue_claim(q, len, &at, 0), 0);
      fill(at, len, seed);
      assert_rc(mp_queue_commit(q, len), 0);
      mp_queue_msg m = {0};
      assert_rc(mp_queue_get_msg(q, &m, 0), 0);
      assert_int_equal(m.len, len);
      assert_true(whole(m.data, m.len, &s));
      assert_int_equal(s, seed);
      mp_queue_msg_release(&m);
    }
  assert_int_equal(count_large(q), 0);
  mp_queue_free(q);
}

/* ---- killed in the middle of a copy ----------------------------------------
 * The victim streams 1 MiB messages (numbered from 1) through recycled
 * segments until it is killed at a random moment, most likely inside its
 * copy. Afterwards every message still queued is whole and numbered in
 * order, the queue takes new messages, and once drained and swept no
 * segment of a message is left (the harness checks the names once the
 * queue is freed). */
#define KILL_MSG (1 << 20)
#define KILL_ROUNDS 4

static int produce_forever(void *p) {
  mp_queue *q;
  if (mp_queue_open(&q, p) != 0)
    return 1;
  unsigned char *buf = malloc(KILL_MSG);
  if (buf == NULL)
    return 2;
  for (uint32_t i = 1;; i++) {
    fill(buf, KILL_MSG, i);
    if (mp_queue_put(q, buf, KILL_MSG, 30) != 0)
      return 3;
  }
}

static int consume_forever(void *p) {
  mp_queue *q;
  if (mp_queue_open(&q, p) != 0)
    return 1;
  unsigned char *buf = malloc(KILL_MSG);
  if (buf == NULL)
    return 2;
  for (unsigned i = 0;; i++) {
    size_t len;
    if (i % 2 == 0) {
      if (mp_queue_get(q, buf, KILL_MSG, &len, 30) != 0 ||
          !whole(buf, len, NULL))
        return 3;
    } else {
      mp_queue_msg m;
      if (mp_queue_get_msg(q, &m, 30) != 0 || !whole(m.data, m.len, NULL))
        return 4;
      mp_queue_msg_release(&m);
    }
  }
}

static void kill_soon(pid_t pid, unsigned round) {
  struct timespec ts = {0, (long)(round * 1700 + 3000) * 1000};
  nanosleep(&ts, NULL);
  kill(pid, SIGKILL);
  int st = mp_test_wait(pid, mp_test_slack(30));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/* drain takes what is queued, checking each message whole and numbered
 * after *last; returns how many. (A get may first have to take the
 * consumers' lock over from a killed consumer: it waits for that.) */
static int drain(mp_queue *q, unsigned char *buf, uint32_t *last) {
  int n = 0;
  size_t len;
  for (size_t left = mp_queue_qsize(q); left > 0; left--) {
    uint32_t s = 0;
    assert_rc(mp_queue_get(q, buf, KILL_MSG, &len, mp_test_slack(10)), 0);
    assert_int_equal(len, KILL_MSG);
    assert_true(whole(buf, len, &s));
    if (last != NULL) {
      assert_true(s > *last);
      *last = s;
    }
    n++;
  }
  assert_rc(mp_queue_get(q, buf, KILL_MSG, &len, 0), MP_EAGAIN);
  return n;
}

static void producer_killed_mid_copy(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "lgkillp");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  unsigned char *buf = malloc(KILL_MSG);
  assert_non_null(buf);
  for (unsigned round = 0; round < KILL_ROUNDS; round++) {
    pid_t pid = mp_test_fork(produce_forever, name);
    /* Take a few, so that the producer writes into recycled segments. */
    for (int i = 0; i < 3; i++) {
      size_t len;
      assert_rc(mp_queue_get(q, buf, KILL_MSG, &len, mp_test_slack(30)), 0);
      assert_true(whole(buf, len, NULL));
    }
    kill_soon(pid, round);
    uint32_t last = 0;
    drain(q, buf, &last);
    /* The dead producer's unqueued segment is an orphan: swept. */
    mp__queue_sweep(q);
    assert_int_equal(count_large(q), 0);
  }
  /* Still a working queue (a dead holder's lock is taken over). */
  fill(buf, KILL_MSG, 7);
  assert_rc(mp_queue_put(q, buf, KILL_MSG, mp_test_slack(10)), 0);
  assert_int_equal(drain(q, buf, NULL), 1);
  free(buf);
  mp_queue_free(q);
}

static void consumer_killed_mid_copy(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "lgkillc");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  unsigned char *buf = malloc(KILL_MSG);
  assert_non_null(buf);
  uint32_t seed = 1;
  for (unsigned round = 0; round < KILL_ROUNDS; round++) {
    pid_t pid = mp_test_fork(consume_forever, name);
    /* Keep it busy: a few messages queued, the first few recycled. */
    for (int i = 0; i < 6; i++) {
      fill(buf, KILL_MSG, seed++);
      assert_rc(mp_queue_put(q, buf, KILL_MSG, mp_test_slack(30)), 0);
    }
    kill_soon(pid, round);
    /* What it did not take is whole and in order. */
    uint32_t last = 0;
    drain(q, buf, &last);
    mp__queue_sweep(q);
    assert_int_equal(count_large(q), 0);
  }
  fill(buf, KILL_MSG, 7);
  assert_rc(mp_queue_put(q, buf, KILL_MSG, mp_test_slack(10)), 0);
  assert_int_equal(drain(q, buf, NULL), 1);
  free(buf);
  mp_queue_free(q);
}


/* ---- reuse first ---------------------------------------------------------
 * Once a handle has made RU_MADE segments (REUSE_MIN in queue_large.c), a producer that finds no kept
 * segment waits (at most half what a fresh one cost this process) for one
 * to come back before it makes another. */
#define RU_LEN 100000 /* large in a 64 KiB ring */
#define RU_MADE 5u

/* ru_setup: a queue whose handle has made RU_MADE segments, the first
 * message taken in place and held in *held (its segment lent to it), the
 * others queued. */
static mp_queue *ru_setup(unsigned char *buf, mp_queue_msg *held) {
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 64 << 10});
  for (uint32_t i = 1; i <= RU_MADE; i++) {
    fill(buf, RU_LEN, i);
    assert_rc(mp_queue_put(q, buf, RU_LEN, 0), 0);
  }
  assert_int_equal(atomic_load(&q->large_made), RU_MADE);
  assert_rc(mp_queue_get_msg(q, held, 0), 0);
  assert_true(whole(held->data, held->len, NULL));
  assert_int_equal(count_large(q), RU_MADE - 1);
  assert_int_equal(count_spares(q), 1); /* lent to the holder */
  return q;
}

/* ru_drain_len takes the n messages of want bytes queued, by copy, and
 * finds the queue empty after them. */
static void ru_drain_len(mp_queue *q, unsigned char *buf, int n, size_t want) {
  for (int i = 0; i < n; i++) {
    size_t len = 0;
    assert_rc(mp_queue_get(q, buf, want, &len, 0), 0);
    assert_int_equal(len, want);
    assert_true(whole(buf, len, NULL));
  }
  size_t len = 0;
  assert_rc(mp_queue_get(q, buf, want, &len, 0), MP_EAGAIN);
}

static void ru_drain(mp_queue *q, unsigned char *buf, int n) {
  ru_drain_len(q, buf, n, RU_LEN);
}

typedef struct ru_arg {
  mp_queue *q;
  mp_queue_msg *held;
  bool bogus; /* first write a slot word that names no segment */
  double released_at; /* mp_test_now() when the segment went back */
} ru_arg;

static void *ru_release_later(void *p) {
  ru_arg *a = p;
  struct timespec ts = {0, 1000000};
  nanosleep(&ts, NULL);
  if (a->bogus) {
    /* A hostile writer: slot 7 says a kept segment of 1 GiB is there. */
    atomic_store(&a->q->s->spares[7], ((uint64_t)1 << 32) | 1u);
    nanosleep(&ts, NULL);
  }
  a->released_at = mp_test_now();
  mp_queue_msg_release(a->held);
  return NULL;
}

/* ru_late: the releasing thread, on a loaded machine, ran only after the
 * producer's longest wait (100 ms) was over; the producer then rightly
 * made a segment, and the case shows nothing. The caller cleans up and
 * skips with ru_skip_late. */
static bool ru_late(mp_queue *q, const ru_arg *a, double put_at) {
  return atomic_load(&q->large_made) != RU_MADE &&
         a->released_at - put_at > 0.09;
}

#define ru_skip_late(a, put_at)                                              \
  mp_test_skip("the releasing thread ran %.0f ms after the put began, "      \
               "past its 100 ms wait (machine too loaded)",                  \
               ((a).released_at - (put_at)) * 1e3)

/* The producer waits for the held segment instead of making a fourth. */
static void reuse_waits_for_released_segment(void **state) {
  (void)state;
  unsigned char *buf = malloc(RU_LEN);
  assert_non_null(buf);
  mp_queue_msg held;
  mp_queue *q = ru_setup(buf, &held);
  uint64_t old = mp__qlarge_set_fresh_cost(UINT64_C(1) << 40);
  ru_arg a = {.q = q, .held = &held};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, ru_release_later, &a), 0);
  fill(buf, RU_LEN, 4);
  double put_at = mp_test_now();
  assert_rc(mp_queue_put(q, buf, RU_LEN, mp_test_slack(10)), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  if (ru_late(q, &a, put_at)) {
    mp__qlarge_set_fresh_cost(old);
    mp_queue_free(q);
    free(buf);
    ru_skip_late(a, put_at);
  }
  /* The released segment carries the new message: none kept, none made. */
  assert_int_equal(count_spares(q), 0);
  assert_int_equal(count_large(q), RU_MADE);
  assert_int_equal(atomic_load(&q->large_made), RU_MADE);
  assert_false(atomic_load(&q->reuse_off));
  ru_drain(q, buf, RU_MADE);
  mp__qlarge_set_fresh_cost(old);
  mp_queue_free(q);
  free(buf);
}

/* Nobody gives a segment back: the wait runs out, a fourth is made, and
 * waiting stays off until a kept segment is found again. */
static void reuse_wait_runs_out(void **state) {
  (void)state;
  unsigned char *buf = malloc(RU_LEN);
  assert_non_null(buf);
  mp_queue_msg held;
  mp_queue *q = ru_setup(buf, &held);
  /* 40 ms a MiB: the wait for 100 kB is under 2 ms. */
  uint64_t old = mp__qlarge_set_fresh_cost(40000000);
  fill(buf, RU_LEN, 4);
  assert_rc(mp_queue_put(q, buf, RU_LEN, mp_test_slack(10)), 0);
  assert_true(atomic_load(&q->reuse_off));
  assert_int_equal(atomic_load(&q->large_made), RU_MADE + 1);
  assert_int_equal(count_large(q), RU_MADE);
  mp_queue_msg_release(&held);
  assert_int_equal(count_spares(q), 1);
  fill(buf, RU_LEN, 5);
  assert_rc(mp_queue_put(q, buf, RU_LEN, mp_test_slack(10)), 0);
  assert_false(atomic_load(&q->reuse_off)); /* a kept one was found */
  assert_int_equal(count_spares(q), 0);
  ru_drain(q, buf, RU_MADE + 1);
  mp__qlarge_set_fresh_cost(old);
  mp_queue_free(q);
  free(buf);
}

/* A put that may not wait (timeout 0) makes a segment at once; so does
 * one whose process has not yet timed a fresh segment. */
static void reuse_never_waits_without_time(void **state) {
  (void)state;
  unsigned char *buf = malloc(RU_LEN);
  assert_non_null(buf);
  mp_queue_msg held;
  mp_queue *q = ru_setup(buf, &held);
  uint64_t old = mp__qlarge_set_fresh_cost(UINT64_C(1) << 40);
  fill(buf, RU_LEN, 4);
  assert_rc(mp_queue_put_nowait(q, buf, RU_LEN), 0);
  assert_false(atomic_load(&q->reuse_off));
  assert_int_equal(atomic_load(&q->large_made), RU_MADE + 1);
  mp__qlarge_set_fresh_cost(0);
  fill(buf, RU_LEN, 5);
  assert_rc(mp_queue_put(q, buf, RU_LEN, mp_test_slack(10)), 0);
  assert_false(atomic_load(&q->reuse_off));
  assert_int_equal(atomic_load(&q->large_made), RU_MADE + 2);
  mp_queue_msg_release(&held);
  ru_drain(q, buf, RU_MADE + 1);
  mp__qlarge_set_fresh_cost(old);
  mp_queue_free(q);
  free(buf);
}

/* A hostile writer's slot word that names no segment, seen during the
 * wait, costs the waiter nothing but a failed rename; a kept segment
 * shrunk from outside is made whole again before it is written. */
static void reuse_hostile_spares(void **state) {
  (void)state;
  unsigned char *buf = malloc(RU_LEN);
  assert_non_null(buf);
  mp_queue_msg held;
  mp_queue *q = ru_setup(buf, &held);
  uint64_t old = mp__qlarge_set_fresh_cost(UINT64_C(1) << 40);
  ru_arg a = {.q = q, .held = &held, .bogus = true};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, ru_release_later, &a), 0);
  fill(buf, RU_LEN, 4);
  assert_rc(mp_queue_put(q, buf, RU_LEN, mp_test_slack(10)), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  /* The bogus slot was found empty on the way and cleared. */
  uint64_t w = atomic_load(&q->s->spares[7]);
  assert_true(w == 0 || w == (((uint64_t)1 << 32) | 1u));
  atomic_store(&q->s->spares[7], 0);
  ru_drain(q, buf, RU_MADE);
  /* Now shrink a kept segment under its slot's feet. */
  mp_queue_msg m;
  fill(buf, RU_LEN, 5);
  assert_rc(mp_queue_put(q, buf, RU_LEN, 0), 0);
  assert_rc(mp_queue_get_msg(q, &m, 0), 0);
  mp_queue_msg_release(&m);
  char path[MP__QUEUE_PREFIX_MAX + 32];
  int k = -1;
  for (int i = 0; i < MP__QUEUE_SPARES && k < 0; i++)
    if ((atomic_load(&q->s->spares[i]) & 3u) == 1u)
      k = i;
  assert_true(k >= 0);
  snprintf(path, sizeof path, "/dev/shm/%s+s%d", q->prefix, k);
  assert_int_equal(truncate(path, 4096), 0);
  fill(buf, RU_LEN, 6);
  assert_rc(mp_queue_put(q, buf, RU_LEN, mp_test_slack(10)), 0);
  uint32_t s = 0;
  assert_rc(mp_queue_get_msg(q, &m, 0), 0);
  assert_int_equal(m.len, RU_LEN);
  assert_true(whole(m.data, m.len, &s));
  assert_int_equal(s, 6);
  mp_queue_msg_release(&m);
  mp__qlarge_set_fresh_cost(old);
  mp_queue_free(q);
  free(buf);
}

/* A wait while the queue holds messages is not charged: the consumer has
 * work and gives a segment back at its next take or release. With the
 * budget spent, the producer still waits for the held segment instead of
 * making another, and its charged time stays as it was. */
static void reuse_queued_wait_not_charged(void **state) {
  (void)state;
  unsigned char *buf = malloc(RU_LEN);
  assert_non_null(buf);
  mp_queue_msg held;
  mp_queue *q = ru_setup(buf, &held); /* four queued */
  uint64_t old = mp__qlarge_set_fresh_cost(UINT64_C(1) << 40);
  const int64_t spent = 200000000; /* over the longest wait: budget gone */
  atomic_store(&q->reuse_spent, spent);
  ru_arg a = {.q = q, .held = &held};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, ru_release_later, &a), 0);
  fill(buf, RU_LEN, 4);
  assert_rc(mp_queue_put(q, buf, RU_LEN, mp_test_slack(10)), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(atomic_load(&q->large_made), RU_MADE);
  assert_int_equal(count_spares(q), 0);
  assert_int_equal(atomic_load(&q->reuse_spent), spent);
  assert_false(atomic_load(&q->reuse_off));
  ru_drain(q, buf, RU_MADE);
  mp__qlarge_set_fresh_cost(old);
  mp_queue_free(q);
  free(buf);
}

/* charged_attempt: every segment held, none queued, a producer puts while
 * a thread gives one back 1 ms later. False when the put took the segment
 * at its first look (the releasing thread ran first, on a loaded machine:
 * nothing was waited, so nothing charged); the caller tries again. */
static bool charged_attempt(mp_queue **qp, mp_queue_msg *held,
                            unsigned char *buf) {
  mp_queue *q = ru_setup(buf, &held[0]);
  for (unsigned i = 1; i < RU_MADE; i++)
    assert_rc(mp_queue_get_msg(q, &held[i], 0), 0); /* all held, none queued */
  assert_int_equal(count_spares(q), RU_MADE); /* each lent to its holder */
  uint64_t old = mp__qlarge_set_fresh_cost(UINT64_C(1) << 40);
  ru_arg a = {.q = q, .held = &held[0]};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, ru_release_later, &a), 0);
  fill(buf, RU_LEN, 6);
  double put_at = mp_test_now();
  assert_rc(mp_queue_put(q, buf, RU_LEN, mp_test_slack(10)), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  mp__qlarge_set_fresh_cost(old);
  bool late = ru_late(q, &a, put_at);
  bool early = !late && atomic_load(&q->large_made) == RU_MADE &&
               atomic_load(&q->reuse_spent) == 0;
  if (late || early) {
    for (unsigned i = 1; i < RU_MADE; i++)
      mp_queue_msg_release(&held[i]);
    mp_queue_free(q);
    free(buf);
    if (late)
      ru_skip_late(a, put_at);
    return false;
  }
  *qp = q;
  return true;
}

/* With nothing queued the wait is charged; once the budget is spent, a
 * producer with nothing queued makes a segment at once (no wait, so
 * waiting stays on). Five tries: a wait that is never charged fails. */
static void reuse_empty_wait_charged(void **state) {
  (void)state;
  unsigned char *buf = NULL;
  mp_queue_msg held[RU_MADE];
  mp_queue *q = NULL;
  for (int try = 0; q == NULL; try++) {
    assert_true(try < 5);
    buf = malloc(RU_LEN);
    assert_non_null(buf);
    if (!charged_attempt(&q, held, buf))
      q = NULL;
  }
  assert_int_equal(atomic_load(&q->large_made), RU_MADE); /* reused */
  assert_true(atomic_load(&q->reuse_spent) > 0);
  assert_false(atomic_load(&q->reuse_off));
  /* Budget spent, the message queued above taken and held: none queued,
   * none free. */
  uint64_t old = mp__qlarge_set_fresh_cost(UINT64_C(1) << 40);
  atomic_store(&q->reuse_spent, 200000000);
  assert_rc(mp_queue_get_msg(q, &held[0], 0), 0);
  fill(buf, RU_LEN, 7);
  assert_rc(mp_queue_put(q, buf, RU_LEN, mp_test_slack(10)), 0);
  assert_int_equal(atomic_load(&q->large_made), RU_MADE + 1);
  assert_int_equal(atomic_load(&q->reuse_spent), 0); /* starts again */
  assert_false(atomic_load(&q->reuse_off));
  for (unsigned i = 0; i < RU_MADE; i++) {
    assert_true(whole(held[i].data, held[i].len, NULL));
    mp_queue_msg_release(&held[i]);
  }
  ru_drain(q, buf, 1);
  mp__qlarge_set_fresh_cost(old);
  mp_queue_free(q);
  free(buf);
}

static int ru_put_waiting(void *p) {
  mp_queue *q = p;
  static unsigned char b[RU_LEN];
  fill(b, RU_LEN, 4);
  mp__qlarge_set_fresh_cost(UINT64_C(1) << 40); /* waits up to 100 ms */
  return mp_queue_put(q, b, RU_LEN, 30) == 0 ? 0 : 1;
}

/* A producer killed while it waits for a kept segment holds none yet:
 * nothing is left behind, and the queue works on. */
static void reuse_killed_while_waiting(void **state) {
  (void)state;
  unsigned char *buf = malloc(RU_LEN);
  assert_non_null(buf);
  mp_queue_msg held;
  mp_queue *q = ru_setup(buf, &held);
  for (int round = 0; round < 3; round++) {
    pid_t pid = mp_test_fork(ru_put_waiting, q);
    struct timespec ts = {0, (long)(round * 2 + 1) * 1000000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int st = mp_test_wait(pid, mp_test_slack(30));
    assert_true(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0));
    /* Killed before it made one (or, on a slow machine, done: then its
     * message is queued; a sweep removes any orphan). */
    mp__queue_sweep(q);
    assert_true(count_large(q) >= (int)RU_MADE - 1 &&
                count_large(q) <= (int)RU_MADE + round);
    assert_int_equal(count_spares(q), 1);
  }
  mp_queue_msg_release(&held);
  size_t len;
  while (mp_queue_get(q, buf, RU_LEN, &len, 0) == 0)
    assert_true(whole(buf, len, NULL));
  mp__queue_sweep(q);
  assert_int_equal(count_large(q), 0);
  mp_queue_free(q);
  free(buf);
}

/* ---- cold spares -----------------------------------------------------------
 * A producer takes the spare parked longest ago; while messages are
 * queued it waits for a cold one (3 MiB parked after it), and takes a
 * warm one rather than a fresh segment when none comes. 1 MiB messages:
 * a handle makes 8 segments before it waits. */
#define CS_LEN ((size_t)1 << 20)
#define CS_MADE 8u

static bool slot_full(mp_queue *q, int k) {
  return (atomic_load(&q->s->spares[k]) & 3u) == 1u;
}

/* cs_setup: CS_MADE fresh segments (at most seven queued in a FIFO ring:
 * the first message is held in place meanwhile), their messages taken in
 * order, so slot k holds a spare parked 7 - k MiB ago. */
static mp_queue *cs_setup(unsigned char *buf) {
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 64 << 10});
  mp_queue_msg held;
  for (uint32_t i = 1; i <= CS_MADE; i++) {
    fill(buf, CS_LEN, i);
    assert_rc(mp_queue_put(q, buf, CS_LEN, 0), 0);
    if (i == 1)
      assert_rc(mp_queue_get_msg(q, &held, 0), 0);
  }
  assert_int_equal(atomic_load(&q->large_made), CS_MADE);
  assert_true(whole(held.data, held.len, NULL));
  mp_queue_msg_release(&held);
  ru_drain_len(q, buf, CS_MADE - 1, CS_LEN);
  for (int k = 0; k < (int)CS_MADE; k++)
    assert_true(slot_full(q, k));
  return q;
}

/* With nothing queued, the oldest spare: slot 0, then (slot 0 parked
 * again, now the newest) slot 1. */
static void cold_spare_oldest_first(void **state) {
  (void)state;
  unsigned char *buf = malloc(CS_LEN);
  assert_non_null(buf);
  mp_queue *q = cs_setup(buf);
  fill(buf, CS_LEN, 20);
  assert_rc(mp_queue_put(q, buf, CS_LEN, 0), 0);
  assert_false(slot_full(q, 0));
  for (int k = 1; k < (int)CS_MADE; k++)
    assert_true(slot_full(q, k));
  ru_drain_len(q, buf, 1, CS_LEN);
  assert_true(slot_full(q, 0));
  fill(buf, CS_LEN, 21);
  assert_rc(mp_queue_put(q, buf, CS_LEN, 0), 0);
  assert_true(slot_full(q, 0));
  assert_false(slot_full(q, 1));
  ru_drain_len(q, buf, 1, CS_LEN);
  assert_int_equal(atomic_load(&q->large_made), CS_MADE);
  mp_queue_free(q);
  free(buf);
}

/* cs_queue_five: five puts take slots 0-4 (the last exactly 3 MiB old);
 * slots 5-7 are left, 2, 1 and 0 MiB old: warm, with five queued. */
static void cs_queue_five(mp_queue *q, unsigned char *buf) {
  for (uint32_t i = 0; i < 5; i++) {
    fill(buf, CS_LEN, 30 + i);
    assert_rc(mp_queue_put(q, buf, CS_LEN, 0), 0);
  }
  for (int k = 0; k < (int)CS_MADE; k++)
    assert_true(slot_full(q, k) == (k >= 5));
}

typedef struct cs_arg {
  mp_queue *q;
  double taken_at;
} cs_arg;

/* cs_take_later takes one message 20 ms from now; returns a, or NULL
 * when that failed (no cmocka assertion outside the test's thread). */
static void *cs_take_later(void *p) {
  cs_arg *a = p;
  unsigned char *b = malloc(CS_LEN);
  if (b == NULL)
    return NULL;
  struct timespec ts = {0, 20 * 1000000};
  nanosleep(&ts, NULL);
  a->taken_at = mp_test_now();
  size_t len = 0;
  int rc = mp_queue_get(a->q, b, CS_LEN, &len, 0);
  free(b);
  return rc == 0 && len == CS_LEN ? a : NULL;
}

/* Five queued, only warm spares: the put waits until the consumer takes a
 * message, which parks its segment (the newest, slot 0) and makes slot 5
 * cold; the put takes slot 5. */
static void cold_spare_waited_for_while_queued(void **state) {
  (void)state;
  unsigned char *buf = malloc(CS_LEN);
  assert_non_null(buf);
  mp_queue *q = cs_setup(buf);
  uint64_t old_fresh = mp__qlarge_set_fresh_cost(UINT64_C(1) << 40);
  uint64_t old_cold = mp__qlarge_set_cold_wait(UINT64_C(1) << 40);
  cs_queue_five(q, buf);
  cs_arg a = {.q = q};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, cs_take_later, &a), 0);
  fill(buf, CS_LEN, 40);
  double put_at = mp_test_now();
  assert_rc(mp_queue_put(q, buf, CS_LEN, mp_test_slack(10)), 0);
  double took = mp_test_now() - put_at;
  void *ok;
  assert_int_equal(pthread_join(t, &ok), 0);
  assert_non_null(ok);
  mp__qlarge_set_fresh_cost(old_fresh);
  mp__qlarge_set_cold_wait(old_cold);
  bool late = a.taken_at - put_at > 0.09; /* past the 100 ms wait */
  if (!late) {
    /* It waited for the take, and ended before its wait ran out. */
    assert_true(took >= a.taken_at - put_at);
    assert_true(took < 0.1);
    assert_true(slot_full(q, 0));
    assert_false(slot_full(q, 5));
  }
  assert_int_equal(atomic_load(&q->large_made), CS_MADE);
  ru_drain_len(q, buf, 5, CS_LEN);
  mp_queue_free(q);
  free(buf);
  if (late)
    mp_test_skip("the taking thread ran %.0f ms after the put began, past "
                 "its 100 ms wait (machine too loaded)",
                 (a.taken_at - put_at) * 1e3);
}

/* Five queued, only warm spares, nobody taking: the put waits its cold
 * wait out and takes the oldest warm spare, not a fresh segment; a put
 * that may not wait takes one at once. */
static void warm_spare_beats_fresh(void **state) {
  (void)state;
  unsigned char *buf = malloc(CS_LEN);
  assert_non_null(buf);
  mp_queue *q = cs_setup(buf);
  uint64_t old_fresh = mp__qlarge_set_fresh_cost(UINT64_C(1) << 40);
  uint64_t old_cold = mp__qlarge_set_cold_wait(5000000); /* 5 ms a MiB */
  cs_queue_five(q, buf);
  fill(buf, CS_LEN, 50);
  double put_at = mp_test_now();
  assert_rc(mp_queue_put(q, buf, CS_LEN, mp_test_slack(10)), 0);
  assert_true(mp_test_now() - put_at >= 0.005);
  assert_false(slot_full(q, 5));
  assert_true(slot_full(q, 6) && slot_full(q, 7));
  fill(buf, CS_LEN, 51);
  assert_rc(mp_queue_put_nowait(q, buf, CS_LEN), 0);
  assert_false(slot_full(q, 6));
  assert_int_equal(atomic_load(&q->large_made), CS_MADE);
  assert_false(atomic_load(&q->reuse_off));
  mp__qlarge_set_fresh_cost(old_fresh);
  mp__qlarge_set_cold_wait(old_cold);
  ru_drain_len(q, buf, 7, CS_LEN);
  mp_queue_free(q);
  free(buf);
}

/* A put whose deadline falls inside the wait for a cold spare takes a
 * warm one, makes no segment, and leaves waiting on: a kept segment was
 * found. */
static void deadline_in_cold_wait_keeps_waiting_on(void **state) {
  (void)state;
  unsigned char *buf = malloc(CS_LEN);
  assert_non_null(buf);
  mp_queue *q = cs_setup(buf);
  uint64_t old_fresh = mp__qlarge_set_fresh_cost(UINT64_C(1) << 40);
  uint64_t old_cold = mp__qlarge_set_cold_wait(1000000000); /* 1 s a MiB */
  cs_queue_five(q, buf);
  fill(buf, CS_LEN, 60);
  assert_rc(mp_queue_put(q, buf, CS_LEN, 0.002), 0);
  assert_false(slot_full(q, 5)); /* the oldest of the warm ones */
  assert_int_equal(atomic_load(&q->large_made), CS_MADE);
  assert_false(atomic_load(&q->reuse_off));
  mp__qlarge_set_fresh_cost(old_fresh);
  mp__qlarge_set_cold_wait(old_cold);
  ru_drain_len(q, buf, 6, CS_LEN);
  mp_queue_free(q);
  free(buf);
}

/* spare_stuck: the fault hook that makes the move of slot 0's segment
 * fail (its target name exists) and lets the others move. */
static void spare_stuck(mp__fault_point point, void *arg) {
  if (point != MP__FAULT_SPARE_MOVE)
    return;
  const char *const *names = arg;
  char to[512];
  snprintf(to, sizeof to, "/dev/shm/%s", names[1]);
  size_t n = strlen(names[0]);
  if (n >= 3 && strcmp(names[0] + n - 3, "+s0") == 0) {
    FILE *f = fopen(to, "w");
    if (f != NULL)
      fclose(f);
  } else {
    unlink(to);
  }
}

/* A kept segment that will not move stays kept and does not hide the
 * others: the next oldest is taken, and no segment is made. */
static void spare_that_will_not_move_is_passed_over(void **state) {
  (void)state;
  unsigned char *buf = malloc(CS_LEN);
  assert_non_null(buf);
  mp_queue *q = cs_setup(buf);
  uint64_t old_fresh = mp__qlarge_set_fresh_cost(UINT64_C(1) << 40);
  fill(buf, CS_LEN, 70);
  mp__fault_set(spare_stuck);
  int rc = mp_queue_put(q, buf, CS_LEN, 0.05);
  mp__fault_set(NULL);
  assert_rc(rc, 0);
  assert_true(slot_full(q, 0));
  assert_false(slot_full(q, 1));
  assert_int_equal(atomic_load(&q->large_made), CS_MADE);
  mp__qlarge_set_fresh_cost(old_fresh);
  ru_drain_len(q, buf, 1, CS_LEN);
  mp_queue_free(q);
  free(buf);
}

/* ---- the guard: nothing left once every user has ended -------------------
 * An anonymous queue's creator registers "<prefix>+" with the resource
 * tracker (queue.c, "The guard"); the tracker removes the queue's
 * segments with it once the tree has ended, however. */

/* family_names counts the names in /dev/shm that begin "<prefix>+" and,
 * with links, go on with "=": the guard and every segment of the queue's,
 * or a named queue's links, "<prefix>+=<tracker>" (one per process tree
 * that uses it: queue.c, "The guard"). */
static int family_names(const char *prefix, bool links) {
  size_t plen = strlen(prefix);
  DIR *d = opendir("/dev/shm");
  if (d == NULL)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += strncmp(e->d_name, prefix, plen) == 0 && e->d_name[plen] == '+' &&
         (!links || e->d_name[plen + 1] == '=');
  closedir(d);
  return n;
}

static int family_count(const char *prefix) {
  return family_names(prefix, false);
}

static int family_links(const char *prefix) {
  return family_names(prefix, true);
}

static bool shm_exists(const char *name) {
  char path[MP__QUEUE_PREFIX_MAX + 16];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  return access(path, F_OK) == 0;
}

/* family_gone waits (bounded) until nothing of the family is left. */
static bool family_gone(const char *prefix) {
  double end = mp_test_now() + mp_test_slack(10);
  while (family_count(prefix) != 0 && mp_test_now() < end)
    usleep(5000);
  return family_count(prefix) == 0;
}

typedef struct gt_tree {
  int report;       /* write end: the prefix, then one byte per member ready */
  bool killed;      /* the members wait to be killed; else they exit unfreed */
  const char *name; /* a named queue, opened again by the member; or NULL */
} gt_tree;

/* gt_member puts two large messages and, in the root, takes one in place
 * and holds it (a segment lent to it); then waits to be killed, or exits
 * without freeing anything. */
static int gt_member(mp_queue *q, const gt_tree *t, bool root) {
  unsigned char *buf = malloc(CS_LEN);
  if (buf == NULL)
    return 1;
  for (uint32_t i = 0; i < 2; i++) {
    fill(buf, CS_LEN, i + 1);
    if (mp_queue_put(q, buf, CS_LEN, 10.0) != 0)
      return 2;
  }
  mp_queue_msg held;
  if (root && mp_queue_get_msg(q, &held, 10.0) != 0)
    return 3;
  char c = 1;
  if (write(t->report, &c, 1) != 1)
    return 4;
  if (!t->killed)
    exit(0); /* no free, no release: the tree just ends */
  alarm(60);
  for (;;)
    pause();
}

static int gt_root(void *p) {
  gt_tree *t = p;
  setpgid(0, 0); /* a group of its own: the test kills the tree at once */
  mp_queue *q;
  if (mp_queue_new(
          &q, &(mp_queue_opts){.capacity = 64 << 10, .name = t->name}) != 0)
    return 10;
  char prefix[MP__QUEUE_PREFIX_MAX] = {0};
  snprintf(prefix, sizeof prefix, "%s", q->prefix);
  if (write(t->report, prefix, sizeof prefix) != (ssize_t)sizeof prefix)
    return 11;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return 12;
  /* A member of a named queue's tree that opens it again shares the
   * tree's link. */
  if (pid == 0 && t->name != NULL && mp_queue_open(&q, t->name) != 0)
    return 13;
  return gt_member(q, t, pid != 0);
}

/* gt_run starts a tree, waits until its two members hold segments, kills
 * it or lets it exit, and says whether its queue's family went with it. */
static void gt_run(bool killed, const char *name) {
  /* A tracker of this process would take the tree's registration, and
   * live on with this process. */
  assert_int_equal(mp_resource_tracker_pid(), 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  gt_tree t = {.report = fds[1], .killed = killed, .name = name};
  pid_t root = mp_test_fork(gt_root, &t);
  close(fds[1]);
  char prefix[MP__QUEUE_PREFIX_MAX];
  bool ready = read(fds[0], prefix, sizeof prefix) == (ssize_t)sizeof prefix;
  for (int i = 0; ready && i < 2; i++) {
    char c;
    ready = read(fds[0], &c, 1) == 1;
  }
  close(fds[0]);
  if (!ready || killed)
    kill(-root, SIGKILL);
  mp_test_wait(root, mp_test_slack(10));
  assert_true(ready);
  assert_true(family_gone(prefix));
  assert_false(shm_exists(prefix)); /* a named queue's own name too */
}

/* Every process that uses the queue killed, with messages queued and one
 * held in place: the tracker removes the guard and every segment. */
static void killed_tree_leaves_no_segment(void **state) {
  (void)state;
  gt_run(true, NULL);
}

/* The same when every user exits without freeing anything. */
static void unfreed_tree_leaves_no_segment(void **state) {
  (void)state;
  gt_run(false, NULL);
}

/* A named queue's tree: its tracker removes the name, then, through the
 * tree's link, the segments (no other process uses the queue). */
static void named_killed_tree_leaves_no_segment(void **state) {
  (void)state;
  char name[64];
  gt_run(true, mp_test_name(name, sizeof name, "gtkill"));
}

static void named_unfreed_tree_leaves_no_segment(void **state) {
  (void)state;
  char name[64];
  gt_run(false, mp_test_name(name, sizeof name, "gtexit"));
}

typedef struct gd_hold {
  mp_queue *q;
  _Atomic int held, release;
} gd_hold;

static void *gd_hold_lock(void *arg) {
  gd_hold *h = arg;
  bool rec = false;
  /* The consumers' lock: nothing was taken yet, so no bias is on it. */
  int rc = mp__queue_lock(h->q, &h->q->s->clock, &rec, NULL);
  atomic_store(&h->held, rc == 0 ? 1 : -1);
  while (!atomic_load(&h->release))
    usleep(1000);
  return NULL; /* never gives it back: the handle is gone by then */
}

/* gd_root: the last user's free cannot take the consumers' lock (a
 * thread holds it), so it removes nothing and must leave the guard
 * registered: the tracker then removes the family once the tree has
 * ended. (Unregistered, as a free that removed everything does, the
 * guard would be gone and the segment left for good.) Writes the
 * prefix. */
static int gd_root(void *arg) {
  int report = *(int *)arg;
  gd_hold h = {0};
  if (mp_queue_new(&h.q, &(mp_queue_opts){.capacity = 64 << 10}) != 0)
    return 1;
  char prefix[MP__QUEUE_PREFIX_MAX] = {0};
  snprintf(prefix, sizeof prefix, "%s", h.q->prefix);
  if (write(report, prefix, sizeof prefix) != (ssize_t)sizeof prefix)
    return 2;
  unsigned char *buf = calloc(1, CS_LEN);
  if (buf == NULL || mp_queue_put(h.q, buf, CS_LEN, 1.0) != 0)
    return 3;
  pthread_t t;
  if (pthread_create(&t, NULL, gd_hold_lock, &h) != 0)
    return 4;
  while (atomic_load(&h.held) == 0)
    usleep(1000);
  if (atomic_load(&h.held) != 1)
    return 5;
  mp_queue_free(h.q);
  atomic_store(&h.release, 1);
  pthread_join(t, NULL);
  free(buf);
  return 0;
}

static void discard_that_cannot_lock_leaves_the_guard(void **state) {
  (void)state;
  assert_int_equal(mp_resource_tracker_pid(), 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = mp_test_fork(gd_root, &fds[1]);
  close(fds[1]);
  char prefix[MP__QUEUE_PREFIX_MAX];
  bool got = read(fds[0], prefix, sizeof prefix) == (ssize_t)sizeof prefix;
  close(fds[0]);
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  assert_true(got);
  assert_true(family_gone(prefix));
}

/* lu_fork starts the queue's last user: a child that says it runs, waits
 * on *go until its parent has freed the queue, takes the message of seed
 * (a large one), puts another, frees the queue and exits 0 if nothing of
 * the family of prefix is left (its free removed the message it put).
 * Returns its pid once it runs; the parent writes to go[1] and closes it. */
static pid_t lu_fork(mp_queue *q, const char *prefix, uint32_t seed,
                     int go[2]) {
  int in[2];
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(in), 0);
  unsigned char *buf = malloc(CS_LEN);
  assert_non_null(buf);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Entered in the queue's users before fork returned: the parent frees
     * only then, and this process is the last user. */
    char c = 1;
    close(go[1]);
    close(in[0]);
    if (write(in[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
      _exit(1);
    size_t len = 0;
    uint32_t got = 0;
    if (mp_queue_get(q, buf, CS_LEN, &len, 10.0) != 0 || len != CS_LEN ||
        !whole(buf, len, &got) || got != seed)
      _exit(2);
    fill(buf, CS_LEN, seed + 1);
    if (mp_queue_put(q, buf, CS_LEN, 10.0) != 0)
      _exit(3);
    mp_queue_free(q);
    _exit(family_count(prefix) == 0 ? 0 : 4);
  }
  free(buf);
  close(go[0]);
  close(in[1]);
  char c;
  assert_int_equal(read(in[0], &c, 1), 1);
  close(in[0]);
  return pid;
}

/* lu_put puts a large message of seed. */
static void lu_put(mp_queue *q, uint32_t seed) {
  unsigned char *buf = malloc(CS_LEN);
  assert_non_null(buf);
  fill(buf, CS_LEN, seed);
  assert_rc(mp_queue_put(q, buf, CS_LEN, 0), 0);
  free(buf);
}

/* lu_last: the child, now the last user, leaves nothing behind. */
static void lu_last(pid_t pid, const char *prefix, int go[2]) {
  assert_int_equal(write(go[1], "g", 1), 1);
  close(go[1]);
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  assert_int_equal(family_count(prefix), 0);
}

/* A process that frees its handle while another still uses the queue
 * leaves the guard and the segments to it (and its own tracker end goes:
 * nothing else was registered); the last user's free removes them. */
static void guard_follows_the_last_user(void **state) {
  (void)state;
  assert_int_equal(mp_resource_tracker_pid(), 0);
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 64 << 10});
  char prefix[MP__QUEUE_PREFIX_MAX];
  snprintf(prefix, sizeof prefix, "%s", q->prefix);
  assert_int_equal(family_count(prefix), 1); /* the guard */
  assert_true(mp_resource_tracker_pid() > 0);
  lu_put(q, 80);
  int go[2];
  pid_t pid = lu_fork(q, prefix, 80, go);
  mp_queue_free(q);
  assert_int_equal(mp_resource_tracker_pid(), 0); /* its list is empty */
  assert_int_equal(family_count(prefix), 2);      /* the guard, the message */
  lu_last(pid, prefix, go);
}

/* The creator of a named queue frees it first: the name goes, and the
 * last user's free (a child here) removes the segments and the links. */
static void named_last_user_after_the_creator(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "lastnamed");
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 64 << 10, .name = name});
  char prefix[MP__QUEUE_PREFIX_MAX];
  snprintf(prefix, sizeof prefix, "%s", q->prefix);
  assert_int_equal(family_links(prefix), 1);
  lu_put(q, 85);
  int go[2];
  pid_t pid = lu_fork(q, prefix, 85, go);
  mp_queue_free(q);
  assert_false(shm_exists(prefix));
  assert_int_equal(family_count(prefix), 2); /* the link, the message */
  lu_last(pid, prefix, go);
}

/* ---- a named queue used by two process trees ---------------------------
 * The creator's tree dies while a process of another tree still uses the
 * queue: its tracker removes the name and its link, never the segments
 * the other tree still takes. The other tree dies too: its tracker
 * removes the rest. */
typedef struct tt_tree {
  const char *name;
  int report, go;
  bool scribble; /* the opener clears the table of users once it is in */
} tt_tree;

/* tt_root makes a tree of its own with a named queue holding n large
 * messages (seeds first, first + 1, ...), reports what it wrote, then waits
 * to be killed. Returns a step that failed. */
static int tt_root(const tt_tree *t, uint32_t first, uint32_t n,
                   const void *report, size_t report_len) {
  setpgid(0, 0);
  mp_queue *q;
  if (mp_queue_new(
          &q, &(mp_queue_opts){.capacity = 64 << 10, .name = t->name}) != 0)
    return 1;
  unsigned char *buf = malloc(CS_LEN);
  if (buf == NULL)
    return 2;
  for (uint32_t i = 0; i < n; i++) {
    fill(buf, CS_LEN, first + i);
    if (mp_queue_put(q, buf, CS_LEN, 10.0) != 0)
      return 3;
  }
  if (report == NULL) { /* the tracker's pid, known only now */
    pid_t tracker = mp_resource_tracker_pid();
    if (write(t->report, &tracker, sizeof tracker) != (ssize_t)sizeof tracker)
      return 4;
  } else if (write(t->report, report, report_len) != (ssize_t)report_len) {
    return 4;
  }
  alarm(60);
  for (;;)
    pause();
}

static int tt_creator(void *p) {
  return tt_root(p, 90, 2, "c", 1);
}

static int tt_opener(void *p) {
  const tt_tree *t = p;
  setpgid(0, 0);
  mp_queue *q;
  char c = 'o';
  if (mp_queue_open(&q, t->name) != 0)
    return 1;
  /* Hostile, or broken: the table says nobody uses the queue. */
  for (int i = 0; t->scribble && i < MP__QUEUE_PROCS; i++)
    atomic_store(&q->s->procs[i], 0);
  if (write(t->report, &c, 1) != 1 || read(t->go, &c, 1) != 1)
    return 1;
  unsigned char *buf = malloc(CS_LEN);
  size_t len = 0;
  uint32_t seed = 0;
  c = buf != NULL && mp_queue_get(q, buf, CS_LEN, &len, 10.0) == 0 &&
      len == CS_LEN && whole(buf, len, &seed) && seed == 90;
  if (write(t->report, &c, 1) != 1)
    return 2;
  alarm(60);
  for (;;)
    pause(); /* killed holding the other message's queued segment */
}

static void tt_run(bool scribble) {
  assert_int_equal(mp_resource_tracker_pid(), 0);
  char name[64];
  mp_test_name(name, sizeof name, "twotrees");
  char prefix[MP__QUEUE_PREFIX_MAX];
  snprintf(prefix, sizeof prefix, "mp_%s", name);
  int rep[2], go[2];
  assert_int_equal(pipe(rep), 0);
  assert_int_equal(pipe(go), 0);
  tt_tree t = {
      .name = name, .report = rep[1], .go = go[0], .scribble = scribble};
  char c = 0;
  pid_t creator = mp_test_fork(tt_creator, &t);
  bool ready = read(rep[0], &c, 1) == 1 && c == 'c';
  pid_t opener = ready ? mp_test_fork(tt_opener, &t) : -1;
  ready = ready && read(rep[0], &c, 1) == 1 && c == 'o';
  kill(-creator, SIGKILL);
  mp_test_wait(creator, mp_test_slack(10));
  /* The creator's tracker removes the name, then its tree's link. */
  double end = mp_test_now() + mp_test_slack(10);
  while (ready && (shm_exists(prefix) || family_links(prefix) != 1) &&
         mp_test_now() < end)
    usleep(5000);
  bool name_gone = !shm_exists(prefix);
  int links = family_links(prefix);
  int kept = family_count(prefix) - links;
  bool got = false;
  if (ready && write(go[1], "g", 1) == 1)
    got = read(rep[0], &c, 1) == 1 && c == 1;
  if (opener > 0) {
    kill(-opener, SIGKILL);
    mp_test_wait(opener, mp_test_slack(10));
  }
  close(rep[0]);
  close(rep[1]);
  close(go[0]);
  close(go[1]);
  assert_true(ready);
  assert_true(name_gone);
  assert_int_equal(links, 1); /* the opener's tree's */
  assert_int_equal(kept, 2);  /* both messages' segments */
  assert_true(got);
  assert_true(family_gone(prefix));
}

static void named_queue_outlives_a_tree_for_another(void **state) {
  (void)state;
  tt_run(false);
}

/* The same when the table of users was cleared: the opener still maps the
 * queue, and the tracker looks at who maps it before removing anything. */
static void named_queue_outlives_a_scribbled_table(void **state) {
  (void)state;
  tt_run(true);
}

typedef struct seen_name {
  const char *name;
  int seen;   /* entries of exactly name */
  int family; /* entries that begin "<name>" */
} seen_name;

static int count_tracked(const mp_tracked_object *o, void *arg) {
  seen_name *f = arg;
  f->seen += strcmp(o->name, f->name) == 0;
  f->family += strncmp(o->name, f->name, strlen(f->name)) == 0;
  return 0;
}

/* The tracker of a named queue's tree is killed first, then the tree:
 * the clean-up after a dead tracker (mp-shm clean) removes the name,
 * then, through the link, the segments. */
static int dt_root(void *p) {
  return tt_root(p, 95, 1, NULL, 0);
}

static void named_dead_tracker_cleaned_up_after(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "deadtracker");
  char prefix[MP__QUEUE_PREFIX_MAX];
  snprintf(prefix, sizeof prefix, "mp_%s", name);
  int rep[2];
  assert_int_equal(pipe(rep), 0);
  tt_tree t = {.name = name, .report = rep[1]};
  pid_t root = mp_test_fork(dt_root, &t);
  pid_t tracker = 0;
  bool ready =
      read(rep[0], &tracker, sizeof tracker) == (ssize_t)sizeof tracker &&
      tracker > 0;
  close(rep[0]);
  close(rep[1]);
  /* The tracker has written the name and the link to its state file (a
   * registration it had not read yet would die with it). */
  double until = mp_test_now() + mp_test_slack(10);
  seen_name f = {.name = prefix};
  while (ready && f.family < 2 && mp_test_now() < until) {
    f.family = 0;
    if (mp_resource_tracker_list(count_tracked, &f) != 0 || f.family < 2)
      usleep(5000);
  }
  if (ready) {
    kill(tracker, SIGKILL);
    /* Not our child: gone once kill says so. */
    double end = mp_test_now() + mp_test_slack(10);
    while (kill(tracker, 0) == 0 && mp_test_now() < end)
      usleep(5000);
  }
  kill(-root, SIGKILL);
  mp_test_wait(root, mp_test_slack(10));
  assert_true(ready);
  assert_true(shm_exists(prefix));           /* nobody removed it */
  assert_int_equal(family_count(prefix), 2); /* the link, the message */
  size_t removed = 0;
  assert_rc(mp_resource_tracker_remove_dead(&removed), 0);
  assert_true(removed >= 3);
  assert_false(shm_exists(prefix));
  assert_int_equal(family_count(prefix), 0);
}

/* The tree's link cannot be made (something else has its name): the
 * queue works without it, the tracker holds no entry for it, and what
 * has the name is left alone. */
static void named_link_taken_queue_works(void **state) {
  (void)state;
  /* An anonymous queue starts the tracker the link is named after. */
  mp_queue *qa = qnew(&(mp_queue_opts){.capacity = 64 << 10});
  pid_t tracker = mp_resource_tracker_pid();
  assert_true(tracker > 0);
  char name[64], link[MP__QUEUE_PREFIX_MAX + 64], path[sizeof link + 16];
  mp_test_name(name, sizeof name, "linktaken");
  snprintf(link, sizeof link, "mp_%s+=%d.%llu", name, (int)tracker,
           (unsigned long long)mp__os_pidns());
  snprintf(path, sizeof path, "/dev/shm/%s", link);
  assert_int_equal(mkdir(path, 0700), 0);
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 64 << 10, .name = name});
  assert_string_equal(q->guard, ""); /* no link of its own */
  seen_name f = {.name = link};
  assert_rc(mp_resource_tracker_list(count_tracked, &f), 0);
  assert_int_equal(f.seen, 0);
  unsigned char *buf = malloc(CS_LEN);
  assert_non_null(buf);
  fill(buf, CS_LEN, 70);
  assert_rc(mp_queue_put(q, buf, CS_LEN, 0), 0);
  size_t len = 0;
  uint32_t seed = 0;
  assert_rc(mp_queue_get(q, buf, CS_LEN, &len, 0), 0);
  assert_true(whole(buf, len, &seed) && seed == 70);
  mp_queue_free(q);
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(rmdir(path), 0);
  snprintf(link, sizeof link, "mp_%s", name);
  assert_int_equal(family_count(link), 0); /* the free removed the rest */
  mp_queue_free(qa);
  free(buf);
}

/* An in-place claim of a fresh segment touches its pages and times it:
 * the estimate the wait is bounded by. */
static void claim_times_fresh_segment(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 64 << 10});
  uint64_t old = mp__qlarge_set_fresh_cost(0);
  void *at;
  assert_rc(mp_queue_claim(q, RU_LEN, &at, 0), 0);
  for (size_t i = 0; i < RU_LEN; i += 4096)
    assert_int_equal(((unsigned char *)at)[i], 0);
  fill(at, RU_LEN, 9);
  assert_rc(mp_queue_commit(q, RU_LEN), 0);
  assert_true(mp__qlarge_set_fresh_cost(old) > 0);
  unsigned char *buf = malloc(RU_LEN);
  assert_non_null(buf);
  ru_drain(q, buf, 1);
  free(buf);
  mp_queue_free(q);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(copy_any_alignment),
    cmocka_unit_test(claim_recycled_any_length),
    cmocka_unit_test(producer_killed_mid_copy),
    cmocka_unit_test(consumer_killed_mid_copy),
    cmocka_unit_test(reuse_waits_for_released_segment),
    cmocka_unit_test(reuse_wait_runs_out),
    cmocka_unit_test(reuse_never_waits_without_time),
    cmocka_unit_test(reuse_hostile_spares),
    cmocka_unit_test(reuse_queued_wait_not_charged),
    cmocka_unit_test(reuse_empty_wait_charged),
    cmocka_unit_test(reuse_killed_while_waiting),
    cmocka_unit_test(claim_times_fresh_segment),
    cmocka_unit_test(cold_spare_oldest_first),
    cmocka_unit_test(cold_spare_waited_for_while_queued),
    cmocka_unit_test(deadline_in_cold_wait_keeps_waiting_on),
    cmocka_unit_test(spare_that_will_not_move_is_passed_over),
    cmocka_unit_test(warm_spare_beats_fresh),
    cmocka_unit_test(killed_tree_leaves_no_segment),
    cmocka_unit_test(unfreed_tree_leaves_no_segment),
    cmocka_unit_test(named_killed_tree_leaves_no_segment),
    cmocka_unit_test(named_unfreed_tree_leaves_no_segment),
    cmocka_unit_test(guard_follows_the_last_user),
    cmocka_unit_test(discard_that_cannot_lock_leaves_the_guard),
    cmocka_unit_test(named_last_user_after_the_creator),
    cmocka_unit_test(named_queue_outlives_a_tree_for_another),
    cmocka_unit_test(named_queue_outlives_a_scribbled_table),
    cmocka_unit_test(named_dead_tracker_cleaned_up_after),
    cmocka_unit_test(named_link_taken_queue_works),
};

MP_TEST_MAIN(tests)
