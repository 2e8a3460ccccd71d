/* queue.c - Queue, JoinableQueue, SimpleQueue, LifoQueue and PriorityQueue:
 * byte messages between threads and processes through shared memory, with
 * no feeder thread and no loss when a process dies inside put or get.
 * This file holds the life cycle (the three homes, the checks on open),
 * the public calls, and lease settling; the storages are queue_fifo.c (the
 * FIFO ring) and queue_heap.c (LIFO and priority slots), lease entries
 * queue_lease.c, large messages queue_large.c, the table of users
 * queue_users.c, and the locks, the waiting and the checks all of them
 * use queue_core.c (queue_internal.h lists who calls whom: always
 * downward).
 *
 * DESIGN
 * Shared layout (queue_internal.h, mp__qshared), then the storage:
 *   set-once line    magic, order, sizes, offsets, closed, fence_needed
 *   plock line       producers' lock, head_cache and tail_own (FIFO);
 *                    the heap's count, free-stack top and put sequence
 *   tail line        FIFO commit word of the producers
 *   clock line       consumers' lock, tail_cache, pend_* (a large
 *                    segment being handed over)
 *   headw line       FIFO commit word of the consumers
 *   3 futex lines    not_empty, not_full, joined (+ done)
 *   procs            the pids of the processes that use the queue
 *                    (queue_users.c; the resource tracker reads it too)
 *   FIFO: the ring (a power of two bytes). LIFO/PRIORITY: the heap array
 *   and the free stack (nslots each), then nslots fixed-size slots.
 *
 * Commit words. Every change a put or get makes is written first and made
 * visible by ONE store: the FIFO's tail (puts) and head (gets) words, each
 * (count << 32) | byte position, both modulo 2^32; a heap slot's state
 * word ((seq << 1) | full). A process killed before that store leaves the
 * old state, whole; after it, the new state, whole. Nothing else is
 * truth: the heap array, the free stack, the count and the caches are
 * derived, and whoever finds a lock's holder dead (and takes the lock
 * over, see Locks) rebuilds them from the commit words before going on.
 *
 * Locks. A FIFO has one lock per side: producers serialise on plock, and
 * consumers on clock, so one producer and one consumer never meet on a
 * lock, and each keeps a cached copy of the other side's word (head_cache,
 * tail_cache, kept under its own lock in its own line) and reads the other
 * side's line only when the copy says full or empty. A LIFO or priority
 * queue has one lock, plock, for both. Nobody sleeps holding a lock.
 * The locks are the queue's own (mp__qlock), not robust pthread mutexes:
 * those cost two read-modify-writes per critical section (the release is
 * an exchange, which waits for every store of the section to drain), and
 * profiles showed them at nearly half of a small put/get pair. Ours is
 * taken with one compare-and-swap of an identity (thread id and start
 * time) and released with a plain store, its sleepers found through a
 * flag like every futex word here. Robustness comes from the identity: a
 * waiter that sees the same holder for a whole slice (10 ms) asks the
 * kernel whether that thread still exists and started when the word says;
 * if not, it takes the lock over with one compare-and-swap (so only one
 * waiter does) and repairs the state. This covers a holder killed, or a
 * holder thread ended, at any point. A side's only user keeps its lock
 * between calls as a bias and enters with no read-modify-write at all; a
 * second user takes the bias away (queue_core.c, "biased locks").
 *
 * Waiting without a system call on the fast path. A futex word is
 * (sequence << 16) | registered sleepers. A waiter spins for spin_ns
 * watching the state, then registers (count + 1), makes a heavy barrier
 * (os/queue_os.h), looks again and sleeps; leaving unwoken, it takes its
 * count back. A waker, after its commit, loads the word and only if the
 * count is not zero swaps it for (sequence + 1, 0) and wakes everyone
 * sleeping on it: at most one wake per message, none while nobody sleeps
 * (queue_core.c). The heavy barrier on the rare side is what lets the
 * common side skip the fence between its commit store and the count load:
 * either the waker sees the count, or the waiter sees the commit. (A first
 * sleep skips the barrier and is kept short instead: see prepare_sleep.)
 * Where the barrier is missing, the processes fence on both sides instead
 * (fence_needed). Measured here, the heavy barrier (membarrier) costs a
 * sleeper about 15 us when the others run, and the fence it saves costs
 * every call; the queue was faster with the barrier in both the 1 -> 1 and
 * the 2 -> 2 case. Sleeps last at most MP__QUEUE_SLICE_NS: a waker killed
 * between its commit and its wake-up costs a sleeper that much, no more.
 * Whether to spin at all depends on the peer (see wait_until).
 *
 * Crash at each step. put: killed before the commit store, the message
 * was never there (a half-written record lies beyond the tail, unseen);
 * after it, the message is queued. get: killed before the commit, the
 * message is still queued; after it, it was consumed whole. Killed holding
 * a lock: the next taker recovers (above). Killed while sleeping: its
 * stale count costs the next waker one wake that finds nobody. Large
 * messages: see queue_large.c.
 *
 * Untrusted memory. A named queue can be written by any process of its
 * user. Everything that bounds an access (capacity, slot count and size,
 * offsets, limits) is checked once on open, against the segment's size and
 * a layout recomputed from the same parameters, and copied into the
 * process-local handle, which is all the accessors trust. Words read later
 * (commit words, record headers, heap entries) are checked before use and
 * a bad one fails the call with MP_ECORRUPT instead of a wild access. */
#define _GNU_SOURCE
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "os/process_os.h"
#include "os/queue_os.h"
#include "os/shm.h"
#include "queue_internal.h"

#define NAME_PREFIX "mp_"
#define HEAP_INLINE_DEFAULT 232
/* How long the last user's free (or destroy) waits for the queue's locks
 * before it leaves the large segments to a later sweep. */
#define DISCARD_WAIT_S 0.1
#define SPIN_MAX_NS 1000000000L

/* ---- the process's handles (for fork) ----------------------------------
 * A forked child inherits every handle; the atfork handler enters the
 * child in each queue's table of users and registers it for the heavy
 * barrier. That handler runs when the child first runs: a free in the
 * parent before then would find the parent the last user and discard
 * what the child is about to take. So the parent enters the child too,
 * before fork returns: its atfork handler finds the child as the forking
 * thread's newest child in /proc, and a child the library forks
 * (mp__os_fork: processes, pools, the fork server) is also told by pid
 * (child_forked), which needs no /proc. Only a program's own fork(2) where
 * /proc cannot be read is entered late (docs/queue.md, "Lifetime and
 * ownership"). */
static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static mp_queue *handles;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void enter_child_locked(pid_t child) {
  for (mp_queue *q = handles; q != NULL; q = q->next)
    if (mp__object_check(q->s, MP__TYPE_QUEUE) == 0)
      (void)mp__queue_users_add(q, (int32_t)child);
}

static void atfork_prepare(void) {
  pthread_mutex_lock(&handles_lock);
}

static void atfork_parent(void) {
  pid_t child = handles != NULL ? mp__os_newest_child() : -1;
  if (child > 0)
    enter_child_locked(child);
  pthread_mutex_unlock(&handles_lock);
}

static void atfork_child(void) {
  int32_t pid = (int32_t)getpid();
  bool any = false;
  mp__fault(MP__FAULT_QUEUE_CHILD_ENTER, NULL);
  for (mp_queue *q = handles; q != NULL; q = q->next) {
    any = true;
    /* Another thread of the parent may have held it at the fork. */
    pthread_mutex_init(&q->maps_lock, NULL);
    if (mp__object_check(q->s, MP__TYPE_QUEUE) == 0) {
      /* The child may be in another PID namespace than its parent (one
       * that called unshare): it looks its own up. */
      q->ns = mp__queue_ns_index(q->s);
      q->tag = mp__queue_make_tag(q);
      q->slot = mp__queue_users_add(q, pid);
    }
  }
  if (any && mp__os_barrier_register() != 0) {
    for (mp_queue *q = handles; q != NULL; q = q->next) {
      q->fence = true;
      atomic_store(&q->s->fence_needed, 1);
    }
  }
  pthread_mutex_unlock(&handles_lock);
}

static void child_forked(pid_t child) {
  pthread_mutex_lock(&handles_lock);
  enter_child_locked(child);
  pthread_mutex_unlock(&handles_lock);
}

static void install_atfork(void) {
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  mp__os_fork_observe(child_forked);
}

static void handles_add(mp_queue *q) {
  pthread_once(&atfork_once, install_atfork);
  pthread_mutex_lock(&handles_lock);
  q->next = handles;
  handles = q;
  pthread_mutex_unlock(&handles_lock);
}

