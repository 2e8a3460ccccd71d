/* manager/proxy_python.c - the rest of the methods a Python user calls on
 * manager proxies, as typed C calls: a dict's `in`, keys/values/items,
 * get(key, default), update, popitem; a list's extend, insert, remove,
 * index, count, sort, reverse; a Queue's empty and full; a Condition's
 * wait_for (a loop on the client, as Python's ConditionProxy.wait_for);
 * a Barrier's parties, n_waiting and broken. Each is mp_proxy_call with the
 * method name Python's proxy sends, so each works against a Python server
 * as well as a C one. */
#include <string.h>

#include "manager/client_internal.h"

static int need(mp_obj *v) {
  return v ? 0 : mp__fail(MP_EINVAL, "a NULL value (or out of memory)");
}

/* number: the int (or bool) result r (taken) into *out. */
static int number(const char *method, mp_obj *r, int64_t *out) {
  int64_t v = 0;
  int b, rc = 0;
  if (mp_obj_get_int(r, &v) != 0) {
    if (mp_obj_get_bool(r, &b) == 0) v = b;
    else rc = mp__fail(MP_EPROTO, "%s returned a %s, not an int", method,
                       mp_obj_type_name(r));
  }
  mp_obj_free(r);
  if (rc == 0) *out = v;
  return rc;
}

/* scalar calls method with args (taken) and returns its int result (a
 * bool as 1 or 0), or an error. */
static ssize_t scalar(mp_proxy *p, const char *method, mp_obj *args) {
  mp_obj *r = NULL;
  int rc = mp_proxy_call(p, method, args, NULL, &r);
  if (rc) return rc;
  int64_t v = 0;
  rc = number(method, r, &v);
  return rc ? rc : (ssize_t)v;
}

static int out_call(mp_proxy *p, const char *method, mp_obj *args, mp_obj **out) {
  if (!out) {
    mp_obj_free(args);
    return mp__fail(MP_EINVAL, "out is NULL");
  }
  return mp_proxy_call(p, method, args, NULL, out);
}

/* ---- dict -------------------------------------------------------------------- */

int mp_proxy_contains(mp_proxy *p, mp_obj *value) {
  if (need(value)) return MP_EINVAL;
  return (int)scalar(p, "__contains__", mp_obj_tuple_pack(1, value));
}

int mp_proxy_keys(mp_proxy *p, mp_obj **out) { return out_call(p, "keys", NULL, out); }
int mp_proxy_values(mp_proxy *p, mp_obj **out) { return out_call(p, "values", NULL, out); }
int mp_proxy_items(mp_proxy *p, mp_obj **out) { return out_call(p, "items", NULL, out); }

int mp_proxy_dict_get(mp_proxy *p, mp_obj *key, mp_obj *dflt, mp_obj **out) {
  if (need(key)) {
    mp_obj_free(dflt);
    return MP_EINVAL;
  }
  mp_obj *args = dflt ? mp_obj_tuple_pack(2, key, dflt) : mp_obj_tuple_pack(1, key);
  return out_call(p, "get", args, out);
}

int mp_proxy_update(mp_proxy *p, mp_obj *other) {
  if (need(other)) return MP_EINVAL;
  return mp_proxy_call(p, "update", mp_obj_tuple_pack(1, other), NULL, NULL);
}

int mp_proxy_popitem(mp_proxy *p, mp_obj **key, mp_obj **value) {
  mp_obj *r = NULL;
  int rc = mp_proxy_call(p, "popitem", NULL, NULL, &r);
  if (rc) return rc;
  mp_obj_type t = mp_obj_type_of(r);
  if ((t != MP_OBJ_TUPLE && t != MP_OBJ_LIST) || mp_obj_len(r) != 2) {
    mp_obj_free(r);
    return mp__fail(MP_EPROTO, "popitem returned no (key, value) pair");
  }
  mp_obj *k = mp_obj_copy(mp_obj_list_get(r, 0));
  mp_obj *v = mp_obj_copy(mp_obj_list_get(r, 1));
  mp_obj_free(r);
  if (!k || !v) {
    mp_obj_free(k);
    mp_obj_free(v);
    return MP_ENOMEM;
  }
  if (key) *key = k;
  else mp_obj_free(k);
  if (value) *value = v;
  else mp_obj_free(v);
  return 0;
}

