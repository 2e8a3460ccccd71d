/* test_interop_pipe.c - a real python3 on the other end of a multiproc
 * Pipe (G-CONN-2: the framing is byte for byte Python's). The child execs
 * python3 with tests/interop/pipe_peer.py, which wraps its end in
 * multiprocessing.connection.Connection: messages both ways, including an
 * empty one, ones around Python's 16384-byte single-write limit and ones
 * over 64 KiB; both directions of a simplex pipe; a message over 2 GiB
 * framed by Python with the -1 long form. Skipped when python3 cannot be
 * run. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PEER MP_SOURCE_DIR "/tests/interop/pipe_peer.py"
#define PEER_TIMEOUT 60.0
/* The descriptor the peer finds its end at. */
#define PEER_FD 10

/* The same list as pipe_peer.py's messages(). */
static const size_t sizes[] = {0,     1,     5,     16380, 16383,
                               16384, 16385, 65537, 70000, 1 << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static unsigned char *pattern(size_t n, unsigned seed) {
  unsigned char *p = malloc(n > 0 ? n : 1);
  assert_non_null(p);
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(i * 31u + seed);
  return p;
}

static bool have_python(void) {
  return system("python3 -c 'import multiprocessing.connection' "
                ">/dev/null 2>&1") == 0;
}

/* The running peer, killed by the teardown if a failed check left it. */
static pid_t peer_pid;

static int kill_peer(void **state) {
  (void)state;
  if (peer_pid > 0) {
    kill(peer_pid, SIGKILL);
    waitpid(peer_pid, NULL, 0);
    peer_pid = 0;
  }
  return 0;
}

/* finish_peer checks that the peer exits 0. */
static void finish_peer(pid_t pid) {
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  peer_pid = 0;
}

/* start_peer runs pipe_peer.py CMD with `theirs` as descriptor PEER_FD,
 * then closes `theirs` here. */
static pid_t start_peer(const char *cmd, mp_connection *theirs) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* dup2 gives a descriptor without close-on-exec: it survives exec. */
    if (dup2(mp_connection_fileno(theirs), PEER_FD) < 0)
      _exit(126);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", PEER_FD);
    execlp("python3", "python3", PEER, cmd, fd, (char *)NULL);
    _exit(127);
  }
  peer_pid = pid;
  mp_connection_free(theirs);
  return pid;
}

/* recv_alloc receives one message, never waiting past PEER_TIMEOUT. */
static unsigned char *recv_alloc(mp_connection *c, size_t *len) {
  if (mp_connection_poll(c, PEER_TIMEOUT) != 1)
    fail_msg("python peer sent nothing within %.0f s", PEER_TIMEOUT);
  void *p = NULL;
  assert_rc(mp_connection_recv_bytes_alloc(c, &p, len, 16 << 20), 0);
  return p;
}

/* C sends each message, Python answers it reversed with "|py" appended;
 * then Python sends its own list. The first long answer is first refused
 * with a small buffer and then taken (the stream stays in step). */
static void python_echo_duplex(void **state) {
  (void)state;
  if (!have_python())
    mp_test_skip("python3 with multiprocessing is not installed");
  mp_connection *mine, *theirs;
  assert_rc(mp_pipe(&mine, &theirs, 1), 0);
  pid_t peer = start_peer("echo", theirs);
  for (size_t k = 0; k < NSIZES; k++) {
    unsigned char *m = pattern(sizes[k], (unsigned)k);
    assert_rc(mp_connection_send_bytes(mine, m, 0, sizes[k]), 0);
    size_t len;
    if (k == 3) {
      char small[16];
      assert_rc(mp_connection_poll(mine, PEER_TIMEOUT), 1);
      assert_rc(mp_connection_recv_bytes(mine, small, sizeof small, &len),
                MP_ETOOBIG);
      assert_int_equal(len, sizes[k] + 3);
    }
    unsigned char *back = recv_alloc(mine, &len);
    assert_int_equal(len, sizes[k] + 3);
    for (size_t i = 0; i < sizes[k]; i++)
      assert_int_equal(back[i], m[sizes[k] - 1 - i]);
    assert_memory_equal(back + sizes[k], "|py", 3);
    free(back);
    free(m);
  }
  assert_rc(mp_connection_send_bytes(mine, "quit", 0, 4), 0);
  for (size_t k = 0; k < NSIZES; k++) {
    unsigned char *want = pattern(sizes[k], (unsigned)k);
    size_t len;
    unsigned char *got = recv_alloc(mine, &len);
    assert_int_equal(len, sizes[k]);
    if (sizes[k] > 0)
      assert_memory_equal(got, want, sizes[k]);
    free(got);
    free(want);
  }
  assert_rc(mp_connection_poll(mine, PEER_TIMEOUT), 1);
  size_t len;
  assert_rc(mp_connection_recv_bytes(mine, NULL, 0, &len), MP_ECLOSED);
  finish_peer(peer);
  mp_connection_free(mine);
}

