/* manager_fixture.h - what the manager suites share (test_manager.c,
 * test_manager_local.c, interop/test_interop_manager.c): the value
 * shorthands S() and I(), the manager M a case runs against (started by
 * mgr_setup on the local channel, or by mgr_setup_socket with every call on
 * the socket, and freed by mgr_teardown, which first resumes a server a
 * case stopped with SIGSTOP), and the checks of a value's repr and of the
 * error detail. Included by one suite file each: its statics are that
 * suite's own. */
#ifndef MP_TEST_MANAGER_FIXTURE_H
#define MP_TEST_MANAGER_FIXTURE_H

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define S(x) mp_obj_str(x)
#define I(x) mp_obj_int(x)
#define MP__FIXTURE_UNUSED __attribute__((unused))

static mp_manager *M MP__FIXTURE_UNUSED;

static int mgr_start(int no_local) {
  M = NULL;
  mp_manager_opts o = {.no_local = no_local};
  assert_rc(mp_manager_start(&M, &o), 0);
  return 0;
}

/* mgr_setup: a manager whose C client calls take the local channel (the
 * default); mgr_setup_socket: one whose calls stay on the socket. */
static MP__FIXTURE_UNUSED int mgr_setup(void **state) {
  (void)state;
  return mgr_start(0);
}

static MP__FIXTURE_UNUSED int mgr_setup_socket(void **state) {
  (void)state;
  return mgr_start(1);
}

static MP__FIXTURE_UNUSED int mgr_teardown(void **state) {
  (void)state;
  if (M && mp_manager_pid(M)) kill(mp_manager_pid(M), SIGCONT);
  mp_manager_free(M);
  M = NULL;
  return 0;
}

/* check_repr asserts repr(v) == want and frees v. */
static MP__FIXTURE_UNUSED void check_repr(mp_obj *v, const char *want) {
  assert_non_null(v);
  char *r = mp_obj_repr(v);
  assert_non_null(r);
  if (strcmp(r, want) != 0) fail_msg("repr is %s, expected %s", r, want);
  free(r);
  mp_obj_free(v);
}

/* check_detail asserts that this thread's error detail contains want. */
static MP__FIXTURE_UNUSED void check_detail(const char *want) {
  if (!strstr(mp_error_detail(), want))
    fail_msg("detail '%s' lacks '%s'", mp_error_detail(), want);
}

#endif
