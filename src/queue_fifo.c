/* queue_fifo.c - the FIFO storage of a queue: a byte ring of records,
 * producers on one lock, consumers on another, each side committing with
 * one store of its 64-bit word.
 *
 * DESIGN
 * The ring is cap bytes (a power of two). A record is an 8-byte header
 * (length, kind, check) and its payload, padded to 8 bytes; records never
 * wrap: when one does not fit before the end, a WRAP header fills the gap
 * and the record starts at 0. Positions grow without bound modulo 2^32;
 * a position's place in the ring is pos & (cap - 1).
 *
 *   tail word = (puts << 32) | end of the last committed record
 *   head word = (gets << 32) | start of the first unconsumed record
 *
 * Both counters and positions are modulo 2^32, which is enough: at most
 * cap <= 2^30 bytes and cap / 8 records lie between head and tail. So
 * queued = tail.count - head.count, exactly, and used bytes =
 * tail.pos - head.pos.
 *
 * A producer (under plock) writes its records past the tail, where no
 * consumer looks, then publishes them all with one release store of the
 * tail word. A consumer (under clock) reads records from the head up to
 * the tail it loaded with acquire, copies them out, then releases their
 * space with one release store of the head word. Either store is the
 * whole change: a process killed before it changed nothing, after it
 * changed everything.
 *
 * Caches. head_cache (under plock) is a head word no newer than the real
 * one, and producers never let tail - head_cache exceed cap; tail_cache
 * (under clock) is a tail word no older than the head. So the cached pair
 * is always a valid (if pessimistic) picture, and each side reads the
 * other's line only when its picture says full or empty. Both live in
 * shared memory so that every process's producers keep the invariant,
 * and both are checked on use like any shared word.
 *
 * The producers' copy. A put starts from tail_own (under plock, in the
 * producers' line), the tail word as the last producer stored it, never
 * from the tail word itself: a consumer waiting for a message spins on the
 * tail's line and takes it to its core, so loading it cost the put a line
 * transfer on every message of a round trip (about 150 ns of a 350 ns
 * one-way trip here; the load for a mere check cost the same, the commit
 * waiting for it). tail_own is stored before the tail word; a producer
 * killed between the two, or holding plock at all, leaves plock to be
 * taken over, and the taker reloads tail_own from the tail word. A
 * scribbled tail word is reported by the gets and mended by the next put;
 * a scribbled tail_own fails the put's own check (MP_ECORRUPT).
 *
 * What is read from the ring is checked before use: header check value,
 * kind, length against inline_max and against the bytes between head and
 * tail, WRAP length against the gap it claims to fill. */
#define _GNU_SOURCE
#include <string.h>

#include "os/queue_os.h"

#include "queue_internal.h"

typedef struct rec_hdr {
  uint32_t len;
  uint16_t kind;
  uint16_t check;
} rec_hdr;

_Static_assert(sizeof(rec_hdr) == 8, "record header is 8 bytes");

static inline uint32_t cnt_of(uint64_t w) {
  return (uint32_t)(w >> 32);
}
static inline uint32_t pos_of(uint64_t w) {
  return (uint32_t)w;
}
static inline uint64_t word_of(uint32_t cnt, uint32_t pos) {
  return ((uint64_t)cnt << 32) | pos;
}

uint32_t mp__qfifo_record_bytes(uint64_t stored_len) {
  return (uint32_t)((sizeof(rec_hdr) + stored_len + 7) & ~(uint64_t)7);
}

/* large_len: the ring bytes a large message's record stores. Its
 * reference needs 24, but the record takes an eighth of the ring: so at
 * most eight large messages are queued at once, their segments' memory is
 * bounded by the capacity's choice like the rest, and a producer that
 * runs ahead waits for the consumer, whose parked segments (queue_large.c)
 * it then reuses instead of making new ones. */
static uint32_t large_len(const mp_queue *q) {
  return q->cap / 8;
}

uint32_t mp__qfifo_put_bytes(mp_queue *q, const mp__qput *m) {
  return mp__qfifo_record_bytes(m->kind == MP__REC_LARGE ? large_len(q)
                                                         : m->len);
}

