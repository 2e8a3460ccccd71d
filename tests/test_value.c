/* test_value.c - Value, Array, RawValue and RawArray: typecodes and their
 * C sizes, conversions with range checks, Python's lock argument, element
 * and slice access with bounds checked, named objects, malformed segments,
 * and the atomic operations (G-VALUE-1: concurrent atomic adds from
 * several processes lose no update). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

/* ---- typecodes ------------------------------------------------------------ */
static void typecode_sizes_are_c_types(void **state) {
  (void)state;
  assert_int_equal(mp_typecode_size('c'), sizeof(char));
  assert_int_equal(mp_typecode_size('b'), sizeof(signed char));
  assert_int_equal(mp_typecode_size('B'), sizeof(unsigned char));
  assert_int_equal(mp_typecode_size('h'), sizeof(short));
  assert_int_equal(mp_typecode_size('H'), sizeof(unsigned short));
  assert_int_equal(mp_typecode_size('i'), sizeof(int));
  assert_int_equal(mp_typecode_size('I'), sizeof(unsigned int));
  assert_int_equal(mp_typecode_size('l'), sizeof(long));
  assert_int_equal(mp_typecode_size('L'), sizeof(unsigned long));
  assert_int_equal(mp_typecode_size('q'), sizeof(long long));
  assert_int_equal(mp_typecode_size('Q'), sizeof(unsigned long long));
  assert_int_equal(mp_typecode_size('f'), sizeof(float));
  assert_int_equal(mp_typecode_size('d'), sizeof(double));
  assert_rc((int)mp_typecode_size('x'), MP_EINVAL);
  assert_rc((int)mp_typecode_size('u'), MP_EINVAL);
  assert_rc((int)mp_typecode_size(0), MP_EINVAL);
  mp_value *v = (void *)1;
  assert_rc(mp_value_new(&v, 'x', NULL, NULL), MP_EINVAL);
  assert_ptr_equal(v, (void *)1); /* left untouched */
  mp_array *a;
  assert_rc(mp_array_new(&a, 'z', 3, NULL, NULL), MP_EINVAL);
}

/* ---- Value ----------------------------------------------------------------- */
static void value_int_seed(void **state) {
  (void)state;
  int ten = 10;
  mp_value *v;
  assert_rc(mp_value_new(&v, 'i', &ten, NULL), 0);
  assert_int_equal(mp_value_typecode(v), 'i');
  int64_t x;
  assert_rc(mp_value_get_int(v, &x), 0);
  assert_int_equal(x, 10);
  assert_rc(mp_value_set_int(v, 20), 0);
  int raw = 0;
  assert_rc(mp_value_get(v, &raw), 0);
  assert_int_equal(raw, 20);
  assert_int_equal(*(int *)mp_value_ptr(v), 20);
  raw = -7;
  assert_rc(mp_value_set(v, &raw), 0);
  assert_rc(mp_value_get_int(v, &x), 0);
  assert_int_equal(x, -7);
  mp_value_free(v);
}

