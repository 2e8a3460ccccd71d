/* test_sync_lock.c - the owner-word lock under Lock, RLock, Condition and
 * Barrier (src/sync_lock.c): nothing in the shared bytes is ever followed
 * (they were robust pthread mutexes, whose list pointers glibc and the
 * kernel wrote through), a word no holder writes is MP_ECORRUPT, a holder
 * is judged by id and start time and only from its own PID namespace
 * (unknown means alive), a holder that exec'd is taken over, old layouts
 * are refused, and every wait for a stuck lock is bounded.
 *
 * Forked children never call cmocka: they report through their exit
 * status (0 = fine, other values name the step that failed). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "os/queue_os.h"
#include "sync_internal.h"

/* Where the owner word sits: right after the object's head (lock.c), and
 * in a Condition, after the head of its own RLock (condition.c). */
#define LOCK_AT 8
#define COND_OWN_AT 40
static _Atomic uint64_t *word_of(void *obj, size_t at) {
  return (_Atomic uint64_t *)(void *)((char *)obj + at);
}

/* The word the library writes for the calling thread: id, namespace index
 * 1 (the creator's namespace is entered first), start time. */
static uint64_t my_word(void) {
  uint64_t start = 0;
  assert_rc(mp__os_thread_start(gettid(), &start), 0);
  return (start & 0xffffffffu) << 32 | (uint64_t)1 << 22 | (uint32_t)gettid();
}

/* ---- nothing in the shared bytes is followed ------------------------------ */

/* A thread holds the object's lock; another process (here the main thread,
 * as a same-user program writing the segment would) fills every word after
 * the object's head with a pointer to a victim buffer laid out as a robust
 * mutex of that thread (its id in every word). The holder then releases
 * and exits. A robust mutex there was in the thread's robust list, which
 * the kernel walks at thread exit: it wrote FUTEX_OWNER_DIED into the
 * victim. Now nothing may change outside the object. */
enum { K_LOCK, K_RLOCK, K_COND };

typedef struct victim_case {
  int kind;
  void *obj;
  size_t size;
  mp_test_signal held, go;
  pid_t tid;
} victim_case;

static uint32_t victim[64];

static void *hold_then_exit(void *arg) {
  victim_case *c = arg;
  c->tid = gettid();
  int rc = c->kind == K_LOCK    ? mp_lock_acquire(c->obj, 0)
           : c->kind == K_RLOCK ? mp_rlock_acquire(c->obj, 0)
                                : mp_condition_acquire(c->obj, 0);
  mp_test_signal_post(&c->held);
  mp_test_signal_wait(&c->go, 30);
  if (rc == 0) {
    /* After the scribble the word no longer names us: MP_EPERM, or
     * MP_EINVAL for a scribbled head; either way nothing is followed. */
    if (c->kind == K_LOCK)
      (void)mp_lock_release(c->obj);
    else if (c->kind == K_RLOCK)
      (void)mp_rlock_release(c->obj);
    else
      (void)mp_condition_release(c->obj);
  }
  return NULL; /* the thread ends: the kernel walks its robust list */
}

static void scribble_and_exit(int kind, void *obj, size_t size) {
  victim_case c = {.kind = kind, .obj = obj, .size = size};
  mp_test_signal_open(&c.held);
  mp_test_signal_open(&c.go);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, hold_then_exit, &c), 0);
  assert_int_equal(mp_test_signal_wait(&c.held, mp_test_slack(10)), 1);
  for (size_t i = 0; i < MP__ARRAY_SIZE(victim); i++)
    victim[i] = (uint32_t)c.tid;
  uint32_t before[MP__ARRAY_SIZE(victim)];
  memcpy(before, victim, sizeof before);
  /* A list entry at &victim[16] has its futex word 32 bytes before it
   * (glibc's x86-64 layout): &victim[8], which holds the holder's id. */
  uint64_t p = (uint64_t)(uintptr_t)&victim[16];
  for (size_t off = 8; off + 8 <= size; off += 8)
    memcpy((char *)obj + off, &p, 8);
  mp_test_signal_post(&c.go);
  pthread_join(t, NULL);
  if (memcmp(before, victim, sizeof before) != 0)
    fail_msg("memory outside the object was written through a pointer "
             "read from it");
  mp_test_signal_close(&c.held);
  mp_test_signal_close(&c.go);
}

