/* test_queue.c - Queue, SimpleQueue, LifoQueue and PriorityQueue: order,
 * bounds, timeouts, too-small buffers, close, typed and batch calls, large
 * messages (copied and zero-copy), the three homes, damaged shared memory
 * refused on open or reported on use, and what a process killed inside put
 * or get leaves behind (G-QUEUE-1..5 and 7 in docs/queue.md), with a short
 * chaos run (the long one is tests/stress/test_chaos_queue.c).
 *
 * White-box cases include src/queue_internal.h to reach the shared state:
 * they take a queue lock and die holding it, or scribble on the header,
 * as a crashing or hostile process would.
 *
 * Forked children never call cmocka: they report through their exit
 * status (0 = fine, other values name the step that failed). */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault.h"
#include "harness.h"
#include "os/process_os.h"
#include "queue_fixture.h"
#include "queue_internal.h"

/* ---- helpers ------------------------------------------------------------ */

static void put_str(mp_queue *q, const char *s) {
  assert_rc(mp_queue_put_str(q, s, MP_FOREVER), 0);
}

static void expect_str(mp_queue *q, const char *want) {
  char buf[256];
  assert_rc(mp_queue_get_str(q, buf, sizeof buf, 1.0), 0);
  assert_string_equal(buf, want);
}

static void fill_pattern(unsigned char *p, size_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    p[i] = (unsigned char)(x >> 16);
  }
}

static void *shared_map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  assert_true(p != MAP_FAILED);
  return p;
}

/* ---- order and basic calls ------------------------------------------------
 */

static void fifo_order_and_sizes(void **state) {
  (void)state;
  mp_queue *q = qnew(NULL);
  assert_int_equal(mp_queue_qsize(q), 0);
  assert_int_equal(mp_queue_empty(q), 1);
  assert_int_equal(mp_queue_full(q), 0);
  assert_int_equal(mp_queue_maxsize(q), 0);
  put_str(q, "one");
  put_str(q, "two");
  assert_rc(mp_queue_put(q, NULL, 0, MP_FOREVER), 0); /* empty message */
  put_str(q, "three");
  assert_int_equal(mp_queue_qsize(q), 4);
  assert_int_equal(mp_queue_empty(q), 0);
  expect_str(q, "one");
  expect_str(q, "two");
  char buf[8];
  size_t len = 99;
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 0), 0);
  assert_int_equal(len, 0);
  expect_str(q, "three");
  assert_int_equal(mp_queue_qsize(q), 0);
  mp_queue_free(q);
  mp_queue_free(NULL);
}

/* Every small length, one at a time and batched, comes back byte for
 * byte, with nothing written past it (the inline 16-byte moves of
 * queue_internal.h's mp__qcopy, both ways). */
static void every_small_length_round_trips(void **state) {
  (void)state;
  mp_queue *q = qnew(NULL);
  unsigned char in[160], out[176], all[80 * 80];
  for (unsigned i = 0; i < sizeof in; i++)
    in[i] = (unsigned char)(i * 7 + 1);
  for (size_t len = 0; len <= 130; len++) {
    assert_rc(mp_queue_put(q, in, len, 0), 0);
    memset(out, 0xee, sizeof out);
    size_t got = 999;
    assert_rc(mp_queue_get(q, out, sizeof out, &got, 0), 0);
    assert_int_equal(got, len);
    assert_memory_equal(out, in, len);
    for (size_t i = len; i < sizeof out; i++)
      assert_int_equal(out[i], 0xee);
  }
  /* Batched: lengths 0..79 back to back, then taken in one call. */
  size_t lens[80], back[80];
  size_t total = 0;
  for (size_t k = 0; k < 80; k++) {
    lens[k] = k;
    memcpy(all + total, in, k);
    total += k;
  }
  assert_int_equal(mp_queue_put_batch(q, all, lens, 80, 0), 80);
  unsigned char *outs = malloc(total + 16);
  assert_non_null(outs);
  memset(outs, 0xee, total + 16);
  assert_int_equal(mp_queue_get_batch(q, outs, total, back, 80, 0), 80);
  assert_memory_equal(back, lens, sizeof lens);
  assert_memory_equal(outs, all, total);
  for (size_t i = total; i < total + 16; i++)
    assert_int_equal(outs[i], 0xee);
  free(outs);
  mp_queue_free(q);
}

static void simple_queue_is_a_fifo(void **state) {
  (void)state;
  mp_queue *q = NULL;
  assert_rc(mp_simple_queue_new(&q), 0);
  assert_rc(mp_queue_put_int64(q, 42, MP_FOREVER), 0);
  assert_rc(mp_queue_put_int64(q, 43, MP_FOREVER), 0);
  int64_t v;
  assert_rc(mp_queue_get_int64(q, &v, 0), 0);
  assert_int_equal(v, 42);
  assert_rc(mp_queue_get_int64(q, &v, 0), 0);
  assert_int_equal(v, 43);
  assert_int_equal(mp_queue_empty(q), 1);
  assert_rc(mp_queue_close(q), 0);
  mp_queue_free(q);
}

/* The queue module's example (seed 001, 2.8.4): q = LifoQueue();
 * put(34); put(56); put(12) -> 12, 56, 34. */
static void lifo_order(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.order = MP_QUEUE_LIFO});
  int64_t in[] = {34, 56, 12}, want[] = {12, 56, 34}, v;
  for (int i = 0; i < 3; i++)
    assert_rc(mp_queue_put_int64(q, in[i], 0), 0);
  assert_int_equal(mp_queue_qsize(q), 3);
  for (int i = 0; i < 3; i++) {
    assert_rc(mp_queue_get_int64(q, &v, 0), 0);
    assert_int_equal(v, want[i]);
  }
  /* Interleaved: the newest is always first. */
  assert_rc(mp_queue_put_int64(q, 1, 0), 0);
  assert_rc(mp_queue_put_int64(q, 2, 0), 0);
  assert_rc(mp_queue_get_int64(q, &v, 0), 0);
  assert_int_equal(v, 2);
  assert_rc(mp_queue_put_int64(q, 3, 0), 0);
  assert_rc(mp_queue_get_int64(q, &v, 0), 0);
  assert_int_equal(v, 3);
  assert_rc(mp_queue_get_int64(q, &v, 0), 0);
  assert_int_equal(v, 1);
  mp_queue_free(q);
}

/* The seed's PriorityQueue example: [5,100], [7,200], [3,"hello"],
 * [4,{"name":"alex"}] come out as 3, 4, 5, 7; equal keys keep their order. */
static void priority_order(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.order = MP_QUEUE_PRIORITY});
  assert_rc(mp_queue_put_priority(q, 5, "100", 3, 0), 0);
  assert_rc(mp_queue_put_priority(q, 7, "200", 3, 0), 0);
  assert_rc(mp_queue_put_priority(q, 3, "hello", 5, 0), 0);
  assert_rc(mp_queue_put_priority(q, 4, "{\"name\":\"alex\"}", 15, 0), 0);
  assert_rc(mp_queue_put_priority(q, 4, "second 4", 8, 0), 0);
  assert_rc(mp_queue_put_priority(q, -1, "negative", 8, 0), 0);
  assert_rc(mp_queue_put(q, "zero", 4, 0), 0); /* priority 0 */
  const char *want[] = {"negative", "zero", "hello", "{\"name\":\"alex\"}",
                        "second 4", "100",  "200"};
  int64_t prios[] = {-1, 0, 3, 4, 4, 5, 7};
  for (int i = 0; i < 7; i++) {
    char buf[64];
    size_t len;
    int64_t prio = 99;
    assert_rc(mp_queue_get_priority(q, &prio, buf, sizeof buf, &len, 0), 0);
    buf[len] = '\0';
    assert_string_equal(buf, want[i]);
    assert_int_equal(prio, prios[i]);
  }
  mp_queue_free(q);
}

static void priority_heap_many(void **state) {
  (void)state;
  enum { N = 2000 };
  mp_queue *q =
      qnew(&(mp_queue_opts){.order = MP_QUEUE_PRIORITY, .maxsize = N});
  uint32_t x = 7;
  for (int i = 0; i < N; i++) {
    x = x * 1103515245u + 12345u;
    int64_t prio = (int64_t)(x >> 20) % 50;
    int64_t body[2] = {prio, i};
    assert_rc(mp_queue_put_priority(q, prio, body, sizeof body, 0), 0);
  }
  assert_int_equal(mp_queue_full(q), 1);
  assert_rc(mp_queue_put_priority(q, 0, "x", 1, 0), MP_EAGAIN);
  int64_t last_prio = INT64_MIN, last_seq = -1;
  for (int i = 0; i < N; i++) {
    int64_t body[2];
    size_t len;
    assert_rc(mp_queue_get(q, body, sizeof body, &len, 0), 0);
    assert_true(body[0] >= last_prio);
    if (body[0] == last_prio)
      assert_true(body[1] > last_seq); /* FIFO among equals */
    last_prio = body[0];
    last_seq = body[1];
  }
  mp_queue_free(q);
}

static void put_priority_needs_a_priority_queue(void **state) {
  (void)state;
  mp_queue *q = qnew(NULL);
  assert_rc(mp_queue_put_priority(q, 1, "x", 1, 0), MP_EINVAL);
  mp_queue *l = qnew(&(mp_queue_opts){.order = MP_QUEUE_LIFO});
  assert_rc(mp_queue_put_priority(l, 1, "x", 1, 0), MP_EINVAL);
  /* get_priority works on any queue, with priority 0. */
  assert_rc(mp_queue_put(q, "x", 1, 0), 0);
  int64_t prio = 5;
  char c;
  size_t len;
  assert_rc(mp_queue_get_priority(q, &prio, &c, 1, &len, 0), 0);
  assert_int_equal(prio, 0);
  mp_queue_free(l);
  mp_queue_free(q);
}

