/* bench_queue.c - what moving messages between processes costs: the
 * multiproc Queue and Pipe against the ways a C program would otherwise do
 * it, with a bare shared-memory ring and memcpy as the limits. (Python's
 * multiprocessing.Queue, SimpleQueue and Pipe are measured by
 * bench/peers/py_queue.py in the same `make bench` run.)
 *
 * queue_1to1/64B, /4KiB, /1MiB   one producer process sends N messages of
 *                    that size to one consumer process; ns (us for 1 MiB)
 *                    per message, from the moment both are connected to the
 *                    consumer's last message.
 * queue_2to2/64B     two producers and two consumers on one channel; the
 *                    consumers stop at a zero-length message (the last
 *                    producer to finish sends one per consumer), or by
 *                    count where the channel is not FIFO across producers.
 * queue_roundtrip/64B_busy   one process sends a message, the other sends
 *                    it back; ns per round trip, both sides doing nothing
 *                    else (each receive follows the last at once).
 * queue_roundtrip/64B_idle   the same with both sides sleeping between
 *                    messages (the sender IDLE_PING_US before each ping,
 *                    the echoer IDLE_PONG_US after each reply), so each
 *                    message finds its receiver already asleep; only the
 *                    send-to-reply time is counted.
 *
 * The systems:
 *   multiproc          mp_queue (anonymous, fork-inherited, default
 *                      options): mp_queue_put / mp_queue_get
 *   multiproc_batch    the same queue with mp_queue_put_batch and
 *                      mp_queue_get_batch, MPQ_BATCH messages a call
 *   multiproc_zerocopy (1 MiB) the same queue, the consumer taking each
 *                      message with mp_queue_get_msg and reading it in place
 *   multiproc_inplace  (1 MiB) the same queue, the producer writing each
 *                      message where the consumer reads it (mp_queue_claim,
 *                      a memcpy of the pattern standing for producing the
 *                      data, mp_queue_commit), the consumer as zerocopy
 *   multiproc_pipe     mp_pipe: simplex for throughput (a pipe, as Python's
 *                      Queue uses), duplex for the round trip (a socket
 *                      pair); send_bytes / recv_bytes
 *   framed_pipe        pipe(2) with Python's framing (4-byte big-endian
 *                      length, payload): one write(2) per message (writev
 *                      when large), a buffered reader that takes as many
 *                      frames per read(2) as are there; with two consumers
 *                      the readers take a shared lock and read exactly one
 *                      frame, as Python's Queue does
 *   socketpair         the same framing over an AF_UNIX stream socketpair
 *   posix_mq           mq_send / mq_receive (mq_open; see mq_setup for the
 *                      message size limit)
 *   zmq_ipc            ZeroMQ PUSH/PULL over ipc:// in a temporary
 *                      directory (PAIR for the round trip), zmq_send and
 *                      zmq_msg_recv (the receiver reads the message where
 *                      ZeroMQ put it)
 *   multiproc_nospin   (idle round trip only) the same queue with
 *                      spin_ns < 0: every wait sleeps at once
 *   futex_handoff      (round trip only) a 64-byte slot in shared memory
 *                      and a futex word per direction: store, FUTEX_WAKE;
 *                      the receiver FUTEX_WAITs, never spins
 *   futex_bounded      (idle round trip only) the queue's wake protocol
 *                      with no queue: the same slot, a message count and a
 *                      futex word counting registered sleepers per
 *                      direction; the receiver registers, looks again and
 *                      sleeps at most 20 ms at a time (the queue's first
 *                      sleep), the sender wakes only when someone is
 *                      registered. The floor of a hand-off that keeps the
 *                      queue's guarantees (one wake a message and none
 *                      while nobody sleeps; every sleep bounded, so a
 *                      missed or lost wake costs a slice, not a hang)
 *   ring_limit         bench/ring.h, a bare busy-polling single-producer
 *                      single-consumer ring: the producer copies each
 *                      message in, the consumer reads it in place; each
 *                      message published and released on its own. In
 *                      queue_2to2 it is two independent rings (a pair each),
 *                      so it bounds what two pairs could do, not an MPMC
 *                      queue
 *   ring_batch_limit   the same ring publishing every RING_BATCH messages
 *                      and releasing what it read when it runs dry (or
 *                      holds a quarter of the ring)
 *   memcpy_limit       one process: copy the message, checksum the copy
 *   handoff_limit      (1 MiB) the floor of a large hand-over between two
 *                      processes: HANDOFF_BUFS buffers of the message's size
 *                      in one shared mapping, every page present before the
 *                      clock starts; the producer copies the message into
 *                      buffer i with non-temporal stores (nt_copy, as the
 *                      library copies a large message in) and publishes i,
 *                      the consumer checksums it in place and releases it:
 *                      the work of a zero-copy get with no queue, no
 *                      segment, no system call. handoff_copy_limit: the
 *                      consumer copies the message out (memcpy) into its
 *                      own buffer, releases the slot, then checksums the
 *                      copy (the work of a copying get). handoff_8buf_limit:
 *                      the in-place floor with 8 buffers (a working set
 *                      beyond the L2 cache, as the queue's up to eight
 *                      large messages in flight).
 *                      handoff_memcpy_limit: the producer copies in with
 *                      memcpy, ordinary stores, as ring_limit does and as a
 *                      program filling an in-place claim does: each line
 *                      the consumer read last is fetched from its cache
 *                      before it is overwritten.
 *                      handoff_cold_limit: 8 buffers, memcpy in, read
 *                      in place, a buffer written again only once the
 *                      consumer released HANDOFF_COLD_GAP more after it
 *                      (the queue's cold spares, queue_large.c): each side
 *                      works on lines the other's cache has given up.
 *                      handoff_cold_copy_limit: the same, the consumer
 *                      copying each message out (a copying get's work).
 *                      handoff_guard_limit: the cold floor with what
 *                      the queue's guarantees cost on top, 1000 messages as
 *                      multiproc_zerocopy: 8 buffers (the 1 MiB segments a
 *                      new queue makes before it reuses one) whose pages
 *                      exist but that neither worker maps before the clock
 *                      (nothing is made at mp_queue_new: each buffer's
 *                      first message maps its pages in both workers, as a
 *                      fresh segment's does, with MADV_POPULATE_* as the
 *                      queue's MAP_POPULATE), and per
 *                      message the queue's system calls: the producer
 *                      renames a file in /dev/shm and stats it, the
 *                      consumer stats one and renames it (the names let
 *                      a sweep tell whose a segment is after a crash; the
 *                      stat catches a segment resized from outside)
 *
 * Every message carries a sequence number in its first 8 bytes and a fixed
 * pattern after it. Each consumer counts its messages and sums the 64-bit
 * words of every payload it received; the case fails unless the count and
 * the sum over all consumers are exactly those of the messages sent (the
 * round trip checks each echo). Channels are made before the clock starts;
 * every worker connects (servers before clients, so ZeroMQ never waits for
 * a reconnect) and the clock starts when the last one is ready.
 *
 * Where a system cannot run here the case is skipped with the reason: no
 * ZeroMQ in the build, or a POSIX mq message size over what the kernel
 * lets this process have. `make bench` prints the targets of the issue
 * from these rows (bench/run.sh). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifdef BENCH_HAVE_ZMQ
#include <zmq.h>
#endif
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include <multiproc.h>

#include "bench.h"
#include "ring.h"

/* How long a run's workers may take before they are killed and the case
 * fails. */
#define WORKER_TIMEOUT 120.0

/* The idle round trip's sleeps. The echoer is back in its receive
 * IDLE_PING_US - IDLE_PONG_US (300 us) before the next ping: far longer
 * than any sensible spin before sleeping. */
#define IDLE_PING_US 400
#define IDLE_PONG_US 100

/* handoff_limit's buffers (see the systems above). */
#define HANDOFF_BUFS 2
#define HANDOFF_MAX_BUFS 8
#define HANDOFF_COPY_OUT 1  /* the consumer copies the message out */
#define HANDOFF_MEMCPY_IN 2 /* the producer copies in with memcpy */
#define HANDOFF_GUARD 4     /* the price of the queue's guarantees, below */
#define HANDOFF_COLD 8      /* a buffer is reused HANDOFF_COLD_GAP later */
/* handoff_cold_limit: how many more buffers the consumer releases after
 * one before the producer writes it again (the queue's cold spares: 3 MiB
 * of 1 MiB messages). */
#define HANDOFF_COLD_GAP 3

/* The smallest ring (ring_setup makes it larger until four of the largest
 * messages fit), and how many messages ring_batch_limit publishes at once. */
#define RING_SMALL (256 * 1024)
#define RING_BATCH 64

/* A framed reader's buffer, and the largest frame a writer assembles in one
 * buffer (Python's threshold for a single write). */
#define READ_BUFFER (64 * 1024)
#define SMALL_FRAME 16384

/* The most workers of one run: two producers and two consumers. */
#define MAX_SIDES 4

#define KiB 1024
#define MiB (1024 * 1024)

/* ---- payloads and checksums --------------------------------------------- */

/* checksum sums the 64-bit words of buf (the tail bytes as one more word).
 * Four sums so that the loop is not one long dependency chain. */
static inline uint64_t checksum(const void *buf, size_t len) {
  const unsigned char *p = buf;
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    uint64_t w[4];
    memcpy(w, p + i, 32);
    s0 += w[0];
    s1 += w[1];
    s2 += w[2];
    s3 += w[3];
  }
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    s0 += w;
  }
  if (i < len) {
    uint64_t w = 0;
    memcpy(&w, p + i, len - i);
    s1 += w;
  }
  return s0 + s1 + s2 + s3;
}

/* payload_new returns a message buffer of size bytes (at least 8) holding
 * the pattern, its sequence word zero, or NULL. */
static unsigned char *payload_new(size_t size) {
  unsigned char *p = malloc(size < 8 ? 8 : size);
  if (p == NULL)
    return NULL;
  for (size_t k = 0; k < size; k++)
    p[k] = (unsigned char)(k * 131 + 7);
  memset(p, 0, 8);
  return p;
}

static inline void payload_seq(unsigned char *p, uint64_t seq) {
  memcpy(p, &seq, 8);
}

/* expected_sum is the sum over messages 1..n of their checksums, given
 * base, the checksum of a message whose sequence word is zero. */
static uint64_t expected_sum(uint64_t base, uint64_t n) {
  uint64_t a = n, b = n + 1;
  if (a % 2 == 0)
    a /= 2;
  else
    b /= 2;
  return base * n + a * b;
}

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* ---- what a case measures, and the shared state of one run ------------- */

typedef struct system_ops system_ops;

/* qcase is a case's parameters (bench_case.arg). */
typedef struct qcase {
  const system_ops *ops;
  int rt;      /* round trip instead of throughput */
  size_t size; /* payload bytes */
  int nprod;   /* throughput: producers and consumers */
  int ncons;
  int idle;  /* round trip: both sides sleep between messages */
  int batch; /* the batched variant of the system */
  int nbuf;  /* handoff: buffers (0: HANDOFF_BUFS) */
  int copy;  /* handoff: HANDOFF_COPY_OUT | HANDOFF_MEMCPY_IN */
} qcase;

