/* test_obj.c - the dynamic value mp_obj: building and typed access, list
 * and dict operations, Python's equality and hashing (1 == 1.0 == True),
 * deep copy, Python's repr, allocation failures, and values on a Pipe, a
 * Queue and a ShareableList. The codecs have their own suites
 * (test_pickle.c, test_msgpack.c); Python on the other end is in
 * tests/interop/test_interop_obj.c. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h" /* mp__alloc_fail_after */

static void assert_repr(const mp_obj *o, const char *want) {
  assert_non_null(o);
  char *s = mp_obj_repr(o);
  assert_non_null(s);
  assert_string_equal(s, want);
  free(s);
}

/* check_repr frees o after comparing. */
static void check_repr(mp_obj *o, const char *want) {
  assert_repr(o, want);
  mp_obj_free(o);
}

static void build_and_typed_access(void **state) {
  (void)state;
  mp_obj *i = mp_obj_int(-5), *b = mp_obj_bool(7), *f = mp_obj_float(2.5);
  mp_obj *s = mp_obj_str("h\xc3\xa9"), *y = mp_obj_bytes("a\0b", 3);
  mp_obj *n = mp_obj_none();
  int64_t iv;
  double fv;
  int bv;
  const char *sv;
  const void *yv;
  size_t len;
  assert_int_equal(mp_obj_type_of(i), MP_OBJ_INT);
  assert_string_equal(mp_obj_type_name(n), "NoneType");
  assert_string_equal(mp_obj_type_name(b), "bool");
  assert_rc(mp_obj_get_int(i, &iv), 0);
  assert_int_equal(iv, -5);
  assert_rc(mp_obj_get_int(b, &iv), 0); /* a bool is an int */
  assert_int_equal(iv, 1);
  assert_rc(mp_obj_get_bool(b, &bv), 0);
  assert_int_equal(bv, 1);
  assert_rc(mp_obj_get_float(i, &fv), 0);
  assert_true(fv == -5.0);
  assert_rc(mp_obj_get_float(f, &fv), 0);
  assert_true(fv == 2.5);
  assert_rc(mp_obj_get_str(s, &sv, &len), 0);
  assert_int_equal(len, 3);
  assert_string_equal(sv, "h\xc3\xa9");
  assert_int_equal(mp_obj_len(s), 2); /* code points */
  assert_rc(mp_obj_get_bytes(y, &yv, &len), 0);
  assert_int_equal(len, 3);
  assert_memory_equal(yv, "a\0b", 3);
  assert_int_equal(mp_obj_len(y), 3);
  assert_true(mp_obj_is_none(n));
  assert_false(mp_obj_is_none(i));
  /* Wrong kinds: MP_EINVAL with a detail, out untouched. */
  iv = 99;
  assert_rc(mp_obj_get_int(s, &iv), MP_EINVAL);
  assert_string_equal(mp_error_detail(), "expected int, got str");
  assert_int_equal(iv, 99);
  assert_rc(mp_obj_get_bool(i, &bv), MP_EINVAL);
  assert_rc(mp_obj_get_float(s, &fv), MP_EINVAL);
  assert_rc(mp_obj_get_str(y, &sv, NULL), MP_EINVAL);
  assert_rc(mp_obj_get_bytes(s, &yv, NULL), MP_EINVAL);
  assert_rc(mp_obj_get_int(NULL, &iv), MP_EINVAL);
  assert_rc((int)mp_obj_len(i), MP_EINVAL);
  assert_string_equal(mp_error_detail(), "object of type 'int' has no len()");
  assert_int_equal(mp_obj_type_of(NULL), 0);
  mp_obj *objs[] = {i, b, f, s, y, n};
  for (size_t k = 0; k < 6; k++)
    mp_obj_free(objs[k]);
  mp_obj_free(NULL);
}

static void str_must_be_utf8(void **state) {
  (void)state;
  const char *bad[] = {"\xc0\x80",         /* overlong NUL */
                       "\xed\xa0\x80",     /* surrogate U+D800 */
                       "\xf4\x90\x80\x80", /* above U+10FFFF */
                       "\xe2\x82",         /* truncated */
                       "\x80",             /* lone continuation */
                       "\xff"};
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    assert_null(mp_obj_str(bad[k]));
    assert_int_equal(mp_error_code(), MP_EINVAL);
  }
  assert_null(mp_obj_str(NULL));
  mp_obj *ok = mp_obj_str_len("a\0\xf0\x9f\x98\x80", 6);
  assert_non_null(ok);
  assert_int_equal(mp_obj_len(ok), 3);
  check_repr(ok, "'a\\x00\xf0\x9f\x98\x80'");
}

