/* manager/types_container.c - the container types a manager serves: dict,
 * list, Namespace, Value, Array and the Iterator a dict's __iter__ returns,
 * with the methods Python's DictProxy, ListProxy, NamespaceProxy,
 * ValueProxy and ArrayProxy call, the exceptions Python raises (KeyError,
 * IndexError, ValueError, AttributeError, TypeError), and the atomic
 * operations beyond Python (mp_add, mp_cas, setdefault, pop,
 * mp_append_if_absent, mp_apply) on dict, list and Namespace.
 *
 * Every method runs with the server's mutex held (server.c), so each call,
 * and each mp_apply batch, is atomic with respect to every other client.
 * Values crossing the boundary are copied: the request keeps its own, the
 * container its own. A list is a C array of owned values (so insert and
 * delete move pointers, not values); a dict or Namespace is an mp_obj
 * dict. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/manager_internal.h"
#include "manager/method_args.h"

static int nomem(mp__mgr_call *call) {
  return mp__mgr_traceback(call, "MemoryError: out of memory");
}

static int set_result(mp__mgr_call *call, mp_obj *v) {
  if (!v) return nomem(call);
  call->result = v;
  return 0;
}

static int key_error(mp__mgr_call *call, const mp_obj *key) {
  return mp__mgr_raise(call, "builtins", "KeyError", mp_obj_copy(key));
}

/* A dict operation that failed with MP_EINVAL had an unhashable key. */
static int dict_fail(mp__mgr_call *call, int rc, const mp_obj *key) {
  if (rc == MP_ENOENT) return key_error(call, key);
  if (rc == MP_EINVAL)
    return mp__mgr_raise_msg(call, "builtins", "TypeError",
                             "unhashable type: '%s'", mp_obj_type_name(key));
  return nomem(call);
}

/* ---- Python ordering for list.sort -------------------------------------- */

static int is_num(const mp_obj *o) {
  mp_obj_type t = mp_obj_type_of(o);
  return t == MP_OBJ_INT || t == MP_OBJ_BOOL || t == MP_OBJ_FLOAT;
}

/* compare returns <0, 0, >0, or sets *bad when Python's < would raise. */
static int compare(const mp_obj *x, const mp_obj *y, int *bad) {
  if (is_num(x) && is_num(y)) {
    int64_t i, j;
    if (mp_obj_type_of(x) != MP_OBJ_FLOAT && mp_obj_type_of(y) != MP_OBJ_FLOAT &&
        mp_obj_get_int(x, &i) == 0 && mp_obj_get_int(y, &j) == 0)
      return (i > j) - (i < j);
    double a = 0, b = 0;
    mp_obj_get_float(x, &a);
    mp_obj_get_float(y, &b);
    return (a > b) - (a < b);
  }
  mp_obj_type tx = mp_obj_type_of(x), ty = mp_obj_type_of(y);
  if (tx != ty) {
    *bad = 1;
    return 0;
  }
  if (tx == MP_OBJ_STR || tx == MP_OBJ_BYTES) {
    const void *p, *q;
    size_t n, m;
    if (tx == MP_OBJ_STR) {
      mp_obj_get_str(x, (const char **)&p, &n);
      mp_obj_get_str(y, (const char **)&q, &m);
    } else {
      mp_obj_get_bytes(x, &p, &n);
      mp_obj_get_bytes(y, &q, &m);
    }
    int c = memcmp(p, q, n < m ? n : m);
    if (c) return c;
    return (n > m) - (n < m);
  }
  if (tx == MP_OBJ_LIST || tx == MP_OBJ_TUPLE) {
    ssize_t n = mp_obj_len(x), m = mp_obj_len(y);
    for (ssize_t i = 0; i < n && i < m; i++) {
      mp_obj *u = mp_obj_list_get(x, i), *v = mp_obj_list_get(y, i);
      if (mp_obj_equal(u, v)) continue;
      return compare(u, v, bad);
    }
    return (n > m) - (n < m);
  }
  *bad = 1;
  return 0;
}

/* ---- slices ------------------------------------------------------------ */

/* slice_indices is Python's slice.indices(len): 0, or nonzero with the
 * call's exception set. */
static int slice_indices(mp__mgr_call *call, const mp_obj *sl, ssize_t len,
                         ssize_t *start, ssize_t *stop, ssize_t *step) {
  mp_obj *args = mp_obj_instance_args(sl);
  ssize_t n = args ? mp_obj_len(args) : 0;
  mp_obj *f[3] = {NULL, NULL, NULL};
  if (n == 1) f[1] = mp_obj_list_get(args, 0);
  for (ssize_t i = 0; n >= 2 && i < n && i < 3; i++) f[i] = mp_obj_list_get(args, i);
  int64_t v[3];
  int has[3];
  for (int i = 0; i < 3; i++) {
    has[i] = f[i] && !mp_obj_is_none(f[i]);
    if (has[i] && mp_obj_get_int(f[i], &v[i]) != 0)
      return mp__mgr_raise_msg(call, "builtins", "TypeError",
                               "slice indices must be integers or None");
  }
  *step = has[2] ? (ssize_t)v[2] : 1;
  if (*step == 0)
    return mp__mgr_raise_msg(call, "builtins", "ValueError",
                             "slice step cannot be zero");
  ssize_t lo = *step < 0 ? -1 : 0, hi = *step < 0 ? len - 1 : len;
  if (!has[0]) {
    *start = *step < 0 ? hi : lo;
  } else {
    ssize_t s = (ssize_t)v[0];
    if (s < 0) {
      s += len;
      if (s < lo) s = lo;
    } else if (s > hi) s = hi;
    *start = s;
  }
  if (!has[1]) {
    *stop = *step < 0 ? lo : hi;
  } else {
    ssize_t s = (ssize_t)v[1];
    if (s < 0) {
      s += len;
      if (s < lo) s = lo;
    } else if (s > hi) s = hi;
    *stop = s;
  }
  return 0;
}

static ssize_t slice_len(ssize_t start, ssize_t stop, ssize_t step) {
  if (step > 0) return stop > start ? (stop - start + step - 1) / step : 0;
  return start > stop ? (start - stop + (-step) - 1) / (-step) : 0;
}

static int is_slice(const mp_obj *o) {
  const char *mod, *name;
  return mp_obj_type_of(o) == MP_OBJ_INSTANCE &&
         mp_obj_global_name(o, &mod, &name) == 0 &&
         strcmp(mod, "builtins") == 0 && strcmp(name, "slice") == 0;
}

/* ---- the list state: an array of owned values --------------------------- */

typedef struct vlist {
  mp_obj **items;
  size_t n, cap;
} vlist;

static int vl_reserve(vlist *l, size_t need) {
  if (need <= l->cap) return 0;
  size_t cap = l->cap ? l->cap : 8;
  while (cap < need) cap *= 2;
  mp_obj **ni = mp__realloc(l->items, cap * sizeof *ni);
  if (!ni) return MP_ENOMEM;
  l->items = ni;
  l->cap = cap;
  return 0;
}

static int vl_insert(vlist *l, size_t at, mp_obj *v) {
  if (!v || vl_reserve(l, l->n + 1)) {
    mp_obj_free(v);
    return MP_ENOMEM;
  }
  memmove(l->items + at + 1, l->items + at, (l->n - at) * sizeof *l->items);
  l->items[at] = v;
  l->n++;
  return 0;
}

static mp_obj *vl_take(vlist *l, size_t at) {
  mp_obj *v = l->items[at];
  memmove(l->items + at, l->items + at + 1, (l->n - at - 1) * sizeof *l->items);
  l->n--;
  return v;
}

