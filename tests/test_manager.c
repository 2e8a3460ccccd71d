/* test_manager.c - managers: a C server started with mp_manager_start (or
 * served in this process) and the C client's proxies. Every proxy method
 * and its Python exception (as a code and a detail), the atomic operations
 * (G-MGR-1: an atomic add from ten processes loses no update), crash safety
 * (G-MGR-2: a client that dies holding a Lock releases it; G-MGR-3: a
 * client that dies waiting on a Barrier or Condition hangs nobody; G-MGR-4:
 * a server that dies wakes its clients with MP_ECLOSED), concurrency
 * (G-MGR-5: a blocked call in one client never stalls another), security
 * (G-MGR-6: nothing is read before the handshake, a malformed request
 * closes only its connection, a method not exposed is refused), the
 * register API, nested proxies and proxies inherited by forked children. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "manager/client_internal.h"
#include "manager_fixture.h"

static mp_obj *call1(mp_proxy *p, const char *m, mp_obj *args) {
  mp_obj *r = NULL;
  assert_rc(mp_proxy_call(p, m, args, NULL, &r), 0);
  return r;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void start_and_shutdown(void **state) {
  (void)state;
  assert_non_null(mp_manager_address(M));
  assert_true(mp_manager_pid(M) > 0);
  char path[300];
  snprintf(path, sizeof path, "%s", mp_manager_address(M));
  assert_int_equal(access(path, F_OK), 0);
  assert_rc(mp_manager_shutdown(M), 0);
  assert_int_equal(access(path, F_OK), -1); /* the socket file is gone */
  assert_rc(mp_manager_shutdown(M), 0); /* idempotent */
  mp_proxy *d = NULL;
  assert_rc(mp_manager_dict(M, &d), MP_ECLOSED);
  assert_null(d);
}

static void bad_arguments(void **state) {
  (void)state;
  mp_manager *m = NULL;
  assert_rc(mp_manager_start(NULL, NULL), MP_EINVAL);
  assert_rc(mp_manager_connect(&m, NULL), MP_EINVAL);
  mp_manager_opts o = {.address = ""};
  assert_rc(mp_manager_connect(&m, &o), MP_EINVAL);
  assert_null(m);
  mp_manager_free(NULL);
  mp_proxy_free(NULL);
  mp_manager_server_free(NULL);
  mp_proxy *p = NULL;
  assert_rc(mp_manager_create(M, "nosuchtype", NULL, NULL, &p), MP_EPROTO);
  check_detail("unknown typeid");
  assert_null(p);
  assert_rc(mp_manager_dict(M, &p), 0);
  assert_rc(mp_proxy_get(p, NULL, 1), MP_EINVAL);
  mp_obj *out = NULL;
  assert_rc(mp_proxy_get(p, &out, NAN), MP_EINVAL);
  assert_rc(mp_proxy_acquire(p, NAN), MP_EINVAL);
  assert_rc(mp_proxy_call(p, "get", mp_obj_list(), NULL, NULL), MP_EINVAL);
  mp_proxy_free(p);
}

static void connect_refused_and_wrong_key(void **state) {
  (void)state;
  mp_manager *m = NULL;
  mp_manager_opts o = {.address = "/tmp/mp-no-such-manager.sock"};
  int rc = mp_manager_connect(&m, &o);
  assert_true(rc == -ENOENT || rc == -ECONNREFUSED);
  o.address = mp_manager_address(M);
  o.authkey = "wrong";
  o.authkey_len = 5;
  o.timeout = 2;
  assert_rc(mp_manager_connect(&m, &o), MP_EAUTH);
  assert_null(m);
}

/* ---- dict ----------------------------------------------------------------- */

static void dict_methods(void **state) {
  (void)state;
  mp_proxy *d;
  assert_rc(mp_manager_dict(M, &d), 0);
  assert_string_equal(mp_proxy_typeid(d), "dict");
  assert_rc(mp_proxy_setitem(d, S("a"), I(1)), 0);
  assert_rc(mp_proxy_setitem(d, S("b"), mp_obj_list_pack(3, I(1), mp_obj_float(2.5), mp_obj_none())), 0);
  assert_int_equal(mp_proxy_len(d), 2);
  mp_obj *v = NULL;
  assert_rc(mp_proxy_getitem(d, S("b"), &v), 0);
  check_repr(v, "[1, 2.5, None]");
  assert_rc(mp_proxy_getitem(d, S("missing"), &v), MP_ENOENT);
  check_detail("KeyError('missing')");
  assert_rc(mp_proxy_getitem(d, mp_obj_list(), &v), MP_EINVAL);
  check_detail("unhashable");
  check_repr(call1(d, "__contains__", mp_obj_tuple_pack(1, S("a"))), "True");
  check_repr(call1(d, "get", mp_obj_tuple_pack(2, S("zz"), I(7))), "7");
  check_repr(call1(d, "get", mp_obj_tuple_pack(1, S("zz"))), "None");
  check_repr(call1(d, "keys", NULL), "['a', 'b']");
  check_repr(call1(d, "values", NULL), "[1, [1, 2.5, None]]");
  check_repr(call1(d, "items", NULL), "[('a', 1), ('b', [1, 2.5, None])]");
  check_repr(call1(d, "copy", NULL), "{'a': 1, 'b': [1, 2.5, None]}");
  assert_rc(mp_proxy_getvalue(d, &v), 0);
  check_repr(v, "{'a': 1, 'b': [1, 2.5, None]}");
  char *r = NULL;
  assert_rc(mp_proxy_repr(d, &r), 0);
  assert_string_equal(r, "{'a': 1, 'b': [1, 2.5, None]}");
  free(r);
  assert_rc(mp_proxy_delitem(d, S("b")), 0);
  assert_rc(mp_proxy_delitem(d, S("b")), MP_ENOENT);
  mp_obj *upd = mp_obj_dict();
  mp_obj_dict_set_str(upd, "c", I(3));
  assert_rc(mp_proxy_call(d, "update", mp_obj_tuple_pack(1, upd), NULL, NULL), 0);
  mp_obj *kw = mp_obj_dict();
  mp_obj_dict_set_str(kw, "e", I(5));
  assert_rc(mp_proxy_call(d, "update", NULL, kw, NULL), 0);
  check_repr(call1(d, "setdefault", mp_obj_tuple_pack(2, S("d"), I(4))), "4");
  check_repr(call1(d, "setdefault", mp_obj_tuple_pack(2, S("d"), I(9))), "4");
  check_repr(call1(d, "pop", mp_obj_tuple_pack(1, S("a"))), "1");
  check_repr(call1(d, "pop", mp_obj_tuple_pack(2, S("a"), I(0))), "0");
  assert_rc(mp_proxy_call(d, "pop", mp_obj_tuple_pack(1, S("a")), NULL, NULL), MP_ENOENT);
  check_repr(call1(d, "popitem", NULL), "('d', 4)");
  assert_rc(mp_proxy_call(d, "clear", NULL, NULL, NULL), 0);
  assert_int_equal(mp_proxy_len(d), 0);
  assert_rc(mp_proxy_call(d, "popitem", NULL, NULL, NULL), MP_ENOENT);
  check_detail("dictionary is empty");
  /* bad arguments raise TypeError */
  assert_rc(mp_proxy_call(d, "get", NULL, NULL, NULL), MP_EINVAL);
  check_detail("missing required argument");
  kw = mp_obj_dict();
  mp_obj_dict_set_str(kw, "bogus", I(1));
  assert_rc(mp_proxy_call(d, "get", mp_obj_tuple_pack(1, S("k")), kw, NULL), MP_EINVAL);
  check_detail("unexpected keyword");
  mp_proxy_free(d);
}

static void dict_iter_is_a_proxy(void **state) {
  (void)state;
  mp_proxy *d, *it;
  assert_rc(mp_manager_dict(M, &d), 0);
  assert_rc(mp_proxy_setitem(d, S("x"), I(1)), 0);
  mp_obj *v = NULL;
  assert_rc(mp_proxy_call(d, "__iter__", NULL, NULL, &v), 0);
  assert_rc(mp_proxy_from_obj(M, v, &it), 0);
  mp_obj_free(v);
  assert_string_equal(mp_proxy_typeid(it), "Iterator");
  check_repr(call1(it, "__next__", NULL), "'x'");
  assert_rc(mp_proxy_call(it, "__next__", NULL, NULL, NULL), MP_ENOENT);
  check_detail("StopIteration");
  mp_proxy_free(it);
  mp_proxy_free(d);
  /* the iterator's creation reference was adopted, so nothing is left */
  mp_obj *n = NULL;
  assert_rc(mp__mgr_control(M, "number_of_objects", NULL, &n), 0);
  check_repr(n, "0");
}

static void allocation_failures(void **state) {
  (void)state;
  /* Every allocation of create, call and connect failing in turn: an
   * error, nothing left in *out, no leak (ASan), and the next call works. */
  for (long n = 1; n < 200; n++) {
    mp_proxy *p = NULL;
    mp__alloc_fail_after(n);
    int rc = mp_manager_dict(M, &p);
    mp__alloc_fail_after(0);
    if (rc) {
      assert_null(p);
      continue;
    }
    mp__alloc_fail_after(n);
    rc = mp_proxy_setitem(p, S("k"), mp_obj_list_pack(2, I(1), S("v")));
    mp__alloc_fail_after(0);
    mp_obj *v = NULL;
    mp__alloc_fail_after(n);
    rc = mp_proxy_getitem(p, S("k"), &v);
    mp__alloc_fail_after(0);
    mp_obj_free(v);
    mp_proxy_free(p);
  }
  for (long n = 1; n < 60; n++) {
    mp_manager *m = NULL;
    mp_manager_opts o = {.address = mp_manager_address(M)};
    mp__alloc_fail_after(n);
    int rc = mp_manager_connect(&m, &o);
    mp__alloc_fail_after(0);
    if (rc) assert_null(m);
    mp_manager_free(m);
  }
  mp_proxy *p;
  assert_rc(mp_manager_dict(M, &p), 0);
  assert_rc(mp_proxy_setitem(p, S("k"), I(1)), 0);
  mp_proxy_free(p);
}

/* ---- list ----------------------------------------------------------------- */

static mp_obj *slice(int64_t a, int64_t b, int64_t c) {
  return mp_obj_instance(mp_obj_global("builtins", "slice"),
                         mp_obj_tuple_pack(3, a == INT64_MIN ? mp_obj_none() : I(a),
                                           b == INT64_MIN ? mp_obj_none() : I(b),
                                           c == INT64_MIN ? mp_obj_none() : I(c)),
                         NULL, 0);
}

