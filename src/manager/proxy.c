/* manager/proxy.c - proxies: the C face of a shared object on a manager.
 * Creating one sends 'create' and keeps the reference the server gives the
 * creator; mp_proxy_free sends 'decref'. Every typed call (getitem,
 * append, acquire, put, mp_proxy_add, ...) is mp_proxy_call with the method
 * name Python's proxy classes use, so the same calls work against a C or a
 * Python server (the atomic operations need a C server). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manager/client_internal.h"

static int proxy_new(mp_manager *m, const char *typeid, const char *ident,
                     const mp_obj *exposed, mp_proxy **out) {
  if (strlen(typeid) >= sizeof((mp_proxy *)0)->typeid ||
      strlen(ident) >= MP__MGR_MAX_IDENT)
    return mp__fail(MP_EPROTO, "typeid or ident too long");
  mp_proxy *p = mp__calloc(1, sizeof *p);
  if (!p) return MP_ENOMEM;
  p->m = m;
  snprintf(p->typeid, sizeof p->typeid, "%s", typeid);
  snprintf(p->ident, sizeof p->ident, "%s", ident);
  if (exposed && !(p->exposed = mp_obj_copy(exposed))) {
    mp__free(p);
    return MP_ENOMEM;
  }
  p->ref_pid = getpid();
  *out = p;
  return 0;
}

int mp_manager_create(mp_manager *m, const char *typeid, mp_obj *args,
                      mp_obj *kwds, mp_proxy **out) {
  if (!m || !typeid || !out) {
    mp_obj_free(args);
    mp_obj_free(kwds);
    return mp__fail(MP_EINVAL, "create needs a manager, a typeid and out");
  }
  if (args && mp_obj_type_of(args) != MP_OBJ_TUPLE) {
    mp_obj_free(args);
    mp_obj_free(kwds);
    return mp__fail(MP_EINVAL, "args must be a tuple");
  }
  /* ('create', (typeid, *args), kwds) */
  ssize_t n = args ? mp_obj_len(args) : 0;
  mp_obj *items[MP__MGR_MAX_ARGS + 1];
  if (n > MP__MGR_MAX_ARGS) {
    mp_obj_free(args);
    mp_obj_free(kwds);
    return mp__fail(MP_EINVAL, "too many constructor arguments");
  }
  items[0] = mp_obj_str(typeid);
  for (ssize_t i = 0; i < n; i++)
    items[i + 1] = mp_obj_copy(mp_obj_list_get(args, i));
  mp_obj_free(args);
  mp_obj *cargs = mp_obj_tuple_from((size_t)n + 1, items);
  if (!cargs) {
    mp_obj_free(kwds);
    return MP_ENOMEM;
  }
  mp_obj *res = NULL;
  int rc;
  if (m->shut) {
    mp_obj_free(cargs);
    mp_obj_free(kwds);
    return mp__fail(MP_ECLOSED, "the manager was shut down");
  }
  /* create goes on a fresh connection, with kwds */
  {
    mp_obj *call_kw = kwds;
    rc = mp__mgr_control_kw(m, "create", cargs, call_kw, &res);
  }
  if (rc) return rc;
  const char *ident;
  if (mp_obj_type_of(res) != MP_OBJ_TUPLE || mp_obj_len(res) != 2 ||
      mp_obj_get_str(mp_obj_list_get(res, 0), &ident, NULL) != 0) {
    mp_obj_free(res);
    return mp__fail(MP_EPROTO, "create's reply is not (ident, exposed)");
  }
  rc = proxy_new(m, typeid, ident, mp_obj_list_get(res, 1), out);
  if (rc) mp__mgr_control(m, "decref", mp_obj_tuple_pack(1, mp_obj_str(ident)), NULL);
  mp_obj_free(res);
  return rc;
}

