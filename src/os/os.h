/* os/os.h - the platform interface: everything that knows the operating
 * system. A port implements these; the concept files call nothing else
 * that is Linux-specific. The Linux implementation is src/os/linux_*.c. */
#ifndef MP_OS_H
#define MP_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic clock in nanoseconds. */
int64_t mp__os_now_ns(void);

/* The caller's kernel thread id. */
pid_t mp__os_gettid(void);

/* ---- futex --------------------------------------------------------------
 * mp__os_futex_wait sleeps while *addr == expected, until woken or the
 * absolute monotonic deadline abs_ns (INT64_MAX: none). Returns 0 (woken,
 * maybe spuriously), MP_EAGAIN (the value differed), MP_ETIMEDOUT,
 * MP_EINTR. shared: the word may be in memory shared between processes. */
int mp__os_futex_wait(uint32_t *addr, uint32_t expected, int64_t abs_ns,
                      bool shared);
/* mp__os_futex_wake wakes up to n waiters; returns how many it woke. */
int mp__os_futex_wake(uint32_t *addr, int n, bool shared);

/* ---- shared memory ------------------------------------------------------
 * Names are given without the leading '/', which these add. */
int mp__os_shm_create(const char *name, size_t size, int *fd_out);
int mp__os_shm_open(const char *name, int *fd_out, size_t *size_out);
int mp__os_shm_unlink(const char *name);
/* mp__os_map_shared maps size bytes of fd (or anonymous shared memory when
 * fd < 0). Returns 0 and the address, or -errno. */
int mp__os_map_shared(int fd, size_t size, void **out);
void mp__os_unmap(void *addr, size_t size);
size_t mp__os_page_size(void);

/* ---- processes ----------------------------------------------------------
 * mp__os_pid_alive returns true unless the process (or thread id) is known
 * to be gone: a zombie counts as gone. */
bool mp__os_pid_alive(pid_t pid);

/* Random bytes from the kernel; returns 0 or -errno. */
int mp__os_random(void *buf, size_t len);

#endif