static void list_append_get_set_index(void **state) {
  (void)state;
  mp_obj *l = mp_obj_list();
  for (int k = 0; k < 100; k++)
    assert_rc(mp_obj_list_append(l, mp_obj_int(k)), 0);
  assert_int_equal(mp_obj_len(l), 100);
  int64_t v;
  assert_rc(mp_obj_get_int(mp_obj_list_get(l, -1), &v), 0);
  assert_int_equal(v, 99);
  assert_rc(mp_obj_get_int(mp_obj_list_get(l, 10), &v), 0);
  assert_int_equal(v, 10);
  assert_null(mp_obj_list_get(l, 100));
  assert_int_equal(mp_error_code(), MP_ERANGE);
  assert_null(mp_obj_list_get(l, -101));
  assert_int_equal(mp_error_code(), MP_ERANGE);
  assert_rc(mp_obj_list_set(l, -100, mp_obj_str("first")), 0);
  assert_rc(mp_obj_list_set(l, 100, mp_obj_str("x")), MP_ERANGE);
  mp_obj *key = mp_obj_float(50.0); /* 50.0 == 50 */
  assert_int_equal(mp_obj_list_index(l, key), 50);
  mp_obj_free(key);
  key = mp_obj_str("nope");
  assert_rc((int)mp_obj_list_index(l, key), MP_EVALUE);
  mp_obj_free(key);
  /* Not a list: the item is freed all the same (ASan checks). */
  mp_obj *i = mp_obj_int(1);
  assert_rc(mp_obj_list_append(i, mp_obj_int(2)), MP_EINVAL);
  assert_rc(mp_obj_list_append(l, NULL), MP_ENOMEM);
  mp_obj *t = mp_obj_tuple_pack(2, mp_obj_int(1), mp_obj_int(2));
  assert_rc(mp_obj_list_append(t, mp_obj_int(3)), MP_EINVAL); /* immutable */
  assert_non_null(mp_obj_list_get(t, 1));
  assert_int_equal(mp_obj_list_index(t, i), 0);
  mp_obj_free(t);
  mp_obj_free(i);
  mp_obj_free(l);
}

static void pack_with_missing_item_frees_the_rest(void **state) {
  (void)state;
  assert_null(mp_obj_list_pack(3, mp_obj_int(1), NULL, mp_obj_str("x")));
  assert_int_equal(mp_error_code(), MP_ENOMEM);
  assert_null(mp_obj_tuple_pack(2, NULL, mp_obj_str("x")));
  mp_obj *items[2] = {mp_obj_int(1), NULL};
  assert_null(mp_obj_tuple_from(2, items));
  assert_null(mp_obj_instance(mp_obj_int(1), mp_obj_tuple_pack(0), NULL, 0));
  assert_int_equal(mp_error_code(), MP_EINVAL);
  mp_obj *d = mp_obj_dict();
  assert_rc(mp_obj_dict_set(d, NULL, mp_obj_int(1)), MP_ENOMEM);
  assert_rc(mp_obj_dict_set(d, mp_obj_int(1), NULL), MP_ENOMEM);
  assert_int_equal(mp_obj_len(d), 0);
  mp_obj_free(d);
}

static void dict_set_get_del_iterate(void **state) {
  (void)state;
  mp_obj *d = mp_obj_dict();
  char key[32];
  /* Past the linear size, with deletions, so the index and holes work. */
  for (int k = 0; k < 1000; k++) {
    snprintf(key, sizeof key, "k%d", k);
    assert_rc(mp_obj_dict_set_str(d, key, mp_obj_int(k)), 0);
  }
  for (int k = 0; k < 1000; k += 3) {
    snprintf(key, sizeof key, "k%d", k);
    mp_obj *ko = mp_obj_str(key);
    assert_rc(mp_obj_dict_del(d, ko), 0);
    assert_rc(mp_obj_dict_del(d, ko), MP_ENOENT);
    mp_obj_free(ko);
  }
  assert_int_equal(mp_obj_len(d), 1000 - 334);
  for (int k = 0; k < 1000; k++) {
    snprintf(key, sizeof key, "k%d", k);
    mp_obj *v = mp_obj_dict_get_str(d, key);
    if (k % 3 == 0) {
      assert_null(v);
      assert_int_equal(mp_error_code(), MP_ENOENT);
    } else {
      int64_t iv;
      assert_rc(mp_obj_get_int(v, &iv), 0);
      assert_int_equal(iv, k);
    }
  }
  /* Insertion order, holes skipped; re-adding goes to the end. */
  assert_rc(mp_obj_dict_set_str(d, "k0", mp_obj_int(-1)), 0);
  size_t pos = 0, count = 0;
  mp_obj *k, *v;
  int64_t prev = -1, iv;
  while (mp_obj_dict_next(d, &pos, &k, &v) == 1) {
    assert_rc(mp_obj_get_int(v, &iv), 0);
    if (iv != -1) {
      assert_true(iv > prev);
      prev = iv;
    } else {
      assert_int_equal(count, 1000 - 334); /* last */
    }
    count++;
  }
  assert_int_equal(count, 1000 - 333);
  mp_obj_free(d);
}

