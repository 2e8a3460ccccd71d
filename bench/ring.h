/* ring.h - the bare single-producer, single-consumer shared-memory byte
 * ring that bench_queue.c measures as the limit of what a queue between two
 * processes can do: no lock, no system call, no wake-up, no checks beyond
 * what keeps the two sides in step. Both sides busy-poll (with a CPU pause,
 * and a sched_yield now and then so that more pollers than cores still make
 * progress). It is a benchmark yardstick, not a queue to use: a process
 * that dies holds the other side polling forever, and nothing is checked
 * against a scribbling peer.
 *
 * DESIGN. The ring is `size` bytes (a power of two) of records, each an
 * 8-byte length followed by the payload rounded up to 8 bytes. Positions
 * are 64-bit byte counts that only grow; a position's offset in the ring
 * is position & (size - 1). A record never wraps: when it does not fit
 * before the end of the ring, the producer writes the length RING_WRAP
 * there and starts the record at offset 0, so the consumer can hand out a
 * pointer to a contiguous payload (the consumer reads in place; it never
 * copies). A record may be at most size / 2 bytes so that it always fits
 * after a wrap.
 *
 * The producer owns `tail` (bytes written and published), the consumer owns
 * `head` (bytes consumed and released); each sits on its own cache line and
 * each side keeps a private copy of the other's index, reloaded only when
 * the ring looks full (producer) or empty (consumer), so in the steady state
 * a message costs one cache-line transfer each way, or less when batched.
 * The store-release of tail publishes every record written before it; the
 * store-release of head gives the bytes before it back to the producer.
 *
 * Two ways to publish: one at a time (ring_produce_commit publishes each
 * record; ring_consume_release gives each record back at once), or in
 * batches (the producer publishes every `batch` records, and always before
 * it waits for space; the consumer gives back everything it has read when it
 * runs out of published records or holds a quarter of the ring). Batching is
 * what takes the ring from tens to hundreds of millions of small messages per
 * second: the cache line holding an index moves once per batch instead of once
 * per message. */
#ifndef MP_BENCH_RING_H
#define MP_BENCH_RING_H

#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The length that marks "the rest of the ring up to its end is unused". */
#define RING_WRAP UINT64_MAX

/* Polls between two sched_yield calls while waiting. */
#define RING_SPINS_PER_YIELD 4096

typedef struct bench_ring {
  _Alignas(64) _Atomic uint64_t tail; /* published by the producer */
  _Alignas(64) _Atomic uint64_t head; /* released by the consumer */
  _Alignas(64) uint64_t size;         /* bytes of data[], a power of two */
  _Alignas(64) unsigned char data[];
} bench_ring;

/* ring_bytes returns the bytes a ring of `size` data bytes occupies. */
static inline size_t ring_bytes(size_t size) {
  return sizeof(bench_ring) + size;
}

/* ring_init prepares a ring in zeroed memory of ring_bytes(size) bytes;
 * size must be a power of two of at least 64. */
static inline void ring_init(bench_ring *r, size_t size) {
  atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
  atomic_store_explicit(&r->head, 0, memory_order_relaxed);
  r->size = size;
}

/* ring_max_payload is the largest payload the ring accepts. */
static inline size_t ring_max_payload(const bench_ring *r) {
  return (size_t)(r->size / 2 - 8);
}

static inline void ring_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* ring_backoff is one step of a busy-poll: a pause, and every
 * RING_SPINS_PER_YIELD steps a yield to whoever else wants this core. */
static inline void ring_backoff(unsigned *spins) {
  if (++*spins % RING_SPINS_PER_YIELD == 0)
    sched_yield();
  else
    ring_cpu_relax();
}

static inline uint64_t ring_record(uint64_t len) {
  return 8 + ((len + 7) & ~(uint64_t)7);
}

/* ---- the producer's side ------------------------------------------------ */

typedef struct ring_producer {
  bench_ring *r;
  uint64_t tail;  /* written, maybe not yet published */
  uint64_t head;  /* last head seen */
  unsigned batch; /* publish every `batch` records (1: each) */
  unsigned unpublished;
} ring_producer;

static inline void ring_producer_init(ring_producer *p, bench_ring *r,
                                      unsigned batch) {
  p->r = r;
  p->tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  p->head = atomic_load_explicit(&r->head, memory_order_acquire);
  p->batch = batch ? batch : 1;
  p->unpublished = 0;
}

