/* test_spawn.c - the spawn start method: a fresh image of this test
 * program runs a target registered by name, with its argument copied as
 * bytes. main calls mp_child_main before anything else, as every program
 * using spawn must; in a spawned child it runs the target and never
 * returns, so the child never reruns a test case. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

struct pair {
  int a, b;
};

static int sum_pair(void *arg) {
  const struct pair *pr = arg;
  return pr->a + pr->b;
}
MP_TARGET(sum_pair)

#define BIG_ARG (1u << 20)

/* check_pattern returns 0 when the argument is the test's pattern. */
static int check_pattern(void *arg) {
  const unsigned char *b = arg;
  if (b == NULL || ((uintptr_t)b % sizeof(void *)) != 0)
    return 1;
  for (size_t i = 0; i < BIG_ARG; i++)
    if (b[i] != (unsigned char)(i * 7 + 3))
      return 2;
  return 0;
}
MP_TARGET(check_pattern)

static int no_arg(void *arg) { return arg == NULL ? 5 : 6; }
MP_TARGET(no_arg)

static int check_records(void *arg) {
  pid_t parent_pid = *(const pid_t *)arg;
  mp_process *me = mp_current_process();
  mp_process *parent = mp_parent_process();
  if (parent == NULL)
    return 1;
  if (mp_process_pid(parent) != parent_pid || getppid() != parent_pid)
    return 2;
  if (strcmp(mp_process_name(parent), "MainProcess") != 0)
    return 3;
  if (mp_process_is_alive(parent) != 1)
    return 4;
  if (strcmp(mp_process_name(me), "spawned") != 0)
    return 5;
  if (mp_process_pid(me) != getpid() || mp_process_daemon(me) != 1)
    return 6;
  if (getenv("MP_SPAWN_FD") != NULL)
    return 7;
  return 0;
}
MP_TARGET(check_records)

static int fail_with_message(void *arg) {
  (void)arg;
  return mp_process_set_error("spawned child failed on purpose") == 0 ? 4
                                                                      : 9;
}
MP_TARGET(fail_with_message)

static int kill_self(void *arg) {
  (void)arg;
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  raise(SIGKILL);
  return 0;
}
MP_TARGET(kill_self)

static int forever(void *arg) {
  (void)arg;
  for (;;)
    pause();
  return 0;
}
MP_TARGET(forever)

/* count_fds returns how many descriptors above 2 the child holds. */
static int count_fds(void *arg) {
  (void)arg;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return 100;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.' && atoi(e->d_name) > 2 &&
        atoi(e->d_name) != dirfd(d))
      n++;
  closedir(d);
  return n;
}
MP_TARGET(count_fds)

static int run_callback(mp_process *self) {
  const int *v = mp_process_arg(self);
  if (v == NULL || strcmp(mp_process_name(self), "runner") != 0)
    return 1;
  return *v;
}

/* Registered in main only after mp_child_main: a spawned child never has
 * it, so its lookup fails there. */
static int late_target(void *arg) {
  (void)arg;
  return 0;
}

static int never_registered(void *arg) {
  (void)arg;
  return 0;
}

static mp_context *spawn_ctx(void) {
  mp_context *ctx = NULL;
  assert_rc(mp_context_new(&ctx, MP_START_SPAWN), 0);
  assert_int_equal(mp_context_method(ctx), MP_START_SPAWN);
  return ctx;
}

/* ---- cases ----------------------------------------------------------- */