static void dict_keys_follow_python_equality(void **state) {
  (void)state;
  mp_obj *d = mp_obj_dict();
  assert_rc(mp_obj_dict_set(d, mp_obj_int(1), mp_obj_str("int")), 0);
  assert_rc(mp_obj_dict_set(d, mp_obj_float(1.0), mp_obj_str("float")), 0);
  assert_rc(mp_obj_dict_set(d, mp_obj_bool(1), mp_obj_str("bool")), 0);
  assert_rc(mp_obj_dict_set(d, mp_obj_str("1"), mp_obj_str("str")), 0);
  assert_rc(mp_obj_dict_set(d, mp_obj_bytes("1", 1), mp_obj_str("bytes")), 0);
  assert_rc(mp_obj_dict_set(d, mp_obj_none(), mp_obj_int(0)), 0);
  assert_rc(mp_obj_dict_set(d, mp_obj_tuple_pack(2, mp_obj_int(1),
                                                 mp_obj_float(2.0)),
                            mp_obj_int(2)),
            0);
  /* Python: {1: 'bool', '1': 'str', b'1': 'bytes', None: 0, (1, 2.0): 2} */
  assert_repr(d, "{1: 'bool', '1': 'str', b'1': 'bytes', None: 0, "
                 "(1, 2.0): 2}");
  mp_obj *t = mp_obj_tuple_pack(2, mp_obj_bool(1), mp_obj_int(2));
  assert_non_null(mp_obj_dict_get(d, t)); /* (True, 2) == (1, 2.0) */
  mp_obj_free(t);
  /* Unhashable keys. */
  assert_rc(mp_obj_dict_set(d, mp_obj_list(), mp_obj_int(1)), MP_EINVAL);
  assert_string_equal(mp_error_detail(), "unhashable type: 'list'");
  assert_rc(mp_obj_dict_set(d, mp_obj_tuple_pack(1, mp_obj_dict()),
                            mp_obj_int(1)),
            MP_EINVAL);
  mp_obj *l = mp_obj_list();
  assert_null(mp_obj_dict_get(d, l));
  assert_int_equal(mp_error_code(), MP_EINVAL);
  assert_null(mp_obj_dict_get(l, l));
  assert_int_equal(mp_error_code(), MP_EINVAL);
  size_t pos = 0;
  assert_rc(mp_obj_dict_next(l, &pos, NULL, NULL), MP_EINVAL);
  mp_obj_free(l);
  mp_obj_free(d);
}

static void equality_is_pythons(void **state) {
  (void)state;
  struct {
    mp_obj *a, *b;
    int eq;
  } cases[] = {
      {mp_obj_int(1), mp_obj_float(1.0), 1},
      {mp_obj_int(1), mp_obj_bool(1), 1},
      {mp_obj_int(0), mp_obj_bool(0), 1},
      {mp_obj_float(0.5), mp_obj_int(0), 0},
      {mp_obj_int(INT64_MAX), mp_obj_float(9223372036854775807.0), 0},
      {mp_obj_int(INT64_MIN), mp_obj_float(-9223372036854775808.0), 1},
      {mp_obj_int((1LL << 53) + 1), mp_obj_float(9007199254740992.0), 0},
      {mp_obj_float(NAN), mp_obj_float(NAN), 0},
      {mp_obj_float(-0.0), mp_obj_float(0.0), 1},
      {mp_obj_str("a"), mp_obj_bytes("a", 1), 0},
      {mp_obj_none(), mp_obj_none(), 1},
      {mp_obj_none(), mp_obj_int(0), 0},
      {mp_obj_list_pack(2, mp_obj_int(1), mp_obj_int(2)),
       mp_obj_tuple_pack(2, mp_obj_int(1), mp_obj_int(2)), 0},
      {mp_obj_list_pack(2, mp_obj_int(1), mp_obj_int(2)),
       mp_obj_list_pack(2, mp_obj_float(1), mp_obj_bool(0)), 0},
      {mp_obj_list_pack(1, mp_obj_int(1)),
       mp_obj_list_pack(1, mp_obj_float(1)), 1},
      {mp_obj_global("builtins", "KeyError"),
       mp_obj_global("builtins", "KeyError"), 1},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    if (mp_obj_equal(cases[k].a, cases[k].b) != cases[k].eq)
      fail_msg("case %zu: expected %d", k, cases[k].eq);
    assert_int_equal(mp_obj_equal(cases[k].b, cases[k].a), cases[k].eq);
    mp_obj_free(cases[k].a);
    mp_obj_free(cases[k].b);
  }
  /* Dicts regardless of order. */
  mp_obj *d1 = mp_obj_dict(), *d2 = mp_obj_dict();
  mp_obj_dict_set_str(d1, "a", mp_obj_int(1));
  mp_obj_dict_set_str(d1, "b", mp_obj_int(2));
  mp_obj_dict_set_str(d2, "b", mp_obj_float(2));
  mp_obj_dict_set_str(d2, "a", mp_obj_int(1));
  assert_true(mp_obj_equal(d1, d2));
  mp_obj_dict_set_str(d2, "a", mp_obj_int(3));
  assert_false(mp_obj_equal(d1, d2));
  assert_true(mp_obj_equal(NULL, NULL));
  assert_false(mp_obj_equal(d1, NULL));
  mp_obj_free(d1);
  mp_obj_free(d2);
}

