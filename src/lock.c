/* lock.c - Lock and RLock: mutual exclusion between threads and processes
 * that survives the death of its holder.
 *
 * DESIGN
 * Both are a process-shared, robust, error-checking pthread mutex in shared
 * memory, plus a little state beside it:
 *
 *   mp__object_head head    magic/type/version/origin (internal.h)
 *   uint32 died_epoch       holder deaths seen (grows on each EOWNERDEAD)
 *   uint32 depth            RLock only: levels the holder took
 *   pthread_mutex_t mutex   robust + PTHREAD_PROCESS_SHARED + ERRORCHECK
 *
 * Robust: the kernel walks a dying thread's list of robust mutexes and marks
 * each one it held "owner died", so the next acquirer gets EOWNERDEAD
 * instead of waiting forever. We then make the mutex consistent at once and
 * report MP_EOWNERDEAD with the lock held: the lock stays usable, and the
 * caller knows to check the data it protects. Error-checking: relocking is
 * EDEADLK and unlocking by a non-holder is EPERM, both checked by the C
 * library against the owner id it keeps in the mutex word.
 *
 * Who holds it is read from that word (os/robust.h): the kernel's robust
 * futex ABI keeps the holder's thread id there. A thread id is unique among
 * live tasks system-wide, so it names the holder without ambiguity across
 * processes; and a dead holder's id is cleared from the word before the id
 * can be reused. The RLock therefore stores no owner of its own: its owner
 * is the mutex's, and only the owner touches depth.
 *
 * Fast paths. An uncontended acquire with MP_FOREVER or timeout 0 is one
 * check of the head and one pthread_mutex_lock/trylock; release is one
 * check and one pthread_mutex_unlock. No clock read, no system call.
 * An RLock that its holder takes again is told so by the mutex (EDEADLK),
 * so re-entry costs no thread-id lookup either; release needs the caller's
 * id to tell the holder from the others before touching depth.
 *
 * A crash at any point leaves nothing worse than "held by a dead thread":
 * depth and died_epoch are written only by the holder, so the next holder
 * resets depth to 1 and the epoch only ever grows. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif
#include "os/robust.h"
#include "sync_internal.h"

typedef struct lock_state {
  mp__object_head head;
  _Atomic uint32_t died_epoch;
  uint32_t depth;
  pthread_mutex_t mutex;
} lock_state;

_Static_assert(sizeof(lock_state) <= MP_LOCK_SIZE, "Lock fits mp_lock");
_Static_assert(sizeof(lock_state) <= MP_RLOCK_SIZE, "RLock fits mp_rlock");
_Static_assert(_Alignof(lock_state) <= MP_SYNC_ALIGN, "Lock alignment");

/* Turns a pthread result into ours. EOWNERDEAD has been handled by then. */
static int from_pthread(int rc) {
  switch (rc) {
  case 0:
    return 0;
  case EBUSY:
    return MP_EAGAIN;
  default:
    return -rc;
  }
}

/* lock_timed takes the mutex as the timeout says and returns the pthread
 * result: 0, EOWNERDEAD, EBUSY (timeout 0), ETIMEDOUT, EDEADLK, ... */
static int lock_timed(lock_state *s, double timeout) {
  /* Negative is MP_FOREVER (NaN was refused by the caller). */
  if (!(timeout >= 0))
    return pthread_mutex_lock(&s->mutex);
  if (timeout == 0)
    return pthread_mutex_trylock(&s->mutex);
  mp__deadline d = mp__deadline_from_timeout(timeout);
  if (mp__deadline_forever(d))
    return pthread_mutex_lock(&s->mutex);
#ifdef MP_HAVE_CLOCKLOCK
  struct timespec ts = {.tv_sec = d.ns / 1000000000,
                        .tv_nsec = d.ns % 1000000000};
#if defined(__SANITIZE_THREAD__)
  /* GCC 12's ThreadSanitizer does not intercept pthread_mutex_clocklock:
   * tell it about the attempt, or it reports the release as an unlock of
   * an unlocked mutex. */
  __tsan_mutex_pre_lock(&s->mutex, __tsan_mutex_try_lock);
#endif
  int rc = pthread_mutex_clocklock(&s->mutex, CLOCK_MONOTONIC, &ts);
#if defined(__SANITIZE_THREAD__)
  __tsan_mutex_post_lock(&s->mutex,
                         rc == 0 || rc == EOWNERDEAD
                             ? __tsan_mutex_try_lock
                             : __tsan_mutex_try_lock |
                                   __tsan_mutex_try_lock_failed,
                         0);
#endif
  return rc;
#else
  /* Without clocklock the C library measures against the wall clock:
   * convert the time left once, here. */
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t abs_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec +
                   mp__deadline_remaining_ns(d);
  struct timespec ts = {.tv_sec = abs_ns / 1000000000,
                        .tv_nsec = abs_ns % 1000000000};
  return pthread_mutex_timedlock(&s->mutex, &ts);
#endif
}