static void value_zero_by_default(void **state) {
  (void)state;
  const char codes[] = "cbBhHiIlLqQfd";
  for (const char *c = codes; *c; c++) {
    mp_value *v;
    assert_rc(mp_value_new(&v, *c, NULL, NULL), 0);
    unsigned char bytes[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert_rc(mp_value_get(v, bytes), 0);
    for (ssize_t i = 0; i < mp_typecode_size(*c); i++)
      assert_int_equal(bytes[i], 0);
    mp_value_free(v);
  }
}

static void value_doubles(void **state) {
  (void)state;
  double zero = 0.0;
  mp_value *d, *f;
  assert_rc(mp_value_new(&d, 'd', &zero, NULL), 0);
  assert_rc(mp_value_set_double(d, 3.1415927), 0);
  double x;
  assert_rc(mp_value_get_double(d, &x), 0);
  assert_true(x == 3.1415927);
  float one = 1.5f;
  assert_rc(mp_value_new(&f, 'f', &one, NULL), 0);
  assert_rc(mp_value_get_double(f, &x), 0);
  assert_true(x == 1.5);
  assert_rc(mp_value_set_double(f, 1e300), MP_EOVERFLOW);
  assert_rc(mp_value_set_double(f, -1e39), MP_EOVERFLOW);
  assert_rc(mp_value_set_double(f, INFINITY), 0);
  assert_rc(mp_value_get_double(f, &x), 0);
  assert_true(isinf(x));
  assert_rc(mp_value_set_double(f, NAN), 0);
  assert_rc(mp_value_get_double(f, &x), 0);
  assert_true(isnan(x));
  assert_rc(mp_value_set_double(f, FLT_MAX), 0);
  /* Integers and floats do not mix silently. */
  int64_t i;
  assert_rc(mp_value_get_int(d, &i), MP_EINVAL);
  assert_rc(mp_value_set_int(d, 1), MP_EINVAL);
  assert_rc(mp_value_fetch_add(d, 1, NULL), MP_EINVAL);
  mp_value_free(d);
  mp_value_free(f);
}

typedef struct range_case {
  char code;
  int64_t lo, hi;
} range_case;

static void value_int_ranges_checked(void **state) {
  (void)state;
  const range_case cases[] = {
      {'c', 0, 255},
      {'b', SCHAR_MIN, SCHAR_MAX},
      {'B', 0, UCHAR_MAX},
      {'h', SHRT_MIN, SHRT_MAX},
      {'H', 0, USHRT_MAX},
      {'i', INT_MIN, INT_MAX},
      {'I', 0, UINT_MAX},
      {'l', LONG_MIN, LONG_MAX},
      {'L', 0, INT64_MAX},
      {'q', LLONG_MIN, LLONG_MAX},
      {'Q', 0, INT64_MAX},
  };
  for (size_t k = 0; k < MP__ARRAY_SIZE(cases); k++) {
    const range_case *c = &cases[k];
    mp_value *v;
    int64_t x;
    assert_rc(mp_value_new(&v, c->code, NULL, NULL), 0);
    assert_rc(mp_value_set_int(v, c->lo), 0);
    assert_rc(mp_value_get_int(v, &x), 0);
    assert_int_equal(x, c->lo);
    assert_rc(mp_value_set_int(v, c->hi), 0);
    assert_rc(mp_value_get_int(v, &x), 0);
    assert_int_equal(x, c->hi);
    /* Python's ctypes would truncate; we refuse. */
    if (c->lo > INT64_MIN)
      assert_rc(mp_value_set_int(v, c->lo - 1), MP_EOVERFLOW);
    if (c->hi < INT64_MAX)
      assert_rc(mp_value_set_int(v, c->hi + 1), MP_EOVERFLOW);
    assert_rc(mp_value_get_int(v, &x), 0);
    assert_int_equal(x, c->hi); /* unchanged by the refused sets */
    double d;
    assert_rc(mp_value_get_double(v, &d), MP_EINVAL);
    assert_rc(mp_value_set_double(v, 1.0), MP_EINVAL);
    mp_value_free(v);
  }
  /* A 'Q' above INT64_MAX needs the raw accessors. */
  mp_value *q;
  unsigned long long big = ULLONG_MAX;
  assert_rc(mp_value_new(&q, 'Q', &big, NULL), 0);
  int64_t x;
  assert_rc(mp_value_get_int(q, &x), MP_EOVERFLOW);
  unsigned long long back = 0;
  assert_rc(mp_value_get(q, &back), 0);
  assert_true(back == ULLONG_MAX);
  mp_value_free(q);
}

static void value_bad_arguments(void **state) {
  (void)state;
  mp_value *v;
  int64_t x;
  assert_rc(mp_value_new(NULL, 'i', NULL, NULL), MP_EINVAL);
  assert_rc(mp_raw_value_new(NULL, 'i', NULL, NULL), MP_EINVAL);
  assert_rc(mp_value_open(NULL, "x"), MP_EINVAL);
  assert_rc(mp_value_get(NULL, &x), MP_EINVAL);
  assert_rc(mp_value_set(NULL, &x), MP_EINVAL);
  assert_rc(mp_value_get_int(NULL, &x), MP_EINVAL);
  assert_rc(mp_value_set_int(NULL, 1), MP_EINVAL);
  assert_rc(mp_value_get_double(NULL, NULL), MP_EINVAL);
  assert_rc(mp_value_set_double(NULL, 1), MP_EINVAL);
  assert_rc(mp_value_fetch_add(NULL, 1, NULL), MP_EINVAL);
  assert_rc(mp_value_exchange(NULL, 1, NULL), MP_EINVAL);
  assert_rc(mp_value_compare_exchange(NULL, &x, 1), MP_EINVAL);
  assert_rc(mp_value_acquire(NULL, 0), MP_EINVAL);
  assert_rc(mp_value_release(NULL), MP_EINVAL);
  assert_null(mp_value_get_lock(NULL));
  assert_null(mp_value_ptr(NULL));
  assert_int_equal(mp_value_typecode(NULL), 0);
  mp_value_free(NULL);
  assert_rc(mp_value_new(&v, 'i', NULL, NULL), 0);
  assert_rc(mp_value_get(v, NULL), MP_EINVAL);
  assert_rc(mp_value_set(v, NULL), MP_EINVAL);
  assert_rc(mp_value_get_int(v, NULL), MP_EINVAL);
  assert_rc(mp_value_compare_exchange(v, NULL, 1), MP_EINVAL);
  mp_value_free(v);
}

static void value_default_lock_is_rlock(void **state) {
  (void)state;
  mp_value *v;
  assert_rc(mp_value_new(&v, 'i', NULL, NULL), 0);
  mp_rlock *l = mp_value_get_lock(v);
  assert_non_null(l);
  assert_rc(mp_value_acquire(v, MP_FOREVER), 0);
  assert_rc(mp_value_acquire(v, 0), 0); /* re-entrant */
  assert_int_equal(mp_rlock_depth(l), 2);
  /* get/set while the caller holds it: no deadlock, depth restored. */
  assert_rc(mp_value_set_int(v, 5), 0);
  int64_t x;
  assert_rc(mp_value_get_int(v, &x), 0);
  assert_int_equal(x, 5);
  assert_int_equal(mp_rlock_depth(l), 2);
  assert_rc(mp_value_release(v), 0);
  assert_rc(mp_value_release(v), 0);
  assert_rc(mp_value_release(v), MP_EPERM);
  mp_value_free(v);
}

static void value_raw_has_no_lock(void **state) {
  (void)state;
  mp_value *v;
  int seven = 7;
  assert_rc(mp_raw_value_new(&v, 'i', &seven, NULL), 0);
  assert_null(mp_value_get_lock(v));
  assert_rc(mp_value_acquire(v, 0), MP_EINVAL);
  assert_rc(mp_value_release(v), MP_EINVAL);
  int64_t x;
  assert_rc(mp_value_get_int(v, &x), 0);
  assert_int_equal(x, 7);
  mp_value_free(v);
  mp_value_opts raw = {.raw = 1};
  assert_rc(mp_value_new(&v, 'i', NULL, &raw), 0);
  assert_null(mp_value_get_lock(v));
  mp_value_free(v);
}

static void value_lent_locks(void **state) {
  (void)state;
  mp_rlock *rl;
  mp_lock *l;
  assert_rc(mp_rlock_new(&rl, NULL), 0);
  assert_rc(mp_lock_new(&l, NULL), 0);
  mp_value *v, *w, *bad = (void *)1;
  mp_value_opts with_rlock = {.rlock = rl}, with_lock = {.lock = l};
  assert_rc(mp_value_new(&v, 'q', NULL, &with_rlock), 0);
  assert_ptr_equal(mp_value_get_lock(v), rl);
  assert_rc(mp_value_new(&w, 'q', NULL, &with_lock), 0);
  assert_null(mp_value_get_lock(w)); /* a plain Lock: the lender has it */
  /* A held plain Lock: get and set go on under the caller's hold. */
  assert_rc(mp_value_acquire(w, MP_FOREVER), 0);
  assert_int_equal(mp_lock_locked(l), 1);
  assert_rc(mp_value_set_int(w, 3), 0);
  assert_int_equal(mp_lock_locked(l), 1);
  assert_rc(mp_value_release(w), 0);
  assert_int_equal(mp_lock_locked(l), 0);
  assert_rc(mp_value_set_int(w, 4), 0);
  assert_int_equal(mp_lock_locked(l), 0);
  /* The Lock guards both ways: held here, a timed acquire elsewhere
   * waits. */
  assert_rc(mp_lock_acquire(l, MP_FOREVER), 0);
  assert_rc(mp_value_acquire(w, 0), MP_EDEADLK);
  assert_rc(mp_lock_release(l), 0);
  mp_value_opts both = {.lock = l, .rlock = rl}, raw_lock = {.raw = 1,
                                                             .lock = l};
  assert_rc(mp_value_new(&bad, 'i', NULL, &both), MP_EINVAL);
  assert_ptr_equal(bad, (void *)1); /* left untouched */
  assert_rc(mp_value_new(&bad, 'i', NULL, &raw_lock), MP_EINVAL);
  assert_rc(mp_raw_value_new(&bad, 'i', NULL, &with_lock), MP_EINVAL);
  mp_value_free(v);
  mp_value_free(w);
  mp_rlock_free(rl);
  mp_lock_free(l);
}

static int child_sets_twenty(void *p) {
  return mp_value_set_int(p, 20) == 0 ? 0 : 1;
}

/* The seed: Value('i', 10) set to 20 by a child. */
static void value_set_by_forked_child(void **state) {
  (void)state;
  int ten = 10;
  mp_value *v;
  assert_rc(mp_value_new(&v, 'i', &ten, NULL), 0);
  mp_test_wait_exit(mp_test_fork(child_sets_twenty, v), 0, 30);
  int64_t x;
  assert_rc(mp_value_get_int(v, &x), 0);
  assert_int_equal(x, 20);
  mp_value_free(v);
}

typedef struct named_arg {
  char name[64];
} named_arg;

static int child_opens_and_adds(void *p) {
  named_arg *n = p;
  mp_value *v;
  if (mp_value_open(&v, n->name) != 0)
    return 1;
  int ok = mp_value_typecode(v) == 'h' && mp_value_get_lock(v) != NULL;
  int64_t old;
  if (mp_value_fetch_add(v, 5, &old) != 0 || old != 37)
    ok = 0;
  /* Not the creator: this free must not unlink the name. */
  mp_value_free(v);
  return ok ? 0 : 2;
}

static void value_by_name(void **state) {
  (void)state;
  named_arg n;
  mp_test_name(n.name, sizeof n.name, "val");
  short init = 37;
  mp_value_opts o = {.name = n.name};
  mp_value *v, *again = (void *)1;
  assert_rc(mp_value_new(&v, 'h', &init, &o), 0);
  assert_rc(mp_value_new(&again, 'h', &init, &o), MP_EEXIST);
  assert_ptr_equal(again, (void *)1); /* left untouched */
  mp_test_wait_exit(mp_test_fork(child_opens_and_adds, &n), 0, 30);
  int64_t x;
  assert_rc(mp_value_get_int(v, &x), 0);
  assert_int_equal(x, 42);
  /* The forked child's free did not unlink it: open still works. */
  assert_rc(mp_value_open(&again, n.name), 0);
  mp_value_free(again);
  mp_value_free(v);
  /* The creator's free unlinks. */
  assert_rc(mp_value_open(&again, n.name), MP_ENOENT);
}

static void open_errors(void **state) {
  (void)state;
  char name[64], aname[64];
  mp_test_name(name, sizeof name, "missing");
  mp_value *v = (void *)1;
  mp_array *a = (void *)1;
  assert_rc(mp_value_open(&v, name), MP_ENOENT);
  assert_ptr_equal(v, (void *)1); /* left untouched */
  assert_rc(mp_array_open(&a, name), MP_ENOENT);
  assert_ptr_equal(a, (void *)1); /* left untouched */
  assert_rc(mp_value_open(&v, "bad/name"), MP_EINVAL);
  assert_rc(mp_value_open(&v, ""), MP_EINVAL);
  assert_rc(mp_value_open(&v, NULL), MP_EINVAL);
  mp_value_opts bad = {.name = "no spaces"};
  assert_rc(mp_value_new(&v, 'i', NULL, &bad), MP_EINVAL);
  /* A Value is not an Array and the reverse. */
  mp_test_name(aname, sizeof aname, "arr");
  mp_value_opts o = {.name = aname};
  assert_rc(mp_array_new(&a, 'i', 4, NULL, &o), 0);
  assert_rc(mp_value_open(&v, aname), MP_ECORRUPT);
  mp_array_free(a);
  mp_test_name(name, sizeof name, "val2");
  o.name = name;
  assert_rc(mp_value_new(&v, 'i', NULL, &o), 0);
  assert_rc(mp_array_open(&a, name), MP_ECORRUPT);
  /* A sync object under the same namespace is not a Value. */
  mp_lock *l;
  char lname[64];
  mp_sync_opts lo = {.name = mp_test_name(lname, sizeof lname, "lk")};
  assert_rc(mp_lock_new(&l, &lo), 0);
  mp_value *other;
  assert_rc(mp_value_open(&other, lname), MP_ECORRUPT);
  mp_lock_free(l);
  mp_value_free(v);
}

static void lent_lock_not_openable(void **state) {
  (void)state;
  mp_rlock *rl;
  assert_rc(mp_rlock_new(&rl, NULL), 0);
  char name[64];
  mp_value_opts o = {.name = mp_test_name(name, sizeof name, "lent"),
                     .rlock = rl};
  mp_value *v, *w;
  assert_rc(mp_value_new(&v, 'i', NULL, &o), 0);
  assert_rc(mp_value_open(&w, name), MP_EINVAL);
  mp_value_free(v);
  mp_rlock_free(rl);
}

/* Writes bytes at offset of segment "/mp_<name>". */
static void scribble(const char *name, size_t offset, const void *bytes,
                     size_t n) {
  char path[100];
  snprintf(path, sizeof path, "/mp_%s", name);
  int fd = shm_open(path, O_RDWR, 0);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, bytes, n, (off_t)offset), (ssize_t)n);
  close(fd);
}

