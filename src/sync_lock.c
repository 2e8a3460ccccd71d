/* sync_lock.c - the one lock the sync objects build on (Lock, RLock, a
 * Condition's own RLock, the Barrier's state): an owner word in shared
 * memory, taken with one compare-and-swap, given back with one exchange,
 * and taken over from a holder that is certainly gone.
 *
 * DESIGN
 * Why not a robust pthread mutex. glibc links every robust mutex a thread
 * holds into that thread's robust list, through pointers stored in the
 * mutex itself; unlock and the kernel's walk at thread exit follow those
 * pointers and write through them. In a segment that another program of the
 * user can write, that is an 8-byte write wherever the writer chose. This
 * lock keeps no pointer and no list: nothing in the shared bytes is ever
 * followed, and the kernel never writes to them.
 *
 * Shared layout (mp__sync_lock, 40 bytes):
 *   uint64 word       0 when free; else the holder's identity | WAITERS
 *   uint32 pidns[7]   the PID namespaces of the users (inode of
 *                     /proc/self/ns/pid); entry i is index i + 1; set once
 *                     each by compare-and-swap, never cleared
 *   uint32 epoch      holder deaths seen (grows on each MP_EOWNERDEAD)
 *
 * The word: bits 0-21 the holder thread's kernel id (Linux ids stay below
 * 2^22), bits 22-24 the index of its PID namespace in pidns (0: unknown),
 * bits 25-30 zero, bit 31 WAITERS (someone may sleep), bits 32-63 the low
 * 32 bits of the holder thread's start time in clock ticks (0: unknown).
 * Id and start time name one thread for good, even after the id is
 * reused; the namespace says whether the id means anything to the reader.
 * The futex is the low half of the word: sleepers wait on it with WAITERS
 * set, and the release wakes one sleeper when it finds the bit.
 *
 * Fast paths. acquire: one compare-and-swap of 0 to the caller's identity
 * (cached per thread; the namespace index is a load of pidns[0]). release:
 * one load (is the caller the holder?) and one exchange; a futex wake only
 * if WAITERS was set. No clock read, no system call.
 *
 * Slow path. Spin a little (the holder is most likely on a core), yield
 * twice (it may have lost its core: on an oversubscribed machine spinning
 * only delays it), then sleep on the futex until woken, the deadline, or
 * the end of a check slice. A holder that stays the same for a slice
 * (10 ms the first time, then every MP__SYNC_SLICE_NS) is looked at:
 * mp__os_liveness with its id and start time. Only certain evidence of
 * death counts, and only a waiter of the holder's own, known, PID
 * namespace judges (unknown means alive). A holder seen for a second is
 * also asked (then once a second) whether it still maps the lock (a process that exec'd
 * keeps its main thread's id and start time, but not our memory). A gone
 * holder's word is taken over with one compare-and-swap, so exactly one
 * waiter does it; that waiter bumps epoch and returns MP_EOWNERDEAD with
 * the lock held. A caller out of time (timeout 0 included) still looks
 * once, so a dead holder's lock is taken at once rather than left to a
 * waiter; a thread looks at the same holder at most once per slice.
 *
 * Untrusted memory. Nothing read from the lock is followed or used as an
 * index beyond the 7 entries of pidns. A word with its zero bits set, or
 * naming a namespace entry nobody filled, is MP_ECORRUPT; a word naming a
 * live (or unknowable) thread that is not the caller can only make waiters
 * wait, and every wait is bounded by the caller's deadline.
 *
 * A crash, at each step. The identity goes in with one compare-and-swap and
 * out with one exchange: a holder killed anywhere leaves "held by a dead
 * thread", which the next waiter takes over. A sleeper killed leaves
 * WAITERS set: one futex wake too many later. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "os/queue_os.h"
#include "sync_internal.h"

#define TID_BITS 22
#define TID_MASK ((1u << TID_BITS) - 1)
#define NS_SHIFT TID_BITS
#define NS_MASK 7u
#define ZERO_BITS 0x7e000000u /* bits 25-30 */
#define WAITERS ((uint64_t)1 << 31)
#define START_SHIFT 32

/* Spinning before the first sleep: pauses, then yields. The spinner
 * looks after 1, 2, 4 ... up to SPIN_GAP_MAX pauses: each look takes the
 * lock's line from the holder, whose release and next take then wait for
 * it. Two processes incrementing one Value under its lock (bench_value,
 * locked): 180-214 ns an increment looking after every pause (100 of
 * them), 72-90 ns so, a robust pthread mutex 68-82 ns in the same runs. */
