/* test_queue_wake.c - the queue's wake-up protocol (src/queue_core.c): a
 * futex word is (sequence << 16) | registered sleepers, a waker moves the
 * sequence (and makes its one wake system call) only when the count is not
 * zero, and a waiter that leaves without being woken takes its count back.
 * The cases read the words from the shared state (white-box, through
 * src/queue_internal.h): a word whose sequence did not move saw no wake.
 *
 * Forked children never call cmocka: they report through their exit
 * status. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "queue_internal.h"

#define SEQ(v) ((v) >> 16)
#define COUNT(v) ((v)&0xffffu)

static mp_queue *qnew(long spin_ns, size_t maxsize) {
  mp_queue *q = NULL;
  mp_queue_opts o = {.spin_ns = spin_ns, .maxsize = maxsize};
  assert_rc(mp_queue_new(&q, &o), 0);
  return q;
}

static uint32_t word(_Atomic uint32_t *w) {
  return atomic_load(w);
}

/* wait_count waits (bounded) until word w counts n sleepers. */
static void wait_count(_Atomic uint32_t *w, uint32_t n) {
  double end = mp_test_now() + mp_test_slack(10);
  while (COUNT(word(w)) != n && mp_test_now() < end)
    usleep(1000);
  assert_int_equal(COUNT(word(w)), n);
}

/* Puts and gets that never wait leave every futex word as it was: no
 * wake system call was made. */
static void no_sleeper_no_wake(void **state) {
  (void)state;
  mp_queue *q = qnew(0, 0);
  uint32_t e0 = word(&q->s->not_empty), f0 = word(&q->s->not_full);
  uint32_t p0 = word(&q->s->plock.sleepers), c0 = word(&q->s->clock.sleepers);
  char buf[64] = {0};
  size_t len;
  for (int i = 0; i < 1000; i++) {
    assert_rc(mp_queue_put(q, buf, sizeof buf, MP_FOREVER), 0);
    assert_rc(mp_queue_get(q, buf, sizeof buf, &len, MP_FOREVER), 0);
  }
  assert_int_equal(word(&q->s->not_empty), e0);
  assert_int_equal(word(&q->s->not_full), f0);
  assert_int_equal(word(&q->s->plock.sleepers), p0);
  assert_int_equal(word(&q->s->clock.sleepers), c0);
  mp_queue_free(q);
}

typedef struct getter {
  mp_queue *q;
  double timeout;
  int rc;
  size_t len;
} getter;

static void *get_thread(void *arg) {
  getter *g = arg;
  char buf[64];
  g->rc = mp_queue_get(g->q, buf, sizeof buf, &g->len, g->timeout);
  return NULL;
}

/* A getter asleep is counted; the put that feeds it moves the sequence
 * once and clears the count; the next put, with nobody asleep, makes no
 * wake. */
static void sleeper_is_woken_once(void **state) {
  (void)state;
  mp_queue *q = qnew(-1, 0); /* never spin: sleep at once */
  getter g = {.q = q, .timeout = MP_FOREVER};
  pthread_t t;
  uint32_t before = word(&q->s->not_empty);
  assert_int_equal(pthread_create(&t, NULL, get_thread, &g), 0);
  wait_count(&q->s->not_empty, 1);
  assert_rc(mp_queue_put(q, "x", 1, MP_FOREVER), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_rc(g.rc, 0);
  assert_int_equal(g.len, 1);
  uint32_t after = word(&q->s->not_empty);
  assert_int_equal(COUNT(after), 0);
  assert_int_equal((SEQ(after) - SEQ(before)) & 0xffffu, 1);
  assert_rc(mp_queue_put(q, "y", 1, MP_FOREVER), 0);
  assert_int_equal(word(&q->s->not_empty), after);
  mp_queue_free(q);
}

/* A getter that times out, and one that spins and sleeps before it gives
 * up, take their count back: the next put makes no wake. */
static void timed_out_waiter_leaves_no_count(void **state) {
  (void)state;
  long spins[] = {-1, 1000000}; /* never; 1 ms */
  for (size_t i = 0; i < sizeof spins / sizeof spins[0]; i++) {
    mp_queue *q = qnew(spins[i], 0);
    char buf[8];
    size_t len;
    uint32_t before = word(&q->s->not_empty);
    assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 0.03), MP_ETIMEDOUT);
    assert_int_equal(word(&q->s->not_empty), before);
    assert_rc(mp_queue_put(q, "x", 1, MP_FOREVER), 0);
    assert_int_equal(word(&q->s->not_empty), before);
    mp_queue_free(q);
  }
}

