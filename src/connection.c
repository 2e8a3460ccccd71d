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
 * Waiting for input: spin, yield, then block. A blocking read that finds
 * nothing puts the thread to sleep, and the peer's next write must wake
 * it through the scheduler, on another CPU: on a virtual machine that
 * hand-off alone costs 10-25 us, most of a small round trip. So a
 * receive (and mp_connection_poll with a timeout) that finds nothing
 * first polls the descriptor itself for a bounded budget (default
 * MP_CONNECTION_SPIN_DEFAULT, 50 us; mp_connection_set_spin or the
 * environment variable MP_CONNECTION_SPIN change it): a non-blocking read
 * (recv MSG_DONTWAIT on a socket, preadv2 RWF_NOWAIT on a pipe, straight
 * into the destination) every few PAUSE instructions. Then it calls
 * sched_yield a few times, each followed by one more look, so that on an
 * oversubscribed machine the peer it waits for gets the CPU; then it
 * blocks as before.
 *   Spinning pays only while a CPU is idle. Three signs say none is: a
 * spin descheduled in the middle (two looks more than SPIN_PREEMPTED_NS
 * apart), a sched_yield that ran another thread (it took over
 * SPIN_YIELD_BUSY_NS), and a blocked wait during which the thread was
 * preempted (its involuntary context switches grew). Any of them starts a
 * back-off during which receives and polls are the plain blocking calls,
 * one system call each (1 ms, doubling with each sign up to 1 s, back to
 * 1 ms after SPIN_CLEAN_RESET won spins in a row): on an oversubscribed
 * machine a round trip costs what it costs without the spin.
 *   The budget adapts per end: a wait that had to block halves the next
 * spin (down to nothing), so an end whose messages come seldom stops
 * burning CPU; a blocked wait that ended within 1.5 budgets (the message
 * came soon after the spin gave up) restores the full budget. Timeout 0
 * never spins; a spin never runs past the caller's deadline; a budget of
 * 0 restores the plain blocking read. The bytes read, their order and
 * every error are the same on every path: the spin reads with the same
 * read_exact accounting, so end of stream, resets and a message split
 * across reads are handled as before.
 *
 * SIGPIPE: sockets are written with MSG_NOSIGNAL; pipes with SIGPIPE
 * blocked in the writing thread for the write (see os/linux_io.c). That
 * costs two extra system calls per message on a simplex pipe and none on a
 * socket pair; the alternative, asking programs to ignore SIGPIPE, would
 * change their behaviour behind their back. */
#define _GNU_SOURCE
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "connection_internal.h"
#include "internal.h"
#include "os/cpu.h"
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
  bool no_nowait;  /* reads cannot be non-blocking: look with poll(0) */
  uint64_t len;   /* the payload length of that header */
  int64_t spin_ns;     /* the spin budget set (0: never spin) */
  int64_t spin_cur_ns; /* the budget of the next wait (adapts) */
  int last_phase;      /* how the last wait for input ended (MP__SPIN_*) */
  int64_t quiet_until; /* no spin or yield before this time (contention) */
  int64_t backoff_ns;  /* how long the next contention stops spinning */
  int clean;           /* spins won since the last contention */
  long nivcsw;         /* this thread's involuntary switches, last seen */
  unsigned contentions; /* signs of oversubscribed CPUs seen (tests) */
};

/* ---- the spin budget ---------------------------------------------------- */

/* Look at the descriptor after this many PAUSE instructions (each about
 * 10-40 ns): a look is a system call of about 0.3 us, so the spin stays
 * mostly in user space while noticing a message within about 1 us. */
#define SPIN_PAUSES 32
/* sched_yield calls after the spin, each followed by a look. */
#define SPIN_YIELDS 4
/* Two looks further apart than this mean the thread was descheduled in
 * between: stop spinning. */
#define SPIN_PREEMPTED_NS (20 * 1000)
/* A sched_yield that took longer than this let another thread run: the
 * CPUs are oversubscribed. */
#define SPIN_YIELD_BUSY_NS (10 * 1000)
/* Contention stops spinning and yielding for a back-off that starts at
 * SPIN_BACKOFF_MIN_NS, doubles with each contention seen, up to
 * SPIN_BACKOFF_MAX_NS, and starts over after SPIN_CLEAN_RESET spins in a
 * row that found their input. */
