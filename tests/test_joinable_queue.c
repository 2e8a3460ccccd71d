/* test_joinable_queue.c - JoinableQueue: task_done and join, within a
 * process, between threads and between processes, the ValueError of too
 * many task_done calls, timeouts, and what a worker killed between get and
 * task_done costs (G-QUEUE-6).
 *
 * Forked children never call cmocka: they report through their exit
 * status (0 = fine, other values name the step that failed). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static mp_queue *joinable(mp_queue_order order, size_t maxsize) {
  mp_queue *q = NULL;
  assert_rc(mp_queue_new(&q, &(mp_queue_opts){.joinable = 1,
                                              .order = order,
                                              .maxsize = maxsize}),
            0);
  return q;
}

/* The seed (001, 2.8.2): q = Queue(5); put(10); put(20); get;
 * task_done; get; task_done; join; print("ending!"). */
static void seed_task_done_then_join(void **state) {
  (void)state;
  mp_queue *q = joinable(MP_QUEUE_FIFO, 5);
  assert_rc(mp_queue_put_int64(q, 10, MP_FOREVER), 0);
  assert_rc(mp_queue_put_int64(q, 20, MP_FOREVER), 0);
  assert_rc(mp_queue_join(q, 0), MP_EAGAIN); /* two unfinished */
  int64_t v;
  assert_rc(mp_queue_get_int64(q, &v, MP_FOREVER), 0);
  assert_int_equal(v, 10);
  assert_rc(mp_queue_task_done(q), 0);
  assert_rc(mp_queue_join(q, 0), MP_EAGAIN);
  assert_rc(mp_queue_get_int64(q, &v, MP_FOREVER), 0);
  assert_int_equal(v, 20);
  assert_rc(mp_queue_task_done(q), 0);
  assert_rc(mp_queue_join(q, MP_FOREVER), 0);
  assert_rc(mp_queue_join(q, 0), 0);
  mp_queue_free(q);
}

static void too_many_task_done_is_a_value_error(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_FIFO, MP_QUEUE_LIFO, MP_QUEUE_PRIORITY};
  for (int o = 0; o < 3; o++) {
    mp_queue *q = joinable(orders[o], 0);
    assert_rc(mp_queue_task_done(q), MP_EVALUE);
    assert_rc(mp_queue_put(q, "x", 1, 0), 0);
    assert_rc(mp_queue_task_done(q), 0);
    assert_rc(mp_queue_task_done(q), MP_EVALUE);
    /* The count is of puts, not of gets: the message is still queued. */
    assert_int_equal(mp_queue_qsize(q), 1);
    assert_rc(mp_queue_join(q, 0), 0);
    mp_queue_free(q);
  }
}

static void only_a_joinable_queue_joins(void **state) {
  (void)state;
  mp_queue *q = NULL;
  assert_rc(mp_queue_new(&q, NULL), 0);
  assert_rc(mp_queue_task_done(q), MP_EINVAL);
  assert_rc(mp_queue_join(q, 0), MP_EINVAL);
  mp_queue_free(q);
}

static void join_timeout_is_bounded(void **state) {
  (void)state;
  mp_queue *q = joinable(MP_QUEUE_FIFO, 0);
  assert_rc(mp_queue_put(q, "x", 1, 0), 0);
  double t0 = mp_test_now();
  assert_rc(mp_queue_join(q, 0.1), MP_ETIMEDOUT);
  double waited = mp_test_now() - t0;
  assert_true(waited >= 0.09 && waited < mp_test_slack(2.0));
  mp_queue_free(q);
}

typedef struct worker_arg {
  mp_queue *q;
  int count;
  int rc;
} worker_arg;

static void *thread_worker(void *arg) {
  worker_arg *w = arg;
  for (int i = 0; i < w->count; i++) {
    int64_t v;
    if ((w->rc = mp_queue_get_int64(w->q, &v, 10.0)) != 0)
      return NULL;
    usleep(100);
    if ((w->rc = mp_queue_task_done(w->q)) != 0)
      return NULL;
  }
  return NULL;
}

