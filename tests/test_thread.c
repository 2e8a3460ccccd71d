/* test_thread.c - threads: target and run styles, names, join with a
 * timeout, daemon inheritance, enumerate/active_count, Dummy records for
 * foreign threads, freeing a running thread, pthread_exit, fork (only the
 * calling thread survives, and becomes the main thread) and the exit rule
 * (non-daemonic threads are joined at normal exit, daemonic ones are not).
 *
 * cmocka's assertions may only run in the test's own thread: helper
 * threads record what they saw, and the case checks it after joining. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h" /* mp__alloc_fail_after */

static pid_t sys_gettid(void) { return (pid_t)syscall(SYS_gettid); }

/* A gate a helper thread waits at until the case opens it, bounded so no
 * case hangs if an assertion fails before the gate opens. */
typedef struct gate {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int open;
} gate;

static void gate_init(gate *g) {
  pthread_mutex_init(&g->lock, NULL);
  pthread_cond_init(&g->cond, NULL);
  g->open = 0;
}

static void gate_open(gate *g) {
  pthread_mutex_lock(&g->lock);
  g->open = 1;
  pthread_cond_broadcast(&g->cond);
  pthread_mutex_unlock(&g->lock);
}

static void gate_pass(gate *g) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 60;
  pthread_mutex_lock(&g->lock);
  while (!g->open)
    if (pthread_cond_timedwait(&g->cond, &g->lock, &ts) != 0)
      break;
  pthread_mutex_unlock(&g->lock);
}

static void gate_destroy(gate *g) {
  pthread_mutex_destroy(&g->lock);
  pthread_cond_destroy(&g->cond);
}

/* ---- target and run styles ---------------------------------------------- */

typedef struct seen {
  int value;
  mp_thread *current;
  pid_t tid;
  int alive_inside;
  int daemon_inside;
  const char *name_inside;
} seen;

static void store_arg(void *arg) {
  seen *s = arg;
  s->value = 23;
  s->current = mp_current_thread();
  s->tid = sys_gettid();
  s->alive_inside = mp_thread_is_alive(s->current);
}

static void target_runs_with_arg(void **state) {
  (void)state;
  seen s = {0};
  mp_thread *t;
  assert_rc(mp_thread_new(&t, store_arg, &s, NULL), 0);
  assert_int_equal(mp_thread_is_alive(t), 0);
  assert_int_equal(mp_thread_ident(t), 0);
  assert_rc(mp_thread_start(t), 0);
  assert_true(mp_thread_ident(t) > 0);
  assert_rc(mp_thread_join(t, MP_FOREVER), 0);
  assert_int_equal(mp_thread_is_alive(t), 0);
  assert_int_equal(s.value, 23);
  assert_ptr_equal(s.current, t);
  assert_int_equal(s.alive_inside, 1);
  assert_int_equal(mp_thread_ident(t), s.tid);
  assert_int_not_equal(s.tid, getpid());
  /* Joining an ended thread again returns at once. */
  assert_rc(mp_thread_join(t, 0), 0);
  mp_thread_free(t);
}

static void run_store(mp_thread *self) {
  seen *s = mp_thread_userdata(self);
  s->value = 56;
  s->current = mp_current_thread();
  s->name_inside = mp_thread_name(self);
}

static void run_callback_style(void **state) {
  (void)state;
  seen s = {0};
  mp_thread *t;
  mp_thread_opts o = {.run = run_store, .userdata = &s, .name = "MyThread"};
  /* The run callback is called instead of the target. */
  assert_rc(mp_thread_new(&t, store_arg, NULL, &o), 0);
  assert_ptr_equal(mp_thread_userdata(t), &s);
  assert_rc(mp_thread_start(t), 0);
  assert_rc(mp_thread_join(t, mp_test_slack(30)), 0);
  assert_int_equal(s.value, 56);
  assert_ptr_equal(s.current, t);
  assert_string_equal(s.name_inside, "MyThread");
  mp_thread_free(t);
}

static void run_in_calling_thread(void **state) {
  (void)state;
  seen s = {0};
  mp_thread *t;
  assert_rc(mp_thread_new(&t, store_arg, &s, NULL), 0);
  mp_thread_run(t);
  assert_int_equal(s.value, 23);
  assert_int_equal(s.tid, sys_gettid());
  /* run() is not start(): the object was never started. */
  assert_int_equal(mp_thread_is_alive(t), 0);
  assert_rc(mp_thread_join(t, 0), MP_ESTATE);
  mp_thread_free(t);
  /* A thread without target or run does nothing, as Python's Thread(). */
  assert_rc(mp_thread_new(&t, NULL, NULL, NULL), 0);
  assert_rc(mp_thread_start(t), 0);
  assert_rc(mp_thread_join(t, mp_test_slack(30)), 0);
  mp_thread_free(t);
}

