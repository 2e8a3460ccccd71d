/* test_csp_harden.c - a channel whose lock word another program holds or
 * wrote: every read, write and choice given a timeout returns by its
 * deadline (plus slack) whatever the word says, a poll (timeout 0, a skip
 * guard) returns at once, a call without a timeout keeps waiting (unknown
 * means alive) and goes on once the word is free, and a holder that
 * really died is taken over at once.
 *
 * The word is forged through the channel's shared bytes (csp_shared's
 * lock): a holder of another PID namespace, which no process here can
 * judge, or a real child that takes the lock and never gives it back.
 * Forked children never call cmocka: they report through their exit
 * status. */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "csp/csp_internal.h"
#include "harness.h"

/* ---- helpers --------------------------------------------------------- */

typedef struct placed {
  void *mem;
  size_t size;
  mp_channel *c;
  mp_channel_end *r, *w;
} placed;

/* place makes a channel in shared memory (inherited by forked children),
 * with a reader and a writer end. */
static void place(placed *p, size_t buffer) {
  mp_channel_opts o = {.buffer = buffer};
  p->size = mp_channel_size(&o);
  p->mem = mp_test_shared_map(p->size);
  assert_rc(mp_channel_init(p->mem, p->size, &o), 0);
  assert_rc(mp_channel_attach(&p->c, p->mem, p->size), 0);
  assert_rc(mp_channel_reader(p->c, &p->r), 0);
  assert_rc(mp_channel_writer(p->c, &p->w), 0);
}

static void unplace(placed *p) {
  mp_channel_end_free(p->r);
  mp_channel_end_free(p->w);
  mp_channel_free(p->c);
  munmap(p->mem, p->size);
}

static mp__sync_lock *lock_of(placed *p) {
  return &((csp_shared *)p->mem)->lock;
}

/* forge_foreign writes a holder of another PID namespace into the word:
 * thread 1 of a namespace entered in the lock's table by nobody here. */
static void forge_foreign(placed *p) {
  mp__sync_lock *l = lock_of(p);
  atomic_store(&l->pidns[MP__SYNC_LOCK_NS - 1], 0xfeedu);
  uint64_t word = (uint64_t)1 | (uint64_t)MP__SYNC_LOCK_NS << 22 |
                  (uint64_t)4242 << 32;
  atomic_store(&l->word, word);
}

/* release_forged frees the word and wakes its sleepers (a forged holder
 * never will). */
static void release_forged(placed *p) {
  mp__sync_lock *l = lock_of(p);
  atomic_store(&l->word, 0);
  syscall(SYS_futex, (uint32_t *)(void *)&l->word, FUTEX_WAKE, INT_MAX, NULL,
          NULL, 0);
}

/* in_time checks that a call that ran from t0 returned by its timeout plus
 * slack, and not long before it. */
static void in_time(double t0, double timeout) {
  double took = mp_test_now() - t0;
  assert_true(took >= timeout * 0.9);
  assert_true(took < timeout + mp_test_slack(1.0));
}

#define TMO 0.2

/* Every call with a timeout on a channel whose lock stays held: read,
 * write, each choice with a timeout guard, and the polls. */
