/* test_event.c - Event: set/clear/is_set, wait with and without timeout,
 * waking every waiter, a set-then-clear that still releases the waiters
 * present (as Python), gating between threads and processes, the three
 * homes, bad arguments, and a waiter killed while it waits.
 *
 * Forked children never call cmocka: they report through their exit
 * status (0 = fine, other values name the step that failed). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- helpers --------------------------------------------------------- */

/* wait_sleeping waits until task tid is asleep in the kernel, which in
 * these cases means inside the futex wait of mp_event_wait. */
static void wait_sleeping(pid_t tid, double timeout) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
  double end = mp_test_now() + timeout;
  while (mp_test_now() < end) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    if (paren != NULL && paren[2] == 'S')
      return;
    usleep(1000);
  }
  fail_msg("task %d never went to sleep", (int)tid);
}

typedef struct waiter {
  mp_event *ev;
  double timeout;
  _Atomic pid_t tid;
  int rc;
} waiter;

static void *wait_thread(void *arg) {
  waiter *w = arg;
  atomic_store(&w->tid, (pid_t)syscall(SYS_gettid));
  w->rc = mp_event_wait(w->ev, w->timeout);
  return NULL;
}

static void start_waiters(pthread_t *t, waiter *w, int n) {
  for (int i = 0; i < n; i++)
    assert_int_equal(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
  for (int i = 0; i < n; i++) {
    while (atomic_load(&w[i].tid) == 0)
      usleep(100);
    wait_sleeping(atomic_load(&w[i].tid), mp_test_slack(30));
  }
}

/* ---- the flag ---------------------------------------------------------- */

static void set_clear_is_set(void **state) {
  (void)state;
  mp_event *ev;
  assert_rc(mp_event_new(&ev, NULL), 0);
  assert_int_equal(mp_event_is_set(ev), 0);
  assert_rc(mp_event_set(ev), 0);
  assert_int_equal(mp_event_is_set(ev), 1);
  assert_rc(mp_event_set(ev), 0); /* twice is fine */
  assert_int_equal(mp_event_is_set(ev), 1);
  assert_rc(mp_event_wait(ev, 0), 0);
  assert_rc(mp_event_wait(ev, MP_FOREVER), 0);
  assert_rc(mp_event_clear(ev), 0);
  assert_int_equal(mp_event_is_set(ev), 0);
  assert_rc(mp_event_clear(ev), 0);
  assert_rc(mp_event_wait(ev, 0), MP_EAGAIN);
  mp_event_free(ev);
  mp_event_free(NULL);
}

static void wait_times_out(void **state) {
  (void)state;
  mp_event *ev;
  assert_rc(mp_event_new(&ev, NULL), 0);
  double t0 = mp_test_now();
  assert_rc(mp_event_wait(ev, 0.2), MP_ETIMEDOUT);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.19);
  assert_true(took < mp_test_slack(5));
  mp_event_free(ev);
}

static void bad_arguments(void **state) {
  (void)state;
  assert_rc(mp_event_new(NULL, NULL), MP_EINVAL);
  assert_rc(mp_event_init(NULL), MP_EINVAL);
  assert_rc(mp_event_destroy(NULL), MP_EINVAL);
  assert_rc(mp_event_is_set(NULL), MP_EINVAL);
  assert_rc(mp_event_set(NULL), MP_EINVAL);
  assert_rc(mp_event_clear(NULL), MP_EINVAL);
  assert_rc(mp_event_wait(NULL, 0), MP_EINVAL);
  mp_event zero, junk;
  memset(&zero, 0, sizeof zero);
  memset(&junk, 0xee, sizeof junk);
  mp_event *bad[] = {&zero, &junk};
  for (int i = 0; i < 2; i++) {
    assert_rc(mp_event_is_set(bad[i]), MP_EINVAL);
    assert_rc(mp_event_set(bad[i]), MP_EINVAL);
    assert_rc(mp_event_clear(bad[i]), MP_EINVAL);
    assert_rc(mp_event_wait(bad[i], 0.1), MP_EINVAL);
    assert_rc(mp_event_destroy(bad[i]), MP_EINVAL);
  }
  _Alignas(8) unsigned char buf[MP_EVENT_SIZE + 8];
  assert_rc(mp_event_init((mp_event *)(buf + 1)), MP_EINVAL);
}

