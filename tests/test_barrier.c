/* test_barrier.c - Barrier, after Python's threading.Barrier: arrival
 * indices, the action, timeouts (the caller's and the default), abort and
 * reset, n_waiting, the three homes, bad arguments, processes, and parties
 * that die (G-BARRIER-1).
 *
 * Forked children never call cmocka: they report through their exit
 * status (0 = fine, other values name the step that failed). Helper
 * threads record what they saw; the case checks it after joining. */
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

/* until_waiting waits until n parties wait at the barrier. */
static void until_waiting(mp_barrier *b, int n) {
  double end = mp_test_now() + mp_test_slack(30);
  while (mp_barrier_n_waiting(b) < n) {
    if (mp_test_now() > end)
      fail_msg("only %d of %d parties arrived", mp_barrier_n_waiting(b), n);
    usleep(1000);
  }
}

typedef struct party {
  mp_barrier *b;
  double timeout;
  int rounds;
  int idx[64];
} party;

static void *wait_rounds(void *arg) {
  party *p = arg;
  for (int r = 0; r < p->rounds; r++)
    p->idx[r] = mp_barrier_wait(p->b, p->timeout);
  return NULL;
}

static void start_parties(pthread_t *t, party *p, int n, mp_barrier *b,
                          int rounds) {
  for (int i = 0; i < n; i++) {
    p[i] = (party){.b = b, .timeout = mp_test_slack(30), .rounds = rounds};
    assert_int_equal(pthread_create(&t[i], NULL, wait_rounds, &p[i]), 0);
  }
}

static void join_parties(pthread_t *t, int n) {
  for (int i = 0; i < n; i++)
    pthread_join(t[i], NULL);
}

/* check_indices asserts each round handed out 0 .. n-1 once each. */
static void check_indices(party *p, int n, int rounds) {
  for (int r = 0; r < rounds; r++) {
    unsigned seen = 0;
    for (int i = 0; i < n; i++) {
      if (p[i].idx[r] < 0 || p[i].idx[r] >= n)
        fail_msg("round %d party %d got %s (%d)", r, i,
                 mp_err_name(p[i].idx[r]), p[i].idx[r]);
      seen |= 1u << p[i].idx[r];
    }
    assert_int_equal(seen, (1u << n) - 1);
  }
}

/* ---- life cycle and arguments ------------------------------------------ */

static void basics(void **state) {
  (void)state;
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, 3, NULL), 0);
  assert_int_equal(mp_barrier_parties(b), 3);
  assert_int_equal(mp_barrier_n_waiting(b), 0);
  assert_int_equal(mp_barrier_broken(b), 0);
  mp_barrier_free(b);
  mp_barrier_free(NULL);
  /* One party never waits. */
  assert_rc(mp_barrier_new(&b, 1, NULL), 0);
  for (int i = 0; i < 3; i++)
    assert_rc(mp_barrier_wait(b, 0), 0);
  mp_barrier_free(b);
}

static void bad_arguments(void **state) {
  (void)state;
  mp_barrier *b;
  assert_rc(mp_barrier_new(NULL, 2, NULL), MP_EINVAL);
  assert_rc(mp_barrier_new(&b, 0, NULL), MP_EINVAL);
  assert_rc(mp_barrier_new(&b, 0x80000000u, NULL), MP_EINVAL);
  assert_rc(mp_barrier_init(NULL, 2, NULL), MP_EINVAL);
  mp_barrier in;
  assert_rc(mp_barrier_init(&in, 0, NULL), MP_EINVAL);
  assert_rc(mp_barrier_wait(NULL, 0), MP_EINVAL);
  assert_rc(mp_barrier_reset(NULL), MP_EINVAL);
  assert_rc(mp_barrier_abort(NULL), MP_EINVAL);
  assert_rc(mp_barrier_broken(NULL), MP_EINVAL);
  assert_rc(mp_barrier_n_waiting(NULL), MP_EINVAL);
  assert_rc(mp_barrier_parties(NULL), MP_EINVAL);
  assert_rc(mp_barrier_destroy(NULL), MP_EINVAL);
  mp_barrier zero, junk;
  memset(&zero, 0, sizeof zero);
  memset(&junk, 0xc3, sizeof junk);
  mp_barrier *bad[] = {&zero, &junk};
  for (int i = 0; i < 2; i++) {
    assert_rc(mp_barrier_wait(bad[i], 0.1), MP_EINVAL);
    assert_rc(mp_barrier_reset(bad[i]), MP_EINVAL);
    assert_rc(mp_barrier_abort(bad[i]), MP_EINVAL);
    assert_rc(mp_barrier_broken(bad[i]), MP_EINVAL);
    assert_rc(mp_barrier_n_waiting(bad[i]), MP_EINVAL);
    assert_rc(mp_barrier_parties(bad[i]), MP_EINVAL);
    assert_rc(mp_barrier_destroy(bad[i]), MP_EINVAL);
  }
  _Alignas(8) unsigned char buf[MP_BARRIER_SIZE + 8];
  assert_rc(mp_barrier_init((mp_barrier *)(buf + 4), 2, NULL), MP_EINVAL);
}

