/* test_shareable_list.c - ShareableList in Python's layout: every item
 * type, replacing items, Python's limits, the two Python bugs not copied
 * (G-SL-1: str slots sized in UTF-8 bytes; G-SL-2: trailing NULs kept),
 * and malformed blocks that must give MP_ECORRUPT, never a crash
 * (G-SL-3). The layout is checked byte for byte against what Python's
 * struct module produces; tests/interop checks it against Python itself. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

static mp_shareable_list *make(const mp_shareable_item *items, size_t n,
                               const char *tag, char *name, size_t cap) {
  mp_shareable_list *sl;
  mp_test_name(name, cap, tag);
  assert_rc(mp_shareable_list_new(&sl, items, n, name, NULL), 0);
  return sl;
}

static void drop(mp_shareable_list *sl) {
  assert_rc(mp_shared_memory_unlink(mp_shareable_list_shm(sl)), 0);
  mp_shareable_list_free(sl);
}

static void every_type_round_trips(void **state) {
  (void)state;
  const char bin[] = {'b', 0, 'y', 0, 0};
  mp_shareable_item items[] = {
      mp_shareable_int(-42),           mp_shareable_float(2.5),
      mp_shareable_bool(1),            mp_shareable_bool(0),
      mp_shareable_none(),             mp_shareable_str("howdy"),
      mp_shareable_bytes(bin, sizeof bin), mp_shareable_str(""),
      mp_shareable_int(INT64_MIN),
  };
  char name[64];
  mp_shareable_list *sl = make(items, MP__ARRAY_SIZE(items), "all", name,
                               sizeof name);
  assert_int_equal(mp_shareable_list_len(sl), MP__ARRAY_SIZE(items));
  char buf[64];
  mp_shareable_item it;
  assert_rc(mp_shareable_list_get(sl, 0, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_INT);
  assert_int_equal(it.i, -42);
  assert_rc(mp_shareable_list_get(sl, 1, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_FLOAT);
  assert_true(it.f == 2.5);
  assert_rc(mp_shareable_list_get(sl, 2, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_BOOL);
  assert_int_equal(it.i, 1);
  assert_rc(mp_shareable_list_get(sl, 3, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_BOOL);
  assert_int_equal(it.i, 0);
  assert_rc(mp_shareable_list_get(sl, 4, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_NONE);
  assert_rc(mp_shareable_list_get(sl, 5, &it, buf, sizeof buf), 0);
  assert_int_equal(it.type, MP_SHAREABLE_STR);
  assert_int_equal(it.len, 5);
  assert_string_equal(buf, "howdy"); /* NUL added: there was room */
  assert_ptr_equal(it.data, buf);
  /* G-SL-2: bytes keep their trailing NULs. */
  assert_rc(mp_shareable_list_get(sl, 6, &it, buf, sizeof buf), 0);
  assert_int_equal(it.type, MP_SHAREABLE_BYTES);
  assert_int_equal(it.len, sizeof bin);
  assert_memory_equal(buf, bin, sizeof bin);
  assert_rc(mp_shareable_list_get(sl, 7, &it, buf, sizeof buf), 0);
  assert_int_equal(it.type, MP_SHAREABLE_STR);
  assert_int_equal(it.len, 0);
  assert_rc(mp_shareable_list_get(sl, -1, &it, NULL, 0), 0);
  assert_true(it.i == INT64_MIN);
  assert_rc(mp_shareable_list_get(sl, 9, &it, NULL, 0), MP_ERANGE);
  assert_rc(mp_shareable_list_get(sl, -10, &it, NULL, 0), MP_ERANGE);
  char fmt[128];
  ssize_t n = mp_shareable_list_format(sl, fmt, sizeof fmt);
  assert_int_equal(n, (ssize_t)strlen(fmt));
  assert_string_equal(fmt, "qdxxxxxxx?xxxxxxx?xxxxxx?x5s3x5s3x0s8xq");
  assert_int_equal(mp_shareable_list_format(sl, fmt, 10), MP_ETOOBIG);
  drop(sl);
}

/* The bytes Python's struct module writes for
 * ShareableList([7, True, None]) (python3 -c "...; bytes(sl.shm.buf)"). */
