/* queue_internal.h - what the queue's files (queue.c, queue_fifo.c,
 * queue_heap.c, queue_large.c, queue_users.c, ...) share and nothing else sees:
 * the layout of a queue in shared memory, the process-local handle, and the
 * operations each file provides to the files above it. The DESIGN comment in
 * queue.c explains the whole. */
#ifndef MP_QUEUE_INTERNAL_H
#define MP_QUEUE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fault.h"
#include "internal.h"
#include "multiproc/queue.h"

#define MP__QUEUE_MAGIC 0x4d505155u /* "MPQU" */
#define MP__QUEUE_LINE 64
#define MP__QUEUE_PROCS 64
/* PID namespaces a queue tells apart (1..MP__QUEUE_NS; 0: unknown). */
#define MP__QUEUE_NS 15
/* Segments of large messages kept for reuse (see queue_large.c). */
#define MP__QUEUE_SPARES 8 /* one cache line */
/* Large-message segments a process keeps mapped for reuse (queue_large.c),
 * and the most bytes they may hold. */
#define MP__QUEUE_MAPS 16
#define MP__QUEUE_MAPS_BYTES ((size_t)64 << 20)
/* A FIFO ring that its consumer keeps empty is rewound when a record would
 * cross this offset (queue_fifo.c, "Rewinding"). */
#define MP__QUEUE_REWIND_AT (16u * 1024)
/* Sleepers look again at least this often (a waker may have died between
 * its change and its wake-up). */
#define MP__QUEUE_SLICE_NS (100 * 1000 * 1000)

/* Record kinds, in the FIFO ring's record headers and the heap's slots. */
enum { MP__REC_INLINE = 1, MP__REC_LARGE = 2, MP__REC_WRAP = 3 };

/* The stored form of a large message: its segment is
 * "<prefix>+<pid>.<ctr>" and holds size bytes. */
typedef struct mp__qlarge_ref {
  uint64_t size;
  uint32_t pid;
  uint32_t check; /* a check value of the other fields */
  uint64_t ctr;
} mp__qlarge_ref;

#define MP__QUEUE_INLINE_MIN ((uint32_t)sizeof(mp__qlarge_ref))

/* How an in-place put's segment was handed out, for timing its fill
 * (queue_large.c, "The fill in place"): way -1 untimed, 0 as it was, 1
 * flushed from the caches first, which took spent_ns; t0 starts it. */
typedef struct mp__qfill {
  int way;
  int64_t spent_ns;
  int64_t t0;
} mp__qfill;

/* A queue lock (queue.c): taken with one compare-and-swap, given back with
 * one store. owner is 0 when free, else who holds it: the holder thread's
 * kernel id in bits 0-30, the index of its PID namespace in the queue's
 * table in bits 32-35 (0: unknown), the low 28 bits of its start time in
 * bits 36-63 (0: unknown). Id and start time name one thread for good, so
 * that a waiter can tell a dead holder from a slow one (and from a new
 * thread that got the same id); the namespace says whether the id means
 * anything to the waiter (a waiter of another namespace, or one that
 * cannot tell, never takes the lock over). sleepers is a futex word,
 * (sequence << 16) | registered sleepers (queue_core.c).
 *
 * Bit 31 of owner set (MP__QLOCK_BIAS) makes the word a bias: the lock is
 * kept by that thread, its only user for a while, between its calls, and
 * active (written by that thread only) says whether it is inside; revoke
 * counts the threads taking the bias away (and one more while debt names
 * an owner that lost its bias and has not seen it yet), last and streak
 * who took the lock how many times in a row (queue_core.c, "biased
 * locks"). */
#define MP__QLOCK_BIAS ((uint64_t)1 << 31)
/* Takes in a row by one thread before it may keep the lock as a bias. */
#define MP__QLOCK_BIAS_STREAK 256
typedef struct mp__qlock {
  _Atomic uint64_t owner;
  _Atomic uint32_t sleepers;
  _Atomic uint32_t active;
  _Atomic uint32_t revoke;
  uint32_t streak;
  uint32_t last;         /* the low 32 bits of the last taker's identity */
  _Atomic uint32_t debt; /* a live owner whose bias was taken away, until
                            it saw so (queue_core.c); 0: none */
} mp__qlock;

/* The shared state. Lines are grouped by who writes them, so a producer
 * and a consumer on two cores do not pull the same line back and forth:
 * the set-once line is read by all; the producer lock line and the tail
 * are written by producers; the consumer lock line and the head by
 * consumers; each futex word is written only by its sleepers and wakers. */