static void handles_remove(mp_queue *q) {
  pthread_mutex_lock(&handles_lock);
  for (mp_queue **pp = &handles; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == q) {
      *pp = q->next;
      break;
    }
  }
  pthread_mutex_unlock(&handles_lock);
}

/* ---- layout --------------------------------------------------------------
 * plan turns options into the numbers stored in the header; check_layout
 * recomputes the same from a header read from shared memory. One function
 * for both keeps them from drifting apart. */
typedef struct plan {
  uint8_t order;
  uint8_t lease;
  uint64_t lease_off, lease_size;
  uint64_t capacity, maxsize, inline_max, max_message;
  uint32_t nslots, slot_size;
  int64_t spin_ns;
  uint64_t ring_off, index_off, total;
} plan;

static uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

static uint64_t pow2_at_least(uint64_t v) {
  uint64_t p = 1;
  while (p < v)
    p <<= 1;
  return p;
}

static void plan_offsets(plan *p) {
  uint64_t base = align_up(sizeof(mp__qshared), MP__QUEUE_LINE);
  if (p->order == MP_QUEUE_FIFO) {
    p->index_off = 0;
    p->ring_off = base;
    p->total = base + p->capacity;
  } else {
    p->index_off = base;
    p->ring_off = align_up(base + 2ull * 4 * p->nslots, MP__QUEUE_LINE);
    p->total = p->ring_off + (uint64_t)p->nslots * p->slot_size;
  }
  if (p->lease) {
    p->lease_size = align_up(sizeof(mp__qlease) + p->inline_max, 8);
    p->lease_off = align_up(p->total, MP__QUEUE_LINE);
    p->total = p->lease_off + MP_QUEUE_LEASES * p->lease_size;
  } else {
    p->lease_off = p->lease_size = 0;
  }
  /* Whole lines, so that queues placed one after another stay aligned. */
  p->total = align_up(p->total, MP__QUEUE_LINE);
}

static int make_plan(const mp_queue_opts *o, plan *p) {
  memset(p, 0, sizeof *p);
  if ((unsigned)o->order > MP_QUEUE_PRIORITY)
    return mp__fail(MP_EINVAL, "order is not FIFO, LIFO or PRIORITY");
  p->order = (uint8_t)o->order;
  p->maxsize = o->maxsize;
  p->max_message = o->max_message ? o->max_message : MP_QUEUE_MESSAGE_MAX;
  if (p->max_message > MP_QUEUE_MESSAGE_MAX)
    return mp__fail(MP_EINVAL, "max_message is over MP_QUEUE_MESSAGE_MAX");
  if (o->capacity > MP_QUEUE_MAX_CAPACITY)
    return mp__fail(MP_EINVAL, "capacity is over MP_QUEUE_MAX_CAPACITY");
  if (o->inline_max > UINT32_MAX / 2)
    return mp__fail(MP_EINVAL, "inline_max is too large");
  if (o->inline_max != 0 && o->inline_max < MP__QUEUE_INLINE_MIN)
    return mp__fail(MP_EINVAL, "inline_max is below %u",
                    (unsigned)MP__QUEUE_INLINE_MIN);
  if (o->spin_ns < 0)
    p->spin_ns = 0;
  else
    p->spin_ns = o->spin_ns == 0 ? MP_QUEUE_DEFAULT_SPIN_NS
                                 : MP__MIN(o->spin_ns, SPIN_MAX_NS);
  uint64_t inl;
  if (p->order == MP_QUEUE_FIFO) {
    uint64_t cap = o->capacity ? o->capacity : MP_QUEUE_DEFAULT_CAPACITY;
    cap = pow2_at_least(MP__MAX(cap, MP_QUEUE_MIN_CAPACITY));
    p->capacity = cap;
    inl = o->inline_max ? o->inline_max : cap / 4;
    if (inl > cap / 4)
      return mp__fail(MP_EINVAL, "inline_max is over a quarter of capacity");
  } else {
    inl = o->inline_max ? o->inline_max : HEAP_INLINE_DEFAULT;
  }
  /* No message is ever stored beyond max_message, so no slot or ring
   * space needs to be: but a large message's reference always fits. */
  inl = MP__MIN(inl, p->max_message);
  inl = MP__MAX(inl, MP__QUEUE_INLINE_MIN);
  p->inline_max = inl;
  if (o->lease && p->order != MP_QUEUE_FIFO)
    return mp__fail(MP_EINVAL, "lease mode needs a FIFO queue");
  p->lease = o->lease != 0;
  if (p->order != MP_QUEUE_FIFO) {
    p->slot_size = (uint32_t)align_up(sizeof(mp__qslot) + inl, 8);
    uint64_t n;
    if (o->capacity)
      n = o->capacity / p->slot_size;
    else if (o->maxsize)
      n = o->maxsize;
    else
      n = MP_QUEUE_DEFAULT_CAPACITY / p->slot_size;
    if (o->maxsize && o->maxsize < n)
      n = o->maxsize;
    n = MP__MIN(n, MP_QUEUE_MAX_CAPACITY / p->slot_size);
    if (n == 0)
      return mp__fail(MP_EINVAL, "capacity holds no slot of inline_max bytes");
    p->nslots = (uint32_t)n;
    p->capacity = n * p->slot_size;
  }
  plan_offsets(p);
  return 0;
}

/* check_layout: is the header h (a private copy) a queue layout this
 * library made, fitting in avail bytes? */
static bool check_layout(const mp__qshared *h, uint64_t avail) {
  plan p = {.order = h->order,
            .lease = h->lease,
            .inline_max = h->inline_max,
            .capacity = h->capacity,
            .nslots = h->nslots,
            .slot_size = h->slot_size};
  if (h->order > MP_QUEUE_PRIORITY || h->max_message == 0 ||
      h->max_message > MP_QUEUE_MESSAGE_MAX ||
      h->inline_max < MP__QUEUE_INLINE_MIN ||
      h->inline_max > h->max_message + MP__QUEUE_INLINE_MIN || h->spin_ns < 0 ||
      h->spin_ns > SPIN_MAX_NS || h->joinable > 1 || h->lease > 1 ||
      (h->lease && h->order != MP_QUEUE_FIFO))
    return false;
  if (h->order == MP_QUEUE_FIFO) {
    if (h->capacity < MP_QUEUE_MIN_CAPACITY ||
        h->capacity > MP_QUEUE_MAX_CAPACITY ||
        (h->capacity & (h->capacity - 1)) != 0 ||
        h->inline_max > h->capacity / 4 || h->nslots != 0)
      return false;
  } else {
    if (h->inline_max > UINT32_MAX / 2 || h->nslots == 0 ||
        h->slot_size != align_up(sizeof(mp__qslot) + h->inline_max, 8) ||
        (uint64_t)h->nslots * h->slot_size > MP_QUEUE_MAX_CAPACITY ||
        h->capacity != (uint64_t)h->nslots * h->slot_size)
      return false;
  }
  plan_offsets(&p);
  return p.ring_off == h->ring_off && p.index_off == h->index_off &&
         p.lease_off == h->lease_off && p.lease_size == h->lease_size &&
         p.total == h->total_size && p.total <= avail;
}

/* ---- handles --------------------------------------------------------------
 */

static void prefix_of(mp_queue *q, const char *name, uint64_t id) {
  if (name != NULL)
    snprintf(q->prefix, sizeof q->prefix, NAME_PREFIX "%s", name);
  else
    snprintf(q->prefix, sizeof q->prefix, NAME_PREFIX "q-%016llx",
             (unsigned long long)id);
}

/* handle_fill copies what bounds every access from the (checked) header
 * copy h into q, for the shared state at s. */
static void handle_fill(mp_queue *q, mp__qshared *s, const mp__qshared *h) {
  q->s = s;
  q->order = h->order;
  q->joinable = h->joinable != 0;
  q->ring = (unsigned char *)s + h->ring_off;
  if (h->order == MP_QUEUE_FIFO) {
    q->cap = (uint32_t)h->capacity;
    q->mask = q->cap - 1;
  } else {
    q->nslots = h->nslots;
    q->slot_size = h->slot_size;
    q->slot_payload = h->slot_size - (uint32_t)sizeof(mp__qslot);
    q->heap = (uint32_t *)(void *)((unsigned char *)s + h->index_off);
    q->freestk = q->heap + h->nslots;
  }
  q->lease = h->lease != 0;
  if (q->lease) {
    q->leases = (unsigned char *)s + h->lease_off;
    q->lease_size = (uint32_t)h->lease_size;
  }
  q->maxsize = h->maxsize ? h->maxsize : UINT64_MAX;
  q->inline_max = h->inline_max;
  q->max_message = h->max_message;
  q->spin_ns = h->spin_ns;
}

