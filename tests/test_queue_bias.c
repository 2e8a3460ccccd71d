/* test_queue_bias.c - the queue locks' bias (issue 14: 64 B at the limit):
 * a side's only user keeps its lock between calls and enters without a
 * read-modify-write; a second user of that side (thread or process, with
 * or without a timeout) takes the bias away; a bias owner killed outside
 * or inside its critical section loses, duplicates and corrupts nothing;
 * close, re-entry and a killed revoker still behave (queue_core.c,
 * "biased locks").
 *
 * White-box: includes src/queue_internal.h to look at the lock words (and
 * to set the revoke count a killed revoker would leave). Forked children
 * never call cmocka: they report through their exit status. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "queue_fixture.h"
#include "queue_internal.h"


static bool biased(mp__qlock *l) {
  return (atomic_load(&l->owner) & MP__QLOCK_BIAS) != 0;
}

/* can_bias: whether this system lets a lock take a bias (the heavy barrier
 * exists); else the cases check that none is taken. */
static bool can_bias(mp_queue *q) {
  return !q->fence && atomic_load(&q->s->fence_needed) == 0;
}

static int put_seq(mp_queue *q, uint64_t seq, double timeout) {
  unsigned char buf[64];
  memset(buf, 0x5a, sizeof buf);
  memcpy(buf, &seq, sizeof seq);
  return mp_queue_put(q, buf, sizeof buf, timeout);
}

/* expect_seqs takes n messages, checking they are first..first+n-1 in order
 * with their pattern. */
static void expect_seqs(mp_queue *q, uint64_t first, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    unsigned char buf[64];
    size_t len = 0;
    assert_rc(mp_queue_get(q, buf, sizeof buf, &len, mp_test_slack(5)), 0);
    assert_int_equal(len, 64);
    uint64_t seq;
    memcpy(&seq, buf, sizeof seq);
    assert_int_equal(seq, first + i);
    for (size_t k = sizeof seq; k < sizeof buf; k++)
      assert_int_equal(buf[k], 0x5a);
  }
}

static void expect_empty(mp_queue *q) {
  size_t len;
  unsigned char buf[64];
  assert_rc(mp_queue_get_nowait(q, buf, sizeof buf, &len), MP_EAGAIN);
}

/* expect_debt: whether plock holds a debt (one count in revoke) and
 * nothing else. */
static void expect_debt(mp_queue *q, bool debt) {
  assert_int_equal(atomic_load(&q->s->plock.debt) != 0, debt);
  assert_int_equal(atomic_load(&q->s->plock.revoke), debt ? 1 : 0);
}

/* bias_producer puts seqs first.. STREAK times from the calling thread. */
static void bias_producer(mp_queue *q, uint64_t first) {
  for (uint64_t i = 0; i < STREAK; i++)
    assert_rc(put_seq(q, first + i, MP_FOREVER), 0);
}

static void one_thread_biases_both_sides(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  for (uint64_t i = 0; i < 3 * STREAK; i++) {
    assert_rc(put_seq(q, i, MP_FOREVER), 0);
    expect_seqs(q, i, 1);
  }
  assert_int_equal(biased(&q->s->plock), can_bias(q));
  assert_int_equal(biased(&q->s->clock), can_bias(q));
  assert_int_equal(atomic_load(&q->s->plock.revoke), 0);
  mp_queue_free(q);
}

typedef struct thread_arg {
  mp_queue *q;
  double timeout;
  int rc;
  bool get; /* take a message instead of putting one */
} thread_arg;

static void *other_thread(void *arg) {
  thread_arg *a = arg;
  if (a->get) {
    unsigned char buf[64];
    size_t len;
    a->rc = mp_queue_get(a->q, buf, sizeof buf, &len, a->timeout);
  } else {
    a->rc = put_seq(a->q, 1000000, a->timeout);
  }
  return NULL;
}

static void run_other_thread(thread_arg *a) {
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_thread, a), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
}

/* A second producer thread that may not wait (timeout 0) still gets in:
 * the bias is kept, not held. */
