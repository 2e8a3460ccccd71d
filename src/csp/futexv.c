/* futexv.c - waiting on several shared words at once, for a choice whose
 * offers sit in several channels: Linux's futex_waitv (5.16 and later).
 * Where the system lacks it, the waiter sleeps on the first word in slices
 * of a millisecond and looks at the others between slices. This is the
 * one Linux-specific file of src/csp/; it belongs in src/os/ once that
 * interface grows a vectored wait. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "csp_internal.h"

#ifndef __NR_futex_waitv
#define __NR_futex_waitv 449
#endif

static _Atomic int no_waitv;

void mp__csp_futex_waitv(_Atomic uint32_t **words, const uint32_t *expect,
                         int n, int64_t abs_ns) {
  if (n <= 0)
    return;
  if (!atomic_load_explicit(&no_waitv, memory_order_relaxed) &&
      n <= FUTEX_WAITV_MAX) {
    struct futex_waitv v[CSP_MAX_GUARDS];
    int m = n < CSP_MAX_GUARDS ? n : CSP_MAX_GUARDS;
    for (int i = 0; i < m; i++) {
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
    long rc = syscall(__NR_futex_waitv, v, (unsigned)m, 0, tsp,
                      CLOCK_MONOTONIC);
    if (rc >= 0 || errno != ENOSYS)
      return;
    atomic_store_explicit(&no_waitv, 1, memory_order_relaxed);
  }
  /* Fallback: one word, short slices. */
  int64_t slice = mp__os_now_ns() + 1000000;
  for (int i = 0; i < n; i++)
    if (atomic_load_explicit(words[i], memory_order_acquire) != expect[i])
      return;
  mp__os_futex_wait((uint32_t *)words[0], expect[0],
                    abs_ns < slice ? abs_ns : slice, true);
}
