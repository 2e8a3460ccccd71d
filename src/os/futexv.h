/* os/futexv.h - waiting on several 32-bit words at once: the sleep of a
 * CSP choice whose offers sit in several channels, each with its own bell
 * word. Internal to the library (not installed). The Linux implementation
 * is src/os/linux_futexv.c (futex_waitv, Linux 5.16 and later, with a
 * fallback in short slices on older kernels). */
#ifndef MP_OS_FUTEXV_H
#define MP_OS_FUTEXV_H

#include <stdint.h>

/* The most words one call watches. */
#define MP__OS_FUTEXV_MAX 128

/* mp__os_futex_waitv sleeps until one of the n words (shared between
 * processes) differs from its expected value, a wake-up on one of them, a
 * signal, or the absolute CLOCK_MONOTONIC deadline abs_ns (INT64_MAX:
 * none). It may return early (spuriously): callers look at the words again.
 * n is at most MP__OS_FUTEXV_MAX; more are not watched. Where the system
 * lacks futex_waitv it sleeps on the first word in slices of a millisecond
 * and looks at the others between slices. */
void mp__os_futex_waitv(uint32_t *const *words, const uint32_t *expect, int n,
                        int64_t abs_ns);

#endif
