/* value.c - the dynamic value mp_obj: building, typed access, list and dict
 * operations, Python's equality and hashing (1 == 1.0 == True), deep copy
 * and free. The layout and the dict's design are in obj_internal.h. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>

#include "obj_internal.h"

/* ---- UTF-8 and the buffer ------------------------------------------------ */

bool mp__utf8_valid(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (len - i <= n)
      return false;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

bool mp__buf_grow(mp__buf *b, size_t extra) {
  if (b->failed)
    return false;
  size_t need = b->len + extra;
  if (need < b->len) {
    b->failed = true;
    return false;
  }
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  char *p = b->borrowed ? mp__alloc(cap) : mp__realloc(b->p, cap);
  if (p == NULL) {
    b->failed = true;
    return false;
  }
  if (b->borrowed && b->len > 0)
    memcpy(p, b->p, b->len);
  b->borrowed = false;
  b->p = p;
  b->cap = cap;
  return true;
}

/* ---- building ------------------------------------------------------------ */

static const char *const type_names[] = {
    [MP_OBJ_NONE] = "NoneType", [MP_OBJ_BOOL] = "bool",
    [MP_OBJ_INT] = "int",       [MP_OBJ_FLOAT] = "float",
    [MP_OBJ_STR] = "str",       [MP_OBJ_BYTES] = "bytes",
    [MP_OBJ_LIST] = "list",     [MP_OBJ_TUPLE] = "tuple",
    [MP_OBJ_DICT] = "dict",     [MP_OBJ_GLOBAL] = "global",
    [MP_OBJ_INSTANCE] = "instance"};

const char *mp_obj_type_name(const mp_obj *o) {
  if (o == NULL)
    return "NULL";
  if (o->type >= MP_OBJ_NONE && o->type <= MP_OBJ_INSTANCE)
    return type_names[o->type];
  return "reference";
}

mp_obj_type mp_obj_type_of(const mp_obj *o) {
  return o == NULL ? (mp_obj_type)0 : (mp_obj_type)o->type;
}

mp_obj *mp__obj_alloc(int type) {
  mp_obj *o = mp__calloc(1, sizeof *o);
  if (o == NULL) {
    mp__fail(MP_ENOMEM, "no memory for a %s value",
             type <= MP_OBJ_INSTANCE ? type_names[type] : "reference");
    return NULL;
  }
  o->type = (uint8_t)type;
  return o;
}

mp_obj *mp_obj_none(void) { return mp__obj_alloc(MP_OBJ_NONE); }

mp_obj *mp_obj_bool(int value) {
  mp_obj *o = mp__obj_alloc(MP_OBJ_BOOL);
  if (o != NULL)
    o->u.i = value != 0;
  return o;
}

mp_obj *mp_obj_int(int64_t value) {
  mp_obj *o = mp__obj_alloc(MP_OBJ_INT);
  if (o != NULL)
    o->u.i = value;
  return o;
}

mp_obj *mp_obj_float(double value) {
  mp_obj *o = mp__obj_alloc(MP_OBJ_FLOAT);
  if (o != NULL)
    o->u.f = value;
  return o;
}

/* new_blob makes a STR or BYTES value whose bytes (and a NUL) live in the
 * same allocation, right after the node: one allocation per string. */
static mp_obj *new_blob(int type, const void *p, size_t len) {
  if (len > SIZE_MAX - sizeof(mp_obj) - 1) {
    mp__fail(MP_ENOMEM, "%s too long", type_names[type]);
    return NULL;
  }
  mp_obj *o = mp__alloc(sizeof *o + len + 1);
  if (o == NULL) {
    mp__fail(MP_ENOMEM, "no memory for a %s of %zu bytes", type_names[type],
             len);
    return NULL;
  }
  memset(o, 0, sizeof *o);
  o->type = (uint8_t)type;
  o->u.s.p = (char *)(o + 1);
  if (len > 0)
    memcpy(o->u.s.p, p, len);
  o->u.s.p[len] = '\0';
  o->u.s.len = len;
  return o;
}

mp_obj *mp_obj_str_len(const char *s, size_t len) {
  if (s == NULL && len > 0) {
    mp__fail(MP_EINVAL, "str: NULL pointer");
    return NULL;
  }
  if (!mp__utf8_valid(s, len)) {
    mp__fail(MP_EINVAL, "str is not valid UTF-8");
    return NULL;
  }
  return new_blob(MP_OBJ_STR, s, len);
}

mp_obj *mp_obj_str(const char *s) {
  if (s == NULL) {
    mp__fail(MP_EINVAL, "str: NULL pointer");
    return NULL;
  }
  return mp_obj_str_len(s, strlen(s));
}

mp_obj *mp_obj_bytes(const void *p, size_t len) {
  if (p == NULL && len > 0) {
    mp__fail(MP_EINVAL, "bytes: NULL pointer with length %zu", len);
    return NULL;
  }
  return new_blob(MP_OBJ_BYTES, p, len);
}

mp_obj *mp_obj_list(void) { return mp__obj_alloc(MP_OBJ_LIST); }
mp_obj *mp_obj_dict(void) { return mp__obj_alloc(MP_OBJ_DICT); }

static int seq_reserve(mp_obj *o, size_t extra) {
  if (o->u.seq.cap - o->u.seq.len >= extra)
    return 0;
  size_t need = o->u.seq.len + extra;
  size_t cap = o->u.seq.cap ? o->u.seq.cap : 4;
  while (cap < need)
    cap *= 2;
  if (cap > SIZE_MAX / sizeof(mp_obj *))
    return mp__fail(MP_ENOMEM, "list too long");
  mp_obj **items = mp__realloc(o->u.seq.items, cap * sizeof(mp_obj *));
  if (items == NULL)
    return mp__fail(MP_ENOMEM, "no memory for %zu list items", cap);
  o->u.seq.items = items;
  o->u.seq.cap = cap;
  return 0;
}

static mp_obj *pack(int type, size_t n, va_list ap) {
  mp_obj *o = mp__obj_alloc(type);
  bool bad = o == NULL;
  if (!bad && n > 0 && seq_reserve(o, n) < 0)
    bad = true;
  for (size_t i = 0; i < n; i++) {
    mp_obj *item = va_arg(ap, mp_obj *);
    if (item == NULL)
      bad = true;
    if (bad)
      mp_obj_free(item);
    else
      o->u.seq.items[o->u.seq.len++] = item;
  }
  if (bad) {
    mp_obj_free(o);
    mp__fail(MP_ENOMEM, "%s: an item is missing (out of memory)",
             type_names[type]);
    return NULL;
  }
  return o;
}

mp_obj *mp_obj_list_pack(size_t n, ...) {
  va_list ap;
  va_start(ap, n);
  mp_obj *o = pack(MP_OBJ_LIST, n, ap);
  va_end(ap);
  return o;
}

mp_obj *mp_obj_tuple_pack(size_t n, ...) {
  va_list ap;
  va_start(ap, n);
  mp_obj *o = pack(MP_OBJ_TUPLE, n, ap);
  va_end(ap);
  return o;
}

mp_obj *mp_obj_tuple_from(size_t n, mp_obj *const *items) {
  if (items == NULL && n > 0) {
    mp__fail(MP_EINVAL, "tuple: NULL items with n %zu", n);
    return NULL;
  }
  mp_obj *o = mp__obj_alloc(MP_OBJ_TUPLE);
  bool bad = o == NULL || (n > 0 && seq_reserve(o, n) < 0);
  for (size_t i = 0; i < n; i++) {
    if (items[i] == NULL)
      bad = true;
    if (bad)
      mp_obj_free(items[i]);
    else
      o->u.seq.items[o->u.seq.len++] = items[i];
  }
  if (bad) {
    mp_obj_free(o);
    mp__fail(MP_ENOMEM, "tuple: an item is missing (out of memory)");
    return NULL;
  }
  return o;
}

static bool good_name(const char *s) {
  return s != NULL && s[0] != '\0' && strchr(s, '\n') == NULL &&
         mp__utf8_valid(s, strlen(s));
}

mp_obj *mp_obj_global(const char *module, const char *qualname) {
  if (!good_name(module) || !good_name(qualname)) {
    mp__fail(MP_EINVAL, "global: module and qualname must be non-empty "
                        "UTF-8 without newlines");
    return NULL;
  }
  mp_obj *o = mp__obj_alloc(MP_OBJ_GLOBAL);
  if (o == NULL)
    return NULL;
  o->u.g.module = mp__strdup(module);
  o->u.g.qualname = mp__strdup(qualname);
  if (o->u.g.module == NULL || o->u.g.qualname == NULL) {
    mp_obj_free(o);
    mp__fail(MP_ENOMEM, "no memory for a global's name");
    return NULL;
  }
  return o;
}

mp_obj *mp_obj_instance(mp_obj *callable, mp_obj *args, mp_obj *state,
                        int newobj) {
  int rc = 0;
  if (callable == NULL || args == NULL)
    rc = mp__fail(MP_ENOMEM, "instance: callable or args missing (out of "
                             "memory)");
  else if (callable->type != MP_OBJ_GLOBAL)
    rc = mp__fail(MP_EINVAL, "instance: callable must be a global, not %s",
                  mp_obj_type_name(callable));
  else if (args->type != MP_OBJ_TUPLE)
    rc = mp__fail(MP_EINVAL, "instance: args must be a tuple, not %s",
                  mp_obj_type_name(args));
  mp_obj *o = rc == 0 ? mp__obj_alloc(MP_OBJ_INSTANCE) : NULL;
  if (o == NULL) {
    mp_obj_free(callable);
    mp_obj_free(args);
    mp_obj_free(state);
    return NULL;
  }
  o->u.inst.callable = callable;
  o->u.inst.args = args;
  o->u.inst.state = state;
  o->u.inst.newobj = newobj != 0;
  return o;
}

/* ---- typed access -------------------------------------------------------- */

static int wrong_type(const char *want, const mp_obj *o) {
  return mp__fail(MP_EINVAL, "expected %s, got %s", want,
                  mp_obj_type_name(o));
}

int mp_obj_get_bool(const mp_obj *o, int *out) {
  if (o == NULL || o->type != MP_OBJ_BOOL || out == NULL)
    return wrong_type("bool", o);
  *out = (int)o->u.i;
  return 0;
}

int mp_obj_get_int(const mp_obj *o, int64_t *out) {
  if (o == NULL || (o->type != MP_OBJ_INT && o->type != MP_OBJ_BOOL) ||
      out == NULL)
    return wrong_type("int", o);
  *out = o->u.i;
  return 0;
}

int mp_obj_get_float(const mp_obj *o, double *out) {
  if (o == NULL || out == NULL)
    return wrong_type("float", o);
  if (o->type == MP_OBJ_FLOAT)
    *out = o->u.f;
  else if (o->type == MP_OBJ_INT || o->type == MP_OBJ_BOOL)
    *out = (double)o->u.i;
  else
    return wrong_type("float", o);
  return 0;
}

int mp_obj_get_str(const mp_obj *o, const char **out, size_t *len) {
  if (o == NULL || o->type != MP_OBJ_STR || out == NULL)
    return wrong_type("str", o);
  *out = o->u.s.p;
  if (len != NULL)
    *len = o->u.s.len;
  return 0;
}

int mp_obj_get_bytes(const mp_obj *o, const void **out, size_t *len) {
  if (o == NULL || o->type != MP_OBJ_BYTES || out == NULL)
    return wrong_type("bytes", o);
  *out = o->u.s.p;
  if (len != NULL)
    *len = o->u.s.len;
  return 0;
}

int mp_obj_is_none(const mp_obj *o) {
  return o != NULL && o->type == MP_OBJ_NONE;
}

ssize_t mp_obj_len(const mp_obj *o) {
  if (o == NULL)
    return wrong_type("a sized value", o);
  switch (o->type) {
  case MP_OBJ_LIST:
  case MP_OBJ_TUPLE:
    return (ssize_t)o->u.seq.len;
  case MP_OBJ_DICT:
    return (ssize_t)o->u.d.used;
  case MP_OBJ_BYTES:
    return (ssize_t)o->u.s.len;
  case MP_OBJ_STR: {
    ssize_t n = 0;
    for (size_t i = 0; i < o->u.s.len; i++)
      n += ((unsigned char)o->u.s.p[i] & 0xc0) != 0x80;
    return n;
  }
  default:
    return mp__fail(MP_EINVAL, "object of type '%s' has no len()",
                    mp_obj_type_name(o));
  }
}

/* ---- list ---------------------------------------------------------------- */

int mp_obj_list_append(mp_obj *list, mp_obj *item) {
  int rc;
  if (item == NULL)
    rc = mp__fail(MP_ENOMEM, "append: the item is missing (out of memory)");
  else if (list == NULL || list->type != MP_OBJ_LIST)
    rc = wrong_type("list", list);
  else
    rc = seq_reserve(list, 1);
  if (rc < 0) {
    mp_obj_free(item);
    return rc;
  }
  list->u.seq.items[list->u.seq.len++] = item;
  return 0;
}

static int seq_index(const mp_obj *seq, ssize_t index, size_t *pos) {
  if (seq == NULL || (seq->type != MP_OBJ_LIST && seq->type != MP_OBJ_TUPLE))
    return wrong_type("list or tuple", seq);
  ssize_t n = (ssize_t)seq->u.seq.len;
  ssize_t i = index < 0 ? index + n : index;
  if (i < 0 || i >= n)
    return mp__fail(MP_ERANGE, "%s index %zd out of range (length %zd)",
                    type_names[seq->type], index, n);
  *pos = (size_t)i;
  return 0;
}

mp_obj *mp_obj_list_get(const mp_obj *seq, ssize_t index) {
  size_t pos = 0;
  if (seq_index(seq, index, &pos) < 0)
    return NULL;
  return seq->u.seq.items[pos];
}

int mp_obj_list_set(mp_obj *list, ssize_t index, mp_obj *item) {
  size_t pos = 0;
  int rc;
  if (item == NULL)
    rc = mp__fail(MP_ENOMEM, "list set: the item is missing (out of memory)");
  else if (list == NULL || list->type != MP_OBJ_LIST)
    rc = wrong_type("list", list);
  else
    rc = seq_index(list, index, &pos);
  if (rc < 0) {
    mp_obj_free(item);
    return rc;
  }
  mp_obj_free(list->u.seq.items[pos]);
  list->u.seq.items[pos] = item;
  return 0;
}

ssize_t mp_obj_list_index(const mp_obj *seq, const mp_obj *value) {
  if (seq == NULL || (seq->type != MP_OBJ_LIST && seq->type != MP_OBJ_TUPLE))
    return wrong_type("list or tuple", seq);
  for (size_t i = 0; i < seq->u.seq.len; i++)
    if (mp_obj_equal(seq->u.seq.items[i], value))
      return (ssize_t)i;
  return mp__fail(MP_EVALUE, "value is not in the %s",
                  type_names[seq->type]);
}

/* ---- equality and hashing ------------------------------------------------ */

static bool is_number(const mp_obj *o) {
  return o->type == MP_OBJ_INT || o->type == MP_OBJ_BOOL ||
         o->type == MP_OBJ_FLOAT;
}

/* i == f exactly, as Python compares an int with a float. */
static bool int_eq_float(int64_t i, double f) {
  if (!isfinite(f) || f != floor(f))
    return false;
  if (f < -9223372036854775808.0 || f >= 9223372036854775808.0)
    return false;
  return (int64_t)f == i;
}

static int dict_find(const mp_obj *d, const mp_obj *key, int64_t hash,
                     size_t *pos);

int mp_obj_equal(const mp_obj *a, const mp_obj *b) {
  if (a == NULL || b == NULL)
    return a == b;
  if (is_number(a) && is_number(b)) {
    if (a->type == MP_OBJ_FLOAT && b->type == MP_OBJ_FLOAT)
      return a->u.f == b->u.f;
    if (a->type == MP_OBJ_FLOAT)
      return int_eq_float(b->u.i, a->u.f);
    if (b->type == MP_OBJ_FLOAT)
      return int_eq_float(a->u.i, b->u.f);
    return a->u.i == b->u.i;
  }
  if (a->type != b->type)
    return 0;
  switch (a->type) {
  case MP_OBJ_NONE:
    return 1;
  case MP_OBJ_STR:
  case MP_OBJ_BYTES:
    return a->u.s.len == b->u.s.len &&
           memcmp(a->u.s.p, b->u.s.p, a->u.s.len) == 0;
  case MP_OBJ_LIST:
  case MP_OBJ_TUPLE:
    if (a->u.seq.len != b->u.seq.len)
      return 0;
    for (size_t i = 0; i < a->u.seq.len; i++)
      if (!mp_obj_equal(a->u.seq.items[i], b->u.seq.items[i]))
        return 0;
    return 1;
  case MP_OBJ_DICT:
    if (a->u.d.used != b->u.d.used)
      return 0;
    for (size_t i = 0; i < a->u.d.n; i++) {
      const mp__dict_entry *e = &a->u.d.entries[i];
      size_t pos;
      if (e->key == NULL)
        continue;
      if (dict_find(b, e->key, e->hash, &pos) != 0 ||
          !mp_obj_equal(e->value, b->u.d.entries[pos].value))
        return 0;
    }
    return 1;
  case MP_OBJ_GLOBAL:
    return strcmp(a->u.g.module, b->u.g.module) == 0 &&
           strcmp(a->u.g.qualname, b->u.g.qualname) == 0;
  case MP_OBJ_INSTANCE:
    return a->u.inst.newobj == b->u.inst.newobj &&
           mp_obj_equal(a->u.inst.callable, b->u.inst.callable) &&
           mp_obj_equal(a->u.inst.args, b->u.inst.args) &&
           mp_obj_equal(a->u.inst.state, b->u.inst.state);
  default:
    return a == b;
  }
}

/* Python's numeric hash: the value modulo the Mersenne prime 2**61 - 1. */
#define HASH_BITS 61
#define HASH_MOD (((uint64_t)1 << HASH_BITS) - 1)

static int64_t hash_int(int64_t v) {
  uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  int64_t h = (int64_t)(m % HASH_MOD);
  if (v < 0)
    h = -h;
  return h == -1 ? -2 : h;
}

static int64_t hash_float(double v) {
  if (isinf(v))
    return v > 0 ? 314159 : -314159;
  if (isnan(v))
    return 0;
  int e;
  double m = frexp(v, &e);
  int sign = 1;
  if (m < 0) {
    sign = -1;
    m = -m;
  }
  uint64_t x = 0;
  while (m != 0.0) {
    x = ((x << 28) & HASH_MOD) | x >> (HASH_BITS - 28);
    m *= 268435456.0;
    e -= 28;
    uint64_t y = (uint64_t)m;
    m -= (double)y;
    x += y;
    if (x >= HASH_MOD)
      x -= HASH_MOD;
  }
  e = e >= 0 ? e % HASH_BITS : HASH_BITS - 1 - ((-1 - e) % HASH_BITS);
  x = ((x << e) & HASH_MOD) | x >> (HASH_BITS - e);
  int64_t h = (int64_t)x * sign;
  return h == -1 ? -2 : h;
}

static int64_t hash_bytes(const char *p, size_t n, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)p[i];
    h *= 1099511628211ull;
  }
  int64_t r = (int64_t)h;
  return r == -1 ? -2 : r;
}

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

