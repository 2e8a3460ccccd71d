/* semaphore.c - Semaphore and BoundedSemaphore: a shared count that
 * acquire takes one unit from (waiting for one) and release gives one to.
 *
 * DESIGN
 * Shared state:
 *
 *   mp__object_head head
 *   uint32 count     units available, 0 .. INT32_MAX; the futex word
 *   uint32 waiters   acquirers that found count 0 and may be asleep
 *   uint32 bound     the initial value, enforced when bounded
 *   uint32 bounded   nonzero for a BoundedSemaphore
 *
 * acquire takes a unit with a compare-and-swap while count > 0: no system
 * call. Otherwise it announces itself in waiters and sleeps on count while
 * count is 0. release adds a unit with a compare-and-swap (checking the
 * bound and INT32_MAX) and wakes one sleeper, but only if waiters says
 * someone may sleep: an uncontended release makes no system call either.
 *
 * No lost wake-up: an acquirer increments waiters before its last look at
 * count (inside the futex call), and a releaser increments count before it
 * reads waiters; both are sequentially consistent, so either the releaser
 * sees the waiter and wakes it, or the waiter sees the unit and does not
 * sleep.
 *
 * A crash, at each step (G-SEM-1). Units are plain counts without owners:
 * a process that dies holding units has lost them, as with POSIX and
 * Python semaphores (sync.h says so). Every change is one atomic
 * instruction, so count is never half-updated. An acquirer killed while it
 * waits leaves waiters one too high: later releases make a wake-up call
 * that finds no one, nothing worse. A releaser killed between adding its
 * unit and waking leaves a unit that a sleeper has not been told about; that
 * is why sleepers wake every MP__SYNC_SLICE_NS to look again, so no
 * surviving waiter sleeps past its deadline with a unit available.
 *
 * Untrusted memory. A named semaphore can be written by any process of
 * its user. A count over INT32_MAX cannot come from here: every call that
 * sees one fails with MP_ECORRUPT rather than hand out a negative value. */
#include <stdatomic.h>
#include <string.h>

#include "internal.h"
#include "sync_internal.h"

typedef struct semaphore_state {
  mp__object_head head;
  _Atomic uint32_t count;
  _Atomic uint32_t waiters;
  uint32_t bound;
  uint32_t bounded;
} semaphore_state;

_Static_assert(sizeof(semaphore_state) <= MP_SEMAPHORE_SIZE,
               "Semaphore fits mp_semaphore");

static void state_init(semaphore_state *s, unsigned value, int bounded,
                       uint8_t origin) {
  memset((char *)s + sizeof s->head, 0, sizeof *s - sizeof s->head);
  s->head.type = MP__TYPE_SEMAPHORE;
  s->head.version = MP__LAYOUT_VERSION;
  s->head.origin = origin;
  atomic_init(&s->count, value);
  atomic_init(&s->waiters, 0);
  s->bound = value;
  s->bounded = bounded != 0;
  /* The magic goes last: it publishes everything above. */
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, MP__OBJECT_MAGIC,
                        memory_order_release);
}

static int semaphore_new(mp_semaphore **out, unsigned value, int bounded,
                         const mp_sync_opts *opts) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  if (value > INT32_MAX)
    return mp__fail(MP_EINVAL, "value %u is over INT32_MAX", value);
  void *obj;
  int rc = mp__object_new(&obj, sizeof(mp_semaphore), MP__TYPE_SEMAPHORE,
                          opts ? opts->name : NULL);
  if (rc != 0)
    return rc;
  semaphore_state *s = obj;
  state_init(s, value, bounded, s->head.origin);
  *out = obj;
  return 0;
}

int mp_semaphore_new(mp_semaphore **out, unsigned value,
                     const mp_sync_opts *opts) {
  return semaphore_new(out, value, 0, opts);
}

int mp_bounded_semaphore_new(mp_semaphore **out, unsigned value,
                             const mp_sync_opts *opts) {
  return semaphore_new(out, value, 1, opts);
}

int mp_semaphore_open(mp_semaphore **out, const char *name) {
  return mp__object_open((void **)out, sizeof(mp_semaphore), MP__TYPE_SEMAPHORE,
                         name);
}

void mp_semaphore_free(mp_semaphore *sem) {
  if (sem == NULL || ((mp__object_head *)sem)->type != MP__TYPE_SEMAPHORE)
    return;
  mp__object_free(sem, sizeof(mp_semaphore));
}

