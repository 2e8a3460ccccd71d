/* value.c - Value, Array, RawValue and RawArray, after Python's
 * multiprocessing.sharedctypes: C numbers of one typecode in shared memory,
 * guarded by an RLock unless told otherwise, with lock-free atomic add,
 * exchange and compare-exchange for the integer typecodes.
 *
 * DESIGN
 * An object is one segment: anonymous shared memory (inherited across
 * fork) or a named POSIX segment "/mp_<name>" (the sync objects' namespace
 * and name rules). Layout, fixed offsets:
 *     0  varr_shared: object head, segment magic, typecode, element size,
 *        kind (value or array), lock kind, length, segment size, creator
 *    64  mp_rlock   the object's own RLock (lock kind OWN)
 *   128  data       length elements, naturally aligned
 * The handle (mp_value, mp_array) is process-local and holds everything
 * this process relies on: the mapping and its length, typecode, element
 * size, length and the guarding lock. These are checked once when a named
 * segment is opened and never read from the segment again, so a program
 * that scribbles on the segment can change the numbers but cannot make us
 * read or write outside the mapping.
 *
 * Elements are read and written with relaxed atomic loads and stores of
 * their own size (floats through their bits), so locked access, raw access
 * and the atomic read-modify-write operations can be mixed without torn
 * values. The lock gives Python's guarantees for compound operations.
 *
 * Locking as Python's Synchronized: get and set take the lock for the
 * copy. If the caller holds it already (asked of the lock, which knows its
 * holder) they go on without taking it again, so the usual "acquire; get;
 * set; release" works with every kind of lock and costs one lock call.
 *
 * A lent lock lives in the caller's memory: its pointer is kept in the
 * handle only, valid in this process and its forked children; the segment
 * records only that the lock was lent, and opening such an object by name
 * is MP_EINVAL, as for a Condition with a lent lock.
 *
 * A crash leaves the lock to its robust recovery (MP_EOWNERDEAD, passed on
 * to the caller) and the data as the dead process left it. A named segment
 * is registered with the resource tracker by its creator. */
#define _GNU_SOURCE
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "sync_internal.h"

#define VALUE_MAGIC 0x4d505641u /* "MPVA" */
#define DATA_OFFSET 128
#define RLOCK_OFFSET 64
#define NAME_PREFIX "mp_"

enum { KIND_VALUE = 1, KIND_ARRAY = 2 };
enum { LOCK_RAW = 0, LOCK_OWN = 1, LOCK_LENT_LOCK = 2, LOCK_LENT_RLOCK = 3 };
enum { T_CHAR, T_SIGNED, T_UNSIGNED, T_FLOAT };

typedef struct varr_shared {
  mp__object_head head;
  uint32_t seg_magic;
  uint8_t typecode;
  uint8_t elem_size;
  uint8_t kind;
  uint8_t lock_kind;
  uint64_t length;
  uint64_t segment_size;
  int32_t creator_pid;
  uint32_t reserved;
} varr_shared;

_Static_assert(sizeof(varr_shared) <= RLOCK_OFFSET, "header fits");
_Static_assert(RLOCK_OFFSET + MP_RLOCK_SIZE <= DATA_OFFSET, "rlock fits");
_Static_assert(RLOCK_OFFSET % MP_RLOCK_ALIGN == 0, "rlock aligned");

typedef struct typeinfo {
  char code;
  uint8_t size;
  uint8_t cls;
} typeinfo;

static const typeinfo types[] = {
    {'c', sizeof(char), T_CHAR},
    {'b', sizeof(signed char), T_SIGNED},
    {'B', sizeof(unsigned char), T_UNSIGNED},
    {'h', sizeof(short), T_SIGNED},
    {'H', sizeof(unsigned short), T_UNSIGNED},
    {'i', sizeof(int), T_SIGNED},
    {'I', sizeof(unsigned int), T_UNSIGNED},
    {'l', sizeof(long), T_SIGNED},
    {'L', sizeof(unsigned long), T_UNSIGNED},
    {'q', sizeof(long long), T_SIGNED},
    {'Q', sizeof(unsigned long long), T_UNSIGNED},
    {'f', sizeof(float), T_FLOAT},
    {'d', sizeof(double), T_FLOAT},
};

static const typeinfo *type_of(char code) {
  for (size_t i = 0; i < MP__ARRAY_SIZE(types); i++)
    if (types[i].code == code)
      return &types[i];
  return NULL;
}

