/* remote_client.c - the client side of channels across hosts (PyCSP's
 * Channel(..., connect=(host, port))): mp_channel_connect gives a channel
 * handle for a channel another process serves, and the ordinary calls
 * (mp_channel_reader/writer, read, write, poison, retire, stats, free)
 * reach the server through the hooks in segment.c and channel.c. Each end
 * has its own authenticated connection and is used by one thread at a
 * time (its mutex); poison and stats go over the handle's control
 * connection so that poison reaches an end blocked in another thread.
 * Every wait for the server is bounded: by the caller's timeout plus
 * CSP_REMOTE_GRACE_S, or by the end of stream a dead server leaves. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multiproc/process.h"
#include "remote_internal.h"

/* ---- one exchange -------------------------------------------------- */

/* exchange sends the request (req_len bytes at req) on conn and receives the
 * reply into buf (cap bytes), decoded into *rep. The reply is awaited up
 * to timeout (< 0: until the server answers or goes away) plus the grace.
 * Returns 0, or 1 when the server is gone or broke the protocol (the
 * detail says which): the connection is then unusable. */
static int exchange(mp_connection *conn, const uint8_t *req, size_t req_len,
                    uint8_t *buf, size_t cap, size_t read_cap,
                    double timeout, csp_wire_rep *rep) {
  uint32_t op = req[2];
  int rc = mp_connection_send_bytes(conn, req, 0, req_len);
  if (rc != 0) {
    mp__fail(rc, "sending to the channel's server failed");
    return 1;
  }
  double wait = timeout < 0 ? MP_FOREVER : timeout + CSP_REMOTE_GRACE_S;
  rc = mp_connection_poll(conn, wait);
  if (rc == 0) {
    mp__fail(MP_ETIMEDOUT, "the channel's server did not answer in time");
    return 1;
  }
  size_t len = 0;
  if (rc > 0)
    rc = mp_connection_recv_bytes(conn, buf, cap, &len);
  if (rc != 0) {
    mp__fail(rc, "the channel's server is gone (%s)", mp_err_name(rc));
    return 1;
  }
  if (mp__csp_wire_rep_decode(buf, len, op, read_cap, rep) != 0)
    return 1;
  return 0;
}

static int lost(_Atomic int *flag) {
  atomic_store(flag, 1);
  return mp__fail(MP_EPOISONED, "the channel's server is gone");
}

/* ---- connecting ------------------------------------------------------ */

static int dial(csp_remote *r, uint32_t kind, mp_connection **out,
                uint32_t *msg_max, uint32_t *buffer) {
  mp_client_opts co = {.authkey = r->key, .authkey_len = r->key_len,
                       .auth = r->auth};
  mp_connection *conn = NULL;
  int rc = mp_client(&conn, r->address, &co, r->connect_timeout);
  if (rc != 0)
    return rc;
  uint8_t hdr[CSP_WIRE_REQ_HDR], buf[CSP_WIRE_REP_HDR + 32];
  mp__csp_wire_req_encode(hdr, CSP_OP_HELLO, kind, 0);
  csp_wire_rep rep;
  if (exchange(conn, hdr, sizeof hdr, buf, sizeof buf, 0, r->connect_timeout,
               &rep) != 0) {
    char why[160];
    snprintf(why, sizeof why, "%s", mp_error_detail());
    mp_connection_free(conn);
    return mp__fail(MP_EPROTO, "the channel's server did not greet us: %s",
                    why);
  }
  if (rep.rc < 0) {
    mp_connection_free(conn);
    return mp__fail(rep.rc, "the channel's server refused to join us: %s",
                    mp_err_name(rep.rc));
  }
  uint32_t mm = mp__csp_wire_u32(rep.payload);
  uint32_t bu = mp__csp_wire_u32(rep.payload + 4);
  if (mm > CSP_MAX_MSG || bu > CSP_MAX_BUFFER) {
    mp_connection_free(conn);
    return mp__fail(MP_EPROTO, "the server's channel geometry (msg_max %u, "
                               "buffer %u) is out of range",
                    mm, bu);
  }
  *out = conn;
  if (msg_max != NULL)
    *msg_max = mm;
  if (buffer != NULL)
    *buffer = bu;
  return 0;
}

