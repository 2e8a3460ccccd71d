/* test_connection.c - Pipe and Connection: both kinds of pipe, every
 * function and error path, Python's framing (short and long headers,
 * read back raw), refused messages that stay readable (G-CONN-1), broken
 * streams, SIGPIPE (G-CONN-3), signals and non-blocking descriptors, and
 * several processes sending on one end. Python itself on the other end is
 * tests/interop/test_interop_pipe.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h" /* mp__alloc_fail_after */

/* No case waits longer than this for a message a peer should have sent. */
#define PEER_TIMEOUT 30.0

/* recv_str receives one message into buf (NUL-terminated) without ever
 * blocking past PEER_TIMEOUT. */
static size_t recv_str(mp_connection *c, char *buf, size_t cap) {
  assert_rc(mp_connection_poll(c, PEER_TIMEOUT), 1);
  size_t len = 0;
  assert_rc(mp_connection_recv_bytes(c, buf, cap - 1, &len), 0);
  buf[len] = '\0';
  return len;
}

static void send_str(mp_connection *c, const char *s) {
  assert_rc(mp_connection_send_bytes(c, s, 0, strlen(s)), 0);
}

/* raw_write writes bytes past the framing, to forge what a peer sends. */
static void raw_write(mp_connection *c, const void *p, size_t n) {
  assert_int_equal(write(mp_connection_fileno(c), p, n), (ssize_t)n);
}

/* raw_read reads exactly n bytes past the framing, bounded in time. */
static void raw_read(mp_connection *c, void *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    assert_rc(mp_connection_poll(c, PEER_TIMEOUT), 1);
    ssize_t r = read(mp_connection_fileno(c), (char *)p + got, n - got);
    assert_true(r > 0);
    got += (size_t)r;
  }
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(i * 31u + seed);
}

static int check_fill(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(i * 31u + seed))
      return 0;
  return 1;
}

/* Both ends of a duplex pipe send and receive; the accessors say so. */
static void pipe_duplex_both_ways(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  assert_int_equal(mp_connection_readable(a), 1);
  assert_int_equal(mp_connection_writable(a), 1);
  assert_int_equal(mp_connection_readable(b), 1);
  assert_int_equal(mp_connection_writable(b), 1);
  assert_int_equal(mp_connection_closed(a), 0);
  assert_true(mp_connection_fileno(a) >= 0);
  assert_true(mp_connection_fileno(b) >= 0);
  assert_int_not_equal(mp_connection_fileno(a), mp_connection_fileno(b));
  /* The descriptors do not leak into programs this one execs. */
  assert_true(fcntl(mp_connection_fileno(a), F_GETFD) & FD_CLOEXEC);
  char buf[64];
  send_str(a, "ping");
  assert_int_equal(recv_str(b, buf, sizeof buf), 4);
  assert_string_equal(buf, "ping");
  send_str(b, "pong");
  assert_int_equal(recv_str(a, buf, sizeof buf), 4);
  assert_string_equal(buf, "pong");
  mp_connection_free(a);
  mp_connection_free(b);
}

/* A simplex pipe's first end only receives, its second only sends; using
 * either the wrong way is MP_EBADF at once, never a hang. */
static void pipe_simplex_directions(void **state) {
  (void)state;
  mp_connection *r, *w;
  assert_rc(mp_pipe(&r, &w, 0), 0);
  assert_int_equal(mp_connection_readable(r), 1);
  assert_int_equal(mp_connection_writable(r), 0);
  assert_int_equal(mp_connection_readable(w), 0);
  assert_int_equal(mp_connection_writable(w), 1);
  char buf[16];
  size_t len = 99;
  double t0 = mp_test_now();
  assert_rc(mp_connection_recv_bytes(w, buf, sizeof buf, &len), MP_EBADF);
  assert_rc(mp_connection_recv_bytes_into(w, buf, sizeof buf, 0, &len),
            MP_EBADF);
  void *p = NULL;
  assert_rc(mp_connection_recv_bytes_alloc(w, &p, &len, 10), MP_EBADF);
  assert_rc(mp_connection_poll(w, MP_FOREVER), MP_EBADF);
  assert_rc(mp_connection_send_bytes(r, "x", 0, 1), MP_EBADF);
  assert_true(mp_test_now() - t0 < 5.0);
  send_str(w, "one way");
  assert_int_equal(recv_str(r, buf, sizeof buf), 7);
  assert_string_equal(buf, "one way");
  mp_connection_free(r);
  mp_connection_free(w);
}

