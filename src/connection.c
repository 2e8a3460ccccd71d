/* connection.c - Pipe and Connection, after Python's
 * multiprocessing.connection: framed byte messages over a socket pair, a
 * pipe, or any stream descriptor the caller hands over.
 *
 * DESIGN
 * The wire format is Python's: a 4-byte big-endian signed length, then the
 * payload; a payload over 0x7FFFFFFF bytes is announced by the length -1
 * and an 8-byte big-endian length. A sender writes header and payload with
 * one gathered write (Python writes small messages in one write and large
 * ones as header then payload; the bytes on the wire are the same, and a
 * receiver accepts any split).
 *
 * The receiver reads the header alone (4 bytes, then 8 more after -1) and
 * then the payload straight into the caller's buffer: two reads a message,
 * no allocation, no copy. There is deliberately no read-ahead buffer: it
 * would save a read per message but steal messages from other processes
 * reading the same end, and hide data from poll(2) on the descriptor.
 *
 * State kept between calls, all on the receiving side:
 *   - have_len/len: a header read whose payload is still unread, because
 *     the caller's buffer was too small (MP_ETOOBIG) or memory ran out.
 *     The next receive starts from it, so refusing a message never loses
 *     or misaligns a byte;
 *   - broken: the stream position is lost (end of stream or an error in the
 *     middle of a frame, an impossible length). Every later receive
 *     returns MP_EPROTO; nothing can find the next frame boundary.
 * Sending keeps no state: a message is written whole or the write fails.
 *
 * SIGPIPE: sockets are written with MSG_NOSIGNAL; pipes with SIGPIPE
 * blocked in the writing thread for the write (see os/linux_io.c). That
 * costs two extra system calls per message on a simplex pipe and none on a
 * socket pair; the alternative, asking programs to ignore SIGPIPE, would
 * change their behaviour behind their back. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connection_internal.h"
#include "internal.h"
#include "os/io.h"
#include "os/process_os.h"

/* The largest payload with a 4-byte length; larger ones use the -1 form. */
#define SHORT_MAX 0x7FFFFFFFu

struct mp_connection {
  int fd;         /* -1 once closed */
  bool readable;  /* Python's readable */
  bool writable;  /* Python's writable */
  bool is_socket; /* send with MSG_NOSIGNAL */
  bool have_len;  /* a header was read; its payload is still unread */
  bool broken;    /* the receiving stream lost its frame boundaries */
  uint64_t len;   /* the payload length of that header */
};

static int wrap(mp_connection **out, int fd, bool readable, bool writable) {
  int kind = mp__os_fd_kind(fd);
  if (kind < 0)
    return kind;
  mp_connection *c = mp__calloc(1, sizeof *c);
  if (c == NULL)
    return MP_ENOMEM;
  c->fd = fd;
  c->readable = readable;
  c->writable = writable;
  c->is_socket = kind == 1;
  *out = c;
  return 0;
}

int mp_pipe(mp_connection **c1, mp_connection **c2, int duplex) {
  if (c1 == NULL || c2 == NULL)
    return MP_EINVAL;
  int fds[2];
  int rc = duplex ? mp__os_socketpair(fds) : mp__os_pipe(fds);
  if (rc != 0)
    return rc;
  mp_connection *a = NULL, *b = NULL;
  rc = wrap(&a, fds[0], true, duplex != 0);
  if (rc == 0)
    rc = wrap(&b, fds[1], duplex != 0, true);
  if (rc != 0) {
    mp__free(a);
    close(fds[0]);
    close(fds[1]);
    return rc;
  }
  *c1 = a;
  *c2 = b;
  return 0;
}

int mp_connection_new(mp_connection **out, int fd,
                      const mp_connection_opts *opts) {
  mp_connection_opts o = {0};
  if (opts != NULL)
    o = *opts;
  if (out == NULL || fd < 0 || (o.read_only && o.write_only))
    return MP_EINVAL;
  return wrap(out, fd, !o.write_only, !o.read_only);
}

