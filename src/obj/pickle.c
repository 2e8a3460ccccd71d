/* pickle.c - Python's pickle for mp_obj: the encoder (protocols 2 to 5,
 * protocol 4 with a FRAME by default, as Python 3.11-3.13 write) and a
 * decoder for what Python 3 writes under protocols 2 to 5, with limits, that
 * never imports or calls anything.
 *
 * DESIGN (decoder). The pickle machine is a stack, a stack of MARK heights
 * and a memo. Every value the decoder makes is owned by exactly one place:
 * the stack, a container, or the graveyard (values popped or replaced and
 * not placed anywhere: a memo entry may still point at them, so they live
 * until the end). The memo only borrows. A memo read (GET) of a scalar pushes
 * a copy; of a container it pushes a REF node, because the container may
 * still be filling (Python's pickler writes a value whole before it refers
 * to it again, except for a value that contains itself). When STOP is
 * reached, every REF in the result is replaced by a copy of its target; a
 * target met again while it is being copied is a value that contains itself
 * and is refused, since an mp_obj is a tree. Copies count against
 * max_nodes, so a small pickle cannot expand into a huge value.
 *
 * Globals. GLOBAL and STACK_GLOBAL are refused unless opts->allow allows
 * the name, except the few constructors through which Python writes plain
 * data under protocols 2 and 3 (_codecs.encode for bytes, bytes(),
 * bytearray, set, frozenset): a REDUCE on one of those makes the value
 * itself. An allowed global becomes an MP_OBJ_GLOBAL, and REDUCE, NEWOBJ,
 * NEWOBJ_EX (without keywords) and BUILD on it an MP_OBJ_INSTANCE that
 * records the arguments and the state. INST, OBJ, EXT1/2/4, PERSID,
 * BINPERSID and out-of-band buffers are always refused. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>

#include "obj_internal.h"

/* Opcodes (Python's Lib/pickletools.py names them all). */
enum {
  OP_MARK = '(', OP_STOP = '.', OP_POP = '0', OP_POP_MARK = '1',
  OP_DUP = '2', OP_FLOAT = 'F', OP_INT = 'I', OP_BININT = 'J',
  OP_BININT1 = 'K', OP_LONG = 'L', OP_BININT2 = 'M', OP_NONE = 'N',
  OP_PERSID = 'P', OP_BINPERSID = 'Q', OP_REDUCE = 'R', OP_STRING = 'S',
  OP_BINSTRING = 'T', OP_SHORT_BINSTRING = 'U', OP_UNICODE = 'V',
  OP_BINUNICODE = 'X', OP_APPEND = 'a', OP_BUILD = 'b', OP_GLOBAL = 'c',
  OP_DICT = 'd', OP_EMPTY_DICT = '}', OP_APPENDS = 'e', OP_GET = 'g',
  OP_BINGET = 'h', OP_INST = 'i', OP_LONG_BINGET = 'j', OP_LIST = 'l',
  OP_EMPTY_LIST = ']', OP_OBJ = 'o', OP_PUT = 'p', OP_BINPUT = 'q',
  OP_LONG_BINPUT = 'r', OP_SETITEM = 's', OP_TUPLE = 't',
  OP_EMPTY_TUPLE = ')', OP_SETITEMS = 'u', OP_BINFLOAT = 'G',
  OP_PROTO = 0x80, OP_NEWOBJ = 0x81, OP_EXT1 = 0x82, OP_EXT2 = 0x83,
  OP_EXT4 = 0x84, OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87,
  OP_NEWTRUE = 0x88, OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a, OP_LONG4 = 0x8b,
  OP_BINBYTES = 'B', OP_SHORT_BINBYTES = 'C', OP_SHORT_BINUNICODE = 0x8c,
  OP_BINUNICODE8 = 0x8d, OP_BINBYTES8 = 0x8e, OP_EMPTY_SET = 0x8f,
  OP_ADDITEMS = 0x90, OP_FROZENSET = 0x91, OP_NEWOBJ_EX = 0x92,
  OP_STACK_GLOBAL = 0x93, OP_MEMOIZE = 0x94, OP_FRAME = 0x95,
  OP_BYTEARRAY8 = 0x96, OP_NEXT_BUFFER = 0x97, OP_READONLY_BUFFER = 0x98,
};

static const char *op_name(int op) {
  switch (op) {
  case OP_PERSID: return "PERSID";
  case OP_BINPERSID: return "BINPERSID";
  case OP_REDUCE: return "REDUCE";
  case OP_BUILD: return "BUILD";
  case OP_GLOBAL: return "GLOBAL";
  case OP_INST: return "INST";
  case OP_OBJ: return "OBJ";
  case OP_NEWOBJ: return "NEWOBJ";
  case OP_NEWOBJ_EX: return "NEWOBJ_EX";
  case OP_EXT1: return "EXT1";
  case OP_EXT2: return "EXT2";
  case OP_EXT4: return "EXT4";
  case OP_STACK_GLOBAL: return "STACK_GLOBAL";
  case OP_NEXT_BUFFER: return "NEXT_BUFFER";
  case OP_READONLY_BUFFER: return "READONLY_BUFFER";
  case OP_FLOAT: return "FLOAT";
  case OP_INT: return "INT";
  case OP_LONG: return "LONG";
  case OP_STRING: return "STRING";
  case OP_BINSTRING: return "BINSTRING";
  case OP_SHORT_BINSTRING: return "SHORT_BINSTRING";
  case OP_UNICODE: return "UNICODE";
  case OP_GET: return "GET";
  case OP_PUT: return "PUT";
  case OP_APPEND: return "APPEND";
  case OP_APPENDS: return "APPENDS";
  case OP_SETITEM: return "SETITEM";
  case OP_SETITEMS: return "SETITEMS";
  case OP_ADDITEMS: return "ADDITEMS";
  default: return "opcode";
  }
}

/* ======================================================================
 * Decoder
 * ====================================================================== */

typedef struct dec {
  const uint8_t *p;
  size_t len, pos;
  int op; /* the opcode being run, for details */
  mp_obj **stack;
  size_t sp, scap;
  size_t *marks;
  size_t nmarks, mcap;
  mp_obj **memo;
  size_t memo_len, memo_cap;
  mp_obj **grave;
  size_t ngrave, gcap;
  size_t nodes, max_nodes, max_depth, max_memo;
  mp_pickle_allow_fn allow;
  void *allow_ctx;
  /* The first storage of the four arrays above: a small pickle decodes
   * without allocating any of them (grow moves one to the heap). */
  mp_obj *stack_in[16];
  size_t marks_in[8];
  mp_obj *memo_in[16];
  mp_obj *grave_in[4];
} dec;

static int truncated(dec *d, size_t need) {
  return mp__fail(MP_EPROTO,
                  "truncated pickle: opcode 0x%02x at offset %zu needs %zu "
                  "bytes, %zu left",
                  d->op, d->pos, need, d->len - d->pos);
}

static int need(dec *d, size_t n) {
  return d->len - d->pos < n ? truncated(d, n) : 0;
}

static uint64_t rd_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static int count_node(dec *d) {
  if (++d->nodes > d->max_nodes)
    return mp__fail(MP_ETOOBIG, "pickle holds more than %zu values "
                                "(max_nodes)", d->max_nodes);
  return 0;
}

/* grow makes room for need elements of size bytes in *arr (capacity
 * *cap); inl is the array's first storage inside the dec, which is copied
 * to the heap, never reallocated. */