int mp_manager_dict(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "dict", NULL, NULL, out);
}
int mp_manager_list(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "list", NULL, NULL, out);
}
int mp_manager_namespace(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "Namespace", NULL, NULL, out);
}
int mp_manager_value(mp_manager *m, const char *typecode, mp_obj *init,
                     mp_proxy **out) {
  if (!typecode) {
    mp_obj_free(init);
    return mp__fail(MP_EINVAL, "typecode is NULL");
  }
  return mp_manager_create(
      m, "Value", mp_obj_tuple_pack(2, mp_obj_str(typecode), init), NULL, out);
}
int mp_manager_array(mp_manager *m, const char *typecode, mp_obj *items,
                     mp_proxy **out) {
  if (!typecode) {
    mp_obj_free(items);
    return mp__fail(MP_EINVAL, "typecode is NULL");
  }
  return mp_manager_create(
      m, "Array", mp_obj_tuple_pack(2, mp_obj_str(typecode), items), NULL, out);
}
int mp_manager_queue(mp_manager *m, long maxsize, mp_proxy **out) {
  return mp_manager_create(m, "Queue", mp_obj_tuple_pack(1, mp_obj_int(maxsize)),
                           NULL, out);
}
int mp_manager_joinable_queue(mp_manager *m, long maxsize, mp_proxy **out) {
  return mp_manager_create(m, "JoinableQueue",
                           mp_obj_tuple_pack(1, mp_obj_int(maxsize)), NULL, out);
}
int mp_manager_lock(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "Lock", NULL, NULL, out);
}
int mp_manager_rlock(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "RLock", NULL, NULL, out);
}
int mp_manager_semaphore(mp_manager *m, long value, mp_proxy **out) {
  return mp_manager_create(m, "Semaphore",
                           mp_obj_tuple_pack(1, mp_obj_int(value)), NULL, out);
}
int mp_manager_bounded_semaphore(mp_manager *m, long value, mp_proxy **out) {
  return mp_manager_create(m, "BoundedSemaphore",
                           mp_obj_tuple_pack(1, mp_obj_int(value)), NULL, out);
}
int mp_manager_condition(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "Condition", NULL, NULL, out);
}
int mp_manager_event(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "Event", NULL, NULL, out);
}
int mp_manager_barrier(mp_manager *m, long parties, mp_proxy **out) {
  return mp_manager_create(m, "Barrier",
                           mp_obj_tuple_pack(1, mp_obj_int(parties)), NULL, out);
}

/* ---- the proxy itself -------------------------------------------------------- */

/* ensure_ref takes this process's own reference the first time a forked
 * child uses a proxy it inherited. */
static int ensure_ref(mp_proxy *p) {
  pid_t me = getpid();
  if (p->ref_pid == me) return 0;
  int rc = mp__mgr_control(p->m, "incref",
                           mp_obj_tuple_pack(1, mp_obj_str(p->ident)), NULL);
  if (rc) return rc;
  p->ref_pid = me;
  return 0;
}

/* call_wait is mp_proxy_call waiting up to wait seconds for the reply
 * (negative: without end). */
static int call_wait(mp_proxy *p, const char *method, mp_obj *args,
                     mp_obj *kwds, double wait, mp_obj **result) {
  if (!p || !method) {
    mp_obj_free(args);
    mp_obj_free(kwds);
    return mp__fail(MP_EINVAL, "call needs a proxy and a method");
  }
  if (args && mp_obj_type_of(args) != MP_OBJ_TUPLE) {
    mp_obj_free(args);
    mp_obj_free(kwds);
    return mp__fail(MP_EINVAL, "args must be a tuple");
  }
  if (kwds && mp_obj_type_of(kwds) != MP_OBJ_DICT) {
    mp_obj_free(args);
    mp_obj_free(kwds);
    return mp__fail(MP_EINVAL, "kwds must be a dict");
  }
  int rc = ensure_ref(p);
  if (rc) {
    mp_obj_free(args);
    mp_obj_free(kwds);
    return rc;
  }
  return mp__mgr_client_call(p->m, p->ident, method, args, kwds, wait, result);
}