static void timed_calls_return(placed *p) {
  uint32_t v = 5;
  double t0 = mp_test_now();
  assert_rc(mp_channel_write(p->w, &v, sizeof v, TMO), MP_ETIMEDOUT);
  in_time(t0, TMO);
  t0 = mp_test_now();
  assert_rc((int)mp_channel_read(p->r, &v, sizeof v, TMO), MP_ETIMEDOUT);
  in_time(t0, TMO);

  for (int mode = 0; mode < 3; mode++) {
    mp_guard g[] = {MP_GUARD_IN(p->r, &v, sizeof v),
                    MP_GUARD_OUT(p->w, &v, sizeof v), MP_GUARD_TIMEOUT_S(TMO)};
    t0 = mp_test_now();
    int rc = mode == 0   ? mp_pri_select(g, 3)
             : mode == 1 ? mp_alt_select(g, 3)
                         : mp_fair_select(g, 3);
    assert_rc(rc, 2);
    in_time(t0, TMO);
  }

  /* Polls: never more than a moment. */
  t0 = mp_test_now();
  assert_rc(mp_channel_write(p->w, &v, sizeof v, 0), MP_EAGAIN);
  assert_rc((int)mp_channel_read(p->r, &v, sizeof v, 0), MP_EAGAIN);
  mp_guard s[] = {MP_GUARD_IN(p->r, &v, sizeof v), MP_GUARD_SKIP_};
  assert_rc(mp_pri_select(s, 2), 1);
  mp_guard z[] = {MP_GUARD_OUT(p->w, &v, sizeof v), MP_GUARD_TIMEOUT_S(0)};
  assert_rc(mp_pri_select(z, 2), 1);
  assert_true(mp_test_now() - t0 < mp_test_slack(0.5));
}

/* ---- a holder of another PID namespace -------------------------------- */

typedef struct forever_read {
  mp_channel_end *r;
  _Atomic int done;
  ssize_t n;
  uint32_t v;
} forever_read;

static void *read_forever(void *arg) {
  forever_read *f = arg;
  f->n = mp_channel_read(f->r, &f->v, sizeof f->v, MP_FOREVER);
  atomic_store(&f->done, 1);
  return NULL;
}

static void foreign_holder_rendezvous(void **state) {
  (void)state;
  placed p;
  place(&p, 0);
  forge_foreign(&p);
  timed_calls_return(&p);
  /* Without a timeout: the holder cannot be judged, so it is alive; the
   * reader waits, and goes on once the word is free. */
  forever_read f = {.r = p.r};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, read_forever, &f), 0);
  usleep(300 * 1000);
  assert_int_equal(atomic_load(&f.done), 0);
  release_forged(&p);
  uint32_t v = 77;
  assert_rc(mp_channel_write(p.w, &v, sizeof v, mp_test_slack(10)), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(f.n, (ssize_t)sizeof v);
  assert_int_equal(f.v, 77);
  unplace(&p);
}

static void foreign_holder_buffered(void **state) {
  (void)state;
  placed p;
  place(&p, 2);
  uint32_t v = 1;
  assert_rc(mp_channel_write(p.w, &v, sizeof v, 1.0), 0);
  forge_foreign(&p);
  /* Room and a message both wait behind the lock. */
  double t0 = mp_test_now();
  assert_rc(mp_channel_write(p.w, &v, sizeof v, TMO), MP_ETIMEDOUT);
  in_time(t0, TMO);
  t0 = mp_test_now();
  assert_rc((int)mp_channel_read(p.r, &v, sizeof v, TMO), MP_ETIMEDOUT);
  in_time(t0, TMO);
  mp_guard g[] = {MP_GUARD_IN(p.r, &v, sizeof v), MP_GUARD_TIMEOUT_S(TMO)};
  t0 = mp_test_now();
  assert_rc(mp_alt_select(g, 2), 1);
  in_time(t0, TMO);
  release_forged(&p);
  v = 0;
  assert_rc((int)mp_channel_read(p.r, &v, sizeof v, 1.0), (int)sizeof v);
  assert_int_equal(v, 1);
  unplace(&p);
}

/* A choice blocked (offers posted) when the lock is taken: its deadline
 * still holds, and its offers are withdrawn without the lock. */
typedef struct timed_choice {
  placed *p;
  int rc;
  double took;
} timed_choice;

static void *choose_timed(void *arg) {
  timed_choice *tc = arg;
  uint32_t v = 0;
  mp_guard g[] = {MP_GUARD_IN(tc->p->r, &v, sizeof v),
                  MP_GUARD_TIMEOUT_S(0.5)};
  double t0 = mp_test_now();
  tc->rc = mp_pri_select(g, 2);
  tc->took = mp_test_now() - t0;
  return NULL;
}