/* ---- names ---------------------------------------------------------------- */

static int name_number(const char *name, const char *prefix) {
  size_t n = strlen(prefix);
  if (strncmp(name, prefix, n) != 0)
    return -1;
  return atoi(name + n);
}

static void names(void **state) {
  (void)state;
  mp_thread *a, *b, *c;
  assert_rc(mp_thread_new(&a, NULL, NULL, NULL), 0);
  mp_thread_opts o = {.name = "worker"};
  assert_rc(mp_thread_new(&b, NULL, NULL, &o), 0);
  assert_rc(mp_thread_new(&c, NULL, NULL, NULL), 0);
  int na = name_number(mp_thread_name(a), "Thread-");
  int nc = name_number(mp_thread_name(c), "Thread-");
  assert_true(na >= 1);
  /* A given name does not use up a number, as in Python. */
  assert_int_equal(nc, na + 1);
  assert_string_equal(mp_thread_name(b), "worker");
  assert_rc(mp_thread_set_name(a, "renamed"), 0);
  assert_string_equal(mp_thread_name(a), "renamed");
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_rc(mp_thread_set_name(a, big), MP_EINVAL);
  assert_rc(mp_thread_set_name(a, NULL), MP_EINVAL);
  o.name = big;
  mp_thread *d = NULL;
  assert_rc(mp_thread_new(&d, NULL, NULL, &o), MP_EINVAL);
  assert_null(d);
  assert_rc(mp_thread_new(NULL, NULL, NULL, NULL), MP_EINVAL);
  mp_thread_free(a);
  mp_thread_free(b);
  mp_thread_free(c);
  mp_thread_free(NULL);
}

static void main_thread_record(void **state) {
  (void)state;
  mp_thread *m = mp_main_thread();
  assert_non_null(m);
  assert_ptr_equal(mp_current_thread(), m);
  assert_string_equal(mp_thread_name(m), "MainThread");
  assert_int_equal(mp_thread_ident(m), getpid());
  assert_int_equal(mp_thread_is_alive(m), 1);
  assert_int_equal(mp_thread_daemon(m), 0);
  /* The library owns it: it cannot be started, re-flagged or freed. */
  assert_rc(mp_thread_start(m), MP_ESTATE);
  assert_rc(mp_thread_set_daemon(m, 1), MP_ESTATE);
  assert_rc(mp_thread_join(m, 0), MP_EDEADLK);
  mp_thread_free(m);
  assert_ptr_equal(mp_main_thread(), m);
  assert_string_equal(mp_thread_name(m), "MainThread");
}

/* ---- join ----------------------------------------------------------------- */

static void wait_at_gate(void *arg) { gate_pass(arg); }

static void join_with_timeout(void **state) {
  (void)state;
  gate g;
  gate_init(&g);
  mp_thread *t;
  assert_rc(mp_thread_new(&t, wait_at_gate, &g, NULL), 0);
  assert_rc(mp_thread_join(t, 0.1), MP_ESTATE);
  assert_rc(mp_thread_start(t), 0);
  double t0 = mp_test_now();
  assert_rc(mp_thread_join(t, 0), MP_ETIMEDOUT);
  assert_rc(mp_thread_join(t, 0.2), MP_ETIMEDOUT);
  double waited = mp_test_now() - t0;
  assert_true(waited >= 0.19);
  assert_true(waited < mp_test_slack(10));
  assert_int_equal(mp_thread_is_alive(t), 1);
  gate_open(&g);
  assert_rc(mp_thread_join(t, mp_test_slack(30)), 0);
  assert_int_equal(mp_thread_is_alive(t), 0);
  mp_thread_free(t);
  gate_destroy(&g);
}

typedef struct self_join {
  mp_thread *t;
  int rc;
} self_join;

static void join_myself(void *arg) {
  self_join *s = arg;
  s->rc = mp_thread_join(mp_current_thread(), 1.0);
}

static void joiner(void *arg) {
  mp_thread *t = arg;
  (void)mp_thread_join(t, MP_FOREVER);
}