typedef struct mp__qshared {
  /* Set once by init (closed: once by close); read by everyone. */
  mp__object_head head;
  uint32_t seg_magic;
  uint8_t order;
  uint8_t joinable;
  uint8_t lease; /* at-least-once mode (FIFO) */
  uint8_t reserved0;
  _Atomic uint32_t closed;
  _Atomic uint32_t fence_needed; /* some user cannot take heavy barriers */
  uint64_t total_size;
  uint64_t id;        /* random: names an unnamed queue's large segments */
  uint64_t capacity;  /* FIFO: ring bytes; heap: nslots * slot_size */
  uint32_t nslots;    /* heap only */
  uint32_t slot_size; /* heap only */
  uint64_t maxsize;   /* 0: none */
  uint64_t inline_max;
  uint64_t max_message;
  int64_t spin_ns;
  uint64_t ring_off;   /* the ring or the slots */
  uint64_t index_off;  /* heap only: heap array, then free stack */
  uint64_t lease_off;  /* lease mode: MP_QUEUE_LEASES entries */
  uint64_t lease_size; /* bytes per lease entry */
  int32_t creator_pid;
  uint32_t reserved1;

  /* Producers (and, for the heap, everyone) under plock. */
  _Alignas(MP__QUEUE_LINE) mp__qlock plock;
  uint64_t head_cache;      /* FIFO: a head value, never ahead of head */
  _Atomic uint32_t hcount;  /* heap: messages stored */
  uint32_t free_top;        /* heap: entries on the free stack */
  _Atomic uint64_t put_seq; /* heap: sequence of the last put */
  uint64_t tail_own;        /* FIFO: the tail word as producers stored it */

  /* FIFO: the producers' commit word, (count << 32) | position. */
  _Alignas(MP__QUEUE_LINE) _Atomic uint64_t tail;

  /* Consumers under clock (the heap uses plock; pend_* under it). */
  _Alignas(MP__QUEUE_LINE) mp__qlock clock;
  uint64_t tail_cache;       /* FIFO: a tail value, never behind head */
  _Atomic uint64_t pend_ctr; /* a large segment being handed over */
  _Atomic uint32_t pend_pid;

  /* FIFO: the consumers' commit word, (count << 32) | position. */
  _Alignas(MP__QUEUE_LINE) _Atomic uint64_t headw;

  /* Futex words: (sequence << 16) | registered sleepers. */
  _Alignas(MP__QUEUE_LINE) _Atomic uint32_t not_empty;
  _Alignas(MP__QUEUE_LINE) _Atomic uint32_t not_full;
  _Alignas(MP__QUEUE_LINE) _Atomic uint32_t joined;
  _Atomic uint32_t done; /* task_done calls, modulo 2^32 */

  /* Large-message segments kept for reuse: 0 (empty), (size << 2) | 1
   * (a spare of size bytes), or (pid << 32) | 2 (being moved by pid). */
  _Alignas(MP__QUEUE_LINE) _Atomic uint64_t spares[MP__QUEUE_SPARES];
  /* When each spare was parked, as parked_kib then; parked_kib counts the
   * KiB of segments parked so far, modulo 2^32 (queue_large.c, "Cold
   * spares"). Hints: a wrong one costs a choice, never a byte. */
  _Alignas(MP__QUEUE_LINE) _Atomic uint32_t spare_at[MP__QUEUE_SPARES];
  _Atomic uint32_t parked_kib;

  /* Processes using the queue: (namespace index << 32) | pid; 0: free. */
  _Alignas(MP__QUEUE_LINE) _Atomic uint64_t procs[MP__QUEUE_PROCS];
  _Atomic uint32_t procs_overflow;
  uint32_t reserved2;
  /* JoinableQueue: per user (same index as procs), messages taken and not
   * yet matched by that process's task_done calls. */
  _Atomic uint32_t held[MP__QUEUE_PROCS];
  /* The PID namespaces of the users (inode of /proc/<pid>/ns/pid); entry
   * i is namespace index i + 1. Set once each, never cleared. */
  _Atomic uint64_t pidns[MP__QUEUE_NS];
} mp__qshared;

/* A heap slot: header, then the payload. state is the commit word:
 * (seq << 1) | 1 while it holds a message, seq << 1 once free again. */
typedef struct mp__qslot {
  _Atomic uint64_t state;
  int64_t prio;
  uint32_t len;
  uint16_t kind;
  uint16_t check;
} mp__qslot;

#define MP__QUEUE_PREFIX_MAX (4 + MP_QUEUE_NAME_MAX)

/* A mapping of a large-message segment this process keeps (queue_large.c):
 * the segment's inode, its size, where it is mapped, and whether it is in
 * use (a zero-copy message or an in-place put holds it). */
typedef struct mp__qmap {
  uint64_t dev, ino;
  size_t size;
  void *addr; /* NULL: a free entry */
  bool writable, busy;
  uint64_t used; /* for the choice of the entry to give up */
} mp__qmap;

