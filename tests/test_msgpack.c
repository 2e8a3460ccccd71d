/* test_msgpack.c - the MessagePack codec (msgpack-c): round trips, how
 * tuples and map keys map, and hostile input: truncation at every byte,
 * huge announced counts and lengths, deep nesting, ext types, uint beyond
 * int64, trailing bytes. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define P(s) (const void *)(s), sizeof(s) - 1

static void unpack_expect(const void *p, size_t n, int rc, const char *want) {
  mp_obj *v = NULL;
  int got = mp_msgpack_unpackb(p, n, &v, NULL);
  if (got != rc)
    fail_msg("unpackb returned %s, expected %s (%s)", mp_err_name(got),
             mp_err_name(rc), mp_error_detail());
  if (rc != 0) {
    assert_null(v);
    return;
  }
  char *s = mp_obj_repr(v);
  assert_string_equal(s, want);
  free(s);
  mp_obj_free(v);
}

static mp_obj *sample(void) {
  mp_obj *d = mp_obj_dict();
  mp_obj_dict_set_str(d, "id", mp_obj_int(7));
  mp_obj_dict_set_str(d, "tags", mp_obj_list_pack(4, mp_obj_int(1),
                                                   mp_obj_float(2.5),
                                                   mp_obj_none(),
                                                   mp_obj_bool(1)));
  mp_obj_dict_set(d, mp_obj_int(-3), mp_obj_bytes("\x00\xff", 2));
  mp_obj_dict_set(d, mp_obj_int(INT64_MIN), mp_obj_int(INT64_MAX));
  mp_obj *big = mp_obj_list();
  for (int k = 0; k < 70000; k++)
    mp_obj_list_append(big, mp_obj_int(k));
  mp_obj_dict_set_str(d, "big", big);
  mp_obj_dict_set_str(d, "s", mp_obj_str("\xc3\xa9t\xc3\xa9"));
  return d;
}

static void roundtrip(void **state) {
  (void)state;
  mp_obj *v = sample();
  void *buf;
  size_t len;
  assert_rc(mp_msgpack_packb(v, &buf, &len, NULL), 0);
  mp_obj *w;
  assert_rc(mp_msgpack_unpackb(buf, len, &w, NULL), 0);
  assert_true(mp_obj_equal(v, w));
  mp_obj_free(w);
  free(buf);
  mp_obj_free(v);
  /* [42, None, 'hello'] is 93 2a c0 a5 'hello'. */
  v = mp_obj_list_pack(3, mp_obj_int(42), mp_obj_none(), mp_obj_str("hello"));
  assert_rc(mp_msgpack_packb(v, &buf, &len, NULL), 0);
  assert_int_equal(len, 9);
  assert_memory_equal(buf, "\x93\x2a\xc0\xa5hello", 9);
  free(buf);
  mp_obj_free(v);
}

static void tuples_are_arrays(void **state) {
  (void)state;
  mp_obj *d = mp_obj_dict();
  mp_obj_dict_set(d, mp_obj_tuple_pack(2, mp_obj_int(1), mp_obj_str("a")),
                  mp_obj_tuple_pack(1, mp_obj_int(2)));
  void *buf;
  size_t len;
  assert_rc(mp_msgpack_packb(d, &buf, &len, NULL), 0);
  mp_obj *w;
  assert_rc(mp_msgpack_unpackb(buf, len, &w, NULL), 0);
  /* The key comes back a tuple (hashable), the value a list. */
  char *s = mp_obj_repr(w);
  assert_string_equal(s, "{(1, 'a'): [2]}");
  free(s);
  mp_obj_free(w);
  free(buf);
  mp_obj_free(d);
  mp_obj *inst = mp_obj_global("builtins", "KeyError");
  assert_rc(mp_msgpack_packb(inst, &buf, &len, NULL), MP_ENOTSUP);
  mp_obj_free(inst);
  mp_obj *deep = mp_obj_list();
  for (int k = 0; k < 20; k++)
    deep = mp_obj_list_pack(1, deep);
  mp_msgpack_opts o = {.max_depth = 10};
  assert_rc(mp_msgpack_packb(deep, &buf, &len, &o), MP_ETOOBIG);
  mp_obj_free(deep);
  assert_rc(mp_msgpack_packb(NULL, &buf, &len, NULL), MP_EINVAL);
}

static void hostile_input_is_refused(void **state) {
  (void)state;
  /* Truncation at every byte. */
  mp_obj *v = sample();
  void *buf;
  size_t len;
  assert_rc(mp_msgpack_packb(v, &buf, &len, NULL), 0);
  for (size_t n = 0; n < len; n += (n < 200 ? 1 : 4099)) {
    mp_obj *w = NULL;
    int rc = mp_msgpack_unpackb(buf, n, &w, NULL);
    if (rc != MP_EPROTO)
      fail_msg("cut at %zu: %s", n, mp_err_name(rc));
  }
  free(buf);
  mp_obj_free(v);
  /* Huge announced counts and lengths: refused before msgpack-c
   * allocates. */
  unpack_expect(P("\xdd\xff\xff\xff\xff"), MP_EPROTO, NULL);
  unpack_expect(P("\xdf\xff\xff\xff\xff\x01"), MP_EPROTO, NULL);
  unpack_expect(P("\xc6\xff\xff\xff\xff"), MP_EPROTO, NULL);
  unpack_expect(P("\xdb\x7f\xff\xff\xff"), MP_EPROTO, NULL);
  /* Deeper than msgpack-c's 32 levels. */
  char deep[100];
  memset(deep, 0x91, 99);
  deep[99] = (char)0xc0;
  unpack_expect(deep, sizeof deep, MP_ETOOBIG, NULL);
  unpack_expect(deep + 99 - 33, 34, MP_ETOOBIG, NULL);
  unpack_expect(deep + 99 - 32, 33, 0, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[None]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
  unpack_expect(deep + 80, 20, 0,
                "[[[[[[[[[[[[[[[[[[[None]]]]]]]]]]]]]]]]]]]");
  /* Ext, uint beyond int64, bad UTF-8, unhashable key, trailing bytes. */
  unpack_expect(P("\xd4\x01\x00"), MP_EPROTO, NULL);
  unpack_expect(P("\xcf\x80\x00\x00\x00\x00\x00\x00\x00"), MP_EOVERFLOW, NULL);
  unpack_expect(P("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"), 0,
                "9223372036854775807");
  unpack_expect(P("\xa1\xff"), MP_EINVAL, NULL);
  unpack_expect(P("\x81\x80\x01"), MP_EINVAL, NULL);
  unpack_expect(P("\xc0\xc0"), MP_EPROTO, NULL);
  unpack_expect(P("\xc1"), MP_EPROTO, NULL);
  unpack_expect("", 0, MP_EPROTO, NULL);
  unpack_expect(P("\xca\x3f\xc0\x00\x00"), 0, "1.5"); /* float 32 */
  unpack_expect(P("\x82\x01\xa1" "a\x01\xa1" "b"), 0, "{1: 'b'}");
  mp_msgpack_opts few = {.max_nodes = 3};
  mp_obj *w;
  assert_rc(mp_msgpack_unpackb("\x94\x01\x02\x03\x04", 5, &w, &few),
            MP_ETOOBIG);
  assert_rc(mp_msgpack_unpackb(NULL, 0, &w, NULL), MP_EINVAL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(roundtrip),
    cmocka_unit_test(tuples_are_arrays),
    cmocka_unit_test(hostile_input_is_refused),
};

MP_TEST_MAIN(tests)
