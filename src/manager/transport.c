/* manager/transport.c - the sockets and the authkey handshake under the
 * manager: parse an address ("host:port" is TCP, anything else a Unix socket
 * path), listen, accept and connect with a deadline, and run Python's
 * deliver_challenge/answer_challenge on a connection (HMAC-MD5 against a
 * 20-byte challenge as 3.11, "{sha256}" challenges as 3.12+, either answer
 * accepted, as WIRE.md section 1 describes).
 *
 * This is the manager's own small copy of what src/net/ provides for
 * Listener/Client; it keeps the manager independent of that work's
 * schedule and can be replaced by it without touching the files above.
 * Every read here has a deadline, so a peer that stalls mid-handshake never
 * holds a server thread for ever. */
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

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "internal.h"
#include "manager/manager_internal.h"

#define CHALLENGE "#CHALLENGE#"
#define WELCOME "#WELCOME#"
#define FAILURE "#FAILURE#"
#define HS_MAX 256

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

/* ---- the handshake ------------------------------------------------------ */

static const char *digest_ok(const char *name, size_t n) {
  static const char *names[] = {"md5", "sha256", "sha384", "sha3_256",
                                "sha3_384"};
  static const char *ossl[] = {"MD5", "SHA256", "SHA384", "SHA3-256",
                               "SHA3-384"};
  for (size_t i = 0; i < 5; i++)
    if (strlen(names[i]) == n && memcmp(names[i], name, n) == 0)
      return ossl[i];
  return NULL;
}

static int hmac(const char *digest, const uint8_t *key, size_t keylen,
                const uint8_t *msg, size_t n, uint8_t *out, size_t *outlen) {
  static const uint8_t empty = 0;
  if (!EVP_Q_mac(NULL, "HMAC", NULL, digest, NULL, keylen ? key : &empty,
                 keylen, msg, n, out, 64, outlen))
    return mp__fail(MP_ENOTSUP, "HMAC-%s is not available", digest);
  return 0;
}

/* Splits a challenge payload or a response into the digest named by a
 * "{name}" prefix and the rest; a bare 16- or 20-byte message is legacy
 * MD5 (name "", the whole message). */
static int split_digest(const uint8_t *m, size_t n, const char **ossl,
                        size_t *skip) {
  if (n == 16 || n == 20) {
    *ossl = "MD5";
    *skip = 0;
    return 0;
  }
  if (n < 2 || m[0] != '{') return MP_EAUTH;
  for (size_t i = 1; i < n && i <= 9; i++) {
    if (m[i] == '}') {
      *ossl = digest_ok((const char *)m + 1, i - 1);
      *skip = i + 1;
      return *ossl ? 0 : MP_EAUTH;
    }
  }
  return MP_EAUTH;
}

int mp__mgr_deliver_challenge(mp_connection *c, const uint8_t *key,
                              size_t keylen, double timeout) {
  uint8_t msg[11 + 8 + 40];
  memcpy(msg, CHALLENGE "{sha256}", 19);
  if (RAND_bytes(msg + 19, 40) != 1)
    return mp__fail(MP_EIO, "no random bytes for the challenge");
  int rc = mp_connection_send_bytes(c, msg, 0, sizeof msg);
  if (rc) return rc;
  void *resp = NULL;
  size_t n = 0;
  rc = mp__mgr_recv(c, timeout, HS_MAX, &resp, &n);
  if (rc) return rc;
  const uint8_t *r = resp;
  const char *dg;
  size_t skip;
  int ok = 0;
  if (split_digest(r, n, &dg, &skip) == 0) {
    uint8_t want[64];
    size_t wl = 0;
    if (hmac(dg, key, keylen, msg + 11, sizeof msg - 11, want, &wl) == 0 &&
        n - skip == wl && CRYPTO_memcmp(want, r + skip, wl) == 0)
      ok = 1;
  }
  free(resp);
  const char *reply = ok ? WELCOME : FAILURE;
  rc = mp_connection_send_bytes(c, reply, 0, strlen(reply));
  if (!ok) return mp__fail(MP_EAUTH, "the client's digest is wrong");
  return rc;
}

int mp__mgr_answer_challenge(mp_connection *c, const uint8_t *key,
                             size_t keylen, double timeout) {
  void *buf = NULL;
  size_t n = 0;
  int rc = mp__mgr_recv(c, timeout, HS_MAX, &buf, &n);
  if (rc) return rc;
  const uint8_t *m = buf;
  if (n < 11 + 20 || memcmp(m, CHALLENGE, 11) != 0) {
    free(buf);
    return mp__fail(MP_EAUTH, "the peer sent no challenge");
  }
  const uint8_t *p = m + 11;
  size_t pl = n - 11;
  const char *dg;
  size_t skip;
  uint8_t out[80];
  size_t ol = 0;
  if (split_digest(p, pl, &dg, &skip)) {
    free(buf);
    return mp__fail(MP_EAUTH, "the peer's challenge names an unknown digest");
  }
  if (skip) memcpy(out, p, skip); /* "{name}" */
  rc = hmac(dg, key, keylen, p, pl, out + skip, &ol);
  free(buf);
  if (rc) return rc;
  rc = mp_connection_send_bytes(c, out, 0, skip + ol);
  if (rc) return rc;
  rc = mp__mgr_recv(c, timeout, HS_MAX, &buf, &n);
  if (rc) return rc;
  int ok = n == strlen(WELCOME) && memcmp(buf, WELCOME, n) == 0;
  free(buf);
  return ok ? 0 : mp__fail(MP_EAUTH, "the peer refused our digest");
}
