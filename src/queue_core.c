/* queue_core.c - the lowest layer of the queue, which every other queue file
 * uses and which uses none of them: who is alive (PID namespaces and
 * process tags), the queue locks (one compare-and-swap to take, a store to
 * give back, taken over from a dead holder), the sleeper protocol of the
 * futex words (notify, prepare to sleep, wait), and the checks and copies
 * every storage makes (a record's check value, delivery into a get
 * request). The DESIGN comment of queue.c explains the whole. */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "os/queue_os.h"
#include "queue_internal.h"

/* Each lock and what its side keeps beside it stay on one cache line. */
_Static_assert(offsetof(mp__qshared, tail) - offsetof(mp__qshared, plock) ==
                   MP__QUEUE_LINE,
               "the producers' line overflows");
_Static_assert(offsetof(mp__qshared, headw) - offsetof(mp__qshared, clock) ==
                   MP__QUEUE_LINE,
               "the consumers' line overflows");

/* ---- PID namespaces -------------------------------------------------------
 * A pid means something only in its own PID namespace: processes of
 * several (containers sharing /dev/shm, a sandbox) may use one queue. Each
 * user enters its namespace in the queue's table (once, never cleared:
 * the first empty entry is taken by compare-and-swap, after every earlier
 * one was seen to hold another namespace, so no namespace is entered
 * twice) and stamps its index on what it records: lock words, the table
 * of users, large segments' tags. Only a process of the same, known,
 * namespace judges those ids; for everyone else they are alive. */
uint8_t mp__queue_ns_index(mp__qshared *s) {
  uint64_t ns = mp__os_pidns();
  if (ns == 0)
    return 0;
  for (int i = 0; i < MP__QUEUE_NS; i++) {
    uint64_t cur = atomic_load(&s->pidns[i]);
    if (cur == 0 && atomic_compare_exchange_strong(&s->pidns[i], &cur, ns))
      return (uint8_t)(i + 1);
    if (cur == ns)
      return (uint8_t)(i + 1);
  }
  return 0; /* the table is full: unknown */
}

uint32_t mp__queue_tag(mp_queue *q) {
  return q->tag;
}

/* make_tag computes the tag of the calling process (on join, and in a
 * forked child). */
uint32_t mp__queue_make_tag(mp_queue *q) {
  uint32_t pid = (uint32_t)getpid();
  /* Linux pids stay below 2^22; a larger one would not fit beside the
   * index, and is tagged unknown. */
  if (pid >= (1u << 24))
    return pid & 0x00ffffffu;
  return ((uint32_t)q->ns << 24) | pid;
}

/* same_ns: does namespace index ns (from shared memory) name the caller's
 * own, known, namespace? */
bool mp__queue_same_ns(mp_queue *q, uint32_t ns) {
  return q->ns != 0 && ns == q->ns;
}

bool mp__queue_tag_gone(mp_queue *q, uint32_t tag) {
  pid_t pid = (pid_t)(tag & 0x00ffffffu);
  if (pid == 0 || !mp__queue_same_ns(q, tag >> 24))
    return false;
  return mp__os_liveness(pid, 0, 0) == MP__LIVE_GONE;
}

/* ---- locks -----------------------------------------------------------------
 */

/* The calling thread's identity in a lock word (see mp__qlock), without
 * the namespace index (which is the queue's: lock_ident adds it). It is
 * computed once per thread; a forked child's thread has another id, so it
 * computes its own. */
/* The queue's thread-locals are on every put and get: the initial-exec
 * model reaches them with one instruction instead of a call to
 * __tls_get_addr (the library is linked in, or loaded early enough for
 * the few bytes of static TLS they take). */
#define QTLS _Thread_local __attribute__((tls_model("initial-exec")))

QTLS uint64_t mp__queue_my_ident;

#define START_BITS 28
#define START_MASK ((1u << START_BITS) - 1)
#define TID_MASK 0x7fffffffu

/* A forked child's thread forgets its parent thread's identity (the
 * handler runs in the child's only thread), so the lock paths need not ask
 * for the thread id each time. */
static void forget_ident_in_child(void) {
  mp__queue_my_ident = 0;
}

__attribute__((constructor)) static void ident_init(void) {
  pthread_atfork(NULL, NULL, forget_ident_in_child);
}

static uint64_t thread_ident(void) {
  if (__builtin_expect(mp__queue_my_ident != 0, 1))
    return mp__queue_my_ident;
  pid_t tid = mp__os_gettid();
  uint64_t start = 0;
  (void)mp__os_thread_start(tid, &start);
  /* Bit 31 is the lock word's bias flag: Linux thread ids stay below
   * 2^22. */
  mp__queue_my_ident =
      ((start & START_MASK) << 36) | ((uint32_t)tid & TID_MASK);
  return mp__queue_my_ident;
}

static uint64_t lock_ident(mp_queue *q) {
  return thread_ident() | ((uint64_t)q->ns << 32);
}

/* holder_dead: is the thread named by lock word v gone? Only a certain
 * "gone" counts, judged only by a waiter of the holder's own PID
 * namespace: a thread that cannot be looked at now, or whose id means
 * nothing here, is alive. */