static void vl_clear(vlist *l) {
  for (size_t i = 0; i < l->n; i++) mp_obj_free(l->items[i]);
  mp__free(l->items);
  l->items = NULL;
  l->n = l->cap = 0;
}

static mp_obj *vl_to_obj(const vlist *l, ssize_t start, ssize_t step,
                         ssize_t count) {
  mp_obj *out = mp_obj_list();
  for (ssize_t i = 0; out && i < count; i++)
    if (mp_obj_list_append(out, mp_obj_copy(l->items[start + i * step]))) {
      mp_obj_free(out);
      return NULL;
    }
  return out;
}

/* vl_from_iterable copies the items of a list or tuple value (a dict gives
 * its keys, a str its characters are not supported) into a fresh array. */
static int vl_from(mp__mgr_call *call, const mp_obj *v, vlist *out) {
  memset(out, 0, sizeof *out);
  mp_obj_type t = mp_obj_type_of(v);
  if (t == MP_OBJ_LIST || t == MP_OBJ_TUPLE) {
    ssize_t n = mp_obj_len(v);
    for (ssize_t i = 0; i < n; i++)
      if (vl_insert(out, out->n, mp_obj_copy(mp_obj_list_get(v, i)))) {
        vl_clear(out);
        return nomem(call);
      }
    return 0;
  }
  if (t == MP_OBJ_DICT) {
    size_t pos = 0;
    mp_obj *k;
    while (mp_obj_dict_next(v, &pos, &k, NULL) == 1)
      if (vl_insert(out, out->n, mp_obj_copy(k))) {
        vl_clear(out);
        return nomem(call);
      }
    return 0;
  }
  if (mp__mgr_is_pyarray(v)) { /* list(array('i', [1, 2])) == [1, 2] */
    mp_obj *items = NULL;
    int rc = mp__mgr_pyarray_items(v, &items);
    if (rc == MP_ENOMEM) return nomem(call);
    if (rc)
      return mp__mgr_raise_msg(call, "builtins", rc == MP_EOVERFLOW ? "OverflowError" : "TypeError",
                               "%s", mp_error_detail());
    int bad = vl_from(call, items, out);
    mp_obj_free(items);
    return bad;
  }
  if (t == MP_OBJ_STR || t == MP_OBJ_BYTES) {
    /* list('ab') == ['a', 'b'], list(b'ab') == [97, 98] */
    const char *p;
    size_t n;
    if (t == MP_OBJ_STR ? mp_obj_get_str(v, &p, &n) : mp_obj_get_bytes(v, (const void **)&p, &n))
      return nomem(call);
    for (size_t i = 0; i < n;) {
      size_t w = 1;
      if (t == MP_OBJ_STR)
        while (i + w < n && ((unsigned char)p[i + w] & 0xC0) == 0x80) w++;
      mp_obj *item = t == MP_OBJ_STR ? mp_obj_str_len(p + i, w) : mp_obj_int((unsigned char)p[i]);
      if (out->n >= (1u << 24) || vl_insert(out, out->n, item)) {
        vl_clear(out);
        return nomem(call);
      }
      i += w;
    }
    return 0;
  }
  const char *mod, *name;
  if (t == MP_OBJ_INSTANCE && mp_obj_global_name(v, &mod, &name) == 0 &&
      strcmp(mod, "builtins") == 0 && strcmp(name, "range") == 0) {
    /* range(start, stop[, step]), as Python's manager.list(range(5)) sends */
    mp_obj *ra = mp_obj_instance_args(v);
    ssize_t n = ra ? mp_obj_len(ra) : 0;
    int64_t f[3] = {0, 0, 1};
    for (ssize_t i = 0; i < n && i < 3; i++)
      if (mp_obj_get_int(mp_obj_list_get(ra, i), &f[i]) != 0) n = -1;
    if (n == 1) {
      f[1] = f[0];
      f[0] = 0;
    }
    if (n < 1 || n > 3 || f[2] == 0)
      return mp__mgr_raise_msg(call, "builtins", "ValueError", "bad range");
    for (int64_t x = f[0]; f[2] > 0 ? x < f[1] : x > f[1]; x += f[2]) {
      if (out->n >= (1u << 24) || vl_insert(out, out->n, mp_obj_int(x))) {
        vl_clear(out);
        return mp__mgr_raise_msg(call, "builtins", "MemoryError",
                                 "range too long");
      }
      if ((f[2] > 0 && x > INT64_MAX - f[2]) || (f[2] < 0 && x < INT64_MIN - f[2]))
        break;
    }
    return 0;
  }
  return mp__mgr_raise_msg(call, "builtins", "TypeError",
                           "'%s' object is not iterable", mp_obj_type_name(v));
}

typedef struct cstate {
  vlist list;       /* list, Array */
  mp_obj *dict;     /* dict, Namespace */
  mp_obj *value;    /* Value */
  char typecode[4]; /* Value, Array */
  size_t pos;       /* Iterator */
} cstate;

static cstate *state_of(mp__mgr_call *call) { return call->entry->state; }

static void cstate_free(void *p) {
  cstate *s = p;
  if (!s) return;
  vl_clear(&s->list);
  mp_obj_free(s->dict);
  mp_obj_free(s->value);
  mp__free(s);
}

/* A state deep copy, for mp_apply's rollback. */
static cstate *cstate_copy(const cstate *s) {
  cstate *c = mp__calloc(1, sizeof *c);
  if (!c) return NULL;
  memcpy(c->typecode, s->typecode, sizeof c->typecode);
  c->pos = s->pos;
  if (s->dict && !(c->dict = mp_obj_copy(s->dict))) goto fail;
  if (s->value && !(c->value = mp_obj_copy(s->value))) goto fail;
  if (vl_reserve(&c->list, s->list.n)) goto fail;
  for (size_t i = 0; i < s->list.n; i++) {
    if (!(c->list.items[i] = mp_obj_copy(s->list.items[i]))) goto fail;
    c->list.n++;
  }
  return c;
fail:
  cstate_free(c);
  return NULL;
}

/* ---- index helpers -------------------------------------------------------- */

static int get_index(mp__mgr_call *call, const mp_obj *k, size_t n,
                     size_t *out, const char *what) {
  int64_t i;
  if (mp_obj_type_of(k) == MP_OBJ_FLOAT || mp_obj_get_int(k, &i) != 0)
    return mp__mgr_raise_msg(call, "builtins", "TypeError",
                             "list indices must be integers or slices, not %s",
                             mp_obj_type_name(k));
  if (i < 0) i += (int64_t)n;
  if (i < 0 || i >= (int64_t)n)
    return mp__mgr_raise_msg(call, "builtins", "IndexError", "%s", what);
  *out = (size_t)i;
  return 0;
}

/* ---- the atomic add ----------------------------------------------------- */

/* add_values returns a new value x + y as Python computes it, or NULL with
 * the call's exception set. */
