/* net_internal.h - what the files of src/net/ share: text addresses
 * (address.c), the handshake engine (handshake.c) that the listener,
 * the client and the public deliver/answer functions drive, and the
 * listener's descriptor for mp_connection_wait (wait.c).
 *
 * Calls go downward: listener.c and client.c use handshake.c and
 * address.c; those two use only the os layer and libcrypto. */
#ifndef MP_NET_INTERNAL_H
#define MP_NET_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../internal.h"
#include "multiproc/listener.h"

/* ---- address.c -----------------------------------------------------------
 * mp__address is a parsed address: a socket address ready for bind or
 * connect. */
typedef struct mp__address {
  mp_family family;
  struct sockaddr_storage ss;
  socklen_t len;
} mp__address;

/* mp__address_parse parses text (see listener.h) under family (0: guess)
 * into *a, resolving a host name. Returns 0; MP_EINVAL (with a detail);
 * MP_ENOENT (a name that does not resolve). */
int mp__address_parse(mp__address *a, const char *text, mp_family family);

/* mp__address_format writes the text form of the socket address ss (len
 * bytes) into out (MP_ADDRESS_MAX bytes): "1.2.3.4:80", "[::1]:80",
 * "/path", "@abstract", "" for an unnamed Unix socket. */
void mp__address_format(const struct sockaddr_storage *ss, socklen_t len,
                        char *out);

/* ---- handshake.c ---------------------------------------------------------
 * One handshake is a little state machine over a blocking stream
 * descriptor: it sends when it must (messages are small: a socket never
 * blocks on them) and reads only what has arrived, one frame exactly
 * (never a byte past the handshake, which belongs to the connection).
 * The listener steps many of them as their descriptors become readable;
 * the client and the public functions step one until it ends. */
enum mp__hs_role {
  MP__HS_SERVER = 1,  /* deliver, then answer (Listener.accept) */
  MP__HS_CLIENT = 2,  /* answer, then deliver (Client) */
  MP__HS_DELIVER = 3, /* deliver only */
  MP__HS_ANSWER = 4,  /* answer only */
};

/* mp__auth is resolved mp_auth_opts. */
typedef struct mp__auth {
  int64_t timeout_ns; /* INT64_MAX: none */
  int digest;         /* index of the challenges' digest */
  bool strict;
} mp__auth;

/* mp__auth_resolve checks opts (NULL: defaults). MP_EINVAL for an unknown
 * digest or a NaN timeout. */
int mp__auth_resolve(mp__auth *out, const mp_auth_opts *opts);

typedef struct mp__hs {
  int fd;
  bool is_socket;
  const unsigned char *key; /* borrowed */
  size_t keylen;
  mp__auth auth;
  int64_t deadline; /* absolute; the whole handshake */
  uint8_t steps[2]; /* 'D'eliver / 'A'nswer */
  uint8_t nsteps, step, phase;
  bool need_send;
  /* The challenge this side sent (without "#CHALLENGE#"): the MAC covers
   * it. */
  unsigned char sent[64];
  size_t sent_len;
  /* The frame being read: header bytes, then payload bytes. */
  unsigned char hdr[4];
  size_t hdr_have;
  size_t in_len, in_have;
  unsigned char in[MP_HANDSHAKE_MAX];
} mp__hs;

/* mp__hs_init prepares a handshake of role on fd with key (borrowed for
 * the handshake's life), ending at the absolute deadline. */
void mp__hs_init(mp__hs *h, int fd, bool is_socket, const void *key,
                 size_t keylen, const mp__auth *auth, int role,
                 int64_t deadline);

/* mp__hs_step makes what progress it can without waiting: sends what is
 * due, reads what has arrived. Returns 1 when the handshake succeeded, 0
 * when it waits for the peer (poll fd for input), or an error with a
 * detail: MP_EAUTH, MP_ECLOSED, -errno. Does not look at the deadline. */
int mp__hs_step(mp__hs *h);

/* mp__hs_run steps h until it ends, waiting for input up to its deadline.
 * Returns 0, MP_ETIMEDOUT, or mp__hs_step's errors. */
int mp__hs_run(mp__hs *h);

/* ---- listener.c, for wait.c ---------------------------------------------
 * mp__listener_wait_fd returns the descriptor to poll for l (readable when
 * accept can make progress) and sets *ready_now when a handshake's
 * deadline has passed (accept would report it at once). MP_EINVAL (NULL),
 * MP_ESTATE (closed). */
int mp__listener_wait_fd(const mp_listener *l, bool *ready_now);

#endif
