/* test_start_method.c - the spawn and forkserver start methods, one suite
 * run over both. spawn: a fresh image of this test program runs a target
 * registered by name, with its argument copied as bytes. forkserver: a
 * server forked when the context is created forks each child on request,
 * finds the target by its registered name, and reports the child's status
 * to the parent. A case that holds for both methods is listed twice
 * (<case>_spawn, <case>_forkserver); the rest belong to one method.
 * main calls mp_child_main before anything else, as every program using
 * spawn must; in a spawned child it runs the target and never returns, so
 * the child never reruns a test case. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

/* The start method of the case running (set by its wrapper). A spawned
 * child is a fresh image, where this is 0: what a target needs to know
 * travels in its argument. */
static mp_start_method method;

struct pair {
  int a, b;
};

static int sum_pair(void *arg) {
  const struct pair *pr = arg;
  return pr->a + pr->b;
}
MP_TARGET(sum_pair)

/* The argument of check_pattern: its length in the first 8 bytes, then
 * the pattern. spawn copies 1 MiB; forkserver sends it over its socket. */
static size_t big_arg(void) {
  return method == MP_START_SPAWN ? (1u << 20) : (256u * 1024);
}

/* check_pattern returns 0 when the argument is the test's pattern. */
static int check_pattern(void *arg) {
  const unsigned char *b = arg;
  if (b == NULL || ((uintptr_t)b % sizeof(void *)) != 0)
    return 1;
  uint64_t n;
  memcpy(&n, b, sizeof n);
  for (size_t i = sizeof n; i < n; i++)
    if (b[i] != (unsigned char)(i * 7 + 3))
      return 2;
  return 0;
}
MP_TARGET(check_pattern)

static int no_arg(void *arg) {
  return arg == NULL ? 5 : 6;
}
MP_TARGET(no_arg)

struct records {
  pid_t parent;
  int method;
};

static int check_records(void *arg) {
  const struct records *r = arg;
  bool spawn = r->method == MP_START_SPAWN;
  mp_process *me = mp_current_process();
  mp_process *parent = mp_parent_process();
  if (parent == NULL)
    return 1;
  /* The parent is the program that asked (under forkserver, not the
   * server that forked the child). */
  if (mp_process_pid(parent) != r->parent || (getppid() == r->parent) != spawn)
    return 2;
  if (strcmp(mp_process_name(parent), "MainProcess") != 0)
    return 3;
  if (mp_process_is_alive(parent) != 1)
    return 4;
  if (strcmp(mp_process_name(me), "started") != 0)
    return 5;
  if (mp_process_pid(me) != getpid() || (spawn && mp_process_daemon(me) != 1))
    return 6;
  if (getenv("MP_SPAWN_FD") != NULL)
    return 7;
  return 0;
}
MP_TARGET(check_records)

static int fail_with_message(void *arg) {
  (void)arg;
  return mp_process_set_error("child failed on purpose") == 0 ? 4 : 9;
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

/* Never registered by main (the forkserver case registers it after its
 * server was forked). */
static int served_late_target(void *arg) {
  (void)arg;
  return 0;
}

static int never_registered(void *arg) {
  (void)arg;
  return 0;
}

static mp_context *ctx_new(void) {
  mp_context *ctx = NULL;
  assert_rc(mp_context_new(&ctx, method), 0);
  assert_int_equal(mp_context_method(ctx), method);
  return ctx;
}

/* BOTH(c) defines c_spawn and c_forkserver, which run case c under each
 * method. */
#define BOTH(c)                                                                \
  static void c##_spawn(void **state) {                                        \
    method = MP_START_SPAWN;                                                   \
    c(state);                                                                  \
  }                                                                            \
  static void c##_forkserver(void **state) {                                   \
    method = MP_START_FORKSERVER;                                              \
    c(state);                                                                  \
  }
#define SPAWN(c)                                                               \
  static void c##_spawn(void **state) {                                        \
    method = MP_START_SPAWN;                                                   \
    c(state);                                                                  \
  }