static mp_obj *add_values(mp__mgr_call *call, const mp_obj *x,
                          const mp_obj *y) {
  mp_obj_type tx = mp_obj_type_of(x), ty = mp_obj_type_of(y);
  if (is_num(x) && is_num(y)) {
    if (tx != MP_OBJ_FLOAT && ty != MP_OBJ_FLOAT) {
      int64_t a, b, r;
      mp_obj_get_int(x, &a);
      mp_obj_get_int(y, &b);
      if (__builtin_add_overflow(a, b, &r)) {
        mp__mgr_raise_msg(call, "builtins", "OverflowError",
                          "the sum does not fit in 64 bits");
        return NULL;
      }
      return mp_obj_int(r);
    }
    double a, b;
    mp_obj_get_float(x, &a);
    mp_obj_get_float(y, &b);
    return mp_obj_float(a + b);
  }
  if (tx == ty && (tx == MP_OBJ_STR || tx == MP_OBJ_BYTES)) {
    const void *p, *q;
    size_t n, m;
    if (tx == MP_OBJ_STR) {
      mp_obj_get_str(x, (const char **)&p, &n);
      mp_obj_get_str(y, (const char **)&q, &m);
    } else {
      mp_obj_get_bytes(x, &p, &n);
      mp_obj_get_bytes(y, &q, &m);
    }
    char *buf = mp__alloc(n + m + 1);
    if (!buf) return NULL;
    memcpy(buf, p, n);
    memcpy(buf + n, q, m);
    mp_obj *r = tx == MP_OBJ_STR ? mp_obj_str_len(buf, n + m)
                                 : mp_obj_bytes(buf, n + m);
    mp__free(buf);
    return r;
  }
  if (tx == ty && (tx == MP_OBJ_LIST || tx == MP_OBJ_TUPLE)) {
    ssize_t n = mp_obj_len(x), m = mp_obj_len(y);
    mp_obj **items = mp__calloc((size_t)(n + m) + 1, sizeof *items);
    if (!items) return NULL;
    for (ssize_t i = 0; i < n; i++) items[i] = mp_obj_copy(mp_obj_list_get(x, i));
    for (ssize_t i = 0; i < m; i++)
      items[n + i] = mp_obj_copy(mp_obj_list_get(y, i));
    mp_obj *r = mp_obj_tuple_from((size_t)(n + m), items);
    mp__free(items);
    if (r && tx == MP_OBJ_LIST) {
      mp_obj *l = mp_obj_list();
      for (ssize_t i = 0; l && i < n + m; i++)
        if (mp_obj_list_append(l, mp_obj_copy(mp_obj_list_get(r, i)))) {
          mp_obj_free(l);
          l = NULL;
        }
      mp_obj_free(r);
      r = l;
    }
    return r;
  }
  mp__mgr_raise_msg(call, "builtins", "TypeError",
                    "unsupported operand type(s) for +=: '%s' and '%s'",
                    mp_obj_type_name(x), mp_obj_type_name(y));
  return NULL;
}

/* ---- slot access shared by the atomic operations -------------------------
 * A slot is d[key], l[index] or ns.name. slot_get lends the value (NULL and
 * 0 when absent); slot_set takes v. */
enum { K_DICT, K_LIST, K_NS };

static int kind_of(mp__mgr_call *call) {
  const mp__mgr_type *t = call->entry->type;
  return t == &mp__mgr_type_list ? K_LIST
         : t == &mp__mgr_type_namespace ? K_NS
                                        : K_DICT;
}

static int slot_get(mp__mgr_call *call, const mp_obj *key, mp_obj **out) {
  cstate *s = state_of(call);
  *out = NULL;
  switch (kind_of(call)) {
  case K_LIST: {
    size_t i;
    if (get_index(call, key, s->list.n, &i, "list index out of range"))
      return 1;
    *out = s->list.items[i];
    return 0;
  }
  case K_NS:
    if (mp_obj_type_of(key) != MP_OBJ_STR)
      return mp__mgr_raise_msg(call, "builtins", "TypeError",
                               "attribute name must be string");
    /* fallthrough */
  default:
    *out = mp_obj_dict_get(s->dict, key);
    if (!*out && mp_error_code() == MP_EINVAL) return dict_fail(call, MP_EINVAL, key);
    return 0;
  }
}

static int slot_set(mp__mgr_call *call, const mp_obj *key, mp_obj *v) {
  cstate *s = state_of(call);
  if (!v) return nomem(call);
  if (kind_of(call) == K_LIST) {
    size_t i;
    if (get_index(call, key, s->list.n, &i,
                  "list assignment index out of range")) {
      mp_obj_free(v);
      return 1;
    }
    mp_obj_free(s->list.items[i]);
    s->list.items[i] = v;
    return 0;
  }
  int rc = mp_obj_dict_set(s->dict, mp_obj_copy(key), v);
  return rc ? dict_fail(call, rc, key) : 0;
}

static int missing(mp__mgr_call *call, const mp_obj *key) {
  if (kind_of(call) == K_NS) {
    const char *n = "?";
    mp_obj_get_str(key, &n, NULL);
    return mp__mgr_raise_msg(call, "builtins", "AttributeError",
                             "'Namespace' object has no attribute '%s'", n);
  }
  return key_error(call, key);
}

static int apply_ops(mp__mgr_call *call);

/* atomic handles mp_add, mp_cas, mp_apply (all three kinds), setdefault and
 * pop for a Namespace; *handled = 0 when the method is none of these. */
static int atomic(mp__mgr_call *call, int *handled) {
  *handled = 1;
  if (IS("mp_add")) {
    ARGS("key", "delta");
    BIND(2);
    mp_obj *cur;
    if (slot_get(call, a[0], &cur)) return 0;
    if (!cur) return missing(call, a[0]);
    mp_obj *sum = add_values(call, cur, a[1]);
    if (!sum) return call->kind == MP__MGR_RETURN ? nomem(call) : 0;
    mp_obj *ret = mp_obj_copy(sum);
    if (slot_set(call, a[0], sum)) {
      mp_obj_free(ret);
      return 0;
    }
    return set_result(call, ret);
  }
  if (IS("mp_cas")) {
    ARGS("key", "expected", "desired");
    BIND(3);
    mp_obj *cur;
    if (slot_get(call, a[0], &cur)) return 0;
    int eq = cur && mp_obj_equal(cur, a[1]);
    if (eq && slot_set(call, a[0], mp_obj_copy(a[2]))) return 0;
    return set_result(call, mp_obj_bool(eq));
  }
  if (IS("mp_apply")) return apply_ops(call);
  if (kind_of(call) == K_NS && IS("setdefault")) {
    ARGS("name", "default");
    BIND(1);
    mp_obj *cur;
    if (slot_get(call, a[0], &cur)) return 0;
    if (cur) return set_result(call, mp_obj_copy(cur));
    mp_obj *d = a[1] ? mp_obj_copy(a[1]) : mp_obj_none();
    if (slot_set(call, a[0], d)) return 0;
    return set_result(call, a[1] ? mp_obj_copy(a[1]) : mp_obj_none());
  }
  if (kind_of(call) == K_NS && IS("pop")) {
    ARGS("name", "default");
    BIND(1);
    cstate *s = state_of(call);
    mp_obj *cur;
    if (slot_get(call, a[0], &cur)) return 0;
    if (!cur) {
      if (a[1]) return set_result(call, mp_obj_copy(a[1]));
      return missing(call, a[0]);
    }
    mp_obj *ret = mp_obj_copy(cur);
    mp_obj_dict_del(s->dict, a[0]);
    return set_result(call, ret);
  }
  *handled = 0;
  return 0;
}

/* ---- dict ------------------------------------------------------------------ */

static int dict_update_from(mp__mgr_call *call, mp_obj *d, const mp_obj *src);