static void scribbled_lock_is_never_followed(void **state) {
  (void)state;
  static _Alignas(64) unsigned char mem[MP_CONDITION_SIZE];
  memset(mem, 0, sizeof mem);
  assert_rc(mp_lock_init((mp_lock *)mem), 0);
  scribble_and_exit(K_LOCK, mem, MP_LOCK_SIZE);
  memset(mem, 0, sizeof mem);
  assert_rc(mp_rlock_init((mp_rlock *)mem), 0);
  scribble_and_exit(K_RLOCK, mem, MP_RLOCK_SIZE);
  memset(mem, 0, sizeof mem);
  assert_rc(mp_condition_init((mp_condition *)mem, NULL), 0);
  scribble_and_exit(K_COND, mem, MP_CONDITION_SIZE);
}

/* ---- words no holder writes ------------------------------------------------ */

static void implausible_word_is_ecorrupt(void **state) {
  (void)state;
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  _Atomic uint64_t *w = word_of(lock, LOCK_AT);
  /* The zero bits set; thread id 0; a namespace entry nobody filled. */
  uint64_t bad[] = {0x7e000001u, (uint64_t)1 << 22, (uint64_t)5 << 22 | 77};
  for (size_t i = 0; i < MP__ARRAY_SIZE(bad); i++) {
    atomic_store(w, bad[i]);
    assert_rc(mp_lock_acquire(lock, 0), MP_ECORRUPT);
    assert_rc(mp_lock_acquire(lock, 0.05), MP_ECORRUPT);
    assert_rc(mp_lock_locked(lock), MP_ECORRUPT);
    assert_rc(mp_lock_release(lock), MP_EPERM);
    assert_rc(mp_lock_destroy(lock), MP_ECORRUPT);
  }
  atomic_store(w, 0);
  assert_rc(mp_lock_acquire(lock, 0), 0);
  assert_rc(mp_lock_release(lock), 0);
  mp_lock_free(lock);
}

/* The id of a thread that is gone, or ours with another start time (the id
 * reused): the lock is taken over at once, even by timeout 0. Ours with our
 * start time: the caller holds it. */
static void *note_tid(void *arg) {
  *(pid_t *)arg = gettid();
  return NULL;
}

static void holder_judged_by_id_and_start_time(void **state) {
  (void)state;
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  _Atomic uint64_t *w = word_of(lock, LOCK_AT);
  uint64_t me = my_word();
  atomic_store(w, me);
  assert_rc(mp_lock_acquire(lock, 0), MP_EDEADLK);
  assert_rc(mp_lock_release(lock), 0);
  /* Our id, started at another time. */
  atomic_store(w, me + ((uint64_t)1 << 32));
  assert_int_equal(mp_lock_locked(lock), 0);
  assert_rc(mp_lock_acquire(lock, 0), MP_EOWNERDEAD);
  assert_int_equal(atomic_load(w), me);
  assert_rc(mp_lock_release(lock), 0);
  /* A thread that ended. */
  pid_t tid = 0;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, note_tid, &tid), 0);
  pthread_join(t, NULL);
  atomic_store(w, (uint64_t)1 << 22 | (uint32_t)tid);
  assert_rc(mp_lock_acquire(lock, 0), MP_EOWNERDEAD);
  assert_rc(mp_lock_release(lock), 0);
  /* A live thread of another process (pid 1), of our namespace: held, and
   * a timed acquire times out. */
  atomic_store(w, (uint64_t)1 << 22 | 1u);
  assert_int_equal(mp_lock_locked(lock), 1);
  assert_rc(mp_lock_acquire(lock, 0), MP_EAGAIN);
  double t0 = mp_test_now();
  assert_rc(mp_lock_acquire(lock, 0.2), MP_ETIMEDOUT);
  assert_true(mp_test_now() - t0 >= 0.19);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  assert_rc(mp_lock_destroy(lock), MP_EBUSY);
  atomic_store(w, 0);
  mp_lock_free(lock);
}