int mp_semaphore_init(mp_semaphore *sem, unsigned value, int bounded) {
  if (sem == NULL)
    return mp__fail(MP_EINVAL, "sem is NULL");
  if ((uintptr_t)sem % MP_SYNC_ALIGN != 0)
    return mp__fail(MP_EINVAL, "sem is not aligned to MP_SYNC_ALIGN");
  if (value > INT32_MAX)
    return mp__fail(MP_EINVAL, "value %u is over INT32_MAX", value);
  memset(sem, 0, sizeof(mp__object_head));
  state_init((semaphore_state *)sem, value, bounded, MP__ORIGIN_INPLACE);
  return 0;
}

int mp_semaphore_destroy(mp_semaphore *sem) {
  if (mp__object_check(sem, MP__TYPE_SEMAPHORE) != 0)
    return MP_EINVAL;
  semaphore_state *s = (semaphore_state *)sem;
  /* A waiter killed while it waited leaves this count too high for good;
   * mp_semaphore_init may then be used on the memory again. */
  if (atomic_load(&s->waiters) != 0)
    return MP_EBUSY;
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, 0,
                        memory_order_release);
  return 0;
}

/* A count beyond INT32_MAX was never written by this library: another
 * program wrote the shared word. */
static int corrupt_count(uint32_t v) {
  return mp__fail(MP_ECORRUPT,
                  "semaphore count %u is over INT32_MAX: the shared state "
                  "was overwritten",
                  v);
}

/* try_take takes one unit if there is one: 1 taken, 0 none, or
 * MP_ECORRUPT. */
static int try_take(semaphore_state *s) {
  uint32_t v = atomic_load_explicit(&s->count, memory_order_relaxed);
  while (v > 0) {
    if (v > INT32_MAX)
      return corrupt_count(v);
    if (atomic_compare_exchange_weak_explicit(
            &s->count, &v, v - 1, memory_order_acquire, memory_order_relaxed))
      return 1;
  }
  return 0;
}

int mp_semaphore_acquire(mp_semaphore *sem, double timeout) {
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  if (mp__object_check(sem, MP__TYPE_SEMAPHORE) != 0)
    return MP_EINVAL;
  semaphore_state *s = (semaphore_state *)sem;
  int rc = try_take(s);
  if (rc != 0)
    return rc > 0 ? 0 : rc;
  mp__deadline d = mp__deadline_from_timeout(timeout);
  if (d.poll)
    return MP_EAGAIN;
  atomic_fetch_add(&s->waiters, 1);
  for (;;) {
    if ((rc = try_take(s)) != 0) {
      rc = rc > 0 ? 0 : rc;
      break;
    }
    if (mp__deadline_expired(d)) {
      rc = mp__deadline_error(d);
      break;
    }
    /* Sleep while count is 0; a release wakes us, and a slice bounds the
     * sleep in case a releaser died before it could. MP_EAGAIN (count no
     * longer 0), MP_EINTR and wake-ups all lead back to try_take. */
    mp__deadline slice = mp__deadline_min_slice(d, MP__SYNC_SLICE_NS);
    mp__os_futex_wait((uint32_t *)&s->count, 0, slice.ns, true);
  }
  atomic_fetch_sub(&s->waiters, 1);
  return rc;
}

int mp_semaphore_release(mp_semaphore *sem) {
  if (mp__object_check(sem, MP__TYPE_SEMAPHORE) != 0)
    return MP_EINVAL;
  semaphore_state *s = (semaphore_state *)sem;
  uint32_t v = atomic_load_explicit(&s->count, memory_order_relaxed);
  do {
    if (v > INT32_MAX)
      return corrupt_count(v);
    if (s->bounded && v >= s->bound)
      return MP_EVALUE;
    if (v >= INT32_MAX)
      return MP_EOVERFLOW;
  } while (!atomic_compare_exchange_weak_explicit(
      &s->count, &v, v + 1, memory_order_seq_cst, memory_order_relaxed));
  /* count went up before this read (both sequentially consistent): a
   * waiter that registered too late for us to see it will see the unit. */
  if (atomic_load(&s->waiters) > 0)
    mp__os_futex_wake((uint32_t *)&s->count, 1, true);
  return 0;
}

int mp_semaphore_get_value(mp_semaphore *sem) {
  if (mp__object_check(sem, MP__TYPE_SEMAPHORE) != 0)
    return MP_EINVAL;
  semaphore_state *s = (semaphore_state *)sem;
  uint32_t v = atomic_load(&s->count);
  return v > INT32_MAX ? corrupt_count(v) : (int)v;
}
