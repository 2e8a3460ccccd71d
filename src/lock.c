/* lock.c - Lock and RLock: mutual exclusion between threads and processes
 * that survives the death of its holder.
 *
 * DESIGN
 * Both are the library's owner-word lock (sync_lock.c) in shared memory,
 * plus a little state beside it:
 *
 *   mp__object_head head    magic/type/version/origin (internal.h)
 *   mp__sync_lock lock      holder identity word, PID namespaces, deaths
 *   uint32 depth            RLock only: levels the holder took
 *
 * The owner word names the holder thread (id, start time, PID namespace),
 * so the lock knows its holder without asking anyone: relocking is
 * MP_EDEADLK, a release by a non-holder MP_EPERM, and a holder that is
 * certainly gone (dead process or ended thread) is taken over by the next
 * acquirer, which gets MP_EOWNERDEAD with the lock held: the lock stays
 * usable, and the caller knows to check the data it protects. The RLock
 * stores no owner of its own: its owner is the word's, and only the owner
 * touches depth.
 *
 * No pointer is kept in the shared bytes (the robust pthread mutexes used
 * before were linked into each holder's robust list through pointers in
 * the mutex, which glibc and the kernel follow and write through: a
 * scribble there was a write anywhere). Nothing read from the object is
 * followed or used as an index.
 *
 * Fast paths. An uncontended acquire is one check of the head and one
 * compare-and-swap; release is one check, one load and one exchange. No
 * clock read, no system call. An RLock that its holder takes again is told
 * so by the word (MP_EDEADLK from the slow path).
 *
 * A crash at any point leaves nothing worse than "held by a dead thread":
 * depth is written only by the holder, so the next holder resets depth to
 * 1, and the death count only ever grows. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#include "internal.h"
#include "sync_internal.h"

typedef struct lock_state {
  mp__object_head head;
  mp__sync_lock lock;
  uint32_t depth;
} lock_state;

_Static_assert(sizeof(lock_state) <= MP_LOCK_SIZE, "Lock fits mp_lock");
_Static_assert(sizeof(lock_state) <= MP_RLOCK_SIZE, "RLock fits mp_rlock");
_Static_assert(_Alignof(lock_state) <= MP_SYNC_ALIGN, "Lock alignment");

static int state_init(lock_state *s, uint16_t type, uint8_t origin) {
  /* Everything but the head's magic first: the magic published last (with
   * release order) is what makes the object usable to others. */
  memset((char *)s + sizeof s->head, 0, sizeof *s - sizeof s->head);
  s->head.type = type;
  s->head.version = MP__LAYOUT_VERSION;
  s->head.origin = origin;
  mp__sync_lock_init(&s->lock);
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, MP__OBJECT_MAGIC,
                        memory_order_release);
  return 0;
}

static int state_new(void **out, const mp_sync_opts *opts, uint16_t type,
                     size_t size) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  void *obj;
  int rc = mp__object_new(&obj, size, type, opts ? opts->name : NULL);
  if (rc != 0)
    return rc;
  lock_state *s = obj;
  if ((rc = state_init(s, type, s->head.origin)) != 0) {
    mp__object_free(obj, size);
    return rc;
  }
  *out = obj;
  return 0;
}

static int state_inplace(void *obj, uint16_t type) {
  if (obj == NULL)
    return mp__fail(MP_EINVAL, "the object is NULL");
  if ((uintptr_t)obj % MP_SYNC_ALIGN != 0)
    return mp__fail(MP_EINVAL, "the object is not aligned to MP_SYNC_ALIGN");
  memset(obj, 0, sizeof(mp__object_head));
  return state_init(obj, type, MP__ORIGIN_INPLACE);
}

static bool held_by_caller(lock_state *s) {
  return mp__sync_lock_held(&s->lock);
}

static void state_free(void *obj, uint16_t type, size_t size) {
  if (obj == NULL)
    return;
  lock_state *s = obj;
  /* Only the type is checked: a destroyed object still owns its mapping. */
  if (s->head.type != type)
    return;
  uint8_t origin = s->head.origin;
  if (origin != MP__ORIGIN_ANON && origin != MP__ORIGIN_NAMED)
    return;
  /* Unmapping a lock this thread holds would leave it held for everyone
   * else until they find this thread gone: give it back first. */
  if (mp__object_check(s, type) == 0 && held_by_caller(s)) {
    s->depth = 0;
    mp__sync_lock_release(&s->lock);
  }
  mp__object_free(obj, size);
}

static int state_destroy(void *obj, uint16_t type) {
  int rc = mp__object_check(obj, type);
  if (rc != 0)
    return rc;
  lock_state *s = obj;
  /* Held by a live thread (or one that cannot be judged): busy. A gone
   * holder's lock may be destroyed, as a robust mutex marked dead could. */
  rc = mp__sync_lock_state(&s->lock);
  if (rc < 0)
    return rc;
  if (rc == MP__SYNC_HELD)
    return MP_EBUSY;
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, 0,
                        memory_order_release);
  return 0;
}

/* ---- Lock -------------------------------------------------------------- */

int mp_lock_new(mp_lock **out, const mp_sync_opts *opts) {
  return state_new((void **)out, opts, MP__TYPE_LOCK, sizeof(mp_lock));
}