static int grow(void **arr, size_t *cap, size_t need, size_t size,
                void *inl) {
  if (need <= *cap)
    return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need)
    c *= 2;
  void *p = *arr == inl ? mp__alloc(c * size) : mp__realloc(*arr, c * size);
  if (p == NULL)
    return mp__fail(MP_ENOMEM, "no memory for the pickle machine");
  if (*arr == inl)
    memcpy(p, inl, *cap * size);
  *arr = p;
  *cap = c;
  return 0;
}

/* push takes ownership of o (frees it on failure); NULL o is the failure
 * of the constructor that made it. */
static int push(dec *d, mp_obj *o) {
  if (o == NULL) {
    int rc = mp_error_code();
    return rc < 0 ? rc : MP_ENOMEM;
  }
  int rc = count_node(d);
  if (rc == 0)
    rc = grow((void **)&d->stack, &d->scap, d->sp + 1, sizeof(mp_obj *),
              d->stack_in);
  if (rc < 0) {
    mp_obj_free(o);
    return rc;
  }
  d->stack[d->sp++] = o;
  return 0;
}

/* bury keeps o until the end (the memo may point at it). On failure it
 * frees o at once: the caller then fails, and nothing reads the memo
 * again. */
static int bury(dec *d, mp_obj *o) {
  if (o == NULL)
    return 0;
  if (grow((void **)&d->grave, &d->gcap, d->ngrave + 1, sizeof(mp_obj *),
           d->grave_in) < 0) {
    mp_obj_free(o);
    return MP_ENOMEM;
  }
  d->grave[d->ngrave++] = o;
  return 0;
}

static int underflow(dec *d) {
  return mp__fail(MP_EPROTO, "malformed pickle: %s (0x%02x) at offset %zu "
                             "finds the stack empty",
                  op_name(d->op), d->op, d->pos);
}

/* The first item above the innermost MARK, or the stack bottom. */
static size_t floor_sp(dec *d) {
  return d->nmarks ? d->marks[d->nmarks - 1] : 0;
}

static int pop(dec *d, mp_obj **out) {
  if (d->sp <= floor_sp(d))
    return underflow(d);
  *out = d->stack[--d->sp];
  return 0;
}

static int top(dec *d, mp_obj **out) {
  if (d->sp <= floor_sp(d))
    return underflow(d);
  *out = d->stack[d->sp - 1];
  return 0;
}

static int pop_mark(dec *d, size_t *mark) {
  if (d->nmarks == 0)
    return mp__fail(MP_EPROTO, "malformed pickle: %s (0x%02x) at offset %zu "
                               "without a MARK",
                    op_name(d->op), d->op, d->pos);
  *mark = d->marks[--d->nmarks];
  return 0;
}

static int check_depth(dec *d, mp_obj *parent, const mp_obj *child) {
  if (child->depth + 1 > parent->depth)
    parent->depth = child->depth + 1;
  if (parent->depth > d->max_depth)
    return mp__fail(MP_ETOOBIG, "pickle nested deeper than %zu (max_depth)",
                    d->max_depth);
  return 0;
}

static bool is_container(const mp_obj *o) {
  return o->type == MP_OBJ_LIST || o->type == MP_OBJ_TUPLE ||
         o->type == MP_OBJ_DICT || o->type == MP_OBJ_INSTANCE ||
         o->type == MP__OBJ_REF;
}

/* ---- resolving memo references ------------------------------------------- */

static int copy_resolved(dec *d, const mp_obj *t, size_t depth, mp_obj **out);

static int refused_ctor(const mp_obj *g) {
  return mp__fail(MP_EPROTO, "opcode GLOBAL refused: %s.%s is allowed only "
                             "as a constructor of plain data (REDUCE)",
                  g->u.g.module, g->u.g.qualname);
}