/* plain_wait: how long a call that does not block on the server waits for
 * its reply; blocking_wait: a call that blocks up to timeout there. */
static double plain_wait(const mp_proxy *p) {
  return p && p->m->call_timeout > 0 ? p->m->call_timeout : MP_FOREVER;
}

static double blocking_wait(const mp_proxy *p, double timeout) {
  if (timeout < 0) return MP_FOREVER;
  return timeout + (p && p->m->call_timeout > 0 ? p->m->call_timeout
                                                : MP__MGR_GRACE);
}

int mp_proxy_call(mp_proxy *p, const char *method, mp_obj *args, mp_obj *kwds,
                  mp_obj **result) {
  return call_wait(p, method, args, kwds, plain_wait(p), result);
}

int mp_proxy_call_timeout(mp_proxy *p, const char *method, mp_obj *args,
                          mp_obj *kwds, double timeout, mp_obj **result) {
  if (timeout != timeout) {
    mp_obj_free(args);
    mp_obj_free(kwds);
    return mp__fail(MP_EINVAL, "timeout is NaN");
  }
  return call_wait(p, method, args, kwds, timeout < 0 ? MP_FOREVER : timeout,
                   result);
}

void mp_proxy_free(mp_proxy *p) {
  if (!p) return;
  if (p->ref_pid == getpid() && !p->m->shut)
    mp__mgr_control(p->m, "decref", mp_obj_tuple_pack(1, mp_obj_str(p->ident)),
                    NULL);
  mp_obj_free(p->exposed);
  mp__free(p);
}

const char *mp_proxy_typeid(const mp_proxy *p) { return p ? p->typeid : NULL; }
const char *mp_proxy_ident(const mp_proxy *p) { return p ? p->ident : NULL; }

mp_obj *mp_proxy_to_obj(const mp_proxy *p) {
  if (!p) {
    mp__fail(MP_EINVAL, "proxy is NULL");
    return NULL;
  }
  return mp__mgr_rebuild_obj(p->m, p->typeid, p->ident, p->exposed);
}

int mp_proxy_from_obj(mp_manager *m, const mp_obj *v, mp_proxy **out) {
  const char *mod, *name;
  if (!m || !out || mp_obj_type_of(v) != MP_OBJ_INSTANCE ||
      mp_obj_global_name(v, &mod, &name) != 0 ||
      strcmp(name, "RebuildProxy") != 0)
    return mp__fail(MP_EINVAL, "the value is not a proxy (RebuildProxy)");
  mp_obj *args = mp_obj_instance_args(v);
  mp_obj *tok = args ? mp_obj_list_get(args, 1) : NULL;
  mp_obj *st = tok ? mp_obj_instance_state(tok) : NULL;
  const char *typeid, *ident;
  if (!st || mp_obj_get_str(mp_obj_list_get(st, 0), &typeid, NULL) != 0 ||
      mp_obj_get_str(mp_obj_list_get(st, 2), &ident, NULL) != 0)
    return mp__fail(MP_EINVAL, "the proxy value has no Token");
  mp_obj *kw = args ? mp_obj_list_get(args, 3) : NULL;
  mp_obj *exposed = kw && mp_obj_type_of(kw) == MP_OBJ_DICT
                        ? mp_obj_dict_get_str(kw, "exposed")
                        : NULL;
  /* {'incref': False}: the value carries a reference already (a method
   * that returned a proxy); adopt it. */
  mp_obj *inc = kw && mp_obj_type_of(kw) == MP_OBJ_DICT
                    ? mp_obj_dict_get_str(kw, "incref")
                    : NULL;
  int adopt = 0;
  if (inc && mp_obj_get_bool(inc, &adopt) == 0) adopt = !adopt;
  int rc = 0;
  if (!adopt) {
    rc = mp__mgr_control(m, "incref", mp_obj_tuple_pack(1, mp_obj_str(ident)),
                         NULL);
    if (rc) return rc;
  }
  rc = proxy_new(m, typeid, ident, exposed, out);
  if (rc)
    mp__mgr_control(m, "decref", mp_obj_tuple_pack(1, mp_obj_str(ident)), NULL);
  return rc;
}

