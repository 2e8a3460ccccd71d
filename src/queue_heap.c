/* queue_heap.c - the LIFO and priority storage of a queue: fixed-size
 * slots, each committed by one store of its state word, and a binary heap
 * of slot numbers that orders them, all under one lock.
 *
 * DESIGN
 * nslots slots of slot_size bytes: a header (state, priority, length,
 * kind, check) and inline_max bytes of payload. A slot's state word is
 * its truth: (seq << 1) | 1 while it holds a message, seq << 1 once it is
 * free again, where seq numbers the puts from 1 (0: never used).
 *
 * Derived from the states, and rebuilt from them whenever plock is found
 * with a dead holder (or any of them does not parse):
 *   heap[0..hcount)      the full slots, ordered by (priority, seq) for
 *                        PRIORITY (lowest first, FIFO among equals) or by
 *                        seq, newest first, for LIFO
 *   freestk[0..free_top) the free slots
 *   put_seq              the highest seq of any slot: a slot keeps its
 *                        seq when freed, so the latest put's survives
 *
 * put: take a free slot, write its header and payload, commit its state
 * (full, seq = put_seq + 1); then update put_seq, the free stack, the
 * heap and the count. get: copy the heap's top slot out, commit its
 * state (free); then update the heap, free stack and count. Killed
 * before a commit, the slot is as it was; after it, the derived state is
 * rebuilt by the next holder of plock, so the message is either queued
 * or gone, whole. put_seq is written after the commit for the same
 * reason: a JoinableQueue counts puts as put_seq, and a put that never
 * committed must not count. */
#define _GNU_SOURCE
#include <string.h>

#include "queue_internal.h"

static mp__qslot *slot_at(mp_queue *q, uint32_t idx) {
  return (mp__qslot *)(void *)(q->ring + (size_t)idx * q->slot_size);
}

static uint64_t state_of(mp__qslot *sl) {
  return atomic_load_explicit(&sl->state, memory_order_acquire);
}

/* A copy of a slot's header, read once: what is checked is what is used
 * (another process may be changing the shared one meanwhile). */
typedef struct slot_head {
  uint64_t state;
  int64_t prio;
  uint32_t len;
  uint16_t kind;
  uint16_t check;
} slot_head;

static slot_head head_of(mp__qslot *sl) {
  slot_head h;
  h.state = state_of(sl);
  h.prio = sl->prio;
  h.len = sl->len;
  h.kind = sl->kind;
  h.check = sl->check;
  return h;
}

/* before: does slot a come out before slot b? (Both are in range.) */
static bool before(mp_queue *q, uint32_t a, uint32_t b) {
  mp__qslot *x = slot_at(q, a), *y = slot_at(q, b);
  uint64_t sa = state_of(x) >> 1, sb = state_of(y) >> 1;
  if (q->order == MP_QUEUE_LIFO)
    return sa > sb;
  int64_t pa = x->prio, pb = y->prio;
  if (pa != pb)
    return pa < pb;
  return sa < sb;
}

/* The heap array is in shared memory: every entry is read once and
 * checked against the slot count before it indexes anything. sift_up and
 * sift_down return false when they meet one out of range (the array was
 * written from outside). i and n are the caller's, already in range. */
static bool sift_up(mp_queue *q, uint32_t i) {
  uint32_t *hp = q->heap;
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    uint32_t a = hp[i], b = hp[parent];
    if (a >= q->nslots || b >= q->nslots)
      return false;
    if (!before(q, a, b))
      break;
    hp[i] = b;
    hp[parent] = a;
    i = parent;
  }
  return true;
}

static bool sift_down(mp_queue *q, uint32_t i, uint32_t n) {
  uint32_t *hp = q->heap;
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, best = i;
    uint32_t vi = hp[i], vb = vi;
    if (vi >= q->nslots)
      return false;
    if (l < n) {
      uint32_t vl = hp[l];
      if (vl >= q->nslots)
        return false;
      if (before(q, vl, vb)) {
        best = l;
        vb = vl;
      }
    }
    if (r < n) {
      uint32_t vr = hp[r];
      if (vr >= q->nslots)
        return false;
      if (before(q, vr, vb)) {
        best = r;
        vb = vr;
      }
    }
    if (best == i)
      return true;
    hp[i] = vb;
    hp[best] = vi;
    i = best;
  }
}

/* slot_ok: does a full slot's header (a private copy) parse? */
static bool slot_ok(mp_queue *q, const slot_head *h) {
  if (h->check != mp__queue_check16(h->len, h->kind))
    return false;
  if (h->kind == MP__REC_INLINE)
    return h->len <= q->inline_max;
  return h->kind == MP__REC_LARGE && h->len == sizeof(mp__qlarge_ref);
}

/* rebuild_checked: mp__qheap_rebuild, false if the heap array was changed
 * from outside while it was being ordered. */