static void remote_destroy(csp_remote *r) {
  if (r == NULL)
    return;
  mp_connection_free(r->ctl);
  pthread_mutex_destroy(&r->mu);
  if (r->key != NULL) {
    memset(r->key, 0, r->key_len);
    mp__free(r->key);
  }
  mp__free(r->address);
  mp__free(r);
}

int mp_channel_connect(mp_channel **out, const char *address,
                       const mp_channel_connect_opts *opts) {
  mp_channel_connect_opts o = {0};
  if (opts != NULL)
    o = *opts;
  if (out == NULL || address == NULL)
    return mp__fail(MP_EINVAL, "out or address is NULL");
  if (o.authkey == NULL && o.authkey_len > 0)
    return mp__fail(MP_EINVAL, "authkey is NULL with authkey_len > 0");
  if (o.authkey_len > MP_AUTHKEY_MAX)
    return mp__fail(MP_EINVAL, "authkey of %zu bytes is over %d",
                    o.authkey_len, MP_AUTHKEY_MAX);
  int rc = mp__timeout_check(o.timeout);
  if (rc != 0)
    return rc;
  csp_remote *r = mp__calloc(1, sizeof *r);
  mp_channel *c = mp__calloc(1, sizeof *c);
  if (r == NULL || c == NULL || pthread_mutex_init(&r->mu, NULL) != 0) {
    mp__free(r);
    mp__free(c);
    return MP_ENOMEM;
  }
  r->connect_timeout = o.timeout == 0 ? MP_HANDSHAKE_TIMEOUT : o.timeout;
  r->auth = o.auth;
  r->address = mp__strdup(address);
  uint8_t key[MP_AUTHKEY_MAX];
  const void *k = o.authkey;
  size_t klen = o.authkey_len;
  if (k == NULL) {
    ssize_t n = mp_process_authkey(mp_current_process(), key, sizeof key);
    if (n < 0) {
      rc = (int)n;
      goto fail;
    }
    k = key;
    klen = (size_t)n;
  }
  r->key = mp__alloc(klen > 0 ? klen : 1);
  if (r->address == NULL || r->key == NULL) {
    rc = MP_ENOMEM;
    goto fail;
  }
  memcpy(r->key, k, klen);
  r->key_len = klen;
  memset(key, 0, sizeof key);
  rc = dial(r, CSP_JOIN_CONTROL, &r->ctl, &r->msg_max, &r->buffer);
  if (rc != 0)
    goto fail;
  c->remote = r;
  c->msg_max = r->msg_max;
  c->buffer = r->buffer;
  *out = c;
  return 0;
fail:
  memset(key, 0, sizeof key);
  remote_destroy(r);
  mp__free(c);
  return rc;
}

void mp__csp_remote_free(mp_channel *c) {
  remote_destroy(c->remote);
  mp__free(c);
}

/* ---- ends ------------------------------------------------------------ */

int mp__csp_remote_join(mp_channel *c, uint32_t kind, mp_channel_end **out) {
  csp_remote *r = c->remote;
  if (atomic_load(&r->lost))
    return mp__fail(MP_EPOISONED, "the channel's server is gone");
  mp_channel_end *e = mp__calloc(1, sizeof *e);
  csp_remote_end *re = mp__calloc(1, sizeof *re);
  size_t cap = CSP_WIRE_REQ_HDR + (size_t)r->msg_max;
  uint8_t *buf = mp__alloc(cap);
  if (e == NULL || re == NULL || buf == NULL ||
      pthread_mutex_init(&re->mu, NULL) != 0) {
    mp__free(e);
    mp__free(re);
    mp__free(buf);
    return MP_ENOMEM;
  }
  int rc = dial(r, kind == CSP_END_READER ? CSP_JOIN_READER : CSP_JOIN_WRITER,
                &re->conn, NULL, NULL);
  if (rc != 0) {
    pthread_mutex_destroy(&re->mu);
    mp__free(e);
    mp__free(re);
    mp__free(buf);
    return rc;
  }
  re->buf = buf;
  re->buf_cap = cap;
  e->ch = c;
  e->kind = kind;
  e->remote = re;
  *out = e;
  return 0;
}

