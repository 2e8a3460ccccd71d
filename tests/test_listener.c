/* test_listener.c - Listener, Client and the authkey handshake: every
 * address form (TCP v4/v6, Unix path, abstract name, NULL), both roles of
 * the handshake with right, wrong and no keys, every digest, the legacy
 * MD5 reply of CPython 3.11 and the strict option, hostile peers (stalled,
 * oversized, huge announced length, wrong digest, garbage, truncated
 * frames), a listener that keeps accepting while one client stalls, the
 * listener in mp_connection_wait, and the process authkey across fork,
 * spawn and forkserver. Python on the other side is
 * tests/interop/test_interop_listener.c. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h" /* mp__alloc_fail_after */

#define PEER_TIMEOUT 30.0
static const char KEY[] = "secret";
#define KEYLEN 6

/* ---- helpers ------------------------------------------------------------ */

static mp_listener *listen_at(const char *address, const void *key,
                              size_t keylen, double hs_timeout) {
  mp_listener_opts o = {.authkey = key, .authkey_len = keylen};
  o.auth.timeout = hs_timeout;
  mp_listener *l = NULL;
  assert_rc(mp_listener_new(&l, address, &o), 0);
  assert_non_null(l);
  return l;
}

static int client_at(mp_connection **c, const char *address, const void *key,
                     size_t keylen, double hs_timeout) {
  mp_client_opts o = {.authkey = key, .authkey_len = keylen};
  o.auth.timeout = hs_timeout;
  return mp_client(c, address, &o, PEER_TIMEOUT);
}

static void send_str(mp_connection *c, const char *s) {
  assert_rc(mp_connection_send_bytes(c, s, 0, strlen(s)), 0);
}

static void expect_str(mp_connection *c, const char *want) {
  char buf[256];
  size_t len = 0;
  assert_rc(mp_connection_poll(c, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(c, buf, sizeof buf - 1, &len), 0);
  buf[len] = '\0';
  assert_string_equal(buf, want);
}

/* What a forked client does: connect with the key given, say hello, read
 * the reply. Exits 0 on success, 10 + -rc of mp_client otherwise. */
typedef struct client_job {
  char address[MP_ADDRESS_MAX];
  const char *key;
  size_t keylen;
  double hs_timeout;
  int expect_rc;
} client_job;

static int client_child(void *arg) {
  client_job *j = arg;
  mp_connection *c = NULL;
  int rc = client_at(&c, j->address, j->key, j->keylen, j->hs_timeout);
  if (rc != j->expect_rc)
    return 2;
  if (rc != 0)
    return 0;
  rc = mp_connection_send_bytes(c, "hello", 0, 5);
  char buf[16];
  size_t len = 0;
  if (rc == 0 && mp_connection_poll(c, PEER_TIMEOUT) == 1)
    rc = mp_connection_recv_bytes(c, buf, sizeof buf, &len);
  else
    rc = -1;
  mp_connection_free(c);
  return rc == 0 && len == 3 && memcmp(buf, "bye", 3) == 0 ? 0 : 3;
}

static pid_t spawn_client(mp_listener *l, const char *key, size_t keylen,
                          int expect_rc) {
  static client_job j;
  memset(&j, 0, sizeof j);
  snprintf(j.address, sizeof j.address, "%s", mp_listener_address(l));
  j.key = key;
  j.keylen = keylen;
  j.expect_rc = expect_rc;
  return mp_test_fork(client_child, &j);
}

/* serve_one accepts one client, reads "hello", answers "bye". */
static void serve_one(mp_listener *l) {
  mp_connection *c = NULL;
  assert_rc(mp_listener_accept(l, &c, PEER_TIMEOUT), 0);
  expect_str(c, "hello");
  send_str(c, "bye");
  mp_connection_free(c);
}

/* raw_connect opens a plain socket to l, for forging a peer. */
static int raw_connect(mp_listener *l) {
  mp_connection *c = NULL;
  assert_rc(mp_client(&c, mp_listener_address(l), NULL, PEER_TIMEOUT), 0);
  int fd = dup(mp_connection_fileno(c));
  mp_connection_free(c);
  assert_true(fd >= 0);
  return fd;
}

static void write_all(int fd, const void *p, size_t n) {
  assert_int_equal(write(fd, p, n), (ssize_t)n);
}

static void write_frame(int fd, const void *p, size_t n) {
  unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                        (unsigned char)(n >> 8), (unsigned char)n};
  write_all(fd, h, 4);
  if (n > 0)
    write_all(fd, p, n);
}

/* read_frame reads one frame of at most cap bytes from fd. */
static size_t read_frame(int fd, unsigned char *buf, size_t cap) {
  mp_connection *c = NULL;
  assert_rc(mp_connection_new(&c, dup(fd), NULL), 0);
  size_t len = 0;
  assert_rc(mp_connection_poll(c, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv_bytes(c, buf, cap, &len), 0);
  mp_connection_free(c);
  return len;
}

static void hmac(const char *md, const void *key, size_t keylen,
                 const void *msg, size_t len, unsigned char *out,
                 size_t *outlen) {
  assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, key, keylen, msg, len,
                            out, 64, outlen));
}

/* expect_auth_failure accepts once and wants MP_EAUTH whose detail
 * contains what. */