/* ---- bounds and timeouts
 * ----------------------------------------------------- */

static void maxsize_full_and_empty_told_apart(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_FIFO, MP_QUEUE_LIFO, MP_QUEUE_PRIORITY};
  for (int o = 0; o < 3; o++) {
    mp_queue *q = qnew(&(mp_queue_opts){.maxsize = 2, .order = orders[o]});
    assert_int_equal(mp_queue_maxsize(q), 2);
    char c;
    size_t len;
    assert_rc(mp_queue_get_nowait(q, &c, 1, &len), MP_EAGAIN); /* Empty */
    assert_rc(mp_queue_put_nowait(q, "a", 1), 0);
    assert_rc(mp_queue_put_nowait(q, "b", 1), 0);
    assert_int_equal(mp_queue_full(q), 1);
    assert_rc(mp_queue_put_nowait(q, "c", 1), MP_EAGAIN); /* Full */
    double t0 = mp_test_now();
    assert_rc(mp_queue_put(q, "c", 1, 0.05), MP_ETIMEDOUT);
    double waited = mp_test_now() - t0;
    assert_true(waited >= 0.04 && waited < mp_test_slack(2.0));
    assert_rc(mp_queue_get_nowait(q, &c, 1, &len), 0);
    assert_int_equal(mp_queue_full(q), 0);
    assert_rc(mp_queue_put_nowait(q, "c", 1), 0);
    assert_int_equal(mp_queue_qsize(q), 2);
    mp_queue_free(q);
  }
}

static void get_timeout_is_bounded(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.spin_ns = -1});
  char c;
  size_t len;
  double t0 = mp_test_now();
  assert_rc(mp_queue_get(q, &c, 1, &len, 0.1), MP_ETIMEDOUT);
  double waited = mp_test_now() - t0;
  assert_true(waited >= 0.09 && waited < mp_test_slack(2.0));
  mp_queue_free(q);
}

static void byte_capacity_bounds_puts(void **state) {
  (void)state;
  /* 4 KiB ring, 1 KiB inline: four 1000-byte records fit (8 bytes of
   * header each), a fifth does not. */
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096, .max_message = 1024});
  unsigned char buf[1000] = {0};
  int n = 0;
  while (mp_queue_put_nowait(q, buf, sizeof buf) == 0)
    n++;
  assert_int_equal(n, 4);
  assert_rc(mp_queue_put_nowait(q, buf, sizeof buf), MP_EAGAIN);
  /* Small ones still fit in what is left. */
  assert_rc(mp_queue_put_nowait(q, buf, 8), 0);
  size_t len;
  assert_rc(mp_queue_get_nowait(q, buf, sizeof buf, &len), 0);
  assert_rc(mp_queue_put_nowait(q, buf, sizeof buf), 0);
  mp_queue_free(q);
}

typedef struct delayed {
  mp_queue *q;
  double delay;
  int rc;
} delayed;

static void *delayed_put(void *arg) {
  delayed *d = arg;
  usleep((useconds_t)(d->delay * 1e6));
  d->rc = mp_queue_put_str(d->q, "late", MP_FOREVER);
  return NULL;
}

static void *delayed_get(void *arg) {
  delayed *d = arg;
  usleep((useconds_t)(d->delay * 1e6));
  char buf[64];
  size_t len;
  d->rc = mp_queue_get(d->q, buf, sizeof buf, &len, MP_FOREVER);
  return NULL;
}

static void blocked_get_wakes_on_put(void **state) {
  (void)state;
  long spins[] = {0, -1};
  for (int i = 0; i < 2; i++) {
    mp_queue *q = qnew(&(mp_queue_opts){.spin_ns = spins[i]});
    delayed d = {.q = q, .delay = 0.05};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, delayed_put, &d), 0);
    char buf[64];
    assert_rc(mp_queue_get_str(q, buf, sizeof buf, mp_test_slack(10)), 0);
    assert_string_equal(buf, "late");
    pthread_join(t, NULL);
    assert_rc(d.rc, 0);
    mp_queue_free(q);
  }
}

static void blocked_put_wakes_on_get(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_FIFO, MP_QUEUE_LIFO};
  for (int i = 0; i < 2; i++) {
    mp_queue *q =
        qnew(&(mp_queue_opts){.maxsize = 1, .spin_ns = -1, .order = orders[i]});
    put_str(q, "first");
    delayed d = {.q = q, .delay = 0.05};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, delayed_get, &d), 0);
    assert_rc(mp_queue_put_str(q, "second", mp_test_slack(10)), 0);
    pthread_join(t, NULL);
    assert_rc(d.rc, 0);
    expect_str(q, "second");
    mp_queue_free(q);
  }
}

/* ---- too big, too small ---------------------------------------------------
 */

static void small_buffer_leaves_message_queued(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_FIFO, MP_QUEUE_LIFO, MP_QUEUE_PRIORITY};
  for (int o = 0; o < 3; o++) {
    mp_queue *q = qnew(&(mp_queue_opts){.order = orders[o]});
    put_str(q, "hello, world");
    char buf[32];
    size_t len = 0;
    assert_rc(mp_queue_get(q, buf, 5, &len, 0), MP_ETOOBIG);
    assert_int_equal(len, 12);
    assert_int_equal(mp_queue_qsize(q), 1);
    /* get_str needs the NUL too. */
    assert_rc(mp_queue_get_str(q, buf, 12, 0), MP_ETOOBIG);
    assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 0), 0);
    assert_int_equal(len, 12);
    assert_memory_equal(buf, "hello, world", 12);
    mp_queue_free(q);
  }
}

static void put_over_max_message_is_refused(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.max_message = 100});
  unsigned char buf[101] = {0};
  assert_rc(mp_queue_put(q, buf, 101, 0), MP_ETOOBIG);
  assert_int_equal(mp_queue_qsize(q), 0);
  assert_rc(mp_queue_put(q, buf, 100, 0), 0);
  size_t lens[2] = {10, 101};
  assert_int_equal(mp_queue_put_batch(q, buf, lens, 2, 0), MP_ETOOBIG);
  assert_int_equal(mp_queue_qsize(q), 1);
  mp_queue_free(q);
}

static void typed_helpers(void **state) {
  (void)state;
  mp_queue *q = qnew(NULL);
  assert_rc(mp_queue_put_int64(q, INT64_MIN, 0), 0);
  assert_rc(mp_queue_put_double(q, 2.5, 0), 0);
  assert_rc(mp_queue_put_str(q, "", 0), 0);
  assert_rc(mp_queue_put(q, "abc", 3, 0), 0);
  int64_t i;
  double d;
  char s[8];
  assert_rc(mp_queue_get_int64(q, &i, 0), 0);
  assert_true(i == INT64_MIN);
  assert_rc(mp_queue_get_double(q, &d, 0), 0);
  assert_true(d == 2.5);
  assert_rc(mp_queue_get_str(q, s, sizeof s, 0), 0);
  assert_string_equal(s, "");
  /* A message of another length is left for mp_queue_get. */
  assert_rc(mp_queue_get_int64(q, &i, 0), MP_EPROTO);
  assert_rc(mp_queue_get_double(q, &d, 0), MP_EPROTO);
  assert_int_equal(mp_queue_qsize(q), 1);
  assert_rc(mp_queue_get_str(q, s, sizeof s, 0), 0);
  assert_string_equal(s, "abc");
  assert_rc(mp_queue_get_int64(q, &i, 0), MP_EAGAIN);
  mp_queue_free(q);
}

static void bad_arguments(void **state) {
  (void)state;
  mp_queue *q = NULL;
  char c;
  size_t len;
  assert_rc(mp_queue_new(NULL, NULL), MP_EINVAL);
  assert_rc(mp_queue_new(&q, &(mp_queue_opts){.order = 7}), MP_EINVAL);
  assert_rc(mp_queue_new(&q, &(mp_queue_opts){.capacity = (size_t)2 << 30}),
            MP_EINVAL);
  assert_rc(
      mp_queue_new(&q, &(mp_queue_opts){.capacity = 8192, .inline_max = 4096}),
      MP_EINVAL);
  assert_rc(mp_queue_new(&q, &(mp_queue_opts){.name = "bad/name"}), MP_EINVAL);
  assert_rc(mp_queue_put(NULL, "x", 1, 0), MP_EINVAL);
  assert_rc(mp_queue_get(NULL, &c, 1, &len, 0), MP_EINVAL);
  assert_int_equal(mp_queue_qsize(NULL), MP_EINVAL);
  assert_rc(mp_queue_empty(NULL), MP_EINVAL);
  assert_rc(mp_queue_full(NULL), MP_EINVAL);
  assert_rc(mp_queue_close(NULL), MP_EINVAL);
  assert_rc(mp_queue_poll(NULL), MP_EINVAL);
  assert_rc(mp_queue_task_done(NULL), MP_EINVAL);
  assert_rc(mp_queue_join(NULL, 0), MP_EINVAL);
  assert_rc(mp_queue_open(&q, NULL), MP_EINVAL);
  q = qnew(NULL);
  assert_rc(mp_queue_put(q, NULL, 1, 0), MP_EINVAL);
  assert_rc(mp_queue_get(q, &c, 1, NULL, 0), MP_EINVAL);
  assert_rc(mp_queue_get(q, NULL, 1, &len, 0), MP_EINVAL);
  assert_rc(mp_queue_put_str(q, NULL, 0), MP_EINVAL);
  assert_rc(mp_queue_get_str(q, NULL, 0, 0), MP_EINVAL);
  assert_rc(mp_queue_get_int64(q, NULL, 0), MP_EINVAL);
  assert_rc(mp_queue_get_priority(q, NULL, &c, 1, &len, 0), MP_EINVAL);
  assert_rc(mp_queue_get_msg(q, NULL, 0), MP_EINVAL);
  assert_int_equal(mp_queue_get_batch(q, &c, 1, &len, 0, 0), MP_EINVAL);
  assert_int_equal(mp_queue_put_batch(q, &c, NULL, 1, 0), MP_EINVAL);
  assert_int_equal(mp_queue_put_batch(q, NULL, NULL, 0, 0), 0);
  assert_rc(mp_queue_task_done(q), MP_EINVAL); /* not joinable */
  assert_rc(mp_queue_join(q, 0), MP_EINVAL);
  assert_rc(mp_queue_destroy(q), MP_EINVAL); /* not in place */
  mp_queue_free(q);
  assert_int_equal(mp_queue_size_for(&(mp_queue_opts){.name = "x"}), MP_EINVAL);
  assert_int_equal(mp_queue_size_for(&(mp_queue_opts){.order = 9}), MP_EINVAL);
}

