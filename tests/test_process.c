/* test_process.c - processes under the fork start method: targets and run
 * callbacks, names, identity, exit codes and exit information, joining
 * with timeouts, signals, the current and parent records, the children
 * list, cpu_count, what happens to children when their parent exits or
 * dies, and allocation failure. Each case is its own CTest test. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

/* ---- helpers ------------------------------------------------------------ */

/* read_full reads n bytes from fd within timeout seconds; returns bytes
 * read (short on EOF or timeout). */
static size_t read_full(int fd, void *buf, size_t n, double timeout) {
  double end = mp_test_now() + timeout;
  size_t got = 0;
  while (got < n) {
    double left = end - mp_test_now();
    if (left <= 0)
      break;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)(left * 1000) + 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    ssize_t k = read(fd, (char *)buf + got, n - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  return got;
}

static void write_full(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return;
    p += k;
    n -= (size_t)k;
  }
}

/* no_core keeps a crashing test child from writing a core file, and
 * gives the signal back its default action (the test framework and the
 * sanitizers catch some). */
static void crash_setup(int sig) {
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  signal(sig, SIG_DFL);
}

/* start_join starts p, joins it and returns its exit code. */
/* ---- targets -------------------------------------------------------------- */

static int return_arg_int(void *arg) { return *(int *)arg; }

static int forever(void *arg) {
  (void)arg;
  for (;;)
    pause();
  return 0;
}

static int sleep_seconds(void *arg) {
  double s = *(double *)arg;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  return 0;
}

static int run_callback(mp_process *self) {
  int *ud = mp_process_userdata(self);
  if (ud == NULL || *ud != 42)
    return 1;
  if (strcmp(mp_process_name(self), "runner") != 0)
    return 2;
  if (mp_current_process() != self)
    return 3;
  if (mp_process_arg(self) != (void *)ud)
    return 4;
  return 9;
}

/* ---- cases: running ------------------------------------------------------ */