static void hash_is_pythons_for_numbers_and_tuples(void **state) {
  (void)state;
  /* The values Python 3 (64-bit) prints for hash(x). */
  struct {
    mp_obj *o;
    int64_t h;
  } cases[] = {
      {mp_obj_int(1), 1},
      {mp_obj_float(1.0), 1},
      {mp_obj_bool(1), 1},
      {mp_obj_int(-1), -2},
      {mp_obj_float(0.5), 1152921504606846976LL},
      {mp_obj_float(1.5), 1152921504606846977LL},
      {mp_obj_float(-1.5), -1152921504606846977LL},
      {mp_obj_float(1e100), 1822893315824342674LL},
      {mp_obj_int((1LL << 61) - 1), 0},
      {mp_obj_int(INT64_MIN), -4},
      {mp_obj_int(INT64_MAX), 3},
      {mp_obj_float(INFINITY), 314159},
      {mp_obj_tuple_pack(2, mp_obj_int(1), mp_obj_int(2)),
       -3550055125485641917LL},
      {mp_obj_tuple_pack(0), 5740354900026072187LL},
      {mp_obj_tuple_pack(2, mp_obj_int(1),
                         mp_obj_tuple_pack(2, mp_obj_float(2.0),
                                           mp_obj_bool(1))),
       -4611342422644790818LL},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    int64_t h;
    assert_rc(mp_obj_hash(cases[k].o, &h), 0);
    if (h != cases[k].h)
      fail_msg("case %zu: hash %lld, Python's %lld", k, (long long)h,
               (long long)cases[k].h);
    mp_obj_free(cases[k].o);
  }
  /* Equal str values hash equal; unhashable kinds refuse. */
  mp_obj *a = mp_obj_str("abc"), *b = mp_obj_str("abc"), *l = mp_obj_list();
  int64_t ha, hb;
  assert_rc(mp_obj_hash(a, &ha), 0);
  assert_rc(mp_obj_hash(b, &hb), 0);
  assert_true(ha == hb);
  assert_rc(mp_obj_hash(l, &ha), MP_EINVAL);
  assert_rc(mp_obj_hash(NULL, &ha), MP_EINVAL);
  mp_obj_free(a);
  mp_obj_free(b);
  mp_obj_free(l);
}