/* pair_ok: could head word h and tail word t be the queue's state? */
static bool pair_ok(const mp_queue *q, uint64_t h, uint64_t t) {
  uint32_t used = pos_of(t) - pos_of(h);
  uint32_t n = cnt_of(t) - cnt_of(h);
  return used <= q->cap && n <= used / 8 && (pos_of(h) & 7u) == 0 &&
         (pos_of(t) & 7u) == 0;
}

bool mp__qfifo_valid(mp_queue *q) {
  uint64_t h = atomic_load_explicit(&q->s->headw, memory_order_acquire);
  uint64_t t = atomic_load_explicit(&q->s->tail, memory_order_acquire);
  return pair_ok(q, h, t);
}

uint32_t mp__qfifo_count(mp_queue *q) {
  /* Head first: the tail loaded after it is at least as new, so the
   * difference is never negative. */
  uint64_t h = atomic_load_explicit(&q->s->headw, memory_order_acquire);
  uint64_t t = atomic_load_explicit(&q->s->tail, memory_order_acquire);
  if (!pair_ok(q, h, t))
    return 0;
  uint32_t n = cnt_of(t) - cnt_of(h);
  return q->maxsize < n ? (uint32_t)q->maxsize : n;
}

/* Looking ahead. A waiting consumer spins on the tail's line; once the
 * tail moves it reads the record, a second line transfer that used to
 * start only after the first had ended (and after the get's path up to
 * the read). So each look of a waiter also prefetches the lines where the
 * next record's header and first bytes will be: the prefetch is only a
 * hint (no fault, no wait, nothing read is used), issued beside the load
 * of the tail, so the record's lines travel while the tail's does. A
 * prefetch that comes while the producer writes the line costs the
 * producer nothing it would not pay anyway: the consumer read that line
 * last (the end of the previous record). */
bool mp__qfifo_ready(mp_queue *q) {
  uint64_t h = atomic_load_explicit(&q->s->headw, memory_order_acquire);
  uint32_t off = pos_of(h) & q->mask;
  __builtin_prefetch(q->ring + off, 0, 3);
  __builtin_prefetch(q->ring + ((off + MP__QUEUE_LINE) & q->mask), 0, 3);
  uint64_t t = atomic_load_explicit(&q->s->tail, memory_order_acquire);
  return pair_ok(q, h, t) && cnt_of(t) != cnt_of(h);
}

uint32_t mp__qfifo_puts(mp_queue *q) {
  return cnt_of(atomic_load_explicit(&q->s->tail, memory_order_acquire));
}

/* need_bytes: ring bytes a record of rb bytes takes when written at pos
 * (with the WRAP gap before it, if it does not fit before the end). */
static uint32_t need_bytes(const mp_queue *q, uint32_t pos, uint32_t rb) {
  uint32_t contig = q->cap - (pos & q->mask);
  return rb <= contig ? rb : contig + rb;
}

bool mp__qfifo_has_room(mp_queue *q, uint32_t rec_bytes) {
  uint64_t h = atomic_load_explicit(&q->s->headw, memory_order_acquire);
  uint64_t t = atomic_load_explicit(&q->s->tail, memory_order_acquire);
  if (!pair_ok(q, h, t))
    return true; /* let the put find out, and report it */
  uint32_t used = pos_of(t) - pos_of(h);
  return q->cap - used >= need_bytes(q, pos_of(t), rec_bytes);
}

static void write_hdr(mp_queue *q, uint32_t off, uint32_t len, uint16_t kind) {
  rec_hdr h = {.len = len, .kind = kind, .check = mp__queue_check16(len, kind)};
  memcpy(q->ring + off, &h, sizeof h);
}

/* lock_producers takes plock for a put or a claim: 0, MP_ECLOSED (and the
 * lock given back), or the lock's error. */
static inline __attribute__((always_inline)) int
lock_producers(mp_queue *q, const mp__deadline *d) {
  mp__qshared *s = q->s;
  bool recovered = false;
  int rc = mp__queue_lock(q, &s->plock, &recovered, d);
  if (rc != 0)
    return rc;
  /* A producer died holding plock: its uncommitted record lies past the
   * tail, unseen, and is written over now. Only the cache may be odd. */
  if (recovered) {
    s->head_cache = atomic_load_explicit(&s->headw, memory_order_acquire);
    s->tail_own = atomic_load_explicit(&s->tail, memory_order_relaxed);
  }
  if (atomic_load_explicit(&s->closed, memory_order_relaxed)) {
    mp__queue_unlock(q, &s->plock);
    return MP_ECLOSED;
  }
  return 0;
}