/* Never trust a segment: every field is checked before use. The layout is
 * value.c's DESIGN block: head (magic 0, type 4, version 6, origin 7),
 * segment magic 8, typecode 12, element size 13, kind 14, lock kind 15,
 * length 16, segment size 24. */
static void malformed_segments_rejected(void **state) {
  (void)state;
  struct {
    size_t offset;
    uint64_t value;
    size_t width;
  } const damage[] = {
      {0, 0, 4},            /* object magic */
      {4, 99, 2},           /* type */
      {6, 9, 1},            /* version */
      {8, 0x1234, 4},       /* segment magic */
      {12, 'x', 1},         /* typecode */
      {13, 3, 1},           /* element size */
      {14, 7, 1},           /* kind */
      {15, 9, 1},           /* lock kind */
      {16, UINT64_MAX, 8},  /* length */
      {16, 1u << 30, 8},    /* length beyond the segment */
      {24, 12345, 8},       /* segment size */
  };
  for (size_t k = 0; k < MP__ARRAY_SIZE(damage); k++) {
    char name[64];
    snprintf(name, sizeof name, "t%d-dmg%zu", (int)getpid(), k);
    mp_value_opts o = {.name = name};
    mp_array *a, *b = (void *)1;
    assert_rc(mp_array_new(&a, 'i', 16, NULL, &o), 0);
    scribble(name, damage[k].offset, &damage[k].value, damage[k].width);
    assert_rc(mp_array_open(&b, name), MP_ECORRUPT);
    assert_ptr_equal(b, (void *)1); /* left untouched */
    mp_array_free(a);
  }
  /* Lock kind "lent": refused as such. */
  char name[64];
  mp_value_opts o = {.name = mp_test_name(name, sizeof name, "lk2")};
  mp_value *v, *w;
  assert_rc(mp_value_new(&v, 'i', NULL, &o), 0);
  uint8_t lent = 3;
  scribble(name, 15, &lent, 1);
  assert_rc(mp_value_open(&w, name), MP_EINVAL);
  mp_value_free(v);
  /* Garbage and short segments under the name. */
  char path[100];
  mp_test_name(name, sizeof name, "junk");
  snprintf(path, sizeof path, "/mp_%s", name);
  int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
  assert_true(fd >= 0);
  char junk[100];
  memset(junk, 0x5a, sizeof junk);
  assert_int_equal(write(fd, junk, sizeof junk), sizeof junk);
  assert_rc(mp_value_open(&w, name), MP_ECORRUPT); /* too short */
  assert_int_equal(ftruncate(fd, 4096), 0);
  assert_rc(mp_value_open(&w, name), MP_ECORRUPT); /* garbage */
  assert_int_equal(ftruncate(fd, 4097), 0);
  assert_rc(mp_value_open(&w, name), MP_ECORRUPT); /* odd size */
  close(fd);
  shm_unlink(path);
}

