/* listener.c - mp_listener, Python's multiprocessing.connection.Listener:
 * a bound, listening socket whose accept runs the authkey handshake and
 * hands back an mp_connection.
 *
 * DESIGN
 * Python's accept runs the handshake inline, so one client that connects
 * and says nothing holds the listener until it leaves (forever: Python has
 * no handshake timeout). Here accept keeps a table of clients whose
 * handshake is under way (at most max_pending), each with its own
 * deadline, and waits on the listening socket and all of them at once:
 * whichever handshake ends first is returned (a connection, or MP_EAUTH
 * for a failed one), the others stay in the table for the next call. A
 * handshake whose deadline passes is closed and reported as MP_EAUTH.
 * While the table is full, new clients wait in the kernel's backlog.
 *
 * The listening socket is non-blocking, so an accept after a client left
 * again never blocks; accepted sockets are blocking (mp_connection
 * expects that). For mp_connection_wait the listener has one descriptor
 * that is readable when the listening socket or any pending client is (a
 * readiness set, an epoll instance on Linux): kept in step with the table.
 *
 * A socket file is removed by mp_listener_close only in the process that
 * created the listener (Python's Finalize runs in its creator only). A
 * forked child that accepts on its copy first takes a readiness set of
 * its own (the epoll instance would otherwise be shared with the parent)
 * and leaves the parent's unfinished handshakes to the parent. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../os/io.h"
#include "../os/net.h"
#include "net_internal.h"

#define DEFAULT_MAX_PENDING 64

typedef struct pending {
  mp__hs hs;
  char peer[MP_ADDRESS_MAX];
} pending;

struct mp_listener {
  int fd;  /* the listening socket, -1 once closed */
  int set; /* readiness set: fd and every pending client */
  mp_family family;
  pid_t owner;        /* the creator: only it removes the socket file */
  pid_t set_pid;      /* the process whose readiness set and table these are */
  char *unlink_path;  /* the socket file to remove on close, or NULL */
  unsigned char *key; /* NULL: no handshake */
  size_t keylen;
  mp__auth auth;
  size_t max_pending, npending;
  pending *pend;       /* max_pending entries */
  struct pollfd *pfds; /* max_pending + 1 entries */
  char address[MP_ADDRESS_MAX];
  char last[MP_ADDRESS_MAX];
};

/* fresh_address makes the address of a NULL one, as Python's
 * arbitrary_address: an abstract Unix name, or loopback port 0. */
static void fresh_address(mp_family family, char *out, size_t cap) {
  if (family == MP_FAMILY_INET) {
    snprintf(out, cap, "127.0.0.1:0");
  } else if (family == MP_FAMILY_INET6) {
    snprintf(out, cap, "[::1]:0");
  } else {
    static _Atomic unsigned counter;
    unsigned char r[8] = {0};
    int64_t t = mp__os_now_ns();
    memcpy(r, &t, sizeof r);
    snprintf(out, cap, "@mp-listener-%d-%u-%02x%02x%02x%02x", (int)getpid(),
             ++counter, r[0], r[1], r[2], r[3]);
  }
}

int mp_listener_new(mp_listener **out, const char *address,
                    const mp_listener_opts *opts) {
  mp_listener_opts o = {0};
  if (opts != NULL)
    o = *opts;
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  if (o.backlog < 0 || o.max_pending < 0)
    return mp__fail(MP_EINVAL, "negative backlog or max_pending");
  if (o.authkey == NULL && o.authkey_len > 0)
    return mp__fail(MP_EINVAL, "authkey is NULL with authkey_len > 0");
  mp__auth auth;
  int rc = mp__auth_resolve(&auth, &o.auth);
  if (rc != 0)
    return rc;
  char fresh[64];
  if (address == NULL) {
    fresh_address(o.family, fresh, sizeof fresh);
    address = fresh;
  }
  mp__address a;
  rc = mp__address_parse(&a, address, o.family);
  if (rc != 0)
    return rc;
  mp_listener *l = mp__calloc(1, sizeof *l);
  if (l == NULL)
    return MP_ENOMEM;
  l->fd = l->set = -1;
  l->family = a.family;
  l->auth = auth;
  l->owner = l->set_pid = getpid();
  l->max_pending =
      o.max_pending > 0 ? (size_t)o.max_pending : DEFAULT_MAX_PENDING;
  l->pend = mp__calloc(l->max_pending, sizeof *l->pend);
  l->pfds = mp__calloc(l->max_pending + 1, sizeof *l->pfds);
  if (o.authkey != NULL) {
    l->key = mp__alloc(o.authkey_len > 0 ? o.authkey_len : 1);
    if (l->key != NULL)
      memcpy(l->key, o.authkey, o.authkey_len);
    l->keylen = o.authkey_len;
  }
  bool is_path = a.family == MP_FAMILY_UNIX && address[0] != '@';
  if (is_path)
    l->unlink_path = mp__strdup(address);
  if (l->pend == NULL || l->pfds == NULL || (o.authkey != NULL && !l->key) ||
      (is_path && l->unlink_path == NULL)) {
    rc = MP_ENOMEM;
    goto fail;
  }
  l->set = mp__os_rset_new();
  if (l->set < 0) {
    rc = l->set;
    goto fail;
  }
  rc = mp__os_listen((struct sockaddr *)&a.ss, a.len,
                     o.backlog > 0 ? o.backlog : 1);
  if (rc < 0) {
    if (rc == -EADDRINUSE)
      rc = mp__fail(MP_EEXIST, "address %.200s is in use", address);
    else if (rc == MP_EINVAL)
      rc = mp__fail(MP_EINVAL, "cannot bind %.200s", address);
    goto fail;
  }
  l->fd = rc;
  rc = mp__os_rset_add(l->set, l->fd);
  if (rc != 0)
    goto fail;
  struct sockaddr_storage ss;
  socklen_t len;
  if (mp__os_sockname(l->fd, 0, &ss, &len) == 0)
    mp__address_format(&ss, len, l->address);
  if (l->address[0] == '\0' || a.family == MP_FAMILY_UNIX)
    snprintf(l->address, sizeof l->address, "%s", address);
  *out = l;
  return 0;
fail:
  if (l->fd >= 0) {
    close(l->fd);
    if (l->unlink_path != NULL)
      unlink(l->unlink_path);
  }
  if (l->set >= 0)
    close(l->set);
  mp__free(l->unlink_path);
  mp__free(l->key);
  mp__free(l->pend);
  mp__free(l->pfds);
  mp__free(l);
  return rc;
}