int mp_proxy_token(const mp_proxy *p, char *buf, size_t cap) {
  if (!p || !buf) return mp__fail(MP_EINVAL, "proxy or buf is NULL");
  int n = snprintf(buf, cap, "%s %s", p->typeid, p->ident);
  if (n < 0 || (size_t)n >= cap)
    return mp__fail(MP_ETOOBIG, "token needs %d bytes", n + 1);
  return 0;
}

int mp_proxy_open(mp_manager *m, const char *token, mp_proxy **out) {
  if (!m || !token || !out) return mp__fail(MP_EINVAL, "NULL argument");
  const char *sp = strchr(token, ' ');
  if (!sp || sp == token || !sp[1] || (size_t)(sp - token) >= 64)
    return mp__fail(MP_EINVAL, "token is not 'typeid ident'");
  char typeid[64];
  memcpy(typeid, token, (size_t)(sp - token));
  typeid[sp - token] = 0;
  int rc = mp__mgr_control(m, "incref", mp_obj_tuple_pack(1, mp_obj_str(sp + 1)),
                           NULL);
  if (rc) return rc;
  rc = proxy_new(m, typeid, sp + 1, NULL, out);
  if (rc)
    mp__mgr_control(m, "decref", mp_obj_tuple_pack(1, mp_obj_str(sp + 1)), NULL);
  return rc;
}

/* ---- typed calls ------------------------------------------------------------ */

#define T0() mp_obj_tuple_from(0, NULL)
#define T1(a) mp_obj_tuple_pack(1, (a))
#define T2(a, b) mp_obj_tuple_pack(2, (a), (b))
#define T3(a, b, c) mp_obj_tuple_pack(3, (a), (b), (c))

/* plain turns what a server sends for a Namespace, a managers.Value or an
 * array.array (Python's objects, as a Python client gets them) into the
 * plain value a C caller wants: the Namespace's attributes as a dict, the
 * Value's value, the array's items as a list. Anything else is kept. */
static int plain(mp_obj **v) {
  const char *mod, *name;
  if (mp_obj_type_of(*v) != MP_OBJ_INSTANCE ||
      mp_obj_global_name(*v, &mod, &name) != 0)
    return 0;
  mp_obj *st = mp_obj_instance_state(*v);
  mp_obj *r = NULL;
  if (strcmp(mod, "multiprocessing.managers") == 0 &&
      strcmp(name, "Namespace") == 0)
    r = st && mp_obj_type_of(st) == MP_OBJ_DICT ? mp_obj_copy(st) : mp_obj_dict();
  else if (strcmp(mod, "multiprocessing.managers") == 0 &&
           strcmp(name, "Value") == 0 && st && mp_obj_dict_get_str(st, "_value"))
    r = mp_obj_copy(mp_obj_dict_get_str(st, "_value"));
  else if (mp__mgr_is_pyarray(*v)) {
    int rc = mp__mgr_pyarray_items(*v, &r);
    if (rc) return rc == MP_EINVAL ? mp__fail(MP_EPROTO, "%s", mp_error_detail()) : rc;
  } else
    return 0;
  if (!r) return MP_ENOMEM;
  mp_obj_free(*v);
  *v = r;
  return 0;
}

int mp_proxy_getvalue(mp_proxy *p, mp_obj **out) {
  if (!out) return mp__fail(MP_EINVAL, "out is NULL");
  mp_obj *v = NULL;
  int rc = mp_proxy_call(p, "#GETVALUE", NULL, NULL, &v);
  if (rc == 0 && (rc = plain(&v)) != 0) mp_obj_free(v);
  if (rc == 0) *out = v;
  return rc;
}

