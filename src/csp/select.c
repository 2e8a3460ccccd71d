/* select.c - choice: PriSelect, AltSelect and FairSelect over input,
 * output, timeout and skip guards. A choice runs in two phases (see the
 * DESIGN in csp_internal.h). Active: it tries each channel guard in its
 * order and completes the first that is ready, taking an opposite offer or
 * using the buffer, while it has no offer of its own posted. Passive: it
 * posts an offer on every channel guard (each under its channel's lock,
 * after checking nothing there is ready) and sleeps on all their bells at
 * once; a partner claims one offer, and the choice accepts the first
 * claimed offer in its order and rejects or withdraws the others. If it
 * finds something ready while posting, or a buffered channel tells it
 * that room or a message appeared, it withdraws everything and starts
 * over. Exactly one guard fires; the others leave no trace. */
#include <string.h>

#include "../os/process_os.h"
#include "../sync_internal.h"
#include "csp_internal.h"

typedef struct choice {
  mp_guard *g;
  size_t n;
  unsigned order[CSP_MAX_GUARDS];
  csp_op ops[CSP_MAX_GUARDS];
  unsigned posted[CSP_MAX_GUARDS];
  unsigned nposted;
  int skip, timeout;
  mp__deadline d;
} choice;

static int validate(choice *ch) {
  mp_guard *g = ch->g;
  double seconds;
  int rc = mp__csp_guards_check(g, ch->n, &ch->skip, &ch->timeout, &seconds);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < ch->n; i++) {
    if (g[i].kind == MP_GUARD_INPUT)
      ch->ops[i] = (csp_op){.end = g[i].end, .dir = CSP_DIR_READ,
                            .buf = g[i].buf, .cap = g[i].cap, .slot = -1};
    else if (g[i].kind == MP_GUARD_OUTPUT)
      ch->ops[i] = (csp_op){.end = g[i].end, .dir = CSP_DIR_WRITE,
                            .msg = g[i].msg, .len = g[i].len, .slot = -1};
  }
  ch->d = mp__deadline_from_timeout(seconds);
  /* A zero timeout guard is a timeout, not a poll: it fires (rather than
   * MP_EAGAIN) when nothing is ready. */
  ch->d.poll = false;
  /* How long each channel's lock may be waited for: the choice's deadline;
   * a poll's grace with a skip guard, which must not block. */
  mp__deadline ld = ch->skip >= 0 ? mp__deadline_from_timeout(0) : ch->d;
  for (size_t i = 0; i < ch->n; i++)
    ch->ops[i].d = ld;
  return 0;
}

static bool is_channel(const mp_guard *g) {
  return g->kind == MP_GUARD_INPUT || g->kind == MP_GUARD_OUTPUT;
}

/* fired records the guard that fired. */
static int fired(choice *ch, unsigned i) {
  if (ch->g[i].kind == MP_GUARD_INPUT)
    ch->g[i].received = ch->ops[i].received;
  return (int)i;
}

/* withdraw_all withdraws every posted offer. A claim that came first is
 * kept (the first in order) and the rest rejected; the one kept is then
 * completed. Returns the index that fired, MP_EAGAIN when none was
 * claimed (or the claimer died: start over), or MP_ETOOBIG. */
static int withdraw_all(choice *ch) {
  int chosen = -1;
  for (unsigned k = 0; k < ch->nposted; k++) {
    csp_op *op = &ch->ops[ch->posted[k]];
    int r = mp__csp_withdraw(op);
    if (r == 0) {
      op->slot = -1;
      continue;
    }
    if (chosen < 0)
      chosen = (int)ch->posted[k];
    else
      mp__csp_reject(op);
  }
  ch->nposted = 0;
  if (chosen < 0)
    return MP_EAGAIN;
  csp_op *op = &ch->ops[chosen];
  uint64_t w = mp__csp_slot_state(op);
  int rc = csp_st(w) == ST_DONE ? mp__csp_collect(op)
                                : mp__csp_accept_and_finish(op);
  if (rc == 1)
    return MP_EAGAIN;
  if (rc != 0)
    return rc;
  return fired(ch, (unsigned)chosen);
}

/* passive_wait sleeps on the bells of every posted offer until one is
 * claimed (then the first claimed in order is taken, the rest withdrawn or
 * rejected), a channel fails, the deadline passes, or a buffered channel
 * rings (then everything is withdrawn and the choice starts over: RESTART,
 * i.e. MP_EAGAIN). Sweeps the channels at each slice. */