static void list_methods(void **state) {
  (void)state;
  mp_proxy *l;
  assert_rc(mp_manager_create(M, "list", mp_obj_tuple_pack(1, mp_obj_list_pack(3, I(3), I(1), I(2))), NULL, &l), 0);
  assert_rc(mp_proxy_append(l, I(5)), 0);
  assert_rc(mp_proxy_call(l, "extend", mp_obj_tuple_pack(1, mp_obj_list_pack(2, I(4), I(0))), NULL, NULL), 0);
  assert_int_equal(mp_proxy_len(l), 6);
  mp_obj *v = NULL;
  assert_rc(mp_proxy_getitem(l, I(-1), &v), 0);
  check_repr(v, "0");
  assert_rc(mp_proxy_getitem(l, I(6), &v), MP_ERANGE);
  check_detail("list index out of range");
  assert_rc(mp_proxy_getitem(l, S("x"), &v), MP_EINVAL);
  assert_rc(mp_proxy_getitem(l, slice(1, 3, INT64_MIN), &v), 0);
  check_repr(v, "[1, 2]");
  assert_rc(mp_proxy_getitem(l, slice(INT64_MIN, INT64_MIN, -2), &v), 0);
  check_repr(v, "[0, 5, 1]");
  assert_rc(mp_proxy_setitem(l, I(0), S("a")), 0);
  assert_rc(mp_proxy_setitem(l, I(10), S("a")), MP_ERANGE);
  assert_rc(mp_proxy_setitem(l, slice(1, 3, INT64_MIN), mp_obj_list_pack(1, S("b"))), 0);
  check_repr(call1(l, "__getitem__", mp_obj_tuple_pack(1, slice(INT64_MIN, INT64_MIN, INT64_MIN))),
             "['a', 'b', 5, 4, 0]");
  assert_rc(mp_proxy_setitem(l, slice(0, 5, 2), mp_obj_list_pack(1, I(1))), MP_EVALUE);
  assert_rc(mp_proxy_delitem(l, slice(0, 2, INT64_MIN)), 0);
  assert_rc(mp_proxy_delitem(l, I(9)), MP_ERANGE);
  check_repr(call1(l, "__getitem__", mp_obj_tuple_pack(1, slice(INT64_MIN, INT64_MIN, INT64_MIN))),
             "[5, 4, 0]");
  assert_rc(mp_proxy_call(l, "insert", mp_obj_tuple_pack(2, I(1), I(7)), NULL, NULL), 0);
  check_repr(call1(l, "index", mp_obj_tuple_pack(1, I(7))), "1");
  assert_rc(mp_proxy_call(l, "index", mp_obj_tuple_pack(1, I(99)), NULL, NULL), MP_EVALUE);
  check_detail("99 is not in list");
  check_repr(call1(l, "count", mp_obj_tuple_pack(1, I(4))), "1");
  check_repr(call1(l, "__contains__", mp_obj_tuple_pack(1, I(4))), "True");
  assert_rc(mp_proxy_call(l, "remove", mp_obj_tuple_pack(1, I(4)), NULL, NULL), 0);
  assert_rc(mp_proxy_call(l, "remove", mp_obj_tuple_pack(1, I(4)), NULL, NULL), MP_EVALUE);
  assert_rc(mp_proxy_call(l, "sort", NULL, NULL, NULL), 0);
  check_repr(call1(l, "__getitem__", mp_obj_tuple_pack(1, slice(INT64_MIN, INT64_MIN, INT64_MIN))),
             "[0, 5, 7]");
  mp_obj *kw = mp_obj_dict();
  mp_obj_dict_set_str(kw, "reverse", mp_obj_bool(1));
  assert_rc(mp_proxy_call(l, "sort", NULL, kw, NULL), 0);
  assert_rc(mp_proxy_call(l, "reverse", NULL, NULL, NULL), 0);
  check_repr(call1(l, "__add__", mp_obj_tuple_pack(1, mp_obj_list_pack(1, S("z")))), "[0, 5, 7, 'z']");
  check_repr(call1(l, "__mul__", mp_obj_tuple_pack(1, I(2))), "[0, 5, 7, 0, 5, 7]");
  check_repr(call1(l, "__reversed__", NULL), "[7, 5, 0]");
  check_repr(call1(l, "pop", NULL), "7");
  check_repr(call1(l, "pop", mp_obj_tuple_pack(1, I(0))), "0");
  assert_rc(mp_proxy_call(l, "pop", mp_obj_tuple_pack(1, I(5)), NULL, NULL), MP_ERANGE);
  assert_rc(mp_proxy_append(l, S("x")), 0);
  assert_rc(mp_proxy_call(l, "sort", NULL, NULL, NULL), MP_EINVAL); /* 5 < 'x' */
  assert_rc(mp_proxy_call(l, "__imul__", mp_obj_tuple_pack(1, I(0)), NULL, NULL), 0);
  assert_int_equal(mp_proxy_len(l), 0);
  assert_rc(mp_proxy_call(l, "pop", NULL, NULL, NULL), MP_ERANGE);
  check_detail("pop from empty list");
  mp_proxy_free(l);
}

/* ---- Namespace, Value, Array ------------------------------------------------ */

static void namespace_methods(void **state) {
  (void)state;
  mp_proxy *ns;
  assert_rc(mp_manager_namespace(M, &ns), 0);
  assert_rc(mp_proxy_setattr(ns, "y", I(2)), 0);
  assert_rc(mp_proxy_setattr(ns, "x", I(1)), 0);
  mp_obj *v = NULL;
  assert_rc(mp_proxy_getattr(ns, "x", &v), 0);
  check_repr(v, "1");
  assert_rc(mp_proxy_getattr(ns, "zz", &v), MP_ENOENT);
  check_detail("'Namespace' object has no attribute 'zz'");
  char *r;
  assert_rc(mp_proxy_repr(ns, &r), 0);
  assert_string_equal(r, "Namespace(x=1, y=2)");
  free(r);
  assert_rc(mp_proxy_delattr(ns, "x"), 0);
  assert_rc(mp_proxy_delattr(ns, "x"), MP_ENOENT);
  assert_rc(mp_proxy_call(ns, "__setattr__", mp_obj_tuple_pack(2, I(1), I(1)), NULL, NULL), MP_EINVAL);
  mp_proxy_free(ns);
  /* Namespace(**kwds) */
  mp_obj *kw = mp_obj_dict();
  mp_obj_dict_set_str(kw, "a", S("b"));
  assert_rc(mp_manager_create(M, "Namespace", NULL, kw, &ns), 0);
  assert_rc(mp_proxy_getattr(ns, "a", &v), 0);
  check_repr(v, "'b'");
  mp_proxy_free(ns);
}

static void value_and_array(void **state) {
  (void)state;
  mp_proxy *v, *a;
  assert_rc(mp_manager_value(M, "i", I(7), &v), 0);
  mp_obj *o = NULL;
  assert_rc(mp_proxy_get_value(v, &o), 0);
  check_repr(o, "7");
  assert_rc(mp_proxy_set_value(v, I(8)), 0);
  assert_rc(mp_proxy_set_value(v, S("x")), MP_EINVAL);
  assert_rc(mp_proxy_get_value(v, &o), 0);
  check_repr(o, "8");
  mp_proxy_free(v);
  assert_rc(mp_manager_value(M, "d", I(1), &v), 0);
  assert_rc(mp_proxy_get_value(v, &o), 0);
  check_repr(o, "1.0");
  mp_proxy_free(v);
  assert_rc(mp_manager_value(M, "i", S("no"), &v), MP_EINVAL);
  assert_rc(mp_manager_array(M, "i", mp_obj_list_pack(3, I(1), I(2), I(3)), &a), 0);
  assert_int_equal(mp_proxy_len(a), 3);
  assert_rc(mp_proxy_setitem(a, I(0), I(10)), 0);
  assert_rc(mp_proxy_setitem(a, I(0), mp_obj_float(1.5)), MP_EINVAL);
  assert_rc(mp_proxy_setitem(a, I(3), I(1)), MP_ERANGE);
  assert_rc(mp_proxy_getitem(a, I(0), &o), 0);
  check_repr(o, "10");
  assert_rc(mp_proxy_getvalue(a, &o), 0);
  check_repr(o, "[10, 2, 3]");
  mp_proxy_free(a);
  assert_rc(mp_manager_array(M, "d", I(2), &a), 0);
  assert_rc(mp_proxy_getvalue(a, &o), 0);
  check_repr(o, "[0.0, 0.0]");
  mp_proxy_free(a);
}

/* check_prefix asserts that the server's repr of p starts with want. */
static void check_repr_prefix(mp_proxy *p, const char *want) {
  char *r = NULL;
  assert_rc(mp_proxy_repr(p, &r), 0);
  if (strncmp(r, want, strlen(want)) != 0)
    fail_msg("repr is %s, expected it to start with %s", r, want);
  free(r);
}

/* check_global asserts that v (taken) is an instance of module.name. */
static void check_instance_of(mp_obj *v, const char *module, const char *name) {
  const char *mo = NULL, *na = NULL;
  assert_int_equal(mp_obj_type_of(v), MP_OBJ_INSTANCE);
  assert_rc(mp_obj_global_name(v, &mo, &na), 0);
  assert_string_equal(mo, module);
  assert_string_equal(na, name);
  mp_obj_free(v);
}

/* What a Python client gets for str(proxy) and proxy._getvalue() is what
 * Python's server sends: the referent's own repr ("<unlocked _thread.lock
 * object at 0x...>", "Value('i', 5)", "array('i', [1, 2])") and a
 * Namespace, managers.Value or array.array; the C client's getvalue and
 * getitem turn those back into plain values. */
