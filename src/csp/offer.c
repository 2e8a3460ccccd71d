/* offer.c - the offer protocol of csp_internal.h and the buffer: trying an
 * operation now (from the buffer, or by taking an opposite offer), posting
 * an offer when nothing is ready, and the owner's side of a posted offer:
 * waiting for it, withdrawing it, accepting or rejecting a claim,
 * collecting the result; and how a party waits for its partner (spin,
 * yield, then sleep: see "waiting" below). Every wait sleeps in slices and
 * sweeps the channel at each, so a dead partner or owner is noticed. */
#define _GNU_SOURCE
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "../os/cpu.h"
#include "../os/futexv.h"
#include "../sync_internal.h"
#include "csp_internal.h"

/* ---- waiting --------------------------------------------------------- */

/* How a party waits for its partner (for the bells of its offers to
 * ring), in three stages, so that a communication makes no system call
 * while the partner is on a CPU, and costs the partner a wake-up only when
 * this party really sleeps:
 *   1. Spin: poll the bells with the CPU's pause hint for a per-thread
 *      adaptive time between SPIN_MIN_NS and SPIN_MAX_NS. It moves toward
 *      twice the time a wait took when spinning caught it, and toward the
 *      minimum when it did not. A partner on another CPU answers in it.
 *   2. Yield: give the CPU to another runnable task (sched_yield), for at
 *      most YIELD_NS in all. With more runnable tasks than CPUs (Commstime
 *      has four on two) the partner is often one of them, waiting for this
 *      CPU: the yield runs it with no sleep and no wake-up. On a CPU with
 *      nothing else to run a yield returns at once. A yield that kept the
 *      CPU away for more than YIELD_SLOW_NS means other programs are using
 *      it (a loaded machine): stop yielding and sleep.
 *   3. Sleep: count itself in each slot's sleepers, then sleep on the bell
 *      (futex) or on all of a choice's bells (futex_waitv). A partner makes
 *      the wake system call only when sleepers is nonzero (mp__csp_wake).
 * Spinning alone (no yield) was measured worse: on a loaded machine the
 * spinner keeps its partner off the CPU. Sleeping at once costs a futex
 * wake and a cross-CPU wake-up per communication (docs/csp.md,
 * Performance). */
#define SPIN_MIN_NS 200
#define SPIN_START_NS 1000
#define SPIN_MAX_NS 10000
#define YIELD_NS 50000
#define YIELD_SLOW_NS 20000

_Static_assert(CSP_MAX_GUARDS <= MP__OS_FUTEXV_MAX,
               "a choice sleeps on all its bells at once");

static _Thread_local int32_t spin_budget_ns;

void mp__csp_wake(_Atomic uint32_t *bell, _Atomic uint32_t *sleepers) {
  atomic_fetch_add_explicit(bell, 1, memory_order_seq_cst);
  if (atomic_load_explicit(sleepers, memory_order_seq_cst) != 0)
    mp__os_futex_wake((uint32_t *)bell, INT_MAX, true);
}

static bool rung(_Atomic uint32_t *const *bells, const uint32_t *expect,
                 int n) {
  for (int i = 0; i < n; i++)
    if (atomic_load_explicit(bells[i], memory_order_acquire) != expect[i])
      return true;
  return false;
}

/* adapt moves the spin budget toward twice caught_ns (the time a wait
 * that spinning caught took), or toward the minimum (caught_ns < 0). */
static void adapt(int32_t budget, int64_t caught_ns) {
  int64_t target = caught_ns < 0 ? SPIN_MIN_NS : 2 * caught_ns;
  if (target < SPIN_MIN_NS)
    target = SPIN_MIN_NS;
  if (target > SPIN_MAX_NS)
    target = SPIN_MAX_NS;
  spin_budget_ns = (int32_t)(budget + (target - budget) / 8);
}