int mp_proxy_repr(mp_proxy *p, char **out) {
  if (!out) return mp__fail(MP_EINVAL, "out is NULL");
  mp_obj *r = NULL;
  int rc = mp_proxy_call(p, "__repr__", NULL, NULL, &r);
  if (rc) return rc;
  const char *s;
  if (mp_obj_get_str(r, &s, NULL) != 0) {
    mp_obj_free(r);
    return mp__fail(MP_EPROTO, "__repr__ returned no str");
  }
  *out = strdup(s);
  mp_obj_free(r);
  return *out ? 0 : MP_ENOMEM;
}

static int need(mp_obj *v) {
  return v ? 0 : mp__fail(MP_EINVAL, "a NULL value (or out of memory)");
}

int mp_proxy_getitem(mp_proxy *p, mp_obj *key, mp_obj **out) {
  if (need(key)) return MP_EINVAL;
  mp_obj *v = NULL;
  int rc = mp_proxy_call(p, "__getitem__", T1(key), NULL, out ? &v : NULL);
  if (rc == 0 && out && (rc = plain(&v)) != 0) mp_obj_free(v); /* an Array slice */
  if (rc == 0 && out) *out = v;
  return rc;
}
int mp_proxy_setitem(mp_proxy *p, mp_obj *key, mp_obj *value) {
  if (need(key) || need(value)) {
    mp_obj_free(key);
    mp_obj_free(value);
    return MP_EINVAL;
  }
  return mp_proxy_call(p, "__setitem__", T2(key, value), NULL, NULL);
}
int mp_proxy_delitem(mp_proxy *p, mp_obj *key) {
  if (need(key)) return MP_EINVAL;
  return mp_proxy_call(p, "__delitem__", T1(key), NULL, NULL);
}
ssize_t mp_proxy_len(mp_proxy *p) {
  mp_obj *r = NULL;
  int rc = mp_proxy_call(p, "__len__", NULL, NULL, &r);
  if (rc) return rc;
  int64_t n = 0;
  rc = mp_obj_get_int(r, &n);
  mp_obj_free(r);
  return rc ? MP_EPROTO : (ssize_t)n;
}
int mp_proxy_append(mp_proxy *p, mp_obj *value) {
  if (need(value)) return MP_EINVAL;
  return mp_proxy_call(p, "append", T1(value), NULL, NULL);
}

int mp_proxy_getattr(mp_proxy *p, const char *name, mp_obj **out) {
  if (!name) return mp__fail(MP_EINVAL, "name is NULL");
  return mp_proxy_call(p, "__getattribute__", T1(mp_obj_str(name)), NULL, out);
}
int mp_proxy_setattr(mp_proxy *p, const char *name, mp_obj *value) {
  if (!name || need(value)) {
    mp_obj_free(value);
    return mp__fail(MP_EINVAL, "name or value is NULL");
  }
  return mp_proxy_call(p, "__setattr__", T2(mp_obj_str(name), value), NULL,
                       NULL);
}
int mp_proxy_delattr(mp_proxy *p, const char *name) {
  if (!name) return mp__fail(MP_EINVAL, "name is NULL");
  return mp_proxy_call(p, "__delattr__", T1(mp_obj_str(name)), NULL, NULL);
}
int mp_proxy_get_value(mp_proxy *p, mp_obj **out) {
  return mp_proxy_call(p, "get", NULL, NULL, out);
}
int mp_proxy_set_value(mp_proxy *p, mp_obj *value) {
  if (need(value)) return MP_EINVAL;
  return mp_proxy_call(p, "set", T1(value), NULL, NULL);
}

/* ---- atomic operations ------------------------------------------------------ */