static void registered_target_runs(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  struct pair pr = {30, 12};
  mp_process *p;
  mp_process_opts o = {.context = ctx, .arg_size = sizeof pr};
  assert_rc(mp_process_new(&p, sum_pair, &pr, &o), 0);
  assert_int_equal(mp_test_start_join(p), 42);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void arg_bytes_arrive(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  unsigned char *buf = malloc(BIG_ARG);
  assert_non_null(buf);
  for (size_t i = 0; i < BIG_ARG; i++)
    buf[i] = (unsigned char)(i * 7 + 3);
  mp_process *p;
  mp_process_opts o = {.context = ctx, .arg_size = BIG_ARG};
  assert_rc(mp_process_new(&p, check_pattern, buf, &o), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  free(buf);
  mp_context_free(ctx);
}

static void no_arg_is_null(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, no_arg, NULL, &o), 0);
  assert_int_equal(mp_test_start_join(p), 5);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void run_callback_by_name(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  int v = 33;
  mp_process *p;
  mp_process_opts o = {.context = ctx,
                       .arg_size = sizeof v,
                       .run = run_callback,
                       .name = "runner"};
  assert_rc(mp_process_new(&p, NULL, &v, &o), 0);
  assert_int_equal(mp_test_start_join(p), 33);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void unregistered_target(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, never_registered, NULL, &o), 0);
  assert_rc(mp_process_start(p), MP_ENOENT);
  assert_non_null(strstr(mp_error_detail(), "MP_TARGET"));
  assert_int_equal(mp_process_pid(p), 0);
  assert_rc(mp_process_join(p, 0), MP_ESTATE);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void target_missing_in_child(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, late_target, NULL, &o), 0);
  /* The parent knows the name; the fresh image does not: the child says
   * so, and the start fails with nothing left running. */
  assert_rc(mp_process_start(p), MP_ENOENT);
  assert_non_null(strstr(mp_error_detail(), "MP_TARGET(late_target)"));
  assert_int_equal(mp_process_is_alive(p), 0);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void arg_pointer_without_size(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  int v = 1;
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, sum_pair, &v, &o), 0);
  assert_rc(mp_process_start(p), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "arg_size is 0 under spawn"));
  mp_process_free(p);
  mp_context_free(ctx);
}

static void records_in_child(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  pid_t self = getpid();
  mp_process *p;
  mp_process_opts o = {.context = ctx,
                       .arg_size = sizeof self,
                       .name = "spawned",
                       .daemon = 1};
  assert_rc(mp_process_new(&p, check_records, &self, &o), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void set_error_reaches_parent(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, fail_with_message, NULL, &o), 0);
  assert_int_equal(mp_test_start_join(p), 4);
  mp_exit_info info;
  assert_rc(mp_process_exit_info(p, &info), 0);
  assert_string_equal(info.message, "spawned child failed on purpose");
  mp_process_free(p);
  mp_context_free(ctx);
}

static void killed_by_signal(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, kill_self, NULL, &o), 0);
  assert_int_equal(mp_test_start_join(p), -SIGKILL);
  mp_exit_info info;
  assert_rc(mp_process_exit_info(p, &info), 0);
  assert_string_equal(info.signal_name, "SIGKILL");
  mp_process_free(p);
  mp_context_free(ctx);
}

static void join_timeout_then_terminate(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, forever, NULL, &o), 0);
  assert_rc(mp_process_start(p), 0);
  assert_int_equal(mp_process_is_alive(p), 1);
  double t0 = mp_test_now();
  assert_rc(mp_process_join(p, 0.2), MP_ETIMEDOUT);
  assert_true(mp_test_now() - t0 < 10);
  assert_rc(mp_process_terminate(p), 0);
  assert_rc(mp_process_join(p, 60), 0);
  int code;
  assert_rc(mp_process_exitcode(p, &code), 0);
  assert_int_equal(code, -SIGTERM);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void child_inherits_no_descriptors(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0); /* not close-on-exec */
  mp_context *ctx = spawn_ctx();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, count_fds, NULL, &o), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  mp_context_free(ctx);
  close(fds[0]);
  close(fds[1]);
}

static void alloc_failure_in_start(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  struct pair pr = {2, 3};
  mp_process *p;
  mp_process_opts o = {.context = ctx, .arg_size = sizeof pr};
  assert_rc(mp_process_new(&p, sum_pair, &pr, &o), 0);
  int failures = 0;
  for (long n = 1; n < 50; n++) {
    mp__alloc_fail_after(n);
    int rc = mp_process_start(p);
    mp__alloc_fail_after(0);
    if (rc == 0)
      break;
    /* A failed start leaves nothing (the harness checks for children and
     * descriptors) and the object can be started again. */
    assert_rc(rc, MP_ENOMEM);
    assert_int_equal(mp_process_pid(p), 0);
    failures++;
  }
  assert_true(failures >= 2);
  assert_rc(mp_process_join(p, 60), 0);
  int code;
  assert_rc(mp_process_exitcode(p, &code), 0);
  assert_int_equal(code, 5);
  mp_process_free(p);
  mp_context_free(ctx);
}

/* ---- a main without mp_child_main (issue 9, item 1) ------------------- */

/* What a program that forgot mp_child_main does in its spawned child: it
 * re-runs main, which starts a process again. FORGETFUL_DEPTH bounds the
 * chain should the guard ever fail, so the test cannot fork-bomb. */
#define FORGETFUL_ENV "MP_TEST_FORGETFUL_DEPTH"

