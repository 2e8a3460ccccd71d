/* linux_process.c - the Linux implementation of os/process_os.h: fork,
 * posix_spawn of /proc/self/exe, pidfds, waitpid on one pid, the
 * parent-death signal, SCM_RIGHTS descriptor passing, memfds and the
 * affinity-mask CPU count. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../internal.h"
#include "process_os.h"

static void (*_Atomic fork_observer)(pid_t child);

void mp__os_fork_observe(void (*fn)(pid_t child)) {
  atomic_store(&fork_observer, fn);
}

pid_t mp__os_fork(void) {
  pid_t pid = fork();
  if (pid < 0)
    return -errno;
  void (*fn)(pid_t) = pid > 0 ? atomic_load(&fork_observer) : NULL;
  if (fn != NULL)
    fn(pid);
  return pid;
}

pid_t mp__os_newest_child(void) {
  int fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  /* "<pid> <pid> ... <pid> ", oldest first. Only the last number counts:
   * keep the tail of what was read, enough for a pid and its space. */
  char text[512];
  size_t have = 0;
  for (;;) {
    ssize_t r = read(fd, text + have, sizeof text - 1 - have);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      close(fd);
      return -1;
    }
    if (r == 0)
      break;
    have += (size_t)r;
    if (have > sizeof text - 32) { /* keep the last 31 bytes */
      memmove(text, text + have - 31, 31);
      have = 31;
    }
  }
  close(fd);
  text[have] = '\0';
  char *end = text + have;
  while (end > text && (end[-1] == ' ' || end[-1] == '\n'))
    end--;
  char *begin = end;
  while (begin > text && begin[-1] >= '0' && begin[-1] <= '9')
    begin--;
  if (begin == end || end - begin > 10)
    return -1;
  long v = strtol(begin, NULL, 10);
  return v > 0 && v <= INT32_MAX ? (pid_t)v : -1;
}

int mp__os_pidfd_open(pid_t pid) {
#if defined(MP_HAVE_PIDFD)
  /* pidfd_open returns a close-on-exec descriptor. */
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0)
    return errno == ENOSYS ? MP_ENOSYS : -errno;
  return (int)fd;
#else
  (void)pid;
  return MP_ENOSYS;
#endif
}

int mp__os_pidfd_send_signal(int pidfd, int sig) {
#if defined(MP_HAVE_PIDFD) && defined(SYS_pidfd_send_signal)
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) != 0)
    return -errno;
  return 0;
#else
  (void)pidfd;
  (void)sig;
  return MP_ENOSYS;
#endif
}

int mp__os_wait_nohang(pid_t pid, int *wstatus) {
  for (;;) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      *wstatus = st;
      return 1;
    }
    if (r == 0)
      return 0;
    if (errno != EINTR)
      return -errno;
  }
}

int mp__os_wait_blocking(pid_t pid, int *wstatus) {
  for (;;) {
    int st = 0;
    pid_t r = waitpid(pid, &st, 0);
    if (r == pid) {
      *wstatus = st;
      return 0;
    }
    if (errno != EINTR)
      return -errno;
  }
}

static int wait_ready(int fd, short events, int64_t abs_ns);

int mp__os_wait_readable(int fd, int64_t abs_ns) {
  int r = wait_ready(fd, POLLIN, abs_ns);
  if (r > 0)
    return (r & POLLNVAL) ? MP_EBADF : 1;
  return r;
}

void mp__os_sleep_until(int64_t abs_ns) {
  struct timespec ts = {.tv_sec = abs_ns / 1000000000,
                        .tv_nsec = abs_ns % 1000000000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
    ;
}

int mp__os_set_parent_death_signal(int sig) {
#if defined(MP_HAVE_PDEATHSIG)
  if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig) != 0)
    return -errno;
  return 0;
#else
  (void)sig;
  return MP_ENOSYS;
#endif
}

void mp__os_unblock_signals(void) {
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, NULL);
}