bool mp__queue_holder_dead(mp_queue *q, uint64_t v) {
  if (!mp__queue_same_ns(q, (uint32_t)(v >> 32) & 0xfu))
    return false;
  pid_t tid = (pid_t)((uint32_t)v & TID_MASK);
  return mp__os_liveness(tid, v >> 36, START_BITS) == MP__LIVE_GONE;
}

/* holder_left: has the live thread named by v left the queue behind? A
 * holder whose process exec'd from another thread looks alive for good:
 * the kernel gives the exec'ing thread the main thread's id, and the
 * start time is the process's, so a word naming the main thread names
 * the new image. But the new image does not map the queue (unless it
 * opened it again, which this cannot tell from a holder: then the lock
 * stays held, and waits are bounded only by the callers' timeouts). So a
 * holder seen for EXEC_CHECK_NS is asked whether it still maps the
 * queue's memory; certainly not means it left. */
#define EXEC_CHECK_NS (1000 * 1000 * 1000)

static bool holder_left(mp_queue *q, uint64_t v) {
  if (!mp__queue_same_ns(q, (uint32_t)(v >> 32) & 0xfu))
    return false;
  return mp__os_maps_object((pid_t)((uint32_t)v & TID_MASK), q->s) == 0;
}

/* The parts of a futex word (see "the futex words" below). */
#define SLEEP_ONE 1u
#define SLEEP_SEQ 0x10000u
/* A registration on a futex word: whether the caller is counted, and the
 * word's value when it was (what it sleeps on). */
typedef struct sleep_reg {
  bool counted;
  uint32_t v;
} sleep_reg;

static uint32_t prepare_sleep(mp_queue *q, _Atomic uint32_t *word,
                              bool barrier, sleep_reg *r);
static void cancel_sleep(_Atomic uint32_t *word, sleep_reg *r);
static inline int notify_word(mp_queue *q, _Atomic uint32_t *word);

/* A first sleep skips the heavy barrier and lasts at most this long (see
 * prepare_sleep). Not much shorter: a timer that is the next to expire
 * costs its arming and cancelling, which in a virtual machine is two exits
 * to the host (measured: a 1 ms futex timeout added 13 us to every wait
 * that was woken in time; 10 ms and more added nothing). */
#define FIRST_SLEEP_NS (20 * 1000 * 1000)

/* The first sleep after a probe that ran out (see wait_until), also
 * without the heavy barrier (see prepare_sleep): short, because a spin
 * that runs out is when a missed wake-up is likely, so a missed one costs
 * at most this. Not shorter: a timer this short is often the next to
 * expire, and a shorter one would more often wake for nothing. */
#define PROBE_SLEEP_NS (1000 * 1000)

/* How long a lock waiter sleeps before it looks whether the holder died. */
#define LOCK_CHECK_NS (10 * 1000 * 1000)

/* ---- biased locks --------------------------------------------------------
 * A lock's compare-and-swap is a locked instruction: it waits until every
 * store before it (the last message's record and commit word, which the
 * peer on the other core has just read) has left the core, so each side
 * pays a cache-line round trip per message that a bare ring does not.
 * While one thread is a side's only user, it keeps the lock between its
 * calls instead (a bias: owner = its identity | MP__QLOCK_BIAS), enters
 * with a store of active = 1 and a load of revoke, and leaves with a store
 * of active = 0: no read-modify-write at all.
 *
 * Taking a bias. A thread that unlocks after taking the lock
 * MP__QLOCK_BIAS_STREAK times in a row (last, streak), with nobody
 * registered to sleep on it, no revoker, and every user of the queue able
 * to take the heavy barrier (fence_on), stores the bias instead of 0.
 * Each bias taken away from a live owner doubles the streak the lock
 * needs for the next (up to 65536 takes), so two users taking turns pay
 * a heavy barrier rarely.
 *
 * Taking it away. Another thread that finds a bias (lock_sleep) counts
 * itself in revoke, makes the heavy barrier, and from then on takes the
 * lock with a compare-and-swap from the bias word as soon as active is 0.
 * This is the queue's asymmetric barrier again (os/queue_os.h): the
 * owner's store of active and load of revoke have no fence between them,
 * the revoker's increment and load of active have the heavy barrier; so
 * either the revoker sees the owner inside, or the owner sees the revoke
 * and does not enter on the bias (it turns the bias into a plain hold with
 * a compare-and-swap, or waits like anyone once the revoker has the lock).
 * An owner inside that sees a revoker as it leaves wakes the lock's
 * sleepers. The revoker takes its count back when it leaves; one killed in
 * between leaves revoke counted, and the lock then never takes a bias
 * again (it stays a plain lock: slower, never wrong).
 *
 * Dead owners. A bias owner killed outside (active 0) left nothing half
 * done: the revoker takes the lock as from a live one. Killed inside
 * (active 1), it is a dead holder like any other: taken over after a
 * slice, with recovered set. A revoker whose heavy barrier fails never
 * trusts active: it waits for the owner to see the revoke (at its next
 * call) or to die, within the caller's timeout. */
