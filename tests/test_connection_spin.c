/* test_connection_spin.c - the spin-then-block wait of a receive and of
 * mp_connection_poll (connection.c, "Waiting for input"): a message that
 * arrives while the receiver spins, while it yields, and after it blocked,
 * on a socket pair and on a pipe; end of stream during the spin; a
 * message split across many reads during the spin; timeout 0 never
 * spinning and a spin never outlasting a poll's timeout; the adaptive
 * budget; the poll(2) fallback for descriptors that cannot be read
 * without waiting (a pty); the budget's setter and environment variable;
 * and many round trips between processes with both sides spinning.
 *
 * Each phase is made deterministic with the internal phase hook: the hook
 * runs as the waiting thread enters a phase, and sends (or closes) from
 * there, so the input can only arrive in that phase. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "connection_internal.h"
#include "harness.h"

#define PEER_TIMEOUT 30.0

/* ---- the hook ------------------------------------------------------------ */

/* What the hook does when the waiting end enters the phase `when`. */
enum action { SEND, CLOSE, SEND_BYTE, POST };

static struct {
  int when;              /* the phase that triggers the action */
  enum action what;      /* what to do then */
  mp_connection *peer;   /* the other end */
  const unsigned char *bytes; /* SEND_BYTE: the raw frame, one byte a time */
  size_t nbytes, next;
  mp_test_signal *signal; /* POST: tell a thread the phase was entered */
  int seen[4];           /* how often each phase was entered */
} hk;

static void hook(mp_connection *c, int phase) {
  (void)c;
  hk.seen[phase]++;
  if (phase != hk.when)
    return;
  switch (hk.what) {
  case SEND:
    if (hk.peer != NULL)
      mp_connection_send_bytes(hk.peer, "spin", 0, 4);
    hk.peer = NULL; /* once */
    break;
  case CLOSE:
    if (hk.peer != NULL)
      mp_connection_close(hk.peer);
    hk.peer = NULL;
    break;
  case SEND_BYTE:
    if (hk.next < hk.nbytes) {
      ssize_t w = write(mp_connection_fileno(hk.peer), hk.bytes + hk.next, 1);
      hk.next += w == 1;
    }
    break;
  case POST:
    mp_test_signal_post(hk.signal);
    hk.when = -1;
    break;
  }
}

static void hook_on(int when, enum action what, mp_connection *peer) {
  mp__connection_detect_contention(false);
  memset(&hk, 0, sizeof hk);
  hk.when = when;
  hk.what = what;
  hk.peer = peer;
  mp__connection_set_spin_hook(hook);
}

static void hook_off(void) {
  mp__connection_set_spin_hook(NULL);
  mp__connection_detect_contention(true);
}

/* pair makes a duplex (socket pair) or simplex (pipe) connection: *r
 * receives, *w sends. */
static void pair(int duplex, mp_connection **r, mp_connection **w) {
  assert_rc(mp_pipe(r, w, duplex), 0);
}

static void expect_spin_message(mp_connection *r) {
  char buf[8];
  size_t len = 0;
  assert_rc(mp_connection_recv_bytes(r, buf, sizeof buf, &len), 0);
  assert_int_equal(len, 4);
  assert_memory_equal(buf, "spin", 4);
}

/* ---- the phases ---------------------------------------------------------- */

/* A message sent as the receiver starts spinning is read in the spin. */
static void message_during_spin(void **state) {
  (void)state;
  for (int duplex = 0; duplex <= 1; duplex++) {
    mp_connection *r, *w;
    pair(duplex, &r, &w);
    assert_rc(mp_connection_set_spin(r, 0.5), 0);
    hook_on(MP__SPIN_SPIN, SEND, w);
    expect_spin_message(r);
    hook_off();
    assert_int_equal(mp__connection_last_phase(r), MP__SPIN_SPIN);
    assert_int_equal(hk.seen[MP__SPIN_YIELD], 0);
    assert_int_equal(hk.seen[MP__SPIN_BLOCK], 0);
    mp_connection_free(r);
    mp_connection_free(w);
  }
}

/* A message sent once the (1 us) spin has given up is read in the yield
 * phase, without blocking. */
