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
/* The caller's process id, without a system call after the first. */
pid_t mp__os_getpid(void);

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

/* ---- processes: liveness -------------------------------------------------
 * The one judgement of "is that process (or thread) still there?" that
 * every robust object uses. Only certain evidence says gone: unknown means
 * alive. An id is a number in the caller's PID namespace; an object shared
 * with other namespaces must only judge ids recorded by processes of the
 * caller's own (see mp__os_pidns).
 *
 * mp__os_liveness answers MP__LIVE_GONE when kill(id, 0) says ESRCH, or
 * when the caller's own /proc shows the id as a zombie or, with start
 * nonzero, as started at another time (compared on the low start_bits
 * bits of the start time in clock ticks: the id was reused).
 * MP__LIVE_ALIVE when kill succeeds or says EPERM and /proc agrees;
 * MP__LIVE_UNKNOWN when it cannot be told (no /proc, a /proc of another
 * PID namespace, hidepid, an unreadable entry): the caller treats that as
 * alive. */
enum { MP__LIVE_GONE = 0, MP__LIVE_ALIVE = 1, MP__LIVE_UNKNOWN = 2 };
int mp__os_liveness(pid_t id, uint64_t start, unsigned start_bits);

/* mp__os_pid_alive: mp__os_liveness(pid, 0, 0) != MP__LIVE_GONE. */
bool mp__os_pid_alive(pid_t pid);

/* mp__os_proc_ok says whether /proc is mounted and shows the caller's own
 * PID namespace (so /proc/<id> means the id the caller means). */
bool mp__os_proc_ok(void);

/* mp__os_pidns returns an identity of the caller's PID namespace (the
 * inode of /proc/self/ns/pid), or 0 when it cannot be known (no /proc of
 * the caller's own namespace). Not cached: call it on slow paths. */
uint64_t mp__os_pidns(void);

/* ---- memory ---------------------------------------------------------------
 * mp__os_same_mapping says whether [b, b + len) lies in the same mapping
 * of the caller's address space as a: 1 yes, 0 no, a negative code when it
 * cannot be told (no /proc). Slow (it reads the list of mappings): cache
 * the answer. */
int mp__os_same_mapping(const void *a, const void *b, size_t len);

/* mp__os_maps_object says whether process (or thread) id pid, of the
 * caller's PID namespace, maps the same object (file or shared memory) as
 * the caller has at addr: 1 yes, 0 no (it exec'd, or unmapped it), a
 * negative code when it cannot be told. Slow: reads both lists. */
int mp__os_maps_object(pid_t pid, const void *addr);

/* mp__os_anyone_maps says whether some process other than the caller,
 * whose memory map the caller may read, maps the file of device dev and
 * inode ino: 1 yes, 0 none found (one the caller may not read is not
 * looked at), a negative code when /proc is not the caller's. Slow: reads
 * every process's map. */
int mp__os_anyone_maps(uint64_t dev, uint64_t ino);

/* mp__os_unmap_shared unmaps every writable shared mapping of the caller
 * (a daemon forked from a program: what it inherited would keep those
 * segments' memory, unlinked or not, and make it look like their user).
 * Only open, read, close and munmap. Returns 0 or a negative code. */
int mp__os_unmap_shared(void);

/* Random bytes from the kernel; returns 0 or -errno. */
int mp__os_random(void *buf, size_t len);

#endif