static int nothing(void *arg) {
  (void)arg;
  return 0;
}

static void names(void **state) {
  (void)state;
  mp_barrier *a, *b;
  mp_barrier_opts bad = {.name = "a\\b"};
  assert_rc(mp_barrier_new(&a, 2, &bad), MP_EINVAL);
  char longname[MP_SYNC_NAME_MAX + 2];
  memset(longname, 'b', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  mp_barrier_opts toolong = {.name = longname};
  assert_rc(mp_barrier_new(&a, 2, &toolong), MP_ENAMETOOLONG);
  char name[64];
  mp_test_name(name, sizeof name, "barrier-names");
  mp_barrier_opts o = {.name = name};
  assert_rc(mp_barrier_open(&a, name), MP_ENOENT);
  assert_rc(mp_barrier_new(&a, 4, &o), 0);
  assert_rc(mp_barrier_new(&b, 4, &o), MP_EEXIST);
  assert_rc(mp_barrier_open(&b, name), 0);
  assert_int_equal(mp_barrier_parties(b), 4);
  assert_rc(mp_barrier_abort(b), 0);
  assert_int_equal(mp_barrier_broken(a), 1);
  mp_barrier_free(b);
  mp_barrier_free(a);
  assert_rc(mp_barrier_open(&a, name), MP_ENOENT);
  /* An action is a pointer: a barrier with one cannot be opened by name. */
  mp_barrier_opts with_action = {.name = name, .action = nothing};
  assert_rc(mp_barrier_new(&a, 2, &with_action), 0);
  assert_rc(mp_barrier_open(&b, name), MP_EINVAL);
  mp_barrier_free(a);
}

static void open_corrupt(void **state) {
  (void)state;
  char name[64], path[512];
  mp_test_name(name, sizeof name, "barrier-corrupt");
  mp_barrier_opts o = {.name = name};
  mp_barrier *b, *opened;
  assert_rc(mp_barrier_new(&b, 2, &o), 0);
  snprintf(path, sizeof path, "/dev/shm/mp_%s", name);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  assert_true(fd >= 0);
  /* The object's head (magic and type) after the 256-byte segment header. */
  unsigned char saved[8], junk[8] = {0xde, 0xad, 0xbe, 0xef, 9, 9, 9, 9};
  assert_int_equal(pread(fd, saved, 8, 256), 8);
  assert_int_equal(pwrite(fd, junk, 8, 256), 8);
  assert_rc(mp_barrier_open(&opened, name), MP_ECORRUPT);
  assert_int_equal(pwrite(fd, saved, 8, 256), 8);
  close(fd);
  mp_barrier_free(b);
}

static void destroy_rules(void **state) {
  (void)state;
  mp_barrier b;
  assert_rc(mp_barrier_init(&b, 2, NULL), 0);
  pthread_t t;
  party p;
  start_parties(&t, &p, 1, &b, 1);
  until_waiting(&b, 1);
  assert_rc(mp_barrier_destroy(&b), MP_EBUSY);
  assert_true(mp_barrier_wait(&b, mp_test_slack(30)) >= 0);
  join_parties(&t, 1);
  assert_true(p.idx[0] >= 0);
  assert_rc(mp_barrier_destroy(&b), 0);
  assert_rc(mp_barrier_wait(&b, 0), MP_EINVAL);
}

/* ---- rounds between threads -------------------------------------------- */

static void threads_get_distinct_indices(void **state) {
  (void)state;
  enum { N = 3, ROUNDS = 50 };
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, N, NULL), 0);
  pthread_t t[N];
  party p[N];
  start_parties(t, p, N, b, ROUNDS);
  join_parties(t, N);
  check_indices(p, N, ROUNDS);
  assert_int_equal(mp_barrier_broken(b), 0);
  mp_barrier_free(b);
}

typedef struct action_log {
  atomic_int calls;
  _Atomic pid_t tid;
  int fail;
} action_log;

