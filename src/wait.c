/* wait.c - mp_connection_wait, Python's multiprocessing.connection.wait:
 * waiting up to a timeout for any of several connections, queues, child
 * processes and descriptors to be ready, and telling which are.
 *
 * DESIGN
 * Connections, processes and descriptors are, or have, a descriptor: a
 * connection its stream, a child process its sentinel (a pidfd, or a pipe
 * the child holds open). One ppoll(2) over all of them, against the one
 * deadline made on entry, does the waiting; a signal restarts it with what
 * is left of that deadline. Some readiness is not visible to poll and is
 * checked before each poll:
 *   - a connection that holds a refused message, or whose stream is
 *     broken, is ready at once (a receive returns without reading);
 *   - a queue has no descriptor at all. Its readers sleep on a futex word
 *     in shared memory, and a futex cannot be waited on in the same call
 *     as descriptors; nor can a queue carry one (an eventfd or a pipe would
 *     not reach unrelated processes that open the queue by name, and every
 *     put would pay a system call to signal it). So the queues are asked
 *     with mp_queue_poll before each poll, and the poll is cut into slices
 *     that start at QUEUE_SLICE_MIN_NS and double up to QUEUE_SLICE_MAX_NS:
 *     a message that arrives while the wait is young is seen within tens
 *     of microseconds, an idle wait costs at most 200 wake-ups a second;
 *   - a child whose sentinel is an exit pipe that a grandchild inherited
 *     and still holds would never look ended to poll. The child itself is
 *     asked (mp_process_is_alive) before each poll, and while a process is
 *     in the list the poll is cut into slices of PROCESS_SLICE_NS so that
 *     this question is asked again. With a pidfd (Linux 5.3 on) the
 *     descriptor alone is exact and the slices only cost a wake-up.
 * Entries that are ready at once are polled with a zero timeout, so the
 * caller still learns about every other entry that is ready too. */
#define _GNU_SOURCE
#include <limits.h>
#include <string.h>

#include "connection_internal.h"
#include "internal.h"
#include "net/net_internal.h"
#include "os/io.h"

/* How often a wait that includes processes asks them directly. */
#define PROCESS_SLICE_NS (100 * 1000 * 1000)
/* The slices of a wait that includes queues. */
#define QUEUE_SLICE_MIN_NS (50 * 1000)
#define QUEUE_SLICE_MAX_NS (5 * 1000 * 1000)
/* Lists up to this long need no allocation. */
#define STACK_ENTRIES 16

/* entry_fd stores in *fd the descriptor to poll for w (-1 for none, which
 * ppoll skips) and in *ready_now whether w is ready whatever poll says.
 * Returns 0, or a negative code for an invalid entry. */
static int entry_fd(const mp_waitable *w, int *fd, bool *ready_now) {
  *ready_now = false;
  *fd = -1;
  if (w->type != MP_WAIT_FD && w->object == NULL)
    return mp__fail(MP_EINVAL, "an entry has object NULL");
  /* int: MP_WAIT_LISTENER is declared beside the listener, not in the
   * enum. */
  switch ((int)w->type) {
  case MP_WAIT_LISTENER: {
    int r = mp__listener_wait_fd((const mp_listener *)w->object, ready_now);
    if (r < 0)
      return r;
    *fd = r;
    return 0;
  }
  case MP_WAIT_CONNECTION: {
    int r = mp__connection_wait_fd((const mp_connection *)w->object,
                                   ready_now);
    if (r < 0)
      return r;
    *fd = r;
    return 0;
  }
  case MP_WAIT_PROCESS: {
    mp_process *p = (mp_process *)w->object;
    int r = mp_process_sentinel(p);
    if (r < 0)
      return MP_ESTATE;
    /* 0 means ended (it was started: it has a sentinel); a negative code
     * (a copy of another process's object) leaves it to the sentinel. */
    *ready_now = mp_process_is_alive(p) == 0;
    *fd = r;
    return 0;
  }
  case MP_WAIT_FD:
    if (w->fd < 0)
      return mp__fail(MP_EINVAL, "an MP_WAIT_FD entry has a negative fd");
    *fd = w->fd;
    return 0;
  case MP_WAIT_QUEUE: {
    int r = mp_queue_poll((mp_queue *)w->object);
    if (r < 0)
      return r;
    *ready_now = r == 1;
    return 0;
  }
  }
  return mp__fail(MP_EINVAL, "an entry has an unknown type");
}

ssize_t mp_connection_wait(const mp_waitable *objects, size_t n,
                           double timeout, size_t *ready) {
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  mp__deadline d = mp__deadline_from_timeout(timeout);
  if ((objects == NULL && n > 0) || n > INT_MAX)
    return mp__fail(MP_EINVAL, "objects is NULL with n > 0, or n is over "
                               "INT_MAX");
  struct pollfd stack_fds[STACK_ENTRIES];
  bool stack_now[STACK_ENTRIES];
  struct pollfd *fds = stack_fds;
  bool *now = stack_now;
  void *heap = NULL;
  if (n > STACK_ENTRIES) {
    heap = mp__alloc(n * (sizeof *fds + sizeof *now));
    if (heap == NULL)
      return MP_ENOMEM;
    fds = heap;
    now = (bool *)(fds + n);
  }
  bool has_process = false, has_queue = false;
  int64_t queue_slice = QUEUE_SLICE_MIN_NS;
  ssize_t count = 0;
  for (;;) {
    bool any_now = false;
    for (size_t i = 0; i < n; i++) {
      int fd, rc = entry_fd(&objects[i], &fd, &now[i]);
      if (rc != 0) {
        count = rc;
        goto out;
      }
      fds[i] = (struct pollfd){.fd = fd, .events = POLLIN};
      any_now |= now[i];
      has_process |= objects[i].type == MP_WAIT_PROCESS;
      has_queue |= objects[i].type == MP_WAIT_QUEUE;
    }
    int64_t until = d.ns;
    if (any_now) {
      until = mp__os_now_ns(); /* poll once, to report the others too */
    } else if (has_queue) {
      until = mp__deadline_min_slice(d, queue_slice).ns;
      queue_slice = MP__MIN(2 * queue_slice, QUEUE_SLICE_MAX_NS);
    } else if (has_process) {
      until = mp__deadline_min_slice(d, PROCESS_SLICE_NS).ns;
    }
    int r = mp__os_poll(fds, n, until);
    if (r < 0) {
      count = r;
      goto out;
    }
    for (size_t i = 0; i < n; i++) {
      if (fds[i].revents & POLLNVAL) {
        count = MP_EBADF;
        goto out;
      }
      if (now[i] || (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        if (ready != NULL)
          ready[count] = i;
        count++;
      }
    }
    if (count > 0 || d.poll || mp__deadline_expired(d))
      goto out;
  }
out:
  mp__free(heap);
  return count;
}