/* The process-local handle shared by mp_value and mp_array. */
typedef struct varr {
  varr_shared *seg;
  unsigned char *data;
  size_t map_size;
  size_t length;
  const typeinfo *type;
  uint8_t lock_kind;
  mp_lock *lock;   /* LOCK_LENT_LOCK */
  mp_rlock *rlock; /* LOCK_OWN (in the segment) or LOCK_LENT_RLOCK */
  pid_t creator;   /* named segments: the pid whose free unlinks */
  char shm_name[sizeof NAME_PREFIX + MP_SYNC_NAME_MAX];
} varr;

struct mp_value {
  varr a;
};
struct mp_array {
  varr a;
};

ssize_t mp_typecode_size(char typecode) {
  const typeinfo *t = type_of(typecode);
  return t != NULL ? (ssize_t)t->size
                   : mp__fail(MP_EINVAL, "t is NULL");
}

/* ---- element access ----------------------------------------------------- */
static uint64_t load_bits(const unsigned char *p, unsigned size) {
  switch (size) {
  case 1:
    return __atomic_load_n((const uint8_t *)p, __ATOMIC_RELAXED);
  case 2:
    return __atomic_load_n((const uint16_t *)(const void *)p,
                           __ATOMIC_RELAXED);
  case 4:
    return __atomic_load_n((const uint32_t *)(const void *)p,
                           __ATOMIC_RELAXED);
  default:
    return __atomic_load_n((const uint64_t *)(const void *)p,
                           __ATOMIC_RELAXED);
  }
}

static void store_bits(unsigned char *p, unsigned size, uint64_t v) {
  switch (size) {
  case 1:
    __atomic_store_n((uint8_t *)p, (uint8_t)v, __ATOMIC_RELAXED);
    break;
  case 2:
    __atomic_store_n((uint16_t *)(void *)p, (uint16_t)v, __ATOMIC_RELAXED);
    break;
  case 4:
    __atomic_store_n((uint32_t *)(void *)p, (uint32_t)v, __ATOMIC_RELAXED);
    break;
  default:
    __atomic_store_n((uint64_t *)(void *)p, v, __ATOMIC_RELAXED);
    break;
  }
}

/* Raw bits <-> the caller's C object (little or big endian alike). */
static uint64_t bits_from_mem(const void *in, unsigned size) {
  uint8_t u8;
  uint16_t u16;
  uint32_t u32;
  uint64_t u64;
  switch (size) {
  case 1:
    memcpy(&u8, in, 1);
    return u8;
  case 2:
    memcpy(&u16, in, 2);
    return u16;
  case 4:
    memcpy(&u32, in, 4);
    return u32;
  default:
    memcpy(&u64, in, 8);
    return u64;
  }
}

static void bits_to_mem(void *out, unsigned size, uint64_t v) {
  uint8_t u8 = (uint8_t)v;
  uint16_t u16 = (uint16_t)v;
  uint32_t u32 = (uint32_t)v;
  switch (size) {
  case 1:
    memcpy(out, &u8, 1);
    break;
  case 2:
    memcpy(out, &u16, 2);
    break;
  case 4:
    memcpy(out, &u32, 4);
    break;
  default:
    memcpy(out, &v, 8);
    break;
  }
}

/* The integer an element's bits stand for (signed types sign-extended). */
static int64_t bits_to_int(const typeinfo *t, uint64_t bits) {
  if (t->cls == T_SIGNED && t->size < 8) {
    unsigned shift = 64 - 8 * t->size;
    return (int64_t)(bits << shift) >> shift;
  }
  return (int64_t)bits;
}

/* Whether value fits the integer type. */
static bool int_fits(const typeinfo *t, int64_t value) {
  if (t->cls == T_SIGNED) {
    if (t->size >= 8)
      return true;
    int64_t lim = (int64_t)1 << (8 * t->size - 1);
    return value >= -lim && value < lim;
  }
  if (value < 0)
    return false;
  return t->size >= 8 || (uint64_t)value < ((uint64_t)1 << (8 * t->size));
}

static bool is_integer(const typeinfo *t) {
  return t->cls == T_SIGNED || t->cls == T_UNSIGNED;
}

/* ---- the guard ----------------------------------------------------------
 * guard_enter takes the lock unless the caller holds it; *took says
 * whether guard_leave must release it. Returns 0, MP_EOWNERDEAD (held, the
 * previous holder died) or an error (not held). */