/* ---- close
 * --------------------------------------------------------------------- */

static void close_drains_then_refuses(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_FIFO, MP_QUEUE_PRIORITY};
  for (int o = 0; o < 2; o++) {
    mp_queue *q = qnew(&(mp_queue_opts){.order = orders[o]});
    put_str(q, "left");
    assert_int_equal(mp_queue_closed(q), 0);
    assert_rc(mp_queue_close(q), 0);
    assert_rc(mp_queue_close(q), 0); /* idempotent */
    assert_int_equal(mp_queue_closed(q), 1);
    assert_rc(mp_queue_put_str(q, "more", 0), MP_ECLOSED);
    assert_int_equal(mp_queue_poll(q), 1);
    expect_str(q, "left");
    char buf[8];
    assert_rc(mp_queue_get_str(q, buf, sizeof buf, MP_FOREVER), MP_ECLOSED);
    assert_rc(mp_queue_get_str(q, buf, sizeof buf, 0), MP_ECLOSED);
    mp_queue_free(q);
  }
}

typedef struct closer {
  mp_queue *q;
  int put_rc, get_rc;
} closer;

static void *blocked_getter(void *arg) {
  closer *c = arg;
  char buf[8];
  size_t len;
  c->get_rc = mp_queue_get(c->q, buf, sizeof buf, &len, MP_FOREVER);
  return NULL;
}

static void *blocked_putter(void *arg) {
  closer *c = arg;
  c->put_rc = mp_queue_put(c->q, "x", 1, MP_FOREVER);
  return NULL;
}

static void close_wakes_every_waiter(void **state) {
  (void)state;
  mp_queue *empty = qnew(&(mp_queue_opts){.spin_ns = -1});
  mp_queue *full = qnew(&(mp_queue_opts){.maxsize = 1, .spin_ns = -1});
  put_str(full, "x");
  closer g[3], p[3];
  pthread_t tg[3], tp[3];
  for (int i = 0; i < 3; i++) {
    g[i] = (closer){.q = empty, .get_rc = 1};
    p[i] = (closer){.q = full, .put_rc = 1};
    assert_int_equal(pthread_create(&tg[i], NULL, blocked_getter, &g[i]), 0);
    assert_int_equal(pthread_create(&tp[i], NULL, blocked_putter, &p[i]), 0);
  }
  usleep(100000);
  assert_rc(mp_queue_close(empty), 0);
  assert_rc(mp_queue_close(full), 0);
  for (int i = 0; i < 3; i++) {
    pthread_join(tg[i], NULL);
    pthread_join(tp[i], NULL);
    assert_rc(g[i].get_rc, MP_ECLOSED);
    assert_rc(p[i].put_rc, MP_ECLOSED);
  }
  mp_queue_free(empty);
  mp_queue_free(full);
}

static void poll_reports_ready(void **state) {
  (void)state;
  mp_queue *q = qnew(NULL);
  assert_int_equal(mp_queue_poll(q), 0);
  put_str(q, "x");
  assert_int_equal(mp_queue_poll(q), 1);
  expect_str(q, "x");
  assert_int_equal(mp_queue_poll(q), 0);
  mp_queue_free(q);
}

/* ---- batches
 * ------------------------------------------------------------------- */

static void batch_put_and_get(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_FIFO, MP_QUEUE_LIFO};
  for (int o = 0; o < 2; o++) {
    mp_queue *q = qnew(&(mp_queue_opts){.order = orders[o]});
    const char *words = "alphabetagammadelta";
    size_t lens[] = {5, 4, 5, 5};
    assert_int_equal(mp_queue_put_batch(q, words, lens, 4, 0), 4);
    assert_int_equal(mp_queue_qsize(q), 4);
    char buf[64];
    size_t got[8];
    /* Room for two only: two come back, packed. */
    assert_int_equal(mp_queue_get_batch(q, buf, 10, got, 8, 0), 2);
    if (orders[o] == MP_QUEUE_FIFO) {
      assert_int_equal(got[0], 5);
      assert_int_equal(got[1], 4);
      assert_memory_equal(buf, "alphabeta", 9);
    } else {
      assert_int_equal(got[0], 5);
      assert_int_equal(got[1], 5);
      assert_memory_equal(buf, "deltagamma", 10);
    }
    /* The next does not fit at all: MP_ETOOBIG and its length. */
    assert_int_equal(mp_queue_get_batch(q, buf, 3, got, 8, 0), MP_ETOOBIG);
    assert_int_equal(got[0], orders[o] == MP_QUEUE_FIFO ? 5 : 4);
    assert_int_equal(mp_queue_get_batch(q, buf, sizeof buf, got, 1, 0), 1);
    assert_int_equal(mp_queue_get_batch(q, buf, sizeof buf, got, 8, 0), 1);
    assert_int_equal(mp_queue_get_batch(q, buf, sizeof buf, got, 8, 0),
                     MP_EAGAIN);
    mp_queue_free(q);
  }
}

static void batch_put_waits_for_room(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.maxsize = 3});
  unsigned char buf[10] = "0123456789";
  size_t lens[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  /* Three fit; the rest time out: the count put is returned. */
  assert_int_equal(mp_queue_put_batch(q, buf, lens, 10, 0.05), 3);
  assert_int_equal(mp_queue_put_batch(q, buf, lens, 1, 0), MP_EAGAIN);
  delayed d = {.q = q, .delay = 0.05};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, delayed_get, &d), 0);
  assert_int_equal(mp_queue_put_batch(q, buf + 3, lens, 1, mp_test_slack(10)), 1);
  pthread_join(t, NULL);
  char out[16];
  size_t got[16];
  assert_int_equal(mp_queue_get_batch(q, out, sizeof out, got, 16, 0), 3);
  assert_memory_equal(out, "123", 3);
  mp_queue_free(q);
}

/* ---- the ring wraps
 * ------------------------------------------------------------- */

static void ring_wraps_with_mixed_sizes(void **state) {
  (void)state;
  /* A 4 KiB ring: records of many sizes wrap around it many times, and
   * each comes out whole and in order. */
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096});
  unsigned char in[1024], out[1024];
  uint32_t x = 1, put = 0, got = 0;
  uint32_t lens[4096];
  while (got < 4000) {
    while (put < 4000) {
      x = x * 1103515245u + 12345u;
      uint32_t len = (x >> 16) % 1000;
      fill_pattern(in, len, put);
      int rc = mp_queue_put_nowait(q, in, len);
      if (rc == MP_EAGAIN)
        break;
      assert_rc(rc, 0);
      lens[put++] = len;
    }
    size_t len;
    assert_rc(mp_queue_get_nowait(q, out, sizeof out, &len), 0);
    assert_int_equal(len, lens[got]);
    fill_pattern(in, len, got);
    assert_memory_equal(in, out, len);
    got++;
  }
  assert_int_equal(mp_queue_qsize(q), 0);
  mp_queue_free(q);
}

/* ---- large messages
 * ----------------------------------------------------------- */

static void large_message_copy_and_zero_copy(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_FIFO, MP_QUEUE_LIFO, MP_QUEUE_PRIORITY};
  size_t size = 300000;
  unsigned char *in = malloc(size), *out = malloc(size);
  assert_non_null(in);
  assert_non_null(out);
  fill_pattern(in, size, 9);
  for (int o = 0; o < 3; o++) {
    mp_queue *q = qnew(&(mp_queue_opts){.capacity = 16384, .order = orders[o]});
    assert_rc(mp_queue_put(q, in, size, 0), 0);
    assert_int_equal(count_large(q), 1);
    size_t len = 0;
    /* Too small: stays queued, length told. */
    assert_rc(mp_queue_get(q, out, 100, &len, 0), MP_ETOOBIG);
    assert_int_equal(len, size);
    assert_int_equal(count_large(q), 1);
    /* A typed get does not take it either. */
    int64_t v;
    assert_rc(mp_queue_get_int64(q, &v, 0), MP_EPROTO);
    assert_rc(mp_queue_get(q, out, size, &len, 0), 0);
    assert_int_equal(len, size);
    assert_memory_equal(in, out, size);
    assert_int_equal(count_large(q), 0);
    /* Zero copy. */
    assert_rc(mp_queue_put(q, in, size, 0), 0);
    mp_queue_msg m;
    assert_rc(mp_queue_get_msg(q, &m, 0), 0);
    assert_int_equal(m.len, size);
    assert_memory_equal(m.data, in, size);
    /* Parked at once, lent to the consumer until released. */
    assert_int_equal(count_large(q), 0);
    assert_int_equal(count_spares(q), 1);
    mp_queue_msg_release(&m);
    assert_int_equal(count_large(q), 0);
    assert_int_equal(count_spares(q), 1);
    assert_null(m.data);
    mp_queue_msg_release(&m); /* released twice: a no-op */
    assert_rc(mp_queue_put(q, "small", 5, 0), 0);
    assert_rc(mp_queue_get_msg(q, &m, 0), 0);
    assert_int_equal(m.len, 5);
    assert_memory_equal(m.data, "small", 5);
    mp_queue_msg_release(&m);
    assert_rc(mp_queue_get_msg(q, &m, 0), MP_EAGAIN);
    mp_queue_free(q);
  }
  free(in);
  free(out);
}

