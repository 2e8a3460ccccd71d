/* connection_internal.h - what wait.c needs to know of a connection end,
 * without seeing its fields, and the hooks the tests of the spin use. */
#ifndef MP_CONNECTION_INTERNAL_H
#define MP_CONNECTION_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "multiproc/connection.h"

/* mp__connection_wait_fd returns the descriptor to poll for input on c,
 * and sets *ready_now when a receive would return at once whatever the
 * descriptor says (a refused message waits, or the stream is broken).
 * Returns MP_EINVAL (NULL), MP_ESTATE (closed), MP_EBADF (send-only). */
int mp__connection_wait_fd(const mp_connection *c, bool *ready_now);

/* For the tests (which link the static library; none of this is
 * exported): the last phase a wait for the last message on an end entered
 * - none (its input was there at once), spin, yield, or block.
 * A wait reports each phase it enters to the hook set with
 * mp__connection_set_spin_hook (NULL: none), which a test uses to make
 * input arrive in a chosen phase. The hook is process-wide and not
 * thread-safe to change while connections wait. */
enum {
  MP__SPIN_NONE = 0,
  MP__SPIN_SPIN = 1,
  MP__SPIN_YIELD = 2,
  MP__SPIN_BLOCK = 3
};
void mp__connection_set_spin_hook(void (*hook)(mp_connection *c,
                                               int phase));
int mp__connection_last_phase(const mp_connection *c);
/* mp__connection_detect_contention(false) makes waits ignore signs of
 * oversubscribed CPUs (a preempted spin, a yield that ran another thread,
 * involuntary switches), so that the tests of the phases are
 * deterministic on a loaded machine; mp__connection_backing_off tells
 * whether c stopped spinning for such a sign. */
void mp__connection_detect_contention(bool on);
bool mp__connection_backing_off(const mp_connection *c);
/* The budget the next wait on c spins for, in ns (it adapts). */
int64_t mp__connection_spin_budget_ns(const mp_connection *c);

#endif
