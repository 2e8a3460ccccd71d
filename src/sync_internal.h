/* sync_internal.h - what the sync objects share with each other and
 * nothing outside sees: the owner-word lock they are built on
 * (sync_lock.c), the Lock/RLock operations a Condition needs (drop every
 * level of its lock while it waits, take them back after, ask who holds it
 * and whether a holder died) and the length of the sleep slices that let a
 * waiter notice a dead peer that can no longer wake it. */
#ifndef MP_SYNC_INTERNAL_H
#define MP_SYNC_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* Waiters that may depend on a process that can die without waking them
 * sleep at most this long before they look again. Looking costs a few
 * loads (a process check for the Barrier), so waiting is no busier than
 * ten wake-ups a second, and a dead peer is noticed within a tenth of a
 * second. Nothing on a fast path waits for a slice to end. */
#define MP__SYNC_SLICE_NS (100 * 1000 * 1000)

/* ---- the owner-word lock (sync_lock.c) ----------------------------------
 * A mutual-exclusion lock in shared memory that keeps no pointer: a word
 * naming the holder thread (id, start time, PID namespace) and a table of
 * the users' PID namespaces. The DESIGN comment in sync_lock.c explains
 * it. Place it at an 8-byte boundary; all zero bytes are a free lock whose
 * namespace table is empty (mp__sync_lock_init also enters the caller's). */
#define MP__SYNC_LOCK_NS 7
typedef struct mp__sync_lock {
  _Atomic uint64_t word;
  _Atomic uint32_t pidns[MP__SYNC_LOCK_NS];
  _Atomic uint32_t epoch;
} mp__sync_lock;

/* mp__sync_lock_init makes *l a free lock. Not concurrent with any use. */
void mp__sync_lock_init(mp__sync_lock *l);

/* mp__sync_lock_acquire takes the lock as the timeout says (MP_FOREVER,
 * 0: try once, else seconds; not NaN). Returns 0; MP_EOWNERDEAD (its
 * holder was gone: the caller holds it now); MP_EAGAIN (timeout 0) or
 * MP_ETIMEDOUT; MP_EDEADLK (the caller holds it); MP_ECORRUPT (the word
 * was overwritten with something no holder writes). _until takes a
 * deadline instead. */
int mp__sync_lock_acquire(mp__sync_lock *l, double timeout);
int mp__sync_lock_acquire_until(mp__sync_lock *l, mp__deadline d);

/* mp__sync_lock_release gives the lock back: 0, or MP_EPERM when the
 * calling thread does not hold it. */
int mp__sync_lock_release(mp__sync_lock *l);
/* mp__sync_lock_unlock releases a lock the caller has just seen it holds
 * (mp__sync_lock_held), without looking again. */
void mp__sync_lock_unlock(mp__sync_lock *l);

/* mp__sync_lock_held: does the calling thread hold it? No system call. */
bool mp__sync_lock_held(mp__sync_lock *l);

/* mp__sync_lock_state says who holds it: MP__SYNC_FREE, MP__SYNC_HELD (the
 * caller, or a thread not known to be gone), MP__SYNC_DEAD (a thread that
 * is certainly gone: the next acquirer gets MP_EOWNERDEAD), or
 * MP_ECORRUPT. Never blocks; may look at the holder (a system call). */
enum { MP__SYNC_FREE = 0, MP__SYNC_HELD = 1, MP__SYNC_DEAD = 2 };
int mp__sync_lock_state(mp__sync_lock *l);

/* mp__sync_lock_epoch counts the takeovers from dead holders. */
uint32_t mp__sync_lock_epoch(const mp__sync_lock *l);

/* mp__sync_lock_ns_index returns the index (1 to MP__SYNC_LOCK_NS) of the
 * caller's PID namespace in l's table, entering it if need be, or 0 when it
 * is unknown (no /proc of its own) or the table is full. An object that
 * records processes by pid records this index beside each, and judges a
 * pid only when its index is the caller's own and not 0 (unknown means
 * alive). */
unsigned mp__sync_lock_ns_index(mp__sync_lock *l);

/* ---- Lock and RLock, as a Condition uses them ---------------------------
 * Each takes an initialised mp_lock or mp_rlock (the head's type says which)
 * and does no argument checking beyond that: the Condition checked. */

/* mp__lock_held_by_caller returns true when the calling thread holds it. */
bool mp__lock_held_by_caller(mp__object_head *lock);

/* mp__lock_release_save releases every level the caller holds (one for a
 * Lock, the depth for an RLock), stores that count in *depth and returns 0,
 * or MP_EPERM when the caller does not hold it. */
int mp__lock_release_save(mp__object_head *lock, unsigned *depth);

/* mp__lock_acquire_restore blocks until the caller holds the lock again,
 * at the depth release_save saved. Returns 0 or MP_EOWNERDEAD (a holder
 * died; the lock is held and consistent, the depth restored). */
int mp__lock_acquire_restore(mp__object_head *lock, unsigned depth);

/* mp__lock_died_epoch counts the deaths of holders this lock has seen: it
 * grows each time an acquirer is told MP_EOWNERDEAD. */
uint32_t mp__lock_died_epoch(mp__object_head *lock);

/* mp__lock_owner_died returns true when the last holder died holding the
 * lock and no one has acquired it since. */
bool mp__lock_owner_died(mp__object_head *lock);

#endif
