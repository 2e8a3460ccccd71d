/* remote_server.c - serving a channel across hosts (PyCSP's ChannelHome):
 * mp_channel_serve listens on an address with an authkey and carries out
 * remote clients' requests on the channel it was given. One accept thread
 * takes clients; each connection has a thread that joins, for a remote
 * end, an end of its own on the channel and runs the client's reads and
 * writes with the ordinary local calls, in slices of CSP_REMOTE_SLICE_S
 * between which it checks that the client is still there (see the DESIGN
 * in remote_internal.h). A client that goes away leaves its end: retired,
 * or the channel poisoned when it went away inside a write. Every request
 * is checked (remote_wire.c) before it is used; a malformed one closes its
 * connection. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "multiproc/process.h"
#include "remote_internal.h"

#define DEFAULT_MAX_CLIENTS 64

typedef struct srv_conn {
  struct mp_channel_server *srv;
  mp_connection *c;
  pthread_t thread;
  mp_channel_end *end;
  uint8_t *buf;
  size_t cap;
  _Atomic int done;
  struct srv_conn *next;
} srv_conn;

struct mp_channel_server {
  mp_channel *ch; /* borrowed */
  mp_listener *l;
  pthread_t acceptor;
  bool acceptor_started;
  _Atomic int stop;
  pthread_mutex_t mu; /* guards conns */
  srv_conn *conns;
  unsigned nconns, max_clients;
  double hello_timeout;
  char address[MP_ADDRESS_MAX];
};

/* ---- one connection -------------------------------------------------- */

static int send_rep(srv_conn *k, uint32_t op, int32_t rc, const void *payload,
                    size_t plen) {
  /* payload, when any, sits at k->buf + CSP_WIRE_REP_HDR already, or is
   * small and copied there. */
  if (plen > 0 && payload != k->buf + CSP_WIRE_REP_HDR)
    memcpy(k->buf + CSP_WIRE_REP_HDR, payload, plen);
  mp__csp_wire_rep_encode(k->buf, op, rc);
  return mp_connection_send_bytes(k->c, k->buf, 0, CSP_WIRE_REP_HDR + plen);
}

/* next_request waits for the next request (checking for the server's
 * stop at every slice, and at most timeout seconds when >= 0) and
 * decodes it. Returns 0, or nonzero when the connection is to end. */
static int next_request(srv_conn *k, double timeout, csp_wire_req *req,
                        size_t *len) {
  mp__deadline d = mp__deadline_from_timeout(timeout);
  for (;;) {
    if (atomic_load(&k->srv->stop))
      return MP_ECLOSED;
    int r = mp_connection_poll(k->c, CSP_REMOTE_SLICE_S);
    if (r < 0)
      return r;
    if (r > 0)
      break;
    if (timeout >= 0 && mp__deadline_expired(d))
      return MP_ETIMEDOUT;
  }
  int rc = mp_connection_recv_bytes(k->c, k->buf, k->cap, len);
  if (rc != 0)
    return rc;
  return mp__csp_wire_req_decode(k->buf, *len, k->srv->ch->msg_max, req);
}

/* run_sliced runs a read (into k->buf after the reply header) or a write
 * (of msg) on k's end for up to timeout seconds, in slices, checking the
 * client between them. *gone is set when the client went away or the
 * server is stopping. */
static int run_sliced(srv_conn *k, bool write, const void *msg, size_t len,
                      size_t cap, double timeout, bool *gone) {
  uint8_t *data = k->buf + CSP_WIRE_REP_HDR;
  mp__deadline d = mp__deadline_from_timeout(timeout);
  for (;;) {
    double slice = 0;
    if (!d.poll) {
      int64_t left = mp__deadline_remaining_ns(d);
      slice = left >= (int64_t)(CSP_REMOTE_SLICE_S * 1e9)
                  ? CSP_REMOTE_SLICE_S
                  : (double)left / 1e9;
    }
    int rc = write ? mp_channel_write(k->end, msg, len, slice)
                   : (int)mp_channel_read(k->end, data, cap, slice);
    if (rc != MP_ETIMEDOUT || mp__deadline_expired(d))
      return rc;
    /* The client sends nothing while it waits: anything readable is its
     * end of stream (or a broken client). */
    if (atomic_load(&k->srv->stop) || mp_connection_poll(k->c, 0) != 0) {
      *gone = true;
      return rc;
    }
  }
}