/* A copy consumer keeps its segment for the next producer, which writes
 * into pages that exist instead of new ones. */
static int exit_at_once(void *arg) {
  (void)arg;
  return 0;
}

static void large_segments_are_reused(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096});
  size_t size = 300000;
  unsigned char *in = malloc(size), *out = malloc(size);
  size_t len;
  fill_pattern(in, size, 1);
  assert_rc(mp_queue_put(q, in, 200000, 0), 0);
  assert_rc(mp_queue_get(q, out, size, &len, 0), 0);
  assert_int_equal(count_large(q), 0);
  assert_int_equal(count_spares(q), 1);
  /* A smaller message reuses the larger spare. */
  fill_pattern(in, size, 2);
  assert_rc(mp_queue_put(q, in, 100000, 0), 0);
  assert_int_equal(count_spares(q), 0);
  assert_int_equal(count_large(q), 1);
  assert_rc(mp_queue_get(q, out, size, &len, 0), 0);
  assert_int_equal(len, 100000);
  assert_memory_equal(in, out, 100000);
  assert_int_equal(count_spares(q), 1);
  /* A larger one does not fit in it: a new segment. */
  assert_rc(mp_queue_put(q, in, size, 0), 0);
  assert_int_equal(count_spares(q), 1);
  assert_int_equal(count_large(q), 1);
  /* A zero-copy consumer parks its segment at once, lent to itself until
   * it releases the message (and keeps its mapping for the next one that
   * reuses it): no spare to take meanwhile. */
  mp_queue_msg m;
  assert_rc(mp_queue_get_msg(q, &m, 0), 0);
  assert_memory_equal(m.data, in, size);
  assert_int_equal(count_spares(q), 2);
  assert_int_equal(count_large(q), 0);
  int lent = 0;
  for (int i = 0; i < MP__QUEUE_SPARES; i++)
    lent += (atomic_load(&q->s->spares[i]) & 3u) == 3u;
  assert_int_equal(lent, 1);
  mp_queue_msg_release(&m);
  assert_int_equal(count_spares(q), 2);
  assert_int_equal(count_large(q), 0);
  lent = 0;
  for (int i = 0; i < MP__QUEUE_SPARES; i++)
    lent += (atomic_load(&q->s->spares[i]) & 3u) == 3u;
  assert_int_equal(lent, 0);
  /* Taken again (the larger one), written, read through the mappings. */
  fill_pattern(in, size, 3);
  assert_rc(mp_queue_put(q, in, size, 0), 0);
  assert_rc(mp_queue_get_msg(q, &m, 0), 0);
  assert_memory_equal(m.data, in, size);
  mp_queue_msg_release(&m);
  assert_int_equal(count_spares(q), 2);
  /* A slot left half moved by a dead process is settled by the next
   * user: the spare is still there, so it is used. */
  pid_t dead = mp_test_fork(exit_at_once, NULL);
  mp_test_wait_exit(dead, 0, mp_test_slack(10));
  int k = -1;
  for (int i = 0; i < MP__QUEUE_SPARES; i++)
    if ((atomic_load(&q->s->spares[i]) & 3u) == 1)
      k = i;
  assert_true(k >= 0);
  /* The slot records a process tag: the pid and its namespace index. */
  uint32_t tag = ((uint32_t)q->ns << 24) | (uint32_t)dead;
  atomic_store(&q->s->spares[k], ((uint64_t)tag << 32) | 2u);
  fill_pattern(in, size, 3);
  assert_rc(mp_queue_put(q, in, 100000, 0), 0);
  assert_int_equal(count_spares(q), 1);
  assert_rc(mp_queue_get(q, out, size, &len, 0), 0);
  assert_memory_equal(in, out, 100000);
  free(in);
  free(out);
  mp_queue_free(q);
}

static void large_messages_in_a_batch(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096});
  size_t lens[] = {10, 5000, 20};
  size_t total = 5030;
  unsigned char *in = malloc(total), *out = malloc(total);
  fill_pattern(in, total, 3);
  assert_int_equal(mp_queue_put_batch(q, in, lens, 3, 0), 3);
  size_t got[4];
  /* The first is small; the large one is taken on its own. */
  assert_int_equal(mp_queue_get_batch(q, out, total, got, 4, 0), 1);
  assert_int_equal(got[0], 10);
  assert_int_equal(mp_queue_get_batch(q, out + 10, total, got, 4, 0), 1);
  assert_int_equal(got[0], 5000);
  assert_int_equal(mp_queue_get_batch(q, out + 5010, 20, got, 4, 0), 1);
  assert_memory_equal(in, out, total);
  free(in);
  free(out);
  mp_queue_free(q);
}

static void last_free_discards_large_messages(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096});
  char prefix[MP__QUEUE_PREFIX_MAX];
  snprintf(prefix, sizeof prefix, "%s", q->prefix);
  unsigned char big[10000] = {1};
  for (int i = 0; i < 3; i++)
    assert_rc(mp_queue_put(q, big, sizeof big, 0), 0);
  assert_int_equal(count_large(q), 3);
  mp_queue_free(q);
  /* Nobody else used it: its segments went with it. */
  DIR *d = opendir("/dev/shm");
  struct dirent *e;
  int left = 0;
  while ((e = readdir(d)) != NULL)
    left += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  assert_int_equal(left, 0);
}

/* late_child: the fault hook that makes a forked child run late (its
 * atfork handler enters it in the queue's users only 300 ms on). */
static void late_child(mp__fault_point point, void *arg) {
  (void)arg;
  if (point == MP__FAULT_QUEUE_CHILD_ENTER)
    usleep(300 * 1000);
}

/* takes_both: the child takes the small and the large message. */
static int takes_both(void *arg) {
  mp_queue *q = arg;
  unsigned char buf[10000];
  size_t len = 0;
  if (mp_queue_get(q, buf, sizeof buf, &len, 10.0) != 0 || len != 1 ||
      buf[0] != 'x')
    return 1;
  if (mp_queue_get(q, buf, sizeof buf, &len, 10.0) != 0 || len != sizeof buf ||
      buf[0] != 7 || buf[sizeof buf - 1] != 7)
    return 2;
  return 0;
}

/* queue_of_both: a queue holding what takes_both takes. */
static mp_queue *queue_of_both(void) {
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096});
  unsigned char big[10000];
  memset(big, 7, sizeof big);
  assert_rc(mp_queue_put(q, "x", 1, 0), 0);
  assert_rc(mp_queue_put(q, big, sizeof big, 0), 0);
  return q;
}

/* A parent that frees its handle as soon as the start returns, before the
 * child has run at all, is not the last user: the child started by the
 * library was entered by the parent, and takes what was queued. */
static void free_right_after_start_keeps_the_childs_messages(void **state) {
  (void)state;
  mp_queue *q = queue_of_both();
  mp_process *p;
  assert_rc(mp_process_new(&p, takes_both, q, NULL), 0);
  mp__fault_set(late_child);
  int rc = mp_process_start(p);
  mp__fault_set(NULL);
  assert_rc(rc, 0);
  mp_queue_free(q);
  assert_rc(mp_process_join(p, mp_test_slack(20)), 0);
  int code = -1;
  assert_rc(mp_process_exitcode(p, &code), 0);
  mp_process_free(p);
  assert_int_equal(code, 0);
}

/* The same after the program's own fork(2): the parent's atfork handler
 * found the child as the forking thread's newest child. */
static void free_right_after_bare_fork_keeps_the_childs_messages(void **state) {
  (void)state;
  mp_queue *q = queue_of_both();
  mp__fault_set(late_child);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0)
    _exit(takes_both(q));
  mp__fault_set(NULL);
  assert_true(pid > 0);
  mp_queue_free(q);
  mp_test_wait_exit(pid, 0, mp_test_slack(20));
}

/* What that handler reads: the forking thread's newest child, whatever
 * came before it, and none once every child is reaped. */
static void newest_child_is_the_last_forked(void **state) {
  (void)state;
  pid_t kids[3], newest[4];
  for (int i = 0; i < 3; i++) {
    fflush(NULL);
    kids[i] = fork();
    if (kids[i] == 0) {
      alarm(30);
      pause();
      _exit(0);
    }
    assert_true(kids[i] > 0);
    newest[i] = mp__os_newest_child();
  }
  for (int i = 2; i >= 0; i--) {
    kill(kids[i], SIGKILL);
    mp_test_wait(kids[i], mp_test_slack(10));
  }
  newest[3] = mp__os_newest_child();
  for (int i = 0; i < 3; i++)
    assert_int_equal(newest[i], kids[i]);
  assert_int_equal(newest[3], -1);
}