/* ring_produce_flush publishes every record written so far. */
static inline void ring_produce_flush(ring_producer *p) {
  atomic_store_explicit(&p->r->tail, p->tail, memory_order_release);
  p->unpublished = 0;
}

/* ring_wait_space polls until `need` bytes are free. Why flush first: the
 * consumer may be waiting for exactly the records we have not published,
 * and would never free the space we wait for. */
static inline void ring_wait_space(ring_producer *p, uint64_t need) {
  if (p->tail + need - p->head <= p->r->size)
    return;
  if (p->unpublished)
    ring_produce_flush(p);
  unsigned spins = 0;
  for (;;) {
    p->head = atomic_load_explicit(&p->r->head, memory_order_acquire);
    if (p->tail + need - p->head <= p->r->size)
      return;
    ring_backoff(&spins);
  }
}

/* ring_produce_reserve waits for room for a payload of len bytes (at most
 * ring_max_payload) and returns where to write it; ring_produce_commit then
 * makes it a record. */
static inline void *ring_produce_reserve(ring_producer *p, uint64_t len) {
  uint64_t size = p->r->size;
  uint64_t need = ring_record(len);
  uint64_t off = p->tail & (size - 1);
  if (off + need > size) {
    /* Not enough room before the end: mark the rest unused and start the
     * record at offset 0. The skipped bytes count as written. */
    uint64_t skip = size - off;
    ring_wait_space(p, skip + need);
    memcpy(p->r->data + off, &(uint64_t){RING_WRAP}, 8);
    p->tail += skip;
    off = 0;
  } else {
    ring_wait_space(p, need);
  }
  return p->r->data + off + 8;
}

static inline void ring_produce_commit(ring_producer *p, uint64_t len) {
  uint64_t off = p->tail & (p->r->size - 1);
  memcpy(p->r->data + off, &len, 8);
  p->tail += ring_record(len);
  if (++p->unpublished >= p->batch)
    ring_produce_flush(p);
}

/* ring_produce copies one message in and commits it. */
static inline void ring_produce(ring_producer *p, const void *buf,
                                uint64_t len) {
  void *dst = ring_produce_reserve(p, len);
  memcpy(dst, buf, len);
  ring_produce_commit(p, len);
}

/* ---- the consumer's side ------------------------------------------------ */

typedef struct ring_consumer {
  bench_ring *r;
  uint64_t head;     /* consumed, maybe not yet released */
  uint64_t tail;     /* last tail seen */
  int batch;         /* nonzero: release in batches */
  uint64_t pending;  /* bytes of the record handed out, not yet consumed */
  uint64_t released; /* head as last released */
} ring_consumer;

static inline void ring_consumer_init(ring_consumer *c, bench_ring *r,
                                      int batch) {
  c->r = r;
  c->head = atomic_load_explicit(&r->head, memory_order_relaxed);
  c->tail = atomic_load_explicit(&r->tail, memory_order_acquire);
  c->batch = batch;
  c->pending = 0;
  c->released = c->head;
}

static inline void ring_consume_flush(ring_consumer *c) {
  atomic_store_explicit(&c->r->head, c->head, memory_order_release);
  c->released = c->head;
}

/* ring_consume_peek waits for the next record and returns its payload in
 * place, its length in *len. The payload stays valid until
 * ring_consume_release. */
static inline const void *ring_consume_peek(ring_consumer *c, uint64_t *len) {
  uint64_t size = c->r->size;
  for (;;) {
    if (c->head == c->tail) {
      /* Out of published records: give back what was read (batch mode)
       * before polling, or the producer may wait on us forever. */
      if (c->batch)
        ring_consume_flush(c);
      unsigned spins = 0;
      while ((c->tail = atomic_load_explicit(&c->r->tail,
                                             memory_order_acquire)) == c->head)
        ring_backoff(&spins);
    }
    uint64_t off = c->head & (size - 1);
    uint64_t n;
    memcpy(&n, c->r->data + off, 8);
    if (n == RING_WRAP) {
      c->head += size - off;
      continue;
    }
    *len = n;
    c->pending = ring_record(n);
    return c->r->data + off + 8;
  }
}

/* ring_consume_release is done with the record last peeked. In batch mode
 * the space goes back when the consumer runs dry or has a quarter of the
 * ring in hand, whichever comes first. */
static inline void ring_consume_release(ring_consumer *c) {
  c->head += c->pending;
  c->pending = 0;
  if (!c->batch || c->head - c->released >= c->r->size / 4)
    ring_consume_flush(c);
}

#endif
