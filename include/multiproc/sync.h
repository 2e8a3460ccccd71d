/* multiproc/sync.h - Lock, RLock, Semaphore, BoundedSemaphore, Event,
 * Condition and Barrier, after Python's threading/multiprocessing.
 *
 * Every object works between threads, between processes that inherit it
 * across fork, and between unrelated processes. Each type is a fixed-size
 * struct whose bytes are shared state; it can live in three places:
 *   - mp_X_new(&x, ..., opts): the library maps shared memory for it.
 *     Without opts->name the memory is anonymous and is inherited by forked
 *     children; with a name it is a named segment ("/mp_<name>" in
 *     /dev/shm) that another process opens with mp_X_open. mp_X_free drops
 *     this process's mapping; the creator's free also unlinks the name.
 *   - mp_X_init(x, ...): in place, in memory the caller shares (its own
 *     struct in a MAP_SHARED region or a segment); mp_X_destroy undoes it.
 *     MP_X_SIZE and MP_X_ALIGN give the size and alignment to reserve.
 *     mp_X_destroy returns MP_EBUSY while the object is visibly in use (a
 *     lock held, waiters present). A waiter killed while it waited on a
 *     Semaphore or Event keeps it busy for good; mp_X_init may then be
 *     used on the memory again once nobody uses it.
 *   - by name, as above.
 * The structs are position-independent: no pointers inside.
 * Freeing a Lock, an RLock or a Condition (own lock) that the calling
 * thread holds releases it first, so others are not left waiting.
 *
 * Dead holders. Lock and RLock know their holder: when it dies (process
 * killed, thread exit, or exec) holding the lock, the next acquirer gets
 * the lock with MP_EOWNERDEAD and the lock stays usable; check the data it
 * protects. Only a process of the holder's PID namespace that can see its
 * /proc judges a holder dead; for the others it is alive (docs/sync.md,
 * "How a dead holder is found").
 * A Condition waiter whose lock holder died wakes with MP_EOWNERDEAD, lock
 * held. A Barrier breaks (MP_EBROKEN) when a process that waits at it, or
 * that used it before and has not freed it, dies while others wait.
 * Semaphores have no owner: see mp_semaphore_new for what they promise.
 *
 * Non-blocking attempts (timeout 0) that cannot proceed return MP_EAGAIN;
 * a positive timeout that expires returns MP_ETIMEDOUT. */
#ifndef MULTIPROC_SYNC_H
#define MULTIPROC_SYNC_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_LOCK_SIZE 64
#define MP_RLOCK_SIZE 64
#define MP_SEMAPHORE_SIZE 32
#define MP_EVENT_SIZE 32
#define MP_CONDITION_SIZE 128
#define MP_BARRIER_SIZE 512
#define MP_SYNC_ALIGN 8
#define MP_LOCK_ALIGN MP_SYNC_ALIGN
#define MP_RLOCK_ALIGN MP_SYNC_ALIGN
#define MP_SEMAPHORE_ALIGN MP_SYNC_ALIGN
#define MP_EVENT_ALIGN MP_SYNC_ALIGN
#define MP_CONDITION_ALIGN MP_SYNC_ALIGN
#define MP_BARRIER_ALIGN MP_SYNC_ALIGN

/* A name is at most this many bytes, not counting the terminating NUL. */
#define MP_SYNC_NAME_MAX 200

#define MP__SYNC_STRUCT(type, size)                                          \
  typedef union type {                                                       \
    unsigned char opaque[size];                                              \
    long long align_;                                                        \
  } type

MP__SYNC_STRUCT(mp_lock, MP_LOCK_SIZE);
MP__SYNC_STRUCT(mp_rlock, MP_RLOCK_SIZE);
MP__SYNC_STRUCT(mp_semaphore, MP_SEMAPHORE_SIZE);
MP__SYNC_STRUCT(mp_event, MP_EVENT_SIZE);
MP__SYNC_STRUCT(mp_condition, MP_CONDITION_SIZE);
MP__SYNC_STRUCT(mp_barrier, MP_BARRIER_SIZE);

