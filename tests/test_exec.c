/* test_exec.c - running a foreign program as a process object
 * (mp_process_opts.exec_argv, Python's subprocess with pass_fds):
 * exit codes, descriptors passed under the same or chosen numbers, nothing
 * else inherited, a connection that Python reads through its own
 * Connection class, the failure of a missing program (no child left), and
 * refused option combinations. Each case is its own CTest test. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

/* run_argv starts argv with pass_fds and returns its exit code. */
static int run_argv(char *const *argv, const mp_pass_fd *fds, size_t n) {
  mp_process *p = NULL;
  mp_process_opts o = {.exec_argv = argv, .pass_fds = fds,
                       .pass_fds_len = n};
  assert_rc(mp_process_new(&p, NULL, NULL, &o), 0);
  int code = mp_test_start_join(p);
  mp_process_free(p);
  return code;
}

static void exit_code_and_signal(void **state) {
  (void)state;
  char *const exit7[] = {"sh", "-c", "exit 7", NULL};
  assert_int_equal(run_argv(exit7, NULL, 0), 7);
  char *const killed[] = {"sh", "-c", "kill -TERM $$", NULL};
  mp_process *p = NULL;
  assert_rc(mp_process_new(&p, NULL, NULL,
                           &(mp_process_opts){.exec_argv = killed}),
            0);
  assert_int_equal(mp_test_start_join(p), -15);
  mp_exit_info info;
  assert_rc(mp_process_exit_info(p, &info), 0);
  assert_string_equal(info.signal_name, "SIGTERM");
  mp_process_free(p);
}

static void argv_is_copied(void **state) {
  (void)state;
  char script[] = "exit 3";
  char *argv[] = {"sh", "-c", script, NULL};
  mp_process *p = NULL;
  assert_rc(mp_process_new(&p, NULL, NULL,
                           &(mp_process_opts){.exec_argv = argv}),
            0);
  /* Changed after new: the object kept its own copy. */
  script[5] = '4';
  argv[2] = NULL;
  assert_int_equal(mp_test_start_join(p), 3);
  mp_process_free(p);
}

static void descriptor_under_chosen_number(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
  /* The write end becomes descriptor 5 in the program, close-on-exec or
   * not in the parent. */
  char *const argv[] = {"sh", "-c", "echo hello >&5", NULL};
  mp_pass_fd pass[] = {{.fd = fds[1], .as = 5}};
  assert_int_equal(run_argv(argv, pass, 1), 0);
  close(fds[1]);
  char buf[16] = {0};
  assert_int_equal(read(fds[0], buf, sizeof buf - 1), 6);
  assert_string_equal(buf, "hello\n");
  close(fds[0]);
}

static void descriptors_swapped(void **state) {
  (void)state;
  int a[2], b[2];
  assert_int_equal(pipe2(a, O_CLOEXEC), 0);
  assert_int_equal(pipe2(b, O_CLOEXEC), 0);
  /* a's write end becomes b's number and the other way round: the first
   * dup2 must not clobber the second's source. */
  char script[64];
  snprintf(script, sizeof script, "echo A >&%d; echo B >&%d", b[1], a[1]);
  char *const argv[] = {"sh", "-c", script, NULL};
  mp_pass_fd pass[] = {{a[1], b[1]}, {b[1], a[1]}};
  assert_int_equal(run_argv(argv, pass, 2), 0);
  close(a[1]);
  close(b[1]);
  char ca[4] = {0}, cb[4] = {0};
  assert_int_equal(read(a[0], ca, 3), 2);
  assert_int_equal(read(b[0], cb, 3), 2);
  assert_string_equal(ca, "A\n");
  assert_string_equal(cb, "B\n");
  close(a[0]);
  close(b[0]);
}

static void nothing_else_inherited(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0); /* inheritable, but not passed */
  char script[96];
  snprintf(script, sizeof script,
           "[ -e /proc/self/fd/%d ] && exit 1; [ -e /proc/self/fd/%d ] && "
           "exit 2; exit 0",
           fds[0], fds[1]);
  char *const argv[] = {"sh", "-c", script, NULL};
  assert_int_equal(run_argv(argv, NULL, 0), 0);
  /* Passed under its own number (as < 0), it is there. */
  snprintf(script, sizeof script, "[ -e /proc/self/fd/%d ] || exit 1",
           fds[1]);
  mp_pass_fd pass[] = {{.fd = fds[1], .as = -1}};
  assert_int_equal(run_argv(argv, pass, 1), 0);
  close(fds[0]);
  close(fds[1]);
}