int mp__obj_check_hashable(const mp_obj *o) {
  int64_t h;
  return mp_obj_hash(o, &h);
}

int mp_obj_hash(const mp_obj *o, int64_t *out) {
  int64_t h;
  if (o == NULL)
    return mp__fail(MP_EINVAL, "hash of NULL");
  switch (o->type) {
  case MP_OBJ_NONE:
    h = 0x4e6f6e65; /* any constant */
    break;
  case MP_OBJ_BOOL:
  case MP_OBJ_INT:
    h = hash_int(o->u.i);
    break;
  case MP_OBJ_FLOAT: {
    double f = o->u.f;
    /* An integral float hashes as the int it equals (hash(1.0) == 1). */
    h = hash_float(f);
    break;
  }
  case MP_OBJ_STR:
    h = hash_bytes(o->u.s.p, o->u.s.len, 0);
    break;
  case MP_OBJ_BYTES:
    h = hash_bytes(o->u.s.p, o->u.s.len, 0x5bd1e995);
    break;
  case MP_OBJ_GLOBAL:
    h = hash_bytes(o->u.g.qualname, strlen(o->u.g.qualname),
                   (uint64_t)hash_bytes(o->u.g.module,
                                        strlen(o->u.g.module), 7));
    break;
  case MP_OBJ_TUPLE: {
    /* Python's tuple hash (xxHash-based). */
    const uint64_t p1 = 11400714785074694791ull, p2 = 14029467366897019727ull,
                   p5 = 2870177450012600261ull;
    uint64_t acc = p5;
    for (size_t i = 0; i < o->u.seq.len; i++) {
      int64_t lane;
      int rc = mp_obj_hash(o->u.seq.items[i], &lane);
      if (rc < 0)
        return rc;
      acc += (uint64_t)lane * p2;
      acc = rotl(acc, 31);
      acc *= p1;
    }
    acc += (uint64_t)o->u.seq.len ^ (p5 ^ 3527539ull);
    h = acc == UINT64_MAX ? 1546275796 : (int64_t)acc;
    break;
  }
  default:
    return mp__fail(MP_EINVAL, "unhashable type: '%s'", mp_obj_type_name(o));
  }
  if (out != NULL)
    *out = h;
  return 0;
}