/* A putter blocked on a full queue sleeps on not_full and is woken by the
 * get that makes room, once. */
static void full_queue_putter_is_woken(void **state) {
  (void)state;
  mp_queue *q = qnew(-1, 1);
  assert_rc(mp_queue_put(q, "a", 1, MP_FOREVER), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(mp_queue_put(q, "b", 1, 10.0) == 0 ? 0 : 1);
  wait_count(&q->s->not_full, 1);
  uint32_t before = word(&q->s->not_full);
  char buf[8];
  size_t len;
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 1.0), 0);
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  uint32_t after = word(&q->s->not_full);
  assert_int_equal(COUNT(after), 0);
  assert_int_equal((SEQ(after) - SEQ(before)) & 0xffffu, 1);
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 1.0), 0);
  assert_memory_equal(buf, "b", 1);
  mp_queue_free(q);
}

/* A sleeper killed while counted leaves its count: the next put clears it
 * with one wake, and the one after makes none. */
static void killed_sleeper_costs_one_wake(void **state) {
  (void)state;
  mp_queue *q = qnew(-1, 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char buf[8];
    size_t len;
    (void)mp_queue_get(q, buf, sizeof buf, &len, MP_FOREVER);
    _exit(1);
  }
  wait_count(&q->s->not_empty, 1);
  kill(pid, SIGKILL);
  assert_int_equal(mp_test_wait(pid, 30), SIGKILL);
  uint32_t before = word(&q->s->not_empty);
  assert_int_equal(COUNT(before), 1);
  assert_rc(mp_queue_put(q, "x", 1, MP_FOREVER), 0);
  uint32_t after = word(&q->s->not_empty);
  assert_int_equal(COUNT(after), 0);
  assert_int_equal((SEQ(after) - SEQ(before)) & 0xffffu, 1);
  assert_rc(mp_queue_put(q, "y", 1, MP_FOREVER), 0);
  assert_int_equal(word(&q->s->not_empty), after);
  mp_queue_free(q);
}

typedef struct putter {
  mp_queue *q;
  int rc;
} putter;

static void *put_thread(void *arg) {
  putter *p = arg;
  p->rc = mp_queue_put(p->q, "z", 1, 10.0);
  return NULL;
}

/* A put that finds the producers' lock held sleeps counted on the lock's
 * word; the unlock wakes it; the count goes back to zero. */
static void lock_sleeper_is_counted_and_woken(void **state) {
  (void)state;
  mp_queue *q = qnew(-1, 0);
  bool rec = false;
  assert_rc(mp__queue_lock(q, &q->s->plock, &rec, NULL), 0);
  putter p = {.q = q};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, put_thread, &p), 0);
  wait_count(&q->s->plock.sleepers, 1);
  mp__queue_unlock(q, &q->s->plock);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_rc(p.rc, 0);
  assert_int_equal(COUNT(word(&q->s->plock.sleepers)), 0);
  char buf[8];
  size_t len;
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 1.0), 0);
  mp_queue_free(q);
}

/* A close wakes every sleeper and clears the counts. */
static void close_wakes_and_clears(void **state) {
  (void)state;
  mp_queue *q = qnew(-1, 0);
  getter g[2] = {{.q = q, .timeout = 10.0}, {.q = q, .timeout = 10.0}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&t[i], NULL, get_thread, &g[i]), 0);
  wait_count(&q->s->not_empty, 2);
  assert_rc(mp_queue_close(q), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_rc(g[i].rc, MP_ECLOSED);
  }
  assert_int_equal(COUNT(word(&q->s->not_empty)), 0);
  mp_queue_free(q);
}

/* A long spin still ends at the caller's deadline (its yielding part
 * included). */
static void spin_is_bounded_by_the_deadline(void **state) {
  (void)state;
  mp_queue *q = qnew(500 * 1000 * 1000L, 0); /* 0.5 s spin */
  char buf[8];
  size_t len;
  double t0 = mp_test_now();
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 0.05), MP_ETIMEDOUT);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.05);
  assert_true(took < mp_test_slack(0.4));
  mp_queue_free(q);
}

/* A busy exchange between two processes that both spin: every message is
 * delivered in order, and neither side's futex word moves more than a
 * few times (a side sleeps only when its peer lost its core). */
