/* manager/transport.c - how the manager reaches its peers, on top of
 * src/net (mp_listener, mp_client) and mp_connection: the client's
 * connection with its handshake, a receive with a deadline, the address as
 * Python's Token carries it, and the default key. No socket or handshake
 * code of its own: the listener runs the server's handshakes (several at
 * once, so a client that stalls mid-handshake never holds up another), and
 * mp_client the client's. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "manager/manager_internal.h"

/* ---- addresses ------------------------------------------------------------
 * The listener's rule (src/net/address.c): a leading '/', '.' or '@' is a
 * Unix address, a final ":<digits>" after a host is TCP, anything else a
 * path. */

static int split_tcp(const char *a, char *host, size_t cap, long *port) {
  if (!a || a[0] == '/' || a[0] == '.' || a[0] == '@') return -1;
  const char *colon = strrchr(a, ':');
  if (!colon || !colon[1] || strlen(colon + 1) > 5 ||
      strspn(colon + 1, "0123456789") != strlen(colon + 1))
    return -1;
  size_t hl = (size_t)(colon - a);
  const char *h = a;
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  if (hl == 0 || hl >= cap) return -1;
  memcpy(host, h, hl);
  host[hl] = 0;
  *port = strtol(colon + 1, NULL, 10);
  return *port <= 65535 ? 0 : -1;
}

int mp__mgr_addr_is_path(const char *address) {
  char host[256];
  long port;
  return address && address[0] && address[0] != '@' &&
         split_tcp(address, host, sizeof host, &port) != 0;
}

int mp__mgr_addr_is_tcp(const char *address) {
  char host[256];
  long port;
  return split_tcp(address, host, sizeof host, &port) == 0;
}

mp_obj *mp__mgr_addr_obj(const char *address) {
  char host[256];
  long port;
  if (split_tcp(address, host, sizeof host, &port) == 0)
    return mp_obj_tuple_pack(2, mp_obj_str(host), mp_obj_int(port));
  if (address[0] == '@') {
    /* Python's abstract address is "\0name". */
    char buf[MP_ADDRESS_MAX];
    size_t n = strlen(address);
    if (n >= sizeof buf) n = sizeof buf - 1;
    buf[0] = 0;
    memcpy(buf + 1, address + 1, n - 1);
    return mp_obj_str_len(buf, n);
  }
  return mp_obj_str(address);
}

/* ---- connections ------------------------------------------------------------ */

void mp__mgr_tune(mp_connection *c) {
  /* Why: one small request and one small reply per call; Nagle would hold
   * a reply back behind an unacknowledged one on TCP. Fails harmlessly on
   * a Unix socket. */
  int one = 1;
  setsockopt(mp_connection_fileno(c), IPPROTO_TCP, TCP_NODELAY, &one,
             sizeof one);
}

int mp__mgr_connect(const char *address, const uint8_t *key, size_t keylen,
                    double timeout, mp_connection **out) {
  mp_client_opts o = {.authkey = key ? key : (const uint8_t *)"",
                      .authkey_len = keylen,
                      .auth = {.timeout = timeout}};
  mp_connection *c = NULL;
  int rc = mp_client(&c, address, &o, timeout);
  if (rc == MP_ECLOSED || rc == MP_EPROTO)
    return mp__fail(MP_EAUTH, "the server closed the connection during the "
                              "handshake (wrong authkey?)");
  if (rc) return rc;
  mp__mgr_tune(c);
  *out = c;
  return 0;
}

/* ---- the default key --------------------------------------------------------- */

int mp__mgr_default_key(uint8_t *key, size_t cap, size_t *len) {
  ssize_t n = mp_process_authkey(mp_current_process(), key, cap);
  if (n < 0) return (int)n;
  *len = (size_t)n;
  return 0;
}

/* ---- framed messages with a deadline ----------------------------------------- */

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