static int dict_create(mp__mgr_call *call, void **out) {
  /* dict(mapping_or_pairs, **kw), with Python's errors for the rest */
  ssize_t na = mp_obj_len(call->args);
  if (na > 1)
    return mp__mgr_raise_msg(call, "builtins", "TypeError",
                             "dict expected at most 1 argument, got %zd", na);
  cstate *s = mp__calloc(1, sizeof *s);
  if (!s || !(s->dict = mp_obj_dict())) {
    mp__free(s);
    return MP_ENOMEM;
  }
  if ((na == 1 && dict_update_from(call, s->dict, mp_obj_list_get(call->args, 0))) ||
      (call->kwds && dict_update_from(call, s->dict, call->kwds))) {
    cstate_free(s);
    return 0;
  }
  *out = s;
  return 0;
}

static mp_obj *dict_getvalue(void *p) { return mp_obj_copy(((cstate *)p)->dict); }

static mp_obj *dict_list(const mp_obj *d, int what) {
  mp_obj *out = mp_obj_list();
  size_t pos = 0;
  mp_obj *k, *v;
  while (out && mp_obj_dict_next(d, &pos, &k, &v) == 1) {
    mp_obj *item = what == 0   ? mp_obj_copy(k)
                   : what == 1 ? mp_obj_copy(v)
                               : mp_obj_tuple_pack(2, mp_obj_copy(k),
                                                   mp_obj_copy(v));
    if (mp_obj_list_append(out, item)) {
      mp_obj_free(out);
      return NULL;
    }
  }
  return out;
}

static int dict_update_from(mp__mgr_call *call, mp_obj *d, const mp_obj *src) {
  mp_obj_type t = mp_obj_type_of(src);
  if (t == MP_OBJ_DICT) {
    size_t pos = 0;
    mp_obj *k, *v;
    while (mp_obj_dict_next(src, &pos, &k, &v) == 1) {
      int rc = mp_obj_dict_set(d, mp_obj_copy(k), mp_obj_copy(v));
      if (rc) return dict_fail(call, rc, k);
    }
    return 0;
  }
  if (t == MP_OBJ_LIST || t == MP_OBJ_TUPLE) {
    ssize_t n = mp_obj_len(src);
    for (ssize_t i = 0; i < n; i++) {
      mp_obj *p = mp_obj_list_get(src, i);
      mp_obj_type pt = mp_obj_type_of(p);
      if ((pt != MP_OBJ_LIST && pt != MP_OBJ_TUPLE) || mp_obj_len(p) != 2)
        return mp__mgr_raise_msg(
            call, "builtins", "ValueError",
            "dictionary update sequence element #%zd has the wrong length", i);
      int rc = mp_obj_dict_set(d, mp_obj_copy(mp_obj_list_get(p, 0)),
                               mp_obj_copy(mp_obj_list_get(p, 1)));
      if (rc) return dict_fail(call, rc, mp_obj_list_get(p, 0));
    }
    return 0;
  }
  return mp__mgr_raise_msg(call, "builtins", "TypeError",
                           "'%s' object is not iterable", mp_obj_type_name(src));
}

static int dict_call(mp__mgr_call *call) {
  cstate *s = state_of(call);
  int handled;
  int rc = atomic(call, &handled);
  if (handled) return rc;
  if (IS("__getitem__")) {
    ARGS("key");
    BIND(1);
    mp_obj *v = mp_obj_dict_get(s->dict, a[0]);
    if (!v) return dict_fail(call, mp_error_code() == MP_EINVAL ? MP_EINVAL : MP_ENOENT, a[0]);
    return set_result(call, mp_obj_copy(v));
  }
  if (IS("__setitem__")) {
    ARGS("key", "value");
    BIND(2);
    rc = mp_obj_dict_set(s->dict, mp_obj_copy(a[0]), mp_obj_copy(a[1]));
    return rc ? dict_fail(call, rc, a[0]) : 0;
  }
  if (IS("__delitem__")) {
    ARGS("key");
    BIND(1);
    rc = mp_obj_dict_del(s->dict, a[0]);
    return rc ? dict_fail(call, rc, a[0]) : 0;
  }
  if (IS("__contains__")) {
    ARGS("key");
    BIND(1);
    mp_obj *v = mp_obj_dict_get(s->dict, a[0]);
    if (!v && mp_error_code() == MP_EINVAL) return dict_fail(call, MP_EINVAL, a[0]);
    return set_result(call, mp_obj_bool(v != NULL));
  }
  if (IS("__len__")) return set_result(call, mp_obj_int(mp_obj_len(s->dict)));
  if (IS("__iter__") || IS("keys")) return set_result(call, dict_list(s->dict, 0));
  if (IS("values")) return set_result(call, dict_list(s->dict, 1));
  if (IS("items")) return set_result(call, dict_list(s->dict, 2));
  if (IS("clear")) {
    mp_obj *d = mp_obj_dict();
    if (!d) return nomem(call);
    mp_obj_free(s->dict);
    s->dict = d;
    return 0;
  }
  if (IS("copy")) return set_result(call, mp_obj_copy(s->dict));
  if (IS("get")) {
    ARGS("key", "default");
    BIND(1);
    mp_obj *v = mp_obj_dict_get(s->dict, a[0]);
    if (!v && mp_error_code() == MP_EINVAL) return dict_fail(call, MP_EINVAL, a[0]);
    if (v) return set_result(call, mp_obj_copy(v));
    return set_result(call, a[1] ? mp_obj_copy(a[1]) : mp_obj_none());
  }
  if (IS("pop")) {
    ARGS("key", "default");
    BIND(1);
    mp_obj *v = mp_obj_dict_get(s->dict, a[0]);
    if (!v) {
      if (mp_error_code() == MP_EINVAL) return dict_fail(call, MP_EINVAL, a[0]);
      if (a[1]) return set_result(call, mp_obj_copy(a[1]));
      return key_error(call, a[0]);
    }
    mp_obj *ret = mp_obj_copy(v);
    mp_obj_dict_del(s->dict, a[0]);
    return set_result(call, ret);
  }
  if (IS("popitem")) {
    size_t pos = 0;
    mp_obj *k = NULL, *v = NULL, *lk = NULL, *lv = NULL;
    while (mp_obj_dict_next(s->dict, &pos, &k, &v) == 1) {
      lk = k;
      lv = v;
    }
    if (!lk)
      return mp__mgr_raise_msg(call, "builtins", "KeyError",
                               "popitem(): dictionary is empty");
    mp_obj *ret = mp_obj_tuple_pack(2, mp_obj_copy(lk), mp_obj_copy(lv));
    if (!ret) return nomem(call);
    mp_obj_dict_del(s->dict, mp_obj_list_get(ret, 0));
    return set_result(call, ret);
  }
  if (IS("setdefault")) {
    ARGS("key", "default");
    BIND(1);
    mp_obj *v = mp_obj_dict_get(s->dict, a[0]);
    if (!v && mp_error_code() == MP_EINVAL) return dict_fail(call, MP_EINVAL, a[0]);
    if (v) return set_result(call, mp_obj_copy(v));
    rc = mp_obj_dict_set(s->dict, mp_obj_copy(a[0]),
                         a[1] ? mp_obj_copy(a[1]) : mp_obj_none());
    if (rc) return dict_fail(call, rc, a[0]);
    return set_result(call, a[1] ? mp_obj_copy(a[1]) : mp_obj_none());
  }
  if (IS("update")) {
    ssize_t na = mp_obj_len(call->args);
    if (na > 1)
      return mp__mgr_raise_msg(call, "builtins", "TypeError",
                               "update expected at most 1 argument, got %zd", na);
    if (na == 1 && dict_update_from(call, s->dict, mp_obj_list_get(call->args, 0)))
      return 0;
    if (call->kwds && dict_update_from(call, s->dict, call->kwds)) return 0;
    return 0;
  }
  return mp__mgr_traceback(call, "dict has no method %s", call->method);
}

