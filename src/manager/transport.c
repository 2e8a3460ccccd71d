/* manager/transport.c - the sockets and the authkey handshake under the
 * manager: parse an address ("host:port" is TCP, anything else a Unix socket
 * path), listen, accept and connect with a deadline, and run Python's
 * deliver_challenge/answer_challenge on a connection (src/net/'s, which
 * speaks to every CPython 3.11-3.13 peer).
 *
 * The sockets are the manager's own (not mp_listener) because the server
 * runs each handshake in the connection's own thread, so a client that
 * stalls mid-handshake holds only its thread, never the accept loop. Every
 * read here has a deadline. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>


#include "internal.h"
#include "manager/manager_internal.h"


/* ---- addresses ---------------------------------------------------------- */

int mp__mgr_addr_parse(const char *address, mp__mgr_addr *out) {
  memset(out, 0, sizeof *out);
  if (!address || !*address)
    return mp__fail(MP_EINVAL, "manager address is empty");
  const char *colon = strrchr(address, ':');
  int tcp = 0;
  if (colon && address[0] != '/' && colon[1]) {
    tcp = 1;
    for (const char *p = colon + 1; *p; p++)
      if (*p < '0' || *p > '9') tcp = 0;
  }
  if (!tcp) {
    if (strlen(address) >= sizeof(((struct sockaddr_un *)0)->sun_path))
      return mp__fail(MP_ENAMETOOLONG, "socket path longer than 107 bytes");
    out->tcp = 0;
    snprintf(out->path, sizeof out->path, "%s", address);
    return 0;
  }
  size_t hl = (size_t)(colon - address);
  if (hl >= sizeof out->host) return mp__fail(MP_EINVAL, "host too long");
  const char *h = address;
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  memcpy(out->host, h, hl);
  out->host[hl] = 0;
  long port = strtol(colon + 1, NULL, 10);
  if (port < 0 || port > 65535)
    return mp__fail(MP_EINVAL, "port %ld out of range", port);
  out->tcp = 1;
  out->port = (int)port;
  if (!out->host[0]) snprintf(out->host, sizeof out->host, "127.0.0.1");
  return 0;
}

static int resolve(const mp__mgr_addr *a, struct sockaddr_storage *ss,
                   socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (!a->tcp) {
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, a->path, strlen(a->path) + 1);
    *len = sizeof *un;
    return 0;
  }
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_socktype = SOCK_STREAM;
  char port[16];
  snprintf(port, sizeof port, "%d", a->port);
  int rc = getaddrinfo(a->host, port, &hints, &res);
  if (rc != 0 || !res)
    return mp__fail(MP_EINVAL, "cannot resolve host '%s'", a->host);
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

int mp__mgr_listen(const mp__mgr_addr *a, int backlog, int *fd_out,
                   int *port_out) {
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = resolve(a, &ss, &len);
  if (rc) return rc;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (a->tcp) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }
  if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0) {
    rc = -errno;
    close(fd);
    return mp__fail(rc, "cannot listen on the manager address: %s",
                    strerror(-rc));
  }
  if (port_out) {
    *port_out = 0;
    if (a->tcp) {
      struct sockaddr_storage got;
      socklen_t gl = sizeof got;
      if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0)
        *port_out = ntohs(got.ss_family == AF_INET6
                              ? ((struct sockaddr_in6 *)&got)->sin6_port
                              : ((struct sockaddr_in *)&got)->sin_port);
    }
  }
  *fd_out = fd;
  return 0;
}

static void tune(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int mp__mgr_connect(const mp__mgr_addr *a, double timeout,
                    mp_connection **out) {
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = resolve(a, &ss, &len);
  if (rc) return rc;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      rc = -errno;
      close(fd);
      return mp__fail(rc, "cannot connect to the manager: %s", strerror(-rc));
    }
    mp__deadline d = mp__deadline_from_timeout(timeout);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    for (;;) {
      int64_t ns = mp__deadline_remaining_ns(d);
      int ms = ns == INT64_MAX ? -1 : (int)((ns + 999999) / 1000000);
      int n = poll(&p, 1, ms);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) {
        close(fd);
        return mp__fail(MP_ETIMEDOUT, "connecting to the manager timed out");
      }
      break;
    }
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      close(fd);
      return mp__fail(-err, "cannot connect to the manager: %s",
                      strerror(err));
    }
  }
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  if (a->tcp) tune(fd);
  rc = mp_connection_new(out, fd, NULL);
  if (rc) close(fd);
  return rc;
}

int mp__mgr_accept(int lfd, double timeout, mp_connection **out) {
  struct pollfd p = {.fd = lfd, .events = POLLIN};
  int ms = timeout < 0 ? -1 : (int)(timeout * 1000);
  int n = poll(&p, 1, ms);
  if (n < 0) return -errno;
  if (n == 0) return MP_ETIMEDOUT;
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) return -errno;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
      ss.ss_family != AF_UNIX)
    tune(fd);
  int rc = mp_connection_new(out, fd, NULL);
  if (rc) close(fd);
  return rc;
}

/* ---- the default key ----------------------------------------------------- */

int mp__mgr_default_key(uint8_t *key, size_t cap, size_t *len) {
  ssize_t n = mp_process_authkey(mp_current_process(), key, cap);
  if (n < 0) return (int)n;
  *len = (size_t)n;
  return 0;
}

/* ---- framed messages with a deadline ------------------------------------ */

int mp__mgr_recv(mp_connection *c, double timeout, size_t limit, void **buf,
                 size_t *len) {
  if (timeout >= 0) {
    int r = mp_connection_poll(c, timeout);
    if (r < 0) return r;
    if (r == 0) return mp__fail(MP_ETIMEDOUT, "the peer sent nothing in time");
  }
  int rc = mp_connection_recv_bytes_alloc(c, buf, len, limit);
  if (rc == MP_ETOOBIG)
    return mp__fail(MP_ETOOBIG, "message of %zu bytes over the limit %zu",
                    *len, limit);
  return rc;
}

/* ---- the handshake ---------------------------------------------------------
 * Python's deliver_challenge/answer_challenge, from src/net/ (every CPython
 * 3.11-3.13 peer, a deadline on each read). */

int mp__mgr_deliver_challenge(mp_connection *c, const uint8_t *key,
                              size_t keylen, double timeout) {
  mp_auth_opts o = {.timeout = timeout};
  return mp_connection_deliver_challenge(c, key, keylen, &o);
}

int mp__mgr_answer_challenge(mp_connection *c, const uint8_t *key,
                             size_t keylen, double timeout) {
  mp_auth_opts o = {.timeout = timeout};
  return mp_connection_answer_challenge(c, key, keylen, &o);
}