static void scribbled_lock_is_reported(void **state) {
  (void)state;
  /* The lock inside a named Value is checked by the lock itself. */
  char name[64];
  mp_value_opts o = {.name = mp_test_name(name, sizeof name, "lkj")};
  mp_value *v, *w;
  assert_rc(mp_value_new(&v, 'i', NULL, &o), 0);
  unsigned char zeros[64] = {0};
  scribble(name, 64, zeros, sizeof zeros);
  assert_rc(mp_value_open(&w, name), 0);
  assert_rc(mp_value_set_int(w, 1), MP_EINVAL);
  assert_rc(mp_value_acquire(w, 0), MP_EINVAL);
  mp_value_free(w);
  mp_value_free(v);
}

static void out_of_memory(void **state) {
  (void)state;
  mp_value *v = (void *)1;
  mp_array *a = (void *)1;
  mp__alloc_fail_after(1);
  assert_rc(mp_value_new(&v, 'i', NULL, NULL), MP_ENOMEM);
  mp__alloc_fail_after(1);
  assert_rc(mp_array_new(&a, 'i', 3, NULL, NULL), MP_ENOMEM);
  mp__alloc_fail_after(0);
  assert_ptr_equal(v, (void *)1); /* left untouched */
  assert_ptr_equal(a, (void *)1); /* left untouched */
}