static int guard_enter(varr *a, bool *took) {
  *took = false;
  mp__object_head *h;
  uint16_t type;
  switch (a->lock_kind) {
  case LOCK_OWN:
  case LOCK_LENT_RLOCK:
    h = (mp__object_head *)(void *)a->rlock;
    type = MP__TYPE_RLOCK;
    break;
  case LOCK_LENT_LOCK:
    h = (mp__object_head *)(void *)a->lock;
    type = MP__TYPE_LOCK;
    break;
  default:
    return 0;
  }
  if (mp__object_check(h, type) != 0)
    return mp__fail(MP_EINVAL, "the lock of this Value or Array was "
                               "destroyed or freed");
  /* The caller holds it already ("acquire; get; set; release"): go on
   * under its hold, without a second lock call. */
  if (mp__lock_held_by_caller(h))
    return 0;
  int rc = type == MP__TYPE_RLOCK ? mp_rlock_acquire(a->rlock, MP_FOREVER)
                                  : mp_lock_acquire(a->lock, MP_FOREVER);
  if (rc == 0 || rc == MP_EOWNERDEAD)
    *took = true;
  return rc;
}

static void guard_leave(varr *a, bool took) {
  if (!took)
    return;
  if (a->lock_kind == LOCK_LENT_LOCK)
    mp_lock_release(a->lock);
  else
    mp_rlock_release(a->rlock);
}

/* The result to report: an error from the op, else the guard's result
 * (MP_EOWNERDEAD says: done, but check the data). */
static int merge(int op_rc, int guard_rc) {
  return op_rc != 0 ? op_rc : guard_rc;
}

/* ---- construction -------------------------------------------------------- */
static int lock_kind_of(const mp_value_opts *opts, uint8_t *kind) {
  if (opts == NULL) {
    *kind = LOCK_OWN;
    return 0;
  }
  int given = (opts->lock != NULL) + (opts->rlock != NULL);
  if (given > 1 || (given == 1 && opts->raw))
    return mp__fail(MP_EINVAL, "opts gives more than one of lock, rlock and "
                               "raw");
  if (opts->raw)
    *kind = LOCK_RAW;
  else if (opts->lock != NULL)
    *kind = LOCK_LENT_LOCK;
  else if (opts->rlock != NULL)
    *kind = LOCK_LENT_RLOCK;
  else
    *kind = LOCK_OWN;
  return 0;
}

static void varr_unmap(varr *a) {
  if (a->seg != NULL)
    mp__os_unmap(a->seg, a->map_size);
  a->seg = NULL;
}

static int varr_create(varr *a, uint8_t kind, char typecode, size_t length,
                       const void *init, const mp_value_opts *opts,
                       bool raw) {
  const typeinfo *t = type_of(typecode);
  if (t == NULL)
    return mp__fail(MP_EINVAL, "t is NULL");
  mp_value_opts o = opts != NULL ? *opts : (mp_value_opts){0};
  if (raw)
    o.raw = 1;
  uint8_t lock_kind;
  int rc = lock_kind_of(&o, &lock_kind);
  if (rc != 0)
    return rc;
  size_t page = mp__os_page_size();
  if (length > (SIZE_MAX - DATA_OFFSET - page) / t->size)
    return MP_EOVERFLOW;
  size_t size = (DATA_OFFSET + length * t->size + page - 1) / page * page;
  memset(a, 0, sizeof *a);
  int fd = -1;
  if (o.name != NULL) {
    if ((rc = mp__object_name_valid(o.name)) != 0)
      return rc;
    snprintf(a->shm_name, sizeof a->shm_name, NAME_PREFIX "%s", o.name);
    if ((rc = mp__tracker_create(a->shm_name, size, &fd)) != 0)
      return rc;
  }
  void *base = NULL;
  rc = mp__os_map_shared(fd, size, &base);
  if (fd >= 0)
    close(fd);
  if (rc == 0 && o.name != NULL &&
      (rc = mp__tracker_register(a->shm_name, size)) != 0)
    mp__os_unmap(base, size);
  if (rc != 0) {
    if (o.name != NULL) {
      mp__os_shm_unlink(a->shm_name);
      mp__tracker_unregister(a->shm_name); /* mp__tracker_create registered */
    }
    return rc;
  }
  a->seg = base;
  a->map_size = size;
  a->data = (unsigned char *)base + DATA_OFFSET;
  a->length = length;
  a->type = t;
  a->lock_kind = lock_kind;
  a->lock = o.lock;
  a->rlock = o.rlock;
  if (o.name != NULL)
    a->creator = getpid();
  varr_shared *s = a->seg;
  s->seg_magic = VALUE_MAGIC;
  s->typecode = (uint8_t)typecode;
  s->elem_size = t->size;
  s->kind = kind;
  s->lock_kind = lock_kind;
  s->length = length;
  s->segment_size = size;
  s->creator_pid = getpid();
  s->head.type = MP__TYPE_VALUE;
  s->head.version = MP__LAYOUT_VERSION;
  s->head.origin = o.name != NULL ? MP__ORIGIN_NAMED : MP__ORIGIN_ANON;
  if (lock_kind == LOCK_OWN) {
    a->rlock = (mp_rlock *)(void *)((unsigned char *)base + RLOCK_OFFSET);
    if ((rc = mp_rlock_init(a->rlock)) != 0) {
      varr_unmap(a);
      if (o.name != NULL) {
        mp__os_shm_unlink(a->shm_name);
        mp__tracker_unregister(a->shm_name);
      }
      return rc;
    }
  }
  if (init != NULL)
    memcpy(a->data, init, length * t->size);
  /* The magic goes last: an opener never sees a half-made object. */
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, MP__OBJECT_MAGIC,
                        memory_order_release);
  return 0;
}