static void expect_auth_failure(mp_listener *l, const char *what) {
  mp_connection *c = NULL;
  double t0 = mp_test_now();
  assert_rc(mp_listener_accept(l, &c, PEER_TIMEOUT), MP_EAUTH);
  assert_null(c);
  assert_true(mp_test_now() - t0 < mp_test_slack(10));
  if (strstr(mp_error_detail(), what) == NULL)
    fail_msg("detail '%s' lacks '%s'", mp_error_detail(), what);
}

/* ---- addresses ---------------------------------------------------------- */

static void tcp_ipv4_with_key(void **state) {
  (void)state;
  mp_listener *l = listen_at("127.0.0.1:0", KEY, KEYLEN, 0);
  const char *a = mp_listener_address(l);
  assert_true(strncmp(a, "127.0.0.1:", 10) == 0);
  assert_true(atoi(a + 10) > 0); /* the port the kernel picked */
  assert_int_equal(mp_listener_family(l), MP_FAMILY_INET);
  assert_string_equal(mp_listener_last_accepted(l), "");
  pid_t pid = spawn_client(l, KEY, KEYLEN, 0);
  serve_one(l);
  assert_true(strncmp(mp_listener_last_accepted(l), "127.0.0.1:", 10) == 0);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  mp_listener_free(l);
}

static void tcp_ipv6(void **state) {
  (void)state;
  mp_listener *l = NULL;
  int rc = mp_listener_new(&l, "[::1]:0", NULL);
  if (rc != 0)
    mp_test_skip("no IPv6 loopback here (%s)", mp_err_name(rc));
  assert_int_equal(mp_listener_family(l), MP_FAMILY_INET6);
  assert_true(strncmp(mp_listener_address(l), "[::1]:", 6) == 0);
  mp_listener_free(l);
  l = listen_at("[::1]:0", KEY, KEYLEN, 0);
  pid_t pid = spawn_client(l, KEY, KEYLEN, 0);
  serve_one(l);
  assert_true(strncmp(mp_listener_last_accepted(l), "[::1]:", 6) == 0);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  mp_listener_free(l);
}

static void unix_path_removed_on_close(void **state) {
  (void)state;
  char name[64], path[128];
  snprintf(path, sizeof path, "/tmp/%s.sock",
           mp_test_name(name, sizeof name, "lsn"));
  mp_listener *l = listen_at(path, KEY, KEYLEN, 0);
  assert_string_equal(mp_listener_address(l), path);
  assert_int_equal(mp_listener_family(l), MP_FAMILY_UNIX);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  /* A second listener on the same path is refused, as in Python. */
  mp_listener *l2 = NULL;
  assert_rc(mp_listener_new(&l2, path, NULL), MP_EEXIST);
  assert_null(l2);
  pid_t pid = spawn_client(l, KEY, KEYLEN, 0);
  serve_one(l);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  assert_rc(mp_listener_close(l), 0);
  assert_rc(mp_listener_close(l), 0); /* idempotent */
  assert_int_equal(stat(path, &st), -1);
  mp_connection *c = NULL;
  assert_rc(mp_listener_accept(l, &c, 0), MP_ESTATE);
  assert_rc(mp_listener_fileno(l), MP_ESTATE);
  assert_rc(mp_client(&c, path, NULL, 1), MP_ENOENT);
  mp_listener_free(l);
}

static int free_copy_child(void *arg) {
  mp_listener_free(arg); /* a forked copy: must not remove the file */
  return 0;
}

static void forked_copy_keeps_socket_file(void **state) {
  (void)state;
  char name[64], path[128];
  snprintf(path, sizeof path, "/tmp/%s.sock",
           mp_test_name(name, sizeof name, "cp"));
  mp_listener *l = listen_at(path, NULL, 0, 0);
  mp_test_wait_exit(mp_test_fork(free_copy_child, l), 0, PEER_TIMEOUT);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  mp_connection *c = NULL, *s = NULL;
  assert_rc(mp_client(&c, path, NULL, PEER_TIMEOUT), 0);
  assert_rc(mp_listener_accept(l, &s, PEER_TIMEOUT), 0);
  mp_connection_free(c);
  mp_connection_free(s);
  mp_listener_free(l);
  assert_int_equal(stat(path, &st), -1);
}

static int accept_child(void *arg) {
  mp_listener *l = arg;
  mp_connection *c = NULL;
  if (mp_listener_accept(l, &c, PEER_TIMEOUT) != 0)
    return 1;
  char buf[16];
  size_t len = 0;
  int ok = mp_connection_poll(c, PEER_TIMEOUT) == 1 &&
           mp_connection_recv_bytes(c, buf, sizeof buf, &len) == 0 &&
           len == 5 && mp_connection_send_bytes(c, "bye", 0, 3) == 0;
  mp_connection_free(c);
  mp_listener_free(l);
  return ok ? 0 : 2;
}

static void forked_child_accepts_on_its_copy(void **state) {
  (void)state;
  mp_listener *l = listen_at("127.0.0.1:0", KEY, KEYLEN, 0);
  int stalled = raw_connect(l);
  mp_connection *c = NULL;
  assert_rc(mp_listener_accept(l, &c, 0.05), MP_ETIMEDOUT); /* pending */
  pid_t pid = mp_test_fork(accept_child, l);
  assert_rc(client_at(&c, mp_listener_address(l), KEY, KEYLEN, 0), 0);
  send_str(c, "hello");
  expect_str(c, "bye");
  mp_connection_free(c);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  /* The parent's unfinished handshake is still the parent's. */
  close(stalled);
  expect_auth_failure(l, "closed");
  mp_listener_free(l);
}

