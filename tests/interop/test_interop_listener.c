/* test_interop_listener.c - multiproc's Listener and Client against
 * CPython's multiprocessing.connection, for every CPython 3.11, 3.12 and
 * 3.13 found by mp_test_python (a missing one is reported as skipped):
 * a C listener with a Python client and a Python listener with a C
 * client, over TCP, a Unix path and an abstract name; with the right key,
 * a wrong key, and a key on one side only (where CPython would hang, the
 * C side ends within its handshake deadline). The Python side is
 * tests/interop/listener_peer.py. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PEER MP_SOURCE_DIR "/tests/interop/listener_peer.py"
#define PEER_TIMEOUT 60.0
static const char KEY[] = "secret";
#define KEYHEX "736563726574"
#define KEYLEN 6

static const char *const versions[] = MP_TEST_PYTHONS;
#define NVERSIONS 3

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

/* start_peer runs `python listener_peer.py cmd address key`; with out
 * non-NULL, *out reads the peer's stdout. */
static pid_t start_peer(const char *python, const char *cmd,
                        const char *address, const char *key, int *out) {
  int p[2] = {-1, -1};
  if (out != NULL)
    assert_int_equal(pipe(p), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (out != NULL) {
      dup2(p[1], 1);
      close(p[0]);
      close(p[1]);
    }
    execl(python, python, PEER, cmd, address, key, (char *)NULL);
    _exit(127);
  }
  if (out != NULL) {
    close(p[1]);
    *out = p[0];
  }
  peer_pid = pid;
  return pid;
}

/* peer_status waits for the peer and returns its exit status. */
static int peer_status(pid_t pid) {
  int st = mp_test_wait(pid, PEER_TIMEOUT);
  peer_pid = 0;
  assert_true(st != -1 && WIFEXITED(st));
  return WEXITSTATUS(st);
}

/* read_line reads the peer's first line (its bound address). */
static void read_line(int fd, char *buf, size_t cap) {
  size_t n = 0;
  double t0 = mp_test_now();
  while (n + 1 < cap && mp_test_now() - t0 < PEER_TIMEOUT) {
    ssize_t r = read(fd, buf + n, 1);
    assert_true(r == 1);
    if (buf[n] == '\n')
      break;
    n++;
  }
  buf[n] = '\0';
  close(fd);
}

static void unique_address(const char *family, const char *ver, char *out,
                           size_t cap) {
  char name[64];
  if (strcmp(family, "tcp") == 0)
    snprintf(out, cap, "127.0.0.1:0");
  else if (strcmp(family, "unix") == 0)
    snprintf(out, cap, "/tmp/%s-%s.sock", mp_test_name(name, sizeof name, "il"),
             ver);
  else
    snprintf(out, cap, "@%s-%s", mp_test_name(name, sizeof name, "il"), ver);
}

