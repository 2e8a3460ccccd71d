/* connection_internal.h - what wait.c needs to know of a connection end,
 * without seeing its fields. */
#ifndef MP_CONNECTION_INTERNAL_H
#define MP_CONNECTION_INTERNAL_H

#include <stdbool.h>

#include "multiproc/connection.h"

/* mp__connection_wait_fd returns the descriptor to poll for input on c,
 * and sets *ready_now when a receive would return at once whatever the
 * descriptor says (a refused message waits, or the stream is broken).
 * Returns MP_EINVAL (NULL), MP_ESTATE (closed), MP_EBADF (send-only). */
int mp__connection_wait_fd(const mp_connection *c, bool *ready_now);

#endif