/* A bias taken away from a live owner doubles the streak the next one
 * needs, at most this many times (256 << 8: 65536 takes). */
#define BIAS_PENALTY_MAX 8

/* A debt names, in 32 bits, the live owner v of a bias taken away: its
 * thread id (Linux's stay below 2^22), its namespace index, the low 6
 * bits of its start time. An id that does not fit names nobody: that
 * debt is never settled, and the lock stays plain. */
#define DEBT_TID_BITS 22
#define DEBT_TID_MASK ((1u << DEBT_TID_BITS) - 1)
static uint32_t debt_of(uint64_t v) {
  uint32_t tid = (uint32_t)v & TID_MASK;
  if (tid == 0 || tid > DEBT_TID_MASK)
    return UINT32_MAX;
  return tid | (((uint32_t)(v >> 32) & 0xfu) << DEBT_TID_BITS) |
         ((uint32_t)((v >> 36) & 0x3fu) << 26);
}

/* settle_debt: the caller has just seen that the lock is not its bias
 * (whatever it stored in active on an older look is behind it, and it
 * will not look at this lock as its bias again before another bias is
 * given, which the debt prevents): it takes its debt off the lock. */
static void settle_debt(mp__qlock *l, uint64_t me) {
  uint32_t d = atomic_load_explicit(&l->debt, memory_order_relaxed);
  if (__builtin_expect(d == 0, 1) || d != debt_of(me))
    return;
  if (atomic_compare_exchange_strong(&l->debt, &d, 0))
    atomic_fetch_sub(&l->revoke, 1);
}

/* debt_gone: the owner a debt names is known to be gone (then nobody
 * will settle it: the lock's next candidate for a bias does). */
static bool debt_gone(mp_queue *q, uint32_t d) {
  if (d == UINT32_MAX || !mp__queue_same_ns(q, (d >> DEBT_TID_BITS) & 0xfu))
    return false;
  return mp__os_liveness((pid_t)(d & DEBT_TID_MASK), d >> 26, 6) ==
         MP__LIVE_GONE;
}

typedef struct revoke_state {
  bool counted;    /* the caller is counted in revoke */
  bool barrier_ok; /* and its heavy barrier was made */
} revoke_state;

/* revoke_try is a revoker's step on the bias word cur: it counts the
 * caller in revoke and makes the heavy barrier (once per wait), then
 * takes the lock if the owner is outside. True: the caller holds it. */
static bool revoke_try(mp_queue *q, mp__qlock *l, uint64_t cur,
                       revoke_state *rs, uint64_t me) {
  if (!rs->counted) {
    atomic_fetch_add(&l->revoke, 1);
    rs->counted = true;
    rs->barrier_ok = mp__os_barrier_heavy() == 0;
    if (!rs->barrier_ok && !q->fence) {
      q->fence = true;
      atomic_store(&q->s->fence_needed, 1);
    }
  }
  if (!rs->barrier_ok ||
      atomic_load_explicit(&l->active, memory_order_acquire) != 0)
    return false;
  if (!atomic_compare_exchange_strong_explicit(
          &l->owner, &cur, me, memory_order_acquire, memory_order_relaxed))
    return false;
  if (mp__queue_holder_dead(q, cur))
    return true; /* a dead owner's: no debt, no penalty */
  /* Taken from a live owner, which may be on its way in on a look at the
   * word taken before the compare-and-swap: the caller's count stays in
   * revoke as the owner's debt, so that the owner's load of revoke still
   * finds it, until the owner saw the lock is no longer its bias
   * (settle_debt). */
  atomic_store_explicit(&l->debt, debt_of(cur), memory_order_relaxed);
  rs->counted = false;
  /* The side has two users after all, so the next bias needs a streak
   * twice as long (up to BIAS_PENALTY_MAX doublings): a revocation (a
   * heavy barrier) stays rare however the two take turns. */
  uint32_t pen = l->streak >> 24;
  if (pen < BIAS_PENALTY_MAX)
    l->streak = (pen + 1) << 24;
  return true;
}

static void revoke_done(mp__qlock *l, revoke_state *rs) {
  if (rs->counted)
    atomic_fetch_sub(&l->revoke, 1);
  rs->counted = false;
}

static bool fence_on(mp_queue *q);

/* bias_due: may the holder me, unlocking, keep the lock as a bias? streak
 * is the count of takes in a row in its low 24 bits, the penalty (how many
 * times the streak needed doubles) in its high 8. */