static int copy_resolved(dec *d, const mp_obj *t, size_t depth, mp_obj **out) {
  int rc;
  if (depth > d->max_depth)
    return mp__fail(MP_ETOOBIG, "pickle nested deeper than %zu (max_depth)",
                    d->max_depth);
  if (t->type == MP__OBJ_REF)
    t = t->u.ref.target;
  if (t->flags & MP__OBJ_BUSY)
    return mp__fail(MP_EPROTO, "recursive value refused: a %s contains "
                               "itself (an mp_obj is a tree)",
                    mp_obj_type_name(t));
  if ((rc = count_node(d)) < 0)
    return rc;
  if (t->type == MP_OBJ_GLOBAL && (t->flags & MP__OBJ_CTORONLY))
    return refused_ctor(t);
  if (!is_container(t)) {
    *out = mp_obj_copy(t);
    return *out != NULL ? 0 : MP_ENOMEM;
  }
  mp_obj *c = NULL;
  ((mp_obj *)t)->flags |= MP__OBJ_BUSY;
  switch (t->type) {
  case MP_OBJ_LIST:
  case MP_OBJ_TUPLE:
    c = mp__obj_alloc(t->type);
    if (c == NULL) {
      rc = MP_ENOMEM;
      break;
    }
    if (t->u.seq.len > 0) {
      c->u.seq.items = mp__alloc(t->u.seq.len * sizeof(mp_obj *));
      if (c->u.seq.items == NULL) {
        rc = mp__fail(MP_ENOMEM, "no memory to copy a shared value");
        break;
      }
      c->u.seq.cap = t->u.seq.len;
    }
    for (size_t i = 0; i < t->u.seq.len && rc == 0; i++) {
      rc = copy_resolved(d, t->u.seq.items[i], depth + 1,
                         &c->u.seq.items[c->u.seq.len]);
      if (rc == 0)
        c->u.seq.len++;
    }
    break;
  case MP_OBJ_DICT:
    c = mp_obj_dict();
    if (c == NULL) {
      rc = MP_ENOMEM;
      break;
    }
    for (size_t i = 0; i < t->u.d.n && rc == 0; i++) {
      const mp__dict_entry *e = &t->u.d.entries[i];
      mp_obj *k, *v;
      if (e->key == NULL)
        continue;
      if ((rc = copy_resolved(d, e->key, depth + 1, &k)) < 0)
        break;
      if ((rc = copy_resolved(d, e->value, depth + 1, &v)) < 0) {
        mp_obj_free(k);
        break;
      }
      rc = mp_obj_dict_set(c, k, v);
    }
    break;
  case MP_OBJ_INSTANCE: {
    mp_obj *g = NULL, *a = NULL, *s = NULL;
    rc = copy_resolved(d, t->u.inst.callable, depth + 1, &g);
    if (rc == 0)
      rc = copy_resolved(d, t->u.inst.args, depth + 1, &a);
    if (rc == 0 && t->u.inst.state != NULL)
      rc = copy_resolved(d, t->u.inst.state, depth + 1, &s);
    if (rc == 0) {
      c = mp_obj_instance(g, a, s, t->u.inst.newobj);
      if (c == NULL)
        rc = MP_ENOMEM;
    } else {
      mp_obj_free(g);
      mp_obj_free(a);
      mp_obj_free(s);
    }
    break;
  }
  }
  ((mp_obj *)t)->flags &= (uint8_t)~MP__OBJ_BUSY;
  if (rc < 0) {
    mp_obj_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

/* Replaces every REF under *slot by a copy of its target, in place. */
static int resolve(dec *d, mp_obj **slot, size_t depth) {
  mp_obj *o = *slot;
  int rc = 0;
  if (o->type == MP__OBJ_REF) {
    mp_obj *c;
    if ((rc = copy_resolved(d, o->u.ref.target, depth, &c)) < 0)
      return rc;
    mp__free(o);
    *slot = c;
    return 0;
  }
  if (depth > d->max_depth)
    return mp__fail(MP_ETOOBIG, "pickle nested deeper than %zu (max_depth)",
                    d->max_depth);
  switch (o->type) {
  case MP_OBJ_GLOBAL:
    if (o->flags & MP__OBJ_CTORONLY)
      return refused_ctor(o);
    break;
  case MP_OBJ_LIST:
  case MP_OBJ_TUPLE:
    for (size_t i = 0; i < o->u.seq.len && rc == 0; i++)
      rc = resolve(d, &o->u.seq.items[i], depth + 1);
    break;
  case MP_OBJ_DICT:
    for (size_t i = 0; i < o->u.d.n && rc == 0; i++) {
      mp__dict_entry *e = &o->u.d.entries[i];
      if (e->key == NULL)
        continue;
      /* Keys hold no REF (resolved when set), but may hold a refused
       * constructor global. */
      rc = resolve(d, &e->key, depth + 1);
      if (rc == 0)
        rc = resolve(d, &e->value, depth + 1);
    }
    break;
  case MP_OBJ_INSTANCE:
    rc = resolve(d, &o->u.inst.callable, depth + 1);
    if (rc == 0)
      rc = resolve(d, &o->u.inst.args, depth + 1);
    if (rc == 0 && o->u.inst.state != NULL)
      rc = resolve(d, &o->u.inst.state, depth + 1);
    break;
  default:
    break;
  }
  return rc;
}

/* A dict key must be a plain hashable value now: resolve a REF in it. */
static int resolve_key(dec *d, mp_obj **key) {
  int rc = 0;
  if ((*key)->type == MP__OBJ_REF || (*key)->type == MP_OBJ_TUPLE)
    rc = resolve(d, key, 0);
  if (rc == 0)
    rc = mp__obj_check_hashable(*key);
  return rc;
}

/* ---- containers ------------------------------------------------------------ */

/* Appends the stack items [from, sp) to the list or set at from - 1. */
static int append_items(dec *d, size_t from) {
  if (from == 0 || from > d->sp)
    return underflow(d);
  mp_obj *list = d->stack[from - 1];
  if (list->type != MP_OBJ_LIST)
    return mp__fail(MP_EPROTO, "malformed pickle: %s on a %s, not a list",
                    op_name(d->op), mp_obj_type_name(list));
  size_t n = d->sp - from;
  /* An empty batch (MARK APPENDS, which Python accepts): nothing to do,
   * and an empty list's items may be NULL, where even + 0 is undefined. */
  if (n == 0)
    return 0;
  if (list->u.seq.cap - list->u.seq.len < n) {
    size_t cap = list->u.seq.len + n;
    if (cap < list->u.seq.cap * 2)
      cap = list->u.seq.cap * 2;
    mp_obj **items = mp__realloc(list->u.seq.items, cap * sizeof(mp_obj *));
    if (items == NULL)
      return mp__fail(MP_ENOMEM, "no memory for a list of %zu items", cap);
    list->u.seq.items = items;
    list->u.seq.cap = cap;
  }
  for (size_t i = from; i < d->sp; i++) {
    int rc = check_depth(d, list, d->stack[i]);
    if (rc < 0)
      return rc;
  }
  memcpy(list->u.seq.items + list->u.seq.len, d->stack + from,
         n * sizeof(mp_obj *));
  list->u.seq.len += n;
  d->sp = from;
  return 0;
}

/* Sets the key/value pairs at [from, sp) into the dict at from - 1. */
static int set_items(dec *d, size_t from) {
  if (from == 0 || from > d->sp)
    return underflow(d);
  mp_obj *dict = d->stack[from - 1];
  if (dict->type != MP_OBJ_DICT)
    return mp__fail(MP_EPROTO, "malformed pickle: %s on a %s, not a dict",
                    op_name(d->op), mp_obj_type_name(dict));
  if ((d->sp - from) % 2 != 0)
    return mp__fail(MP_EPROTO, "malformed pickle: %s with an odd number of "
                               "items",
                    op_name(d->op));
  int rc = 0;
  size_t i = from;
  for (; i < d->sp && rc == 0; i += 2) {
    mp_obj *old, *dup;
    if ((rc = resolve_key(d, &d->stack[i])) < 0)
      break;
    if ((rc = check_depth(d, dict, d->stack[i])) < 0 ||
        (rc = check_depth(d, dict, d->stack[i + 1])) < 0)
      break;
    /* On success the dict owns both (or frees the duplicate key); the
     * replaced value goes to the graveyard (the memo may point at it). */
    mp_obj *k = d->stack[i], *v = d->stack[i + 1];
    d->stack[i] = d->stack[i + 1] = NULL;
    rc = mp__dict_set_keep(dict, k, v, &old, &dup);
    if (rc == 0 && (bury(d, old) < 0) + (bury(d, dup) < 0))
      rc = mp__fail(MP_ENOMEM, "no memory for the pickle machine");
  }
  if (rc < 0) {
    /* Items not yet moved stay on the stack and are freed with it; the
     * moved ones are NULL slots. Compact them away. */
    size_t j = from;
    for (size_t k = from; k < d->sp; k++)
      if (d->stack[k] != NULL)
        d->stack[j++] = d->stack[k];
    d->sp = j;
    return rc;
  }
  d->sp = from;
  return 0;
}

/* Builds a tuple (or list) from the stack items [from, sp), in their
 * place. */
static int make_tuple(dec *d, size_t from, int type) {
  size_t n = d->sp - from;
  int rc = 0;
  if (n == 0 && (rc = grow((void **)&d->stack, &d->scap, d->sp + 1,
                           sizeof(mp_obj *), d->stack_in)) < 0)
    return rc;
  mp_obj *t = mp__obj_alloc(type);
  if (t == NULL)
    return MP_ENOMEM;
  rc = count_node(d);
  if (rc == 0 && n > 0) {
    t->u.seq.items = mp__alloc(n * sizeof(mp_obj *));
    if (t->u.seq.items == NULL)
      rc = mp__fail(MP_ENOMEM, "no memory for a tuple of %zu items", n);
    t->u.seq.cap = n;
  }
  for (size_t i = from; i < d->sp && rc == 0; i++)
    rc = check_depth(d, t, d->stack[i]);
  if (rc < 0) {
    mp_obj_free(t);
    return rc;
  }
  if (n > 0)
    memcpy(t->u.seq.items, d->stack + from, n * sizeof(mp_obj *));
  t->u.seq.len = n;
  d->sp = from;
  d->stack[d->sp++] = t; /* room: n >= 1, or the slot just freed */
  return 0;
}

static int push_tuple_n(dec *d, size_t n) {
  if (d->sp - floor_sp(d) < n)
    return underflow(d);
  return make_tuple(d, d->sp - n, MP_OBJ_TUPLE);
}

/* ---- globals and constructors ---------------------------------------------- */

static bool is_builtins(const char *m) {
  return strcmp(m, "builtins") == 0 || strcmp(m, "__builtin__") == 0;
}

static bool is_ctor(const char *module, const char *name) {
  if (strcmp(module, "_codecs") == 0)
    return strcmp(name, "encode") == 0;
  return is_builtins(module) &&
         (strcmp(name, "bytes") == 0 || strcmp(name, "bytearray") == 0 ||
          strcmp(name, "set") == 0 || strcmp(name, "frozenset") == 0);
}

static int push_global(dec *d, const char *module, const char *name) {
  bool ctor = is_ctor(module, name);
  bool allowed = d->allow != NULL && d->allow(d->allow_ctx, module, name);
  if (!ctor && !allowed)
    return mp__fail(MP_EPROTO, "opcode %s refused: it would import %s.%s "
                               "(not in the allow-list)",
                    op_name(d->op), module, name);
  mp_obj *g = mp_obj_global(module, name);
  if (g == NULL)
    return mp_error_code() < 0 ? mp_error_code() : MP_ENOMEM;
  if (ctor)
    g->flags |= MP__OBJ_CTOR;
  if (ctor && !allowed)
    g->flags |= MP__OBJ_CTORONLY;
  return push(d, g);
}

/* Latin-1 text (as UTF-8) back to bytes: what _codecs.encode(s, 'latin1')
 * returns. MP_EPROTO for a code point above U+00FF. */
static mp_obj *latin1_bytes(const mp_obj *s) {
  const unsigned char *p = (const unsigned char *)s->u.s.p;
  char *out = mp__alloc(s->u.s.len + 1);
  if (out == NULL) {
    mp__fail(MP_ENOMEM, "no memory for bytes");
    return NULL;
  }
  size_t n = 0;
  for (size_t i = 0; i < s->u.s.len; i++) {
    if (p[i] < 0x80) {
      out[n++] = (char)p[i];
    } else if ((p[i] == 0xc2 || p[i] == 0xc3) && i + 1 < s->u.s.len) {
      out[n++] = (char)(((p[i] & 0x03) << 6) | (p[i + 1] & 0x3f));
      i++;
    } else {
      mp__free(out);
      mp__fail(MP_EPROTO, "malformed pickle: _codecs.encode of text that "
                          "is not Latin-1");
      return NULL;
    }
  }
  mp_obj *b = mp_obj_bytes(out, n);
  mp__free(out);
  return b;
}

static bool is_latin1_name(const mp_obj *o) {
  return o->type == MP_OBJ_STR &&
         (strcmp(o->u.s.p, "latin1") == 0 || strcmp(o->u.s.p, "latin-1") == 0);
}

/* The value a REDUCE of constructor g on args makes, or NULL with
 * *matched false when the arguments are not one of Python's forms. */
static int apply_ctor(dec *d, const mp_obj *g, const mp_obj *args,
                      mp_obj **out, bool *matched) {
  const char *name = g->u.g.qualname;
  size_t n = args->u.seq.len;
  mp_obj *a0 = n > 0 ? args->u.seq.items[0] : NULL;
  mp_obj *a0r = NULL;
  int rc = 0;
  *matched = true;
  *out = NULL;
  if (a0 != NULL && a0->type == MP__OBJ_REF) {
    if ((rc = copy_resolved(d, a0, 0, &a0r)) < 0)
      return rc;
    a0 = a0r;
  }
  if (strcmp(name, "encode") == 0 || strcmp(name, "bytes") == 0 ||
      strcmp(name, "bytearray") == 0) {
    if (n == 0 && strcmp(name, "encode") != 0)
      *out = mp_obj_bytes(NULL, 0);
    else if (n == 2 && a0->type == MP_OBJ_STR &&
             is_latin1_name(args->u.seq.items[1]))
      *out = latin1_bytes(a0);
    else if (n == 1 && a0->type == MP_OBJ_BYTES &&
             strcmp(name, "encode") != 0)
      *out = mp_obj_copy(a0);
    else
      *matched = false;
  } else { /* set, frozenset */
    bool frozen = strcmp(name, "frozenset") == 0;
    if (n == 0) {
      *out = frozen ? mp_obj_tuple_from(0, NULL) : mp_obj_list();
    } else if (n == 1 && a0->type == MP_OBJ_LIST) {
      rc = copy_resolved(d, a0, 0, out);
      if (rc == 0 && frozen)
        (*out)->type = MP_OBJ_TUPLE;
    } else {
      *matched = false;
    }
  }
  mp_obj_free(a0r);
  if (rc == 0 && *matched && *out == NULL)
    rc = mp_error_code() < 0 ? mp_error_code() : MP_ENOMEM;
  return rc;
}

/* REDUCE, NEWOBJ, NEWOBJ_EX: callable and args already popped (owned
 * here). */
static int do_call(dec *d, mp_obj *callable, mp_obj *args, int newobj) {
  int rc = 0;
  if (callable->type != MP_OBJ_GLOBAL)
    rc = mp__fail(MP_EPROTO, "opcode %s refused: it would call a %s",
                  op_name(d->op), mp_obj_type_name(callable));
  else if (args->type != MP_OBJ_TUPLE)
    rc = mp__fail(MP_EPROTO, "malformed pickle: %s arguments are a %s, not "
                             "a tuple",
                  op_name(d->op), mp_obj_type_name(args));
  if (rc == 0 && (callable->flags & MP__OBJ_CTOR) && !newobj) {
    mp_obj *v;
    bool matched;
    rc = apply_ctor(d, callable, args, &v, &matched);
    if (rc == 0 && matched) {
      if ((bury(d, callable) < 0) + (bury(d, args) < 0)) {
        mp_obj_free(v);
        return mp__fail(MP_ENOMEM, "no memory for the pickle machine");
      }
      v->depth = args->depth;
      return push(d, v);
    }
    if (rc == 0 && (callable->flags & MP__OBJ_CTORONLY))
      rc = mp__fail(MP_EPROTO, "opcode REDUCE refused: %s.%s called with "
                               "arguments that are not plain data",
                    callable->u.g.module, callable->u.g.qualname);
  } else if (rc == 0 && (callable->flags & MP__OBJ_CTORONLY)) {
    rc = refused_ctor(callable);
  }
  if (rc < 0) {
    bury(d, callable);
    bury(d, args);
    return rc;
  }
  /* The instance owns callable and args; memo entries pointing at them
   * stay valid. */
  uint32_t depth = args->depth + 1;
  mp_obj *inst = mp_obj_instance(callable, args, NULL, newobj);
  if (inst == NULL)
    return MP_ENOMEM; /* callable and args freed: the memo must go */
  inst->depth = depth;
  if (depth > d->max_depth) {
    bury(d, inst);
    return mp__fail(MP_ETOOBIG, "pickle nested deeper than %zu (max_depth)",
                    d->max_depth);
  }
  return push(d, inst);
}

/* ---- the loop --------------------------------------------------------------- */

static int memo_put(dec *d, size_t idx) {
  mp_obj *o = NULL;
  int rc = top(d, &o);
  if (rc < 0)
    return rc;
  if (idx >= d->max_memo)
    return mp__fail(MP_ETOOBIG, "memo index %zu beyond %zu entries "
                                "(max_memo)",
                    idx, d->max_memo);
  if (idx >= d->memo_len) {
    if ((rc = grow((void **)&d->memo, &d->memo_cap, idx + 1,
                   sizeof(mp_obj *), d->memo_in)) < 0)
      return rc;
    for (size_t i = d->memo_len; i <= idx; i++)
      d->memo[i] = NULL;
    d->memo_len = idx + 1;
  }
  d->memo[idx] = o->type == MP__OBJ_REF ? o->u.ref.target : o;
  return 0;
}

static int memo_get(dec *d, size_t idx) {
  if (idx >= d->memo_len || d->memo[idx] == NULL)
    return mp__fail(MP_EPROTO, "malformed pickle: memo entry %zu is not set",
                    idx);
  mp_obj *t = d->memo[idx];
  if (!is_container(t)) {
    mp_obj *c = mp_obj_copy(t);
    if (c != NULL)
      c->flags = t->flags & (MP__OBJ_CTOR | MP__OBJ_CTORONLY);
    return push(d, c);
  }
  mp_obj *r = mp__obj_alloc(MP__OBJ_REF);
  if (r != NULL)
    r->u.ref.target = t;
  return push(d, r);
}

static int push_blob(dec *d, int type, size_t n) {
  if (d->len - d->pos < n)
    return mp__fail(MP_EPROTO,
                    "truncated pickle: a %s of %zu bytes announced at "
                    "offset %zu, %zu bytes left",
                    type == MP_OBJ_STR ? "str" : "bytes", n, d->pos,
                    d->len - d->pos);
  const char *p = (const char *)d->p + d->pos;
  d->pos += n;
  if (type == MP_OBJ_STR) {
    if (!mp__utf8_valid(p, n))
      return mp__fail(MP_EINVAL, "pickle holds a str that is not valid "
                                 "UTF-8 (offset %zu)",
                      d->pos - n);
    return push(d, mp_obj_str_len(p, n));
  }
  return push(d, mp_obj_bytes(p, n));
}

static int push_long(dec *d, size_t n) {
  int rc = need(d, n);
  if (rc < 0)
    return rc;
  const uint8_t *p = d->p + d->pos;
  d->pos += n;
  if (n == 0)
    return push(d, mp_obj_int(0));
  bool neg = p[n - 1] & 0x80;
  if (n > 8) {
    for (size_t i = 8; i < n; i++)
      if (p[i] != (neg ? 0xff : 0x00))
        return mp__fail(MP_EOVERFLOW, "pickle holds an int beyond 64 bits");
    if (((p[7] & 0x80) != 0) != neg)
      return mp__fail(MP_EOVERFLOW, "pickle holds an int beyond 64 bits");
  }
  size_t k = n < 8 ? n : 8;
  uint64_t v = rd_le(p, (int)k);
  if (neg && k < 8)
    v |= ~(uint64_t)0 << (8 * k);
  return push(d, mp_obj_int((int64_t)v));
}

static int read_line(dec *d, char *buf, size_t cap) {
  const uint8_t *nl = memchr(d->p + d->pos, '\n', d->len - d->pos);
  if (nl == NULL)
    return truncated(d, d->len - d->pos + 1);
  size_t n = (size_t)(nl - (d->p + d->pos));
  if (n >= cap)
    return mp__fail(MP_EPROTO, "malformed pickle: GLOBAL name longer than "
                               "%zu bytes",
                    cap - 1);
  memcpy(buf, d->p + d->pos, n);
  buf[n] = '\0';
  d->pos += n + 1;
  return 0;
}

static int step(dec *d, bool *stop) {
  int rc;
  mp_obj *a = NULL, *b = NULL, *c = NULL;
  size_t mark = 0;
  d->op = d->p[d->pos++];
  switch (d->op) {
  case OP_PROTO:
    if ((rc = need(d, 1)) < 0)
      return rc;
    if (d->p[d->pos] > 5)
      return mp__fail(MP_EPROTO, "unsupported pickle protocol %u",
                      d->p[d->pos]);
    d->pos++;
    return 0;
  case OP_FRAME: {
    if ((rc = need(d, 8)) < 0)
      return rc;
    uint64_t n = rd_le(d->p + d->pos, 8);
    d->pos += 8;
    if (n > d->len - d->pos)
      return mp__fail(MP_EPROTO, "truncated pickle: FRAME of %llu bytes, "
                                 "%zu left",
                      (unsigned long long)n, d->len - d->pos);
    return 0;
  }
  case OP_STOP:
    *stop = true;
    return 0;
  case OP_MARK:
    if ((rc = grow((void **)&d->marks, &d->mcap, d->nmarks + 1,
                   sizeof(size_t), d->marks_in)) < 0)
      return rc;
    d->marks[d->nmarks++] = d->sp;
    return 0;
  case OP_POP:
    if (d->sp > floor_sp(d)) {
      if ((rc = pop(d, &a)) < 0)
        return rc;
      return bury(d, a) < 0 ? mp__fail(MP_ENOMEM, "no memory") : 0;
    }
    /* POP on an empty mark frame pops the mark (as Python does). */
    /* fall through */
  case OP_POP_MARK:
    if ((rc = pop_mark(d, &mark)) < 0)
      return rc;
    while (d->sp > mark) {
      a = d->stack[--d->sp];
      if (bury(d, a) < 0)
        return mp__fail(MP_ENOMEM, "no memory");
    }
    return 0;
  case OP_DUP:
    if ((rc = top(d, &a)) < 0)
      return rc;
    if (is_container(a)) {
      mp_obj *r = mp__obj_alloc(MP__OBJ_REF);
      if (r != NULL)
        r->u.ref.target = a->type == MP__OBJ_REF ? a->u.ref.target : a;
      return push(d, r);
    }
    return push(d, mp_obj_copy(a));
  case OP_NONE:
    return push(d, mp_obj_none());
  case OP_NEWTRUE:
    return push(d, mp_obj_bool(1));
  case OP_NEWFALSE:
    return push(d, mp_obj_bool(0));
  case OP_BININT1:
    if ((rc = need(d, 1)) < 0)
      return rc;
    return push(d, mp_obj_int(d->p[d->pos++]));
  case OP_BININT2:
    if ((rc = need(d, 2)) < 0)
      return rc;
    d->pos += 2;
    return push(d, mp_obj_int((int64_t)rd_le(d->p + d->pos - 2, 2)));
  case OP_BININT:
    if ((rc = need(d, 4)) < 0)
      return rc;
    d->pos += 4;
    return push(d, mp_obj_int((int32_t)(uint32_t)rd_le(d->p + d->pos - 4, 4)));
  case OP_LONG1:
    if ((rc = need(d, 1)) < 0)
      return rc;
    return push_long(d, d->p[d->pos++]);
  case OP_LONG4: {
    if ((rc = need(d, 4)) < 0)
      return rc;
    int32_t n = (int32_t)(uint32_t)rd_le(d->p + d->pos, 4);
    d->pos += 4;
    if (n < 0)
      return mp__fail(MP_EPROTO, "malformed pickle: LONG4 with a negative "
                                 "length");
    return push_long(d, (size_t)n);
  }
  case OP_BINFLOAT: {
    if ((rc = need(d, 8)) < 0)
      return rc;
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
      bits = (bits << 8) | d->p[d->pos + i];
    d->pos += 8;
    double f;
    memcpy(&f, &bits, sizeof f);
    return push(d, mp_obj_float(f));
  }
  case OP_SHORT_BINUNICODE:
  case OP_SHORT_BINBYTES:
    if ((rc = need(d, 1)) < 0)
      return rc;
    return push_blob(d, d->op == OP_SHORT_BINUNICODE ? MP_OBJ_STR
                                                      : MP_OBJ_BYTES,
                     d->p[d->pos++]);
  case OP_BINUNICODE:
  case OP_BINBYTES:
    if ((rc = need(d, 4)) < 0)
      return rc;
    d->pos += 4;
    return push_blob(d, d->op == OP_BINUNICODE ? MP_OBJ_STR : MP_OBJ_BYTES,
                     (size_t)rd_le(d->p + d->pos - 4, 4));
  case OP_BINUNICODE8:
  case OP_BINBYTES8:
  case OP_BYTEARRAY8: {
    if ((rc = need(d, 8)) < 0)
      return rc;
    uint64_t n = rd_le(d->p + d->pos, 8);
    d->pos += 8;
    if (n > d->len - d->pos)
      return mp__fail(MP_EPROTO, "truncated pickle: a length of %llu bytes "
                                 "announced at offset %zu, %zu bytes left",
                      (unsigned long long)n, d->pos - 8, d->len - d->pos);
    return push_blob(d, d->op == OP_BINUNICODE8 ? MP_OBJ_STR : MP_OBJ_BYTES,
                     (size_t)n);
  }
  case OP_EMPTY_LIST:
  case OP_EMPTY_SET:
    return push(d, mp_obj_list());
  case OP_EMPTY_DICT:
    return push(d, mp_obj_dict());
  case OP_EMPTY_TUPLE:
    return push_tuple_n(d, 0);
  case OP_TUPLE1:
  case OP_TUPLE2:
  case OP_TUPLE3:
    return push_tuple_n(d, (size_t)(d->op - OP_TUPLE1 + 1));
  case OP_TUPLE:
  case OP_FROZENSET:
    if ((rc = pop_mark(d, &mark)) < 0)
      return rc;
    return make_tuple(d, mark, MP_OBJ_TUPLE);
  case OP_LIST:
    if ((rc = pop_mark(d, &mark)) < 0)
      return rc;
    return make_tuple(d, mark, MP_OBJ_LIST);
  case OP_DICT: {
    if ((rc = pop_mark(d, &mark)) < 0)
      return rc;
    /* Put an empty dict below the items, then set them into it. */
    mp_obj *dict = mp_obj_dict();
    if ((rc = push(d, dict)) < 0)
      return rc;
    memmove(d->stack + mark + 1, d->stack + mark,
            (d->sp - 1 - mark) * sizeof(mp_obj *));
    d->stack[mark] = dict;
    return set_items(d, mark + 1);
  }
  case OP_APPEND:
    if (d->sp < floor_sp(d) + 2)
      return underflow(d);
    return append_items(d, d->sp - 1);
  case OP_APPENDS:
  case OP_ADDITEMS:
    if ((rc = pop_mark(d, &mark)) < 0)
      return rc;
    if (mark < floor_sp(d) + 1)
      return underflow(d);
    return append_items(d, mark);
  case OP_SETITEM:
    if (d->sp < floor_sp(d) + 3)
      return underflow(d);
    return set_items(d, d->sp - 2);
  case OP_SETITEMS:
    if ((rc = pop_mark(d, &mark)) < 0)
      return rc;
    if (mark < floor_sp(d) + 1)
      return underflow(d);
    return set_items(d, mark);
  case OP_MEMOIZE:
    return memo_put(d, d->memo_len);
  case OP_BINPUT:
    if ((rc = need(d, 1)) < 0)
      return rc;
    return memo_put(d, d->p[d->pos++]);
  case OP_LONG_BINPUT:
    if ((rc = need(d, 4)) < 0)
      return rc;
    d->pos += 4;
    return memo_put(d, (size_t)rd_le(d->p + d->pos - 4, 4));
  case OP_BINGET:
    if ((rc = need(d, 1)) < 0)
      return rc;
    return memo_get(d, d->p[d->pos++]);
  case OP_LONG_BINGET:
    if ((rc = need(d, 4)) < 0)
      return rc;
    d->pos += 4;
    return memo_get(d, (size_t)rd_le(d->p + d->pos - 4, 4));
  case OP_GLOBAL: {
    char module[256], name[256];
    if ((rc = read_line(d, module, sizeof module)) < 0 ||
        (rc = read_line(d, name, sizeof name)) < 0)
      return rc;
    if (!mp__utf8_valid(module, strlen(module)) ||
        !mp__utf8_valid(name, strlen(name)) || !module[0] || !name[0])
      return mp__fail(MP_EPROTO, "malformed pickle: GLOBAL with a bad name");
    return push_global(d, module, name);
  }
  case OP_STACK_GLOBAL: {
    if ((rc = pop(d, &b)) < 0)
      return rc;
    if ((rc = pop(d, &a)) < 0) {
      mp_obj_free(b);
      return rc;
    }
    if (a->type != MP_OBJ_STR || b->type != MP_OBJ_STR || a->u.s.len == 0 ||
        b->u.s.len == 0 || strlen(a->u.s.p) != a->u.s.len ||
        strlen(b->u.s.p) != b->u.s.len || strchr(a->u.s.p, '\n') ||
        strchr(b->u.s.p, '\n'))
      rc = mp__fail(MP_EPROTO, "malformed pickle: STACK_GLOBAL needs two "
                               "non-empty str names");
    else
      rc = push_global(d, a->u.s.p, b->u.s.p);
    if ((bury(d, a) < 0) + (bury(d, b) < 0))
      return mp__fail(MP_ENOMEM, "no memory");
    return rc;
  }
  case OP_REDUCE:
  case OP_NEWOBJ:
    if ((rc = pop(d, &b)) < 0)
      return rc;
    if ((rc = pop(d, &a)) < 0) {
      mp_obj_free(b);
      return rc;
    }
    return do_call(d, a, b, d->op == OP_NEWOBJ);
  case OP_NEWOBJ_EX:
    if ((rc = pop(d, &c)) < 0)
      return rc;
    if (c->type != MP_OBJ_DICT || c->u.d.used != 0) {
      mp_obj_free(c);
      return mp__fail(MP_EPROTO, "opcode NEWOBJ_EX refused: keyword "
                                 "arguments are not supported");
    }
    if (bury(d, c) < 0)
      return mp__fail(MP_ENOMEM, "no memory");
    if ((rc = pop(d, &b)) < 0)
      return rc;
    if ((rc = pop(d, &a)) < 0) {
      mp_obj_free(b);
      return rc;
    }
    return do_call(d, a, b, 1);
  case OP_BUILD:
    if ((rc = pop(d, &b)) < 0)
      return rc;
    if ((rc = top(d, &a)) < 0 || a->type != MP_OBJ_INSTANCE ||
        a->u.inst.state != NULL) {
      mp_obj_free(b);
      if (rc < 0)
        return rc;
      return mp__fail(MP_EPROTO, "opcode BUILD refused: it would call "
                                 "__setstate__ on a %s",
                      a->type == MP_OBJ_INSTANCE ? "built instance"
                                                 : mp_obj_type_name(a));
    }
    if ((rc = check_depth(d, a, b)) < 0) {
      mp_obj_free(b);
      return rc;
    }
    a->u.inst.state = b;
    return 0;
  case OP_PERSID:
  case OP_BINPERSID:
  case OP_INST:
  case OP_OBJ:
  case OP_EXT1:
  case OP_EXT2:
  case OP_EXT4:
    return mp__fail(MP_EPROTO, "opcode %s refused: it would import or call "
                               "(offset %zu)",
                    op_name(d->op), d->pos - 1);
  case OP_NEXT_BUFFER:
  case OP_READONLY_BUFFER:
    return mp__fail(MP_EPROTO, "opcode %s refused: out-of-band buffers are "
                               "not supported",
                    op_name(d->op));
  default:
    return mp__fail(MP_EPROTO, "unknown or unsupported pickle opcode 0x%02x "
                               "(%s) at offset %zu",
                    d->op, op_name(d->op), d->pos - 1);
  }
}

static void dec_free(dec *d) {
  d->memo_len = 0;
  for (size_t i = 0; i < d->sp; i++)
    mp_obj_free(d->stack[i]);
  for (size_t i = 0; i < d->ngrave; i++)
    mp_obj_free(d->grave[i]);
  if (d->stack != d->stack_in)
    mp__free(d->stack);
  if (d->marks != d->marks_in)
    mp__free(d->marks);
  if (d->memo != d->memo_in)
    mp__free(d->memo);
  if (d->grave != d->grave_in)
    mp__free(d->grave);
}

int mp_pickle_loads(const void *buf, size_t len, mp_obj **out,
                    const mp_pickle_load_opts *opts) {
  if ((buf == NULL && len > 0) || out == NULL)
    return mp__fail(MP_EINVAL, "pickle loads: NULL %s",
                    out == NULL ? "out" : "buffer");
  dec d;
  memset(&d, 0, sizeof d);
  d.p = buf;
  d.len = len;
  d.stack = d.stack_in;
  d.scap = sizeof d.stack_in / sizeof d.stack_in[0];
  d.marks = d.marks_in;
  d.mcap = sizeof d.marks_in / sizeof d.marks_in[0];
  d.memo = d.memo_in;
  d.memo_cap = sizeof d.memo_in / sizeof d.memo_in[0];
  d.grave = d.grave_in;
  d.gcap = sizeof d.grave_in / sizeof d.grave_in[0];
  d.max_depth = opts && opts->max_depth ? opts->max_depth
                                        : MP_PICKLE_DEFAULT_DEPTH;
  d.max_memo = opts && opts->max_memo ? opts->max_memo : MP_PICKLE_DEFAULT_MEMO;
  d.max_nodes = opts && opts->max_nodes ? opts->max_nodes
                                        : MP_PICKLE_DEFAULT_NODES;
  if (opts != NULL) {
    d.allow = opts->allow;
    d.allow_ctx = opts->allow_ctx;
  }
  bool stop = false;
  int rc = 0;
  while (rc == 0 && !stop) {
    if (d.pos >= d.len) {
      rc = mp__fail(MP_EPROTO, "truncated pickle: no STOP opcode in %zu "
                               "bytes",
                    d.len);
      break;
    }
    rc = step(&d, &stop);
  }
  mp_obj *result = NULL;
  if (rc == 0 && d.pos != d.len)
    rc = mp__fail(MP_EPROTO, "malformed pickle: %zu bytes after STOP",
                  d.len - d.pos);
  if (rc == 0 && d.sp == 0)
    rc = mp__fail(MP_EPROTO, "malformed pickle: STOP with an empty stack");
  if (rc == 0 && (d.nmarks != 0 || d.sp != 1))
    rc = mp__fail(MP_EPROTO, "malformed pickle: STOP leaves %zu values and "
                             "%zu marks on the stack",
                  d.sp, d.nmarks);
  if (rc == 0) {
    rc = resolve(&d, &d.stack[0], 0);
    if (rc == 0) {
      result = d.stack[0];
      d.sp = 0;
    }
  }
  dec_free(&d);
  if (rc < 0)
    return rc;
  *out = result;
  return 0;
}

/* ======================================================================
 * Encoder
 * ====================================================================== */

typedef struct enc {
  mp__buf b;
  int proto;
  size_t max_depth;
} enc;

static void put_u32(mp__buf *b, uint32_t v) {
  uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                  (uint8_t)(v >> 24)};
  mp__buf_put(b, t, 4);
}

static void put_u64(mp__buf *b, uint64_t v) {
  uint8_t t[8];
  for (int i = 0; i < 8; i++)
    t[i] = (uint8_t)(v >> (8 * i));
  mp__buf_put(b, t, 8);
}

static void enc_str(enc *e, const char *p, size_t n) {
  if (n < 256 && e->proto >= 4) {
    mp__buf_byte(&e->b, OP_SHORT_BINUNICODE);
    mp__buf_byte(&e->b, (uint8_t)n);
  } else if (n <= UINT32_MAX) {
    mp__buf_byte(&e->b, OP_BINUNICODE);
    put_u32(&e->b, (uint32_t)n);
  } else {
    mp__buf_byte(&e->b, OP_BINUNICODE8);
    put_u64(&e->b, n);
  }
  mp__buf_put(&e->b, p, n);
}

static void enc_global(enc *e, const char *module, const char *name) {
  if (e->proto >= 4) {
    enc_str(e, module, strlen(module));
    enc_str(e, name, strlen(name));
    mp__buf_byte(&e->b, OP_STACK_GLOBAL);
  } else {
    mp__buf_byte(&e->b, OP_GLOBAL);
    mp__buf_str(&e->b, module);
    mp__buf_byte(&e->b, '\n');
    mp__buf_str(&e->b, name);
    mp__buf_byte(&e->b, '\n');
  }
}

static void enc_bytes(enc *e, const char *p, size_t n) {
  if (e->proto >= 3) {
    if (n < 256) {
      mp__buf_byte(&e->b, OP_SHORT_BINBYTES);
      mp__buf_byte(&e->b, (uint8_t)n);
    } else if (n <= UINT32_MAX || e->proto < 4) {
      mp__buf_byte(&e->b, OP_BINBYTES);
      put_u32(&e->b, (uint32_t)n);
    } else {
      mp__buf_byte(&e->b, OP_BINBYTES8);
      put_u64(&e->b, n);
    }
    mp__buf_put(&e->b, p, n);
    return;
  }
  /* Protocol 2 has no bytes opcode: Python writes bytes() or
   * _codecs.encode(text, 'latin1'). */
  if (n == 0) {
    enc_global(e, "__builtin__", "bytes");
    mp__buf_byte(&e->b, OP_EMPTY_TUPLE);
    mp__buf_byte(&e->b, OP_REDUCE);
    return;
  }
  enc_global(e, "_codecs", "encode");
  size_t extra = 0;
  for (size_t i = 0; i < n; i++)
    extra += (unsigned char)p[i] >= 0x80;
  mp__buf_byte(&e->b, OP_BINUNICODE);
  put_u32(&e->b, (uint32_t)(n + extra));
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c < 0x80) {
      mp__buf_byte(&e->b, c);
    } else {
      mp__buf_byte(&e->b, (uint8_t)(0xc0 | (c >> 6)));
      mp__buf_byte(&e->b, (uint8_t)(0x80 | (c & 0x3f)));
    }
  }
  enc_str(e, "latin1", 6);
  mp__buf_byte(&e->b, OP_TUPLE2);
  mp__buf_byte(&e->b, OP_REDUCE);
}