static void second_producer_thread_takes_the_bias_away(void **state) {
  (void)state;
  for (int pass = 0; pass < 2; pass++) {
    mp_queue *q = qnew_mib();
    bias_producer(q, 0);
    assert_int_equal(biased(&q->s->plock), can_bias(q));
    thread_arg a = {.q = q, .timeout = pass == 0 ? 0 : MP_FOREVER};
    run_other_thread(&a);
    assert_rc(a.rc, 0);
    assert_false(biased(&q->s->plock));
    /* The bias was taken from a live owner: it owes a look (debt). */
    expect_debt(q, can_bias(q));
    /* The first producer goes on, on the plain lock, and settles. */
    assert_rc(put_seq(q, 1000001, 0), 0);
    expect_debt(q, false);
    expect_seqs(q, 0, STREAK);
    expect_seqs(q, 1000000, 2);
    expect_empty(q);
    mp_queue_free(q);
  }
}

/* A bias taken away from a live owner doubles the streak the next bias
 * needs. */
static void revoked_bias_needs_a_longer_streak(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  if (!can_bias(q)) {
    mp_queue_free(q);
    mp_test_skip("no heavy barrier here: no bias is taken");
  }
  bias_producer(q, 0);
  assert_true(biased(&q->s->plock));
  thread_arg a = {.q = q, .timeout = 0};
  run_other_thread(&a);
  assert_rc(a.rc, 0);
  assert_int_equal(q->s->plock.streak >> 24, 1);
  uint64_t seq = STREAK;
  for (int i = 0; i < MP__QLOCK_BIAS_STREAK + 8; i++)
    assert_rc(put_seq(q, seq++, 0), 0);
  assert_false(biased(&q->s->plock));
  for (int i = 0; i < MP__QLOCK_BIAS_STREAK; i++)
    assert_rc(put_seq(q, seq++, 0), 0);
  assert_true(biased(&q->s->plock));
  expect_seqs(q, 0, STREAK);
  expect_seqs(q, 1000000, 1);
  expect_seqs(q, STREAK, seq - STREAK);
  expect_empty(q);
  mp_queue_free(q);
}

static void second_consumer_thread_takes_the_bias_away(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  for (uint64_t i = 0; i < STREAK; i++) {
    assert_rc(put_seq(q, i, MP_FOREVER), 0);
    expect_seqs(q, i, 1);
  }
  assert_int_equal(biased(&q->s->clock), can_bias(q));
  assert_rc(put_seq(q, 7, 0), 0);
  thread_arg a = {.q = q, .timeout = 0, .get = true};
  run_other_thread(&a);
  assert_rc(a.rc, 0);
  assert_false(biased(&q->s->clock));
  assert_rc(put_seq(q, 8, 0), 0);
  expect_seqs(q, 8, 1);
  expect_empty(q);
  mp_queue_free(q);
}

static int child_puts(void *arg) {
  mp_queue *q = arg;
  return put_seq(q, 1000000, 0) == 0 && put_seq(q, 1000001, 5.0) == 0 ? 0 : 1;
}

static void second_producer_process_takes_the_bias_away(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  bias_producer(q, 0);
  assert_int_equal(biased(&q->s->plock), can_bias(q));
  pid_t pid = mp_test_fork(child_puts, q);
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  expect_debt(q, can_bias(q));
  assert_rc(put_seq(q, 1000002, 0), 0);
  expect_debt(q, false);
  expect_seqs(q, 0, STREAK);
  expect_seqs(q, 1000000, 3);
  expect_empty(q);
  mp_queue_free(q);
}

/* ---- a revoker that overtakes the owner's way in ----------------------- */

/* The owner's way in is: see its bias word and active 0, store active = 1,
 * load revoke. A revoker that counts itself, makes its barrier, finds
 * active still 0 and takes the lock between the owner's first look and
 * its store must keep the owner out: the owner's load of revoke is its
 * only later look. (Before the fix the revoker took its count back as soon
 * as it held the lock, the owner then found revoke 0 and went in beside
 * it: two consumers read one record, the chaos test's "received 2
 * times".) The fault point stops the owner exactly there and lets a
 * second thread take the lock. */
typedef struct overtake {
  mp_queue *q;
  mp__qlock *l;
  _Atomic int armed, held, release;
  pthread_t thread;
  bool started;
} overtake;

static overtake ov;