#define FORKSERVER(c)                                                          \
  static void c##_forkserver(void **state) {                                   \
    method = MP_START_FORKSERVER;                                              \
    c(state);                                                                  \
  }

/* ---- cases of both methods -------------------------------------------- */

static void registered_target_runs(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
  struct pair pr = {30, 12};
  mp_process *p;
  mp_process_opts o = {.context = ctx, .arg_size = sizeof pr};
  assert_rc(mp_process_new(&p, sum_pair, &pr, &o), 0);
  assert_int_equal(mp_test_start_join(p), 42);
  mp_process_free(p);
  mp_context_free(ctx);
}
BOTH(registered_target_runs)

static void arg_bytes_arrive(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
  size_t n = big_arg();
  unsigned char *buf = malloc(n);
  assert_non_null(buf);
  for (size_t i = 0; i < n; i++)
    buf[i] = (unsigned char)(i * 7 + 3);
  uint64_t n64 = n;
  memcpy(buf, &n64, sizeof n64);
  mp_process *p;
  mp_process_opts o = {.context = ctx, .arg_size = n};
  assert_rc(mp_process_new(&p, check_pattern, buf, &o), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  free(buf);
  mp_context_free(ctx);
}
BOTH(arg_bytes_arrive)

static void no_arg_is_null(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, no_arg, NULL, &o), 0);
  assert_int_equal(mp_test_start_join(p), 5);
  mp_process_free(p);
  mp_context_free(ctx);
}
BOTH(no_arg_is_null)

static void several_children(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
  struct pair pr[4] = {{1, 1}, {2, 2}, {3, 3}, {4, 4}};
  mp_process *p[4];
  for (int i = 0; i < 4; i++) {
    mp_process_opts o = {.context = ctx, .arg_size = sizeof pr[i]};
    assert_rc(mp_process_new(&p[i], sum_pair, &pr[i], &o), 0);
    assert_rc(mp_process_start(p[i]), 0);
  }
  for (int i = 3; i >= 0; i--) {
    assert_rc(mp_process_join(p[i], 60), 0);
    int code;
    assert_rc(mp_process_exitcode(p[i], &code), 0);
    assert_int_equal(code, 2 * (i + 1));
    mp_process_free(p[i]);
  }
  mp_context_free(ctx);
}
BOTH(several_children)

static void run_callback_by_name(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
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
BOTH(run_callback_by_name)

static void arg_pointer_without_size(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
  int v = 1;
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, sum_pair, &v, &o), 0);
  assert_rc(mp_process_start(p), MP_EINVAL);
  if (method == MP_START_SPAWN)
    assert_non_null(strstr(mp_error_detail(), "arg_size is 0 under spawn"));
  mp_process_free(p);
  mp_context_free(ctx);
}
BOTH(arg_pointer_without_size)

static void records_in_child(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
  struct records r = {.parent = getpid(), .method = method};
  mp_process *p;
  mp_process_opts o = {.context = ctx,
                       .arg_size = sizeof r,
                       .name = "started",
                       .daemon = method == MP_START_SPAWN};
  assert_rc(mp_process_new(&p, check_records, &r, &o), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  mp_context_free(ctx);
}
BOTH(records_in_child)

static void set_error_reaches_parent(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, fail_with_message, NULL, &o), 0);
  assert_int_equal(mp_test_start_join(p), 4);
  mp_exit_info info;
  assert_rc(mp_process_exit_info(p, &info), 0);
  assert_string_equal(info.message, "child failed on purpose");
  mp_process_free(p);
  mp_context_free(ctx);
}
BOTH(set_error_reaches_parent)

