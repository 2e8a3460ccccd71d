/* multiproc/queue.h - Queue, JoinableQueue, SimpleQueue, LifoQueue and
 * PriorityQueue, after Python's multiprocessing and queue modules: byte
 * messages passed between threads and processes through shared memory.
 *
 * One object type, mp_queue, covers them all; its options choose the
 * order (FIFO, LIFO, priority), the bounds (a count and a byte capacity)
 * and whether it is joinable. A queue lives in one of three places:
 *   - mp_queue_new(&q, opts): the library maps shared memory for it.
 *     Without opts->name it is anonymous and inherited by forked children;
 *     with a name it is the segment "/mp_<name>" that another process opens
 *     with mp_queue_open. The creator's mp_queue_free unlinks the name.
 *   - mp_queue_init(&q, mem, size, opts): in place, in memory the caller
 *     shares (mp_queue_size_for tells how much); other processes that map
 *     the same memory get a handle with mp_queue_attach.
 * mp_queue is a process-local handle onto the shared state: it is copied
 * into children by fork, and each process frees its own.
 *
 * Messages are bytes. put copies the message into shared memory before it
 * returns (there is no feeder thread: a producer may _exit right after put
 * and the message stays queued). get copies it out. A message larger than
 * the queue's inline limit travels through a shared segment of its own,
 * which mp_queue_get_msg hands to the receiver without a copy.
 *
 * Crash safety (G-QUEUE-1..3 in docs/queue.md): a process killed at any
 * point inside put or get leaves the queue consistent. A message whose put
 * returned 0 is never lost; a half-written message is never seen; a get
 * that did not return either left its message queued or consumed it whole;
 * no survivor blocks past its timeout. A named queue whose header another
 * program damaged is refused on open with MP_ECORRUPT, and sizes and
 * offsets read from shared memory are checked before use.
 *
 * Results: full and empty are told apart: a put that cannot proceed
 * returns MP_EAGAIN (timeout 0) or MP_ETIMEDOUT, as does a get; Python's
 * Full and Empty are these codes from put and get respectively. After
 * mp_queue_close, puts return MP_ECLOSED and gets drain what is left, then
 * return MP_ECLOSED instead of blocking. */
#ifndef MULTIPROC_QUEUE_H
#define MULTIPROC_QUEUE_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A queue name is at most this many bytes (as the sync objects' names). */
#define MP_QUEUE_NAME_MAX 200
/* The byte capacity used when opts->capacity is 0: 1 MiB. */
#define MP_QUEUE_DEFAULT_CAPACITY ((size_t)1 << 20)
/* Capacity bounds: a FIFO ring is rounded up to a power of two in this
 * range; a LIFO or priority queue's slots fill at most the maximum. */
#define MP_QUEUE_MIN_CAPACITY ((size_t)4096)
#define MP_QUEUE_MAX_CAPACITY ((size_t)1 << 30)
/* The largest message any queue accepts: 1 TiB. */
#define MP_QUEUE_MESSAGE_MAX ((size_t)1 << 40)
/* How long a blocked put or get spins before it sleeps, by default. */
#define MP_QUEUE_DEFAULT_SPIN_NS 20000L
/* Memory given to mp_queue_init is aligned to this many bytes. */
#define MP_QUEUE_ALIGN 64

/* mp_queue is the process-local handle of a queue. */
typedef struct mp_queue mp_queue;

/* mp_queue_order is the order in which get returns messages. */
typedef enum mp_queue_order {
  MP_QUEUE_FIFO = 0,    /* first in, first out (Queue, SimpleQueue) */
  MP_QUEUE_LIFO = 1,    /* last in, first out (LifoQueue) */
  MP_QUEUE_PRIORITY = 2 /* lowest priority value first, FIFO among equals
                           (PriorityQueue) */
} mp_queue_order;

/* mp_queue_opts are the options of mp_queue_new and mp_queue_init. Zero
 * (or NULL options) means the default for every field. */