#define SPIN_BACKOFF_MIN_NS (1000 * 1000)
#define SPIN_BACKOFF_MAX_NS (1000 * 1000 * 1000)
#define SPIN_CLEAN_RESET 64
/* The largest budget mp_connection_set_spin accepts: one second. */
#define SPIN_MAX_SECONDS 1.0

/* spin_default is the budget of a new end: MP_CONNECTION_SPIN (seconds,
 * 0 to never spin) when it is set to a number from 0 to 1, else
 * MP_CONNECTION_SPIN_DEFAULT. Read at each new end (a getenv costs far
 * less than making one), so a program may change it as it goes. */
static int64_t spin_default(void) {
  const char *e = getenv("MP_CONNECTION_SPIN");
  if (e != NULL && *e != '\0') {
    char *end;
    double v = strtod(e, &end);
    if (*end == '\0' && v >= 0 && v <= SPIN_MAX_SECONDS)
      return (int64_t)(v * 1e9);
  }
  return (int64_t)(MP_CONNECTION_SPIN_DEFAULT * 1e9);
}

int mp_connection_set_spin(mp_connection *c, double seconds) {
  if (c == NULL)
    return mp__fail(MP_EINVAL, "c is NULL");
  if (isnan(seconds) || seconds < 0 || seconds > SPIN_MAX_SECONDS)
    return mp__fail(MP_EINVAL, "spin must be between 0 and %g seconds",
                    SPIN_MAX_SECONDS);
  c->spin_ns = (int64_t)(seconds * 1e9);
  c->spin_cur_ns = c->spin_ns;
  c->quiet_until = 0;
  c->backoff_ns = SPIN_BACKOFF_MIN_NS;
  c->clean = 0;
  return 0;
}

/* Whether waits watch for oversubscribed CPUs (the tests of the phases
 * turn it off, to be deterministic on a loaded machine). */
static bool detect_contention = true;

void mp__connection_detect_contention(bool on) { detect_contention = on; }

bool mp__connection_backing_off(const mp_connection *c) {
  return mp__os_now_ns() < c->quiet_until;
}

void mp__connection_back_off(mp_connection *c, int64_t ns) {
  c->quiet_until = mp__os_now_ns() + ns;
}

unsigned mp__connection_contentions(const mp_connection *c) {
  return c->contentions;
}

/* A test hook called as a wait enters each phase (see
 * connection_internal.h); NULL outside the tests. */
static void (*spin_hook)(mp_connection *c, int phase);

void mp__connection_set_spin_hook(void (*hook)(mp_connection *, int)) {
  spin_hook = hook;
}

int mp__connection_last_phase(const mp_connection *c) {
  return c->last_phase;
}

int64_t mp__connection_spin_budget_ns(const mp_connection *c) {
  return c->spin_cur_ns;
}

static void enter(mp_connection *c, int phase) {
  c->last_phase = phase;
  if (spin_hook != NULL)
    spin_hook(c, phase);
}

/* A look: one non-blocking check for input, given by the caller (a read
 * into its buffer, or a poll). Returns 1 when input (or end of stream, or
 * an error to report) is there, 0 when not yet. */
typedef int (*look_fn)(mp_connection *c, void *ctx);

/* contended records that the CPUs are oversubscribed: no spin and no
 * yield until the back-off has passed, and the next back-off twice as
 * long (up to SPIN_BACKOFF_MAX_NS). */
static void contended(mp_connection *c, int64_t now) {
  c->contentions++;
  c->quiet_until = now + c->backoff_ns;
  c->backoff_ns = c->backoff_ns < SPIN_BACKOFF_MAX_NS / 2
                      ? c->backoff_ns * 2
                      : SPIN_BACKOFF_MAX_NS;
  c->clean = 0;
}

/* preempted_since tells whether the calling thread was preempted since
 * the last call on c (its count of involuntary context switches grew),
 * and remembers the count. */
static bool preempted_since(mp_connection *c) {
#ifdef RUSAGE_THREAD
  struct rusage ru;
  if (getrusage(RUSAGE_THREAD, &ru) != 0)
    return false;
  bool more = ru.ru_nivcsw > c->nivcsw;
  c->nivcsw = ru.ru_nivcsw;
  return more;
#else
  (void)c;
  return false;
#endif
}

/* spinning tells whether a wait on c spins: a budget is set and no
 * back-off is in force. */