static void message_during_yield(void **state) {
  (void)state;
  for (int duplex = 0; duplex <= 1; duplex++) {
    mp_connection *r, *w;
    pair(duplex, &r, &w);
    assert_rc(mp_connection_set_spin(r, 1e-6), 0);
    hook_on(MP__SPIN_YIELD, SEND, w);
    expect_spin_message(r);
    hook_off();
    assert_int_equal(mp__connection_last_phase(r), MP__SPIN_YIELD);
    assert_int_equal(hk.seen[MP__SPIN_BLOCK], 0);
    mp_connection_free(r);
    mp_connection_free(w);
  }
}

/* A thread that sends only once the receiver has entered its blocking
 * phase, and after a pause, so the receive really sleeps. */
typedef struct late {
  mp_test_signal blocked;
  mp_connection *w;
  int delay_ms;
} late;

static void *late_send(void *arg) {
  late *l = arg;
  if (mp_test_signal_wait(&l->blocked, PEER_TIMEOUT) == 1) {
    usleep((useconds_t)l->delay_ms * 1000);
    mp_connection_send_bytes(l->w, "spin", 0, 4);
  }
  return NULL;
}

static void start_late(late *l, mp_connection *w, int delay_ms,
                       pthread_t *t) {
  mp_test_signal_open(&l->blocked);
  l->w = w;
  l->delay_ms = delay_ms;
  hook_on(MP__SPIN_BLOCK, POST, NULL);
  hk.signal = &l->blocked;
  assert_int_equal(pthread_create(t, NULL, late_send, l), 0);
}

static void join_late(late *l, pthread_t t) {
  pthread_join(t, NULL);
  hook_off();
  mp_test_signal_close(&l->blocked);
}

/* A message that comes after the spin and the yields is read by the
 * blocking read; the budget then halves (the wait was long). */
static void message_after_blocking(void **state) {
  (void)state;
  for (int duplex = 0; duplex <= 1; duplex++) {
    mp_connection *r, *w;
    pair(duplex, &r, &w);
    assert_rc(mp_connection_set_spin(r, 2e-3), 0);
    late l;
    pthread_t t;
    start_late(&l, w, 50, &t);
    expect_spin_message(r);
    join_late(&l, t);
    assert_int_equal(mp__connection_last_phase(r), MP__SPIN_BLOCK);
    assert_true(hk.seen[MP__SPIN_YIELD] == 1);
    /* 50 ms is far over 1.5 budgets: the next spin is half as long. */
    assert_int_equal(mp__connection_spin_budget_ns(r), 1000 * 1000);
    mp_connection_free(r);
    mp_connection_free(w);
  }
}

/* The budget adapts: long waits halve it down to nothing (then a wait only
 * yields before blocking), a message caught in the spin restores it, and
 * so does a blocked wait that ended within 1.5 budgets. */
static void budget_adapts(void **state) {
  (void)state;
  mp_connection *r, *w;
  pair(1, &r, &w);
  assert_rc(mp_connection_set_spin(r, 4e-6), 0);
  for (int i = 0; i < 3; i++) {
    late l;
    pthread_t t;
    start_late(&l, w, 5, &t);
    expect_spin_message(r);
    join_late(&l, t);
  }
  /* 4 us -> 2 us -> 1 us -> below 1 us: 0. */
  assert_int_equal(mp__connection_spin_budget_ns(r), 0);
  /* With no budget left, a wait skips the spin but still yields. */
  hook_on(MP__SPIN_YIELD, SEND, w);
  expect_spin_message(r);
  hook_off();
  assert_int_equal(hk.seen[MP__SPIN_SPIN], 0);
  assert_int_equal(mp__connection_last_phase(r), MP__SPIN_YIELD);
  assert_int_equal(mp__connection_spin_budget_ns(r), 4000);

  /* A blocked wait that ends at once (the hook sends as it blocks) is
   * within 1.5 budgets when the budget is large: back to the full one. */
  assert_rc(mp_connection_set_spin(r, 0.2), 0);
  late l;
  pthread_t t;
  start_late(&l, w, 400, &t);
  expect_spin_message(r);
  join_late(&l, t);
  assert_int_equal(mp__connection_spin_budget_ns(r), 100 * 1000 * 1000);
  hook_on(MP__SPIN_BLOCK, SEND, w);
  expect_spin_message(r);
  hook_off();
  assert_int_equal(mp__connection_last_phase(r), MP__SPIN_BLOCK);
  assert_int_equal(mp__connection_spin_budget_ns(r), 200 * 1000 * 1000);
  mp_connection_free(r);
  mp_connection_free(w);
}