/* handle_join enters this process as a user of the queue: the table of
 * users, the heavy barrier, the list of handles. */
static void handle_join(mp_queue *q) {
  q->ns = mp__queue_ns_index(q->s);
  q->tag = mp__queue_make_tag(q);
  q->slot = mp__queue_users_add(q, (int32_t)getpid());
  if (mp__os_barrier_register() != 0) {
    q->fence = true;
    atomic_store(&q->s->fence_needed, 1);
  }
  handles_add(q);
}

static int state_init(mp__qshared *s, const plan *p, uint8_t origin,
                      bool joinable) {
  memset(s, 0, sizeof *s);
  s->head.type = MP__TYPE_QUEUE;
  s->head.version = MP__LAYOUT_VERSION;
  s->head.origin = origin;
  s->seg_magic = MP__QUEUE_MAGIC;
  s->order = p->order;
  s->joinable = joinable ? 1 : 0;
  s->total_size = p->total;
  while (s->id == 0)
    if (mp__os_random(&s->id, sizeof s->id) != 0)
      s->id = (uint64_t)mp__os_now_ns() ^ ((uint64_t)getpid() << 40);
  s->capacity = p->capacity;
  s->nslots = p->nslots;
  s->slot_size = p->slot_size;
  s->maxsize = p->maxsize;
  s->inline_max = p->inline_max;
  s->max_message = p->max_message;
  s->spin_ns = p->spin_ns;
  s->ring_off = p->ring_off;
  s->index_off = p->index_off;
  s->lease = p->lease;
  s->lease_off = p->lease_off;
  s->lease_size = p->lease_size;
  s->creator_pid = (int32_t)getpid();
  if (p->order != MP_QUEUE_FIFO) {
    /* All slots free: the stack holds every index. Its order is the
     * order slots are used in, so the first slots are used first. */
    uint32_t *freestk =
        (uint32_t *)(void *)((unsigned char *)s + p->index_off) + p->nslots;
    for (uint32_t i = 0; i < p->nslots; i++)
      freestk[i] = p->nslots - 1 - i;
    s->free_top = p->nslots;
  }
  return 0;
}

static void state_publish(mp__qshared *s) {
  /* The magic goes last: an opener never sees a half-made queue. */
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, MP__OBJECT_MAGIC,
                        memory_order_release);
}

static uint32_t count_now(mp_queue *q);

static mp_queue *handle_alloc(void) {
  mp_queue *q = mp__calloc(1, sizeof *q);
  if (q != NULL) {
    mp__qlarge_maps_init(q);
    q->large_count = count_now; /* for queue_large.c's wait for a segment */
  }
  return q;
}

/* ---- the guard ----------------------------------------------------------
 * An anonymous queue is used by its creator and the processes it forks
 * afterwards: the resource tracker's tree (resource_tracker.c). So the
 * creator registers "<prefix>+" (an empty segment) with the tracker, the
 * guard of a family: once every process of the tree has ended, however
 * (freed, exited without freeing, killed), the tracker removes the guard
 * and every segment of the queue's large messages with it, queued, kept
 * or half written. The last user's free, which removes them itself,
 * unregisters the guard; a process that frees its handle while others
 * still use the queue only takes the guard off its own list. Best effort:
 * where no tracker can run, the queue works as before, and only the death
 * of every user leaves its segments (live users' sweeps still remove a
 * dead producer's).
 *
 * A named queue's users may belong to several trees, and a process that
 * opens it later may want what is queued. So each process that makes or
 * opens one registers its tree's "<prefix>+=<tracker>", a hard link to
 * the queue's segment, with its tracker. When a tree has ended, its
 * tracker removes its link, and the whole family with it only when the
 * name no longer reaches the queue and the queue's table of users names
 * no process that may still run. The free of the last user of a queue
 * nobody can reach by its name any more removes the segments itself, and
 * the links of the trees that have ended. */
static void guard_start(mp_queue *q) {
  char name[sizeof q->guard];
  snprintf(name, sizeof name, "%s+", q->prefix);
  int fd;
  if (mp__tracker_create(name, 0, &fd) != 0)
    return;
  close(fd);
  if (mp__tracker_register(name, 0) != 0) {
    mp__os_shm_unlink(name);
    mp__tracker_unregister(name);
    return;
  }
  memcpy(q->guard, name, sizeof name);
}

/* link_start: a named queue's handle, its segment open as fd, records the
 * segment's inode (name_reaches) and registers the tree's link to it. */
static void link_start(mp_queue *q, int fd) {
  struct stat st;
  if (fstat(fd, &st) == 0)
    q->ino = (uint64_t)st.st_ino;
  char name[sizeof q->guard];
  if (mp__tracker_link(fd, q->prefix, name, sizeof name) == 0)
    memcpy(q->guard, name, sizeof name);
}

/* name_reaches: does the name still open this queue? Unknown: yes. */
static bool name_reaches(mp_queue *q) {
  uint64_t ino;
  int rc = mp__os_shm_inode(q->shm_name, &ino);
  if (rc == MP_ENOENT)
    return false;
  return rc != 0 || q->ino == 0 || ino == q->ino;
}

/* link_one: the last user of a named queue nobody can reach removes
 * every tree's link, its own and those of trees that have ended. */
static int link_one(const char *name, void *arg) {
  const mp_queue *q = arg;
  size_t n = strlen(q->prefix);
  bool mine = false;
  if (strncmp(name, q->prefix, n) == 0 && name[n] == '+' &&
      name[n + 1] == '=' && mp__os_shm_mine(name, &mine) == 0 && mine)
    mp__os_shm_unlink(name);
  return 0;
}

static void guard_end(mp_queue *q, bool last) {
  bool named = q->origin == MP__ORIGIN_NAMED;
  if (last && named) /* this tree's link with the others */
    (void)mp__os_shm_list(link_one, q);
  if (q->guard[0] == '\0')
    return;
  if (last) {
    if (!named)
      mp__os_shm_unlink(q->guard);
    mp__tracker_unregister(q->guard);
  } else {
    mp__tracker_forget(q->guard);
  }
  q->guard[0] = '\0';
}

int mp_queue_new(mp_queue **out, const mp_queue_opts *opts) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  mp_queue_opts o = opts != NULL ? *opts : (mp_queue_opts){0};
  plan p;
  int rc = make_plan(&o, &p);
  if (rc != 0)
    return rc;
  if (o.name != NULL && (rc = mp__object_name_valid(o.name)) != 0)
    return rc;
  mp_queue *q = handle_alloc();
  if (q == NULL)
    return MP_ENOMEM;
  size_t page = mp__os_page_size();
  q->map_size = (size_t)align_up(p.total, page);
  int fd = -1;
  if (o.name != NULL) {
    snprintf(q->shm_name, sizeof q->shm_name, NAME_PREFIX "%s", o.name);
    if ((rc = mp__tracker_create(q->shm_name, q->map_size, &fd)) != 0) {
      mp__free(q);
      return rc;
    }
  }
  rc = mp__os_map_shared(fd, q->map_size, &q->map);
  if (rc == 0 && o.name != NULL)
    rc = mp__tracker_register(q->shm_name, q->map_size);
  if (rc == 0)
    rc = state_init(q->map, &p,
                    o.name != NULL ? MP__ORIGIN_NAMED : MP__ORIGIN_ANON,
                    o.joinable != 0);
  if (rc != 0) {
    if (q->map != NULL)
      mp__os_unmap(q->map, q->map_size);
    if (o.name != NULL) {
      close(fd);
      mp__os_shm_unlink(q->shm_name);
      mp__tracker_unregister(q->shm_name);
    }
    mp__free(q);
    return rc;
  }
  mp__qshared *s = q->map;
  q->origin = s->head.origin;
  handle_fill(q, s, s);
  prefix_of(q, o.name, s->id);
  state_publish(s);
  if (o.name != NULL) {
    q->creator = getpid();
    link_start(q, fd);
    close(fd);
  } else {
    guard_start(q);
  }
  handle_join(q);
  *out = q;
  return 0;
}

int mp_simple_queue_new(mp_queue **out) {
  return mp_queue_new(out, NULL);
}

int mp_joinable_queue_new(mp_queue **out, size_t maxsize) {
  return mp_queue_new(out, &(mp_queue_opts){.maxsize = maxsize, .joinable = 1});
}

