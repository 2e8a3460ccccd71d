/* test_wait.c - mp_connection_wait (Python's connection.wait): timeouts
 * that return 0, every ready entry reported in order, connections, queues,
 * processes and raw descriptors mixed, readiness poll(2) cannot see (a
 * refused message, a child whose exit pipe a grandchild holds), signals
 * that neither cut a wait short nor stretch it, long lists, bad entries. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h" /* mp__alloc_fail_after */

#define PEER_TIMEOUT 30.0

/* A timeout with nothing ready returns 0: at once for timeout 0, after
 * about the timeout otherwise. */
static void timeout_returns_zero(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  mp_waitable w[] = {mp_waitable_connection(a), mp_waitable_connection(b)};
  size_t ready[2] = {99, 99};
  double t0 = mp_test_now();
  assert_int_equal(mp_connection_wait(w, 2, 0, ready), 0);
  assert_int_equal(mp_connection_wait(w, 2, 0.1, ready), 0);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.095);
  assert_true(took < 5.0);
  assert_int_equal(ready[0], 99); /* nothing stored */
  /* No objects at all: a plain sleep, as in Python. */
  t0 = mp_test_now();
  assert_int_equal(mp_connection_wait(NULL, 0, 0.05, NULL), 0);
  assert_true(mp_test_now() - t0 >= 0.045);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* Every ready entry is reported, in increasing order. */
static void reports_every_ready_entry(void **state) {
  (void)state;
  mp_connection *r[4], *s[4];
  mp_waitable w[4];
  for (int i = 0; i < 4; i++) {
    assert_rc(mp_pipe(&r[i], &s[i], i % 2), 0);
    w[i] = mp_waitable_connection(r[i]);
  }
  assert_rc(mp_connection_send_bytes(s[3], "x", 0, 1), 0);
  assert_rc(mp_connection_send_bytes(s[1], "y", 0, 1), 0);
  size_t ready[4];
  assert_int_equal(mp_connection_wait(w, 4, PEER_TIMEOUT, ready), 2);
  assert_int_equal(ready[0], 1);
  assert_int_equal(ready[1], 3);
  /* Waiting receives nothing: the same answer again. */
  assert_int_equal(mp_connection_wait(w, 4, 0, ready), 2);
  char buf[4];
  size_t len;
  assert_rc(mp_connection_recv_bytes(r[1], buf, sizeof buf, &len), 0);
  assert_int_equal(mp_connection_wait(w, 4, 0, NULL), 1);
  for (int i = 0; i < 4; i++) {
    mp_connection_free(r[i]);
    mp_connection_free(s[i]);
  }
}

static int sleeper(void *arg) {
  (void)arg;
  usleep(200 * 1000);
  return 7;
}

/* A process is ready once it has ended; a wait on a connection and a
 * process wakes for the process. */