/* Rewinding. A consumer that keeps up leaves the ring empty at each put,
 * yet the records walk the whole ring (1 MiB by default) and every line of
 * it passes through both cores' caches: a 64-byte round trip took 30%
 * longer with a 1 MiB ring than with 256 KiB (scratch ladder, the bare
 * ring's protocol), and the queue's busy round trip saw three times the
 * bare ring's stalls over 20 us. So the first record of a lap that would
 * cross REWIND_AT looks at the real head (one load of the consumers' line
 * a lap), and if the ring is empty enough that the record fits at offset
 * 0 (the room check of a wrap, nothing else), wraps there: a WRAP header
 * fills the rest of the ring, as at its end, and the hot part of the ring
 * stays REWIND_AT bytes. A ring that holds messages is used whole, and
 * records over a quarter of REWIND_AT (large messages' included) never
 * rewind it. */
#define REWIND_AT MP__QUEUE_REWIND_AT

/* rewind_now: refresh *h (the head) and say whether the ring held nothing
 * when this put began (tail word t) and a record of rb bytes at pos fits
 * at offset 0 after a WRAP gap. (A ring that holds messages is not
 * rewound: the gap would take the rest of the ring from the producers
 * until the consumers passed it.) */
static bool rewind_now(mp_queue *q, uint64_t *h, uint64_t t, uint32_t cnt,
                       uint32_t pos, uint32_t rb, bool *fresh) {
  if (!*fresh) {
    uint64_t hf = atomic_load_explicit(&q->s->headw, memory_order_acquire);
    if (!pair_ok(q, hf, t))
      return false; /* the put's own checks report it */
    *h = hf;
    *fresh = true;
    q->s->head_cache = hf;
  }
  if (*h != t)
    return false;
  uint32_t used = pos - pos_of(*h);
  return (uint64_t)(cnt - cnt_of(*h)) < q->maxsize &&
         q->cap - used >= q->cap - (pos & q->mask) + rb;
}

int mp__qfifo_try_put(mp_queue *q, const mp__deadline *d, const mp__qput *msgs,
                      size_t n, size_t *done) {
  mp__qshared *s = q->s;
  *done = 0;
  int rc = lock_producers(q, d);
  if (rc != 0)
    return rc;
  uint64_t t = s->tail_own;
  uint64_t h = s->head_cache;
  bool fresh = false;
  if (!pair_ok(q, h, t)) {
    h = atomic_load_explicit(&s->headw, memory_order_acquire);
    fresh = true;
    if (!pair_ok(q, h, t)) {
      mp__queue_unlock(q, &s->plock);
      return mp__fail(MP_ECORRUPT, "ring head and tail words disagree");
    }
    s->head_cache = h;
  }
  uint32_t cnt = cnt_of(t), pos = pos_of(t);
  size_t k = 0;
  /* The last header written: a batch's records mostly share a length. */
  rec_hdr memo = {.kind = 0};
  while (k < n) {
    const mp__qput *m = &msgs[k];
    uint32_t rb = mp__qfifo_put_bytes(q, m);
    uint32_t need = need_bytes(q, pos, rb);
    uint32_t used = pos - pos_of(h);
    if ((uint64_t)(cnt - cnt_of(h)) >= q->maxsize || q->cap - used < need) {
      if (fresh)
        break;
      /* The cache says full: look at the real head, once. */
      h = atomic_load_explicit(&s->headw, memory_order_acquire);
      fresh = true;
      if (!pair_ok(q, h, t)) {
        rc = MP_ECORRUPT;
        break;
      }
      s->head_cache = h;
      continue;
    }
    uint32_t off = pos & q->mask;
    bool wrap = rb > q->cap - off;
    if (!wrap && off < REWIND_AT && off + rb > REWIND_AT &&
        rb <= REWIND_AT / 4 && q->cap >= 4 * REWIND_AT &&
        rewind_now(q, &h, t, cnt, pos, rb, &fresh)) {
      wrap = true;
      need = q->cap - off + rb;
    }
    if (wrap) {
      write_hdr(q, off, q->cap - off - (uint32_t)sizeof(rec_hdr), MP__REC_WRAP);
      off = 0;
    }
    uint32_t hlen =
        m->kind == MP__REC_LARGE ? rb - (uint32_t)sizeof(rec_hdr) : m->len;
    if (hlen != memo.len || m->kind != memo.kind)
      memo = (rec_hdr){.len = hlen,
                       .kind = m->kind,
                       .check = mp__queue_check16(hlen, m->kind)};
    memcpy(q->ring + off, &memo, sizeof memo);
    if (m->len > 0)
      mp__qcopy(q->ring + off + sizeof(rec_hdr), m->data, m->len);
    pos += need;
    cnt++;
    k++;
  }
  /* The commit: everything above becomes visible at once. */
  if (k > 0) {
    s->tail_own = word_of(cnt, pos);
    atomic_store_explicit(&s->tail, word_of(cnt, pos), memory_order_release);
  }
  mp__queue_unlock(q, &s->plock);
  if (k > 0)
    mp__queue_notify(q, &s->not_empty);
  *done = k;
  if (rc != 0 && k == 0)
    return rc;
  return k == n ? 0 : MP_EAGAIN;
}

