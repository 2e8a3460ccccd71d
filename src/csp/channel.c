/* channel.c - the blocking read and write of a channel end: try now, else
 * post an offer and wait for a partner to complete it (offer.c), starting
 * over when a partner died half way. The end records that its holder is
 * reading or writing for the time of the call, so that a death inside it
 * is told apart from a death while idle (segment.c's sweep). */
#include <math.h>

#include "csp_internal.h"

static int run_single(csp_op *op, double timeout) {
  if (isnan(timeout))
    return mp__fail(MP_EINVAL, "timeout is NaN");
  mp__deadline d = mp__deadline_from_timeout(timeout);
  op->d = d;
  for (;;) {
    int rc = mp__csp_attempt(op, d.poll ? CSP_ATTEMPT_TRY : CSP_ATTEMPT_POST,
                             false);
    if (rc == MP_EAGAIN && d.poll)
      return MP_EAGAIN;
    if (rc != 1)
      return rc;
    rc = mp__csp_wait_single(op, d);
    if (rc != 1)
      return rc;
    if (mp__deadline_expired(d))
      return mp__deadline_error(d);
  }
}

int mp_channel_write(mp_channel_end *w, const void *msg, size_t len,
                     double timeout) {
  if (w != NULL && w->remote != NULL)
    return mp__csp_remote_write(w, msg, len, timeout);
  int rc = mp__csp_end_check(w, CSP_END_WRITER);
  if (rc != 0)
    return rc;
  if (msg == NULL && len > 0)
    return mp__fail(MP_EINVAL, "msg is NULL");
  if (len > w->ch->msg_max)
    return mp__fail(MP_ETOOBIG, "message of %zu bytes, msg_max is %u", len,
                    w->ch->msg_max);
  csp_op op = {.end = w, .dir = CSP_DIR_WRITE, .msg = msg, .len = len,
               .slot = -1};
  mp__csp_set_busy(w, CSP_BUSY_WRITE);
  rc = run_single(&op, timeout);
  mp__csp_set_busy(w, CSP_BUSY_IDLE);
  return rc;
}

ssize_t mp_channel_read(mp_channel_end *r, void *buf, size_t cap,
                        double timeout) {
  if (r != NULL && r->remote != NULL)
    return mp__csp_remote_read(r, buf, cap, timeout);
  int rc = mp__csp_end_check(r, CSP_END_READER);
  if (rc != 0)
    return rc;
  if (buf == NULL && cap > 0)
    return mp__fail(MP_EINVAL, "buf is NULL");
  csp_op op = {.end = r, .dir = CSP_DIR_READ, .buf = buf, .cap = cap,
               .slot = -1};
  mp__csp_set_busy(r, CSP_BUSY_READ);
  rc = run_single(&op, timeout);
  mp__csp_set_busy(r, CSP_BUSY_IDLE);
  return rc != 0 ? rc : (ssize_t)op.received;
}