typedef struct mp_queue_opts {
  const char *name;   /* NULL: anonymous (fork-inherited). Else created
                         under this name (copied; [A-Za-z0-9._-], at most
                         MP_QUEUE_NAME_MAX bytes); MP_EEXIST if taken.
                         mp_queue_init refuses a name (MP_EINVAL). */
  size_t maxsize;     /* the most messages queued at once; 0: bounded by
                         the byte capacity only (Python's maxsize <= 0) */
  size_t capacity;    /* bytes of shared storage for inline messages;
                         0: MP_QUEUE_DEFAULT_CAPACITY, or for LIFO and
                         priority queues with a maxsize, maxsize slots.
                         In a FIFO ring a large message's record takes an
                         eighth (so at most 8 are queued at once). */
  size_t max_message; /* the largest message put accepts (MP_ETOOBIG
                         beyond); 0: MP_QUEUE_MESSAGE_MAX */
  size_t inline_max;  /* the largest message copied into the queue's own
                         memory; larger ones travel through a segment of
                         their own. 0: a quarter of the capacity (FIFO) or
                         232 bytes (LIFO, priority). At least 24 (the size
                         of a large message's record): 1 to 23 is
                         MP_EINVAL. */
  mp_queue_order order;
  int joinable; /* nonzero: a JoinableQueue (task_done, join) */
  long spin_ns; /* how long a blocked call spins before sleeping:
                   0: MP_QUEUE_DEFAULT_SPIN_NS; negative: never */
  int lease;    /* nonzero (FIFO only): at-least-once delivery. Every get
                   leases its message until mp_queue_ack (or task_done);
                   a lease whose holder died is queued again. */
} mp_queue_opts;

/* A lease-mode queue holds at most this many leases at once. */
#define MP_QUEUE_LEASES 16

/* ---- life cycle ---------------------------------------------------------
 * mp_queue_new creates a queue as opts say and stores its handle in *out.
 * Returns 0, MP_EINVAL (bad options or name), MP_ENAMETOOLONG, MP_EEXIST
 * (name taken), MP_ENOMEM. A FIFO queue's capacity is rounded up to a power
 * of two within [MP_QUEUE_MIN_CAPACITY, MP_QUEUE_MAX_CAPACITY]. */
MP_EXTERN int mp_queue_new(mp_queue **out, const mp_queue_opts *opts);
/* mp_simple_queue_new creates an anonymous FIFO queue with the defaults:
 * Python's SimpleQueue (put, get, empty, close). */
MP_EXTERN int mp_simple_queue_new(mp_queue **out);
/* mp_joinable_queue_new creates an anonymous FIFO JoinableQueue holding at
 * most maxsize messages (0: bounded by bytes only): Python's
 * JoinableQueue(maxsize). Returns as mp_queue_new. */
MP_EXTERN int mp_joinable_queue_new(mp_queue **out, size_t maxsize);
/* mp_queue_open opens the queue another process created under name. It
 * checks the segment's header, sizes and offsets before using it.
 * Returns 0, MP_ENOENT, MP_ECORRUPT (not a valid queue), MP_EINVAL,
 * MP_ENOMEM. */
MP_EXTERN int mp_queue_open(mp_queue **out, const char *name);
/* mp_queue_free releases this process's handle and mapping; the creator of
 * a named queue also unlinks its name. Messages stay queued for the other
 * processes that use the queue. The last live user of an anonymous queue
 * (and the creator of a named one, when no other live process uses it)
 * discards the messages still queued and removes their own segments, as
 * far as the queue's table of up to 64 user processes tells. Never blocks
 * on other processes. NULL is a no-op. For an in-place queue it frees the
 * handle only. */
MP_EXTERN void mp_queue_free(mp_queue *q);
/* mp_queue_size_for returns how many bytes mp_queue_init needs for a queue
 * with these options, or MP_EINVAL. */
MP_EXTERN ssize_t mp_queue_size_for(const mp_queue_opts *opts);
/* mp_queue_init makes a queue in the caller's memory mem (size bytes,
 * aligned to MP_QUEUE_ALIGN, at least mp_queue_size_for(opts)) and stores a
 * handle in *out. The library borrows mem until mp_queue_destroy. Returns
 * 0, MP_EINVAL, MP_ERANGE (size too small), MP_ENOMEM. */
