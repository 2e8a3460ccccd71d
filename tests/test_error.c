/* test_error.c - the error table: codes, names and descriptions. */
#include <string.h>

#include "harness.h"

static void codes_equal_minus_errno(void **state) {
  (void)state;
  assert_int_equal(MP_EAGAIN, -EAGAIN);
  assert_int_equal(MP_ETIMEDOUT, -ETIMEDOUT);
  assert_int_equal(MP_EOWNERDEAD, -EOWNERDEAD);
  assert_int_equal(MP_EINVAL, -EINVAL);
  assert_int_equal(MP_ENOMEM, -ENOMEM);
}

static void library_codes_in_reserved_range(void **state) {
  (void)state;
  int codes[] = {MP_ECLOSED, MP_EBROKEN, MP_EWORKERDIED, MP_EAUTH,
                 MP_ETOOBIG, MP_ESTATE,  MP_ECORRUPT,    MP_EVALUE};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    assert_true(codes[i] < MP_ERR_LIBRARY_BASE);
    assert_true(codes[i] > MP_ERR_LIBRARY_BASE - 100);
  }
}

static void names_and_texts(void **state) {
  (void)state;
  assert_string_equal(mp_err_name(MP_ETIMEDOUT), "MP_ETIMEDOUT");
  assert_string_equal(mp_err_name(MP_EWORKERDIED), "MP_EWORKERDIED");
  assert_string_equal(mp_err_name(0), "MP_OK");
  assert_string_equal(mp_err_name(-123456), "MP_EUNKNOWN");
  assert_string_equal(mp_strerror(0), "success");
  assert_string_equal(mp_strerror(-123456), "unknown error code");
  assert_non_null(strstr(mp_strerror(MP_EOWNERDEAD), "died"));
}

static void every_code_has_distinct_name(void **state) {
  (void)state;
#define CHECK(name, value, text)                                             \
  assert_string_equal(mp_err_name(value), "MP_" #name);                      \
  assert_true(strlen(mp_strerror(value)) > 5);
  MP_ERRNO_MAP(CHECK)
#undef CHECK
}

static void version(void **state) {
  (void)state;
  assert_string_equal(mp_version(), MP_VERSION_STRING);
}

/* mp__fail is internal; reach it the way a failing public call does. */
static void detail_beside_the_code(void **state) {
  (void)state;
  mp_lock *l = NULL;
  int rc = mp_lock_new(&l, &(mp_sync_opts){.name = "bad/name"});
  assert_int_equal(rc, MP_EINVAL);
  assert_int_equal(mp_error_code(), MP_EINVAL);
  assert_true(strlen(mp_error_detail()) > 0);
  const char *msg = mp_error_message(rc);
  assert_non_null(strstr(msg, "MP_EINVAL: invalid argument: "));
  assert_non_null(strstr(msg, mp_error_detail()));
  /* Another code: name and description only. */
  assert_string_equal(mp_error_message(MP_ETIMEDOUT),
                      "MP_ETIMEDOUT: timed out: the deadline passed first");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(detail_beside_the_code),
    cmocka_unit_test(codes_equal_minus_errno),
    cmocka_unit_test(library_codes_in_reserved_range),
    cmocka_unit_test(names_and_texts),
    cmocka_unit_test(every_code_has_distinct_name),
    cmocka_unit_test(version),
};

MP_TEST_MAIN(tests)
