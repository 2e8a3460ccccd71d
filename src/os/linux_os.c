/* linux_os.c - the Linux implementation of os/os.h: clock, thread ids,
 * futexes, POSIX shared memory, process liveness and randomness. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
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
static __thread __attribute__((tls_model("initial-exec"))) pid_t cached_tid;

static void forget_tid_in_child(void) { cached_tid = 0; }

__attribute__((constructor)) static void tid_cache_init(void) {
  pthread_atfork(NULL, NULL, forget_tid_in_child);
}

pid_t mp__os_gettid(void) {
  if (__builtin_expect(cached_tid == 0, 0))
    cached_tid = (pid_t)syscall(SYS_gettid);
  return cached_tid;
}

/* The caller's process id, kept: glibc's getpid is a system call (about a
 * microsecond here), and the pool, process and channel calls check or
 * record it on every call. Forgotten in a forked child, as above. */
static _Atomic pid_t cached_pid;

static void forget_pid_in_child(void) {
  atomic_store_explicit(&cached_pid, 0, memory_order_relaxed);
}

__attribute__((constructor)) static void pid_cache_init(void) {
  pthread_atfork(NULL, NULL, forget_pid_in_child);
}

pid_t mp__os_getpid(void) {
  pid_t p = atomic_load_explicit(&cached_pid, memory_order_relaxed);
  if (__builtin_expect(p == 0, 0)) {
    p = getpid();
    atomic_store_explicit(&cached_pid, p, memory_order_relaxed);
  }
  return p;
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

/* What /proc says of the caller. Looked at on every use, not cached: the
 * callers are slow paths (a lock holder that has not let go for a slice,
 * a sweep, a handle being made), and a process may mount a /proc of its
 * own after it started (a container's init). */
bool mp__os_proc_ok(void) {
  /* /proc/self names the caller as /proc's namespace numbers it: equal to
   * getpid() only when /proc is of the caller's own PID namespace. */
  char link[32];
  ssize_t n = readlink("/proc/self", link, sizeof link - 1);
  if (n <= 0)
    return false;
  link[n] = '\0';
  char *end;
  long v = strtol(link, &end, 10);
  return end != link && *end == '\0' && v == (long)getpid();
}

uint64_t mp__os_pidns(void) {
  struct stat st;
  if (!mp__os_proc_ok() || stat("/proc/self/ns/pid", &st) != 0)
    return 0;
  return (uint64_t)st.st_ino;
}

/* proc_stat reads the state and the start time of id from the caller's
 * /proc. Returns MP__LIVE_GONE (no such entry while /proc is ours, or a
 * zombie), MP__LIVE_ALIVE (state and start read), MP__LIVE_UNKNOWN. */
static int proc_stat(pid_t id, uint64_t *start) {
  if (!mp__os_proc_ok())
    return MP__LIVE_UNKNOWN;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)id);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    /* With hidepid an entry of another user is missing too: only kill()
     * tells gone, so the caller asked it first. */
    return MP__LIVE_UNKNOWN;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  int err = errno;
  close(fd);
  if (n <= 0)
    return n < 0 && err == ESRCH ? MP__LIVE_GONE : MP__LIVE_UNKNOWN;
  buf[n] = '\0';
  /* The state is field 3 and the start time field 22, counted after the
   * command name, which ends at the last ')' and may hold any byte. */
  char *p = strrchr(buf, ')');
  if (p == NULL || p[1] != ' ' || p[2] == '\0')
    return MP__LIVE_UNKNOWN;
  if (p[2] == 'Z' || p[2] == 'X' || p[2] == 'x')
    return MP__LIVE_GONE;
  p += 2;
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (p == NULL)
      return MP__LIVE_UNKNOWN;
    p++;
  }
  char *end;
  unsigned long long v = strtoull(p, &end, 10);
  if (end == p)
    return MP__LIVE_UNKNOWN;
  *start = v;
  return MP__LIVE_ALIVE;
}