static bool bias_due(mp_queue *q, mp__qlock *l, uint64_t me) {
  uint32_t pen = MP__MIN(l->streak >> 24, (uint32_t)BIAS_PENALTY_MAX);
  uint32_t n = l->streak & 0xffffffu;
  if (l->last != (uint32_t)me) {
    l->last = (uint32_t)me;
    l->streak = (pen << 24) | 1;
    return false;
  }
  if (n < ((uint32_t)MP__QLOCK_BIAS_STREAK << pen)) {
    l->streak = (pen << 24) | (n + 1);
    return false;
  }
  if (fence_on(q))
    return false;
  /* Acquire: an old owner's settled debt came after its last store of
   * active, which the new bias's store of active must follow. */
  if (atomic_load_explicit(&l->revoke, memory_order_acquire) != 0) {
    /* A revoker, one killed while counted, or a debt. A dead owner's debt
     * is nobody's to settle: the holder takes it off. Looked at once a
     * streak (it costs a look at /proc). */
    uint32_t d = atomic_load_explicit(&l->debt, memory_order_relaxed);
    if (d != 0) {
      if (debt_gone(q, d) && atomic_compare_exchange_strong(&l->debt, &d, 0))
        atomic_fetch_sub(&l->revoke, 1);
      l->streak = pen << 24;
    }
    return false;
  }
  return (atomic_load_explicit(&l->sleepers, memory_order_relaxed) &
          MP__QUEUE_SLEEP_MASK) == 0;
}

static int lock_sleep(mp_queue *q, mp__qlock *l, uint64_t me, bool *recovered,
                      const mp__deadline *d, sleep_reg *reg, revoke_state *rs);

static int lock_slow(mp_queue *q, mp__qlock *l, uint64_t me, bool *recovered,
                     const mp__deadline *d) {
  /* Critical sections are short and never sleep: spinning a little
   * usually beats a trip through the kernel. A holder that does not let
   * go within the spin has most likely lost its core: yielding ours a few
   * times lets it finish before we sleep. A bias is not let go by itself:
   * lock_sleep takes it away. */
  for (int i = 0; i < 204; i++) {
    if (i < 200)
      mp__os_cpu_relax();
    else
      sched_yield();
    uint64_t cur = atomic_load_explicit(&l->owner, memory_order_relaxed);
    if (cur & MP__QLOCK_BIAS)
      break;
    uint64_t expect = 0;
    if (cur == 0 &&
        atomic_compare_exchange_weak_explicit(
            &l->owner, &expect, me, memory_order_acquire, memory_order_relaxed))
      return 0;
  }
  sleep_reg reg = {0};
  revoke_state rs = {0};
  int rc = lock_sleep(q, l, me, recovered, d, &reg, &rs);
  revoke_done(l, &rs);
  cancel_sleep(&l->sleepers, &reg);
  return rc;
}

/* own_bias: the caller found its own bias word in lock_sleep (never, but
 * for a scribbled word): inside is a re-entry, outside it holds it. */
static int own_bias(mp__qlock *l, uint64_t me) {
  if (atomic_load_explicit(&l->active, memory_order_relaxed) != 0)
    return MP_EDEADLK;
  uint64_t cur = me | MP__QLOCK_BIAS;
  return atomic_compare_exchange_strong_explicit(&l->owner, &cur, me,
                                                 memory_order_acquire,
                                                 memory_order_relaxed)
             ? 0
             : MP_EAGAIN;
}

/* take_held is what lock_sleep does first with a held lock word cur: the
 * caller's own plain hold is a re-entry, its own bias is taken back, and
 * another thread's bias is taken away if that thread is outside. Returns
 * 0 (the caller holds the lock), MP_EDEADLK, MP_EAGAIN (look again at
 * once), or HELD_BY_OTHER. */
#define HELD_BY_OTHER 1
static int take_held(mp_queue *q, mp__qlock *l, uint64_t cur, uint64_t me,
                     revoke_state *rs) {
  if (cur == me)
    return MP_EDEADLK;
  if (cur == (me | MP__QLOCK_BIAS))
    return own_bias(l, me);
  if ((cur & MP__QLOCK_BIAS) && revoke_try(q, l, cur, rs, me))
    return 0;
  return HELD_BY_OTHER;
}

/* lock_sleep is lock_slow's sleeping part, registered on the lock's
 * sleepers word through reg and counted as a revoker through rs (both of
 * which the caller takes back). */