/* mp_sync_opts are the options shared by every sync constructor. */
typedef struct mp_sync_opts {
  const char *name; /* NULL: anonymous, fork-inherited. Else created under
                       this name (copied; [A-Za-z0-9._-], at most
                       MP_SYNC_NAME_MAX bytes); MP_EEXIST if it exists. */
} mp_sync_opts;

/* ---- Lock ---------------------------------------------------------------
 * mp_lock is a mutual-exclusion lock with an owner (the acquiring thread).
 * Unlike Python's Lock, only the holder may release it (MP_EPERM
 * otherwise), because knowing the holder is what lets the lock survive the
 * holder's death; for a non-owned binary lock use mp_semaphore with value 1.
 * Acquiring a lock the caller holds returns MP_EDEADLK instead of hanging.
 * The uncontended path makes no system call. */
MP_EXTERN int mp_lock_new(mp_lock **out, const mp_sync_opts *opts);
MP_EXTERN int mp_lock_open(mp_lock **out, const char *name);
MP_EXTERN void mp_lock_free(mp_lock *lock);
MP_EXTERN int mp_lock_init(mp_lock *lock);
MP_EXTERN int mp_lock_destroy(mp_lock *lock);
/* mp_lock_acquire returns 0, MP_EOWNERDEAD (acquired; the previous holder
 * died), MP_EAGAIN (timeout 0, held elsewhere), MP_ETIMEDOUT, MP_EDEADLK
 * (the caller holds it), MP_ECORRUPT (the owner word was overwritten with
 * a value no holder writes), MP_EINVAL (not an initialised lock). */
MP_EXTERN int mp_lock_acquire(mp_lock *lock, double timeout);
/* mp_lock_release returns 0, or MP_EPERM when the caller does not hold it. */
MP_EXTERN int mp_lock_release(mp_lock *lock);
/* mp_lock_locked returns 1 if some thread holds the lock, else 0 (also
 * when its holder is known to be gone), or MP_ECORRUPT. */
MP_EXTERN int mp_lock_locked(mp_lock *lock);

/* ---- RLock --------------------------------------------------------------
 * mp_rlock is a re-entrant lock: its holder may acquire it again and must
 * release it as many times. Release by another thread is MP_EPERM. When
 * the holder dies, the next acquirer gets it with MP_EOWNERDEAD at depth 1. */
MP_EXTERN int mp_rlock_new(mp_rlock **out, const mp_sync_opts *opts);
MP_EXTERN int mp_rlock_open(mp_rlock **out, const char *name);
MP_EXTERN void mp_rlock_free(mp_rlock *lock);
MP_EXTERN int mp_rlock_init(mp_rlock *lock);
MP_EXTERN int mp_rlock_destroy(mp_rlock *lock);
MP_EXTERN int mp_rlock_acquire(mp_rlock *lock, double timeout);
MP_EXTERN int mp_rlock_release(mp_rlock *lock);
/* mp_rlock_depth returns how many times the caller holds it (0 if not), or
 * MP_ECORRUPT when the shared depth was overwritten beyond INT_MAX. */
MP_EXTERN int mp_rlock_depth(mp_rlock *lock);

/* ---- Semaphore and BoundedSemaphore -------------------------------------
 * mp_semaphore counts: acquire takes one unit (waiting for one), release
 * gives one back. A bounded semaphore refuses a release that would exceed
 * its initial value with MP_EVALUE.
 * What a dead process means: a semaphore has no owner, so units a process
 * took and did not give back before dying are lost, as with POSIX and
 * Python semaphores; the library cannot know whether the process meant to
 * give them back. What it does promise: a process killed at any point
 * inside acquire or release leaves the count and the waiter bookkeeping
 * consistent (at worst one extra wake-up), and no surviving waiter hangs
 * past its timeout. */
MP_EXTERN int mp_semaphore_new(mp_semaphore **out, unsigned value,
                               const mp_sync_opts *opts);
MP_EXTERN int mp_bounded_semaphore_new(mp_semaphore **out, unsigned value,
                                       const mp_sync_opts *opts);