MP_EXTERN int mp_queue_init(mp_queue **out, void *mem, size_t size,
                            const mp_queue_opts *opts);
/* mp_queue_attach gives this process a handle onto a queue that another
 * process made with mp_queue_init in memory both map (possibly at another
 * address). It checks the header as mp_queue_open does. Free the handle
 * with mp_queue_free. Returns 0, MP_EINVAL, MP_ECORRUPT, MP_ENOMEM. */
MP_EXTERN int mp_queue_attach(mp_queue **out, void *mem, size_t size);
/* mp_queue_destroy closes an in-place queue, discards what it holds
 * (removing large messages' segments), marks the memory as no longer a
 * queue and frees the handle. Others' handles then get MP_EINVAL.
 * Returns 0, or MP_EINVAL (not an in-place queue's handle: use
 * mp_queue_free). */
MP_EXTERN int mp_queue_destroy(mp_queue *q);

/* ---- put ----------------------------------------------------------------
 * mp_queue_put copies len bytes of buf into the queue, waiting up to
 * timeout for room (a count below maxsize and the bytes the message needs).
 * When it returns 0 the message is in shared memory. A priority queue
 * gives it priority 0. len may be 0 (buf may then be NULL).
 * Returns 0, MP_EAGAIN (timeout 0: full), MP_ETIMEDOUT (still full at the
 * deadline), MP_ECLOSED, MP_ETOOBIG (len over max_message: nothing was
 * queued), MP_EINVAL, MP_ENOMEM/MP_ENOSPC (a large message's segment could
 * not be made), MP_ECORRUPT (the shared state was damaged). */
MP_EXTERN int mp_queue_put(mp_queue *q, const void *buf, size_t len,
                           double timeout);
/* mp_queue_put_nowait is mp_queue_put with timeout 0. */
MP_EXTERN int mp_queue_put_nowait(mp_queue *q, const void *buf, size_t len);
/* mp_queue_put_priority puts with a priority key: in a PRIORITY queue get
 * returns the lowest key first, and messages with equal keys in the order
 * they were put. Other queues return MP_EINVAL. */
MP_EXTERN int mp_queue_put_priority(mp_queue *q, int64_t priority,
                                    const void *buf, size_t len,
                                    double timeout);
/* mp_queue_put_batch puts n messages stored back to back in buf (message
 * i is lens[i] bytes), in order, publishing as many as fit at once. It
 * waits for room as mp_queue_put does. Returns n, or the number put before
 * the timeout or close if that is not zero, else the error put returns. */
MP_EXTERN ssize_t mp_queue_put_batch(mp_queue *q, const void *buf,
                                     const size_t *lens, size_t n,
                                     double timeout);

/* ---- in-place put (Aeron's tryClaim) -------------------------------------
 * mp_queue_claim reserves room for one message of up to size bytes and
 * stores in *buf where to write it: in the queue's ring for a small
 * message, in a shared segment of its own (mapped writable, its pages
 * already there) for one over the inline limit. The caller fills it, then
 * mp_queue_commit publishes len bytes of it (len <= size) without a copy,
 * or mp_queue_abandon gives the room back. Nothing is visible before the
 * commit: a producer killed before it leaves no message, and its claim's
 * room and segment are reclaimed (the next producer takes the lock over;
 * a sweep removes the segment). Between claim and commit the calling
 * thread holds the queue's producer lock: other producers wait, so fill
 * the buffer and commit promptly, from the same thread, with no other put
 * of that thread in between (which would return MP_EDEADLK). One claim per
 * thread at a time. FIFO queues only (MP_EINVAL otherwise).
 * Returns 0, MP_EAGAIN (timeout 0: full), MP_ETIMEDOUT, MP_ECLOSED,
 * MP_ETOOBIG (size over max_message), MP_EINVAL, MP_EDEADLK (this thread
 * already holds a claim or the lock), MP_ENOSPC, MP_ECORRUPT. */
MP_EXTERN int mp_queue_claim(mp_queue *q, size_t size, void **buf,
                             double timeout);
/* mp_queue_commit publishes len bytes of the calling thread's claim (a
 * claim over the inline limit must commit more than the limit: else
 * MP_EINVAL, and the claim stays open). Never blocks. Returns 0 or
 * MP_EINVAL (no claim of this thread on q, or len out of range). */
