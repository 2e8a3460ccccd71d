/* linux_net.c - the Linux implementation of os/net.h: listening and
 * connecting stream sockets (Unix and TCP), with accept4 and SOCK_CLOEXEC,
 * a connect bounded by a deadline (a non-blocking connect and a poll), and
 * the readiness set as an epoll instance. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../internal.h"
#include "io.h"
#include "net.h"

int mp__os_listen(const struct sockaddr *sa, socklen_t len, int backlog) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  if (sa->sa_family != AF_UNIX) {
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }
  if (bind(fd, sa, len) != 0 || listen(fd, backlog) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int mp__os_accept(int lfd, struct sockaddr_storage *peer, socklen_t *len) {
  for (;;) {
    int fd = accept4(lfd, (struct sockaddr *)peer, len, SOCK_CLOEXEC);
    if (fd >= 0)
      return fd;
    switch (errno) {
    case EINTR:
      continue;
    case EWOULDBLOCK:
    /* A client that connected and left before accept: Linux reports the
     * network errors of a pending connection from accept; nothing waits. */
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
      return MP_EAGAIN;
    default:
      return -errno;
    }
  }
}

static int set_blocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
    return -errno;
  return 0;
}

int mp__os_connect(const struct sockaddr *sa, socklen_t len, int64_t abs_ns) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  int rc = 0;
  if (connect(fd, sa, len) != 0) {
    if (errno == EAGAIN && sa->sa_family == AF_UNIX) {
      /* A Unix listener whose backlog is full: retry until the deadline,
       * as a blocking connect would wait. */
      for (;;) {
        struct pollfd none = {.fd = -1};
        int64_t slice = mp__os_now_ns() + 1000 * 1000;
        if (mp__os_now_ns() >= abs_ns) {
          rc = MP_ETIMEDOUT;
          break;
        }
        (void)mp__os_poll(&none, 1, slice < abs_ns ? slice : abs_ns);
        if (connect(fd, sa, len) == 0)
          break;
        if (errno != EAGAIN) {
          rc = -errno;
          break;
        }
      }
    } else if (errno == EINPROGRESS || errno == EINTR) {
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      int r = mp__os_poll(&pfd, 1, abs_ns);
      if (r < 0) {
        rc = r;
      } else if (r == 0) {
        rc = MP_ETIMEDOUT;
      } else {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
          err = errno;
        rc = -err;
      }
    } else {
      rc = -errno;
    }
  }
  if (rc == 0)
    rc = set_blocking(fd);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  return fd;
}

int mp__os_sockname(int fd, int peer, struct sockaddr_storage *ss,
                    socklen_t *len) {
  *len = sizeof *ss;
  int r = peer ? getpeername(fd, (struct sockaddr *)ss, len)
               : getsockname(fd, (struct sockaddr *)ss, len);
  return r == 0 ? 0 : -errno;
}

void mp__os_nodelay(int fd) {
  int one = 1;
  /* Fails harmlessly (ENOTSUP/EOPNOTSUPP) on a Unix socket. */
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int mp__os_rset_new(void) {
  int fd = epoll_create1(EPOLL_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

int mp__os_rset_add(int set, int fd) {
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  return epoll_ctl(set, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

int mp__os_rset_del(int set, int fd) {
  struct epoll_event ev = {0};
  return epoll_ctl(set, EPOLL_CTL_DEL, fd, &ev) == 0 ? 0 : -errno;
}