static void join_errors_and_states(void **state) {
  (void)state;
  self_join s = {0};
  mp_thread *t;
  assert_rc(mp_thread_new(&t, join_myself, &s, NULL), 0);
  assert_rc(mp_thread_start(t), 0);
  assert_rc(mp_thread_start(t), MP_ESTATE);
  assert_rc(mp_thread_set_daemon(t, 1), MP_ESTATE);
  assert_rc(mp_thread_join(t, mp_test_slack(30)), 0);
  assert_rc(s.rc, MP_EDEADLK);
  assert_rc(mp_thread_start(t), MP_ESTATE);
  mp_thread_free(t);
  assert_rc(mp_thread_join(NULL, 0), MP_EINVAL);
  assert_rc(mp_thread_start(NULL), MP_EINVAL);
  assert_rc(mp_thread_is_alive(NULL), MP_EINVAL);
}

static void many_joiners(void **state) {
  (void)state;
  gate g;
  gate_init(&g);
  mp_thread *t, *j[4];
  assert_rc(mp_thread_new(&t, wait_at_gate, &g, NULL), 0);
  assert_rc(mp_thread_start(t), 0);
  for (int i = 0; i < 4; i++) {
    assert_rc(mp_thread_new(&j[i], joiner, t, NULL), 0);
    assert_rc(mp_thread_start(j[i]), 0);
  }
  gate_open(&g);
  for (int i = 0; i < 4; i++) {
    assert_rc(mp_thread_join(j[i], mp_test_slack(30)), 0);
    mp_thread_free(j[i]);
  }
  assert_rc(mp_thread_join(t, mp_test_slack(30)), 0);
  mp_thread_free(t);
  gate_destroy(&g);
}

/* ---- daemon ----------------------------------------------------------------*/

typedef struct child_flags {
  int inherited;   /* daemon flag of a thread made with default opts */
  int forced_off;  /* ... with daemon = -1 */
  int forced_on;   /* ... with daemon = 1 */
  int set_off;     /* ... after mp_thread_set_daemon(t, 0) */
} child_flags;

static void make_children(void *arg) {
  child_flags *f = arg;
  mp_thread *t;
  mp_thread_opts off = {.daemon = -1}, on = {.daemon = 1};
  if (mp_thread_new(&t, NULL, NULL, NULL) == 0) {
    f->inherited = mp_thread_daemon(t);
    if (mp_thread_set_daemon(t, 0) == 0)
      f->set_off = mp_thread_daemon(t);
    mp_thread_free(t);
  }
  if (mp_thread_new(&t, NULL, NULL, &off) == 0) {
    f->forced_off = mp_thread_daemon(t);
    mp_thread_free(t);
  }
  if (mp_thread_new(&t, NULL, NULL, &on) == 0) {
    f->forced_on = mp_thread_daemon(t);
    mp_thread_free(t);
  }
}

static void daemon_inherited(void **state) {
  (void)state;
  mp_thread *t;
  /* Made by the main thread: not daemonic. */
  assert_rc(mp_thread_new(&t, NULL, NULL, NULL), 0);
  assert_int_equal(mp_thread_daemon(t), 0);
  mp_thread_free(t);

  child_flags f = {-1, -1, -1, -1};
  mp_thread_opts o = {.daemon = 1};
  assert_rc(mp_thread_new(&t, make_children, &f, &o), 0);
  assert_int_equal(mp_thread_daemon(t), 1);
  assert_rc(mp_thread_start(t), 0);
  assert_rc(mp_thread_join(t, mp_test_slack(30)), 0);
  mp_thread_free(t);
  assert_int_equal(f.inherited, 1);
  assert_int_equal(f.set_off, 0);
  assert_int_equal(f.forced_off, 0);
  assert_int_equal(f.forced_on, 1);

  child_flags f2 = {-1, -1, -1, -1};
  assert_rc(mp_thread_new(&t, make_children, &f2, NULL), 0);
  assert_rc(mp_thread_set_daemon(t, 0), 0);
  assert_rc(mp_thread_start(t), 0);
  assert_rc(mp_thread_join(t, mp_test_slack(30)), 0);
  mp_thread_free(t);
  assert_int_equal(f2.inherited, 0);
  assert_int_equal(f2.forced_on, 1);
}

/* ---- enumerate, active_count ---------------------------------------------- */

static int contains(mp_thread **list, ssize_t n, mp_thread *t) {
  for (ssize_t i = 0; i < n; i++)
    if (list[i] == t)
      return 1;
  return 0;
}