MP_EXTERN int mp_semaphore_open(mp_semaphore **out, const char *name);
MP_EXTERN void mp_semaphore_free(mp_semaphore *sem);
/* mp_semaphore_init initialises in place; bounded nonzero makes it a
 * BoundedSemaphore. value at most INT32_MAX (MP_EINVAL otherwise). */
MP_EXTERN int mp_semaphore_init(mp_semaphore *sem, unsigned value,
                                int bounded);
MP_EXTERN int mp_semaphore_destroy(mp_semaphore *sem);
/* mp_semaphore_acquire returns 0, MP_EAGAIN, MP_ETIMEDOUT, MP_ECORRUPT (the
 * shared count was overwritten with a value over INT32_MAX; this holds for
 * release and get_value too). */
MP_EXTERN int mp_semaphore_acquire(mp_semaphore *sem, double timeout);
/* mp_semaphore_release returns 0, MP_EVALUE (bounded, over the bound),
 * MP_EOVERFLOW (count would exceed INT32_MAX). */
MP_EXTERN int mp_semaphore_release(mp_semaphore *sem);
/* mp_semaphore_get_value returns the current count (>= 0) or MP_ECORRUPT. */
MP_EXTERN int mp_semaphore_get_value(mp_semaphore *sem);

/* ---- Event --------------------------------------------------------------
 * mp_event is a flag that threads and processes wait for. */
MP_EXTERN int mp_event_new(mp_event **out, const mp_sync_opts *opts);
MP_EXTERN int mp_event_open(mp_event **out, const char *name);
MP_EXTERN void mp_event_free(mp_event *ev);
MP_EXTERN int mp_event_init(mp_event *ev);
MP_EXTERN int mp_event_destroy(mp_event *ev);
MP_EXTERN int mp_event_is_set(mp_event *ev);
/* mp_event_set sets the flag and wakes every waiter. */
MP_EXTERN int mp_event_set(mp_event *ev);
MP_EXTERN int mp_event_clear(mp_event *ev);
/* mp_event_wait returns 0 once the flag is set, MP_ETIMEDOUT (or
 * MP_EAGAIN for timeout 0) if it is still clear at the deadline. */
MP_EXTERN int mp_event_wait(mp_event *ev, double timeout);

/* ---- Condition ----------------------------------------------------------
 * mp_condition is a condition variable with its lock. By default it owns an
 * RLock (as Python's Condition()); opts may lend it an mp_lock or mp_rlock
 * instead. A lent lock must be in the same mapping as the condition or be
 * inherited with it across fork; a condition with a lent lock cannot be
 * opened by name (MP_EINVAL).
 * notify(n) releases up to n waiters; which ones is unspecified (Python
 * releases the oldest). A waiter that times out just as it is notified
 * reports success rather than losing the notification. */
typedef struct mp_condition_opts {
  const char *name;   /* as mp_sync_opts.name */
  mp_lock *lock;      /* borrowed: lend this Lock, or */
  mp_rlock *rlock;    /* borrowed: lend this RLock; both NULL: own RLock */
} mp_condition_opts;

/* mp_condition_predicate_fn is evaluated with the lock held; nonzero means
 * the awaited state holds. */
typedef int (*mp_condition_predicate_fn)(void *arg);

MP_EXTERN int mp_condition_new(mp_condition **out,
                               const mp_condition_opts *opts);
MP_EXTERN int mp_condition_open(mp_condition **out, const char *name);
MP_EXTERN void mp_condition_free(mp_condition *cond);
MP_EXTERN int mp_condition_init(mp_condition *cond,
                                const mp_condition_opts *opts);
MP_EXTERN int mp_condition_destroy(mp_condition *cond);
/* acquire/release the condition's lock, as the lock's own calls. */
MP_EXTERN int mp_condition_acquire(mp_condition *cond, double timeout);
MP_EXTERN int mp_condition_release(mp_condition *cond);
/* mp_condition_wait releases the lock (all levels of an RLock), waits to be
 * notified, and re-acquires it before returning, whatever it returns but
 * MP_EPERM. Returns 0 (notified), MP_ETIMEDOUT, MP_EOWNERDEAD (a holder of
 * the lock died; the caller holds it now), MP_EPERM (caller does not hold
 * the lock). */