/* check_dynamic: are the words that change plausible right now? */
static bool check_dynamic(mp_queue *q) {
  if (q->order == MP_QUEUE_FIFO)
    return mp__qfifo_valid(q);
  return mp__qheap_valid(q);
}

/* attach_checked: a handle onto the queue at s (avail bytes), which another
 * process made with the given origin. */
static int attach_checked(mp_queue *q, mp__qshared *s, uint64_t avail,
                          uint8_t origin) {
  if (avail < sizeof(mp__qshared))
    return mp__fail(MP_ECORRUPT, "segment smaller than a queue header");
  uint32_t magic = atomic_load_explicit((_Atomic uint32_t *)&s->head.magic,
                                        memory_order_acquire);
  /* Read the header once, into private memory: another program may be
   * changing it, and only this copy is checked and used. */
  mp__qshared h;
  memcpy(&h, s, sizeof h);
  if (magic != MP__OBJECT_MAGIC || h.seg_magic != MP__QUEUE_MAGIC ||
      h.head.type != MP__TYPE_QUEUE || h.head.version != MP__LAYOUT_VERSION ||
      h.head.origin != origin)
    return mp__fail(MP_ECORRUPT, "not a queue of this library (magic, type, "
                                 "version or origin)");
  if (!check_layout(&h, avail))
    return mp__fail(MP_ECORRUPT, "queue header: sizes or offsets do not "
                                 "agree with the segment");
  q->origin = origin;
  handle_fill(q, s, &h);
  if (!check_dynamic(q))
    return mp__fail(MP_ECORRUPT, "queue positions or counts out of range");
  return 0;
}

int mp_queue_open(mp_queue **out, const char *name) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  int rc = mp__object_name_valid(name);
  if (rc != 0)
    return rc;
  mp_queue *q = handle_alloc();
  if (q == NULL)
    return MP_ENOMEM;
  snprintf(q->shm_name, sizeof q->shm_name, NAME_PREFIX "%s", name);
  int fd;
  size_t size;
  if ((rc = mp__os_shm_open(q->shm_name, &fd, &size)) != 0) {
    mp__free(q);
    return rc;
  }
  /* Sizes first: never map (or touch) less than a header. */
  if (size < sizeof(mp__qshared) || size % mp__os_page_size() != 0 ||
      size > MP_QUEUE_MAX_CAPACITY + (64u << 20)) {
    close(fd);
    mp__free(q);
    return mp__fail(MP_ECORRUPT, "segment size is not a queue's");
  }
  rc = mp__os_map_shared(fd, size, &q->map);
  if (rc != 0) {
    close(fd);
    mp__free(q);
    return rc;
  }
  q->map_size = size;
  rc = attach_checked(q, q->map, size, MP__ORIGIN_NAMED);
  /* The whole mapping is the queue's: a segment longer than the layout
   * needs (rounded to a page) is someone else's doing. */
  if (rc == 0 && align_up(q->s->total_size, mp__os_page_size()) != size)
    rc = mp__fail(MP_ECORRUPT, "segment longer than its queue");
  if (rc != 0) {
    close(fd);
    mp__os_unmap(q->map, size);
    mp__free(q);
    return rc;
  }
  prefix_of(q, name, 0);
  link_start(q, fd);
  close(fd);
  handle_join(q);
  *out = q;
  return 0;
}

ssize_t mp_queue_size_for(const mp_queue_opts *opts) {
  mp_queue_opts o = opts != NULL ? *opts : (mp_queue_opts){0};
  plan p;
  if (o.name != NULL)
    return mp__fail(MP_EINVAL, "a queue in place has no name");
  if (make_plan(&o, &p) != 0)
    return MP_EINVAL; /* make_plan said why */
  return (ssize_t)p.total;
}

int mp_queue_init(mp_queue **out, void *mem, size_t size,
                  const mp_queue_opts *opts) {
  mp_queue_opts o = opts != NULL ? *opts : (mp_queue_opts){0};
  if (out == NULL || mem == NULL || (uintptr_t)mem % MP_QUEUE_ALIGN != 0 ||
      o.name != NULL)
    return mp__fail(MP_EINVAL,
                    "out or mem is NULL, mem is not MP_QUEUE_ALIGN-aligned, "
                    "or opts has a name (a queue in place has none)");
  plan p;
  int rc = make_plan(&o, &p);
  if (rc != 0)
    return rc;
  if (size < p.total)
    return MP_ERANGE;
  mp_queue *q = handle_alloc();
  if (q == NULL)
    return MP_ENOMEM;
  mp__qshared *s = mem;
  /* Not a queue while it is being made, whatever it was before. */
  atomic_store((_Atomic uint32_t *)&s->head.magic, 0);
  if ((rc = state_init(s, &p, MP__ORIGIN_INPLACE, o.joinable != 0)) != 0) {
    mp__free(q);
    return rc;
  }
  q->origin = MP__ORIGIN_INPLACE;
  handle_fill(q, s, s);
  prefix_of(q, NULL, s->id);
  state_publish(s);
  handle_join(q);
  *out = q;
  return 0;
}

int mp_queue_attach(mp_queue **out, void *mem, size_t size) {
  if (out == NULL || mem == NULL || (uintptr_t)mem % MP_QUEUE_ALIGN != 0)
    return mp__fail(MP_EINVAL,
                    "out or mem is NULL, or mem is not "
                    "MP_QUEUE_ALIGN-aligned");
  mp_queue *q = handle_alloc();
  if (q == NULL)
    return MP_ENOMEM;
  int rc = attach_checked(q, mem, size, MP__ORIGIN_INPLACE);
  if (rc != 0) {
    mp__free(q);
    return rc;
  }
  uint64_t id;
  memcpy(&id, &((mp__qshared *)mem)->id, sizeof id);
  prefix_of(q, NULL, id);
  handle_join(q);
  *out = q;
  return 0;
}

/* discard empties the queue and removes the segments of its large
 * messages, and any orphaned ones: for the last user, or destroy. False
 * when it could not take the locks in time (nothing was done). */
static bool discard(mp_queue *q) {
  bool rec = false;
  /* Bounded: a holder that is alive but stopped (or of another PID
   * namespace) must not hang a free; the segments are then left to a
   * later sweep. */
  mp__deadline dl = mp__deadline_from_timeout(DISCARD_WAIT_S);
  const mp__deadline *d = &dl;
  if (q->order == MP_QUEUE_FIFO) {
    /* Both locks: no producer may commit a large message while its
     * segments are being removed. Lock order: plock, then clock. */
    if (mp__queue_lock(q, &q->s->plock, &rec, d) != 0)
      return false;
    if (mp__queue_lock(q, &q->s->clock, &rec, d) != 0) {
      mp__queue_unlock(q, &q->s->plock);
      return false;
    }
    mp__qlarge_recover(q, mp__qfifo_queued);
    mp__qfifo_for_each_large(q, mp__qlarge_unlink, NULL, true);
    if (q->lease)
      for (int i = 0; i < MP_QUEUE_LEASES; i++)
        mp__qlease_release(q, i);
    mp__qlarge_sweep(q, NULL);
    mp__qlarge_drop_spares(q);
    mp__queue_unlock(q, &q->s->clock);
    mp__queue_unlock(q, &q->s->plock);
  } else {
    if (mp__queue_lock(q, &q->s->plock, &rec, d) != 0)
      return false;
    if (rec)
      mp__qheap_repair(q, true);
    mp__qheap_for_each_large(q, mp__qlarge_unlink, NULL, true);
    mp__qlarge_sweep(q, NULL);
    mp__qlarge_drop_spares(q);
    mp__queue_unlock(q, &q->s->plock);
  }
  return true;
}

void mp__queue_sweep(mp_queue *q) {
  bool rec = false;
  /* A sweep is a favour to others: it never waits for a lock. */
  const mp__deadline poll = {.ns = 0, .poll = true};
  const mp__deadline *d = &poll;
  if (q->order == MP_QUEUE_FIFO) {
    if (mp__queue_lock(q, &q->s->clock, &rec, d) != 0)
      return;
    if (rec)
      mp__qlarge_recover(q, mp__qfifo_queued);
    mp__qlarge_sweep(q, mp__qfifo_queued);
    mp__queue_unlock(q, &q->s->clock);
  } else {
    if (mp__queue_lock(q, &q->s->plock, &rec, d) != 0)
      return;
    if (rec)
      mp__qheap_repair(q, true);
    else
      mp__qlarge_sweep(q, mp__qheap_queued);
    mp__queue_unlock(q, &q->s->plock);
  }
}

