/* sync_internal.h - what the sync objects share with each other and
 * nothing outside sees: the Lock/RLock operations a Condition needs (drop
 * every level of its lock while it waits, take them back after, ask who
 * holds it and whether a holder died) and the length of the sleep slices
 * that let a waiter notice a dead peer that can no longer wake it. */
#ifndef MP_SYNC_INTERNAL_H
#define MP_SYNC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* Waiters that may depend on a process that can die without waking them
 * sleep at most this long before they look again. Looking costs a few
 * loads (a process check for the Barrier), so waiting is no busier than
 * ten wake-ups a second, and a dead peer is noticed within a tenth of a
 * second. Nothing on a fast path waits for a slice to end. */
#define MP__SYNC_SLICE_NS (100 * 1000 * 1000)

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