static void busy_exchange_delivers_in_order(void **state) {
  (void)state;
  mp_queue *a = qnew(0, 0), *b = qnew(0, 0);
  enum { N = 20000 };
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    for (uint32_t i = 0; i < N; i++) {
      uint32_t v;
      size_t len;
      if (mp_queue_get(a, &v, sizeof v, &len, 10.0) != 0 || v != i)
        _exit(1);
      if (mp_queue_put(b, &v, sizeof v, 10.0) != 0)
        _exit(2);
    }
    _exit(0);
  }
  for (uint32_t i = 0; i < N; i++) {
    uint32_t v = i;
    size_t len;
    assert_rc(mp_queue_put(a, &v, sizeof v, 10.0), 0);
    assert_rc(mp_queue_get(b, &v, sizeof v, &len, 10.0), 0);
    assert_int_equal(v, i);
  }
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  assert_int_equal(COUNT(word(&a->s->not_empty)), 0);
  assert_int_equal(COUNT(word(&b->s->not_empty)), 0);
  mp_queue_free(a);
  mp_queue_free(b);
}

/* ws_exchange: one try's request and answer, made by a thread of its own
 * (the back-off after a failed probe is per thread, so a try that failed
 * on a loaded machine does not keep the next from probing). No cmocka
 * assertion outside the test's thread: results are returned. */
typedef struct ws_exchange {
  mp_queue *req, *rep;
  int put_rc, get_rc;
  bool woke;
  char answer;
} ws_exchange;

static void *ws_exchange_run(void *p) {
  ws_exchange *x = p;
  x->put_rc = mp_queue_put(x->req, "q", 1, MP_FOREVER);
  x->woke = mp__queue_woke_peer;
  char buf[8];
  size_t len = 0;
  x->get_rc = mp_queue_get(x->rep, buf, sizeof buf, &len, 10.0);
  x->answer = x->get_rc == 0 && len == 1 ? buf[0] : 0;
  return NULL;
}

/* A thread whose put woke a sleeping peer waits for the answer spinning,
 * longer than a plain spin (the answer takes the peer's wake-up): here the
 * peer answers after 1.5 spins, and the waiter, spinning up to 4, never
 * registers on its word, so the answer's put makes no wake. (Before, such a
 * waiter slept at once, and two busy peers kept each other sleeping.) */
static void waker_spins_for_the_answer(void **state) {
  (void)state;
  const long spin = 100 * 1000 * 1000L; /* 0.1 s */
  /* On a loaded machine the peer may not be in its futex wait yet after
   * 50 ms (the put then wakes nobody and nothing is probed), or the answer
   * may come after the long spin: such a try shows nothing, and the next
   * one is made, by a new thread. A waiter that sleeps at once fails every
   * try. */
  bool shown = false;
  for (int try = 0; try < 5 && !shown; try++) {
    ws_exchange x = {.req = qnew(-1, 0), .rep = qnew(spin, 0)};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      char buf[8];
      size_t len;
      if (mp_queue_get(x.req, buf, sizeof buf, &len, 10.0) != 0)
        _exit(1);
      usleep(150 * 1000);
      _exit(mp_queue_put(x.rep, "r", 1, 10.0) == 0 ? 0 : 2);
    }
    wait_count(&x.req->s->not_empty, 1);
    usleep(50 * 1000); /* into its futex wait: the wake finds it asleep */
    uint32_t before = word(&x.rep->s->not_empty);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ws_exchange_run, &x), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_rc(x.put_rc, 0);
    assert_rc(x.get_rc, 0);
    assert_int_equal(x.answer, 'r');
    mp_test_wait_exit(pid, 0, mp_test_slack(10));
    shown = x.woke && word(&x.rep->s->not_empty) == before;
    mp_queue_free(x.req);
    mp_queue_free(x.rep);
  }
  assert_true(shown);
}

/* sp_rounds: one try of slow_peer_is_waited_for_asleep, the waiter's
 * side, by a thread of its own (the back-off after a failed probe is per
 * thread: a new one starts with none). No cmocka assertion outside the
 * test's thread: rc is the first failure (0: none), before and after the
 * answer's word around round 1. */
typedef struct sp_rounds {
  mp_queue *req, *rep;
  int rc;
  uint32_t before, after;
} sp_rounds;