static void handle(srv_conn *k, const csp_wire_req *q, bool *gone) {
  mp_channel *ch = k->srv->ch;
  int rc;
  switch (q->op) {
  case CSP_OP_READ:
  case CSP_OP_WRITE: {
    bool write = q->op == CSP_OP_WRITE;
    if (k->end == NULL || mp_channel_end_is_reader(k->end) == write) {
      send_rep(k, q->op, MP_EINVAL, NULL, 0);
      return;
    }
    size_t cap = MP__MIN((size_t)q->arg, (size_t)ch->msg_max);
    /* A write's message sits in k->buf after the request header; the
     * reply header is written over the request's only after the write. */
    rc = run_sliced(k, write, q->payload, q->payload_len, cap, q->timeout,
                    gone);
    if (*gone) {
      /* The client went away inside the call: the local crash rule. A
       * server that is closing only retires the end (its owner chose to
       * stop; the remote writer is told MP_EPOISONED). */
      if (write && !atomic_load(&k->srv->stop))
        mp_channel_poison(k->end);
      return;
    }
    if (!write && rc >= 0)
      send_rep(k, q->op, rc, k->buf + CSP_WIRE_REP_HDR, (size_t)rc);
    else
      send_rep(k, q->op, rc > 0 ? 0 : rc, NULL, 0);
    return;
  }
  case CSP_OP_POISON: {
    /* mp_channel_poison needs only the channel: a control connection has
     * no end of its own, so it names the channel through a bare end. */
    mp_channel_end bare = {.ch = ch};
    rc = mp_channel_poison(k->end != NULL ? k->end : &bare);
    send_rep(k, q->op, rc, NULL, 0);
    return;
  }
  case CSP_OP_RETIRE:
    rc = k->end != NULL ? mp_channel_retire(k->end) : MP_EINVAL;
    send_rep(k, q->op, rc, NULL, 0);
    return;
  case CSP_OP_STATS: {
    mp_channel_stats st;
    rc = mp_channel_stats_get(ch, &st);
    uint8_t p[24] = {0};
    if (rc == 0) {
      uint32_t v[6] = {st.readers,         st.writers,
                       st.buffered,        (uint32_t)st.poisoned,
                       (uint32_t)st.readers_retired,
                       (uint32_t)st.writers_retired};
      for (int i = 0; i < 6; i++)
        mp__csp_wire_put_u32(p + 4 * i, v[i]);
    }
    send_rep(k, q->op, rc, p, rc == 0 ? sizeof p : 0);
    return;
  }
  default: /* HELLO twice */
    send_rep(k, q->op, MP_EPROTO, NULL, 0);
    return;
  }
}

static void *conn_main(void *arg) {
  srv_conn *k = arg;
  mp_channel *ch = k->srv->ch;
  csp_wire_req q;
  size_t len;
  if (next_request(k, k->srv->hello_timeout, &q, &len) != 0 ||
      q.op != CSP_OP_HELLO)
    goto done;
  int rc = 0;
  if (q.arg == CSP_JOIN_READER)
    rc = mp_channel_reader(ch, &k->end);
  else if (q.arg == CSP_JOIN_WRITER)
    rc = mp_channel_writer(ch, &k->end);
  uint8_t geo[8];
  mp__csp_wire_put_u32(geo, ch->msg_max);
  mp__csp_wire_put_u32(geo + 4, ch->buffer);
  if (send_rep(k, CSP_OP_HELLO, rc, geo, rc == 0 ? sizeof geo : 0) != 0 ||
      rc != 0)
    goto done;
  for (;;) {
    if (next_request(k, MP_FOREVER, &q, &len) != 0)
      break;
    bool gone = false;
    handle(k, &q, &gone);
    if (gone)
      break;
  }
done:
  if (k->end != NULL) {
    /* The client is gone (or the server stops): its end leaves, as the
     * end of a process that ended. */
    mp_channel_retire(k->end);
    mp_channel_end_free(k->end);
    k->end = NULL;
  }
  mp_connection_close(k->c);
  atomic_store(&k->done, 1);
  return NULL;
}

static void conn_free(srv_conn *k) {
  pthread_join(k->thread, NULL);
  mp_connection_free(k->c);
  mp__free(k->buf);
  mp__free(k);
}

/* reap joins the connections whose thread has ended (all of them when
 * every is set, after the stop flag). */
static void reap(struct mp_channel_server *s, bool every) {
  pthread_mutex_lock(&s->mu);
  srv_conn **pp = &s->conns;
  while (*pp != NULL) {
    srv_conn *k = *pp;
    if (every || atomic_load(&k->done)) {
      *pp = k->next;
      s->nconns--;
      pthread_mutex_unlock(&s->mu);
      conn_free(k);
      pthread_mutex_lock(&s->mu);
    } else {
      pp = &k->next;
    }
  }
  pthread_mutex_unlock(&s->mu);
}