static int lock_sleep(mp_queue *q, mp__qlock *l, uint64_t me, bool *recovered,
                      const mp__deadline *d, sleep_reg *reg, revoke_state *rs) {
  /* A caller that may not block gives up here; one with a deadline sleeps
   * no later than it: a holder that is alive but stopped or slow (a large
   * copy) must not stretch the caller's timeout. */
  uint64_t seen = 0;
  int64_t seen_since = 0, seen_first = 0;
  for (bool first = true;;) {
    if (d != NULL && (d->poll || mp__deadline_expired(*d))) {
      /* Out of time: still, a bias kept by a thread that is not inside is
       * taken away, and a dead holder's lock is taken over, now rather
       * than left to the next caller that may wait. */
      uint64_t cur = atomic_load_explicit(&l->owner, memory_order_acquire);
      int held = take_held(q, l, cur, me, rs);
      if (held == MP_EAGAIN)
        continue;
      if (held != HELD_BY_OTHER)
        return held;
      if (cur != 0 && mp__queue_holder_dead(q, cur) &&
          atomic_compare_exchange_strong_explicit(&l->owner, &cur, me,
                                                  memory_order_acquire,
                                                  memory_order_relaxed)) {
        *recovered = true;
        return 0;
      }
      return mp__deadline_error(*d);
    }
    uint32_t v = prepare_sleep(q, &l->sleepers, !first, reg);
    uint64_t cur = atomic_load_explicit(&l->owner, memory_order_acquire);
    if (cur == 0) {
      if (atomic_compare_exchange_strong_explicit(
              &l->owner, &cur, me, memory_order_acquire, memory_order_relaxed))
        return 0;
      continue;
    }
    int held = take_held(q, l, cur, me, rs);
    if (held == MP_EAGAIN)
      continue;
    if (held != HELD_BY_OTHER)
      return held;
    int64_t now = mp__os_now_ns();
    if (cur != seen) {
      seen = cur;
      seen_since = seen_first = now;
    } else if (now - seen_since >= LOCK_CHECK_NS) {
      /* The same holder for a whole slice: alive and slow, or dead. A
       * dead one's lock is taken over, once (compare-and-swap). So is
       * that of one that left the queue (exec'd) long ago. */
      bool left = false;
      if (now - seen_first >= EXEC_CHECK_NS) {
        left = holder_left(q, cur);
        seen_first = now;
      }
      if (left || mp__queue_holder_dead(q, cur)) {
        if (atomic_compare_exchange_strong_explicit(&l->owner, &cur, me,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
          *recovered = true;
          return 0;
        }
        continue;
      }
      seen_since = now;
    }
    int64_t wake = now + (first ? FIRST_SLEEP_NS : LOCK_CHECK_NS);
    if (d != NULL && d->ns < wake)
      wake = d->ns;
    /* As in sleep_until: a wait cut short is still a first sleep. */
    if (mp__os_futex_wait((uint32_t *)&l->sleepers, v, wake, true) ==
        MP_ETIMEDOUT)
      first = false;
  }
}

/* bias_leave: the bias owner found a revoker as it entered. It turns its
 * bias into a plain hold if the revoker has not taken the lock yet, else
 * waits for the lock like anyone. */
static __attribute__((noinline)) int bias_leave(mp_queue *q, mp__qlock *l,
                                                uint64_t me, bool *recovered,
                                                const mp__deadline *d) {
  atomic_store_explicit(&l->active, 0, memory_order_release);
  uint64_t cur = me | MP__QLOCK_BIAS;
  if (atomic_compare_exchange_strong_explicit(
          &l->owner, &cur, me, memory_order_acquire, memory_order_relaxed))
    return 0;
  /* The revoker has it: not our bias any more. */
  settle_debt(l, me);
  return lock_slow(q, l, me, recovered, d);
}

int mp__queue_lock_slow(mp_queue *q, mp__qlock *l, bool *recovered,
                        const mp__deadline *d) {
  uint64_t me = lock_ident(q);
  uint64_t cur = atomic_load_explicit(&l->owner, memory_order_relaxed);
  if (cur == (me | MP__QLOCK_BIAS)) {
    /* The bias owner: no read-modify-write (see "biased locks"). */
    if (atomic_load_explicit(&l->active, memory_order_relaxed) != 0)
      return MP_EDEADLK; /* a signal handler inside the queue re-entered */
    atomic_store_explicit(&l->active, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    if (__builtin_expect(
            atomic_load_explicit(&l->revoke, memory_order_acquire) == 0, 1))
      return 0;
    return bias_leave(q, l, me, recovered, d);
  }
  /* Not our bias (if it was, a revoker took it away: see settle_debt). */
  settle_debt(l, me);
  uint64_t expect = 0;
  if (cur == 0 &&
      atomic_compare_exchange_strong_explicit(
          &l->owner, &expect, me, memory_order_acquire, memory_order_relaxed))
    return 0;
  return lock_slow(q, l, me, recovered, d);
}

void mp__queue_wake_all(mp_queue *q) {
  _Atomic uint32_t *words[] = {&q->s->not_empty, &q->s->not_full};
  for (size_t i = 0; i < MP__ARRAY_SIZE(words); i++) {
    uint32_t v = atomic_load(words[i]);
    while (!atomic_compare_exchange_weak(
        words[i], &v, (v & ~MP__QUEUE_SLEEP_MASK) + SLEEP_SEQ))
      ;
    mp__os_futex_wake((uint32_t *)words[i], INT_MAX, true);
  }
}

void mp__queue_bias_left(mp_queue *q, mp__qlock *l) {
  (void)notify_word(q, &l->sleepers);
}

void mp__queue_unlock_slow(mp_queue *q, mp__qlock *l) {
  /* The producers' lock released after a close: every put that checked
   * "not closed" under it has committed, so gets may now answer closed. */
  bool promoted = false;
  if (l == &q->s->plock &&
      atomic_load_explicit(&q->s->closed, memory_order_relaxed) ==
          MP__QUEUE_CLOSING) {
    uint32_t c = MP__QUEUE_CLOSING;
    promoted =
        atomic_compare_exchange_strong(&q->s->closed, &c, MP__QUEUE_CLOSED);
  }
  /* Only the holder unlocks, and only it changes the word while it holds
   * it (but for the taking over of a dead one). */
  uint64_t cur = atomic_load_explicit(&l->owner, memory_order_relaxed);
  if (cur & MP__QLOCK_BIAS) {
    /* The bias owner leaves and keeps the lock; a revoker that may wait
     * for this is woken (see "biased locks"). */
    atomic_store_explicit(&l->active, 0, memory_order_release);
    atomic_signal_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&l->revoke, memory_order_relaxed) != 0)
      (void)notify_word(q, &l->sleepers);
  } else if (bias_due(q, l, cur)) {
    atomic_store_explicit(&l->active, 0, memory_order_relaxed);
    atomic_store_explicit(&l->owner, cur | MP__QLOCK_BIAS,
                          memory_order_release);
  } else {
    /* A store, not a read-modify-write: the sleepers are found through
     * their count, as for every futex word of the queue. */
    atomic_store_explicit(&l->owner, 0, memory_order_release);
    (void)notify_word(q, &l->sleepers);
  }
  if (promoted)
    mp__queue_wake_all(q);
}

