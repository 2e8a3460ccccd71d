/* test_interop_manager.c - managers against real CPython 3.11, 3.12 and
 * 3.13, in both roles (G-MGR-7: stock Python SyncManager clients use the C
 * server; the C client uses a Python SyncManager server). The Python side
 * is tests/interop/manager_peer.py. A version that is not installed is
 * reported as skipped. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h" /* mp__fail: a method's error text */
#include "manager_fixture.h"

#define PEER MP_SOURCE_DIR "/tests/interop/manager_peer.py"

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

/* run_peer starts `python manager_peer.py role address`; with out non-NULL
 * its stdout is a pipe whose read end goes to *out. */
static pid_t run_peer(const char *python, const char *role,
                      const char *address, int *out) {
  int p[2] = {-1, -1};
  if (out) assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (out && dup2(p[1], 1) < 0) _exit(126);
    execl(python, python, PEER, role, address, (char *)NULL);
    _exit(127);
  }
  if (out) {
    close(p[1]);
    *out = p[0];
  }
  peer_pid = pid;
  return pid;
}

/* Counter: a type this C program serves (register), that the Python
 * client creates with m.Counter(5) after SyncManager.register('Counter'). */
static int counter_create(void **state, const mp_obj *args, const mp_obj *kwds, void *ctx) {
  (void)kwds;
  (void)ctx;
  int64_t *c = calloc(1, sizeof *c);
  if (!c) return MP_ENOMEM;
  if (mp_obj_len(args) > 0) mp_obj_get_int(mp_obj_list_get(args, 0), c);
  *state = c;
  return 0;
}
static void counter_destroy(void *state, void *ctx) {
  (void)ctx;
  free(state);
}
static int counter_increment(void *state, const mp_obj *args, const mp_obj *kwds,
                             mp_obj **result, void *ctx) {
  (void)kwds;
  (void)ctx;
  int64_t by = 1;
  if (mp_obj_len(args) > 0 && mp_obj_get_int(mp_obj_list_get(args, 0), &by) != 0)
    return mp__fail(MP_EINVAL, "by must be an int");
  if (by < 0) return mp__fail(MP_EVALUE, "by must be >= 0");
  *(int64_t *)state += by;
  *result = mp_obj_int(*(int64_t *)state);
  return 0;
}
static const mp_manager_method counter_methods[] = {{"increment", counter_increment}};
static const mp_manager_type counter_type = {.create = counter_create,
                                             .destroy = counter_destroy,
                                             .methods = counter_methods,
                                             .n_methods = 1};
static const mp_manager_registration counter_reg[] = {{"Counter", &counter_type}};

static void c_server_python_client(const char *version, const char *address) {
  const char *py = mp_test_python(version);
  if (!py) mp_test_skip("CPython %s is not installed", version);
  mp_manager_opts o = {.address = address, .authkey = "secret", .authkey_len = 6,
                       .types = counter_reg, .n_types = 1};
  mp_manager *m;
  assert_rc(mp_manager_start(&m, &o), 0);
  pid_t pid = run_peer(py, "client", mp_manager_address(m), NULL);
  mp_test_wait_exit(pid, 0, mp_test_slack(60));
  peer_pid = 0;
  mp_manager_free(m);
}

static void unix_path(char *buf, size_t cap) {
  snprintf(buf, cap, "/tmp/mp-test-%d-mgr.sock", (int)getpid());
}

static void c_server_python311_client(void **state) {
  (void)state;
  char a[108];
  unix_path(a, sizeof a);
  c_server_python_client("3.11", a);
  c_server_python_client("3.11", "127.0.0.1:0");
}
static void c_server_python312_client(void **state) {
  (void)state;
  char a[108];
  unix_path(a, sizeof a);
  c_server_python_client("3.12", a);
  c_server_python_client("3.12", "127.0.0.1:0");
}
static void c_server_python313_client(void **state) {
  (void)state;
  char a[108];
  unix_path(a, sizeof a);
  c_server_python_client("3.13", a);
  c_server_python_client("3.13", "127.0.0.1:0");
}