/* The process-local handle. Everything that bounds a memory access is
 * here, checked once when the handle was made, and never read from the
 * shared state again. */
struct mp_queue {
  mp__qshared *s;
  unsigned char *ring; /* FIFO ring, or the heap's slots */
  uint32_t *heap;      /* heap: nslots entries */
  uint32_t *freestk;   /* heap: nslots entries */
  void *map;           /* our mapping (anonymous or named), or NULL */
  size_t map_size;
  uint8_t origin; /* enum mp__object_origin */
  uint8_t order;
  bool joinable;
  bool fence;         /* this process fences on the cheap side */
  uint32_t cap, mask; /* FIFO */
  uint32_t nslots, slot_size, slot_payload;
  uint64_t maxsize; /* UINT64_MAX when unbounded */
  uint64_t inline_max, max_message;
  int64_t spin_ns;
  pid_t creator;         /* named: the pid whose free unlinks the name */
  uint8_t ns;            /* this process's namespace index (0: unknown) */
  bool lock_fault;       /* tests: the locks reach their fault points */
  int slot;              /* this process's entry in procs, or -1 */
  uint32_t tag;          /* mp__queue_tag: this process's tag, made on join */
  bool lease;            /* at-least-once mode */
  unsigned char *leases; /* lease mode: the entries */
  uint32_t lease_size;
  /* Holding back (queue_fifo.c), under clock: the last look at the tail
   * found under HOLD_BYTES the get had not waited for; chances to let pass, and
   * the next such count; hold-backs made (for tests). */
  bool hold_streak;
  uint32_t hold_skip, hold_backoff;
  uint64_t holds;
  /* The open in-place put (mp_queue_claim): written only by the thread
   * that holds plock, which is the claimer from claim to commit. */
  struct {
    _Atomic pid_t tid;   /* the claiming thread; 0: none (other threads
                            read it to refuse their commit) */
    uint32_t cnt, start; /* the tail word's count and position at claim */
    uint32_t off;        /* where the record's header goes in the ring */
    bool wrapped;        /* a WRAP gap precedes it */
    bool large;          /* a segment of its own */
    size_t size;         /* bytes claimed */
    mp__qlarge_ref ref;  /* large: the segment */
    void *map;           /* large: this process's writable mapping */
    size_t map_len;      /* its length */
    int map_idx;         /* its entry in maps, or -1 */
    mp__qfill fill;      /* large: how the fill is timed */
  } claim;
  /* Mappings of large segments kept for reuse, under maps_lock. */
  pthread_mutex_t maps_lock;
  mp__qmap maps[MP__QUEUE_MAPS];
  uint64_t maps_clock;
  /* Reuse first (queue_large.c): how many fresh segments this handle
   * made, ns it waited for kept ones since it last made one, and whether
   * its last wait ran out. Threads race on them harmlessly. */
  _Atomic uint32_t large_made;
  _Atomic int64_t reuse_spent;
  _Atomic bool reuse_off;
  uint32_t (*large_count)(struct mp_queue *q); /* messages queued now */
  char shm_name[MP__QUEUE_PREFIX_MAX];
  char prefix[MP__QUEUE_PREFIX_MAX]; /* large segments' names start so */
  /* An anonymous queue's "<prefix>+", or a named one's tree link,
   * "<prefix>+=<tracker pid>.<pidns>", registered with the resource
   * tracker to guard its segments' family (queue.c, "The guard"); empty
   * when there is none. */
  char guard[MP__QUEUE_PREFIX_MAX + 40];
  uint64_t ino;          /* named: the segment's inode (0: unknown) */
  struct mp_queue *next; /* the process's list of handles */
};

/* One message to put, as stored: inline bytes or a large reference. */
typedef struct mp__qput {
  const void *data;
  uint32_t len; /* bytes stored */
  uint16_t kind;
  int64_t prio;
} mp__qput;

/* A get request and its results. */
typedef struct mp__qget {
  unsigned char *buf; /* copy target, cap bytes (NULL with msg) */
  size_t cap;
  size_t max;        /* take at most this many (batch) */
  bool want_exact;   /* typed gets: only a message of exactly... */
  size_t exact;      /* ...this length */
  bool reserve_nul;  /* get_str: one byte more than the message */
  mp_queue_msg *msg; /* zero-copy: hand the message over here */
  size_t *lens;      /* out: length of each message taken */
  int64_t *prio;     /* out (may be NULL): the first one's priority */
  size_t taken;      /* out */
  size_t used;       /* out: bytes of buf filled */
  size_t needed;     /* out with MP_ETOOBIG */
  uint64_t lease;    /* out, lease mode: the lease of the message taken */
  uint64_t seg_size; /* out: the large message's segment's size */
  bool waited;       /* the get waited for a message (queue.c) */
} mp__qget;