static void killed_by_signal(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
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
BOTH(killed_by_signal)

static void join_timeout_then_terminate(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
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
  assert_int_equal(mp_process_is_alive(p), 0);
  assert_rc(mp_process_kill(p), MP_ESTATE);
  mp_process_free(p);
  mp_context_free(ctx);
}
BOTH(join_timeout_then_terminate)

static void alloc_failure_in_start(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
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
     * descriptors), the object can be started again, and a server still
     * serves. */
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
BOTH(alloc_failure_in_start)

/* ---- spawn only -------------------------------------------------------- */

static void unregistered_target(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
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
SPAWN(unregistered_target)

static void target_missing_in_child(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
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
SPAWN(target_missing_in_child)

static void child_inherits_no_descriptors(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0); /* not close-on-exec */
  mp_context *ctx = ctx_new();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, count_fds, NULL, &o), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  mp_context_free(ctx);
  close(fds[0]);
  close(fds[1]);
}
SPAWN(child_inherits_no_descriptors)

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
  mp_context *ctx = ctx_new();
  mp_process *p;
  assert_rc(mp_process_new(&p, NULL, NULL, &(mp_process_opts){.context = ctx}),
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
SPAWN(forgotten_child_main_refused)

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
  mp_test_wait_exit(mp_test_fork(unbooted_child, NULL), 0, mp_test_slack(30));
}
SPAWN(unbooted_program_cannot_start_children)

static void register_rules(void **state) {
  (void)state;
  assert_rc(mp_register_target("sum_pair", sum_pair), 0);
  assert_rc(mp_register_target("sum_pair", no_arg), MP_EEXIST);
  assert_rc(mp_register_target("", no_arg), MP_EINVAL);
  assert_rc(mp_register_target(NULL, no_arg), MP_EINVAL);
  assert_rc(mp_register_target("x", NULL), MP_EINVAL);
  assert_rc(mp_register_run("run_callback", run_callback), 0);
}

/* ---- forkserver only --------------------------------------------------- */

static void unknown_target_then_late(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  /* Unknown to the parent. */
  assert_rc(mp_process_new(&p, served_late_target, NULL, &o), 0);
  assert_rc(mp_process_start(p), MP_ENOENT);
  /* Known to the parent, registered after the server was forked. */
  assert_rc(mp_register_target("served_late_target", served_late_target), 0);
  assert_rc(mp_process_start(p), MP_ENOENT);
  assert_int_equal(mp_process_pid(p), 0);
  mp_process_free(p);
  /* The server still serves. */
  struct pair pr = {1, 2};
  mp_process_opts o2 = {.context = ctx, .arg_size = sizeof pr};
  assert_rc(mp_process_new(&p, sum_pair, &pr, &o2), 0);
  assert_int_equal(mp_test_start_join(p), 3);
  mp_process_free(p);
  mp_context_free(ctx);
}
FORKSERVER(unknown_target_then_late)

struct thread_start {
  mp_context *ctx;
  int code;
};

static void *start_in_thread(void *arg) {
  struct thread_start *ts = arg;
  struct pair pr = {5, 6};
  mp_process *p;
  mp_process_opts o = {.context = ts->ctx, .arg_size = sizeof pr};
  if (mp_process_new(&p, sum_pair, &pr, &o) != 0)
    return NULL;
  if (mp_process_start(p) == 0 && mp_process_join(p, 60) == 0)
    mp_process_exitcode(p, &ts->code);
  mp_process_free(p);
  return NULL;
}

static void *idle_thread(void *arg) {
  int fd = *(int *)arg;
  char c;
  while (read(fd, &c, 1) < 0 && errno == EINTR)
    ;
  return NULL;
}

static void start_from_threaded_parent(void **state) {
  (void)state;
  /* The server is made while the program has one thread. */
  mp_context *ctx = ctx_new();
  int stop[2];
  assert_int_equal(pipe(stop), 0);
  pthread_t idle, starter;
  assert_int_equal(pthread_create(&idle, NULL, idle_thread, &stop[0]), 0);
  struct thread_start ts = {.ctx = ctx, .code = -1};
  assert_int_equal(pthread_create(&starter, NULL, start_in_thread, &ts), 0);
  pthread_join(starter, NULL);
  assert_int_equal(ts.code, 11);
  /* And from the main thread while the other thread still runs. */
  start_in_thread(&ts);
  assert_int_equal(ts.code, 11);
  close(stop[1]);
  pthread_join(idle, NULL);
  close(stop[0]);
  mp_context_free(ctx);
}
FORKSERVER(start_from_threaded_parent)

static void daemon_children_die_with_server(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
  mp_process *p;
  mp_process_opts o = {.context = ctx, .daemon = 1};
  assert_rc(mp_process_new(&p, forever, NULL, &o), 0);
  assert_rc(mp_process_start(p), 0);
  pid_t pid = mp_process_pid(p);
  assert_true(mp__os_pid_alive(pid));
  /* Stopping the server kills its daemonic children and reports them. */
  double t0 = mp_test_now();
  mp_context_free(ctx);
  assert_true(mp_test_now() - t0 < 30);
  assert_rc(mp_process_join(p, 30), 0);
  int code;
  assert_rc(mp_process_exitcode(p, &code), 0);
  assert_int_equal(code, -SIGKILL);
  assert_false(mp__os_pid_alive(pid));
  mp_process_free(p);
}
FORKSERVER(daemon_children_die_with_server)

static int use_inherited_context(void *arg) {
  mp_context *ctx = arg;
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  if (mp_process_new(&p, forever, NULL, &o) != 0)
    return 1;
  int rc = mp_process_start(p);
  mp_process_free(p);
  return rc == MP_EPERM ? 0 : 2;
}

static void context_is_not_inherited(void **state) {
  (void)state;
  mp_context *ctx = ctx_new();
  /* A fork child holds a copy of the context: not its server. */
  mp_process *p;
  assert_rc(mp_process_new(&p, use_inherited_context, ctx, NULL), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  mp_context_free(ctx);
}
FORKSERVER(context_is_not_inherited)

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(registered_target_runs_spawn),
    cmocka_unit_test(registered_target_runs_forkserver),
    cmocka_unit_test(arg_bytes_arrive_spawn),
    cmocka_unit_test(arg_bytes_arrive_forkserver),
    cmocka_unit_test(no_arg_is_null_spawn),
    cmocka_unit_test(no_arg_is_null_forkserver),
    cmocka_unit_test(several_children_spawn),
    cmocka_unit_test(several_children_forkserver),
    cmocka_unit_test(run_callback_by_name_spawn),
    cmocka_unit_test(run_callback_by_name_forkserver),
    cmocka_unit_test(arg_pointer_without_size_spawn),
    cmocka_unit_test(arg_pointer_without_size_forkserver),
    cmocka_unit_test(records_in_child_spawn),
    cmocka_unit_test(records_in_child_forkserver),
    cmocka_unit_test(set_error_reaches_parent_spawn),
    cmocka_unit_test(set_error_reaches_parent_forkserver),
    cmocka_unit_test(killed_by_signal_spawn),
    cmocka_unit_test(killed_by_signal_forkserver),
    cmocka_unit_test(join_timeout_then_terminate_spawn),
    cmocka_unit_test(join_timeout_then_terminate_forkserver),
    cmocka_unit_test(alloc_failure_in_start_spawn),
    cmocka_unit_test(alloc_failure_in_start_forkserver),
    cmocka_unit_test(unregistered_target_spawn),
    cmocka_unit_test(target_missing_in_child_spawn),
    cmocka_unit_test(child_inherits_no_descriptors_spawn),
    cmocka_unit_test(forgotten_child_main_refused_spawn),
    cmocka_unit_test(unbooted_program_cannot_start_children_spawn),
    cmocka_unit_test(register_rules),
    cmocka_unit_test(unknown_target_then_late_forkserver),
    cmocka_unit_test(start_from_threaded_parent_forkserver),
    cmocka_unit_test(daemon_children_die_with_server_forkserver),
    cmocka_unit_test(context_is_not_inherited_forkserver),
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