/* ---- list ------------------------------------------------------------------- */

static int list_create(mp__mgr_call *call, void **out) {
  cstate *s = mp__calloc(1, sizeof *s);
  if (!s) return MP_ENOMEM;
  if (mp_obj_len(call->args) > 0) {
    if (vl_from(call, mp_obj_list_get(call->args, 0), &s->list)) {
      mp__free(s);
      return 0;
    }
  }
  *out = s;
  return 0;
}

static mp_obj *list_getvalue(void *p) {
  cstate *s = p;
  return vl_to_obj(&s->list, 0, 1, (ssize_t)s->list.n);
}

/* list_sort sorts l in place: a stable merge sort (O(n log n) compares,
 * as Python's; the server's lock is held throughout). reverse keeps equal
 * items in their order, as Python's sort(reverse=True). Items that do not
 * compare raise TypeError and leave the list as it was. */
static int list_sort(mp__mgr_call *call, vlist *l, int reverse) {
  size_t n = l->n;
  if (n < 2) return 0;
  mp_obj **a = mp__alloc(n * sizeof *a), **b = mp__alloc(n * sizeof *b);
  if (!a || !b) {
    mp__free(a);
    mp__free(b);
    return nomem(call);
  }
  memcpy(a, l->items, n * sizeof *a);
  int bad = 0;
  const char *ta = "", *tb = "";
  for (size_t w = 1; w < n && !bad; w *= 2) {
    for (size_t lo = 0; lo < n && !bad; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        int c = compare(a[i], a[j], &bad);
        if (bad) {
          ta = mp_obj_type_name(a[j]); /* Python: later < earlier */
          tb = mp_obj_type_name(a[i]);
          break;
        }
        b[k++] = (reverse ? c < 0 : c > 0) ? a[j++] : a[i++];
      }
      while (!bad && i < mid) b[k++] = a[i++];
      while (!bad && j < hi) b[k++] = a[j++];
    }
    mp_obj **t = a;
    a = b;
    b = t;
  }
  if (!bad) memcpy(l->items, a, n * sizeof *a);
  mp__free(a);
  mp__free(b);
  if (bad)
    return mp__mgr_raise_msg(call, "builtins", "TypeError",
                             "'<' not supported between instances of '%s' "
                             "and '%s'", ta, tb);
  return 0;
}

