/* test_queue_hold.c - the FIFO consumer's holding back (issue 14: 64 B at
 * the limit; queue_fifo.c, "Holding back"): the only consumer of a side,
 * behind a streaming producer by less than a few lines of small records,
 * lets the producer run ahead before its next look at the tail. These
 * cases check that a stream still arrives whole and in order, and the
 * cases where it must not hold back, or only rarely: its own thread's
 * puts (a hold-back for nothing backs off), a get that waited, a get that
 * may not wait, large records, a side with two consumers.
 *
 * White-box: includes src/queue_internal.h to read the handle's count of
 * hold-backs and the futex word a waiting consumer registers on. Forked
 * children never call cmocka: they report through their exit status. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "queue_fixture.h"
#include "queue_internal.h"


static bool can_bias(mp_queue *q) {
  return !q->fence && atomic_load(&q->s->fence_needed) == 0;
}

static int put_seq(mp_queue *q, uint64_t seq, size_t size) {
  unsigned char buf[1024];
  memset(buf, 0x5a, size);
  memcpy(buf, &seq, sizeof seq);
  return mp_queue_put(q, buf, size, MP_FOREVER);
}

/* get_seq takes one message of size bytes (timeout 0: may not wait) and
 * checks it is seq with its pattern. */
static void get_seq(mp_queue *q, uint64_t seq, size_t size, double timeout) {
  unsigned char buf[1024];
  size_t len = 0;
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, timeout), 0);
  assert_int_equal(len, size);
  uint64_t got;
  memcpy(&got, buf, sizeof got);
  assert_int_equal(got, seq);
  for (size_t k = sizeof got; k < size; k++)
    assert_int_equal(buf[k], 0x5a);
}

/* pairs puts and takes n messages one by one from the calling thread. */
static void pairs(mp_queue *q, uint64_t first, uint64_t n, size_t size,
                  double timeout) {
  for (uint64_t i = first; i < first + n; i++) {
    assert_rc(put_seq(q, i, size), 0);
    get_seq(q, i, size, timeout);
  }
}

/* A producer process streams small messages to the parent, the clock's
 * bias owner: it holds back (most likely: the count is not asserted, it
 * depends on the two cores' speeds) and everything arrives in order. */
#define STREAM 200000
static void stream_arrives_whole_and_in_order(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  pairs(q, 0, STREAK, 64, mp_test_slack(5));
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    for (uint64_t i = 0; i < STREAM; i++)
      if (put_seq(q, STREAK + i, 64) != 0)
        _exit(1);
    _exit(0);
  }
  uint64_t before = q->holds, bad = 0;
  /* A quick consumer (the checks of get_seq would keep it behind). */
  for (uint64_t i = 0; i < STREAM; i++) {
    unsigned char buf[64];
    size_t len = 0;
    uint64_t got = 0;
    int rc = mp_queue_get(q, buf, sizeof buf, &len, mp_test_slack(5));
    memcpy(&got, buf, sizeof got);
    if (rc != 0 || len != 64 || got != STREAK + i || buf[63] != 0x5a) {
      assert_rc(rc, 0);
      bad++;
      break;
    }
  }
  assert_int_equal(bad, 0);
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  size_t len;
  unsigned char buf[64];
  assert_rc(mp_queue_get_nowait(q, buf, sizeof buf, &len), MP_EAGAIN);
  printf("# %llu hold-backs in %d messages\n",
         (unsigned long long)(q->holds - before), STREAM);
  mp_queue_free(q);
}

/* The consumer's own thread puts each message: a hold-back finds the tail
 * where it was, and the next ones back off (2, 4, ... 1024 chances let
 * pass): about 18 in 12,000 gets, not one per get. */
static void own_puts_hold_back_rarely(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  pairs(q, 0, 12000, 64, mp_test_slack(5));
  if (can_bias(q)) {
    assert_true(q->holds >= 1);
    assert_true(q->holds <= 40);
  } else {
    assert_int_equal(q->holds, 0);
  }
  mp_queue_free(q);
}

/* Gets that may not wait never hold back. */
static void nowait_gets_never_hold_back(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  pairs(q, 0, STREAK, 64, mp_test_slack(5));
  uint64_t before = q->holds;
  pairs(q, STREAK, 5000, 64, 0);
  assert_int_equal(q->holds, before);
  mp_queue_free(q);
}

/* Records of 512 bytes and more never hold back: one is eight lines. */
static void large_records_never_hold_back(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  pairs(q, 0, 5000, 1000, mp_test_slack(5));
  assert_int_equal(q->holds, 0);
  mp_queue_free(q);
}

typedef struct producer_arg {
  mp_queue *q;
  int n;
  int rc;
} producer_arg;

/* late_producer puts each message only once the consumer is asleep
 * waiting for it (registered on not_empty). */
static void *late_producer(void *arg) {
  producer_arg *a = arg;
  for (int i = 0; i < a->n; i++) {
    while ((atomic_load(&a->q->s->not_empty) & MP__QUEUE_SLEEP_MASK) == 0)
      usleep(100);
    if ((a->rc = put_seq(a->q, 1000 + (uint64_t)i, 64)) != 0)
      return NULL;
  }
  return NULL;
}

/* A get that waited for its message (a round trip, a consumer faster
 * than its producer) never holds back. */
static void waited_gets_never_hold_back(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  pairs(q, 0, STREAK, 64, mp_test_slack(5));
  uint64_t before = q->holds;
  producer_arg a = {.q = q, .n = 20};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, late_producer, &a), 0);
  for (int i = 0; i < a.n; i++)
    get_seq(q, 1000 + (uint64_t)i, 64, mp_test_slack(10));
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_rc(a.rc, 0);
  assert_int_equal(q->holds, before);
  mp_queue_free(q);
}

static void *other_get(void *arg) {
  mp_queue *q = arg;
  get_seq(q, 7, 64, mp_test_slack(5));
  return NULL;
}

/* A side with two consumers (no bias) never holds back. */
static void two_consumers_never_hold_back(void **state) {
  (void)state;
  mp_queue *q = qnew_mib();
  pairs(q, 0, STREAK, 64, mp_test_slack(5));
  assert_rc(put_seq(q, 7, 64), 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_get, q), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_false(atomic_load(&q->s->clock.owner) & MP__QLOCK_BIAS);
  uint64_t before = q->holds;
  /* Fewer takes than a new bias needs. */
  pairs(q, 100, 200, 64, mp_test_slack(5));
  assert_int_equal(q->holds, before);
  mp_queue_free(q);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(stream_arrives_whole_and_in_order),
    cmocka_unit_test(own_puts_hold_back_rarely),
    cmocka_unit_test(nowait_gets_never_hold_back),
    cmocka_unit_test(large_records_never_hold_back),
    cmocka_unit_test(waited_gets_never_hold_back),
    cmocka_unit_test(two_consumers_never_hold_back),
};

MP_TEST_MAIN(tests)