static void *overtaker(void *arg) {
  overtake *o = arg;
  bool recovered = false;
  mp__deadline d = mp__deadline_from_timeout(mp_test_slack(10));
  if (mp__queue_lock(o->q, o->l, &recovered, &d) != 0) {
    atomic_store(&o->held, -1);
    return NULL;
  }
  atomic_store(&o->held, 1);
  while (!atomic_load(&o->release))
    usleep(100);
  mp__queue_unlock(o->q, o->l);
  return NULL;
}

static void overtake_hook(mp__fault_point point, void *arg) {
  if (point != MP__FAULT_QLOCK_BIAS_ENTER || arg != ov.l ||
      !atomic_exchange(&ov.armed, 0))
    return;
  ov.started = pthread_create(&ov.thread, NULL, overtaker, &ov) == 0;
  double end = mp_test_now() + mp_test_slack(10);
  while (ov.started && atomic_load(&ov.held) == 0 && mp_test_now() < end)
    usleep(100);
}

static void overtaken_owner_stays_out(bool consumer) {
  mp_queue *q = qnew_mib();
  if (!can_bias(q)) {
    mp_queue_free(q);
    mp_test_skip("no heavy barrier here: no bias is taken");
  }
  for (uint64_t i = 0; i < STREAK; i++) {
    assert_rc(put_seq(q, i, MP_FOREVER), 0);
    expect_seqs(q, i, 1);
  }
  mp__qlock *l = consumer ? &q->s->clock : &q->s->plock;
  assert_true(biased(l));
  assert_rc(put_seq(q, 7, 0), 0);
  memset(&ov, 0, sizeof ov);
  ov.q = q;
  ov.l = l;
  atomic_store(&ov.armed, 1);
  q->lock_fault = true;
  mp__fault_set(overtake_hook);
  int rc;
  if (consumer) {
    unsigned char buf[64];
    size_t len;
    rc = mp_queue_get(q, buf, sizeof buf, &len, 0.2);
  } else {
    rc = put_seq(q, 8, 0.2);
  }
  mp__fault_set(NULL);
  q->lock_fault = false;
  assert_true(ov.started);
  assert_int_equal(atomic_load(&ov.held), 1);
  /* The other thread holds the lock: the overtaken owner waited. */
  assert_rc(rc, MP_ETIMEDOUT);
  atomic_store(&ov.release, 1);
  assert_int_equal(pthread_join(ov.thread, NULL), 0);
  assert_false(biased(l));
  /* Its next call finds the lock plain and settles what it owes. */
  assert_rc(put_seq(q, 9, 0), 0);
  expect_seqs(q, 7, 1);
  expect_seqs(q, 9, 1);
  expect_empty(q);
  assert_int_equal(atomic_load(&l->revoke), 0);
  assert_int_equal(atomic_load(&l->debt), 0);
  mp_queue_free(q);
}

static void overtaken_consumer_owner_stays_out(void **state) {
  (void)state;
  overtaken_owner_stays_out(true);
}

static void overtaken_producer_owner_stays_out(void **state) {
  (void)state;
  overtaken_owner_stays_out(false);
}

/* ---- bias owners killed ------------------------------------------------ */

typedef struct killed_arg {
  mp_queue *q;
  bool claim; /* die inside: holding an open in-place put */
  mp_test_signal ready;
} killed_arg;

static int bias_then_wait(void *arg) {
  killed_arg *a = arg;
  for (uint64_t i = 0; i < STREAK; i++)
    if (put_seq(a->q, i, MP_FOREVER) != 0)
      return 1;
  if (a->claim) {
    void *buf;
    if (mp_queue_claim(a->q, 64, &buf, MP_FOREVER) != 0)
      return 2;
    memset(buf, 0xee, 64); /* never committed */
  }
  mp_test_signal_post(&a->ready);
  for (;;)
    pause();
  return 0;
}