static int list_call(mp__mgr_call *call) {
  cstate *s = state_of(call);
  vlist *l = &s->list;
  int handled;
  int rc = atomic(call, &handled);
  if (handled) return rc;
  if (IS("__len__")) return set_result(call, mp_obj_int((int64_t)l->n));
  if (IS("append")) {
    ARGS("object");
    BIND(1);
    return vl_insert(l, l->n, mp_obj_copy(a[0])) ? nomem(call) : 0;
  }
  if (IS("mp_append_if_absent")) {
    ARGS("object");
    BIND(1);
    for (size_t i = 0; i < l->n; i++)
      if (mp_obj_equal(l->items[i], a[0]))
        return set_result(call, mp_obj_bool(0));
    if (vl_insert(l, l->n, mp_obj_copy(a[0]))) return nomem(call);
    return set_result(call, mp_obj_bool(1));
  }
  if (IS("__getitem__")) {
    ARGS("index");
    BIND(1);
    if (is_slice(a[0])) {
      ssize_t st, sp, step;
      if (slice_indices(call, a[0], (ssize_t)l->n, &st, &sp, &step)) return 0;
      return set_result(call, vl_to_obj(l, st, step, slice_len(st, sp, step)));
    }
    size_t i;
    if (get_index(call, a[0], l->n, &i, "list index out of range")) return 0;
    return set_result(call, mp_obj_copy(l->items[i]));
  }
  if (IS("__setitem__")) {
    ARGS("index", "value");
    BIND(2);
    if (is_slice(a[0])) {
      ssize_t st, sp, step;
      if (slice_indices(call, a[0], (ssize_t)l->n, &st, &sp, &step)) return 0;
      vlist src;
      if (vl_from(call, a[1], &src)) return 0;
      ssize_t n = slice_len(st, sp, step);
      if (step == 1) {
        if (sp < st) sp = st;
        for (ssize_t i = st; i < sp; i++) mp_obj_free(vl_take(l, (size_t)st));
        for (size_t i = 0; i < src.n; i++) {
          if (vl_insert(l, (size_t)st + i, src.items[i])) {
            for (size_t j = i + 1; j < src.n; j++) mp_obj_free(src.items[j]);
            mp__free(src.items);
            return nomem(call);
          }
        }
        mp__free(src.items);
        return 0;
      }
      if ((size_t)n != src.n) {
        size_t got = src.n;
        vl_clear(&src);
        return mp__mgr_raise_msg(
            call, "builtins", "ValueError",
            "attempt to assign sequence of size %zu to extended slice of "
            "size %zd",
            got, n);
      }
      for (ssize_t i = 0; i < n; i++) {
        mp_obj_free(l->items[st + i * step]);
        l->items[st + i * step] = src.items[i];
      }
      mp__free(src.items);
      return 0;
    }
    size_t i;
    if (get_index(call, a[0], l->n, &i, "list assignment index out of range"))
      return 0;
    mp_obj *v = mp_obj_copy(a[1]);
    if (!v) return nomem(call);
    mp_obj_free(l->items[i]);
    l->items[i] = v;
    return 0;
  }
  if (IS("__delitem__")) {
    ARGS("index");
    BIND(1);
    if (is_slice(a[0])) {
      ssize_t st, sp, step;
      if (slice_indices(call, a[0], (ssize_t)l->n, &st, &sp, &step)) return 0;
      ssize_t n = slice_len(st, sp, step);
      /* delete from the highest index down so lower ones stay put */
      for (ssize_t k = 0; k < n; k++) {
        ssize_t idx = step > 0 ? st + (n - 1 - k) * step : st + k * step;
        mp_obj_free(vl_take(l, (size_t)idx));
      }
      return 0;
    }
    size_t i;
    if (get_index(call, a[0], l->n, &i, "list assignment index out of range"))
      return 0;
    mp_obj_free(vl_take(l, i));
    return 0;
  }
  if (IS("__contains__")) {
    ARGS("value");
    BIND(1);
    int found = 0;
    for (size_t i = 0; i < l->n && !found; i++) found = mp_obj_equal(l->items[i], a[0]);
    return set_result(call, mp_obj_bool(found));
  }
  if (IS("count")) {
    ARGS("value");
    BIND(1);
    int64_t c = 0;
    for (size_t i = 0; i < l->n; i++) c += mp_obj_equal(l->items[i], a[0]);
    return set_result(call, mp_obj_int(c));
  }
  if (IS("index")) {
    ARGS("value", "start", "stop");
    BIND(1);
    int64_t st = 0, sp = (int64_t)l->n;
    if (a[1] && mp_obj_get_int(a[1], &st) != 0) st = 0;
    if (a[2] && mp_obj_get_int(a[2], &sp) != 0) sp = (int64_t)l->n;
    if (st < 0) st = st + (int64_t)l->n < 0 ? 0 : st + (int64_t)l->n;
    if (sp < 0) sp += (int64_t)l->n;
    if (sp > (int64_t)l->n) sp = (int64_t)l->n;
    for (int64_t i = st; i < sp; i++)
      if (mp_obj_equal(l->items[i], a[0])) return set_result(call, mp_obj_int(i));
    char *r = mp_obj_repr(a[0]);
    mp__mgr_raise_msg(call, "builtins", "ValueError", "%s is not in list",
                      r ? r : "value");
    free(r);
    return 0;
  }
  if (IS("insert")) {
    ARGS("index", "object");
    BIND(2);
    int64_t i;
    if (mp_obj_get_int(a[0], &i) != 0)
      return mp__mgr_raise_msg(call, "builtins", "TypeError",
                               "'%s' object cannot be interpreted as an integer",
                               mp_obj_type_name(a[0]));
    if (i < 0) i = i + (int64_t)l->n < 0 ? 0 : i + (int64_t)l->n;
    if (i > (int64_t)l->n) i = (int64_t)l->n;
    return vl_insert(l, (size_t)i, mp_obj_copy(a[1])) ? nomem(call) : 0;
  }
  if (IS("pop")) {
    ARGS("index");
    BIND(0);
    if (l->n == 0)
      return mp__mgr_raise_msg(call, "builtins", "IndexError",
                               "pop from empty list");
    size_t i = l->n - 1;
    if (a[0] && get_index(call, a[0], l->n, &i, "pop index out of range"))
      return 0;
    return set_result(call, vl_take(l, i));
  }
  if (IS("remove")) {
    ARGS("value");
    BIND(1);
    for (size_t i = 0; i < l->n; i++)
      if (mp_obj_equal(l->items[i], a[0])) {
        mp_obj_free(vl_take(l, i));
        return 0;
      }
    return mp__mgr_raise_msg(call, "builtins", "ValueError",
                             "list.remove(x): x not in list");
  }
  if (IS("reverse")) {
    for (size_t i = 0, j = l->n ? l->n - 1 : 0; i < j; i++, j--) {
      mp_obj *t = l->items[i];
      l->items[i] = l->items[j];
      l->items[j] = t;
    }
    return 0;
  }
  if (IS("__reversed__")) {
    mp_obj *out = mp_obj_list();
    for (size_t i = l->n; out && i > 0; i--)
      if (mp_obj_list_append(out, mp_obj_copy(l->items[i - 1]))) {
        mp_obj_free(out);
        out = NULL;
      }
    return set_result(call, out);
  }
  if (IS("extend")) {
    ARGS("iterable");
    BIND(1);
    vlist src;
    if (vl_from(call, a[0], &src)) return 0;
    if (vl_reserve(l, l->n + src.n)) {
      vl_clear(&src);
      return nomem(call);
    }
    memcpy(l->items + l->n, src.items, src.n * sizeof *src.items);
    l->n += src.n;
    mp__free(src.items);
    return 0;
  }
  if (IS("sort")) {
    ARGS("key", "reverse");
    BIND(0);
    if (a[0] && !mp_obj_is_none(a[0]))
      return mp__mgr_raise_msg(call, "builtins", "TypeError",
                               "the C manager sorts without a key function");
    int rev = 0;
    if (a[1]) mp_obj_get_bool(a[1], &rev);
    return list_sort(call, l, rev);
  }
  if (IS("__add__")) {
    ARGS("other");
    BIND(1);
    if (mp_obj_type_of(a[0]) != MP_OBJ_LIST)
      return mp__mgr_raise_msg(call, "builtins", "TypeError",
                               "can only concatenate list (not \"%s\") to list",
                               mp_obj_type_name(a[0]));
    mp_obj *out = vl_to_obj(l, 0, 1, (ssize_t)l->n);
    ssize_t m = mp_obj_len(a[0]);
    for (ssize_t i = 0; out && i < m; i++)
      if (mp_obj_list_append(out, mp_obj_copy(mp_obj_list_get(a[0], i)))) {
        mp_obj_free(out);
        out = NULL;
      }
    return set_result(call, out);
  }
  if (IS("__mul__") || IS("__rmul__") || IS("__imul__")) {
    ARGS("value");
    BIND(1);
    int64_t k;
    if (mp_obj_type_of(a[0]) == MP_OBJ_FLOAT || mp_obj_get_int(a[0], &k) != 0)
      return mp__mgr_raise_msg(call, "builtins", "TypeError",
                               "can't multiply sequence by non-int");
    if (k < 0) k = 0;
    if (l->n && (uint64_t)k > (1u << 24) / l->n)
      return mp__mgr_raise_msg(call, "builtins", "MemoryError",
                               "the product is too long");
    vlist out = {0};
    for (int64_t r = 0; r < k; r++)
      for (size_t i = 0; i < l->n; i++)
        if (vl_insert(&out, out.n, mp_obj_copy(l->items[i]))) {
          vl_clear(&out);
          return nomem(call);
        }
    if (IS("__imul__")) {
      vl_clear(l);
      *l = out;
      return 0;
    }
    mp_obj *res = vl_to_obj(&out, 0, 1, (ssize_t)out.n);
    vl_clear(&out);
    return set_result(call, res);
  }
  return mp__mgr_traceback(call, "list has no method %s", call->method);
}

/* ---- Namespace ------------------------------------------------------------- */

static int ns_create(mp__mgr_call *call, void **out) {
  cstate *s = mp__calloc(1, sizeof *s);
  if (!s || !(s->dict = call->kwds ? mp_obj_copy(call->kwds) : mp_obj_dict())) {
    mp__free(s);
    return MP_ENOMEM;
  }
  *out = s;
  return 0;
}

static int ns_call(mp__mgr_call *call) {
  cstate *s = state_of(call);
  int handled;
  int rc = atomic(call, &handled);
  if (handled) return rc;
  if (IS("__getattribute__")) {
    ARGS("name");
    BIND(1);
    mp_obj *v;
    if (slot_get(call, a[0], &v)) return 0;
    if (!v) return missing(call, a[0]);
    return set_result(call, mp_obj_copy(v));
  }
  if (IS("__setattr__")) {
    ARGS("name", "value");
    BIND(2);
    if (mp_obj_type_of(a[0]) != MP_OBJ_STR)
      return mp__mgr_raise_msg(call, "builtins", "TypeError",
                               "attribute name must be string");
    return slot_set(call, a[0], mp_obj_copy(a[1]));
  }
  if (IS("__delattr__")) {
    ARGS("name");
    BIND(1);
    if (mp_obj_type_of(a[0]) != MP_OBJ_STR ||
        mp_obj_dict_del(s->dict, a[0]) != 0)
      return missing(call, a[0]);
    return 0;
  }
  return mp__mgr_traceback(call, "Namespace has no method %s", call->method);
}

/* ---- Value and Array --------------------------------------------------------- */

static int check_typecode(mp__mgr_call *call, const char *tc, mp_obj **v) {
  mp_obj_type t = mp_obj_type_of(*v);
  if (strchr("fd", tc[0]) && tc[0]) {
    double d;
    if (t == MP_OBJ_FLOAT) return 0;
    if (mp_obj_get_float(*v, &d) != 0)
      return mp__mgr_raise_msg(call, "builtins", "TypeError",
                               "must be real number, not %s",
                               mp_obj_type_name(*v));
    mp_obj_free(*v);
    *v = mp_obj_float(d);
    return *v ? 0 : nomem(call);
  }
  if (strchr("bBhHiIlLqQ", tc[0]) && tc[0]) {
    int64_t i;
    if (t == MP_OBJ_FLOAT || mp_obj_get_int(*v, &i) != 0)
      return mp__mgr_raise_msg(call, "builtins", "TypeError",
                               "an integer is required (got type %s)",
                               mp_obj_type_name(*v));
    return 0;
  }
  return 0; /* other typecodes ('c', 'u', ...): any value, kept as given */
}