int mp_proxy_add(mp_proxy *p, mp_obj *key, mp_obj *delta, mp_obj **result) {
  if (need(key) || need(delta)) {
    mp_obj_free(key);
    mp_obj_free(delta);
    return MP_EINVAL;
  }
  return mp_proxy_call(p, "mp_add", T2(key, delta), NULL, result);
}

int mp_proxy_compare_and_set(mp_proxy *p, mp_obj *key, mp_obj *expected,
                             mp_obj *desired, int *swapped) {
  if (need(key) || need(expected) || need(desired)) {
    mp_obj_free(key);
    mp_obj_free(expected);
    mp_obj_free(desired);
    return MP_EINVAL;
  }
  mp_obj *r = NULL;
  int rc = mp_proxy_call(p, "mp_cas", T3(key, expected, desired), NULL, &r);
  if (rc) return rc;
  int b = 0;
  mp_obj_get_bool(r, &b);
  mp_obj_free(r);
  if (swapped) *swapped = b;
  return 0;
}

int mp_proxy_setdefault(mp_proxy *p, mp_obj *key, mp_obj *dflt,
                        mp_obj **result) {
  if (need(key) || need(dflt)) {
    mp_obj_free(key);
    mp_obj_free(dflt);
    return MP_EINVAL;
  }
  return mp_proxy_call(p, "setdefault", T2(key, dflt), NULL, result);
}

int mp_proxy_pop(mp_proxy *p, mp_obj *key, mp_obj *dflt, mp_obj **result) {
  mp_obj *args;
  if (!key) args = dflt ? NULL : T0(); /* list.pop() */
  else args = dflt ? T2(key, dflt) : T1(key);
  if (!key && dflt) {
    mp_obj_free(dflt);
    return mp__fail(MP_EINVAL, "a default needs a key");
  }
  return mp_proxy_call(p, "pop", args, NULL, result);
}

int mp_proxy_append_if_absent(mp_proxy *p, mp_obj *value, int *appended) {
  if (need(value)) return MP_EINVAL;
  mp_obj *r = NULL;
  int rc = mp_proxy_call(p, "mp_append_if_absent", T1(value), NULL, &r);
  if (rc) return rc;
  int b = 0;
  mp_obj_get_bool(r, &b);
  mp_obj_free(r);
  if (appended) *appended = b;
  return 0;
}

int mp_proxy_apply(mp_proxy *p, mp_obj *ops, mp_obj **results) {
  if (need(ops)) return MP_EINVAL;
  return mp_proxy_call(p, "mp_apply", T1(ops), NULL, results);
}

/* ---- Queue ---------------------------------------------------------------- */

static mp_obj *timeout_obj(double timeout) {
  return timeout < 0 ? mp_obj_none() : mp_obj_float(timeout);
}

int mp_proxy_put(mp_proxy *p, mp_obj *item, double timeout) {
  if (need(item)) return MP_EINVAL;
  if (timeout != timeout) {
    mp_obj_free(item);
    return mp__fail(MP_EINVAL, "timeout is NaN");
  }
  int rc = timeout == 0
               ? mp_proxy_call(p, "put_nowait", T1(item), NULL, NULL)
               : call_wait(p, "put", T3(item, mp_obj_bool(1), timeout_obj(timeout)),
                           NULL, blocking_wait(p, timeout), NULL);
  if (rc == MP_EAGAIN && timeout > 0) rc = MP_ETIMEDOUT;
  return rc;
}

int mp_proxy_get(mp_proxy *p, mp_obj **out, double timeout) {
  if (!out) return mp__fail(MP_EINVAL, "out is NULL");
  if (timeout != timeout) return mp__fail(MP_EINVAL, "timeout is NaN");
  int rc = timeout == 0 ? mp_proxy_call(p, "get_nowait", NULL, NULL, out)
                        : call_wait(p, "get",
                                    T2(mp_obj_bool(1), timeout_obj(timeout)),
                                    NULL, blocking_wait(p, timeout), out);
  if (rc == MP_EAGAIN && timeout > 0) rc = MP_ETIMEDOUT;
  return rc;
}