#define SPIN_PAUSES 300
#define SPIN_GAP_MAX 64
#define SPIN_YIELDS 2
/* The first look at a holder that does not let go; later looks come every
 * MP__SYNC_SLICE_NS. */
#define FIRST_CHECK_NS (10 * 1000 * 1000)
/* How long a holder must be seen before it is asked whether it still maps
 * the lock (reads two lists of mappings: slow). */
#define EXEC_CHECK_NS (1000 * 1000 * 1000)

_Static_assert(MP__SYNC_LOCK_NS <= NS_MASK, "namespace index fits 3 bits");
_Static_assert(sizeof(mp__sync_lock) == 40, "mp__sync_lock layout");

/* ---- who the caller is ---------------------------------------------------- */

/* The caller's PID namespace, looked up once per process (a forked child
 * looks again: `unshare --pid` forks its first process into a new one).
 * Once per process, not on every use: the namespace index is part of the
 * caller's identity, which must not change while it holds a lock. */
static _Atomic uint32_t proc_ns;
static _Atomic int proc_ns_known;

static void forget_ns_in_child(void) {
  atomic_store_explicit(&proc_ns_known, 0, memory_order_relaxed);
  atomic_store_explicit(&proc_ns, 0, memory_order_relaxed);
}

__attribute__((constructor)) static void sync_lock_atfork(void) {
  pthread_atfork(NULL, NULL, forget_ns_in_child);
}

static uint32_t my_ns(void) {
  if (__builtin_expect(
          atomic_load_explicit(&proc_ns_known, memory_order_acquire), 1))
    return atomic_load_explicit(&proc_ns, memory_order_relaxed);
  uint64_t ns = mp__os_pidns();
  /* Namespace inodes are 32-bit on Linux; anything else is unknown. */
  uint32_t v = ns <= UINT32_MAX ? (uint32_t)ns : 0;
  atomic_store_explicit(&proc_ns, v, memory_order_relaxed);
  atomic_store_explicit(&proc_ns_known, 1, memory_order_release);
  return v;
}

/* The calling thread's id and start time, as the word holds them (without
 * the namespace index); 0 for an id that does not fit (none on Linux). */
static _Thread_local uint64_t t_ident;
static _Thread_local pid_t t_ident_tid;

static uint64_t thread_ident(void) {
  pid_t tid = mp__os_gettid();
  if (__builtin_expect(tid != t_ident_tid, 0)) {
    uint64_t start = 0;
    (void)mp__os_thread_start(tid, &start); /* 0 when it cannot be told */
    t_ident = tid > 0 && (uint32_t)tid <= TID_MASK
                  ? (start & 0xffffffffu) << START_SHIFT | (uint32_t)tid
                  : 0;
    t_ident_tid = tid;
  }
  return t_ident;
}

/* ns_index_slow finds or enters namespace ns in the lock's table. The first
 * empty entry is taken by compare-and-swap after every earlier one was seen
 * to hold another namespace, so a namespace is entered once. */
static unsigned ns_index_slow(mp__sync_lock *l, uint32_t ns) {
  for (unsigned i = 0; i < MP__SYNC_LOCK_NS; i++) {
    uint32_t cur = atomic_load_explicit(&l->pidns[i], memory_order_acquire);
    if (cur == 0 && atomic_compare_exchange_strong(&l->pidns[i], &cur, ns))
      return i + 1;
    if (cur == ns)
      return i + 1;
  }
  return 0; /* the table is full: unknown */
}

static inline unsigned ns_index(mp__sync_lock *l) {
  uint32_t ns = my_ns();
  if (ns == 0)
    return 0;
  if (__builtin_expect(
          atomic_load_explicit(&l->pidns[0], memory_order_relaxed) == ns, 1))
    return 1;
  return ns_index_slow(l, ns);
}

unsigned mp__sync_lock_ns_index(mp__sync_lock *l) { return ns_index(l); }

/* me is the caller's identity for this lock, or 0 (see thread_ident). */
static inline uint64_t me_for(mp__sync_lock *l) {
  uint64_t t = thread_ident();
  if (__builtin_expect(t == 0, 0))
    return 0;
  return t | (uint64_t)ns_index(l) << NS_SHIFT;
}

/* ---- judging a holder ------------------------------------------------------ */