static int count_action(void *arg) {
  action_log *log = arg;
  atomic_fetch_add(&log->calls, 1);
  atomic_store(&log->tid, (pid_t)syscall(SYS_gettid));
  return log->fail;
}

typedef struct action_party {
  mp_barrier *b;
  action_log *log;
  pid_t tid;
  int seen[20];
  int rc[20];
} action_party;

static void *wait_and_look(void *arg) {
  action_party *p = arg;
  p->tid = (pid_t)syscall(SYS_gettid);
  for (int r = 0; r < 20; r++) {
    p->rc[r] = mp_barrier_wait(p->b, mp_test_slack(30));
    /* The action ran before anyone was released. */
    p->seen[r] = atomic_load(&p->log->calls);
  }
  return NULL;
}

static void action_runs_once_per_round_in_a_party(void **state) {
  (void)state;
  enum { N = 3 };
  action_log log = {0};
  mp_barrier_opts o = {.action = count_action, .action_arg = &log};
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, N, &o), 0);
  pthread_t t[N];
  action_party p[N];
  for (int i = 0; i < N; i++) {
    p[i] = (action_party){.b = b, .log = &log};
    assert_int_equal(pthread_create(&t[i], NULL, wait_and_look, &p[i]), 0);
  }
  for (int i = 0; i < N; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(atomic_load(&log.calls), 20);
  for (int i = 0; i < N; i++)
    for (int r = 0; r < 20; r++) {
      assert_true(p[i].rc[r] >= 0);
      assert_true(p[i].seen[r] >= r + 1);
    }
  pid_t ran = atomic_load(&log.tid);
  assert_true(ran == p[0].tid || ran == p[1].tid || ran == p[2].tid);
  mp_barrier_free(b);
}

static void failing_action_breaks_the_barrier(void **state) {
  (void)state;
  action_log log = {.fail = 1};
  mp_barrier_opts o = {.action = count_action, .action_arg = &log};
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, 2, &o), 0);
  pthread_t t;
  party p;
  start_parties(&t, &p, 1, b, 1);
  until_waiting(b, 1);
  assert_rc(mp_barrier_wait(b, mp_test_slack(30)), MP_EBROKEN);
  join_parties(&t, 1);
  assert_rc(p.idx[0], MP_EBROKEN);
  assert_int_equal(mp_barrier_broken(b), 1);
  assert_rc(mp_barrier_wait(b, mp_test_slack(30)), MP_EBROKEN);
  /* Reset, and a good action lets the round through. */
  assert_rc(mp_barrier_reset(b), 0);
  assert_int_equal(mp_barrier_broken(b), 0);
  log.fail = 0;
  start_parties(&t, &p, 1, b, 1);
  int mine = mp_barrier_wait(b, mp_test_slack(30));
  join_parties(&t, 1);
  assert_true(mine >= 0 && p.idx[0] >= 0 && mine != p.idx[0]);
  assert_int_equal(atomic_load(&log.calls), 2);
  mp_barrier_free(b);
}

/* ---- timeouts, abort, reset -------------------------------------------- */

static void timeout_breaks_the_barrier(void **state) {
  (void)state;
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, 2, NULL), 0);
  double t0 = mp_test_now();
  assert_rc(mp_barrier_wait(b, 0.2), MP_ETIMEDOUT);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.19);
  assert_true(took < mp_test_slack(5));
  assert_int_equal(mp_barrier_broken(b), 1);
  assert_rc(mp_barrier_wait(b, mp_test_slack(30)), MP_EBROKEN);
  assert_rc(mp_barrier_reset(b), 0);
  assert_int_equal(mp_barrier_broken(b), 0);
  /* Timeout 0: as any other timeout, and reported as "would block". */
  assert_rc(mp_barrier_wait(b, 0), MP_EAGAIN);
  assert_int_equal(mp_barrier_broken(b), 1);
  mp_barrier_free(b);
}

static void timed_out_waiter_breaks_the_others(void **state) {
  (void)state;
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, 3, NULL), 0);
  pthread_t t;
  party p;
  start_parties(&t, &p, 1, b, 1);
  until_waiting(b, 1);
  assert_rc(mp_barrier_wait(b, 0.1), MP_ETIMEDOUT);
  join_parties(&t, 1);
  assert_rc(p.idx[0], MP_EBROKEN);
  mp_barrier_free(b);
}

static void *arrive_late(void *arg) {
  usleep(300 * 1000);
  mp_barrier_wait(arg, mp_test_slack(30));
  return NULL;
}