/* drop removes pending client i (closing it unless keep). */
static void drop(mp_listener *l, size_t i, bool keep) {
  /* A forked copy shares the readiness set with its creator: removing a
   * member there would remove it for the creator too. */
  if (l->set_pid == getpid())
    (void)mp__os_rset_del(l->set, l->pend[i].hs.fd);
  if (!keep)
    close(l->pend[i].hs.fd);
  l->npending--;
  if (i != l->npending)
    l->pend[i] = l->pend[l->npending];
}

/* deliver wraps fd as a connection in *out and records the peer. */
static int deliver(mp_listener *l, int fd, const char *peer,
                   mp_connection **out) {
  int rc = mp_connection_new(out, fd, NULL);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  snprintf(l->last, sizeof l->last, "%s", peer);
  return 0;
}

/* failed closes pending client i after its handshake failed with rc and
 * returns MP_EAUTH with a detail naming the client. */
static int failed(mp_listener *l, size_t i, int rc) {
  char why[200];
  snprintf(why, sizeof why, "%s", mp_error_detail());
  char peer[MP_ADDRESS_MAX];
  snprintf(peer, sizeof peer, "%s", l->pend[i].peer);
  drop(l, i, false);
  if (rc == MP_ENOMEM)
    return rc;
  return mp__fail(MP_EAUTH, "handshake with client %s failed: %s",
                  peer[0] ? peer : "(unnamed)", why);
}

/* take_new accepts one client from the backlog. Returns 1 when *out holds
 * a connection (no key), 0 when the client joined the table or none
 * waited, or an error. */
static int take_new(mp_listener *l, mp_connection **out) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = mp__os_accept(l->fd, &ss, &len);
  if (fd == MP_EAGAIN)
    return 0;
  if (fd < 0)
    return fd;
  mp__os_nodelay(fd);
  char peer[MP_ADDRESS_MAX];
  mp__address_format(&ss, len, peer);
  if (l->key == NULL) {
    int rc = deliver(l, fd, peer, out);
    return rc == 0 ? 1 : rc;
  }
  pending *p = &l->pend[l->npending];
  int64_t deadline = l->auth.timeout_ns == INT64_MAX
                         ? INT64_MAX
                         : mp__os_now_ns() + l->auth.timeout_ns;
  mp__hs_init(&p->hs, fd, true, l->key, l->keylen, &l->auth, MP__HS_SERVER,
              deadline);
  memcpy(p->peer, peer, sizeof peer);
  int rc = mp__os_rset_add(l->set, fd);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  l->npending++;
  return 0;
}

/* advance steps pending client i. Returns 1 (done: *out), 0, or an error
 * (the client is gone). */
static int advance(mp_listener *l, size_t i, mp_connection **out) {
  int rc = mp__hs_step(&l->pend[i].hs);
  if (rc == 0)
    return 0;
  if (rc < 0)
    return failed(l, i, rc);
  int fd = l->pend[i].hs.fd;
  char peer[MP_ADDRESS_MAX];
  memcpy(peer, l->pend[i].peer, sizeof peer);
  drop(l, i, true);
  rc = deliver(l, fd, peer, out);
  return rc == 0 ? 1 : rc;
}

/* adopt makes a forked copy of l its own: the unfinished handshakes are
 * the creator's (this copy closes its descriptors of them), and the
 * readiness set, shared with the creator across fork, is replaced by a
 * new one. */