int mp_lock_open(mp_lock **out, const char *name) {
  return mp__object_open((void **)out, sizeof(mp_lock), MP__TYPE_LOCK, name);
}

void mp_lock_free(mp_lock *lock) {
  state_free(lock, MP__TYPE_LOCK, sizeof(mp_lock));
}

int mp_lock_init(mp_lock *lock) {
  return state_inplace(lock, MP__TYPE_LOCK);
}

int mp_lock_destroy(mp_lock *lock) {
  return state_destroy(lock, MP__TYPE_LOCK);
}

int mp_lock_acquire(mp_lock *lock, double timeout) {
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  if (mp__object_check(lock, MP__TYPE_LOCK) != 0)
    return MP_EINVAL;
  return mp__sync_lock_acquire(&((lock_state *)lock)->lock, timeout);
}

int mp_lock_release(mp_lock *lock) {
  if (mp__object_check(lock, MP__TYPE_LOCK) != 0)
    return MP_EINVAL;
  return mp__sync_lock_release(&((lock_state *)lock)->lock);
}

int mp_lock_locked(mp_lock *lock) {
  if (mp__object_check(lock, MP__TYPE_LOCK) != 0)
    return MP_EINVAL;
  int rc = mp__sync_lock_state(&((lock_state *)lock)->lock);
  return rc < 0 ? rc : rc == MP__SYNC_HELD;
}

/* ---- RLock ------------------------------------------------------------- */

int mp_rlock_new(mp_rlock **out, const mp_sync_opts *opts) {
  return state_new((void **)out, opts, MP__TYPE_RLOCK, sizeof(mp_rlock));
}

int mp_rlock_open(mp_rlock **out, const char *name) {
  return mp__object_open((void **)out, sizeof(mp_rlock), MP__TYPE_RLOCK, name);
}

void mp_rlock_free(mp_rlock *lock) {
  state_free(lock, MP__TYPE_RLOCK, sizeof(mp_rlock));
}

int mp_rlock_init(mp_rlock *lock) {
  return state_inplace(lock, MP__TYPE_RLOCK);
}

int mp_rlock_destroy(mp_rlock *lock) {
  return state_destroy(lock, MP__TYPE_RLOCK);
}

int mp_rlock_acquire(mp_rlock *lock, double timeout) {
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  if (mp__object_check(lock, MP__TYPE_RLOCK) != 0)
    return MP_EINVAL;
  lock_state *s = (lock_state *)lock;
  int rc = mp__sync_lock_acquire(&s->lock, timeout);
  switch (rc) {
  case 0:
  case MP_EOWNERDEAD:
    s->depth = 1;
    return rc;
  case MP_EDEADLK:
    /* The word says the caller holds it already: one level more. */
    if (s->depth >= INT_MAX)
      return MP_EOVERFLOW;
    s->depth++;
    return 0;
  default:
    return rc;
  }
}

int mp_rlock_release(mp_rlock *lock) {
  if (mp__object_check(lock, MP__TYPE_RLOCK) != 0)
    return MP_EINVAL;
  lock_state *s = (lock_state *)lock;
  /* Only the holder may look at depth: check before touching it. */
  if (!held_by_caller(s))
    return MP_EPERM;
  if (s->depth > 1) {
    s->depth--;
    return 0;
  }
  s->depth = 0;
  mp__sync_lock_unlock(&s->lock);
  return 0;
}

int mp_rlock_depth(mp_rlock *lock) {
  if (mp__object_check(lock, MP__TYPE_RLOCK) != 0)
    return MP_EINVAL;
  lock_state *s = (lock_state *)lock;
  if (!held_by_caller(s))
    return 0;
  uint32_t depth = s->depth;
  if (depth > INT_MAX)
    return mp__fail(MP_ECORRUPT,
                    "rlock depth %u: the shared state was overwritten", depth);
  return (int)depth;
}

/* ---- for Condition (sync_internal.h) ----------------------------------- */

bool mp__lock_held_by_caller(mp__object_head *lock) {
  return held_by_caller((lock_state *)lock);
}

int mp__lock_release_save(mp__object_head *lock, unsigned *depth) {
  lock_state *s = (lock_state *)lock;
  if (!held_by_caller(s))
    return MP_EPERM;
  *depth = lock->type == MP__TYPE_RLOCK ? s->depth : 1;
  s->depth = 0;
  mp__sync_lock_unlock(&s->lock);
  return 0;
}

int mp__lock_acquire_restore(mp__object_head *lock, unsigned depth) {
  lock_state *s = (lock_state *)lock;
  int rc = mp__sync_lock_acquire(&s->lock, MP_FOREVER);
  if (rc != 0 && rc != MP_EOWNERDEAD)
    return rc;
  /* The caller gets back the levels it gave up, even after a death: it
   * will release as many times as it acquired. */
  if (lock->type == MP__TYPE_RLOCK)
    s->depth = depth;
  return rc;
}

uint32_t mp__lock_died_epoch(mp__object_head *lock) {
  return mp__sync_lock_epoch(&((lock_state *)lock)->lock);
}

bool mp__lock_owner_died(mp__object_head *lock) {
  return mp__sync_lock_state(&((lock_state *)lock)->lock) == MP__SYNC_DEAD;
}