static void python_shaped_values_and_reprs(void **state) {
  (void)state;
  mp_proxy *p;
  assert_rc(mp_manager_lock(M, &p), 0);
  check_repr_prefix(p, "<unlocked _thread.lock object at 0x");
  assert_rc(mp_proxy_acquire(p, 0), 0);
  check_repr_prefix(p, "<locked _thread.lock object at 0x");
  mp_proxy_free(p);
  assert_rc(mp_manager_rlock(M, &p), 0);
  check_repr_prefix(p, "<unlocked _thread.RLock object owner=0 count=0 at 0x");
  mp_proxy_free(p);
  assert_rc(mp_manager_semaphore(M, 2, &p), 0);
  check_repr_prefix(p, "<threading.Semaphore at 0x");
  char *r = NULL;
  assert_rc(mp_proxy_repr(p, &r), 0);
  assert_non_null(strstr(r, ": value=2>"));
  free(r);
  mp_proxy_free(p);
  assert_rc(mp_manager_bounded_semaphore(M, 1, &p), 0);
  assert_rc(mp_proxy_repr(p, &r), 0);
  assert_non_null(strstr(r, ": value=1/1>"));
  free(r);
  mp_proxy_free(p);
  assert_rc(mp_manager_event(M, &p), 0);
  check_repr_prefix(p, "<threading.Event at 0x");
  assert_rc(mp_proxy_set(p), 0);
  assert_rc(mp_proxy_repr(p, &r), 0);
  assert_non_null(strstr(r, ": set>"));
  free(r);
  mp_proxy_free(p);
  assert_rc(mp_manager_barrier(M, 2, &p), 0);
  assert_rc(mp_proxy_repr(p, &r), 0);
  assert_non_null(strstr(r, ": waiters=0/2>"));
  free(r);
  assert_rc(mp_proxy_abort(p), 0);
  assert_rc(mp_proxy_repr(p, &r), 0);
  assert_non_null(strstr(r, ": broken>"));
  free(r);
  mp_proxy_free(p);
  assert_rc(mp_manager_condition(M, &p), 0);
  check_repr_prefix(p, "<Condition(<unlocked _thread.RLock object owner=0 count=0 at 0x");
  mp_proxy_free(p);
  assert_rc(mp_manager_queue(M, 0, &p), 0);
  check_repr_prefix(p, "<queue.Queue object at 0x");
  mp_proxy_free(p);

  mp_obj *o = NULL;
  assert_rc(mp_manager_value(M, "i", I(5), &p), 0);
  check_repr_prefix(p, "Value('i', 5)");
  assert_rc(mp_proxy_call(p, "#GETVALUE", NULL, NULL, &o), 0);
  check_instance_of(o, "multiprocessing.managers", "Value");
  assert_rc(mp_proxy_getvalue(p, &o), 0);
  check_repr(o, "5");
  mp_proxy_free(p);
  assert_rc(mp_manager_namespace(M, &p), 0);
  assert_rc(mp_proxy_setattr(p, "x", I(1)), 0);
  assert_rc(mp_proxy_call(p, "#GETVALUE", NULL, NULL, &o), 0);
  check_instance_of(o, "multiprocessing.managers", "Namespace");
  assert_rc(mp_proxy_getvalue(p, &o), 0);
  check_repr(o, "{'x': 1}");
  mp_proxy_free(p);
  assert_rc(mp_manager_array(M, "i", mp_obj_list_pack(3, I(1), I(2), I(3)), &p), 0);
  check_repr_prefix(p, "array('i', [1, 2, 3])");
  assert_rc(mp_proxy_call(p, "#GETVALUE", NULL, NULL, &o), 0);
  check_instance_of(o, "array", "array");
  mp_obj *sl = mp_obj_instance(mp_obj_global("builtins", "slice"),
                               mp_obj_tuple_pack(3, I(0), I(2), mp_obj_none()), NULL, 0);
  assert_rc(mp_proxy_call(p, "__getitem__", mp_obj_tuple_pack(1, mp_obj_copy(sl)), NULL, &o), 0);
  check_instance_of(o, "array", "array");
  assert_rc(mp_proxy_getitem(p, sl, &o), 0);
  check_repr(o, "[1, 2]");
  assert_rc(mp_proxy_getitem(p, I(7), &o), MP_ERANGE);
  check_detail("array index out of range");
  mp_proxy_free(p);
  assert_rc(mp_manager_array(M, "d", mp_obj_list(), &p), 0);
  check_repr_prefix(p, "array('d')");
  mp_proxy_free(p);
}

/* Constructors and list methods fail (and succeed) as Python's do. */
static void python_constructor_rules(void **state) {
  (void)state;
  mp_proxy *p = NULL;
  mp_obj *o = NULL;
  assert_rc(mp_manager_create(M, "list", mp_obj_tuple_pack(1, S("ab\xc3\xa9")), NULL, &p), 0);
  assert_rc(mp_proxy_getvalue(p, &o), 0);
  check_repr(o, "['a', 'b', '\xc3\xa9']"); /* list('abé') */
  mp_proxy_free(p);
  assert_rc(mp_manager_create(M, "list", mp_obj_tuple_pack(1, mp_obj_bytes("ab", 2)), NULL, &p), 0);
  assert_rc(mp_proxy_getvalue(p, &o), 0);
  check_repr(o, "[97, 98]");
  mp_proxy_free(p);
  p = NULL;
  assert_rc(mp_manager_create(M, "list", mp_obj_tuple_pack(1, I(5)), NULL, &p), MP_EINVAL);
  check_detail("TypeError(\"'int' object is not iterable\")");
  assert_rc(mp_manager_create(M, "dict", mp_obj_tuple_pack(1, I(5)), NULL, &p), MP_EINVAL);
  check_detail("'int' object is not iterable");
  assert_rc(mp_manager_create(M, "dict", mp_obj_tuple_pack(2, mp_obj_dict(), mp_obj_dict()), NULL, &p),
            MP_EINVAL);
  check_detail("dict expected at most 1 argument, got 2");
  assert_rc(mp_manager_create(M, "dict",
                              mp_obj_tuple_pack(1, mp_obj_list_pack(1, mp_obj_tuple_pack(3, I(1), I(2), I(3)))),
                              NULL, &p), MP_EVALUE);
  assert_rc(mp_manager_create(M, "dict", mp_obj_tuple_pack(1, mp_obj_list_pack(1, mp_obj_list())),
                              NULL, &p), MP_EVALUE);
  assert_null(p);
  mp_obj *kw = mp_obj_dict();
  assert_rc(mp_obj_dict_set_str(kw, "b", I(2)), 0);
  assert_rc(mp_manager_create(M, "dict", mp_obj_tuple_pack(1, mp_obj_list_pack(1, mp_obj_tuple_pack(2, S("a"), I(1)))),
                              kw, &p), 0);
  assert_rc(mp_proxy_getvalue(p, &o), 0);
  check_repr(o, "{'a': 1, 'b': 2}");
  mp_proxy_free(p);

  assert_rc(mp_manager_create(M, "list", mp_obj_tuple_pack(1, mp_obj_list_pack(3, I(1), S("s"), I(2))), NULL, &p), 0);
  assert_rc(mp_proxy_call(p, "sort", NULL, NULL, NULL), MP_EINVAL);
  check_detail("'<' not supported between instances of 'str' and 'int'");
  mp_obj *sl = mp_obj_instance(mp_obj_global("builtins", "slice"),
                               mp_obj_tuple_pack(3, I(0), I(3), I(2)), NULL, 0);
  assert_rc(mp_proxy_setitem(p, sl, mp_obj_list_pack(1, I(9))), MP_EVALUE);
  check_detail("attempt to assign sequence of size 1 to extended slice of size 2");
  mp_proxy_free(p);
}

/* An array.array a Python client sends (a[0:2] = array('i', [8, 9]),
 * m.list(array(...)), l.extend(array(...))) in each form a pickle holds it:
 * array(tc, list), array(tc, machine bytes), _array_reconstructor(array,
 * tc, mformat, bytes); read as plain items, never imported or called. */
static mp_obj *pyarray(int form) {
  if (form == 0)
    return mp_obj_instance(mp_obj_global("array", "array"),
                           mp_obj_tuple_pack(2, S("i"), mp_obj_list_pack(2, I(8), I(-9))), NULL, 0);
  if (form == 1) /* 'h' on this (little-endian) host: 8, -9 */
    return mp_obj_instance(mp_obj_global("array", "array"),
                           mp_obj_tuple_pack(2, S("h"), mp_obj_bytes("\x08\x00\xf7\xff", 4)), NULL, 0);
  int64_t mf = form == 2 ? 9 : form == 3 ? 99 : 8; /* 9: int32 big-endian */
  size_t len = form == 4 ? 7 : 8;
  return mp_obj_instance(mp_obj_global("array", "_array_reconstructor"),
                         mp_obj_tuple_pack(4, mp_obj_global("array", "array"), S("i"), I(mf),
                                           mp_obj_bytes("\x00\x00\x00\x08\xff\xff\xff\xf7", len)),
                         NULL, 0);
}

static void array_values_from_python(void **state) {
  (void)state;
  mp_proxy *a, *l;
  mp_obj *o = NULL;
  for (int form = 0; form < 3; form++) {
    assert_rc(mp_manager_array(M, "i", mp_obj_list_pack(3, I(1), I(2), I(3)), &a), 0);
    mp_obj *sl = mp_obj_instance(mp_obj_global("builtins", "slice"),
                                 mp_obj_tuple_pack(3, I(0), I(2), mp_obj_none()), NULL, 0);
    assert_rc(mp_proxy_setitem(a, sl, pyarray(form)), 0);
    assert_rc(mp_proxy_getvalue(a, &o), 0);
    check_repr(o, "[8, -9, 3]");
    mp_proxy_free(a);
    assert_rc(mp_manager_create(M, "list", mp_obj_tuple_pack(1, pyarray(form)), NULL, &l), 0);
    assert_rc(mp_proxy_extend(l, pyarray(form)), 0);
    assert_rc(mp_proxy_getvalue(l, &o), 0);
    check_repr(o, "[8, -9, 8, -9]");
    mp_proxy_free(l);
  }
  assert_rc(mp_manager_list(M, &l), 0);
  assert_rc(mp_proxy_extend(l, pyarray(3)), MP_EINVAL); /* unknown machine format */
  check_detail("machine format 99");
  assert_rc(mp_proxy_extend(l, pyarray(4)), MP_EINVAL); /* 7 bytes of int32s */
  check_detail("whole number of items");
  assert_rc(mp_proxy_extend(l, mp_obj_instance(mp_obj_global("array", "array"),
                                               mp_obj_tuple_pack(2, S("u"), mp_obj_bytes("a\0\0\0", 4)),
                                               NULL, 0)),
            MP_EINVAL);
  check_detail("not a number type");
  assert_rc(mp_proxy_extend(l, mp_obj_instance(mp_obj_global("array", "_array_reconstructor"),
                                               mp_obj_tuple_pack(4, mp_obj_global("array", "array"), S("Q"),
                                                                 I(10), mp_obj_bytes("\xff\xff\xff\xff\xff\xff\xff\xff", 8)),
                                               NULL, 0)),
            MP_EOVERFLOW);
  assert_int_equal(mp_proxy_len(l), 0); /* the connection still serves */
  mp_proxy_free(l);
}

