/* handshake.c - Python's authkey challenge/response, both roles, as a
 * state machine that never waits on its own, plus the public
 * mp_connection_deliver_challenge and mp_connection_answer_challenge.
 *
 * DESIGN
 * The bytes are CPython's (multiprocessing/connection.py, 3.11 to 3.13;
 * see WIRE.md 1.3-1.5). Deliver: send "#CHALLENGE#" + "{sha256}" + 40
 * random bytes; read the reply (at most 256 bytes); check it; send
 * "#WELCOME#" or "#FAILURE#". Answer: read a challenge; reply with
 * "{name}" + HMAC-name over the whole challenge payload (prefix included),
 * or the raw 16-byte HMAC-MD5 when the payload is 16 or 20 bytes long
 * (CPython 3.11's legacy challenge); expect "#WELCOME#". A reply of 16 or
 * 20 bytes is legacy HMAC-MD5 over our whole challenge, which is how a
 * CPython 3.11 client answers a "{sha256}" challenge; the strict option
 * refuses it. MACs are compared with CRYPTO_memcmp.
 *
 * The machine reads one frame at a time and never past it: after the
 * last handshake message the peer may already have sent application
 * data, which belongs to the connection (which has no read-ahead of its
 * own). Reads take only what has arrived (MSG_DONTWAIT), so a listener can
 * step many handshakes from one poll; sends are blocking writes of at most
 * 70 bytes each, which a fresh socket's buffer always takes. The deadline
 * covers the whole handshake; mp__hs_step never looks at it, mp__hs_run
 * and the listener do. Nothing the peer says is trusted: a length over
 * 256 (or negative, or the 8-byte form) ends the handshake before a byte
 * of payload is read. */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../connection_internal.h"
#include "../os/io.h"
#include "net_internal.h"

#define CHALLENGE "#CHALLENGE#"
#define WELCOME "#WELCOME#"
#define FAILURE "#FAILURE#"
#define CHALLENGE_LEN 11
#define NONCE_LEN 40    /* Python 3.12's MESSAGE_LENGTH */
#define LEGACY_NONCE 20 /* Python 3.11's MESSAGE_LENGTH */
#define MD5_LEN 16
#define MAX_NAME 8 /* the longest allowed digest name */
#define MAX_MAC 64

/* The digests Python allows (_ALLOWED_DIGESTS), and OpenSSL's names. */
static const struct {
  const char *name;
  const char *ossl;
  size_t size;
} digests[] = {
    {"md5", "MD5", 16},           {"sha256", "SHA256", 32},
    {"sha384", "SHA384", 48},     {"sha3_256", "SHA3-256", 32},
    {"sha3_384", "SHA3-384", 48},
};
#define DIGEST_MD5 0
#define DIGEST_SHA256 1

static int digest_find(const char *name, size_t len) {
  for (size_t i = 0; i < MP__ARRAY_SIZE(digests); i++)
    if (strlen(digests[i].name) == len &&
        memcmp(digests[i].name, name, len) == 0)
      return (int)i;
  return -1;
}

int mp__auth_resolve(mp__auth *out, const mp_auth_opts *opts) {
  mp_auth_opts o = {0};
  if (opts != NULL)
    o = *opts;
  if (o.timeout != o.timeout)
    return mp__fail(MP_EINVAL, "timeout is NaN");
  mp__auth a = {.digest = DIGEST_SHA256, .strict = o.strict != 0};
  if (o.digest != NULL) {
    a.digest = digest_find(o.digest, strlen(o.digest));
    if (a.digest < 0)
      return mp__fail(MP_EINVAL,
                      "digest '%.20s' is not md5, sha256, sha384, sha3_256 "
                      "or sha3_384",
                      o.digest);
  }
  double t = o.timeout == 0 ? MP_HANDSHAKE_TIMEOUT : o.timeout;
  a.timeout_ns = t < 0 || t >= 9.0e9 ? INT64_MAX : (int64_t)(t * 1e9);
  *out = a;
  return 0;
}