static bool rebuild_checked(mp_queue *q) {
  mp__qshared *s = q->s;
  uint32_t n = 0, f = 0;
  uint64_t top = 0;
  for (uint32_t i = q->nslots; i-- > 0;) {
    mp__qslot *sl = slot_at(q, i);
    slot_head h = head_of(sl);
    uint64_t st = h.state;
    if ((st >> 1) > top)
      top = st >> 1;
    if ((st & 1u) && !slot_ok(q, &h)) {
      /* Damaged from outside: its message cannot be delivered. */
      st &= ~(uint64_t)1;
      atomic_store_explicit(&sl->state, st, memory_order_release);
    }
    if (st & 1u)
      q->heap[n++] = i;
    else
      q->freestk[f++] = i;
  }
  bool ok = true;
  for (uint32_t i = n / 2; i-- > 0;)
    ok = ok && sift_down(q, i, n);
  atomic_store(&s->put_seq, top);
  s->free_top = f;
  atomic_store(&s->hcount, n);
  return ok;
}

void mp__qheap_rebuild(mp_queue *q) { (void)rebuild_checked(q); }

/* sane: are the derived counters in range? (Indices are checked where
 * they are read.) */
static bool sane(mp_queue *q) {
  uint32_t n = atomic_load_explicit(&q->s->hcount, memory_order_relaxed);
  return n <= q->nslots && q->s->free_top <= q->nslots &&
         n + q->s->free_top == q->nslots;
}

bool mp__qheap_valid(mp_queue *q) {
  return atomic_load(&q->s->hcount) <= q->nslots && q->s->free_top <= q->nslots;
}

static int lock(mp_queue *q, const mp__deadline *d);

uint32_t mp__qheap_count(mp_queue *q) {
  uint32_t n = atomic_load_explicit(&q->s->hcount, memory_order_acquire);
  return n <= q->nslots ? n : 0;
}

uint32_t mp__qheap_count_exact(mp_queue *q) {
  /* The count is derived: after a holder's death it is rebuilt by the
   * next holder, so an exact answer takes the lock. */
  const mp__deadline poll = {.ns = 0, .poll = true};
  if (lock(q, &poll) != 0)
    return mp__qheap_count(q); /* held by a slow or stopped process */
  uint32_t n = mp__qheap_count(q);
  mp__queue_unlock(q, &q->s->plock);
  return n;
}

uint32_t mp__qheap_puts(mp_queue *q) {
  return (uint32_t)atomic_load_explicit(&q->s->put_seq, memory_order_acquire);
}

bool mp__qheap_queued(mp_queue *q, const mp__qlarge_ref *ref) {
  for (uint32_t i = 0; i < q->nslots; i++) {
    mp__qslot *sl = slot_at(q, i);
    slot_head h = head_of(sl);
    if (!(h.state & 1u) || h.kind != MP__REC_LARGE)
      continue;
    mp__qlarge_ref r;
    memcpy(&r, sl + 1, sizeof r);
    if (r.pid == ref->pid && r.ctr == ref->ctr)
      return true;
  }
  return false;
}

void mp__qheap_repair(mp_queue *q, bool recovered) {
  mp__qheap_rebuild(q);
  /* A consumer that died between taking a large message and removing
   * its segment left the segment's name in pend_*. */
  mp__qlarge_recover(q, mp__qheap_queued);
  if (recovered)
    mp__qlarge_sweep(q, mp__qheap_queued);
}

/* lock takes plock and, after a dead holder, repairs what it left. */
static int lock(mp_queue *q, const mp__deadline *d) {
  bool recovered = false;
  int rc = mp__queue_lock(q, &q->s->plock, &recovered, d);
  if (rc != 0)
    return rc;
  if (recovered || !sane(q))
    mp__qheap_repair(q, recovered);
  return 0;
}

int mp__qheap_try_put(mp_queue *q, const mp__deadline *d, const mp__qput *msgs,
                      size_t n, size_t *done) {
  mp__qshared *s = q->s;
  *done = 0;
  int rc = lock(q, d);
  if (rc != 0)
    return rc;
  if (atomic_load_explicit(&s->closed, memory_order_relaxed)) {
    mp__queue_unlock(q, &s->plock);
    return MP_ECLOSED;
  }
  size_t k = 0;
  bool rebuilt = false;
  while (k < n) {
    /* Each shared counter read once, and checked before it indexes. */
    uint32_t count = atomic_load_explicit(&s->hcount, memory_order_relaxed);
    uint32_t top = s->free_top;
    if (count > q->nslots || top > q->nslots || count + top != q->nslots) {
      if (rebuilt) {
        rc = mp__fail(MP_ECORRUPT, "heap counters changed from outside");
        break;
      }
      rebuilt = true;
      mp__qheap_rebuild(q);
      continue;
    }
    if (count >= q->maxsize || count >= q->nslots || top == 0)
      break;
    uint32_t idx = q->freestk[top - 1];
    if (idx >= q->nslots || (state_of(slot_at(q, idx)) & 1u)) {
      if (rebuilt) {
        rc = mp__fail(MP_ECORRUPT, "heap free stack changed from outside");
        break;
      }
      rebuilt = true;
      mp__qheap_rebuild(q);
      continue;
    }
    const mp__qput *m = &msgs[k];
    mp__qslot *sl = slot_at(q, idx);
    sl->prio = m->prio;
    sl->len = m->len;
    sl->kind = m->kind;
    sl->check = mp__queue_check16(m->len, m->kind);
    if (m->len > 0)
      memcpy(sl + 1, m->data, m->len);
    uint64_t seq = atomic_load_explicit(&s->put_seq, memory_order_relaxed) + 1;
    /* The commit. */
    atomic_store_explicit(&sl->state, (seq << 1) | 1u, memory_order_release);
    atomic_store_explicit(&s->put_seq, seq, memory_order_release);
    s->free_top = top - 1;
    q->heap[count] = idx;
    atomic_store_explicit(&s->hcount, count + 1, memory_order_release);
    k++;
    if (!sift_up(q, count)) {
      /* The message is committed; only the order is lost: rebuilt from
       * the slots. */
      mp__qheap_rebuild(q);
    }
  }
  mp__queue_unlock(q, &s->plock);
  if (k > 0)
    mp__queue_notify(q, &s->not_empty);
  *done = k;
  if (k == n)
    return 0;
  return rc != 0 ? rc : MP_EAGAIN;
}