static void python_server_c_client(const char *version, const char *address) {
  const char *py = mp_test_python(version);
  if (!py) mp_test_skip("CPython %s is not installed", version);
  int fd;
  pid_t pid = run_peer(py, "server", address, &fd);
  char line[300] = {0};
  size_t n = 0;
  while (n < sizeof line - 1) {
    ssize_t r = read(fd, line + n, 1);
    if (r <= 0 || line[n] == '\n') break;
    n++;
  }
  line[n] = 0;
  close(fd);
  assert_true(n > 0);
  mp_manager_opts o = {.address = line, .authkey = "secret", .authkey_len = 6};
  mp_manager *m;
  assert_rc(mp_manager_connect(&m, &o), 0);
  mp_proxy *d, *l, *ns, *q, *lk;
  assert_rc(mp_manager_dict(m, &d), 0);
  assert_rc(mp_proxy_setitem(d, S("a"), mp_obj_list_pack(3, I(1), mp_obj_float(2.5), mp_obj_none())), 0);
  mp_obj *v = NULL;
  assert_rc(mp_proxy_getitem(d, S("a"), &v), 0);
  check_repr(v, "[1, 2.5, None]");
  assert_rc(mp_proxy_getitem(d, S("zz"), &v), MP_ENOENT);
  assert_non_null(strstr(mp_error_detail(), "KeyError('zz')"));
  assert_int_equal(mp_proxy_len(d), 1);
  assert_rc(mp_proxy_call(d, "keys", NULL, NULL, &v), 0);
  check_repr(v, "['a']");
  /* the typed calls of Python's proxy methods, on Python's server */
  assert_int_equal(mp_proxy_contains(d, S("a")), 1);
  assert_int_equal(mp_proxy_contains(d, S("zz")), 0);
  assert_rc(mp_proxy_dict_get(d, S("zz"), I(7), &v), 0);
  check_repr(v, "7");
  assert_rc(mp_proxy_update(d, mp_obj_list_pack(1, mp_obj_tuple_pack(2, S("b"), I(2)))), 0);
  assert_rc(mp_proxy_items(d, &v), 0);
  check_repr(v, "[('a', [1, 2.5, None]), ('b', 2)]");
  mp_obj *k = NULL;
  assert_rc(mp_proxy_popitem(d, &k, &v), 0);
  check_repr(k, "'b'");
  check_repr(v, "2");
  mp_proxy *tl, *tq, *tb;
  assert_rc(mp_manager_list(m, &tl), 0);
  assert_rc(mp_proxy_extend(tl, mp_obj_list_pack(3, I(3), I(1), I(2))), 0);
  assert_rc(mp_proxy_insert(tl, 0, I(0)), 0);
  assert_int_equal(mp_proxy_index(tl, I(1)), 2);
  assert_rc((int)mp_proxy_index(tl, I(9)), MP_EVALUE);
  assert_int_equal(mp_proxy_count(tl, I(3)), 1);
  assert_rc(mp_proxy_remove(tl, I(0)), 0);
  assert_rc(mp_proxy_sort(tl, 1), 0);
  assert_rc(mp_proxy_reverse(tl), 0);
  assert_rc(mp_proxy_getvalue(tl, &v), 0);
  check_repr(v, "[1, 2, 3]");
  assert_rc(mp_manager_queue(m, 1, &tq), 0);
  assert_int_equal(mp_proxy_empty(tq), 1);
  assert_int_equal(mp_proxy_full(tq), 0);
  assert_rc(mp_manager_barrier(m, 2, &tb), 0);
  assert_int_equal(mp_proxy_parties(tb), 2);
  assert_int_equal(mp_proxy_n_waiting(tb), 0);
  assert_int_equal(mp_proxy_broken(tb), 0);
  mp_proxy_free(tl);
  mp_proxy_free(tq);
  mp_proxy_free(tb);
  assert_rc(mp_manager_list(m, &l), 0);
  assert_rc(mp_proxy_append(l, S("x")), 0);
  assert_rc(mp_proxy_getitem(l, I(5), &v), MP_ERANGE);
  assert_rc(mp_proxy_getvalue(l, &v), 0);
  check_repr(v, "['x']");
  assert_rc(mp_manager_namespace(m, &ns), 0);
  assert_rc(mp_proxy_setattr(ns, "x", I(1)), 0);
  assert_rc(mp_proxy_getattr(ns, "x", &v), 0);
  check_repr(v, "1");
  assert_rc(mp_proxy_getattr(ns, "nope", &v), MP_ENOENT);
  /* Python's server sends a Namespace and a managers.Value for
   * _getvalue(); the C client reads them as plain values */
  assert_rc(mp_proxy_getvalue(ns, &v), 0);
  check_repr(v, "{'x': 1}");
  mp_proxy *val;
  assert_rc(mp_manager_value(m, "i", I(4), &val), 0);
  assert_rc(mp_proxy_getvalue(val, &v), 0);
  check_repr(v, "4");
  mp_proxy_free(val);
  mp_proxy *arr; /* Python's server sends an array.array: read as a list */
  assert_rc(mp_manager_array(m, "h", mp_obj_list_pack(2, I(-2), I(300)), &arr), 0);
  assert_rc(mp_proxy_getvalue(arr, &v), 0);
  check_repr(v, "[-2, 300]");
  mp_proxy_free(arr);
  assert_rc(mp_manager_queue(m, 0, &q), 0);
  assert_rc(mp_proxy_put(q, S("job"), MP_FOREVER), 0);
  assert_rc(mp_proxy_get(q, &v, 5), 0);
  check_repr(v, "'job'");
  assert_rc(mp_proxy_get(q, &v, 0.05), MP_ETIMEDOUT);
  assert_rc(mp_manager_lock(m, &lk), 0);
  assert_rc(mp_proxy_acquire(lk, MP_FOREVER), 0);
  assert_rc(mp_proxy_acquire(lk, 0), MP_EAGAIN);
  assert_rc(mp_proxy_release(lk), 0);
  mp_proxy_free(d);
  mp_proxy_free(l);
  mp_proxy_free(ns);
  mp_proxy_free(q);
  mp_proxy_free(lk);
  assert_rc(mp_manager_shutdown(m), 0);
  mp_manager_free(m);
  mp_test_wait_exit(pid, 0, mp_test_slack(30));
  peer_pid = 0;
}

static void python311_server_c_client(void **state) {
  (void)state;
  char a[108];
  unix_path(a, sizeof a);
  python_server_c_client("3.11", a);
  python_server_c_client("3.11", "127.0.0.1:0");
}
static void python312_server_c_client(void **state) {
  (void)state;
  char a[108];
  unix_path(a, sizeof a);
  python_server_c_client("3.12", a);
  python_server_c_client("3.12", "127.0.0.1:0");
}
static void python313_server_c_client(void **state) {
  (void)state;
  char a[108];
  unix_path(a, sizeof a);
  python_server_c_client("3.13", a);
  python_server_c_client("3.13", "127.0.0.1:0");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(c_server_python311_client, kill_peer),
    cmocka_unit_test_teardown(c_server_python312_client, kill_peer),
    cmocka_unit_test_teardown(c_server_python313_client, kill_peer),
    cmocka_unit_test_teardown(python311_server_c_client, kill_peer),
    cmocka_unit_test_teardown(python312_server_c_client, kill_peer),
    cmocka_unit_test_teardown(python313_server_c_client, kill_peer),
};

MP_TEST_MAIN(tests)