static void abstract_name(void **state) {
  (void)state;
  char name[64], addr[80];
  snprintf(addr, sizeof addr, "@%s", mp_test_name(name, sizeof name, "abs"));
  mp_listener *l = listen_at(addr, KEY, KEYLEN, 0);
  assert_string_equal(mp_listener_address(l), addr);
  pid_t pid = spawn_client(l, KEY, KEYLEN, 0);
  serve_one(l);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  mp_listener_free(l);
}

static void null_address_each_family(void **state) {
  (void)state;
  mp_family fams[] = {MP_FAMILY_DEFAULT, MP_FAMILY_UNIX, MP_FAMILY_INET};
  for (size_t i = 0; i < 3; i++) {
    mp_listener_opts o = {.family = fams[i]};
    mp_listener *l = NULL;
    assert_rc(mp_listener_new(&l, NULL, &o), 0);
    const char *a = mp_listener_address(l);
    if (fams[i] == MP_FAMILY_INET)
      assert_true(strncmp(a, "127.0.0.1:", 10) == 0 && atoi(a + 10) > 0);
    else
      assert_true(a[0] == '@');
    mp_connection *c = NULL, *s = NULL;
    assert_rc(mp_client(&c, a, NULL, PEER_TIMEOUT), 0);
    assert_rc(mp_listener_accept(l, &s, PEER_TIMEOUT), 0);
    send_str(c, "x");
    expect_str(s, "x");
    mp_connection_free(c);
    mp_connection_free(s);
    mp_listener_free(l);
  }
}

static void max_pending_full_waits_in_backlog(void **state) {
  (void)state;
  mp_listener_opts o = {
      .authkey = KEY, .authkey_len = KEYLEN, .max_pending = 1, .backlog = 4};
  o.auth.timeout = 0.3;
  mp_listener *l = NULL;
  assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), 0);
  int stalled = raw_connect(l);
  mp_connection *c = NULL;
  assert_rc(mp_listener_accept(l, &c, 0.05), MP_ETIMEDOUT); /* table full */
  pid_t pid = spawn_client(l, KEY, KEYLEN, 0);
  /* The real client waits in the backlog until the stalled one's
   * deadline frees the table. */
  expect_auth_failure(l, "in time");
  serve_one(l);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  close(stalled);
  mp_listener_free(l);
}

static void host_names_resolve(void **state) {
  (void)state;
  mp_listener *l = listen_at("localhost:0", KEY, KEYLEN, 0);
  const char *a = mp_listener_address(l);
  assert_true(strncmp(a, "127.", 4) == 0);
  char addr[MP_ADDRESS_MAX];
  snprintf(addr, sizeof addr, "localhost:%s", strrchr(a, ':') + 1);
  mp_connection *c = NULL, *s = NULL;
  static client_job j = {.key = KEY, .keylen = KEYLEN};
  snprintf(j.address, sizeof j.address, "%s", addr); /* by name */
  pid_t pid = mp_test_fork(client_child, &j);
  serve_one(l);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  /* An explicit family with a matching literal. */
  mp_client_opts co = {.family = MP_FAMILY_INET};
  mp_listener_free(l);
  l = listen_at("127.0.0.1:0", NULL, 0, 0);
  assert_rc(mp_client(&c, mp_listener_address(l), &co, PEER_TIMEOUT), 0);
  assert_rc(mp_listener_accept(l, &s, PEER_TIMEOUT), 0);
  mp_connection_free(c);
  mp_connection_free(s);
  mp_listener_free(l);
}