static void handle_release(mp_queue *q) {
  handles_remove(q);
  mp__qlarge_maps_drop(q);
  if (q->map != NULL)
    mp__os_unmap(q->map, q->map_size);
  mp__free(q);
}

void mp_queue_free(mp_queue *q) {
  if (q == NULL)
    return;
  mp__qshared *s = q->s;
  int32_t me = (int32_t)getpid();
  bool last = false;
  if (mp__object_check(s, MP__TYPE_QUEUE) == 0) {
    mp__queue_users_remove(q, me);
    /* The last user of a queue nobody can reach again takes what is left
     * with it. An in-place queue's memory outlives the handle: only
     * destroy empties it. A named queue stays reachable until its name
     * is gone (the creator's free or tracker unlinks it). */
    bool unreachable = q->origin == MP__ORIGIN_ANON ||
                       (q->origin == MP__ORIGIN_NAMED &&
                        (q->creator == getpid() || !name_reaches(q)));
    /* A discard that could not take the locks leaves the segments to the
     * tracker: the guard stays registered for the tree. */
    if (unreachable && !mp__queue_users_others_alive(q, me))
      last = discard(q);
  }
  guard_end(q, last);
  if (q->origin == MP__ORIGIN_NAMED && q->creator == getpid()) {
    /* A forked child has a copy of the handle but did not create it. */
    mp__os_shm_unlink(q->shm_name);
    mp__tracker_unregister(q->shm_name);
  }
  handle_release(q);
}

int mp_queue_destroy(mp_queue *q) {
  if (q == NULL)
    return mp__fail(MP_EINVAL, "q is NULL");
  if (q->origin != MP__ORIGIN_INPLACE)
    return mp__fail(MP_EINVAL, "not a queue made in place (mp_queue_init)");
  if (mp__object_check(q->s, MP__TYPE_QUEUE) != 0)
    return MP_EINVAL; /* mp__object_check said why */
  mp_queue_close(q);
  (void)discard(q); /* what it could not take is a later sweep's */
  atomic_store_explicit((_Atomic uint32_t *)&q->s->head.magic, 0,
                        memory_order_release);
  handle_release(q);
  return 0;
}

/* bad_timeout: the check every call that takes a timeout makes first. */
static int bad_timeout(double timeout) {
  return isnan(timeout) ? mp__fail(MP_EINVAL, "timeout is NaN") : 0;
}

static inline mp__deadline deadline_of(double timeout) {
  /* Timeout 0 never waits, a negative one (MP_FOREVER) never ends: no
   * clock read, and no call, is needed for them. */
  if (timeout == 0)
    return (mp__deadline){.ns = 0, .poll = true};
  if (timeout < 0)
    return (mp__deadline){.ns = INT64_MAX, .poll = false};
  return mp__deadline_from_timeout(timeout);
}

/* is_closed: was close called (puts refuse)? */
static bool is_closed(mp_queue *q) {
  return atomic_load_explicit(&q->s->closed, memory_order_acquire) != 0;
}

/* plock_repair: what the taker of plock from a dead holder repairs when
 * it does not go on to put or get (close, the close's settling). */
static void plock_repair(mp_queue *q) {
  if (q->order == MP_QUEUE_FIFO) {
    q->s->head_cache = atomic_load_explicit(&q->s->headw, memory_order_acquire);
    q->s->tail_own = atomic_load_explicit(&q->s->tail, memory_order_relaxed);
  } else
    mp__qheap_repair(q, true);
}

/* settle_close: a queue closing (close was called while a producer held
 * plock) becomes closed for gets when plock is released. A holder that
 * died never releases it: then take it over (never waiting) and release
 * it. A live holder's own release settles it. */
static void settle_close(mp_queue *q) {
  uint64_t cur = atomic_load_explicit(&q->s->plock.owner, memory_order_acquire);
  /* A bias is kept between calls, not held: the lock takes it away. */
  if (cur != 0 && !(cur & MP__QLOCK_BIAS) && !mp__queue_holder_dead(q, cur))
    return;
  bool rec = false;
  const mp__deadline poll = {.ns = 0, .poll = true};
  if (mp__queue_lock(q, &q->s->plock, &rec, &poll) == 0) {
    if (rec)
      plock_repair(q);
    mp__queue_unlock(q, &q->s->plock);
  }
}

/* closed_for_gets: has every put that may still commit committed? */
static bool closed_for_gets(mp_queue *q) {
  uint32_t c = atomic_load_explicit(&q->s->closed, memory_order_acquire);
  if (c == MP__QUEUE_CLOSING) {
    settle_close(q);
    c = atomic_load_explicit(&q->s->closed, memory_order_acquire);
  }
  return c == MP__QUEUE_CLOSED;
}

static uint32_t count_now(mp_queue *q) {
  return q->order == MP_QUEUE_FIFO ? mp__qfifo_count(q) : mp__qheap_count(q);
}

static bool ready_data(mp_queue *q, void *arg) {
  (void)arg;
  if (q->order == MP_QUEUE_FIFO)
    return mp__qfifo_ready(q) || closed_for_gets(q);
  return count_now(q) > 0 || closed_for_gets(q);
}

/* The room a put waits for: bytes (FIFO) and a count below maxsize. */
static bool ready_room(mp_queue *q, void *arg) {
  uint32_t rec = *(const uint32_t *)arg;
  if (is_closed(q))
    return true;
  if (count_now(q) >= MP__MIN(q->maxsize, (uint64_t)UINT32_MAX))
    return false;
  if (q->order == MP_QUEUE_FIFO)
    return mp__qfifo_has_room(q, rec);
  return count_now(q) < q->nslots;
}

static int put_stored(mp_queue *q, const mp__qput *m, mp__deadline d);

/* Waiting for room, paced. A producer that finds the queue full while it
 * holds PACE_QUEUED messages or more is ahead of its consumers, who have
 * work queued for longer than PACE_LOOK_NS however fast they are (1024
 * batched 64-byte gets took 10 us or more here). Each look at the room loads
 * the consumers' head word, and the consumer's next store of it must
 * take the line back: spinning on it, the producer made the slower side
 * pay a line transfer a message (a 64-byte stream took 88 ns a message,
 * median of 11 runs; looking every 2 us, 63-66 ns; every 1, 2, 4, 8 us
 * in another hour, 48, 41, 40, 39 ns, and with 16 loads of work a
 * message in the consumer 62, 55, 50, 49). So such a producer looks
 * every PACE_LOOK_NS, and then finds room for the tens of messages freed
 * meanwhile, written in a burst. A queue holding fewer messages (small
 * maxsize, large messages) is watched at every pause, as before; the
 * sleep that follows a spin is unchanged. */
#define PACE_QUEUED 1024u
#define PACE_LOOK_NS 4000

/* wait_room waits until a record of rec stored bytes may fit (0: ready,
 * the caller tries again; else the wait's error). */
static int wait_room(mp_queue *q, uint32_t rec, mp__deadline d) {
  int64_t look = count_now(q) >= PACE_QUEUED ? PACE_LOOK_NS : 0;
  return mp__queue_wait_paced(q, &q->s->not_full, ready_room, &rec, d, look);
}

/* lease_settle settles entry idx, claimed (step 3) from a dead holder whose
 * word was was. */
static void lease_settle(mp_queue *q, int idx, uint64_t was) {
  mp__qlease *e = mp__qlease_at(q, idx);
  uint32_t step = (uint32_t)(was & 3u);
  uint32_t head = (uint32_t)(atomic_load(&q->s->headw) >> 32);
  bool committed =
      step != MP__LEASE_STEP_WRITING && (int32_t)(head - e->head_cnt) >= 0;
  if (!committed) {
    atomic_store(&e->state, 0);
    return;
  }
  uint32_t len = e->len;
  uint16_t kind = e->kind;
  bool ok = (kind == MP__REC_INLINE && len <= q->inline_max) ||
            (kind == MP__REC_LARGE && len == sizeof(mp__qlarge_ref));
  if (!ok) {
    atomic_store(&e->state, 0); /* damaged from outside */
    return;
  }
  /* A private copy: what is checked is what is put. */
  unsigned char small[256];
  unsigned char *copy = len <= sizeof small ? small : mp__alloc(len);
  if (copy == NULL) {
    atomic_store(&e->state, was); /* the next one tries again */
    return;
  }
  memcpy(copy, e + 1, len);
  mp__qput m = {.data = copy, .len = len, .kind = kind};
  const mp__deadline poll = {.ns = 0, .poll = true};
  int rc = put_stored(q, &m, poll);
  if (copy != small)
    mp__free(copy);
  if (rc == 0 || rc == MP_ECLOSED || rc == MP_ECORRUPT) {
    /* Queued again; or it cannot be any more (closed: the message is
     * lost as any unacked one of a closed queue). */
    if (rc != 0)
      mp__qlease_release(q, idx);
    else
      atomic_store(&e->state, 0);
    return;
  }
  atomic_store(&e->state, was); /* full now: the next one tries again */
}