static void enumerate_and_active_count(void **state) {
  (void)state;
  int base = mp_thread_active_count();
  assert_true(base >= 1);
  gate g;
  gate_init(&g);
  mp_thread *t[3];
  for (int i = 0; i < 3; i++) {
    assert_rc(mp_thread_new(&t[i], wait_at_gate, &g, NULL), 0);
    assert_int_equal(mp_thread_active_count(), base);
  }
  for (int i = 0; i < 3; i++)
    assert_rc(mp_thread_start(t[i]), 0);
  assert_int_equal(mp_thread_active_count(), base + 3);
  mp_thread *list[16];
  ssize_t n = mp_thread_enumerate(list, 16);
  assert_int_equal(n, base + 3);
  assert_ptr_equal(list[0], mp_main_thread());
  for (int i = 0; i < 3; i++)
    assert_true(contains(list, n, t[i]));
  /* A short array gets what fits; the count is still the whole. */
  assert_int_equal(mp_thread_enumerate(list, 1), base + 3);
  assert_int_equal(mp_thread_enumerate(NULL, 0), base + 3);
  assert_int_equal(mp_thread_enumerate(NULL, 1), MP_EINVAL);
  gate_open(&g);
  for (int i = 0; i < 3; i++) {
    assert_rc(mp_thread_join(t[i], mp_test_slack(30)), 0);
    mp_thread_free(t[i]);
  }
  assert_int_equal(mp_thread_active_count(), base);
  n = mp_thread_enumerate(list, 16);
  for (int i = 0; i < 3; i++)
    assert_false(contains(list, n, t[i]));
  gate_destroy(&g);
}

/* ---- foreign threads ------------------------------------------------------ */

typedef struct foreign {
  mp_thread *rec, *again;
  char name[32]; /* a copy: the record goes away with its thread */
  int daemon, alive, in_list, join_rc, start_rc, tid_ok;
  mp_thread *created;
  int created_daemon;
} foreign;

static void *foreign_main(void *arg) {
  foreign *f = arg;
  f->rec = mp_current_thread();
  f->again = mp_current_thread();
  if (f->rec == NULL)
    return NULL;
  snprintf(f->name, sizeof f->name, "%s", mp_thread_name(f->rec));
  f->daemon = mp_thread_daemon(f->rec);
  f->alive = mp_thread_is_alive(f->rec);
  f->tid_ok = mp_thread_ident(f->rec) == sys_gettid();
  mp_thread *list[64];
  ssize_t n = mp_thread_enumerate(list, 64);
  f->in_list = contains(list, n < 64 ? n : 64, f->rec);
  f->join_rc = mp_thread_join(f->rec, 0);
  f->start_rc = mp_thread_start(f->rec);
  /* Threads made by a foreign thread inherit its daemon flag (1). */
  if (mp_thread_new(&f->created, NULL, NULL, NULL) == 0) {
    f->created_daemon = mp_thread_daemon(f->created);
    mp_thread_free(f->created);
  }
  return NULL;
}

static void foreign_thread_gets_dummy(void **state) {
  (void)state;
  int base = mp_thread_active_count();
  foreign f = {0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, foreign_main, &f), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_non_null(f.rec);
  assert_ptr_equal(f.rec, f.again);
  assert_true(name_number(f.name, "Dummy-") >= 1);
  assert_int_equal(f.daemon, 1);
  assert_int_equal(f.alive, 1);
  assert_int_equal(f.tid_ok, 1);
  assert_int_equal(f.in_list, 1);
  /* A Dummy cannot be joined, as in Python. */
  assert_rc(f.join_rc, MP_EINVAL);
  assert_rc(f.start_rc, MP_ESTATE);
  assert_int_equal(f.created_daemon, 1);
  /* The record went away with its thread. */
  assert_int_equal(mp_thread_active_count(), base);
}

/* ---- lifetimes ------------------------------------------------------------ */

static void free_running_thread(void **state) {
  (void)state;
  int base = mp_thread_active_count();
  gate g;
  gate_init(&g);
  mp_thread *t;
  assert_rc(mp_thread_new(&t, wait_at_gate, &g, NULL), 0);
  assert_rc(mp_thread_start(t), 0);
  assert_int_equal(mp_thread_active_count(), base + 1);
  /* Detaches: never blocks, and the thread frees its object at the end
   * (ASan reports a leak or a use after free otherwise). */
  double t0 = mp_test_now();
  mp_thread_free(t);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  gate_open(&g);
  double end = mp_test_now() + mp_test_slack(30);
  while (mp_thread_active_count() != base && mp_test_now() < end)
    usleep(1000);
  assert_int_equal(mp_thread_active_count(), base);
  gate_destroy(&g);
}