static void bad_arguments(void **state) {
  (void)state;
  mp_listener *l = NULL;
  mp_connection *c = NULL;
  assert_rc(mp_listener_new(NULL, "127.0.0.1:0", NULL), MP_EINVAL);
  assert_rc(mp_listener_new(&l, "", NULL), MP_EINVAL);
  assert_rc(mp_listener_new(&l, "1.2.3.4:99999", NULL), MP_EINVAL);
  char longpath[200];
  memset(longpath, 'a', sizeof longpath - 1);
  longpath[0] = '/';
  longpath[sizeof longpath - 1] = '\0';
  assert_rc(mp_listener_new(&l, longpath, NULL), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "bytes"));
  mp_listener_opts o = {.backlog = -1};
  assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), MP_EINVAL);
  o = (mp_listener_opts){.family = (mp_family)9};
  assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), MP_EINVAL);
  o = (mp_listener_opts){.authkey = KEY, .authkey_len = KEYLEN};
  o.auth.digest = "sha1";
  assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "sha1"));
  o = (mp_listener_opts){.authkey_len = 3};
  assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), MP_EINVAL);
  o = (mp_listener_opts){0};
  o.auth.timeout = NAN;
  assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), MP_EINVAL);
  assert_rc(mp_listener_new(&l, "no-such-host.invalid:80", NULL), MP_ENOENT);
  assert_null(l);
  /* An explicit family overrides the guess: "a:1" is a path for UNIX. */
  o = (mp_listener_opts){.family = MP_FAMILY_UNIX};
  assert_rc(mp_client(&c, "./no-such-dir/a:1", NULL, 1), MP_ENOENT);
  assert_rc(mp_client(NULL, "127.0.0.1:1", NULL, 1), MP_EINVAL);
  assert_rc(mp_client(&c, NULL, NULL, 1), MP_EINVAL);
  assert_rc(mp_client(&c, "127.0.0.1:1", NULL, NAN), MP_EINVAL);
  assert_null(c);

  l = listen_at("127.0.0.1:0", NULL, 0, 0);
  assert_rc(mp_listener_accept(NULL, &c, 0), MP_EINVAL);
  assert_rc(mp_listener_accept(l, NULL, 0), MP_EINVAL);
  assert_rc(mp_listener_accept(l, &c, NAN), MP_EINVAL);
  assert_rc(mp_listener_accept(l, &c, 0), MP_EAGAIN);
  double t0 = mp_test_now();
  assert_rc(mp_listener_accept(l, &c, 0.05), MP_ETIMEDOUT);
  assert_true(mp_test_now() - t0 >= 0.04);
  assert_true(mp_listener_fileno(l) >= 0);
  assert_rc(mp_listener_fileno(NULL), MP_EINVAL);
  assert_rc(mp_listener_close(NULL), MP_EINVAL);
  assert_string_equal(mp_listener_address(NULL), "");
  assert_string_equal(mp_listener_last_accepted(NULL), "");
  assert_int_equal(mp_listener_family(NULL), MP_FAMILY_DEFAULT);
  /* A port in use is refused. */
  mp_listener *l2 = NULL;
  assert_rc(mp_listener_new(&l2, mp_listener_address(l), NULL), MP_EEXIST);
  mp_listener_free(l);
  mp_listener_free(NULL);
}

static void connect_refused(void **state) {
  (void)state;
  mp_listener *l = listen_at("127.0.0.1:0", NULL, 0, 0);
  char addr[MP_ADDRESS_MAX];
  snprintf(addr, sizeof addr, "%s", mp_listener_address(l));
  mp_listener_free(l);
  mp_connection *c = NULL;
  assert_rc(mp_client(&c, addr, NULL, PEER_TIMEOUT), MP_ECONNREFUSED);
  assert_null(c);
}

/* ---- the handshake ------------------------------------------------------ */

static void no_key_either_side(void **state) {
  (void)state;
  mp_listener *l = listen_at("127.0.0.1:0", NULL, 0, 0);
  pid_t pid = spawn_client(l, NULL, 0, 0);
  serve_one(l);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  mp_listener_free(l);
}

static void empty_key_still_authenticates(void **state) {
  (void)state;
  /* As CPython 3.13: b'' is a key, and the handshake runs. */
  mp_listener *l = listen_at("127.0.0.1:0", "", 0, 0);
  pid_t pid = spawn_client(l, "", 0, 0);
  serve_one(l);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  pid = spawn_client(l, "x", 1, MP_EAUTH);
  expect_auth_failure(l, "authkeys differ");
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  mp_listener_free(l);
}

static void wrong_key_refused_both_sides(void **state) {
  (void)state;
  mp_listener *l = listen_at("127.0.0.1:0", KEY, KEYLEN, 0);
  pid_t pid = spawn_client(l, "wrong!", 6, MP_EAUTH);
  expect_auth_failure(l, "authkeys differ");
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  /* The listener goes on: the next client with the right key gets in. */
  pid = spawn_client(l, KEY, KEYLEN, 0);
  serve_one(l);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  mp_listener_free(l);
}

/* Sixteen keyed clients at once, each through its own handshake. */
static void many_clients_at_once(void **state) {
  (void)state;
  mp_listener_opts o = {.authkey = KEY, .authkey_len = KEYLEN, .backlog = 16};
  mp_listener *l = NULL;
  assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), 0);
  pid_t pids[16];
  for (int i = 0; i < 16; i++)
    pids[i] = spawn_client(l, KEY, KEYLEN, 0);
  for (int i = 0; i < 16; i++)
    serve_one(l);
  for (int i = 0; i < 16; i++)
    mp_test_wait_exit(pids[i], 0, PEER_TIMEOUT);
  mp_listener_free(l);
}

static void every_digest(void **state) {
  (void)state;
  const char *names[] = {"md5", "sha256", "sha384", "sha3_256", "sha3_384"};
  for (size_t i = 0; i < 5; i++) {
    mp_listener_opts o = {.authkey = KEY, .authkey_len = KEYLEN};
    o.auth.digest = names[i];
    mp_listener *l = NULL;
    assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), 0);
    pid_t pid = spawn_client(l, KEY, KEYLEN, 0);
    serve_one(l);
    mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
    mp_listener_free(l);
  }
}

/* A CPython 3.11 client: reads the challenge, replies with raw HMAC-MD5
 * over the whole payload, then challenges with 20 bytes and checks the
 * server's raw MD5 reply. */