/* The peer closing while the receiver spins is end of stream, as before:
 * MP_ECLOSED at a message boundary. */
static void eof_during_spin(void **state) {
  (void)state;
  for (int duplex = 0; duplex <= 1; duplex++) {
    mp_connection *r, *w;
    pair(duplex, &r, &w);
    assert_rc(mp_connection_set_spin(r, 0.5), 0);
    hook_on(MP__SPIN_SPIN, CLOSE, w);
    char buf[8];
    size_t len;
    assert_rc(mp_connection_recv_bytes(r, buf, sizeof buf, &len), MP_ECLOSED);
    hook_off();
    assert_int_equal(mp__connection_last_phase(r), MP__SPIN_SPIN);
    mp_connection_free(r);
    mp_connection_free(w);
  }
}

/* A frame that arrives one byte per spin (header and payload split over
 * nine reads) is read whole; end of stream in the middle of one that
 * arrives so breaks the stream (MP_EPROTO) as a blocking read does. */
static void message_split_across_spins(void **state) {
  (void)state;
  static const unsigned char frame[] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
  for (int duplex = 0; duplex <= 1; duplex++) {
    mp_connection *r, *w;
    pair(duplex, &r, &w);
    assert_rc(mp_connection_set_spin(r, 0.5), 0);
    hook_on(MP__SPIN_SPIN, SEND_BYTE, w);
    hk.bytes = frame;
    hk.nbytes = sizeof frame;
    char buf[8];
    size_t len = 0;
    assert_rc(mp_connection_recv_bytes(r, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(hk.next, sizeof frame);
    assert_true(hk.seen[MP__SPIN_SPIN] >= 1);
    /* Now 6 bytes of a frame: the receive reads them at once, then spins
     * for the rest, and the writer closes during that spin. */
    hook_off();
    assert_int_equal(write(mp_connection_fileno(w), frame, 6), 6);
    hook_on(MP__SPIN_SPIN, CLOSE, w);
    assert_rc(mp_connection_recv_bytes(r, buf, sizeof buf, &len), MP_EPROTO);
    hook_off();
    assert_int_equal(mp__connection_last_phase(r), MP__SPIN_SPIN);
    mp_connection_free(r);
    mp_connection_free(w);
  }
}

/* ---- poll ---------------------------------------------------------------- */

/* poll(0) never spins, with any budget; poll(t) spins and finds a message
 * sent during its spin (without consuming it); a spin never outlasts the
 * timeout (a 1 s budget, a 50 ms timeout). */
static void poll_and_spin(void **state) {
  (void)state;
  mp_connection *r, *w;
  pair(1, &r, &w);
  assert_rc(mp_connection_set_spin(r, 1.0), 0);
  hook_on(-1, SEND, NULL);
  assert_rc(mp_connection_poll(r, 0), 0);
  assert_int_equal(hk.seen[MP__SPIN_SPIN] + hk.seen[MP__SPIN_YIELD] +
                       hk.seen[MP__SPIN_BLOCK],
                   0);
  assert_int_equal(mp__connection_last_phase(r), MP__SPIN_NONE);

  double t0 = mp_test_now();
  assert_rc(mp_connection_poll(r, 0.05), 0);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.045);
  assert_true(took < mp_test_slack(0.5));
  /* A poll that timed out leaves the budget as it was. */
  assert_int_equal(mp__connection_spin_budget_ns(r), 1000 * 1000 * 1000);

  hook_on(MP__SPIN_SPIN, SEND, w);
  assert_rc(mp_connection_poll(r, PEER_TIMEOUT), 1);
  hook_off();
  assert_int_equal(mp__connection_last_phase(r), MP__SPIN_SPIN);
  assert_rc(mp_connection_poll(r, 0), 1); /* not consumed */
  expect_spin_message(r);
  assert_int_equal(mp__connection_last_phase(r), MP__SPIN_NONE);

  /* The peer's close during a poll's spin: ready, and the receive says
   * end of stream. */
  hook_on(MP__SPIN_SPIN, CLOSE, w);
  assert_rc(mp_connection_poll(r, PEER_TIMEOUT), 1);
  hook_off();
  char buf[8];
  size_t len;
  assert_rc(mp_connection_recv_bytes(r, buf, sizeof buf, &len), MP_ECLOSED);
  mp_connection_free(r);
  mp_connection_free(w);
}

/* A poll whose message comes after it blocked returns 1, from the
 * blocking phase. */
static void poll_after_blocking(void **state) {
  (void)state;
  mp_connection *r, *w;
  pair(0, &r, &w);
  assert_rc(mp_connection_set_spin(r, 1e-3), 0);
  late l;
  pthread_t t;
  start_late(&l, w, 20, &t);
  assert_rc(mp_connection_poll(r, PEER_TIMEOUT), 1);
  join_late(&l, t);
  assert_int_equal(mp__connection_last_phase(r), MP__SPIN_BLOCK);
  expect_spin_message(r);
  mp_connection_free(r);
  mp_connection_free(w);
}

/* ---- settings ------------------------------------------------------------ */

/* Budget 0 is the plain blocking read: no phase is ever entered. */
static void spin_zero_blocks_at_once(void **state) {
  (void)state;
  mp_connection *r, *w;
  pair(1, &r, &w);
  assert_rc(mp_connection_set_spin(r, 0), 0);
  hook_on(-1, SEND, NULL);
  pthread_t t;
  late l;
  mp_test_signal_open(&l.blocked);
  l.w = w;
  l.delay_ms = 20;
  mp_test_signal_post(&l.blocked); /* no hook will: go at once */
  assert_int_equal(pthread_create(&t, NULL, late_send, &l), 0);
  expect_spin_message(r);
  assert_rc(mp_connection_poll(r, 0.01), 0);
  pthread_join(t, NULL);
  mp_test_signal_close(&l.blocked);
  hook_off();
  assert_int_equal(hk.seen[MP__SPIN_SPIN] + hk.seen[MP__SPIN_YIELD] +
                       hk.seen[MP__SPIN_BLOCK],
                   0);
  mp_connection_free(r);
  mp_connection_free(w);
}

static void set_spin_arguments(void **state) {
  (void)state;
  mp_connection *r, *w;
  pair(1, &r, &w);
  assert_rc(mp_connection_set_spin(NULL, 0), MP_EINVAL);
  assert_rc(mp_connection_set_spin(r, -1e-6), MP_EINVAL);
  assert_rc(mp_connection_set_spin(r, 1.001), MP_EINVAL);
  assert_rc(mp_connection_set_spin(r, NAN), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "spin"));
  assert_int_equal(mp__connection_spin_budget_ns(r),
                   (int64_t)(MP_CONNECTION_SPIN_DEFAULT * 1e9));
  assert_rc(mp_connection_set_spin(r, 1.0), 0);
  assert_int_equal(mp__connection_spin_budget_ns(r), 1000 * 1000 * 1000);
  mp_connection_free(r);
  mp_connection_free(w);
}