static void default_timeout_from_options(void **state) {
  (void)state;
  mp_barrier_opts o = {.timeout = 0.2};
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, 2, &o), 0);
  double t0 = mp_test_now();
  assert_rc(mp_barrier_wait(b, MP_BARRIER_DEFAULT_TIMEOUT), MP_ETIMEDOUT);
  assert_true(mp_test_now() - t0 >= 0.19);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  mp_barrier_free(b);
  /* 0 means forever: a late second party still makes it. */
  mp_barrier_opts forever = {.timeout = 0};
  assert_rc(mp_barrier_new(&b, 2, &forever), 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, arrive_late, b), 0);
  int mine = mp_barrier_wait(b, MP_BARRIER_DEFAULT_TIMEOUT);
  pthread_join(t, NULL);
  assert_true(mine >= 0);
  mp_barrier_free(b);
}

static void abort_breaks_now_and_later(void **state) {
  (void)state;
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, 3, NULL), 0);
  pthread_t t[2];
  party p[2];
  start_parties(t, p, 2, b, 1);
  until_waiting(b, 2);
  assert_int_equal(mp_barrier_n_waiting(b), 2);
  assert_rc(mp_barrier_abort(b), 0);
  join_parties(t, 2);
  assert_rc(p[0].idx[0], MP_EBROKEN);
  assert_rc(p[1].idx[0], MP_EBROKEN);
  assert_int_equal(mp_barrier_broken(b), 1);
  assert_int_equal(mp_barrier_n_waiting(b), 0);
  assert_rc(mp_barrier_wait(b, mp_test_slack(30)), MP_EBROKEN);
  assert_rc(mp_barrier_reset(b), 0);
  start_parties(t, p, 2, b, 1);
  int mine = mp_barrier_wait(b, mp_test_slack(30));
  join_parties(t, 2);
  assert_true(mine >= 0 && p[0].idx[0] >= 0 && p[1].idx[0] >= 0);
  mp_barrier_free(b);
}

static void reset_releases_waiters_broken(void **state) {
  (void)state;
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, 3, NULL), 0);
  pthread_t t[2];
  party p[2];
  start_parties(t, p, 2, b, 1);
  until_waiting(b, 2);
  assert_rc(mp_barrier_reset(b), 0);
  join_parties(t, 2);
  assert_rc(p[0].idx[0], MP_EBROKEN);
  assert_rc(p[1].idx[0], MP_EBROKEN);
  /* Not broken: reset, and usable for full rounds again. */
  assert_int_equal(mp_barrier_broken(b), 0);
  start_parties(t, p, 2, b, 3);
  for (int r = 0; r < 3; r++)
    assert_true(mp_barrier_wait(b, mp_test_slack(30)) >= 0);
  join_parties(t, 2);
  for (int r = 0; r < 3; r++)
    assert_true(p[0].idx[r] >= 0 && p[1].idx[r] >= 0);
  mp_barrier_free(b);
}

/* ---- processes --------------------------------------------------------- */

enum { PROC_ROUNDS = 20 };

typedef struct proc_log {
  int idx[3][PROC_ROUNDS];
} proc_log;

static mp_barrier *g_barrier;
static proc_log *g_log;
static char g_name[64];
static mp_test_signal g_sig;

static int proc_rounds(void *arg) {
  int who = *(int *)arg;
  int rc = 0;
  for (int r = 0; r < PROC_ROUNDS; r++) {
    g_log->idx[who][r] = mp_barrier_wait(g_barrier, mp_test_slack(30));
    if (g_log->idx[who][r] < 0)
      rc = 1;
  }
  mp_barrier_free(g_barrier);
  return rc;
}

static void run_proc_rounds(mp_barrier *b) {
  g_barrier = b;
  g_log = mp_test_shared_map(sizeof *g_log);
  int who[3] = {0, 1, 2};
  pid_t pids[3];
  for (int i = 0; i < 3; i++)
    pids[i] = mp_test_fork(proc_rounds, &who[i]);
  for (int i = 0; i < 3; i++)
    mp_test_wait_exit(pids[i], 0, mp_test_slack(60));
  for (int r = 0; r < PROC_ROUNDS; r++) {
    unsigned seen = 0;
    for (int i = 0; i < 3; i++)
      seen |= 1u << g_log->idx[i][r];
    assert_int_equal(seen, 7);
  }
  munmap(g_log, sizeof *g_log);
}