/* ---- atomics ---------------------------------------------------------------- */
static void atomics_on_every_integer_type(void **state) {
  (void)state;
  const char codes[] = "bBhHiIlLqQ";
  for (const char *c = codes; *c; c++) {
    mp_value *v;
    assert_rc(mp_value_new(&v, *c, NULL, NULL), 0);
    int64_t old = -1;
    assert_rc(mp_value_fetch_add(v, 5, &old), 0);
    assert_int_equal(old, 0);
    assert_rc(mp_value_fetch_add(v, -2, NULL), 0);
    assert_rc(mp_value_exchange(v, 100, &old), 0);
    assert_int_equal(old, 3);
    int64_t expected = 7;
    assert_int_equal(mp_value_compare_exchange(v, &expected, 8), 0);
    assert_int_equal(expected, 100); /* told what it is */
    assert_int_equal(mp_value_compare_exchange(v, &expected, 9), 1);
    int64_t x;
    assert_rc(mp_value_get_int(v, &x), 0);
    assert_int_equal(x, 9);
    /* Out of range for the type: refused, or can never match. */
    if (mp_typecode_size(*c) < 8) {
      assert_rc(mp_value_exchange(v, INT64_MAX, NULL), MP_EOVERFLOW);
      int64_t huge = INT64_MAX;
      assert_int_equal(mp_value_compare_exchange(v, &huge, 1), 0);
      assert_int_equal(huge, 9);
      assert_rc(mp_value_compare_exchange(v, &expected, INT64_MAX),
                MP_EOVERFLOW);
    }
    mp_value_free(v);
  }
  mp_value *c, *d;
  assert_rc(mp_value_new(&c, 'c', NULL, NULL), 0);
  assert_rc(mp_value_new(&d, 'd', NULL, NULL), 0);
  int64_t e = 0;
  assert_rc(mp_value_fetch_add(c, 1, NULL), MP_EINVAL);
  assert_rc(mp_value_exchange(d, 1, NULL), MP_EINVAL);
  assert_rc(mp_value_compare_exchange(d, &e, 1), MP_EINVAL);
  mp_value_free(c);
  mp_value_free(d);
}

static void atomic_add_wraps_like_c(void **state) {
  (void)state;
  mp_value *b, *B, *Q;
  unsigned char max = 255;
  signed char smax = 127;
  assert_rc(mp_value_new(&B, 'B', &max, NULL), 0);
  assert_rc(mp_value_new(&b, 'b', &smax, NULL), 0);
  assert_rc(mp_value_new(&Q, 'Q', NULL, NULL), 0);
  int64_t old, x;
  assert_rc(mp_value_fetch_add(B, 1, &old), 0);
  assert_int_equal(old, 255);
  assert_rc(mp_value_get_int(B, &x), 0);
  assert_int_equal(x, 0);
  assert_rc(mp_value_fetch_add(b, 1, &old), 0);
  assert_int_equal(old, 127);
  assert_rc(mp_value_get_int(b, &x), 0);
  assert_int_equal(x, -128);
  /* 'Q' 0 - 1 is 2^64 - 1, given back as its two's complement. */
  assert_rc(mp_value_fetch_add(Q, -1, NULL), 0);
  assert_rc(mp_value_fetch_add(Q, 0, &old), 0);
  assert_int_equal(old, -1);
  mp_value_free(b);
  mp_value_free(B);
  mp_value_free(Q);
}

