/* test_interop_obj.c - Python's conn.send/recv against mp_connection_send
 * and mp_connection_recv, with each CPython 3.11, 3.12 and 3.13 that is
 * installed (a missing one is reported skipped). The child execs that
 * Python with tests/interop/obj_peer.py, which wraps its end of a Pipe in
 * multiprocessing.connection.Connection:
 *   py2c     Python sends nested values with conn.send and with pickle
 *            protocols 2 to 5; C reads each, checks its repr against
 *            Python's, and sends it back; Python checks what it reads.
 *   c2py     C sends values; Python's conn.recv() reads them and checks
 *            repr() against C's mp_obj_repr.
 *   manager  the manager protocol's objects (Token, KeyError, slice, reply
 *            tuples) read by C through mp_pickle_allow_manager and
 *            written back.
 *   hostile  a pickle that would run os.system is refused with MP_EPROTO
 *            and the stream stays in step. */
#define _GNU_SOURCE
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PEER MP_SOURCE_DIR "/tests/interop/obj_peer.py"
#define PEER_TIMEOUT 60.0
#define PEER_FD 10

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

/* start_peer runs `python obj_peer.py mode PEER_FD` with the other end of
 * a new Pipe; returns this side's end. Skips when the version is absent. */
static mp_connection *start_peer(const char *version, const char *mode) {
  const char *py = mp_test_python(version);
  if (py == NULL)
    mp_test_skip("CPython %s is not installed", version);
  mp_connection *mine, *theirs;
  assert_rc(mp_pipe(&mine, &theirs, 1), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (dup2(mp_connection_fileno(theirs), PEER_FD) < 0)
      _exit(126);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", PEER_FD);
    execl(py, py, PEER, mode, fd, (char *)NULL);
    _exit(127);
  }
  peer_pid = pid;
  mp_connection_free(theirs);
  return mine;
}

static void finish_peer(mp_connection *c) {
  mp_test_wait_exit(peer_pid, 0, PEER_TIMEOUT);
  peer_pid = 0;
  mp_connection_free(c);
}

static void *recv_bytes(mp_connection *c, size_t *len) {
  if (mp_connection_poll(c, PEER_TIMEOUT) != 1)
    fail_msg("python peer sent nothing within %.0f s", PEER_TIMEOUT);
  void *p = NULL;
  assert_rc(mp_connection_recv_bytes_alloc(c, &p, len, 16 << 20), 0);
  return p;
}

static void py2c(const char *version) {
  mp_connection *c = start_peer(version, "py2c");
  int n = 0;
  for (;;) {
    size_t len;
    char *msg = recv_bytes(c, &len);
    if (len == 3 && memcmp(msg, "end", 3) == 0) {
      free(msg);
      break;
    }
    mp_obj *v = NULL;
    int rc = mp_pickle_loads(msg, len, &v, NULL);
    if (rc != 0)
      fail_msg("message %d: %s", n, mp_error_message(rc));
    free(msg);
    char *want = recv_bytes(c, &len);
    want = realloc(want, len + 1);
    want[len] = '\0';
    char *got = mp_obj_repr(v);
    if (strcmp(got, want) != 0)
      fail_msg("message %d: C reads %.200s, Python wrote %.200s", n, got,
               want);
    assert_rc(mp_connection_send(c, v), 0);
    free(got);
    free(want);
    mp_obj_free(v);
    n++;
  }
  assert_true(n >= 80);
  finish_peer(c);
}

static mp_obj *c_value(int k) {
  switch (k) {
  case 0:
    return mp_obj_list_pack(3, mp_obj_int(42), mp_obj_none(),
                            mp_obj_str("hello"));
  case 1: {
    mp_obj *d = mp_obj_dict();
    mp_obj_dict_set_str(d, "id", mp_obj_int(7));
    mp_obj_dict_set_str(d, "name", mp_obj_str("yuan"));
    mp_obj_dict_set_str(d, "tags", mp_obj_list_pack(3, mp_obj_int(1),
                                                     mp_obj_float(2.5),
                                                     mp_obj_none()));
    mp_obj_dict_set(d, mp_obj_tuple_pack(2, mp_obj_int(1), mp_obj_str("a")),
                    mp_obj_tuple_pack(1, mp_obj_bytes("\x00\xff", 2)));
    mp_obj_dict_set(d, mp_obj_none(), mp_obj_bool(0));
    mp_obj_dict_set(d, mp_obj_float(2.5), mp_obj_dict());
    return d;
  }
  case 2:
    return mp_obj_list_pack(8, mp_obj_int(INT64_MAX), mp_obj_int(INT64_MIN),
                            mp_obj_int(-129), mp_obj_int(65536),
                            mp_obj_float(1e16), mp_obj_float(1e-5),
                            mp_obj_float(-0.0), mp_obj_float(INFINITY));
  case 3:
    return mp_obj_tuple_pack(4, mp_obj_str("it's"), mp_obj_str("a\tb\\\n"),
                             mp_obj_str("\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"),
                             mp_obj_bytes("'\"", 2));
  case 4: {
    mp_obj *deep = mp_obj_list();
    for (int i = 0; i < 200; i++)
      deep = mp_obj_list_pack(1, deep);
    return deep;
  }
  case 5: {
    mp_obj *l = mp_obj_list();
    for (int i = 0; i < 3000; i++)
      mp_obj_list_append(l, mp_obj_int(i * 1000003LL));
    return l;
  }
  default:
    return NULL;
  }
}