static void legacy_md5_client_and_strict(void **state) {
  (void)state;
  for (int strict = 0; strict <= 1; strict++) {
    mp_listener_opts o = {.authkey = KEY, .authkey_len = KEYLEN};
    o.auth.strict = strict;
    mp_listener *l = NULL;
    assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), 0);
    int fd = raw_connect(l);
    mp_connection *s = NULL;
    /* The challenge leaves when accept takes the client. */
    assert_rc(mp_listener_accept(l, &s, 0.05), MP_ETIMEDOUT);
    unsigned char buf[300], mac[64];
    size_t n = read_frame(fd, buf, sizeof buf), ml;
    assert_int_equal(n, 11 + 8 + 40);
    assert_memory_equal(buf, "#CHALLENGE#{sha256}", 19);
    hmac("MD5", KEY, KEYLEN, buf + 11, n - 11, mac, &ml);
    assert_int_equal(ml, 16);
    write_frame(fd, mac, 16);
    if (strict) {
      expect_auth_failure(l, "strict");
      n = read_frame(fd, buf, sizeof buf);
      assert_memory_equal(buf, "#FAILURE#", 9);
    } else {
      assert_rc(mp_listener_accept(l, &s, 0.05), MP_ETIMEDOUT);
      n = read_frame(fd, buf, sizeof buf);
      assert_int_equal(n, 9);
      assert_memory_equal(buf, "#WELCOME#", 9);
      unsigned char nonce[31] = "#CHALLENGE#";
      for (int i = 0; i < 20; i++)
        nonce[11 + i] = (unsigned char)i;
      write_frame(fd, nonce, 31);
      assert_rc(mp_listener_accept(l, &s, 0.05), MP_ETIMEDOUT);
      n = read_frame(fd, buf, sizeof buf);
      hmac("MD5", KEY, KEYLEN, nonce + 11, 20, mac, &ml);
      assert_int_equal(n, 16);
      assert_memory_equal(buf, mac, 16);
      write_frame(fd, "#WELCOME#", 9);
      /* A message sent right after the handshake is not lost. */
      write_frame(fd, "early", 5);
      assert_rc(mp_listener_accept(l, &s, PEER_TIMEOUT), 0);
      expect_str(s, "early");
      mp_connection_free(s);
    }
    close(fd);
    mp_listener_free(l);
  }
}

/* The known bytes of WIRE.md 1.3: key "secret", nonce 0..19, answered by a
 * C client with raw MD5 7defa9cc... */
static int fake_legacy_server(void *arg) {
  int fd = ((int *)arg)[0];
  close(((int *)arg)[1]); /* the client's end: its close must reach us */
  unsigned char ch[31] = "#CHALLENGE#";
  for (int i = 0; i < 20; i++)
    ch[11 + i] = (unsigned char)i;
  unsigned char h[4] = {0, 0, 0, 31};
  if (write(fd, h, 4) != 4 || write(fd, ch, 31) != 31)
    return 1;
  unsigned char reply[20];
  if (recv(fd, reply, 20, MSG_WAITALL) != 20)
    return 2;
  static const unsigned char want[16] = {0x7d, 0xef, 0xa9, 0xcc, 0x46, 0xab,
                                         0xc3, 0x58, 0x33, 0x25, 0xd1, 0x7c,
                                         0xcd, 0xa7, 0x51, 0x90};
  if (memcmp(reply, "\0\0\0\x10", 4) != 0 || memcmp(reply + 4, want, 16) != 0)
    return 3;
  unsigned char w[13] = {0,   0,   0,   9,   '#', 'W', 'E',
                         'L', 'C', 'O', 'M', 'E', '#'};
  return write(fd, w, 13) == 13 ? 0 : 4;
}

static void answer_known_legacy_bytes(void **state) {
  (void)state;
  mp_connection *a = NULL, *b = NULL;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  int fd[2] = {mp_connection_fileno(b), mp_connection_fileno(a)};
  pid_t pid = mp_test_fork(fake_legacy_server, fd);
  assert_rc(mp_connection_answer_challenge(a, KEY, KEYLEN, NULL), 0);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  /* Strict refuses that legacy challenge. */
  pid = mp_test_fork(fake_legacy_server, fd);
  mp_auth_opts so = {.strict = 1, .timeout = 5};
  assert_rc(mp_connection_answer_challenge(a, KEY, KEYLEN, &so), MP_EAUTH);
  assert_non_null(strstr(mp_error_detail(), "strict"));
  mp_connection_free(a);
  mp_test_wait_exit(pid, 2, PEER_TIMEOUT);
  mp_connection_free(b);
}

static int deliver_answer_child(void *arg) {
  mp_connection *c = arg;
  /* The client's order: answer, then deliver. */
  int rc = mp_connection_answer_challenge(c, KEY, KEYLEN, NULL);
  if (rc == 0)
    rc = mp_connection_deliver_challenge(c, KEY, KEYLEN, NULL);
  return rc == 0 ? 0 : 1;
}

