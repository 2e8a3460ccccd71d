/* manager/local.c - the local channel: method calls between a C client and
 * a C server on the same host through two of the library's shared-memory
 * queues instead of the socket, so a call costs no socket wake-up.
 *
 * The client makes one anonymous memory file (memfd: no name in /dev/shm,
 * nothing to leave behind) holding two in-place queues, requests (client
 * to server) then replies, and hands its descriptor to the server over the
 * Unix socket (SCM_RIGHTS; sealed against shrinking, so a client cannot
 * make the server's mapping fault) after the authkey handshake and the
 * 'mp_local_connection' control request, which Python clients never send
 * (so their protocol is unchanged) and a Python server refuses (the C
 * client then falls back to accept_connection). The socket stays open:
 * its end of stream is how each side learns the other died (a waiting get
 * wakes in slices of MP__MGR_LOCAL_SLICE to look), and it carries any
 * message over the queues' inline limit: a zero-length queue message says
 * "the next message comes on the socket". Only one message is in flight
 * each way (a call, then its reply), so the queues never fill. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "manager/manager_internal.h"

#define LOCAL_CAPACITY ((size_t)256 << 10)
#define LOCAL_INLINE ((size_t)64 << 10)
#define LOCAL_SLICE 0.1 /* seconds between looks at the socket */

struct mp__mgr_local {
  void *mem;
  size_t size;
  mp_queue *req; /* client -> server */
  mp_queue *rep; /* server -> client */
  void *scratch; /* LOCAL_INLINE bytes: a message taken from a queue */
};

static const mp_queue_opts local_opts = {.capacity = LOCAL_CAPACITY,
                                         .inline_max = LOCAL_INLINE,
                                         .max_message = LOCAL_INLINE};

static size_t half_size(void) {
  ssize_t n = mp_queue_size_for(&local_opts);
  if (n < 0) return 0;
  return ((size_t)n + 4095) & ~(size_t)4095;
}

void mp__mgr_local_free(mp__mgr_local *l) {
  if (!l) return;
  mp_queue_free(l->req);
  mp_queue_free(l->rep);
  if (l->mem) munmap(l->mem, l->size);
  mp__free(l->scratch);
  mp__free(l);
}

static int local_alloc(mp__mgr_local **out, int fd, size_t size) {
  mp__mgr_local *l = mp__calloc(1, sizeof *l);
  if (!l || !(l->scratch = mp__alloc(LOCAL_INLINE))) {
    if (l) mp__free(l);
    return MP_ENOMEM;
  }
  l->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (l->mem == MAP_FAILED) {
    int e = -errno;
    l->mem = NULL;
    mp__mgr_local_free(l);
    return mp__fail(e, "cannot map the local channel");
  }
  l->size = size;
  *out = l;
  return 0;
}

int mp__mgr_local_new(mp__mgr_local **out, int *fd_out) {
  size_t half = half_size();
  if (!half) return mp__fail(MP_EINVAL, "local channel options refused");
  int fd = memfd_create("mp-manager-local", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return mp__fail(-errno, "memfd_create failed");
  /* Why the seals: the server maps this file; one that could shrink
   * would let a client kill the server with SIGBUS. */
  if (ftruncate(fd, (off_t)(2 * half)) < 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    int e = -errno;
    close(fd);
    return mp__fail(e, "cannot size the local channel");
  }
  mp__mgr_local *l = NULL;
  int rc = local_alloc(&l, fd, 2 * half);
  if (rc == 0) rc = mp_queue_init(&l->req, l->mem, half, &local_opts);
  if (rc == 0)
    rc = mp_queue_init(&l->rep, (char *)l->mem + half, half, &local_opts);
  if (rc) {
    mp__mgr_local_free(l);
    close(fd);
    return rc;
  }
  *out = l;
  *fd_out = fd;
  return 0;
}

int mp__mgr_local_attach(mp__mgr_local **out, int fd) {
  size_t half = half_size();
  struct stat st;
  if (!half || fstat(fd, &st) < 0 || (uint64_t)st.st_size != 2 * half)
    return mp__fail(MP_EINVAL, "the local channel has not the expected size");
  /* A file that can shrink under the mapping would SIGBUS the server. */
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_SHRINK))
    return mp__fail(MP_EINVAL, "the local channel is not a sealed memfd");
  mp__mgr_local *l = NULL;
  int rc = local_alloc(&l, fd, 2 * half);
  if (rc == 0) rc = mp_queue_attach(&l->req, l->mem, half);
  if (rc == 0) rc = mp_queue_attach(&l->rep, (char *)l->mem + half, half);
  if (rc) {
    mp__mgr_local_free(l);
    return rc == MP_ECORRUPT || rc == MP_EINVAL
               ? mp__fail(MP_EINVAL, "the local channel is not two queues")
               : rc;
  }
  *out = l;
  return 0;
}

