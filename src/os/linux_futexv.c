/* linux_futexv.c - the Linux implementation of os/futexv.h: waiting on
 * several shared words at once with futex_waitv (5.16 and later). Where
 * the system lacks it (ENOSYS, remembered for the process), the waiter
 * sleeps on the first word in slices of a millisecond and looks at the
 * others between slices. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../internal.h"
#include "futexv.h"

#ifndef __NR_futex_waitv
#define __NR_futex_waitv 449
#endif
#ifndef FUTEX_WAITV_MAX
#define FUTEX_WAITV_MAX 128
#endif

_Static_assert(MP__OS_FUTEXV_MAX <= FUTEX_WAITV_MAX,
               "futex_waitv takes at most FUTEX_WAITV_MAX words");

static _Atomic int no_waitv;

void mp__os_futex_waitv(uint32_t *const *words, const uint32_t *expect, int n,
                        int64_t abs_ns) {
  if (n <= 0)
    return;
  if (n > MP__OS_FUTEXV_MAX)
    n = MP__OS_FUTEXV_MAX;
  if (!atomic_load_explicit(&no_waitv, memory_order_relaxed)) {
    struct futex_waitv v[MP__OS_FUTEXV_MAX];
    for (int i = 0; i < n; i++) {
      v[i].val = expect[i];
      v[i].uaddr = (uint64_t)(uintptr_t)words[i];
      v[i].flags = FUTEX_32; /* shared: no FUTEX_PRIVATE_FLAG */
      v[i].__reserved = 0;
    }
    struct timespec ts, *tsp = NULL;
    if (abs_ns != INT64_MAX) {
      ts.tv_sec = abs_ns / 1000000000;
      ts.tv_nsec = abs_ns % 1000000000;
      tsp = &ts;
    }
    long rc = syscall(__NR_futex_waitv, v, (unsigned)n, 0, tsp,
                      CLOCK_MONOTONIC);
    if (rc >= 0 || errno != ENOSYS)
      return;
    atomic_store_explicit(&no_waitv, 1, memory_order_relaxed);
  }
  /* Fallback: one word, short slices. */
  int64_t slice = mp__os_now_ns() + 1000000;
  for (int i = 0; i < n; i++)
    if (__atomic_load_n(words[i], __ATOMIC_ACQUIRE) != expect[i])
      return;
  mp__os_futex_wait(words[0], expect[0], abs_ns < slice ? abs_ns : slice,
                    true);
}
