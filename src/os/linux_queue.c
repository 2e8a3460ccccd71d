/* linux_queue.c - the Linux implementation of os/queue_os.h: membarrier(2)
 * for the asymmetric barrier, mmap with MAP_POPULATE for mappings made in
 * one go, fallocate to reserve a segment's memory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../internal.h"
#include "queue_os.h"

#ifdef SYS_membarrier
#include <linux/membarrier.h>
#endif

int mp__os_barrier_register(void) {
#if defined(SYS_membarrier)
  /* GLOBAL_EXPEDITED reaches the registered processes only: every process
   * that uses a queue registers, so a waiter's barrier reaches each
   * producer and consumer without disturbing the rest of the machine. */
  long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0);
  if (cmds < 0 || !(cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) ||
      !(cmds & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED))
    return MP_ENOSYS;
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0) != 0)
    return -errno;
  return 0;
#else
  return MP_ENOSYS;
#endif
}

int mp__os_barrier_heavy(void) {
#if defined(SYS_membarrier)
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0) != 0)
    return -errno;
  return 0;
#else
  return MP_ENOSYS;
#endif
}

int mp__os_map_fd(int fd, size_t size, bool writable, bool populate,
                  void **out) {
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  int flags = MAP_SHARED | (populate ? MAP_POPULATE : 0);
  void *p = mmap(NULL, size, prot, flags, fd, 0);
  if (p == MAP_FAILED)
    return -errno;
  *out = p;
  return 0;
}

int mp__os_reserve(int fd, size_t size) {
  int rc;
  do
    rc = fallocate(fd, 0, 0, (off_t)size);
  while (rc != 0 && errno == EINTR);
  if (rc == 0)
    return 0;
  if (errno == ENOSPC)
    return MP_ENOSPC;
  return errno == EOPNOTSUPP || errno == ENOSYS ? 0 : -errno;
}

int mp__os_shm_rename(const char *old_name, const char *new_name) {
  /* POSIX has no rename for shm_open names; on Linux they are files in
   * /dev/shm (what glibc's shm_open opens). */
  char from[NAME_MAX + 16], to[NAME_MAX + 16];
  if (snprintf(from, sizeof from, "/dev/shm/%s", old_name) >=
          (int)sizeof from ||
      snprintf(to, sizeof to, "/dev/shm/%s", new_name) >= (int)sizeof to)
    return MP_ENAMETOOLONG;
  if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) != 0)
    return -errno;
  return 0;
}

int mp__os_thread_start(pid_t tid, uint64_t *start) {
  if (tid <= 0)
    return MP_ESRCH;
  /* Another namespace's /proc would name another thread by that id. */
  if (!mp__os_proc_ok())
    return MP_ENOSYS;
  char path[64], buf[1024];
  /* /proc/<tid> resolves any thread id, not only a process's. */
  snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT || errno == ESRCH ? MP_ESRCH : -errno;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  int err = errno;
  close(fd);
  if (n <= 0)
    return n == 0 || err == ESRCH ? MP_ESRCH : -err;
  buf[n] = '\0';
  /* The state is field 3 and the start time field 22, counted after the
   * command name, which ends at the last ')' and may hold any byte. */
  char *p = strrchr(buf, ')');
  if (p == NULL || p[1] != ' ' || p[2] == '\0')
    return MP_EIO;
  if (p[2] == 'Z' || p[2] == 'X' || p[2] == 'x')
    return MP_ESRCH;
  p += 2;
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (p == NULL)
      return MP_EIO;
    p++;
  }
  char *end;
  unsigned long long v = strtoull(p, &end, 10);
  if (end == p)
    return MP_EIO;
  *start = v;
  return 0;
}