bool mp__csp_bells_wait(_Atomic uint32_t *const *bells,
                        const uint32_t *expect,
                        _Atomic uint32_t *const *sleepers, int n,
                        int64_t abs_ns) {
  int32_t budget = spin_budget_ns != 0 ? spin_budget_ns : SPIN_START_NS;
  int64_t t0 = mp__os_now_ns(), t = t0;
  /* 1. Spin. */
  for (unsigned i = 1;; i++) {
    if (rung(bells, expect, n)) {
      adapt(budget, mp__os_now_ns() - t0);
      return true;
    }
    mp__os_cpu_relax();
    if (i % 16 == 0) {
      t = mp__os_now_ns();
      if (t >= abs_ns)
        return false;
      if (t - t0 >= budget)
        break;
    }
  }
  adapt(budget, -1);
  /* 2. Yield. */
  int64_t yield_end = t0 + YIELD_NS < abs_ns ? t0 + YIELD_NS : abs_ns;
  while (t < yield_end) {
    mp__os_yield();
    if (rung(bells, expect, n))
      return true;
    int64_t after = mp__os_now_ns();
    if (after - t >= YIELD_SLOW_NS)
      break;
    t = after;
  }
  /* 3. Sleep. */
  for (int i = 0; i < n; i++)
    atomic_fetch_add_explicit(sleepers[i], 1, memory_order_seq_cst);
  if (n == 1)
    (void)mp__os_futex_wait((uint32_t *)bells[0], expect[0], abs_ns, true);
  else
    mp__os_futex_waitv((uint32_t *const *)bells, expect, n, abs_ns);
  for (int i = 0; i < n; i++)
    atomic_fetch_sub_explicit(sleepers[i], 1, memory_order_seq_cst);
  return rung(bells, expect, n) || mp__os_now_ns() < abs_ns;
}

/* bell_wait returns once the bell differs from b (true), or at abs_ns
 * (false); it may return true early. */
static bool bell_wait(csp_slot *sl, uint32_t b, int64_t abs_ns) {
  _Atomic uint32_t *bell = &sl->bell, *sleepers = &sl->sleepers;
  return mp__csp_bells_wait(&bell, &b, &sleepers, 1, abs_ns);
}

static int64_t slice_end(void) { return mp__os_now_ns() + MP__SYNC_SLICE_NS; }

_Atomic uint32_t *mp__csp_bell(const csp_op *op) {
  return &csp_slot_of(op->end->ch, (uint32_t)op->slot)->bell;
}

_Atomic uint32_t *mp__csp_sleepers(const csp_op *op) {
  return &csp_slot_of(op->end->ch, (uint32_t)op->slot)->sleepers;
}

uint64_t mp__csp_slot_state(const csp_op *op) {
  return atomic_load_explicit(
      &csp_slot_of(op->end->ch, (uint32_t)op->slot)->state,
      memory_order_acquire);
}

/* ---- the partner's side ---------------------------------------------- */

/* A slot's len and multi are read by partners outside the lock (a
 * snapshot that the state word validates), so they are stored and loaded
 * as relaxed atomics. */
#define slot_get(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define slot_set(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)

/* await_decision waits, as the claimer of a choice's offer, for its owner
 * to accept (0) or reject it (MP_EAGAIN). A dead owner counts as a
 * rejection; the claim is then undone. So does the claimer's deadline d
 * passing: it frees the slot, as a dead owner's claimer does, and the
 * owner (which has then not accepted: its accept is a CAS from CLAIMED)
 * sees its offer lost and posts again; nothing was copied. */
static int await_decision(mp_channel *c, csp_slot *sl, uint32_t seq,
                          mp__deadline d) {
  /* A poll, or a caller already late, still lets a live owner decide (it
   * is quick) for CSP_POLL_GRACE_NS. */
  int64_t least = mp__os_now_ns() + CSP_POLL_GRACE_NS;
  if (d.poll || d.ns < least)
    d = (mp__deadline){.ns = least};
  for (;;) {
    uint32_t b = atomic_load_explicit(&sl->bell, memory_order_acquire);
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    if (csp_seq(w) != seq || csp_st(w) == ST_FREE)
      return MP_EAGAIN;
    if (csp_st(w) == ST_ACCEPTED)
      return 0;
    bool late = mp__deadline_expired(d);
    int64_t until = slice_end();
    if (d.ns < until)
      until = d.ns;
    if (late || !bell_wait(sl, b, until)) {
      if (late || mp__deadline_expired(d) ||
          mp__csp_id_gone(c, sl->owner_pid)) {
        if (atomic_compare_exchange_strong(&sl->state, &w,
                                           csp_word(seq, ST_FREE, 0))) {
          mp__csp_wake(&sl->bell, &sl->sleepers);
          return MP_EAGAIN;
        }
      }
    }
  }
}