/* The typed calls of src/manager/proxy_python.c, each with its error. */
static int pred_calls;
static int flag_set(void *ctx) {
  pred_calls++;
  mp_proxy *d = ctx;
  return mp_proxy_contains(d, S("ready"));
}
static int pred_fails(void *ctx) {
  (void)ctx;
  return MP_EIO;
}
static void *set_ready_later(void *arg) {
  mp_proxy **pp = arg; /* {condition, dict} */
  usleep(50000);
  if (mp_proxy_acquire(pp[0], MP_FOREVER) == 0) {
    mp_proxy_setitem(pp[1], S("ready"), I(1));
    mp_proxy_notify_all(pp[0]);
    mp_proxy_release(pp[0]);
  }
  return NULL;
}

static void python_proxy_methods(void **state) {
  (void)state;
  mp_proxy *d, *l, *q, *c, *b;
  mp_obj *o = NULL, *k = NULL;
  assert_rc(mp_manager_dict(M, &d), 0);
  assert_rc(mp_proxy_update(d, mp_obj_list_pack(1, mp_obj_tuple_pack(2, S("a"), I(1)))), 0);
  mp_obj *more = mp_obj_dict();
  assert_rc(mp_obj_dict_set_str(more, "b", I(2)), 0);
  assert_rc(mp_proxy_update(d, more), 0);
  assert_rc(mp_proxy_update(d, I(5)), MP_EINVAL); /* TypeError */
  assert_rc(mp_proxy_update(d, NULL), MP_EINVAL);
  assert_int_equal(mp_proxy_contains(d, S("a")), 1);
  assert_int_equal(mp_proxy_contains(d, S("zz")), 0);
  assert_rc(mp_proxy_contains(d, mp_obj_list()), MP_EINVAL); /* unhashable */
  assert_rc(mp_proxy_keys(d, &o), 0);
  check_repr(o, "['a', 'b']");
  assert_rc(mp_proxy_values(d, &o), 0);
  check_repr(o, "[1, 2]");
  assert_rc(mp_proxy_items(d, &o), 0);
  check_repr(o, "[('a', 1), ('b', 2)]");
  assert_rc(mp_proxy_keys(d, NULL), MP_EINVAL);
  assert_rc(mp_proxy_dict_get(d, S("a"), NULL, &o), 0);
  check_repr(o, "1");
  assert_rc(mp_proxy_dict_get(d, S("zz"), NULL, &o), 0);
  check_repr(o, "None");
  assert_rc(mp_proxy_dict_get(d, S("zz"), I(7), &o), 0);
  check_repr(o, "7");
  assert_rc(mp_proxy_dict_get(d, NULL, I(7), &o), MP_EINVAL);
  assert_rc(mp_proxy_popitem(d, &k, &o), 0); /* LIFO, as Python's */
  check_repr(k, "'b'");
  check_repr(o, "2");
  assert_rc(mp_proxy_popitem(d, NULL, NULL), 0);
  assert_rc(mp_proxy_popitem(d, &k, &o), MP_ENOENT);
  check_detail("KeyError");

  assert_rc(mp_manager_list(M, &l), 0);
  assert_rc(mp_proxy_extend(l, mp_obj_list_pack(3, I(3), I(1), I(2))), 0);
  assert_rc(mp_proxy_extend(l, I(1)), MP_EINVAL);
  assert_rc(mp_proxy_insert(l, 0, S("x")), 0);
  assert_rc(mp_proxy_insert(l, -100, S("y")), 0); /* clamps, as Python */
  assert_rc(mp_proxy_getvalue(l, &o), 0);
  check_repr(o, "['y', 'x', 3, 1, 2]");
  assert_rc(mp_proxy_remove(l, S("y")), 0);
  assert_rc(mp_proxy_remove(l, S("y")), MP_EVALUE);
  assert_int_equal(mp_proxy_index(l, I(1)), 2);
  assert_rc((int)mp_proxy_index(l, I(99)), MP_EVALUE);
  assert_int_equal(mp_proxy_count(l, S("x")), 1);
  assert_int_equal(mp_proxy_count(l, S("none")), 0);
  assert_int_equal(mp_proxy_contains(l, I(3)), 1);
  assert_rc(mp_proxy_sort(l, 0), MP_EINVAL); /* 'x' and ints */
  assert_rc(mp_proxy_remove(l, S("x")), 0);
  assert_rc(mp_proxy_sort(l, 1), 0);
  assert_rc(mp_proxy_getvalue(l, &o), 0);
  check_repr(o, "[3, 2, 1]");
  assert_rc(mp_proxy_reverse(l), 0);
  assert_rc(mp_proxy_getvalue(l, &o), 0);
  check_repr(o, "[1, 2, 3]");
  assert_rc(mp_proxy_clear(l), MP_ENOENT); /* Python's ListProxy has no clear() */
  assert_rc(mp_proxy_setitem(d, S("k"), I(1)), 0);
  assert_rc(mp_proxy_clear(d), 0);
  assert_int_equal(mp_proxy_len(d), 0);

  assert_rc(mp_manager_queue(M, 1, &q), 0);
  assert_int_equal(mp_proxy_empty(q), 1);
  assert_int_equal(mp_proxy_full(q), 0);
  assert_rc(mp_proxy_put(q, I(1), 0), 0);
  assert_int_equal(mp_proxy_empty(q), 0);
  assert_int_equal(mp_proxy_full(q), 1);
  assert_rc(mp_proxy_empty(d), MP_ENOENT); /* a dict has no empty() */

  assert_rc(mp_manager_condition(M, &c), 0);
  assert_rc(mp_proxy_wait_for(NULL, flag_set, d, 1), MP_EINVAL);
  assert_rc(mp_proxy_wait_for(c, flag_set, d, NAN), MP_EINVAL);
  assert_rc(mp_proxy_acquire(c, MP_FOREVER), 0);
  pred_calls = 0;
  assert_rc(mp_proxy_wait_for(c, flag_set, d, 0), MP_ETIMEDOUT);
  assert_int_equal(pred_calls, 1);
  assert_rc(mp_proxy_wait_for(c, flag_set, d, 0.05), MP_ETIMEDOUT);
  assert_rc(mp_proxy_wait_for(c, pred_fails, NULL, 1), MP_EIO);
  mp_proxy *pair[2] = {c, d};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, set_ready_later, pair), 0);
  assert_rc(mp_proxy_wait_for(c, flag_set, d, mp_test_slack(10)), 0);
  assert_rc(mp_proxy_release(c), 0);
  pthread_join(t, NULL);
  assert_rc(mp_proxy_wait_for(c, flag_set, d, 1), 0); /* already true */

  assert_rc(mp_manager_barrier(M, 3, &b), 0);
  assert_int_equal(mp_proxy_parties(b), 3);
  assert_int_equal(mp_proxy_n_waiting(b), 0);
  assert_int_equal(mp_proxy_broken(b), 0);
  assert_rc(mp_proxy_abort(b), 0);
  assert_int_equal(mp_proxy_broken(b), 1);
  assert_rc((int)mp_proxy_parties(d), MP_ENOENT); /* not a Barrier */

  mp_proxy_free(d);
  mp_proxy_free(l);
  mp_proxy_free(q);
  mp_proxy_free(c);
  mp_proxy_free(b);
}

/* sort is stable (1.0 == 1 == True keep their order, also reversed, as
 * Python's) and O(n log n): 200000 items sort well inside a call deadline
 * (an insertion sort takes 2e10 compares, minutes, all under the server's
 * lock). */
static void sort_is_stable_and_fast(void **state) {
  (void)state;
  mp_proxy *l;
  mp_obj *o = NULL;
  assert_rc(mp_manager_list(M, &l), 0);
  assert_rc(mp_proxy_extend(l, mp_obj_list_pack(5, mp_obj_float(1), I(2), I(1), mp_obj_bool(1), I(0))), 0);
  assert_rc(mp_proxy_sort(l, 0), 0);
  assert_rc(mp_proxy_getvalue(l, &o), 0);
  check_repr(o, "[0, 1.0, 1, True, 2]");
  assert_rc(mp_proxy_sort(l, 1), 0);
  assert_rc(mp_proxy_getvalue(l, &o), 0);
  check_repr(o, "[2, 1.0, 1, True, 0]");
  mp_proxy_free(l);
  enum { N = 200000 };
  mp_obj *big = mp_obj_list();
  for (int i = 0; i < N; i++) assert_rc(mp_obj_list_append(big, I((i * 7919) % N)), 0);
  assert_rc(mp_manager_create(M, "list", mp_obj_tuple_pack(1, big), NULL, &l), 0);
  assert_rc(mp_proxy_call_timeout(l, "sort", NULL, NULL, mp_test_slack(30), NULL), 0);
  assert_rc(mp_proxy_getvalue(l, &o), 0);
  for (int i = 0; i < N; i += 9973) {
    int64_t v = -1;
    assert_rc(mp_obj_get_int(mp_obj_list_get(o, i), &v), 0);
    assert_int_equal(v, i);
  }
  mp_obj_free(o);
  mp_proxy_free(l);
}

/* ---- queues ------------------------------------------------------------------ */

static void queue_methods(void **state) {
  (void)state;
  mp_proxy *q;
  assert_rc(mp_manager_queue(M, 2, &q), 0);
  assert_rc(mp_proxy_put(q, S("a"), MP_FOREVER), 0);
  assert_rc(mp_proxy_put(q, S("b"), 0), 0);
  assert_rc(mp_proxy_put(q, S("c"), 0), MP_EAGAIN);
  double t0 = mp_test_now();
  assert_rc(mp_proxy_put(q, S("c"), 0.1), MP_ETIMEDOUT);
  assert_true(mp_test_now() - t0 >= 0.09);
  assert_int_equal(mp_proxy_qsize(q), 2);
  check_repr(call1(q, "full", NULL), "True");
  mp_obj *v = NULL;
  assert_rc(mp_proxy_get(q, &v, MP_FOREVER), 0);
  check_repr(v, "'a'");
  assert_rc(mp_proxy_get(q, &v, 0), 0);
  check_repr(v, "'b'");
  assert_rc(mp_proxy_get(q, &v, 0), MP_EAGAIN);
  check_detail("Empty");
  assert_rc(mp_proxy_get(q, &v, 0.05), MP_ETIMEDOUT);
  check_repr(call1(q, "empty", NULL), "True");
  mp_obj *kw = mp_obj_dict();
  mp_obj_dict_set_str(kw, "timeout", mp_obj_float(-1));
  assert_rc(mp_proxy_call(q, "get", NULL, kw, NULL), MP_EVALUE);
  mp_proxy_free(q);
}