/* talk_as_server: accept one client, expect its hello, answer. */
static void talk_as_server(mp_listener *l) {
  mp_connection *c = NULL;
  assert_rc(mp_listener_accept(l, &c, PEER_TIMEOUT), 0);
  char buf[64];
  size_t len = 0;
  assert_rc(mp_connection_poll(c, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(c, buf, sizeof buf, &len), 0);
  assert_int_equal(len, 17);
  assert_memory_equal(buf, "hello from python", 17);
  assert_rc(mp_connection_send_bytes(c, "hello from C", 0, 12), 0);
  mp_connection_free(c);
}

static void talk_as_client(mp_connection *c) {
  assert_rc(mp_connection_send_bytes(c, "hello from C", 0, 12), 0);
  char buf[64];
  size_t len = 0;
  assert_rc(mp_connection_poll(c, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(c, buf, sizeof buf, &len), 0);
  assert_int_equal(len, 17);
  assert_memory_equal(buf, "hello from python", 17);
}

/* c_listener runs a C listener (key, digest) with a Python client for each
 * CPython. */
static void c_listener_only(const char *family, const char *digest,
                            const char *only) {
  int ran = 0;
  for (size_t v = 0; v < NVERSIONS; v++) {
    const char *py = mp_test_python(versions[v]);
    if (py == NULL || (only != NULL && strcmp(only, versions[v]) != 0))
      continue;
    ran++;
    char addr[128];
    unique_address(family, versions[v], addr, sizeof addr);
    mp_listener_opts o = {.authkey = KEY, .authkey_len = KEYLEN};
    o.auth.digest = digest;
    mp_listener *l = NULL;
    assert_rc(mp_listener_new(&l, addr, &o), 0);
    pid_t pid = start_peer(py, "client", mp_listener_address(l), KEYHEX, NULL);
    talk_as_server(l);
    assert_int_equal(peer_status(pid), 0);
    mp_listener_free(l);
  }
  if (ran == 0)
    mp_test_skip("no CPython %s found", only ? only : "3.11, 3.12 or 3.13");
}

static void c_listener(const char *family, const char *digest) {
  c_listener_only(family, digest, NULL);
}

static void py_listener(const char *family) {
  int ran = 0;
  for (size_t v = 0; v < NVERSIONS; v++) {
    const char *py = mp_test_python(versions[v]);
    if (py == NULL)
      continue;
    ran++;
    char addr[128], bound[MP_ADDRESS_MAX];
    unique_address(family, versions[v], addr, sizeof addr);
    int out;
    pid_t pid = start_peer(py, "server", addr, KEYHEX, &out);
    read_line(out, bound, sizeof bound);
    mp_client_opts o = {.authkey = KEY, .authkey_len = KEYLEN};
    mp_connection *c = NULL;
    assert_rc(mp_client(&c, bound, &o, PEER_TIMEOUT), 0);
    talk_as_client(c);
    mp_connection_free(c);
    assert_int_equal(peer_status(pid), 0);
  }
  if (ran == 0)
    mp_test_skip("no CPython 3.11, 3.12 or 3.13 found");
}

static void c_listener_py_client_tcp(void **s) {
  (void)s, c_listener("tcp", NULL);
}
static void c_listener_py_client_unix(void **s) {
  (void)s, c_listener("unix", NULL);
}
static void c_listener_py_client_abstract(void **s) {
  (void)s, c_listener("abstract", NULL);
}
static void py_listener_c_client_tcp(void **s) {
  (void)s, py_listener("tcp");
}
static void py_listener_c_client_unix(void **s) {
  (void)s, py_listener("unix");
}
static void py_listener_c_client_abstract(void **s) {
  (void)s, py_listener("abstract");
}

/* Every digest a C listener may challenge with is answered by CPython
 * 3.13 with that digest (3.11 answers any with legacy MD5, covered by the
 * cases above and the strict one). */
static void c_listener_every_digest(void **s) {
  (void)s;
  const char *d[] = {"md5", "sha384", "sha3_256", "sha3_384"};
  for (size_t i = 0; i < 4; i++)
    c_listener_only("tcp", d[i], "3.13");
}

/* A wrong key: both sides refuse, neither hangs. */
static void wrong_key_c_listener(void **s) {
  (void)s;
  int ran = 0;
  for (size_t v = 0; v < NVERSIONS; v++) {
    const char *py = mp_test_python(versions[v]);
    if (py == NULL)
      continue;
    ran++;
    mp_listener_opts o = {.authkey = KEY, .authkey_len = KEYLEN};
    mp_listener *l = NULL;
    assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), 0);
    pid_t pid =
        start_peer(py, "client", mp_listener_address(l), "77726f6e67", NULL);
    mp_connection *c = NULL;
    assert_rc(mp_listener_accept(l, &c, PEER_TIMEOUT), MP_EAUTH);
    assert_non_null(strstr(mp_error_detail(), "authkeys differ"));
    assert_int_equal(peer_status(pid), 3);
    mp_listener_free(l);
  }
  if (ran == 0)
    mp_test_skip("no CPython 3.11, 3.12 or 3.13 found");
}