/* take completes op against the opposite offer in slot idx, seen in state
 * w. Returns 0 (done), MP_EAGAIN (lost it: look again), MP_ETOOBIG,
 * MP_ECORRUPT. */
static int take(mp_channel *c, csp_op *op, csp_slot *sl, uint64_t w) {
  uint32_t seq = csp_seq(w);
  int32_t me = mp__csp_self_id(c);
  if (op->dir == CSP_DIR_READ) {
    /* A snapshot taken outside the lock: the owner may withdraw and post
     * again meanwhile. It is acted on only once the slot is claimed with
     * the sequence seen (the same posting), or re-validated before an
     * error is returned on its strength. */
    uint32_t len = slot_get(sl->len), multi = slot_get(sl->multi);
    if (len > c->msg_max || len > op->cap) {
      if (atomic_load_explicit(&sl->state, memory_order_acquire) != w)
        return MP_EAGAIN;
      if (len > c->msg_max)
        return mp__fail(MP_ECORRUPT, "offered message of %u bytes is over "
                                     "msg_max", len);
      return mp__fail(MP_ETOOBIG, "message of %u bytes, buffer of %zu", len,
                      op->cap);
    }
    if (!atomic_compare_exchange_strong(&sl->state, &w,
                                        csp_word(seq, ST_CLAIMED, me)))
      return MP_EAGAIN;
    if (!multi) {
      /* The slot is ours until DONE: copy, then commit. A reader that dies
       * in between leaves a claim its writer undoes (wait_single). */
      memcpy(op->buf, csp_slot_data(sl), len);
      atomic_store_explicit(&sl->state, csp_word(seq, ST_DONE, me),
                            memory_order_release);
      mp__csp_wake(&sl->bell, &sl->sleepers);
      op->received = len;
      return 0;
    }
    mp__csp_wake(&sl->bell, &sl->sleepers);
    if (await_decision(c, sl, seq, op->d) != 0)
      return MP_EAGAIN;
    memcpy(op->buf, csp_slot_data(sl), len);
    uint64_t acc = csp_word(seq, ST_ACCEPTED, me);
    atomic_compare_exchange_strong(&sl->state, &acc,
                                   csp_word(seq, ST_DONE, me));
    mp__csp_wake(&sl->bell, &sl->sleepers);
    op->received = len;
    return 0;
  }
  /* Writing into a read offer: claim it, then fill it alone. */
  if (!atomic_compare_exchange_strong(&sl->state, &w,
                                      csp_word(seq, ST_CLAIMED, me)))
    return MP_EAGAIN;
  if (slot_get(sl->multi)) {
    mp__csp_wake(&sl->bell, &sl->sleepers);
    if (await_decision(c, sl, seq, op->d) != 0)
      return MP_EAGAIN;
  }
  uint32_t cap = sl->cap;
  int rc = 0;
  if (op->len > cap || cap > c->msg_max) {
    /* The reader's buffer is too small: it gets MP_ETOOBIG, the message
     * stays with us and we look again. */
    sl->toobig = 1;
    slot_set(sl->len, (uint32_t)MP__MIN(op->len, UINT32_MAX));
    rc = MP_EAGAIN;
  } else {
    memcpy(csp_slot_data(sl), op->msg, op->len);
    slot_set(sl->len, (uint32_t)op->len);
    sl->toobig = 0;
  }
  /* We own the slot (CLAIMED, or ACCEPTED by a choice): a plain store. */
  atomic_store_explicit(&sl->state, csp_word(seq, ST_DONE, me),
                        memory_order_release);
  mp__csp_wake(&sl->bell, &sl->sleepers);
  return rc;
}

/* ---- the buffer ------------------------------------------------------ */

static unsigned char *ring_entry(mp_channel *c, uint32_t i) {
  return (unsigned char *)c->ring + (size_t)i * c->entry_size;
}

/* refill moves one waiting single write offer into the buffer after a
 * read made room (the lock is held), and pokes choices that offer writes
 * so they look again. */