static bool spinning(const mp_connection *c) {
  return c->spin_ns > 0 &&
         (c->quiet_until == 0 || mp__os_now_ns() >= c->quiet_until);
}

/* won records a wait whose spin or yield found the input: the full budget
 * next time, and after SPIN_CLEAN_RESET of them in a row a short back-off
 * again. Returns 1. */
static int won(mp_connection *c) {
  c->spin_cur_ns = c->spin_ns;
  if (++c->clean >= SPIN_CLEAN_RESET) {
    c->backoff_ns = SPIN_BACKOFF_MIN_NS;
    c->clean = 0;
  }
  return 1;
}

/* spin looks for input until c's budget or the deadline runs out, then
 * yields and looks SPIN_YIELDS times. Returns 1 when a look found input,
 * 0 when the caller must block (then call blocked); *start is when the
 * wait began. */
static int spin(mp_connection *c, int64_t deadline, look_fn look, void *ctx,
                int64_t *start) {
  int64_t t = mp__os_now_ns();
  *start = t;
  if (t < c->quiet_until) {
    enter(c, MP__SPIN_BLOCK); /* backing off: the CPUs are oversubscribed */
    return 0;
  }
  int64_t end = c->spin_cur_ns < deadline - t ? t + c->spin_cur_ns : deadline;
  if (t < end) {
    enter(c, MP__SPIN_SPIN);
    for (;;) {
      for (int i = 0; i < SPIN_PAUSES; i++)
        mp__os_cpu_relax();
      if (look(c, ctx))
        return won(c);
      int64_t now = mp__os_now_ns();
      if (now - t > SPIN_PREEMPTED_NS && detect_contention) {
        contended(c, now);
        enter(c, MP__SPIN_BLOCK);
        return 0;
      }
      if (now >= end)
        break;
      t = now;
    }
  }
  enter(c, MP__SPIN_YIELD);
  for (int i = 0; i < SPIN_YIELDS; i++) {
    int64_t before = mp__os_now_ns();
    if (before >= deadline)
      break;
    mp__os_yield();
    int64_t now = mp__os_now_ns();
    /* A yield that took long ran another thread: the CPUs are
     * oversubscribed, and yielding only queues this one behind others. */
    bool busy = now - before > SPIN_YIELD_BUSY_NS && detect_contention;
    if (busy)
      contended(c, now);
    if (look(c, ctx))
      return busy ? 1 : won(c);
    if (busy)
      break;
  }
  enter(c, MP__SPIN_BLOCK);
  return 0;
}

/* blocked sets the next budget after a wait that had to block. When the
 * thread was preempted since the last such wait, the CPUs are
 * oversubscribed: back off. Otherwise the full budget when the input came
 * within 1.5 budgets of the wait's start (a longer spin would have caught
 * it), else half the last one, down to none. */
static void blocked(mp_connection *c, int64_t start) {
  int64_t now = mp__os_now_ns();
  if (now < c->quiet_until)
    return; /* backing off already */
  if (preempted_since(c) && detect_contention) {
    if (now >= c->quiet_until)
      contended(c, now);
    return;
  }
  int64_t waited = now - start;
  if (waited <= c->spin_ns + c->spin_ns / 2)
    c->spin_cur_ns = c->spin_ns;
  else
    c->spin_cur_ns /= 2;
  if (c->spin_cur_ns < 1000) /* below 1 us a spin cannot catch anything */
    c->spin_cur_ns = 0;
}

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
  c->spin_ns = spin_default();
  c->spin_cur_ns = c->spin_ns;
  c->backoff_ns = SPIN_BACKOFF_MIN_NS;
  *out = c;
  return 0;
}

int mp_pipe(mp_connection **c1, mp_connection **c2, int duplex) {
  if (c1 == NULL || c2 == NULL)
    return mp__fail(MP_EINVAL, "c1 or c2 is NULL");
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
    return mp__fail(MP_EINVAL, "out is NULL, fd is negative, or both "
                               "read_only and write_only");
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
    return mp__fail(MP_EINVAL, "c is NULL, buf is NULL with size > 0, or "
                               "offset + size overflows");
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

/* A read in progress, for read_look. */
typedef struct read_ctx {
  void *p;
  size_t len;
  ssize_t n; /* what the read returned, once a look found input */
} read_ctx;

/* poll_now is a look by poll(2) with no wait: 1 when fd has input, end of
 * stream or an error to report. */
static int poll_now(int fd) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  return mp__os_poll(&pfd, 1, 0) != 0;
}