MP_EXTERN int mp_condition_wait(mp_condition *cond, double timeout);
/* mp_condition_wait_for waits until pred(arg) is nonzero, as Python's
 * wait_for. Returns 0 when it holds, MP_ETIMEDOUT when it still does not at
 * the deadline, MP_EOWNERDEAD, MP_EPERM. */
MP_EXTERN int mp_condition_wait_for(mp_condition *cond,
                                    mp_condition_predicate_fn pred,
                                    void *arg, double timeout);
/* mp_condition_notify releases up to n waiters; notify_all every waiter.
 * The caller must hold the lock (MP_EPERM otherwise). */
MP_EXTERN int mp_condition_notify(mp_condition *cond, unsigned n);
MP_EXTERN int mp_condition_notify_all(mp_condition *cond);

/* ---- Barrier ------------------------------------------------------------
 * mp_barrier lets `parties` threads or processes wait for one another.
 * wait returns the arrival index, 0 .. parties-1, distinct for each party.
 * The action runs once per round, in the last party to arrive, before any
 * is released; a nonzero return breaks the barrier. The action is a
 * function pointer: it runs only in processes that share the creator's
 * address space layout (threads and fork-inherited children); a process
 * that opens a barrier with an action by name gets MP_EINVAL.
 * A barrier breaks on abort, on a wait that times out (that waiter gets
 * MP_ETIMEDOUT, the others MP_EBROKEN), on a failed action, and when a
 * party process dies while others wait: a process that waits at the
 * barrier, or that has waited at it before and has not freed it. Up to
 * MP_BARRIER_MAX_PROCS processes are tracked. */
#define MP_BARRIER_MAX_PROCS 64
/* Passed as a wait timeout: use the barrier's default timeout. */
#define MP_BARRIER_DEFAULT_TIMEOUT (-2.0)

typedef int (*mp_barrier_action_fn)(void *arg);

typedef struct mp_barrier_opts {
  const char *name;            /* as mp_sync_opts.name */
  mp_barrier_action_fn action; /* NULL: none */
  void *action_arg;            /* borrowed; passed to action */
  double timeout;              /* default wait timeout; 0 means forever */
} mp_barrier_opts;

MP_EXTERN int mp_barrier_new(mp_barrier **out, unsigned parties,
                             const mp_barrier_opts *opts);
MP_EXTERN int mp_barrier_open(mp_barrier **out, const char *name);
MP_EXTERN void mp_barrier_free(mp_barrier *b);
MP_EXTERN int mp_barrier_init(mp_barrier *b, unsigned parties,
                              const mp_barrier_opts *opts);
MP_EXTERN int mp_barrier_destroy(mp_barrier *b);
/* mp_barrier_wait returns the arrival index (>= 0), MP_EBROKEN,
 * MP_ETIMEDOUT (this waiter's deadline passed: the barrier is now broken;
 * MP_EAGAIN for timeout 0), MP_ECORRUPT (the shared party count or count
 * of waiters holds a value no barrier has: another program wrote it; also
 * from n_waiting and parties). mp_barrier_free also ends the calling
 * process's membership; for an in-place barrier that is all it does. */
MP_EXTERN int mp_barrier_wait(mp_barrier *b, double timeout);
/* mp_barrier_reset returns the barrier to its empty state; current waiters
 * get MP_EBROKEN. reset, abort, broken, n_waiting and destroy return
 * MP_ETIMEDOUT when the barrier's internal lock stayed held for a second
 * (a stopped holder, or overwritten), having changed nothing. */
MP_EXTERN int mp_barrier_reset(mp_barrier *b);
/* mp_barrier_abort breaks the barrier: waiters now and later get
 * MP_EBROKEN until reset. */
MP_EXTERN int mp_barrier_abort(mp_barrier *b);
MP_EXTERN int mp_barrier_broken(mp_barrier *b);
MP_EXTERN int mp_barrier_n_waiting(mp_barrier *b);
MP_EXTERN int mp_barrier_parties(mp_barrier *b);

#ifdef __cplusplus
}
#endif
#endif