void mp__csp_remote_end_free(mp_channel_end *e) {
  csp_remote_end *re = e->remote;
  /* Closing the connection is this end's "process ending": the server
   * leaves its end (retired, as an idle end that dies). */
  mp_connection_free(re->conn);
  pthread_mutex_destroy(&re->mu);
  mp__free(re->buf);
  mp__free(re);
  mp__free(e);
}

int mp__csp_remote_check(const mp_channel_end *e, uint32_t kind) {
  if (kind != 0 && e->kind != kind)
    return mp__fail(MP_EINVAL, "a %s end where a %s end is needed",
                    e->kind == CSP_END_READER ? "reader" : "writer",
                    kind == CSP_END_READER ? "reader" : "writer");
  if (atomic_load(&e->remote->lost) || atomic_load(&e->ch->remote->lost))
    return mp__fail(MP_EPOISONED, "the channel's server is gone");
  if (atomic_load(&e->remote->retired))
    return mp__fail(MP_ERETIRED, "this end has retired");
  return 0;
}

int mp__csp_remote_op(mp_channel_end *e, uint32_t dir, void *buf, size_t cap,
                      const void *msg, size_t len, double timeout,
                      size_t *received) {
  csp_remote_end *re = e->remote;
  pthread_mutex_lock(&re->mu);
  int rc = mp__csp_remote_check(e, dir == CSP_DIR_READ ? CSP_END_READER
                                                      : CSP_END_WRITER);
  if (rc != 0)
    goto out;
  uint8_t *hdr = re->buf;
  csp_wire_rep rep;
  if (dir == CSP_DIR_READ) {
    size_t ask = MP__MIN(cap, (size_t)e->ch->msg_max);
    mp__csp_wire_req_encode(hdr, CSP_OP_READ, (uint32_t)ask, timeout);
    if (exchange(re->conn, hdr, CSP_WIRE_REQ_HDR, re->buf, re->buf_cap, ask, timeout,
                 &rep) != 0) {
      rc = lost(&re->lost);
      goto out;
    }
    rc = rep.rc;
    if (rc >= 0) {
      if (rep.payload_len > 0)
        memcpy(buf, rep.payload, rep.payload_len);
      *received = rep.payload_len;
      rc = 0;
    }
  } else {
    mp__csp_wire_req_encode(hdr, CSP_OP_WRITE, 0, timeout);
    if (len > 0)
      memcpy(hdr + CSP_WIRE_REQ_HDR, msg, len);
    if (exchange(re->conn, hdr, CSP_WIRE_REQ_HDR + len, re->buf,
                 re->buf_cap, 0, timeout, &rep) != 0) {
      rc = lost(&re->lost);
      goto out;
    }
    rc = rep.rc;
  }
  if (rc == MP_EPROTO)
    rc = mp__fail(MP_EPROTO, "the channel's server refused our request");
  else if (rc == MP_ERETIRED && timeout != 0)
    rc = mp__fail(MP_ERETIRED, "the other side of the channel has retired");
out:
  pthread_mutex_unlock(&re->mu);
  return rc;
}