static void large_put_that_fails_leaves_nothing(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096, .maxsize = 1});
  unsigned char big[10000] = {1};
  assert_rc(mp_queue_put(q, "x", 1, 0), 0);
  assert_rc(mp_queue_put(q, big, sizeof big, 0), MP_EAGAIN);
  assert_rc(mp_queue_put(q, big, sizeof big, 0.02), MP_ETIMEDOUT);
  assert_int_equal(count_large(q), 0);
  assert_rc(mp_queue_close(q), 0);
  assert_rc(mp_queue_put(q, big, sizeof big, 0), MP_ECLOSED);
  assert_int_equal(count_large(q), 0);
  mp_queue_free(q);
}

/* ---- between processes: the seeds
 * --------------------------------------------- */

typedef struct child_arg {
  mp_queue *q;
  int64_t n;
  const char *name;
} child_arg;

static int put_square_plus_one(void *arg) {
  child_arg *a = arg;
  return mp_queue_put_int64(a->q, a->n * a->n + 1, 10.0) == 0 ? 0 : 1;
}

/* Seed 001, 3.3.1: three children put n*n+1; the parent gets three. */
static void three_children_put_squares(void **state) {
  (void)state;
  mp_queue *q = qnew(NULL);
  pid_t pids[3];
  child_arg args[3];
  for (int i = 0; i < 3; i++) {
    args[i] = (child_arg){.q = q, .n = i};
    pids[i] = mp_test_fork(put_square_plus_one, &args[i]);
  }
  int seen = 0;
  for (int i = 0; i < 3; i++) {
    int64_t v;
    assert_rc(mp_queue_get_int64(q, &v, mp_test_slack(10)), 0);
    assert_true(v == 1 || v == 2 || v == 5);
    seen |= 1 << v;
  }
  assert_int_equal(seen, (1 << 1) | (1 << 2) | (1 << 5));
  for (int i = 0; i < 3; i++)
    mp_test_wait_exit(pids[i], 0, mp_test_slack(10));
  mp_queue_free(q);
}

/* G-QUEUE-4: no feeder thread. The child puts and leaves at once with
 * _exit; the message is there. */
static int put_then_exit(void *arg) {
  child_arg *a = arg;
  unsigned char big[20000];
  fill_pattern(big, sizeof big, 5);
  if (mp_queue_put_str(a->q, "I'm process", 0) != 0)
    _exit(1);
  if (mp_queue_put(a->q, big, sizeof big, 0) != 0)
    _exit(2);
  _exit(0);
}

static void exit_right_after_put_loses_nothing(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096});
  child_arg a = {.q = q};
  pid_t pid = mp_test_fork(put_then_exit, &a);
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  /* The child is gone before the parent looks. */
  expect_str(q, "I'm process");
  unsigned char big[20000], want[20000];
  size_t len;
  assert_rc(mp_queue_get(q, big, sizeof big, &len, 0), 0);
  fill_pattern(want, sizeof want, 5);
  assert_int_equal(len, sizeof want);
  assert_memory_equal(big, want, sizeof want);
  mp_queue_free(q);
}

enum { MPMC_PER_PRODUCER = 3000, MPMC_PRODUCERS = 3, MPMC_CONSUMERS = 3 };

typedef struct mpmc_shared {
  _Atomic uint32_t seen[MPMC_PRODUCERS][MPMC_PER_PRODUCER];
} mpmc_shared;

typedef struct mpmc_arg {
  mp_queue *q;
  mpmc_shared *sh;
  int id;
} mpmc_arg;

static int mpmc_producer(void *arg) {
  mpmc_arg *a = arg;
  for (uint32_t i = 0; i < MPMC_PER_PRODUCER; i++) {
    uint32_t msg[3] = {(uint32_t)a->id, i, (uint32_t)a->id * 7919u + i};
    size_t len = sizeof msg + (i % 5) * 4; /* sizes vary */
    uint32_t buf[8] = {0};
    memcpy(buf, msg, sizeof msg);
    if (mp_queue_put(a->q, buf, len, 30.0) != 0)
      return 1;
  }
  return 0;
}

static int mpmc_consumer(void *arg) {
  mpmc_arg *a = arg;
  for (;;) {
    uint32_t buf[8];
    size_t len;
    int rc = mp_queue_get(a->q, buf, sizeof buf, &len, 30.0);
    if (rc == MP_ECLOSED)
      return 0;
    if (rc != 0)
      return 2;
    if (buf[0] >= MPMC_PRODUCERS || buf[1] >= MPMC_PER_PRODUCER ||
        buf[2] != buf[0] * 7919u + buf[1] || len != 12 + (buf[1] % 5) * 4)
      return 3;
    atomic_fetch_add(&a->sh->seen[buf[0]][buf[1]], 1);
  }
}

static void several_producers_and_consumers(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_FIFO, MP_QUEUE_PRIORITY};
  for (int o = 0; o < 2; o++) {
    mp_queue *q = qnew(
        &(mp_queue_opts){.capacity = 8192, .maxsize = 50, .order = orders[o]});
    mpmc_shared *sh = shared_map(sizeof *sh);
    mpmc_arg args[MPMC_PRODUCERS + MPMC_CONSUMERS];
    pid_t pids[MPMC_PRODUCERS + MPMC_CONSUMERS];
    for (int i = 0; i < MPMC_PRODUCERS + MPMC_CONSUMERS; i++) {
      args[i] = (mpmc_arg){.q = q, .sh = sh, .id = i};
      pids[i] = mp_test_fork(i < MPMC_PRODUCERS ? mpmc_producer : mpmc_consumer,
                             &args[i]);
    }
    for (int i = 0; i < MPMC_PRODUCERS; i++)
      mp_test_wait_exit(pids[i], 0, mp_test_slack(60));
    assert_rc(mp_queue_close(q), 0);
    for (int i = MPMC_PRODUCERS; i < MPMC_PRODUCERS + MPMC_CONSUMERS; i++)
      mp_test_wait_exit(pids[i], 0, mp_test_slack(60));
    for (int p = 0; p < MPMC_PRODUCERS; p++)
      for (int i = 0; i < MPMC_PER_PRODUCER; i++)
        assert_int_equal(atomic_load(&sh->seen[p][i]), 1);
    munmap(sh, sizeof *sh);
    mp_queue_free(q);
  }
}

typedef struct thr_arg {
  mp_queue *q;
  int id;
  _Atomic uint32_t *seen;
  int rc;
} thr_arg;

static void *thread_producer(void *arg) {
  thr_arg *a = arg;
  for (uint32_t i = 0; i < 5000; i++) {
    uint32_t v = (uint32_t)a->id * 5000u + i;
    if ((a->rc = mp_queue_put(a->q, &v, sizeof v, 30.0)) != 0)
      return NULL;
  }
  return NULL;
}

static void *thread_consumer(void *arg) {
  thr_arg *a = arg;
  for (;;) {
    uint32_t v;
    size_t len;
    int rc = mp_queue_get(a->q, &v, sizeof v, &len, 30.0);
    if (rc == MP_ECLOSED)
      return NULL;
    if (rc != 0 || len != sizeof v || v >= 4 * 5000) {
      a->rc = rc != 0 ? rc : -1;
      return NULL;
    }
    atomic_fetch_add(&a->seen[v], 1);
  }
}

static void between_threads(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.maxsize = 16});
  _Atomic uint32_t *seen = calloc(4 * 5000, sizeof *seen);
  thr_arg p[4], c[4];
  pthread_t tp[4], tc[4];
  for (int i = 0; i < 4; i++) {
    p[i] = (thr_arg){.q = q, .id = i, .seen = seen};
    c[i] = (thr_arg){.q = q, .id = i, .seen = seen};
    assert_int_equal(pthread_create(&tp[i], NULL, thread_producer, &p[i]), 0);
    assert_int_equal(pthread_create(&tc[i], NULL, thread_consumer, &c[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(tp[i], NULL);
    assert_rc(p[i].rc, 0);
  }
  assert_rc(mp_queue_close(q), 0);
  for (int i = 0; i < 4; i++) {
    pthread_join(tc[i], NULL);
    assert_rc(c[i].rc, 0);
  }
  for (int i = 0; i < 4 * 5000; i++)
    assert_int_equal(atomic_load(&seen[i]), 1);
  free(seen);
  mp_queue_free(q);
}

/* ---- named and in place
 * -------------------------------------------------------- */

static int open_and_put(void *arg) {
  child_arg *a = arg;
  mp_queue *q;
  if (mp_queue_open(&q, a->name) != 0)
    return 1;
  if (mp_queue_put_str(q, "from an opener", 10.0) != 0)
    return 2;
  char buf[32];
  if (mp_queue_get_str(q, buf, sizeof buf, 10.0) != 0 ||
      strcmp(buf, "from the creator") != 0)
    return 3;
  mp_queue_free(q);
  return 0;
}

static void named_queue_between_processes(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "named");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name, .order = MP_QUEUE_FIFO});
  mp_queue *again;
  assert_rc(mp_queue_new(&again, &(mp_queue_opts){.name = name}), MP_EEXIST);
  char path[128];
  snprintf(path, sizeof path, "/dev/shm/mp_%s", name);
  assert_int_equal(access(path, F_OK), 0);
  child_arg a = {.name = name};
  put_str(q, "from the creator");
  /* Let the child take ours first, then wait for its message. */
  pid_t pid = mp_test_fork(open_and_put, &a);
  mp_test_wait_exit(pid, 0, mp_test_slack(20));
  expect_str(q, "from an opener");
  /* A second opener in this process sees the same queue. */
  mp_queue *o;
  assert_rc(mp_queue_open(&o, name), 0);
  put_str(o, "via open");
  expect_str(q, "via open");
  mp_queue_free(o);
  mp_queue_free(q);
  assert_int_equal(access(path, F_OK), -1); /* the creator unlinked it */
  assert_rc(mp_queue_open(&o, name), MP_ENOENT);
}