/* ---- dict ---------------------------------------------------------------- */

static int dict_find(const mp_obj *d, const mp_obj *key, int64_t hash,
                     size_t *pos) {
  if (d->u.d.index == NULL) {
    for (size_t i = 0; i < d->u.d.n; i++) {
      const mp__dict_entry *e = &d->u.d.entries[i];
      if (e->key != NULL && e->hash == hash && mp_obj_equal(e->key, key)) {
        *pos = i;
        return 0;
      }
    }
    return MP_ENOENT;
  }
  size_t mask = d->u.d.index_cap - 1;
  for (size_t s = (size_t)hash & mask;; s = (s + 1) & mask) {
    uint32_t v = d->u.d.index[s];
    if (v == 0)
      return MP_ENOENT;
    const mp__dict_entry *e = &d->u.d.entries[v - 1];
    if (e->key != NULL && e->hash == hash && mp_obj_equal(e->key, key)) {
      *pos = v - 1;
      return 0;
    }
  }
}

static void index_insert(mp_obj *d, size_t pos) {
  size_t mask = d->u.d.index_cap - 1;
  size_t s = (size_t)d->u.d.entries[pos].hash & mask;
  while (d->u.d.index[s] != 0)
    s = (s + 1) & mask;
  d->u.d.index[s] = (uint32_t)(pos + 1);
}