static void joinable_queue(void **state) {
  (void)state;
  mp_proxy *q;
  assert_rc(mp_manager_joinable_queue(M, 0, &q), 0);
  assert_rc(mp_proxy_put(q, I(1), MP_FOREVER), 0);
  mp_obj *v;
  assert_rc(mp_proxy_get(q, &v, MP_FOREVER), 0);
  mp_obj_free(v);
  assert_rc(mp_proxy_task_done(q), 0);
  assert_rc(mp_proxy_join(q), 0);
  assert_rc(mp_proxy_task_done(q), MP_EVALUE);
  check_detail("task_done() called too many times");
  mp_proxy_free(q);
}

/* ---- sync objects ------------------------------------------------------------ */

typedef struct thread_arg {
  mp_proxy *p;
  int rc;
  long index;
  double delay;
} thread_arg;

static void *release_later(void *arg) {
  thread_arg *t = arg;
  usleep((useconds_t)(t->delay * 1e6));
  t->rc = mp_proxy_release(t->p);
  return NULL;
}

static void lock_methods(void **state) {
  (void)state;
  mp_proxy *l;
  assert_rc(mp_manager_lock(M, &l), 0);
  assert_rc(mp_proxy_release(l), MP_EPERM);
  check_detail("release unlocked lock");
  assert_rc(mp_proxy_acquire(l, MP_FOREVER), 0);
  assert_rc(mp_proxy_acquire(l, 0), MP_EAGAIN);
  assert_rc(mp_proxy_acquire(l, 0.05), MP_ETIMEDOUT);
  /* A Lock may be released by another thread (another connection). */
  thread_arg t = {.p = l, .delay = 0.1};
  pthread_t th;
  pthread_create(&th, NULL, release_later, &t);
  assert_rc(mp_proxy_acquire(l, mp_test_slack(5)), 0);
  pthread_join(th, NULL);
  assert_rc(t.rc, 0);
  assert_rc(mp_proxy_release(l), 0);
  mp_obj *kw = mp_obj_dict();
  mp_obj_dict_set_str(kw, "timeout", mp_obj_float(-5));
  assert_rc(mp_proxy_call(l, "acquire", NULL, kw, NULL), MP_EVALUE);
  mp_proxy_free(l);
}

static void rlock_methods(void **state) {
  (void)state;
  mp_proxy *l;
  assert_rc(mp_manager_rlock(M, &l), 0);
  assert_rc(mp_proxy_acquire(l, 0), 0);
  assert_rc(mp_proxy_acquire(l, 0), 0); /* re-entrant */
  thread_arg t = {.p = l, .delay = 0};
  pthread_t th;
  pthread_create(&th, NULL, release_later, &t);
  pthread_join(th, NULL);
  assert_rc(t.rc, MP_EPERM); /* not the owner */
  assert_rc(mp_proxy_release(l), 0);
  assert_rc(mp_proxy_release(l), 0);
  assert_rc(mp_proxy_release(l), MP_EPERM);
  mp_proxy_free(l);
}

static void semaphores(void **state) {
  (void)state;
  mp_proxy *s, *b;
  assert_rc(mp_manager_semaphore(M, 2, &s), 0);
  assert_rc(mp_proxy_acquire(s, 0), 0);
  assert_rc(mp_proxy_acquire(s, 0), 0);
  assert_rc(mp_proxy_acquire(s, 0), MP_EAGAIN);
  assert_rc(mp_proxy_release(s), 0);
  assert_rc(mp_proxy_release(s), 0);
  assert_rc(mp_proxy_release(s), 0); /* unbounded */
  mp_proxy_free(s);
  assert_rc(mp_manager_bounded_semaphore(M, 1, &b), 0);
  assert_rc(mp_proxy_acquire(b, MP_FOREVER), 0);
  assert_rc(mp_proxy_release(b), 0);
  assert_rc(mp_proxy_release(b), MP_EVALUE);
  check_detail("released too many times");
  mp_proxy_free(b);
  assert_rc(mp_manager_semaphore(M, -1, &s), MP_EVALUE);
}

static void event_methods(void **state) {
  (void)state;
  mp_proxy *e;
  assert_rc(mp_manager_event(M, &e), 0);
  assert_int_equal(mp_proxy_is_set(e), 0);
  assert_rc(mp_proxy_wait(e, 0.05, NULL), MP_ETIMEDOUT);
  assert_rc(mp_proxy_set(e), 0);
  assert_int_equal(mp_proxy_is_set(e), 1);
  assert_rc(mp_proxy_wait(e, MP_FOREVER, NULL), 0);
  assert_rc(mp_proxy_clear(e), 0);
  assert_int_equal(mp_proxy_is_set(e), 0);
  mp_proxy_free(e);
}

static void *notify_later(void *arg) {
  thread_arg *t = arg;
  usleep(100000);
  t->rc = mp_proxy_acquire(t->p, MP_FOREVER);
  if (!t->rc) t->rc = mp_proxy_notify(t->p, 1);
  if (!t->rc) t->rc = mp_proxy_release(t->p);
  return NULL;
}

static void condition_methods(void **state) {
  (void)state;
  mp_proxy *c;
  assert_rc(mp_manager_condition(M, &c), 0);
  assert_rc(mp_proxy_wait(c, 0.01, NULL), MP_EPERM);
  check_detail("cannot wait on un-acquired lock");
  assert_rc(mp_proxy_notify(c, 1), MP_EPERM);
  assert_rc(mp_proxy_acquire(c, MP_FOREVER), 0);
  assert_rc(mp_proxy_wait(c, 0.05, NULL), MP_ETIMEDOUT);
  thread_arg t = {.p = c};
  pthread_t th;
  pthread_create(&th, NULL, notify_later, &t);
  assert_rc(mp_proxy_wait(c, mp_test_slack(10), NULL), 0);
  assert_rc(mp_proxy_notify_all(c), 0);
  assert_rc(mp_proxy_release(c), 0);
  pthread_join(th, NULL);
  assert_rc(t.rc, 0);
  mp_proxy_free(c);
}

static void *barrier_wait(void *arg) {
  thread_arg *t = arg;
  t->rc = mp_proxy_wait(t->p, mp_test_slack(10), &t->index);
  return NULL;
}

static void barrier_methods(void **state) {
  (void)state;
  mp_proxy *b;
  assert_rc(mp_manager_barrier(M, 2, &b), 0);
  thread_arg t = {.p = b};
  pthread_t th;
  pthread_create(&th, NULL, barrier_wait, &t);
  long idx = -1;
  assert_rc(mp_proxy_wait(b, mp_test_slack(10), &idx), 0);
  pthread_join(th, NULL);
  assert_rc(t.rc, 0);
  assert_int_equal(idx + t.index, 1); /* 0 and 1 */
  check_repr(call1(b, "__getattribute__", mp_obj_tuple_pack(1, S("parties"))), "2");
  /* a timeout breaks it, as Python's */
  assert_rc(mp_proxy_wait(b, 0.05, NULL), MP_EBROKEN);
  check_repr(call1(b, "__getattribute__", mp_obj_tuple_pack(1, S("broken"))), "True");
  assert_rc(mp_proxy_wait(b, 1, NULL), MP_EBROKEN);
  assert_rc(mp_proxy_reset(b), 0);
  pthread_create(&th, NULL, barrier_wait, &t);
  usleep(50000);
  assert_rc(mp_proxy_abort(b), 0);
  pthread_join(th, NULL);
  assert_rc(t.rc, MP_EBROKEN);
  mp_proxy_free(b);
  assert_rc(mp_manager_barrier(M, 0, &b), MP_EVALUE);
}

/* ---- atomic operations (G-MGR-1) --------------------------------------------- */

static mp_proxy *shared_ns;

static int adder(void *arg) {
  (void)arg;
  for (int i = 0; i < 50; i++)
    if (mp_proxy_add(shared_ns, S("x"), I(1), NULL) != 0) return 1;
  return 0;
}

static void atomic_add_from_ten_processes(void **state) {
  (void)state;
  /* G-MGR-1: ten processes adding at once lose no update. */
  assert_rc(mp_manager_namespace(M, &shared_ns), 0);
  assert_rc(mp_proxy_setattr(shared_ns, "x", I(0)), 0);
  pid_t pids[10];
  for (int i = 0; i < 10; i++) pids[i] = mp_test_fork(adder, NULL);
  for (int i = 0; i < 10; i++) mp_test_wait_exit(pids[i], 0, mp_test_slack(60));
  mp_obj *v;
  assert_rc(mp_proxy_getattr(shared_ns, "x", &v), 0);
  check_repr(v, "500");
  mp_proxy_free(shared_ns);
}