/* MP_CONNECTION_SPIN sets the budget of new ends; values that are not a
 * number from 0 to 1 are ignored. */
static void spin_environment_variable(void **state) {
  (void)state;
  static const struct {
    const char *value;
    int64_t ns;
  } cases[] = {
      {"0", 0},
      {"0.000125", 125000},
      {"1", 1000000000},
      {"2", (int64_t)(MP_CONNECTION_SPIN_DEFAULT * 1e9)},
      {"-0.1", (int64_t)(MP_CONNECTION_SPIN_DEFAULT * 1e9)},
      {"fast", (int64_t)(MP_CONNECTION_SPIN_DEFAULT * 1e9)},
      {"", (int64_t)(MP_CONNECTION_SPIN_DEFAULT * 1e9)},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    setenv("MP_CONNECTION_SPIN", cases[i].value, 1);
    mp_connection *r, *w;
    pair(1, &r, &w);
    unsetenv("MP_CONNECTION_SPIN");
    assert_int_equal(mp__connection_spin_budget_ns(r), cases[i].ns);
    assert_int_equal(mp__connection_spin_budget_ns(w), cases[i].ns);
    mp_connection_free(r);
    mp_connection_free(w);
  }
}

/* A pty cannot be read with RWF_NOWAIT (EOPNOTSUPP): the spin looks with
 * poll(2) instead and still reads messages whole, in the spin and after
 * blocking. */