static int adopt(mp_listener *l) {
  while (l->npending > 0)
    drop(l, l->npending - 1, false);
  int set = mp__os_rset_new();
  if (set < 0)
    return set;
  int rc = mp__os_rset_add(set, l->fd);
  if (rc != 0) {
    close(set);
    return rc;
  }
  close(l->set);
  l->set = set;
  l->set_pid = getpid();
  return 0;
}

int mp_listener_accept(mp_listener *l, mp_connection **out, double timeout) {
  if (l == NULL || out == NULL)
    return mp__fail(MP_EINVAL, "listener or out is NULL");
  if (timeout != timeout)
    return mp__fail(MP_EINVAL, "timeout is NaN");
  if (l->fd < 0)
    return mp__fail(MP_ESTATE, "listener is closed");
  if (l->set_pid != getpid()) {
    int rc = adopt(l);
    if (rc != 0)
      return rc;
  }
  mp__deadline d = mp__deadline_from_timeout(timeout);
  for (;;) {
    /* Handshakes past their deadline end first. */
    int64_t now = mp__os_now_ns(), until = d.ns;
    for (size_t i = 0; i < l->npending; i++) {
      if (l->pend[i].hs.deadline <= now) {
        (void)mp__fail(MP_ETIMEDOUT,
                       "it sent no handshake message in time (does it "
                       "expect an authkey?)");
        return failed(l, i, MP_ETIMEDOUT);
      }
      until = MP__MIN(until, l->pend[i].hs.deadline);
    }
    size_t n = 0;
    for (size_t i = 0; i < l->npending; i++)
      l->pfds[n++] = (struct pollfd){.fd = l->pend[i].hs.fd, .events = POLLIN};
    bool room = l->npending < l->max_pending;
    if (room)
      l->pfds[n++] = (struct pollfd){.fd = l->fd, .events = POLLIN};
    int r = mp__os_poll(l->pfds, n, until);
    if (r < 0)
      return r;
    /* Pending clients first (from the end: drop moves the last one into
     * a freed slot), then one new client. */
    for (size_t i = l->npending; i-- > 0;) {
      if (l->pfds[i].revents == 0)
        continue;
      int rc = advance(l, i, out);
      if (rc != 0)
        return rc == 1 ? 0 : rc;
    }
    if (room && l->pfds[n - 1].revents != 0) {
      int rc = take_new(l, out);
      if (rc == 1)
        return 0;
      if (rc < 0)
        return rc;
      if (l->npending > 0) {
        /* Step the new client at once: it sends the challenge. */
        rc = advance(l, l->npending - 1, out);
        if (rc != 0)
          return rc == 1 ? 0 : rc;
      }
    }
    /* Checked whatever poll said: a peer that keeps trickling bytes
     * must not stretch this call past its timeout. */
    if (d.poll || mp__deadline_expired(d))
      return mp__deadline_error(d);
  }
}

int mp_listener_close(mp_listener *l) {
  if (l == NULL)
    return mp__fail(MP_EINVAL, "listener is NULL");
  while (l->npending > 0)
    drop(l, l->npending - 1, false);
  if (l->fd >= 0) {
    close(l->fd);
    l->fd = -1;
    if (l->unlink_path != NULL && l->owner == getpid())
      unlink(l->unlink_path);
  }
  if (l->set >= 0) {
    close(l->set);
    l->set = -1;
  }
  return 0;
}

void mp_listener_free(mp_listener *l) {
  if (l == NULL)
    return;
  /* A forked copy must not remove its creator's socket file, nor touch
   * the creator's pending clients beyond closing its own descriptors. */
  mp_listener_close(l);
  mp__free(l->unlink_path);
  if (l->key != NULL)
    memset(l->key, 0, l->keylen);
  mp__free(l->key);
  mp__free(l->pend);
  mp__free(l->pfds);
  mp__free(l);
}

const char *mp_listener_address(const mp_listener *l) {
  return l != NULL ? l->address : "";
}

const char *mp_listener_last_accepted(const mp_listener *l) {
  return l != NULL ? l->last : "";
}

int mp_listener_fileno(const mp_listener *l) {
  if (l == NULL)
    return mp__fail(MP_EINVAL, "listener is NULL");
  return l->fd >= 0 ? l->fd : MP_ESTATE;
}

mp_family mp_listener_family(const mp_listener *l) {
  return l != NULL ? l->family : MP_FAMILY_DEFAULT;
}

int mp__listener_wait_fd(const mp_listener *l, bool *ready_now) {
  if (l == NULL)
    return mp__fail(MP_EINVAL, "listener is NULL");
  if (l->fd < 0)
    return MP_ESTATE;
  int64_t now = mp__os_now_ns();
  *ready_now = false;
  for (size_t i = 0; i < l->npending; i++)
    if (l->pend[i].hs.deadline <= now)
      *ready_now = true;
  return l->set;
}