static void repr_is_pythons(void **state) {
  (void)state;
  check_repr(mp_obj_list_pack(3, mp_obj_int(42), mp_obj_none(),
                              mp_obj_str("hello")),
             "[42, None, 'hello']");
  /* Floats: the strings Python 3 prints for these values. */
  const double fv[] = {1.0,    1e16,     1e15,      0.1,     1e-5,
                       0.0001, -0.0,     1.5e300,   123.456, 1e22,
                       5e-324, 2.5,      INFINITY,  -INFINITY, NAN,
                       1.0 / 3, 9007199254740993.0, 0.1 + 0.2, 1e-7,
                       12345678901234567890.0};
  const char *fr[] = {"1.0",    "1e+16",   "1000000000000000.0", "0.1",
                      "1e-05",  "0.0001",  "-0.0",   "1.5e+300", "123.456",
                      "1e+22",  "5e-324",  "2.5",    "inf",      "-inf",
                      "nan",    "0.3333333333333333", "9007199254740992.0",
                      "0.30000000000000004", "1e-07",
                      "1.2345678901234567e+19"};
  for (size_t k = 0; k < sizeof fv / sizeof *fv; k++)
    check_repr(mp_obj_float(fv[k]), fr[k]);
  check_repr(mp_obj_int(INT64_MIN), "-9223372036854775808");
  check_repr(mp_obj_bool(0), "False");
  /* Strings: quote choice and escapes. */
  check_repr(mp_obj_str("it's"), "\"it's\"");
  check_repr(mp_obj_str("say \"hi\""), "'say \"hi\"'");
  check_repr(mp_obj_str("both ' \""), "'both \\' \"'");
  check_repr(mp_obj_str("t\tn\nr\r\x01\x7f\\"), "'t\\tn\\nr\\r\\x01\\x7f\\\\'");
  check_repr(mp_obj_str("\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"),
             "'\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80'");
  check_repr(mp_obj_str("\xc2\x85\xc2\xa0\xc2\xad\xe2\x80\x8b\xe2\x80\xa8"
                        "\xee\x80\x80\xf3\xa0\x80\x81"),
             "'\\x85\\xa0\\xad\\u200b\\u2028\\ue000\\U000e0001'");
  check_repr(mp_obj_str(""), "''");
  check_repr(mp_obj_bytes("a'\0\xff\"", 5), "b'a\\'\\x00\\xff\"'");
  check_repr(mp_obj_bytes("it's", 4), "b\"it's\"");
  check_repr(mp_obj_bytes(NULL, 0), "b''");
  /* Containers. */
  check_repr(mp_obj_tuple_pack(0), "()");
  check_repr(mp_obj_tuple_pack(1, mp_obj_int(1)), "(1,)");
  check_repr(mp_obj_list(), "[]");
  check_repr(mp_obj_dict(), "{}");
  mp_obj *d = mp_obj_dict();
  mp_obj_dict_set_str(d, "id", mp_obj_int(7));
  mp_obj_dict_set_str(d, "name", mp_obj_str("yuan"));
  mp_obj_dict_set_str(d, "tags", mp_obj_list_pack(3, mp_obj_int(1),
                                                   mp_obj_float(2.5),
                                                   mp_obj_none()));
  check_repr(d, "{'id': 7, 'name': 'yuan', 'tags': [1, 2.5, None]}");
  assert_null(mp_obj_repr(NULL));
  assert_int_equal(mp_error_code(), MP_EINVAL);
}

static void global_and_instance(void **state) {
  (void)state;
  mp_obj *e = mp_obj_instance(mp_obj_global("builtins", "KeyError"),
                              mp_obj_tuple_pack(1, mp_obj_str("x")), NULL, 0);
  assert_repr(e, "KeyError('x')");
  const char *m, *q;
  assert_rc(mp_obj_global_name(e, &m, &q), 0);
  assert_string_equal(m, "builtins");
  assert_string_equal(q, "KeyError");
  assert_int_equal(mp_obj_instance_newobj(e), 0);
  assert_null(mp_obj_instance_state(e));
  assert_int_equal(mp_obj_len(mp_obj_instance_args(e)), 1);
  int64_t h;
  assert_rc(mp_obj_hash(e, &h), MP_EINVAL);
  mp_obj *c = mp_obj_copy(e);
  assert_true(mp_obj_equal(e, c));
  mp_obj_free(c);
  mp_obj_free(e);
  mp_obj *t = mp_obj_instance(
      mp_obj_global("multiprocessing.managers", "Token"), mp_obj_tuple_pack(0),
      mp_obj_tuple_pack(3, mp_obj_str("dict"), mp_obj_str("/tmp/s"),
                        mp_obj_str("7f")),
      1);
  assert_repr(t, "multiprocessing.managers.Token() with state ('dict', "
                 "'/tmp/s', '7f')");
  assert_int_equal(mp_obj_instance_newobj(t), 1);
  assert_non_null(mp_obj_instance_state(t));
  mp_obj_free(t);
  check_repr(mp_obj_global("multiprocessing.managers", "DictProxy"),
             "multiprocessing.managers.DictProxy");
  assert_null(mp_obj_global("os", "a\nb"));
  assert_int_equal(mp_error_code(), MP_EINVAL);
  assert_null(mp_obj_global("", "x"));
  mp_obj *i = mp_obj_int(1);
  assert_rc(mp_obj_global_name(i, &m, &q), MP_EINVAL);
  assert_null(mp_obj_instance_args(i));
  assert_null(mp_obj_instance_state(i));
  assert_rc(mp_obj_instance_newobj(i), MP_EINVAL);
  assert_null(mp_obj_instance(mp_obj_global("a", "b"), mp_obj_list(), NULL,
                              0));
  assert_int_equal(mp_error_code(), MP_EINVAL);
  mp_obj_free(i);
}

