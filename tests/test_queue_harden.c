/* test_queue_harden.c - the queue defects of issue 8 (hardening), one case
 * or more each, every one failing on the code before its fix:
 *   2  LIFO/priority heap indices from shared memory are checked
 *   4  no queue call waits on an internal lock past its deadline (sweep
 *      before a large put, close, LIFO qsize/empty/full, the last free)
 *   7  the heap get copies a slot's header once (no double fetch)
 *   8  a holder that exec'd is detected (it no longer maps the queue)
 *   9  close, taking over a dead consumer's lock, recovers its large message
 * (Defect 1, PID namespaces, is tests/test_liveness.c.)
 *
 * White-box: includes src/queue_internal.h to scribble on the shared state
 * and to hold a queue lock as a stopped or dead process would. A call that
 * would hang (the defect) runs in a forked child bounded in time. Forked
 * children never call cmocka: they report through their exit status. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "queue_internal.h"

static mp_queue *qnew(const mp_queue_opts *o) {
  mp_queue *q = NULL;
  assert_rc(mp_queue_new(&q, o), 0);
  return q;
}

static int count_prefix(const char *prefix) {
  size_t plen = strlen(prefix);
  DIR *d = opendir("/dev/shm");
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, prefix, plen) == 0 && e->d_name[plen] == '+' &&
        e->d_name[plen + 1] != 's' && e->d_name[plen + 1] != '\0' &&
        e->d_name[plen + 1] != '=')
      n++; /* not a kept segment, the guard or a user's link (queue.c) */
  closedir(d);
  return n;
}

static int count_large(mp_queue *q) { return count_prefix(q->prefix); }

/* bounded runs fn(arg) in a child and returns its exit code; a child that
 * does not end within seconds (a hang: the defect) or dies by a signal
 * fails the case. */
static int bounded(int (*fn)(void *), void *arg, double seconds) {
  pid_t pid = mp_test_fork(fn, arg);
  int st = mp_test_wait(pid, mp_test_slack(seconds));
  if (st == -1)
    fail_msg("the call hung (still running after %.1f s)",
             mp_test_slack(seconds));
  if (WIFSIGNALED(st))
    fail_msg("the child died of signal %d", WTERMSIG(st));
  return WEXITSTATUS(st);
}

static bool known_result(int rc) {
  return rc == 0 || rc == MP_EAGAIN || rc == MP_ECORRUPT ||
         rc == MP_ETOOBIG || rc == MP_ENOENT || rc == MP_EPROTO;
}

/* ---- defect 2: heap indices ------------------------------------------------ */

typedef struct scribble_arg {
  mp_queue *q;
  unsigned seed;
} scribble_arg;

/* scribble writes random words over the heap array, the free stack and
 * the derived counters, as a hostile same-user process may, then uses
 * the queue: every call must answer, never crash. */
static int scribble_and_use(void *arg) {
  scribble_arg *a = arg;
  mp_queue *q = a->q;
  unsigned x = a->seed;
  char buf[512];
  size_t len;
  for (int round = 0; round < 400; round++) {
    for (int k = 0; k < 4; k++) {
      x = x * 1103515245u + 12345u;
      uint32_t v = x;
      x = x * 1103515245u + 12345u;
      switch (x % 5) {
      case 0:
        q->heap[x % q->nslots] = v;
        break;
      case 1:
        q->freestk[x % q->nslots] = v;
        break;
      case 2:
        atomic_store(&q->s->hcount, v % 3 ? v % (q->nslots + 2) : v);
        break;
      case 3:
        q->s->free_top = v % 3 ? v % (q->nslots + 2) : v;
        break;
      default:
        q->heap[0] = 0x40000000u;
      }
    }
    int rc = mp_queue_put_nowait(q, "abcdefgh", 8);
    if (!known_result(rc))
      return 10;
    rc = mp_queue_get_nowait(q, buf, sizeof buf, &len);
    if (!known_result(rc))
      return 11;
    if (rc == 0 && len > sizeof buf)
      return 12;
    if (mp_queue_qsize(q) < 0 || mp_queue_empty(q) < 0 || mp_queue_full(q) < 0)
      return 13;
  }
  return 0;
}