static int int_call(mp_proxy *p, const char *method, int64_t *out) {
  mp_obj *r = NULL;
  int rc = mp_proxy_call(p, method, NULL, NULL, &r);
  if (rc) return rc;
  int64_t v = 0;
  int b;
  if (mp_obj_get_int(r, &v) != 0) {
    if (mp_obj_get_bool(r, &b) == 0) v = b;
    else rc = mp__fail(MP_EPROTO, "%s returned no int", method);
  }
  mp_obj_free(r);
  *out = v;
  return rc;
}

ssize_t mp_proxy_qsize(mp_proxy *p) {
  int64_t v;
  int rc = int_call(p, "qsize", &v);
  return rc ? rc : (ssize_t)v;
}
int mp_proxy_task_done(mp_proxy *p) {
  return mp_proxy_call(p, "task_done", NULL, NULL, NULL);
}
int mp_proxy_join(mp_proxy *p) {
  return call_wait(p, "join", NULL, NULL, MP_FOREVER, NULL);
}

/* ---- sync objects ------------------------------------------------------------ */

int mp_proxy_acquire(mp_proxy *p, double timeout) {
  if (timeout != timeout) return mp__fail(MP_EINVAL, "timeout is NaN");
  mp_obj *args = timeout == 0  ? T1(mp_obj_bool(0))
                 : timeout < 0 ? T1(mp_obj_bool(1))
                               : T2(mp_obj_bool(1), mp_obj_float(timeout));
  mp_obj *r = NULL;
  int rc = call_wait(p, "acquire", args, NULL, blocking_wait(p, timeout), &r);
  if (rc) return rc;
  int b = 0;
  mp_obj_get_bool(r, &b);
  mp_obj_free(r);
  if (!b) return timeout == 0 ? MP_EAGAIN : MP_ETIMEDOUT;
  return 0;
}
int mp_proxy_release(mp_proxy *p) {
  return mp_proxy_call(p, "release", NULL, NULL, NULL);
}

int mp_proxy_wait(mp_proxy *p, double timeout, long *index) {
  if (!p) return mp__fail(MP_EINVAL, "proxy is NULL");
  if (timeout != timeout) return mp__fail(MP_EINVAL, "timeout is NaN");
  mp_obj *r = NULL;
  int rc = call_wait(p, "wait", T1(timeout_obj(timeout)), NULL,
                     blocking_wait(p, timeout), &r);
  if (rc) return rc;
  int64_t v = 0;
  int b = 1;
  if (mp_obj_type_of(r) == MP_OBJ_BOOL) mp_obj_get_bool(r, &b);
  else mp_obj_get_int(r, &v);
  mp_obj_free(r);
  if (!b) return MP_ETIMEDOUT;
  if (index) *index = (long)v;
  return 0;
}

int mp_proxy_set(mp_proxy *p) { return mp_proxy_call(p, "set", NULL, NULL, NULL); }
int mp_proxy_clear(mp_proxy *p) { return mp_proxy_call(p, "clear", NULL, NULL, NULL); }
int mp_proxy_is_set(mp_proxy *p) {
  int64_t v;
  int rc = int_call(p, "is_set", &v);
  return rc ? rc : v != 0;
}
int mp_proxy_notify(mp_proxy *p, long n) {
  return mp_proxy_call(p, "notify", T1(mp_obj_int(n)), NULL, NULL);
}
int mp_proxy_notify_all(mp_proxy *p) {
  return mp_proxy_call(p, "notify_all", NULL, NULL, NULL);
}
int mp_proxy_abort(mp_proxy *p) { return mp_proxy_call(p, "abort", NULL, NULL, NULL); }
int mp_proxy_reset(mp_proxy *p) { return mp_proxy_call(p, "reset", NULL, NULL, NULL); }