/* ---- in-place puts --------------------------------------------------------
 * A claim is a put cut in two: the room is reserved under plock as try_put
 * would use it, and the lock is kept until the commit, whose tail store is
 * the same single commit as a put's. A claimer killed in between leaves
 * plock to be taken over, with its record past the tail, unseen. */
int mp__qfifo_claim(mp_queue *q, const mp__deadline *d, uint16_t kind,
                    uint32_t len) {
  mp__qshared *s = q->s;
  int rc = lock_producers(q, d);
  if (rc != 0)
    return rc;
  uint64_t t = s->tail_own;
  uint64_t h = s->head_cache;
  mp__qput m = {.len = len, .kind = kind};
  uint32_t rb = mp__qfifo_put_bytes(q, &m);
  for (bool fresh = false;; fresh = true) {
    if (!pair_ok(q, h, t) || fresh) {
      h = atomic_load_explicit(&s->headw, memory_order_acquire);
      if (!pair_ok(q, h, t)) {
        mp__queue_unlock(q, &s->plock);
        return mp__fail(MP_ECORRUPT, "ring head and tail words disagree");
      }
      s->head_cache = h;
    }
    uint32_t used = pos_of(t) - pos_of(h);
    if ((uint64_t)(cnt_of(t) - cnt_of(h)) < q->maxsize &&
        q->cap - used >= need_bytes(q, pos_of(t), rb))
      break;
    if (fresh) {
      mp__queue_unlock(q, &s->plock);
      return MP_EAGAIN;
    }
  }
  uint32_t off = pos_of(t) & q->mask;
  q->claim.wrapped = rb > q->cap - off;
  if (q->claim.wrapped) {
    write_hdr(q, off, q->cap - off - (uint32_t)sizeof(rec_hdr), MP__REC_WRAP);
    off = 0;
  }
  q->claim.cnt = cnt_of(t);
  q->claim.start = pos_of(t);
  q->claim.off = off;
  return 0;
}

unsigned char *mp__qfifo_claim_payload(mp_queue *q) {
  return q->ring + q->claim.off + sizeof(rec_hdr);
}

void mp__qfifo_commit(mp_queue *q, uint16_t kind, const void *data,
                      uint32_t len) {
  mp__qshared *s = q->s;
  mp__qput m = {.len = len, .kind = kind};
  uint32_t rb = mp__qfifo_put_bytes(q, &m);
  write_hdr(q, q->claim.off,
            kind == MP__REC_LARGE ? rb - (uint32_t)sizeof(rec_hdr) : len, kind);
  if (data != NULL && len > 0)
    memcpy(mp__qfifo_claim_payload(q), data, len);
  uint32_t start = q->claim.start;
  uint32_t pos =
      start + (q->claim.wrapped ? q->cap - (start & q->mask) : 0) + rb;
  s->tail_own = word_of(q->claim.cnt + 1, pos);
  atomic_store_explicit(&s->tail, s->tail_own, memory_order_release);
  mp__queue_unlock(q, &s->plock);
  mp__queue_notify(q, &s->not_empty);
}