static void atomic_operations(void **state) {
  (void)state;
  mp_proxy *d, *l, *ns;
  assert_rc(mp_manager_dict(M, &d), 0);
  assert_rc(mp_manager_list(M, &l), 0);
  assert_rc(mp_manager_namespace(M, &ns), 0);
  mp_obj *r = NULL;
  assert_rc(mp_proxy_add(d, S("n"), I(1), &r), MP_ENOENT);
  assert_rc(mp_proxy_setdefault(d, S("n"), I(10), &r), 0);
  check_repr(r, "10");
  assert_rc(mp_proxy_add(d, S("n"), I(5), &r), 0);
  check_repr(r, "15");
  assert_rc(mp_proxy_add(d, S("n"), mp_obj_float(0.5), &r), 0);
  check_repr(r, "15.5");
  assert_rc(mp_proxy_setitem(d, S("big"), I(INT64_MAX)), 0);
  assert_rc(mp_proxy_add(d, S("big"), I(1), &r), MP_EOVERFLOW);
  assert_rc(mp_proxy_setitem(d, S("s"), S("ab")), 0);
  assert_rc(mp_proxy_add(d, S("s"), S("cd"), &r), 0);
  check_repr(r, "'abcd'");
  assert_rc(mp_proxy_add(d, S("s"), I(1), &r), MP_EINVAL);
  int swapped = -1;
  assert_rc(mp_proxy_compare_and_set(d, S("s"), S("zz"), S("new"), &swapped), 0);
  assert_int_equal(swapped, 0);
  assert_rc(mp_proxy_compare_and_set(d, S("s"), S("abcd"), S("new"), &swapped), 0);
  assert_int_equal(swapped, 1);
  assert_rc(mp_proxy_compare_and_set(d, S("none"), mp_obj_none(), I(1), &swapped), 0);
  assert_int_equal(swapped, 0);
  assert_rc(mp_proxy_pop(d, S("s"), NULL, &r), 0);
  check_repr(r, "'new'");
  assert_rc(mp_proxy_pop(d, S("s"), NULL, &r), MP_ENOENT);
  assert_rc(mp_proxy_pop(d, S("s"), I(3), &r), 0);
  check_repr(r, "3");
  /* list */
  int app = -1;
  assert_rc(mp_proxy_append_if_absent(l, S("a"), &app), 0);
  assert_int_equal(app, 1);
  assert_rc(mp_proxy_append_if_absent(l, S("a"), &app), 0);
  assert_int_equal(app, 0);
  assert_rc(mp_proxy_append(l, I(1)), 0);
  assert_rc(mp_proxy_add(l, I(1), I(2), &r), 0);
  check_repr(r, "3");
  assert_rc(mp_proxy_add(l, I(5), I(2), &r), MP_ERANGE);
  assert_rc(mp_proxy_pop(l, NULL, NULL, &r), 0);
  check_repr(r, "3");
  /* Namespace: the atomic x += 5; y *= 10 of the seeds */
  assert_rc(mp_proxy_setattr(ns, "x", I(1)), 0);
  assert_rc(mp_proxy_add(ns, S("x"), I(5), &r), 0);
  check_repr(r, "6");
  assert_rc(mp_proxy_add(ns, S("nope"), I(5), &r), MP_ENOENT);
  check_detail("has no attribute 'nope'");
  assert_rc(mp_proxy_setdefault(ns, S("y"), I(2), &r), 0);
  check_repr(r, "2");
  assert_rc(mp_proxy_compare_and_set(ns, S("y"), I(2), I(20), &swapped), 0);
  assert_int_equal(swapped, 1);
  assert_rc(mp_proxy_pop(ns, S("y"), NULL, &r), 0);
  check_repr(r, "20");
  assert_rc(mp_proxy_pop(ns, S("y"), S("d"), &r), 0);
  check_repr(r, "'d'");
  mp_proxy_free(d);
  mp_proxy_free(l);
  mp_proxy_free(ns);
}

static void atomic_apply_all_or_nothing(void **state) {
  (void)state;
  mp_proxy *d;
  assert_rc(mp_manager_dict(M, &d), 0);
  assert_rc(mp_proxy_setitem(d, S("a"), I(1)), 0);
  mp_obj *ops = mp_obj_list_pack(
      3, mp_obj_tuple_pack(2, S("mp_add"), mp_obj_tuple_pack(2, S("a"), I(1))),
      mp_obj_tuple_pack(2, S("__setitem__"), mp_obj_tuple_pack(2, S("b"), I(2))),
      mp_obj_tuple_pack(2, S("__getitem__"), mp_obj_tuple_pack(1, S("a"))));
  mp_obj *r = NULL;
  assert_rc(mp_proxy_apply(d, ops, &r), 0);
  check_repr(r, "[2, None, 2]");
  /* the second op fails: the first is undone */
  ops = mp_obj_list_pack(
      2, mp_obj_tuple_pack(2, S("__setitem__"), mp_obj_tuple_pack(2, S("a"), I(100))),
      mp_obj_tuple_pack(2, S("__getitem__"), mp_obj_tuple_pack(1, S("missing"))));
  assert_rc(mp_proxy_apply(d, ops, &r), MP_ENOENT);
  assert_rc(mp_proxy_getitem(d, S("a"), &r), 0);
  check_repr(r, "2");
  /* a method outside the list is refused */
  ops = mp_obj_list_pack(1, mp_obj_tuple_pack(2, S("clear"), mp_obj_tuple_from(0, NULL)));
  assert_rc(mp_proxy_apply(d, ops, &r), MP_EVALUE);
  assert_rc(mp_proxy_apply(d, S("x"), &r), MP_EINVAL);
  mp_proxy_free(d);
}

/* ---- security (G-MGR-6) -------------------------------------------------------- */

static void method_not_exposed_is_refused(void **state) {
  (void)state;
  mp_proxy *d;
  assert_rc(mp_manager_dict(M, &d), 0);
  /* An #ERROR with AttributeError (MP_ENOENT), as the issue asks. */
  assert_rc(mp_proxy_call(d, "__class__", NULL, NULL, NULL), MP_ENOENT);
  check_detail("AttributeError(\"method '__class__' of 'dict' object is not "
               "in exposed\")");
  assert_rc(mp_proxy_call(d, "__init__", NULL, NULL, NULL), MP_ENOENT);
  mp_proxy_free(d);
}

/* raw_connect opens a plain socket to the manager's Unix path. */
static int raw_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static void nothing_read_before_handshake(void **state) {
  (void)state;
  /* A request sent instead of the handshake's answer is a wrong digest:
   * the server answers #FAILURE# and closes, and runs nothing. */
  mp_proxy *d;
  assert_rc(mp_manager_dict(M, &d), 0);
  int fd = raw_connect(mp_manager_address(M));
  mp_connection *c;
  assert_rc(mp_connection_new(&c, fd, NULL), 0);
  void *buf;
  size_t len;
  assert_rc(mp_connection_recv_bytes_alloc(c, &buf, &len, 256), 0);
  assert_memory_equal(buf, "#CHALLENGE#", 11);
  free(buf);
  mp_obj *req = mp_obj_tuple_pack(4, mp_obj_none(), S("shutdown"), mp_obj_tuple_from(0, NULL), mp_obj_dict());
  assert_rc(mp_pickle_dumps(req, &buf, &len, NULL), 0);
  mp_obj_free(req);
  assert_rc(mp_connection_send_bytes(c, buf, 0, len), 0);
  free(buf);
  assert_rc(mp_connection_recv_bytes_alloc(c, &buf, &len, 256), 0);
  assert_memory_equal(buf, "#FAILURE#", 9);
  free(buf);
  mp_connection_free(c);
  /* the server still serves */
  assert_rc(mp_proxy_setitem(d, S("k"), I(1)), 0);
  mp_proxy_free(d);
}

/* A connection that passes the handshake then sends garbage gets a
 * #TRACEBACK and is closed; the others go on. Uses the server in this
 * process so the test can run the client half by hand. */
static void *serve_thread(void *arg) {
  mp_manager_server_serve_forever(arg);
  return NULL;
}

/* authed opens a connection that passed the handshake with key "k". */
static mp_connection *authed(const char *path) {
  mp_connection *c = NULL;
  assert_rc(mp__mgr_connect(path, (const uint8_t *)"k", 1, 5, &c), 0);
  return c;
}

/* send_raw sends bytes and expects a ('#TRACEBACK', ...) reply, then the
 * end of the stream. */
static void send_bad(mp_connection *c, const void *bytes, size_t n) {
  assert_rc(mp_connection_send_bytes(c, bytes, 0, n), 0);
  void *buf;
  size_t len;
  assert_rc(mp_connection_recv_bytes_alloc(c, &buf, &len, 1 << 20), 0);
  mp_obj *rep = NULL;
  mp_pickle_load_opts o = {0};
  assert_rc(mp_pickle_loads(buf, len, &rep, &o), 0);
  free(buf);
  assert_int_equal(mp_obj_type_of(rep), MP_OBJ_TUPLE);
  const char *kind;
  assert_rc(mp_obj_get_str(mp_obj_list_get(rep, 0), &kind, NULL), 0);
  assert_string_equal(kind, "#TRACEBACK");
  mp_obj_free(rep);
  assert_int_equal(mp_connection_poll(c, mp_test_slack(5)), 1);
  assert_rc(mp_connection_recv_bytes_alloc(c, &buf, &len, 1 << 20), MP_ECLOSED);
}

static void send_obj(mp_connection *c, mp_obj *o) {
  void *buf;
  size_t len;
  assert_rc(mp_pickle_dumps(o, &buf, &len, NULL), 0);
  mp_obj_free(o);
  assert_rc(mp_connection_send_bytes(c, buf, 0, len), 0);
  free(buf);
  assert_rc(mp_connection_recv_bytes_alloc(c, &buf, &len, 1 << 20), 0);
  free(buf);
}

static void malformed_request_closes_that_connection(void **state) {
  (void)state;
  char path[108];
  snprintf(path, sizeof path, "/tmp/mp-test-%d-mal.sock", (int)getpid());
  mp_manager_opts o = {.address = path, .authkey = "k", .authkey_len = 1,
                       .max_request = 4096};
  mp_manager_server *s;
  assert_rc(mp_manager_server_new(&s, &o), 0);
  pthread_t th;
  pthread_create(&th, NULL, serve_thread, s);
  mp_manager *m;
  assert_rc(mp_manager_connect(&m, &o), 0);
  mp_proxy *d;
  assert_rc(mp_manager_dict(m, &d), 0);
  assert_rc(mp_proxy_setitem(d, S("a"), I(1)), 0);
  static const char *const bad[] = {
      "\x80\x04garbage",                                  /* bad opcode */
      "\x80\x04\x8c\x02os\x8c\x06system\x93.",            /* a refused class */
      "\x80\x04N.",                                       /* not a 4-tuple */
      "\x80\x04(NK\x01)}t.",                               /* method not a str */
  };
  for (size_t i = 0; i < MP__ARRAY_SIZE(bad); i++) {
    /* as the control request */
    mp_connection *c = authed(path);
    send_bad(c, bad[i], strlen(bad[i]));
    mp_connection_free(c);
    /* and after accept_connection */
    c = authed(path);
    send_obj(c, mp_obj_tuple_pack(4, mp_obj_none(), S("accept_connection"),
                                  mp_obj_tuple_pack(1, S("t")), mp_obj_dict()));
    send_bad(c, bad[i], strlen(bad[i]));
    mp_connection_free(c);
  }
  /* an oversized request (over max_request) closes only that connection */
  char *blob = calloc(1, 8192);
  mp_obj *big = mp_obj_bytes(blob, 8192);
  free(blob);
  assert_rc(mp_proxy_setitem(d, S("big"), big), MP_EPROTO);
  check_detail("over the limit");
  /* the next call opens a fresh connection and works */
  assert_int_equal(mp_proxy_len(d), 1);
  /* an unknown ident is a #TRACEBACK (Python's RemoteError) */
  mp_proxy *d2;
  assert_rc(mp_proxy_open(m, "dict 7f00", &d2), MP_EPROTO);
  assert_rc(mp_proxy_open(m, "nospace", &d2), MP_EINVAL);
  char tok[128];
  assert_rc(mp_proxy_token(d, tok, 4), MP_ETOOBIG);
  assert_rc(mp_proxy_token(d, tok, sizeof tok), 0);
  assert_rc(mp_proxy_open(m, tok, &d2), 0);
  assert_int_equal(mp_proxy_len(d2), 1);
  mp_proxy_free(d2);
  mp_proxy_free(d);
  mp_manager_free(m);
  assert_rc(mp_manager_server_stop(s), 0);
  pthread_join(th, NULL);
  mp_manager_server_free(s);
  assert_int_equal(access(path, F_OK), -1);
}