/* plausible: could this library have written holder identity h? */
static bool plausible(mp__sync_lock *l, uint64_t h) {
  if ((h & TID_MASK) == 0 || (h & ZERO_BITS) != 0)
    return false;
  unsigned idx = (unsigned)(h >> NS_SHIFT) & NS_MASK;
  return idx == 0 ||
         (idx <= MP__SYNC_LOCK_NS &&
          atomic_load_explicit(&l->pidns[idx - 1], memory_order_relaxed) != 0);
}

static int corrupt(uint64_t h) {
  return mp__fail(MP_ECORRUPT,
                  "lock word %#llx: the shared state was overwritten",
                  (unsigned long long)h);
}

/* same_ns: does h name a thread of the caller's own, known, namespace? */
static bool same_ns(mp__sync_lock *l, uint64_t h) {
  unsigned idx = (unsigned)(h >> NS_SHIFT) & NS_MASK;
  return idx != 0 && idx == ns_index(l);
}

/* gone: is the holder h certainly gone (dead, or a thread whose id was
 * reused)? With left, also: has it left the lock behind (exec'd)? */
static bool gone(mp__sync_lock *l, uint64_t h, bool left) {
  if (!same_ns(l, h))
    return false;
  pid_t tid = (pid_t)(h & TID_MASK);
  if (mp__os_liveness(tid, h >> START_SHIFT, 32) == MP__LIVE_GONE)
    return true;
  return left && mp__os_maps_object(tid, l) == 0;
}

/* One look per thread per slice at a given holder of a given lock: the
 * answer "alive" is remembered, so a caller that polls (timeout 0 in a
 * loop) does not pay a look each time. */
static _Thread_local struct {
  const mp__sync_lock *l;
  uint64_t h;
  int64_t at;
} seen_alive;

static bool gone_cached(mp__sync_lock *l, uint64_t h, int64_t now) {
  if (seen_alive.l == l && seen_alive.h == h &&
      now - seen_alive.at < MP__SYNC_SLICE_NS)
    return false;
  if (gone(l, h, false))
    return true;
  seen_alive.l = l;
  seen_alive.h = h;
  seen_alive.at = now;
  return false;
}

/* take_over replaces the dead holder's word v with me (keeping WAITERS:
 * sleepers of the dead holder still sleep). True if this caller did it. */
static bool take_over(mp__sync_lock *l, uint64_t v, uint64_t me) {
  if (!atomic_compare_exchange_strong_explicit(&l->word, &v, me | (v & WAITERS),
                                               memory_order_acquire,
                                               memory_order_relaxed))
    return false;
  atomic_fetch_add_explicit(&l->epoch, 1, memory_order_release);
  return true;
}

/* The futex word: the low half of the 64-bit word. */
static uint32_t *futex_of(mp__sync_lock *l) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return (uint32_t *)(void *)&l->word + 1;
#else
  return (uint32_t *)(void *)&l->word;
#endif
}

/* ---- the lock ---------------------------------------------------------------- */

void mp__sync_lock_init(mp__sync_lock *l) {
  memset(l, 0, sizeof *l);
  /* The creator's namespace first: the usual index is then 1, which the
   * fast path finds with one load. */
  uint32_t ns = my_ns();
  if (ns != 0)
    atomic_store_explicit(&l->pidns[0], ns, memory_order_relaxed);
}

/* try_take takes a free lock with one compare-and-swap, after one load. */
static inline bool try_take(mp__sync_lock *l, uint64_t me) {
  uint64_t v = atomic_load_explicit(&l->word, memory_order_relaxed);
  return v == 0 && atomic_compare_exchange_weak_explicit(&l->word, &v, me,
                                                         memory_order_acquire,
                                                         memory_order_relaxed);
}