void mp__mgr_local_close(mp__mgr_local *l) {
  if (!l) return;
  mp_queue_close(l->req);
  mp_queue_close(l->rep);
}

/* ---- the descriptor over the socket --------------------------------------- */

int mp__mgr_local_send_fd(mp_connection *c, int fd) {
  char byte = 'L';
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  ssize_t n;
  do n = sendmsg(mp_connection_fileno(c), &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != 1) return mp__fail(n < 0 ? -errno : MP_EPROTO, "cannot pass the local channel");
  return 0;
}

int mp__mgr_local_recv_fd(mp_connection *c, double timeout, int *fd_out) {
  int sfd = mp_connection_fileno(c);
  struct pollfd p = {.fd = sfd, .events = POLLIN};
  int n;
  do n = poll(&p, 1, (int)(timeout * 1000));
  while (n < 0 && errno == EINTR);
  if (n <= 0) return mp__fail(MP_ETIMEDOUT, "the local channel did not come");
  char byte = 0;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t r;
  do r = recvmsg(sfd, &msg, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  struct cmsghdr *cm = r == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
  int fd = -1;
  if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
      cm->cmsg_len == CMSG_LEN(sizeof(int)))
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  if (fd >= 0 && (byte != 'L' || (msg.msg_flags & MSG_CTRUNC))) {
    close(fd);
    fd = -1;
  }
  if (fd < 0) return mp__fail(MP_EPROTO, "no local channel descriptor came");
  *fd_out = fd;
  return 0;
}

/* ---- messages ------------------------------------------------------------------ */

int mp__mgr_local_send(mp__mgr_local *l, int to_server, mp_connection *c,
                       const void *buf, size_t len) {
  mp_queue *q = to_server ? l->req : l->rep;
  if (len > 0 && len <= LOCAL_INLINE) return mp_queue_put(q, buf, len, 0);
  /* Why a put that never waits: one message is in flight each way, so
   * the queue is empty here unless the peer broke the protocol. */
  int rc = mp_queue_put(q, "", 0, 0);
  if (rc) return rc;
  return mp_connection_send_bytes(c, buf, 0, len);
}

/* peer_gone: the socket reports the peer's end of stream (never blocks). */
static int peer_gone(mp_connection *c) {
  struct pollfd p = {.fd = mp_connection_fileno(c), .events = POLLRDHUP};
  int n = poll(&p, 1, 0);
  return n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

int mp__mgr_local_recv(mp__mgr_local *l, int at_server, mp_connection *c,
                       mp__deadline d, size_t limit, void **buf,
                       size_t *len) {
  mp_queue *q = at_server ? l->req : l->rep;
  size_t n = 0;
  int rc;
  for (;;) {
    double slice = LOCAL_SLICE;
    if (!mp__deadline_forever(d)) {
      int64_t left = mp__deadline_remaining_ns(d);
      if (left <= 0) return mp__fail(MP_ETIMEDOUT, "no reply in time");
      if (left < (int64_t)(slice * 1e9)) slice = (double)left / 1e9;
    }
    rc = mp_queue_get(q, l->scratch, LOCAL_INLINE, &n, slice);
    if (rc != MP_ETIMEDOUT) break;
    if (peer_gone(c)) return mp__fail(MP_ECLOSED, "the peer is gone");
  }
  if (rc == MP_ECLOSED) return mp__fail(MP_ECLOSED, "the local channel is closed");
  if (rc == MP_ETOOBIG || rc == MP_ECORRUPT)
    return mp__fail(MP_EPROTO, "the local channel is broken");
  if (rc) return rc;
  if (n == 0) {
    /* The message comes on the socket. */
    rc = mp_connection_recv_bytes_alloc(c, buf, len, limit);
    if (rc == MP_ETOOBIG)
      return mp__fail(MP_ETOOBIG, "message of %zu bytes over the limit %zu",
                      *len, limit);
    return rc;
  }
  if (n > limit)
    return mp__fail(MP_ETOOBIG, "message of %zu bytes over the limit %zu", n,
                    limit);
  void *b = mp__alloc(n);
  if (!b) return MP_ENOMEM;
  memcpy(b, l->scratch, n);
  *buf = b;
  *len = n;
  return 0;
}