/* side_result is what one worker found, in shared memory. */
typedef struct side_result {
  _Alignas(64) uint64_t count;
  uint64_t sum;
  int64_t end_ns;  /* throughput: when it received its last message */
  int64_t busy_ns; /* round trip: the time counted */
  char error[200];
} side_result;

/* xshared is the shared memory of one run: what the workers found, how
 * they meet before the clock starts, and the futex hand-off's words. */
typedef struct xshared {
  side_result res[MAX_SIDES];
  _Alignas(64) atomic_int servers; /* servers (receivers) connected */
  atomic_int attached;             /* workers connected */
  atomic_int abort;                /* a worker failed to connect */
  atomic_int producers_done;
  atomic_int consumers_done;
  _Atomic int64_t start_ns;               /* when the last worker connected */
  _Alignas(64) _Atomic uint64_t received; /* count-stopped consumers */
  _Alignas(64) pthread_mutex_t rlock;     /* 2->2 framed readers */
  int rlock_ok;
  /* futex_handoff: a word and a slot per direction */
  _Alignas(64) _Atomic uint32_t word[2];
  _Alignas(64) unsigned char slot[2][64];
  /* futex_bounded: the message count per direction (word[] then counts
   * the registered sleepers), each on a line of its own */
  _Alignas(64) _Atomic uint32_t fdata0;
  _Alignas(64) _Atomic uint32_t fdata1;
} xshared;

/* xfer is one run, built by the parent and inherited by the workers. */
typedef struct xfer {
  const qcase *q;
  size_t size;
  int nprod, ncons, nworkers, nservers;
  uint64_t per_prod; /* messages per producer (round trip: round trips) */
  uint64_t total;
  xshared *sh;
  /* channels: 0 producer/pinger -> consumer/ponger, 1 ponger -> pinger */
  int fd[4];
  mqd_t mq[2];
  size_t mq_msgsize;
  char dir[64];
  char ep[MAX_SIDES][128];
  bench_ring *ring[2];
  size_t ring_size;
  struct handoff *hand;
  size_t hand_bytes;
  mp_connection *conn[2];
  mp_queue *mpq[2];
} xfer;

enum role { ROLE_PRODUCER, ROLE_CONSUMER, ROLE_PING, ROLE_PONG };

/* endpoint is one worker's end of the channels, private to its process. */
typedef struct endpoint {
  xfer *x;
  enum role role;
  int index; /* among producers, among consumers, or 0 */
  side_result *res;
  /* framed fds */
  int rfd, wfd;
  int locked; /* read exactly one frame under sh->rlock */
  unsigned char *rbuf;
  size_t rbeg, rend;
  unsigned char *big; /* a buffer for one whole message */
  size_t big_cap;
  unsigned char *wbuf;
  /* POSIX mq */
  mqd_t mq_in, mq_out;
  /* ZeroMQ */
  void *zctx, *zin, *zout;
#ifdef BENCH_HAVE_ZMQ
  zmq_msg_t zmsg;
  int zmsg_live;
#endif
  /* rings */
  ring_producer rp;
  ring_consumer rc;
  int rc_live;
  /* futex hand-off */
  uint32_t seen;
  /* handoff floor: the next buffer to fill or read; a buffer read in place */
  uint64_t hseq;
  int hlive;
  char hname[2][64]; /* handoff_guard_limit: this worker's two names */
  /* multiproc */
  mp_connection *conn;
  mp_queue *qin, *qout;
  mp_queue_msg msg;
  int msg_live;
} endpoint;

/* RECV_IDLE: nothing to receive now (count-stopped consumers only). */
#define RECV_IDLE 1

/* system_ops is one way of moving messages. setup runs in the parent
 * before the workers are forked and makes the channels; teardown undoes
 * it. attach and detach run in each worker; send and recv move one
 * message (recv hands out a pointer valid until the next recv). A send of
 * zero bytes is the stop message. */
struct system_ops {
  int (*setup)(xfer *x, bench_run *run);
  void (*teardown)(xfer *x);
  int (*attach)(endpoint *e);
  void (*detach)(endpoint *e);
  int (*send)(endpoint *e, const void *buf, size_t len);
  int (*recv)(endpoint *e, const void **data, size_t *len);
  /* count_stop: with several consumers, stop by counting (recv returns
   * RECV_IDLE when nothing is there; wait then waits up to 1 ms). */
  int count_stop;
  int (*wait)(endpoint *e);
  /* pairs: with several producers and consumers, producer i talks to
   * consumer i only (the rings); each sends its consumer one stop. */
  int pairs;
  /* produce, consume: a system's own loops instead of the message-at-a-time
   * ones (the batch APIs). */
  int (*produce)(endpoint *e);
  int (*consume)(endpoint *e);
  bench_worker_fn worker;
};

/* ep_fail records why a worker failed and returns -1. */
__attribute__((format(printf, 2, 3))) static int ep_fail(endpoint *e,
                                                         const char *fmt, ...) {
  if (e->res->error[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->res->error, sizeof e->res->error, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* ---- the workers ---------------------------------------------------------
 * run_worker is inlined into each system's worker with a constant ops, so
 * each system's calls are direct, as in a program using it. */

static void wait_count(xfer *x, atomic_int *n, int want) {
  unsigned spins = 0;
  while (atomic_load(n) < want && !atomic_load(&x->sh->abort))
    ring_backoff(&spins);
}

static inline __attribute__((always_inline)) int
produce_loop(endpoint *e, const system_ops *ops) {
  xfer *x = e->x;
  unsigned char *buf = payload_new(x->size);
  if (buf == NULL)
    return ep_fail(e, "out of memory");
  uint64_t seq = (uint64_t)e->index * x->per_prod;
  int rc = 0;
  for (uint64_t i = 0; i < x->per_prod && rc == 0; i++) {
    payload_seq(buf, ++seq);
    rc = ops->send(e, buf, x->size);
  }
  /* With several consumers on a FIFO channel, the last producer to finish
   * sends one stop per consumer: every message is ahead of the stops. */
  if (rc == 0 && x->ncons > 1 && ops->pairs)
    rc = ops->send(e, buf, 0);
  else if (rc == 0 && x->ncons > 1 && !ops->count_stop &&
           atomic_fetch_add(&x->sh->producers_done, 1) + 1 == x->nprod)
    for (int c = 0; c < x->ncons && rc == 0; c++)
      rc = ops->send(e, buf, 0);
  free(buf);
  return rc;
}

static inline __attribute__((always_inline)) int
consume_loop(endpoint *e, const system_ops *ops) {
  xfer *x = e->x;
  uint64_t count = 0, sum = 0, published = 0, counted_at_idle = 0;
  int64_t end = 0;
  int by_count = x->ncons > 1 && ops->count_stop;
  for (;;) {
    if (x->ncons == 1 && count == x->total)
      break;
    const void *data = NULL; /* -O3 cannot see every recv sets them */
    size_t len = 0;
    int rc = ops->recv(e, &data, &len);
    if (rc == RECV_IDLE && by_count) {
      /* The end of this consumer's burst: note when, tell the others what
       * it got, and stop once all of it is accounted for. */
      if (count != counted_at_idle) {
        end = bench_now_ns();
        counted_at_idle = count;
      }
      atomic_fetch_add(&x->sh->received, count - published);
      published = count;
      if (atomic_load(&x->sh->received) >= x->total)
        break;
      if (ops->wait(e) != 0)
        return -1;
      continue;
    }
    if (rc != 0)
      return rc < 0 ? rc : ep_fail(e, "recv: unexpected idle");
    if (len == 0)
      break;
    sum += checksum(data, len);
    count++;
  }
  e->res->count = count;
  e->res->sum = sum;
  e->res->end_ns = by_count ? end : bench_now_ns();
  atomic_fetch_add(&x->sh->consumers_done, 1);
  return 0;
}

static inline __attribute__((always_inline)) int
ping_loop(endpoint *e, const system_ops *ops) {
  xfer *x = e->x;
  unsigned char *buf = payload_new(x->size);
  if (buf == NULL)
    return ep_fail(e, "out of memory");
  uint64_t base = checksum(buf, x->size), count = 0, sum = 0;
  int64_t busy = 0, t0 = bench_now_ns();
  int rc = 0;
  for (uint64_t i = 1; i <= x->total; i++) {
    payload_seq(buf, i);
    if (x->q->idle) {
      sleep_us(IDLE_PING_US);
      t0 = bench_now_ns();
    }
    const void *data = NULL;
    size_t len = 0;
    if ((rc = ops->send(e, buf, x->size)) != 0 ||
        (rc = ops->recv(e, &data, &len)) != 0)
      break;
    if (x->q->idle)
      busy += bench_now_ns() - t0;
    uint64_t s = checksum(data, len);
    if (len != x->size || s != base + i) {
      rc = ep_fail(e, "echo %llu came back wrong", (unsigned long long)i);
      break;
    }
    sum += s;
    count++;
  }
  if (!x->q->idle)
    busy = bench_now_ns() - t0;
  free(buf);
  e->res->count = count;
  e->res->sum = sum;
  e->res->busy_ns = busy;
  return rc;
}

static inline __attribute__((always_inline)) int
pong_loop(endpoint *e, const system_ops *ops) {
  xfer *x = e->x;
  for (uint64_t i = 0; i < x->total; i++) {
    const void *data = NULL;
    size_t len = 0;
    int rc = ops->recv(e, &data, &len);
    if (rc == 0)
      rc = ops->send(e, data, len);
    if (rc != 0)
      return rc;
    if (x->q->idle)
      sleep_us(IDLE_PONG_US);
  }
  return 0;
}

static inline __attribute__((always_inline)) int
run_worker(void *arg, int who, const system_ops *ops) {
  xfer *x = arg;
  xshared *sh = x->sh;
  endpoint e;
  memset(&e, 0, sizeof e);
  e.x = x;
  e.res = &sh->res[who];
  e.rfd = e.wfd = -1;
  if (x->q->rt) {
    e.role = who == 0 ? ROLE_PING : ROLE_PONG;
  } else if (who < x->nprod) {
    e.role = ROLE_PRODUCER;
    e.index = who;
  } else {
    e.role = ROLE_CONSUMER;
    e.index = who - x->nprod;
  }
  int server = e.role == ROLE_CONSUMER || e.role == ROLE_PONG;
  /* Receivers connect first, so that a sender never connects to an
   * endpoint that does not exist yet (ZeroMQ would retry 100 ms later). */
  if (!server)
    wait_count(x, &sh->servers, x->nservers);
  if (atomic_load(&sh->abort) || ops->attach(&e) != 0) {
    atomic_store(&sh->abort, 1);
    ops->detach(&e);
    return 1;
  }
  if (server)
    atomic_fetch_add(&sh->servers, 1);
  int64_t t = bench_now_ns();
  if (atomic_fetch_add(&sh->attached, 1) + 1 == x->nworkers)
    atomic_store(&sh->start_ns, t);
  wait_count(x, &sh->attached, x->nworkers);
  int rc = -1;
  if (!atomic_load(&sh->abort)) {
    switch (e.role) {
    case ROLE_PRODUCER:
      rc = ops->produce ? ops->produce(&e) : produce_loop(&e, ops);
      break;
    case ROLE_CONSUMER:
      rc = ops->consume ? ops->consume(&e) : consume_loop(&e, ops);
      break;
    case ROLE_PING:
      rc = ping_loop(&e, ops);
      break;
    case ROLE_PONG:
      rc = pong_loop(&e, ops);
      break;
    }
  }
  ops->detach(&e);
  return rc == 0 ? 0 : 1;
}

/* ---- the parent's side of a run ------------------------------------------ */

static void xfer_close_fds(xfer *x) {
  for (int i = 0; i < 4; i++)
    if (x->fd[i] >= 0) {
      close(x->fd[i]);
      x->fd[i] = -1;
    }
}

/* run_case makes the channels, runs the workers and checks their work. */
static int run_case(bench_run *run) {
  const qcase *q = run->arg;
  xfer x;
  memset(&x, 0, sizeof x);
  x.q = q;
  x.size = q->size;
  for (int i = 0; i < 4; i++)
    x.fd[i] = -1;
  x.mq[0] = x.mq[1] = (mqd_t)-1;
  if (q->rt) {
    x.nprod = x.ncons = 1;
    x.nworkers = 2;
    x.nservers = 1;
    x.per_prod = x.total = run->iters;
  } else {
    x.nprod = q->nprod;
    x.ncons = q->ncons;
    x.nworkers = q->nprod + q->ncons;
    x.nservers = q->ncons;
    /* iters is the total; each producer sends an equal share. */
    x.per_prod = run->iters / (uint64_t)q->nprod;
    if (x.per_prod == 0)
      x.per_prod = 1;
    x.total = x.per_prod * (uint64_t)q->nprod;
  }
  x.sh = bench_shared_new(sizeof *x.sh);
  if (x.sh == NULL)
    return bench_fail(run, "mmap: %s", strerror(errno));
  int rc = q->ops->setup(&x, run);
  if (rc != 0) {
    bench_shared_free(x.sh, sizeof *x.sh);
    return rc;
  }
  bench_workers w;
  rc = bench_workers_start(run, &w, x.nworkers, q->ops->worker, &x);
  if (rc == 0) {
    bench_workers_go(&w);
    int64_t t_end = 0;
    rc = bench_workers_wait(run, &w, WORKER_TIMEOUT, &t_end);
    if (rc != 0) {
      /* Say what the workers said, not only how they ended. */
      for (int i = 0; i < x.nworkers; i++)
        if (x.sh->res[i].error[0]) {
          bench_fail(run, "worker %d: %s", i, x.sh->res[i].error);
          break;
        }
    }
  }
  q->ops->teardown(&x);
  if (rc == 0) {
    unsigned char *p = payload_new(x.size);
    if (p == NULL) {
      rc = bench_fail(run, "out of memory");
    } else {
      uint64_t want = expected_sum(checksum(p, x.size), x.total);
      free(p);
      uint64_t count = 0, sum = 0;
      int64_t end = 0, start = atomic_load(&x.sh->start_ns);
      int first = q->rt ? 0 : x.nprod, last = q->rt ? 1 : x.nworkers;
      for (int i = first; i < last; i++) {
        count += x.sh->res[i].count;
        sum += x.sh->res[i].sum;
        if (x.sh->res[i].end_ns > end)
          end = x.sh->res[i].end_ns;
      }
      if (q->rt)
        end = start + x.sh->res[0].busy_ns;
      if (count == x.total && sum != want) {
        rc = bench_fail(run, "checksum of the received payloads is wrong");
      } else {
        run->expect = x.total;
        run->done = count;
        bench_timer_set(run, start, end);
      }
    }
  }
  bench_shared_free(x.sh, sizeof *x.sh);
  return rc;
}

/* ---- framed pipe and socketpair ------------------------------------------ */

static int write_all(endpoint *e, int fd, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t w = writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return ep_fail(e, "write: %s", strerror(errno));
    }
    size_t left = (size_t)w;
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + left;
      iov->iov_len -= left;
    }
  }
  return 0;
}