static void join_waits_for_thread_workers(void **state) {
  (void)state;
  mp_queue *q = joinable(MP_QUEUE_FIFO, 0);
  enum { WORKERS = 4, EACH = 50 };
  for (int i = 0; i < WORKERS * EACH; i++)
    assert_rc(mp_queue_put_int64(q, i, 0), 0);
  worker_arg w[WORKERS];
  pthread_t t[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    w[i] = (worker_arg){.q = q, .count = EACH};
    assert_int_equal(pthread_create(&t[i], NULL, thread_worker, &w[i]), 0);
  }
  assert_rc(mp_queue_join(q, mp_test_slack(30)), 0);
  assert_int_equal(mp_queue_qsize(q), 0);
  for (int i = 0; i < WORKERS; i++) {
    pthread_join(t[i], NULL);
    assert_rc(w[i].rc, 0);
  }
  mp_queue_free(q);
}

static int process_worker(void *arg) {
  worker_arg *w = arg;
  for (int i = 0; i < w->count; i++) {
    int64_t v;
    if (mp_queue_get_int64(w->q, &v, 10.0) != 0)
      return 1;
    if (mp_queue_task_done(w->q) != 0)
      return 2;
  }
  return 0;
}

static void join_waits_for_process_workers(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_FIFO, MP_QUEUE_PRIORITY};
  for (int o = 0; o < 2; o++) {
    mp_queue *q = joinable(orders[o], 10);
    worker_arg w = {.q = q, .count = 100};
    pid_t pids[2];
    for (int i = 0; i < 2; i++)
      pids[i] = mp_test_fork(process_worker, &w);
    /* maxsize 10: the puts wait for the workers as they go. */
    for (int i = 0; i < 200; i++)
      assert_rc(mp_queue_put_int64(q, i, mp_test_slack(10)), 0);
    assert_rc(mp_queue_join(q, mp_test_slack(30)), 0);
    for (int i = 0; i < 2; i++)
      mp_test_wait_exit(pids[i], 0, mp_test_slack(10));
    assert_rc(mp_queue_task_done(q), MP_EVALUE);
    mp_queue_free(q);
  }
}

/* G-QUEUE-6: the unfinished count is exact whatever dies: a producer
 * killed inside put counts its message only if the message is queued, and
 * a worker killed between get and task_done leaves its task unfinished,
 * so join never returns 0 early; it tells that a holder died
 * (MP_EOWNERDEAD) instead of waiting for ever (issue 9, item 3). */
static int take_and_die(void *arg) {
  worker_arg *w = arg;
  int64_t v;
  if (mp_queue_get_int64(w->q, &v, 10.0) != 0)
    return 1;
  raise(SIGKILL);
  return 2;
}

static void killed_worker_leaves_task_unfinished(void **state) {
  (void)state;
  mp_queue *q = joinable(MP_QUEUE_FIFO, 0);
  assert_rc(mp_queue_put_int64(q, 1, 0), 0);
  assert_rc(mp_queue_put_int64(q, 2, 0), 0);
  worker_arg w = {.q = q};
  pid_t pid = mp_test_fork(take_and_die, &w);
  int status = mp_test_wait(pid, mp_test_slack(10));
  assert_true(WIFSIGNALED(status));
  int64_t v;
  assert_rc(mp_queue_get_int64(q, &v, 0), 0);
  assert_int_equal(v, 2);
  assert_rc(mp_queue_task_done(q), 0);
  assert_int_equal(mp_queue_unfinished_tasks(q), 1);
  /* Not a timeout, even with MP_FOREVER: the holder is known dead. */
  double t0 = mp_test_now();
  assert_rc(mp_queue_join(q, MP_FOREVER), MP_EOWNERDEAD);
  assert_true(mp_test_now() - t0 < mp_test_slack(2));
  char want[64];
  snprintf(want, sizeof want, "process %d died holding 1", (int)pid);
  assert_non_null(strstr(mp_error_detail(), want));
  assert_rc(mp_queue_join(q, 0), MP_EOWNERDEAD);
  /* Whoever knows the dead worker's task is lost may finish it. */
  assert_rc(mp_queue_task_done(q), 0);
  assert_int_equal(mp_queue_unfinished_tasks(q), 0);
  assert_rc(mp_queue_join(q, 0), 0);
  assert_rc(mp_queue_task_done(q), MP_EVALUE);
  mp_queue_free(q);
}