/* lease_reclaim puts back the messages of dead holders' leases. Cheap
 * when there are none: one load per entry. */
static void lease_reclaim(mp_queue *q) {
  uint32_t me = mp__queue_tag(q);
  for (int i = 0; i < MP_QUEUE_LEASES; i++) {
    mp__qlease *e = mp__qlease_at(q, i);
    uint64_t st = atomic_load_explicit(&e->state, memory_order_acquire);
    if (st == 0 || (uint32_t)(st >> 32) == me ||
        !mp__queue_tag_gone(q, (uint32_t)(st >> 32)))
      continue;
    uint64_t settling = ((uint64_t)me << 32) | MP__LEASE_STEP_SETTLING;
    if (atomic_compare_exchange_strong(&e->state, &st, settling))
      lease_settle(q, i, st);
  }
}

int mp_queue_ack(mp_queue *q, uint64_t lease) {
  int rc = q != NULL ? mp__object_check(q->s, MP__TYPE_QUEUE) : MP_EINVAL;
  if (rc != 0)
    return rc;
  if (!q->lease)
    return mp__fail(MP_EINVAL, "not a lease-mode queue");
  uint64_t held = ((uint64_t)mp__queue_tag(q) << 32) | MP__LEASE_STEP_HELD;
  for (int i = 0; i < MP_QUEUE_LEASES; i++) {
    mp__qlease *e = mp__qlease_at(q, i);
    if (lease != 0 && (lease & 0xff) != (uint64_t)(i + 1))
      continue;
    if (atomic_load(&e->state) != held ||
        (lease != 0 && (lease >> 8) != e->gen))
      continue;
    uint64_t cur = held;
    uint64_t busy =
        ((uint64_t)mp__queue_tag(q) << 32) | MP__LEASE_STEP_SETTLING;
    if (!atomic_compare_exchange_strong(&e->state, &cur, busy))
      continue;
    mp__qlease_release(q, i);
    return 0;
  }
  return mp__fail(MP_EINVAL, lease != 0 ? "not a lease this process holds"
                                        : "this process holds no lease");
}

/* ---- put
 * ---------------------------------------------------------------------- */

static inline __attribute__((always_inline)) int check_handle(mp_queue *q) {
  if (q == NULL)
    return mp__fail(MP_EINVAL, "queue is NULL");
  if (mp__object_check(q->s, MP__TYPE_QUEUE) != 0)
    return mp__fail(MP_EINVAL, "not a queue (destroyed?)");
  return 0;
}

static int try_put(mp_queue *q, const mp__deadline *d, const mp__qput *m,
                   size_t n, size_t *done) {
  return q->order == MP_QUEUE_FIFO ? mp__qfifo_try_put(q, d, m, n, done)
                                   : mp__qheap_try_put(q, d, m, n, done);
}

static uint32_t stored_bytes(mp_queue *q, const mp__qput *m) {
  return q->order == MP_QUEUE_FIFO ? mp__qfifo_put_bytes(q, m) : 0;
}

/* put_stored puts one stored message (inline or a large reference),
 * waiting for room until d. */
static int put_stored(mp_queue *q, const mp__qput *m, mp__deadline d) {
  /* Closed is told before a busy lock (the check under the lock is the
   * one that counts). */
  if (is_closed(q))
    return MP_ECLOSED;
  for (;;) {
    size_t done;
    int rc = try_put(q, &d, m, 1, &done);
    if (rc != MP_EAGAIN)
      return rc;
    rc = wait_room(q, stored_bytes(q, m), d);
    if (rc != 0)
      return rc;
  }
}

/* put_one puts one message of the caller's, waiting for room until d. */
static int put_one(mp_queue *q, int64_t prio, const void *buf, size_t len,
                   mp__deadline d) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (buf == NULL && len > 0)
    return mp__fail(MP_EINVAL, "invalid argument (buf == NULL && len > 0)");
  if (len > q->max_message)
    return MP_ETOOBIG;
  if (len <= q->inline_max) {
    mp__qput m = {.data = buf,
                  .len = (uint32_t)len,
                  .kind = MP__REC_INLINE,
                  .prio = prio};
    return put_stored(q, &m, d);
  }
  /* A large message: its bytes go to a segment of their own first (no
   * lock held: it may take a while), then a small record naming it is
   * queued as any message is. */
  if (is_closed(q))
    return MP_ECLOSED;
  if (mp__qlarge_sweep_due())
    mp__queue_sweep(q);
  mp__qlarge_ref ref;
  if ((rc = mp__qlarge_create(q, buf, len, &ref, d)) != 0)
    return rc;
  mp__qput m = {.data = &ref,
                .len = (uint32_t)sizeof ref,
                .kind = MP__REC_LARGE,
                .prio = prio};
  rc = put_stored(q, &m, d);
  if (rc != 0)
    mp__qlarge_abandon(q, &ref);
  return rc;
}

/* put_timed: put_one with the caller's timeout. */
static int put_timed(mp_queue *q, int64_t prio, const void *buf, size_t len,
                     double timeout) {
  int rc = bad_timeout(timeout);
  if (rc != 0)
    return rc;
  return put_one(q, prio, buf, len, deadline_of(timeout));
}

int mp_queue_put(mp_queue *q, const void *buf, size_t len, double timeout) {
  return put_timed(q, 0, buf, len, timeout);
}

int mp_queue_put_nowait(mp_queue *q, const void *buf, size_t len) {
  return put_one(q, 0, buf, len, deadline_of(0));
}

int mp_queue_put_priority(mp_queue *q, int64_t priority, const void *buf,
                          size_t len, double timeout) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (q->order != MP_QUEUE_PRIORITY)
    return mp__fail(MP_EINVAL, "not a priority queue");
  return put_timed(q, priority, buf, len, timeout);
}

/* ---- in-place put ----------------------------------------------------------
 * mp_queue_claim reserves the room (queue_fifo.c: the producers' lock is
 * held until the commit) and, for a large message, first makes its
 * segment, mapped writable with its memory reserved, and hands that out.
 * The claim is recorded in the handle by the lock holder only. */

/* claim_mine: does the calling thread hold an open claim on q? */
static bool claim_mine(mp_queue *q) {
  pid_t tid = atomic_load_explicit(&q->claim.tid, memory_order_relaxed);
  return tid != 0 && tid == mp__os_gettid();
}

int mp_queue_claim(mp_queue *q, size_t size, void **buf, double timeout) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (buf == NULL)
    return mp__fail(MP_EINVAL, "buf is NULL");
  if (q->order != MP_QUEUE_FIFO)
    return mp__fail(MP_EINVAL, "in-place put needs a FIFO queue");
  if (size > q->max_message)
    return MP_ETOOBIG;
  if ((rc = bad_timeout(timeout)) != 0)
    return rc;
  if (claim_mine(q))
    return mp__fail(MP_EDEADLK, "this thread already holds a claim");
  if (is_closed(q))
    return MP_ECLOSED;
  mp__deadline d = deadline_of(timeout);
  bool large = size > q->inline_max;
  mp__qlarge_ref ref = {0};
  void *map = NULL;
  size_t map_len = 0;
  int map_idx = -1;
  mp__qfill fill = {.way = -1};
  if (large) {
    if (mp__qlarge_sweep_due())
      mp__queue_sweep(q);
    if ((rc = mp__qlarge_create_mapped(q, size, &ref, &map, &map_len, &map_idx,
                                       &fill, d)) != 0)
      return rc;
  }
  mp__qput m = {.len = (uint32_t)(large ? sizeof ref : size),
                .kind = large ? MP__REC_LARGE : MP__REC_INLINE};
  uint32_t rec = stored_bytes(q, &m);
  for (;;) {
    rc = mp__qfifo_claim(q, &d, m.kind, m.len);
    if (rc != MP_EAGAIN)
      break;
    if ((rc = wait_room(q, rec, d)) != 0)
      break;
  }
  if (rc != 0) {
    if (large) {
      mp__qlarge_map_done(q, map_idx, map, map_len, true);
      mp__qlarge_abandon(q, &ref);
    }
    return rc;
  }
  /* plock is ours from here to the commit. */
  atomic_store_explicit(&q->claim.tid, mp__os_gettid(), memory_order_relaxed);
  q->claim.large = large;
  q->claim.size = size;
  q->claim.ref = ref;
  q->claim.map = map;
  q->claim.map_len = map_len;
  q->claim.map_idx = map_idx;
  /* The fill is timed from here, where the caller gets the room, with
   * the flush before it counted in. */
  fill.t0 = mp__os_now_ns() - fill.spent_ns;
  q->claim.fill = fill;
  *buf = large ? map : (void *)mp__qfifo_claim_payload(q);
  return 0;
}