static void layout_is_pythons(void **state) {
  (void)state;
  mp_shareable_item items[] = {mp_shareable_int(7), mp_shareable_bool(1),
                               mp_shareable_none()};
  char name[64];
  mp_shareable_list *sl = make(items, 3, "layout", name, sizeof name);
  const unsigned char want[] = {
      3, 0, 0, 0, 0, 0, 0, 0,                            /* N */
      0, 0, 0, 0, 0, 0, 0, 0,  8, 0, 0, 0, 0, 0, 0, 0,   /* offsets */
      16, 0, 0, 0, 0, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0,
      7, 0, 0, 0, 0, 0, 0, 0,                            /* 7 */
      0, 0, 0, 0, 0, 0, 0, 1,                            /* True */
      0, 0, 0, 0, 0, 0, 0, 0,                            /* None */
      'q', 0, 0, 0, 0, 0, 0, 0,                          /* formats */
      'x', 'x', 'x', 'x', 'x', 'x', 'x', '?',
      'x', 'x', 'x', 'x', 'x', 'x', '?', 'x',
      0, 0, 3,                                           /* codes */
  };
  mp_shared_memory *shm = mp_shareable_list_shm(sl);
  assert_int_equal(mp_shared_memory_size(shm), sizeof want);
  assert_memory_equal(mp_shared_memory_buf(shm), want, sizeof want);
  drop(sl);
}

/* G-SL-1: a str slot is sized by its UTF-8 bytes ("héllo wörld" is 11
 * characters but 13 bytes), so nothing is cut off. */
static void str_slot_sized_in_utf8_bytes(void **state) {
  (void)state;
  const char *s = "h\xc3\xa9llo w\xc3\xb6rld";
  mp_shareable_item items[] = {mp_shareable_str(s)};
  char name[64], buf[32];
  mp_shareable_list *sl = make(items, 1, "utf8", name, sizeof name);
  mp_shareable_item it;
  assert_rc(mp_shareable_list_get(sl, 0, &it, buf, sizeof buf), 0);
  assert_int_equal(it.len, 13);
  assert_string_equal(buf, s);
  char fmt[32];
  assert_int_equal(mp_shareable_list_format(sl, fmt, sizeof fmt), 5);
  assert_string_equal(fmt, "13s3x");
  drop(sl);
}

