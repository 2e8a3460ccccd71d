/* test_liveness.c - the one liveness judgement (mp__os_liveness) and the
 * queue's PID namespaces (issue 8, defect 1): unknown means alive, "no
 * /proc" is told apart from "gone", and a queue shared by processes of
 * several PID namespaces (containers sharing /dev/shm) never takes over a
 * live holder's lock nor sweeps a live producer's large segment.
 *
 * The other namespace is made as `unshare --pid --fork --mount-proc` does,
 * by mp_test_in_pid_ns (harness.h; we run as root in CI, elsewhere the
 * cases skip): its /proc is its own, one that shows nothing (tmpfs), or
 * the outer one.
 *
 * Forked children never call cmocka: they report through their exit
 * status (0 = fine, other values name the step that failed). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "os/os.h"
#include "os/queue_os.h"
#include "queue_fixture.h"
#include "queue_internal.h"

/* ---- the liveness function ------------------------------------------------ */

static int exit_at_once(void *arg) {
  (void)arg;
  return 0;
}

/* In our own namespace with /proc: a live process is alive, a reaped one
 * gone, a reused id (other start time) gone, a zombie gone. */
static void liveness_in_own_namespace(void **state) {
  (void)state;
  assert_true(mp__os_proc_ok());
  assert_true(mp__os_pidns() != 0);
  assert_int_equal(mp__os_liveness(getpid(), 0, 0), MP__LIVE_ALIVE);
  pid_t dead = mp_test_fork(exit_at_once, NULL);
  mp_test_wait_exit(dead, 0, mp_test_slack(10));
  assert_int_equal(mp__os_liveness(dead, 0, 0), MP__LIVE_GONE);
  assert_false(mp__os_pid_alive(dead));
  /* Our pid with another start time: a reuse of the id. */
  uint64_t start = 0;
  assert_rc(mp__os_thread_start(getpid(), &start), 0);
  assert_int_equal(mp__os_liveness(getpid(), start, 64), MP__LIVE_ALIVE);
  assert_int_equal(mp__os_liveness(getpid(), start + 1, 64), MP__LIVE_GONE);
  /* A zombie can release nothing. */
  pid_t z = fork();
  assert_true(z >= 0);
  if (z == 0)
    _exit(0);
  int st;
  for (int i = 0; i < 2000 && mp__os_liveness(z, 0, 0) != MP__LIVE_GONE; i++)
    usleep(1000);
  assert_int_equal(mp__os_liveness(z, 0, 0), MP__LIVE_GONE);
  assert_int_equal(waitpid(z, &st, 0), z);
  /* PID 1 is another user's process for nobody here, yet: kill() success
   * or EPERM both mean alive. */
  assert_int_not_equal(mp__os_liveness(1, 0, 0), MP__LIVE_GONE);
}

/* Without /proc (or with another namespace's): a live process is not
 * gone, a start time cannot be checked (unknown, so alive), and only
 * kill()'s ESRCH says gone. */
static int check_without_proc(void *arg) {
  (void)arg;
  if (mp__os_proc_ok())
    return 1;
  if (mp__os_pidns() != 0)
    return 2;
  if (mp__os_liveness(getpid(), 0, 0) == MP__LIVE_GONE)
    return 3;
  if (mp__os_liveness(getpid(), 12345, 64) != MP__LIVE_UNKNOWN)
    return 4;
  uint64_t start;
  if (mp__os_thread_start(getpid(), &start) == MP_ESRCH)
    return 5; /* "cannot tell" must not read as "gone" */
  pid_t c = fork();
  if (c < 0)
    return 6;
  if (c == 0)
    _exit(0);
  int st;
  if (waitpid(c, &st, 0) != c)
    return 7;
  if (mp__os_liveness(c, 0, 0) != MP__LIVE_GONE)
    return 8;
  return 0;
}

