/* linux_robust.c - the Linux implementation of os/robust.h. glibc keeps a
 * robust mutex's state in one futex word shared with the kernel: the low 30
 * bits hold the owner's thread id, bit 30 (FUTEX_OWNER_DIED) is set by the
 * kernel when the owner dies holding it, bit 31 (FUTEX_WAITERS) marks
 * sleepers. That layout is the kernel's robust-futex ABI, so reading it is
 * stable; where the word sits inside pthread_mutex_t is glibc's. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>

#include "../internal.h"
#include "robust.h"

#ifndef __GLIBC__
#error                                                                         \
    "linux_robust.c reads glibc's pthread_mutex_t; port it for this C library"
#endif

static uint32_t mutex_word(const pthread_mutex_t *m) {
  /* Relaxed: the callers only need some recent value, and a holder's own id
   * can only be put there or removed by the holder itself. */
  return __atomic_load_n((const uint32_t *)&m->__data.__lock, __ATOMIC_RELAXED);
}

int mp__os_robust_init(pthread_mutex_t *m) {
  pthread_mutexattr_t attr;
  int rc = pthread_mutexattr_init(&attr);
  if (rc != 0)
    return -rc;
  if ((rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED)) ||
      (rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST)) ||
      (rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK)) ||
      (rc = pthread_mutex_init(m, &attr))) {
    pthread_mutexattr_destroy(&attr);
    return -rc;
  }
  pthread_mutexattr_destroy(&attr);
  return 0;
}

pid_t mp__os_robust_owner(const pthread_mutex_t *m) {
  return (pid_t)(mutex_word(m) & FUTEX_TID_MASK);
}

bool mp__os_robust_owner_died(const pthread_mutex_t *m) {
  uint32_t w = mutex_word(m);
  return (w & FUTEX_OWNER_DIED) != 0 && (w & FUTEX_TID_MASK) == 0;
}