/* Makes room for one more pair: compacts the holes away, grows the array,
 * and rebuilds the index when the dict is past MP__DICT_LINEAR pairs. */
static int dict_reserve(mp_obj *d) {
  if (d->u.d.n < d->u.d.cap)
    return 0;
  if (d->u.d.used < d->u.d.n) { /* compact */
    size_t j = 0;
    for (size_t i = 0; i < d->u.d.n; i++)
      if (d->u.d.entries[i].key != NULL)
        d->u.d.entries[j++] = d->u.d.entries[i];
    d->u.d.n = j;
  }
  if (d->u.d.n >= d->u.d.cap) {
    size_t cap = d->u.d.cap ? d->u.d.cap * 2 : 4;
    if (cap > UINT32_MAX - 1)
      return mp__fail(MP_ENOMEM, "dict too large");
    mp__dict_entry *e = mp__realloc(d->u.d.entries, cap * sizeof *e);
    if (e == NULL)
      return mp__fail(MP_ENOMEM, "no memory for a dict of %zu items", cap);
    d->u.d.entries = e;
    d->u.d.cap = cap;
  }
  if (d->u.d.cap > MP__DICT_LINEAR) {
    size_t icap = 16;
    while (icap < d->u.d.cap * 2)
      icap *= 2;
    uint32_t *index = mp__calloc(icap, sizeof *index);
    if (index == NULL)
      return mp__fail(MP_ENOMEM, "no memory for a dict index");
    mp__free(d->u.d.index);
    d->u.d.index = index;
    d->u.d.index_cap = icap;
    for (size_t i = 0; i < d->u.d.n; i++)
      index_insert(d, i);
  }
  return 0;
}

