/* linux_shm.c - the Linux implementation of os/shm.h: segment identities
 * and listing (POSIX shared memory lives in /dev/shm on Linux), whole-file
 * access to small segments, segments created without a name and named
 * afterwards (O_TMPFILE in /dev/shm, then linkat), process start times
 * from /proc, and the double fork that starts the resource tracker as a
 * detached daemon. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../internal.h"
#include "shm.h"

#define SHM_DIR "/dev/shm"

static int shm_path(char *buf, size_t cap, const char *name) {
  int n = snprintf(buf, cap, "/%s", name);
  if (n < 0 || (size_t)n >= cap)
    return MP_ENAMETOOLONG;
  return 0;
}

int mp__os_shm_inode(const char *name, uint64_t *ino) {
  char path[NAME_MAX + 2];
  int rc = shm_path(path, sizeof path, name);
  if (rc != 0)
    return rc;
  /* O_RDONLY changes nothing: the segment is only looked at. */
  int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct stat st;
  rc = fstat(fd, &st) == 0 ? 0 : -errno;
  close(fd);
  if (rc == 0)
    *ino = (uint64_t)st.st_ino;
  return rc;
}

int mp__os_shm_owner(const char *name, uint64_t *ino, uid_t *uid) {
  char path[NAME_MAX + 2];
  int rc = shm_path(path, sizeof path, name);
  if (rc != 0)
    return rc;
  int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct stat st;
  rc = fstat(fd, &st) == 0 ? 0 : -errno;
  close(fd);
  if (rc == 0) {
    *ino = (uint64_t)st.st_ino;
    *uid = st.st_uid;
  }
  return rc;
}

int mp__os_shm_create_unnamed(size_t size, int *fd_out, uint64_t *ino) {
  /* glibc's shm_open names files in /dev/shm: a file made there without a
   * name and linked later is a segment like any other. */
  int fd = open(SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno; /* EISDIR or EOPNOTSUPP: no O_TMPFILE here */
  struct stat st;
  int rc = 0;
  if (ftruncate(fd, (off_t)size) != 0 || fstat(fd, &st) != 0)
    rc = -errno;
  if (rc != 0) {
    close(fd);
    return rc;
  }
  *fd_out = fd;
  *ino = (uint64_t)st.st_ino;
  return 0;
}

int mp__os_shm_link(int fd, const char *name) {
  char path[NAME_MAX + 16], proc[64];
  if (snprintf(path, sizeof path, SHM_DIR "/%s", name) >= (int)sizeof path)
    return MP_ENAMETOOLONG;
  /* linkat never replaces a name: EEXIST is O_EXCL's answer. Naming the
   * descriptor itself (AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH on most
   * kernels; through /proc it needs nothing. */
  if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
    return 0;
  if (errno == EEXIST)
    return MP_EEXIST;
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
    return 0;
  return -errno;
}

/* open_private opens /dev/shm/<name> without following a link and checks
 * that it is the caller's own private file (see os/shm.h). */
static int open_private(const char *name, int flags, mode_t mode) {
  char path[NAME_MAX + 16];
  if (snprintf(path, sizeof path, SHM_DIR "/%s", name) >= (int)sizeof path)
    return MP_ENAMETOOLONG;
  int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
  if (fd < 0)
    return errno == ELOOP ? mp__fail(MP_EPERM, "state file is a link")
                          : -errno;
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0)
    rc = -errno;
  else if (!S_ISREG(st.st_mode))
    rc = mp__fail(MP_EPERM, "state file is not a regular file");
  else if (st.st_uid != geteuid())
    rc = mp__fail(MP_EPERM, "state file is owned by another user");
  else if (st.st_mode & (S_IWGRP | S_IWOTH))
    rc = mp__fail(MP_EPERM, "state file is writable by others");
  if (rc != 0) {
    close(fd);
    return rc;
  }
  return fd;
}

int mp__os_shm_list(int (*fn)(const char *name, void *arg), void *arg) {
  DIR *d = opendir(SHM_DIR);
  if (d == NULL)
    return -errno;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' &&
        (e->d_name[1] == '\0' || (e->d_name[1] == '.' && !e->d_name[2])))
      continue;
    rc = fn(e->d_name, arg);
  }
  closedir(d);
  return rc;
}

int mp__os_shm_write_file(const char *name, const void *data, size_t len) {
  char path[NAME_MAX + 2];
  int rc = shm_path(path, sizeof path, name);
  if (rc != 0)
    return rc;
  int fd = open_private(name, O_RDWR | O_CREAT, 0600);
  if (fd < 0)
    return fd;
  rc = 0;
  if (ftruncate(fd, 0) != 0)
    rc = -errno;
  const char *p = data;
  off_t at = 0;
  while (rc == 0 && len > 0) {
    ssize_t n = pwrite(fd, p, len, at);
    if (n < 0) {
      if (errno != EINTR)
        rc = -errno;
      continue;
    }
    p += n;
    at += n;
    len -= (size_t)n;
  }
  close(fd);
  return rc;
}