/* ---- waking and waiting -----------------------------------------------------
 */

static bool fence_on(mp_queue *q) {
  return q->fence ||
         atomic_load_explicit(&q->s->fence_needed, memory_order_relaxed);
}

/* ---- the futex words ---------------------------------------------------
 * A futex word of the queue is (sequence << 16) | sleepers: the low half
 * counts the threads registered to sleep on it, the high half moves each
 * time a waker takes them. A waiter registers (adds one) before its last
 * look at the state and sleeps on the value it registered with; a waker,
 * after its commit, loads the word and only if the count is not zero
 * swaps it for (sequence + 1, 0) and makes the one wake system call: so a
 * message costs at most one wake, and none while nobody sleeps. A waiter
 * that leaves without being woken (it found the state ready after
 * registering, or its sleep timed out) takes its one back, unless the
 * sequence moved (a waker took it already). Nothing stays behind to cost
 * a later waker a system call, except the count of a waiter killed while
 * registered, which the next waker clears with one wake. The count is
 * read from shared memory like everything else: a scribbled count costs
 * a wake that finds nobody, or a sleeper its slice. */

/* mp__queue_woke_peer is set when this thread's last put or get woke a
 * sleeping peer (the wake found a thread asleep), and cleared when it
 * found none registered (see wait_until; the clearing is in the inline
 * mp__queue_notify, queue_internal.h). */
QTLS bool mp__queue_woke_peer;

/* wake_counted: the slow part of a notify, when word counted sleepers at
 * v: take them (sequence + 1, count 0) and wake them. Returns how many
 * threads the wake found asleep (0 when another waker took them first). */
static __attribute__((noinline)) int wake_counted(_Atomic uint32_t *word,
                                                  uint32_t v) {
  while (v & MP__QUEUE_SLEEP_MASK) {
    if (atomic_compare_exchange_weak(word, &v,
                                     (v & ~MP__QUEUE_SLEEP_MASK) + SLEEP_SEQ))
      return mp__os_futex_wake((uint32_t *)word, INT_MAX, true);
  }
  return 0;
}

/* notify_word is the whole of a notify but the peer bookkeeping: returns
 * how many sleepers it woke. */
static inline int notify_word(mp_queue *q, _Atomic uint32_t *word) {
  /* The cheap side of the barrier pair (see DESIGN): the commit store
   * before this point must not be reordered after the count load by the
   * compiler; the CPU is taken care of by the sleepers' heavy barrier. */
  if (fence_on(q))
    atomic_thread_fence(memory_order_seq_cst);
  else
    atomic_signal_fence(memory_order_seq_cst);
  uint32_t v = atomic_load_explicit(word, memory_order_relaxed);
  if (__builtin_expect((v & MP__QUEUE_SLEEP_MASK) == 0, 1))
    return 0;
  return wake_counted(word, v);
}

/* The rest of mp__queue_notify (queue_internal.h), once it found
 * sleepers counted at v. */
void mp__queue_notify_slow(mp_queue *q, _Atomic uint32_t *word, uint32_t v) {
  int n = wake_counted(word, v);
  /* not_empty and not_full are the peers' words (joined is not). */
  if (word != &q->s->joined)
    mp__queue_woke_peer = n > 0;
}