static void copy_is_deep(void **state) {
  (void)state;
  mp_obj *d = mp_obj_dict();
  mp_obj_dict_set_str(d, "l", mp_obj_list_pack(2, mp_obj_int(1),
                                               mp_obj_bytes("x", 1)));
  mp_obj_dict_set(d, mp_obj_tuple_pack(1, mp_obj_none()), mp_obj_float(1.5));
  mp_obj *c = mp_obj_copy(d);
  assert_true(mp_obj_equal(d, c));
  assert_rc(mp_obj_list_append(mp_obj_dict_get_str(c, "l"), mp_obj_int(3)), 0);
  assert_false(mp_obj_equal(d, c));
  assert_int_equal(mp_obj_len(mp_obj_dict_get_str(d, "l")), 2);
  mp_obj_free(d);
  mp_obj_free(c);
  assert_null(mp_obj_copy(NULL));
}

static void print_writes_str_or_repr(void **state) {
  (void)state;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  assert_non_null(f);
  mp_obj *s = mp_obj_str("hello"), *l = mp_obj_list_pack(1, mp_obj_str("a"));
  assert_rc(mp_obj_print(f, s), 0);
  assert_rc(mp_obj_print(f, l), 0);
  assert_rc(mp_obj_print(NULL, l), MP_EINVAL);
  fclose(f);
  assert_string_equal(text, "hello\n['a']\n");
  free(text);
  mp_obj_free(s);
  mp_obj_free(l);
}

/* Every allocation of building, copying, printing and both codecs fails
 * in turn: each call fails cleanly (ASan checks for leaks) or succeeds. */
static mp_obj *build_sample(void) {
  mp_obj *d = mp_obj_dict();
  for (int k = 0; k < 12; k++) {
    char key[8];
    snprintf(key, sizeof key, "k%d", k);
    if (mp_obj_dict_set_str(d, key, mp_obj_list_pack(2, mp_obj_int(k),
                                                     mp_obj_str("v"))) < 0) {
      mp_obj_free(d);
      return NULL;
    }
  }
  return d;
}

static void allocation_failures_are_clean(void **state) {
  (void)state;
  mp_obj *ref = build_sample();
  assert_non_null(ref);
  void *pk;
  size_t pklen;
  assert_rc(mp_pickle_dumps(ref, &pk, &pklen, NULL), 0);
  void *mk;
  size_t mklen;
  assert_rc(mp_msgpack_packb(ref, &mk, &mklen, NULL), 0);
  int successes = 0;
  for (long n = 1; n < 400; n++) {
    mp__alloc_fail_after(n);
    mp_obj *v = build_sample();
    mp_obj *c = v ? mp_obj_copy(v) : NULL;
    char *r = c ? mp_obj_repr(c) : NULL;
    mp_obj *p = NULL, *m = NULL;
    int prc = mp_pickle_loads(pk, pklen, &p, NULL);
    int mrc = mp_msgpack_unpackb(mk, mklen, &m, NULL);
    void *out = NULL;
    size_t outlen;
    int drc = mp_pickle_dumps(ref, &out, &outlen, NULL);
    mp__alloc_fail_after(0);
    assert_true(prc == 0 || prc == MP_ENOMEM);
    assert_true(mrc == 0 || mrc == MP_ENOMEM);
    assert_true(drc == 0 || drc == MP_ENOMEM);
    if (prc == 0)
      assert_true(mp_obj_equal(p, ref));
    if (mrc == 0)
      assert_true(mp_obj_equal(m, ref));
    if (v && c && r && prc == 0 && mrc == 0 && drc == 0)
      successes++;
    free(out);
    free(r);
    mp_obj_free(v);
    mp_obj_free(c);
    mp_obj_free(p);
    mp_obj_free(m);
  }
  assert_true(successes > 0); /* the countdown passed everything at last */
  free(pk);
  free(mk);
  mp_obj_free(ref);
}

/* conn.send/recv between two C ends, and a message that is not a pickle:
 * refused, consumed, and the stream stays in step. */