static void processes_fork_inherited(void **state) {
  (void)state;
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, 3, NULL), 0);
  run_proc_rounds(b);
  assert_int_equal(mp_barrier_broken(b), 0);
  mp_barrier_free(b);
}

static void processes_in_place(void **state) {
  (void)state;
  mp_barrier *b = mp_test_shared_map(sizeof *b);
  assert_rc(mp_barrier_init(b, 3, NULL), 0);
  run_proc_rounds(b);
  assert_rc(mp_barrier_destroy(b), 0);
  munmap(b, sizeof *b);
}

static int wait_by_name(void *arg) {
  (void)arg;
  mp_barrier *b;
  if (mp_barrier_open(&b, g_name) != 0)
    return 1;
  int rc = mp_barrier_wait(b, mp_test_slack(30));
  mp_barrier_free(b);
  return rc >= 0 ? 0 : 2;
}

static void named_from_child(void **state) {
  (void)state;
  mp_test_name(g_name, sizeof g_name, "barrier-child");
  mp_barrier_opts o = {.name = g_name};
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, 2, &o), 0);
  pid_t pid = mp_test_fork(wait_by_name, NULL);
  assert_true(mp_barrier_wait(b, mp_test_slack(30)) >= 0);
  mp_test_wait_exit(pid, 0, mp_test_slack(30));
  mp_barrier_free(b);
}

/* ---- dead parties: G-BARRIER-1 ------------------------------------------ */

/* Round 1 with everyone; then the first two wait again, and the third
 * (a member from round 1) stays away and is killed. */
static int member(void *arg) {
  int who = *(int *)arg;
  if (mp_barrier_wait(g_barrier, mp_test_slack(30)) < 0)
    return 1;
  if (who == 2) {
    mp_test_signal_post(&g_sig);
    for (;;)
      pause();
  }
  int rc = mp_barrier_wait(g_barrier, mp_test_slack(30));
  mp_barrier_free(g_barrier);
  return rc == MP_EBROKEN ? 0 : 2;
}

static void member_killed_between_rounds(void **state) { /* G-BARRIER-1 */
  (void)state;
  assert_rc(mp_barrier_new(&g_barrier, 3, NULL), 0);
  mp_test_signal_open(&g_sig);
  int who[3] = {0, 1, 2};
  pid_t pids[3];
  for (int i = 0; i < 3; i++)
    pids[i] = mp_test_fork(member, &who[i]);
  assert_true(mp_test_signal_wait(&g_sig, mp_test_slack(30)));
  until_waiting(g_barrier, 2);
  double t0 = mp_test_now();
  kill(pids[2], SIGKILL);
  int status;
  assert_int_equal(waitpid(pids[2], &status, 0), pids[2]);
  mp_test_wait_exit(pids[0], 0, mp_test_slack(20));
  mp_test_wait_exit(pids[1], 0, mp_test_slack(20));
  assert_true(mp_test_now() - t0 < mp_test_slack(10));
  assert_int_equal(mp_barrier_broken(g_barrier), 1);
  /* The dead member is forgotten: after a reset the barrier works. */
  assert_rc(mp_barrier_reset(g_barrier), 0);
  pthread_t t[2];
  party p[2];
  start_parties(t, p, 2, g_barrier, 2);
  for (int r = 0; r < 2; r++)
    assert_true(mp_barrier_wait(g_barrier, mp_test_slack(30)) >= 0);
  join_parties(t, 2);
  for (int r = 0; r < 2; r++)
    assert_true(p[0].idx[r] >= 0 && p[1].idx[r] >= 0);
  mp_test_signal_close(&g_sig);
  mp_barrier_free(g_barrier);
}

static int wait_once_expect_broken(void *arg) {
  (void)arg;
  int rc = mp_barrier_wait(g_barrier, mp_test_slack(30));
  mp_barrier_free(g_barrier);
  return rc == MP_EBROKEN ? 0 : 1;
}

static int wait_once(void *arg) {
  (void)arg;
  mp_barrier_wait(g_barrier, mp_test_slack(30));
  return 9;
}