static int acquire_slow(mp__sync_lock *l, uint64_t me, mp__deadline d) {
  if (me == 0)
    return mp__fail(MP_ENOSYS, "thread id %d does not fit a lock word",
                    (int)mp__os_gettid());
  uint64_t v = atomic_load_explicit(&l->word, memory_order_relaxed);
  if ((v & ~WAITERS) == me)
    return MP_EDEADLK;
  /* Spin, then yield; never for a caller that may not wait. */
  for (int spent = 0, gap = 1; !d.poll && spent < SPIN_PAUSES;
       spent += gap, gap = gap < SPIN_GAP_MAX ? gap * 2 : SPIN_GAP_MAX) {
    for (int k = 0; k < gap; k++)
      mp__os_cpu_relax();
    if (try_take(l, me))
      return 0;
  }
  for (int i = 0; !d.poll && i < SPIN_YIELDS; i++) {
    sched_yield();
    if (try_take(l, me))
      return 0;
  }
  bool slept = false;
  uint64_t seen = 0;
  int64_t next_check = 0, next_exec_check = 0;
  for (;;) {
    v = atomic_load_explicit(&l->word, memory_order_acquire);
    if (v == 0) {
      /* After a sleep others may sleep too: keep WAITERS so that our
       * release wakes the next one. */
      if (atomic_compare_exchange_strong_explicit(
              &l->word, &v, me | (slept ? WAITERS : 0), memory_order_acquire,
              memory_order_relaxed))
        return 0;
      continue;
    }
    uint64_t h = v & ~WAITERS;
    if (h == me)
      return MP_EDEADLK;
    if (!plausible(l, h))
      return corrupt(h);
    int64_t now = mp__os_now_ns();
    if (h != seen) {
      seen = h;
      next_check = now + FIRST_CHECK_NS;
      next_exec_check = now + EXEC_CHECK_NS;
    }
    bool out_of_time = d.poll || (d.ns != INT64_MAX && now >= d.ns);
    bool dead = false;
    if (now >= next_check) {
      next_check = now + MP__SYNC_SLICE_NS;
      bool left = now >= next_exec_check;
      if (left)
        next_exec_check = now + EXEC_CHECK_NS;
      dead = gone(l, h, left);
    } else if (out_of_time) {
      /* Out of time: still, a dead holder's lock is taken now. */
      dead = gone_cached(l, h, now);
    }
    if (dead) {
      if (take_over(l, v, me))
        return MP_EOWNERDEAD;
      continue;
    }
    if (out_of_time)
      return mp__deadline_error(d);
    if (!(v & WAITERS)) {
      uint64_t want = v | WAITERS;
      if (!atomic_compare_exchange_strong_explicit(&l->word, &v, want,
                                                   memory_order_relaxed,
                                                   memory_order_relaxed))
        continue;
      v = want;
    }
    int64_t wake = next_check < d.ns ? next_check : d.ns;
    (void)mp__os_futex_wait(futex_of(l), (uint32_t)v, wake, true);
    slept = true;
  }
}

int mp__sync_lock_acquire(mp__sync_lock *l, double timeout) {
  uint64_t me = me_for(l);
  uint64_t expect = 0;
  if (__builtin_expect(me != 0, 1) &&
      atomic_compare_exchange_strong_explicit(&l->word, &expect, me,
                                              memory_order_acquire,
                                              memory_order_relaxed))
    return 0;
  return acquire_slow(l, me, mp__deadline_from_timeout(timeout));
}

int mp__sync_lock_acquire_until(mp__sync_lock *l, mp__deadline d) {
  uint64_t me = me_for(l);
  uint64_t expect = 0;
  if (__builtin_expect(me != 0, 1) &&
      atomic_compare_exchange_strong_explicit(&l->word, &expect, me,
                                              memory_order_acquire,
                                              memory_order_relaxed))
    return 0;
  return acquire_slow(l, me, d);
}

void mp__sync_lock_unlock(mp__sync_lock *l) {
  /* Only we (and waiters setting WAITERS) change a word that names us: an
   * exchange releases whatever they did. */
  uint64_t v = atomic_exchange_explicit(&l->word, 0, memory_order_release);
  if (v & WAITERS)
    (void)mp__os_futex_wake(futex_of(l), 1, true);
}

int mp__sync_lock_release(mp__sync_lock *l) {
  uint64_t me = me_for(l);
  uint64_t v = atomic_load_explicit(&l->word, memory_order_relaxed);
  if (me == 0 || (v & ~WAITERS) != me)
    return MP_EPERM;
  mp__sync_lock_unlock(l);
  return 0;
}

bool mp__sync_lock_held(mp__sync_lock *l) {
  uint64_t v = atomic_load_explicit(&l->word, memory_order_relaxed);
  if (v == 0)
    return false;
  uint64_t me = me_for(l);
  return me != 0 && (v & ~WAITERS) == me;
}

int mp__sync_lock_state(mp__sync_lock *l) {
  uint64_t v = atomic_load_explicit(&l->word, memory_order_acquire);
  if (v == 0)
    return MP__SYNC_FREE;
  uint64_t h = v & ~WAITERS;
  if (h == me_for(l))
    return MP__SYNC_HELD;
  if (!plausible(l, h))
    return corrupt(h);
  return gone_cached(l, h, mp__os_now_ns()) ? MP__SYNC_DEAD : MP__SYNC_HELD;
}

uint32_t mp__sync_lock_epoch(const mp__sync_lock *l) {
  return atomic_load_explicit(&l->epoch, memory_order_acquire);
}
