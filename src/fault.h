/* fault.h - fault points for the tests: named moments inside the library
 * where a test can run code of its own (SIGKILL the process, scribble on
 * shared memory) exactly then, to prove what a crash or a hostile writer
 * at that moment does, deterministically rather than by racing for it.
 *
 * Like the allocation-failure injection (mp__alloc_fail_after), the hook
 * is in every build, since the tests link the very objects users get; no
 * library code ever sets it, and a point costs one relaxed load and a
 * branch not taken. The hook runs in the thread that reaches the point,
 * possibly with library locks held: it may kill the process or write
 * memory, never call the library. */
#ifndef MP_FAULT_H
#define MP_FAULT_H

#include <stdatomic.h>
#include <stddef.h>

typedef enum mp__fault_point {
  /* A named segment created by mp_shared_memory_new exists under its name
   * and the call has not returned yet (arg: the name, const char *). */
  MP__FAULT_SHM_CREATED = 1,
  /* mp__tracker_create: the segment is registered with the tracker and
   * has no name yet (arg: the name it is about to get). */
  MP__FAULT_SHM_UNNAMED,
  /* A LIFO/priority get copied a slot's header and checked it, and has not
   * yet read the payload (arg: the slot in shared memory, mp__qslot *). */
  MP__FAULT_HEAP_GET_CHECKED,
  /* A queue lock's bias owner found its bias word (owner) and active 0 and
   * has not yet stored active = 1: the step a revoker may overtake (arg:
   * the lock, mp__qlock *). Reached only on a handle whose lock_fault is
   * set (queue_internal.h), so that the fast path pays a load of a line it
   * reads anyway. */
  MP__FAULT_QLOCK_BIAS_ENTER,
  /* A producer owns a kept segment's slot (its word says busy) and is
   * about to move the segment from the slot's name to its message's (arg:
   * the two names, const char *[2]); a hook that takes the second name
   * makes the move fail. */
  MP__FAULT_SPARE_MOVE,
  /* A forked child's atfork handler is about to enter the child in each
   * queue's table of users (arg: NULL); a hook that sleeps here is a
   * child that runs late. */
  MP__FAULT_QUEUE_CHILD_ENTER,
} mp__fault_point;

typedef void (*mp__fault_fn)(mp__fault_point point, void *arg);

/* mp__fault_set installs fn as the hook of every fault point (NULL: none).
 * For the tests only. */
void mp__fault_set(mp__fault_fn fn);

extern _Atomic(mp__fault_fn) mp__fault_hook;

/* mp__fault marks a fault point: it calls the hook, if a test set one. */
static inline void mp__fault(mp__fault_point point, void *arg) {
  mp__fault_fn fn = atomic_load_explicit(&mp__fault_hook, memory_order_relaxed);
  if (fn != NULL)
    fn(point, arg);
}

#endif