#define PER_WORKER 100000

static int add_many(void *p) {
  for (int i = 0; i < PER_WORKER; i++)
    if (mp_value_fetch_add(p, 1, NULL) != 0)
      return 1;
  return 0;
}

static int add_many_locked(void *p) {
  mp_value *v = p;
  for (int i = 0; i < PER_WORKER / 10; i++) {
    int64_t x;
    if (mp_value_acquire(v, MP_FOREVER) != 0 || mp_value_get_int(v, &x) != 0 ||
        mp_value_set_int(v, x + 1) != 0 || mp_value_release(v) != 0)
      return 1;
  }
  return 0;
}

/* G-VALUE-1: atomic adds from several processes lose no update. */
static void atomic_add_between_processes(void **state) {
  (void)state;
  mp_value *v;
  assert_rc(mp_value_new(&v, 'q', NULL, NULL), 0);
  pid_t a = mp_test_fork(add_many, v), b = mp_test_fork(add_many, v);
  add_many(v);
  mp_test_wait_exit(a, 0, 60);
  mp_test_wait_exit(b, 0, 60);
  int64_t x;
  assert_rc(mp_value_get_int(v, &x), 0);
  assert_int_equal(x, 3 * PER_WORKER);
  mp_value_free(v);
}

/* Under the lock, "v.value += 1" from several processes is exact too. */
static void locked_increment_between_processes(void **state) {
  (void)state;
  mp_value *v;
  assert_rc(mp_value_new(&v, 'i', NULL, NULL), 0);
  pid_t a = mp_test_fork(add_many_locked, v),
        b = mp_test_fork(add_many_locked, v);
  assert_int_equal(add_many_locked(v), 0);
  mp_test_wait_exit(a, 0, 60);
  mp_test_wait_exit(b, 0, 60);
  int64_t x;
  assert_rc(mp_value_get_int(v, &x), 0);
  assert_int_equal(x, 3 * (PER_WORKER / 10));
  mp_value_free(v);
}

typedef struct two_values {
  mp_value *atomic, *locked;
} two_values;

/* Atomic adds and locked read-modify-writes go to different values: a
 * locked "get; set" does not see an unlocked atomic add in between. */
static void *thread_adds(void *p) {
  two_values *tv = p;
  return (void *)(intptr_t)(add_many(tv->atomic) +
                            add_many_locked(tv->locked));
}

static void between_threads(void **state) {
  (void)state;
  two_values tv;
  assert_rc(mp_value_new(&tv.atomic, 'l', NULL, NULL), 0);
  assert_rc(mp_value_new(&tv.locked, 'l', NULL, NULL), 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, thread_adds, &tv), 0);
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(t[i], &r);
    assert_null(r);
  }
  int64_t x;
  assert_rc(mp_value_get_int(tv.atomic, &x), 0);
  assert_int_equal(x, 4 * PER_WORKER);
  assert_rc(mp_value_get_int(tv.locked, &x), 0);
  assert_int_equal(x, 4 * (PER_WORKER / 10));
  mp_value_free(tv.atomic);
  mp_value_free(tv.locked);
}

static int die_holding_lock(void *p) {
  mp_value_acquire(p, MP_FOREVER);
  _exit(0);
}

/* A holder that dies: the next access goes through and says so. */
static void owner_died_is_reported(void **state) {
  (void)state;
  mp_value *v;
  assert_rc(mp_value_new(&v, 'i', NULL, NULL), 0);
  mp_test_wait_exit(mp_test_fork(die_holding_lock, v), 0, 30);
  assert_rc(mp_value_set_int(v, 3), MP_EOWNERDEAD);
  int64_t x;
  assert_rc(mp_value_get_int(v, &x), 0);
  assert_int_equal(x, 3);
  mp_value_free(v);
}