static int value_create(mp__mgr_call *call, void **out) {
  ARGS("typecode", "value", "lock");
  if (mp__mgr_bind(call, names_, 3, 2, a)) return 0;
  const char *tc;
  if (mp_obj_get_str(a[0], &tc, NULL) != 0 || strlen(tc) >= 4)
    return mp__mgr_raise_msg(call, "builtins", "TypeError",
                             "typecode must be a short str");
  cstate *s = mp__calloc(1, sizeof *s);
  if (!s) return MP_ENOMEM;
  snprintf(s->typecode, sizeof s->typecode, "%s", tc);
  s->value = mp_obj_copy(a[1]);
  if (!s->value) {
    mp__free(s);
    return MP_ENOMEM;
  }
  if (check_typecode(call, tc, &s->value)) {
    cstate_free(s);
    return 0;
  }
  *out = s;
  return 0;
}

static mp_obj *value_getvalue(void *p) { return mp_obj_copy(((cstate *)p)->value); }

static int value_call(mp__mgr_call *call) {
  cstate *s = state_of(call);
  if (IS("get")) return set_result(call, mp_obj_copy(s->value));
  if (IS("set")) {
    ARGS("value");
    BIND(1);
    mp_obj *v = mp_obj_copy(a[0]);
    if (!v) return nomem(call);
    if (check_typecode(call, s->typecode, &v)) {
      mp_obj_free(v);
      return 0;
    }
    mp_obj_free(s->value);
    s->value = v;
    return 0;
  }
  return mp__mgr_traceback(call, "Value has no method %s", call->method);
}

static int array_create(mp__mgr_call *call, void **out) {
  ARGS("typecode", "sequence", "lock");
  if (mp__mgr_bind(call, names_, 3, 2, a)) return 0;
  const char *tc;
  if (mp_obj_get_str(a[0], &tc, NULL) != 0 || strlen(tc) != 1)
    return mp__mgr_raise_msg(call, "builtins", "TypeError",
                             "array() argument 1 must be a unicode character");
  cstate *s = mp__calloc(1, sizeof *s);
  if (!s) return MP_ENOMEM;
  snprintf(s->typecode, sizeof s->typecode, "%s", tc);
  int64_t n;
  if (mp_obj_get_int(a[1], &n) == 0 && mp_obj_type_of(a[1]) != MP_OBJ_BOOL) {
    /* Array(typecode, size): zeros, as multiprocessing.Array */
    if (n < 0 || n > (1 << 24)) {
      mp__free(s);
      return mp__mgr_raise_msg(call, "builtins", "ValueError", "bad size");
    }
    for (int64_t i = 0; i < n; i++)
      if (vl_insert(&s->list, s->list.n,
                    strchr("fd", tc[0]) ? mp_obj_float(0) : mp_obj_int(0))) {
        cstate_free(s);
        return MP_ENOMEM;
      }
  } else if (vl_from(call, a[1], &s->list)) {
    mp__free(s);
    return 0;
  }
  for (size_t i = 0; i < s->list.n; i++)
    if (check_typecode(call, tc, &s->list.items[i])) {
      cstate_free(s);
      return 0;
    }
  *out = s;
  return 0;
}

/* ---- what Python's server sends for these (the client's _getvalue(),
 * str(proxy)): a managers.Namespace, a managers.Value, an array.array ---- */

/* array_module_code: 1 when typecode is one the array module has and the
 * values are numbers (an Array of another code stays a list). */
static int array_module_code(const char *tc) {
  return tc[0] && !tc[1] && strchr("bBhHiIlLqQfd", tc[0]) != NULL;
}

/* as_array wraps a list (taken) as array.array(typecode, list), which
 * Python's pickle rebuilds by calling array.array. */
static mp_obj *as_array(const char *tc, mp_obj *list) {
  if (!list || !array_module_code(tc)) return list;
  return mp_obj_instance(mp_obj_global("array", "array"),
                         mp_obj_tuple_pack(2, mp_obj_str(tc), list), NULL, 0);
}

static mp_obj *ns_pyvalue(void *p) {
  /* Namespace.__new__(Namespace) then BUILD with its __dict__, as
   * Python pickles a Namespace. */
  return mp_obj_instance(mp_obj_global("multiprocessing.managers", "Namespace"),
                         mp_obj_tuple_from(0, NULL),
                         mp_obj_copy(((cstate *)p)->dict), 1);
}

static mp_obj *value_pyvalue(void *p) {
  cstate *s = p;
  mp_obj *st = mp_obj_dict();
  if (!st) return NULL;
  if (mp_obj_dict_set_str(st, "_typecode", mp_obj_str(s->typecode)) ||
      mp_obj_dict_set_str(st, "_value", mp_obj_copy(s->value))) {
    mp_obj_free(st);
    return NULL;
  }
  return mp_obj_instance(mp_obj_global("multiprocessing.managers", "Value"),
                         mp_obj_tuple_from(0, NULL), st, 1);
}

static char *value_repr(void *p, const char *ident) {
  (void)ident;
  cstate *s = p;
  char *v = mp_obj_repr(s->value);
  if (!v) return NULL;
  char *r = mp__mgr_format("Value('%s', %s)", s->typecode, v);
  free(v);
  return r;
}

static mp_obj *array_pyvalue(void *p) {
  cstate *s = p;
  return as_array(s->typecode, list_getvalue(p));
}

static char *array_repr(void *p, const char *ident) {
  (void)ident;
  cstate *s = p;
  if (s->list.n == 0) return mp__mgr_format("array('%s')", s->typecode);
  mp_obj *l = list_getvalue(p);
  char *v = l ? mp_obj_repr(l) : NULL;
  mp_obj_free(l);
  if (!v) return NULL;
  char *r = mp__mgr_format("array('%s', %s)", s->typecode, v);
  free(v);
  return r;
}

static int array_call(mp__mgr_call *call) {
  cstate *s = state_of(call);
  if (IS("__len__")) return set_result(call, mp_obj_int((int64_t)s->list.n));
  if (IS("__getitem__")) {
    ARGS("index");
    BIND(1);
    vlist *l = &s->list;
    if (is_slice(a[0])) {
      ssize_t st, sp, step;
      if (slice_indices(call, a[0], (ssize_t)l->n, &st, &sp, &step)) return 0;
      return set_result(call, as_array(s->typecode,
                                       vl_to_obj(l, st, step, slice_len(st, sp, step))));
    }
    size_t i;
    if (get_index(call, a[0], l->n, &i, "array index out of range")) return 0;
    return set_result(call, mp_obj_copy(l->items[i]));
  }
  if (IS("__setitem__")) {
    ARGS("index", "value");
    BIND(2);
    if (!is_slice(a[0])) {
      mp_obj *v = mp_obj_copy(a[1]);
      if (!v) return nomem(call);
      if (check_typecode(call, s->typecode, &v)) {
        mp_obj_free(v);
        return 0;
      }
      size_t i;
      if (get_index(call, a[0], s->list.n, &i,
                    "array assignment index out of range")) {
        mp_obj_free(v);
        return 0;
      }
      mp_obj_free(s->list.items[i]);
      s->list.items[i] = v;
      return 0;
    }
    return list_call(call);
  }
  return mp__mgr_traceback(call, "Array has no method %s", call->method);
}

/* ---- Iterator (the result of a dict's __iter__) ----------------------------- */

