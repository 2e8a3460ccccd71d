/* multiproc/listener.h - Listener and Client, after Python's
 * multiprocessing.connection: reaching a process this program did not
 * start (a server on another host, a Python program) over a Unix socket or
 * TCP, with Python's authkey challenge/response handshake.
 *
 * A listener binds an address and accepts connections; a client connects
 * to one. Both ends are the existing mp_connection, so send_bytes,
 * recv_bytes, poll and mp_connection_wait work on them unchanged, and the
 * framing is byte for byte Python's.
 *
 * Addresses are text:
 *   "/run/app.sock", "./rel.sock"  a Unix socket path (any string that is
 *                                  not one of the forms below, too);
 *   "@name"                        a Linux abstract socket name (Python's
 *                                  address "\0name": '@' stands for the
 *                                  leading NUL, as ss(8) prints it);
 *   "host:port", "1.2.3.4:port"    TCP over IPv4 (a name resolves to its
 *                                  first IPv4 address, else IPv6);
 *   "[::1]:port"                   TCP over IPv6.
 * Port 0 lets the kernel pick; mp_listener_address reports the port it got.
 * An explicit family (mp_family) overrides the guess: MP_FAMILY_UNIX takes
 * "a:1" as a path. A NULL address makes a fresh one of the family: an
 * abstract "@mp-..." name for Unix (no file to clean up), "127.0.0.1:0"
 * for TCP.
 *
 * The handshake is Python's, both roles, byte-compatible with CPython 3.11
 * to 3.13: the side that accepts sends a challenge first ("#CHALLENGE#"
 * with "{sha256}" and 40 random bytes), checks the HMAC reply, answers
 * "#WELCOME#" or "#FAILURE#", then answers the peer's challenge. Replies
 * may use any digest Python allows (md5, sha256, sha384, sha3_256,
 * sha3_384) and the 16-byte HMAC-MD5 reply of CPython 3.11 (refused with
 * the strict option). A 20-byte challenge from CPython 3.11 is answered
 * with HMAC-MD5. Digests are compared in constant time.
 *
 * Beyond Python, the handshake never hangs: every handshake read has a
 * deadline (10 s unless changed), messages are limited to 256 bytes as in
 * Python, and a peer that sends nothing, sends garbage or has no key while
 * this side has one gets MP_EAUTH or MP_ETIMEDOUT (Python hangs there:
 * gh-88118, gh-123736). A listener runs the handshakes of several clients
 * at once, so one client that stalls does not hold up the others. No
 * message is delivered before authentication succeeds.
 *
 * Python's rules on when a key is used stay: a NULL authkey means no
 * handshake at all; an empty key (authkey non-NULL, length 0) still runs
 * the handshake, as CPython 3.13 does. The key is not taken from the
 * process record here (mp_process_authkey); managers do that.
 *
 * Threads and processes: one thread at a time calls mp_listener_accept.
 * A forked child inherits the listener and may accept on its copy (the
 * handshakes its parent had under way stay the parent's); one process at
 * a time should accept. Only the creator's close removes a socket file.
 * Descriptors are close-on-exec. */
#ifndef MULTIPROC_LISTENER_H
#define MULTIPROC_LISTENER_H

#include "common.h"
#include "connection.h"