static void names(void **state) {
  (void)state;
  mp_event *a, *b;
  mp_sync_opts bad = {.name = "a:b"};
  assert_rc(mp_event_new(&a, &bad), MP_EINVAL);
  char longname[MP_SYNC_NAME_MAX + 2];
  memset(longname, 'e', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_rc(mp_event_open(&a, longname), MP_ENAMETOOLONG);
  char name[64];
  mp_test_name(name, sizeof name, "event-names");
  mp_sync_opts o = {.name = name};
  assert_rc(mp_event_open(&a, name), MP_ENOENT);
  assert_rc(mp_event_new(&a, &o), 0);
  assert_rc(mp_event_new(&b, &o), MP_EEXIST);
  assert_rc(mp_event_open(&b, name), 0);
  assert_rc(mp_event_set(b), 0);
  assert_int_equal(mp_event_is_set(a), 1);
  mp_event_free(b);
  mp_event_free(a);
  assert_rc(mp_event_open(&a, name), MP_ENOENT);
}

static void open_corrupt(void **state) {
  (void)state;
  char name[64], path[512];
  mp_test_name(name, sizeof name, "event-corrupt");
  mp_sync_opts o = {.name = name};
  mp_event *ev, *opened;
  assert_rc(mp_event_new(&ev, &o), 0);
  snprintf(path, sizeof path, "/dev/shm/mp_%s", name);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  assert_true(fd >= 0);
  /* Garbage over the segment header's magic and version. */
  unsigned char saved[8], junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  assert_int_equal(pread(fd, saved, 8, 0), 8);
  assert_int_equal(pwrite(fd, junk, 8, 0), 8);
  assert_rc(mp_event_open(&opened, name), MP_ECORRUPT);
  assert_int_equal(pwrite(fd, saved, 8, 0), 8);
  close(fd);
  mp_event_free(ev);
}

static void destroy_rules(void **state) {
  (void)state;
  mp_event ev;
  assert_rc(mp_event_init(&ev), 0);
  waiter w = {.ev = &ev, .timeout = mp_test_slack(30)};
  pthread_t t;
  start_waiters(&t, &w, 1);
  assert_rc(mp_event_destroy(&ev), MP_EBUSY);
  assert_rc(mp_event_set(&ev), 0);
  pthread_join(t, NULL);
  assert_rc(w.rc, 0);
  assert_rc(mp_event_destroy(&ev), 0);
  assert_rc(mp_event_wait(&ev, 0), MP_EINVAL);
}

/* ---- waking ------------------------------------------------------------ */

static void set_wakes_every_waiter(void **state) {
  (void)state;
  enum { N = 5 };
  mp_event *ev;
  assert_rc(mp_event_new(&ev, NULL), 0);
  waiter w[N];
  memset(w, 0, sizeof w);
  for (int i = 0; i < N; i++) {
    w[i].ev = ev;
    w[i].timeout = i % 2 ? mp_test_slack(30) : MP_FOREVER;
  }
  pthread_t t[N];
  start_waiters(t, w, N);
  assert_rc(mp_event_set(ev), 0);
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    assert_rc(w[i].rc, 0);
  }
  mp_event_free(ev);
}

/* As Python: a waiter present when the flag was set returns success even
 * if the flag is cleared before it runs again. */
static void set_then_clear_still_releases_waiters(void **state) {
  (void)state;
  enum { N = 3 };
  mp_event *ev;
  assert_rc(mp_event_new(&ev, NULL), 0);
  waiter w[N];
  memset(w, 0, sizeof w);
  for (int i = 0; i < N; i++) {
    w[i].ev = ev;
    w[i].timeout = mp_test_slack(30);
  }
  pthread_t t[N];
  start_waiters(t, w, N);
  assert_rc(mp_event_set(ev), 0);
  assert_rc(mp_event_clear(ev), 0);
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    assert_rc(w[i].rc, 0);
  }
  /* A waiter that comes after the clear waits again. */
  assert_rc(mp_event_wait(ev, 0.05), MP_ETIMEDOUT);
  mp_event_free(ev);
}

/* The seeds' gating: workers wait for a start signal. */
typedef struct gated {
  mp_event *go;
  atomic_int started;
  int rc;
} gated;

static void *gated_worker(void *arg) {
  gated *g = arg;
  g->rc = mp_event_wait(g->go, mp_test_slack(30));
  atomic_fetch_add(&g->started, 1);
  return NULL;
}