/* Pipe(False) with Python holding the writer. */
static void python_writes_simplex(void **state) {
  (void)state;
  if (!have_python())
    mp_test_skip("python3 with multiprocessing is not installed");
  mp_connection *r, *w;
  assert_rc(mp_pipe(&r, &w, 0), 0);
  pid_t peer = start_peer("writer", w);
  for (size_t k = 0; k < NSIZES; k++) {
    unsigned char *want = pattern(sizes[k], (unsigned)k);
    size_t len;
    unsigned char *got = recv_alloc(r, &len);
    assert_int_equal(len, sizes[k]);
    if (sizes[k] > 0)
      assert_memory_equal(got, want, sizes[k]);
    free(got);
    free(want);
  }
  size_t len;
  assert_rc(mp_connection_poll(r, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(r, NULL, 0, &len), MP_ECLOSED);
  finish_peer(peer);
  mp_connection_free(r);
}

/* Pipe(False) with Python holding the reader: it checks every message and
 * then sees end of stream. */
static void python_reads_simplex(void **state) {
  (void)state;
  if (!have_python())
    mp_test_skip("python3 with multiprocessing is not installed");
  mp_connection *r, *w;
  assert_rc(mp_pipe(&r, &w, 0), 0);
  pid_t peer = start_peer("reader", r);
  for (size_t k = 0; k < NSIZES; k++) {
    unsigned char *m = pattern(sizes[k], (unsigned)k);
    assert_rc(mp_connection_send_bytes(w, m, 0, sizes[k]), 0);
    free(m);
  }
  mp_connection_free(w);
  finish_peer(peer);
}

/* Python frames a 2 GiB message with -1 and an 8-byte length: C reads the
 * length (refusing the message into a small buffer), then drains it. */
static void python_long_form(void **state) {
  (void)state;
  if (!have_python())
    mp_test_skip("python3 with multiprocessing is not installed");
  mp_connection *r, *w;
  assert_rc(mp_pipe(&r, &w, 0), 0);
  pid_t peer = start_peer("huge", w);
  char small[64];
  size_t len = 0;
  assert_rc(mp_connection_poll(r, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(r, small, sizeof small, &len),
            MP_ETOOBIG);
  assert_int_equal(len, (size_t)0x80000000u);
  /* Drain the payload raw, checking it is all zero bytes. */
  size_t left = len, chunk = 1 << 20;
  unsigned char *buf = malloc(chunk);
  assert_non_null(buf);
  double end = mp_test_now() + 120.0;
  int fd = mp_connection_fileno(r);
  bool zero = true;
  while (left > 0) {
    assert_true(mp_test_now() < end);
    ssize_t n = read(fd, buf, left < chunk ? left : chunk);
    assert_true(n > 0);
    for (ssize_t i = 0; i < n; i += 4093)
      zero &= buf[i] == 0;
    left -= (size_t)n;
  }
  assert_true(zero);
  free(buf);
  finish_peer(peer);
  mp_connection_free(r);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(python_echo_duplex, kill_peer),
    cmocka_unit_test_teardown(python_writes_simplex, kill_peer),
    cmocka_unit_test_teardown(python_reads_simplex, kill_peer),
    cmocka_unit_test_teardown(python_long_form, kill_peer),
};

MP_TEST_MAIN(tests)
