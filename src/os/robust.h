/* os/robust.h - what the sync objects need to know about a process-shared
 * robust mutex beyond POSIX: who holds it, and whether its holder died.
 * POSIX answers neither without acquiring the mutex, so a port reads the
 * C library's mutex word. The Linux/glibc implementation is
 * src/os/linux_robust.c. */
#ifndef MP_OS_ROBUST_H
#define MP_OS_ROBUST_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

/* mp__os_robust_init initialises *m as a process-shared, robust,
 * error-checking mutex. Returns 0 or a negative MP_E* code. */
int mp__os_robust_init(pthread_mutex_t *m);

/* mp__os_robust_owner returns the kernel thread id of the thread that holds
 * *m, or 0 when no live thread holds it (free, or its holder died and no
 * one has acquired it since). It never blocks and never changes *m; the
 * answer may be stale by the time the caller looks at it, except when it is
 * the caller's own id (only the caller can change that). */
pid_t mp__os_robust_owner(const pthread_mutex_t *m);

/* mp__os_robust_owner_died returns true when the last holder of *m died
 * holding it and no thread has acquired it since: the next acquirer will
 * get EOWNERDEAD. */
bool mp__os_robust_owner_died(const pthread_mutex_t *m);

#endif