/* hmac computes HMAC-digests[d] of data under key into out. */
static int hmac(int d, const unsigned char *key, size_t keylen,
                const unsigned char *data, size_t len, unsigned char *out) {
  static const unsigned char empty = 0;
  size_t outlen = 0;
  mp__crypto_init();
  if (EVP_Q_mac(NULL, "HMAC", NULL, digests[d].ossl, NULL,
                keylen > 0 ? key : &empty, keylen, data, len, out, MAX_MAC,
                &outlen) == NULL ||
      outlen != digests[d].size)
    return mp__fail(MP_EAUTH, "HMAC-%s is not available in this libcrypto",
                    digests[d].name);
  return 0;
}

void mp__hs_init(mp__hs *h, int fd, bool is_socket, const void *key,
                 size_t keylen, const mp__auth *auth, int role,
                 int64_t deadline) {
  memset(h, 0, offsetof(mp__hs, in));
  h->fd = fd;
  h->is_socket = is_socket;
  h->key = key;
  h->keylen = keylen;
  h->auth = *auth;
  h->deadline = deadline;
  switch (role) {
  case MP__HS_SERVER:
    h->steps[0] = 'D', h->steps[1] = 'A', h->nsteps = 2;
    break;
  case MP__HS_CLIENT:
    h->steps[0] = 'A', h->steps[1] = 'D', h->nsteps = 2;
    break;
  case MP__HS_DELIVER:
    h->steps[0] = 'D', h->nsteps = 1;
    break;
  default:
    h->steps[0] = 'A', h->nsteps = 1;
    break;
  }
}

/* send_msg sends one framed message (a and b concatenated). */
static int send_msg(mp__hs *h, const void *a, size_t alen, const void *b,
                    size_t blen) {
  unsigned char hdr[4] = {0, 0, (unsigned char)((alen + blen) >> 8),
                          (unsigned char)(alen + blen)};
  struct iovec iov[3] = {{hdr, 4}, {(void *)a, alen}, {(void *)b, blen}};
  int rc = mp__os_write_all(h->fd, h->is_socket, iov, blen > 0 ? 3 : 2);
  if (rc == MP_EPIPE || rc == MP_ECONNRESET)
    return mp__fail(MP_ECLOSED, "the peer closed during the handshake");
  return rc;
}

/* read_some reads what has arrived, up to len bytes, without waiting.
 * Returns the count, 0 when nothing has arrived, MP_ECLOSED at end of
 * stream, or -errno. */
static ssize_t read_some(mp__hs *h, void *p, size_t len) {
  ssize_t n;
  if (h->is_socket) {
    do
      n = recv(h->fd, p, len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0)
      n = errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    else if (n == 0)
      n = MP_ECLOSED;
  } else {
    struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
    int r = mp__os_poll(&pfd, 1, 0);
    if (r <= 0)
      return r;
    n = mp__os_read_some(h->fd, p, len);
    if (n == 0)
      n = MP_ECLOSED;
  }
  if (n == MP_ECLOSED || n == MP_ECONNRESET)
    return mp__fail(MP_ECLOSED, "the peer closed during the handshake");
  return n;
}

/* read_frame reads the next frame into h->in. Returns 1 when it is whole,
 * 0 when more must arrive, or an error. */
static int read_frame(mp__hs *h) {
  while (h->hdr_have < 4) {
    ssize_t n = read_some(h, h->hdr + h->hdr_have, 4 - h->hdr_have);
    if (n <= 0)
      return (int)n;
    h->hdr_have += (size_t)n;
    if (h->hdr_have == 4) {
      int32_t len =
          (int32_t)((uint32_t)h->hdr[0] << 24 | (uint32_t)h->hdr[1] << 16 |
                    (uint32_t)h->hdr[2] << 8 | h->hdr[3]);
      if (len < 0 || len > MP_HANDSHAKE_MAX)
        return mp__fail(MP_EAUTH,
                        "handshake message announces %ld bytes (at most "
                        "%d): the peer is not doing the handshake",
                        (long)len, MP_HANDSHAKE_MAX);
      h->in_len = (size_t)len;
      h->in_have = 0;
    }
  }
  while (h->in_have < h->in_len) {
    ssize_t n = read_some(h, h->in + h->in_have, h->in_len - h->in_have);
    if (n <= 0)
      return (int)n;
    h->in_have += (size_t)n;
  }
  h->hdr_have = 0; /* the next read starts a new frame */
  return 1;
}