static void free_myself(void *arg) {
  (void)arg;
  mp_thread_free(mp_current_thread());
}

static void free_from_inside(void **state) {
  (void)state;
  int base = mp_thread_active_count();
  mp_thread *t;
  assert_rc(mp_thread_new(&t, free_myself, NULL, NULL), 0);
  assert_rc(mp_thread_start(t), 0);
  double end = mp_test_now() + mp_test_slack(30);
  while (mp_thread_active_count() != base && mp_test_now() < end)
    usleep(1000);
  assert_int_equal(mp_thread_active_count(), base);
}

static void leave_by_pthread_exit(void *arg) {
  *(int *)arg = 1;
  pthread_exit(NULL);
}

static void pthread_exit_ends_thread(void **state) {
  (void)state;
  int reached = 0;
  mp_thread *t;
  assert_rc(mp_thread_new(&t, leave_by_pthread_exit, &reached, NULL), 0);
  assert_rc(mp_thread_start(t), 0);
  assert_rc(mp_thread_join(t, mp_test_slack(30)), 0);
  assert_int_equal(reached, 1);
  assert_int_equal(mp_thread_is_alive(t), 0);
  mp_thread_free(t);
}

static void alloc_failure_leaves_nothing(void **state) {
  (void)state;
  (void)mp_current_thread(); /* the library's own setup is not the point */
  for (long n = 1; n <= 2; n++) {
    mp_thread *t = (mp_thread *)1;
    mp__alloc_fail_after(n);
    assert_rc(mp_thread_new(&t, NULL, NULL, NULL), MP_ENOMEM);
    mp__alloc_fail_after(0);
    assert_ptr_equal(t, (mp_thread *)1); /* untouched */
  }
}

/* ---- fork ----------------------------------------------------------------- */

typedef struct fork_check {
  mp_thread *other;  /* a thread running in the parent */
} fork_check;

/* Exit status 0 when the child sees only itself; else which check failed. */
static int child_sees_only_itself(void *arg) {
  fork_check *c = arg;
  if (mp_thread_active_count() != 1)
    return 1;
  mp_thread *list[4];
  if (mp_thread_enumerate(list, 4) != 1 || list[0] != mp_current_thread())
    return 2;
  if (mp_main_thread() != mp_current_thread())
    return 3;
  if (mp_thread_ident(mp_current_thread()) != getpid())
    return 4;
  if (mp_thread_is_alive(c->other) != 0)
    return 5;
  if (mp_thread_join(c->other, 0) != 0)
    return 6;
#if !defined(__SANITIZE_THREAD__)
  /* The child can start threads of its own. (ThreadSanitizer kills a
   * child of a multi-threaded fork that starts threads, so not there.) */
  mp_thread *t;
  if (mp_thread_new(&t, NULL, NULL, NULL) != 0 || mp_thread_start(t) != 0 ||
      mp_thread_join(t, 30) != 0)
    return 7;
  mp_thread_free(t);
#endif
  return 0;
}

static void fork_keeps_calling_thread(void **state) {
  (void)state;
  gate g;
  gate_init(&g);
  fork_check c;
  assert_rc(mp_thread_new(&c.other, wait_at_gate, &g, NULL), 0);
  assert_rc(mp_thread_start(c.other), 0);
  pid_t pid = mp_test_fork(child_sees_only_itself, &c);
  int status = mp_test_wait(pid, mp_test_slack(30));
  gate_open(&g);
  assert_rc(mp_thread_join(c.other, mp_test_slack(30)), 0);
  mp_thread_free(c.other);
  gate_destroy(&g);
  assert_true(status != -1);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

typedef struct fork_from_thread {
  mp_thread *self;
  int status;
} fork_from_thread;

static int child_is_main(void *arg) {
  fork_from_thread *f = arg;
  if (mp_current_thread() != f->self)
    return 1;
  if (mp_main_thread() != f->self)
    return 2;
  if (mp_thread_active_count() != 1)
    return 3;
  if (mp_thread_ident(f->self) != getpid())
    return 4;
  if (mp_thread_is_alive(f->self) != 1)
    return 5;
  return 0;
}

static void fork_in_thread(void *arg) {
  fork_from_thread *f = arg;
  f->self = mp_current_thread();
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0)
    _exit(child_is_main(f));
  f->status = pid < 0 ? -2 : mp_test_wait(pid, 60);
}