/* scribble_open creates a named queue, changes the bytes at offset (of
 * the queue header) with fn, and checks that open refuses it. */
static void scribble_open(size_t offset, uint64_t value, size_t width,
                          mp_queue_order order) {
  char name[64];
  mp_test_name(name, sizeof name, "scribble");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name, .order = order});
  char path[128];
  snprintf(path, sizeof path, "/dev/shm/mp_%s", name);
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, &value, width, (off_t)offset), (ssize_t)width);
  close(fd);
  mp_queue *o = NULL;
  assert_rc(mp_queue_open(&o, name), MP_ECORRUPT);
  assert_null(o);
  mp_queue_free(q);
}

/* G-QUEUE-5: a damaged header is refused on open, never followed. */
static void damaged_header_is_refused_on_open(void **state) {
  (void)state;
  scribble_open(offsetof(mp__qshared, head.magic), 0x12345678, 4,
                MP_QUEUE_FIFO);
  scribble_open(offsetof(mp__qshared, seg_magic), 0, 4, MP_QUEUE_FIFO);
  scribble_open(offsetof(mp__qshared, order), 9, 1, MP_QUEUE_FIFO);
  scribble_open(offsetof(mp__qshared, capacity), (uint64_t)1 << 40, 8,
                MP_QUEUE_FIFO);
  scribble_open(offsetof(mp__qshared, capacity), 3000, 8, MP_QUEUE_FIFO);
  scribble_open(offsetof(mp__qshared, ring_off), 8, 8, MP_QUEUE_FIFO);
  scribble_open(offsetof(mp__qshared, inline_max), (uint64_t)1 << 30, 8,
                MP_QUEUE_FIFO);
  scribble_open(offsetof(mp__qshared, total_size), 1u << 20, 8, MP_QUEUE_FIFO);
  scribble_open(offsetof(mp__qshared, tail), 0x0000000500000010ull, 8,
                MP_QUEUE_FIFO);
  scribble_open(offsetof(mp__qshared, headw), 0x7ull, 8, MP_QUEUE_FIFO);
  scribble_open(offsetof(mp__qshared, nslots), 1u << 30, 4, MP_QUEUE_PRIORITY);
  scribble_open(offsetof(mp__qshared, slot_size), 16, 4, MP_QUEUE_LIFO);
  scribble_open(offsetof(mp__qshared, index_off), 0, 8, MP_QUEUE_LIFO);
  scribble_open(offsetof(mp__qshared, hcount), 1u << 31, 4, MP_QUEUE_LIFO);
  /* A segment of the wrong size is refused before it is mapped. */
  char name[64];
  mp_test_name(name, sizeof name, "short");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  char path[128];
  snprintf(path, sizeof path, "/dev/shm/mp_%s", name);
  assert_int_equal(truncate(path, 4096), 0);
  mp_queue *o;
  assert_rc(mp_queue_open(&o, name), MP_ECORRUPT);
  assert_int_equal(truncate(path, 100), 0);
  assert_rc(mp_queue_open(&o, name), MP_ECORRUPT);
  mp_queue_free(q);
  /* A segment that is not a queue at all (a Lock). */
  mp_test_name(name, sizeof name, "lock");
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, &(mp_sync_opts){.name = name}), 0);
  assert_rc(mp_queue_open(&o, name), MP_ECORRUPT);
  mp_lock_free(lock);
}

/* Damage after open: the calls report it, and touch nothing outside. */
static void damage_after_open_is_reported(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096});
  put_str(q, "x");
  /* A record header turned to garbage. */
  memset(q->ring, 0xff, 8);
  char buf[64];
  size_t len;
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 0), MP_ECORRUPT);
  /* Commit words pointing far beyond the ring: the consumers' view (the
   * tail word), then the producers' own copy of it, which puts write
   * from. */
  atomic_store(&q->s->tail, 0x00000005ffff0000ull);
  q->s->tail_cache = 0;
  q->s->head_cache = 0;
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 0), MP_ECORRUPT);
  assert_int_equal(mp_queue_qsize(q), 0);
  q->s->tail_own = 0x00000005ffff0000ull;
  assert_rc(mp_queue_put(q, "y", 1, 0), MP_ECORRUPT);
  assert_int_equal(mp_queue_qsize(q), 0);
  mp_queue_free(q);
  /* A heap whose derived state is garbage is rebuilt from the slots. */
  q = qnew(&(mp_queue_opts){.order = MP_QUEUE_PRIORITY, .maxsize = 8});
  assert_rc(mp_queue_put_priority(q, 2, "b", 1, 0), 0);
  assert_rc(mp_queue_put_priority(q, 1, "a", 1, 0), 0);
  for (uint32_t i = 0; i < q->nslots; i++)
    q->heap[i] = 0xdeadbeef;
  q->s->free_top = 12345;
  expect_str(q, "a");
  expect_str(q, "b");
  mp_queue_free(q);
}

static int attach_and_put(void *arg) {
  child_arg *a = arg;
  mp_queue *q;
  /* The child maps the same memory again: another address, same queue. */
  if (mp_queue_attach(&q, (void *)a->name, (size_t)a->n) != 0)
    return 1;
  int rc = mp_queue_put_str(q, "in place", 10.0);
  mp_queue_free(q);
  return rc == 0 ? 0 : 2;
}

static void in_place_queue(void **state) {
  (void)state;
  mp_queue_opts o = {.capacity = 4096, .order = MP_QUEUE_FIFO};
  ssize_t need = mp_queue_size_for(&o);
  assert_true(need > 4096);
  size_t size = (size_t)need + 4096;
  unsigned char *mem = shared_map(size);
  mp_queue *q;
  assert_rc(mp_queue_init(&q, mem + 8, size, &o), MP_EINVAL); /* align */
  assert_rc(mp_queue_init(&q, mem, (size_t)need - 1, &o), MP_ERANGE);
  assert_rc(mp_queue_init(&q, mem, (size_t)need, &(mp_queue_opts){.name = "x"}),
            MP_EINVAL);
  assert_rc(mp_queue_init(&q, mem, size, &o), 0);
  child_arg a = {.name = (const char *)mem, .n = (int64_t)size};
  pid_t pid = mp_test_fork(attach_and_put, &a);
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  expect_str(q, "in place");
  /* Attach refuses garbage and a too-short length. */
  mp_queue *b;
  unsigned char *junk = shared_map(size);
  memset(junk, 0x5a, size);
  assert_rc(mp_queue_attach(&b, junk, size), MP_ECORRUPT);
  assert_rc(mp_queue_attach(&b, mem, 100), MP_ECORRUPT);
  assert_rc(mp_queue_attach(&b, mem, (size_t)need - 1), MP_ECORRUPT);
  assert_rc(mp_queue_attach(&b, mem, size), 0);
  put_str(b, "two handles");
  mp_queue_free(b); /* frees the handle only */
  expect_str(q, "two handles");
  assert_rc(mp_queue_destroy(q), 0);
  assert_rc(mp_queue_attach(&b, mem, size), MP_ECORRUPT);
  munmap(junk, size);
  munmap(mem, size);
}

/* ---- crashes (G-QUEUE-1..3)
 * ------------------------------------------------------ */

/* hold_lock takes the producers' lock and keeps it, alive, until killed:
 * a holder that is stopped or slow, not dead. */
typedef struct holder_arg {
  mp_queue *q;
  mp_test_signal held;
} holder_arg;

static int hold_lock(void *arg) {
  holder_arg *a = arg;
  bool rec = false;
  (void)mp__queue_lock(a->q, &a->q->s->plock, &rec, NULL);
  mp_test_signal_post(&a->held);
  for (;;)
    pause();
  return 0;
}

/* A put's timeout bounds its wait for the queue's lock too, not only its
 * wait for room: a live holder never stretches the caller's deadline. */
static void lock_wait_honours_timeout(void **state) {
  (void)state;
  holder_arg a = {.q = qnew(NULL)};
  mp_test_signal_open(&a.held);
  pid_t pid = mp_test_fork(hold_lock, &a);
  assert_true(mp_test_signal_wait(&a.held, mp_test_slack(30)));
  double t0 = mp_test_now();
  assert_rc(mp_queue_put_nowait(a.q, "x", 1), MP_EAGAIN);
  assert_true(mp_test_now() - t0 < mp_test_slack(1));
  t0 = mp_test_now();
  assert_rc(mp_queue_put(a.q, "x", 1, 0.2), MP_ETIMEDOUT);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.19);
  assert_true(took < mp_test_slack(2));
  /* Once the holder is gone its lock is taken over and puts go on. */
  kill(pid, SIGKILL);
  assert_int_equal(mp_test_wait(pid, 30), SIGKILL);
  assert_rc(mp_queue_put(a.q, "x", 1, mp_test_slack(10)), 0);
  assert_int_equal(mp_queue_qsize(a.q), 1);
  mp_test_signal_close(&a.held);
  mp_queue_free(a.q);
}

typedef struct crash_arg {
  mp_queue *q;
  int step;
} crash_arg;