int mp_connection_close(mp_connection *c) {
  if (c == NULL)
    return mp__fail(MP_EINVAL, "c is NULL");
  if (c->fd >= 0) {
    /* close(2) releases the descriptor even when it reports an error, so
     * there is nothing to retry and nothing to report. */
    close(c->fd);
    c->fd = -1;
    c->have_len = false;
  }
  return 0;
}

void mp_connection_free(mp_connection *c) {
  if (c == NULL)
    return;
  mp_connection_close(c);
  mp__free(c);
}

/* ---- sending ------------------------------------------------------------ */

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

int mp_connection_send_bytes(mp_connection *c, const void *buf,
                             size_t offset, size_t size) {
  if (c == NULL || (buf == NULL && size > 0) || offset > SIZE_MAX - size)
    return MP_EINVAL;
  if (c->fd < 0)
    return MP_ESTATE;
  if (!c->writable)
    return MP_EBADF;
  unsigned char header[12];
  size_t header_len = 4;
  if (size > SHORT_MAX) {
    put_be32(header, 0xFFFFFFFFu); /* -1 */
    put_be32(header + 4, (uint32_t)((uint64_t)size >> 32));
    put_be32(header + 8, (uint32_t)size);
    header_len = 12;
  } else {
    put_be32(header, (uint32_t)size);
  }
  /* One gathered write: header and payload leave together, with no copy
   * and no second system call (and no Nagle delay on a TCP socket). */
  struct iovec iov[2] = {
      {.iov_base = header, .iov_len = header_len},
      {.iov_base = size > 0 ? (char *)buf + offset : NULL, .iov_len = size},
  };
  return mp__os_write_all(c->fd, c->is_socket, iov, size > 0 ? 2 : 1);
}

/* ---- receiving ---------------------------------------------------------- */

/* read_exact reads len bytes into p. Returns 0, MP_EPROTO at end of
 * stream (or reset), or -errno; *got says how many bytes arrived before
 * that. */
static int read_exact(int fd, void *p, size_t len, size_t *got) {
  *got = 0;
  while (*got < len) {
    size_t want = len - *got;
    /* read(2) moves at most SSIZE_MAX bytes in one call. */
    if (want > (size_t)SSIZE_MAX)
      want = (size_t)SSIZE_MAX;
    ssize_t n = mp__os_read_some(fd, (char *)p + *got, want);
    /* A socket whose peer closed without reading what this end sent
     * reports that once as a reset instead of end of stream. For the
     * receiver it means the same: the peer is gone. */
    if (n == 0 || n == MP_ECONNRESET)
      return MP_EPROTO;
    if (n < 0)
      return (int)n;
    *got += (size_t)n;
  }
  return 0;
}

/* fail_frame marks the stream broken after a failure inside a frame and
 * returns rc, so the caller learns the real cause once and MP_EPROTO after. */
static int fail_frame(mp_connection *c, int rc) {
  c->broken = true;
  c->have_len = false;
  return rc;
}

/* read_header makes c->len the length of the next message, reading its
 * header unless a refused one waits already. */
static int read_header(mp_connection *c) {
  if (c->broken)
    return MP_EPROTO;
  if (c->have_len)
    return 0;
  unsigned char h[8];
  size_t got;
  int rc = read_exact(c->fd, h, 4, &got);
  if (rc != 0) {
    if (got == 0)
      /* Nothing of a new frame was read: the stream is still in step. */
      return rc == MP_EPROTO ? MP_ECLOSED : rc;
    return fail_frame(c, rc);
  }
  int32_t n = (int32_t)get_be32(h);
  if (n == -1) {
    rc = read_exact(c->fd, h, 8, &got);
    if (rc != 0)
      return fail_frame(c, rc);
    c->len = (uint64_t)get_be32(h) << 32 | get_be32(h + 4);
  } else if (n < 0) {
    return fail_frame(c, MP_EPROTO);
  } else {
    c->len = (uint64_t)n;
  }
  c->have_len = true;
  return 0;
}

/* check_recv validates a receive on c. */
static int check_recv(const mp_connection *c) {
  if (c == NULL)
    return mp__fail(MP_EINVAL, "c is NULL");
  if (c->fd < 0)
    return MP_ESTATE;
  if (!c->readable)
    return MP_EBADF;
  return 0;
}