static void target_style(void **state) {
  (void)state;
  int value = 0;
  mp_process *p;
  assert_rc(mp_process_new(&p, return_arg_int, &value, NULL), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
}

static void run_callback_style(void **state) {
  (void)state;
  int ud = 42;
  mp_process *p;
  mp_process_opts o = {.name = "runner", .run = run_callback, .userdata = &ud};
  assert_rc(mp_process_new(&p, NULL, &ud, &o), 0);
  assert_ptr_equal(mp_process_userdata(p), &ud);
  assert_int_equal(mp_test_start_join(p), 9);
  mp_process_free(p);
}

static void run_in_caller(void **state) {
  (void)state;
  int value = 17;
  mp_process *p;
  assert_rc(mp_process_new(&p, return_arg_int, &value, NULL), 0);
  assert_int_equal(mp_process_run(p), 17);
  /* run() starts nothing. */
  assert_rc(mp_process_join(p, 0), MP_ESTATE);
  mp_process_free(p);
}

static void no_target_exits_zero(void **state) {
  (void)state;
  mp_process *p;
  assert_rc(mp_process_new(&p, NULL, NULL, NULL), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
}

struct pair {
  int a, b;
};

static int sum_pair(void *arg) {
  struct pair *pr = arg;
  return pr->a + pr->b;
}

static void fork_passes_pointer(void **state) {
  (void)state;
  struct pair pr = {20, 22};
  mp_process *p;
  assert_rc(mp_process_new(&p, sum_pair, &pr, NULL), 0);
  assert_ptr_equal(mp_process_arg(p), &pr);
  assert_int_equal(mp_test_start_join(p), 42);
  mp_process_free(p);
}

/* ---- cases: names and identity ------------------------------------------ */

static void default_names(void **state) {
  (void)state;
  assert_string_equal(mp_process_name(mp_current_process()), "MainProcess");
  mp_process *a, *b;
  assert_rc(mp_process_new(&a, NULL, NULL, NULL), 0);
  assert_rc(mp_process_new(&b, NULL, NULL, NULL), 0);
  unsigned na = 0, nb = 0;
  assert_int_equal(sscanf(mp_process_name(a), "Process-%u", &na), 1);
  assert_int_equal(sscanf(mp_process_name(b), "Process-%u", &nb), 1);
  assert_true(na >= 1);
  assert_int_equal(nb, na + 1);
  char want[32];
  snprintf(want, sizeof want, "Process-%u", na);
  assert_string_equal(mp_process_name(a), want);
  mp_process_free(a);
  mp_process_free(b);
}

static int report_name(void *arg) {
  int fd = *(int *)arg;
  char buf[300];
  mp_process *parent = mp_parent_process();
  snprintf(buf, sizeof buf, "%s|%s", mp_process_name(mp_current_process()),
           parent ? mp_process_name(parent) : "(none)");
  write_full(fd, buf, strlen(buf) + 1);
  return 0;
}

/* The child starts a grandchild, which reports its own name and its
 * parent's: "Process-N:1|Process-N". */
static int start_grandchild(void *arg) {
  mp_process *g;
  if (mp_process_new(&g, report_name, arg, NULL) != 0)
    return 10;
  if (mp_process_start(g) != 0)
    return 11;
  if (mp_process_join(g, 30) != 0)
    return 12;
  int code = -1;
  mp_process_exitcode(g, &code);
  mp_process_free(g);
  return code == 0 ? 0 : 13;
}

static void nested_names(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  mp_process *p;
  assert_rc(mp_process_new(&p, start_grandchild, &fds[1], NULL), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  close(fds[1]);
  char buf[300] = {0};
  read_full(fds[0], buf, sizeof buf - 1, 5);
  close(fds[0]);
  char want[300];
  snprintf(want, sizeof want, "%s:1|%s", mp_process_name(p),
           mp_process_name(p));
  assert_string_equal(buf, want);
  assert_non_null(strstr(buf, "Process-"));
  mp_process_free(p);
}

static void set_name(void **state) {
  (void)state;
  mp_process *p;
  mp_process_opts o = {.name = "first"};
  assert_rc(mp_process_new(&p, report_name, NULL, &o), 0);
  assert_string_equal(mp_process_name(p), "first");
  assert_rc(mp_process_set_name(p, "second"), 0);
  assert_string_equal(mp_process_name(p), "second");
  char longname[300];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_rc(mp_process_set_name(p, longname), MP_EINVAL);
  assert_string_equal(mp_process_name(p), "second");
  mp_process *q = (void *)1;
  o.name = longname;
  assert_rc(mp_process_new(&q, NULL, NULL, &o), MP_EINVAL);
  assert_ptr_equal(q, (void *)1);
  mp_process_free(p);
}

static void name_reaches_child(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  mp_process *p;
  mp_process_opts o = {.name = "worker"};
  assert_rc(mp_process_new(&p, report_name, &fds[1], &o), 0);
  assert_rc(mp_process_set_name(p, "renamed"), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  close(fds[1]);
  char buf[300] = {0};
  read_full(fds[0], buf, sizeof buf - 1, 5);
  close(fds[0]);
  assert_string_equal(buf, "renamed|MainProcess");
  mp_process_free(p);
}

static void pid_ident_daemon_userdata(void **state) {
  (void)state;
  int ud = 5;
  double s = 30;
  mp_process *p;
  mp_process_opts o = {.userdata = &ud};
  assert_rc(mp_process_new(&p, sleep_seconds, &s, &o), 0);
  assert_int_equal(mp_process_pid(p), 0);
  assert_int_equal(mp_process_ident(p), 0);
  assert_int_equal(mp_process_sentinel(p), -1);
  assert_int_equal(mp_process_daemon(p), 0);
  assert_rc(mp_process_set_daemon(p, 1), 0);
  assert_int_equal(mp_process_daemon(p), 1);
  assert_ptr_equal(mp_process_userdata(p), &ud);
  assert_rc(mp_process_start(p), 0);
  assert_true(mp_process_pid(p) > 0);
  assert_int_equal(mp_process_ident(p), mp_process_pid(p));
  assert_true(mp_process_sentinel(p) >= 0);
  assert_rc(mp_process_set_daemon(p, 0), MP_ESTATE);
  assert_int_equal(mp_process_daemon(p), 1);
  assert_rc(mp_process_kill(p), 0);
  assert_rc(mp_process_join(p, 30), 0);
  mp_process_free(p);
}

/* ---- cases: exit codes and exit information ----------------------------- */

static void exit_status_values(void **state) {
  (void)state;
  int values[] = {0, 3, 255};
  for (size_t i = 0; i < 3; i++) {
    mp_process *p;
    assert_rc(mp_process_new(&p, return_arg_int, &values[i], NULL), 0);
    assert_int_equal(mp_test_start_join(p), values[i]);
    mp_exit_info info;
    assert_rc(mp_process_exit_info(p, &info), 0);
    assert_int_equal(info.exitcode, values[i]);
    assert_int_equal(info.status, values[i]);
    assert_int_equal(info.signal, 0);
    assert_string_equal(info.signal_name, "");
    assert_string_equal(info.message, "");
    mp_process_free(p);
  }
}

static int raise_signal(void *arg) {
  int sig = *(int *)arg;
  crash_setup(sig);
  if (sig == SIGABRT)
    abort();
  raise(sig);
  return 0;
}

/* G-PROC-1: the parent learns why a child ended (signal and its name). */
static void check_killed_by(int sig, const char *name) {
  mp_process *p;
  assert_rc(mp_process_new(&p, raise_signal, &sig, NULL), 0);
  assert_int_equal(mp_test_start_join(p), -sig);
  mp_exit_info info;
  assert_rc(mp_process_exit_info(p, &info), 0);
  assert_int_equal(info.exitcode, -sig);
  assert_int_equal(info.signal, sig);
  assert_int_equal(info.status, 0);
  assert_string_equal(info.signal_name, name);
  mp_process_free(p);
}

static void killed_by_sigkill(void **state) {
  (void)state;
  check_killed_by(SIGKILL, "SIGKILL");
}

static void killed_by_sigsegv(void **state) {
  (void)state;
  check_killed_by(SIGSEGV, "SIGSEGV");
}

static void killed_by_abort(void **state) {
  (void)state;
  check_killed_by(SIGABRT, "SIGABRT");
}

static int fail_with_message(void *arg) {
  (void)arg;
  if (mp_process_set_error("could not open the input: no such file") != 0)
    return 2;
  return 7;
}

/* G-PROC-1: the message a child set reaches its parent. */
static void set_error_reaches_parent(void **state) {
  (void)state;
  /* Not a child multiproc started: nowhere to report to. */
  assert_rc(mp_process_set_error("x"), MP_ESTATE);
  mp_process *p;
  assert_rc(mp_process_new(&p, fail_with_message, NULL, NULL), 0);
  assert_int_equal(mp_test_start_join(p), 7);
  mp_exit_info info;
  assert_rc(mp_process_exit_info(p, &info), 0);
  assert_string_equal(info.message, "could not open the input: no such file");
  mp_process_free(p);
}

static int long_message(void *arg) {
  (void)arg;
  char msg[600];
  memset(msg, 'm', sizeof msg - 1);
  msg[sizeof msg - 1] = '\0';
  mp_process_set_error(msg);
  return 0;
}

static void set_error_truncates(void **state) {
  (void)state;
  mp_process *p;
  assert_rc(mp_process_new(&p, long_message, NULL, NULL), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_exit_info info;
  assert_rc(mp_process_exit_info(p, &info), 0);
  assert_int_equal(strlen(info.message), 255);
  mp_process_free(p);
}

static void signal_names(void **state) {
  (void)state;
  assert_string_equal(mp_signal_name(SIGKILL), "SIGKILL");
  assert_string_equal(mp_signal_name(SIGSEGV), "SIGSEGV");
  assert_string_equal(mp_signal_name(SIGABRT), "SIGABRT");
  assert_string_equal(mp_signal_name(SIGTERM), "SIGTERM");
  assert_string_equal(mp_signal_name(SIGINT), "SIGINT");
  assert_string_equal(mp_signal_name(SIGRTMIN), "SIGRTMIN");
  assert_string_equal(mp_signal_name(SIGRTMIN + 2), "SIGRTMIN+2");
  assert_string_equal(mp_signal_name(SIGRTMAX), "SIGRTMAX");
  assert_string_equal(mp_signal_name(0), "SIG?");
  assert_string_equal(mp_signal_name(-3), "SIG?");
  assert_string_equal(mp_signal_name(1000), "SIG?");
}

/* ---- cases: waiting and state -------------------------------------------- */

static void join_timeout_then_terminate(void **state) {
  (void)state;
  mp_process *p;
  assert_rc(mp_process_new(&p, forever, NULL, NULL), 0);
  assert_rc(mp_process_start(p), 0);
  double t0 = mp_test_now();
  assert_rc(mp_process_join(p, 0.2), MP_ETIMEDOUT);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.19);
  assert_true(took < 10);
  assert_rc(mp_process_join(p, 0), MP_ETIMEDOUT);
  int code;
  assert_rc(mp_process_exitcode(p, &code), MP_EAGAIN);
  assert_rc(mp_process_terminate(p), 0);
  assert_rc(mp_process_join(p, 30), 0);
  assert_rc(mp_process_exitcode(p, &code), 0);
  assert_int_equal(code, -SIGTERM);
  /* Reaped: no signal may reach a pid that could be someone else's. */
  assert_rc(mp_process_terminate(p), MP_ESTATE);
  assert_rc(mp_process_kill(p), MP_ESTATE);
  mp_process_free(p);
}

static void join_before_start(void **state) {
  (void)state;
  mp_process *p;
  assert_rc(mp_process_new(&p, NULL, NULL, NULL), 0);
  assert_rc(mp_process_join(p, 0), MP_ESTATE);
  assert_rc(mp_process_join(p, 1), MP_ESTATE);
  int code;
  assert_rc(mp_process_exitcode(p, &code), MP_ESTATE);
  assert_rc(mp_process_terminate(p), MP_ESTATE);
  assert_int_equal(mp_process_is_alive(p), 0);
  mp_process_free(p);
}

static void join_self(void **state) {
  (void)state;
  assert_rc(mp_process_join(mp_current_process(), 0), MP_EDEADLK);
  assert_null(mp_parent_process());
}

static void start_twice(void **state) {
  (void)state;
  mp_process *p;
  assert_rc(mp_process_new(&p, NULL, NULL, NULL), 0);
  assert_rc(mp_process_start(p), 0);
  assert_rc(mp_process_start(p), MP_ESTATE);
  assert_rc(mp_process_join(p, 30), 0);
  assert_rc(mp_process_start(p), MP_ESTATE);
  mp_process_free(p);
}

static void close_while_running(void **state) {
  (void)state;
  mp_process *p;
  assert_rc(mp_process_new(&p, forever, NULL, NULL), 0);
  assert_rc(mp_process_start(p), 0);
  assert_rc(mp_process_close(p), MP_ESTATE);
  assert_true(mp_process_sentinel(p) >= 0);
  assert_rc(mp_process_kill(p), 0);
  assert_rc(mp_process_join(p, 30), 0);
  assert_rc(mp_process_close(p), 0);
  assert_rc(mp_process_close(p), 0);
  assert_int_equal(mp_process_sentinel(p), -1);
  int code;
  assert_rc(mp_process_exitcode(p, &code), MP_ESTATE);
  assert_rc(mp_process_join(p, 0), MP_ESTATE);
  assert_rc(mp_process_start(p), MP_ESTATE);
  mp_process_free(p);
  mp_process_free(NULL);
}

static void is_alive_transitions(void **state) {
  (void)state;
  mp_process *p;
  double s = 30;
  assert_rc(mp_process_new(&p, sleep_seconds, &s, NULL), 0);
  assert_int_equal(mp_process_is_alive(p), 0);
  assert_rc(mp_process_start(p), 0);
  assert_int_equal(mp_process_is_alive(p), 1);
  assert_rc(mp_process_terminate(p), 0);
  double end = mp_test_now() + 30;
  while (mp_process_is_alive(p) == 1 && mp_test_now() < end)
    usleep(1000);
  assert_int_equal(mp_process_is_alive(p), 0);
  /* is_alive reaped it: join returns at once. */
  assert_rc(mp_process_join(p, 0), 0);
  mp_process_free(p);
}

static void sentinel_readable_at_end(void **state) {
  (void)state;
  mp_process *p;
  assert_rc(mp_process_new(&p, forever, NULL, NULL), 0);
  assert_rc(mp_process_start(p), 0);
  int fd = mp_process_sentinel(p);
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  assert_int_equal(poll(&pfd, 1, 0), 0);
  assert_rc(mp_process_kill(p), 0);
  assert_int_equal(poll(&pfd, 1, 30000), 1);
  assert_rc(mp_process_join(p, 30), 0);
  mp_process_free(p);
}

struct joiner {
  mp_process *p;
  int rc;
};

static void *join_thread(void *arg) {
  struct joiner *j = arg;
  j->rc = mp_process_join(j->p, 30);
  return NULL;
}

static void join_from_threads(void **state) {
  (void)state;
  double s = 0.3;
  mp_process *p;
  assert_rc(mp_process_new(&p, sleep_seconds, &s, NULL), 0);
  assert_rc(mp_process_start(p), 0);
  struct joiner j[3];
  pthread_t t[3];
  for (int i = 0; i < 3; i++) {
    j[i] = (struct joiner){.p = p, .rc = -1};
    assert_int_equal(pthread_create(&t[i], NULL, join_thread, &j[i]), 0);
  }
  for (int i = 0; i < 3; i++) {
    pthread_join(t[i], NULL);
    assert_rc(j[i].rc, 0);
  }
  int code;
  assert_rc(mp_process_exitcode(p, &code), 0);
  assert_int_equal(code, 0);
  mp_process_free(p);
}

struct starter {
  mp_process *p;
  pthread_barrier_t *go;
  int rc;
};

static void *start_thread(void *arg) {
  struct starter *st = arg;
  pthread_barrier_wait(st->go);
  st->rc = mp_process_start(st->p);
  return NULL;
}

static void start_race_from_threads(void **state) {
  (void)state;
  for (int round = 0; round < 20; round++) {
    mp_process *p;
    assert_rc(mp_process_new(&p, NULL, NULL, NULL), 0);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 3);
    struct starter st[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
      st[i] = (struct starter){.p = p, .go = &go, .rc = 1};
      assert_int_equal(pthread_create(&t[i], NULL, start_thread, &st[i]),
                       0);
    }
    int started = 0;
    for (int i = 0; i < 3; i++) {
      pthread_join(t[i], NULL);
      if (st[i].rc == 0)
        started++;
      else
        assert_rc(st[i].rc, MP_ESTATE);
    }
    pthread_barrier_destroy(&go);
    assert_int_equal(started, 1);
    assert_rc(mp_process_join(p, 30), 0);
    mp_process_free(p);
  }
}

static void active_children(void **state) {
  (void)state;
  mp_process *out[8];
  assert_int_equal(mp_active_children(out, 8), 0);
  mp_process *a, *b;
  assert_rc(mp_process_new(&a, forever, NULL, NULL), 0);
  assert_rc(mp_process_new(&b, forever, NULL, NULL), 0);
  assert_rc(mp_process_start(a), 0);
  assert_rc(mp_process_start(b), 0);
  ssize_t n = mp_active_children(out, 8);
  assert_int_equal(n, 2);
  assert_true((out[0] == a && out[1] == b) || (out[0] == b && out[1] == a));
  assert_int_equal(mp_active_children(out, 1), 2);
  assert_int_equal(mp_active_children(NULL, 0), 2);
  assert_rc(mp_process_kill(a), 0);
  double end = mp_test_now() + 30;
  while (mp_active_children(out, 8) != 1 && mp_test_now() < end)
    usleep(1000);
  assert_int_equal(mp_active_children(out, 8), 1);
  assert_ptr_equal(out[0], b);
  assert_rc(mp_process_kill(b), 0);
  assert_rc(mp_process_join(b, 30), 0);
  assert_int_equal(mp_active_children(out, 8), 0);
  /* active_children reaped a: its exit code is there. */
  int code;
  assert_rc(mp_process_exitcode(a, &code), 0);
  assert_int_equal(code, -SIGKILL);
  mp_process_free(a);
  mp_process_free(b);
}

/* A copy of a process object in a forked child is not the child's to
 * join or signal. */
static int use_parents_object(void *arg) {
  mp_process *sibling = arg;
  if (mp_process_join(sibling, 0) != MP_EPERM)
    return 1;
  if (mp_process_terminate(sibling) != MP_EPERM)
    return 2;
  if (mp_process_is_alive(sibling) != MP_EPERM)
    return 3;
  mp_process *out[4];
  if (mp_active_children(out, 4) != 0)
    return 4;
  return 0;
}

static void child_does_not_own_siblings(void **state) {
  (void)state;
  mp_process *sibling, *p;
  assert_rc(mp_process_new(&sibling, forever, NULL, NULL), 0);
  assert_rc(mp_process_start(sibling), 0);
  assert_rc(mp_process_new(&p, use_parents_object, sibling, NULL), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  assert_rc(mp_process_kill(sibling), 0);
  assert_rc(mp_process_join(sibling, 30), 0);
  mp_process_free(p);
  mp_process_free(sibling);
}

/* ---- cases: records, cpu_count ------------------------------------------- */

static int check_records(void *arg) {
  pid_t parent_pid = *(pid_t *)arg;
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
  if (mp_process_join(parent, 0) != MP_ESTATE)
    return 5;
  if (mp_process_pid(me) != getpid())
    return 6;
  if (strcmp(mp_process_name(me), "checker") != 0)
    return 7;
  if (mp_process_daemon(me) != 1)
    return 8;
  if (mp_process_is_alive(me) != 1)
    return 9;
  if (mp_process_join(me, 0) != MP_EDEADLK)
    return 10;
  return 0;
}

static void current_and_parent_in_child(void **state) {
  (void)state;
  pid_t self = getpid();
  mp_process *p;
  mp_process_opts o = {.name = "checker", .daemon = 1};
  assert_rc(mp_process_new(&p, check_records, &self, &o), 0);
  assert_int_equal(mp_test_start_join(p), 0);
  mp_process_free(p);
  assert_int_equal(mp_process_pid(mp_current_process()), getpid());
  assert_null(mp_parent_process());
}

static void cpu_count_matches_affinity(void **state) {
  (void)state;
  cpu_set_t set;
  CPU_ZERO(&set);
  assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
  assert_int_equal(mp_cpu_count(), CPU_COUNT(&set));
  assert_true(mp_cpu_count() >= 1);
}

static int restricted_cpu_count(void *arg) {
  (void)arg;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return 100;
  int first = -1;
  for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
    if (CPU_ISSET(i, &set))
      first = i;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  if (sched_setaffinity(0, sizeof one, &one) != 0)
    return 101;
  return mp_cpu_count();
}

static void cpu_count_in_restricted_child(void **state) {
  (void)state;
  mp_process *p;
  assert_rc(mp_process_new(&p, restricted_cpu_count, NULL, NULL), 0);
  assert_int_equal(mp_test_start_join(p), 1);
  mp_process_free(p);
}

/* ---- cases: children when the parent exits or dies ---------------------- */

static int report_pid_then_wait(void *arg) {
  int fd = *(int *)arg;
  pid_t me = getpid();
  write_full(fd, &me, sizeof me);
  for (;;)
    pause();
  return 0;
}

/* The middle process starts a daemonic child and waits to be killed. */
static int middle_with_daemon(void *arg) {
  mp_process *p;
  mp_process_opts o = {.daemon = 1};
  if (mp_process_new(&p, report_pid_then_wait, arg, &o) != 0 ||
      mp_process_start(p) != 0)
    return 1;
  for (;;)
    pause();
  return 0;
}

static bool wait_gone(pid_t pid, double timeout) {
  double end = mp_test_now() + timeout;
  while (mp__os_pid_alive(pid)) {
    if (mp_test_now() > end)
      return false;
    usleep(2000);
  }
  return true;
}

/* G-PROC-2: a daemonic child dies with its parent, even by SIGKILL. */
static void daemon_dies_with_killed_parent(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t middle = mp_test_fork(middle_with_daemon, &fds[1]);
  close(fds[1]);
  pid_t grandchild = 0;
  size_t got = read_full(fds[0], &grandchild, sizeof grandchild, 30);
  close(fds[0]);
  kill(middle, SIGKILL);
  int st = mp_test_wait(middle, 30);
  assert_true(st != -1 && WIFSIGNALED(st));
  assert_int_equal(got, sizeof grandchild);
  bool gone = wait_gone(grandchild, 10);
  if (!gone)
    kill(grandchild, SIGKILL);
  assert_true(gone);
}

struct exit_pipes {
  int daemon_pid_w; /* the daemonic child's pid, forwarded by the middle */
  int done_w;       /* one byte per non-daemonic child that finished */
};

static int report_pid_to_middle(void *arg) {
  return report_pid_then_wait(arg);
}

static int finish_late(void *arg) {
  struct exit_pipes *ep = arg;
  struct timespec ts = {0, 300 * 1000 * 1000};
  nanosleep(&ts, NULL);
  write_full(ep->done_w, "x", 1);
  return 0;
}

/* The middle starts a daemonic child and two non-daemonic ones (freeing
 * one of them while it runs), then exits normally. */
static int middle_exits(void *arg) {
  struct exit_pipes *ep = arg;
  int inner[2];
  if (pipe(inner) != 0)
    return 1;
  mp_process *d, *a, *b;
  mp_process_opts o = {.daemon = 1};
  if (mp_process_new(&d, report_pid_to_middle, &inner[1], &o) != 0 ||
      mp_process_start(d) != 0)
    return 2;
  pid_t dpid = 0;
  if (read_full(inner[0], &dpid, sizeof dpid, 30) != sizeof dpid)
    return 3;
  write_full(ep->daemon_pid_w, &dpid, sizeof dpid);
  if (mp_process_new(&a, finish_late, ep, NULL) != 0 ||
      mp_process_start(a) != 0)
    return 4;
  if (mp_process_new(&b, finish_late, ep, NULL) != 0 ||
      mp_process_start(b) != 0)
    return 5;
  mp_process_free(b);
  exit(0);
}

static void exit_terminates_daemons_joins_others(void **state) {
  (void)state;
  int pid_pipe[2], done_pipe[2];
  assert_int_equal(pipe(pid_pipe), 0);
  assert_int_equal(pipe(done_pipe), 0);
  struct exit_pipes ep = {pid_pipe[1], done_pipe[1]};
  pid_t middle = mp_test_fork(middle_exits, &ep);
  close(pid_pipe[1]);
  close(done_pipe[1]);
  pid_t daemon_pid = 0;
  size_t got = read_full(pid_pipe[0], &daemon_pid, sizeof daemon_pid, 30);
  mp_test_wait_exit(middle, 0, 60);
  assert_int_equal(got, sizeof daemon_pid);
  /* Both non-daemonic children finished before the middle was gone. */
  char done[4] = {0};
  assert_int_equal(fcntl(done_pipe[0], F_SETFL, O_NONBLOCK), 0);
  assert_int_equal(read(done_pipe[0], done, sizeof done), 2);
  assert_memory_equal(done, "xx", 2);
  /* The daemonic one was terminated and reaped by the middle. */
  bool gone = wait_gone(daemon_pid, 10);
  if (!gone)
    kill(daemon_pid, SIGKILL);
  assert_true(gone);
  close(pid_pipe[0]);
  close(done_pipe[0]);
}

/* ---- cases: contexts, failure injection ---------------------------------- */

static void fork_context(void **state) {
  (void)state;
  assert_int_equal(mp_context_method(NULL), MP_START_FORK);
  assert_string_equal(mp_start_method_name(MP_START_FORK), "fork");
  assert_string_equal(mp_start_method_name(MP_START_SPAWN), "spawn");
  assert_string_equal(mp_start_method_name(MP_START_FORKSERVER),
                      "forkserver");
  mp_context *ctx;
  assert_rc(mp_context_new(&ctx, (mp_start_method)7), MP_EINVAL);
  assert_rc(mp_context_new(NULL, MP_START_FORK), MP_EINVAL);
  assert_rc(mp_context_new(&ctx, MP_START_FORK), 0);
  assert_int_equal(mp_context_method(ctx), MP_START_FORK);
  int v = 12;
  mp_process *p;
  mp_process_opts o = {.context = ctx};
  assert_rc(mp_process_new(&p, return_arg_int, &v, &o), 0);
  assert_int_equal(mp_test_start_join(p), 12);
  mp_process_free(p);
  mp_context_free(ctx);
  mp_context_free(NULL);
}

static void bad_arguments(void **state) {
  (void)state;
  mp_process *p;
  assert_rc(mp_process_new(NULL, NULL, NULL, NULL), MP_EINVAL);
  mp_process_opts o = {.arg_size = 4};
  assert_rc(mp_process_new(&p, return_arg_int, NULL, &o), MP_EINVAL);
  assert_rc(mp_process_start(NULL), MP_EINVAL);
  assert_rc(mp_process_join(NULL, 0), MP_EINVAL);
  assert_rc(mp_process_close(NULL), MP_EINVAL);
  assert_rc(mp_process_set_error(NULL), MP_EINVAL);
  assert_rc(mp_process_is_alive(NULL), MP_EINVAL);
  assert_rc(mp_process_start(mp_current_process()), MP_ESTATE);
  mp_process_free(mp_current_process()); /* a no-op: the library's record */
  assert_string_equal(mp_process_name(mp_current_process()), "MainProcess");
}

static void alloc_failure_in_new(void **state) {
  (void)state;
  mp_process_opts o = {.name = "named"};
  for (int pass = 0; pass < 2; pass++) {
    int failures = 0;
    for (long n = 1; n < 50; n++) {
      mp_process *p = (mp_process *)1;
      mp__alloc_fail_after(n);
      int rc = mp_process_new(&p, NULL, NULL, pass ? &o : NULL);
      mp__alloc_fail_after(0);
      if (rc == 0) {
        assert_non_null(p);
        mp_process_free(p);
        break;
      }
      assert_rc(rc, MP_ENOMEM);
      assert_ptr_equal(p, (mp_process *)1); /* untouched */
      failures++;
    }
    assert_true(failures >= 2);
  }
}

static void alloc_failure_in_start(void **state) {
  (void)state;
  int v = 6;
  mp_process *p;
  assert_rc(mp_process_new(&p, return_arg_int, &v, NULL), 0);
  int failures = 0, rc = -1;
  for (long n = 1; n < 50 && rc != 0; n++) {
    mp__alloc_fail_after(n);
    rc = mp_process_start(p);
    mp__alloc_fail_after(0);
    if (rc != 0) {
      assert_rc(rc, MP_ENOMEM);
      assert_int_equal(mp_process_pid(p), 0);
      failures++;
    }
  }
  assert_true(failures >= 1);
  assert_rc(mp_process_join(p, 30), 0);
  int code;
  assert_rc(mp_process_exitcode(p, &code), 0);
  assert_int_equal(code, 6);
  mp_process_free(p);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(target_style),
    cmocka_unit_test(run_callback_style),
    cmocka_unit_test(run_in_caller),
    cmocka_unit_test(no_target_exits_zero),
    cmocka_unit_test(fork_passes_pointer),
    cmocka_unit_test(default_names),
    cmocka_unit_test(nested_names),
    cmocka_unit_test(set_name),
    cmocka_unit_test(name_reaches_child),
    cmocka_unit_test(pid_ident_daemon_userdata),
    cmocka_unit_test(exit_status_values),
    cmocka_unit_test(killed_by_sigkill),
    cmocka_unit_test(killed_by_sigsegv),
    cmocka_unit_test(killed_by_abort),
    cmocka_unit_test(set_error_reaches_parent),
    cmocka_unit_test(set_error_truncates),
    cmocka_unit_test(signal_names),
    cmocka_unit_test(join_timeout_then_terminate),
    cmocka_unit_test(join_before_start),
    cmocka_unit_test(join_self),
    cmocka_unit_test(start_twice),
    cmocka_unit_test(close_while_running),
    cmocka_unit_test(is_alive_transitions),
    cmocka_unit_test(sentinel_readable_at_end),
    cmocka_unit_test(join_from_threads),
    cmocka_unit_test(start_race_from_threads),
    cmocka_unit_test(active_children),
    cmocka_unit_test(child_does_not_own_siblings),
    cmocka_unit_test(current_and_parent_in_child),
    cmocka_unit_test(cpu_count_matches_affinity),
    cmocka_unit_test(cpu_count_in_restricted_child),
    cmocka_unit_test(daemon_dies_with_killed_parent),
    cmocka_unit_test(exit_terminates_daemons_joins_others),
    cmocka_unit_test(fork_context),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(alloc_failure_in_new),
    cmocka_unit_test(alloc_failure_in_start),
};

MP_TEST_MAIN(tests)