int mp__csp_remote_write(mp_channel_end *w, const void *msg, size_t len,
                         double timeout) {
  int rc = mp__csp_remote_check(w, CSP_END_WRITER);
  if (rc != 0)
    return rc;
  if (msg == NULL && len > 0)
    return mp__fail(MP_EINVAL, "msg is NULL");
  if (len > w->ch->msg_max)
    return mp__fail(MP_ETOOBIG, "message of %zu bytes, msg_max is %u", len,
                    w->ch->msg_max);
  if ((rc = mp__timeout_check(timeout)) != 0)
    return rc;
  return mp__csp_remote_op(w, CSP_DIR_WRITE, NULL, 0, msg, len, timeout,
                           NULL);
}

ssize_t mp__csp_remote_read(mp_channel_end *r, void *buf, size_t cap,
                            double timeout) {
  int rc = mp__csp_remote_check(r, CSP_END_READER);
  if (rc != 0)
    return rc;
  if (buf == NULL && cap > 0)
    return mp__fail(MP_EINVAL, "buf is NULL");
  if ((rc = mp__timeout_check(timeout)) != 0)
    return rc;
  size_t got = 0;
  rc = mp__csp_remote_op(r, CSP_DIR_READ, buf, cap, NULL, 0, timeout, &got);
  return rc != 0 ? rc : (ssize_t)got;
}

/* ---- poison, retire, stats ------------------------------------------ */

/* control runs a POISON or STATS exchange on the control connection. */
static int control(csp_remote *r, uint32_t op, uint8_t *buf, size_t cap,
                   csp_wire_rep *rep) {
  pthread_mutex_lock(&r->mu);
  int rc = 0;
  if (atomic_load(&r->lost)) {
    rc = mp__fail(MP_EPOISONED, "the channel's server is gone");
  } else {
    uint8_t hdr[CSP_WIRE_REQ_HDR];
    mp__csp_wire_req_encode(hdr, op, 0, 0);
    if (exchange(r->ctl, hdr, sizeof hdr, buf, cap, 0, r->connect_timeout,
                 rep) != 0)
      rc = lost(&r->lost);
    else
      rc = rep->rc;
  }
  pthread_mutex_unlock(&r->mu);
  return rc;
}

int mp__csp_remote_poison(mp_channel_end *e) {
  uint8_t buf[CSP_WIRE_REP_HDR + 32];
  csp_wire_rep rep;
  /* A server that is gone has nothing left to poison: our calls already
   * return MP_EPOISONED. */
  (void)control(e->ch->remote, CSP_OP_POISON, buf, sizeof buf, &rep);
  return 0;
}

int mp__csp_remote_retire(mp_channel_end *e) {
  csp_remote_end *re = e->remote;
  pthread_mutex_lock(&re->mu);
  if (!atomic_load(&re->retired) && !atomic_load(&re->lost)) {
    uint8_t hdr[CSP_WIRE_REQ_HDR];
    csp_wire_rep rep;
    mp__csp_wire_req_encode(hdr, CSP_OP_RETIRE, 0, 0);
    if (exchange(re->conn, hdr, sizeof hdr, re->buf, re->buf_cap, 0,
                 e->ch->remote->connect_timeout, &rep) != 0)
      (void)lost(&re->lost);
    atomic_store(&re->retired, 1);
  }
  pthread_mutex_unlock(&re->mu);
  return 0;
}

int mp__csp_remote_stats(mp_channel *c, mp_channel_stats *st) {
  uint8_t buf[CSP_WIRE_REP_HDR + 32];
  csp_wire_rep rep;
  int rc = control(c->remote, CSP_OP_STATS, buf, sizeof buf, &rep);
  if (rc != 0)
    return rc;
  const uint8_t *p = rep.payload;
  st->readers = mp__csp_wire_u32(p);
  st->writers = mp__csp_wire_u32(p + 4);
  st->buffered = mp__csp_wire_u32(p + 8);
  st->poisoned = mp__csp_wire_u32(p + 12) != 0;
  st->readers_retired = mp__csp_wire_u32(p + 16) != 0;
  st->writers_retired = mp__csp_wire_u32(p + 20) != 0;
  return 0;
}