void mp__qfifo_abandon(mp_queue *q) {
  mp__queue_unlock(q, &q->s->plock);
}

/* read_record checks the record at pos (avail bytes before the tail) and
 * returns its header, where its payload is, and how far it moves pos
 * (WRAP gap included); false when anything is wrong. */
static inline __attribute__((always_inline)) bool
read_record(mp_queue *q, uint32_t pos, uint32_t avail, rec_hdr *out,
            unsigned char **payload, uint32_t *advance) {
  uint32_t off = pos & q->mask, skip = 0;
  rec_hdr h;
  memcpy(&h, q->ring + off, sizeof h);
  if (h.kind == MP__REC_WRAP) {
    skip = q->cap - off;
    if (h.check != mp__queue_check16(h.len, MP__REC_WRAP) ||
        h.len != skip - sizeof h || skip >= avail)
      return false;
    off = 0;
    memcpy(&h, q->ring, sizeof h);
  }
  if (h.check != mp__queue_check16(h.len, h.kind))
    return false;
  if (h.kind == MP__REC_INLINE) {
    if (h.len > q->inline_max)
      return false;
  } else if (h.kind == MP__REC_LARGE) {
    if (h.len != mp__qfifo_record_bytes(large_len(q)) - sizeof h)
      return false;
  } else {
    return false;
  }
  uint32_t rb = mp__qfifo_record_bytes(h.len);
  if (rb > q->cap - off || rb > avail - skip)
    return false;
  *out = h;
  *payload = q->ring + off + sizeof h;
  *advance = skip + rb;
  return true;
}

/* walk visits the large records between head word h and tail word t;
 * false when the ring does not parse. */
static bool walk(mp_queue *q, uint64_t h, uint64_t t,
                 bool (*visit)(mp_queue *, const mp__qlarge_ref *, void *),
                 void *arg) {
  uint32_t pos = pos_of(h), n = cnt_of(t) - cnt_of(h);
  for (uint32_t i = 0; i < n; i++) {
    rec_hdr hd;
    unsigned char *payload;
    uint32_t adv;
    if (!read_record(q, pos, pos_of(t) - pos, &hd, &payload, &adv))
      return false;
    if (hd.kind == MP__REC_LARGE) {
      mp__qlarge_ref ref;
      memcpy(&ref, payload, sizeof ref);
      if (visit(q, &ref, arg))
        return true;
    }
    pos += adv;
  }
  return true;
}

typedef struct find_arg {
  const mp__qlarge_ref *want;
  bool found;
} find_arg;

static bool visit_find(mp_queue *q, const mp__qlarge_ref *ref, void *arg) {
  (void)q;
  find_arg *f = arg;
  if (ref->pid == f->want->pid && ref->ctr == f->want->ctr)
    f->found = true;
  return f->found;
}

/* mp__qfifo_queued: is the large message ref still queued? Caller holds clock
 * (so the head stands still); records the ring cannot parse count as
 * holding it, so that nothing is removed on a doubt. */
bool mp__qfifo_queued(mp_queue *q, const mp__qlarge_ref *ref) {
  uint64_t h = atomic_load_explicit(&q->s->headw, memory_order_acquire);
  uint64_t t = atomic_load_explicit(&q->s->tail, memory_order_acquire);
  if (!pair_ok(q, h, t))
    return true;
  find_arg f = {.want = ref};
  if (!walk(q, h, t, visit_find, &f))
    return true;
  return f.found;
}

typedef struct each_arg {
  void (*fn)(mp_queue *, const mp__qlarge_ref *, void *);
  void *arg;
} each_arg;

static bool visit_each(mp_queue *q, const mp__qlarge_ref *ref, void *arg) {
  each_arg *e = arg;
  e->fn(q, ref, e->arg);
  return false;
}