static void deliver_answer_on_connection(void **state) {
  (void)state;
  mp_connection *a = NULL, *b = NULL;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  pid_t pid = mp_test_fork(deliver_answer_child, b);
  assert_rc(mp_connection_deliver_challenge(a, KEY, KEYLEN, NULL), 0);
  assert_rc(mp_connection_answer_challenge(a, KEY, KEYLEN, NULL), 0);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  /* Errors. */
  assert_rc(mp_connection_deliver_challenge(NULL, KEY, KEYLEN, NULL),
            MP_EINVAL);
  assert_rc(mp_connection_answer_challenge(a, NULL, 3, NULL), MP_EINVAL);
  mp_auth_opts bad = {.digest = "crc32"};
  assert_rc(mp_connection_deliver_challenge(a, KEY, KEYLEN, &bad), MP_EINVAL);
  /* Nothing comes: the deadline ends the wait. */
  mp_auth_opts quick = {.timeout = 0.1};
  double t0 = mp_test_now();
  assert_rc(mp_connection_answer_challenge(a, KEY, KEYLEN, &quick),
            MP_ETIMEDOUT);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  /* A simplex pipe cannot do a handshake. */
  mp_connection *r = NULL, *w = NULL;
  assert_rc(mp_pipe(&r, &w, 0), 0);
  assert_rc(mp_connection_deliver_challenge(r, KEY, KEYLEN, NULL), MP_EBADF);
  mp_connection_free(r);
  mp_connection_free(w);
  mp_connection_free(b);
  assert_rc(mp_connection_deliver_challenge(a, KEY, KEYLEN, &quick),
            MP_ECLOSED);
  mp_connection_close(a);
  assert_rc(mp_connection_deliver_challenge(a, KEY, KEYLEN, NULL), MP_ESTATE);
  mp_connection_free(a);
}

/* ---- hostile peers ------------------------------------------------------ */

static void stalled_client_times_out(void **state) {
  (void)state;
  mp_listener *l = listen_at("127.0.0.1:0", KEY, KEYLEN, 0.2);
  int fd = raw_connect(l); /* connects, never answers */
  expect_auth_failure(l, "in time");
  close(fd);
  mp_listener_free(l);
}

static void stalled_client_does_not_block_others(void **state) {
  (void)state;
  mp_listener_opts o = {.authkey = KEY, .authkey_len = KEYLEN, .backlog = 8};
  mp_listener *l = NULL;
  assert_rc(mp_listener_new(&l, "127.0.0.1:0", &o), 0);
  int stalled[3];
  for (int i = 0; i < 3; i++)
    stalled[i] = raw_connect(l);
  pid_t pid = spawn_client(l, KEY, KEYLEN, 0);
  double t0 = mp_test_now();
  serve_one(l); /* the handshake default is 10 s: far longer than this */
  assert_true(mp_test_now() - t0 < mp_test_slack(3));
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  for (int i = 0; i < 3; i++)
    close(stalled[i]);
  /* The stalled ones now report, as closed peers. */
  for (int i = 0; i < 3; i++)
    expect_auth_failure(l, "closed");
  mp_listener_free(l);
}

static void oversized_reply(void **state) {
  (void)state;
  mp_listener *l = listen_at("127.0.0.1:0", KEY, KEYLEN, 0);
  int fd = raw_connect(l);
  unsigned char big[257];
  memset(big, 'A', sizeof big);
  write_frame(fd, big, sizeof big);
  expect_auth_failure(l, "257 bytes");
  close(fd);
  mp_listener_free(l);
}

static void huge_announced_length(void **state) {
  (void)state;
  mp_listener *l = listen_at("127.0.0.1:0", KEY, KEYLEN, 0);
  int fd = raw_connect(l);
  /* -1 and an 8-byte length of 2^62: refused before any payload. */
  unsigned char h[12] = {0xff, 0xff, 0xff, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0};
  write_all(fd, h, sizeof h);
  expect_auth_failure(l, "-1 bytes");
  close(fd);
  fd = raw_connect(l);
  unsigned char h2[4] = {0x7f, 0xff, 0xff, 0xff};
  write_all(fd, h2, 4);
  expect_auth_failure(l, "2147483647");
  close(fd);
  mp_listener_free(l);
}

static void wrong_digest_and_garbage(void **state) {
  (void)state;
  mp_listener *l = listen_at("127.0.0.1:0", KEY, KEYLEN, 0);
  unsigned char buf[300];
  /* A well-formed sha256 reply with a wrong MAC. */
  int fd = raw_connect(l);
  unsigned char reply[40] = "{sha256}";
  write_frame(fd, reply, 40);
  expect_auth_failure(l, "authkeys differ");
  assert_int_equal(read_frame(fd, buf, sizeof buf), 11 + 8 + 40);
  assert_int_equal(read_frame(fd, buf, sizeof buf), 9);
  assert_memory_equal(buf, "#FAILURE#", 9);
  close(fd);
  /* The right digest name with the wrong length. */
  fd = raw_connect(l);
  write_frame(fd, "{sha384}abc", 11);
  expect_auth_failure(l, "expected 48");
  close(fd);
  /* An unknown digest name, and plain garbage. */
  fd = raw_connect(l);
  write_frame(fd, "{sha1}0123456789abcdefghij", 26);
  expect_auth_failure(l, "no known {digest}");
  close(fd);
  fd = raw_connect(l);
  write_frame(fd, "hello", 5);
  expect_auth_failure(l, "no known {digest}");
  close(fd);
  mp_listener_free(l);
}