/* die_holding takes a queue lock as put or get would, does what a put or
 * get does before its commit (step), and dies by SIGKILL. */
static int die_holding(void *arg) {
  crash_arg *a = arg;
  mp__qshared *s = a->q->s;
  bool rec = false;
  switch (a->step) {
  case 0: /* a producer killed while writing a record past the tail */
    (void)mp__queue_lock(a->q, &s->plock, &rec, NULL);
    memset(a->q->ring + (atomic_load(&s->tail) & a->q->mask), 0x77, 64);
    /* Killed between the producers' copy of the tail and the commit. */
    s->tail_own += ((uint64_t)1 << 32) | 64;
    break;
  case 1: /* a consumer killed before its commit */
    (void)mp__queue_lock(a->q, &s->clock, &rec, NULL);
    break;
  case 2: /* a heap producer killed after its commit, before the heap */
    (void)mp__queue_lock(a->q, &s->plock, &rec, NULL);
    {
      uint32_t idx = a->q->freestk[s->free_top - 1];
      mp__qslot *sl =
          (mp__qslot *)(void *)(a->q->ring + (size_t)idx * a->q->slot_size);
      sl->prio = -5;
      sl->len = 4;
      sl->kind = MP__REC_INLINE;
      sl->check = mp__queue_check16(4, MP__REC_INLINE);
      memcpy(sl + 1, "dead", 4);
      uint64_t seq = atomic_load(&s->put_seq) + 1;
      atomic_store(&sl->state, (seq << 1) | 1u);
      a->q->heap[0] = 0xffffffffu; /* the derived state half changed */
    }
    break;
  case 3: /* a heap consumer killed after its commit, before the heap */
    (void)mp__queue_lock(a->q, &s->plock, &rec, NULL);
    {
      uint32_t idx = a->q->heap[0];
      mp__qslot *sl =
          (mp__qslot *)(void *)(a->q->ring + (size_t)idx * a->q->slot_size);
      atomic_store(&sl->state, atomic_load(&sl->state) & ~(uint64_t)1);
    }
    break;
  }
  raise(SIGKILL);
  return 9;
}

static void crash_at(mp_queue *q, int step) {
  crash_arg a = {.q = q, .step = step};
  pid_t pid = mp_test_fork(die_holding, &a);
  int status = mp_test_wait(pid, mp_test_slack(10));
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* G-QUEUE-1, G-QUEUE-2: a producer killed inside put, before its commit,
 * leaves the queue as it was: its half-written record is never seen, and
 * what was put before is all there. */
static void producer_killed_mid_put(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096});
  put_str(q, "before");
  crash_at(q, 0);
  put_str(q, "after");
  assert_int_equal(mp_queue_qsize(q), 2);
  expect_str(q, "before");
  expect_str(q, "after");
  char buf[8];
  assert_rc(mp_queue_get_str(q, buf, sizeof buf, 0), MP_EAGAIN);
  mp_queue_free(q);
}

/* A consumer that keeps up leaves the ring empty at each put: the records
 * then stay within the ring's first MP__QUEUE_REWIND_AT bytes (and one
 * record), the producer wrapping early. A ring that holds messages is used
 * whole, and everything comes out in order either way. */
static void empty_ring_rewinds(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 1 << 20});
  unsigned char buf[64] = {0};
  size_t len;
  uint32_t most = 0;
  for (uint32_t i = 0; i < 5000; i++) { /* 360 KB: 22 rewinds */
    memcpy(buf, &i, sizeof i);
    assert_rc(mp_queue_put(q, buf, sizeof buf, 0), 0);
    uint32_t off = (uint32_t)atomic_load(&q->s->tail) & q->mask;
    most = off > most ? off : most;
    uint32_t got;
    assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 0), 0);
    memcpy(&got, buf, sizeof got);
    assert_int_equal(got, i);
  }
  assert_true(most <= MP__QUEUE_REWIND_AT + 72);
  /* Full ones go past it, and wrap at the end as before. */
  for (uint32_t round = 0; round < 3; round++) {
    for (uint32_t i = 0; i < 5000; i++) {
      memcpy(buf, &i, sizeof i);
      assert_rc(mp_queue_put(q, buf, sizeof buf, 0), 0);
    }
    uint32_t off = (uint32_t)atomic_load(&q->s->tail) & q->mask;
    assert_true(off > MP__QUEUE_REWIND_AT || round > 0);
    for (uint32_t i = 0; i < 5000; i++) {
      uint32_t got;
      assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 0), 0);
      memcpy(&got, buf, sizeof got);
      assert_int_equal(got, i);
    }
  }
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 0), MP_EAGAIN);
  mp_queue_free(q);
}

/* G-QUEUE-3: a consumer killed inside get before its commit leaves the
 * message queued; the next consumer recovers the lock and gets it. */
static void consumer_killed_mid_get(void **state) {
  (void)state;
  mp_queue *q = qnew(NULL);
  put_str(q, "survivor");
  crash_at(q, 1);
  expect_str(q, "survivor");
  mp_queue_free(q);
}

/* G-QUEUE-1, G-QUEUE-3 for a priority queue: a death after a slot's
 * commit, with the heap half updated, is repaired from the slots. */
static void heap_killed_after_commit(void **state) {
  (void)state;
  mp_queue *q =
      qnew(&(mp_queue_opts){.order = MP_QUEUE_PRIORITY, .maxsize = 8});
  assert_rc(mp_queue_put_priority(q, 1, "one", 3, 0), 0);
  assert_rc(mp_queue_put_priority(q, 2, "two", 3, 0), 0);
  crash_at(q, 2); /* put "dead" at priority -5, committed */
  assert_int_equal(mp_queue_qsize(q), 3);
  expect_str(q, "dead");
  crash_at(q, 3); /* a get of "one" committed, then killed */
  assert_int_equal(mp_queue_qsize(q), 1);
  expect_str(q, "two");
  assert_int_equal(mp_queue_qsize(q), 0);
  mp_queue_free(q);
}

/* G-QUEUE-3 for a large message whose consumer died between its commit
 * and the unlink: the next consumer removes the segment. */
static void consumer_killed_after_large_commit(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096});
  unsigned char big[8000];
  fill_pattern(big, sizeof big, 1);
  assert_rc(mp_queue_put(q, big, sizeof big, 0), 0);
  assert_rc(mp_queue_put(q, big, sizeof big, 0), 0);
  assert_int_equal(count_large(q), 2);
  /* Take the first properly, and fake a dead consumer that took the
   * second: the record consumed (head moved), the name still there. */
  unsigned char out[8000];
  size_t len;
  assert_rc(mp_queue_get(q, out, sizeof out, &len, 0), 0);
  assert_int_equal(count_large(q), 1);
  mp__qshared *s = q->s;
  uint64_t t = atomic_load(&s->tail);
  uint64_t h = atomic_load(&s->headw);
  /* Read the remaining record's reference, then consume it by hand. */
  mp__qlarge_ref ref;
  memcpy(&ref, q->ring + ((uint32_t)h & q->mask) + 8, sizeof ref);
  crash_arg a = {.q = q, .step = 1};
  atomic_store(&s->pend_ctr, ref.ctr);
  atomic_store(&s->pend_pid, ref.pid);
  atomic_store(&s->headw, t);
  pid_t pid = mp_test_fork(die_holding, &a);
  mp_test_wait(pid, mp_test_slack(10));
  assert_int_equal(count_large(q), 1);
  /* The next get recovers clock and finishes the hand-over. */
  assert_rc(mp_queue_get(q, out, sizeof out, &len, 0), MP_EAGAIN);
  assert_int_equal(count_large(q), 0);
  mp_queue_free(q);
}

/* A producer killed between writing a large segment and queuing its
 * record leaves an orphan that a later sweep removes. */
static int write_orphan(void *arg) {
  crash_arg *a = arg;
  mp__qlarge_ref ref;
  unsigned char big[8000] = {0};
  if (mp__qlarge_create(a->q, big, sizeof big, &ref,
                        mp__deadline_from_timeout(0)) != 0)
    return 1;
  raise(SIGKILL);
  return 2;
}

static void orphan_of_a_dead_producer_is_swept(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096});
  unsigned char big[8000] = {0};
  assert_rc(mp_queue_put(q, big, sizeof big, 0), 0); /* queued: stays */
  crash_arg a = {.q = q};
  pid_t pid = mp_test_fork(write_orphan, &a);
  mp_test_wait(pid, mp_test_slack(10));
  assert_int_equal(count_large(q), 2);
  mp__queue_sweep(q);
  assert_int_equal(count_large(q), 1);
  size_t len;
  assert_rc(mp_queue_get(q, big, sizeof big, &len, 0), 0);
  assert_int_equal(count_large(q), 0);
  mp_queue_free(q);
}

/* ---- short chaos (the long one is tests/stress/test_chaos_queue.c)
 * --------------- */

enum { CH_PRODUCERS = 3, CH_CONSUMERS = 2, CH_MAX_SEQ = 1 << 16 };

typedef struct chaos_shared {
  _Atomic int64_t put_ok[CH_PRODUCERS];  /* highest seq whose put returned */
  _Atomic int64_t attempt[CH_PRODUCERS]; /* seq being put */
  _Atomic uint8_t got[CH_PRODUCERS][CH_MAX_SEQ];    /* times received */
  _Atomic uint8_t unsure[CH_PRODUCERS][CH_MAX_SEQ]; /* put not known */
  _Atomic uint32_t corrupt;
  _Atomic uint32_t stop;
} chaos_shared;

