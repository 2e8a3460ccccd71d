/* remote_select.c - a choice with a guard on a remote channel end. The
 * offer protocol of a local choice (select.c) posts offers in shared
 * memory, which a remote channel does not have; here a choice is made of
 * attempts that either complete or leave no trace, so exactly one guard
 * fires and a message is never taken without being delivered:
 *
 *   1. Try every channel guard once, in the choice's order: a local one
 *      with a zero-timeout read or write, a remote one by asking its
 *      server for the same (a round trip). The first that completes fires.
 *   2. Skip and expired timeout guards fire as in a local choice.
 *   3. Wait: when the choice has one channel guard and it is remote, its
 *      server waits for the whole remaining time (a real offer on the
 *      channel, so nothing is polled). Otherwise one remote guard in turn
 *      waits for a short window (1 ms growing to 8 ms while nothing
 *      happens), a real offer on its channel that a partner can take, and
 *      the choice goes back to 1.
 * A partner on any guard is therefore found within a window plus a round
 * trip, and two such choices facing each other over a remote channel meet
 * when one's window is open while the other tries. */

#include "../os/process_os.h"
#include "remote_internal.h"

#define WINDOW_MIN_S 0.001
#define WINDOW_MAX_S 0.008

static bool is_channel(const mp_guard *g) {
  return g->kind == MP_GUARD_INPUT || g->kind == MP_GUARD_OUTPUT;
}

bool mp__csp_remote_guarded(const mp_guard *guards, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (is_channel(&guards[i]) && guards[i].end != NULL &&
        guards[i].end->remote != NULL)
      return true;
  return false;
}

static int validate(mp_guard *g, size_t n, int *skip, int *timeout,
                    double *seconds) {
  int rc = mp__csp_guards_check(g, n, skip, timeout, seconds);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < n; i++)
    if (is_channel(&g[i]) && g[i].end->remote != NULL)
      for (size_t j = 0; j < i; j++)
        if (is_channel(&g[j]) && g[j].end == g[i].end)
          return mp__fail(MP_EINVAL, "guards %zu and %zu use the same "
                                     "remote end",
                          j, i);
  return 0;
}

static void mark_busy(const mp_guard *g) {
  mp__csp_set_busy(g->end, g->kind == MP_GUARD_OUTPUT ? CSP_BUSY_WRITE
                                                      : CSP_BUSY_READ);
}

/* attempt runs guard g's read or write with timeout (0: try once).
 * Returns 0 when it completed, else the call's error. */
static int attempt(mp_guard *g, double timeout) {
  if (g->end->remote != NULL) {
    size_t got = 0;
    int rc = mp__csp_remote_op(g->end,
                               g->kind == MP_GUARD_INPUT ? CSP_DIR_READ
                                                         : CSP_DIR_WRITE,
                               g->buf, g->cap, g->msg, g->len, timeout, &got);
    if (rc == 0 && g->kind == MP_GUARD_INPUT)
      g->received = got;
    return rc;
  }
  int rc;
  if (g->kind == MP_GUARD_INPUT) {
    ssize_t n = mp_channel_read(g->end, g->buf, g->cap, timeout);
    rc = n < 0 ? (int)n : 0;
    if (n >= 0)
      g->received = (size_t)n;
  } else {
    rc = mp_channel_write(g->end, g->msg, g->len, timeout);
  }
  /* The call marked the end idle on its way out; the choice goes on. */
  mark_busy(g);
  return rc;
}

static int run(mp_guard *g, size_t n, const unsigned *order, int skip,
               int timeout, mp__deadline d) {
  unsigned remote[CSP_MAX_GUARDS], nremote = 0, nchannel = 0, turn = 0;
  for (size_t k = 0; k < n; k++) {
    unsigned i = order[k];
    if (!is_channel(&g[i]))
      continue;
    nchannel++;
    if (g[i].end->remote != NULL)
      remote[nremote++] = i;
  }
  double window = WINDOW_MIN_S;
  for (;;) {
    for (size_t k = 0; k < n; k++) {
      unsigned i = order[k];
      if (!is_channel(&g[i]))
        continue;
      int rc = attempt(&g[i], 0);
      if (rc == 0)
        return (int)i;
      if (rc != MP_EAGAIN)
        return rc;
    }
    if (skip >= 0)
      return skip;
    if (mp__deadline_expired(d))
      return timeout;
    double left = mp__deadline_forever(d)
                      ? MP_FOREVER
                      : (double)mp__deadline_remaining_ns(d) / 1e9;
    unsigned i = remote[turn++ % nremote];
    double wait = left;
    if (nchannel > 1 && (left < 0 || left > window))
      wait = window;
    int rc = attempt(&g[i], wait);
    if (rc == 0)
      return (int)i;
    if (rc != MP_ETIMEDOUT && rc != MP_EAGAIN)
      return rc;
    if (wait == left && timeout >= 0)
      return timeout;
    window = window * 2 > WINDOW_MAX_S ? WINDOW_MAX_S : window * 2;
  }
}

int mp__csp_remote_select(mp_guard *guards, size_t n, int mode) {
  int skip, timeout;
  double seconds;
  int rc = validate(guards, n, &skip, &timeout, &seconds);
  if (rc != 0)
    return rc;
  unsigned order[CSP_MAX_GUARDS];
  unsigned start = mp__csp_select_start(mode, n);
  for (size_t k = 0; k < n; k++)
    order[k] = (unsigned)((start + k) % n);
  mp__deadline d = mp__deadline_from_timeout(seconds);
  /* A local end is marked busy for the whole choice, as a local choice
   * marks it, so that a death inside it is told apart from one while
   * idle (the attempts mark it only while they run). */
  for (size_t i = 0; i < n; i++)
    if (is_channel(&guards[i]) && guards[i].end->remote == NULL)
      mark_busy(&guards[i]);
  rc = run(guards, n, order, skip, timeout, d);
  for (size_t i = 0; i < n; i++)
    if (is_channel(&guards[i]) && guards[i].end->remote == NULL)
      mp__csp_set_busy(guards[i].end, CSP_BUSY_IDLE);
  mp__csp_select_done(mode, rc);
  return rc;
}