static void truncated_frames(void **state) {
  (void)state;
  mp_listener *l = listen_at("127.0.0.1:0", KEY, KEYLEN, 0);
  /* Half a header, then the peer leaves. */
  int fd = raw_connect(l);
  write_all(fd, "\0\0", 2);
  close(fd);
  expect_auth_failure(l, "closed");
  /* A header for 40 bytes, 10 of them, then the peer leaves. */
  fd = raw_connect(l);
  write_all(fd, "\0\0\0\x28{sha256}ab", 14);
  close(fd);
  expect_auth_failure(l, "closed");
  /* A header for 40 bytes, 10 of them, then silence: the deadline. */
  mp_listener_free(l);
  l = listen_at("127.0.0.1:0", KEY, KEYLEN, 0.2);
  fd = raw_connect(l);
  write_all(fd, "\0\0\0\x28{sha256}ab", 14);
  expect_auth_failure(l, "in time");
  close(fd);
  mp_listener_free(l);
}

typedef struct fake_server {
  int fd;
  int mode;
} fake_server;

static int fake_server_child(void *arg) {
  fake_server *f = arg;
  unsigned char ch[59] = "#CHALLENGE#{sha256}";
  switch (f->mode) {
  case 0: /* nothing at all: a listener without a key */
    sleep(5);
    return 0;
  case 1: { /* an oversized challenge */
    unsigned char h[4] = {0, 0, 0x10, 0};
    return write(f->fd, h, 4) == 4 ? 0 : 1;
  }
  case 2: /* not a challenge */
    return write(f->fd, "\0\0\0\x05hello", 9) == 9 ? 0 : 1;
  case 3: { /* a challenge, then #FAILURE# whatever the reply */
    unsigned char h[4] = {0, 0, 0, 59};
    if (write(f->fd, h, 4) != 4 || write(f->fd, ch, 59) != 59)
      return 1;
    unsigned char r[44];
    if (recv(f->fd, r, 44, MSG_WAITALL) != 44)
      return 2;
    return write(f->fd, "\0\0\0\x09#FAILURE#", 13) == 13 ? 0 : 3;
  }
  default: { /* a challenge with an unknown digest */
    memcpy(ch + 11, "{sha1}xx", 8);
    unsigned char h[4] = {0, 0, 0, 59};
    return write(f->fd, h, 4) == 4 && write(f->fd, ch, 59) == 59 ? 0 : 1;
  }
  }
}