int mp__os_liveness(pid_t id, uint64_t start, unsigned start_bits) {
  if (id <= 0)
    return MP__LIVE_GONE;
  /* kill() looks the id up in the caller's namespace, with or without
   * /proc: ESRCH is certain. Success and EPERM (another user's) say a
   * process has that id, not that it is the one meant. (A thread id works
   * too: the kernel finds the thread.) */
  if (kill(id, 0) != 0 && errno == ESRCH)
    return MP__LIVE_GONE;
  uint64_t now = 0;
  int rc = proc_stat(id, &now);
  if (rc == MP__LIVE_GONE)
    return MP__LIVE_GONE;
  if (rc != MP__LIVE_ALIVE)
    return start == 0 ? MP__LIVE_ALIVE : MP__LIVE_UNKNOWN;
  if (start != 0 && start_bits > 0) {
    uint64_t mask = start_bits >= 64 ? UINT64_MAX
                                     : (((uint64_t)1 << start_bits) - 1);
    if ((now & mask) != (start & mask))
      return MP__LIVE_GONE; /* the id was reused */
  }
  return MP__LIVE_ALIVE;
}

bool mp__os_pid_alive(pid_t pid) {
  return mp__os_liveness(pid, 0, 0) != MP__LIVE_GONE;
}

/* parse_hex reads a hexadecimal number at *p, leaving *p after it. */
static bool parse_hex(const char **p, const char *end, uintptr_t *out) {
  uintptr_t v = 0;
  const char *q = *p;
  for (; q < end; q++) {
    int d = *q >= '0' && *q <= '9'   ? *q - '0'
            : *q >= 'a' && *q <= 'f' ? *q - 'a' + 10
                                     : -1;
    if (d < 0)
      break;
    v = v * 16 + (uintptr_t)d;
  }
  if (q == *p)
    return false;
  *p = q;
  *out = v;
  return true;
}

/* for_each_map calls fn(line, end, arg) for each line of /proc/<pid>/maps
 * (pid 0: self) until fn returns nonzero, which is returned; 0 at the end,
 * a negative code when the list cannot be read. */