int mp__dict_set_keep(mp_obj *dict, mp_obj *key, mp_obj *value,
                      mp_obj **old, mp_obj **dup) {
  int rc = 0;
  int64_t hash = 0;
  *old = NULL;
  *dup = NULL;
  if (key == NULL || value == NULL)
    rc = mp__fail(MP_ENOMEM, "dict set: key or value missing (out of "
                             "memory)");
  else if (dict == NULL || dict->type != MP_OBJ_DICT)
    rc = wrong_type("dict", dict);
  else
    rc = mp_obj_hash(key, &hash);
  size_t pos = 0;
  if (rc == 0 && dict_find(dict, key, hash, &pos) == 0) {
    *old = dict->u.d.entries[pos].value;
    dict->u.d.entries[pos].value = value;
    *dup = key; /* Python keeps the first key: {1: 'a', 1.0: 'b'} */
    return 0;
  }
  if (rc == 0)
    rc = dict_reserve(dict);
  if (rc < 0) {
    mp_obj_free(key);
    mp_obj_free(value);
    return rc;
  }
  pos = dict->u.d.n++;
  dict->u.d.entries[pos] = (mp__dict_entry){key, value, hash};
  dict->u.d.used++;
  if (dict->u.d.index != NULL)
    index_insert(dict, pos);
  return 0;
}