/* A stuck state lock (a live holder that is not a party) bounds every
 * Barrier call: wait by its timeout, the calls without one by a second. */
static void stuck_barrier_calls_are_bounded(void **state) {
  (void)state;
  mp_barrier *b;
  assert_rc(mp_barrier_new(&b, 2, NULL), 0);
  /* The state lock after head, gen, state, parties, untracked, timeout,
   * action, action_arg, creator (barrier.c). */
  _Atomic uint64_t *w = word_of(b, 56);
  atomic_store(w, (uint64_t)1 << 22 | 1u); /* pid 1: alive */
  double t0 = mp_test_now();
  assert_rc(mp_barrier_wait(b, 0), MP_EAGAIN);
  assert_true(mp_test_now() - t0 < mp_test_slack(1));
  assert_rc(mp_barrier_wait(b, 0.2), MP_ETIMEDOUT);
  t0 = mp_test_now();
  assert_rc(mp_barrier_abort(b), MP_ETIMEDOUT);
  assert_true(mp_test_now() - t0 >= 0.9);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  assert_int_equal(mp_barrier_parties(b), 2); /* no lock needed */
  /* Free it again: a stuck lock must not stop the object's use. */
  atomic_store(w, 0);
  assert_int_equal(mp_barrier_broken(b), 0);
  mp_barrier_free(b);
}

/* ---- old layouts ------------------------------------------------------------ */

/* Objects of the layout with pthread mutexes had type numbers 1, 2, 5, 6:
 * opened by name they are MP_ECORRUPT, in place MP_EINVAL. */
static void old_layout_is_refused(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "oldlock");
  mp_lock *lock, *opened;
  assert_rc(mp_lock_new(&lock, &(mp_sync_opts){.name = name}), 0);
  char path[128];
  snprintf(path, sizeof path, "/dev/shm/mp_%s", name);
  FILE *f = fopen(path, "r+");
  assert_non_null(f);
  /* The segment header's type (offset 6) and the object's (256 + 4). */
  uint16_t old = 1;
  assert_int_equal(fseek(f, 6, SEEK_SET), 0);
  assert_int_equal(fwrite(&old, 2, 1, f), 1);
  assert_int_equal(fseek(f, 256 + 4, SEEK_SET), 0);
  assert_int_equal(fwrite(&old, 2, 1, f), 1);
  fflush(f);
  assert_rc(mp_lock_open(&opened, name), MP_ECORRUPT);
  /* Put this layout's number back, so the creator's free knows its lock. */
  uint16_t now = MP__TYPE_LOCK;
  assert_int_equal(fseek(f, 6, SEEK_SET), 0);
  assert_int_equal(fwrite(&now, 2, 1, f), 1);
  assert_int_equal(fseek(f, 256 + 4, SEEK_SET), 0);
  assert_int_equal(fwrite(&now, 2, 1, f), 1);
  fclose(f);
  /* In place: the same bytes are not a lock of this layout. */
  _Alignas(8) unsigned char mem[MP_LOCK_SIZE];
  assert_rc(mp_lock_init((mp_lock *)mem), 0);
  memcpy(mem + 4, &old, 2);
  assert_rc(mp_lock_acquire((mp_lock *)mem, 0), MP_EINVAL);
  mp_lock_free(lock);
}

/* ---- a holder that exec'd ---------------------------------------------------- */

static int hold_then_exec(void *arg) {
  if (mp_lock_acquire(arg, 0) != 0)
    return 1;
  /* The process lives on in another program that does not map the lock:
   * its id and start time still name a live thread. */
  execl("/bin/sleep", "sleep", "60", (char *)NULL);
  return 2;
}

static void holder_that_exec_d_is_taken_over(void **state) {
  (void)state;
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  pid_t pid = mp_test_fork(hold_then_exec, lock);
  /* Wait until it holds the lock and has exec'd. */
  double t0 = mp_test_now();
  while (mp_lock_locked(lock) != 1 && mp_test_now() - t0 < mp_test_slack(10))
    usleep(1000);
  assert_int_equal(mp_lock_locked(lock), 1);
  assert_rc(mp_lock_acquire(lock, mp_test_slack(20)), MP_EOWNERDEAD);
  assert_rc(mp_lock_release(lock), 0);
  kill(pid, SIGKILL);
  mp_test_wait(pid, mp_test_slack(10));
  mp_lock_free(lock);
}

