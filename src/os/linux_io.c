/* linux_io.c - the Linux implementation of os/io.h: whole gathered writes
 * that never raise SIGPIPE, reads, and ppoll against an absolute
 * deadline. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../internal.h"
#include "io.h"

int mp__os_fd_kind(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return -errno;
  return S_ISSOCK(st.st_mode) ? 1 : 0;
}

/* wait_for blocks until fd reports one of events (or an error or hang-up,
 * which the next read or write then reports). Used only after EAGAIN, on a
 * descriptor someone else made non-blocking. */
static int wait_for(int fd, short events) {
  struct pollfd pfd = {.fd = fd, .events = events};
  int r = mp__os_poll(&pfd, 1, INT64_MAX);
  return r < 0 ? r : 0;
}

/* advance drops n written bytes from the front of the iovec array. */
static void advance(struct iovec **iov, int *iovcnt, size_t n) {
  while (*iovcnt > 0 && n >= (*iov)->iov_len) {
    n -= (*iov)->iov_len;
    (*iov)++;
    (*iovcnt)--;
  }
  if (*iovcnt > 0 && n > 0) {
    (*iov)->iov_base = (char *)(*iov)->iov_base + n;
    (*iov)->iov_len -= n;
  }
}

/* write_loop writes every byte of iov, by send(MSG_NOSIGNAL) on a socket
 * and writev otherwise. */
static int write_loop(int fd, bool is_socket, struct iovec *iov,
                      int iovcnt) {
  /* Empty buffers at the front would make a zero-byte write; skip them. */
  advance(&iov, &iovcnt, 0);
  while (iovcnt > 0) {
    ssize_t n;
    if (is_socket) {
      struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
      n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    } else {
      n = writev(fd, iov, iovcnt);
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int rc = wait_for(fd, POLLOUT);
        if (rc != 0)
          return rc;
        continue;
      }
      return -errno;
    }
    advance(&iov, &iovcnt, (size_t)n);
  }
  return 0;
}

int mp__os_write_all(int fd, bool is_socket, struct iovec *iov,
                     int iovcnt) {
  if (is_socket)
    return write_loop(fd, true, iov, iovcnt);
  /* A pipe has no MSG_NOSIGNAL. Block SIGPIPE in this thread for the
   * write; the SIGPIPE a write to a pipe without readers raises then stays
   * pending instead of killing the process, and is taken back below. The
   * caller's own pending SIGPIPE is never consumed: if SIGPIPE was blocked
   * already, the write's signal is left as the caller's mask decided, and
   * if it was not, none could have been pending (it would have been
   * delivered). */
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  int rc = write_loop(fd, false, iov, iovcnt);
  if (rc == MP_EPIPE && !sigismember(&old, SIGPIPE)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
      ;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

ssize_t mp__os_read_some(int fd, void *buf, size_t len) {
  for (;;) {
    ssize_t n = read(fd, buf, len);
    if (n >= 0)
      return n;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int rc = wait_for(fd, POLLIN);
      if (rc != 0)
        return rc;
      continue;
    }
    return -errno;
  }
}

ssize_t mp__os_read_nowait(int fd, bool is_socket, void *buf, size_t len) {
  for (;;) {
    ssize_t n;
    if (is_socket) {
      n = recv(fd, buf, len, MSG_DONTWAIT);
    } else {
      struct iovec iov = {.iov_base = buf, .iov_len = len};
      n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
    }
    if (n >= 0)
      return n;
    switch (errno) {
    case EINTR:
      continue;
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
      return MP_EAGAIN;
    case EOPNOTSUPP:
#if ENOTSUP != EOPNOTSUPP
    case ENOTSUP:
#endif
    case EINVAL: /* a kernel without RWF_NOWAIT, or a file without it */
    case ESPIPE:
    case ENOSYS:
      return is_socket ? -errno : MP_ENOTSUP;
    default:
      return -errno;
    }
  }
}

int mp__os_poll(struct pollfd *fds, size_t n, int64_t abs_ns) {
  for (;;) {
    struct timespec ts, *tsp = NULL;
    if (abs_ns != INT64_MAX) {
      int64_t left = abs_ns - mp__os_now_ns();
      if (left < 0)
        left = 0;
      ts.tv_sec = (time_t)(left / 1000000000);
      ts.tv_nsec = (long)(left % 1000000000);
      tsp = &ts;
    }
    int r = ppoll(fds, (nfds_t)n, tsp, NULL);
    if (r >= 0)
      return r;
    /* A signal: poll again with what is left of the same deadline. */
    if (errno != EINTR)
      return -errno;
  }
}