/* ---- list -------------------------------------------------------------------- */

int mp_proxy_extend(mp_proxy *p, mp_obj *items) {
  if (need(items)) return MP_EINVAL;
  return mp_proxy_call(p, "extend", mp_obj_tuple_pack(1, items), NULL, NULL);
}

int mp_proxy_insert(mp_proxy *p, ssize_t index, mp_obj *value) {
  if (need(value)) return MP_EINVAL;
  return mp_proxy_call(p, "insert",
                       mp_obj_tuple_pack(2, mp_obj_int((int64_t)index), value),
                       NULL, NULL);
}

int mp_proxy_remove(mp_proxy *p, mp_obj *value) {
  if (need(value)) return MP_EINVAL;
  return mp_proxy_call(p, "remove", mp_obj_tuple_pack(1, value), NULL, NULL);
}

ssize_t mp_proxy_index(mp_proxy *p, mp_obj *value) {
  if (need(value)) return MP_EINVAL;
  return scalar(p, "index", mp_obj_tuple_pack(1, value));
}

ssize_t mp_proxy_count(mp_proxy *p, mp_obj *value) {
  if (need(value)) return MP_EINVAL;
  return scalar(p, "count", mp_obj_tuple_pack(1, value));
}

int mp_proxy_sort(mp_proxy *p, int reverse) {
  mp_obj *kw = NULL;
  if (reverse) {
    kw = mp_obj_dict();
    if (!kw || mp_obj_dict_set_str(kw, "reverse", mp_obj_bool(1))) {
      mp_obj_free(kw);
      return MP_ENOMEM;
    }
  }
  return mp_proxy_call(p, "sort", NULL, kw, NULL);
}

int mp_proxy_reverse(mp_proxy *p) {
  return mp_proxy_call(p, "reverse", NULL, NULL, NULL);
}

/* ---- Queue ------------------------------------------------------------------- */

int mp_proxy_empty(mp_proxy *p) { return (int)scalar(p, "empty", NULL); }
int mp_proxy_full(mp_proxy *p) { return (int)scalar(p, "full", NULL); }

/* ---- Condition --------------------------------------------------------------- */

int mp_proxy_wait_for(mp_proxy *p, mp_proxy_predicate predicate, void *ctx,
                      double timeout) {
  if (!p || !predicate) return mp__fail(MP_EINVAL, "proxy or predicate is NULL");
  if (timeout != timeout) return mp__fail(MP_EINVAL, "timeout is NaN");
  mp__deadline d = mp__deadline_from_timeout(timeout < 0 ? MP_FOREVER : timeout);
  for (;;) {
    int r = predicate(ctx);
    if (r < 0) return r;
    if (r > 0) return 0;
    double wait = MP_FOREVER;
    if (!mp__deadline_forever(d)) {
      int64_t left = mp__deadline_remaining_ns(d);
      if (left <= 0) return mp__fail(MP_ETIMEDOUT, "the predicate stayed false");
      wait = (double)left / 1e9;
    }
    int rc = mp_proxy_wait(p, wait, NULL);
    if (rc && rc != MP_ETIMEDOUT) return rc;
  }
}

/* ---- Barrier ----------------------------------------------------------------- */

static ssize_t attribute(mp_proxy *p, const char *name) {
  return scalar(p, "__getattribute__", mp_obj_tuple_pack(1, mp_obj_str(name)));
}

ssize_t mp_proxy_parties(mp_proxy *p) { return attribute(p, "parties"); }
ssize_t mp_proxy_n_waiting(mp_proxy *p) { return attribute(p, "n_waiting"); }
int mp_proxy_broken(mp_proxy *p) { return (int)attribute(p, "broken"); }