/* A join already waiting learns of the death while it waits. */
static int take_wait_die(void *arg) {
  worker_arg *w = arg;
  int64_t v;
  if (mp_queue_get_int64(w->q, &v, 10.0) != 0)
    return 1;
  usleep(200000);
  raise(SIGKILL);
  return 2;
}

static void waiting_join_learns_of_a_dead_holder(void **state) {
  (void)state;
  mp_queue *q = NULL;
  assert_rc(mp_joinable_queue_new(&q, 4), 0);
  assert_int_equal(mp_queue_maxsize(q), 4);
  assert_rc(mp_queue_put_int64(q, 7, 0), 0);
  assert_int_equal(mp_queue_unfinished_tasks(q), 1);
  worker_arg w = {.q = q};
  pid_t pid = mp_test_fork(take_wait_die, &w);
  double t0 = mp_test_now();
  assert_rc(mp_queue_join(q, MP_FOREVER), MP_EOWNERDEAD);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  int status = mp_test_wait(pid, mp_test_slack(10));
  assert_true(WIFSIGNALED(status));
  mp_queue_free(q);
}

/* A live holder that finishes its task is never reported; a task taken
 * by one process and marked done by another balances the count. */
static void unfinished_count_and_live_holders(void **state) {
  (void)state;
  mp_queue *q = joinable(MP_QUEUE_LIFO, 0);
  assert_int_equal(mp_queue_unfinished_tasks(q), 0);
  for (int i = 0; i < 3; i++)
    assert_rc(mp_queue_put_int64(q, i, 0), 0);
  assert_int_equal(mp_queue_unfinished_tasks(q), 3);
  int64_t v;
  assert_rc(mp_queue_get_int64(q, &v, 0), 0);
  assert_rc(mp_queue_task_done(q), 0);
  assert_int_equal(mp_queue_unfinished_tasks(q), 2);
  assert_rc(mp_queue_join(q, 0.05), MP_ETIMEDOUT);
  mp_queue *plain = NULL;
  assert_rc(mp_simple_queue_new(&plain), 0);
  assert_rc(mp_queue_unfinished_tasks(plain), MP_EINVAL);
  mp_queue_free(plain);
  mp_queue_free(q);
}

static void *late_task_done(void *arg) {
  worker_arg *w = arg;
  usleep(50000);
  w->rc = mp_queue_task_done(w->q);
  return NULL;
}

static void join_wakes_when_done(void **state) {
  (void)state;
  mp_queue *q = NULL;
  assert_rc(mp_queue_new(&q, &(mp_queue_opts){.joinable = 1, .spin_ns = -1}),
            0);
  assert_rc(mp_queue_put(q, "x", 1, 0), 0);
  char c;
  size_t len;
  assert_rc(mp_queue_get(q, &c, 1, &len, 0), 0);
  worker_arg w = {.q = q};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, late_task_done, &w), 0);
  double t0 = mp_test_now();
  assert_rc(mp_queue_join(q, mp_test_slack(10)), 0);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  pthread_join(t, NULL);
  assert_rc(w.rc, 0);
  mp_queue_free(q);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(seed_task_done_then_join),
    cmocka_unit_test(waiting_join_learns_of_a_dead_holder),
    cmocka_unit_test(unfinished_count_and_live_holders),
    cmocka_unit_test(too_many_task_done_is_a_value_error),
    cmocka_unit_test(only_a_joinable_queue_joins),
    cmocka_unit_test(join_timeout_is_bounded),
    cmocka_unit_test(join_waits_for_thread_workers),
    cmocka_unit_test(join_waits_for_process_workers),
    cmocka_unit_test(killed_worker_leaves_task_unfinished),
    cmocka_unit_test(join_wakes_when_done),
};

MP_TEST_MAIN(tests)
