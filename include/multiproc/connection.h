/* multiproc/connection.h - Pipe and Connection, after Python's
 * multiprocessing.connection: two connected ends that carry byte messages,
 * and wait() on a mix of connections, queues, processes and descriptors.
 *
 * mp_pipe gives two connected ends, as Python's Pipe(duplex): a Unix stream
 * socket pair (both ends send and receive) or, simplex, a pipe whose first
 * end only receives and whose second only sends. mp_connection_new wraps a
 * descriptor the program already has (Python's Connection(fd)), for example
 * one a Python program holds the other end of.
 *
 * Framing is byte for byte Python's: each message is a 4-byte big-endian
 * signed length and the payload; a payload over 0x7FFFFFFF bytes is the
 * length -1, an 8-byte big-endian length, and the payload. A C program and
 * a Python program talk with send_bytes/recv_bytes on either side. Python's
 * send and recv of pickled objects are mp_connection_send and
 * mp_connection_recv, declared with the values they carry in obj.h.
 *
 * Beyond Python, a message longer than the receiver's buffer or limit is
 * refused with MP_ETOOBIG and stays readable, so the stream never falls out
 * of step: retry with a bigger buffer, or use mp_connection_recv_bytes_alloc.
 * Python instead raises and stops reading the connection.
 *
 * Sending to an end whose peer has closed returns MP_EPIPE and never kills
 * the process with SIGPIPE, whatever the program's SIGPIPE disposition; the
 * library does not change that disposition.
 *
 * Threads and processes. A connection end is a descriptor and a little
 * receive state in the calling process's memory. Forked children inherit
 * both (fork while no refused message waits in an end); each process then
 * closes its own copy. One thread at a time may receive on an end, and one at a time
 * may send, as in Python; a send and a receive may run at once. Several
 * processes may send on one end: a message whose header and payload fit in
 * 4096 bytes (PIPE_BUF) arrives whole; longer ones may interleave. The
 * descriptors are close-on-exec: to hand an end to a program you exec, dup2
 * it to the descriptor the program expects (dup2 clears the flag). */
#ifndef MULTIPROC_CONNECTION_H
#define MULTIPROC_CONNECTION_H

#include "common.h"
#include "process.h"
#include "queue.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_connection mp_connection;

/* mp_connection_opts holds the optional settings of mp_connection_new.
 * Zeroed or NULL options make an end that both sends and receives. */
typedef struct mp_connection_opts {
  int read_only;  /* nonzero: receive only (Python's writable=False) */
  int write_only; /* nonzero: send only (Python's readable=False) */
} mp_connection_opts;

/* mp_pipe creates two connected ends, as Python's Pipe(duplex). With
 * duplex nonzero both ends send and receive (a socket pair); with duplex 0,
 * *c1 only receives and *c2 only sends (a pipe), as Python's Pipe(False)
 * returns (reader, writer). Returns 0, MP_EINVAL for a NULL pointer,
 * MP_EMFILE, MP_ENOMEM. A failed call leaves nothing open. */
MP_EXTERN int mp_pipe(mp_connection **c1, mp_connection **c2, int duplex);

/* mp_connection_new wraps the open descriptor fd (a pipe end, a stream
 * socket) in a connection, as Python's Connection(fd). It takes ownership
 * of fd on success: closing or freeing the connection closes it. On
 * failure the caller keeps fd. Returns 0; MP_EINVAL for a NULL out, a
 * negative fd, or both read_only and write_only set; MP_EBADF when fd is
 * not open; MP_ENOMEM. */
MP_EXTERN int mp_connection_new(mp_connection **out, int fd,
                                const mp_connection_opts *opts);

/* mp_connection_close closes the descriptor, as Python's close(): the peer
 * then reads end of stream (MP_ECLOSED), and every later call on c but
 * mp_connection_close, mp_connection_free and the accessors returns
 * MP_ESTATE. Returns 0; idempotent. Do not close an end while another
 * thread uses it. */
MP_EXTERN int mp_connection_close(mp_connection *c);

/* mp_connection_free closes c if it is open and frees it. NULL is a no-op.
 * Never blocks. */
MP_EXTERN void mp_connection_free(mp_connection *c);

/* mp_connection_send_bytes sends the size bytes at buf + offset as one
 * message, as Python's send_bytes(buf, offset, size). It copies the bytes
 * before returning; buf is not kept. It blocks while the peer's side is
 * full, and writes header and payload with one system call when it can.
 * size 0 sends an empty message (buf may then be NULL). Returns 0;
 * MP_EINVAL (NULL c, NULL buf with size > 0, offset + size overflows);
 * MP_ESTATE (closed); MP_EBADF (a receive-only end); MP_EPIPE (the peer
 * closed its end; part of the message may have been written, and nothing
 * more will be read there); -errno of the write. */