/* split_digest is Python's _get_digest_name_and_payload: *d becomes the
 * digest index (-1: legacy HMAC-MD5, the message has 16 or 20 bytes) and
 * *off where the payload starts. MP_EAUTH when the message is neither. */
static int split_digest(const unsigned char *m, size_t len, int *d,
                        size_t *off) {
  if (len == MD5_LEN || len == LEGACY_NONCE) {
    *d = -1;
    *off = 0;
    return 0;
  }
  if (len > 0 && m[0] == '{') {
    for (size_t i = 1; i < len && i <= MAX_NAME + 1; i++) {
      if (m[i] == '}') {
        *d = digest_find((const char *)m + 1, i - 1);
        if (*d >= 0) {
          *off = i + 1;
          return 0;
        }
        break;
      }
    }
  }
  return mp__fail(MP_EAUTH,
                  "handshake message of %zu bytes has no known {digest} "
                  "prefix and is not a legacy MD5 one",
                  len);
}

/* send_challenge: the first half of deliver. */
static int send_challenge(mp__hs *h) {
  const char *name = digests[h->auth.digest].name;
  size_t nl = strlen(name);
  h->sent[0] = '{';
  memcpy(h->sent + 1, name, nl);
  h->sent[1 + nl] = '}';
  mp__crypto_init();
  if (RAND_bytes(h->sent + 2 + nl, NONCE_LEN) != 1)
    return mp__fail(MP_EIO, "RAND_bytes failed: no random challenge");
  h->sent_len = 2 + nl + NONCE_LEN;
  return send_msg(h, CHALLENGE, CHALLENGE_LEN, h->sent, h->sent_len);
}

/* verify_reply: the second half of deliver, with the reply in h->in. */
static int verify_reply(mp__hs *h) {
  int d;
  size_t off;
  int rc = split_digest(h->in, h->in_len, &d, &off);
  if (rc == 0 && d < 0) {
    if (h->auth.strict)
      rc = mp__fail(MP_EAUTH, "legacy HMAC-MD5 reply refused (strict)");
    d = DIGEST_MD5;
  }
  unsigned char mac[MAX_MAC];
  if (rc == 0)
    rc = hmac(d, h->key, h->keylen, h->sent, h->sent_len, mac);
  if (rc == 0 && h->in_len - off != digests[d].size)
    rc = mp__fail(MP_EAUTH, "reply carries %zu bytes of %s, expected %zu",
                  h->in_len - off, digests[d].name, digests[d].size);
  if (rc == 0 && CRYPTO_memcmp(mac, h->in + off, digests[d].size) != 0)
    rc = mp__fail(MP_EAUTH, "the peer's digest is wrong: the authkeys differ");
  if (rc != 0) {
    /* Tell the peer, as Python does; it may be gone already. */
    char keep[256];
    snprintf(keep, sizeof keep, "%s", mp_error_detail());
    (void)send_msg(h, FAILURE, sizeof FAILURE - 1, NULL, 0);
    return mp__fail(rc, "%s", keep);
  }
  return send_msg(h, WELCOME, sizeof WELCOME - 1, NULL, 0);
}

/* answer: the first half of answer, with the challenge in h->in. */
static int answer(mp__hs *h) {
  if (h->in_len < CHALLENGE_LEN || memcmp(h->in, CHALLENGE, CHALLENGE_LEN) != 0)
    return mp__fail(MP_EAUTH, "expected a #CHALLENGE# message: the peer is not "
                              "doing the handshake (does it have an authkey?)");
  const unsigned char *m = h->in + CHALLENGE_LEN;
  size_t len = h->in_len - CHALLENGE_LEN;
  if (len < LEGACY_NONCE)
    return mp__fail(MP_EAUTH, "challenge too short: %zu bytes", len);
  int d;
  size_t off;
  int rc = split_digest(m, len, &d, &off);
  if (rc != 0)
    return rc;
  unsigned char mac[MAX_MAC];
  if (d < 0) {
    if (h->auth.strict)
      return mp__fail(MP_EAUTH, "legacy HMAC-MD5 challenge refused (strict)");
    rc = hmac(DIGEST_MD5, h->key, h->keylen, m, len, mac);
    return rc != 0 ? rc : send_msg(h, mac, MD5_LEN, NULL, 0);
  }
  rc = hmac(d, h->key, h->keylen, m, len, mac);
  if (rc != 0)
    return rc;
  /* The reply names the digest: "{sha256}" + MAC. */
  return send_msg(h, m, off, mac, digests[d].size);
}