MP_EXTERN int mp_queue_commit(mp_queue *q, size_t len);
/* mp_queue_abandon drops the calling thread's claim: no message, the room
 * and any segment given back. Returns 0 or MP_EINVAL (no claim). */
MP_EXTERN int mp_queue_abandon(mp_queue *q);

/* ---- get ----------------------------------------------------------------
 * mp_queue_get takes the next message, copying it into buf (cap bytes) and
 * storing its length in *len, waiting up to timeout for one.
 * Returns 0, MP_EAGAIN (timeout 0: empty), MP_ETIMEDOUT, MP_ECLOSED (closed
 * and empty), MP_ETOOBIG (cap too small: *len is set to the length needed
 * and the message stays queued), MP_EINVAL, MP_ECORRUPT. */
MP_EXTERN int mp_queue_get(mp_queue *q, void *buf, size_t cap, size_t *len,
                           double timeout);
/* mp_queue_get_nowait is mp_queue_get with timeout 0. */
MP_EXTERN int mp_queue_get_nowait(mp_queue *q, void *buf, size_t cap,
                                  size_t *len);
/* mp_queue_get_priority is mp_queue_get that also stores the message's
 * priority in *priority (0 for queues that are not PRIORITY). */
MP_EXTERN int mp_queue_get_priority(mp_queue *q, int64_t *priority, void *buf,
                                    size_t cap, size_t *len, double timeout);
/* mp_queue_get_batch takes up to max messages at once, copying them back
 * to back into buf (cap bytes) and their lengths into lens[0..]. It waits
 * up to timeout for the first, then takes what is there and fits. Returns
 * the number taken (>= 1), or the error mp_queue_get returns for the first
 * (MP_ETOOBIG with lens[0] set to its length). */
MP_EXTERN ssize_t mp_queue_get_batch(mp_queue *q, void *buf, size_t cap,
                                     size_t *lens, size_t max, double timeout);

/* mp_queue_msg is a received message that the caller reads in place and
 * hands back with mp_queue_msg_release. */
typedef struct mp_queue_msg {
  const void *data; /* len bytes, valid until mp_queue_msg_release */
  size_t len;
  int64_t priority;
  void *priv_[2]; /* the library's */
  size_t priv_len_;
} mp_queue_msg;

/* mp_queue_get_msg takes the next message as mp_queue_get does, but
 * without a caller buffer: a large message is handed over in its own
 * segment, mapped read-only, without a copy; a small one is copied into a
 * buffer the library allocates. Release it with mp_queue_msg_release.
 * Returns 0, MP_EAGAIN, MP_ETIMEDOUT, MP_ECLOSED, MP_ENOMEM, MP_EINVAL. */
MP_EXTERN int mp_queue_get_msg(mp_queue *q, mp_queue_msg *msg, double timeout);
/* mp_queue_msg_release gives back what mp_queue_get_msg handed out and
 * clears *msg. A cleared or zero-filled msg is a no-op. */
MP_EXTERN void mp_queue_msg_release(mp_queue_msg *msg);

/* ---- typed helpers ------------------------------------------------------
 * These put one C value as a message of its exact bytes (8 for int64 and
 * double, strlen(s) for a string, without the NUL) and get it back. A get
 * whose next message has another length returns MP_EPROTO and leaves it
 * queued (mp_queue_get takes it). mp_queue_get_str stores a NUL-terminated
 * string; MP_ETOOBIG when the message and its NUL do not fit in cap. */
MP_EXTERN int mp_queue_put_int64(mp_queue *q, int64_t value, double timeout);
MP_EXTERN int mp_queue_get_int64(mp_queue *q, int64_t *value, double timeout);
MP_EXTERN int mp_queue_put_double(mp_queue *q, double value, double timeout);
MP_EXTERN int mp_queue_get_double(mp_queue *q, double *value, double timeout);
MP_EXTERN int mp_queue_put_str(mp_queue *q, const char *s, double timeout);
MP_EXTERN int mp_queue_get_str(mp_queue *q, char *buf, size_t cap,
                               double timeout);

