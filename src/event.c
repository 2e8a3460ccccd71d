/* event.c - Event: a flag that threads and processes wait for.
 *
 * DESIGN
 * Shared state:
 *
 *   mp__object_head head
 *   uint32 word      bit 0: the flag; bits 1..31: how many times it went
 *                    from clear to set (wrapping); the futex word
 *   uint32 waiters   waiters that may be asleep
 *
 * set turns the flag on and counts the change in the same word, then wakes
 * every sleeper if waiters says there may be one. The count is why: as in
 * Python, a waiter that was waiting when the flag was set returns 0 even
 * if the flag was cleared again before it woke up; it sees that the word
 * changed since it started waiting. Waiting when the flag is set, and
 * setting when nobody waits, make no system call.
 *
 * A crash, at each step. Every change to the word is one atomic
 * instruction. A waiter killed while it waits leaves waiters too high: the
 * next set makes one needless wake-up call. A setter killed between setting
 * the flag and waking leaves sleepers unaware, so they wake every
 * MP__SYNC_SLICE_NS to look again. */
#include <stdatomic.h>
#include <string.h>

#include "internal.h"
#include "sync_internal.h"

typedef struct event_state {
  mp__object_head head;
  _Atomic uint32_t word;
  _Atomic uint32_t waiters;
} event_state;

_Static_assert(sizeof(event_state) <= MP_EVENT_SIZE, "Event fits mp_event");

#define FLAG 1u

static void state_init(event_state *s, uint8_t origin) {
  memset((char *)s + sizeof s->head, 0, sizeof *s - sizeof s->head);
  s->head.type = MP__TYPE_EVENT;
  s->head.version = MP__LAYOUT_VERSION;
  s->head.origin = origin;
  atomic_init(&s->word, 0);
  atomic_init(&s->waiters, 0);
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, MP__OBJECT_MAGIC,
                        memory_order_release);
}

int mp_event_new(mp_event **out, const mp_sync_opts *opts) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  void *obj;
  int rc = mp__object_new(&obj, sizeof(mp_event), MP__TYPE_EVENT,
                          opts ? opts->name : NULL);
  if (rc != 0)
    return rc;
  event_state *s = obj;
  state_init(s, s->head.origin);
  *out = obj;
  return 0;
}

int mp_event_open(mp_event **out, const char *name) {
  return mp__object_open((void **)out, sizeof(mp_event), MP__TYPE_EVENT, name);
}

void mp_event_free(mp_event *ev) {
  if (ev == NULL || ((mp__object_head *)ev)->type != MP__TYPE_EVENT)
    return;
  mp__object_free(ev, sizeof(mp_event));
}

int mp_event_init(mp_event *ev) {
  if (ev == NULL)
    return mp__fail(MP_EINVAL, "ev is NULL");
  if ((uintptr_t)ev % MP_SYNC_ALIGN != 0)
    return mp__fail(MP_EINVAL, "ev is not aligned to MP_SYNC_ALIGN");
  memset(ev, 0, sizeof(mp__object_head));
  state_init((event_state *)ev, MP__ORIGIN_INPLACE);
  return 0;
}

int mp_event_destroy(mp_event *ev) {
  if (mp__object_check(ev, MP__TYPE_EVENT) != 0)
    return MP_EINVAL;
  event_state *s = (event_state *)ev;
  if (atomic_load(&s->waiters) != 0)
    return MP_EBUSY;
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, 0,
                        memory_order_release);
  return 0;
}

int mp_event_is_set(mp_event *ev) {
  if (mp__object_check(ev, MP__TYPE_EVENT) != 0)
    return MP_EINVAL;
  event_state *s = (event_state *)ev;
  return (atomic_load(&s->word) & FLAG) != 0;
}

int mp_event_set(mp_event *ev) {
  if (mp__object_check(ev, MP__TYPE_EVENT) != 0)
    return MP_EINVAL;
  event_state *s = (event_state *)ev;
  uint32_t w = atomic_load(&s->word);
  /* Clear to set: flag on and one more change counted (bits 1..31). */
  while (!(w & FLAG)) {
    if (atomic_compare_exchange_weak(&s->word, &w, (w + 2) | FLAG))
      break;
  }
  /* The word changed before this read (both sequentially consistent): a
   * waiter we do not see has yet to compare the word and will not sleep. */
  if (atomic_load(&s->waiters) > 0)
    mp__os_futex_wake((uint32_t *)&s->word, INT32_MAX, true);
  return 0;
}

int mp_event_clear(mp_event *ev) {
  if (mp__object_check(ev, MP__TYPE_EVENT) != 0)
    return MP_EINVAL;
  event_state *s = (event_state *)ev;
  atomic_fetch_and(&s->word, ~FLAG);
  return 0;
}

int mp_event_wait(mp_event *ev, double timeout) {
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  if (mp__object_check(ev, MP__TYPE_EVENT) != 0)
    return MP_EINVAL;
  event_state *s = (event_state *)ev;
  uint32_t start = atomic_load(&s->word);
  if (start & FLAG)
    return 0;
  mp__deadline d = mp__deadline_from_timeout(timeout);
  if (d.poll)
    return MP_EAGAIN;
  atomic_fetch_add(&s->waiters, 1);
  int rc;
  for (;;) {
    /* Any change since we started is a set: clear only changes a word whose
     * flag is on, and ours was off. */
    if (atomic_load(&s->word) != start) {
      rc = 0;
      break;
    }
    if (mp__deadline_expired(d)) {
      rc = mp__deadline_error(d);
      break;
    }
    mp__deadline slice = mp__deadline_min_slice(d, MP__SYNC_SLICE_NS);
    mp__os_futex_wait((uint32_t *)&s->word, start, slice.ns, true);
  }
  atomic_fetch_sub(&s->waiters, 1);
  return rc;
}