typedef struct chaos_arg {
  mp_queue *q;
  chaos_shared *sh;
  int id;
} chaos_arg;

static uint32_t chaos_sum(const uint32_t *w, size_t n) {
  uint32_t s = 0x811c9dc5u;
  for (size_t i = 0; i < n; i++)
    s = (s ^ w[i]) * 16777619u;
  return s;
}

/* A producer records the seq it is about to put (attempt) and, once put
 * returned 0, the same in put_ok. A new producer in a killed one's place
 * marks a seq attempted but not known to be put as unsure (it may or may
 * not be queued) and goes on after it, so no seq is ever put twice. */
static int chaos_producer(void *arg) {
  chaos_arg *a = arg;
  int64_t done = atomic_load(&a->sh->put_ok[a->id]);
  int64_t tried = atomic_load(&a->sh->attempt[a->id]);
  if (tried > done)
    atomic_store(&a->sh->unsure[a->id][tried], 1);
  int64_t seq = (tried > done ? tried : done) + 1;
  uint32_t buf[64];
  for (; seq < CH_MAX_SEQ && !atomic_load(&a->sh->stop); seq++) {
    atomic_store(&a->sh->attempt[a->id], seq);
    size_t words = 3 + (size_t)(seq % 40);
    buf[0] = (uint32_t)a->id;
    buf[1] = (uint32_t)seq;
    for (size_t i = 3; i < words; i++)
      buf[i] = (uint32_t)(seq * 31 + i);
    buf[2] = 0;
    buf[2] = chaos_sum(buf, words);
    int rc;
    void *at;
    if (a->q->order == MP_QUEUE_FIFO && seq % 2 == 1) {
      /* Every other one in place: killed between claim and commit, it
       * must leave no message (and no held lock). */
      rc = mp_queue_claim(a->q, words * 4, &at, 1.0);
      if (rc == 0) {
        memcpy(at, buf, words * 4);
        rc = mp_queue_commit(a->q, words * 4);
      }
    } else {
      rc = mp_queue_put(a->q, buf, words * 4, 1.0);
    }
    if (rc == MP_ETIMEDOUT) {
      seq--;
      continue;
    }
    if (rc != 0)
      return 1;
    atomic_store(&a->sh->put_ok[a->id], seq);
  }
  return 0;
}

static int chaos_check(chaos_shared *sh, const uint32_t *buf, size_t len) {
  if (len < 12 || len % 4 != 0 || buf[0] >= CH_PRODUCERS ||
      buf[1] >= CH_MAX_SEQ)
    return -1;
  uint32_t copy[64];
  memcpy(copy, buf, len);
  uint32_t want = copy[2];
  copy[2] = 0;
  if (chaos_sum(copy, len / 4) != want || len / 4 != 3 + buf[1] % 40)
    return -1;
  atomic_fetch_add(&sh->got[buf[0]][buf[1]], 1);
  return 0;
}

static int chaos_consumer(void *arg) {
  chaos_arg *a = arg;
  while (!atomic_load(&a->sh->stop)) {
    uint32_t buf[64];
    size_t len;
    int rc = mp_queue_get(a->q, buf, sizeof buf, &len, 0.2);
    if (rc == MP_ETIMEDOUT)
      continue;
    if (rc != 0 || chaos_check(a->sh, buf, len) != 0) {
      atomic_fetch_add(&a->sh->corrupt, 1);
      return 1;
    }
  }
  return 0;
}

/* run_chaos runs producers and consumers on q for seconds, killing one of
 * them at random every few milliseconds and starting a new one in its
 * place; then drains and checks (see the stress suite for the rules).
 * Returns how many consumers were killed. */
static int run_chaos(mp_queue *q, chaos_shared *sh, double seconds) {
  enum { N = CH_PRODUCERS + CH_CONSUMERS };
  chaos_arg args[N];
  pid_t pids[N];
  for (int i = 0; i < N; i++) {
    args[i] = (chaos_arg){
        .q = q, .sh = sh, .id = i < CH_PRODUCERS ? i : i - CH_PRODUCERS};
    pids[i] = mp_test_fork(i < CH_PRODUCERS ? chaos_producer : chaos_consumer,
                           &args[i]);
  }
  int consumer_kills = 0;
  uint32_t x = (uint32_t)getpid();
  double end = mp_test_now() + seconds;
  while (mp_test_now() < end) {
    x = x * 1103515245u + 12345u;
    usleep(1000 + (x >> 16) % 4000);
    int victim = (int)((x >> 8) % N);
    kill(pids[victim], SIGKILL);
    int status;
    waitpid(pids[victim], &status, 0);
    if (victim >= CH_PRODUCERS)
      consumer_kills++;
    pids[victim] = mp_test_fork(
        victim < CH_PRODUCERS ? chaos_producer : chaos_consumer, &args[victim]);
  }
  atomic_store(&sh->stop, 1);
  for (int i = 0; i < N; i++)
    mp_test_wait_exit(pids[i], 0, mp_test_slack(30));
  return consumer_kills;
}

static void chaos_verify(mp_queue *q, chaos_shared *sh, int consumer_kills) {
  /* Drain what is left, then: nothing corrupt, nothing twice, and every
   * message whose put returned was received, except at most one per
   * consumer killed (it may have died after its get committed and before
   * it wrote down what it got). */
  for (;;) {
    uint32_t buf[64];
    size_t len;
    int rc = mp_queue_get(q, buf, sizeof buf, &len, 0);
    if (rc == MP_EAGAIN)
      break;
    assert_rc(rc, 0);
    assert_int_equal(chaos_check(sh, buf, len), 0);
  }
  assert_int_equal(atomic_load(&sh->corrupt), 0);
  long missing = 0, total = 0;
  for (int p = 0; p < CH_PRODUCERS; p++) {
    int64_t last = atomic_load(&sh->put_ok[p]);
    for (int64_t s = 1; s < CH_MAX_SEQ; s++) {
      uint8_t n = atomic_load(&sh->got[p][s]);
      assert_true(n <= 1); /* no duplicate */
      if (s <= last && !atomic_load(&sh->unsure[p][s])) {
        total++;
        missing += n == 0;
      }
    }
  }
  assert_true(total > 0);
  if (missing > consumer_kills)
    fail_msg("%ld messages lost, %d consumers killed", missing, consumer_kills);
}

/* G-QUEUE-1..3 and G-QUEUE-7, a short run of the chaos test. */
static void chaos_short(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_FIFO, MP_QUEUE_PRIORITY};
  for (int o = 0; o < 2; o++) {
    mp_queue *q = qnew(
        &(mp_queue_opts){.capacity = 8192, .maxsize = 100, .order = orders[o]});
    chaos_shared *sh = shared_map(sizeof *sh);
    int kills = run_chaos(q, sh, 1.0);
    chaos_verify(q, sh, kills);
    munmap(sh, sizeof *sh);
    mp_queue_free(q);
  }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(fifo_order_and_sizes),
    cmocka_unit_test(every_small_length_round_trips),
    cmocka_unit_test(simple_queue_is_a_fifo),
    cmocka_unit_test(lifo_order),
    cmocka_unit_test(priority_order),
    cmocka_unit_test(priority_heap_many),
    cmocka_unit_test(put_priority_needs_a_priority_queue),
    cmocka_unit_test(maxsize_full_and_empty_told_apart),
    cmocka_unit_test(get_timeout_is_bounded),
    cmocka_unit_test(byte_capacity_bounds_puts),
    cmocka_unit_test(blocked_get_wakes_on_put),
    cmocka_unit_test(blocked_put_wakes_on_get),
    cmocka_unit_test(small_buffer_leaves_message_queued),
    cmocka_unit_test(put_over_max_message_is_refused),
    cmocka_unit_test(typed_helpers),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(close_drains_then_refuses),
    cmocka_unit_test(close_wakes_every_waiter),
    cmocka_unit_test(poll_reports_ready),
    cmocka_unit_test(lock_wait_honours_timeout),
    cmocka_unit_test(batch_put_and_get),
    cmocka_unit_test(batch_put_waits_for_room),
    cmocka_unit_test(ring_wraps_with_mixed_sizes),
    cmocka_unit_test(large_message_copy_and_zero_copy),
    cmocka_unit_test(large_segments_are_reused),
    cmocka_unit_test(large_messages_in_a_batch),
    cmocka_unit_test(last_free_discards_large_messages),
    cmocka_unit_test(free_right_after_start_keeps_the_childs_messages),
    cmocka_unit_test(free_right_after_bare_fork_keeps_the_childs_messages),
    cmocka_unit_test(newest_child_is_the_last_forked),
    cmocka_unit_test(large_put_that_fails_leaves_nothing),
    cmocka_unit_test(three_children_put_squares),
    cmocka_unit_test(exit_right_after_put_loses_nothing),
    cmocka_unit_test(several_producers_and_consumers),
    cmocka_unit_test(between_threads),
    cmocka_unit_test(named_queue_between_processes),
    cmocka_unit_test(damaged_header_is_refused_on_open),
    cmocka_unit_test(damage_after_open_is_reported),
    cmocka_unit_test(in_place_queue),
    cmocka_unit_test(producer_killed_mid_put),
    cmocka_unit_test(empty_ring_rewinds),
    cmocka_unit_test(consumer_killed_mid_get),
    cmocka_unit_test(heap_killed_after_commit),
    cmocka_unit_test(consumer_killed_after_large_commit),
    cmocka_unit_test(orphan_of_a_dead_producer_is_swept),
    cmocka_unit_test(chaos_short),
};

MP_TEST_MAIN(tests)