static void c2py(const char *version) {
  mp_connection *c = start_peer(version, "c2py");
  for (int k = 0;; k++) {
    mp_obj *v = c_value(k);
    if (v == NULL)
      break;
    char *r = mp_obj_repr(v);
    assert_rc(mp_connection_send(c, v), 0);
    assert_rc(mp_connection_send_bytes(c, r, 0, strlen(r)), 0);
    free(r);
    mp_obj_free(v);
  }
  assert_rc(mp_connection_send_bytes(c, "end", 0, 3), 0);
  finish_peer(c);
}

static void manager(const char *version) {
  mp_connection *c = start_peer(version, "manager");
  mp_pickle_load_opts o = {.allow = mp_pickle_allow_manager};
  const char *want[] = {
      "multiprocessing.managers.Token() with state ('dict', '/tmp/x.sock', "
      "'7f00')",
      "multiprocessing.managers.Token() with state ('Value', ('127.0.0.1', "
      "5000), 'ab')",
      "KeyError('missing')", "slice(1, 3, None)", "('#RETURN', [1, 2])",
      "('#ERROR', ValueError('bad', 2))",
      "('#PROXY', (('get', 'set'), multiprocessing.managers.Token() with "
      "state ('dict', '/tmp/x.sock', '7f00')))"};
  for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
    assert_rc(mp_connection_poll(c, PEER_TIMEOUT), 1);
    mp_obj *v;
    int rc = mp_connection_recv_ex(c, &v, 1 << 20, &o);
    if (rc != 0)
      fail_msg("object %zu: %s", k, mp_error_message(rc));
    char *r = mp_obj_repr(v);
    assert_string_equal(r, want[k]);
    free(r);
    assert_rc(mp_connection_send(c, v), 0);
    mp_obj_free(v);
  }
  finish_peer(c);
}

static void hostile(const char *version) {
  mp_connection *c = start_peer(version, "hostile");
  mp_obj *v = NULL;
  assert_rc(mp_connection_poll(c, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv(c, &v), MP_EPROTO);
  assert_non_null(strstr(mp_error_detail(), "STACK_GLOBAL"));
  assert_non_null(strstr(mp_error_detail(), "system"));
  assert_null(v);
  assert_rc(mp_connection_poll(c, PEER_TIMEOUT), 1);
  assert_rc(mp_connection_recv(c, &v), 0);
  char *r = mp_obj_repr(v);
  assert_string_equal(r, "[42, None, 'hello']");
  free(r);
  mp_obj_free(v);
  mp_obj *ok = mp_obj_str("ok");
  assert_rc(mp_connection_send(c, ok), 0);
  mp_obj_free(ok);
  finish_peer(c);
}

#define PER_VERSION(fn)                                                      \
  static void fn##_311(void **s) { (void)s; fn("3.11"); }                   \
  static void fn##_312(void **s) { (void)s; fn("3.12"); }                   \
  static void fn##_313(void **s) { (void)s; fn("3.13"); }
PER_VERSION(py2c)
PER_VERSION(c2py)
PER_VERSION(manager)
PER_VERSION(hostile)

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(py2c_311, kill_peer),
    cmocka_unit_test_teardown(py2c_312, kill_peer),
    cmocka_unit_test_teardown(py2c_313, kill_peer),
    cmocka_unit_test_teardown(c2py_311, kill_peer),
    cmocka_unit_test_teardown(c2py_312, kill_peer),
    cmocka_unit_test_teardown(c2py_313, kill_peer),
    cmocka_unit_test_teardown(manager_311, kill_peer),
    cmocka_unit_test_teardown(manager_312, kill_peer),
    cmocka_unit_test_teardown(manager_313, kill_peer),
    cmocka_unit_test_teardown(hostile_311, kill_peer),
    cmocka_unit_test_teardown(hostile_312, kill_peer),
    cmocka_unit_test_teardown(hostile_313, kill_peer),
};

MP_TEST_MAIN(tests)