/* The files and who calls whom (downward only):
 *   queue.c        life cycle, public calls, waiting, lease settling
 *   queue_fifo.c   the FIFO ring       queue_heap.c   LIFO/priority slots
 *   queue_lease.c  lease entries (at-least-once mode)
 *   queue_large.c  large messages' segments
 *   queue_users.c  the table of users (also read by resource_tracker.c,
 *                  through queue_users.h)
 *   queue_core.c   tags, locks, futex words, checks, delivery */

/* closed: 0, then CLOSING once close was called (puts refuse), then
 * CLOSED once the producers' lock was released after that (every put that
 * passed the check before has committed: gets may answer MP_ECLOSED). */
#define MP__QUEUE_CLOSING 1u
#define MP__QUEUE_CLOSED 2u

/* ---- queue_core.c: who is alive -----------------------------------------
 * A process tag is (namespace index << 24) | pid: what large segments'
 * names and the spares table record of their producer. mp__queue_tag
 * gives the caller's (made on join by mp__queue_make_tag);
 * mp__queue_tag_gone says whether the process a tag names is known to be
 * gone, which only a process of the same known namespace can tell
 * (unknown means alive). mp__queue_ns_index enters the caller's PID
 * namespace in the queue's table and returns its index (0: unknown);
 * mp__queue_same_ns says whether index ns is the caller's, known, one. */
uint32_t mp__queue_tag(mp_queue *q);
uint32_t mp__queue_make_tag(mp_queue *q);
bool mp__queue_tag_gone(mp_queue *q, uint32_t tag);
uint8_t mp__queue_ns_index(mp__qshared *s);
bool mp__queue_same_ns(mp_queue *q, uint32_t ns);

/* ---- queue_users.c: the table of users ------------------------------------
 * mp__queue_users_add enters pid (the caller, or a child it just forked)
 * and returns its slot (-1: the table overflowed, which makes every later
 * answer "others alive"); mp__queue_users_remove takes it out;
 * mp__queue_users_others_alive says whether a process other than pid may
 * still use the queue (unknown means alive); mp__queue_users_dead_holder
 * returns MP_EOWNERDEAD (with its detail) if a user known to be dead held
 * unfinished tasks of a JoinableQueue, else 0. */
int mp__queue_users_add(mp_queue *q, int32_t pid);
void mp__queue_users_remove(mp_queue *q, int32_t pid);
bool mp__queue_users_others_alive(mp_queue *q, int32_t pid);
int mp__queue_users_dead_holder(mp_queue *q);

/* ---- queue_core.c: locks, waking, checks --------------------------------
 * mp__queue_lock takes a queue lock, spinning, then sleeping in slices;
 * from a dead holder it takes the lock over and sets *recovered (the
 * caller then repairs what the holder may have left half done). Returns 0,
 * or MP_EDEADLK if the calling thread holds it (a signal handler that
 * re-entered the queue). mp__queue_holder_dead: is the thread lock word v
 * names known to be gone? */
int mp__queue_lock_slow(mp_queue *q, mp__qlock *l, bool *recovered,
                        const mp__deadline *d);
void mp__queue_unlock_slow(mp_queue *q, mp__qlock *l);
/* mp__queue_bias_left: the bias owner left and saw a revoker: wakes the
 * lock's sleepers. */
void mp__queue_bias_left(mp_queue *q, mp__qlock *l);
/* The calling thread's lock identity without the namespace index (0 until
 * queue_core.c computed it). */
extern _Thread_local __attribute__((tls_model("initial-exec"))) uint64_t
    mp__queue_my_ident;

/* The bias owner's way in and out, inline: a put or get then makes no
 * call and no read-modify-write for its lock (every store of a call, its
 * return address and saved registers, waits in the store buffer behind
 * the ring's lines the peer core holds). Everything else is the _slow
 * functions'. */