/* read_some reads what is there (at least one byte) into buf. */
static ssize_t read_some(endpoint *e, int fd, void *buf, size_t cap) {
  for (;;) {
    ssize_t r = read(fd, buf, cap);
    if (r > 0)
      return r;
    if (r == 0)
      return ep_fail(e, "read: unexpected end of stream");
    if (errno != EINTR)
      return ep_fail(e, "read: %s", strerror(errno));
  }
}

static int read_exact(endpoint *e, int fd, void *buf, size_t n) {
  unsigned char *p = buf;
  while (n > 0) {
    ssize_t r = read_some(e, fd, p, n);
    if (r < 0)
      return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int framed_send(endpoint *e, const void *buf, size_t len) {
  unsigned char hdr[12];
  size_t hlen;
  if (len > 0x7fffffff) {
    /* Python's marker for a length that needs 8 bytes. */
    uint64_t n = len;
    memset(hdr, 0xff, 4);
    for (int i = 0; i < 8; i++)
      hdr[4 + i] = (unsigned char)(n >> (56 - 8 * i));
    hlen = 12;
  } else {
    uint32_t n = (uint32_t)len;
    hdr[0] = (unsigned char)(n >> 24);
    hdr[1] = (unsigned char)(n >> 16);
    hdr[2] = (unsigned char)(n >> 8);
    hdr[3] = (unsigned char)n;
    hlen = 4;
  }
  if (hlen + len <= SMALL_FRAME) {
    /* One buffer, one write: also what keeps a small frame atomic on a
     * pipe shared by two writers (PIPE_BUF). */
    memcpy(e->wbuf, hdr, hlen);
    memcpy(e->wbuf + hlen, buf, len);
    struct iovec iov = {e->wbuf, hlen + len};
    return write_all(e, e->wfd, &iov, 1);
  }
  struct iovec iov[2] = {{hdr, hlen}, {(void *)buf, len}};
  return write_all(e, e->wfd, iov, 2);
}

/* parse_header reads a frame header from p (avail bytes); returns its
 * length in bytes (4 or 12) and the payload length in *len, 0 when more
 * bytes are needed, -1 on a bad header. */
static int parse_header(const unsigned char *p, size_t avail, uint64_t *len) {
  if (avail < 4)
    return 0;
  int32_t n = (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                        (uint32_t)p[2] << 8 | p[3]);
  if (n >= 0) {
    *len = (uint64_t)n;
    return 4;
  }
  if (n != -1)
    return -1;
  if (avail < 12)
    return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[4 + i];
  *len = v;
  return 12;
}

static int ensure_big(endpoint *e, uint64_t n) {
  if (n <= e->big_cap)
    return 0;
  unsigned char *b = realloc(e->big, n);
  if (b == NULL)
    return ep_fail(e, "out of memory for a %llu-byte message",
                   (unsigned long long)n);
  e->big = b;
  e->big_cap = n;
  return 0;
}

/* framed_recv_locked reads exactly one frame under the readers' lock:
 * what two readers sharing one stream must do. */
static int framed_recv_locked(endpoint *e, const void **data, size_t *len) {
  pthread_mutex_t *m = &e->x->sh->rlock;
  pthread_mutex_lock(m);
  unsigned char hdr[12];
  uint64_t n = 0;
  int h, rc = read_exact(e, e->rfd, hdr, 4);
  if (rc == 0 && (h = parse_header(hdr, 4, &n)) == 0)
    rc = read_exact(e, e->rfd, hdr + 4, 8);
  if (rc == 0 && parse_header(hdr, 12, &n) < 0)
    rc = ep_fail(e, "bad frame header");
  if (rc == 0)
    rc = ensure_big(e, n);
  if (rc == 0)
    rc = read_exact(e, e->rfd, e->big, n);
  pthread_mutex_unlock(m);
  *data = e->big;
  *len = (size_t)n;
  return rc;
}

static int framed_recv(endpoint *e, const void **data, size_t *len) {
  if (e->locked)
    return framed_recv_locked(e, data, len);
  for (;;) {
    uint64_t n;
    int h = parse_header(e->rbuf + e->rbeg, e->rend - e->rbeg, &n);
    if (h < 0)
      return ep_fail(e, "bad frame header");
    if (h > 0) {
      size_t have = e->rend - e->rbeg - (size_t)h;
      if (have >= n) {
        /* The whole frame is in the buffer: hand it out in place. */
        *data = e->rbuf + e->rbeg + h;
        *len = (size_t)n;
        e->rbeg += (size_t)h + (size_t)n;
        return 0;
      }
      if (n + (uint64_t)h > READ_BUFFER) {
        /* Larger than the buffer: what is buffered, then the rest read
         * straight into the message buffer. */
        if (ensure_big(e, n) != 0)
          return -1;
        memcpy(e->big, e->rbuf + e->rbeg + h, have);
        e->rbeg = e->rend = 0;
        if (read_exact(e, e->rfd, e->big + have, (size_t)n - have) != 0)
          return -1;
        *data = e->big;
        *len = (size_t)n;
        return 0;
      }
    }
    /* More bytes needed: move what is left to the front, read more. */
    if (e->rbeg > 0) {
      memmove(e->rbuf, e->rbuf + e->rbeg, e->rend - e->rbeg);
      e->rend -= e->rbeg;
      e->rbeg = 0;
    }
    ssize_t r = read_some(e, e->rfd, e->rbuf + e->rend, READ_BUFFER - e->rend);
    if (r < 0)
      return -1;
    e->rend += (size_t)r;
  }
}

static int framed_alloc(endpoint *e) {
  e->rbuf = malloc(READ_BUFFER);
  e->wbuf = malloc(SMALL_FRAME);
  if (e->rbuf == NULL || e->wbuf == NULL)
    return ep_fail(e, "out of memory");
  return 0;
}

static void framed_detach(endpoint *e) {
  free(e->rbuf);
  free(e->wbuf);
  free(e->big);
}

static int pipe_setup(xfer *x, bench_run *run) {
  int n = x->q->rt ? 2 : 1;
  for (int i = 0; i < n; i++)
    if (pipe2(&x->fd[2 * i], O_CLOEXEC) != 0) {
      int err = errno;
      xfer_close_fds(x);
      return bench_fail(run, "pipe: %s", strerror(err));
    }
  if (x->ncons > 1) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    int err = pthread_mutex_init(&x->sh->rlock, &a);
    pthread_mutexattr_destroy(&a);
    if (err != 0) {
      xfer_close_fds(x);
      return bench_fail(run, "pthread_mutex_init: %s", strerror(err));
    }
    x->sh->rlock_ok = 1;
  }
  return 0;
}

static void pipe_teardown(xfer *x) {
  xfer_close_fds(x);
  if (x->sh->rlock_ok)
    pthread_mutex_destroy(&x->sh->rlock);
}

static int pipe_attach(endpoint *e) {
  xfer *x = e->x;
  switch (e->role) {
  case ROLE_PRODUCER:
    e->wfd = x->fd[1];
    break;
  case ROLE_CONSUMER:
    e->rfd = x->fd[0];
    e->locked = x->ncons > 1;
    break;
  case ROLE_PING:
    e->wfd = x->fd[1];
    e->rfd = x->fd[2];
    break;
  case ROLE_PONG:
    e->rfd = x->fd[0];
    e->wfd = x->fd[3];
    break;
  }
  return framed_alloc(e);
}

static int socketpair_setup(xfer *x, bench_run *run) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x->fd) != 0)
    return bench_fail(run, "socketpair: %s", strerror(errno));
  return 0;
}