static void connection_limit(void **state) {
  (void)state;
  char path[108];
  snprintf(path, sizeof path, "/tmp/mp-test-%d-lim.sock", (int)getpid());
  mp_manager_opts o = {.address = path, .authkey = "k", .authkey_len = 1,
                       .max_connections = 2};
  mp_manager_server *s;
  assert_rc(mp_manager_server_new(&s, &o), 0);
  pthread_t th;
  pthread_create(&th, NULL, serve_thread, s);
  /* a client that stalls in the handshake takes no place (the listener
   * runs handshakes beside the served clients) */
  int stall = raw_connect(path);
  /* two clients that stall before their first request take both places */
  mp_connection *ca = authed(path), *cb = authed(path);
  /* a third is closed at once after its handshake */
  mp_connection *cc = authed(path);
  void *buf;
  size_t len;
  assert_int_equal(mp_connection_poll(cc, mp_test_slack(5)), 1);
  assert_rc(mp_connection_recv_bytes_alloc(cc, &buf, &len, 256), MP_ECLOSED);
  mp_connection_free(cc);
  /* once they leave, clients are served again */
  mp_connection_free(ca);
  mp_connection_free(cb);
  close(stall);
  mp_manager *m = NULL;
  int rc = MP_EAUTH;
  double end = mp_test_now() + mp_test_slack(10);
  while (rc && mp_test_now() < end) {
    rc = mp_manager_connect(&m, &o);
    if (rc) usleep(20000);
  }
  assert_rc(rc, 0);
  mp_manager_free(m);
  assert_rc(mp_manager_server_stop(s), 0);
  pthread_join(th, NULL);
  mp_manager_server_free(s);
}

/* ---- crash safety ---------------------------------------------------------------- */

static mp_proxy *shared_p;

static int hold_and_die(void *arg) {
  mp_test_signal *sig = arg;
  if (mp_proxy_acquire(shared_p, MP_FOREVER) != 0) return 1;
  mp_test_signal_post(sig);
  pause(); /* killed here, holding the lock */
  return 0;
}

static void dead_holder_releases_lock(void **state) {
  (void)state;
  /* G-MGR-2 */
  const char *types[] = {"Lock", "RLock", "Condition"};
  for (int i = 0; i < 3; i++) {
    assert_rc(mp_manager_create(M, types[i], NULL, NULL, &shared_p), 0);
    mp_test_signal sig;
    mp_test_signal_open(&sig);
    pid_t pid = mp_test_fork(hold_and_die, &sig);
    assert_int_equal(mp_test_signal_wait(&sig, mp_test_slack(10)), 1);
    assert_rc(mp_proxy_acquire(shared_p, 0), MP_EAGAIN);
    kill(pid, SIGKILL);
    mp_test_wait(pid, mp_test_slack(10));
    assert_rc(mp_proxy_acquire(shared_p, mp_test_slack(5)), 0);
    assert_rc(mp_proxy_release(shared_p), 0);
    mp_test_signal_close(&sig);
    mp_proxy_free(shared_p);
  }
}

static int wait_and_die(void *arg) {
  (void)arg;
  if (strcmp(mp_proxy_typeid(shared_p), "Condition") == 0) {
    if (mp_proxy_acquire(shared_p, MP_FOREVER)) return 1;
    mp_proxy_wait(shared_p, MP_FOREVER, NULL);
    return 0;
  }
  mp_proxy_wait(shared_p, MP_FOREVER, NULL);
  return 0;
}

static void dead_waiter_hangs_nobody(void **state) {
  (void)state;
  /* G-MGR-3: a barrier whose waiter dies breaks */
  assert_rc(mp_manager_barrier(M, 3, &shared_p), 0);
  pid_t pid = mp_test_fork(wait_and_die, NULL);
  mp_obj *n = NULL;
  for (int i = 0; i < 200; i++) {
    mp_obj_free(n);
    n = call1(shared_p, "__getattribute__", mp_obj_tuple_pack(1, S("n_waiting")));
    int64_t v = 0;
    mp_obj_get_int(n, &v);
    if (v == 1) break;
    usleep(10000);
  }
  mp_obj_free(n);
  kill(pid, SIGKILL);
  mp_test_wait(pid, mp_test_slack(10));
  double t0 = mp_test_now();
  assert_rc(mp_proxy_wait(shared_p, mp_test_slack(20), NULL), MP_EBROKEN);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  mp_proxy_free(shared_p);
  /* a condition notification taken by a dead waiter goes to a live one */
  assert_rc(mp_manager_condition(M, &shared_p), 0);
  pid = mp_test_fork(wait_and_die, NULL);
  usleep(200000); /* the child waits */
  kill(pid, SIGKILL);
  mp_test_wait(pid, mp_test_slack(10));
  assert_rc(mp_proxy_acquire(shared_p, mp_test_slack(5)), 0);
  thread_arg t = {.p = shared_p};
  pthread_t th;
  pthread_create(&th, NULL, notify_later, &t);
  assert_rc(mp_proxy_wait(shared_p, mp_test_slack(10), NULL), 0);
  assert_rc(mp_proxy_release(shared_p), 0);
  pthread_join(th, NULL);
  assert_rc(t.rc, 0);
  mp_proxy_free(shared_p);
}

static void *blocked_get(void *arg) {
  thread_arg *t = arg;
  mp_obj *v = NULL;
  t->rc = mp_proxy_get(t->p, &v, mp_test_slack(30));
  mp_obj_free(v);
  return NULL;
}

static void server_death_wakes_clients(void **state) {
  (void)state;
  /* G-MGR-4 */
  mp_proxy *q, *d;
  assert_rc(mp_manager_queue(M, 0, &q), 0);
  assert_rc(mp_manager_dict(M, &d), 0);
  thread_arg t = {.p = q};
  pthread_t th;
  pthread_create(&th, NULL, blocked_get, &t);
  usleep(100000);
  kill(mp_manager_pid(M), SIGKILL);
  double t0 = mp_test_now();
  pthread_join(th, NULL);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  assert_rc(t.rc, MP_ECLOSED);
  int rc = mp_proxy_setitem(d, S("a"), I(1));
  assert_true(rc == MP_ECLOSED || rc == -ECONNREFUSED || rc == -ENOENT);
  char path[300];
  snprintf(path, sizeof path, "%s", mp_manager_address(M));
  assert_rc(mp_manager_shutdown(M), 0);
  assert_int_equal(access(path, F_OK), -1); /* removed for the dead server */
  mp_proxy_free(q);
  mp_proxy_free(d);
}

static void blocked_call_stalls_nobody(void **state) {
  (void)state;
  /* G-MGR-5 */
  mp_proxy *q, *d;
  assert_rc(mp_manager_queue(M, 0, &q), 0);
  assert_rc(mp_manager_dict(M, &d), 0);
  thread_arg t = {.p = q};
  pthread_t th;
  pthread_create(&th, NULL, blocked_get, &t);
  usleep(50000);
  double t0 = mp_test_now();
  for (int i = 0; i < 100; i++) assert_rc(mp_proxy_setitem(d, I(i), I(i)), 0);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  assert_rc(mp_proxy_put(q, S("x"), MP_FOREVER), 0);
  pthread_join(th, NULL);
  assert_rc(t.rc, 0);
  mp_proxy_free(q);
  mp_proxy_free(d);
}

/* ---- the seeds: a dict and a list filled by ten processes -------------------------- */

static mp_proxy *seed_d, *seed_l;

static int seed_worker(void *arg) {
  long i = (long)arg;
  if (mp_proxy_setitem(seed_d, I(i), I(i * i))) return 1;
  if (mp_proxy_append(seed_l, I(i))) return 2;
  return 0;
}

static void forked_children_use_proxies(void **state) {
  (void)state;
  assert_rc(mp_manager_dict(M, &seed_d), 0);
  assert_rc(mp_manager_list(M, &seed_l), 0);
  pid_t pids[10];
  for (long i = 0; i < 10; i++) pids[i] = mp_test_fork(seed_worker, (void *)i);
  for (int i = 0; i < 10; i++) mp_test_wait_exit(pids[i], 0, mp_test_slack(60));
  assert_int_equal(mp_proxy_len(seed_d), 10);
  assert_int_equal(mp_proxy_len(seed_l), 10);
  mp_obj *v;
  assert_rc(mp_proxy_getitem(seed_d, I(9), &v), 0);
  check_repr(v, "81");
  mp_proxy_free(seed_d);
  mp_proxy_free(seed_l);
  mp_obj *n = NULL;
  (void)n;
}

static void nested_proxies(void **state) {
  (void)state;
  mp_proxy *d, *l, *l2;
  assert_rc(mp_manager_dict(M, &d), 0);
  assert_rc(mp_manager_list(M, &l), 0);
  assert_rc(mp_proxy_append(l, S("inner")), 0);
  assert_rc(mp_proxy_setitem(d, S("l"), mp_proxy_to_obj(l)), 0);
  char ident[64];
  snprintf(ident, sizeof ident, "%s", mp_proxy_ident(l));
  mp_proxy_free(l); /* the dict keeps the list alive */
  mp_obj *v = NULL;
  assert_rc(mp_proxy_getitem(d, S("l"), &v), 0);
  assert_rc(mp_proxy_from_obj(M, v, &l2), 0);
  mp_obj_free(v);
  assert_string_equal(mp_proxy_ident(l2), ident);
  assert_rc(mp_proxy_getitem(l2, I(0), &v), 0);
  check_repr(v, "'inner'");
  assert_rc(mp_proxy_from_obj(M, mp_obj_list_get(NULL, 0), &l), MP_EINVAL);
  mp_proxy_free(l2);
  mp_proxy_free(d);
}


/* A spawned child (a fresh program image) reaches the parent's manager by
 * its address and the process authkey it inherited, and the object by its
 * token. */
typedef struct spawn_arg {
  char address[300];
  char token[128];
} spawn_arg;

static int spawned_user(void *arg) {
  spawn_arg *a = arg;
  mp_manager_opts o = {.address = a->address};
  mp_manager *m;
  if (mp_manager_connect(&m, &o) != 0) return 1;
  mp_proxy *l;
  if (mp_proxy_open(m, a->token, &l) != 0) return 2;
  int rc = mp_proxy_append(l, S("from a spawned child")) != 0 ? 3 : 0;
  mp_proxy_free(l);
  mp_manager_free(m);
  return rc;
}
MP_TARGET(spawned_user)