static void *sp_rounds_run(void *p) {
  sp_rounds *t = p;
  for (int i = 0; i < 2 && t->rc == 0; i++) {
    double end = mp_test_now() + mp_test_slack(10);
    while (COUNT(word(&t->req->s->not_empty)) != 1 && mp_test_now() < end)
      usleep(1000);
    usleep(50 * 1000); /* into its futex wait */
    t->before = word(&t->rep->s->not_empty);
    char buf[8];
    size_t len;
    t->rc = mp_queue_put(t->req, "q", 1, MP_FOREVER);
    if (t->rc == 0)
      t->rc = mp_queue_get(t->rep, buf, sizeof buf, &len, 10.0);
    t->after = word(&t->rep->s->not_empty);
  }
  return NULL;
}

/* A peer that does not answer within the long spin is slow for good: the
 * next waits after a wake sleep at once. Round 0's answer comes after the
 * long spin (0.4 s against 0.2 s); round 1's within it (0.1 s), yet the
 * waiter is asleep, so that answer's put wakes it (the sequence moves).
 * On a loaded machine the waiter may reach its get only after round 1's
 * answer is there (no sleep, no wake): such a try shows nothing and the
 * next is made; a waiter that probes in round 1 fails every try. */
static void slow_peer_is_waited_for_asleep(void **state) {
  (void)state;
  const long spin = 50 * 1000 * 1000L; /* 0.05 s: 0.2 s after a wake */
  const useconds_t delay[] = {400 * 1000, 100 * 1000};
  bool shown = false;
  for (int try = 0; try < 5 && !shown; try++) {
    sp_rounds t = {.req = qnew(-1, 0), .rep = qnew(spin, 0)};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      for (int i = 0; i < 2; i++) {
        char buf[8];
        size_t len;
        if (mp_queue_get(t.req, buf, sizeof buf, &len, 10.0) != 0)
          _exit(1);
        usleep(delay[i]);
        if (mp_queue_put(t.rep, "r", 1, 10.0) != 0)
          _exit(2);
      }
      _exit(0);
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sp_rounds_run, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_rc(t.rc, 0);
    assert_int_equal(COUNT(t.after), 0);
    shown = ((SEQ(t.after) - SEQ(t.before)) & 0xffffu) == 1;
    mp_test_wait_exit(pid, 0, mp_test_slack(10));
    mp_queue_free(t.req);
    mp_queue_free(t.rep);
  }
  assert_true(shown);
}

/* sleep_barriers runs a getter on a queue spinning spin_ns, lets it
 * register and sleep, and returns how many heavy barriers the sleepers
 * made within 15 ms of its registration, or -1 when this thread could not
 * look within that time (a loaded machine: the caller tries again). A
 * first sleep without the barrier lasts 20 ms, so none of the barriers
 * counted then comes from a sleep that timed out. */
static int sleep_barriers(long spin_ns) {
  mp_queue *q = qnew(spin_ns, 0);
  unsigned long b0 = atomic_load(&mp__queue_sleep_barriers);
  getter g = {.q = q, .timeout = 10.0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, get_thread, &g), 0);
  double t_zero = mp_test_now(), end = t_zero + mp_test_slack(10);
  while (COUNT(word(&q->s->not_empty)) == 0) {
    assert_true(mp_test_now() < end);
    t_zero = mp_test_now(); /* it registers after this */
    usleep(100);
  }
  usleep(5 * 1000); /* past its barrier, if any, into its futex wait */
  unsigned long b = atomic_load(&mp__queue_sleep_barriers) - b0;
  bool in_time = mp_test_now() - t_zero < 0.015;
  uint32_t before = word(&q->s->not_empty);
  assert_rc(mp_queue_put(q, "x", 1, MP_FOREVER), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_rc(g.rc, 0);
  /* It slept: the put woke it (the sequence moved once). */
  assert_int_equal((SEQ(word(&q->s->not_empty)) - SEQ(before)) & 0xffffu, 1);
  mp_queue_free(q);
  return in_time ? (int)b : -1;
}

/* A waiter whose spin ran out sleeps with the heavy barrier at once: the
 * peer it spun for is likely committing, and a commit store still in the
 * peer's store buffer would otherwise miss its registration and cost a
 * whole first sleep (seen in busy round trips). A waiter that did not
 * spin sleeps its first sleep without one (the idle round trip's path). */