/* ---- state --------------------------------------------------------------
 * mp_queue_qsize returns the number of messages queued now (exact at the
 * moment it looked), or MP_EINVAL. */
MP_EXTERN ssize_t mp_queue_qsize(mp_queue *q);
/* mp_queue_empty returns 1 when no message is queued, else 0. */
MP_EXTERN int mp_queue_empty(mp_queue *q);
/* mp_queue_full returns 1 when maxsize messages are queued, or when the
 * storage has no room even for an empty message; else 0. A larger message
 * may still block when full returns 0. */
MP_EXTERN int mp_queue_full(mp_queue *q);
/* mp_queue_maxsize returns the count bound (0: none). */
MP_EXTERN size_t mp_queue_maxsize(mp_queue *q);
/* mp_queue_close closes the queue for every process: waiters wake with
 * MP_ECLOSED, later puts fail with MP_ECLOSED, gets return what is left and
 * then MP_ECLOSED. Idempotent. Returns 0 or MP_EINVAL. */
MP_EXTERN int mp_queue_close(mp_queue *q);
/* mp_queue_closed returns 1 once the queue is closed, else 0. */
MP_EXTERN int mp_queue_closed(mp_queue *q);
/* mp_queue_poll returns 1 when a get would not block now (a message is
 * queued, or the queue is closed), else 0, or MP_EINVAL. It never blocks;
 * mp_connection_wait uses it to wait on queues among connections and
 * processes. */
MP_EXTERN int mp_queue_poll(mp_queue *q);

/* ---- at-least-once (lease mode) -----------------------------------------
 * mp_queue_get_lease is mp_queue_get on a queue made with .lease = 1, that
 * also stores the message's lease in *lease. Until the lease is released
 * by mp_queue_ack, the queue keeps a copy; if the process that holds it is
 * known to be dead, the next get of any process puts the message back at
 * the tail (so a consumer killed after get, before it finished, loses
 * nothing; the price is that such a message may be delivered twice, and
 * out of order). Every get of a lease-mode queue leases (one message per
 * call); mp_queue_ack(q, 0) releases one lease this process holds, as does
 * mp_queue_task_done. A get finding all MP_QUEUE_LEASES leases held
 * returns MP_EBUSY. Returns as mp_queue_get, and MP_EINVAL (not a
 * lease-mode queue). */
MP_EXTERN int mp_queue_get_lease(mp_queue *q, void *buf, size_t cap,
                                 size_t *len, uint64_t *lease, double timeout);
/* mp_queue_ack releases lease (0: any one this process holds). Returns 0,
 * or MP_EINVAL (not a lease this process holds, or not a lease-mode
 * queue). */
MP_EXTERN int mp_queue_ack(mp_queue *q, uint64_t lease);

/* ---- JoinableQueue ------------------------------------------------------
 * mp_queue_task_done tells that a message taken by get has been processed.
 * Returns 0, MP_EVALUE (called more often than messages were put: Python's
 * ValueError), MP_EINVAL (not a joinable queue). */
MP_EXTERN int mp_queue_task_done(mp_queue *q);
/* mp_queue_join waits until every message ever put has been marked done.
 * Unlike Python's, it does not wait for ever for tasks nobody can finish:
 * each process's gets not yet matched by its task_done calls are counted
 * (in the queue's table of users), and once a process that held some is
 * known to be dead while tasks are unfinished, join returns MP_EOWNERDEAD
 * (mp_error_detail names the process and its count); every later join
 * does too, until task_done was called for them. Returns 0, MP_EOWNERDEAD,
 * MP_EAGAIN (timeout 0) or MP_ETIMEDOUT, MP_EINVAL (not joinable, or a NaN
 * timeout). */
MP_EXTERN int mp_queue_join(mp_queue *q, double timeout);
/* mp_queue_unfinished_tasks returns how many messages were put and not yet
 * marked done (Python's internal _unfinished_tasks counter), or
 * MP_EINVAL (not a joinable queue). */
MP_EXTERN ssize_t mp_queue_unfinished_tasks(mp_queue *q);

#ifdef __cplusplus
}
#endif
#endif