static int forgetful_main(const char *depth_text) {
  int depth = atoi(depth_text);
  if (depth >= 2)
    return 3;
  char next[16];
  snprintf(next, sizeof next, "%d", depth + 1);
  setenv(FORGETFUL_ENV, next, 1);
  mp_context *ctx = NULL;
  if (mp_context_new(&ctx, MP_START_SPAWN) != 0)
    return 4;
  mp_process *p = NULL;
  int rc = mp_process_new(&p, NULL, NULL, &(mp_process_opts){.context = ctx});
  if (rc == 0)
    rc = mp_process_start(p);
  int ok = rc == MP_ESTATE && strstr(mp_error_detail(), "mp_child_main");
  if (rc == 0)
    mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  mp_context_free(ctx);
  return ok ? 42 : 5;
}

static void forgotten_child_main_refused(void **state) {
  (void)state;
  mp_context *ctx = spawn_ctx();
  mp_process *p;
  assert_rc(mp_process_new(&p, NULL, NULL,
                           &(mp_process_opts){.context = ctx}),
            0);
  /* The spawned image sees the variable and plays the forgetful program;
   * its start refuses at once and tells us, so our start fails with the
   * same code and a detail that names the fix. */
  setenv(FORGETFUL_ENV, "1", 1);
  int rc = mp_process_start(p);
  unsetenv(FORGETFUL_ENV);
  assert_rc(rc, MP_ESTATE);
  assert_non_null(strstr(mp_error_detail(), "mp_child_main(argc, argv)"));
  assert_int_equal(mp_process_pid(p), 0);
  mp_process_free(p);
  mp_context_free(ctx);
}

static int unbooted_child(void *arg) {
  (void)arg;
  /* As in a spawned image before mp_child_main. */
  setenv("MP_SPAWN_FD", "3", 1);
  mp_process *p = NULL;
  if (mp_process_new(&p, NULL, NULL, NULL) != 0)
    return 1;
  if (mp_process_start(p) != MP_ESTATE)
    return 2;
  if (strstr(mp_error_message(MP_ESTATE), "add mp_child_main") == NULL)
    return 3;
  mp_process_free(p);
  mp_context *ctx = NULL;
  if (mp_context_new(&ctx, MP_START_FORKSERVER) != MP_ESTATE)
    return 4;
  if (mp_context_new(&ctx, MP_START_FORK) != 0)
    return 5;
  mp_context_free(ctx);
  return 0;
}

static void unbooted_program_cannot_start_children(void **state) {
  (void)state;
  mp_test_wait_exit(mp_test_fork(unbooted_child, NULL), 0,
                    mp_test_slack(30));
}

static void register_rules(void **state) {
  (void)state;
  assert_rc(mp_register_target("sum_pair", sum_pair), 0);
  assert_rc(mp_register_target("sum_pair", no_arg), MP_EEXIST);
  assert_rc(mp_register_target("", no_arg), MP_EINVAL);
  assert_rc(mp_register_target(NULL, no_arg), MP_EINVAL);
  assert_rc(mp_register_target("x", NULL), MP_EINVAL);
  assert_rc(mp_register_run("run_callback", run_callback), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(registered_target_runs),
    cmocka_unit_test(arg_bytes_arrive),
    cmocka_unit_test(no_arg_is_null),
    cmocka_unit_test(run_callback_by_name),
    cmocka_unit_test(unregistered_target),
    cmocka_unit_test(target_missing_in_child),
    cmocka_unit_test(arg_pointer_without_size),
    cmocka_unit_test(records_in_child),
    cmocka_unit_test(set_error_reaches_parent),
    cmocka_unit_test(killed_by_signal),
    cmocka_unit_test(join_timeout_then_terminate),
    cmocka_unit_test(child_inherits_no_descriptors),
    cmocka_unit_test(alloc_failure_in_start),
    cmocka_unit_test(register_rules),
    cmocka_unit_test(forgotten_child_main_refused),
    cmocka_unit_test(unbooted_program_cannot_start_children),
};

int main(int argc, char **argv) {
  /* Registered before mp_child_main: spawned children know these. */
  mp_register_run("run_callback", run_callback);
  const char *forgetful = getenv(FORGETFUL_ENV);
  if (forgetful != NULL)
    return forgetful_main(forgetful);
  mp_child_main(argc, argv);
  /* Registered after it: only this parent knows it. */
  mp_register_target("late_target", late_target);
  return mp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