static void waiting_party_killed(void **state) { /* G-BARRIER-1 */
  (void)state;
  assert_rc(mp_barrier_new(&g_barrier, 3, NULL), 0);
  pid_t survivor = mp_test_fork(wait_once_expect_broken, NULL);
  pid_t victim = mp_test_fork(wait_once, NULL);
  until_waiting(g_barrier, 2);
  double t0 = mp_test_now();
  kill(victim, SIGKILL);
  int status;
  assert_int_equal(waitpid(victim, &status, 0), victim);
  mp_test_wait_exit(survivor, 0, mp_test_slack(20));
  assert_true(mp_test_now() - t0 < mp_test_slack(10));
  /* Its place in the count went with it: a reset drains at once. */
  assert_rc(mp_barrier_reset(g_barrier), 0);
  assert_int_equal(mp_barrier_n_waiting(g_barrier), 0);
  pthread_t t[2];
  party p[2];
  start_parties(t, p, 2, g_barrier, 1);
  assert_true(mp_barrier_wait(g_barrier, mp_test_slack(30)) >= 0);
  join_parties(t, 2);
  assert_true(p[0].idx[0] >= 0 && p[1].idx[0] >= 0);
  mp_barrier_free(g_barrier);
}

static pid_t g_parent;

static int die_in_action(void *arg) {
  (void)arg;
  if (getpid() != g_parent)
    raise(SIGKILL);
  return 0;
}

static int arrive_last(void *arg) {
  (void)arg;
  double end = mp_test_now() + mp_test_slack(30);
  while (mp_barrier_n_waiting(g_barrier) < 1 && mp_test_now() < end)
    usleep(1000);
  mp_barrier_wait(g_barrier, mp_test_slack(30));
  return 9;
}

static void party_killed_in_action(void **state) { /* G-BARRIER-1 */
  (void)state;
  g_parent = getpid();
  mp_barrier_opts o = {.action = die_in_action};
  assert_rc(mp_barrier_new(&g_barrier, 2, &o), 0);
  pid_t pid = mp_test_fork(arrive_last, NULL);
  double t0 = mp_test_now();
  assert_rc(mp_barrier_wait(g_barrier, mp_test_slack(20)), MP_EBROKEN);
  assert_true(mp_test_now() - t0 < mp_test_slack(10));
  int status = mp_test_wait(pid, mp_test_slack(30));
  assert_true(status != -1 && WIFSIGNALED(status));
  mp_barrier_free(g_barrier);
}

/* Counts no barrier can hold were written by another program: the calls
 * say MP_ECORRUPT instead of returning them (the party count is the word
 * at offset 16, after the head, gen and state; the count of untracked
 * waiters follows it). */
static void overwritten_counts_are_corrupt(void **state) {
  (void)state;
  mp_barrier b;
  assert_rc(mp_barrier_init(&b, 2, NULL), 0);
  uint32_t saved, bad = 0x80000001u;
  memcpy(&saved, b.opaque + 16, sizeof saved);
  memcpy(b.opaque + 16, &bad, sizeof bad);
  assert_rc(mp_barrier_parties(&b), MP_ECORRUPT);
  assert_rc(mp_barrier_wait(&b, 0.01), MP_ECORRUPT);
  assert_rc(mp_barrier_n_waiting(&b), MP_ECORRUPT);
  memcpy(b.opaque + 16, &saved, sizeof saved);
  memcpy(b.opaque + 20, &bad, sizeof bad);
  assert_rc(mp_barrier_n_waiting(&b), MP_ECORRUPT);
  assert_rc(mp_barrier_wait(&b, 0.01), MP_ECORRUPT);
  uint32_t zero = 0;
  memcpy(b.opaque + 20, &zero, sizeof zero);
  assert_int_equal(mp_barrier_parties(&b), 2);
  assert_int_equal(mp_barrier_n_waiting(&b), 0);
  assert_rc(mp_barrier_destroy(&b), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(basics),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(names),
    cmocka_unit_test(open_corrupt),
    cmocka_unit_test(destroy_rules),
    cmocka_unit_test(threads_get_distinct_indices),
    cmocka_unit_test(action_runs_once_per_round_in_a_party),
    cmocka_unit_test(failing_action_breaks_the_barrier),
    cmocka_unit_test(timeout_breaks_the_barrier),
    cmocka_unit_test(timed_out_waiter_breaks_the_others),
    cmocka_unit_test(default_timeout_from_options),
    cmocka_unit_test(abort_breaks_now_and_later),
    cmocka_unit_test(reset_releases_waiters_broken),
    cmocka_unit_test(processes_fork_inherited),
    cmocka_unit_test(processes_in_place),
    cmocka_unit_test(named_from_child),
    cmocka_unit_test(member_killed_between_rounds),
    cmocka_unit_test(waiting_party_killed),
    cmocka_unit_test(party_killed_in_action),
    cmocka_unit_test(overwritten_counts_are_corrupt),
};

MP_TEST_MAIN(tests)