static void refill(mp_channel *c, uint32_t hw) {
  csp_shared *s = c->s;
  bool filled = false;
  for (uint32_t i = 0; i < hw; i++) {
    csp_slot *sl = csp_slot_of(c, i);
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    if (csp_st(w) != ST_OFFERED || sl->dir != CSP_DIR_WRITE)
      continue;
    if (slot_get(sl->multi) || filled) {
      mp__csp_wake(&sl->bell, &sl->sleepers);
      continue;
    }
    uint32_t len = slot_get(sl->len);
    if (len > c->msg_max || s->ring_count >= c->buffer)
      continue;
    uint32_t tail = (s->ring_head + s->ring_count) % c->buffer;
    unsigned char *e = ring_entry(c, tail);
    memcpy(e + 8, csp_slot_data(sl), len);
    *(uint64_t *)e = len;
    if (atomic_compare_exchange_strong(
            &sl->state, &w, csp_word(csp_seq(w), ST_DONE, mp__csp_self_id(c)))) {
      s->ring_count++;
      filled = true;
      mp__csp_wake(&sl->bell, &sl->sleepers);
    }
  }
}

static bool has_offer(mp_channel *c, uint32_t hw, uint32_t dir,
                      int32_t tid, uint32_t *idx, uint64_t *word) {
  for (uint32_t i = 0; i < hw; i++) {
    csp_slot *sl = csp_slot_of(c, i);
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    if (csp_st(w) == ST_OFFERED && sl->dir == dir && sl->owner_tid != tid) {
      if (idx != NULL)
        *idx = i, *word = w;
      return true;
    }
  }
  return false;
}

/* ---- attempt and post ------------------------------------------------ */

