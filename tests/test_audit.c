/* test_audit.c - gaps found by auditing issues 8 (hardening) and 9 (a
 * newcomer's first day) against their words: each case names the sentence
 * it checks, and failed on the code before its fix.
 *
 * Forked children never call cmocka: they report through their exit
 * status. */
#define _GNU_SOURCE
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static int never(void *arg) {
  (void)arg;
  return 0;
}

/* Issue 9, point 4: "Refuse NaN with MP_EINVAL in every call that takes a
 * timeout." mp_condition_wait and mp_condition_wait_for took NaN for
 * "forever" and blocked. Run in a child, so a hang fails the case rather
 * than the suite. */
static int condition_nan_child(void *arg) {
  (void)arg;
  mp_condition *c;
  if (mp_condition_new(&c, NULL) != 0)
    return 10;
  if (mp_condition_acquire(c, 1) != 0)
    return 11;
  if (mp_condition_wait(c, NAN) != MP_EINVAL)
    return 12;
  if (strcmp(mp_error_detail(), "timeout is NaN") != 0)
    return 13;
  if (mp_condition_wait_for(c, never, NULL, NAN) != MP_EINVAL)
    return 14;
  if (strcmp(mp_error_detail(), "timeout is NaN") != 0)
    return 15;
  /* Still held, still usable. */
  if (mp_condition_wait(c, 0.01) != MP_ETIMEDOUT)
    return 16;
  if (mp_condition_release(c) != 0)
    return 17;
  mp_condition_free(c);
  return 0;
}

static void condition_wait_refuses_nan(void **state) {
  (void)state;
  pid_t pid = mp_test_fork(condition_nan_child, NULL);
  mp_test_wait_exit(pid, 0, mp_test_slack(5));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(condition_wait_refuses_nan),
};

MP_TEST_MAIN(tests)