MP_EXTERN int mp_connection_send_bytes(mp_connection *c, const void *buf,
                                       size_t offset, size_t size);

/* mp_connection_recv_bytes receives one message into buf, which holds
 * maxlength bytes, as Python's recv_bytes(maxlength), and stores its
 * length in *len. It blocks until a whole message has arrived (use
 * mp_connection_poll or mp_connection_wait to wait with a timeout),
 * spinning briefly first (mp_connection_set_spin).
 * Returns 0, or:
 *   MP_ETOOBIG  the message is longer than maxlength. *len holds its
 *               length, and the message stays unread: call again with a
 *               buffer that large (Python would raise and close).
 *   MP_ECLOSED  the peer closed its end before a new message began
 *               (Python's EOFError; also when a socket reports the
 *               close as a reset, Python's ConnectionResetError).
 *   MP_EPROTO   the stream is broken: end of stream in the middle of a
 *               message (Python's "got end of file during message"), or a
 *               negative length other than -1. The stream cannot be
 *               resynchronised: every later receive returns MP_EPROTO;
 *               sending still works.
 *   MP_EINVAL   NULL c or len, NULL buf with maxlength > 0.
 *   MP_ESTATE   c is closed.
 *   MP_EBADF    c is a send-only end.
 *   -errno      from the read; a failure after part of a message was read
 *               also breaks the stream as MP_EPROTO does. */
MP_EXTERN int mp_connection_recv_bytes(mp_connection *c, void *buf,
                                       size_t maxlength, size_t *len);

/* mp_connection_recv_bytes_into receives one message into buf + offset,
 * where buf holds cap bytes, as Python's recv_bytes_into(buf, offset), and
 * stores the message's length in *len. Returns what
 * mp_connection_recv_bytes returns, with MP_ETOOBIG when offset + length
 * exceeds cap (the message stays unread and *len holds its length; Python
 * raises BufferTooShort having consumed it), and MP_EINVAL when offset
 * exceeds cap. */
MP_EXTERN int mp_connection_recv_bytes_into(mp_connection *c, void *buf,
                                            size_t cap, size_t offset,
                                            size_t *len);

/* MP_CONNECTION_NO_LIMIT as maxlength accepts a message of any length. */
#define MP_CONNECTION_NO_LIMIT ((size_t)-1)

/* mp_connection_recv_bytes_alloc receives one message into a buffer it
 * allocates with malloc, as Python's recv_bytes(maxlength) returning a new
 * bytes object. On success *out holds the message (at least one byte is
 * allocated, so *out is never NULL; the caller frees it with free) and
 * *len its length. A message over maxlength is refused with MP_ETOOBIG
 * before anything is allocated: it stays unread and *len holds its length.
 * With MP_CONNECTION_NO_LIMIT the only limit is memory, so pass a limit
 * when the peer is not trusted: a length header is what the peer says.
 * MP_ENOMEM when the buffer cannot be allocated (the message stays
 * unread). Other returns as mp_connection_recv_bytes; out NULL is
 * MP_EINVAL. */
MP_EXTERN int mp_connection_recv_bytes_alloc(mp_connection *c, void **out,
                                             size_t *len, size_t maxlength);

/* mp_connection_poll waits up to timeout seconds for something to read, as
 * Python's poll(timeout): returns 1 when a receive would not block (a
 * message has begun to arrive, one was refused and waits, the peer closed,
 * or the stream is broken), 0 when the timeout passed (timeout 0 checks
 * once and never blocks; MP_FOREVER waits), MP_EINVAL (NULL), MP_ESTATE
 * (closed), MP_EBADF (a send-only end). Signals do not cut the wait short.
 * With a timeout it first spins as a receive does (mp_connection_set_spin),
 * never past the timeout. */
MP_EXTERN int mp_connection_poll(mp_connection *c, double timeout);

/* MP_CONNECTION_SPIN_DEFAULT is the spin budget of a new end, in seconds
 * (50 us), unless the environment variable MP_CONNECTION_SPIN (seconds,
 * from 0 to 1; read as each end is made; other values are ignored) says
 * otherwise. */
#define MP_CONNECTION_SPIN_DEFAULT 50e-6