static void event_gates_workers(void **state) {
  (void)state;
  enum { N = 8 };
  mp_event *go;
  assert_rc(mp_event_new(&go, NULL), 0);
  gated g[N];
  pthread_t t[N];
  memset(g, 0, sizeof g);
  for (int i = 0; i < N; i++) {
    g[i].go = go;
    assert_int_equal(pthread_create(&t[i], NULL, gated_worker, &g[i]), 0);
  }
  usleep(50 * 1000);
  /* Nobody passed the gate before it opened. */
  for (int i = 0; i < N; i++)
    assert_int_equal(atomic_load(&g[i].started), 0);
  assert_rc(mp_event_set(go), 0);
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    assert_rc(g[i].rc, 0);
  }
  mp_event_free(go);
}

/* ---- processes --------------------------------------------------------- */

static mp_event *g_ev;
static char g_name[64];
static mp_test_signal g_sig;

static int wait_for_set(void *arg) {
  (void)arg;
  if (mp_event_is_set(g_ev) != 0)
    return 1;
  mp_test_signal_post(&g_sig);
  return mp_event_wait(g_ev, mp_test_slack(30)) == 0 ? 0 : 2;
}

static void processes_anonymous_and_in_place(void **state) {
  (void)state;
  mp_event *anon;
  assert_rc(mp_event_new(&anon, NULL), 0);
  mp_event *in = mp_test_shared_map(sizeof *in);
  assert_rc(mp_event_init(in), 0);
  mp_event *evs[] = {anon, in};
  mp_test_signal_open(&g_sig);
  for (int i = 0; i < 2; i++) {
    g_ev = evs[i];
    pid_t pids[3];
    for (int k = 0; k < 3; k++)
      pids[k] = mp_test_fork(wait_for_set, NULL);
    for (int k = 0; k < 3; k++)
      assert_true(mp_test_signal_wait(&g_sig, mp_test_slack(30)));
    assert_rc(mp_event_set(g_ev), 0);
    for (int k = 0; k < 3; k++)
      mp_test_wait_exit(pids[k], 0, mp_test_slack(30));
  }
  mp_test_signal_close(&g_sig);
  assert_rc(mp_event_destroy(in), 0);
  munmap(in, sizeof *in);
  mp_event_free(anon);
}

static int set_by_name(void *arg) {
  (void)arg;
  mp_event *ev;
  if (mp_event_open(&ev, g_name) != 0)
    return 1;
  if (mp_event_set(ev) != 0)
    return 2;
  mp_event_free(ev);
  return 0;
}

static void named_set_from_child(void **state) {
  (void)state;
  mp_test_name(g_name, sizeof g_name, "event-child");
  mp_sync_opts o = {.name = g_name};
  mp_event *ev;
  assert_rc(mp_event_new(&ev, &o), 0);
  pid_t pid = mp_test_fork(set_by_name, NULL);
  assert_rc(mp_event_wait(ev, mp_test_slack(30)), 0);
  mp_test_wait_exit(pid, 0, mp_test_slack(30));
  mp_event_free(ev);
}

static int wait_forever(void *arg) {
  (void)arg;
  mp_test_signal_post(&g_sig);
  mp_event_wait(g_ev, MP_FOREVER);
  return 9;
}

static void killed_waiter_leaves_event_working(void **state) {
  (void)state;
  assert_rc(mp_event_new(&g_ev, NULL), 0);
  mp_test_signal_open(&g_sig);
  pid_t pid = mp_test_fork(wait_forever, NULL);
  assert_true(mp_test_signal_wait(&g_sig, mp_test_slack(30)));
  wait_sleeping(pid, mp_test_slack(30));
  kill(pid, SIGKILL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  waiter w = {.ev = g_ev, .timeout = mp_test_slack(30)};
  pthread_t t;
  start_waiters(&t, &w, 1);
  assert_rc(mp_event_set(g_ev), 0);
  pthread_join(t, NULL);
  assert_rc(w.rc, 0);
  assert_rc(mp_event_clear(g_ev), 0);
  assert_rc(mp_event_wait(g_ev, 0.05), MP_ETIMEDOUT);
  mp_test_signal_close(&g_sig);
  mp_event_free(g_ev);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(set_clear_is_set),
    cmocka_unit_test(wait_times_out),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(names),
    cmocka_unit_test(open_corrupt),
    cmocka_unit_test(destroy_rules),
    cmocka_unit_test(set_wakes_every_waiter),
    cmocka_unit_test(set_then_clear_still_releases_waiters),
    cmocka_unit_test(event_gates_workers),
    cmocka_unit_test(processes_anonymous_and_in_place),
    cmocka_unit_test(named_set_from_child),
    cmocka_unit_test(killed_waiter_leaves_event_working),
};

MP_TEST_MAIN(tests)