/* ---- Array ------------------------------------------------------------------ */
static void array_elements(void **state) {
  (void)state;
  int init[10];
  for (int i = 0; i < 10; i++)
    init[i] = i;
  mp_array *a;
  assert_rc(mp_array_new(&a, 'i', 10, init, NULL), 0);
  assert_int_equal(mp_array_len(a), 10);
  assert_int_equal(mp_array_typecode(a), 'i');
  assert_non_null(mp_array_get_lock(a));
  int64_t x;
  assert_rc(mp_array_get_int(a, 3, &x), 0);
  assert_int_equal(x, 3);
  assert_rc(mp_array_get_int(a, -1, &x), 0);
  assert_int_equal(x, 9);
  assert_rc(mp_array_get_int(a, -10, &x), 0);
  assert_int_equal(x, 0);
  assert_rc(mp_array_get_int(a, 10, &x), MP_ERANGE);
  assert_rc(mp_array_get_int(a, -11, &x), MP_ERANGE);
  assert_rc(mp_array_get_int(a, PTRDIFF_MIN, &x), MP_ERANGE);
  assert_rc(mp_array_set_int(a, 10, 1), MP_ERANGE);
  assert_rc(mp_array_set_int(a, -2, -8), 0);
  int raw;
  assert_rc(mp_array_get(a, 8, &raw), 0);
  assert_int_equal(raw, -8);
  raw = 44;
  assert_rc(mp_array_set(a, 0, &raw), 0);
  assert_int_equal(((int *)mp_array_ptr(a))[0], 44);
  assert_rc(mp_array_set_int(a, 0, (int64_t)INT_MAX + 1), MP_EOVERFLOW);
  double d;
  assert_rc(mp_array_get_double(a, 0, &d), MP_EINVAL);
  assert_rc(mp_array_set_double(a, 0, 1.0), MP_EINVAL);
  assert_rc(mp_array_acquire(a, 0), 0);
  assert_rc(mp_array_release(a), 0);
  int64_t old;
  assert_rc(mp_array_fetch_add(a, 1, 10, &old), 0);
  assert_int_equal(old, 1);
  assert_rc(mp_array_exchange(a, 1, 0, &old), 0);
  assert_int_equal(old, 11);
  int64_t e = 0;
  assert_int_equal(mp_array_compare_exchange(a, 1, &e, 5), 1);
  assert_rc(mp_array_fetch_add(a, 10, 1, NULL), MP_ERANGE);
  assert_rc(mp_array_exchange(a, -11, 1, NULL), MP_ERANGE);
  assert_rc(mp_array_compare_exchange(a, 99, &e, 1), MP_ERANGE);
  mp_array_free(a);
}

static void array_slices_like_python(void **state) {
  (void)state;
  long init[6] = {0, 1, 2, 3, 4, 5};
  mp_array *a;
  assert_rc(mp_array_new(&a, 'l', 6, init, NULL), 0);
  long out[6];
  assert_int_equal(mp_array_get_slice(a, 2, 5, out, 6), 3);
  assert_int_equal(out[0], 2);
  assert_int_equal(out[2], 4);
  /* a[-2:], a[:100], a[-100:1], a[4:2] */
  assert_int_equal(mp_array_get_slice(a, -2, PTRDIFF_MAX, out, 6), 2);
  assert_int_equal(out[0], 4);
  assert_int_equal(mp_array_get_slice(a, 0, 100, out, 6), 6);
  assert_int_equal(mp_array_get_slice(a, -100, 1, out, 6), 1);
  assert_int_equal(out[0], 0);
  assert_int_equal(mp_array_get_slice(a, 4, 2, out, 6), 0);
  assert_int_equal(mp_array_get_slice(a, PTRDIFF_MIN, PTRDIFF_MAX, out, 6),
                   6);
  assert_int_equal(mp_array_get_slice(a, 0, 6, out, 5), MP_ETOOBIG);
  assert_int_equal(mp_array_get_slice(a, 0, 6, NULL, 6), MP_EINVAL);
  assert_int_equal(mp_array_get_slice(a, 3, 3, NULL, 0), 0);
  long in[3] = {-1, -2, -3};
  assert_rc(mp_array_set_slice(a, -3, 6, in, 3), 0);
  assert_rc(mp_array_set_slice(a, 0, 2, in, 3), MP_EVALUE);
  assert_rc(mp_array_set_slice(a, 0, 2, NULL, 2), MP_EINVAL);
  assert_rc(mp_array_set_slice(a, 5, 1, NULL, 0), 0);
  assert_int_equal(mp_array_get_slice(a, 0, 6, out, 6), 6);
  long want[6] = {0, 1, 2, -1, -2, -3};
  assert_memory_equal(out, want, sizeof want);
  mp_array_free(a);
  assert_int_equal(mp_array_get_slice(NULL, 0, 1, out, 1), MP_EINVAL);
  assert_rc(mp_array_set_slice(NULL, 0, 1, in, 1), MP_EINVAL);
}

static void array_empty_and_raw(void **state) {
  (void)state;
  mp_array *a, *r;
  assert_rc(mp_array_new(&a, 'd', 0, NULL, NULL), 0);
  assert_int_equal(mp_array_len(a), 0);
  double d;
  assert_rc(mp_array_get_double(a, 0, &d), MP_ERANGE);
  assert_rc(mp_array_get_double(a, -1, &d), MP_ERANGE);
  assert_int_equal(mp_array_get_slice(a, 0, 10, NULL, 0), 0);
  mp_array_free(a);
  assert_rc(mp_raw_array_new(&r, 'H', 3, NULL, NULL), 0);
  assert_null(mp_array_get_lock(r));
  assert_rc(mp_array_acquire(r, 0), MP_EINVAL);
  assert_rc(mp_array_release(r), MP_EINVAL);
  assert_rc(mp_array_set_int(r, 2, 65535), 0);
  int64_t x;
  assert_rc(mp_array_get_int(r, 2, &x), 0);
  assert_int_equal(x, 65535);
  mp_array_free(r);
  /* Too big to describe. */
  assert_rc(mp_array_new(&a, 'd', SIZE_MAX / 4, NULL, NULL), MP_EOVERFLOW);
  assert_rc(mp_array_new(NULL, 'd', 1, NULL, NULL), MP_EINVAL);
  assert_rc(mp_raw_array_new(NULL, 'd', 1, NULL, NULL), MP_EINVAL);
  assert_rc(mp_array_open(NULL, "x"), MP_EINVAL);
  assert_int_equal(mp_array_len(NULL), 0);
  assert_int_equal(mp_array_typecode(NULL), 0);
  assert_null(mp_array_ptr(NULL));
  assert_null(mp_array_get_lock(NULL));
  assert_rc(mp_array_acquire(NULL, 0), MP_EINVAL);
  assert_rc(mp_array_release(NULL), MP_EINVAL);
  assert_rc(mp_array_get(NULL, 0, &x), MP_EINVAL);
  assert_rc(mp_array_fetch_add(NULL, 0, 1, NULL), MP_EINVAL);
  mp_array_free(NULL);
}