int mp__os_pipe(int fds[2]) {
  return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

int mp__os_socketpair(int fds[2]) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return -errno;
  return 0;
}

int mp__os_set_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
    return -errno;
  return 0;
}

int mp__os_set_inheritable(int fd) {
  int fl = fcntl(fd, F_GETFD);
  if (fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) != 0)
    return -errno;
  return 0;
}

int mp__os_memfd(const char *name, size_t size) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (ftruncate(fd, (off_t)size) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  return fd;
}

/* wait_ready polls fd for events until the deadline. Returns the events
 * seen (nonzero), 0 at the deadline, or -errno. */
static int wait_ready(int fd, short events, int64_t abs_ns) {
  for (;;) {
    struct pollfd pfd = {.fd = fd, .events = events};
    struct timespec ts, *tsp = NULL;
    if (abs_ns != INT64_MAX) {
      int64_t left = abs_ns - mp__os_now_ns();
      if (left < 0)
        left = 0;
      ts.tv_sec = left / 1000000000;
      ts.tv_nsec = left % 1000000000;
      tsp = &ts;
    }
    int r = ppoll(&pfd, 1, tsp, NULL);
    if (r > 0)
      return pfd.revents;
    if (r == 0)
      return 0;
    if (errno != EINTR)
      return -errno;
  }
}

#define MAX_PASSED_FDS 4