static void connection_to_python(void **state) {
  (void)state;
  const char *versions[] = MP_TEST_PYTHONS;
  int ran = 0;
  for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
    const char *py = mp_test_python(versions[i]);
    if (py == NULL)
      continue;
    mp_connection *mine = NULL, *theirs = NULL;
    assert_rc(mp_pipe(&mine, &theirs, 1), 0);
    char *const argv[] = {
        (char *)py, "-c",
        "from multiprocessing.connection import Connection\n"
        "c = Connection(3)\n"
        "c.send_bytes(c.recv_bytes()[::-1])\n",
        NULL};
    mp_pass_fd pass[] = {{mp_connection_fileno(theirs), 3}};
    mp_process *p = NULL;
    assert_rc(mp_process_new(&p, NULL, NULL,
                             &(mp_process_opts){.exec_argv = argv,
                                                .pass_fds = pass,
                                                .pass_fds_len = 1}),
              0);
    assert_rc(mp_process_start(p), 0);
    mp_connection_free(theirs);
    assert_rc(mp_connection_send_bytes(mine, "olleh", 0, 5), 0);
    char buf[16];
    size_t len = 0;
    assert_int_equal(mp_connection_poll(mine, mp_test_slack(30)), 1);
    assert_rc(mp_connection_recv_bytes(mine, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_rc(mp_process_join(p, mp_test_slack(30)), 0);
    int code = -1;
    assert_rc(mp_process_exitcode(p, &code), 0);
    assert_int_equal(code, 0);
    mp_process_free(p);
    mp_connection_free(mine);
    ran++;
  }
  if (ran == 0)
    mp_test_skip("no CPython 3.11, 3.12 or 3.13 found");
}

static void missing_program_fails_start(void **state) {
  (void)state;
  char *const argv[] = {"no-such-program-mp-test", NULL};
  mp_process *p = NULL;
  assert_rc(mp_process_new(&p, NULL, NULL,
                           &(mp_process_opts){.exec_argv = argv}),
            0);
  assert_rc(mp_process_start(p), MP_ENOENT);
  assert_non_null(strstr(mp_error_detail(), "no-such-program-mp-test"));
  assert_int_equal(mp_process_pid(p), 0);
  /* No child is left (the harness checks); the object can start again. */
  assert_rc(mp_process_start(p), MP_ENOENT);
  mp_process_free(p);
  char *const path[] = {"/nonexistent/dir/prog", NULL};
  assert_rc(mp_process_new(&p, NULL, NULL,
                           &(mp_process_opts){.exec_argv = path}),
            0);
  assert_rc(mp_process_start(p), MP_ENOENT);
  mp_process_free(p);
}

static void bad_descriptor_fails_start(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  close(fds[0]);
  close(fds[1]);
  char *const argv[] = {"true", NULL};
  mp_pass_fd pass[] = {{.fd = fds[0], .as = 3}};
  mp_process *p = NULL;
  assert_rc(mp_process_new(&p, NULL, NULL,
                           &(mp_process_opts){.exec_argv = argv,
                                              .pass_fds = pass,
                                              .pass_fds_len = 1}),
            0);
  assert_rc(mp_process_start(p), MP_EBADF);
  assert_non_null(strstr(mp_error_detail(), "pass_fds[0]"));
  mp_process_free(p);
}

static int a_target(void *arg) {
  (void)arg;
  return 0;
}

static void bad_options_refused(void **state) {
  (void)state;
  mp_process *p = (void *)1;
  char *const argv[] = {"true", NULL};
  char *const empty[] = {NULL};
  mp_pass_fd pass[] = {{0, 3}, {1, 3}};
  struct {
    mp_process_target_fn target;
    mp_process_opts o;
    const char *detail;
  } cases[] = {
      {NULL, {.exec_argv = empty}, "exec_argv[0]"},
      {a_target, {.exec_argv = argv}, "not both"},
      {NULL, {.pass_fds = pass, .pass_fds_len = 1}, "only for a program"},
      {NULL, {.exec_argv = argv, .pass_fds = pass, .pass_fds_len = 2},
       "both become descriptor 3"},
      {NULL, {.exec_argv = argv, .pass_fds_len = 1}, "pass_fds is NULL"},
      {NULL, {.exec_argv = argv, .pass_fds = pass, .pass_fds_len = 257},
       "over 256"},
      {NULL,
       {.exec_argv = argv, .pass_fds = (mp_pass_fd[]){{-1, 3}},
        .pass_fds_len = 1},
       "fd is -1"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_rc(mp_process_new(&p, cases[i].target, NULL, &cases[i].o),
              MP_EINVAL);
    if (strstr(mp_error_detail(), cases[i].detail) == NULL)
      fail_msg("case %zu: detail '%s' lacks '%s'", i, mp_error_detail(),
               cases[i].detail);
    assert_ptr_equal(p, (void *)1);
  }
}

static void alloc_failure_in_new(void **state) {
  (void)state;
  char *const argv[] = {"sh", "-c", "exit 0", NULL};
  mp_pass_fd pass[] = {{0, 0}};
  mp_process_opts o = {.exec_argv = argv, .pass_fds = pass,
                       .pass_fds_len = 1};
  int failures = 0;
  for (long n = 1; n < 50; n++) {
    mp_process *p = (void *)1;
    mp__alloc_fail_after(n);
    int rc = mp_process_new(&p, NULL, NULL, &o);
    mp__alloc_fail_after(0);
    if (rc == 0) {
      assert_int_equal(mp_test_start_join(p), 0);
      mp_process_free(p);
      break;
    }
    assert_rc(rc, MP_ENOMEM);
    assert_ptr_equal(p, (void *)1);
    failures++;
  }
  assert_true(failures >= 2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(exit_code_and_signal),
    cmocka_unit_test(argv_is_copied),
    cmocka_unit_test(descriptor_under_chosen_number),
    cmocka_unit_test(descriptors_swapped),
    cmocka_unit_test(nothing_else_inherited),
    cmocka_unit_test(connection_to_python),
    cmocka_unit_test(missing_program_fails_start),
    cmocka_unit_test(bad_descriptor_fails_start),
    cmocka_unit_test(bad_options_refused),
    cmocka_unit_test(alloc_failure_in_new),
};

MP_TEST_MAIN(tests)