static int for_each_map(pid_t pid, int (*fn)(const char *, const char *, void *),
                        void *arg) {
  char path[64];
  if (pid == 0)
    snprintf(path, sizeof path, "/proc/self/maps");
  else
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  char buf[4096];
  size_t have = 0;
  int rc = 0;
  while (rc == 0) {
    ssize_t n = read(fd, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      rc = -errno;
    if (n <= 0)
      break;
    have += (size_t)n;
    char *line = buf, *end = buf + have, *nl;
    while (rc == 0 && (nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
      rc = fn(line, nl, arg);
      line = nl + 1;
    }
    have = (size_t)(end - line);
    if (have == sizeof buf)
      have = 0; /* a line longer than the buffer: skipped */
    memmove(buf, line, have);
  }
  close(fd);
  return rc;
}

/* A maps line: "lo-hi perms offset dev inode path". */
typedef struct map_line {
  uintptr_t lo, hi;
  char dev[16];
  unsigned long long inode;
} map_line;

static bool parse_map(const char *p, const char *end, map_line *m) {
  if (!parse_hex(&p, end, &m->lo) || p >= end || *p++ != '-' ||
      !parse_hex(&p, end, &m->hi))
    return false;
  /* Skip perms and offset. */
  for (int f = 0; f < 2; f++) {
    while (p < end && *p == ' ')
      p++;
    while (p < end && *p != ' ')
      p++;
  }
  while (p < end && *p == ' ')
    p++;
  size_t k = 0;
  while (p < end && *p != ' ' && k < sizeof m->dev - 1)
    m->dev[k++] = *p++;
  m->dev[k] = '\0';
  while (p < end && *p == ' ')
    p++;
  m->inode = 0;
  while (p < end && *p >= '0' && *p <= '9')
    m->inode = m->inode * 10 + (unsigned)(*p++ - '0');
  return k > 0;
}

typedef struct find_arg {
  uintptr_t addr;
  map_line found;
  bool ok;
} find_arg;

static int find_line(const char *line, const char *end, void *arg) {
  find_arg *a = arg;
  map_line m;
  if (parse_map(line, end, &m) && a->addr >= m.lo && a->addr < m.hi) {
    a->found = m;
    a->ok = true;
    return 1;
  }
  return 0;
}

int mp__os_same_mapping(const void *a, const void *b, size_t len) {
  uintptr_t pb = (uintptr_t)b;
  if (pb + len < pb)
    return 0;
  find_arg f = {.addr = (uintptr_t)a};
  int rc = for_each_map(0, find_line, &f);
  if (rc < 0)
    return rc;
  if (!f.ok)
    return 0;
  return pb >= f.found.lo && pb + len <= f.found.hi;
}

static int same_object(const char *line, const char *end, void *arg) {
  const map_line *want = arg;
  map_line m;
  return parse_map(line, end, &m) && m.inode == want->inode &&
         strcmp(m.dev, want->dev) == 0;
}

/* The shared mappings of a maps text, up to a batch at a time. */
typedef struct shared_ranges {
  uintptr_t lo[64], hi[64];
  int n;
} shared_ranges;

static int collect_shared(const char *line, const char *end, void *arg) {
  shared_ranges *r = arg;
  uintptr_t lo, hi;
  const char *p = line;
  if (!parse_hex(&p, end, &lo) || p >= end || *p++ != '-' ||
      !parse_hex(&p, end, &hi) || end - p < 5 || *p != ' ')
    return 0;
  /* Perms "rw-s": writable and shared, what a segment is mapped as. A
   * read-only shared one (nscd's cache, say) is left: libc may use it. */
  if (p[2] != 'w' || p[4] != 's')
    return 0;
  r->lo[r->n] = lo;
  r->hi[r->n] = hi;
  return ++r->n == 64; /* a full batch: unmap it, then read again */
}

int mp__os_unmap_shared(void) {
  for (int pass = 0; pass < 1024; pass++) {
    shared_ranges r = {.n = 0};
    int rc = for_each_map(0, collect_shared, &r);
    if (rc < 0)
      return rc;
    if (r.n == 0)
      return 0;
    for (int i = 0; i < r.n; i++)
      munmap((void *)r.lo[i], r.hi[i] - r.lo[i]);
  }
  return MP_EAGAIN;
}

int mp__os_anyone_maps(uint64_t dev, uint64_t ino) {
  if (!mp__os_proc_ok())
    return MP_ENOSYS;
  /* As /proc/<pid>/maps prints a device: major and minor in hex. */
  map_line want = {.inode = (unsigned long long)ino};
  snprintf(want.dev, sizeof want.dev, "%02x:%02x", major((dev_t)dev),
           minor((dev_t)dev));
  DIR *d = opendir("/proc");
  if (d == NULL)
    return -errno;
  int found = 0;
  struct dirent *e;
  while (found != 1 && (e = readdir(d)) != NULL) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 0 || pid > INT32_MAX ||
        pid == (long)getpid())
      continue;
    /* Gone meanwhile, or not ours to read: it proves nothing. */
    found = for_each_map((pid_t)pid, same_object, &want) == 1;
  }
  closedir(d);
  return found;
}

int mp__os_maps_object(pid_t pid, const void *addr) {
  if (!mp__os_proc_ok())
    return MP_ENOSYS;
  find_arg f = {.addr = (uintptr_t)addr};
  int rc = for_each_map(0, find_line, &f);
  if (rc < 0)
    return rc;
  if (!f.ok || f.found.inode == 0)
    return MP_ENOSYS; /* private memory: nothing names it elsewhere */
  rc = for_each_map(pid, same_object, &f.found);
  if (rc < 0)
    return rc == MP_ENOENT ? MP_ESRCH : rc;
  return rc;
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