static void heap_index_from_shared_memory_is_checked(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_LIFO, MP_QUEUE_PRIORITY};
  for (int i = 0; i < 2; i++) {
    mp_queue *q = qnew(&(mp_queue_opts){.order = orders[i], .maxsize = 16});
    /* The case: heap[1] = 0x40000000, then a get. */
    for (int k = 0; k < 3; k++)
      assert_rc(mp_queue_put_int64(q, k, 0), 0);
    q->heap[1] = 0x40000000u;
    q->heap[2] = 0x40000000u;
    int64_t v;
    for (int k = 0; k < 3; k++) {
      int rc = mp_queue_get_int64(q, &v, 0);
      assert_true(rc == 0 || rc == MP_ECORRUPT);
    }
    /* Random scribbles, then use, many times. */
    for (unsigned seed = 1; seed <= 8; seed++) {
      scribble_arg a = {.q = q, .seed = seed * 7919u + (unsigned)i};
      assert_int_equal(bounded(scribble_and_use, &a, 20), 0);
    }
    mp_queue_free(q);
  }
}

/* ---- defect 7: the heap get's slot header is read once -------------------- */

typedef struct flip_arg {
  mp_queue *q;
  _Atomic int stop;
} flip_arg;

static void *flip_lengths(void *arg) {
  flip_arg *f = arg;
  while (!atomic_load(&f->stop)) {
    /* Between a valid length and one far past the mapping, each for a
     * while: a get that checks one and copies the other reads wild. */
    for (int phase = 0; phase < 2; phase++) {
      uint32_t len = phase ? 8 : 0x80000u; /* < the buffer */
      for (uint32_t i = 0; i < f->q->nslots; i++) {
        mp__qslot *sl =
            (mp__qslot *)(void *)(f->q->ring + (size_t)i * f->q->slot_size);
        __atomic_store_n(&sl->len, len, __ATOMIC_RELAXED);
      }
      for (int k = 0; k < 40; k++)
        __asm__ __volatile__("" ::: "memory");
    }
  }
  return NULL;
}

static int get_while_lengths_flip(void *arg) {
  mp_queue *q = arg;
  flip_arg f = {.q = q};
  pthread_t t;
  if (pthread_create(&t, NULL, flip_lengths, &f) != 0)
    return 20;
  static unsigned char buf[1 << 20];
  int bad = 0;
  double end = mp_test_now() + 1.0;
  while (mp_test_now() < end && !bad) {
    for (int k = 0; k < 8; k++)
      (void)mp_queue_put_nowait(q, "12345678", 8);
    for (int k = 0; k < 8; k++) {
      size_t len = 0;
      int rc = mp_queue_get_nowait(q, buf, sizeof buf, &len);
      if (!known_result(rc) || (rc == 0 && len > q->inline_max))
        bad = 21;
    }
  }
  atomic_store(&f.stop, 1);
  pthread_join(t, NULL);
  return bad;
}

static void heap_get_reads_slot_header_once(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.order = MP_QUEUE_LIFO, .maxsize = 8});
  assert_int_equal(bounded(get_while_lengths_flip, q, 20), 0);
  mp_queue_free(q);
}

/* ---- defect 4: deadlines on internal locks -------------------------------- */

typedef struct holder {
  mp_queue *q;
  int which; /* 0: plock, 1: clock */
  mp_test_signal held;
} holder;

static int hold(void *arg) {
  holder *h = arg;
  bool rec = false;
  (void)mp__queue_lock(h->q, h->which ? &h->q->s->clock : &h->q->s->plock,
                       &rec, NULL);
  mp_test_signal_post(&h->held);
  for (;;)
    pause();
  return 0;
}