static void kill_bias_owner(bool claim) {
  mp_queue *q = qnew_mib();
  killed_arg a = {.q = q, .claim = claim};
  mp_test_signal_open(&a.ready);
  pid_t pid = mp_test_fork(bias_then_wait, &a);
  assert_int_equal(mp_test_signal_wait(&a.ready, mp_test_slack(10)), 1);
  assert_int_equal(biased(&q->s->plock), can_bias(q));
  assert_int_equal(atomic_load(&q->s->plock.active) != 0,
                   claim && can_bias(q));
  kill(pid, SIGKILL);
  int st = mp_test_wait(pid, mp_test_slack(10));
  assert_true(WIFSIGNALED(st));
  /* Outside: taken away at once, even without waiting. Inside: a dead
   * holder, taken over after a slice. */
  double t0 = mp_test_now();
  assert_rc(put_seq(q, 1000000, claim ? mp_test_slack(5) : 0), 0);
  assert_true(mp_test_now() - t0 < mp_test_slack(2));
  assert_false(biased(&q->s->plock));
  assert_int_equal(atomic_load(&q->s->plock.revoke), 0);
  /* A dead owner's bias taken away is no sign of a second user. */
  assert_int_equal(q->s->plock.streak >> 24, 0);
  expect_seqs(q, 0, STREAK);
  expect_seqs(q, 1000000, 1);
  expect_empty(q);
  mp_test_signal_close(&a.ready);
  mp_queue_free(q);
}

static void bias_owner_killed_outside_loses_nothing(void **state) {
  (void)state;
  kill_bias_owner(false);
}

static void bias_owner_killed_inside_commits_nothing(void **state) {
  (void)state;
  kill_bias_owner(true);
}

/* A bias taken from a live owner that is then killed: its debt is nobody's
 * to settle, so the lock's next candidate for a bias takes it off, and the
 * lock takes a bias again. */
static void killed_debtor_is_written_off(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  if (!can_bias(q)) {
    mp_queue_free(q);
    mp_test_skip("no heavy barrier here: no bias is taken");
  }
  killed_arg a = {.q = q};
  mp_test_signal_open(&a.ready);
  pid_t pid = mp_test_fork(bias_then_wait, &a);
  assert_int_equal(mp_test_signal_wait(&a.ready, mp_test_slack(10)), 1);
  assert_true(biased(&q->s->plock));
  assert_rc(put_seq(q, 1000000, 0), 0); /* taken from the live owner */
  expect_debt(q, true);
  kill(pid, SIGKILL);
  assert_true(WIFSIGNALED(mp_test_wait(pid, mp_test_slack(10))));
  /* The penalty doubled the streak: one to write the debt off, one for
   * the bias. */
  uint64_t n = 4 * ((uint64_t)MP__QLOCK_BIAS_STREAK << 1);
  for (uint64_t i = 0; i < n; i++)
    assert_rc(put_seq(q, 2000000 + i, 0), 0);
  expect_debt(q, false);
  assert_true(biased(&q->s->plock));
  expect_seqs(q, 0, STREAK);
  expect_seqs(q, 1000000, 1);
  expect_seqs(q, 2000000, n);
  expect_empty(q);
  mp_test_signal_close(&a.ready);
  mp_queue_free(q);
}

/* ---- close, re-entry, a killed revoker -------------------------------- */

static int bias_then_pause(void *arg) {
  killed_arg *a = arg;
  a->claim = false;
  return bias_then_wait(a);
}

/* A producer keeps its bias and does nothing more: close from another
 * process must still make an empty queue answer closed. */
static void close_while_a_bias_is_kept(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  killed_arg a = {.q = q};
  mp_test_signal_open(&a.ready);
  pid_t pid = mp_test_fork(bias_then_pause, &a);
  assert_int_equal(mp_test_signal_wait(&a.ready, mp_test_slack(10)), 1);
  assert_int_equal(biased(&q->s->plock), can_bias(q));
  expect_seqs(q, 0, STREAK);
  assert_rc(mp_queue_close(q), 0);
  unsigned char buf[64];
  size_t len;
  double t0 = mp_test_now();
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, mp_test_slack(5)),
            MP_ECLOSED);
  assert_true(mp_test_now() - t0 < mp_test_slack(2));
  kill(pid, SIGKILL);
  mp_test_wait(pid, mp_test_slack(10));
  mp_test_signal_close(&a.ready);
  mp_queue_free(q);
}

/* The bias owner re-entering (a signal handler inside a put, here an open
 * in-place put) gets MP_EDEADLK, as on the plain lock. */
