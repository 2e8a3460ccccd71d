/* queue_lease.c - the lease entries of the at-least-once mode: claimed by
 * a get under the consumer lock, filled with the record it takes, freed by
 * an ack (or settled by whoever finds the holder dead: queue.c). Below the
 * storages (queue_fifo.c fills entries) and above queue_large.c. */
#define _GNU_SOURCE
#include <string.h>

#include "queue_internal.h"

/* ---- leases (at-least-once mode) ----------------------------------------
 * A get of a lease-mode queue, holding the consumer lock, claims a lease
 * entry (step 1), copies the record it takes into it with the head count
 * its commit will set (step 2), then commits as any get. The entry keeps
 * the message until the holder acks it. Whoever finds an entry whose
 * holder is known to be dead (of its own PID namespace: see mp__queue_tag)
 * claims it (step 3) and settles it: step 1, or step 2 with the head not
 * yet at head_cnt, means the get never committed (the message is still
 * queued): the entry is freed. Otherwise the message is put back at the
 * tail, then the entry is freed. A settler killed in step 3 leaves it to
 * the next, who puts the message back again: at least once, maybe twice.
 * A large message's segment belongs to the lease until ack (never parked
 * or unlinked by the get), and is what is put back. */

mp__qlease *mp__qlease_at(mp_queue *q, int idx) {
  return (mp__qlease *)(void *)(q->leases + (size_t)idx * q->lease_size);
}

int mp__qlease_claim(mp_queue *q) {
  uint64_t mine = ((uint64_t)mp__queue_tag(q) << 32) | MP__LEASE_STEP_WRITING;
  for (int i = 0; i < MP_QUEUE_LEASES; i++) {
    uint64_t cur = 0;
    if (atomic_compare_exchange_strong(&mp__qlease_at(q, i)->state, &cur, mine))
      return i;
  }
  return -1;
}

void mp__qlease_fill(mp_queue *q, int idx, uint32_t head_cnt, uint16_t kind,
                     const void *data, uint32_t len, mp__qget *g) {
  mp__qlease *e = mp__qlease_at(q, idx);
  uint32_t gen = e->gen + 1;
  e->gen = gen;
  e->head_cnt = head_cnt;
  e->kind = kind;
  e->len = len;
  if (len > 0)
    memcpy(e + 1, data, len);
  atomic_store_explicit(
      &e->state, ((uint64_t)mp__queue_tag(q) << 32) | MP__LEASE_STEP_HELD,
      memory_order_release);
  g->lease = ((uint64_t)gen << 8) | (uint64_t)(idx + 1);
}

void mp__qlease_abandon(mp_queue *q, int idx) {
  atomic_store(&mp__qlease_at(q, idx)->state, 0);
}

/* lease_release frees entry idx, removing a large message's segment. */
void mp__qlease_release(mp_queue *q, int idx) {
  mp__qlease *e = mp__qlease_at(q, idx);
  if (e->kind == MP__REC_LARGE && e->len == sizeof(mp__qlarge_ref)) {
    mp__qlarge_ref ref;
    memcpy(&ref, e + 1, sizeof ref);
    mp__qlarge_unlink(q, &ref, NULL);
  }
  atomic_store_explicit(&e->state, 0, memory_order_release);
}