static int read_look(mp_connection *c, void *ctx) {
  read_ctx *r = ctx;
  if (c->no_nowait) {
    if (!poll_now(c->fd))
      return 0;
    r->n = mp__os_read_some(c->fd, r->p, r->len);
    return 1;
  }
  r->n = mp__os_read_nowait(c->fd, c->is_socket, r->p, r->len);
  if (r->n == MP_ENOTSUP) {
    /* A descriptor that cannot be read without waiting (an old kernel,
     * a tty): look with poll from now on. */
    c->no_nowait = true;
    return read_look(c, ctx);
  }
  return r->n != MP_EAGAIN;
}

/* read_some reads up to len bytes into p, waiting for the first: spin,
 * yield, then a blocking read. Returns what mp__os_read_some returns. */
static ssize_t read_some(mp_connection *c, void *p, size_t len) {
  /* No spin, or backing off: the plain blocking read, one system call. */
  if (!spinning(c))
    return mp__os_read_some(c->fd, p, len);
  read_ctx r = {.p = p, .len = len};
  if (read_look(c, &r))
    return r.n;
  int64_t start;
  if (spin(c, INT64_MAX, read_look, &r, &start))
    return r.n;
  ssize_t n = mp__os_read_some(c->fd, p, len);
  blocked(c, start);
  return n;
}

/* read_exact reads len bytes into p. Returns 0, MP_EPROTO at end of
 * stream (or reset), or -errno; *got says how many bytes arrived before
 * that. */
static int read_exact(mp_connection *c, void *p, size_t len, size_t *got) {
  *got = 0;
  while (*got < len) {
    size_t want = len - *got;
    /* read(2) moves at most SSIZE_MAX bytes in one call. */
    if (want > (size_t)SSIZE_MAX)
      want = (size_t)SSIZE_MAX;
    ssize_t n = read_some(c, (char *)p + *got, want);
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
  c->last_phase = MP__SPIN_NONE;
  unsigned char h[8];
  size_t got;
  int rc = read_exact(c, h, 4, &got);
  if (rc != 0) {
    if (got == 0)
      /* Nothing of a new frame was read: the stream is still in step. */
      return rc == MP_EPROTO ? MP_ECLOSED : rc;
    return fail_frame(c, rc);
  }
  int32_t n = (int32_t)get_be32(h);
  if (n == -1) {
    rc = read_exact(c, h, 8, &got);
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
  rc = read_exact(c, dst, (size_t)c->len, &got);
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
    return mp__fail(MP_EINVAL, "len is NULL, or buf is NULL with maxlength > "
                               "0");
  return recv_into(c, buf, maxlength, len);
}

int mp_connection_recv_bytes_into(mp_connection *c, void *buf, size_t cap,
                                  size_t offset, size_t *len) {
  int rc = check_recv(c);
  if (rc != 0)
    return rc;
  if (len == NULL || (buf == NULL && cap > 0) || offset > cap)
    return mp__fail(MP_EINVAL, "len is NULL, buf is NULL with cap > 0, or "
                               "offset > cap");
  return recv_into(c, (char *)buf + offset, cap - offset, len);
}

int mp_connection_recv_bytes_alloc(mp_connection *c, void **out,
                                   size_t *len, size_t maxlength) {
  int rc = check_recv(c);
  if (rc != 0)
    return rc;
  if (out == NULL || len == NULL)
    return mp__fail(MP_EINVAL, "out or len is NULL");
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

/* poll_look is a look for mp_connection_poll: a poll(2) with no wait of
 * the pollfd at ctx, whose revents the caller reads afterwards. */
static int poll_look(mp_connection *c, void *ctx) {
  (void)c;
  return mp__os_poll(ctx, 1, 0) != 0;
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
  c->last_phase = MP__SPIN_NONE;
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  int r;
  if (d.poll || !spinning(c)) /* one poll(2), as without the spin */
    r = mp__os_poll(&pfd, 1, d.ns);
  else if ((r = mp__os_poll(&pfd, 1, 0)) == 0) {
    /* Nothing yet: spin, yield, then block, never past the deadline. */
    int64_t start;
    if (spin(c, d.ns, poll_look, &pfd, &start)) {
      r = 1;
    } else {
      r = mp__os_poll(&pfd, 1, d.ns);
      if (r > 0)
        blocked(c, start);
    }
  }
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