static void fork_from_thread_makes_it_main(void **state) {
  (void)state;
  fork_from_thread f = {0};
  mp_thread *t;
  assert_rc(mp_thread_new(&t, fork_in_thread, &f, NULL), 0);
  assert_rc(mp_thread_start(t), 0);
  assert_rc(mp_thread_join(t, mp_test_slack(90)), 0);
  assert_ptr_equal(f.self, t);
  assert_true(f.status >= 0);
  assert_true(WIFEXITED(f.status));
  assert_int_equal(WEXITSTATUS(f.status), 0);
  /* The parent's main thread is still its main thread. */
  assert_ptr_equal(mp_main_thread(), mp_current_thread());
  mp_thread_free(t);
}

/* ---- the exit rule -------------------------------------------------------- */

typedef struct exit_case {
  int fd;       /* write end of the case's pipe */
  int daemon;
} exit_case;

static void late_writer(void *arg) {
  exit_case *e = arg;
  usleep(200 * 1000);
  (void)!write(e->fd, "x", 1);
}

static void block_forever(void *arg) {
  (void)arg;
  pause();
}

/* In a forked child: start a thread, then leave through exit(), which
 * runs the library's exit handler. */
static int exit_with_thread(void *arg) {
  exit_case *e = arg;
  mp_thread *t;
  mp_thread_opts o = {.daemon = e->daemon ? 1 : -1};
  if (mp_thread_new(&t, e->daemon ? block_forever : late_writer, e, &o) != 0 ||
      mp_thread_start(t) != 0)
    _exit(2);
  exit(7);
}

/* Detached threads of earlier cases (when every case runs in one process)
 * may still be leaving; ThreadSanitizer kills a child that starts threads
 * after a multi-threaded fork, so fork only once this process is alone. */
#if defined(__SANITIZE_THREAD__)
#define SANITIZER_THREADS 1 /* ThreadSanitizer's own background thread */
#else
#define SANITIZER_THREADS 0
#endif
static void wait_single_threaded(void) {
  double end = mp_test_now() + mp_test_slack(30);
  for (;;) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
      if (e->d_name[0] != '.')
        n++;
    if (d != NULL)
      closedir(d);
    if (n <= SANITIZER_THREADS + 1 || mp_test_now() > end)
      return;
    usleep(1000);
  }
}

static void exit_joins_non_daemonic(void **state) {
  (void)state;
  wait_single_threaded();
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  exit_case e = {.fd = fds[1], .daemon = 0};
  pid_t pid = mp_test_fork(exit_with_thread, &e);
  close(fds[1]);
  mp_test_wait_exit(pid, 7, mp_test_slack(30));
  /* The thread wrote before the child exited: exit waited for it. */
  char c = 0;
  assert_int_equal(read(fds[0], &c, 1), 1);
  assert_int_equal(c, 'x');
  close(fds[0]);
}

static void exit_skips_daemonic(void **state) {
  (void)state;
  exit_case e = {.fd = -1, .daemon = 1};
  wait_single_threaded();
  pid_t pid = mp_test_fork(exit_with_thread, &e);
  /* A daemonic thread blocked forever does not hold the exit back. */
  mp_test_wait_exit(pid, 7, mp_test_slack(30));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(target_runs_with_arg),
    cmocka_unit_test(run_callback_style),
    cmocka_unit_test(run_in_calling_thread),
    cmocka_unit_test(names),
    cmocka_unit_test(main_thread_record),
    cmocka_unit_test(join_with_timeout),
    cmocka_unit_test(join_errors_and_states),
    cmocka_unit_test(many_joiners),
    cmocka_unit_test(daemon_inherited),
    cmocka_unit_test(enumerate_and_active_count),
    cmocka_unit_test(foreign_thread_gets_dummy),
    cmocka_unit_test(free_running_thread),
    cmocka_unit_test(free_from_inside),
    cmocka_unit_test(pthread_exit_ends_thread),
    cmocka_unit_test(alloc_failure_leaves_nothing),
    cmocka_unit_test(fork_keeps_calling_thread),
    cmocka_unit_test(fork_from_thread_makes_it_main),
    cmocka_unit_test(exit_joins_non_daemonic),
    cmocka_unit_test(exit_skips_daemonic),
};

MP_TEST_MAIN(tests)