int mp_obj_dict_set(mp_obj *dict, mp_obj *key, mp_obj *value) {
  mp_obj *old, *dup;
  int rc = mp__dict_set_keep(dict, key, value, &old, &dup);
  mp_obj_free(old);
  mp_obj_free(dup);
  return rc;
}

int mp_obj_dict_set_str(mp_obj *dict, const char *key, mp_obj *value) {
  mp_obj *k = mp_obj_str(key);
  if (k == NULL) {
    int rc = mp_error_code();
    mp_obj_free(value);
    return rc < 0 ? rc : MP_ENOMEM;
  }
  return mp_obj_dict_set(dict, k, value);
}

static int dict_lookup(const mp_obj *dict, const mp_obj *key, size_t *pos) {
  int64_t hash;
  if (dict == NULL || dict->type != MP_OBJ_DICT)
    return wrong_type("dict", dict);
  int rc = mp_obj_hash(key, &hash);
  if (rc < 0)
    return rc;
  if (dict_find(dict, key, hash, pos) != 0)
    return mp__fail(MP_ENOENT, "key not in dict (Python's KeyError)");
  return 0;
}

mp_obj *mp_obj_dict_get(const mp_obj *dict, const mp_obj *key) {
  size_t pos = 0;
  if (dict_lookup(dict, key, &pos) < 0)
    return NULL;
  return dict->u.d.entries[pos].value;
}