static int iter_create(mp__mgr_call *call, void **out) {
  cstate *s = mp__calloc(1, sizeof *s);
  if (!s) return MP_ENOMEM;
  if (call->args && vl_from(call, call->args, &s->list)) {
    mp__free(s);
    return 0;
  }
  *out = s;
  return 0;
}

static int iter_call(mp__mgr_call *call) {
  cstate *s = state_of(call);
  if (IS("__next__") || IS("send")) {
    if (s->pos >= s->list.n)
      return mp__mgr_raise(call, "builtins", "StopIteration", NULL);
    return set_result(call, mp_obj_copy(s->list.items[s->pos++]));
  }
  if (IS("close")) {
    s->pos = s->list.n;
    return 0;
  }
  if (IS("throw"))
    return mp__mgr_raise_msg(call, "builtins", "RuntimeError",
                             "throw() is not supported by the C manager");
  return mp__mgr_traceback(call, "Iterator has no method %s", call->method);
}

/* ---- mp_apply: a list of operations as one step ----------------------------- */

static int apply_ops(mp__mgr_call *call) {
  ARGS("ops");
  BIND(1);
  const mp_obj *ops = a[0];
  mp_obj_type t = mp_obj_type_of(ops);
  if (t != MP_OBJ_LIST && t != MP_OBJ_TUPLE)
    return mp__mgr_raise_msg(call, "builtins", "TypeError",
                             "mp_apply takes a list of (method, args) pairs");
  static const char *const allowed[] = {
      "__setitem__", "__delitem__", "__getitem__", "append", "mp_add",
      "mp_cas", "setdefault", "pop", "mp_append_if_absent", "__setattr__",
      "__getattribute__", "__delattr__", "get", "__len__", "__contains__",
      "insert", "remove", "extend", "update", NULL};
  cstate *saved = cstate_copy(state_of(call));
  if (!saved) return nomem(call);
  mp_obj *results = mp_obj_list();
  if (!results) {
    cstate_free(saved);
    return nomem(call);
  }
  ssize_t n = mp_obj_len(ops);
  int failed = 0;
  for (ssize_t i = 0; i < n && !failed; i++) {
    mp_obj *op = mp_obj_list_get(ops, i);
    const char *m = NULL;
    mp_obj *args = NULL;
    mp_obj_type ot = mp_obj_type_of(op);
    if ((ot == MP_OBJ_TUPLE || ot == MP_OBJ_LIST) && mp_obj_len(op) >= 1 &&
        mp_obj_len(op) <= 2)
      mp_obj_get_str(mp_obj_list_get(op, 0), &m, NULL);
    if (m && mp_obj_len(op) == 2) args = mp_obj_list_get(op, 1);
    int ok = m != NULL;
    for (int j = 0; ok && allowed[j]; j++)
      if (strcmp(allowed[j], m) == 0) ok = 2;
    if (ok != 2 || strcmp(m, "mp_apply") == 0 ||
        (args && mp_obj_type_of(args) != MP_OBJ_TUPLE &&
         mp_obj_type_of(args) != MP_OBJ_LIST)) {
      mp__mgr_raise_msg(call, "builtins", "ValueError",
                        "operation %zd is not (method, args) with an allowed "
                        "method",
                        i);
      failed = 1;
      break;
    }
    mp__mgr_call sub = *call;
    mp_obj *empty = args ? NULL : mp_obj_tuple_from(0, NULL);
    sub.method = m;
    sub.args = args ? args : empty;
    sub.kwds = NULL;
    sub.result = NULL;
    sub.text = NULL;
    sub.kind = MP__MGR_RETURN;
    call->entry->type->call(&sub);
    mp_obj_free(empty);
    if (sub.kind != MP__MGR_RETURN) {
      call->kind = sub.kind;
      call->result = sub.result;
      call->text = sub.text;
      failed = 1;
      break;
    }
    if (mp_obj_list_append(results, sub.result ? sub.result : mp_obj_none())) {
      nomem(call);
      failed = 1;
    }
  }
  if (failed) {
    /* roll back: swap the saved state in */
    cstate *cur = state_of(call);
    call->entry->state = saved;
    cstate_free(cur);
    mp_obj_free(results);
    return 0;
  }
  cstate_free(saved);
  return set_result(call, results);
}

/* ---- the type table ---------------------------------------------------------- */

#define EXPOSED(name, ...)                                   \
  static char *name##_exposed[] = {__VA_ARGS__, NULL};

EXPOSED(dict, "__contains__", "__delitem__", "__getitem__", "__iter__",
        "__len__", "__setitem__", "clear", "copy", "get", "items", "keys",
        "pop", "popitem", "setdefault", "update", "values", "mp_add", "mp_cas",
        "mp_apply")
EXPOSED(list, "__add__", "__contains__", "__delitem__", "__getitem__",
        "__len__", "__mul__", "__reversed__", "__rmul__", "__setitem__",
        "append", "count", "extend", "index", "insert", "pop", "remove",
        "reverse", "sort", "__imul__", "mp_add", "mp_cas",
        "mp_append_if_absent", "mp_apply")
EXPOSED(ns, "__getattribute__", "__setattr__", "__delattr__", "mp_add",
        "mp_cas", "setdefault", "pop", "mp_apply")
EXPOSED(value, "get", "set")
EXPOSED(array, "__len__", "__getitem__", "__setitem__")
EXPOSED(iter, "__next__", "send", "throw", "close")

#define NEXPOSED(name) (MP__ARRAY_SIZE(name##_exposed) - 1)

mp__mgr_type mp__mgr_type_dict = {
    .typeid = "dict", .exposed = dict_exposed, .n_exposed = NEXPOSED(dict),
    .proxytype = "DictProxy", .create = dict_create, .call = dict_call,
    .destroy = cstate_free, .getvalue = dict_getvalue,
    .iter_method = "__iter__", .iter_typeid = "Iterator"};
mp__mgr_type mp__mgr_type_list = {
    .typeid = "list", .exposed = list_exposed, .n_exposed = NEXPOSED(list),
    .proxytype = "ListProxy", .create = list_create, .call = list_call,
    .destroy = cstate_free, .getvalue = list_getvalue};
mp__mgr_type mp__mgr_type_namespace = {
    .typeid = "Namespace", .exposed = ns_exposed, .n_exposed = NEXPOSED(ns),
    .proxytype = "NamespaceProxy", .create = ns_create, .call = ns_call,
    .destroy = cstate_free, .getvalue = dict_getvalue, .pyvalue = ns_pyvalue};
mp__mgr_type mp__mgr_type_value = {
    .typeid = "Value", .exposed = value_exposed, .n_exposed = NEXPOSED(value),
    .proxytype = "ValueProxy", .create = value_create, .call = value_call,
    .destroy = cstate_free, .getvalue = value_getvalue,
    .pyvalue = value_pyvalue, .repr = value_repr};
mp__mgr_type mp__mgr_type_array = {
    .typeid = "Array", .exposed = array_exposed, .n_exposed = NEXPOSED(array),
    .proxytype = "ArrayProxy", .create = array_create, .call = array_call,
    .destroy = cstate_free, .getvalue = list_getvalue,
    .pyvalue = array_pyvalue, .repr = array_repr};
mp__mgr_type mp__mgr_type_iterator = {
    .typeid = "Iterator", .exposed = iter_exposed, .n_exposed = NEXPOSED(iter),
    .proxytype = "IteratorProxy", .create = iter_create, .call = iter_call,
    .destroy = cstate_free};