typedef struct seed_arg {
  mp_value *num;
  mp_array *arr;
} seed_arg;

static int seed_child(void *p) {
  seed_arg *s = p;
  if (mp_value_set_double(s->num, 3.1415927) != 0)
    return 1;
  for (size_t i = 0; i < mp_array_len(s->arr); i++) {
    int64_t x;
    if (mp_array_get_int(s->arr, (ssize_t)i, &x) != 0 ||
        mp_array_set_int(s->arr, (ssize_t)i, -x) != 0)
      return 2;
  }
  return 0;
}

/* The seed: num = Value('d', 0.0); arr = Array('i', range(10)); a child
 * sets num to 3.1415927 and negates arr. */
static void array_negated_by_child(void **state) {
  (void)state;
  double zero = 0.0;
  int init[10];
  for (int i = 0; i < 10; i++)
    init[i] = i;
  seed_arg s;
  assert_rc(mp_value_new(&s.num, 'd', &zero, NULL), 0);
  assert_rc(mp_array_new(&s.arr, 'i', 10, init, NULL), 0);
  mp_test_wait_exit(mp_test_fork(seed_child, &s), 0, 30);
  double d;
  assert_rc(mp_value_get_double(s.num, &d), 0);
  assert_true(d == 3.1415927);
  int out[10];
  assert_int_equal(mp_array_get_slice(s.arr, 0, 10, out, 10), 10);
  for (int i = 0; i < 10; i++)
    assert_int_equal(out[i], -i);
  mp_value_free(s.num);
  mp_array_free(s.arr);
}

static int child_opens_array(void *p) {
  named_arg *n = p;
  mp_array *a;
  if (mp_array_open(&a, n->name) != 0)
    return 1;
  int ok = mp_array_len(a) == 1000 && mp_array_typecode(a) == 'f';
  if (mp_array_set_double(a, 999, 2.5) != 0)
    ok = 0;
  double d;
  if (mp_array_get_double(a, 1000, &d) != MP_ERANGE)
    ok = 0;
  mp_array_free(a);
  return ok ? 0 : 2;
}

static void array_by_name(void **state) {
  (void)state;
  named_arg n;
  mp_value_opts o = {.name = mp_test_name(n.name, sizeof n.name, "farr"),
                     .raw = 1};
  mp_array *a;
  assert_rc(mp_array_new(&a, 'f', 1000, NULL, &o), 0);
  mp_test_wait_exit(mp_test_fork(child_opens_array, &n), 0, 30);
  double d;
  assert_rc(mp_array_get_double(a, -1, &d), 0);
  assert_true(d == 2.5);
  mp_array_free(a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(typecode_sizes_are_c_types),
    cmocka_unit_test(value_int_seed),
    cmocka_unit_test(value_zero_by_default),
    cmocka_unit_test(value_doubles),
    cmocka_unit_test(value_int_ranges_checked),
    cmocka_unit_test(value_bad_arguments),
    cmocka_unit_test(value_default_lock_is_rlock),
    cmocka_unit_test(value_raw_has_no_lock),
    cmocka_unit_test(value_lent_locks),
    cmocka_unit_test(value_set_by_forked_child),
    cmocka_unit_test(value_by_name),
    cmocka_unit_test(open_errors),
    cmocka_unit_test(lent_lock_not_openable),
    cmocka_unit_test(malformed_segments_rejected),
    cmocka_unit_test(scribbled_lock_is_reported),
    cmocka_unit_test(out_of_memory),
    cmocka_unit_test(atomics_on_every_integer_type),
    cmocka_unit_test(atomic_add_wraps_like_c),
    cmocka_unit_test(atomic_add_between_processes),
    cmocka_unit_test(locked_increment_between_processes),
    cmocka_unit_test(between_threads),
    cmocka_unit_test(owner_died_is_reported),
    cmocka_unit_test(array_elements),
    cmocka_unit_test(array_slices_like_python),
    cmocka_unit_test(array_empty_and_raw),
    cmocka_unit_test(array_negated_by_child),
    cmocka_unit_test(array_by_name),
};

MP_TEST_MAIN(tests)
