/* bench_connection.c - what a Listener/Client connection costs over TCP
 * loopback, against Python's multiprocessing.connection (measured by
 * bench/peers/py_connection.py in the same `make bench` run):
 *
 * connection_rtt/64B_tcp        a 64-byte send_bytes + recv_bytes round
 *                               trip to an echoing child, after the
 *                               authkey handshake. Target: at least 5x
 *                               faster than Python (ratio <= 0.2).
 *                               multiproc_nospin: the same with the
 *                               spin turned off on both ends
 *                               (mp_connection_set_spin 0), to show what
 *                               the spin before sleeping saves.
 *                               floor_block, floor_busy_poll: the same
 *                               68 bytes on the wire over bare TCP
 *                               loopback sockets, no library (floor.h):
 *                               what the kernel costs here, blocking and
 *                               busy-polling. multiproc / floor_busy_poll
 *                               is our overhead; python / floor_busy_poll
 *                               (bench/run.sh prints it) the best ratio
 *                               to Python this machine allows.
 * connection_setup/authkey_tcp  Client(): connect, the six-message
 *                               handshake (sha256), a 64-byte message and
 *                               its echo, close; a child accepts and
 *                               echoes. Target: at least 5x faster.
 *
 * Work checks: every echo must come back with the bytes sent (the count
 * of good echoes is the work done); the setup child accepts exactly the
 * number of clients the parent connects. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"
#include "floor.h"

static const char KEY[] = "bench authkey";
#define KEYLEN (sizeof KEY - 1)
#define MSG 64
#define TIMEOUT 60.0

/* echo_conn echoes messages on c until an empty one or the end. */
static int echo_conn(mp_connection *c) {
  unsigned char buf[MSG * 2];
  for (;;) {
    size_t len = 0;
    int rc = mp_connection_recv_bytes(c, buf, sizeof buf, &len);
    if (rc == MP_ECLOSED || (rc == 0 && len == 0))
      return 0;
    if (rc != 0 || mp_connection_send_bytes(c, buf, 0, len) != 0)
      return 1;
  }
}

static int reap(pid_t pid) {
  int st = 0;
  if (waitpid(pid, &st, 0) != pid)
    return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The spin budget of both ends of an rtt case; < 0: the default. */
static double rtt_spin = -1;

static void set_spin(mp_connection *c) {
  if (rtt_spin >= 0)
    mp_connection_set_spin(c, rtt_spin);
}

static int rtt_case(bench_run *run) {
  mp_listener_opts lo = {.authkey = KEY, .authkey_len = KEYLEN};
  mp_listener *l = NULL;
  int rc = mp_listener_new(&l, "127.0.0.1:0", &lo);
  if (rc != 0)
    return bench_fail(run, "mp_listener_new: %s", mp_err_name(rc));
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    mp_client_opts co = {.authkey = KEY, .authkey_len = KEYLEN};
    mp_connection *c = NULL;
    if (mp_client(&c, mp_listener_address(l), &co, TIMEOUT) != 0)
      _exit(2);
    set_spin(c);
    int r = echo_conn(c);
    mp_connection_free(c);
    _exit(r);
  }
  mp_connection *c = NULL;
  rc = pid < 0 ? MP_EAGAIN : mp_listener_accept(l, &c, TIMEOUT);
  mp_listener_free(l);
  if (rc != 0) {
    if (pid > 0) {
      kill(pid, SIGKILL);
      reap(pid);
    }
    return bench_fail(run, "accept: %s", mp_err_name(rc));
  }
  set_spin(c);
  unsigned char msg[MSG], back[MSG];
  memset(msg, 0xab, sizeof msg);
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    msg[0] = (unsigned char)i;
    size_t len = 0;
    if (mp_connection_send_bytes(c, msg, 0, MSG) != 0 ||
        mp_connection_recv_bytes(c, back, sizeof back, &len) != 0)
      break;
    run->done += len == MSG && back[0] == msg[0];
  }
  bench_timer_stop(run);
  mp_connection_send_bytes(c, "", 0, 0);
  mp_connection_free(c);
  if (reap(pid) != 0)
    return bench_fail(run, "the echo child failed");
  return 0;
}

static int rtt_default(bench_run *run) {
  rtt_spin = -1;
  return rtt_case(run);
}

static int rtt_nospin(bench_run *run) {
  rtt_spin = 0;
  return rtt_case(run);
}

static int rtt_floor_block(bench_run *run) {
  return floor_rtt(run, FLOOR_TCP, FLOOR_BLOCK, MSG);
}

static int rtt_floor_busy(bench_run *run) {
  return floor_rtt(run, FLOOR_TCP, FLOOR_BUSY_POLL, MSG);
}

static int setup_case(bench_run *run) {
  mp_listener_opts lo = {.authkey = KEY, .authkey_len = KEYLEN};
  mp_listener *l = NULL;
  int rc = mp_listener_new(&l, "127.0.0.1:0", &lo);
  if (rc != 0)
    return bench_fail(run, "mp_listener_new: %s", mp_err_name(rc));
  char address[MP_ADDRESS_MAX];
  snprintf(address, sizeof address, "%s", mp_listener_address(l));
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    for (uint64_t i = 0; i < run->iters; i++) {
      mp_connection *c = NULL;
      if (mp_listener_accept(l, &c, TIMEOUT) != 0)
        _exit(2);
      int r = echo_conn(c);
      mp_connection_free(c);
      if (r != 0)
        _exit(r);
    }
    _exit(0);
  }
  /* The parent's copy stays open until the child has it (no unlink for
   * TCP); the parent never accepts. */
  mp_client_opts co = {.authkey = KEY, .authkey_len = KEYLEN};
  unsigned char msg[MSG], back[MSG];
  memset(msg, 0x5a, sizeof msg);
  bench_timer_start(run);
  for (uint64_t i = 0; pid > 0 && i < run->iters; i++) {
    mp_connection *c = NULL;
    if (mp_client(&c, address, &co, TIMEOUT) != 0)
      break;
    size_t len = 0;
    if (mp_connection_send_bytes(c, msg, 0, MSG) == 0 &&
        mp_connection_recv_bytes(c, back, sizeof back, &len) == 0)
      run->done += len == MSG && memcmp(back, msg, MSG) == 0;
    mp_connection_free(c);
  }
  bench_timer_stop(run);
  mp_listener_free(l);
  if (pid < 0)
    return bench_fail(run, "fork failed");
  if (run->done != run->iters)
    kill(pid, SIGKILL);
  if (reap(pid) != 0 && run->done == run->iters)
    return bench_fail(run, "the accepting child failed");
  return 0;
}

static const bench_case cases[] = {
    {"connection_rtt", "64B_tcp", "multiproc", "64 B", 20000, 20, "us/op",
     rtt_default, NULL},
    {"connection_rtt", "64B_tcp", "multiproc_nospin", "64 B", 20000, 20,
     "us/op", rtt_nospin, NULL},
    {"connection_rtt", "64B_tcp", "floor_block", "64 B", 20000, 20, "us/op",
     rtt_floor_block, NULL},
    {"connection_rtt", "64B_tcp", "floor_busy_poll", "64 B", 20000, 20,
     "us/op", rtt_floor_busy, NULL},
    {"connection_setup", "authkey_tcp", "multiproc", "1 client", 1000, 5,
     "us/op", setup_case, NULL},
};

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  bench_suite s = BENCH_SUITE("bench_connection", cases);
  return bench_main(argc, argv, &s);
}