static void set_replaces_any_type(void **state) {
  (void)state;
  mp_shareable_item items[] = {mp_shareable_str("0123456789"),
                               mp_shareable_int(1)};
  char name[64], buf[32];
  mp_shareable_list *sl = make(items, 2, "set", name, sizeof name);
  mp_shareable_item it, v;
  /* The str slot holds 16 bytes. */
  v = mp_shareable_str("0123456789abcdef");
  assert_rc(mp_shareable_list_set(sl, 0, &v), 0);
  assert_rc(mp_shareable_list_get(sl, 0, &it, buf, sizeof buf), 0);
  assert_int_equal(it.len, 16);
  v = mp_shareable_str("0123456789abcdefg");
  assert_rc(mp_shareable_list_set(sl, 0, &v), MP_ETOOBIG);
  v = mp_shareable_float(-0.5);
  assert_rc(mp_shareable_list_set(sl, 0, &v), 0);
  assert_rc(mp_shareable_list_get(sl, 0, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_FLOAT);
  v = mp_shareable_bytes("abc", 3);
  assert_rc(mp_shareable_list_set(sl, -2, &v), 0);
  assert_rc(mp_shareable_list_get(sl, 0, &it, buf, sizeof buf), 0);
  assert_int_equal(it.type, MP_SHAREABLE_BYTES);
  assert_int_equal(it.len, 3);
  /* An 8-byte slot takes a short str, as Python allows. */
  v = mp_shareable_str("12345678");
  assert_rc(mp_shareable_list_set(sl, 1, &v), 0);
  assert_rc(mp_shareable_list_get(sl, 1, &it, buf, sizeof buf), 0);
  assert_int_equal(it.len, 8);
  assert_memory_equal(buf, "12345678", 8);
  v = mp_shareable_str("123456789");
  assert_rc(mp_shareable_list_set(sl, 1, &v), MP_ETOOBIG);
  v = mp_shareable_none();
  assert_rc(mp_shareable_list_set(sl, 1, &v), 0);
  assert_rc(mp_shareable_list_get(sl, 1, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_NONE);
  v = mp_shareable_bool(7);
  assert_rc(mp_shareable_list_set(sl, 1, &v), 0);
  assert_rc(mp_shareable_list_get(sl, 1, &it, NULL, 0), 0);
  assert_int_equal(it.type, MP_SHAREABLE_BOOL);
  assert_int_equal(it.i, 1);
  assert_rc(mp_shareable_list_set(sl, 2, &v), MP_ERANGE);
  assert_rc(mp_shareable_list_set(sl, -3, &v), MP_ERANGE);
  drop(sl);
}

static void get_buffer_rules(void **state) {
  (void)state;
  mp_shareable_item items[] = {mp_shareable_bytes("abcdef", 6)};
  char name[64], buf[8];
  mp_shareable_list *sl = make(items, 1, "buf", name, sizeof name);
  mp_shareable_item it;
  assert_rc(mp_shareable_list_get(sl, 0, &it, buf, 5), MP_ETOOBIG);
  assert_int_equal(it.type, MP_SHAREABLE_BYTES);
  assert_int_equal(it.len, 6);
  assert_rc(mp_shareable_list_get(sl, 0, &it, NULL, 0), MP_ETOOBIG);
  memset(buf, 'z', sizeof buf);
  /* Exactly enough: no room for a NUL, none written. */
  assert_rc(mp_shareable_list_get(sl, 0, &it, buf, 6), 0);
  assert_int_equal(buf[6], 'z');
  assert_rc(mp_shareable_list_get(NULL, 0, &it, buf, 6), MP_EINVAL);
  assert_rc(mp_shareable_list_get(sl, 0, NULL, buf, 6), MP_EINVAL);
  drop(sl);
}

static void bad_items_refused(void **state) {
  (void)state;
  mp_shareable_list *sl = (void *)1;
  char name[64];
  mp_test_name(name, sizeof name, "bad");
  mp_shareable_item bad_utf8 = mp_shareable_bytes("\xc3(", 2);
  bad_utf8.type = MP_SHAREABLE_STR;
  assert_rc(mp_shareable_list_new(&sl, &bad_utf8, 1, name, NULL), MP_EINVAL);
  assert_ptr_equal(sl, (void *)1); /* left untouched */
  mp_shareable_item surrogate = mp_shareable_bytes("\xed\xa0\x80", 3);
  surrogate.type = MP_SHAREABLE_STR;
  assert_rc(mp_shareable_list_new(&sl, &surrogate, 1, name, NULL),
            MP_EINVAL);
  mp_shareable_item null_data = mp_shareable_bytes(NULL, 3);
  assert_rc(mp_shareable_list_new(&sl, &null_data, 1, name, NULL),
            MP_EINVAL);
  mp_shareable_item unknown = mp_shareable_int(1);
  unknown.type = (mp_shareable_type)99;
  assert_rc(mp_shareable_list_new(&sl, &unknown, 1, name, NULL), MP_EINVAL);
  /* Python's limit: a slot's format must fit in 8 characters. */
  static const char one = 'x';
  mp_shareable_item huge = mp_shareable_bytes(&one, 10000000);
  assert_rc(mp_shareable_list_new(&sl, &huge, 1, name, NULL), MP_EOVERFLOW);
  assert_rc(mp_shareable_list_new(NULL, &huge, 1, name, NULL), MP_EINVAL);
  assert_rc(mp_shareable_list_new(&sl, NULL, 1, name, NULL), MP_EINVAL);
  assert_rc(mp_shareable_list_open(NULL, name), MP_EINVAL);
  assert_rc(mp_shareable_list_open(&sl, name), MP_ENOENT);
  mp_shareable_item ok = mp_shareable_int(1);
  sl = make(&ok, 1, "bad2", name, sizeof name);
  assert_rc(mp_shareable_list_set(sl, 0, &bad_utf8), MP_EINVAL);
  assert_rc(mp_shareable_list_set(sl, 0, NULL), MP_EINVAL);
  assert_rc(mp_shareable_list_set(NULL, 0, &ok), MP_EINVAL);
  drop(sl);
  mp_shareable_list_free(NULL);
  assert_null(mp_shareable_list_shm(NULL));
  assert_int_equal(mp_shareable_list_len(NULL), 0);
}

static void empty_list_and_generated_name(void **state) {
  (void)state;
  mp_shareable_list *sl, *again;
  assert_rc(mp_shareable_list_new(&sl, NULL, 0, NULL, NULL), 0);
  const char *name = mp_shared_memory_name(mp_shareable_list_shm(sl));
  assert_memory_equal(name, "psm_", 4);
  assert_int_equal(mp_shareable_list_len(sl), 0);
  assert_int_equal(mp_shared_memory_size(mp_shareable_list_shm(sl)), 16);
  assert_rc(mp_shareable_list_open(&again, name), 0);
  assert_int_equal(mp_shareable_list_len(again), 0);
  char fmt[4];
  assert_int_equal(mp_shareable_list_format(again, fmt, sizeof fmt), 0);
  assert_string_equal(fmt, "");
  mp_shareable_list_free(again);
  drop(sl);
}

static void count_and_index_like_python(void **state) {
  (void)state;
  mp_shareable_item items[] = {
      mp_shareable_int(1),     mp_shareable_float(1.0), mp_shareable_bool(1),
      mp_shareable_str("a"),   mp_shareable_bytes("a", 1),
      mp_shareable_none(),     mp_shareable_float(0.5),
      mp_shareable_int(INT64_MAX),
  };
  char name[64];
  mp_shareable_list *sl = make(items, MP__ARRAY_SIZE(items), "cnt", name,
                               sizeof name);
  mp_shareable_item q = mp_shareable_int(1);
  assert_int_equal(mp_shareable_list_count(sl, &q), 3);
  assert_int_equal(mp_shareable_list_index(sl, &q), 0);
  q = mp_shareable_float(1.0);
  assert_int_equal(mp_shareable_list_count(sl, &q), 3);
  q = mp_shareable_str("a");
  assert_int_equal(mp_shareable_list_count(sl, &q), 1);
  assert_int_equal(mp_shareable_list_index(sl, &q), 3);
  q = mp_shareable_bytes("a", 1);
  assert_int_equal(mp_shareable_list_index(sl, &q), 4);
  q = mp_shareable_none();
  assert_int_equal(mp_shareable_list_index(sl, &q), 5);
  q = mp_shareable_float(0.5);
  assert_int_equal(mp_shareable_list_index(sl, &q), 6);
  q = mp_shareable_int(0);
  assert_int_equal(mp_shareable_list_count(sl, &q), 0);
  assert_int_equal(mp_shareable_list_index(sl, &q), MP_ENOENT);
  /* 2^63 as a double is not INT64_MAX (Python compares exactly). */
  q = mp_shareable_float(9223372036854775808.0);
  assert_int_equal(mp_shareable_list_count(sl, &q), 0);
  assert_int_equal(mp_shareable_list_count(NULL, &q), MP_EINVAL);
  assert_int_equal(mp_shareable_list_index(sl, NULL), MP_EINVAL);
  drop(sl);
}

typedef struct child_arg {
  char name[64];
} child_arg;

static int child_changes(void *p) {
  child_arg *c = p;
  mp_shareable_list *sl;
  if (mp_shareable_list_open(&sl, c->name) != 0)
    return 1;
  mp_shareable_item it;
  char buf[16];
  if (mp_shareable_list_get(sl, 1, &it, buf, sizeof buf) != 0 ||
      it.type != MP_SHAREABLE_STR || strcmp(buf, "parent") != 0)
    return 2;
  mp_shareable_item v = mp_shareable_str("child");
  mp_shareable_item n = mp_shareable_int(99);
  if (mp_shareable_list_set(sl, 1, &v) != 0 ||
      mp_shareable_list_set(sl, 0, &n) != 0)
    return 3;
  mp_shareable_list_free(sl);
  return 0;
}

static void between_processes(void **state) {
  (void)state;
  child_arg c;
  mp_shareable_item items[] = {mp_shareable_none(),
                               mp_shareable_str("parent")};
  mp_shareable_list *sl = make(items, 2, "proc", c.name, sizeof c.name);
  mp_test_wait_exit(mp_test_fork(child_changes, &c), 0, 30);
  mp_shareable_item it;
  char buf[16];
  assert_rc(mp_shareable_list_get(sl, 0, &it, NULL, 0), 0);
  assert_int_equal(it.i, 99);
  assert_rc(mp_shareable_list_get(sl, 1, &it, buf, sizeof buf), 0);
  assert_string_equal(buf, "child");
  drop(sl);
}

/* ---- malformed blocks (G-SL-3) ---------------------------------------------- */
static mp_shared_memory *raw_block(const char *tag, char *name, size_t cap,
                                   size_t size) {
  mp_shared_memory *shm;
  mp_test_name(name, cap, tag);
  assert_rc(mp_shared_memory_new(&shm, name, size, NULL), 0);
  return shm;
}

static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

static void malformed_headers(void **state) {
  (void)state;
  char name[64];
  mp_shareable_list *sl = (void *)1;
  /* Too small for a header. */
  mp_shared_memory *shm = raw_block("tiny", name, sizeof name, 8);
  assert_rc(mp_shareable_list_open(&sl, name), MP_ECORRUPT);
  assert_ptr_equal(sl, (void *)1); /* left untouched */
  assert_rc(mp_shared_memory_unlink(shm), 0);
  mp_shared_memory_free(shm);
  /* Counts and offsets that do not fit, or go backwards. */
  const struct {
    uint64_t n, off[3];
  } bad[] = {
      {UINT64_MAX, {0, 8, 16}},       /* negative count */
      {1u << 20, {0, 8, 16}},         /* more items than bytes */
      {2, {8, 16, 24}},               /* offset 0 is not 0 */
      {2, {0, 16, 8}},                /* backwards */
      {2, {0, 4, 16}},                /* slot too small */
      {2, {0, 8, 1u << 30}},          /* beyond the block */
      {2, {0, 8, 80}},                /* formats beyond the block */
  };
  for (size_t k = 0; k < MP__ARRAY_SIZE(bad); k++) {
    shm = raw_block("hdr", name, sizeof name, 96);
    unsigned char *b = mp_shared_memory_buf(shm);
    put64(b, bad[k].n);
    for (int i = 0; i < 3; i++)
      put64(b + 8 + 8 * i, bad[k].off[i]);
    assert_rc(mp_shareable_list_open(&sl, name), MP_ECORRUPT);
    assert_rc(mp_shared_memory_unlink(shm), 0);
    mp_shared_memory_free(shm);
  }
}

/* Items whose format or type code is wrong: the item read fails, the list
 * stays usable. */
static void malformed_items(void **state) {
  (void)state;
  mp_shareable_item items[] = {mp_shareable_str("abc"), mp_shareable_int(5)};
  char name[64];
  mp_shareable_list *sl = make(items, 2, "items", name, sizeof name);
  unsigned char *b = mp_shared_memory_buf(mp_shareable_list_shm(sl));
  /* Layout: N 0; offsets 8..31; data 32 (slot 0: 8 bytes, slot 1: 8);
   * formats 48; codes 64. */
  unsigned char *fmt0 = b + 48, *code0 = b + 64;
  const char *bad_formats[] = {"9s",  "zzz",     "s",        "4s9x",
                               "q\0q", "xxxxxxx", "99999999", "18446744"};
  char buf[16];
  mp_shareable_item it;
  for (size_t k = 0; k < MP__ARRAY_SIZE(bad_formats); k++) {
    memset(fmt0, 0, 8);
    memcpy(fmt0, bad_formats[k], k == 4 ? 3 : strlen(bad_formats[k]));
    assert_rc(mp_shareable_list_get(sl, 0, &it, buf, sizeof buf),
              MP_ECORRUPT);
  }
  char f[64];
  assert_int_equal(mp_shareable_list_format(sl, f, sizeof f), MP_ECORRUPT);
  memset(fmt0, 0, 8);
  memcpy(fmt0, "8s", 2); /* Python's own form: valid */
  assert_rc(mp_shareable_list_get(sl, 0, &it, buf, sizeof buf), 0);
  assert_int_equal(it.len, 3); /* trailing NULs stripped, as Python */
  *code0 = 0;                  /* a str format with the int code */
  assert_rc(mp_shareable_list_get(sl, 0, &it, buf, sizeof buf), MP_ECORRUPT);
  *code0 = 3;
  assert_rc(mp_shareable_list_get(sl, 0, &it, buf, sizeof buf), MP_ECORRUPT);
  *code0 = 0xff;
  assert_rc(mp_shareable_list_get(sl, 0, &it, buf, sizeof buf), MP_ECORRUPT);
  *code0 = 1;
  b[32] = 0xff; /* not UTF-8 */
  assert_rc(mp_shareable_list_get(sl, 0, &it, buf, sizeof buf), MP_ECORRUPT);
  mp_shareable_item q = mp_shareable_int(5);
  assert_int_equal(mp_shareable_list_count(sl, &q), 1); /* bytes compare */
  b[32] = 'a';
  b[64 + 1] = 1; /* the int slot says str */
  assert_rc(mp_shareable_list_get(sl, 1, &it, buf, sizeof buf), MP_ECORRUPT);
  assert_int_equal(mp_shareable_list_count(sl, &q), MP_ECORRUPT);
  /* Writing repairs a slot. */
  assert_rc(mp_shareable_list_set(sl, 1, &q), 0);
  assert_rc(mp_shareable_list_get(sl, 1, &it, NULL, 0), 0);
  assert_int_equal(it.i, 5);
  drop(sl);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(every_type_round_trips),
    cmocka_unit_test(layout_is_pythons),
    cmocka_unit_test(str_slot_sized_in_utf8_bytes),
    cmocka_unit_test(set_replaces_any_type),
    cmocka_unit_test(get_buffer_rules),
    cmocka_unit_test(bad_items_refused),
    cmocka_unit_test(empty_list_and_generated_name),
    cmocka_unit_test(count_and_index_like_python),
    cmocka_unit_test(between_processes),
    cmocka_unit_test(malformed_headers),
    cmocka_unit_test(malformed_items),
};

MP_TEST_MAIN(tests)