static int varr_open(varr *a, uint8_t kind, const char *name) {
  int rc = mp__object_name_valid(name);
  if (rc != 0)
    return rc;
  memset(a, 0, sizeof *a);
  snprintf(a->shm_name, sizeof a->shm_name, NAME_PREFIX "%s", name);
  int fd;
  size_t size;
  if ((rc = mp__os_shm_open(a->shm_name, &fd, &size)) != 0)
    return rc;
  /* Sizes first: never map (or touch) less than the header. */
  if (size < DATA_OFFSET || size % mp__os_page_size() != 0) {
    close(fd);
    return MP_ECORRUPT;
  }
  void *base;
  rc = mp__os_map_shared(fd, size, &base);
  close(fd);
  if (rc != 0)
    return rc;
  a->seg = base;
  a->map_size = size;
  /* Read each field once: another program may change them meanwhile. */
  const varr_shared *s = base;
  uint32_t magic = atomic_load_explicit(
      (_Atomic uint32_t *)(void *)&s->head.magic, memory_order_acquire);
  varr_shared h;
  memcpy(&h, s, sizeof h);
  const typeinfo *t = type_of((char)h.typecode);
  rc = 0;
  if (magic != MP__OBJECT_MAGIC || h.seg_magic != VALUE_MAGIC ||
      h.head.type != MP__TYPE_VALUE || h.head.version != MP__LAYOUT_VERSION ||
      h.head.origin != MP__ORIGIN_NAMED || t == NULL ||
      h.elem_size != t->size || h.kind != kind || h.segment_size != size ||
      h.length > (size - DATA_OFFSET) / t->size ||
      (kind == KIND_VALUE && h.length != 1))
    rc = MP_ECORRUPT;
  else if (h.lock_kind == LOCK_LENT_LOCK || h.lock_kind == LOCK_LENT_RLOCK)
    rc = MP_EINVAL; /* its lock lives in its creator's memory */
  else if (h.lock_kind != LOCK_RAW && h.lock_kind != LOCK_OWN)
    rc = MP_ECORRUPT;
  if (rc != 0) {
    varr_unmap(a);
    return rc;
  }
  a->data = (unsigned char *)base + DATA_OFFSET;
  a->length = (size_t)h.length;
  a->type = t;
  a->lock_kind = h.lock_kind;
  if (h.lock_kind == LOCK_OWN)
    a->rlock = (mp_rlock *)(void *)((unsigned char *)base + RLOCK_OFFSET);
  return 0;
}

static void varr_free(varr *a) {
  varr_unmap(a);
  /* A forked child has a copy of the handle but did not create the name. */
  if (a->creator != 0 && a->creator == getpid()) {
    mp__os_shm_unlink(a->shm_name);
    mp__tracker_unregister(a->shm_name);
  }
}

/* ---- operations shared by Value and Array -------------------------------- */
static int varr_index(const varr *a, ssize_t index, unsigned char **p) {
  size_t i;
  if (index < 0) {
    if ((size_t)(-(index + 1)) >= a->length)
      return MP_ERANGE;
    i = a->length - (size_t)(-(index + 1)) - 1;
  } else {
    if ((size_t)index >= a->length)
      return MP_ERANGE;
    i = (size_t)index;
  }
  *p = a->data + i * a->type->size;
  return 0;
}

static int varr_acquire(varr *a, double timeout) {
  switch (a->lock_kind) {
  case LOCK_OWN:
  case LOCK_LENT_RLOCK:
    return mp_rlock_acquire(a->rlock, timeout);
  case LOCK_LENT_LOCK:
    return mp_lock_acquire(a->lock, timeout);
  default:
    return mp__fail(MP_EINVAL, "the object has no lock (raw)");
  }
}

static int varr_release(varr *a) {
  switch (a->lock_kind) {
  case LOCK_OWN:
  case LOCK_LENT_RLOCK:
    return mp_rlock_release(a->rlock);
  case LOCK_LENT_LOCK:
    return mp_lock_release(a->lock);
  default:
    return mp__fail(MP_EINVAL, "the object has no lock (raw)");
  }
}