/* send_bytes sends size bytes from buf + offset, as Python's. */
static void send_offset_and_size(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  const char *text = "0123456789";
  assert_rc(mp_connection_send_bytes(a, text, 3, 4), 0);
  assert_rc(mp_connection_send_bytes(a, text, 10, 0), 0);
  char buf[16];
  assert_int_equal(recv_str(b, buf, sizeof buf), 4);
  assert_string_equal(buf, "3456");
  assert_int_equal(recv_str(b, buf, sizeof buf), 0);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* An empty message is a header of four zero bytes, and arrives as one. */
static void empty_message(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  assert_rc(mp_connection_send_bytes(a, NULL, 0, 0), 0);
  unsigned char h[4];
  raw_read(b, h, 4);
  assert_memory_equal(h, "\0\0\0\0", 4);
  assert_rc(mp_connection_send_bytes(a, NULL, 0, 0), 0);
  size_t len = 99;
  assert_rc(mp_connection_poll(b, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(b, NULL, 0, &len), 0);
  assert_int_equal(len, 0);
  void *p = NULL;
  assert_rc(mp_connection_send_bytes(a, "", 0, 0), 0);
  assert_rc(mp_connection_recv_bytes_alloc(b, &p, &len, 0), 0);
  assert_non_null(p);
  assert_int_equal(len, 0);
  free(p);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* The bytes on the wire are Python's: a 4-byte big-endian length. */
static void wire_format_short_header(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  assert_rc(mp_connection_send_bytes(a, "abc", 0, 3), 0);
  unsigned char got[7];
  raw_read(b, got, sizeof got);
  assert_memory_equal(got, "\0\0\0\3abc", 7);
  /* 0x12345 bytes: the length in all four bytes, most significant first. */
  size_t n = 0x12345;
  unsigned char *big = malloc(n);
  assert_non_null(big);
  fill(big, n, 7);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(mp_connection_send_bytes(a, big, 0, n) == 0 ? 0 : 1);
  unsigned char h[4];
  raw_read(b, h, 4);
  assert_memory_equal(h, "\x00\x01\x23\x45", 4);
  unsigned char *back = malloc(n);
  assert_non_null(back);
  raw_read(b, back, n);
  assert_true(check_fill(back, n, 7));
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  free(big);
  free(back);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* The long form a peer may send (-1, then an 8-byte length) is accepted
 * for any length, as Python accepts it. */
static void long_form_header_received(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  raw_write(a, "\xff\xff\xff\xff\0\0\0\0\0\0\0\5hello", 17);
  char buf[16];
  assert_int_equal(recv_str(b, buf, sizeof buf), 5);
  assert_string_equal(buf, "hello");
  /* The long form with a zero length is an empty message. */
  raw_write(a, "\xff\xff\xff\xff\0\0\0\0\0\0\0\0", 12);
  assert_int_equal(recv_str(b, buf, sizeof buf), 0);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* big_sender sends one message of 0x80000011 bytes from a mapping that is
 * never written but for a mark at each end. */
#define BIG_LEN ((size_t)0x80000011u)
static int big_sender(void *arg) {
  mp_connection *a = arg;
  unsigned char *p = mmap(NULL, BIG_LEN, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return 2;
  p[0] = 0xab;
  p[BIG_LEN - 1] = 0xcd;
  int rc = mp_connection_send_bytes(a, p, 0, BIG_LEN);
  munmap(p, BIG_LEN);
  return rc == 0 ? 0 : 1;
}

/* A payload over 0x7FFFFFFF bytes goes out as -1 and an 8-byte length,
 * then every byte of it. */
static void long_form_header_sent(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  pid_t pid = mp_test_fork(big_sender, a);
  unsigned char h[12];
  raw_read(b, h, 12);
  assert_memory_equal(h, "\xff\xff\xff\xff\0\0\0\0\x80\0\0\x11", 12);
  /* The receiver is refused the 2 GiB message with a small buffer, and
   * learns its length; then it drains the bytes raw. */
  size_t left = BIG_LEN, chunk = 1 << 20;
  unsigned char *buf = malloc(chunk);
  assert_non_null(buf);
  unsigned char first = 0, last = 0;
  int fd = mp_connection_fileno(b);
  double end = mp_test_now() + 120.0;
  while (left > 0) {
    assert_true(mp_test_now() < end);
    ssize_t r = read(fd, buf, left < chunk ? left : chunk);
    assert_true(r > 0);
    if (left == BIG_LEN)
      first = buf[0];
    left -= (size_t)r;
    if (left == 0)
      last = buf[r - 1];
  }
  assert_int_equal(first, 0xab);
  assert_int_equal(last, 0xcd);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  free(buf);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* G-CONN-1: a message longer than the buffer is refused with MP_ETOOBIG
 * and its length; it stays readable, and the stream stays in step. */
static void too_small_buffer_then_retry(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  send_str(a, "a message of 27 bytes total");
  send_str(a, "next");
  char small[8], big[64];
  size_t len = 0;
  assert_rc(mp_connection_poll(b, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(b, small, sizeof small, &len),
            MP_ETOOBIG);
  assert_int_equal(len, 27);
  /* Refused twice: nothing more is read. */
  assert_rc(mp_connection_recv_bytes(b, small, sizeof small, &len),
            MP_ETOOBIG);
  assert_int_equal(len, 27);
  /* The waiting message makes the end ready, though the descriptor holds
   * only its payload. */
  assert_rc(mp_connection_poll(b, 0), 1);
  assert_rc(mp_connection_recv_bytes(b, big, 27, &len), 0);
  assert_int_equal(len, 27);
  assert_memory_equal(big, "a message of 27 bytes total", 27);
  assert_int_equal(recv_str(b, big, sizeof big), 4);
  assert_string_equal(big, "next");
  /* Refused into one call, taken by another. */
  send_str(a, "0123456789abcdef");
  assert_rc(mp_connection_poll(b, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(b, small, sizeof small, &len),
            MP_ETOOBIG);
  void *p = NULL;
  assert_rc(mp_connection_recv_bytes_alloc(b, &p, &len, 15), MP_ETOOBIG);
  assert_int_equal(len, 16);
  assert_rc(mp_connection_recv_bytes_alloc(b, &p, &len, 16), 0);
  assert_int_equal(len, 16);
  assert_memory_equal(p, "0123456789abcdef", 16);
  free(p);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* recv_bytes_into writes at buf + offset; too little room past the offset
 * is MP_ETOOBIG with the message kept; an offset past the end, MP_EINVAL. */
static void recv_bytes_into_offset(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  send_str(a, "hello");
  char buf[10];
  memset(buf, '.', sizeof buf);
  size_t len = 0;
  assert_rc(mp_connection_poll(b, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes_into(b, buf, sizeof buf, 11, &len),
            MP_EINVAL);
  assert_rc(mp_connection_recv_bytes_into(b, buf, sizeof buf, 6, &len),
            MP_ETOOBIG);
  assert_int_equal(len, 5);
  assert_rc(mp_connection_recv_bytes_into(b, buf, sizeof buf, 5, &len), 0);
  assert_int_equal(len, 5);
  assert_memory_equal(buf, ".....hello", 10);
  /* An empty message fits at the very end. */
  assert_rc(mp_connection_send_bytes(a, NULL, 0, 0), 0);
  assert_rc(mp_connection_poll(b, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes_into(b, buf, sizeof buf, 10, &len), 0);
  assert_int_equal(len, 0);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* recv_bytes_alloc returns a malloc'd copy; when memory runs out the
 * message stays readable. */
static void recv_alloc_and_out_of_memory(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  size_t n = 100000;
  unsigned char *big = malloc(n);
  assert_non_null(big);
  fill(big, n, 3);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(mp_connection_send_bytes(a, big, 0, n) == 0 ? 0 : 1);
  void *p = NULL;
  size_t len = 0;
  assert_rc(mp_connection_poll(b, PEER_TIMEOUT), 1);
  mp__alloc_fail_after(1);
  assert_rc(mp_connection_recv_bytes_alloc(b, &p, &len,
                                           MP_CONNECTION_NO_LIMIT),
            MP_ENOMEM);
  mp__alloc_fail_after(0);
  assert_null(p);
  assert_int_equal(len, n);
  assert_rc(mp_connection_recv_bytes_alloc(b, &p, &len,
                                           MP_CONNECTION_NO_LIMIT),
            0);
  assert_int_equal(len, n);
  assert_true(check_fill(p, n, 3));
  free(p);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  free(big);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* alloc_untouched checks that the allocation countdown set to 1 was not
 * used: the next allocation (inside mp_pipe) is the one that fails. */
static void alloc_untouched(void) {
  mp_connection *x = NULL, *y = NULL;
  assert_rc(mp_pipe(&x, &y, 1), MP_ENOMEM);
  mp__alloc_fail_after(0);
}

/* A forged header announcing 1 TiB is refused without allocating it: the
 * allocation that would fail is never reached. */
static void huge_length_refused_without_allocating(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  raw_write(a, "\xff\xff\xff\xff\0\0\1\0\0\0\0\0", 12);
  void *p = NULL;
  size_t len = 0;
  assert_rc(mp_connection_poll(b, PEER_TIMEOUT), 1);
  mp__alloc_fail_after(1);
  assert_rc(mp_connection_recv_bytes_alloc(b, &p, &len, 1 << 20),
            MP_ETOOBIG);
  alloc_untouched();
  assert_null(p);
  assert_int_equal(len, (size_t)1 << 40);
  char buf[16];
  assert_rc(mp_connection_recv_bytes(b, buf, sizeof buf, &len), MP_ETOOBIG);
  assert_int_equal(len, (size_t)1 << 40);
  mp_connection_free(a);
  mp_connection_free(b);
  /* Without a limit, a length beyond any possible object is refused as
   * MP_ENOMEM before malloc is asked. */
  assert_rc(mp_pipe(&a, &b, 1), 0);
  raw_write(a, "\xff\xff\xff\xff\xff\0\0\0\0\0\0\0", 12);
  assert_rc(mp_connection_poll(b, PEER_TIMEOUT), 1);
  mp__alloc_fail_after(1);
  assert_rc(mp_connection_recv_bytes_alloc(b, &p, &len,
                                           MP_CONNECTION_NO_LIMIT),
            MP_ENOMEM);
  alloc_untouched();
  assert_int_equal(len, (size_t)0xff00000000000000u);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* End of stream before a message begins is MP_ECLOSED (Python's EOFError),
 * and stays so; poll reports it as ready. */
static void eof_before_header(void **state) {
  (void)state;
  for (int duplex = 0; duplex <= 1; duplex++) {
    mp_connection *r, *w;
    assert_rc(mp_pipe(&r, &w, duplex), 0);
    send_str(w, "last");
    mp_connection_free(w);
    char buf[16];
    assert_int_equal(recv_str(r, buf, sizeof buf), 4);
    assert_rc(mp_connection_poll(r, PEER_TIMEOUT), 1);
    size_t len;
    assert_rc(mp_connection_recv_bytes(r, buf, sizeof buf, &len),
              MP_ECLOSED);
    assert_rc(mp_connection_recv_bytes(r, buf, sizeof buf, &len),
              MP_ECLOSED);
    mp_connection_free(r);
  }
}

/* A peer that closes without reading what this end sent makes a socket
 * report a reset; the receiver sees MP_ECLOSED all the same. */
static void peer_closed_unread_is_closed(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  assert_rc(mp_connection_send_bytes(a, "never read", 0, 10), 0);
  mp_connection_free(b);
  char buf[16];
  size_t len;
  assert_rc(mp_connection_poll(a, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(a, buf, sizeof buf, &len), MP_ECLOSED);
  assert_rc(mp_connection_recv_bytes(a, buf, sizeof buf, &len), MP_ECLOSED);
  assert_rc(mp_connection_send_bytes(a, "x", 0, 1), MP_EPIPE);
  mp_connection_free(a);
}

/* End of stream inside a header or a payload is MP_EPROTO, and the stream
 * stays broken (poll says a receive would not block). */
static void eof_mid_message(void **state) {
  (void)state;
  mp_connection *a, *b;
  char buf[64];
  size_t len;
  /* Inside the header. */
  assert_rc(mp_pipe(&a, &b, 0), 0);
  raw_write(b, "\0\0", 2);
  mp_connection_free(b);
  assert_rc(mp_connection_recv_bytes(a, buf, sizeof buf, &len), MP_EPROTO);
  assert_rc(mp_connection_recv_bytes(a, buf, sizeof buf, &len), MP_EPROTO);
  mp_connection_free(a);
  /* Inside the 8-byte length of the long form. */
  assert_rc(mp_pipe(&a, &b, 0), 0);
  raw_write(b, "\xff\xff\xff\xff\0\0\0", 7);
  mp_connection_free(b);
  assert_rc(mp_connection_recv_bytes(a, buf, sizeof buf, &len), MP_EPROTO);
  mp_connection_free(a);
  /* Inside the payload: 10 bytes announced, 3 sent. */
  assert_rc(mp_pipe(&a, &b, 1), 0);
  raw_write(b, "\0\0\0\x0a" "abc", 7);
  mp_connection_free(b);
  assert_rc(mp_connection_recv_bytes(a, buf, sizeof buf, &len), MP_EPROTO);
  assert_rc(mp_connection_poll(a, 0), 1);
  assert_rc(mp_connection_recv_bytes(a, buf, sizeof buf, &len), MP_EPROTO);
  void *p = NULL;
  assert_rc(mp_connection_recv_bytes_alloc(a, &p, &len, 64), MP_EPROTO);
  mp_connection_free(a);
}

/* A negative length other than -1 is a protocol error; the stream stays
 * broken for receiving, and the end still sends. */
static void negative_length(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  raw_write(b, "\xff\xff\xff\xfe" "garbage", 11);
  char buf[64];
  size_t len;
  assert_rc(mp_connection_poll(a, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(a, buf, sizeof buf, &len), MP_EPROTO);
  send_str(b, "a real message");
  assert_rc(mp_connection_recv_bytes(a, buf, sizeof buf, &len), MP_EPROTO);
  send_str(a, "still sending");
  assert_int_equal(recv_str(b, buf, sizeof buf), 13);
  assert_string_equal(buf, "still sending");
  /* INT32_MIN is refused too. */
  mp_connection_free(a);
  mp_connection_free(b);
  assert_rc(mp_pipe(&a, &b, 0), 0);
  raw_write(b, "\x80\0\0\0", 4);
  assert_rc(mp_connection_recv_bytes(a, buf, sizeof buf, &len), MP_EPROTO);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* count_pending_sigpipe says whether SIGPIPE is pending for this thread
 * or process. */
static int sigpipe_pending(void) {
  sigset_t set;
  sigpending(&set);
  return sigismember(&set, SIGPIPE);
}

/* G-CONN-3: sending to an end whose peer closed returns MP_EPIPE and the
 * process lives on, SIGPIPE left at its default (which kills), on a socket
 * pair and on a pipe; no SIGPIPE is left pending either. */
static void send_to_closed_peer_is_epipe(void **state) {
  (void)state;
  struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
  sigaction(SIGPIPE, &dfl, &old);
  for (int duplex = 0; duplex <= 1; duplex++) {
    mp_connection *r, *w;
    assert_rc(mp_pipe(&r, &w, duplex), 0);
    mp_connection_free(r);
    assert_rc(mp_connection_send_bytes(w, "x", 0, 1), MP_EPIPE);
    assert_rc(mp_connection_send_bytes(w, NULL, 0, 0), MP_EPIPE);
    assert_false(sigpipe_pending());
    mp_connection_free(w);
  }
  /* A caller that blocks SIGPIPE itself keeps the signal pending, as it
   * asked: the library takes back only what it made pending. */
  sigset_t set, prev;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &prev);
  mp_connection *r, *w;
  assert_rc(mp_pipe(&r, &w, 0), 0);
  mp_connection_free(r);
  assert_rc(mp_connection_send_bytes(w, "x", 0, 1), MP_EPIPE);
  assert_true(sigpipe_pending());
  struct timespec zero = {0, 0};
  assert_int_equal(sigtimedwait(&set, NULL, &zero), SIGPIPE);
  pthread_sigmask(SIG_SETMASK, &prev, NULL);
  mp_connection_free(w);
  sigaction(SIGPIPE, &old, NULL);
}

/* close is idempotent; afterwards every call but the accessors is
 * MP_ESTATE; the peer reads end of stream. */
static void close_is_idempotent(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  int fd = mp_connection_fileno(a);
  assert_rc(mp_connection_close(a), 0);
  assert_rc(mp_connection_close(a), 0);
  assert_int_equal(fcntl(fd, F_GETFD), -1); /* the descriptor is closed */
  assert_int_equal(mp_connection_closed(a), 1);
  assert_int_equal(mp_connection_readable(a), 1);
  assert_int_equal(mp_connection_writable(a), 1);
  assert_rc(mp_connection_fileno(a), MP_ESTATE);
  char buf[8];
  size_t len;
  void *p;
  assert_rc(mp_connection_send_bytes(a, "x", 0, 1), MP_ESTATE);
  assert_rc(mp_connection_recv_bytes(a, buf, sizeof buf, &len), MP_ESTATE);
  assert_rc(mp_connection_recv_bytes_into(a, buf, sizeof buf, 0, &len),
            MP_ESTATE);
  assert_rc(mp_connection_recv_bytes_alloc(a, &p, &len, 8), MP_ESTATE);
  assert_rc(mp_connection_poll(a, 0), MP_ESTATE);
  assert_rc(mp_connection_poll(b, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(b, buf, sizeof buf, &len), MP_ECLOSED);
  mp_connection_free(a);
  mp_connection_free(b);
  mp_connection_free(NULL);
}

/* NULL and out-of-range arguments are MP_EINVAL, never a crash. */
static void bad_arguments(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(NULL, &b, 1), MP_EINVAL);
  assert_rc(mp_pipe(&a, NULL, 1), MP_EINVAL);
  assert_rc(mp_pipe(&a, &b, 1), 0);
  char buf[8];
  size_t len;
  void *p;
  assert_rc(mp_connection_send_bytes(NULL, "x", 0, 1), MP_EINVAL);
  assert_rc(mp_connection_send_bytes(a, NULL, 0, 1), MP_EINVAL);
  assert_rc(mp_connection_send_bytes(a, buf, SIZE_MAX, 2), MP_EINVAL);
  assert_rc(mp_connection_recv_bytes(NULL, buf, 8, &len), MP_EINVAL);
  assert_rc(mp_connection_recv_bytes(a, buf, 8, NULL), MP_EINVAL);
  assert_rc(mp_connection_recv_bytes(a, NULL, 8, &len), MP_EINVAL);
  assert_rc(mp_connection_recv_bytes_into(NULL, buf, 8, 0, &len), MP_EINVAL);
  assert_rc(mp_connection_recv_bytes_into(a, buf, 8, 0, NULL), MP_EINVAL);
  assert_rc(mp_connection_recv_bytes_into(a, NULL, 8, 0, &len), MP_EINVAL);
  assert_rc(mp_connection_recv_bytes_alloc(NULL, &p, &len, 8), MP_EINVAL);
  assert_rc(mp_connection_recv_bytes_alloc(a, NULL, &len, 8), MP_EINVAL);
  assert_rc(mp_connection_recv_bytes_alloc(a, &p, NULL, 8), MP_EINVAL);
  assert_rc(mp_connection_poll(NULL, 0), MP_EINVAL);
  assert_rc(mp_connection_close(NULL), MP_EINVAL);
  assert_rc(mp_connection_fileno(NULL), MP_EINVAL);
  assert_rc(mp_connection_readable(NULL), MP_EINVAL);
  assert_rc(mp_connection_writable(NULL), MP_EINVAL);
  assert_int_equal(mp_connection_closed(NULL), 1);
  mp_connection *c;
  assert_rc(mp_connection_new(NULL, 0, NULL), MP_EINVAL);
  assert_rc(mp_connection_new(&c, -1, NULL), MP_EINVAL);
  mp_connection_opts both = {.read_only = 1, .write_only = 1};
  assert_rc(mp_connection_new(&c, mp_connection_fileno(a), &both),
            MP_EINVAL);
  int unused = dup(0);
  assert_true(unused >= 0);
  close(unused);
  assert_rc(mp_connection_new(&c, unused, NULL), MP_EBADF);
  /* Running out of memory in mp_pipe leaves nothing open. */
  mp__alloc_fail_after(2);
  assert_rc(mp_pipe(&c, &c, 1), MP_ENOMEM);
  mp__alloc_fail_after(0);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* mp_connection_new wraps a descriptor the program has, owns it from then
 * on, and honours read_only/write_only. */
static void connection_new_wraps_fd(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  mp_connection *r, *w;
  mp_connection_opts ro = {.read_only = 1}, wo = {.write_only = 1};
  assert_rc(mp_connection_new(&r, fds[0], &ro), 0);
  assert_rc(mp_connection_new(&w, fds[1], &wo), 0);
  assert_int_equal(mp_connection_fileno(r), fds[0]);
  assert_int_equal(mp_connection_writable(r), 0);
  assert_int_equal(mp_connection_readable(w), 0);
  send_str(w, "wrapped");
  char buf[16];
  assert_int_equal(recv_str(r, buf, sizeof buf), 7);
  assert_string_equal(buf, "wrapped");
  size_t len;
  assert_rc(mp_connection_recv_bytes(w, buf, sizeof buf, &len), MP_EBADF);
  mp_connection_free(r);
  mp_connection_free(w);
  assert_int_equal(fcntl(fds[0], F_GETFD), -1);
  assert_int_equal(fcntl(fds[1], F_GETFD), -1);
  /* Default options: both directions, here on one end of a socket pair
   * made outside the library. */
  mp_connection *x, *y;
  assert_rc(mp_pipe(&x, &y, 1), 0);
  int dupfd = dup(mp_connection_fileno(y));
  mp_connection_free(y);
  assert_rc(mp_connection_new(&y, dupfd, NULL), 0);
  assert_int_equal(mp_connection_readable(y), 1);
  assert_int_equal(mp_connection_writable(y), 1);
  send_str(y, "dup");
  assert_int_equal(recv_str(x, buf, sizeof buf), 3);
  mp_connection_free(x);
  mp_connection_free(y);
}

/* poll(0) never blocks; poll(t) returns 0 after about t; a message or the
 * peer's close makes it 1. */
static void poll_timeouts(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  double t0 = mp_test_now();
  assert_rc(mp_connection_poll(b, 0), 0);
  assert_rc(mp_connection_poll(b, 0.05), 0);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.045);
  assert_true(took < 5.0);
  send_str(a, "x");
  assert_rc(mp_connection_poll(b, MP_FOREVER), 1);
  assert_rc(mp_connection_poll(b, 0), 1); /* poll does not consume */
  char buf[4];
  recv_str(b, buf, sizeof buf);
  assert_rc(mp_connection_poll(b, 0), 0);
  mp_connection_close(a);
  assert_rc(mp_connection_poll(b, 0), 1);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* The seed's conversation across processes: the child sends, the parent
 * replies, the child checks the reply. */
static int seed_child(void *arg) {
  mp_connection **ends = arg;
  mp_connection_free(ends[0]);
  mp_connection *c = ends[1];
  const char *msg = "[12, {'name': 'yuan'}, 'hello']";
  if (mp_connection_send_bytes(c, msg, 0, strlen(msg)) != 0)
    return 1;
  char buf[64];
  size_t len;
  if (mp_connection_poll(c, PEER_TIMEOUT) != 1 ||
      mp_connection_recv_bytes(c, buf, sizeof buf, &len) != 0)
    return 2;
  return len == 5 && memcmp(buf, "hello", 5) == 0 ? 0 : 3;
}

static void conversation_between_processes(void **state) {
  (void)state;
  mp_connection *ends[2];
  assert_rc(mp_pipe(&ends[0], &ends[1], 1), 0);
  mp_process *p;
  assert_rc(mp_process_new(&p, seed_child, ends, NULL), 0);
  assert_rc(mp_process_start(p), 0);
  mp_connection_free(ends[1]);
  char buf[64];
  recv_str(ends[0], buf, sizeof buf);
  assert_string_equal(buf, "[12, {'name': 'yuan'}, 'hello']");
  send_str(ends[0], "hello");
  assert_rc(mp_process_join(p, PEER_TIMEOUT), 0);
  int code;
  assert_rc(mp_process_exitcode(p, &code), 0);
  assert_int_equal(code, 0);
  /* The child's copy closed with it: the parent now reads end of stream. */
  size_t len;
  assert_rc(mp_connection_poll(ends[0], PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(ends[0], buf, sizeof buf, &len),
            MP_ECLOSED);
  mp_process_free(p);
  mp_connection_free(ends[0]);
}

/* One MiB each way over both kinds of pipe, while the other side reads. */
static void large_messages(void **state) {
  (void)state;
  size_t n = (size_t)1 << 20;
  unsigned char *big = malloc(n), *back = malloc(n);
  assert_non_null(big);
  assert_non_null(back);
  fill(big, n, 11);
  for (int duplex = 0; duplex <= 1; duplex++) {
    mp_connection *r, *w;
    assert_rc(mp_pipe(&r, &w, duplex), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      int bad = 0;
      for (int i = 0; i < 3; i++)
        bad |= mp_connection_send_bytes(w, big, 0, n - (size_t)i) != 0;
      _exit(bad);
    }
    for (int i = 0; i < 3; i++) {
      size_t len = 0;
      memset(back, 0, n);
      assert_rc(mp_connection_poll(r, PEER_TIMEOUT), 1);
      assert_rc(mp_connection_recv_bytes(r, back, n, &len), 0);
      assert_int_equal(len, n - (size_t)i);
      assert_true(check_fill(back, len, 11));
    }
    mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
    mp_connection_free(r);
    mp_connection_free(w);
  }
  free(big);
  free(back);
}

/* Two processes sending small messages on one end: every message arrives
 * whole (each fits in PIPE_BUF with its header), on both kinds of pipe. */
#define SENDS 2000
static int many_sender(void *arg) {
  mp_connection *w = arg;
  char msg[200];
  int id = getpid() & 0xffff;
  for (int i = 0; i < SENDS; i++) {
    size_t n = (size_t)snprintf(msg, sizeof msg, "%d:%d:", id, i);
    size_t target = 40 + (size_t)(i % 150);
    while (n < target)
      msg[n++] = (char)('a' + i % 26);
    if (mp_connection_send_bytes(w, msg, 0, n) != 0)
      return 1;
  }
  return 0;
}

static void two_senders_one_end(void **state) {
  (void)state;
  for (int duplex = 0; duplex <= 1; duplex++) {
    mp_connection *r, *w;
    assert_rc(mp_pipe(&r, &w, duplex), 0);
    pid_t p1 = mp_test_fork(many_sender, w);
    pid_t p2 = mp_test_fork(many_sender, w);
    int next[2] = {0, 0};
    pid_t ids[2] = {p1 & 0xffff, p2 & 0xffff};
    for (int k = 0; k < 2 * SENDS; k++) {
      char buf[256];
      size_t len = recv_str(r, buf, sizeof buf);
      int id, i, off = 0;
      assert_int_equal(sscanf(buf, "%d:%d:%n", &id, &i, &off), 2);
      int who = id == ids[0] ? 0 : 1;
      assert_int_equal(id, ids[who]);
      assert_int_equal(i, next[who]); /* in order, none lost */
      next[who]++;
      assert_int_equal(len, (size_t)(off > 40 + i % 150 ? off
                                                          : 40 + i % 150));
      for (size_t j = (size_t)off; j < len; j++)
        assert_int_equal(buf[j], 'a' + i % 26);
    }
    mp_test_wait_exit(p1, 0, PEER_TIMEOUT);
    mp_test_wait_exit(p2, 0, PEER_TIMEOUT);
    mp_connection_free(r);
    mp_connection_free(w);
  }
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

static int late_sender(void *arg) {
  usleep(300 * 1000);
  return mp_connection_send_bytes(arg, "late", 0, 4) == 0 ? 0 : 1;
}

/* Signals do not cut a receive short (EINTR is retried), and a descriptor
 * someone made non-blocking still gives a blocking receive. */
static void signals_and_nonblocking(void **state) {
  (void)state;
  struct sigaction sa = {.sa_handler = on_alarm}, old;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: the read sees EINTR */
  sigaction(SIGALRM, &sa, &old);
  struct itimerval every = {{0, 20000}, {0, 20000}}, off = {{0, 0}, {0, 0}};
  for (int nonblocking = 0; nonblocking <= 1; nonblocking++) {
    mp_connection *a, *b;
    assert_rc(mp_pipe(&a, &b, 1), 0);
    if (nonblocking) {
      int fd = mp_connection_fileno(b);
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    pid_t pid = mp_test_fork(late_sender, a);
    alarms = 0;
    setitimer(ITIMER_REAL, &every, NULL);
    char buf[8];
    size_t len = 0;
    /* A blocking receive, with no poll first: the sender is 300 ms late
     * and SIGALRM fires every 20 ms meanwhile. */
    int rc = mp_connection_recv_bytes(b, buf, sizeof buf, &len);
    setitimer(ITIMER_REAL, &off, NULL);
    assert_rc(rc, 0);
    assert_true(alarms > 0); /* the receive was interrupted, and went on */
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "late", 4);
    mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
    mp_connection_free(a);
    mp_connection_free(b);
  }
  sigaction(SIGALRM, &old, NULL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(pipe_duplex_both_ways),
    cmocka_unit_test(pipe_simplex_directions),
    cmocka_unit_test(send_offset_and_size),
    cmocka_unit_test(empty_message),
    cmocka_unit_test(wire_format_short_header),
    cmocka_unit_test(long_form_header_received),
    cmocka_unit_test(long_form_header_sent),
    cmocka_unit_test(too_small_buffer_then_retry),
    cmocka_unit_test(recv_bytes_into_offset),
    cmocka_unit_test(recv_alloc_and_out_of_memory),
    cmocka_unit_test(huge_length_refused_without_allocating),
    cmocka_unit_test(eof_before_header),
    cmocka_unit_test(peer_closed_unread_is_closed),
    cmocka_unit_test(eof_mid_message),
    cmocka_unit_test(negative_length),
    cmocka_unit_test(send_to_closed_peer_is_epipe),
    cmocka_unit_test(close_is_idempotent),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(connection_new_wraps_fd),
    cmocka_unit_test(poll_timeouts),
    cmocka_unit_test(conversation_between_processes),
    cmocka_unit_test(large_messages),
    cmocka_unit_test(two_senders_one_end),
    cmocka_unit_test(signals_and_nonblocking),
};

MP_TEST_MAIN(tests)
