/* deadline.c - timeouts outside, deadlines inside: a caller's timeout in
 * seconds becomes one absolute monotonic deadline that every retry (EINTR,
 * spurious wake, lock-then-wait) measures against. */
#include <math.h>

#include "internal.h"

mp__deadline mp__deadline_from_timeout(double timeout) {
  mp__deadline d = {.ns = INT64_MAX, .poll = false};
  if (isnan(timeout) || timeout < 0)
    return d;
  if (timeout == 0) {
    d.ns = mp__os_now_ns();
    d.poll = true;
    return d;
  }
  /* Beyond ~292 years the sum would overflow: treat it as forever. */
  if (timeout >= 9.0e9)
    return d;
  d.ns = mp__os_now_ns() + (int64_t)(timeout * 1e9);
  return d;
}

bool mp__deadline_forever(mp__deadline d) { return d.ns == INT64_MAX; }

bool mp__deadline_expired(mp__deadline d) {
  return d.ns != INT64_MAX && mp__os_now_ns() >= d.ns;
}

int64_t mp__deadline_remaining_ns(mp__deadline d) {
  if (d.ns == INT64_MAX)
    return INT64_MAX;
  int64_t left = d.ns - mp__os_now_ns();
  return left > 0 ? left : 0;
}

mp__deadline mp__deadline_min_slice(mp__deadline d, int64_t slice_ns) {
  int64_t slice_end = mp__os_now_ns() + slice_ns;
  if (slice_end < d.ns)
    d.ns = slice_end;
  return d;
}

int mp__deadline_error(mp__deadline d) {
  return d.poll ? MP_EAGAIN : MP_ETIMEDOUT;
}

int mp__timeout_check(double timeout) {
  if (isnan(timeout))
    return mp__fail(MP_EINVAL, "timeout is NaN");
  return 0;
}