static mp_rlock *varr_get_lock(varr *a) {
  return a->lock_kind == LOCK_OWN || a->lock_kind == LOCK_LENT_RLOCK
             ? a->rlock
             : NULL;
}

/* Conversions between an element's bits and the caller's numbers. */
static int to_int(const typeinfo *t, uint64_t bits, int64_t *out) {
  if (t->cls == T_FLOAT)
    return mp__fail(MP_EINVAL, "the typecode is a float type: use the "
                               "_double call");
  if (t->cls == T_UNSIGNED && t->size >= 8 && bits > INT64_MAX)
    return MP_EOVERFLOW;
  *out = t->cls == T_CHAR ? (int64_t)(uint8_t)bits : bits_to_int(t, bits);
  return 0;
}

static int from_int(const typeinfo *t, int64_t value, uint64_t *bits) {
  if (t->cls == T_FLOAT)
    return mp__fail(MP_EINVAL, "the typecode is a float type: use the "
                               "_double call");
  if (t->cls == T_CHAR ? value < 0 || value > 255 : !int_fits(t, value))
    return MP_EOVERFLOW;
  *bits = (uint64_t)value;
  return 0;
}

static int to_double(const typeinfo *t, uint64_t bits, double *out) {
  if (t->cls != T_FLOAT)
    return mp__fail(MP_EINVAL, "the typecode is an integer type: use the "
                               "_int call");
  if (t->size == sizeof(float)) {
    float f;
    uint32_t u = (uint32_t)bits;
    memcpy(&f, &u, sizeof f);
    *out = f;
  } else {
    memcpy(out, &bits, sizeof *out);
  }
  return 0;
}

static int from_double(const typeinfo *t, double value, uint64_t *bits) {
  if (t->cls != T_FLOAT)
    return mp__fail(MP_EINVAL, "the typecode is an integer type: use the "
                               "_int call");
  if (t->size == sizeof(float)) {
    if (isfinite(value) && fabs(value) > FLT_MAX)
      return MP_EOVERFLOW;
    float f = (float)value;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    *bits = u;
  } else {
    memcpy(bits, &value, sizeof value);
  }
  return 0;
}

enum { OP_GET_RAW, OP_SET_RAW, OP_GET_INT, OP_SET_INT, OP_GET_DBL,
       OP_SET_DBL };

typedef union op_arg {
  void *out;
  const void *in;
  int64_t *iout;
  int64_t ival;
  double *dout;
  double dval;
} op_arg;

/* One element operation under the guard. */
static int varr_op(varr *a, ssize_t index, int op, op_arg arg) {
  if (a == NULL)
    return mp__fail(MP_EINVAL, "a is NULL");
  unsigned char *p;
  int rc = varr_index(a, index, &p);
  if (rc != 0)
    return rc;
  const typeinfo *t = a->type;
  uint64_t bits = 0;
  /* Convert what comes in before taking the lock. */
  switch (op) {
  case OP_SET_RAW:
    if (arg.in == NULL)
      return mp__fail(MP_EINVAL, "in is NULL");
    bits = bits_from_mem(arg.in, t->size);
    break;
  case OP_SET_INT:
    rc = from_int(t, arg.ival, &bits);
    break;
  case OP_SET_DBL:
    rc = from_double(t, arg.dval, &bits);
    break;
  case OP_GET_RAW:
    rc = arg.out == NULL ? mp__fail(MP_EINVAL, "out is NULL") : 0;
    break;
  case OP_GET_INT:
    rc = t->cls == T_FLOAT ? mp__fail(MP_EINVAL, "the typecode is a float "
                                                 "type: use the _double call")
         : arg.iout == NULL ? mp__fail(MP_EINVAL, "out is NULL")
                            : 0;
    break;
  default:
    rc = t->cls != T_FLOAT ? mp__fail(MP_EINVAL, "the typecode is an integer "
                                                 "type: use the _int call")
         : arg.dout == NULL ? mp__fail(MP_EINVAL, "out is NULL")
                            : 0;
    break;
  }
  if (rc != 0)
    return rc;
  bool took;
  int grc = guard_enter(a, &took);
  if (grc != 0 && grc != MP_EOWNERDEAD)
    return grc;
  if (op == OP_SET_RAW || op == OP_SET_INT || op == OP_SET_DBL)
    store_bits(p, t->size, bits);
  else
    bits = load_bits(p, t->size);
  guard_leave(a, took);
  switch (op) {
  case OP_GET_RAW:
    bits_to_mem(arg.out, t->size, bits);
    break;
  case OP_GET_INT:
    rc = to_int(t, bits, arg.iout);
    break;
  case OP_GET_DBL:
    rc = to_double(t, bits, arg.dout);
    break;
  default:
    break;
  }
  return merge(rc, grc);
}