static void process_sentinel(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  mp_process *p;
  assert_rc(mp_process_new(&p, sleeper, NULL, NULL), 0);
  assert_rc(mp_process_start(p), 0);
  mp_waitable w[] = {mp_waitable_connection(a), mp_waitable_process(p)};
  size_t ready[2];
  assert_int_equal(mp_connection_wait(w, 2, 0, ready), 0);
  double t0 = mp_test_now();
  assert_int_equal(mp_connection_wait(w, 2, PEER_TIMEOUT, ready), 1);
  assert_int_equal(ready[0], 1);
  assert_true(mp_test_now() - t0 < PEER_TIMEOUT / 2);
  /* Still ready after it was joined, until it is closed. */
  assert_rc(mp_process_join(p, PEER_TIMEOUT), 0);
  int code;
  assert_rc(mp_process_exitcode(p, &code), 0);
  assert_int_equal(code, 7);
  assert_int_equal(mp_connection_wait(w, 2, 0, ready), 1);
  /* Both kinds ready at once: both reported. */
  assert_rc(mp_connection_send_bytes(b, "x", 0, 1), 0);
  assert_int_equal(mp_connection_wait(w, 2, PEER_TIMEOUT, ready), 2);
  assert_int_equal(ready[0], 0);
  assert_int_equal(ready[1], 1);
  assert_rc(mp_process_close(p), 0);
  assert_int_equal(mp_connection_wait(w, 2, 0, ready), MP_ESTATE);
  mp_process_free(p);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* grandparent forks a grandchild that inherits every descriptor (the
 * child's exit pipe too, where there is one) and lives on until the test
 * closes the pipe it reads; the child itself exits at once. */
static int grandparent(void *arg) {
  int *hold = arg;
  pid_t g = fork();
  if (g == 0) {
    char c;
    close(hold[1]);
    while (read(hold[0], &c, 1) != 0)
      ;
    _exit(0);
  }
  return g > 0 ? 0 : 1;
}

/* A child that ended is reported even while a grandchild it left behind
 * holds its descriptors open. */
static void process_with_lingering_grandchild(void **state) {
  (void)state;
  int hold[2];
  assert_int_equal(pipe(hold), 0);
  mp_process *p;
  assert_rc(mp_process_new(&p, grandparent, hold, NULL), 0);
  assert_rc(mp_process_start(p), 0);
  mp_waitable w[] = {mp_waitable_process(p)};
  double t0 = mp_test_now();
  ssize_t n = mp_connection_wait(w, 1, PEER_TIMEOUT, NULL);
  double took = mp_test_now() - t0;
  close(hold[1]); /* the grandchild leaves */
  close(hold[0]);
  assert_int_equal(n, 1);
  assert_true(took < PEER_TIMEOUT / 2);
  assert_rc(mp_process_join(p, PEER_TIMEOUT), 0);
  mp_process_free(p);
}

/* A raw descriptor is ready when readable or hung up. */
static void raw_descriptors(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  mp_waitable w[] = {mp_waitable_fd(fds[0])};
  assert_int_equal(mp_connection_wait(w, 1, 0, NULL), 0);
  assert_int_equal(write(fds[1], "z", 1), 1);
  size_t ready[1];
  assert_int_equal(mp_connection_wait(w, 1, PEER_TIMEOUT, ready), 1);
  assert_int_equal(ready[0], 0);
  char c;
  assert_int_equal(read(fds[0], &c, 1), 1);
  close(fds[1]);
  assert_int_equal(mp_connection_wait(w, 1, PEER_TIMEOUT, ready), 1);
  close(fds[0]);
}

/* Readiness poll(2) cannot see: a refused message waits in the
 * connection, and its descriptor holds only the payload (or nothing). */
static void refused_message_is_ready(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  assert_rc(mp_connection_send_bytes(a, NULL, 0, 0), 0);
  assert_rc(mp_connection_send_bytes(a, "0123456789", 0, 10), 0);
  char buf[16];
  size_t len;
  assert_rc(mp_connection_poll(b, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(b, buf, 0, &len), 0);
  assert_rc(mp_connection_recv_bytes(b, buf, 4, &len), MP_ETOOBIG);
  /* Drain the payload behind the library's back: only the kept header
   * makes the end ready now. */
  assert_int_equal(read(mp_connection_fileno(b), buf, 10), 10);
  mp_waitable w[] = {mp_waitable_connection(b)};
  assert_int_equal(mp_connection_wait(w, 1, 0, NULL), 1);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* The peer's close makes a connection ready (a receive returns
 * MP_ECLOSED at once). */
static void peer_close_is_ready(void **state) {
  (void)state;
  mp_connection *r, *w;
  assert_rc(mp_pipe(&r, &w, 0), 0);
  mp_waitable ws[] = {mp_waitable_connection(r)};
  assert_int_equal(mp_connection_wait(ws, 1, 0, NULL), 0);
  mp_connection_free(w);
  assert_int_equal(mp_connection_wait(ws, 1, PEER_TIMEOUT, NULL), 1);
  mp_connection_free(r);
}

/* Bad entries are refused before anything waits. */
static void bad_entries(void **state) {
  (void)state;
  mp_connection *r, *w;
  assert_rc(mp_pipe(&r, &w, 0), 0);
  mp_waitable ok = mp_waitable_connection(r);
  mp_waitable bad[2] = {ok, ok};
  assert_int_equal(mp_connection_wait(NULL, 1, 0, NULL), MP_EINVAL);
  bad[1].type = (mp_wait_type)42;
  assert_int_equal(mp_connection_wait(bad, 2, 0, NULL), MP_EINVAL);
  bad[1] = mp_waitable_connection(NULL);
  assert_int_equal(mp_connection_wait(bad, 2, 0, NULL), MP_EINVAL);
  bad[1] = mp_waitable_process(NULL);
  assert_int_equal(mp_connection_wait(bad, 2, 0, NULL), MP_EINVAL);
  bad[1] = mp_waitable_fd(-1);
  assert_int_equal(mp_connection_wait(bad, 2, 0, NULL), MP_EINVAL);
  /* A send-only end can never become readable. */
  bad[1] = mp_waitable_connection(w);
  assert_int_equal(mp_connection_wait(bad, 2, MP_FOREVER, NULL), MP_EBADF);
  /* A descriptor that is not open. */
  int unused = dup(0);
  close(unused);
  bad[1] = mp_waitable_fd(unused);
  assert_int_equal(mp_connection_wait(bad, 2, MP_FOREVER, NULL), MP_EBADF);
  /* A process never started has no sentinel. */
  mp_process *p;
  assert_rc(mp_process_new(&p, sleeper, NULL, NULL), 0);
  bad[1] = mp_waitable_process(p);
  assert_int_equal(mp_connection_wait(bad, 2, MP_FOREVER, NULL), MP_ESTATE);
  mp_process_free(p);
  /* The current process is not a child. */
  bad[1] = mp_waitable_process(mp_current_process());
  assert_int_equal(mp_connection_wait(bad, 2, MP_FOREVER, NULL), MP_ESTATE);
  /* A closed connection. */
  mp_connection_close(r);
  assert_int_equal(mp_connection_wait(&ok, 1, MP_FOREVER, NULL), MP_ESTATE);
  mp_connection_free(r);
  mp_connection_free(w);
}

/* Lists longer than the on-stack room work the same, and running out of
 * memory for them is MP_ENOMEM. */
static void long_lists(void **state) {
  (void)state;
  enum { N = 40 };
  mp_connection *r[N], *s[N];
  mp_waitable w[N];
  for (int i = 0; i < N; i++) {
    assert_rc(mp_pipe(&r[i], &s[i], 1), 0);
    w[i] = mp_waitable_connection(r[i]);
  }
  assert_int_equal(mp_connection_wait(w, N, 0, NULL), 0);
  for (int i = 0; i < N; i += 13)
    assert_rc(mp_connection_send_bytes(s[i], "m", 0, 1), 0);
  size_t ready[N];
  assert_int_equal(mp_connection_wait(w, N, PEER_TIMEOUT, ready), 4);
  assert_int_equal(ready[0], 0);
  assert_int_equal(ready[1], 13);
  assert_int_equal(ready[2], 26);
  assert_int_equal(ready[3], 39);
  mp__alloc_fail_after(1);
  assert_int_equal(mp_connection_wait(w, N, 0, NULL), MP_ENOMEM);
  mp__alloc_fail_after(0);
  for (int i = 0; i < N; i++) {
    mp_connection_free(r[i]);
    mp_connection_free(s[i]);
  }
}

static int late_put(void *arg) {
  usleep(100 * 1000);
  return mp_queue_put(arg, "q", 1, PEER_TIMEOUT) == 0 ? 0 : 1;
}

/* A queue is ready when a get would not block: a message waits, or the
 * queue is closed. A put from another process wakes a wait that also
 * holds a connection; a wait on a queue alone times out as asked. */
static void queues(void **state) {
  (void)state;
  mp_queue *q;
  assert_rc(mp_simple_queue_new(&q), 0);
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  mp_waitable w[] = {mp_waitable_connection(a), mp_waitable_queue(q)};
  size_t ready[2];
  double t0 = mp_test_now();
  assert_int_equal(mp_connection_wait(&w[1], 1, 0.1, ready), 0);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.095);
  assert_true(took < 5.0);
  /* Another process puts a little later. */
  mp_process *p;
  assert_rc(mp_process_new(&p, late_put, q, NULL), 0);
  assert_rc(mp_process_start(p), 0);
  t0 = mp_test_now();
  assert_int_equal(mp_connection_wait(w, 2, PEER_TIMEOUT, ready), 1);
  assert_int_equal(ready[0], 1);
  assert_true(mp_test_now() - t0 < PEER_TIMEOUT / 2);
  assert_rc(mp_process_join(p, PEER_TIMEOUT), 0);
  mp_process_free(p);
  /* Waiting takes nothing: the message is still there. */
  assert_int_equal(mp_queue_qsize(q), 1);
  assert_rc(mp_connection_send_bytes(b, "c", 0, 1), 0);
  assert_int_equal(mp_connection_wait(w, 2, PEER_TIMEOUT, ready), 2);
  assert_int_equal(ready[0], 0);
  assert_int_equal(ready[1], 1);
  char buf[4];
  size_t len;
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 0), 0);
  assert_int_equal(mp_connection_wait(&w[1], 1, 0, NULL), 0);
  /* Closed and drained: a get returns at once, so it is ready. */
  assert_rc(mp_queue_close(q), 0);
  assert_int_equal(mp_connection_wait(&w[1], 1, PEER_TIMEOUT, NULL), 1);
  /* A NULL queue is refused. */
  mp_waitable bad = mp_waitable_queue(NULL);
  assert_int_equal(mp_connection_wait(&bad, 1, 0, NULL), MP_EINVAL);
  mp_queue_free(q);
  mp_connection_free(a);
  mp_connection_free(b);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

/* Signals neither cut a wait short nor stretch it: the deadline made on
 * entry holds through every restart. */
static void signals_keep_the_deadline(void **state) {
  (void)state;
  struct sigaction sa = {.sa_handler = on_alarm}, old;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, &old);
  struct itimerval every = {{0, 10000}, {0, 10000}}, off = {{0, 0}, {0, 0}};
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  mp_waitable w[] = {mp_waitable_connection(b)};
  alarms = 0;
  setitimer(ITIMER_REAL, &every, NULL);
  double t0 = mp_test_now();
  ssize_t n = mp_connection_wait(w, 1, 0.3, NULL);
  double took = mp_test_now() - t0;
  setitimer(ITIMER_REAL, &off, NULL);
  sigaction(SIGALRM, &old, NULL);
  assert_int_equal(n, 0);
  assert_true(alarms > 0);
  assert_true(took >= 0.29);
  assert_true(took < 5.0);
  mp_connection_free(a);
  mp_connection_free(b);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(timeout_returns_zero),
    cmocka_unit_test(reports_every_ready_entry),
    cmocka_unit_test(process_sentinel),
    cmocka_unit_test(process_with_lingering_grandchild),
    cmocka_unit_test(raw_descriptors),
    cmocka_unit_test(refused_message_is_ready),
    cmocka_unit_test(peer_close_is_ready),
    cmocka_unit_test(bad_entries),
    cmocka_unit_test(long_lists),
    cmocka_unit_test(queues),
    cmocka_unit_test(signals_keep_the_deadline),
};

MP_TEST_MAIN(tests)