/* mp_connection_set_spin sets how long a receive on c, and an
 * mp_connection_poll with a timeout, that finds nothing to read polls the
 * descriptor before sleeping: seconds of non-blocking reads with PAUSE
 * between them, then a few sched_yield calls, then a blocking wait. A
 * message from a peer on another CPU then costs no scheduler wake-up (a
 * 64-byte round trip falls from about 25 us to a few us on a quiet
 * machine), at the price of up to that much CPU time per wait. The budget
 * adapts: a wait that had to block halves the next spin, so an end that
 * waits long for each message soon stops spinning, and one whose message
 * came just after the spin gave up gets the full budget back. The spin
 * also gives up when the thread was descheduled in the middle of it (the
 * CPUs are oversubscribed). It never runs past a poll's timeout, timeout 0
 * never spins, and it changes no result: the same bytes and the same
 * errors arrive as with 0, which restores the plain blocking read. It is
 * a setting of this end in this process (a forked child inherits it).
 * Returns 0, or MP_EINVAL (NULL c; seconds NaN, negative or over 1). */
MP_EXTERN int mp_connection_set_spin(mp_connection *c, double seconds);

/* Accessors, never blocking. mp_connection_fileno returns the descriptor
 * (borrowed: the connection still owns it), MP_ESTATE once closed or
 * MP_EINVAL for NULL. mp_connection_readable and mp_connection_writable
 * return 1 or 0 as Python's readable and writable properties (unchanged by
 * close), MP_EINVAL for NULL; mp_connection_closed returns 1 once closed,
 * else 0 (1 for NULL). */
MP_EXTERN int mp_connection_fileno(const mp_connection *c);
MP_EXTERN int mp_connection_readable(const mp_connection *c);
MP_EXTERN int mp_connection_writable(const mp_connection *c);
MP_EXTERN int mp_connection_closed(const mp_connection *c);

/* ==== wait ===============================================================
 * mp_connection_wait is Python's multiprocessing.connection.wait: it waits
 * for any of a list of objects to be ready. Each object is an mp_waitable:
 *   MP_WAIT_CONNECTION  ready when mp_connection_poll would return 1;
 *   MP_WAIT_PROCESS     ready once the child process has ended (its
 *                       sentinel, as Python's Process.sentinel);
 *   MP_WAIT_FD          ready when the descriptor is readable or hung up;
 *   MP_WAIT_QUEUE       ready when mp_queue_poll would return 1 (a get
 *                       would not block: a message waits, or the queue is
 *                       closed). A queue has no descriptor, so a wait that
 *                       includes one checks it in slices of at most 5 ms.
 * Build entries with mp_waitable_connection(c), mp_waitable_process(p),
 * mp_waitable_fd(fd) and mp_waitable_queue(q). */
typedef enum mp_wait_type {
  MP_WAIT_CONNECTION = 1,
  MP_WAIT_PROCESS = 2,
  MP_WAIT_FD = 3,
  MP_WAIT_QUEUE = 4
} mp_wait_type;

typedef struct mp_waitable {
  mp_wait_type type;
  void *object; /* the mp_connection, mp_process or mp_queue (borrowed) */
  int fd;       /* MP_WAIT_FD: the descriptor; otherwise -1 */
} mp_waitable;

static inline mp_waitable mp_waitable_connection(mp_connection *c) {
  mp_waitable w;
  w.type = MP_WAIT_CONNECTION;
  w.object = c;
  w.fd = -1;
  return w;
}

static inline mp_waitable mp_waitable_process(mp_process *p) {
  mp_waitable w;
  w.type = MP_WAIT_PROCESS;
  w.object = p;
  w.fd = -1;
  return w;
}

static inline mp_waitable mp_waitable_queue(mp_queue *q) {
  mp_waitable w;
  w.type = MP_WAIT_QUEUE;
  w.object = q;
  w.fd = -1;
  return w;
}

static inline mp_waitable mp_waitable_fd(int fd) {
  mp_waitable w;
  w.type = MP_WAIT_FD;
  w.object = NULL;
  w.fd = fd;
  return w;
}

/* mp_connection_wait waits up to timeout seconds until at least one of the
 * n objects is ready, then stores the indices of every ready one, in
 * increasing order, in ready (room for n; NULL when not wanted) and returns
 * how many are ready. Returns 0 when the timeout passed first (Python's
 * empty list; timeout 0 checks once), or MP_EINVAL (an entry of unknown
 * type, a NULL object, a negative fd, NULL objects with n > 0, a queue
 * mp_queue_poll refuses), MP_ESTATE (a closed connection, a process not
 * started or closed), MP_EBADF (a send-only connection, or a descriptor
 * that is not open), MP_ENOMEM. It borrows the objects for the call and
 * never receives; a child found to have ended may be reaped, as
 * mp_process_is_alive does (its exit code stays available). Signals do not
 * cut the wait short. Do not close an object while another thread waits
 * on it. */
MP_EXTERN ssize_t mp_connection_wait(const mp_waitable *objects, size_t n,
                                     double timeout, size_t *ready);

#ifdef __cplusplus
}
#endif
#endif