static void wrong_key_py_listener(void **s) {
  (void)s;
  int ran = 0;
  for (size_t v = 0; v < NVERSIONS; v++) {
    const char *py = mp_test_python(versions[v]);
    if (py == NULL)
      continue;
    ran++;
    int out;
    char bound[MP_ADDRESS_MAX];
    pid_t pid = start_peer(py, "server", "127.0.0.1:0", "77726f6e67", &out);
    read_line(out, bound, sizeof bound);
    mp_client_opts o = {.authkey = KEY, .authkey_len = KEYLEN};
    mp_connection *c = NULL;
    assert_rc(mp_client(&c, bound, &o, PEER_TIMEOUT), MP_EAUTH);
    assert_non_null(strstr(mp_error_detail(), "authkeys differ"));
    assert_int_equal(peer_status(pid), 3);
  }
  if (ran == 0)
    mp_test_skip("no CPython 3.11, 3.12 or 3.13 found");
}

/* A keyed C listener and a Python client without a key: the client's
 * first message is taken as a reply and refused (no message reaches the
 * program); the client reads the challenge where it expected data. */
static void no_key_py_client(void **s) {
  (void)s;
  int ran = 0;
  for (size_t v = 0; v < NVERSIONS; v++) {
    const char *py = mp_test_python(versions[v]);
    if (py == NULL)
      continue;
    ran++;
    mp_listener_opts o = {.authkey = KEY, .authkey_len = KEYLEN};
    mp_listener *l = NULL;
    assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), 0);
    pid_t pid = start_peer(py, "client", mp_listener_address(l), "-", NULL);
    mp_connection *c = NULL;
    assert_rc(mp_listener_accept(l, &c, PEER_TIMEOUT), MP_EAUTH);
    assert_int_equal(peer_status(pid), 4);
    mp_listener_free(l);
  }
  if (ran == 0)
    mp_test_skip("no CPython 3.11, 3.12 or 3.13 found");
}

/* A C client with a key and a Python listener without one (CPython's own
 * client hangs there, gh-123736): the C client times out in its
 * handshake deadline; the Python side then sees the close. */
static void key_c_client_py_listener_none(void **s) {
  (void)s;
  int ran = 0;
  for (size_t v = 0; v < NVERSIONS; v++) {
    const char *py = mp_test_python(versions[v]);
    if (py == NULL)
      continue;
    ran++;
    int out;
    char bound[MP_ADDRESS_MAX];
    pid_t pid = start_peer(py, "server", "127.0.0.1:0", "-", &out);
    read_line(out, bound, sizeof bound);
    mp_client_opts o = {.authkey = KEY, .authkey_len = KEYLEN};
    o.auth.timeout = 0.5;
    mp_connection *c = NULL;
    double t0 = mp_test_now();
    assert_rc(mp_client(&c, bound, &o, PEER_TIMEOUT), MP_ETIMEDOUT);
    assert_true(mp_test_now() - t0 < mp_test_slack(5));
    assert_int_equal(peer_status(pid), 5);
  }
  if (ran == 0)
    mp_test_skip("no CPython 3.11, 3.12 or 3.13 found");
}

/* A C client without a key and a keyed Python listener: the C program
 * reads the challenge as its first message; Python refuses the data it
 * took as a reply. */
static void no_key_c_client(void **s) {
  (void)s;
  int ran = 0;
  for (size_t v = 0; v < NVERSIONS; v++) {
    const char *py = mp_test_python(versions[v]);
    if (py == NULL)
      continue;
    ran++;
    int out;
    char bound[MP_ADDRESS_MAX];
    pid_t pid = start_peer(py, "server", "127.0.0.1:0", KEYHEX, &out);
    read_line(out, bound, sizeof bound);
    mp_connection *c = NULL;
    assert_rc(mp_client(&c, bound, NULL, PEER_TIMEOUT), 0);
    assert_rc(mp_connection_send_bytes(c, "hello from C", 0, 12), 0);
    char buf[300];
    size_t len = 0;
    assert_rc(mp_connection_poll(c, PEER_TIMEOUT), 1);
    assert_rc(mp_connection_recv_bytes(c, buf, sizeof buf, &len), 0);
    assert_memory_equal(buf, "#CHALLENGE#", 11);
    mp_connection_free(c);
    assert_int_equal(peer_status(pid), 3);
  }
  if (ran == 0)
    mp_test_skip("no CPython 3.11, 3.12 or 3.13 found");
}