static void foreign_holder_while_posted(void **state) {
  (void)state;
  placed p;
  place(&p, 0);
  timed_choice tc = {.p = &p};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, choose_timed, &tc), 0);
  /* Wait until the choice posted its offer, then take the lock. */
  double give_up = mp_test_now() + mp_test_slack(5);
  while (csp_st(atomic_load(&csp_slot_of(p.c, 0)->state)) != ST_OFFERED &&
         mp_test_now() < give_up)
    usleep(1000);
  forge_foreign(&p);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_rc(tc.rc, 1);
  assert_true(tc.took < 0.5 + mp_test_slack(1.0));
  /* Nothing stays posted: a writer finds no reader. */
  release_forged(&p);
  uint32_t v = 3;
  assert_rc(mp_channel_write(p.w, &v, sizeof v, 0), MP_EAGAIN);
  unplace(&p);
}

/* ---- a real holder that never lets go, then dies ---------------------- */

typedef struct holder_arg {
  placed *p;
  mp_test_signal sig;
} holder_arg;

static int hold_forever(void *arg) {
  holder_arg *a = arg;
  if (mp__sync_lock_acquire(lock_of(a->p), MP_FOREVER) != 0)
    return 1;
  mp_test_signal_post(&a->sig);
  for (;;)
    pause();
}

static int hold_and_die(void *arg) {
  holder_arg *a = arg;
  if (mp__sync_lock_acquire(lock_of(a->p), MP_FOREVER) != 0)
    return 1;
  return 0; /* exits holding it */
}

static void live_holder_then_dead(void **state) {
  (void)state;
  placed p;
  place(&p, 1);
  holder_arg a = {.p = &p};
  mp_test_signal_open(&a.sig);
  pid_t pid = mp_test_fork(hold_forever, &a);
  assert_int_equal(mp_test_signal_wait(&a.sig, mp_test_slack(10)), 1);
  timed_calls_return(&p);
  /* It dies holding the lock: the next call takes it over at once. */
  kill(pid, SIGKILL);
  int status = mp_test_wait(pid, 10.0);
  assert_true(WIFSIGNALED(status));
  uint32_t v = 9;
  double t0 = mp_test_now();
  assert_rc(mp_channel_write(p.w, &v, sizeof v, 10.0), 0);
  assert_true(mp_test_now() - t0 < mp_test_slack(1.0));
  v = 0;
  assert_rc((int)mp_channel_read(p.r, &v, sizeof v, 10.0), (int)sizeof v);
  assert_int_equal(v, 9);
  assert_true(mp__sync_lock_epoch(lock_of(&p)) >= 1);
  mp_test_signal_close(&a.sig);
  unplace(&p);
}

static void dead_holder_taken_over_by_poll(void **state) {
  (void)state;
  placed p;
  place(&p, 1);
  holder_arg a = {.p = &p};
  mp_test_signal_open(&a.sig);
  pid_t pid = mp_test_fork(hold_and_die, &a);
  mp_test_wait_exit(pid, 0, 10.0);
  /* A poll, a timed call and a call without a timeout all get through. */
  uint32_t v = 4;
  assert_rc(mp_channel_write(p.w, &v, sizeof v, 0), 0);
  v = 0;
  assert_rc((int)mp_channel_read(p.r, &v, sizeof v, MP_FOREVER),
            (int)sizeof v);
  assert_int_equal(v, 4);
  mp_channel_stats st;
  assert_rc(mp_channel_stats_get(p.c, &st), 0);
  assert_int_equal(st.poisoned, 0);
  mp_test_signal_close(&a.sig);
  unplace(&p);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(foreign_holder_rendezvous),
    cmocka_unit_test(foreign_holder_buffered),
    cmocka_unit_test(foreign_holder_while_posted),
    cmocka_unit_test(live_holder_then_dead),
    cmocka_unit_test(dead_holder_taken_over_by_poll),
};

MP_TEST_MAIN(tests)