enum { AT_ADD, AT_XCHG };

static int varr_atomic(varr *a, ssize_t index, int op, int64_t v,
                       int64_t *old) {
  if (a == NULL)
    return mp__fail(MP_EINVAL, "a is NULL");
  const typeinfo *t = a->type;
  if (!is_integer(t))
    return mp__fail(MP_EINVAL, "the typecode is not an integer type");
  unsigned char *p;
  int rc = varr_index(a, index, &p);
  if (rc != 0)
    return rc;
  uint64_t prev;
  if (op == AT_XCHG && !int_fits(t, v))
    return MP_EOVERFLOW;
  /* Sequentially consistent, as C's atomic_fetch_add and friends. */
  switch (t->size) {
  case 1:
    prev = op == AT_ADD
               ? __atomic_fetch_add((uint8_t *)p, (uint8_t)v, __ATOMIC_SEQ_CST)
               : __atomic_exchange_n((uint8_t *)p, (uint8_t)v,
                                     __ATOMIC_SEQ_CST);
    break;
  case 2:
    prev = op == AT_ADD ? __atomic_fetch_add((uint16_t *)(void *)p,
                                             (uint16_t)v, __ATOMIC_SEQ_CST)
                        : __atomic_exchange_n((uint16_t *)(void *)p,
                                              (uint16_t)v, __ATOMIC_SEQ_CST);
    break;
  case 4:
    prev = op == AT_ADD ? __atomic_fetch_add((uint32_t *)(void *)p,
                                             (uint32_t)v, __ATOMIC_SEQ_CST)
                        : __atomic_exchange_n((uint32_t *)(void *)p,
                                              (uint32_t)v, __ATOMIC_SEQ_CST);
    break;
  default:
    prev = op == AT_ADD ? __atomic_fetch_add((uint64_t *)(void *)p,
                                             (uint64_t)v, __ATOMIC_SEQ_CST)
                        : __atomic_exchange_n((uint64_t *)(void *)p,
                                              (uint64_t)v, __ATOMIC_SEQ_CST);
    break;
  }
  if (old != NULL)
    *old = bits_to_int(t, prev);
  return 0;
}