static int socketpair_attach(endpoint *e) {
  /* Senders use one end, receivers the other; it is duplex, so the round
   * trip needs only the one pair. */
  int fd = e->role == ROLE_PRODUCER || e->role == ROLE_PING ? e->x->fd[0]
                                                            : e->x->fd[1];
  e->rfd = e->wfd = fd;
  return framed_alloc(e);
}

/* ---- POSIX message queues ------------------------------------------------ */

static long read_long_file(const char *path) {
  FILE *f = fopen(path, "r");
  long v = -1;
  if (f != NULL) {
    if (fscanf(f, "%ld", &v) != 1)
      v = -1;
    fclose(f);
  }
  return v;
}

static int write_long_file(const char *path, long v) {
  FILE *f = fopen(path, "w");
  if (f == NULL)
    return -1;
  int ok = fprintf(f, "%ld\n", v) > 0;
  return fclose(f) == 0 && ok ? 0 : -1;
}

#define MQ_MSGSIZE_MAX "/proc/sys/fs/mqueue/msgsize_max"
#define MQ_MSG_MAX "/proc/sys/fs/mqueue/msg_max"

/* The msgsize_max this program raised, to put back at exit. */
static long mq_saved_msgsize_max = -1;

static void mq_restore_limit(void) {
  if (mq_saved_msgsize_max > 0)
    write_long_file(MQ_MSGSIZE_MAX, mq_saved_msgsize_max);
}

/* mq_setup opens the queues. A queue's message size may not exceed
 * /proc/sys/fs/mqueue/msgsize_max (8 KiB by default) for an unprivileged
 * process, nor its depth msg_max (10); root (CAP_SYS_RESOURCE) may go past
 * both, up to the kernel's hard limits. The bytes of all a user's queues
 * are bounded by RLIMIT_MSGQUEUE, which this process raises for itself as
 * far as it may. When the size is still refused and we are root,
 * msgsize_max is raised (and restored when the program exits); otherwise
 * the case is skipped with the reason. The depth asked for holds about
 * 256 KiB of messages (4 to 256 of them), halved until the kernel agrees. */
