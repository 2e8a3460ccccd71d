/* linux_os.c - the Linux implementation of os/os.h: clock, thread ids,
 * futexes, POSIX shared memory, process liveness and randomness. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../internal.h"

int64_t mp__os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The caller's thread id, cached per thread: gettid is on the RLock paths.
 * A forked child's only thread must not keep its parent's id; the atfork
 * handler below clears the cache in the child (it runs in that thread). */
static __thread pid_t cached_tid;

static void forget_tid_in_child(void) { cached_tid = 0; }

__attribute__((constructor)) static void tid_cache_init(void) {
  pthread_atfork(NULL, NULL, forget_tid_in_child);
}

pid_t mp__os_gettid(void) {
  if (__builtin_expect(cached_tid == 0, 0))
    cached_tid = (pid_t)syscall(SYS_gettid);
  return cached_tid;
}

int mp__os_futex_wait(uint32_t *addr, uint32_t expected, int64_t abs_ns,
                      bool shared) {
  struct timespec ts, *tsp = NULL;
  if (abs_ns != INT64_MAX) {
    ts.tv_sec = abs_ns / 1000000000;
    ts.tv_nsec = abs_ns % 1000000000;
    tsp = &ts;
  }
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
   * retry after a spurious wake never stretches the wait. */
  int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  long rc = syscall(SYS_futex, addr, op, expected, tsp, NULL,
                    FUTEX_BITSET_MATCH_ANY);
  if (rc == 0)
    return 0;
  switch (errno) {
  case EAGAIN:
    return MP_EAGAIN;
  case ETIMEDOUT:
    return MP_ETIMEDOUT;
  case EINTR:
    return MP_EINTR;
  default:
    return -errno;
  }
}

int mp__os_futex_wake(uint32_t *addr, int n, bool shared) {
  int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  long rc = syscall(SYS_futex, addr, op, n, NULL, NULL, 0);
  return rc < 0 ? -errno : (int)rc;
}

static int shm_path(char *buf, size_t cap, const char *name) {
  int n = snprintf(buf, cap, "/%s", name);
  if (n < 0 || (size_t)n >= cap)
    return MP_ENAMETOOLONG;
  return 0;
}

int mp__os_shm_create(const char *name, size_t size, int *fd_out) {
  char path[NAME_MAX + 2];
  int rc = shm_path(path, sizeof path, name);
  if (rc)
    return rc;
  int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  if (ftruncate(fd, (off_t)size) != 0) {
    rc = -errno;
    close(fd);
    shm_unlink(path);
    return rc;
  }
  *fd_out = fd;
  return 0;
}

int mp__os_shm_open(const char *name, int *fd_out, size_t *size_out) {
  char path[NAME_MAX + 2];
  int rc = shm_path(path, sizeof path, name);
  if (rc)
    return rc;
  int fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  *fd_out = fd;
  *size_out = (size_t)st.st_size;
  return 0;
}

int mp__os_shm_unlink(const char *name) {
  char path[NAME_MAX + 2];
  int rc = shm_path(path, sizeof path, name);
  if (rc)
    return rc;
  return shm_unlink(path) == 0 ? 0 : -errno;
}

int mp__os_map_shared(int fd, size_t size, void **out) {
  int flags = MAP_SHARED | (fd < 0 ? MAP_ANONYMOUS : 0);
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);
  if (p == MAP_FAILED)
    return -errno;
  *out = p;
  return 0;
}

void mp__os_unmap(void *addr, size_t size) { munmap(addr, size); }

size_t mp__os_page_size(void) {
  static size_t page;
  if (page == 0)
    page = (size_t)sysconf(_SC_PAGESIZE);
  return page;
}

bool mp__os_pid_alive(pid_t pid) {
  if (pid <= 0)
    return false;
  if (kill(pid, 0) != 0 && errno == ESRCH)
    return false;
  /* kill() succeeds on a zombie, which can no longer release anything:
   * read its state from /proc. /proc/<tid> also resolves thread ids. */
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno != ENOENT;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return true;
  buf[n] = '\0';
  /* The state follows the last ')' (the command name may hold any byte). */
  char *paren = strrchr(buf, ')');
  if (paren == NULL || paren[1] == '\0' || paren[2] == '\0')
    return true;
  char state = paren[2];
  return state != 'Z' && state != 'X' && state != 'x';
}

int mp__os_random(void *buf, size_t len) {
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}
