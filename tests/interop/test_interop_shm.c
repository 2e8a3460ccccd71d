/* test_interop_shm.c - SharedMemory and ShareableList shared with a real
 * python3, both directions: Python creates and C attaches, C creates and
 * Python attaches (the seeds' "haha" exchange, and a list of every item
 * type). The Python side is tests/interop/shm_peer.py. Skipped when
 * python3 cannot be run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PEER MP_SOURCE_DIR "/tests/interop/shm_peer.py"
#define PEER_TIMEOUT 60.0

typedef struct peer {
  pid_t pid;
  int to;   /* its stdin */
  int from; /* its stdout */
} peer;

static bool have_python(void) {
  return system("python3 -c 'import multiprocessing.shared_memory' "
                ">/dev/null 2>&1") == 0;
}

static void peer_start(peer *p, const char *cmd, const char *name) {
  int in[2], out[2];
  assert_int_equal(pipe2(in, O_CLOEXEC), 0);
  assert_int_equal(pipe2(out, O_CLOEXEC), 0);
  fflush(NULL);
  p->pid = fork();
  assert_true(p->pid >= 0);
  if (p->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    execlp("python3", "python3", PEER, cmd, name, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  p->to = in[1];
  p->from = out[0];
}

/* Ends the peer before failing, so a failed case leaves no child. */
static void peer_kill(peer *p) {
  kill(p->pid, SIGKILL);
  waitpid(p->pid, NULL, 0);
  close(p->to);
  close(p->from);
}

/* Reads one line from the peer (without the newline), bounded in time. */
static void peer_line(peer *p, char *buf, size_t cap) {
  size_t n = 0;
  double end = mp_test_now() + PEER_TIMEOUT;
  while (n + 1 < cap) {
    struct pollfd pfd = {.fd = p->from, .events = POLLIN};
    int left = (int)((end - mp_test_now()) * 1000);
    if (left <= 0) {
      peer_kill(p);
      fail_msg("python peer said nothing within %.0f s", PEER_TIMEOUT);
    }
    int rc = poll(&pfd, 1, left);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc <= 0)
      continue;
    ssize_t r = read(p->from, buf + n, 1);
    if (r <= 0)
      break;
    if (buf[n] == '\n')
      break;
    n++;
  }
  buf[n] = '\0';
  if (strncmp(buf, "FAILED", 6) == 0) {
    peer_kill(p);
    fail_msg("python peer: %s", buf);
  }
}

static void peer_say(peer *p, const char *line) {
  size_t n = strlen(line);
  assert_int_equal(write(p->to, line, n), (ssize_t)n);
  assert_int_equal(write(p->to, "\n", 1), 1);
}

/* Waits for the peer and checks it exited 0, echoing what it said. */
static void peer_finish(peer *p) {
  close(p->to);
  char rest[512];
  ssize_t n;
  while ((n = read(p->from, rest, sizeof rest - 1)) > 0) {
    rest[n] = '\0';
    fprintf(stderr, "python: %s", rest);
  }
  close(p->from);
  mp_test_wait_exit(p->pid, 0, PEER_TIMEOUT);
}

/* Python creates "haha" (size 256, buf[0] = 0xab); C attaches, reads it
 * and writes back; Python checks and unlinks. */
static void python_creates_c_attaches(void **state) {
  (void)state;
  if (!have_python())
    mp_test_skip("python3 with multiprocessing is not installed");
  char name[64], line[256];
  mp_test_name(name, sizeof name, "haha");
  peer p;
  peer_start(&p, "create-shm", name);
  peer_line(&p, line, sizeof line);
  assert_string_equal(line, "ready 256");
  mp_shared_memory *shm;
  assert_rc(mp_shared_memory_open(&shm, name), 0);
  assert_int_equal(mp_shared_memory_size(shm), 256);
  unsigned char *buf = mp_shared_memory_buf(shm);
  assert_int_equal(buf[0], 0xab);
  buf[1] = 0xcd;
  mp_shared_memory_free(shm);
  /* We only attached: our tracker knows nothing of it. */
  assert_int_equal(mp_resource_tracker_pid(), 0);
  peer_say(&p, "go");
  peer_finish(&p);
  assert_rc(mp_shared_memory_open(&shm, name), MP_ENOENT);
}

/* C creates, writes 0xab; Python attaches, checks, writes back. */
static void c_creates_python_attaches(void **state) {
  (void)state;
  if (!have_python())
    mp_test_skip("python3 with multiprocessing is not installed");
  char name[64];
  mp_test_name(name, sizeof name, "haha2");
  mp_shared_memory *shm;
  assert_rc(mp_shared_memory_new(&shm, name, 256, NULL), 0);
  unsigned char *buf = mp_shared_memory_buf(shm);
  buf[0] = 0xab;
  peer p;
  char line[256];
  peer_start(&p, "attach-shm", name);
  peer_line(&p, line, sizeof line);
  assert_string_equal(line, "done");
  peer_finish(&p);
  assert_int_equal(buf[1], 0xcd);
  /* Python exited; its tracker did not take our block with it. */
  mp_shared_memory *again;
  assert_rc(mp_shared_memory_open(&again, name), 0);
  mp_shared_memory_free(again);
  assert_rc(mp_shared_memory_unlink(shm), 0);
  mp_shared_memory_free(shm);
}

static void expect_str(mp_shareable_list *sl, ssize_t i, const char *want) {
  char buf[64];
  mp_shareable_item it;
  assert_rc(mp_shareable_list_get(sl, i, &it, buf, sizeof buf), 0);
  assert_int_equal(it.type, MP_SHAREABLE_STR);
  assert_string_equal(buf, want);
}

/* Python's ShareableList of every type, read and changed by C. */
static void python_list_read_and_changed_by_c(void **state) {
  (void)state;
  if (!have_python())
    mp_test_skip("python3 with multiprocessing is not installed");
  char name[64], line[256];
  mp_test_name(name, sizeof name, "pysl");
  peer p;
  peer_start(&p, "create-sl", name);
  peer_line(&p, line, sizeof line);
  assert_memory_equal(line, "ready ", 6);
  mp_shareable_list *sl;
  assert_rc(mp_shareable_list_open(&sl, name), 0);
  char fmt[256];
  assert_true(mp_shareable_list_format(sl, fmt, sizeof fmt) > 0);
  assert_string_equal(fmt, line + 6);
  assert_int_equal(mp_shareable_list_len(sl), 8);
  mp_shareable_item it;
  char buf[64];
  assert_rc(mp_shareable_list_get(sl, 0, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_INT);
  assert_int_equal(it.i, 42);
  assert_rc(mp_shareable_list_get(sl, 1, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_FLOAT);
  assert_true(it.f == -1.5);
  assert_rc(mp_shareable_list_get(sl, 2, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_BOOL);
  assert_int_equal(it.i, 1);
  assert_rc(mp_shareable_list_get(sl, 3, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_NONE);
  expect_str(sl, 4, "h\xc3\xa9llo w\xc3\xb6rld");
  assert_rc(mp_shareable_list_get(sl, 5, &it, buf, sizeof buf), 0);
  assert_int_equal(it.type, MP_SHAREABLE_BYTES);
  assert_int_equal(it.len, 6);
  assert_memory_equal(buf, "by\0tes", 6);
  expect_str(sl, 6, "xxxxxxxxxxxxxxxxxxxx");
  assert_rc(mp_shareable_list_get(sl, 7, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_BOOL);
  assert_int_equal(it.i, 0);
  mp_shareable_item v[] = {
      mp_shareable_str("from C"), mp_shareable_bytes("ab\0", 3),
      mp_shareable_bool(0),       mp_shareable_int(7),
      mp_shareable_none(),        mp_shareable_float(0.25),
  };
  const ssize_t at[] = {0, 1, 2, 3, 6, 7};
  for (size_t i = 0; i < 6; i++)
    assert_rc(mp_shareable_list_set(sl, at[i], &v[i]), 0);
  /* Our own reading keeps the trailing NUL Python will strip. */
  assert_rc(mp_shareable_list_get(sl, 1, &it, buf, sizeof buf), 0);
  assert_int_equal(it.len, 3);
  assert_true(mp_shareable_list_format(sl, fmt, sizeof fmt) > 0);
  mp_shareable_list_free(sl);
  peer_say(&p, fmt);
  peer_finish(&p);
}

/* C's ShareableList, read and changed by Python, read back by C. */
static void c_list_read_and_changed_by_python(void **state) {
  (void)state;
  if (!have_python())
    mp_test_skip("python3 with multiprocessing is not installed");
  char name[64], line[256];
  mp_test_name(name, sizeof name, "csl");
  mp_shareable_item items[] = {
      mp_shareable_int(1),
      mp_shareable_float(2.5),
      mp_shareable_bool(1),
      mp_shareable_none(),
      mp_shareable_str("h\xc3\xa9llo w\xc3\xb6rld"),
      mp_shareable_bytes("ab\0", 3),
      mp_shareable_str(""),
      mp_shareable_int(INT64_MIN),
  };
  mp_shareable_list *sl;
  assert_rc(mp_shareable_list_new(&sl, items, 8, name, NULL), 0);
  char fmt[256];
  assert_true(mp_shareable_list_format(sl, fmt, sizeof fmt) > 0);
  peer p;
  peer_start(&p, "attach-sl", name);
  /* Python's view of our formats (it changes the list right after). */
  peer_line(&p, line, sizeof line);
  assert_string_equal(line, fmt);
  peer_line(&p, line, sizeof line);
  assert_string_equal(line, "done");
  peer_finish(&p);
  mp_shareable_item it;
  expect_str(sl, 0, "py");
  expect_str(sl, 4, "xyzxyzxyzxyzxyz");
  assert_rc(mp_shareable_list_get(sl, 5, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_NONE);
  assert_rc(mp_shareable_list_get(sl, 6, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_INT);
  assert_int_equal(it.i, 12345);
  assert_rc(mp_shareable_list_get(sl, 3, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_FLOAT);
  assert_true(it.f == 1.5);
  assert_rc(mp_shareable_list_get(sl, 1, &it, NULL, 0), 0);
  assert_true(it.f == 2.5);
  assert_rc(mp_shared_memory_unlink(mp_shareable_list_shm(sl)), 0);
  mp_shareable_list_free(sl);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(python_creates_c_attaches),
    cmocka_unit_test(c_creates_python_attaches),
    cmocka_unit_test(python_list_read_and_changed_by_c),
    cmocka_unit_test(c_list_read_and_changed_by_python),
};

MP_TEST_MAIN(tests)