/* ---- PID namespaces -----------------------------------------------------------
 * The other namespace is made as `unshare --pid --fork --mount-proc` does
 * by mp_test_in_pid_ns (harness.h; root only, elsewhere the cases skip);
 * its /proc is its own, none (tmpfs), or the outer one. */
static char g_name[64];
static mp_test_signal g_ready;

static int hold_forever(void *arg) {
  (void)arg;
  mp_lock *lock;
  if (mp_lock_open(&lock, g_name) != 0)
    return 1;
  if (mp_lock_acquire(lock, 0) != 0)
    return 2;
  mp_test_signal_post(&g_ready);
  for (;;)
    pause();
}

/* In the other namespace: an acquire must time out, not take over. */
static int acquire_must_time_out(void *arg) {
  (void)arg;
  mp_lock *lock;
  if (mp_lock_open(&lock, g_name) != 0)
    return 10;
  int rc = mp_lock_acquire(lock, 0.3);
  int rc0 = mp_lock_acquire(lock, 0);
  mp_lock_free(lock);
  if (rc == 0 || rc == MP_EOWNERDEAD || rc0 == 0 || rc0 == MP_EOWNERDEAD)
    return 11; /* took a holder's lock over that it cannot judge */
  return rc == MP_ETIMEDOUT && rc0 == MP_EAGAIN ? 0 : 12;
}

/* In the other namespace: take the lock and die holding it. */
static int acquire_and_die(void *arg) {
  (void)arg;
  mp_lock *lock;
  if (mp_lock_open(&lock, g_name) != 0)
    return 20;
  return mp_lock_acquire(lock, 5) == 0 ? 0 : 21;
}

static void namespaces_judge_only_their_own(void **state) {
  (void)state;
  MP_TEST_NEED_PID_NS();
  mp_test_name(g_name, sizeof g_name, "nslock");
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, &(mp_sync_opts){.name = g_name}), 0);
  mp_test_signal_open(&g_ready);
  pid_t holder = mp_test_fork(hold_forever, NULL);
  assert_int_equal(mp_test_signal_wait(&g_ready, mp_test_slack(10)), 1);
  mp_test_proc modes[] = {MP_TEST_PROC_OWN, MP_TEST_PROC_NONE,
                          MP_TEST_PROC_OUTER};
  for (size_t i = 0; i < 3; i++) {
    int rc = mp_test_in_pid_ns(modes[i], acquire_must_time_out, NULL);
    if (rc != 0)
      fail_msg("%s: step %d", mp_test_proc_name(modes[i]), rc);
  }
  /* Our namespace judges our holder: dead, taken over. */
  kill(holder, SIGKILL);
  mp_test_wait(holder, mp_test_slack(10));
  assert_rc(mp_lock_acquire(lock, mp_test_slack(5)), MP_EOWNERDEAD);
  assert_rc(mp_lock_release(lock), 0);
  /* A holder of another namespace that died holding it: its id means
   * nothing here, so the lock stays held (unknown means alive). */
  assert_int_equal(mp_test_in_pid_ns(MP_TEST_PROC_OWN, acquire_and_die, NULL),
                   0);
  assert_int_equal(mp_lock_locked(lock), 1);
  assert_rc(mp_lock_acquire(lock, 0.3), MP_ETIMEDOUT);
  mp_test_signal_close(&g_ready);
  mp_lock_free(lock);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(scribbled_lock_is_never_followed),
    cmocka_unit_test(implausible_word_is_ecorrupt),
    cmocka_unit_test(holder_judged_by_id_and_start_time),
    cmocka_unit_test(stuck_barrier_calls_are_bounded),
    cmocka_unit_test(old_layout_is_refused),
    cmocka_unit_test(holder_that_exec_d_is_taken_over),
    cmocka_unit_test(namespaces_judge_only_their_own),
};

MP_TEST_MAIN(tests)