int mp_queue_commit(mp_queue *q, size_t len) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (!claim_mine(q))
    return mp__fail(MP_EINVAL, "no claim of this thread on this queue");
  if (len > q->claim.size)
    return mp__fail(MP_EINVAL, "len is over the size claimed");
  if (q->claim.large && len <= q->inline_max)
    return mp__fail(MP_EINVAL, "a large claim commits more than inline_max "
                               "bytes (abandon it and put the message)");
  atomic_store_explicit(&q->claim.tid, 0, memory_order_relaxed);
  if (q->claim.large) {
    mp__qlarge_fill_done(&q->claim.fill, len);
    mp__qlarge_map_done(q, q->claim.map_idx, q->claim.map, q->claim.map_len,
                        false);
    mp__qlarge_ref ref = q->claim.ref;
    if (len != ref.size) {
      /* A shorter message in the same segment (the consumer accepts a
       * segment larger than its message). */
      mp__qlarge_ref shorter;
      mp__qlarge_reref(&ref, len, &shorter);
      ref = shorter;
    }
    mp__qfifo_commit(q, MP__REC_LARGE, &ref, (uint32_t)sizeof ref);
  } else {
    mp__qfifo_commit(q, MP__REC_INLINE, NULL, (uint32_t)len);
  }
  return 0;
}

int mp_queue_abandon(mp_queue *q) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (!claim_mine(q))
    return mp__fail(MP_EINVAL, "no claim of this thread on this queue");
  atomic_store_explicit(&q->claim.tid, 0, memory_order_relaxed);
  bool large = q->claim.large;
  mp__qlarge_ref ref = q->claim.ref;
  void *map = q->claim.map;
  size_t map_len = q->claim.map_len;
  int map_idx = q->claim.map_idx;
  mp__qfifo_abandon(q);
  if (large) {
    mp__qlarge_map_done(q, map_idx, map, map_len, true);
    mp__qlarge_abandon(q, &ref);
  }
  return 0;
}

#define BATCH_CHUNK 64

ssize_t mp_queue_put_batch(mp_queue *q, const void *buf, const size_t *lens,
                           size_t n, double timeout) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if ((n > 0 && lens == NULL) || n > SSIZE_MAX)
    return mp__fail(MP_EINVAL,
                    "invalid argument ((n > 0 && lens == NULL) || n > "
                    "SSIZE_MAX)");
  if ((rc = bad_timeout(timeout)) != 0)
    return rc;
  const unsigned char *p = buf;
  for (size_t i = 0; i < n; i++) {
    if (lens[i] > q->max_message)
      return MP_ETOOBIG;
    if (lens[i] > 0 && p == NULL)
      return mp__fail(MP_EINVAL, "invalid argument (lens[i] > 0 && p == NULL)");
  }
  mp__deadline d = deadline_of(timeout);
  size_t put = 0;
  mp__qput chunk[BATCH_CHUNK];
  while (put < n) {
    /* A run of inline messages goes in at once; a large one on its own. */
    if (lens[put] > q->inline_max) {
      rc = put_one(q, 0, p, lens[put], d);
      if (rc != 0)
        break;
      p += lens[put];
      put++;
      continue;
    }
    size_t k = 0;
    const unsigned char *at = p;
    while (put + k < n && k < BATCH_CHUNK && lens[put + k] <= q->inline_max) {
      chunk[k] = (mp__qput){
          .data = at, .len = (uint32_t)lens[put + k], .kind = MP__REC_INLINE};
      at += lens[put + k];
      k++;
    }
    size_t done = 0;
    rc = try_put(q, &d, chunk, k, &done);
    for (size_t i = 0; i < done; i++)
      p += lens[put + i];
    put += done;
    if (rc == 0)
      continue;
    if (rc != MP_EAGAIN)
      break;
    if ((rc = wait_room(q, stored_bytes(q, &chunk[done]), d)) != 0)
      break;
  }
  if (put > 0)
    return (ssize_t)put;
  return rc;
}

/* ---- get
 * ------------------------------------------------------------------------ */

static int try_get(mp_queue *q, const mp__deadline *d, mp__qget *g) {
  return q->order == MP_QUEUE_FIFO ? mp__qfifo_try_get(q, d, g)
                                   : mp__qheap_try_get(q, d, g);
}

/* get_wait runs a get request, waiting for a message until the deadline.
 * An empty queue that is closed answers MP_ECLOSED: closed is read before
 * the attempt, so a message put before the close is never missed. */
static int get_wait_loop(mp_queue *q, mp__qget *g, mp__deadline d) {
  for (;;) {
    bool closed = closed_for_gets(q);
    int rc = try_get(q, &d, g);
    if (rc != MP_EAGAIN)
      return rc;
    if (closed)
      return MP_ECLOSED;
    if ((rc = mp__queue_wait_until(q, &q->s->not_empty, ready_data, NULL, d)) !=
        0)
      return rc;
    g->waited = true;
  }
}

static int get_wait(mp_queue *q, mp__qget *g, double timeout) {
  int rc = bad_timeout(timeout);
  if (rc != 0)
    return rc;
  mp__deadline d = deadline_of(timeout);
  if (q->lease) {
    lease_reclaim(q);
    g->max = 1;
  }
  if (!q->joinable || q->slot < 0)
    return get_wait_loop(q, g, d);
  /* A JoinableQueue counts what each process holds (see mp_queue_join):
   * counted before the take, so a process killed in between is counted
   * (join may then report it dead with a task that is still queued, never
   * miss one it took), and corrected after. */
  _Atomic uint32_t *held = &q->s->held[q->slot];
  uint32_t ahead = g->max > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)g->max;
  atomic_fetch_add(held, ahead);
  rc = get_wait_loop(q, g, d);
  size_t taken = rc == 0 ? (g->msg != NULL ? 1 : g->taken) : 0;
  atomic_fetch_sub(held, ahead - (uint32_t)MP__MIN(taken, ahead));
  return rc;
}

static int get_one(mp_queue *q, int64_t *prio, void *buf, size_t cap,
                   size_t *len, double timeout) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (len == NULL || (buf == NULL && cap > 0))
    return mp__fail(MP_EINVAL,
                    "invalid argument (len == NULL || (buf == NULL && cap > "
                    "0))");
  mp__qget g = {.buf = buf, .cap = cap, .max = 1, .lens = len, .prio = prio};
  rc = get_wait(q, &g, timeout);
  if (rc == MP_ETOOBIG)
    *len = g.needed;
  return rc;
}

int mp_queue_get(mp_queue *q, void *buf, size_t cap, size_t *len,
                 double timeout) {
  return get_one(q, NULL, buf, cap, len, timeout);
}

int mp_queue_get_lease(mp_queue *q, void *buf, size_t cap, size_t *len,
                       uint64_t *lease, double timeout) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (!q->lease)
    return mp__fail(MP_EINVAL, "not a lease-mode queue");
  if (len == NULL || lease == NULL || (buf == NULL && cap > 0))
    return mp__fail(MP_EINVAL,
                    "invalid argument (len == NULL || lease == NULL || (buf "
                    "== NULL && cap > 0))");
  mp__qget g = {.buf = buf, .cap = cap, .max = 1, .lens = len};
  rc = get_wait(q, &g, timeout);
  if (rc == MP_ETOOBIG)
    *len = g.needed;
  if (rc == 0)
    *lease = g.lease;
  return rc;
}

int mp_queue_get_nowait(mp_queue *q, void *buf, size_t cap, size_t *len) {
  return get_one(q, NULL, buf, cap, len, 0);
}

int mp_queue_get_priority(mp_queue *q, int64_t *priority, void *buf, size_t cap,
                          size_t *len, double timeout) {
  if (priority == NULL)
    return mp__fail(MP_EINVAL, "priority is NULL");
  *priority = 0;
  return get_one(q, priority, buf, cap, len, timeout);
}

