/* client.c - mp_client, Python's multiprocessing.connection.Client:
 * connect to a listener's address within a timeout, then run the client's
 * half of the authkey handshake (answer the server's challenge, then
 * challenge the server) under its own deadline. */
#define _GNU_SOURCE
#include <unistd.h>

#include "../os/net.h"
#include "net_internal.h"

int mp_client(mp_connection **out, const char *address,
              const mp_client_opts *opts, double timeout) {
  mp_client_opts o = {0};
  if (opts != NULL)
    o = *opts;
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  if (timeout != timeout)
    return mp__fail(MP_EINVAL, "timeout is NaN");
  if (o.authkey == NULL && o.authkey_len > 0)
    return mp__fail(MP_EINVAL, "authkey is NULL with authkey_len > 0");
  mp__auth auth;
  int rc = mp__auth_resolve(&auth, &o.auth);
  if (rc != 0)
    return rc;
  mp__address a;
  rc = mp__address_parse(&a, address, o.family);
  if (rc != 0)
    return rc;
  mp__deadline d = mp__deadline_from_timeout(timeout);
  int fd = mp__os_connect((struct sockaddr *)&a.ss, a.len, d.ns);
  if (fd < 0) {
    if (fd == MP_ENOENT)
      return mp__fail(MP_ENOENT, "no Unix socket at %.200s", address);
    if (fd == MP_ECONNREFUSED)
      return mp__fail(MP_ECONNREFUSED, "nothing listens at %.200s", address);
    if (fd == MP_ETIMEDOUT)
      return mp__fail(MP_ETIMEDOUT, "connecting to %.200s took too long",
                      address);
    return fd;
  }
  mp__os_nodelay(fd);
  if (o.authkey != NULL) {
    mp__hs h;
    int64_t deadline = auth.timeout_ns == INT64_MAX
                           ? INT64_MAX
                           : mp__os_now_ns() + auth.timeout_ns;
    mp__hs_init(&h, fd, true, o.authkey, o.authkey_len, &auth, MP__HS_CLIENT,
                deadline);
    rc = mp__hs_run(&h);
    if (rc != 0) {
      close(fd);
      return rc;
    }
  }
  rc = mp_connection_new(out, fd, NULL);
  if (rc != 0)
    close(fd);
  return rc;
}