static pid_t start_holder(holder *h) {
  mp_test_signal_open(&h->held);
  pid_t pid = mp_test_fork(hold, h);
  assert_int_equal(mp_test_signal_wait(&h->held, mp_test_slack(10)), 1);
  return pid;
}

static void stop_holder(holder *h, pid_t pid) {
  kill(pid, SIGKILL);
  mp_test_wait(pid, mp_test_slack(10));
  mp_test_signal_close(&h->held);
}

static int large_put_nowait(void *arg) {
  mp_queue *q = arg;
  size_t n = 1 << 20;
  void *big = calloc(1, n);
  int rc = mp_queue_put_nowait(q, big, n);
  free(big);
  return rc == 0 ? 0 : 30;
}

/* The case: a consumer stopped holding clock held a put_nowait of
 * 1 MiB (its sweep waited for clock). */
static void stopped_consumer_does_not_hold_a_large_put(void **state) {
  (void)state;
  holder h = {.q = qnew(&(mp_queue_opts){.capacity = 4096}), .which = 1};
  pid_t pid = start_holder(&h);
  double t0 = mp_test_now();
  assert_int_equal(bounded(large_put_nowait, h.q, 5), 0);
  assert_true(mp_test_now() - t0 < mp_test_slack(2));
  stop_holder(&h, pid);
  char prefix[MP__QUEUE_PREFIX_MAX];
  snprintf(prefix, sizeof prefix, "%s", h.q->prefix);
  mp_queue_free(h.q); /* the last user removes the queued segment */
  assert_int_equal(count_prefix(prefix), 0);
}

static int heap_state_calls(void *arg) {
  mp_queue *q = arg;
  if (mp_queue_qsize(q) != 1)
    return 40;
  if (mp_queue_empty(q) != 0)
    return 41;
  if (mp_queue_full(q) != 0)
    return 42;
  return 0;
}

static void heap_state_calls_never_wait_on_the_lock(void **state) {
  (void)state;
  holder h = {.q = qnew(&(mp_queue_opts){.order = MP_QUEUE_LIFO}), .which = 0};
  assert_rc(mp_queue_put_int64(h.q, 1, 0), 0);
  pid_t pid = start_holder(&h);
  assert_int_equal(bounded(heap_state_calls, h.q, 5), 0);
  stop_holder(&h, pid);
  mp_queue_free(h.q);
}

static int close_while_held(void *arg) {
  mp_queue *q = arg;
  if (mp_queue_close(q) != 0)
    return 50;
  if (mp_queue_closed(q) != 1)
    return 51;
  if (mp_queue_put_nowait(q, "x", 1) != MP_ECLOSED)
    return 52;
  /* A put that passed its check before the close may still commit: an
   * empty queue is not "closed" for gets until the holder lets go. */
  char buf[8];
  size_t len;
  if (mp_queue_get(q, buf, sizeof buf, &len, 0.05) != MP_ETIMEDOUT)
    return 53;
  return 0;
}

/* close never waits on the producers' lock; gets answer MP_ECLOSED once
 * its holder released it, or died. */