int mp__qheap_try_get(mp_queue *q, const mp__deadline *d, mp__qget *g) {
  mp__qshared *s = q->s;
  g->taken = 0;
  g->used = 0;
  int rc = lock(q, d);
  if (rc != 0)
    return rc;
  size_t taken = 0;
  bool large = false, removed = false, rebuilt = false;
  mp__qlarge_ref ref;
  while (taken < g->max) {
    /* Each shared word read once; each checked before it indexes. */
    uint32_t count = atomic_load_explicit(&s->hcount, memory_order_relaxed);
    uint32_t top = s->free_top;
    if (count == 0 && top == q->nslots)
      break;
    uint32_t idx = count > 0 && count <= q->nslots ? q->heap[0] : UINT32_MAX;
    mp__qslot *sl = idx < q->nslots ? slot_at(q, idx) : NULL;
    /* The header is copied once: what slot_ok checked is what is used. */
    slot_head h = sl != NULL ? head_of(sl) : (slot_head){0};
    if (sl == NULL || count + top != q->nslots || !(h.state & 1u) ||
        !slot_ok(q, &h)) {
      if (rebuilt) {
        rc = mp__fail(MP_ECORRUPT, "heap changed from outside during a get");
        break;
      }
      rebuilt = true;
      mp__qheap_rebuild(q);
      continue;
    }
    mp__fault(MP__FAULT_HEAP_GET_CHECKED, sl); /* tests rewrite sl here */
    bool vanished = false;
    if (h.kind == MP__REC_INLINE) {
      rc = mp__queue_deliver(g, (const unsigned char *)(sl + 1), h.len, taken);
      if (rc != 0)
        break;
    } else {
      if (taken > 0)
        break;
      memcpy(&ref, sl + 1, sizeof ref);
      rc = mp__qlarge_take(q, &ref, g);
      if (rc == MP_ENOENT) {
        rc = 0;
        vanished = true;
      } else if (rc != 0) {
        break;
      } else {
        large = true;
        atomic_store_explicit(&s->pend_ctr, ref.ctr, memory_order_relaxed);
        atomic_store_explicit(&s->pend_pid, ref.pid, memory_order_relaxed);
      }
    }
    if (!vanished && taken == 0 && g->prio != NULL)
      *g->prio = q->order == MP_QUEUE_PRIORITY ? h.prio : 0;
    /* The commit: the slot is free, and keeps its seq. */
    atomic_store_explicit(&sl->state, h.state & ~(uint64_t)1,
                          memory_order_release);
    removed = true;
    uint32_t last = q->heap[count - 1];
    q->heap[0] = last;
    atomic_store_explicit(&s->hcount, count - 1, memory_order_release);
    q->freestk[top] = idx;
    s->free_top = top + 1;
    if (!sift_down(q, 0, count - 1))
      mp__qheap_rebuild(q); /* the message is taken: only order was lost */
    if (vanished)
      continue;
    taken++;
    if (large)
      break;
  }
  if (large)
    mp__qlarge_taken(q, &ref, g);
  mp__queue_unlock(q, &s->plock);
  if (removed)
    mp__queue_notify(q, &s->not_full);
  g->taken = taken;
  if (taken > 0)
    return 0;
  return rc != 0 ? rc : MP_EAGAIN;
}

void mp__qheap_for_each_large(mp_queue *q,
                              void (*fn)(mp_queue *, const mp__qlarge_ref *,
                                         void *),
                              void *arg, bool drop) {
  for (uint32_t i = 0; i < q->nslots; i++) {
    mp__qslot *sl = slot_at(q, i);
    slot_head h = head_of(sl);
    uint64_t st = h.state;
    if (!(st & 1u))
      continue;
    if (h.kind == MP__REC_LARGE && slot_ok(q, &h)) {
      mp__qlarge_ref r;
      memcpy(&r, sl + 1, sizeof r);
      fn(q, &r, arg);
    }
    if (drop)
      atomic_store_explicit(&sl->state, st & ~(uint64_t)1,
                            memory_order_release);
  }
  if (drop)
    mp__qheap_rebuild(q);
}
