/* guard_check.c - the checks a choice makes of its guards before it runs,
 * the same for a local choice (select.c) and one with remote guards
 * (remote_select.c): each end is of the right kind, buffers and messages
 * are given, a message fits its channel, at most one timeout and one skip
 * guard, no unknown kind. */
#include <math.h>

#include "csp_internal.h"

int mp__csp_guards_check(const mp_guard *g, size_t n, int *skip,
                         int *timeout, double *seconds) {
  *skip = *timeout = -1;
  *seconds = MP_FOREVER;
  for (size_t i = 0; i < n; i++) {
    int rc;
    switch (g[i].kind) {
    case MP_GUARD_INPUT:
      if ((rc = mp__csp_end_check(g[i].end, CSP_END_READER)) != 0)
        return rc;
      if (g[i].buf == NULL && g[i].cap > 0)
        return mp__fail(MP_EINVAL, "guard %zu: buf is NULL", i);
      break;
    case MP_GUARD_OUTPUT:
      if ((rc = mp__csp_end_check(g[i].end, CSP_END_WRITER)) != 0)
        return rc;
      if (g[i].msg == NULL && g[i].len > 0)
        return mp__fail(MP_EINVAL, "guard %zu: msg is NULL", i);
      if (g[i].len > g[i].end->ch->msg_max)
        return mp__fail(MP_ETOOBIG, "guard %zu: message of %zu bytes, "
                                    "msg_max is %u",
                        i, g[i].len, g[i].end->ch->msg_max);
      break;
    case MP_GUARD_TIMEOUT:
      if (*timeout >= 0)
        return mp__fail(MP_EINVAL, "two timeout guards");
      if (isnan(g[i].seconds) || g[i].seconds < 0)
        return mp__fail(MP_EINVAL, "guard %zu: timeout is NaN or negative",
                        i);
      *timeout = (int)i;
      *seconds = g[i].seconds;
      break;
    case MP_GUARD_SKIP:
      if (*skip >= 0)
        return mp__fail(MP_EINVAL, "two skip guards");
      *skip = (int)i;
      break;
    default:
      return mp__fail(MP_EINVAL, "guard %zu: unknown kind %d", i,
                      (int)g[i].kind);
    }
  }
  return 0;
}