static int passive_wait(choice *ch) {
  _Atomic uint32_t *bells[CSP_MAX_GUARDS], *sleepers[CSP_MAX_GUARDS];
  uint32_t expect[CSP_MAX_GUARDS];
  for (;;) {
    unsigned m = ch->nposted;
    for (unsigned k = 0; k < m; k++) {
      bells[k] = mp__csp_bell(&ch->ops[ch->posted[k]]);
      sleepers[k] = mp__csp_sleepers(&ch->ops[ch->posted[k]]);
      expect[k] = atomic_load_explicit(bells[k], memory_order_acquire);
    }
    bool claimed = false, lost = false;
    int failure = 0;
    for (unsigned k = 0; k < m; k++) {
      csp_op *op = &ch->ops[ch->posted[k]];
      uint64_t w = mp__csp_slot_state(op);
      if (csp_seq(w) != op->seq || csp_st(w) == ST_FREE)
        lost = true;
      else if (csp_st(w) != ST_OFFERED)
        claimed = true;
      else if (failure == 0)
        failure = mp__csp_op_failure(op);
    }
    if (claimed || lost)
      return withdraw_all(ch);
    if (failure != 0) {
      int rc = withdraw_all(ch);
      return rc == MP_EAGAIN ? failure : rc;
    }
    if (mp__deadline_expired(ch->d)) {
      int rc = withdraw_all(ch);
      return rc == MP_EAGAIN ? ch->timeout : rc;
    }
    int64_t until = mp__os_now_ns() + MP__SYNC_SLICE_NS;
    if (ch->d.ns < until)
      until = ch->d.ns;
    mp__csp_bells_wait(bells, expect, sleepers, (int)m, until);
    bool rung = false, buffered_rung = false;
    for (unsigned k = 0; k < m; k++) {
      if (atomic_load_explicit(bells[k], memory_order_acquire) != expect[k]) {
        rung = true;
        if (ch->ops[ch->posted[k]].end->ch->buffer > 0)
          buffered_rung = true;
      }
    }
    /* A buffered channel rings a choice when room or a message appears:
     * go back to the active phase to use it. */
    if (buffered_rung) {
      bool any_claim = false;
      for (unsigned k = 0; k < m; k++)
        if (csp_st(mp__csp_slot_state(&ch->ops[ch->posted[k]])) !=
            ST_OFFERED)
          any_claim = true;
      if (!any_claim)
        return withdraw_all(ch);
    }
    if (!rung && mp__os_now_ns() >= until && !mp__deadline_expired(ch->d))
      for (unsigned k = 0; k < m; k++)
        mp__csp_sweep(ch->ops[ch->posted[k]].end->ch,
                      mp__deadline_min_slice(ch->d, MP__SYNC_SLICE_NS));
  }
}

/* MP_EAGAIN from a phase means "start over"; RESTART makes that explicit. */
#define RESTART MP_EAGAIN

static int run(choice *ch) {
  for (;;) {
    /* Active phase. */
    for (size_t k = 0; k < ch->n; k++) {
      unsigned i = ch->order[k];
      if (!is_channel(&ch->g[i]))
        continue;
      int rc = mp__csp_attempt(&ch->ops[i], CSP_ATTEMPT_TRY, false);
      if (rc == 0)
        return fired(ch, i);
      /* MP_ETIMEDOUT: its lock stayed held past the deadline; the timeout
       * guard fires below. */
      if (rc != MP_EAGAIN && rc != MP_ETIMEDOUT)
        return rc;
    }
    if (ch->skip >= 0)
      return ch->skip;
    if (ch->timeout >= 0 && mp__deadline_expired(ch->d))
      return ch->timeout;
    /* Passive phase: post everywhere, unless something became ready. */
    ch->nposted = 0;
    int again = 0;
    for (size_t k = 0; k < ch->n && again == 0; k++) {
      unsigned i = ch->order[k];
      if (!is_channel(&ch->g[i]))
        continue;
      int rc = mp__csp_attempt(&ch->ops[i], CSP_ATTEMPT_PEEK_POST, true);
      if (rc == 1)
        ch->posted[ch->nposted++] = i;
      else
        again = rc == 2 ? 2 : rc;
    }
    if (again != 0) {
      int rc = withdraw_all(ch);
      if (rc != RESTART)
        return rc;
      if (again == MP_ETIMEDOUT && ch->timeout >= 0)
        return ch->timeout; /* a lock held past the deadline */
      if (again != 2)
        return again;
      continue;
    }
    if (ch->nposted == 0) {
      /* Only a timeout guard (or nothing): wait it out. */
      if (ch->timeout < 0)
        return mp__fail(MP_EINVAL, "a choice with nothing to wait for");
      mp__os_sleep_until(ch->d.ns);
      return ch->timeout;
    }
    int rc = passive_wait(ch);
    if (rc != RESTART)
      return rc;
  }
}

static int select_impl(mp_guard *guards, size_t n, int mode) {
  if (guards == NULL || n == 0 || n > CSP_MAX_GUARDS)
    return mp__fail(MP_EINVAL, "a choice needs 1 to %d guards",
                    CSP_MAX_GUARDS);
  if (mp__csp_remote_guarded(guards, n))
    return mp__csp_remote_select(guards, n, mode);
  choice ch;
  ch.g = guards;
  ch.n = n;
  ch.nposted = 0;
  int rc = validate(&ch);
  if (rc != 0)
    return rc;
  unsigned start = mp__csp_select_start(mode, n);
  for (size_t k = 0; k < n; k++)
    ch.order[k] = (unsigned)((start + k) % n);
  for (size_t i = 0; i < n; i++)
    if (is_channel(&guards[i]))
      mp__csp_set_busy(guards[i].end, guards[i].kind == MP_GUARD_OUTPUT
                                          ? CSP_BUSY_WRITE
                                          : CSP_BUSY_READ);
  rc = run(&ch);
  for (size_t i = 0; i < n; i++)
    if (is_channel(&guards[i]))
      mp__csp_set_busy(guards[i].end, CSP_BUSY_IDLE);
  mp__csp_select_done(mode, rc);
  return rc;
}

int mp_pri_select(mp_guard *guards, size_t n) {
  return select_impl(guards, n, MP__CSP_PRI);
}

int mp_alt_select(mp_guard *guards, size_t n) {
  return select_impl(guards, n, MP__CSP_ALT);
}

int mp_fair_select(mp_guard *guards, size_t n) {
  return select_impl(guards, n, MP__CSP_FAIR);
}