int mp__os_shm_read_file(const char *name, size_t max, char **data,
                         size_t *len) {
  int rc;
  int fd = open_private(name, O_RDONLY, 0);
  if (fd < 0)
    return fd;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  if (st.st_size < 0 || (uint64_t)st.st_size > max) {
    close(fd);
    return MP_ETOOBIG;
  }
  size_t want = (size_t)st.st_size;
  char *buf = mp__alloc(want + 1);
  if (buf == NULL) {
    close(fd);
    return MP_ENOMEM;
  }
  size_t got = 0;
  while (got < want) {
    ssize_t n = pread(fd, buf + got, want - got, (off_t)got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* it shrank while we read: keep what is there */
    got += (size_t)n;
  }
  close(fd);
  buf[got] = '\0';
  *data = buf;
  *len = got;
  return 0;
}

int mp__os_pid_start_time(pid_t pid, uint64_t *start) {
  if (pid <= 0 || !mp__os_proc_ok())
    return MP_ESRCH;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return MP_ESRCH;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return MP_ESRCH;
  buf[n] = '\0';
  /* Fields after the command name, which ends at the last ')': state is
   * field 3, starttime field 22. */
  char *p = strrchr(buf, ')');
  if (p == NULL)
    return MP_ESRCH;
  p++;
  for (int field = 2; field < 22; field++) {
    p = strchr(p, ' ');
    if (p == NULL)
      return MP_ESRCH;
    p++;
  }
  char *end;
  unsigned long long v = strtoull(p, &end, 10);
  if (end == p)
    return MP_ESRCH;
  *start = (uint64_t)v;
  return 0;
}

bool mp__os_process_alive(pid_t pid, uint64_t start) {
  return mp__os_liveness(pid, start, 64) != MP__LIVE_GONE;
}

/* Closes every descriptor from lo up. */
static void close_from(int lo) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)lo, ~0u, 0u) == 0)
    return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 1 << 20)
    max = 1 << 20;
  for (int fd = lo; fd < max; fd++)
    close(fd);
}

/* The daemon's side of mp__os_spawn_daemon: only async-signal-safe calls
 * until fn, because the caller may have had other threads. */
static void become_daemon(int keep_fd, void (*fn)(int fd, void *arg),
                          void *arg) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  for (int sig = 1; sig < NSIG; sig++) {
    bool ignore = sig == SIGINT || sig == SIGTERM || sig == SIGHUP ||
                  sig == SIGPIPE;
    sa.sa_handler = ignore ? SIG_IGN : SIG_DFL;
    sigaction(sig, &sa, NULL); /* fails harmlessly for SIGKILL, SIGSTOP */
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* Move the kept descriptor above the standard ones, put /dev/null on
   * those (a daemon holding a pipe its caller's caller reads would keep
   * that reader waiting), then close everything else. */
  int k = fcntl(keep_fd, F_DUPFD, 3);
  if (k < 0)
    _exit(1);
  int null = open("/dev/null", O_RDWR);
  if (null < 0)
    _exit(1);
  for (int fd = 0; fd < 3; fd++)
    if (null != fd)
      dup2(null, fd);
  if (k != 3) {
    if (dup2(k, 3) < 0)
      _exit(1);
  }
  close_from(4);
  if (chdir("/") != 0) {
    /* Staying in the caller's directory is harmless. */
  }
  fn(3, arg);
  _exit(0);
}

int mp__os_spawn_daemon(int keep_fd, void (*fn)(int fd, void *arg),
                        void *arg) {
  pid_t pid = fork();
  if (pid < 0)
    return -errno;
  if (pid == 0) {
    /* A session of its own: signals sent to the caller's process group
     * (Ctrl-C, a test killing its group) do not reach the daemon. */
    setsid();
    pid_t grandchild = fork();
    if (grandchild < 0)
      _exit(1);
    if (grandchild > 0)
      _exit(0);
    become_daemon(keep_fd, fn, arg);
  }
  int status;
  pid_t r;
  while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  /* ECHILD: another thread of the caller reaped it first; the caller's
   * handshake with the daemon tells whether it started. */
  if (r == pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
    return MP_EAGAIN;
  return 0;
}

/* shm_look stats /dev/shm/<name> (glibc's shm_open opens that file),
 * following a link only if follow; without opening it. */
static int shm_look(const char *name, bool follow, struct stat *st) {
  char path[NAME_MAX + 16];
  int n = snprintf(path, sizeof path, "/dev/shm/%s", name);
  if (n < 0 || (size_t)n >= sizeof path)
    return MP_ENAMETOOLONG;
  if ((follow ? stat(path, st) : lstat(path, st)) != 0)
    return -errno;
  return 0;
}

int mp__os_shm_mine(const char *name, bool *mine) {
  struct stat st;
  int rc = shm_look(name, false, &st);
  if (rc == 0)
    *mine = S_ISREG(st.st_mode) && st.st_uid == geteuid();
  return rc;
}

int mp__os_shm_stat(const char *name, uint64_t *dev, uint64_t *ino,
                    size_t *size) {
  struct stat st;
  int rc = shm_look(name, true, &st);
  if (rc != 0)
    return rc;
  if (!S_ISREG(st.st_mode))
    return MP_ENOENT;
  *dev = (uint64_t)st.st_dev;
  *ino = (uint64_t)st.st_ino;
  *size = (size_t)st.st_size;
  return 0;
}