#ifdef __cplusplus
extern "C" {
#endif

/* mp_family is Python's family argument: which kind of socket. */
typedef enum mp_family {
  MP_FAMILY_DEFAULT = 0, /* guessed from the address (see above) */
  MP_FAMILY_UNIX = 1,    /* Python's 'AF_UNIX' (paths, abstract names) */
  MP_FAMILY_INET = 2,    /* Python's 'AF_INET' */
  MP_FAMILY_INET6 = 3    /* Python's 'AF_INET6' */
} mp_family;

/* The default deadline of each handshake, in seconds. */
#define MP_HANDSHAKE_TIMEOUT 10.0
/* Handshake messages longer than this are refused, as in Python. */
#define MP_HANDSHAKE_MAX 256
/* The longest text form of an address (mp_listener_address). */
#define MP_ADDRESS_MAX 280

/* mp_auth_opts tunes the handshake. Zeroed or NULL options: Python's
 * behaviour with a 10 s deadline. */
typedef struct mp_auth_opts {
  double timeout;     /* each handshake's deadline in seconds; 0: the default
                         MP_HANDSHAKE_TIMEOUT; MP_FOREVER: none (as Python) */
  const char *digest; /* digest of the challenges sent: NULL "sha256", or
                         "md5", "sha384", "sha3_256", "sha3_384" */
  int strict; /* nonzero: refuse the legacy 16-byte HMAC-MD5 reply (which
                 CPython 3.11 clients send) and 20-byte MD5 challenges */
} mp_auth_opts;

typedef struct mp_listener mp_listener;

/* mp_listener_opts holds the optional settings of mp_listener_new. */
typedef struct mp_listener_opts {
  mp_family family;    /* 0: guessed from the address */
  int backlog;         /* listen(2) backlog; 0: Python's default, 1 */
  const void *authkey; /* NULL: no handshake; else the key (copied) */
  size_t authkey_len;  /* its length in bytes (0 is a valid empty key) */
  mp_auth_opts auth;   /* handshake settings */
  int max_pending;     /* handshakes run at once; 0: 64. More clients wait in
                          the kernel's backlog. */
} mp_listener_opts;

/* mp_listener_new binds address and listens, as Python's
 * Listener(address, family, backlog, authkey). It copies the address and
 * the key. An address in use (a Unix path that exists, a busy port) is
 * refused with MP_EEXIST, as Python raises OSError(EADDRINUSE). Returns 0;
 * MP_EINVAL (NULL out, an address that does not parse, a Unix path over 107
 * bytes, an unknown digest, a negative backlog: the detail says which);
 * MP_ENOENT (a host name that does not resolve); MP_EEXIST; MP_EACCES;
 * MP_ENOMEM; -errno of socket/bind/listen. */
MP_EXTERN int mp_listener_new(mp_listener **out, const char *address,
                              const mp_listener_opts *opts);

/* mp_listener_accept waits up to timeout seconds for a client and returns
 * its end in *out, authenticated when the listener has a key, as Python's
 * accept(). The caller owns *out (mp_connection_free). Clients whose
 * handshake has not finished are kept and carried on by the next call, so
 * a stalled client never delays another. Returns 0; MP_ETIMEDOUT (no
 * client was ready in time; MP_EAGAIN for timeout 0); MP_EAUTH (a
 * client's handshake failed: wrong key, garbage, a message over 256
 * bytes, the peer closed or its handshake deadline passed; that client is
 * closed, the detail says why, call again for the next); MP_ESTATE
 * (closed); MP_EINVAL (NULL, NaN timeout); MP_EMFILE; MP_ENOMEM. */
MP_EXTERN int mp_listener_accept(mp_listener *l, mp_connection **out,
                                 double timeout);

/* mp_listener_close stops listening, as Python's close(): it closes the
 * socket and every unfinished handshake, and removes a Unix socket file
 * the listener created (only in the creating process). Idempotent;
 * returns 0, MP_EINVAL for NULL. Connections already accepted stay open. */
MP_EXTERN int mp_listener_close(mp_listener *l);

/* mp_listener_free closes l if open and frees it. NULL is a no-op. */
MP_EXTERN void mp_listener_free(mp_listener *l);

/* mp_listener_address returns the bound address as text (Python's
 * address), with the port the kernel picked: "127.0.0.1:43121",
 * "[::1]:43121", "/tmp/x.sock", "@name". Borrowed until l is freed; ""
 * for NULL. */
MP_EXTERN const char *mp_listener_address(const mp_listener *l);

/* mp_listener_last_accepted returns the address of the last client
 * accepted (Python's last_accepted): "127.0.0.1:50312" for TCP, the
 * peer's path for Unix sockets ("" when the client is unnamed, the usual
 * case). Borrowed until the next accept; "" before any, and for NULL. */
MP_EXTERN const char *mp_listener_last_accepted(const mp_listener *l);

/* mp_listener_fileno returns the listening descriptor (borrowed), MP_ESTATE
 * once closed, MP_EINVAL for NULL. mp_listener_family returns the family
 * in use (MP_FAMILY_DEFAULT for NULL). */
MP_EXTERN int mp_listener_fileno(const mp_listener *l);
MP_EXTERN mp_family mp_listener_family(const mp_listener *l);

/* mp_client_opts holds the optional settings of mp_client. */
typedef struct mp_client_opts {
  mp_family family;    /* 0: guessed from the address */
  const void *authkey; /* NULL: no handshake; else the key (borrowed for
                          the call) */
  size_t authkey_len;
  mp_auth_opts auth; /* handshake settings (auth.timeout bounds each read) */
} mp_client_opts;

/* mp_client connects to address, as Python's Client(address, family,
 * authkey), and runs the handshake when a key is given (it answers the
 * server's challenge, then challenges the server). timeout bounds the
 * connect (MP_FOREVER: the system's own connect timeout); the handshake
 * has its own deadline (opts->auth.timeout). The caller owns *out.
 * Returns 0; MP_ETIMEDOUT (the connect or a handshake read took too
 * long); MP_ECONNREFUSED; MP_ENOENT (no such Unix socket, or a host that
 * does not resolve); MP_EAUTH (the server refused our key, or sent
 * something that is not Python's handshake: the detail says which);
 * MP_EINVAL (NULL, bad address, unknown digest); MP_ENOMEM; -errno. */
MP_EXTERN int mp_client(mp_connection **out, const char *address,
                        const mp_client_opts *opts, double timeout);

/* mp_connection_deliver_challenge runs Python's deliver_challenge on an
 * open connection c: it sends a challenge, checks the peer's reply against
 * key (keylen bytes, borrowed for the call) and sends "#WELCOME#" or
 * "#FAILURE#". mp_connection_answer_challenge is Python's
 * answer_challenge: it reads a challenge, replies with the HMAC and
 * expects "#WELCOME#". A server calls deliver then answer; a client answer
 * then deliver. Each read has the deadline of opts (NULL: 10 s). Returns 0;
 * MP_EAUTH (wrong key on either side, or a message that is not the
 * handshake: a reply too short or too long, no "#CHALLENGE#", an unknown
 * digest, over 256 bytes; the detail says which); MP_ETIMEDOUT (the peer
 * sent nothing in time); MP_ECLOSED (the peer closed); MP_EINVAL (NULL,
 * NULL key with keylen > 0, unknown digest); MP_ESTATE (c is closed or
 * holds a refused message); -errno. After a failure c's stream position is
 * unknown: close it. */
MP_EXTERN int mp_connection_deliver_challenge(mp_connection *c, const void *key,
                                              size_t keylen,
                                              const mp_auth_opts *opts);
MP_EXTERN int mp_connection_answer_challenge(mp_connection *c, const void *key,
                                             size_t keylen,
                                             const mp_auth_opts *opts);

/* A listener in mp_connection_wait: ready when a client waits to be
 * accepted or a started handshake can go on (mp_listener_accept would
 * make progress without a new client arriving). */
#define MP_WAIT_LISTENER ((mp_wait_type)5)

static inline mp_waitable mp_waitable_listener(mp_listener *l) {
  mp_waitable w;
  w.type = MP_WAIT_LISTENER;
  w.object = l;
  w.fd = -1;
  return w;
}

#ifdef __cplusplus
}
#endif
#endif