static int expect_welcome(mp__hs *h) {
  if (h->in_len == sizeof WELCOME - 1 &&
      memcmp(h->in, WELCOME, sizeof WELCOME - 1) == 0)
    return 0;
  if (h->in_len == sizeof FAILURE - 1 &&
      memcmp(h->in, FAILURE, sizeof FAILURE - 1) == 0)
    return mp__fail(MP_EAUTH,
                    "the peer refused our digest: the authkeys differ");
  return mp__fail(MP_EAUTH, "expected #WELCOME#, got %zu other bytes",
                  h->in_len);
}

int mp__hs_step(mp__hs *h) {
  for (;;) {
    if (h->step == h->nsteps)
      return 1;
    bool deliver = h->steps[h->step] == 'D';
    int rc;
    if (deliver && h->phase == 0) {
      rc = send_challenge(h);
      if (rc != 0)
        return rc;
      h->phase = 1;
      continue;
    }
    rc = read_frame(h);
    if (rc <= 0)
      return rc;
    if (deliver) {
      rc = verify_reply(h);
    } else if (h->phase == 0) {
      rc = answer(h);
    } else {
      rc = expect_welcome(h);
    }
    if (rc != 0)
      return rc;
    if (deliver || h->phase == 1) {
      h->step++;
      h->phase = 0;
    } else {
      h->phase = 1;
    }
  }
}

int mp__hs_run(mp__hs *h) {
  for (;;) {
    int rc = mp__hs_step(h);
    if (rc != 0)
      return rc == 1 ? 0 : rc;
    struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
    rc = mp__os_poll(&pfd, 1, h->deadline);
    if (rc < 0)
      return rc;
    if (rc == 0)
      return mp__fail(MP_ETIMEDOUT,
                      "the peer sent no handshake message in time (does it "
                      "expect an authkey?)");
  }
}

/* ---- on an open connection ---------------------------------------------- */

static int on_connection(mp_connection *c, const void *key, size_t keylen,
                         const mp_auth_opts *opts, int role) {
  if (c == NULL || (key == NULL && keylen > 0))
    return mp__fail(MP_EINVAL, c == NULL ? "connection is NULL"
                                         : "key is NULL with keylen > 0");
  mp__auth auth;
  int rc = mp__auth_resolve(&auth, opts);
  if (rc != 0)
    return rc;
  bool waiting = false;
  int fd = mp__connection_wait_fd(c, &waiting);
  if (fd < 0)
    return fd;
  if (waiting)
    return mp__fail(MP_ESTATE, "the connection holds an unread message");
  if (!mp_connection_writable(c))
    return mp__fail(MP_EBADF, "the connection cannot send");
  mp__hs h;
  int64_t deadline = auth.timeout_ns == INT64_MAX
                         ? INT64_MAX
                         : mp__os_now_ns() + auth.timeout_ns;
  mp__hs_init(&h, fd, mp__os_fd_kind(fd) == 1, key, keylen, &auth, role,
              deadline);
  return mp__hs_run(&h);
}

int mp_connection_deliver_challenge(mp_connection *c, const void *key,
                                    size_t keylen, const mp_auth_opts *opts) {
  return on_connection(c, key, keylen, opts, MP__HS_DELIVER);
}

int mp_connection_answer_challenge(mp_connection *c, const void *key,
                                   size_t keylen, const mp_auth_opts *opts) {
  return on_connection(c, key, keylen, opts, MP__HS_ANSWER);
}