void mp__qfifo_for_each_large(mp_queue *q,
                              void (*fn)(mp_queue *, const mp__qlarge_ref *,
                                         void *),
                              void *arg, bool drop) {
  uint64_t h = atomic_load_explicit(&q->s->headw, memory_order_acquire);
  uint64_t t = atomic_load_explicit(&q->s->tail, memory_order_acquire);
  if (!pair_ok(q, h, t))
    return;
  each_arg e = {.fn = fn, .arg = arg};
  (void)walk(q, h, t, visit_each, &e);
  if (drop) {
    atomic_store_explicit(&q->s->headw, t, memory_order_release);
    q->s->tail_cache = t;
    q->s->head_cache = t;
  }
}

/* Holding back. One producer streaming to one consumer that keeps up
 * runs each message through the cores one at a time: the consumer takes
 * the tail's line and the record's lines as soon as each is written, and
 * the producer must take them back for its next stores (a line transfer
 * each way per message, as the bare ring pays). A consumer a few messages
 * behind reads lines the producer is done with, and the tail's line once
 * per few messages: the at-least-once mode, whose gets do more work, ran
 * 64-byte messages in 103 ns where the plain mode took 165 to 181 ns,
 * and the plain mode got faster when its consumer idled ~100 ns after
 * each message (docs/queue.md, "Holding back").
 *
 * So the only consumer of a side (it keeps the lock as a bias) whose
 * last two looks at the tail each found records it had not waited for,
 * but less than HOLD_BYTES of them (small messages: a 4 KiB one moves
 * many lines per message anyway, and lost 40% to holding back), lets the
 * producer run ahead: HOLD_PAUSES CPU pauses
 * (about 1.2 us here), then one more look at the tail. A get that waited for
 * its message (a round trip, a consumer faster than its producer) never holds
 * back, nor a get that may not wait. A hold-back during which the tail did not
 * move (the producer is not streaming: a burst, or the consumer's own thread
 * puts) was for nothing: the next 2, 4, ... up to HOLD_SKIP_MAX chances are let
 * pass, so a message waits the pauses only while its consumer is behind a
 * streaming producer, or once in HOLD_SKIP_MAX otherwise. */
#define HOLD_BYTES 512 /* eight lines */
#define HOLD_PAUSES 64
#define HOLD_SKIP_MAX 1024

static __attribute__((noinline)) uint64_t hold_back(mp_queue *q, uint64_t t) {
  q->holds++;
  for (int j = 0; j < HOLD_PAUSES; j++)
    mp__os_cpu_relax();
  uint64_t t2 = atomic_load_explicit(&q->s->tail, memory_order_acquire);
  if (t2 == t) {
    q->hold_backoff = q->hold_backoff == 0              ? 2
                      : q->hold_backoff < HOLD_SKIP_MAX ? q->hold_backoff * 2
                                                        : HOLD_SKIP_MAX;
    q->hold_skip = q->hold_backoff;
  } else {
    q->hold_backoff = 0;
  }
  return t2;
}