static void close_does_not_wait_for_a_stopped_producer(void **state) {
  (void)state;
  mp_queue_order orders[] = {MP_QUEUE_FIFO, MP_QUEUE_LIFO};
  for (int i = 0; i < 2; i++) {
    holder h = {.q = qnew(&(mp_queue_opts){.order = orders[i]}), .which = 0};
    pid_t pid = start_holder(&h);
    pid_t c = mp_test_fork(close_while_held, h.q);
    int st = mp_test_wait(c, mp_test_slack(5));
    stop_holder(&h, pid);
    assert_true(st != -1 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(mp_queue_closed(h.q), 1);
    char buf[8];
    size_t len;
    assert_rc(mp_queue_get(h.q, buf, sizeof buf, &len, mp_test_slack(5)),
              MP_ECLOSED);
    assert_rc(mp_queue_put_nowait(h.q, "x", 1), MP_ECLOSED);
    mp_queue_free(h.q);
  }
}

typedef struct free_arg {
  mp_queue *q;
  _Atomic int held, release;
} free_arg;

static void *hold_in_thread(void *arg) {
  free_arg *f = arg;
  bool rec = false;
  (void)mp__queue_lock(f->q, &f->q->s->plock, &rec, NULL);
  atomic_store(&f->held, 1);
  while (!atomic_load(&f->release))
    usleep(1000);
  return NULL; /* never releases: its handle is gone by now */
}

static int free_while_a_thread_holds(void *arg) {
  (void)arg;
  free_arg f = {0};
  if (mp_queue_new(&f.q, NULL) != 0)
    return 60;
  pthread_t t;
  if (pthread_create(&t, NULL, hold_in_thread, &f) != 0)
    return 61;
  while (!atomic_load(&f.held))
    usleep(1000);
  mp_queue_free(f.q); /* the last user: its discard wants the lock */
  atomic_store(&f.release, 1);
  pthread_join(t, NULL);
  return 0;
}

static void last_free_does_not_wait_forever(void **state) {
  (void)state;
  assert_int_equal(bounded(free_while_a_thread_holds, NULL, 5), 0);
}

/* ---- defect 8: a holder that exec'd from another thread ------------------ */

static void *exec_sleep(void *arg) {
  (void)arg;
  execl("/bin/sleep", "sleep", "30", (char *)NULL);
  _exit(70);
}

/* The main thread takes the producers' lock; another thread execs: the
 * process lives on with the main thread's id and start time, and the new
 * image never releases the lock. */
static int hold_then_exec(void *arg) {
  holder *h = arg;
  bool rec = false;
  (void)mp__queue_lock(h->q, &h->q->s->plock, &rec, NULL);
  mp_test_signal_post(&h->held);
  pthread_t t;
  if (pthread_create(&t, NULL, exec_sleep, NULL) != 0)
    return 71;
  for (;;)
    pause();
  return 0;
}

static void holder_that_execd_is_taken_over(void **state) {
  (void)state;
  holder h = {.q = qnew(NULL)};
  mp_test_signal_open(&h.held);
  pid_t pid = mp_test_fork(hold_then_exec, &h);
  assert_int_equal(mp_test_signal_wait(&h.held, mp_test_slack(10)), 1);
  int rc = mp_queue_put(h.q, "x", 1, mp_test_slack(10));
  kill(pid, SIGKILL);
  mp_test_wait(pid, mp_test_slack(10));
  mp_test_signal_close(&h.held);
  assert_rc(rc, 0);
  assert_int_equal(mp_queue_qsize(h.q), 1);
  mp_queue_free(h.q);
}

/* ---- defect 9: close after a dead consumer's large hand-over ------------- */

typedef struct die_arg {
  mp_queue *q;
} die_arg;

/* A heap consumer killed after committing the removal of a large message,
 * before removing its segment. */
static int die_after_large_commit(void *arg) {
  die_arg *a = arg;
  mp_queue *q = a->q;
  mp__qshared *s = q->s;
  bool rec = false;
  (void)mp__queue_lock(q, &s->plock, &rec, NULL);
  uint32_t idx = q->heap[0];
  mp__qslot *sl = (mp__qslot *)(void *)(q->ring + (size_t)idx * q->slot_size);
  mp__qlarge_ref ref;
  memcpy(&ref, sl + 1, sizeof ref);
  atomic_store(&s->pend_ctr, ref.ctr);
  atomic_store(&s->pend_pid, ref.pid);
  atomic_store(&sl->state, atomic_load(&sl->state) & ~(uint64_t)1);
  raise(SIGKILL);
  return 9;
}

static void close_recovers_a_dead_consumers_large_message(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.order = MP_QUEUE_LIFO});
  static unsigned char big[100000];
  assert_rc(mp_queue_put(q, big, sizeof big, 0), 0);
  assert_int_equal(count_large(q), 1);
  die_arg a = {.q = q};
  pid_t pid = mp_test_fork(die_after_large_commit, &a);
  int st = mp_test_wait(pid, mp_test_slack(10));
  assert_true(WIFSIGNALED(st));
  /* close is the first to take the dead consumer's lock over. */
  assert_rc(mp_queue_close(q), 0);
  assert_int_equal(count_large(q), 0);
  assert_int_equal(q->s->pend_pid, 0);
  mp_queue_free(q);
}