static void liveness_without_proc(void **state) {
  (void)state;
  MP_TEST_NEED_PID_NS();
  assert_int_equal(
      mp_test_in_pid_ns(MP_TEST_PROC_NONE, check_without_proc, NULL), 0);
  assert_int_equal(
      mp_test_in_pid_ns(MP_TEST_PROC_OUTER, check_without_proc, NULL), 0);
}

/* ---- a queue shared across PID namespaces --------------------------------- */

typedef struct holder_arg {
  const char *name;
  mp_test_signal *ready;
} holder_arg;

/* A live holder of the named queue's producer lock, in the outer
 * namespace: it holds the lock until killed. */
static int hold_plock(void *arg) {
  holder_arg *a = arg;
  mp_queue *q;
  if (mp_queue_open(&q, a->name) != 0)
    return 1;
  bool rec = false;
  if (mp__queue_lock(q, &q->s->plock, &rec, NULL) != 0)
    return 2;
  mp_test_signal_post(a->ready);
  for (;;)
    pause();
}

/* In the other namespace: a put must wait for the live holder (and time
 * out), not take its lock over. */
static int put_must_time_out(void *arg) {
  mp_queue *q;
  if (mp_queue_open(&q, (const char *)arg) != 0)
    return 10;
  int rc = mp_queue_put(q, "x", 1, 0.3);
  mp_queue_free(q);
  if (rc == 0)
    return 11; /* took a live holder's lock over */
  return rc == MP_ETIMEDOUT ? 0 : 12;
}

static void live_holder_in_another_namespace_is_not_taken_over(void **state) {
  (void)state;
  MP_TEST_NEED_PID_NS();
  char name[64];
  mp_test_name(name, sizeof name, "nsq");
  mp_queue *q = NULL;
  assert_rc(mp_queue_new(&q, &(mp_queue_opts){.name = name}), 0);
  mp_test_signal ready;
  mp_test_signal_open(&ready);
  holder_arg ha = {.name = name, .ready = &ready};
  pid_t holder = mp_test_fork(hold_plock, &ha);
  assert_int_equal(mp_test_signal_wait(&ready, mp_test_slack(10)), 1);
  mp_test_proc modes[] = {MP_TEST_PROC_OWN, MP_TEST_PROC_NONE,
                          MP_TEST_PROC_OUTER};
  for (size_t i = 0; i < 3; i++) {
    int rc = mp_test_in_pid_ns(modes[i], put_must_time_out, name);
    if (rc != 0)
      fail_msg("%s: step %d", mp_test_proc_name(modes[i]), rc);
  }
  /* The holder still holds it: nobody took it. Once it dies, a process
   * of its own namespace takes it over. */
  assert_int_not_equal(atomic_load(&q->s->plock.owner), 0);
  kill(holder, SIGKILL);
  mp_test_wait(holder, mp_test_slack(10));
  assert_rc(mp_queue_put(q, "y", 1, mp_test_slack(5)), 0);
  char buf[4];
  size_t len;
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 0), 0);
  assert_int_equal(len, 1);
  mp_test_signal_close(&ready);
  mp_queue_free(q);
}

/* A producer of the outer namespace has written a large segment and not
 * yet queued its record (it is between the two steps of its put). */
static int write_large_and_wait(void *arg) {
  holder_arg *a = arg;
  mp_queue *q;
  if (mp_queue_open(&q, a->name) != 0)
    return 1;
  static unsigned char big[100000];
  mp__qlarge_ref ref;
  if (mp__qlarge_create(q, big, sizeof big, &ref,
                        mp__deadline_from_timeout(0)) != 0)
    return 2;
  mp_test_signal_post(a->ready);
  for (;;)
    pause();
}

static int sweep_in_ns(void *arg) {
  mp_queue *q;
  if (mp_queue_open(&q, (const char *)arg) != 0)
    return 10;
  mp__queue_sweep(q);
  mp_queue_free(q);
  return 0;
}