static void spun_sleep_makes_the_barrier(void **state) {
  (void)state;
  int r = -1;
  for (int i = 0; i < 5 && r != 1; i++)
    r = sleep_barriers(1000 * 1000L); /* 1 ms spin */
  assert_int_equal(r, 1);
  r = -1;
  for (int i = 0; i < 5 && r < 0; i++)
    r = sleep_barriers(-1); /* never spins */
  if (r < 0)
    mp_test_skip("the machine never let this thread look within 15 ms");
  assert_int_equal(r, 0);
}

/* prober: a getter whose thread first wakes a sleeper on r, so that its
 * wait is a probe (a long spin, see wait_until in queue_core.c). */
typedef struct prober {
  getter g;
  mp_queue *r;
} prober;

static void *probe_get_thread(void *arg) {
  prober *p = arg;
  p->g.rc = mp_queue_put(p->r, "w", 1, MP_FOREVER);
  return p->g.rc == 0 ? get_thread(&p->g) : NULL;
}

/* lost_wake_after_probe runs a getter on a queue spinning 1 ms whose
 * thread has just woken a sleeper (so it probes, 4 ms), lets it register
 * and sleep, then takes its count off the word (as a waker does
 * before its wake system call: one killed there, or one whose commit was
 * still in its store buffer when it loaded the count, wakes nobody) and
 * puts, which then wakes nobody. Returns the seconds from the put to the
 * getter's return, or -1 when the attempt did not hit the getter's first
 * sleep (this thread came late, or the getter was not asleep yet). */
static double lost_wake_after_probe(void) {
  mp_queue *q = qnew(1000 * 1000L, 0), *r = qnew(-1, 0);
  _Atomic uint32_t *w = &q->s->not_empty;
  getter sleeper = {.q = r, .timeout = 10.0};
  pthread_t ts, t;
  assert_int_equal(pthread_create(&ts, NULL, get_thread, &sleeper), 0);
  wait_count(&r->s->not_empty, 1);
  usleep(5 * 1000); /* into its futex wait: the prober's put wakes it */
  unsigned long m0 = atomic_load(&mp__queue_missed_wakes);
  unsigned long b0 = atomic_load(&mp__queue_sleep_barriers);
  prober p = {.g = {.q = q, .timeout = 10.0}, .r = r};
  assert_int_equal(pthread_create(&t, NULL, probe_get_thread, &p), 0);
  double end = mp_test_now() + mp_test_slack(10);
  while (COUNT(word(w)) == 0)
    assert_true(mp_test_now() < end);
  double registered = mp_test_now();
  usleep(200); /* into its futex wait */
  uint32_t v = word(w);
  while (COUNT(v) != 0 &&
         !atomic_compare_exchange_weak(w, &v, (v & ~0xffffu) + 0x10000u))
    ;
  /* Later than 0.8 ms, its first sleep may have ended; a barrier made
   * says it has (this thread was held up before it saw the count), or
   * that its wait was no probe (its put found the sleeper awake). */
  bool late = mp_test_now() - registered > 0.0008 ||
              atomic_load(&mp__queue_sleep_barriers) != b0;
  uint32_t before = word(w);
  double t0 = mp_test_now();
  assert_rc(mp_queue_put(q, "x", 1, MP_FOREVER), 0);
  /* The put woke nobody, unless the getter was not asleep yet when its
   * count was taken, and registered again (then it was woken). */
  bool woken = word(w) != before;
  assert_int_equal(pthread_join(t, NULL), 0);
  double took = mp_test_now() - t0;
  assert_rc(p.g.rc, 0);
  unsigned long missed = atomic_load(&mp__queue_missed_wakes) - m0;
  assert_int_equal(pthread_join(ts, NULL), 0);
  assert_rc(sleeper.rc, 0);
  mp_queue_free(q);
  mp_queue_free(r);
  /* Not asleep yet when its count was taken, it either registered again
   * (and was woken) or found the message without sleeping through. */
  if (late || woken || (missed == 0 && took < 0.001))
    return -1;
  /* It found the message when its short first sleep timed out: counted
   * as missed, and no later sleep (which makes the barrier) was needed. */
  assert_int_equal(missed, 1);
  assert_int_equal(atomic_load(&mp__queue_sleep_barriers), b0);
  return took;
}

/* A wake-up lost while a waiter sleeps after a probe that ran out costs
 * at most its short first sleep (1 ms), not a 100 ms slice, and is counted
 * as missed. */