/* prepare_sleep registers the caller on word (unless it still is) and
 * returns the value to sleep on; the caller then looks at the state once
 * more, and calls cancel_sleep whenever it leaves without a wake.
 *
 * With barrier, it then makes the heavy barrier (see DESIGN), after which
 * either every waker's commit is visible to that look or the waker sees
 * the count. Without it, a waker whose commit was still on its way out of
 * its core when it loaded the count (a window of some tens of nanoseconds)
 * may miss the sleeper: so the caller sleeps at most FIRST_SLEEP_NS that
 * way, and with the barrier after. Why not the barrier at once: it makes
 * every running process of the queue's users take an interrupt (about
 * 15 us here), and when a request was just sent to a sleeping peer that
 * falls on the reply's path (the bench's idle round trip took 1.8 times a
 * futex hand-off with it). A wake-up missed that way, which needs the two
 * sides to cross within that window, costs at most FIRST_SLEEP_NS.
 *
 * The window is not that narrow after a spin: the waker's commit store
 * waits in its store buffer for the line the spinner keeps reading, a
 * cross-core round trip (hundreds of nanoseconds here), and a spin that
 * runs out is a sign that the peer is busy and about to commit. Counted
 * in a busy 64-byte round trip (200,000 round trips, about twenty sleeps
 * each): one to three first sleeps in three runs of five ran their whole
 * 20 ms with the message there, which made those runs 10-20% slower. So
 * a sleep that follows a plain spin makes the heavy barrier at once: it
 * is rare where spinning pays, and off the message's path (the spinner
 * waits for its peer anyway). A sleep after a probe that ran out (see
 * wait_until) instead first sleeps PROBE_SLEEP_NS without it: there the
 * barrier was on the path, 20-30 us of the idle round trip on each such
 * probe, because the peer the prober had woken was waiting for the core
 * the prober held, and the barrier's interrupt waits until that peer's
 * virtual CPU runs. A first sleep that times out with the state ready is
 * counted in mp__queue_missed_wakes. */
_Atomic unsigned long mp__queue_missed_wakes;
_Atomic unsigned long mp__queue_sleep_barriers;
_Atomic unsigned long mp__queue_paced_spins;

static uint32_t prepare_sleep(mp_queue *q, _Atomic uint32_t *word,
                              bool barrier, sleep_reg *r) {
  uint32_t v = atomic_load(word);
  for (;;) {
    if (r->counted && (v >> 16) == (r->v >> 16) &&
        (v & MP__QUEUE_SLEEP_MASK) != 0)
      break; /* still counted: nobody woke the sleepers since */
    r->counted = false;
    if ((v & MP__QUEUE_SLEEP_MASK) == MP__QUEUE_SLEEP_MASK)
      break; /* saturated (scribbled): a waker wakes anyway */
    if (atomic_compare_exchange_weak(word, &v, v + SLEEP_ONE)) {
      v += SLEEP_ONE;
      r->counted = true;
      break;
    }
  }
  r->v = v;
  if (barrier)
    atomic_fetch_add_explicit(&mp__queue_sleep_barriers, 1,
                              memory_order_relaxed);
  if (barrier && mp__os_barrier_heavy() != 0) {
    if (!q->fence) {
      q->fence = true;
      atomic_store(&q->s->fence_needed, 1);
    }
    atomic_thread_fence(memory_order_seq_cst);
  }
  return v;
}

/* cancel_sleep takes back the caller's registration, if it still counts
 * (a waker that moved the sequence took it). */
static void cancel_sleep(_Atomic uint32_t *word, sleep_reg *r) {
  if (!r->counted)
    return;
  r->counted = false;
  uint32_t v = atomic_load(word);
  while ((v >> 16) == (r->v >> 16) && (v & MP__QUEUE_SLEEP_MASK) != 0 &&
         !atomic_compare_exchange_weak(word, &v, v - SLEEP_ONE))
    ;
}

/* wait_until spins, then sleeps on word, until ready(q, arg) or the
 * deadline. Returns 0 (ready: the caller tries again), MP_EAGAIN or
 * MP_ETIMEDOUT.
 *
 * Spinning pays when the peer is busy and answers within the spin, and
 * costs when it is not. A thread whose last put or get had to wake its
 * peer (the wake found a thread asleep) knows that the answer takes at
 * least that peer's wake-up, which in a virtual machine is tens of
 * microseconds, longer than a plain spin. Spinning the plain spin_ns
 * then is the worst of both: it wastes the spin and still sleeps, and the
 * peer, finding it asleep in turn, does the same. That is how a busy pair
 * kept falling into sleeping on every message once anything (a preempted
 * vCPU, the first message) had made one of them sleep: each side's
 * wake-up outlasted the other's spin (measured: 1.2% of 64-byte round
 * trips slept, 0.05% of the bare ring's took over 20 us). So a waiter
 * that woke its peer spins WAKE_SPINS times spin_ns, long enough to see
 * the woken peer's answer: a busy pair is back to spinning after one
 * sleep, and an idle request/response catches the reply without a
 * wake-up of its own.
 *
 * A peer that is slow for good (it works a long time per request, or the
 * cores are oversubscribed) would make every such wait a long spin for
 * nothing: a wait after a wake whose long spin failed sleeps at once
 * instead, for the next PROBE_MIN waits after a wake, doubled with each
 * further failure up to PROBE_MAX; the long spins in between are probes,
 * and one that succeeds ends the back-off. */
#define WAKE_SPINS 4
#define PROBE_MIN 2
#define PROBE_MAX 1024