/* ---- issue 9: NaN timeouts, inline_max, details ------------------------- */

static void nan_timeout_is_invalid_everywhere(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.order = MP_QUEUE_PRIORITY,
                                      .joinable = 1});
  double nan = __builtin_nan("");
  char buf[16];
  size_t len, lens[2] = {1, 1};
  int64_t v, prio;
  double dv;
  mp_queue_msg m;
#define NAN_CASE(call)                                                       \
  do {                                                                       \
    assert_rc((int)(call), MP_EINVAL);                                       \
    assert_string_equal(mp_error_detail(), "timeout is NaN");                \
  } while (0)
  NAN_CASE(mp_queue_put(q, "x", 1, nan));
  NAN_CASE(mp_queue_put_priority(q, 1, "x", 1, nan));
  NAN_CASE(mp_queue_put_batch(q, "xy", lens, 2, nan));
  NAN_CASE(mp_queue_put_int64(q, 1, nan));
  NAN_CASE(mp_queue_put_double(q, 1.0, nan));
  NAN_CASE(mp_queue_put_str(q, "x", nan));
  assert_rc(mp_queue_put_int64(q, 5, 0), 0);
  NAN_CASE(mp_queue_get(q, buf, sizeof buf, &len, nan));
  NAN_CASE(mp_queue_get_priority(q, &prio, buf, sizeof buf, &len, nan));
  NAN_CASE(mp_queue_get_batch(q, buf, sizeof buf, lens, 2, nan));
  NAN_CASE(mp_queue_get_msg(q, &m, nan));
  NAN_CASE(mp_queue_get_int64(q, &v, nan));
  NAN_CASE(mp_queue_get_double(q, &dv, nan));
  NAN_CASE(mp_queue_get_str(q, buf, sizeof buf, nan));
  NAN_CASE(mp_queue_join(q, nan));
  /* Nothing was taken by the refused calls. */
  assert_int_equal(mp_queue_qsize(q), 1);
  mp_queue_free(q);
}

static void inline_max_below_24_is_refused(void **state) {
  (void)state;
  mp_queue *q = NULL;
  for (size_t i = 1; i < 24; i++) {
    assert_rc(mp_queue_new(&q, &(mp_queue_opts){.inline_max = i}), MP_EINVAL);
    assert_non_null(strstr(mp_error_detail(), "inline_max"));
    assert_rc(mp_queue_size_for(&(mp_queue_opts){.inline_max = i,
                                                 .order = MP_QUEUE_LIFO}),
              MP_EINVAL);
  }
  assert_null(q);
  assert_rc(mp_queue_new(&q, &(mp_queue_opts){.inline_max = 24}), 0);
  mp_queue_free(q);
  assert_rc(mp_queue_new(&q, &(mp_queue_opts){.order = 7}), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "order"));
}

/* ---- lease mode (at-least-once) ------------------------------------------ */

static int lease_and_die(void *arg) {
  mp_queue *q = arg;
  static unsigned char buf[200000];
  size_t len;
  uint64_t lease;
  if (mp_queue_get_lease(q, buf, sizeof buf, &len, &lease, 5.0) != 0)
    return 1;
  raise(SIGKILL); /* mid-task: never acked */
  return 2;
}