static int varr_cas(varr *a, ssize_t index, int64_t *expected,
                    int64_t desired) {
  if (a == NULL || expected == NULL)
    return mp__fail(MP_EINVAL, "a or expected is NULL");
  const typeinfo *t = a->type;
  if (!is_integer(t))
    return mp__fail(MP_EINVAL, "the typecode is not an integer type");
  unsigned char *p;
  int rc = varr_index(a, index, &p);
  if (rc != 0)
    return rc;
  if (!int_fits(t, desired))
    return MP_EOVERFLOW;
  if (!int_fits(t, *expected)) {
    /* No element of this type equals it: fail as a compare would. */
    *expected = bits_to_int(t, load_bits(p, t->size));
    return 0;
  }
  bool ok;
  switch (t->size) {
  case 1: {
    uint8_t e = (uint8_t)*expected;
    ok = __atomic_compare_exchange_n((uint8_t *)p, &e, (uint8_t)desired,
                                     false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST);
    *expected = bits_to_int(t, e);
    break;
  }
  case 2: {
    uint16_t e = (uint16_t)*expected;
    ok = __atomic_compare_exchange_n((uint16_t *)(void *)p, &e,
                                     (uint16_t)desired, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    *expected = bits_to_int(t, e);
    break;
  }
  case 4: {
    uint32_t e = (uint32_t)*expected;
    ok = __atomic_compare_exchange_n((uint32_t *)(void *)p, &e,
                                     (uint32_t)desired, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    *expected = bits_to_int(t, e);
    break;
  }
  default: {
    uint64_t e = (uint64_t)*expected;
    ok = __atomic_compare_exchange_n((uint64_t *)(void *)p, &e,
                                     (uint64_t)desired, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    *expected = bits_to_int(t, e);
    break;
  }
  }
  return ok ? 1 : 0;
}

/* Python's slice bounds: negative from the end, clamped to [0, len]. */
static size_t slice_bound(ssize_t i, size_t len) {
  if (i < 0) {
    size_t back = (size_t)(-(i + 1)) + 1;
    return back >= len ? 0 : len - back;
  }
  return (size_t)i > len ? len : (size_t)i;
}

static ssize_t varr_get_slice(varr *a, ssize_t start, ssize_t stop, void *out,
                              size_t cap) {
  if (a == NULL)
    return mp__fail(MP_EINVAL, "a is NULL");
  size_t lo = slice_bound(start, a->length), hi = slice_bound(stop, a->length);
  size_t n = hi > lo ? hi - lo : 0;
  if (n > cap)
    return MP_ETOOBIG;
  if (n > 0 && out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL with elements to copy");
  unsigned size = a->type->size;
  bool took;
  int grc = guard_enter(a, &took);
  if (grc != 0 && grc != MP_EOWNERDEAD)
    return grc;
  for (size_t i = 0; i < n; i++)
    bits_to_mem((unsigned char *)out + i * size, size,
                load_bits(a->data + (lo + i) * size, size));
  guard_leave(a, took);
  /* A dead previous holder is worth reporting even on success. */
  return grc == MP_EOWNERDEAD ? MP_EOWNERDEAD : (ssize_t)n;
}

static int varr_set_slice(varr *a, ssize_t start, ssize_t stop,
                          const void *in, size_t count) {
  if (a == NULL)
    return mp__fail(MP_EINVAL, "a is NULL");
  size_t lo = slice_bound(start, a->length), hi = slice_bound(stop, a->length);
  size_t n = hi > lo ? hi - lo : 0;
  if (count != n)
    return MP_EVALUE;
  if (n > 0 && in == NULL)
    return mp__fail(MP_EINVAL, "in is NULL with elements to copy");
  unsigned size = a->type->size;
  bool took;
  int grc = guard_enter(a, &took);
  if (grc != 0 && grc != MP_EOWNERDEAD)
    return grc;
  for (size_t i = 0; i < n; i++)
    store_bits(a->data + (lo + i) * size, size,
               bits_from_mem((const unsigned char *)in + i * size, size));
  guard_leave(a, took);
  return grc;
}

/* ---- Value --------------------------------------------------------------- */
static int value_new(mp_value **out, char typecode, const void *init,
                     const mp_value_opts *opts, bool raw) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  mp_value *v = mp__alloc(sizeof *v);
  if (v == NULL)
    return MP_ENOMEM;
  int rc = varr_create(&v->a, KIND_VALUE, typecode, 1, init, opts, raw);
  if (rc != 0) {
    mp__free(v);
    return rc;
  }
  *out = v;
  return 0;
}

int mp_value_new(mp_value **out, char typecode, const void *init,
                 const mp_value_opts *opts) {
  return value_new(out, typecode, init, opts, false);
}

int mp_raw_value_new(mp_value **out, char typecode, const void *init,
                     const mp_value_opts *opts) {
  return value_new(out, typecode, init, opts, true);
}

int mp_value_open(mp_value **out, const char *name) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  mp_value *v = mp__alloc(sizeof *v);
  if (v == NULL)
    return MP_ENOMEM;
  int rc = varr_open(&v->a, KIND_VALUE, name);
  if (rc != 0) {
    mp__free(v);
    return rc;
  }
  *out = v;
  return 0;
}

void mp_value_free(mp_value *v) {
  if (v == NULL)
    return;
  varr_free(&v->a);
  mp__free(v);
}

char mp_value_typecode(const mp_value *v) {
  return v != NULL ? v->a.type->code : 0;
}

mp_rlock *mp_value_get_lock(mp_value *v) {
  return v != NULL ? varr_get_lock(&v->a) : NULL;
}

int mp_value_acquire(mp_value *v, double timeout) {
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  return v != NULL ? varr_acquire(&v->a, timeout)
                   : mp__fail(MP_EINVAL, "v is NULL");
}

int mp_value_release(mp_value *v) {
  return v != NULL ? varr_release(&v->a)
                   : mp__fail(MP_EINVAL, "v is NULL");
}

void *mp_value_ptr(mp_value *v) { return v != NULL ? v->a.data : NULL; }

#define VA(v) ((v) != NULL ? &(v)->a : NULL)

int mp_value_get(mp_value *v, void *out) {
  return varr_op(VA(v), 0, OP_GET_RAW, (op_arg){.out = out});
}

int mp_value_set(mp_value *v, const void *in) {
  return varr_op(VA(v), 0, OP_SET_RAW, (op_arg){.in = in});
}

int mp_value_get_int(mp_value *v, int64_t *out) {
  return varr_op(VA(v), 0, OP_GET_INT, (op_arg){.iout = out});
}

int mp_value_set_int(mp_value *v, int64_t value) {
  return varr_op(VA(v), 0, OP_SET_INT, (op_arg){.ival = value});
}

int mp_value_get_double(mp_value *v, double *out) {
  return varr_op(VA(v), 0, OP_GET_DBL, (op_arg){.dout = out});
}

int mp_value_set_double(mp_value *v, double value) {
  return varr_op(VA(v), 0, OP_SET_DBL, (op_arg){.dval = value});
}

int mp_value_fetch_add(mp_value *v, int64_t delta, int64_t *old) {
  return varr_atomic(VA(v), 0, AT_ADD, delta, old);
}

int mp_value_exchange(mp_value *v, int64_t value, int64_t *old) {
  return varr_atomic(VA(v), 0, AT_XCHG, value, old);
}

int mp_value_compare_exchange(mp_value *v, int64_t *expected,
                              int64_t desired) {
  return varr_cas(VA(v), 0, expected, desired);
}

/* ---- Array --------------------------------------------------------------- */
static int array_new(mp_array **out, char typecode, size_t length,
                     const void *init, const mp_value_opts *opts, bool raw) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  mp_array *a = mp__alloc(sizeof *a);
  if (a == NULL)
    return MP_ENOMEM;
  int rc = varr_create(&a->a, KIND_ARRAY, typecode, length, init, opts, raw);
  if (rc != 0) {
    mp__free(a);
    return rc;
  }
  *out = a;
  return 0;
}

int mp_array_new(mp_array **out, char typecode, size_t length,
                 const void *init, const mp_value_opts *opts) {
  return array_new(out, typecode, length, init, opts, false);
}

int mp_raw_array_new(mp_array **out, char typecode, size_t length,
                     const void *init, const mp_value_opts *opts) {
  return array_new(out, typecode, length, init, opts, true);
}

int mp_array_open(mp_array **out, const char *name) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  mp_array *a = mp__alloc(sizeof *a);
  if (a == NULL)
    return MP_ENOMEM;
  int rc = varr_open(&a->a, KIND_ARRAY, name);
  if (rc != 0) {
    mp__free(a);
    return rc;
  }
  *out = a;
  return 0;
}