static void spin_on_descriptor_without_nowait(void **state) {
  (void)state;
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) {
    if (m >= 0)
      close(m);
    mp_test_skip("no pseudo-terminal available");
  }
  int s = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
  assert_true(s >= 0);
  struct termios tio;
  assert_int_equal(tcgetattr(s, &tio), 0);
  cfmakeraw(&tio);
  assert_int_equal(tcsetattr(s, TCSANOW, &tio), 0);
  mp_connection *r;
  mp_connection_opts o = {.read_only = 1};
  assert_rc(mp_connection_new(&r, s, &o), 0);
  assert_rc(mp_connection_set_spin(r, 0.5), 0);

  static const unsigned char frame[] = {0, 0, 0, 4, 's', 'p', 'i', 'n'};
  /* The master end is not a connection: write the frame raw from the
   * hook through a stand-in peer whose descriptor is the master. */
  mp_connection *pm;
  mp_connection_opts wo = {.write_only = 1};
  assert_rc(mp_connection_new(&pm, m, &wo), 0);
  hook_on(MP__SPIN_SPIN, SEND_BYTE, pm);
  hk.bytes = frame;
  hk.nbytes = sizeof frame;
  expect_spin_message(r);
  hook_off();
  assert_int_equal(hk.next, sizeof frame);
  /* (A pty hands bytes to the reader from a kernel worker: on a loaded
   * machine the spin may give up before they come, so the phase the
   * message was read in is not checked here.) */
  assert_true(hk.seen[MP__SPIN_SPIN] >= 1);

  late l;
  pthread_t t;
  start_late(&l, pm, 10, &t);
  expect_spin_message(r);
  join_late(&l, t);
  assert_int_equal(mp__connection_last_phase(r), MP__SPIN_BLOCK);
  mp_connection_free(r);
  mp_connection_free(pm);
}

/* ---- between processes --------------------------------------------------- */

#define ROUNDS 3000

static int echo(void *arg) {
  mp_connection **ends = arg;
  mp_connection_free(ends[0]); /* else the parent's close is never seen */
  mp_connection *c = ends[1];
  unsigned char buf[300];
  for (;;) {
    size_t len;
    int rc = mp_connection_recv_bytes(c, buf, sizeof buf, &len);
    if (rc == MP_ECLOSED)
      return 0;
    if (rc != 0 || mp_connection_send_bytes(c, buf, 0, len) != 0)
      return 1;
  }
}

/* Many round trips of varied sizes with both sides spinning (and with the
 * adaptive budget moving as the machine's load does): every reply is the
 * message sent, in order. */
static void round_trips_between_processes(void **state) {
  (void)state;
  mp_connection *a, *b;
  pair(1, &a, &b);
  assert_rc(mp_connection_set_spin(a, 100e-6), 0);
  assert_rc(mp_connection_set_spin(b, 100e-6), 0);
  mp_connection *ends[2] = {a, b};
  pid_t pid = mp_test_fork(echo, ends);
  mp_connection_free(b);
  unsigned char msg[300], back[300];
  for (int i = 0; i < ROUNDS; i++) {
    size_t n = (size_t)(i % 300);
    for (size_t j = 0; j < n; j++)
      msg[j] = (unsigned char)(i + j);
    assert_rc(mp_connection_send_bytes(a, msg, 0, n), 0);
    if (i % 100 == 0)
      assert_rc(mp_connection_poll(a, PEER_TIMEOUT), 1);
    size_t len = 0;
    assert_rc(mp_connection_recv_bytes(a, back, sizeof back, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(back, msg, n);
  }
  mp_connection_close(a);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  mp_connection_free(a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(message_during_spin),
    cmocka_unit_test(message_during_yield),
    cmocka_unit_test(message_after_blocking),
    cmocka_unit_test(budget_adapts),
    cmocka_unit_test(eof_during_spin),
    cmocka_unit_test(message_split_across_spins),
    cmocka_unit_test(poll_and_spin),
    cmocka_unit_test(poll_after_blocking),
    cmocka_unit_test(spin_zero_blocks_at_once),
    cmocka_unit_test(set_spin_arguments),
    cmocka_unit_test(spin_environment_variable),
    cmocka_unit_test(spin_on_descriptor_without_nowait),
    cmocka_unit_test(round_trips_between_processes),
};

MP_TEST_MAIN(tests)