static void send_recv_on_a_pipe(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  mp_obj *v = mp_obj_list_pack(3, mp_obj_int(42), mp_obj_none(),
                               mp_obj_str("hello"));
  assert_rc(mp_connection_send(a, v), 0);
  assert_rc(mp_connection_send_bytes(a, "garbage", 0, 7), 0);
  assert_rc(mp_connection_send_msgpack(a, v), 0);
  assert_rc(mp_connection_send(a, v), 0);
  mp_obj *got;
  assert_rc(mp_connection_recv(b, &got), 0);
  assert_repr(got, "[42, None, 'hello']");
  mp_obj_free(got);
  assert_rc(mp_connection_recv(b, &got), MP_EPROTO);
  assert_rc(mp_connection_recv_msgpack(b, &got), 0);
  assert_true(mp_obj_equal(got, v));
  mp_obj_free(got);
  /* Over the caller's limit: refused, left unread, then taken. */
  assert_rc(mp_connection_recv_ex(b, &got, 4, NULL), MP_ETOOBIG);
  assert_rc(mp_connection_recv_ex(b, &got, MP_CONNECTION_NO_LIMIT, NULL), 0);
  mp_obj_free(got);
  mp_connection_close(a);
  assert_rc(mp_connection_recv(b, &got), MP_ECLOSED);
  assert_rc(mp_connection_recv(NULL, &got), MP_EINVAL);
  assert_rc(mp_connection_send(NULL, v), MP_EINVAL);
  assert_rc(mp_connection_send_msgpack(NULL, v), MP_EINVAL);
  assert_rc(mp_connection_recv_msgpack(b, NULL), MP_EINVAL);
  mp_obj_free(v);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* big_nested is a list of n small dicts nested three deep: its pickle
 * outgrows the encoder's stack buffer (1 KiB) and the decoder's first
 * stack, mark and memo arrays. */
static mp_obj *big_nested(int n) {
  mp_obj *l = mp_obj_list();
  for (int i = 0; l != NULL && i < n; i++) {
    mp_obj *d = mp_obj_dict();
    mp_obj_dict_set_str(d, "id", mp_obj_int(i));
    mp_obj_dict_set_str(d, "tags", mp_obj_list_pack(2, mp_obj_str("x"),
                                                     mp_obj_list_pack(1, mp_obj_none())));
    if (mp_obj_list_append(l, d) != 0) {
      mp_obj_free(l);
      return NULL;
    }
  }
  return l;
}

/* A value whose pickle outgrows the stack buffer of mp_connection_send and
 * mp_queue_put_obj is sent whole; when memory runs out while it grows,
 * the send fails with MP_ENOMEM, nothing is written, and the stream stays
 * in step. */
static void send_large_and_out_of_memory(void **state) {
  (void)state;
  mp_connection *a, *b;
  assert_rc(mp_pipe(&a, &b, 1), 0);
  mp_obj *v = big_nested(200);
  assert_non_null(v);
  void *pk;
  size_t pklen;
  assert_rc(mp_pickle_dumps(v, &pk, &pklen, NULL), 0);
  assert_true(pklen > 4096);
  free(pk);
  assert_rc(mp_connection_send(a, v), 0);
  mp_obj *got;
  assert_rc(mp_connection_recv(b, &got), 0);
  assert_true(mp_obj_equal(got, v));
  mp_obj_free(got);
  /* The first allocation is the move off the stack buffer. */
  mp__alloc_fail_after(1);
  int rc = mp_connection_send(a, v);
  mp__alloc_fail_after(0);
  assert_rc(rc, MP_ENOMEM);
  assert_rc(mp_connection_poll(b, 0), 0); /* nothing was written */
  mp_obj *small = mp_obj_list_pack(1, mp_obj_int(1));
  assert_rc(mp_connection_send(a, small), 0);
  assert_rc(mp_connection_recv(b, &got), 0);
  assert_true(mp_obj_equal(got, small));
  mp_obj_free(got);
  mp_queue *q;
  assert_rc(mp_queue_new(&q, NULL), 0);
  mp__alloc_fail_after(1);
  rc = mp_queue_put_obj(q, v, 0);
  mp__alloc_fail_after(0);
  assert_rc(rc, MP_ENOMEM);
  assert_rc(mp_queue_put_obj(q, v, 0), 0);
  assert_rc(mp_queue_get_obj(q, &got, 0), 0);
  assert_true(mp_obj_equal(got, v));
  mp_obj_free(got);
  mp_queue_free(q);
  mp_obj_free(small);
  mp_obj_free(v);
  mp_connection_free(a);
  mp_connection_free(b);
}

/* The decoder's first arrays live in its frame; a pickle that outgrows
 * them moves them to the heap, and running out of memory at any point of
 * that is MP_ENOMEM with nothing leaked. */
static void decoder_outgrows_its_first_arrays(void **state) {
  (void)state;
  mp_obj *v = big_nested(40);
  assert_non_null(v);
  void *pk;
  size_t pklen;
  assert_rc(mp_pickle_dumps(v, &pk, &pklen, NULL), 0);
  int ok = 0;
  for (long n = 1; n < 2000 && ok < 3; n++) {
    mp__alloc_fail_after(n);
    mp_obj *got = NULL;
    int rc = mp_pickle_loads(pk, pklen, &got, NULL);
    mp__alloc_fail_after(0);
    assert_true(rc == 0 || rc == MP_ENOMEM);
    if (rc == 0) {
      assert_true(mp_obj_equal(got, v));
      ok++;
    }
    mp_obj_free(got);
  }
  assert_true(ok > 0);
  free(pk);
  mp_obj_free(v);
}

/* The seeds' q.put([42, None, 'hello']) from a child, printed by the
 * parent. */
static void put_get_on_a_queue(void **state) {
  (void)state;
  mp_queue *q;
  assert_rc(mp_queue_new(&q, NULL), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    mp_obj *v = mp_obj_list_pack(3, mp_obj_int(42), mp_obj_none(),
                                 mp_obj_str("hello"));
    int rc = mp_queue_put_obj(q, v, MP_FOREVER);
    mp_obj_free(v);
    _exit(rc == 0 ? 0 : 1);
  }
  mp_obj *got;
  assert_rc(mp_queue_get_obj(q, &got, mp_test_slack(10)), 0);
  assert_repr(got, "[42, None, 'hello']");
  mp_obj_free(got);
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  assert_rc(mp_queue_get_obj(q, &got, 0), MP_EAGAIN);
  /* A message that is not a pickle is taken and refused. */
  assert_rc(mp_queue_put(q, "garbage", 7, 0), 0);
  assert_rc(mp_queue_get_obj(q, &got, 0), MP_EPROTO);
  assert_rc(mp_queue_get_obj(q, &got, 0), MP_EAGAIN);
  assert_rc(mp_queue_put_obj(NULL, got, 0), MP_EINVAL);
  mp_queue_free(q);
}

static void shareable_list_item_as_value(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "slobj");
  mp_shareable_item items[] = {mp_shareable_int(-3), mp_shareable_float(2.5),
                               mp_shareable_bool(1), mp_shareable_none(),
                               mp_shareable_str("it's"),
                               mp_shareable_bytes("\x00\x01", 2)};
  mp_shareable_list *sl;
  assert_rc(mp_shareable_list_new(&sl, items, 6, name, NULL), 0);
  const char *want[] = {"-3", "2.5", "True", "None", "\"it's\"",
                        "b'\\x00\\x01'"};
  for (int k = 0; k < 6; k++) {
    mp_obj *o;
    assert_rc(mp_shareable_list_get_obj(sl, k, &o), 0);
    check_repr(o, want[k]);
  }
  mp_obj *o;
  assert_rc(mp_shareable_list_get_obj(sl, -1, &o), 0);
  assert_int_equal(mp_obj_type_of(o), MP_OBJ_BYTES);
  mp_obj_free(o);
  assert_rc(mp_shareable_list_get_obj(sl, 6, &o), MP_ERANGE);
  assert_rc(mp_shareable_list_get_obj(NULL, 0, &o), MP_EINVAL);
  mp_shared_memory_unlink(mp_shareable_list_shm(sl));
  mp_shareable_list_free(sl);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(build_and_typed_access),
    cmocka_unit_test(str_must_be_utf8),
    cmocka_unit_test(list_append_get_set_index),
    cmocka_unit_test(pack_with_missing_item_frees_the_rest),
    cmocka_unit_test(dict_set_get_del_iterate),
    cmocka_unit_test(dict_keys_follow_python_equality),
    cmocka_unit_test(equality_is_pythons),
    cmocka_unit_test(hash_is_pythons_for_numbers_and_tuples),
    cmocka_unit_test(repr_is_pythons),
    cmocka_unit_test(global_and_instance),
    cmocka_unit_test(copy_is_deep),
    cmocka_unit_test(print_writes_str_or_repr),
    cmocka_unit_test(allocation_failures_are_clean),
    cmocka_unit_test(send_recv_on_a_pipe),
    cmocka_unit_test(send_large_and_out_of_memory),
    cmocka_unit_test(decoder_outgrows_its_first_arrays),
    cmocka_unit_test(put_get_on_a_queue),
    cmocka_unit_test(shareable_list_item_as_value),
};

MP_TEST_MAIN(tests)