void mp_array_free(mp_array *a) {
  if (a == NULL)
    return;
  varr_free(&a->a);
  mp__free(a);
}

char mp_array_typecode(const mp_array *a) {
  return a != NULL ? a->a.type->code : 0;
}

size_t mp_array_len(const mp_array *a) { return a != NULL ? a->a.length : 0; }

mp_rlock *mp_array_get_lock(mp_array *a) {
  return a != NULL ? varr_get_lock(&a->a) : NULL;
}

int mp_array_acquire(mp_array *a, double timeout) {
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  return a != NULL ? varr_acquire(&a->a, timeout)
                   : mp__fail(MP_EINVAL, "a is NULL");
}

int mp_array_release(mp_array *a) {
  return a != NULL ? varr_release(&a->a)
                   : mp__fail(MP_EINVAL, "a is NULL");
}

void *mp_array_ptr(mp_array *a) { return a != NULL ? a->a.data : NULL; }

int mp_array_get(mp_array *a, ssize_t index, void *out) {
  return varr_op(VA(a), index, OP_GET_RAW, (op_arg){.out = out});
}

int mp_array_set(mp_array *a, ssize_t index, const void *in) {
  return varr_op(VA(a), index, OP_SET_RAW, (op_arg){.in = in});
}

int mp_array_get_int(mp_array *a, ssize_t index, int64_t *out) {
  return varr_op(VA(a), index, OP_GET_INT, (op_arg){.iout = out});
}

int mp_array_set_int(mp_array *a, ssize_t index, int64_t value) {
  return varr_op(VA(a), index, OP_SET_INT, (op_arg){.ival = value});
}

int mp_array_get_double(mp_array *a, ssize_t index, double *out) {
  return varr_op(VA(a), index, OP_GET_DBL, (op_arg){.dout = out});
}

int mp_array_set_double(mp_array *a, ssize_t index, double value) {
  return varr_op(VA(a), index, OP_SET_DBL, (op_arg){.dval = value});
}

ssize_t mp_array_get_slice(mp_array *a, ssize_t start, ssize_t stop,
                           void *out, size_t cap) {
  return varr_get_slice(VA(a), start, stop, out, cap);
}

int mp_array_set_slice(mp_array *a, ssize_t start, ssize_t stop,
                       const void *in, size_t count) {
  return varr_set_slice(VA(a), start, stop, in, count);
}

int mp_array_fetch_add(mp_array *a, ssize_t index, int64_t delta,
                       int64_t *old) {
  return varr_atomic(VA(a), index, AT_ADD, delta, old);
}

int mp_array_exchange(mp_array *a, ssize_t index, int64_t value,
                      int64_t *old) {
  return varr_atomic(VA(a), index, AT_XCHG, value, old);
}

int mp_array_compare_exchange(mp_array *a, ssize_t index, int64_t *expected,
                              int64_t desired) {
  return varr_cas(VA(a), index, expected, desired);
}