static void lost_wake_after_probe_costs_a_short_sleep(void **state) {
  (void)state;
  /* 1 ms and the machine's wake-up latency: far below the 100 ms slice of
   * a sleep after the barrier. The best of a few tries, as another
   * process at real-time priority can hold the getter off the cores. */
  double bound = mp_test_slack(0.05), best = -1;
  for (int i = 0; i < 10 && (best < 0 || best >= bound); i++) {
    double took = lost_wake_after_probe();
    if (took >= 0 && (best < 0 || took < best))
      best = took;
  }
  if (best < 0)
    mp_test_skip("the getter never slept through the lost wake-up");
  assert_true(best < bound);
}

/* A put that finds the queue full while it holds 1024 messages or more
 * looks at the room only every few microseconds (queue.c, "Waiting for
 * room, paced"); one that finds fewer looks at every pause. Either way
 * the spin keeps to the deadline. */
static void fill_n(mp_queue *q, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    assert_rc(mp_queue_put(q, &i, sizeof i, 0), 0);
}

static void full_put_paced_only_when_well_stocked(void **state) {
  (void)state;
  unsigned char b = 0;
  /* 0.5 s spins: the whole wait is the spin. */
  mp_queue *big = qnew(500 * 1000 * 1000L, 1100);
  fill_n(big, 1100);
  unsigned long before = atomic_load(&mp__queue_paced_spins);
  double t0 = mp_test_now();
  assert_rc(mp_queue_put(big, &b, 1, 0.05), MP_ETIMEDOUT);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.05);
  assert_true(took < mp_test_slack(0.4));
  assert_true(atomic_load(&mp__queue_paced_spins) > before);
  mp_queue_free(big);

  mp_queue *small = qnew(500 * 1000 * 1000L, 10);
  fill_n(small, 10);
  before = atomic_load(&mp__queue_paced_spins);
  assert_rc(mp_queue_put(small, &b, 1, 0.05), MP_ETIMEDOUT);
  assert_int_equal(atomic_load(&mp__queue_paced_spins), before);
  mp_queue_free(small);
}

/* A producer paced on a full queue of 2000 gets every message through,
 * in order, as its consumer frees room. */
#define PACED_MSGS 20000u

static int produce_paced(void *arg) {
  mp_queue *q = arg;
  for (unsigned i = 0; i < PACED_MSGS; i++)
    if (mp_queue_put(q, &i, sizeof i, 30.0) != 0)
      return 1;
  return atomic_load(&mp__queue_paced_spins) > 0 ? 0 : 2;
}

static void paced_producer_delivers_in_order(void **state) {
  (void)state;
  mp_queue *q = qnew(0, 2000);
  pid_t pid = mp_test_fork(produce_paced, q);
  /* Let it fill the queue and wait. */
  double end = mp_test_now() + mp_test_slack(10);
  while (mp_queue_qsize(q) < 2000 && mp_test_now() < end)
    usleep(1000);
  usleep(20 * 1000);
  for (unsigned i = 0; i < PACED_MSGS; i++) {
    unsigned v = ~0u;
    size_t len = 0;
    assert_rc(mp_queue_get(q, &v, sizeof v, &len, mp_test_slack(10)), 0);
    assert_int_equal(len, sizeof v);
    assert_int_equal(v, i);
  }
  mp_test_wait_exit(pid, 0, mp_test_slack(10));
  mp_queue_free(q);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(no_sleeper_no_wake),
    cmocka_unit_test(sleeper_is_woken_once),
    cmocka_unit_test(timed_out_waiter_leaves_no_count),
    cmocka_unit_test(full_queue_putter_is_woken),
    cmocka_unit_test(killed_sleeper_costs_one_wake),
    cmocka_unit_test(lock_sleeper_is_counted_and_woken),
    cmocka_unit_test(close_wakes_and_clears),
    cmocka_unit_test(spin_is_bounded_by_the_deadline),
    cmocka_unit_test(busy_exchange_delivers_in_order),
    cmocka_unit_test(waker_spins_for_the_answer),
    cmocka_unit_test(slow_peer_is_waited_for_asleep),
    cmocka_unit_test(spun_sleep_makes_the_barrier),
    cmocka_unit_test(lost_wake_after_probe_costs_a_short_sleep),
    cmocka_unit_test(full_put_paced_only_when_well_stocked),
    cmocka_unit_test(paced_producer_delivers_in_order),
};

MP_TEST_MAIN(tests)
