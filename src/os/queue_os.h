/* os/queue_os.h - the platform interface the queue needs beyond os/os.h:
 * an asymmetric memory barrier (so the queue's fast path needs no fence of
 * its own) and mappings that are read-only or populated up front; the pause
 * for spin loops is os/cpu.h's. A port implements these; the Linux
 * implementation is src/os/linux_queue.c. */
#ifndef MP_OS_QUEUE_H
#define MP_OS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cpu.h" /* mp__os_cpu_relax, for the queue's spin loops */

/* ---- asymmetric barrier -------------------------------------------------
 * The queue pairs a cheap side (every put and get: a store, then a load of
 * a waiter flag, with no fence between) with a rare side (a waiter about to
 * sleep: a store of the flag, then mp__os_barrier_heavy, then a load). The
 * heavy barrier makes every thread of every registered process execute a
 * full memory barrier, so one side always sees the other's store.
 * mp__os_barrier_register registers the calling process (idempotent, and
 * to be repeated in a forked child); it returns 0, or a negative code when
 * the system has no such barrier: that process must then fence on the
 * cheap side itself. */
int mp__os_barrier_register(void);
/* mp__os_barrier_heavy returns once every running thread of every
 * registered process has executed a full memory barrier. Returns 0 or a
 * negative code (the caller then falls back to a fence of its own, which
 * is only correct if the cheap sides fence too). */
int mp__os_barrier_heavy(void);

/* ---- mappings ----------------------------------------------------------
 * mp__os_map_fd maps size bytes of fd shared: writable or read-only, and
 * with populate, with its pages mapped in one go rather than on first
 * touch. Returns 0 and the address, or -errno. */
int mp__os_map_fd(int fd, size_t size, bool writable, bool populate,
                  void **out);

/* mp__os_reserve gives the first size bytes of fd (a shared memory
 * segment) their memory now, so that writing them through a mapping can
 * never fault for lack of it (SIGBUS on a full /dev/shm). Returns 0,
 * MP_ENOSPC, or -errno; 0 where the system cannot reserve (the caller is
 * then as safe as it was without). */
int mp__os_reserve(int fd, size_t size);

/* mp__os_shm_rename gives segment old (without '/') the name new, which
 * must not exist. Returns 0, MP_ENOENT (no old), MP_EEXIST, -errno. */
int mp__os_shm_rename(const char *old_name, const char *new_name);

/* ---- threads ------------------------------------------------------------
 * mp__os_thread_start stores when thread (or process) tid started, in
 * clock ticks since boot: with its id it names one thread for good, even
 * after the id is reused. Returns 0 while it runs, MP_ESRCH when it is
 * gone (or a zombie), another negative code when that cannot be told now
 * (no /proc of the caller's PID namespace: MP_ENOSYS); the caller must
 * then assume it runs. Liveness itself is mp__os_liveness (os/os.h). */
int mp__os_thread_start(pid_t tid, uint64_t *start);

#endif