mp_obj *mp_obj_dict_get_str(const mp_obj *dict, const char *key) {
  if (key == NULL) {
    mp__fail(MP_EINVAL, "dict get: NULL key");
    return NULL;
  }
  /* A str key on the stack: no allocation for a lookup. */
  mp_obj k;
  memset(&k, 0, sizeof k);
  k.type = MP_OBJ_STR;
  k.u.s.p = (char *)key;
  k.u.s.len = strlen(key);
  return mp_obj_dict_get(dict, &k);
}

int mp_obj_dict_del(mp_obj *dict, const mp_obj *key) {
  size_t pos = 0;
  int rc = dict_lookup(dict, key, &pos);
  if (rc < 0)
    return rc;
  mp__dict_entry *e = &dict->u.d.entries[pos];
  mp_obj_free(e->key);
  mp_obj_free(e->value);
  e->key = NULL;
  e->value = NULL;
  dict->u.d.used--;
  if (pos + 1 == dict->u.d.n && dict->u.d.index == NULL)
    dict->u.d.n--;
  return 0;
}

int mp_obj_dict_next(const mp_obj *dict, size_t *pos, mp_obj **key,
                     mp_obj **value) {
  if (dict == NULL || dict->type != MP_OBJ_DICT || pos == NULL)
    return wrong_type("dict", dict);
  while (*pos < dict->u.d.n) {
    const mp__dict_entry *e = &dict->u.d.entries[(*pos)++];
    if (e->key == NULL)
      continue;
    if (key != NULL)
      *key = e->key;
    if (value != NULL)
      *value = e->value;
    return 1;
  }
  return 0;
}

/* ---- GLOBAL and INSTANCE ------------------------------------------------- */

int mp_obj_global_name(const mp_obj *o, const char **module,
                       const char **qualname) {
  if (o != NULL && o->type == MP_OBJ_INSTANCE)
    o = o->u.inst.callable;
  if (o == NULL || o->type != MP_OBJ_GLOBAL)
    return wrong_type("global or instance", o);
  if (module != NULL)
    *module = o->u.g.module;
  if (qualname != NULL)
    *qualname = o->u.g.qualname;
  return 0;
}

mp_obj *mp_obj_instance_args(const mp_obj *o) {
  if (o == NULL || o->type != MP_OBJ_INSTANCE) {
    wrong_type("instance", o);
    return NULL;
  }
  return o->u.inst.args;
}