static void live_producer_in_another_namespace_is_not_swept(void **state) {
  (void)state;
  MP_TEST_NEED_PID_NS();
  char name[64];
  mp_test_name(name, sizeof name, "nss");
  mp_queue *q = NULL;
  assert_rc(mp_queue_new(&q, &(mp_queue_opts){.name = name, .capacity = 4096}),
            0);
  mp_test_signal ready;
  mp_test_signal_open(&ready);
  holder_arg ha = {.name = name, .ready = &ready};
  pid_t producer = mp_test_fork(write_large_and_wait, &ha);
  assert_int_equal(mp_test_signal_wait(&ready, mp_test_slack(10)), 1);
  assert_int_equal(count_large(q), 1);
  mp_test_proc modes[] = {MP_TEST_PROC_OWN, MP_TEST_PROC_NONE,
                          MP_TEST_PROC_OUTER};
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(mp_test_in_pid_ns(modes[i], sweep_in_ns, name), 0);
    if (count_large(q) != 1)
      fail_msg("%s: a live producer's segment was swept",
               mp_test_proc_name(modes[i]));
  }
  /* Dead now: a sweep of its own namespace removes the orphan. */
  kill(producer, SIGKILL);
  mp_test_wait(producer, mp_test_slack(10));
  mp__queue_sweep(q);
  assert_int_equal(count_large(q), 0);
  mp_test_signal_close(&ready);
  mp_queue_free(q);
}

/* ---- a Barrier shared across PID namespaces -------------------------------- */

/* Issue 8, defect 1: "Check the same liveness logic everywhere it is used:
 * sync objects". A Barrier judged its members by pid alone: a member of
 * another namespace, whose pid means nothing (or another process) here,
 * was found dead and the barrier broken under the live parties. Now each
 * member is recorded with its namespace, and judged only from there. */
static int barrier_wait_long(void *arg) {
  mp_barrier *b;
  if (mp_barrier_open(&b, arg) != 0)
    return 1;
  int rc = mp_barrier_wait(b, mp_test_slack(20));
  mp_barrier_free(b);
  return rc == MP_EBROKEN || rc == MP_ETIMEDOUT ? 0 : 2;
}

/* In the other namespace: the member of ours inside wait is alive, so a
 * wait that no third party completes times out; it must not find the
 * barrier broken by a "dead" member. */
static int barrier_wait_must_time_out(void *arg) {
  mp_barrier *b;
  if (mp_barrier_open(&b, arg) != 0)
    return 10;
  int rc = mp_barrier_wait(b, 0.5);
  mp_barrier_free(b);
  return rc == MP_ETIMEDOUT ? 0 : rc == MP_EBROKEN ? 11 : 12;
}

static void barrier_member_in_another_namespace_is_not_judged(void **state) {
  (void)state;
  MP_TEST_NEED_PID_NS();
  char name[64];
  mp_test_name(name, sizeof name, "nsbar");
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, 3, &(mp_barrier_opts){.name = name}), 0);
  mp_test_proc modes[] = {MP_TEST_PROC_OWN, MP_TEST_PROC_NONE,
                          MP_TEST_PROC_OUTER};
  for (size_t i = 0; i < 3; i++) {
    assert_rc(mp_barrier_reset(b), 0);
    pid_t member = mp_test_fork(barrier_wait_long, name);
    double until = mp_test_now() + mp_test_slack(10);
    while (mp_barrier_n_waiting(b) != 1 && mp_test_now() < until)
      usleep(1000);
    assert_int_equal(mp_barrier_n_waiting(b), 1);
    int rc = mp_test_in_pid_ns(modes[i], barrier_wait_must_time_out, name);
    mp_barrier_abort(b);
    mp_test_wait_exit(member, 0, mp_test_slack(10));
    if (rc != 0)
      fail_msg("%s: step %d (11: the live member was judged dead)",
               mp_test_proc_name(modes[i]), rc);
  }
  mp_barrier_free(b);
}

/* The users' table records each user's namespace, and a user of another
 * namespace keeps the last free in ours from discarding its messages. */