static void spawned_child_uses_a_token(void **state) {
  (void)state;
  mp_proxy *l;
  assert_rc(mp_manager_list(M, &l), 0);
  spawn_arg a;
  snprintf(a.address, sizeof a.address, "%s", mp_manager_address(M));
  assert_rc(mp_proxy_token(l, a.token, sizeof a.token), 0);
  mp_context *ctx;
  assert_rc(mp_context_new(&ctx, MP_START_SPAWN), 0);
  mp_process_opts po = {.context = ctx, .arg_size = sizeof a};
  mp_process *p;
  assert_rc(mp_process_new(&p, spawned_user, &a, &po), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  mp_context_free(ctx);
  mp_obj *v = NULL;
  assert_rc(mp_proxy_getitem(l, I(0), &v), 0);
  check_repr(v, "'from a spawned child'");
  mp_proxy_free(l);
}

/* ---- register (a C type served by the manager) ---------------------------------------- */

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
static int counter_inc(void *state, const mp_obj *args, const mp_obj *kwds, mp_obj **result, void *ctx) {
  (void)kwds;
  (void)ctx;
  int64_t by = 1;
  if (mp_obj_len(args) > 0 && mp_obj_get_int(mp_obj_list_get(args, 0), &by) != 0)
    return MP_EINVAL;
  if (by < 0) {
    mp_obj *e = mp_obj_str("x");
    mp_obj_free(e);
    return MP_EVALUE;
  }
  *(int64_t *)state += by;
  *result = mp_obj_int(*(int64_t *)state);
  return 0;
}
static const mp_manager_method counter_methods[] = {{"increment", counter_inc}};
static const mp_manager_type counter_type = {.create = counter_create,
                                             .destroy = counter_destroy,
                                             .methods = counter_methods,
                                             .n_methods = 1};

static void register_c_type(void **state) {
  (void)state;
  mp_manager_registration reg = {"Counter", &counter_type};
  mp_manager_opts o = {.types = &reg, .n_types = 1};
  mp_manager *m;
  assert_rc(mp_manager_start(&m, &o), 0);
  mp_proxy *c;
  assert_rc(mp_manager_create(m, "Counter", mp_obj_tuple_pack(1, I(10)), NULL, &c), 0);
  check_repr(call1(c, "increment", NULL), "11");
  check_repr(call1(c, "increment", mp_obj_tuple_pack(1, I(4))), "15");
  assert_rc(mp_proxy_call(c, "increment", mp_obj_tuple_pack(1, I(-1)), NULL, NULL), MP_EVALUE);
  assert_rc(mp_proxy_call(c, "increment", mp_obj_tuple_pack(1, S("x")), NULL, NULL), MP_EINVAL);
  assert_rc(mp_proxy_call(c, "decrement", NULL, NULL, NULL), MP_ENOENT);
  mp_proxy_free(c);
  mp_manager_free(m);
  /* register errors */
  mp_manager_server *s;
  mp_manager_opts so = {.address = "127.0.0.1:0"};
  assert_rc(mp_manager_server_new(&s, &so), 0);
  assert_non_null(strstr(mp_manager_server_address(s), "127.0.0.1:"));
  assert_rc(mp_manager_server_register(s, "dict", &counter_type), MP_EEXIST);
  assert_rc(mp_manager_server_register(s, "", &counter_type), MP_EINVAL);
  assert_rc(mp_manager_server_register(s, "X", NULL), MP_EINVAL);
  mp_manager_server_free(s);
}

static void tcp_manager(void **state) {
  (void)state;
  mp_manager_opts o = {.address = "127.0.0.1:0", .authkey = "tcp", .authkey_len = 3};
  mp_manager *m;
  assert_rc(mp_manager_start(&m, &o), 0);
  assert_non_null(strstr(mp_manager_address(m), "127.0.0.1:"));
  mp_manager *c;
  mp_manager_opts co = {.address = mp_manager_address(m), .authkey = "tcp", .authkey_len = 3};
  assert_rc(mp_manager_connect(&c, &co), 0);
  mp_proxy *d;
  assert_rc(mp_manager_dict(c, &d), 0);
  assert_rc(mp_proxy_setitem(d, S("k"), S("v")), 0);
  mp_obj *v;
  assert_rc(mp_proxy_getitem(d, S("k"), &v), 0);
  check_repr(v, "'v'");
  mp_proxy_free(d);
  mp_manager_free(c);
  mp_manager_free(m);
}


/* ---- the standalone tool ---------------------------------------------------------- */

static pid_t run_tool(const char *keyfile, int *out) {
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 1);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    const char *tool = MP_BINARY_DIR "/mp-manager";
    if (keyfile)
      execl(tool, tool, "--address", "127.0.0.1:0", "--authkey-file", keyfile, (char *)NULL);
    else
      execl(tool, tool, "--address", "127.0.0.1:0", (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  *out = p[0];
  return pid;
}

static void read_line(int fd, char *line, size_t cap) {
  size_t n = 0;
  while (n < cap - 1) {
    ssize_t r = read(fd, line + n, 1);
    if (r <= 0 || line[n] == '\n') break;
    n++;
  }
  line[n] = 0;
}

static void tool_serves_and_stops_on_sigterm(void **state) {
  (void)state;
  if (access(MP_BINARY_DIR "/mp-manager", X_OK) != 0)
    mp_test_skip("mp-manager is not built");
  /* the key from the environment */
  setenv("MP_MANAGER_AUTHKEY", "envkey", 1);
  int fd;
  pid_t pid = run_tool(NULL, &fd);
  char line[200];
  read_line(fd, line, sizeof line);
  close(fd);
  assert_non_null(strstr(line, "serving on 127.0.0.1:"));
  mp_manager_opts o = {.address = line + strlen("serving on "), .authkey = "envkey",
                       .authkey_len = 6};
  mp_manager *m;
  assert_rc(mp_manager_connect(&m, &o), 0);
  mp_proxy *d;
  assert_rc(mp_manager_dict(m, &d), 0);
  assert_rc(mp_proxy_setitem(d, S("k"), I(1)), 0);
  kill(pid, SIGTERM);
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  assert_rc(mp_proxy_setitem(d, S("k"), I(2)), MP_ECLOSED);
  mp_proxy_free(d);
  mp_manager_free(m);
  /* the key from a file; a client's shutdown stops it too */
  char path[64];
  snprintf(path, sizeof path, "/tmp/mp-test-%d.key", (int)getpid());
  FILE *f = fopen(path, "w");
  fputs("filekey\n", f);
  fclose(f);
  unsetenv("MP_MANAGER_AUTHKEY");
  pid = run_tool(path, &fd);
  read_line(fd, line, sizeof line);
  close(fd);
  o.address = line + strlen("serving on ");
  o.authkey = "filekey";
  o.authkey_len = 7;
  assert_rc(mp_manager_connect(&m, &o), 0);
  assert_rc(mp_manager_shutdown(m), 0);
  mp_manager_free(m);
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  unlink(path);
  /* no key: a usage error, never a server without one */
  pid = run_tool(NULL, &fd);
  read_line(fd, line, sizeof line);
  close(fd);
  mp_test_wait_exit(pid, 2, mp_test_slack(10));
}

/* The same cases on the socket path. */
#define ON_SOCKET(name)                                                     \
  static void name##_on_socket(void **state) { name(state); }
ON_SOCKET(dict_methods)
ON_SOCKET(queue_methods)
ON_SOCKET(condition_methods)
ON_SOCKET(dead_holder_releases_lock)
ON_SOCKET(dead_waiter_hangs_nobody)
ON_SOCKET(server_death_wakes_clients)
ON_SOCKET(blocked_call_stalls_nobody)
ON_SOCKET(forked_children_use_proxies)

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(dict_methods_on_socket, mgr_setup_socket, mgr_teardown),
    cmocka_unit_test_setup_teardown(queue_methods_on_socket, mgr_setup_socket, mgr_teardown),
    cmocka_unit_test_setup_teardown(condition_methods_on_socket, mgr_setup_socket, mgr_teardown),
    cmocka_unit_test_setup_teardown(dead_holder_releases_lock_on_socket, mgr_setup_socket, mgr_teardown),
    cmocka_unit_test_setup_teardown(dead_waiter_hangs_nobody_on_socket, mgr_setup_socket, mgr_teardown),
    cmocka_unit_test_setup_teardown(server_death_wakes_clients_on_socket, mgr_setup_socket, mgr_teardown),
    cmocka_unit_test_setup_teardown(blocked_call_stalls_nobody_on_socket, mgr_setup_socket, mgr_teardown),
    cmocka_unit_test_setup_teardown(forked_children_use_proxies_on_socket, mgr_setup_socket, mgr_teardown),
    cmocka_unit_test_setup_teardown(start_and_shutdown, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(bad_arguments, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(connect_refused_and_wrong_key, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(dict_methods, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(dict_iter_is_a_proxy, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(allocation_failures, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(list_methods, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(namespace_methods, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(value_and_array, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(python_shaped_values_and_reprs, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(python_constructor_rules, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(python_proxy_methods, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(array_values_from_python, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(sort_is_stable_and_fast, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(queue_methods, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(joinable_queue, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(lock_methods, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(rlock_methods, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(semaphores, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(event_methods, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(condition_methods, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(barrier_methods, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(atomic_add_from_ten_processes, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(atomic_operations, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(atomic_apply_all_or_nothing, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(method_not_exposed_is_refused, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(nothing_read_before_handshake, mgr_setup, mgr_teardown),
    cmocka_unit_test(malformed_request_closes_that_connection),
    cmocka_unit_test(connection_limit),
    cmocka_unit_test_setup_teardown(dead_holder_releases_lock, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(dead_waiter_hangs_nobody, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(server_death_wakes_clients, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(blocked_call_stalls_nobody, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(forked_children_use_proxies, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(nested_proxies, mgr_setup, mgr_teardown),
    cmocka_unit_test_setup_teardown(spawned_child_uses_a_token, mgr_setup, mgr_teardown),
    cmocka_unit_test(register_c_type),
    cmocka_unit_test(tcp_manager),
    cmocka_unit_test(tool_serves_and_stops_on_sigterm),
};

int main(int argc, char **argv) {
  /* In a spawned child this runs the target and never returns. */
  mp_child_main(argc, argv);
  return mp_test_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]));
}