static void start_conn(struct mp_channel_server *s, mp_connection *c) {
  srv_conn *k = mp__calloc(1, sizeof *k);
  size_t cap = CSP_WIRE_REQ_HDR + (size_t)s->ch->msg_max;
  if (k != NULL)
    k->buf = mp__alloc(cap);
  if (k == NULL || k->buf == NULL || s->nconns >= s->max_clients) {
    /* Out of memory or clients: the client sees its greeting refused. */
    mp_connection_free(c);
    if (k != NULL)
      mp__free(k->buf);
    mp__free(k);
    return;
  }
  k->srv = s;
  k->c = c;
  k->cap = cap;
  if (pthread_create(&k->thread, NULL, conn_main, k) != 0) {
    mp_connection_free(c);
    mp__free(k->buf);
    mp__free(k);
    return;
  }
  pthread_mutex_lock(&s->mu);
  k->next = s->conns;
  s->conns = k;
  s->nconns++;
  pthread_mutex_unlock(&s->mu);
}

static void *accept_main(void *arg) {
  struct mp_channel_server *s = arg;
  while (!atomic_load(&s->stop)) {
    mp_connection *c = NULL;
    int rc = mp_listener_accept(s->l, &c, CSP_REMOTE_SLICE_S);
    if (rc == 0)
      start_conn(s, c);
    else if (rc == MP_ESTATE)
      break;
    else if (rc != MP_ETIMEDOUT && rc != MP_EAGAIN && rc != MP_EAUTH)
      usleep(10000); /* out of descriptors or memory: do not spin */
    /* MP_EAUTH (a wrong key), a timeout: go on with the next client. */
    reap(s, false);
  }
  return NULL;
}

/* ---- the server's life ----------------------------------------------- */

int mp_channel_serve(mp_channel_server **out, mp_channel *c,
                     const char *address, const mp_channel_serve_opts *opts) {
  mp_channel_serve_opts o = {0};
  if (opts != NULL)
    o = *opts;
  if (out == NULL || c == NULL)
    return mp__fail(MP_EINVAL, "out or channel is NULL");
  if (c->remote != NULL)
    return mp__fail(MP_EINVAL, "the channel is itself remote");
  if (o.authkey == NULL && o.authkey_len > 0)
    return mp__fail(MP_EINVAL, "authkey is NULL with authkey_len > 0");
  uint8_t key[MP_AUTHKEY_MAX];
  const void *k = o.authkey;
  size_t klen = o.authkey_len;
  if (k == NULL) {
    ssize_t n = mp_process_authkey(mp_current_process(), key, sizeof key);
    if (n < 0)
      return (int)n;
    k = key;
    klen = (size_t)n;
  }
  struct mp_channel_server *s = mp__calloc(1, sizeof *s);
  if (s == NULL || pthread_mutex_init(&s->mu, NULL) != 0) {
    mp__free(s);
    memset(key, 0, sizeof key);
    return MP_ENOMEM;
  }
  s->ch = c;
  s->max_clients = o.max_clients != 0 ? o.max_clients : DEFAULT_MAX_CLIENTS;
  s->hello_timeout = o.auth.timeout > 0 ? o.auth.timeout : MP_HANDSHAKE_TIMEOUT;
  mp_listener_opts lo = {.family = o.family, .backlog = 64, .authkey = k,
                         .authkey_len = klen, .auth = o.auth};
  int rc = mp_listener_new(&s->l, address, &lo);
  memset(key, 0, sizeof key);
  if (rc != 0)
    goto fail;
  snprintf(s->address, sizeof s->address, "%s", mp_listener_address(s->l));
  if (pthread_create(&s->acceptor, NULL, accept_main, s) != 0) {
    rc = MP_EAGAIN;
    goto fail;
  }
  s->acceptor_started = true;
  *out = s;
  return 0;
fail:
  mp_listener_free(s->l);
  pthread_mutex_destroy(&s->mu);
  mp__free(s);
  return rc;
}

const char *mp_channel_server_address(const mp_channel_server *s) {
  return s != NULL ? s->address : "";
}

int mp_channel_server_close(mp_channel_server *s) {
  if (s == NULL)
    return mp__fail(MP_EINVAL, "server is NULL");
  atomic_store(&s->stop, 1);
  if (s->acceptor_started) {
    pthread_join(s->acceptor, NULL);
    s->acceptor_started = false;
  }
  reap(s, true);
  mp_listener_close(s->l);
  return 0;
}

void mp_channel_server_free(mp_channel_server *s) {
  if (s == NULL)
    return;
  mp_channel_server_close(s);
  mp_listener_free(s->l);
  pthread_mutex_destroy(&s->mu);
  mp__free(s);
}