/* recover is called by a thread that just got EOWNERDEAD: it holds the
 * mutex, which is inconsistent until marked otherwise. */
static void recover(lock_state *s) {
  /* The epoch grows before the mutex is consistent, both under the mutex:
   * a Condition waiter that compares epochs sees the death either in the
   * mutex word (before our acquire) or here (after). */
  atomic_fetch_add_explicit(&s->died_epoch, 1, memory_order_release);
  pthread_mutex_consistent(&s->mutex);
}

static int state_init(lock_state *s, uint16_t type, uint8_t origin) {
  /* Everything but the head's magic first: the magic published last (with
   * release order) is what makes the object usable to others. */
  memset((char *)s + sizeof s->head, 0, sizeof *s - sizeof s->head);
  s->head.type = type;
  s->head.version = MP__LAYOUT_VERSION;
  s->head.origin = origin;
  int rc = mp__os_robust_init(&s->mutex);
  if (rc != 0)
    return rc;
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
  if (obj == NULL || (uintptr_t)obj % MP_SYNC_ALIGN != 0)
    return MP_EINVAL;
  memset(obj, 0, sizeof(mp__object_head));
  return state_init(obj, type, MP__ORIGIN_INPLACE);
}

static bool held_by_caller(lock_state *s) {
  return mp__os_robust_owner(&s->mutex) == mp__os_gettid();
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
  /* Unmapping a mutex this thread holds would leave a dangling entry in
   * the thread's robust list, which the kernel stops walking at, and leave
   * the lock held for everyone else: give it back first. */
  if (mp__object_check(s, type) == 0 && held_by_caller(s)) {
    s->depth = 0;
    pthread_mutex_unlock(&s->mutex);
  }
  mp__object_free(obj, size);
}

static int state_destroy(void *obj, uint16_t type) {
  int rc = mp__object_check(obj, type);
  if (rc != 0)
    return rc;
  lock_state *s = obj;
  if (mp__os_robust_owner(&s->mutex) != 0)
    return MP_EBUSY;
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, 0,
                        memory_order_release);
  pthread_mutex_destroy(&s->mutex);
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
  lock_state *s = (lock_state *)lock;
  int rc = lock_timed(s, timeout);
  if (rc == 0)
    return 0;
  if (rc == EOWNERDEAD) {
    recover(s);
    return MP_EOWNERDEAD;
  }
  return from_pthread(rc);
}

int mp_lock_release(mp_lock *lock) {
  if (mp__object_check(lock, MP__TYPE_LOCK) != 0)
    return MP_EINVAL;
  lock_state *s = (lock_state *)lock;
  return from_pthread(pthread_mutex_unlock(&s->mutex));
}

int mp_lock_locked(mp_lock *lock) {
  if (mp__object_check(lock, MP__TYPE_LOCK) != 0)
    return MP_EINVAL;
  lock_state *s = (lock_state *)lock;
  return mp__os_robust_owner(&s->mutex) != 0;
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
  int rc = lock_timed(s, timeout);
  switch (rc) {
  case 0:
    s->depth = 1;
    return 0;
  case EDEADLK:
    /* The mutex says the caller holds it already: one level more. */
    if (s->depth >= INT_MAX)
      return MP_EOVERFLOW;
    s->depth++;
    return 0;
  case EOWNERDEAD:
    recover(s);
    s->depth = 1;
    return MP_EOWNERDEAD;
  default:
    return from_pthread(rc);
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
  return from_pthread(pthread_mutex_unlock(&s->mutex));
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
  return from_pthread(pthread_mutex_unlock(&s->mutex));
}

int mp__lock_acquire_restore(mp__object_head *lock, unsigned depth) {
  lock_state *s = (lock_state *)lock;
  int rc = pthread_mutex_lock(&s->mutex);
  int result = 0;
  if (rc == EOWNERDEAD) {
    recover(s);
    result = MP_EOWNERDEAD;
  } else if (rc != 0) {
    return from_pthread(rc);
  }
  /* The caller gets back the levels it gave up, even after a death: it
   * will release as many times as it acquired. */
  if (lock->type == MP__TYPE_RLOCK)
    s->depth = depth;
  return result;
}

uint32_t mp__lock_died_epoch(mp__object_head *lock) {
  return atomic_load_explicit(&((lock_state *)lock)->died_epoch,
                              memory_order_acquire);
}

bool mp__lock_owner_died(mp__object_head *lock) {
  return mp__os_robust_owner_died(&((lock_state *)lock)->mutex);
}