static void enc_int(enc *e, int64_t v) {
  if (v >= 0 && v < 256) {
    mp__buf_byte(&e->b, OP_BININT1);
    mp__buf_byte(&e->b, (uint8_t)v);
  } else if (v >= 0 && v < 65536) {
    mp__buf_byte(&e->b, OP_BININT2);
    mp__buf_byte(&e->b, (uint8_t)v);
    mp__buf_byte(&e->b, (uint8_t)(v >> 8));
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    mp__buf_byte(&e->b, OP_BININT);
    put_u32(&e->b, (uint32_t)(int32_t)v);
  } else {
    /* LONG1: the shortest little-endian two's complement. */
    uint8_t t[8];
    int n = 8;
    for (int i = 0; i < 8; i++)
      t[i] = (uint8_t)((uint64_t)v >> (8 * i));
    while (n > 1 && ((t[n - 1] == 0 && !(t[n - 2] & 0x80)) ||
                     (t[n - 1] == 0xff && (t[n - 2] & 0x80))))
      n--;
    mp__buf_byte(&e->b, OP_LONG1);
    mp__buf_byte(&e->b, (uint8_t)n);
    mp__buf_put(&e->b, t, (size_t)n);
  }
}

static int enc_obj(enc *e, const mp_obj *o, size_t depth);