/* A C listener without a key and a Python client with one (which waits
 * for a challenge forever): nothing is delivered; closing frees it. */
static void key_py_client_c_listener_none(void **s) {
  (void)s;
  int ran = 0;
  for (size_t v = 0; v < NVERSIONS; v++) {
    const char *py = mp_test_python(versions[v]);
    if (py == NULL)
      continue;
    ran++;
    mp_listener *l = NULL;
    assert_rc(mp_listener_new(&l, "127.0.0.1:0", NULL), 0);
    pid_t pid = start_peer(py, "client", mp_listener_address(l), KEYHEX, NULL);
    mp_connection *c = NULL;
    assert_rc(mp_listener_accept(l, &c, PEER_TIMEOUT), 0);
    assert_int_equal(mp_connection_poll(c, 0.3), 0);
    mp_connection_free(c);
    assert_int_equal(peer_status(pid), 5);
    mp_listener_free(l);
  }
  if (ran == 0)
    mp_test_skip("no CPython 3.11, 3.12 or 3.13 found");
}

/* The strict option refuses CPython 3.11's legacy MD5 reply and lets the
 * newer ones in. */
static void strict_refuses_legacy_client(void **s) {
  (void)s;
  int ran = 0;
  for (size_t v = 0; v < NVERSIONS; v++) {
    const char *py = mp_test_python(versions[v]);
    if (py == NULL)
      continue;
    ran++;
    mp_listener_opts o = {.authkey = KEY, .authkey_len = KEYLEN};
    o.auth.strict = 1;
    mp_listener *l = NULL;
    assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), 0);
    pid_t pid = start_peer(py, "client", mp_listener_address(l), KEYHEX, NULL);
    if (strcmp(versions[v], "3.11") == 0) {
      mp_connection *c = NULL;
      assert_rc(mp_listener_accept(l, &c, PEER_TIMEOUT), MP_EAUTH);
      assert_non_null(strstr(mp_error_detail(), "strict"));
      assert_int_equal(peer_status(pid), 3);
    } else {
      talk_as_server(l);
      assert_int_equal(peer_status(pid), 0);
    }
    mp_listener_free(l);
  }
  if (ran == 0)
    mp_test_skip("no CPython 3.11, 3.12 or 3.13 found");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(c_listener_py_client_tcp, kill_peer),
    cmocka_unit_test_teardown(c_listener_py_client_unix, kill_peer),
    cmocka_unit_test_teardown(c_listener_py_client_abstract, kill_peer),
    cmocka_unit_test_teardown(py_listener_c_client_tcp, kill_peer),
    cmocka_unit_test_teardown(py_listener_c_client_unix, kill_peer),
    cmocka_unit_test_teardown(py_listener_c_client_abstract, kill_peer),
    cmocka_unit_test_teardown(c_listener_every_digest, kill_peer),
    cmocka_unit_test_teardown(wrong_key_c_listener, kill_peer),
    cmocka_unit_test_teardown(wrong_key_py_listener, kill_peer),
    cmocka_unit_test_teardown(no_key_py_client, kill_peer),
    cmocka_unit_test_teardown(key_c_client_py_listener_none, kill_peer),
    cmocka_unit_test_teardown(no_key_c_client, kill_peer),
    cmocka_unit_test_teardown(key_py_client_c_listener_none, kill_peer),
    cmocka_unit_test_teardown(strict_refuses_legacy_client, kill_peer),
};

MP_TEST_MAIN(tests)