static int mq_setup(xfer *x, bench_run *run) {
  size_t msgsize = x->size;
  long depth = (long)((256 * 1024) / msgsize);
  if (depth > 256)
    depth = 256;
  if (depth < 4)
    depth = 4;
  long msg_max = read_long_file(MQ_MSG_MAX);
  if (geteuid() != 0 && msg_max > 0 && depth > msg_max)
    depth = msg_max;
  struct rlimit rl;
  rlim_t need = (rlim_t)(2 * depth) * (rlim_t)(msgsize + 128) + 65536;
  if (getrlimit(RLIMIT_MSGQUEUE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < need) {
    struct rlimit want = {need, rl.rlim_max};
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
      want.rlim_max = need;
    if (setrlimit(RLIMIT_MSGQUEUE, &want) != 0 && rl.rlim_max > rl.rlim_cur) {
      want.rlim_cur = rl.rlim_max;
      want.rlim_max = rl.rlim_max;
      setrlimit(RLIMIT_MSGQUEUE, &want);
    }
  }
  /* Not even one message fits under the limit: nothing to try (and no
   * reason to touch msgsize_max). */
  if (getrlimit(RLIMIT_MSGQUEUE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < (rlim_t)msgsize + 4096)
    return bench_skip(run,
                      "one %zu-byte message is over RLIMIT_MSGQUEUE (%llu "
                      "bytes) and this process may not raise it",
                      msgsize, (unsigned long long)rl.rlim_cur);
  int n = x->q->rt ? 2 : 1;
  for (int i = 0; i < n; i++) {
    char name[64];
    snprintf(name, sizeof name, "/mp-bench-%ld-%d", (long)getpid(), i);
    for (;;) {
      struct mq_attr attr = {.mq_maxmsg = depth, .mq_msgsize = (long)msgsize};
      x->mq[i] =
          mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &attr);
      if (x->mq[i] != (mqd_t)-1)
        break;
      int err = errno;
      long size_max = read_long_file(MQ_MSGSIZE_MAX);
      if (err == EINVAL && size_max > 0 && (long)msgsize > size_max) {
        if (geteuid() == 0 &&
            write_long_file(MQ_MSGSIZE_MAX, (long)msgsize) == 0) {
          if (mq_saved_msgsize_max < 0) {
            mq_saved_msgsize_max = size_max;
            atexit(mq_restore_limit);
          }
          continue;
        }
        for (int j = 0; j < i; j++)
          mq_close(x->mq[j]);
        return bench_skip(run,
                          "a %zu-byte message is over %s (%ld) and this "
                          "process may not raise it",
                          msgsize, MQ_MSGSIZE_MAX, size_max);
      }
      if (err == EINVAL && msg_max > 0 && depth > msg_max) {
        depth = msg_max; /* the depth an unprivileged process may have */
        continue;
      }
      if ((err == EINVAL || err == EMFILE || err == ENOMEM) && depth > 1) {
        depth /= 2;
        continue;
      }
      for (int j = 0; j < i; j++)
        mq_close(x->mq[j]);
      if (err == EMFILE || err == ENOMEM) {
        struct rlimit now = {0, 0};
        getrlimit(RLIMIT_MSGQUEUE, &now);
        return bench_skip(run,
                          "one %zu-byte message is over RLIMIT_MSGQUEUE "
                          "(%llu bytes) and this process may not raise it",
                          msgsize, (unsigned long long)now.rlim_cur);
      }
      return bench_fail(run, "mq_open: %s", strerror(err));
    }
    /* The workers inherit the descriptors; no name needs to outlive this. */
    mq_unlink(name);
  }
  x->mq_msgsize = msgsize;
  return 0;
}

static void mq_teardown(xfer *x) {
  for (int i = 0; i < 2; i++)
    if (x->mq[i] != (mqd_t)-1) {
      mq_close(x->mq[i]);
      x->mq[i] = (mqd_t)-1;
    }
}

static int mq_attach(endpoint *e) {
  xfer *x = e->x;
  int fwd = e->role == ROLE_PRODUCER || e->role == ROLE_PING;
  e->mq_out = fwd ? x->mq[0] : x->mq[1];
  e->mq_in = fwd ? x->mq[1] : x->mq[0];
  return ensure_big(e, x->mq_msgsize);
}

static void mq_detach(endpoint *e) {
  free(e->big);
}

static int mq_send1(endpoint *e, const void *buf, size_t len) {
  while (mq_send(e->mq_out, buf, len, 0) != 0)
    if (errno != EINTR)
      return ep_fail(e, "mq_send: %s", strerror(errno));
  return 0;
}

static int mq_recv1(endpoint *e, const void **data, size_t *len) {
  ssize_t n;
  while ((n = mq_receive(e->mq_in, (char *)e->big, e->big_cap, NULL)) < 0)
    if (errno != EINTR)
      return ep_fail(e, "mq_receive: %s", strerror(errno));
  *data = e->big;
  *len = (size_t)n;
  return 0;
}

/* ---- ZeroMQ -------------------------------------------------------------- */

#ifdef BENCH_HAVE_ZMQ

static int zmq_setup(xfer *x, bench_run *run) {
  snprintf(x->dir, sizeof x->dir, "/tmp/mp-bench-zmq-XXXXXX");
  if (mkdtemp(x->dir) == NULL)
    return bench_fail(run, "mkdtemp: %s", strerror(errno));
  for (int i = 0; i < MAX_SIDES; i++)
    snprintf(x->ep[i], sizeof x->ep[i], "ipc://%s/c%d", x->dir, i);
  return 0;
}

static void zmq_teardown(xfer *x) {
  /* A bound ipc endpoint is a socket file; ZeroMQ removes it on close, but
   * a worker that was killed did not close. */
  for (int i = 0; i < MAX_SIDES; i++) {
    char path[160];
    snprintf(path, sizeof path, "%s/c%d", x->dir, i);
    unlink(path);
  }
  rmdir(x->dir);
}

static int zfail(endpoint *e, const char *what) {
  return ep_fail(e, "%s: %s", what, zmq_strerror(zmq_errno()));
}

static void *zsocket(endpoint *e, int type) {
  void *s = zmq_socket(e->zctx, type);
  if (s == NULL) {
    zfail(e, "zmq_socket");
    return NULL;
  }
  /* A high-water mark of about 16 MiB of messages: the default (1000
   * messages) would let a 1 MiB producer run a gigabyte ahead. */
  int hwm = (int)((16u << 20) / e->x->size);
  if (hwm > 1000)
    hwm = 1000;
  if (hwm < 4)
    hwm = 4;
  zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
  return s;
}

static int zmq_attach(endpoint *e) {
  xfer *x = e->x;
  e->zctx = zmq_ctx_new();
  if (e->zctx == NULL)
    return zfail(e, "zmq_ctx_new");
  switch (e->role) {
  case ROLE_CONSUMER:
    /* Each consumer binds its own endpoint; every producer connects to
     * all of them and PUSH deals its messages round-robin. */
    if ((e->zin = zsocket(e, ZMQ_PULL)) == NULL)
      return -1;
    if (zmq_bind(e->zin, x->ep[e->index]) != 0)
      return zfail(e, "zmq_bind");
    break;
  case ROLE_PRODUCER:
    if ((e->zout = zsocket(e, ZMQ_PUSH)) == NULL)
      return -1;
    for (int i = 0; i < x->ncons; i++)
      if (zmq_connect(e->zout, x->ep[i]) != 0)
        return zfail(e, "zmq_connect");
    break;
  case ROLE_PONG:
    if ((e->zin = e->zout = zsocket(e, ZMQ_PAIR)) == NULL)
      return -1;
    if (zmq_bind(e->zin, x->ep[0]) != 0)
      return zfail(e, "zmq_bind");
    break;
  case ROLE_PING:
    if ((e->zin = e->zout = zsocket(e, ZMQ_PAIR)) == NULL)
      return -1;
    if (zmq_connect(e->zout, x->ep[0]) != 0)
      return zfail(e, "zmq_connect");
    break;
  }
  return 0;
}

static void zmq_detach(endpoint *e) {
  /* A producer stays until its consumers have everything: zmq_ctx_term
   * waits for the socket's queue to drain, but bytes ZeroMQ has taken off
   * that queue and not yet written to the kernel are lost when the process
   * exits (seen here as a few hundred missing messages now and then). */
  if (e->role == ROLE_PRODUCER && e->zout != NULL) {
    int64_t give_up = bench_now_ns() + (int64_t)(WORKER_TIMEOUT * 1e9);
    while (atomic_load(&e->x->sh->consumers_done) < e->x->ncons &&
           !atomic_load(&e->x->sh->abort) && bench_now_ns() < give_up)
      sleep_us(1000);
  }
  if (e->zmsg_live)
    zmq_msg_close(&e->zmsg);
  if (e->zin != NULL)
    zmq_close(e->zin);
  if (e->zout != NULL && e->zout != e->zin)
    zmq_close(e->zout);
  /* zmq_ctx_term waits until what was sent is delivered (linger). */
  if (e->zctx != NULL)
    while (zmq_ctx_term(e->zctx) != 0 && zmq_errno() == EINTR)
      ;
}

static int zmq_send1(endpoint *e, const void *buf, size_t len) {
  while (zmq_send(e->zout, buf, len, 0) < 0)
    if (zmq_errno() != EINTR)
      return zfail(e, "zmq_send");
  return 0;
}

static int zmq_recv1(endpoint *e, const void **data, size_t *len) {
  if (!e->zmsg_live) {
    zmq_msg_init(&e->zmsg);
    e->zmsg_live = 1;
  }
  /* Count-stopped consumers must not block: they stop when all messages
   * are accounted for. */
  int flags = e->role == ROLE_CONSUMER && e->x->ncons > 1 ? ZMQ_DONTWAIT : 0;
  while (zmq_msg_recv(&e->zmsg, e->zin, flags) < 0) {
    if (zmq_errno() == EAGAIN && flags)
      return RECV_IDLE;
    if (zmq_errno() != EINTR)
      return zfail(e, "zmq_msg_recv");
  }
  *data = zmq_msg_data(&e->zmsg);
  *len = zmq_msg_size(&e->zmsg);
  return 0;
}

static int zmq_wait1(endpoint *e) {
  zmq_pollitem_t item = {e->zin, 0, ZMQ_POLLIN, 0};
  if (zmq_poll(&item, 1, 1) < 0 && zmq_errno() != EINTR)
    return zfail(e, "zmq_poll");
  return 0;
}

#endif /* BENCH_HAVE_ZMQ */

/* ---- the bare ring ------------------------------------------------------- */

static int ring_setup(xfer *x, bench_run *run) {
  /* Room for at least four of the largest messages. */
  size_t size = RING_SMALL;
  while (size / 2 < 4 * (x->size + 8))
    size *= 2;
  x->ring_size = size;
  int n = x->q->rt ? 2 : x->nprod;
  for (int i = 0; i < n; i++) {
    x->ring[i] = bench_shared_new(ring_bytes(size));
    if (x->ring[i] == NULL) {
      for (int j = 0; j < i; j++)
        bench_shared_free(x->ring[j], ring_bytes(size));
      return bench_fail(run, "mmap: %s", strerror(errno));
    }
    ring_init(x->ring[i], size);
  }
  return 0;
}

static void ring_teardown(xfer *x) {
  for (int i = 0; i < 2; i++) {
    bench_shared_free(x->ring[i], ring_bytes(x->ring_size));
    x->ring[i] = NULL;
  }
}

static int ring_attach(endpoint *e) {
  xfer *x = e->x;
  unsigned batch = x->q->batch ? RING_BATCH : 1;
  switch (e->role) {
  case ROLE_PRODUCER:
    ring_producer_init(&e->rp, x->ring[e->index], batch);
    break;
  case ROLE_CONSUMER:
    ring_consumer_init(&e->rc, x->ring[e->index], x->q->batch);
    break;
  case ROLE_PING:
    ring_producer_init(&e->rp, x->ring[0], 1);
    ring_consumer_init(&e->rc, x->ring[1], 0);
    break;
  case ROLE_PONG:
    ring_consumer_init(&e->rc, x->ring[0], 0);
    ring_producer_init(&e->rp, x->ring[1], 1);
    break;
  }
  return 0;
}

static void ring_detach(endpoint *e) {
  /* A batching producer may still hold unpublished records: the stop
   * message of queue_2to2 is the last thing it wrote. */
  if (e->role == ROLE_PRODUCER)
    ring_produce_flush(&e->rp);
}

static int ring_send1(endpoint *e, const void *buf, size_t len) {
  ring_produce(&e->rp, buf, len);
  return 0;
}

static int ring_recv1(endpoint *e, const void **data, size_t *len) {
  /* The previous message is read in place; it is done with now. */
  if (e->rc_live)
    ring_consume_release(&e->rc);
  uint64_t n;
  *data = ring_consume_peek(&e->rc, &n);
  *len = (size_t)n;
  e->rc_live = 1;
  return 0;
}

/* ---- the hand-over floor ------------------------------------------------- */

/* handoff is nbuf buffers of size bytes (page-aligned, each page present in
 * both workers before the clock starts) and a word per buffer on its own
 * line: the sequence number of the message it holds (odd counts: full),
 * written by the producer to publish and by the consumer to release. */
struct handoff {
  struct {
    _Alignas(64) _Atomic uint64_t full; /* 0: free; else 1 + message number */
  } word[HANDOFF_MAX_BUFS];
  _Alignas(64) _Atomic uint64_t released; /* buffers given back so far */
  uint64_t nbuf, size, off; /* off: where the buffers start */
};

static unsigned char *handoff_buf(struct handoff *h, uint64_t i) {
  return (unsigned char *)h + h->off + (i % h->nbuf) * h->size;
}

static int handoff_setup(xfer *x, bench_run *run) {
  size_t page = 4096, size = (x->size + page - 1) & ~(page - 1);
  int nbuf = x->q->nbuf ? x->q->nbuf : HANDOFF_BUFS;
  if (x->q->rt || x->nprod != 1 || x->ncons != 1 || nbuf > HANDOFF_MAX_BUFS)
    return bench_fail(run, "handoff: one producer, one consumer only");
  size_t off = (sizeof(struct handoff) + page - 1) & ~(page - 1);
  x->hand_bytes = off + (size_t)nbuf * size;
  x->hand = bench_shared_new(x->hand_bytes);
  if (x->hand == NULL)
    return bench_fail(run, "mmap: %s", strerror(errno));
  x->hand->nbuf = (uint64_t)nbuf;
  x->hand->size = size;
  x->hand->off = off;
  /* Every page exists before the workers start (they map them in attach;
   * the guard floor's workers do not, as a fresh segment's pages exist
   * once the producer reserved them but are mapped by neither side). */
  memset((unsigned char *)x->hand + off, 0, (size_t)nbuf * size);
  return 0;
}

static void handoff_teardown(xfer *x) {
  bench_shared_free(x->hand, x->hand_bytes);
  x->hand = NULL;
}

static int handoff_attach(endpoint *e) {
  xfer *x = e->x;
  struct handoff *h = x->hand;
  /* Map every page in this process before the clock (a forked child does
   * not inherit the page tables of a shared mapping): the producer by
   * writing, the consumer by reading. */
  volatile unsigned char sink = 0;
  if (x->q->copy & HANDOFF_GUARD) {
    /* Two names of this worker's own (a file and where it moves to). */
    for (int k = 0; k < 2; k++)
      snprintf(e->hname[k], sizeof e->hname[k], "/dev/shm/mpbench-ho-%d-%d",
               (int)getpid(), k);
    unlink(e->hname[1]);
    int fd = open(e->hname[0], O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
      return ep_fail(e, "open %s: %s", e->hname[0], strerror(errno));
    close(fd);
    return 0; /* no page touched before the clock */
  }
  for (uint64_t i = 0; i < h->nbuf; i++) {
    unsigned char *b = handoff_buf(h, i);
    for (uint64_t k = 0; k < h->size; k += 4096) {
      if (e->role == ROLE_PRODUCER)
        b[k] = 0;
      else
        sink ^= b[k];
    }
  }
  (void)sink;
  if (e->role != ROLE_CONSUMER || !(x->q->copy & HANDOFF_COPY_OUT))
    return 0;
  if (ensure_big(e, x->size) != 0)
    return -1;
  memset(e->big, 0, x->size);
  return 0;
}

static void handoff_detach(endpoint *e) {
  if (e->hname[0][0] != '\0') {
    unlink(e->hname[0]);
    unlink(e->hname[1]);
  }
  free(e->big);
}

/* handoff_names: the guard floor's system calls of one message (the
 * producer: rename, then stat; the consumer: stat, then rename). */
static int handoff_names(endpoint *e, int producer) {
  uint64_t n = e->hseq - 1; /* this message's number (hseq counted it) */
  struct handoff *h = e->x->hand;
  if (n < h->nbuf) {
    /* A buffer's first message: its pages are mapped in one go, as the
     * queue maps a fresh segment (MAP_POPULATE), not one fault a page. */
#if defined(MADV_POPULATE_WRITE)
    (void)madvise(handoff_buf(h, n), h->size,
                  producer ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
#endif
  }
  const char *from = e->hname[n & 1], *to = e->hname[!(n & 1)];
  struct stat st;
  if (producer ? rename(from, to) != 0 || stat(to, &st) != 0
               : stat(from, &st) != 0 || rename(from, to) != 0)
    return ep_fail(e, "rename/stat in /dev/shm: %s", strerror(errno));
  return 0;
}

/* nt_copy copies with non-temporal stores (SSE2, every x86-64 has it):
 * whole lines are claimed without being read first. Elsewhere, memcpy. */
static void nt_copy(void *dst, const void *src, size_t len) {
#if defined(__x86_64__)
  unsigned char *d = dst;
  const unsigned char *s = src;
  size_t head = (size_t)(-(uintptr_t)d & 15u);
  if (head > len)
    head = len;
  memcpy(d, s, head);
  d += head;
  s += head;
  len -= head;
  for (; len >= 64; len -= 64, d += 64, s += 64) {
    __m128i a = _mm_loadu_si128((const __m128i *)s);
    __m128i b = _mm_loadu_si128((const __m128i *)(s + 16));
    __m128i c = _mm_loadu_si128((const __m128i *)(s + 32));
    __m128i f = _mm_loadu_si128((const __m128i *)(s + 48));
    _mm_stream_si128((__m128i *)d, a);
    _mm_stream_si128((__m128i *)(d + 16), b);
    _mm_stream_si128((__m128i *)(d + 32), c);
    _mm_stream_si128((__m128i *)(d + 48), f);
  }
  _mm_sfence();
  memcpy(d, s, len);
#else
  memcpy(dst, src, len);
#endif
}

static int handoff_send1(endpoint *e, const void *buf, size_t len) {
  struct handoff *h = e->x->hand;
  uint64_t n = e->hseq++, i = n % h->nbuf;
  unsigned spins = 0;
  while (atomic_load_explicit(&h->word[i].full, memory_order_acquire) != 0)
    ring_backoff(&spins);
  /* Cold: buffer i was released, and HANDOFF_COLD_GAP more after it. */
  if (e->x->q->copy & HANDOFF_COLD)
    while (n + HANDOFF_COLD_GAP >= h->nbuf &&
           atomic_load_explicit(&h->released, memory_order_acquire) <
               n + HANDOFF_COLD_GAP + 1 - h->nbuf)
      ring_backoff(&spins);
  if ((e->x->q->copy & HANDOFF_GUARD) && handoff_names(e, 1) != 0)
    return -1;
  if (e->x->q->copy & HANDOFF_MEMCPY_IN)
    memcpy(handoff_buf(h, i), buf, len);
  else
    nt_copy(handoff_buf(h, i), buf, len);
  atomic_store_explicit(&h->word[i].full, len + 1, memory_order_release);
  return 0;
}

static int handoff_recv1(endpoint *e, const void **data, size_t *len) {
  struct handoff *h = e->x->hand;
  if (e->hlive) {
    /* The previous message was read in place; it is done with now. */
    atomic_store_explicit(&h->word[(e->hseq - 1) % h->nbuf].full, 0,
                          memory_order_release);
    atomic_fetch_add_explicit(&h->released, 1, memory_order_release);
    e->hlive = 0;
  }
  uint64_t i = e->hseq++ % h->nbuf, w;
  unsigned spins = 0;
  while ((w = atomic_load_explicit(&h->word[i].full, memory_order_acquire)) ==
         0)
    ring_backoff(&spins);
  *len = (size_t)(w - 1);
  if ((e->x->q->copy & HANDOFF_GUARD) && handoff_names(e, 0) != 0)
    return -1;
  if (e->x->q->copy & HANDOFF_COPY_OUT) {
    memcpy(e->big, handoff_buf(h, i), *len);
    atomic_store_explicit(&h->word[i].full, 0, memory_order_release);
    atomic_fetch_add_explicit(&h->released, 1, memory_order_release);
    *data = e->big;
  } else {
    *data = handoff_buf(h, i);
    e->hlive = 1;
  }
  return 0;
}

/* ---- futex hand-off ------------------------------------------------------ */

static long futex_call(_Atomic uint32_t *w, int op, uint32_t val) {
  return syscall(SYS_futex, (uint32_t *)w, op, val, NULL, NULL, 0);
}

static int futex_setup(xfer *x, bench_run *run) {
  (void)x;
  (void)run;
  return 0;
}

static void futex_teardown(xfer *x) {
  (void)x;
}

static int futex_attach(endpoint *e) {
  (void)e;
  return 0;
}

static void futex_detach(endpoint *e) {
  (void)e;
}

/* The message goes into the direction's slot; the word counts messages and
 * is what the receiver sleeps on. The sender always wakes: this is the
 * plain hand-off, the floor of a blocking channel. */
static int futex_send1(endpoint *e, const void *buf, size_t len) {
  int dir = e->role == ROLE_PING ? 0 : 1;
  xshared *sh = e->x->sh;
  if (len > sizeof sh->slot[dir])
    return ep_fail(e, "futex hand-off carries at most 64 bytes");
  memcpy(sh->slot[dir], buf, len);
  atomic_fetch_add_explicit(&sh->word[dir], 1, memory_order_release);
  if (futex_call(&sh->word[dir], FUTEX_WAKE, 1) < 0)
    return ep_fail(e, "FUTEX_WAKE: %s", strerror(errno));
  return 0;
}

static int futex_recv1(endpoint *e, const void **data, size_t *len) {
  int dir = e->role == ROLE_PING ? 1 : 0;
  xshared *sh = e->x->sh;
  uint32_t v;
  while ((v = atomic_load_explicit(&sh->word[dir], memory_order_acquire)) ==
         e->seen) {
    if (futex_call(&sh->word[dir], FUTEX_WAIT, v) < 0 && errno != EAGAIN &&
        errno != EINTR)
      return ep_fail(e, "FUTEX_WAIT: %s", strerror(errno));
  }
  e->seen = v;
  *data = sh->slot[dir];
  *len = e->x->size;
  return 0;
}

/* futex_bounded (see the systems above): word[dir] is
 * (sequence << 16) | registered sleepers, as the queue's futex words; the
 * steps are those of queue_core.c's notify, prepare_sleep, cancel_sleep
 * and sleep_until, without the queue around them. */
#define FB_ONE 1u
#define FB_MASK 0xffffu
#define FB_SEQ 0x10000u
#define FB_SLICE_NS (20 * 1000 * 1000)

static _Atomic uint32_t *fb_data(xshared *sh, int dir) {
  return dir == 0 ? &sh->fdata0 : &sh->fdata1;
}

static int fb_send(endpoint *e, const void *buf, size_t len) {
  int dir = e->role == ROLE_PING ? 0 : 1;
  xshared *sh = e->x->sh;
  if (len > sizeof sh->slot[dir])
    return ep_fail(e, "futex hand-off carries at most 64 bytes");
  memcpy(sh->slot[dir], buf, len);
  _Atomic uint32_t *d = fb_data(sh, dir), *w = &sh->word[dir];
  atomic_store_explicit(d, atomic_load_explicit(d, memory_order_relaxed) + 1,
                        memory_order_release);
  atomic_signal_fence(memory_order_seq_cst);
  uint32_t v = atomic_load_explicit(w, memory_order_relaxed);
  while (v & FB_MASK)
    if (atomic_compare_exchange_weak(w, &v, (v & ~FB_MASK) + FB_SEQ)) {
      if (futex_call(w, FUTEX_WAKE, INT_MAX) < 0)
        return ep_fail(e, "FUTEX_WAKE: %s", strerror(errno));
      break;
    }
  return 0;
}

static int fb_recv(endpoint *e, const void **data, size_t *len) {
  int dir = e->role == ROLE_PING ? 1 : 0;
  xshared *sh = e->x->sh;
  _Atomic uint32_t *d = fb_data(sh, dir), *w = &sh->word[dir];
  bool counted = false;
  uint32_t reg = 0;
  while (atomic_load_explicit(d, memory_order_acquire) == e->seen) {
    uint32_t v = atomic_load(w);
    if (!(counted && (v >> 16) == (reg >> 16) && (v & FB_MASK) != 0)) {
      counted = false;
      while ((v & FB_MASK) != FB_MASK)
        if (atomic_compare_exchange_weak(w, &v, v + FB_ONE)) {
          v += FB_ONE;
          counted = true;
          break;
        }
      reg = v;
    }
    if (atomic_load_explicit(d, memory_order_acquire) != e->seen)
      break;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t until = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + FB_SLICE_NS;
    ts.tv_sec = until / 1000000000;
    ts.tv_nsec = until % 1000000000;
    if (syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_BITSET, reg, &ts, NULL,
                FUTEX_BITSET_MATCH_ANY) < 0 &&
        errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
      return ep_fail(e, "FUTEX_WAIT_BITSET: %s", strerror(errno));
  }
  if (counted) {
    uint32_t v = atomic_load(w);
    while ((v >> 16) == (reg >> 16) && (v & FB_MASK) != 0 &&
           !atomic_compare_exchange_weak(w, &v, v - FB_ONE))
      ;
  }
  e->seen++;
  *data = sh->slot[dir];
  *len = e->x->size;
  return 0;
}

/* ---- multiproc: the queue and the pipe ----------------------------------- */

/* The Pipe: simplex (a pipe, as Python's Queue uses) for throughput,
 * duplex (a socket pair) for the round trip, the receiver taking each
 * message into its own buffer as recv_bytes does. */
static int mpipe_setup(xfer *x, bench_run *run) {
  int rc = mp_pipe(&x->conn[0], &x->conn[1], x->q->rt);
  if (rc != 0)
    return bench_fail(run, "mp_pipe: %s", mp_err_name(rc));
  return 0;
}

static void mpipe_teardown(xfer *x) {
  mp_connection_free(x->conn[0]);
  mp_connection_free(x->conn[1]);
  x->conn[0] = x->conn[1] = NULL;
}

static int mpipe_attach(endpoint *e) {
  xfer *x = e->x;
  switch (e->role) {
  case ROLE_PRODUCER:
    e->conn = x->conn[1]; /* simplex: the second end sends */
    break;
  case ROLE_CONSUMER:
  case ROLE_PING:
    e->conn = x->conn[0];
    break;
  case ROLE_PONG:
    e->conn = x->conn[1];
    break;
  }
  return ensure_big(e, x->size);
}

static void mpipe_detach(endpoint *e) {
  free(e->big);
}

static int mpipe_send(endpoint *e, const void *buf, size_t len) {
  int rc = mp_connection_send_bytes(e->conn, buf, 0, len);
  return rc == 0 ? 0
                 : ep_fail(e, "mp_connection_send_bytes: %s", mp_err_name(rc));
}

static int mpipe_recv(endpoint *e, const void **data, size_t *len) {
  int rc = mp_connection_recv_bytes(e->conn, e->big, e->big_cap, len);
  *data = e->big;
  return rc == 0 ? 0
                 : ep_fail(e, "mp_connection_recv_bytes: %s", mp_err_name(rc));
}

/* The Queue: anonymous, FIFO, default options (1 MiB of ring; messages
 * over a quarter of it, as 1 MiB is, travel through a segment of their
 * own), inherited by the forked workers. multiproc takes each message with
 * mp_queue_get into the worker's buffer; multiproc_zerocopy with
 * mp_queue_get_msg, reading a large message where the producer wrote it;
 * multiproc_batch puts and gets MPQ_BATCH messages per call. */
#define MPQ_BATCH 64

static int mpq_setup_with(xfer *x, bench_run *run, const mp_queue_opts *opts) {
  int n = x->q->rt ? 2 : 1;
  for (int i = 0; i < n; i++) {
    int rc = mp_queue_new(&x->mpq[i], opts);
    if (rc != 0) {
      for (int j = 0; j < i; j++)
        mp_queue_free(x->mpq[j]);
      return bench_fail(run, "mp_queue_new: %s", mp_err_name(rc));
    }
  }
  return 0;
}

static int mpq_setup(xfer *x, bench_run *run) {
  return mpq_setup_with(x, run, NULL);
}

/* multiproc_16MiB_ring: the same Queue with a 16 MiB ring, so a 1 MiB
 * message fits inline and travels by two copies through the ring instead
 * of a segment of its own: the capacity a program moving large messages
 * would choose. */
static int mpq_setup_16mib(xfer *x, bench_run *run) {
  mp_queue_opts opts = {.capacity = 16 * MiB};
  return mpq_setup_with(x, run, &opts);
}

/* multiproc_lease: the same Queue in lease mode (at-least-once): each get
 * leases its message and the consumer acks it. The cost of the mode. */
static int mpq_setup_lease(xfer *x, bench_run *run) {
  mp_queue_opts opts = {.lease = 1};
  return mpq_setup_with(x, run, &opts);
}

/* multiproc_nospin: the same Queue with spin_ns < 0, so that every wait
 * sleeps at once (idle round trip only): the queue's sleeping path next to
 * futex_handoff, the bare futex hand-off it is built on. What a round trip
 * costs when the adaptive spin has learnt that spinning does not pay (see
 * docs/queue.md, "Round trips"). */
static int mpq_setup_nospin(xfer *x, bench_run *run) {
  mp_queue_opts opts = {.spin_ns = -1};
  return mpq_setup_with(x, run, &opts);
}

static void mpq_teardown(xfer *x) {
  for (int i = 0; i < 2; i++) {
    mp_queue_free(x->mpq[i]);
    x->mpq[i] = NULL;
  }
}

/* mpq_batch is how many messages one batch call moves. */
static size_t mpq_batch(const xfer *x) {
  size_t b = (64 * KiB) / (x->size ? x->size : 1);
  return b < 1 ? 1 : b > MPQ_BATCH ? MPQ_BATCH : b;
}

static int mpq_attach(endpoint *e) {
  xfer *x = e->x;
  int fwd = e->role == ROLE_PRODUCER || e->role == ROLE_PING;
  e->qout = fwd ? x->mpq[0] : x->mpq[1];
  e->qin = fwd ? x->mpq[1] : x->mpq[0];
  return ensure_big(e, x->size * (x->q->batch ? mpq_batch(x) : 1));
}

static void mpq_detach(endpoint *e) {
  if (e->msg_live)
    mp_queue_msg_release(&e->msg);
  free(e->big);
}

static int mpq_send(endpoint *e, const void *buf, size_t len) {
  int rc = mp_queue_put(e->qout, buf, len, MP_FOREVER);
  return rc == 0 ? 0 : ep_fail(e, "mp_queue_put: %s", mp_err_name(rc));
}

static int mpq_send_inplace(endpoint *e, const void *buf, size_t len) {
  void *at;
  int rc = mp_queue_claim(e->qout, len, &at, MP_FOREVER);
  if (rc != 0)
    return ep_fail(e, "mp_queue_claim: %s", mp_err_name(rc));
  memcpy(at, buf, len);
  rc = mp_queue_commit(e->qout, len);
  return rc == 0 ? 0 : ep_fail(e, "mp_queue_commit: %s", mp_err_name(rc));
}

static int mpq_recv(endpoint *e, const void **data, size_t *len) {
  int rc = mp_queue_get(e->qin, e->big, e->big_cap, len, MP_FOREVER);
  *data = e->big;
  return rc == 0 ? 0 : ep_fail(e, "mp_queue_get: %s", mp_err_name(rc));
}

static int mpq_recv_lease(endpoint *e, const void **data, size_t *len) {
  uint64_t lease;
  int rc = mp_queue_get_lease(e->qin, e->big, e->big_cap, len, &lease,
                              MP_FOREVER);
  if (rc == 0)
    rc = mp_queue_ack(e->qin, lease);
  *data = e->big;
  return rc == 0 ? 0 : ep_fail(e, "mp_queue_get_lease: %s", mp_err_name(rc));
}

static int mpq_recv_msg(endpoint *e, const void **data, size_t *len) {
  /* The previous message was read in place; it is done with now. */
  if (e->msg_live) {
    mp_queue_msg_release(&e->msg);
    e->msg_live = 0;
  }
  int rc = mp_queue_get_msg(e->qin, &e->msg, MP_FOREVER);
  if (rc != 0)
    return ep_fail(e, "mp_queue_get_msg: %s", mp_err_name(rc));
  e->msg_live = 1;
  *data = e->msg.data;
  *len = e->msg.len;
  return 0;
}

static int mpq_produce_batch(endpoint *e) {
  xfer *x = e->x;
  size_t b = mpq_batch(x);
  size_t lens[MPQ_BATCH];
  unsigned char *one = payload_new(x->size);
  if (one == NULL)
    return ep_fail(e, "out of memory");
  /* The batch buffer holds b messages back to back, each the pattern. */
  for (size_t j = 0; j < b; j++) {
    memcpy(e->big + j * x->size, one, x->size);
    lens[j] = x->size;
  }
  free(one);
  uint64_t seq = (uint64_t)e->index * x->per_prod, left = x->per_prod;
  while (left > 0) {
    size_t n = left < b ? (size_t)left : b;
    for (size_t j = 0; j < n; j++)
      payload_seq(e->big + j * x->size, ++seq);
    ssize_t put = mp_queue_put_batch(e->qout, e->big, lens, n, MP_FOREVER);
    if (put != (ssize_t)n)
      return ep_fail(e, "mp_queue_put_batch: %s",
                     put < 0 ? mp_err_name((int)put) : "short");
    left -= n;
  }
  if (x->ncons > 1 &&
      atomic_fetch_add(&x->sh->producers_done, 1) + 1 == x->nprod)
    for (int c = 0; c < x->ncons; c++)
      if (mpq_send(e, NULL, 0) != 0)
        return -1;
  return 0;
}

static int mpq_consume_batch(endpoint *e) {
  xfer *x = e->x;
  size_t b = mpq_batch(x);
  size_t lens[MPQ_BATCH];
  uint64_t count = 0, sum = 0;
  int stopped = 0;
  while (!stopped && !(x->ncons == 1 && count == x->total)) {
    ssize_t got =
        mp_queue_get_batch(e->qin, e->big, e->big_cap, lens, b, MP_FOREVER);
    if (got < 0)
      return ep_fail(e, "mp_queue_get_batch: %s", mp_err_name((int)got));
    const unsigned char *p = e->big;
    for (ssize_t j = 0; j < got; j++) {
      if (lens[j] == 0) {
        /* A stop. Every message after it in this batch is a stop too
         * (they were all put after the last message); those belong to the
         * other consumers, so they go back. */
        for (ssize_t k = j + 1; k < got; k++) {
          int rc = mp_queue_put(e->qin, NULL, 0, MP_FOREVER);
          if (rc != 0)
            return ep_fail(e, "mp_queue_put: %s", mp_err_name(rc));
        }
        stopped = 1;
        break;
      }
      sum += checksum(p, lens[j]);
      p += lens[j];
      count++;
    }
  }
  e->res->count = count;
  e->res->sum = sum;
  e->res->end_ns = bench_now_ns();
  return 0;
}

/* ---- memcpy, the other limit --------------------------------------------- */

static int memcpy_case(bench_run *run) {
  const qcase *q = run->arg;
  unsigned char *src = payload_new(q->size), *dst = malloc(q->size);
  if (src == NULL || dst == NULL) {
    free(src);
    free(dst);
    return bench_fail(run, "out of memory");
  }
  uint64_t base = checksum(src, q->size), sum = 0, count = 0;
  bench_timer_start(run);
  for (uint64_t i = 1; i <= run->iters; i++) {
    payload_seq(src, i);
    memcpy(dst, src, q->size);
    /* Keep the compiler from summing src instead of the copy. */
    __asm__ __volatile__("" : : "r"(dst) : "memory");
    sum += checksum(dst, q->size);
    count++;
  }
  bench_timer_stop(run);
  free(src);
  free(dst);
  if (sum != expected_sum(base, run->iters))
    return bench_fail(run, "checksum of the copies is wrong");
  run->done = count;
  return 0;
}

/* ---- the systems --------------------------------------------------------- */

/* SYSTEM defines a system_ops (designated fields after the name) and its
 * worker, which inlines run_worker with it. */
#define SYSTEM(name, ...)                                                      \
  static int name##_worker(void *arg, int index);                              \
  static const system_ops name = {__VA_ARGS__, .worker = name##_worker};       \
  static int name##_worker(void *arg, int index) {                             \
    return run_worker(arg, index, &name);                                      \
  }

SYSTEM(sys_pipe, .setup = pipe_setup, .teardown = pipe_teardown,
       .attach = pipe_attach, .detach = framed_detach, .send = framed_send,
       .recv = framed_recv)
SYSTEM(sys_socketpair, .setup = socketpair_setup, .teardown = pipe_teardown,
       .attach = socketpair_attach, .detach = framed_detach,
       .send = framed_send, .recv = framed_recv)
SYSTEM(sys_mq, .setup = mq_setup, .teardown = mq_teardown, .attach = mq_attach,
       .detach = mq_detach, .send = mq_send1, .recv = mq_recv1)
SYSTEM(sys_ring, .setup = ring_setup, .teardown = ring_teardown,
       .attach = ring_attach, .detach = ring_detach, .send = ring_send1,
       .recv = ring_recv1, .pairs = 1)
SYSTEM(sys_mpq, .setup = mpq_setup, .teardown = mpq_teardown,
       .attach = mpq_attach, .detach = mpq_detach, .send = mpq_send,
       .recv = mpq_recv)
SYSTEM(sys_mpq_nospin, .setup = mpq_setup_nospin, .teardown = mpq_teardown,
       .attach = mpq_attach, .detach = mpq_detach, .send = mpq_send,
       .recv = mpq_recv)
SYSTEM(sys_mpq_16mib, .setup = mpq_setup_16mib, .teardown = mpq_teardown,
       .attach = mpq_attach, .detach = mpq_detach, .send = mpq_send,
       .recv = mpq_recv)
SYSTEM(sys_mpq_lease, .setup = mpq_setup_lease, .teardown = mpq_teardown,
       .attach = mpq_attach, .detach = mpq_detach, .send = mpq_send,
       .recv = mpq_recv_lease)
SYSTEM(sys_mpq_zc, .setup = mpq_setup, .teardown = mpq_teardown,
       .attach = mpq_attach, .detach = mpq_detach, .send = mpq_send,
       .recv = mpq_recv_msg)
SYSTEM(sys_mpq_inplace, .setup = mpq_setup, .teardown = mpq_teardown,
       .attach = mpq_attach, .detach = mpq_detach, .send = mpq_send_inplace,
       .recv = mpq_recv_msg)
SYSTEM(sys_mpq_batch, .setup = mpq_setup, .teardown = mpq_teardown,
       .attach = mpq_attach, .detach = mpq_detach, .send = mpq_send,
       .recv = mpq_recv, .produce = mpq_produce_batch,
       .consume = mpq_consume_batch)
SYSTEM(sys_mpipe, .setup = mpipe_setup, .teardown = mpipe_teardown,
       .attach = mpipe_attach, .detach = mpipe_detach, .send = mpipe_send,
       .recv = mpipe_recv)
SYSTEM(sys_handoff, .setup = handoff_setup, .teardown = handoff_teardown,
       .attach = handoff_attach, .detach = handoff_detach,
       .send = handoff_send1, .recv = handoff_recv1)
SYSTEM(sys_futex, .setup = futex_setup, .teardown = futex_teardown,
       .attach = futex_attach, .detach = futex_detach, .send = futex_send1,
       .recv = futex_recv1)
SYSTEM(sys_futex_bounded, .setup = futex_setup, .teardown = futex_teardown,
       .attach = futex_attach, .detach = futex_detach, .send = fb_send,
       .recv = fb_recv)
#ifdef BENCH_HAVE_ZMQ
SYSTEM(sys_zmq, .setup = zmq_setup, .teardown = zmq_teardown,
       .attach = zmq_attach, .detach = zmq_detach, .send = zmq_send1,
       .recv = zmq_recv1, .count_stop = 1, .wait = zmq_wait1)

#define SYS_ZMQ (&sys_zmq)
static int zmq_case(bench_run *run) {
  return run_case(run);
}
#else
#define SYS_ZMQ NULL
static int zmq_case(bench_run *run) {
  return bench_skip(run, "built without ZeroMQ (install libzmq3-dev and "
                         "reconfigure)");
}
#endif

/* ---- the table -------------------------------------------------------------
 * Iterations are per system, each aiming at about 0.1-0.3 s a run here. */

/* The case parameters each row points at. */
#define Q(...) Q_(__VA_ARGS__)
#define Q_(ops_, rt_, size_, np_, nc_, idle_, batch_)                          \
  (void *)&(qcase) {                                                           \
    (ops_), (rt_), (size_), (np_), (nc_), (idle_), (batch_), 0, 0              \
  }

/* A hand-over floor's parameters: one producer and one consumer of sz
 * bytes, nbuf buffers (0: HANDOFF_BUFS), copy out or not. */
#define QH(ops_, sz_, nbuf_, copy_)                                            \
  (void *)&(qcase) {                                                           \
    (ops_), 0, (sz_), 1, 1, 0, 0, (nbuf_), (copy_)                             \
  }

/* The rt, size, nprod, ncons, idle fields of a row: one producer and one
 * consumer at a size, two and two at 64 B, the round trips busy and idle. */
#define T11(sz) 0, (sz), 1, 1, 0
#define T22 0, 64, 2, 2, 0
#define RTB 1, 64, 1, 1, 0
#define RTI 1, 64, 1, 1, 1

#define ROW(bm, cs, sys, size, it, smoke, unit, fn, arg)                       \
  { bm, cs, sys, size, it, smoke, unit, fn, arg }

/* The rows of one group: every peer at one size. */
#define PEERS_1TO1(cs, size, sz, it_pipe, it_mq, it_zmq, it_ring, it_batch,    \
                   it_memcpy, smoke, unit)                                     \
  ROW("queue_1to1", cs, "multiproc_pipe", size, it_pipe, smoke, unit,          \
      run_case, Q(&sys_mpipe, T11(sz), 0)),                                    \
      ROW("queue_1to1", cs, "framed_pipe", size, it_pipe, smoke, unit,         \
          run_case, Q(&sys_pipe, T11(sz), 0)),                                 \
      ROW("queue_1to1", cs, "socketpair", size, it_pipe, smoke, unit,          \
          run_case, Q(&sys_socketpair, T11(sz), 0)),                           \
      ROW("queue_1to1", cs, "posix_mq", size, it_mq, smoke, unit, run_case,    \
          Q(&sys_mq, T11(sz), 0)),                                             \
      ROW("queue_1to1", cs, "zmq_ipc", size, it_zmq, smoke, unit, zmq_case,    \
          Q(SYS_ZMQ, T11(sz), 0)),                                             \
      ROW("queue_1to1", cs, "ring_limit", size, it_ring, smoke, unit,          \
          run_case, Q(&sys_ring, T11(sz), 0)),                                 \
      ROW("queue_1to1", cs, "ring_batch_limit", size, it_batch, smoke, unit,   \
          run_case, Q(&sys_ring, T11(sz), 1)),                                 \
      ROW("queue_1to1", cs, "memcpy_limit", size, it_memcpy, smoke, unit,      \
          memcpy_case, Q(NULL, T11(sz), 0))

#define PEERS_RT(cs, mode, it_mp, it_pipe, it_mq, it_zmq, it_ring, it_futex,   \
                 smoke)                                                        \
  ROW("queue_roundtrip", cs, "multiproc", "64 B", it_mp, smoke, "ns/op",       \
      run_case, Q(&sys_mpq, mode, 0)),                                         \
      ROW("queue_roundtrip", cs, "multiproc_pipe", "64 B", it_pipe, smoke,     \
          "ns/op", run_case, Q(&sys_mpipe, mode, 0)),                          \
      ROW("queue_roundtrip", cs, "framed_pipe", "64 B", it_pipe, smoke,        \
          "ns/op", run_case, Q(&sys_pipe, mode, 0)),                           \
      ROW("queue_roundtrip", cs, "socketpair", "64 B", it_pipe, smoke,         \
          "ns/op", run_case, Q(&sys_socketpair, mode, 0)),                     \
      ROW("queue_roundtrip", cs, "posix_mq", "64 B", it_mq, smoke, "ns/op",    \
          run_case, Q(&sys_mq, mode, 0)),                                      \
      ROW("queue_roundtrip", cs, "zmq_ipc", "64 B", it_zmq, smoke, "ns/op",    \
          zmq_case, Q(SYS_ZMQ, mode, 0)),                                      \
      ROW("queue_roundtrip", cs, "futex_handoff", "64 B", it_futex, smoke,     \
          "ns/op", run_case, Q(&sys_futex, mode, 0)),                          \
      ROW("queue_roundtrip", cs, "ring_limit", "64 B", it_ring, smoke,         \
          "ns/op", run_case, Q(&sys_ring, mode, 0))

static const bench_case cases[] = {
    ROW("queue_1to1", "64B", "multiproc", "64 B", 2000000, 200, "ns/op",
        run_case, Q(&sys_mpq, T11(64), 0)),
    ROW("queue_1to1", "64B", "multiproc_lease", "64 B", 2000000, 200, "ns/op",
        run_case, Q(&sys_mpq_lease, T11(64), 0)),
    ROW("queue_1to1", "64B", "multiproc_batch", "64 B", 5000000, 200, "ns/op",
        run_case, Q(&sys_mpq_batch, T11(64), 1)),
    PEERS_1TO1("64B", "64 B", 64, 100000, 50000, 300000, 2000000, 10000000,
               10000000, 200, "ns/op"),
    ROW("queue_1to1", "4KiB", "multiproc", "4 KiB", 200000, 50, "ns/op",
        run_case, Q(&sys_mpq, T11(4 * KiB), 0)),
    ROW("queue_1to1", "4KiB", "multiproc_batch", "4 KiB", 200000, 50, "ns/op",
        run_case, Q(&sys_mpq_batch, T11(4 * KiB), 1)),
    PEERS_1TO1("4KiB", "4 KiB", 4 * KiB, 50000, 30000, 30000, 500000, 500000,
               1000000, 50, "ns/op"),
    ROW("queue_1to1", "1MiB", "multiproc", "1 MiB", 1000, 5, "us/op", run_case,
        Q(&sys_mpq, T11(MiB), 0)),
    ROW("queue_1to1", "1MiB", "multiproc_zerocopy", "1 MiB", 1000, 5, "us/op",
        run_case, Q(&sys_mpq_zc, T11(MiB), 0)),
    ROW("queue_1to1", "1MiB", "multiproc_inplace", "1 MiB", 1000, 5, "us/op",
        run_case, Q(&sys_mpq_inplace, T11(MiB), 0)),
    ROW("queue_1to1", "1MiB", "multiproc_16MiB_ring", "1 MiB", 500, 5, "us/op",
        run_case, Q(&sys_mpq_16mib, T11(MiB), 0)),
    PEERS_1TO1("1MiB", "1 MiB", MiB, 200, 200, 200, 1000, 1000, 2000, 5,
               "us/op"),
    ROW("queue_1to1", "1MiB", "handoff_limit", "1 MiB", 2000, 5, "us/op",
        run_case, QH(&sys_handoff, MiB, 0, 0)),
    ROW("queue_1to1", "1MiB", "handoff_copy_limit", "1 MiB", 2000, 5, "us/op",
        run_case, QH(&sys_handoff, MiB, 0, HANDOFF_COPY_OUT)),
    ROW("queue_1to1", "1MiB", "handoff_8buf_limit", "1 MiB", 2000, 5, "us/op",
        run_case, QH(&sys_handoff, MiB, 8, 0)),
    ROW("queue_1to1", "1MiB", "handoff_memcpy_limit", "1 MiB", 2000, 5, "us/op",
        run_case, QH(&sys_handoff, MiB, 0, HANDOFF_MEMCPY_IN)),
    ROW("queue_1to1", "1MiB", "handoff_guard_limit", "1 MiB", 1000, 5, "us/op",
        run_case,
        QH(&sys_handoff, MiB, 8,
           HANDOFF_GUARD | HANDOFF_MEMCPY_IN | HANDOFF_COLD)),
    ROW("queue_1to1", "1MiB", "handoff_cold_limit", "1 MiB", 2000, 5, "us/op",
        run_case, QH(&sys_handoff, MiB, 8, HANDOFF_MEMCPY_IN | HANDOFF_COLD)),
    ROW("queue_1to1", "1MiB", "handoff_cold_copy_limit", "1 MiB", 2000, 5,
        "us/op", run_case,
        QH(&sys_handoff, MiB, 8,
           HANDOFF_MEMCPY_IN | HANDOFF_COLD | HANDOFF_COPY_OUT)),

    ROW("queue_2to2", "64B", "multiproc", "64 B", 1000000, 200, "ns/op",
        run_case, Q(&sys_mpq, T22, 0)),
    ROW("queue_2to2", "64B", "multiproc_batch", "64 B", 3000000, 200, "ns/op",
        run_case, Q(&sys_mpq_batch, T22, 1)),
    ROW("queue_2to2", "64B", "framed_pipe", "64 B", 100000, 200, "ns/op",
        run_case, Q(&sys_pipe, T22, 0)),
    ROW("queue_2to2", "64B", "posix_mq", "64 B", 100000, 200, "ns/op", run_case,
        Q(&sys_mq, T22, 0)),
    ROW("queue_2to2", "64B", "zmq_ipc", "64 B", 500000, 200, "ns/op", zmq_case,
        Q(SYS_ZMQ, T22, 0)),
    ROW("queue_2to2", "64B", "ring_limit", "64 B 2 pairs", 3000000, 200,
        "ns/op", run_case, Q(&sys_ring, T22, 0)),
    ROW("queue_2to2", "64B", "ring_batch_limit", "64 B 2 pairs", 5000000, 200,
        "ns/op", run_case, Q(&sys_ring, T22, 1)),

    PEERS_RT("64B_busy", RTB, 200000, 5000, 5000, 2000, 500000, 5000, 50),
    PEERS_RT("64B_idle", RTI, 300, 300, 300, 300, 300, 300, 5),
    ROW("queue_roundtrip", "64B_idle", "multiproc_nospin", "64 B", 300, 5,
        "ns/op", run_case, Q(&sys_mpq_nospin, RTI, 0)),
    ROW("queue_roundtrip", "64B_idle", "futex_bounded", "64 B", 300, 5, "ns/op",
        run_case, Q(&sys_futex_bounded, RTI, 0)),
};

int main(int argc, char **argv) {
  static const bench_suite suite = BENCH_SUITE("bench_queue", cases);
  return bench_main(argc, argv, &suite);
}
