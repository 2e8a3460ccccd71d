/* floor.h - the floor under a framed round trip: the same bytes a
 * Connection puts on the wire (a 4-byte header and the payload, one send)
 * moved between two processes over a bare socket with no library at all,
 * so that bench_connection and bench_object can show how much of their
 * time the kernel itself takes on this machine, measured in the same run.
 *
 * floor_rtt forks an echo child and does run->iters round trips of size
 * bytes over a TCP loopback connection (TCP_NODELAY on both ends, as
 * Listener/Client set it) or a socket pair (what a duplex Pipe uses). Each
 * side sends a message with one send(2) and reads it back whole; it waits:
 *   FLOOR_BLOCK      in a blocking recv(2), as a plain program would;
 *   FLOOR_BUSY_POLL  by calling recv(MSG_DONTWAIT) until the bytes are
 *                    there, never sleeping: what the kernel allows at
 *                    best. So that an oversubscribed machine still ends
 *                    the run, it calls sched_yield after every
 *                    FLOOR_SPIN_LOOKS empty looks (far more than one round
 *                    trip takes on an idle CPU, so it costs nothing there).
 * Only round trips whose echo equals what was sent count as done. */
#ifndef MP_BENCH_FLOOR_H
#define MP_BENCH_FLOOR_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

enum { FLOOR_BLOCK = 0, FLOOR_BUSY_POLL = 1 };
enum { FLOOR_TCP = 0, FLOOR_SOCKETPAIR = 1 };

#define FLOOR_MAX 4096
#define FLOOR_SPIN_LOOKS 64

/* floor_recv reads exactly len bytes of fd into p; 0, or -1 at end of
 * stream or on an error. */
static int floor_recv(int fd, unsigned char *p, size_t len, int wait) {
  size_t got = 0;
  unsigned empty = 0;
  while (got < len) {
    ssize_t n = recv(fd, p + got, len - got, wait == FLOOR_BUSY_POLL
                                                 ? MSG_DONTWAIT
                                                 : 0);
    if (n > 0) {
      got += (size_t)n;
    } else if (n < 0 && errno == EAGAIN) {
      if (++empty % FLOOR_SPIN_LOOKS == 0)
        sched_yield();
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return -1;
    }
  }
  return 0;
}

static int floor_send(int fd, const unsigned char *p, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* floor_pair connects two stream sockets of the kind asked: 0 or -1. */
static int floor_pair(int kind, int fds[2]) {
  if (kind == FLOOR_SOCKETPAIR)
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0)
    return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  int a = -1, b = -1, one = 1;
  if (bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 1) != 0 ||
      getsockname(l, (struct sockaddr *)&sa, &sl) != 0)
    goto fail;
  a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (a < 0 || connect(a, (struct sockaddr *)&sa, sizeof sa) != 0)
    goto fail;
  b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  if (b < 0)
    goto fail;
  setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  close(l);
  fds[0] = a;
  fds[1] = b;
  return 0;
fail:
  if (a >= 0)
    close(a);
  close(l);
  return -1;
}

/* floor_rtt times run->iters round trips of a framed message of
 * payload bytes (4 + payload on the wire) over a socket of the given kind,
 * waiting as wait says. */
static int floor_rtt(bench_run *run, int kind, int wait, size_t payload) {
  size_t len = payload + 4;
  if (len > FLOOR_MAX)
    return bench_fail(run, "floor message too long");
  int fds[2];
  if (floor_pair(kind, fds) != 0)
    return bench_fail(run, "cannot connect the floor's sockets: %s",
                      strerror(errno));
  unsigned char msg[FLOOR_MAX], back[FLOOR_MAX];
  memset(msg, 0xab, len);
  msg[0] = (unsigned char)(payload >> 24);
  msg[1] = (unsigned char)(payload >> 16);
  msg[2] = (unsigned char)(payload >> 8);
  msg[3] = (unsigned char)payload;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return bench_fail(run, "fork failed");
  }
  if (pid == 0) { /* the echo, until end of stream */
    close(fds[0]);
    unsigned char buf[FLOOR_MAX];
    while (floor_recv(fds[1], buf, len, wait) == 0)
      if (floor_send(fds[1], buf, len) != 0)
        _exit(1);
    _exit(0);
  }
  close(fds[1]);
  int fd = fds[0];
  uint64_t ok = 0;
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    msg[len - 1] = (unsigned char)i;
    if (floor_send(fd, msg, len) != 0 || floor_recv(fd, back, len, wait) != 0)
      break;
    ok += memcmp(back, msg, len) == 0;
  }
  bench_timer_stop(run);
  close(fd); /* the child reads end of stream and leaves */
  int st = 0;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
      WEXITSTATUS(st) != 0)
    return bench_fail(run, "the floor's echo child failed");
  run->done = ok;
  return 0;
}

#endif