/* spin_for polls ready(q, arg) until end, with a CPU pause between looks.
 * No yield of the core in between: measured with four to ten times more
 * runnable threads than cores, a spinner that yielded waited behind the
 * others' time slices (busy round trips took 1.5 to 6 times as long as
 * with a plain spin), while one that blocks is put back at once by the
 * wake-up. A wait that the spin does not satisfy blocks (sleep_until). */
static bool spin_for(mp_queue *q, mp__queue_ready_fn ready, void *arg,
                     int64_t end) {
  for (unsigned i = 1;; i++) {
    if (ready(q, arg))
      return true;
    mp__os_cpu_relax();
    if ((i & 63u) == 0 && mp__os_now_ns() >= end)
      return false;
  }
}

/* spin_paced is spin_for looking at ready only every look_ns (the clock
 * read every 16 pauses), for a waiter whose looks would cost the side it
 * waits for (mp__queue_wait_paced). The first look is look_ns from now:
 * the caller has just looked. */
static bool spin_paced(mp_queue *q, mp__queue_ready_fn ready, void *arg,
                       int64_t now, int64_t end, int64_t look_ns) {
  int64_t next = now + look_ns;
  for (unsigned i = 1;; i++) {
    mp__os_cpu_relax();
    if ((i & 15u) != 0)
      continue;
    now = mp__os_now_ns();
    if (now >= next) {
      if (ready(q, arg))
        return true;
      next = now + look_ns;
    }
    if (now >= end)
      return false;
  }
}

/* sleep_until registers on word and sleeps until ready(q, arg) or the
 * deadline (see wait_until); reg is taken back by the caller. */
static int sleep_until(mp_queue *q, _Atomic uint32_t *word,
                       mp__queue_ready_fn ready, void *arg, mp__deadline d,
                       bool spun, bool probed, sleep_reg *reg) {
  /* Until a sleep lasted its whole slice, sleeps are first sleeps: a
   * futex wait that returns at once because the word moved (another
   * waiter registered) or a wake that found the state taken already
   * did not sleep through a missed wake-up. A first sleep makes no heavy
   * barrier and lasts FIRST_SLEEP_NS, or PROBE_SLEEP_NS after a probe
   * (probed); after a plain spin (spun) there is no first sleep: the
   * barrier comes at once (see prepare_sleep). */
  for (bool first = !spun || probed;;) {
    uint32_t v = prepare_sleep(q, word, !first, reg);
    if (ready(q, arg))
      return 0;
    int64_t now = mp__os_now_ns();
    if (now >= d.ns)
      return MP_ETIMEDOUT;
    int64_t slice = !first   ? MP__QUEUE_SLICE_NS
                    : probed ? PROBE_SLEEP_NS
                             : FIRST_SLEEP_NS;
    int64_t until = d.ns - now > slice ? now + slice : d.ns;
    bool slept =
        mp__os_futex_wait((uint32_t *)word, v, until, true) == MP_ETIMEDOUT;
    if (ready(q, arg)) {
      if (slept && first && until < d.ns)
        atomic_fetch_add_explicit(&mp__queue_missed_wakes, 1,
                                  memory_order_relaxed);
      return 0;
    }
    if (slept)
      first = false;
  }
}

int mp__queue_wait_until(mp_queue *q, _Atomic uint32_t *word,
                         mp__queue_ready_fn ready, void *arg, mp__deadline d) {
  return mp__queue_wait_paced(q, word, ready, arg, d, 0);
}

int mp__queue_wait_paced(mp_queue *q, _Atomic uint32_t *word,
                         mp__queue_ready_fn ready, void *arg, mp__deadline d,
                         int64_t look_ns) {
  /* Waits after a wake since the last probe, and how many to let pass
   * between probes (0: every such wait probes). */
  static QTLS unsigned waits, probe_every;
  if (d.poll)
    return MP_EAGAIN;
  int64_t now = mp__os_now_ns();
  if (now >= d.ns)
    return MP_ETIMEDOUT;
  bool probe = mp__queue_woke_peer && ++waits > probe_every;
  bool spun = false;
  if (q->spin_ns > 0 && (!mp__queue_woke_peer || probe)) {
    int64_t spin = q->spin_ns;
    if (probe) {
      waits = 0;
      spin *= WAKE_SPINS; /* spin_ns is at most a second (queue.c) */
    }
    int64_t end = d.ns - now > spin ? now + spin : d.ns;
    if (look_ns > 0)
      atomic_fetch_add_explicit(&mp__queue_paced_spins, 1,
                                memory_order_relaxed);
    if (look_ns > 0 ? spin_paced(q, ready, arg, now, end, look_ns)
                    : spin_for(q, ready, arg, end)) {
      if (probe)
        probe_every = 0;
      return 0;
    }
    spun = true;
    if (probe)
      probe_every = probe_every == 0           ? PROBE_MIN
                    : probe_every < PROBE_MAX ? probe_every * 2
                                              : PROBE_MAX;
  }
  sleep_reg reg = {0};
  int rc = sleep_until(q, word, ready, arg, d, spun, spun && probe, &reg);
  cancel_sleep(word, &reg);
  return rc;
}

/* ---- checks and delivery --------------------------------------------- */