static void consumer_killed_mid_task_loses_nothing(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.lease = 1, .capacity = 8192});
  static unsigned char big[100000], out[200000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (unsigned char)(i * 7);
  assert_rc(mp_queue_put(q, "first", 5, 0), 0);
  assert_rc(mp_queue_put(q, big, sizeof big, 0), 0);
  assert_rc(mp_queue_put(q, "last", 4, 0), 0);
  for (int k = 0; k < 2; k++) {
    pid_t pid = mp_test_fork(lease_and_die, q);
    int st = mp_test_wait(pid, mp_test_slack(10));
    assert_true(WIFSIGNALED(st));
  }
  /* Both taken messages come back, after "last". */
  size_t len;
  uint64_t l1, l2, l3;
  assert_rc(mp_queue_get_lease(q, out, sizeof out, &len, &l1, 0), 0);
  assert_int_equal(len, 4);
  assert_memory_equal(out, "last", 4);
  assert_rc(mp_queue_get_lease(q, out, sizeof out, &len, &l2, 0), 0);
  assert_int_equal(len, 5);
  assert_memory_equal(out, "first", 5);
  assert_rc(mp_queue_get_lease(q, out, sizeof out, &len, &l3, 0), 0);
  assert_int_equal(len, sizeof big);
  assert_memory_equal(out, big, sizeof big);
  assert_rc(mp_queue_get_lease(q, out, sizeof out, &len, &l1, 0), MP_EAGAIN);
  assert_rc(mp_queue_ack(q, l2), 0);
  assert_rc(mp_queue_ack(q, l2), MP_EINVAL); /* acked already */
  assert_rc(mp_queue_ack(q, l3), 0);
  assert_int_equal(count_large(q), 0);
  assert_rc(mp_queue_ack(q, 0), 0); /* the one of "last" */
  assert_rc(mp_queue_ack(q, 0), MP_EINVAL);
  mp_queue_free(q);
}

static void lease_table_full_and_options(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.lease = 1, .joinable = 1});
  for (int i = 0; i < MP_QUEUE_LEASES + 1; i++)
    assert_rc(mp_queue_put_int64(q, i, 0), 0);
  int64_t v;
  for (int i = 0; i < MP_QUEUE_LEASES; i++)
    assert_rc(mp_queue_get_int64(q, &v, 0), 0);
  assert_rc(mp_queue_get_int64(q, &v, 0), MP_EBUSY);
  /* task_done releases a lease too. */
  assert_rc(mp_queue_task_done(q), 0);
  assert_rc(mp_queue_get_int64(q, &v, 0), 0);
  assert_int_equal(v, MP_QUEUE_LEASES);
  mp_queue_free(q);
  mp_queue *h = NULL;
  assert_rc(mp_queue_new(&h, &(mp_queue_opts){.lease = 1,
                                              .order = MP_QUEUE_LIFO}),
            MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "FIFO"));
  q = qnew(NULL);
  size_t len;
  uint64_t lease;
  char buf[8];
  assert_rc(mp_queue_get_lease(q, buf, sizeof buf, &len, &lease, 0), MP_EINVAL);
  assert_rc(mp_queue_ack(q, 0), MP_EINVAL);
  mp_queue_free(q);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(consumer_killed_mid_task_loses_nothing),
    cmocka_unit_test(lease_table_full_and_options),
    cmocka_unit_test(nan_timeout_is_invalid_everywhere),
    cmocka_unit_test(inline_max_below_24_is_refused),
    cmocka_unit_test(heap_index_from_shared_memory_is_checked),
    cmocka_unit_test(heap_get_reads_slot_header_once),
    cmocka_unit_test(stopped_consumer_does_not_hold_a_large_put),
    cmocka_unit_test(heap_state_calls_never_wait_on_the_lock),
    cmocka_unit_test(close_does_not_wait_for_a_stopped_producer),
    cmocka_unit_test(last_free_does_not_wait_forever),
    cmocka_unit_test(holder_that_execd_is_taken_over),
    cmocka_unit_test(close_recovers_a_dead_consumers_large_message),
};

MP_TEST_MAIN(tests)