int mp__csp_attempt(csp_op *op, int mode, bool multi) {
  mp_channel *c = op->end->ch;
  csp_shared *s = c->s;
  int32_t tid = (int32_t)mp__os_gettid();
  uint32_t opposite = op->dir == CSP_DIR_READ ? CSP_DIR_WRITE : CSP_DIR_READ;
  for (;;) {
    int lrc = mp__csp_lock_until(c, op->d);
    if (lrc != 0)
      return lrc;
    uint32_t st = mp__csp_status(c);
    if (st & CSP_POISONED) {
      mp__csp_unlock(c);
      return MP_EPOISONED;
    }
    if (op->dir == CSP_DIR_WRITE && (st & CSP_READERS_RETIRED)) {
      mp__csp_unlock(c);
      return mp__fail(MP_ERETIRED, "every reader has retired");
    }
    uint32_t hw = MP__MIN(s->offers_hint, c->max_waiting);
    uint32_t count = 0;
    if (c->buffer > 0) {
      uint32_t head = s->ring_head;
      count = s->ring_count;
      if (head >= c->buffer || count > c->buffer) {
        mp__csp_unlock(c);
        return mp__fail(MP_ECORRUPT, "buffer head or count out of range");
      }
      if (op->dir == CSP_DIR_READ && count > 0) {
        if (mode == CSP_ATTEMPT_PEEK_POST) {
          mp__csp_unlock(c);
          return 2;
        }
        unsigned char *e = ring_entry(c, head);
        uint64_t len = *(volatile uint64_t *)e;
        if (len > c->msg_max) {
          mp__csp_unlock(c);
          return mp__fail(MP_ECORRUPT, "buffered length out of range");
        }
        if (len > op->cap) {
          mp__csp_unlock(c);
          return mp__fail(MP_ETOOBIG, "message of %zu bytes, buffer of %zu",
                          (size_t)len, op->cap);
        }
        memcpy(op->buf, e + 8, len);
        op->received = len;
        s->ring_head = (head + 1) % c->buffer;
        s->ring_count = count - 1;
        refill(c, hw);
        mp__csp_unlock(c);
        return 0;
      }
      if (op->dir == CSP_DIR_WRITE && count < c->buffer &&
          !has_offer(c, hw, CSP_DIR_READ, tid, NULL, NULL)) {
        if (mode == CSP_ATTEMPT_PEEK_POST) {
          mp__csp_unlock(c);
          return 2;
        }
        unsigned char *e = ring_entry(c, (head + count) % c->buffer);
        memcpy(e + 8, op->msg, op->len);
        *(uint64_t *)e = op->len;
        s->ring_count = count + 1;
        mp__csp_unlock(c);
        return 0;
      }
    }
    if (op->dir == CSP_DIR_READ && (st & CSP_WRITERS_RETIRED) && count == 0) {
      mp__csp_unlock(c);
      return mp__fail(MP_ERETIRED, "every writer has retired");
    }
    uint32_t idx;
    uint64_t w;
    if (has_offer(c, hw, opposite, tid, &idx, &w)) {
      mp__csp_unlock(c);
      if (mode == CSP_ATTEMPT_PEEK_POST)
        return 2;
      int rc = take(c, op, csp_slot_of(c, idx), w);
      if (rc == MP_EAGAIN)
        continue;
      return rc;
    }
    if (mode == CSP_ATTEMPT_TRY) {
      mp__csp_unlock(c);
      return MP_EAGAIN;
    }
    /* Post an offer, still under the lock that saw nothing to take. */
    uint32_t i = 0;
    for (; i < c->max_waiting; i++)
      if (csp_st(atomic_load(&csp_slot_of(c, i)->state)) == ST_FREE)
        break;
    if (i == c->max_waiting) {
      mp__csp_unlock(c);
      return mp__fail(MP_ENOSPC, "more than max_waiting (%u) parties wait "
                                 "on this channel", c->max_waiting);
    }
    csp_slot *sl = csp_slot_of(c, i);
    uint64_t old = atomic_load(&sl->state);
    uint32_t seq = (csp_seq(old) + 1) & 0xffffffu;
    sl->dir = op->dir;
    slot_set(sl->multi, (uint32_t)multi);
    sl->owner_pid = mp__csp_self_id(c);
    sl->owner_tid = tid;
    sl->toobig = 0;
    if (op->dir == CSP_DIR_WRITE) {
      memcpy(csp_slot_data(sl), op->msg, op->len);
      slot_set(sl->len, (uint32_t)op->len);
      sl->cap = 0;
    } else {
      sl->cap = (uint32_t)MP__MIN(op->cap, (size_t)c->msg_max);
      slot_set(sl->len, 0);
    }
    atomic_store_explicit(&sl->state, csp_word(seq, ST_OFFERED, 0),
                          memory_order_release);
    if (i + 1 > s->offers_hint)
      s->offers_hint = i + 1;
    op->slot = (int)i;
    op->seq = seq;
    mp__csp_unlock(c);
    return 1;
  }
}

/* ---- the owner's side ------------------------------------------------ */

int mp__csp_op_failure(const csp_op *op) {
  mp_channel *c = op->end->ch;
  uint32_t st = mp__csp_status(c);
  if (st & CSP_POISONED)
    return MP_EPOISONED;
  if (op->dir == CSP_DIR_WRITE && (st & CSP_READERS_RETIRED))
    return mp__fail(MP_ERETIRED, "every reader has retired");
  if (op->dir == CSP_DIR_READ && (st & CSP_WRITERS_RETIRED))
    return mp__fail(MP_ERETIRED, "every writer has retired");
  return 0;
}

int mp__csp_withdraw(csp_op *op) {
  csp_slot *sl = csp_slot_of(op->end->ch, (uint32_t)op->slot);
  uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
  for (;;) {
    if (csp_seq(w) != op->seq)
      return 0;
    switch (csp_st(w)) {
    case ST_OFFERED:
      if (atomic_compare_exchange_weak(&sl->state, &w,
                                       csp_word(op->seq, ST_FREE, 0)))
        return 0;
      continue;
    case ST_CLAIMED:
    case ST_ACCEPTED:
      return 1;
    case ST_DONE:
      return 2;
    default:
      return 0;
    }
  }
}

void mp__csp_reject(csp_op *op) {
  csp_slot *sl = csp_slot_of(op->end->ch, (uint32_t)op->slot);
  uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
  if (csp_seq(w) == op->seq && csp_st(w) == ST_CLAIMED &&
      atomic_compare_exchange_strong(&sl->state, &w,
                                     csp_word(op->seq, ST_FREE, 0)))
    mp__csp_wake(&sl->bell, &sl->sleepers);
}