int mp__os_send_all(int sock, const void *buf, size_t len, const int *fds,
                    size_t nfds, int64_t abs_ns) {
  const char *p = buf;
  bool fds_sent = (nfds == 0);
  if (nfds > MAX_PASSED_FDS)
    return mp__fail(MP_EINVAL, "invalid argument (nfds > MAX_PASSED_FDS)");
  while (len > 0 || !fds_sent) {
    int r = wait_ready(sock, POLLOUT, abs_ns);
    if (r < 0)
      return r;
    if (r == 0)
      return MP_ETIMEDOUT;
    struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    union {
      char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
      struct cmsghdr align;
    } control;
    if (!fds_sent) {
      /* Descriptors travel with at least one byte of data. */
      if (len == 0)
        return mp__fail(MP_EINVAL, "invalid argument (len == 0)");
      memset(&control, 0, sizeof control);
      msg.msg_control = control.buf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        continue;
      return (errno == EPIPE || errno == ECONNRESET) ? MP_EPIPE : -errno;
    }
    fds_sent = true;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int mp__os_recv_all(int sock, void *buf, size_t len, int *fds, size_t maxfds,
                    size_t *nfds, int64_t abs_ns) {
  char *p = buf;
  size_t got_fds = 0;
  int rc = 0;
  if (nfds != NULL)
    *nfds = 0;
  while (len > 0) {
    int r = wait_ready(sock, POLLIN, abs_ns);
    if (r < 0) {
      rc = r;
      break;
    }
    if (r == 0) {
      rc = MP_ETIMEDOUT;
      break;
    }
    struct iovec iov = {.iov_base = p, .iov_len = len};
    union {
      char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
      struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        continue;
      rc = errno == ECONNRESET ? MP_EPIPE : -errno;
      break;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
        continue;
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (fds != NULL && got_fds < maxfds) {
          fds[got_fds++] = fd;
        } else {
          close(fd);
          rc = MP_EPROTO;
        }
      }
    }
    if (msg.msg_flags & MSG_CTRUNC)
      rc = MP_EPROTO;
    if (n == 0) {
      rc = MP_EPIPE;
      break;
    }
    p += n;
    len -= (size_t)n;
    if (rc != 0)
      break;
  }
  if (rc != 0) {
    for (size_t i = 0; i < got_fds; i++)
      close(fds[i]);
    got_fds = 0;
  }
  if (nfds != NULL)
    *nfds = got_fds;
  return rc;
}

int mp__os_self_argv(char ***argv_out) {
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t cap = 4096, len = 0;
  char *text = mp__alloc(cap);
  if (text == NULL) {
    close(fd);
    return MP_ENOMEM;
  }
  for (;;) {
    if (len == cap) {
      char *bigger = mp__realloc(text, cap * 2);
      if (bigger == NULL) {
        mp__free(text);
        close(fd);
        return MP_ENOMEM;
      }
      text = bigger;
      cap *= 2;
    }
    ssize_t n = read(fd, text + len, cap - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int rc = -errno;
      mp__free(text);
      close(fd);
      return rc;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  /* Each argument ends with a NUL; a missing last one is added. */
  size_t argc = 0;
  for (size_t i = 0; i < len; i++)
    if (text[i] == '\0')
      argc++;
  bool add_nul = len > 0 && text[len - 1] != '\0';
  if (add_nul)
    argc++;
  if (argc == 0) {
    /* An empty command line (a kernel thread, or a wiped argv): run the
     * program under its own path. */
    static const char self[] = "/proc/self/exe";
    len = sizeof self;
    if (cap < len) {
      mp__free(text);
      return MP_ENOMEM;
    }
    memcpy(text, self, len);
    argc = 1;
    add_nul = false;
  }
  size_t vec = (argc + 1) * sizeof(char *);
  char **argv = mp__alloc(vec + len + 1);
  if (argv == NULL) {
    mp__free(text);
    return MP_ENOMEM;
  }
  char *strings = (char *)argv + vec;
  memcpy(strings, text, len);
  strings[len] = '\0';
  mp__free(text);
  size_t k = 0;
  char *s = strings;
  while (k < argc) {
    argv[k++] = s;
    s += strlen(s) + 1;
  }
  argv[argc] = NULL;
  *argv_out = argv;
  return 0;
}

int mp__os_spawn_self(pid_t *pid_out, char *const argv[], char *const envp[],
                      int fd, int child_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc != 0)
    return -rc;
  rc = posix_spawnattr_init(&attr);
  if (rc != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return -rc;
  }
  sigset_t none;
  sigemptyset(&none);
  /* dup2 onto the same number clears close-on-exec (POSIX 2024, glibc
   * 2.29), so fd == child_fd works too. */
  rc = posix_spawn_file_actions_adddup2(&fa, fd, child_fd);
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 34)
  /* Like Python's spawn, the child inherits nothing else: a stray copy of
   * a pipe's write end would keep its reader from ever seeing EOF. */
  if (rc == 0)
    rc = posix_spawn_file_actions_addclosefrom_np(&fa, child_fd + 1);
#endif
#endif
  if (rc == 0)
    rc = posix_spawnattr_setsigmask(&attr, &none);
  if (rc == 0)
    rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  if (rc == 0)
    rc = posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return -rc;
  *pid_out = pid;
  return 0;
}

static bool is_kept(int fd, const int *keep, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (keep[i] == fd)
      return true;
  return false;
}

void mp__os_close_fds_except(const int *keep, size_t n) {
  /* Collect first, close after: closing while reading /proc/self/fd would
   * disturb the listing. The caller is single-threaded (a fresh fork), so
   * no descriptor appears meanwhile. */
  DIR *d = opendir("/proc/self/fd");
  if (d != NULL) {
    int dfd = dirfd(d);
    int victims[256];
    bool more = true;
    while (more) {
      size_t nv = 0;
      struct dirent *e;
      more = false;
      rewinddir(d);
      while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
          continue;
        int fd = atoi(e->d_name);
        if (fd < 3 || fd == dfd || is_kept(fd, keep, n))
          continue;
        if (nv == MP__ARRAY_SIZE(victims)) {
          more = true;
          break;
        }
        victims[nv++] = fd;
      }
      for (size_t i = 0; i < nv; i++)
        close(victims[i]);
    }
    closedir(d);
    return;
  }
  /* No /proc: close by number. */
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536)
    max = 65536;
  for (int fd = 3; fd < max; fd++)
    if (!is_kept(fd, keep, n))
      close(fd);
}

int mp__os_cpu_count(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0)
      return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}