static void hostile_servers(void **state) {
  (void)state;
  struct {
    int mode;
    int rc;
    const char *detail;
  } cases[] = {
      {0, MP_ETIMEDOUT, "in time"},       {1, MP_EAUTH, "4096 bytes"},
      {2, MP_EAUTH, "#CHALLENGE#"},       {3, MP_EAUTH, "refused our digest"},
      {4, MP_EAUTH, "no known {digest}"},
  };
  for (size_t i = 0; i < MP__ARRAY_SIZE(cases); i++) {
    mp_listener *l = listen_at("127.0.0.1:0", NULL, 0, 0);
    mp_connection *c = NULL;
    mp_client_opts co = {.authkey = KEY, .authkey_len = KEYLEN};
    co.auth.timeout = 0.3;
    static fake_server f;
    /* The client runs here; a child accepts (no key: the socket is handed
     * over at once) and plays the server. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      mp_connection *acc = NULL;
      if (mp_listener_accept(l, &acc, PEER_TIMEOUT) != 0)
        _exit(9);
      f.fd = mp_connection_fileno(acc);
      f.mode = cases[i].mode;
      _exit(fake_server_child(&f));
    }
    double t0 = mp_test_now();
    assert_rc(mp_client(&c, mp_listener_address(l), &co, PEER_TIMEOUT),
              cases[i].rc);
    assert_true(mp_test_now() - t0 < mp_test_slack(5));
    if (strstr(mp_error_detail(), cases[i].detail) == NULL)
      fail_msg("case %zu: detail '%s' lacks '%s'", i, mp_error_detail(),
               cases[i].detail);
    assert_null(c);
    kill(pid, SIGKILL);
    mp_test_wait(pid, PEER_TIMEOUT);
    mp_listener_free(l);
  }
}

/* ---- wait ---------------------------------------------------------------- */

static void wait_on_listener(void **state) {
  (void)state;
  mp_listener *l = listen_at("127.0.0.1:0", KEY, KEYLEN, 0);
  mp_waitable w[1] = {mp_waitable_listener(l)};
  size_t ready[1];
  assert_int_equal(mp_connection_wait(w, 1, 0, ready), 0);
  assert_int_equal(mp_connection_wait(w, 1, 0.05, ready), 0);
  pid_t pid = spawn_client(l, KEY, KEYLEN, 0);
  assert_int_equal(mp_connection_wait(w, 1, PEER_TIMEOUT, ready), 1);
  assert_int_equal(ready[0], 0);
  serve_one(l);
  mp_test_wait_exit(pid, 0, PEER_TIMEOUT);
  mp_listener_close(l);
  assert_int_equal(mp_connection_wait(w, 1, 0, ready), MP_ESTATE);
  mp_waitable nul = mp_waitable_listener(NULL);
  assert_int_equal(mp_connection_wait(&nul, 1, 0, ready), MP_EINVAL);
  mp_listener_free(l);
}

/* ---- the process authkey ------------------------------------------------- */

static int key_child(void *arg) {
  unsigned char k[MP_AUTHKEY_MAX];
  ssize_t n = mp_process_authkey(mp_current_process(), k, sizeof k);
  const unsigned char *want = arg;
  return n == want[0] && memcmp(k, want + 1, (size_t)n) == 0 ? 0 : 1;
}
MP_TARGET(key_child)

static void process_authkey(void **state) {
  (void)state;
  mp_process *me = mp_current_process();
  unsigned char k1[MP_AUTHKEY_MAX], k2[MP_AUTHKEY_MAX];
  assert_int_equal(mp_process_authkey(me, k1, sizeof k1), 32);
  assert_int_equal(mp_process_authkey(me, k2, sizeof k2), 32);
  assert_memory_equal(k1, k2, 32); /* drawn once */
  assert_int_equal(mp_process_authkey(me, k2, 31), MP_ETOOBIG);
  assert_int_equal(mp_process_authkey(NULL, k2, 32), MP_EINVAL);
  assert_int_equal(mp_process_authkey(me, NULL, 32), MP_EINVAL);
  assert_int_equal(mp_process_authkey(me, NULL, 0), MP_ETOOBIG);

  /* Each start method carries the creator's key; a key set on a child
   * before start is the one it gets. */
  mp_start_method methods[] = {MP_START_FORK, MP_START_SPAWN,
                               MP_START_FORKSERVER};
  for (size_t m = 0; m < 3; m++) {
    mp_context *ctx = NULL;
    assert_rc(mp_context_new(&ctx, methods[m]), 0);
    unsigned char want[1 + 32];
    want[0] = 32;
    memcpy(want + 1, k1, 32);
    mp_process_opts o = {.context = ctx, .arg_size = sizeof want};
    mp_process *p = NULL;
    assert_rc(mp_process_new(&p, key_child, want, &o), 0);
    unsigned char pk[64];
    assert_int_equal(mp_process_authkey(p, pk, sizeof pk), 32);
    assert_memory_equal(pk, k1, 32);
    assert_int_equal(mp_test_start_join(p), 0);
    assert_rc(mp_process_set_authkey(p, "x", 1), MP_ESTATE);
    mp_process_free(p);

    unsigned char want2[1 + 5] = {5, 'o', 't', 'h', 'e', 'r'};
    o.arg_size = sizeof want2;
    assert_rc(mp_process_new(&p, key_child, want2, &o), 0);
    assert_rc(mp_process_set_authkey(p, "other", 5), 0);
    assert_int_equal(mp_test_start_join(p), 0);
    mp_process_free(p);
    mp_context_free(ctx);
  }
  assert_rc(mp_process_set_authkey(NULL, "x", 1), MP_EINVAL);
  assert_rc(mp_process_set_authkey(me, NULL, 1), MP_EINVAL);
  unsigned char big[MP_AUTHKEY_MAX + 1] = {0};
  assert_rc(mp_process_set_authkey(me, big, sizeof big), MP_EINVAL);
  /* Setting this process's key changes what later children get. */
  assert_rc(mp_process_set_authkey(me, "mine", 4), 0);
  assert_int_equal(mp_process_authkey(me, k2, sizeof k2), 4);
  assert_memory_equal(k2, "mine", 4);
  mp_process *p = NULL;
  unsigned char want3[5] = {4, 'm', 'i', 'n', 'e'};
  assert_rc(mp_process_new(&p, key_child, want3, NULL), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  if (mp_parent_process() == NULL)
    assert_rc(mp_process_set_authkey(me, k1, 32), 0);
}

static void allocation_failures(void **state) {
  (void)state;
  for (long n = 1; n <= 6; n++) {
    mp_listener *l = NULL;
    mp_listener_opts o = {.authkey = KEY, .authkey_len = KEYLEN};
    mp__alloc_fail_after(n);
    int rc = mp_listener_new(&l, "127.0.0.1:0", &o);
    mp__alloc_fail_after(0);
    if (rc == 0) {
      mp_listener_free(l);
      break;
    }
    assert_rc(rc, MP_ENOMEM);
    assert_null(l);
  }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(tcp_ipv4_with_key),
    cmocka_unit_test(tcp_ipv6),
    cmocka_unit_test(unix_path_removed_on_close),
    cmocka_unit_test(forked_copy_keeps_socket_file),
    cmocka_unit_test(forked_child_accepts_on_its_copy),
    cmocka_unit_test(abstract_name),
    cmocka_unit_test(null_address_each_family),
    cmocka_unit_test(max_pending_full_waits_in_backlog),
    cmocka_unit_test(host_names_resolve),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(connect_refused),
    cmocka_unit_test(no_key_either_side),
    cmocka_unit_test(empty_key_still_authenticates),
    cmocka_unit_test(wrong_key_refused_both_sides),
    cmocka_unit_test(many_clients_at_once),
    cmocka_unit_test(every_digest),
    cmocka_unit_test(legacy_md5_client_and_strict),
    cmocka_unit_test(answer_known_legacy_bytes),
    cmocka_unit_test(deliver_answer_on_connection),
    cmocka_unit_test(stalled_client_times_out),
    cmocka_unit_test(stalled_client_does_not_block_others),
    cmocka_unit_test(oversized_reply),
    cmocka_unit_test(huge_announced_length),
    cmocka_unit_test(wrong_digest_and_garbage),
    cmocka_unit_test(truncated_frames),
    cmocka_unit_test(hostile_servers),
    cmocka_unit_test(wait_on_listener),
    cmocka_unit_test(process_authkey),
    cmocka_unit_test(allocation_failures),
};

int main(int argc, char **argv) {
  mp_child_main(argc, argv);
  return mp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