int mp__csp_collect(csp_op *op) {
  mp_channel *c = op->end->ch;
  csp_slot *sl = csp_slot_of(c, (uint32_t)op->slot);
  int rc = 0;
  if (op->dir == CSP_DIR_READ) {
    uint32_t len = sl->len;
    if (sl->toobig)
      rc = mp__fail(MP_ETOOBIG, "message of %u bytes, buffer of %zu", len,
                    op->cap);
    else if (len > c->msg_max || len > op->cap)
      rc = mp__fail(MP_ECORRUPT, "delivered length out of range");
    else {
      memcpy(op->buf, csp_slot_data(sl), len);
      op->received = len;
    }
  }
  atomic_store_explicit(&sl->state, csp_word(op->seq, ST_FREE, 0),
                        memory_order_release);
  op->slot = -1;
  return rc;
}

/* wait_done waits for the partner that claimed (or was accepted on) op's
 * slot to finish. Returns 0 when DONE, 1 when the partner died (the slot
 * is then freed). */
static int wait_done(csp_op *op) {
  mp_channel *c = op->end->ch;
  csp_slot *sl = csp_slot_of(c, (uint32_t)op->slot);
  for (;;) {
    uint32_t b = atomic_load_explicit(&sl->bell, memory_order_acquire);
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    if (csp_seq(w) != op->seq || csp_st(w) == ST_FREE) {
      op->slot = -1;
      return 1;
    }
    if (csp_st(w) == ST_DONE)
      return 0;
    if (!bell_wait(sl, b, slice_end()) && mp__csp_id_gone(c, csp_pid(w))) {
      if (atomic_compare_exchange_strong(&sl->state, &w,
                                         csp_word(op->seq, ST_FREE, 0))) {
        op->slot = -1;
        return 1;
      }
    }
  }
}

int mp__csp_accept_and_finish(csp_op *op) {
  csp_slot *sl = csp_slot_of(op->end->ch, (uint32_t)op->slot);
  uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
  if (csp_seq(w) != op->seq || csp_st(w) != ST_CLAIMED)
    return 1;
  if (!atomic_compare_exchange_strong(
          &sl->state, &w, csp_word(op->seq, ST_ACCEPTED, csp_pid(w))))
    return 1;
  mp__csp_wake(&sl->bell, &sl->sleepers);
  if (wait_done(op) != 0)
    return 1;
  return mp__csp_collect(op);
}

int mp__csp_wait_single(csp_op *op, mp__deadline d) {
  mp_channel *c = op->end->ch;
  csp_slot *sl = csp_slot_of(c, (uint32_t)op->slot);
  for (;;) {
    uint32_t b = atomic_load_explicit(&sl->bell, memory_order_acquire);
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    if (csp_seq(w) != op->seq || csp_st(w) == ST_FREE) {
      op->slot = -1;
      return 1;
    }
    uint32_t st = csp_st(w);
    if (st == ST_DONE)
      return mp__csp_collect(op);
    int64_t until = slice_end();
    if (st == ST_OFFERED) {
      int f = mp__csp_op_failure(op);
      if (f == 0 && mp__deadline_expired(d))
        f = mp__deadline_error(d);
      if (f != 0) {
        int wr = mp__csp_withdraw(op);
        if (wr == 0) {
          op->slot = -1;
          return f;
        }
        continue; /* a partner came first: finish with it */
      }
      if (d.ns < until)
        until = d.ns;
    }
    if (!bell_wait(sl, b, until)) {
      if (st == ST_CLAIMED && mp__csp_id_gone(c, csp_pid(w))) {
        /* The partner that claimed our offer died before it was done
         * (a writer filling our read offer, a reader copying our write
         * offer): nothing was delivered. Free the slot and start over. */
        if (atomic_compare_exchange_strong(&sl->state, &w,
                                           csp_word(op->seq, ST_FREE, 0))) {
          op->slot = -1;
          return 1;
        }
      }
      if (!mp__deadline_expired(d) || st != ST_OFFERED)
        mp__csp_sweep(c, mp__deadline_min_slice(d, MP__SYNC_SLICE_NS));
    }
  }
}