ssize_t mp_queue_get_batch(mp_queue *q, void *buf, size_t cap, size_t *lens,
                           size_t max, double timeout) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (lens == NULL || max == 0 || max > SSIZE_MAX || (buf == NULL && cap > 0))
    return mp__fail(MP_EINVAL,
                    "invalid argument (lens == NULL || max == 0 || max > "
                    "SSIZE_MAX || (buf == NULL && cap > 0))");
  mp__qget g = {.buf = buf, .cap = cap, .max = max, .lens = lens};
  rc = get_wait(q, &g, timeout);
  if (rc == MP_ETOOBIG)
    lens[0] = g.needed;
  return rc == 0 ? (ssize_t)g.taken : rc;
}

int mp_queue_get_msg(mp_queue *q, mp_queue_msg *msg, double timeout) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (msg == NULL)
    return mp__fail(MP_EINVAL, "msg is NULL");
  memset(msg, 0, sizeof *msg);
  size_t len = 0;
  mp__qget g = {.max = 1, .msg = msg, .lens = &len, .prio = &msg->priority};
  return get_wait(q, &g, timeout);
}

void mp_queue_msg_release(mp_queue_msg *msg) {
  if (msg == NULL)
    return;
  if (msg->priv_[1] == MP__QMSG_SEGMENT) {
    /* Given back through its handle, if that still exists (it keeps the
     * mapping and parks the segment), else on its own. */
    mp__qzc *zc = msg->priv_[0];
    pthread_mutex_lock(&handles_lock);
    mp_queue *q = handles;
    while (q != NULL && (q != zc->q || strcmp(q->prefix, zc->prefix) != 0))
      q = q->next;
    mp__qlarge_zc_release(q, zc);
    pthread_mutex_unlock(&handles_lock);
  } else if (msg->priv_[1] == MP__QMSG_MAPPED)
    mp__os_unmap(msg->priv_[0], msg->priv_len_);
  else if (msg->priv_[1] == MP__QMSG_ALLOCATED)
    mp__free(msg->priv_[0]);
  memset(msg, 0, sizeof *msg);
}

/* ---- typed helpers
 * ----------------------------------------------------------- */

int mp_queue_put_int64(mp_queue *q, int64_t value, double timeout) {
  return put_timed(q, 0, &value, sizeof value, timeout);
}

int mp_queue_put_double(mp_queue *q, double value, double timeout) {
  return put_timed(q, 0, &value, sizeof value, timeout);
}

int mp_queue_put_str(mp_queue *q, const char *s, double timeout) {
  if (s == NULL)
    return mp__fail(MP_EINVAL, "s is NULL");
  return put_timed(q, 0, s, strlen(s), timeout);
}

static int get_exact(mp_queue *q, void *out, size_t size, double timeout) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  size_t len = 0;
  mp__qget g = {.buf = out,
                .cap = size,
                .max = 1,
                .lens = &len,
                .want_exact = true,
                .exact = size};
  return get_wait(q, &g, timeout);
}

int mp_queue_get_int64(mp_queue *q, int64_t *value, double timeout) {
  return get_exact(q, value, sizeof *value, timeout);
}

int mp_queue_get_double(mp_queue *q, double *value, double timeout) {
  return get_exact(q, value, sizeof *value, timeout);
}

int mp_queue_get_str(mp_queue *q, char *buf, size_t cap, double timeout) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (buf == NULL || cap == 0)
    return mp__fail(MP_EINVAL, "invalid argument (buf == NULL || cap == 0)");
  size_t len = 0;
  mp__qget g = {.buf = (unsigned char *)buf,
                .cap = cap,
                .max = 1,
                .lens = &len,
                .reserve_nul = true};
  rc = get_wait(q, &g, timeout);
  if (rc == 0)
    buf[len] = '\0';
  return rc;
}

/* ---- state
 * ----------------------------------------------------------------------- */

/* count_exact: the count now, for the calls that promise an exact one. */
static uint32_t count_exact(mp_queue *q) {
  return q->order == MP_QUEUE_FIFO ? mp__qfifo_count(q)
                                   : mp__qheap_count_exact(q);
}

ssize_t mp_queue_qsize(mp_queue *q) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  return (ssize_t)count_exact(q);
}

int mp_queue_empty(mp_queue *q) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  return count_exact(q) == 0;
}

int mp_queue_full(mp_queue *q) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  uint32_t n = count_exact(q);
  if (n >= MP__MIN(q->maxsize, (uint64_t)UINT32_MAX))
    return 1;
  if (q->order == MP_QUEUE_FIFO)
    return !mp__qfifo_has_room(q, mp__qfifo_record_bytes(0));
  return n >= q->nslots;
}

size_t mp_queue_maxsize(mp_queue *q) {
  if (check_handle(q) != 0 || q->maxsize == UINT64_MAX)
    return 0;
  return (size_t)q->maxsize;
}

int mp_queue_close(mp_queue *q) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  /* Never waits on a lock (a stopped producer must not hang close): puts
   * refuse from now on, and whoever releases the producers' lock next
   * (this call if it is free, else its holder, or whoever takes it over
   * from a dead one) marks it closed for gets (see MP__QUEUE_CLOSING). */
  uint32_t c = 0;
  atomic_compare_exchange_strong(&q->s->closed, &c, MP__QUEUE_CLOSING);
  bool rec = false;
  const mp__deadline poll = {.ns = 0, .poll = true};
  if (mp__queue_lock(q, &q->s->plock, &rec, &poll) == 0) {
    if (rec)
      plock_repair(q);
    mp__queue_unlock(q, &q->s->plock);
  }
  /* Everyone who sleeps wakes and finds it closed. */
  mp__queue_wake_all(q);
  return 0;
}

int mp_queue_closed(mp_queue *q) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  return is_closed(q);
}

int mp_queue_poll(mp_queue *q) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  return ready_data(q, NULL);
}

/* ---- JoinableQueue
 * -------------------------------------------------------------- */

static uint32_t puts_ever(mp_queue *q) {
  return q->order == MP_QUEUE_FIFO ? mp__qfifo_puts(q) : mp__qheap_puts(q);
}

/* held_done: one task of this process's is done (if it held any: a task
 * may be marked done by another process than the one that took it). */
static void held_done(mp_queue *q) {
  if (q->slot < 0)
    return;
  _Atomic uint32_t *held = &q->s->held[q->slot];
  uint32_t v = atomic_load(held);
  while (v > 0 && !atomic_compare_exchange_weak(held, &v, v - 1)) {
  }
}

/* Unfinished tasks: puts minus task_done calls, both modulo 2^32. Each
 * side is one atomic word, so a death at any point leaves them exact. */
static uint32_t unfinished(mp_queue *q) {
  uint32_t done = atomic_load(&q->s->done);
  return puts_ever(q) - done;
}

int mp_queue_task_done(mp_queue *q) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (!q->joinable)
    return mp__fail(MP_EINVAL, "not a joinable queue");
  uint32_t done = atomic_load(&q->s->done);
  for (;;) {
    uint32_t left = puts_ever(q) - done;
    if (left == 0 || left > (uint32_t)INT32_MAX)
      return MP_EVALUE;
    if (atomic_compare_exchange_weak(&q->s->done, &done, done + 1)) {
      held_done(q);
      if (q->lease)
        (void)mp_queue_ack(q, 0);
      if (left == 1)
        mp__queue_notify(q, &q->s->joined);
      return 0;
    }
  }
}

static bool ready_joined(mp_queue *q, void *arg) {
  (void)arg;
  return unfinished(q) == 0;
}

/* How often a join looks for dead holders. */
#define JOIN_CHECK_NS (100 * 1000 * 1000)

int mp_queue_join(mp_queue *q, double timeout) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (!q->joinable)
    return mp__fail(MP_EINVAL, "not a joinable queue");
  if ((rc = bad_timeout(timeout)) != 0)
    return rc;
  mp__deadline d = deadline_of(timeout);
  while (!ready_joined(q, NULL)) {
    if ((rc = mp__queue_users_dead_holder(q)) != 0)
      return ready_joined(q, NULL) ? 0 : rc;
    mp__deadline slice = d.poll ? d : mp__deadline_min_slice(d, JOIN_CHECK_NS);
    rc = mp__queue_wait_until(q, &q->s->joined, ready_joined, NULL, slice);
    if (rc == MP_ETIMEDOUT && !mp__deadline_expired(d))
      continue; /* a slice ended: look for dead holders again */
    if (rc != 0)
      return rc;
  }
  return 0;
}

ssize_t mp_queue_unfinished_tasks(mp_queue *q) {
  int rc = check_handle(q);
  if (rc != 0)
    return rc;
  if (!q->joinable)
    return mp__fail(MP_EINVAL, "not a joinable queue");
  return (ssize_t)unfinished(q);
}