static void users_record_their_namespace(void **state) {
  (void)state;
  mp_queue *q = NULL;
  assert_rc(mp_queue_new(&q, NULL), 0);
  assert_true(q->ns >= 1 && q->ns <= MP__QUEUE_NS);
  assert_int_equal(atomic_load(&q->s->pidns[q->ns - 1]), mp__os_pidns());
  uint64_t me = ((uint64_t)q->ns << 32) | (uint32_t)getpid();
  bool found = false;
  for (int i = 0; i < MP__QUEUE_PROCS; i++)
    found |= atomic_load(&q->s->procs[i]) == me;
  assert_true(found);
  mp_queue_free(q);
}

/* A CSP channel's member of our namespace, blocked in a read, is alive to
 * a process of another namespace whose own read sweeps the channel: its end
 * stays joined and its offer posted (the sweep once judged its pid with
 * kill(), which finds nothing across namespaces, and retired the end). */
static int channel_read_long(void *arg) {
  mp_channel *c;
  mp_channel_end *r;
  if (mp_channel_open(&c, arg) != 0 || mp_channel_reader(c, &r) != 0)
    return 1;
  char buf[16];
  ssize_t n = mp_channel_read(r, buf, sizeof buf, mp_test_slack(20));
  mp_channel_end_free(r);
  mp_channel_free(c);
  return n == 5 && memcmp(buf, "hello", 5) == 0 ? 0 : 2;
}

static int channel_read_sweeps(void *arg) {
  mp_channel *c;
  mp_channel_end *r;
  if (mp_channel_open(&c, arg) != 0 || mp_channel_reader(c, &r) != 0)
    return 10;
  char buf[16];
  /* Several slices: each one sweeps the channel. */
  ssize_t n = mp_channel_read(r, buf, sizeof buf, 0.35);
  mp_channel_stats st;
  int rc = mp_channel_stats_get(c, &st);
  mp_channel_end_free(r);
  mp_channel_free(c);
  if (n != MP_ETIMEDOUT)
    return 12;
  return rc == 0 && st.readers == 2 ? 0 : 11;
}

static void channel_member_in_another_namespace_is_not_swept(void **state) {
  (void)state;
  MP_TEST_NEED_PID_NS();
  char name[64];
  mp_test_name(name, sizeof name, "nschan");
  mp_test_proc modes[] = {MP_TEST_PROC_OWN, MP_TEST_PROC_NONE,
                          MP_TEST_PROC_OUTER};
  for (size_t i = 0; i < 3; i++) {
    mp_channel *c;
    assert_rc(mp_channel_new(&c, &(mp_channel_opts){.name = name}), 0);
    pid_t member = mp_test_fork(channel_read_long, name);
    mp_channel_stats st = {0};
    double until = mp_test_now() + mp_test_slack(10);
    while ((mp_channel_stats_get(c, &st) != 0 || st.readers != 1) &&
           mp_test_now() < until)
      usleep(1000);
    assert_int_equal(st.readers, 1);
    usleep(20000); /* into its read */
    int rc = mp_test_in_pid_ns(modes[i], channel_read_sweeps, name);
    mp_channel_end *w;
    assert_rc(mp_channel_writer(c, &w), 0);
    int wrc = mp_channel_write(w, "hello", 5, mp_test_slack(10));
    mp_test_wait_exit(member, 0, mp_test_slack(10));
    mp_channel_end_free(w);
    mp_channel_free(c);
    if (rc != 0)
      fail_msg("%s: step %d (11: the live reader was swept)",
               mp_test_proc_name(modes[i]), rc);
    assert_rc(wrc, 0);
  }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(liveness_in_own_namespace),
    cmocka_unit_test(liveness_without_proc),
    cmocka_unit_test(live_holder_in_another_namespace_is_not_taken_over),
    cmocka_unit_test(live_producer_in_another_namespace_is_not_swept),
    cmocka_unit_test(users_record_their_namespace),
    cmocka_unit_test(barrier_member_in_another_namespace_is_not_judged),
    cmocka_unit_test(channel_member_in_another_namespace_is_not_swept),
};

MP_TEST_MAIN(tests)