static inline int mp__queue_lock(mp_queue *q, mp__qlock *l, bool *recovered,
                                 const mp__deadline *d) {
  uint64_t me = mp__queue_my_ident | ((uint64_t)q->ns << 32) | MP__QLOCK_BIAS;
  if (atomic_load_explicit(&l->owner, memory_order_relaxed) == me &&
      mp__queue_my_ident != 0 &&
      atomic_load_explicit(&l->active, memory_order_relaxed) == 0) {
    if (__builtin_expect(q->lock_fault, 0))
      mp__fault(MP__FAULT_QLOCK_BIAS_ENTER, l);
    atomic_store_explicit(&l->active, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    if (__builtin_expect(
            atomic_load_explicit(&l->revoke, memory_order_acquire) == 0, 1))
      return 0;
    /* A revoker: out again, and the slow path decides. */
    atomic_store_explicit(&l->active, 0, memory_order_relaxed);
  }
  return mp__queue_lock_slow(q, l, recovered, d);
}

static inline void mp__queue_unlock(mp_queue *q, mp__qlock *l) {
  if ((atomic_load_explicit(&l->owner, memory_order_relaxed) &
       MP__QLOCK_BIAS) &&
      atomic_load_explicit(&q->s->closed, memory_order_relaxed) == 0) {
    atomic_store_explicit(&l->active, 0, memory_order_release);
    atomic_signal_fence(memory_order_seq_cst);
    if (__builtin_expect(
            atomic_load_explicit(&l->revoke, memory_order_relaxed) == 0, 1))
      return;
    /* A revoker may wait for this: wake it. (Not the slow unlock: the
     * revoker may hold the lock already.) */
    mp__queue_bias_left(q, l);
    return;
  }
  mp__queue_unlock_slow(q, l);
}
bool mp__queue_holder_dead(mp_queue *q, uint64_t v);
/* mp__queue_notify wakes the sleepers of word, if any are recorded. Call it
 * after the change they wait for. mp__queue_wake_all wakes every getter
 * and putter (close).
 *
 * Inline for the same reason as the lock: the common case, nobody
 * registered, is a load of the word and no call (a call's stores wait
 * behind the message's lines in the store buffer). mp__queue_notify_slow
 * wakes the sleepers counted at v. mp__queue_woke_peer: whether this
 * thread's last put or get woke a sleeping peer (queue_core.c,
 * wait_until); written only when it changes. */
/* The low half of a futex word of the queue: the sleepers it counts. */
#define MP__QUEUE_SLEEP_MASK 0xffffu
extern _Thread_local __attribute__((tls_model("initial-exec"))) bool
    mp__queue_woke_peer;
void mp__queue_notify_slow(mp_queue *q, _Atomic uint32_t *word, uint32_t v);
static inline void mp__queue_notify(mp_queue *q, _Atomic uint32_t *word) {
  /* The cheap side of the barrier pair (see DESIGN and queue_core.c, "the
   * futex words"): the commit store before this point must not be
   * reordered after the count load by the compiler; the CPU is taken care
   * of by the sleepers' heavy barrier, or by this fence where some user
   * cannot make one. */
  if (q->fence ||
      atomic_load_explicit(&q->s->fence_needed, memory_order_relaxed))
    atomic_thread_fence(memory_order_seq_cst);
  else
    atomic_signal_fence(memory_order_seq_cst);
  uint32_t v = atomic_load_explicit(word, memory_order_relaxed);
  if (__builtin_expect((v & MP__QUEUE_SLEEP_MASK) != 0, 0)) {
    mp__queue_notify_slow(q, word, v);
    return;
  }
  /* not_empty and not_full are the peers' words (joined is not). */
  if (word != &q->s->joined && mp__queue_woke_peer)
    mp__queue_woke_peer = false;
}
void mp__queue_wake_all(mp_queue *q);
/* Heavy barriers the sleepers of this process made (for tests: a sleep
 * after a plain spin makes one at once, a first sleep none), first
 * sleeps that timed out with the state ready (missed wake-ups), and
 * paced spins (mp__queue_wait_paced). */
extern _Atomic unsigned long mp__queue_sleep_barriers;
extern _Atomic unsigned long mp__queue_missed_wakes;
extern _Atomic unsigned long mp__queue_paced_spins;
/* mp__queue_wait_until spins, then sleeps on word, until ready(q, arg) or
 * the deadline. Returns 0 (ready: the caller tries again), MP_EAGAIN (d
 * polls) or MP_ETIMEDOUT. */
typedef bool (*mp__queue_ready_fn)(mp_queue *q, void *arg);
int mp__queue_wait_until(mp_queue *q, _Atomic uint32_t *word,
                         mp__queue_ready_fn ready, void *arg, mp__deadline d);
/* mp__queue_wait_paced is mp__queue_wait_until whose spin looks at ready
 * only every look_ns (0: at every pause); its sleep is the same. */
int mp__queue_wait_paced(mp_queue *q, _Atomic uint32_t *word,
                         mp__queue_ready_fn ready, void *arg, mp__deadline d,
                         int64_t look_ns);
static inline uint16_t mp__queue_check16(uint32_t len, uint16_t kind) {
  uint32_t x = (len ^ (len >> 16)) * 0x9e37u;
  return (uint16_t)((x ^ (x >> 16) ^ kind ^ 0xa55au) & 0xffffu);
}
/* mp__queue_deliver copies one inline message of len bytes at src into the
 * request as its message number idx. Returns 0, MP_EPROTO (not the exact
 * length asked for), MP_ETOOBIG (g->needed set), MP_ENOMEM. */
/* (inline: below, after the kinds of mp_queue_msg it fills) */

/* ---- queue.c ------------------------------------------------------------
 * mp__queue_sweep removes the queue's orphaned large segments, taking the
 * locks it needs (called by queue.c only; the storages repair under the
 * lock they hold with mp__qlarge_*). */
void mp__queue_sweep(mp_queue *q);

/* What an mp_queue_msg's priv_[1] says priv_[0] is. */
#define MP__QMSG_MAPPED ((void *)1)    /* a mapping of priv_len_ bytes */
#define MP__QMSG_ALLOCATED ((void *)2) /* a buffer from mp__alloc */
#define MP__QMSG_SEGMENT ((void *)3)   /* an mp__qzc record */

/* mp__qcopy copies a message's payload into the ring or out of it. A
 * small one is copied inline in 16-byte moves: the library's memcpy moves
 * 33 to 64 bytes with one 64-byte store, which, at a record's payload (8
 * bytes into a cache line), straddles two lines that the consumer has just
 * read; and a call, or a loop of moves, cost 20 to 30 instructions a
 * message where the whole put of a batched 64-byte message takes 120
 * (callgrind). */
static inline void mp__qcopy(unsigned char *dst, const void *src,
                             uint32_t len) {
  const unsigned char *s = src;
  if (len > 64) {
    memcpy(dst, src, len);
  } else if (len > 32) {
    /* Four 16-byte moves, the last two ending at len (they may overlap
     * the first two): no loop, no store past the payload. */
    __builtin_memcpy(dst, s, 16);
    __builtin_memcpy(dst + 16, s + 16, 16);
    __builtin_memcpy(dst + len - 32, s + len - 32, 16);
    __builtin_memcpy(dst + len - 16, s + len - 16, 16);
  } else if (len >= 16) {
    __builtin_memcpy(dst, s, 16);
    __builtin_memcpy(dst + len - 16, s + len - 16, 16);
  } else {
    __builtin_memcpy(dst, s, len);
  }
}

/* mp__queue_deliver (see queue_core.c's part above). */
static inline int mp__queue_deliver(mp__qget *g, const unsigned char *src,
                                    uint32_t len, size_t idx) {
  if (g->want_exact && len != g->exact)
    return MP_EPROTO;
  if (g->msg != NULL) {
    void *b = mp__alloc(len > 0 ? len : 1);
    if (b == NULL)
      return MP_ENOMEM;
    memcpy(b, src, len);
    g->msg->data = b;
    g->msg->len = len;
    g->msg->priv_[0] = b;
    g->msg->priv_[1] = MP__QMSG_ALLOCATED;
    g->lens[idx] = len;
    return 0;
  }
  size_t need = (size_t)len + (g->reserve_nul ? 1 : 0);
  if (need > g->cap - g->used) {
    g->needed = need;
    return MP_ETOOBIG;
  }
  if (len > 0)
    mp__qcopy(g->buf + g->used, src, len);
  g->lens[idx] = len;
  g->used += len;
  return 0;
}

/* A zero-copy message's hold on its segment: the mapping (an entry of the
 * handle's maps, or its own), and the segment: a spare slot lent to the
 * consumer, which release turns into a spare, or else the segment under
 * the consumer's name, which release parks as a spare (or removes). */
typedef struct mp__qzc {
  mp_queue *q;
  char prefix[MP__QUEUE_PREFIX_MAX]; /* q's, to tell it is still q */
  void *addr;
  size_t map_len;
  int map_idx;
  uint64_t seg_size;
  int lent;                             /* the spare slot lent to it, or -1 */
  char name[MP__QUEUE_PREFIX_MAX + 48]; /* "": nothing to park */
} mp__qzc;

/* A lease entry (lease mode): state is 0 (free), or (holder tag << 32) |
 * step, step 1 while the holder writes it (its get has not committed),
 * 2 once written (the get commits after), 3 while someone puts it back.
 * head_cnt is the consumers' count the get's commit sets: whether the
 * commit happened is told from the head word. Then the stored record. */
typedef struct mp__qlease {
  _Atomic uint64_t state;
  uint32_t head_cnt;
  uint32_t gen; /* counts the entry's leases: part of the lease id */
  uint32_t len;
  uint16_t kind;
  uint16_t reserved;
} mp__qlease;

#define MP__LEASE_STEP_WRITING 1u
#define MP__LEASE_STEP_HELD 2u
#define MP__LEASE_STEP_SETTLING 3u

/* ---- queue_lease.c ------------------------------------------------------
 * mp__qlease_claim takes a free entry for the caller (step 1); returns its
 * index, or -1 when all are held. mp__qlease_fill stores the record and
 * the count the commit will set (step 2), and the lease id in g.
 * mp__qlease_release frees an entry, removing a large message's segment. */
mp__qlease *mp__qlease_at(mp_queue *q, int idx);
int mp__qlease_claim(mp_queue *q);
void mp__qlease_fill(mp_queue *q, int idx, uint32_t head_cnt, uint16_t kind,
                     const void *data, uint32_t len, mp__qget *g);
void mp__qlease_abandon(mp_queue *q, int idx);
void mp__qlease_release(mp_queue *q, int idx);

/* ---- queue_fifo.c -------------------------------------------------------
 * try_put puts msgs[0..n) as far as room allows, committing them at once;
 * *done says how many. Returns 0 (all), MP_EAGAIN (full before all),
 * MP_ECLOSED, MP_ECORRUPT. try_get fills g; returns 0, MP_EAGAIN (empty),
 * MP_ETOOBIG, MP_EPROTO, MP_ECORRUPT, MP_ENOMEM, or a large segment's
 * error. */
int mp__qfifo_try_put(mp_queue *q, const mp__deadline *d, const mp__qput *msgs,
                      size_t n, size_t *done);
int mp__qfifo_try_get(mp_queue *q, const mp__deadline *d, mp__qget *g);
uint32_t mp__qfifo_count(mp_queue *q);
/* mp__qfifo_has_room: is there room now for a record of rec_bytes? */
bool mp__qfifo_has_room(mp_queue *q, uint32_t rec_bytes);
uint32_t mp__qfifo_puts(mp_queue *q); /* puts ever, modulo 2^32 */
/* mp__qfifo_ready: does the ring hold a message? A waiter's look: it also
 * prefetches the lines of the record at the head (queue_fifo.c, "Looking
 * ahead"). */
bool mp__qfifo_ready(mp_queue *q);
/* mp__qfifo_for_each_large calls fn for every large message queued; the
 * caller holds clock. With drop, the queue is emptied afterwards. */
void mp__qfifo_for_each_large(mp_queue *q,
                              void (*fn)(mp_queue *, const mp__qlarge_ref *,
                                         void *),
                              void *arg, bool drop);
bool mp__qfifo_valid(mp_queue *q); /* the commit words are plausible */
/* mp__qfifo_queued: is the large message ref still queued? (clock held) */
bool mp__qfifo_queued(mp_queue *q, const mp__qlarge_ref *ref);
uint32_t mp__qfifo_record_bytes(uint64_t stored_len);
/* mp__qfifo_put_bytes: the ring bytes message m takes (with its header). */
uint32_t mp__qfifo_put_bytes(mp_queue *q, const mp__qput *m);

/* mp__qfifo_claim takes plock and reserves room past the tail for one
 * record (kind INLINE of len bytes, or LARGE), recording it in q->claim;
 * returns 0 with plock held, or MP_EAGAIN (no room), MP_ECLOSED,
 * MP_ECORRUPT, a lock error, with it released. mp__qfifo_claim_payload is
 * where the record's payload goes. mp__qfifo_commit writes the header
 * (and the payload data, if not NULL) and publishes it with the tail
 * store, then releases plock; mp__qfifo_abandon releases it. */
int mp__qfifo_claim(mp_queue *q, const mp__deadline *d, uint16_t kind,
                    uint32_t len);
unsigned char *mp__qfifo_claim_payload(mp_queue *q);
void mp__qfifo_commit(mp_queue *q, uint16_t kind, const void *data,
                      uint32_t len);
void mp__qfifo_abandon(mp_queue *q);

/* ---- queue_heap.c (LIFO and PRIORITY) ----------------------------------- */
int mp__qheap_try_put(mp_queue *q, const mp__deadline *d, const mp__qput *msgs,
                      size_t n, size_t *done);
int mp__qheap_try_get(mp_queue *q, const mp__deadline *d, mp__qget *g);
uint32_t mp__qheap_count(mp_queue *q);       /* lock-free, may lag */
uint32_t mp__qheap_count_exact(mp_queue *q); /* under the lock */
uint32_t mp__qheap_puts(mp_queue *q);
/* mp__qheap_rebuild recomputes the heap, the free stack, the count and the
 * sequence from the slots' commit words (caller holds plock). */
void mp__qheap_rebuild(mp_queue *q);
/* mp__qheap_repair is what the holder of plock does after taking it over
 * from a dead holder (recovered) or finding it damaged: rebuild, then
 * finish a large message's hand-over a dead consumer left, then (after a
 * death) sweep orphans. */
void mp__qheap_repair(mp_queue *q, bool recovered);
void mp__qheap_for_each_large(mp_queue *q,
                              void (*fn)(mp_queue *, const mp__qlarge_ref *,
                                         void *),
                              void *arg, bool drop);
bool mp__qheap_valid(mp_queue *q);
bool mp__qheap_queued(mp_queue *q, const mp__qlarge_ref *ref);

/* ---- queue_large.c ------------------------------------------------------
 * mp__qlarge_create makes a segment holding len bytes of buf and fills
 * *ref. Once its record is queued the queue owns it; if the put fails,
 * mp__qlarge_abandon removes it. (Orphans of a producer killed in between
 * are swept: see queue_large.c's DESIGN.) */
int mp__qlarge_create(mp_queue *q, const void *buf, size_t len,
                      mp__qlarge_ref *ref, mp__deadline d);
void mp__qlarge_abandon(mp_queue *q, const mp__qlarge_ref *ref);
/* mp__qlarge_create_mapped makes a segment of len bytes, its memory
 * reserved, and maps it writable, every page present, at *map (for an
 * in-place put; the caller unmaps it). *fill says how a reused segment
 * was handed out (queue_large.c, "The fill in place"): the caller sets
 * fill->t0 to now less fill->spent_ns once it holds the room, and passes
 * it to mp__qlarge_fill_done at the commit. */
int mp__qlarge_create_mapped(mp_queue *q, size_t len, mp__qlarge_ref *ref,
                             void **map, size_t *map_len, int *map_idx,
                             mp__qfill *fill, mp__deadline d);
/* mp__qlarge_fill_done times a committed claim of len bytes. */
void mp__qlarge_fill_done(const mp__qfill *fill, size_t len);
/* mp__qlarge_fill_ways: how many timed claims this process handed out
 * as they were ([0]) and flushed ([1]); for tests. */
void mp__qlarge_fill_ways(uint64_t ways[2]);
/* mp__qlarge_set_fresh_cost sets this process's estimate of what a fresh
 * segment costs it, ns a MiB (0: none yet), and returns the old one: for
 * tests of the wait for a kept segment (queue_large.c, "Reuse first"). */
uint64_t mp__qlarge_set_fresh_cost(uint64_t ns_per_mib);
/* mp__qlarge_set_cold_wait sets how long a producer waits for a cold spare
 * before a warm one will do, ns a MiB, and returns the old value: for
 * tests (queue_large.c, "Cold spares"). */
uint64_t mp__qlarge_set_cold_wait(uint64_t ns_per_mib);
/* mp__qlarge_map_done gives back a mapping from mp__qlarge_create_mapped
 * (map_idx: its entry, or -1); with drop, the entry is given up too (its
 * segment is being removed). */
void mp__qlarge_map_done(mp_queue *q, int map_idx, void *map, size_t map_len,
                         bool drop);
/* mp__qlarge_zc_release ends a zero-copy message's hold: q is the handle
 * it came from, or NULL when that handle is gone. Frees zc. */
void mp__qlarge_zc_release(mp_queue *q, mp__qzc *zc);
/* mp__qlarge_maps_init / _drop: the handle's mappings, at its making and
 * its end (entries in use stay mapped: their holders unmap them). */
void mp__qlarge_maps_init(mp_queue *q);
void mp__qlarge_maps_drop(mp_queue *q);
/* mp__qlarge_reref: ref for a message of len bytes in ref's segment. */
void mp__qlarge_reref(const mp__qlarge_ref *ref, size_t len,
                      mp__qlarge_ref *out);
/* mp__qlarge_take delivers a queued large message into g (copy or
 * zero-copy) before the caller commits its removal; the caller holds the
 * consumer lock, and after committing the removal calls mp__qlarge_taken.
 * Returns 0, MP_ETOOBIG, MP_EPROTO, MP_ECORRUPT, MP_ENOENT (the segment is
 * gone: the record is to be dropped), or an error of the system. */
int mp__qlarge_take(mp_queue *q, const mp__qlarge_ref *ref, mp__qget *g);
void mp__qlarge_taken(mp_queue *q, const mp__qlarge_ref *ref,
                      const mp__qget *g);
/* mp__qlarge_drop_spares removes the segments kept for reuse. */
void mp__qlarge_drop_spares(mp_queue *q);
/* mp__qlarge_recover finishes a hand-over a dead consumer left (caller
 * holds the consumer lock); queued says whether the message it names is
 * still queued. */
void mp__qlarge_recover(mp_queue *q,
                        bool (*queued)(mp_queue *, const mp__qlarge_ref *));
/* mp__qlarge_sweep removes the segments of this queue that no record
 * names and whose producer is dead (caller holds the consumer lock). */
void mp__qlarge_sweep(mp_queue *q,
                      bool (*queued)(mp_queue *, const mp__qlarge_ref *));
/* mp__qlarge_sweep_due says whether this process should sweep now (at
 * most once a second; it then counts as done). */
bool mp__qlarge_sweep_due(void);
void mp__qlarge_unlink(mp_queue *q, const mp__qlarge_ref *ref, void *arg);

#endif
