/* test_forkserver.c - the forkserver start method: a server forked when
 * the context is created forks each child on request, finds the target by
 * its registered name, and reports the child's status to the parent. */
#define _GNU_SOURCE
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

struct pair {
  int a, b;
};

static int sum_pair(void *arg) {
  const struct pair *pr = arg;
  return pr->a + pr->b;
}
MP_TARGET(sum_pair)

#define BIG_ARG (256u * 1024)

static int check_pattern(void *arg) {
  const unsigned char *b = arg;
  if (b == NULL)
    return 1;
  for (size_t i = 0; i < BIG_ARG; i++)
    if (b[i] != (unsigned char)(i * 5 + 1))
      return 2;
  return 0;
}
MP_TARGET(check_pattern)

static int check_records(void *arg) {
  pid_t parent_pid = *(const pid_t *)arg;
  mp_process *parent = mp_parent_process();
  if (parent == NULL)
    return 1;
  /* The parent is the program that asked, not the server. */
  if (mp_process_pid(parent) != parent_pid || getppid() == parent_pid)
    return 2;
  if (strcmp(mp_process_name(parent), "MainProcess") != 0)
    return 3;
  if (mp_process_is_alive(parent) != 1)
    return 4;
  if (strcmp(mp_process_name(mp_current_process()), "served") != 0)
    return 5;
  if (mp_process_pid(mp_current_process()) != getpid())
    return 6;
  return 0;
}
MP_TARGET(check_records)

static int fail_with_message(void *arg) {
  (void)arg;
  return mp_process_set_error("forkserver child failed on purpose") == 0
             ? 4
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

static int run_callback(mp_process *self) {
  const int *v = mp_process_arg(self);
  return v != NULL ? *v : 1;
}

static int late_target(void *arg) {
  (void)arg;
  return 0;
}

static mp_context *server(void) {
  mp_context *ctx = NULL;
  assert_rc(mp_context_new(&ctx, MP_START_FORKSERVER), 0);
  assert_int_equal(mp_context_method(ctx), MP_START_FORKSERVER);
  return ctx;
}

/* ---- cases ------------------------------------------------------------- */

static void registered_target_runs(void **state) {
  (void)state;
  mp_context *ctx = server();
  struct pair pr = {40, 2};
  mp_process *p;
  mp_process_opts o = {.context = ctx, .arg_size = sizeof pr};
  assert_rc(mp_process_new(&p, sum_pair, &pr, &o), 0);
  assert_int_equal(mp_test_start_join(p), 42);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void arg_bytes_arrive(void **state) {
  (void)state;
  mp_context *ctx = server();
  unsigned char *buf = malloc(BIG_ARG);
  assert_non_null(buf);
  for (size_t i = 0; i < BIG_ARG; i++)
    buf[i] = (unsigned char)(i * 5 + 1);
  mp_process *p;
  mp_process_opts o = {.context = ctx, .arg_size = BIG_ARG};
  assert_rc(mp_process_new(&p, check_pattern, buf, &o), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  free(buf);
  mp_context_free(ctx);
}

static void several_children(void **state) {
  (void)state;
  mp_context *ctx = server();
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

static void run_callback_by_name(void **state) {
  (void)state;
  mp_context *ctx = server();
  int v = 21;
  mp_process *p;
  mp_process_opts o = {.context = ctx, .arg_size = sizeof v,
                       .run = run_callback};
  assert_rc(mp_process_new(&p, NULL, &v, &o), 0);
  assert_int_equal(mp_test_start_join(p), 21);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void unregistered_target(void **state) {
  (void)state;
  mp_context *ctx = server();
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  /* Unknown to the parent. */
  assert_rc(mp_process_new(&p, late_target, NULL, &o), 0);
  assert_rc(mp_process_start(p), MP_ENOENT);
  /* Known to the parent, registered after the server was forked. */
  assert_rc(mp_register_target("late_target", late_target), 0);
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

static void arg_pointer_without_size(void **state) {
  (void)state;
  mp_context *ctx = server();
  int v = 1;
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, sum_pair, &v, &o), 0);
  assert_rc(mp_process_start(p), MP_EINVAL);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void records_in_child(void **state) {
  (void)state;
  mp_context *ctx = server();
  pid_t self = getpid();
  mp_process *p;
  mp_process_opts o = {.context = ctx, .arg_size = sizeof self,
                       .name = "served"};
  assert_rc(mp_process_new(&p, check_records, &self, &o), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void set_error_and_signal(void **state) {
  (void)state;
  mp_context *ctx = server();
  mp_process *p, *q;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, fail_with_message, NULL, &o), 0);
  assert_int_equal(mp_test_start_join(p), 4);
  mp_exit_info info;
  assert_rc(mp_process_exit_info(p, &info), 0);
  assert_string_equal(info.message, "forkserver child failed on purpose");
  assert_rc(mp_process_new(&q, kill_self, NULL, &o), 0);
  assert_int_equal(mp_test_start_join(q), -SIGKILL);
  assert_rc(mp_process_exit_info(q, &info), 0);
  assert_string_equal(info.signal_name, "SIGKILL");
  mp_process_free(p);
  mp_process_free(q);
  mp_context_free(ctx);
}

static void join_timeout_then_terminate(void **state) {
  (void)state;
  mp_context *ctx = server();
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
  mp_context *ctx = server();
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

static void daemon_children_die_with_server(void **state) {
  (void)state;
  mp_context *ctx = server();
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
  mp_context *ctx = server();
  /* A fork child holds a copy of the context: not its server. */
  mp_process *p;
  assert_rc(mp_process_new(&p, use_inherited_context, ctx, NULL), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  mp_context_free(ctx);
}

static void alloc_failure_in_start(void **state) {
  (void)state;
  mp_context *ctx = server();
  struct pair pr = {3, 4};
  mp_process *p;
  mp_process_opts o = {.context = ctx, .arg_size = sizeof pr};
  assert_rc(mp_process_new(&p, sum_pair, &pr, &o), 0);
  int failures = 0, rc = -1;
  for (long n = 1; n < 50 && rc != 0; n++) {
    mp__alloc_fail_after(n);
    rc = mp_process_start(p);
    mp__alloc_fail_after(0);
    if (rc != 0) {
      /* Nothing is left behind and the server still serves. */
      assert_rc(rc, MP_ENOMEM);
      failures++;
    }
  }
  assert_true(failures >= 2);
  assert_rc(mp_process_join(p, 60), 0);
  int code;
  assert_rc(mp_process_exitcode(p, &code), 0);
  assert_int_equal(code, 7);
  mp_process_free(p);
  mp_context_free(ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(registered_target_runs),
    cmocka_unit_test(arg_bytes_arrive),
    cmocka_unit_test(several_children),
    cmocka_unit_test(run_callback_by_name),
    cmocka_unit_test(unregistered_target),
    cmocka_unit_test(arg_pointer_without_size),
    cmocka_unit_test(records_in_child),
    cmocka_unit_test(set_error_and_signal),
    cmocka_unit_test(join_timeout_then_terminate),
    cmocka_unit_test(start_from_threaded_parent),
    cmocka_unit_test(daemon_children_die_with_server),
    cmocka_unit_test(context_is_not_inherited),
    cmocka_unit_test(alloc_failure_in_start),
};

int main(int argc, char **argv) {
  mp_register_run("run_callback", run_callback);
  return mp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