int mp__qfifo_try_get(mp_queue *q, const mp__deadline *d, mp__qget *g) {
  mp__qshared *s = q->s;
  bool recovered = false;
  g->taken = 0;
  g->used = 0;
  int rc = mp__queue_lock(q, &s->clock, &recovered, d);
  if (rc != 0)
    return rc;
  if (recovered) {
    /* A consumer died holding clock: nothing it did is visible unless it
     * committed; only a large hand-over may be half done. */
    s->tail_cache = atomic_load_explicit(&s->tail, memory_order_acquire);
    mp__qlarge_recover(q, mp__qfifo_queued);
    mp__qlarge_sweep(q, mp__qfifo_queued);
  }
  uint64_t h = atomic_load_explicit(&s->headw, memory_order_relaxed);
  uint64_t t = s->tail_cache;
  bool fresh = false;
  if (!pair_ok(q, h, t) || cnt_of(t) == cnt_of(h)) {
    t = atomic_load_explicit(&s->tail, memory_order_acquire);
    fresh = true;
    if (!pair_ok(q, h, t)) {
      mp__queue_unlock(q, &s->clock);
      return mp__fail(MP_ECORRUPT, "ring head and tail words disagree");
    }
    s->tail_cache = t;
    /* Holding back (above); its fields are written under clock. */
    bool few = pos_of(t) - pos_of(h) < HOLD_BYTES && cnt_of(t) != cnt_of(h) &&
               !g->waited;
    bool streak = q->hold_streak;
    q->hold_streak = few;
    if (few && streak && q->hold_skip > 0)
      q->hold_skip--;
    else if (few && streak && !d->poll &&
             (atomic_load_explicit(&s->clock.owner, memory_order_relaxed) &
              MP__QLOCK_BIAS)) {
      t = hold_back(q, t);
      if (!pair_ok(q, h, t)) {
        mp__queue_unlock(q, &s->clock);
        return mp__fail(MP_ECORRUPT, "ring head and tail words disagree");
      }
      s->tail_cache = t;
    }
  }
  uint32_t cnt = cnt_of(h), pos = pos_of(h);
  size_t taken = 0;
  bool advanced = false, large = false;
  mp__qlarge_ref ref;
  rc = 0;
  /* Lease mode: one message per get, kept in a lease entry claimed now
   * (see queue.c's leases). */
  int lease = -1;
  while (taken < g->max) {
    if (cnt == cnt_of(t)) {
      if (fresh)
        break;
      /* A batch that took all the cache promised looks once more. */
      t = atomic_load_explicit(&s->tail, memory_order_acquire);
      fresh = true;
      if (!pair_ok(q, word_of(cnt, pos), t)) {
        rc = MP_ECORRUPT;
        break;
      }
      s->tail_cache = t;
      continue;
    }
    rec_hdr hd;
    unsigned char *payload;
    uint32_t adv;
    if (!read_record(q, pos, pos_of(t) - pos, &hd, &payload, &adv)) {
      rc = mp__fail(MP_ECORRUPT, "ring record header is damaged");
      break;
    }
    if (q->lease && lease < 0 && (lease = mp__qlease_claim(q)) < 0) {
      rc = mp__fail(MP_EBUSY, "all %d leases are held", MP_QUEUE_LEASES);
      break;
    }
    if (hd.kind == MP__REC_INLINE) {
      rc = mp__queue_deliver(g, payload, hd.len, taken);
      if (rc != 0)
        break;
    } else {
      /* Large messages are taken on their own. */
      if (taken > 0)
        break;
      memcpy(&ref, payload, sizeof ref);
      rc = mp__qlarge_take(q, &ref, g);
      if (rc == MP_ENOENT) {
        /* Its segment is gone (removed from outside): nothing left to
         * deliver, so the record goes, and the next message is looked
         * at. */
        rc = 0;
        pos += adv;
        cnt++;
        advanced = true;
        continue;
      }
      if (rc != 0)
        break;
      large = true;
      /* Named before the commit: a consumer that dies between the commit
       * and the unlink leaves the name to the next one (recover). A lease
       * keeps the segment instead. */
      if (lease < 0) {
        atomic_store_explicit(&s->pend_ctr, ref.ctr, memory_order_relaxed);
        atomic_store_explicit(&s->pend_pid, ref.pid, memory_order_relaxed);
      }
    }
    if (lease >= 0) {
      if (hd.kind == MP__REC_INLINE)
        mp__qlease_fill(q, lease, cnt + 1, MP__REC_INLINE, payload, hd.len, g);
      else
        mp__qlease_fill(q, lease, cnt + 1, MP__REC_LARGE, &ref, sizeof ref, g);
    }
    if (taken == 0 && g->prio != NULL)
      *g->prio = 0;
    pos += adv;
    cnt++;
    taken++;
    advanced = true;
    if (large)
      break;
  }
  /* The commit: the space of every record taken is released at once. */
  if (advanced)
    atomic_store_explicit(&s->headw, word_of(cnt, pos), memory_order_release);
  if (large && lease < 0)
    mp__qlarge_taken(q, &ref, g);
  if (lease >= 0 && taken == 0)
    mp__qlease_abandon(q, lease);
  mp__queue_unlock(q, &s->clock);
  if (advanced)
    mp__queue_notify(q, &s->not_full);
  g->taken = taken;
  if (taken > 0)
    return 0;
  return rc != 0 ? rc : MP_EAGAIN;
}