static void bias_owner_reentry_is_edeadlk(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  bias_producer(q, 0);
  void *buf;
  assert_rc(mp_queue_claim(q, 64, &buf, 0), 0);
  assert_rc(put_seq(q, 99, 0), MP_EDEADLK);
  assert_rc(mp_queue_abandon(q), 0);
  assert_rc(put_seq(q, STREAK, 0), 0);
  expect_seqs(q, 0, STREAK + 1);
  expect_empty(q);
  mp_queue_free(q);
}

/* A revoker killed while counted leaves revoke set: the bias owner turns
 * its bias into a plain hold at its next call, and no bias is taken
 * again. */
static void killed_revoker_leaves_a_plain_lock(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  bias_producer(q, 0);
  atomic_fetch_add(&q->s->plock.revoke, 1);
  for (uint64_t i = 0; i < 2 * STREAK; i++)
    assert_rc(put_seq(q, STREAK + i, 0), 0);
  assert_false(biased(&q->s->plock));
  expect_seqs(q, 0, 3 * STREAK);
  expect_empty(q);
  mp_queue_free(q);
}

/* Where some user cannot take the heavy barrier, no bias is taken. */
static void no_bias_without_the_heavy_barrier(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  atomic_store(&q->s->fence_needed, 1);
  for (uint64_t i = 0; i < 2 * STREAK; i++) {
    assert_rc(put_seq(q, i, 0), 0);
    expect_seqs(q, i, 1);
  }
  assert_false(biased(&q->s->plock));
  assert_false(biased(&q->s->clock));
  mp_queue_free(q);
}

/* Two producer processes and one consumer, each producer in bursts long
 * enough to take a bias that the other then takes away: every message
 * arrives once, each producer's in order. */
typedef struct burst_arg {
  mp_queue *q;
  uint64_t base;
} burst_arg;

#define BURSTS 6

static int burst_producer(void *arg) {
  burst_arg *b = arg;
  for (uint64_t i = 0; i < BURSTS * STREAK; i++) {
    if (put_seq(b->q, b->base + i, 10.0) != 0)
      return 1;
    if (i % STREAK == STREAK - 1)
      usleep(2000);
  }
  return 0;
}

static void bursts_of_two_producers_lose_nothing(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  burst_arg b[2] = {{q, 0}, {q, 1000000}};
  pid_t pid[2];
  for (int i = 0; i < 2; i++)
    pid[i] = mp_test_fork(burst_producer, &b[i]);
  uint64_t next[2] = {0, 1000000};
  for (uint64_t n = 0; n < 2 * BURSTS * STREAK; n++) {
    unsigned char buf[64];
    size_t len;
    assert_rc(mp_queue_get(q, buf, sizeof buf, &len, mp_test_slack(10)), 0);
    uint64_t seq;
    memcpy(&seq, buf, sizeof seq);
    int who = seq >= 1000000;
    assert_int_equal(seq, next[who]);
    next[who]++;
  }
  for (int i = 0; i < 2; i++)
    mp_test_wait_exit(pid[i], 0, mp_test_slack(10));
  /* At most the debt of the producer whose bias was taken last. */
  assert_int_equal(atomic_load(&q->s->plock.revoke),
                   atomic_load(&q->s->plock.debt) != 0);
  mp_queue_free(q);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(one_thread_biases_both_sides),
    cmocka_unit_test(second_producer_thread_takes_the_bias_away),
    cmocka_unit_test(revoked_bias_needs_a_longer_streak),
    cmocka_unit_test(second_consumer_thread_takes_the_bias_away),
    cmocka_unit_test(second_producer_process_takes_the_bias_away),
    cmocka_unit_test(bias_owner_killed_outside_loses_nothing),
    cmocka_unit_test(bias_owner_killed_inside_commits_nothing),
    cmocka_unit_test(killed_debtor_is_written_off),
    cmocka_unit_test(close_while_a_bias_is_kept),
    cmocka_unit_test(bias_owner_reentry_is_edeadlk),
    cmocka_unit_test(killed_revoker_leaves_a_plain_lock),
    cmocka_unit_test(no_bias_without_the_heavy_barrier),
    cmocka_unit_test(bursts_of_two_producers_lose_nothing),
    cmocka_unit_test(overtaken_consumer_owner_stays_out),
    cmocka_unit_test(overtaken_producer_owner_stays_out),
};

MP_TEST_MAIN(tests)