static int enc_items(enc *e, mp_obj *const *items, size_t n, size_t depth) {
  for (size_t i = 0; i < n; i++) {
    int rc = enc_obj(e, items[i], depth + 1);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int enc_obj(enc *e, const mp_obj *o, size_t depth) {
  int rc = 0;
  if (o == NULL)
    return mp__fail(MP_EINVAL, "pickle dumps: a NULL value inside");
  if (depth > e->max_depth)
    return mp__fail(MP_ETOOBIG, "value nested deeper than %zu (max_depth)",
                    e->max_depth);
  switch (o->type) {
  case MP_OBJ_NONE:
    mp__buf_byte(&e->b, OP_NONE);
    break;
  case MP_OBJ_BOOL:
    mp__buf_byte(&e->b, o->u.i ? OP_NEWTRUE : OP_NEWFALSE);
    break;
  case MP_OBJ_INT:
    enc_int(e, o->u.i);
    break;
  case MP_OBJ_FLOAT: {
    uint64_t bits;
    memcpy(&bits, &o->u.f, sizeof bits);
    uint8_t t[9];
    t[0] = OP_BINFLOAT;
    for (int i = 0; i < 8; i++)
      t[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
    mp__buf_put(&e->b, t, 9);
    break;
  }
  case MP_OBJ_STR:
    enc_str(e, o->u.s.p, o->u.s.len);
    break;
  case MP_OBJ_BYTES:
    enc_bytes(e, o->u.s.p, o->u.s.len);
    break;
  case MP_OBJ_LIST: {
    mp__buf_byte(&e->b, OP_EMPTY_LIST);
    size_t n = o->u.seq.len;
    for (size_t i = 0; i < n && rc == 0; i += 1000) {
      size_t k = n - i < 1000 ? n - i : 1000;
      if (k == 1) {
        rc = enc_items(e, o->u.seq.items + i, 1, depth);
        mp__buf_byte(&e->b, OP_APPEND);
      } else {
        mp__buf_byte(&e->b, OP_MARK);
        rc = enc_items(e, o->u.seq.items + i, k, depth);
        mp__buf_byte(&e->b, OP_APPENDS);
      }
    }
    break;
  }
  case MP_OBJ_TUPLE: {
    size_t n = o->u.seq.len;
    if (n == 0) {
      mp__buf_byte(&e->b, OP_EMPTY_TUPLE);
    } else if (n <= 3) {
      rc = enc_items(e, o->u.seq.items, n, depth);
      mp__buf_byte(&e->b, (uint8_t)(OP_TUPLE1 + n - 1));
    } else {
      mp__buf_byte(&e->b, OP_MARK);
      rc = enc_items(e, o->u.seq.items, n, depth);
      mp__buf_byte(&e->b, OP_TUPLE);
    }
    break;
  }
  case MP_OBJ_DICT: {
    mp__buf_byte(&e->b, OP_EMPTY_DICT);
    size_t i = 0;
    while (i < o->u.d.n && rc == 0) {
      /* A batch of up to 1000 live pairs. */
      size_t start = i, k = 0;
      for (size_t j = i; j < o->u.d.n && k < 1000; j++)
        k += o->u.d.entries[j].key != NULL;
      if (k == 0)
        break;
      if (k > 1)
        mp__buf_byte(&e->b, OP_MARK);
      size_t done = 0;
      for (i = start; i < o->u.d.n && done < k && rc == 0; i++) {
        const mp__dict_entry *en = &o->u.d.entries[i];
        if (en->key == NULL)
          continue;
        rc = enc_obj(e, en->key, depth + 1);
        if (rc == 0)
          rc = enc_obj(e, en->value, depth + 1);
        done++;
      }
      mp__buf_byte(&e->b, k > 1 ? OP_SETITEMS : OP_SETITEM);
    }
    break;
  }
  case MP_OBJ_GLOBAL:
    enc_global(e, o->u.g.module, o->u.g.qualname);
    break;
  case MP_OBJ_INSTANCE:
    rc = enc_obj(e, o->u.inst.callable, depth + 1);
    if (rc == 0)
      rc = enc_obj(e, o->u.inst.args, depth + 1);
    mp__buf_byte(&e->b, o->u.inst.newobj ? OP_NEWOBJ : OP_REDUCE);
    if (rc == 0 && o->u.inst.state != NULL) {
      rc = enc_obj(e, o->u.inst.state, depth + 1);
      mp__buf_byte(&e->b, OP_BUILD);
    }
    break;
  default:
    return mp__fail(MP_EINVAL, "pickle dumps: not a value");
  }
  return rc;
}

int mp__pickle_dump_into(const mp_obj *o, mp__buf *b,
                         const mp_pickle_dump_opts *opts) {
  if (o == NULL || b == NULL)
    return mp__fail(MP_EINVAL, "pickle dumps: NULL argument");
  enc e;
  memset(&e, 0, sizeof e);
  e.proto = opts && opts->protocol ? opts->protocol : 4;
  e.max_depth = opts && opts->max_depth ? opts->max_depth
                                        : MP_PICKLE_DEFAULT_DEPTH;
  if (e.proto < 2 || e.proto > 5)
    return mp__fail(MP_EINVAL, "pickle protocol %d: only 2 to 5 are written",
                    e.proto);
  e.b = *b;
  size_t start = e.b.len;
  mp__buf_byte(&e.b, OP_PROTO);
  mp__buf_byte(&e.b, (uint8_t)e.proto);
  size_t frame_at = e.b.len;
  if (e.proto >= 4) {
    static const uint8_t frame[9] = {OP_FRAME};
    mp__buf_put(&e.b, frame, sizeof frame);
  }
  int rc = enc_obj(&e, o, 0);
  mp__buf_byte(&e.b, OP_STOP);
  if (rc == 0 && e.b.failed)
    rc = mp__fail(MP_ENOMEM, "no memory for the pickle");
  if (rc < 0) {
    e.b.len = start;
    e.b.failed = false;
    *b = e.b;
    return rc;
  }
  if (e.proto >= 4) {
    /* The frame holds everything after its header but STOP... and STOP:
     * Python's pickler puts STOP inside the last frame. */
    uint64_t n = e.b.len - frame_at - 9;
    if (n < 4) { /* Python writes no frame under 4 bytes */
      memmove(e.b.p + frame_at, e.b.p + frame_at + 9, (size_t)n);
      e.b.len -= 9;
    } else {
      for (int i = 0; i < 8; i++)
        e.b.p[frame_at + 1 + i] = (char)(uint8_t)(n >> (8 * i));
    }
  }
  *b = e.b;
  return 0;
}

int mp_pickle_dumps(const mp_obj *o, void **out, size_t *len,
                    const mp_pickle_dump_opts *opts) {
  if (o == NULL || out == NULL || len == NULL)
    return mp__fail(MP_EINVAL, "pickle dumps: NULL argument");
  mp__buf b;
  memset(&b, 0, sizeof b);
  int rc = mp__pickle_dump_into(o, &b, opts);
  if (rc < 0) {
    mp__free(b.p);
    return rc;
  }
  *out = b.p;
  *len = b.len;
  return 0;
}