mp_obj *mp_obj_instance_state(const mp_obj *o) {
  if (o == NULL || o->type != MP_OBJ_INSTANCE) {
    wrong_type("instance", o);
    return NULL;
  }
  return o->u.inst.state;
}

int mp_obj_instance_newobj(const mp_obj *o) {
  if (o == NULL || o->type != MP_OBJ_INSTANCE)
    return wrong_type("instance", o);
  return o->u.inst.newobj;
}

/* ---- copy and free ------------------------------------------------------- */

mp_obj *mp_obj_copy(const mp_obj *o) {
  if (o == NULL) {
    mp__fail(MP_EINVAL, "copy of NULL");
    return NULL;
  }
  switch (o->type) {
  case MP_OBJ_NONE:
    return mp_obj_none();
  case MP_OBJ_BOOL:
    return mp_obj_bool((int)o->u.i);
  case MP_OBJ_INT:
    return mp_obj_int(o->u.i);
  case MP_OBJ_FLOAT:
    return mp_obj_float(o->u.f);
  case MP_OBJ_STR:
  case MP_OBJ_BYTES:
    return new_blob(o->type, o->u.s.p, o->u.s.len);
  case MP_OBJ_LIST:
  case MP_OBJ_TUPLE: {
    mp_obj *c = mp__obj_alloc(o->type);
    if (c == NULL || (o->u.seq.len > 0 && seq_reserve(c, o->u.seq.len) < 0))
      goto fail_seq;
    for (size_t i = 0; i < o->u.seq.len; i++) {
      mp_obj *item = mp_obj_copy(o->u.seq.items[i]);
      if (item == NULL)
        goto fail_seq;
      c->u.seq.items[c->u.seq.len++] = item;
    }
    return c;
  fail_seq:
    mp_obj_free(c);
    return NULL;
  }
  case MP_OBJ_DICT: {
    mp_obj *c = mp_obj_dict();
    if (c == NULL)
      return NULL;
    for (size_t i = 0; i < o->u.d.n; i++) {
      const mp__dict_entry *e = &o->u.d.entries[i];
      if (e->key != NULL &&
          mp_obj_dict_set(c, mp_obj_copy(e->key), mp_obj_copy(e->value)) < 0) {
        mp_obj_free(c);
        return NULL;
      }
    }
    return c;
  }
  case MP_OBJ_GLOBAL: {
    mp_obj *c = mp_obj_global(o->u.g.module, o->u.g.qualname);
    if (c != NULL)
      c->flags = o->flags & MP__OBJ_CTOR;
    return c;
  }
  case MP_OBJ_INSTANCE:
    return mp_obj_instance(
        mp_obj_copy(o->u.inst.callable), mp_obj_copy(o->u.inst.args),
        o->u.inst.state ? mp_obj_copy(o->u.inst.state) : NULL,
        o->u.inst.newobj);
  default:
    mp__fail(MP_EINVAL, "copy of an unresolved reference");
    return NULL;
  }
}

void mp_obj_free(mp_obj *o) {
  if (o == NULL)
    return;
  switch (o->type) {
  case MP_OBJ_STR:
  case MP_OBJ_BYTES:
    if (o->u.s.p != (char *)(o + 1)) /* always so today (new_blob) */
      mp__free(o->u.s.p);
    break;
  case MP_OBJ_LIST:
  case MP_OBJ_TUPLE:
    for (size_t i = 0; i < o->u.seq.len; i++)
      mp_obj_free(o->u.seq.items[i]);
    mp__free(o->u.seq.items);
    break;
  case MP_OBJ_DICT:
    for (size_t i = 0; i < o->u.d.n; i++) {
      mp_obj_free(o->u.d.entries[i].key);
      mp_obj_free(o->u.d.entries[i].value);
    }
    mp__free(o->u.d.entries);
    mp__free(o->u.d.index);
    break;
  case MP_OBJ_GLOBAL:
    mp__free(o->u.g.module);
    mp__free(o->u.g.qualname);
    break;
  case MP_OBJ_INSTANCE:
    mp_obj_free(o->u.inst.callable);
    mp_obj_free(o->u.inst.args);
    mp_obj_free(o->u.inst.state);
    break;
  default:
    break;
  }
  mp__free(o);
}