/* reported_len is the length to tell the caller: the message's, or
 * SIZE_MAX if it does not fit a size_t. */
static size_t reported_len(uint64_t len) {
  return len > SIZE_MAX ? SIZE_MAX : (size_t)len;
}

/* recv_into receives the next message into dst, which holds cap bytes. */
static int recv_into(mp_connection *c, void *dst, size_t cap, size_t *len) {
  int rc = read_header(c);
  if (rc != 0)
    return rc;
  *len = reported_len(c->len);
  if (c->len > cap)
    return MP_ETOOBIG; /* the header stays in c: nothing is lost */
  size_t got;
  rc = read_exact(c->fd, dst, (size_t)c->len, &got);
  if (rc != 0)
    return fail_frame(c, rc);
  c->have_len = false;
  return 0;
}

int mp_connection_recv_bytes(mp_connection *c, void *buf, size_t maxlength,
                             size_t *len) {
  int rc = check_recv(c);
  if (rc != 0)
    return rc;
  if (len == NULL || (buf == NULL && maxlength > 0))
    return MP_EINVAL;
  return recv_into(c, buf, maxlength, len);
}

int mp_connection_recv_bytes_into(mp_connection *c, void *buf, size_t cap,
                                  size_t offset, size_t *len) {
  int rc = check_recv(c);
  if (rc != 0)
    return rc;
  if (len == NULL || (buf == NULL && cap > 0) || offset > cap)
    return MP_EINVAL;
  return recv_into(c, (char *)buf + offset, cap - offset, len);
}

int mp_connection_recv_bytes_alloc(mp_connection *c, void **out,
                                   size_t *len, size_t maxlength) {
  int rc = check_recv(c);
  if (rc != 0)
    return rc;
  if (out == NULL || len == NULL)
    return MP_EINVAL;
  rc = read_header(c);
  if (rc != 0)
    return rc;
  *len = reported_len(c->len);
  if (c->len > maxlength)
    return MP_ETOOBIG;
  /* Beyond PTRDIFF_MAX no object can exist; do not even ask. */
  if (c->len > PTRDIFF_MAX)
    return MP_ENOMEM;
  void *p = mp__alloc(c->len > 0 ? (size_t)c->len : 1);
  if (p == NULL)
    return MP_ENOMEM; /* the header stays in c: the caller may retry */
  rc = recv_into(c, p, (size_t)c->len, len);
  if (rc != 0) {
    mp__free(p);
    return rc;
  }
  *out = p;
  return 0;
}

int mp_connection_poll(mp_connection *c, double timeout) {
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  mp__deadline d = mp__deadline_from_timeout(timeout);
  bool now = false;
  int fd = mp__connection_wait_fd(c, &now);
  if (fd < 0)
    return fd;
  if (now)
    return 1;
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  int r = mp__os_poll(&pfd, 1, d.ns);
  if (r < 0)
    return r;
  if (r > 0 && (pfd.revents & POLLNVAL))
    return MP_EBADF;
  return r > 0 ? 1 : 0;
}

int mp__connection_wait_fd(const mp_connection *c, bool *ready_now) {
  int rc = check_recv(c);
  if (rc != 0)
    return rc;
  *ready_now = c->have_len || c->broken;
  return c->fd;
}

/* ---- accessors ---------------------------------------------------------- */

int mp_connection_fileno(const mp_connection *c) {
  if (c == NULL)
    return mp__fail(MP_EINVAL, "c is NULL");
  return c->fd >= 0 ? c->fd : MP_ESTATE;
}

int mp_connection_readable(const mp_connection *c) {
  if (c == NULL)
    return mp__fail(MP_EINVAL, "c is NULL");
  return c->readable ? 1 : 0;
}

int mp_connection_writable(const mp_connection *c) {
  if (c == NULL)
    return mp__fail(MP_EINVAL, "c is NULL");
  return c->writable ? 1 : 0;
}

int mp_connection_closed(const mp_connection *c) {
  return c == NULL || c->fd < 0;
}
