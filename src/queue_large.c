/* queue_large.c - large messages: a message over the queue's inline limit
 * travels in a shared memory segment of its own, and the queue carries a
 * small record naming it. One copy in, one copy out (or none, with
 * mp_queue_get_msg), instead of a loop of chunks through the ring.
 *
 * DESIGN
 * Names. A queue's large segments are "<prefix>+<tag>.<ctr>": prefix is
 * "mp_<name>" for a named queue and "mp_q-<16 hex digits of its id>"
 * otherwise; tag is the producer's pid with the index of its PID namespace
 * above bit 24 (mp__queue_tag: only a process of that namespace judges
 * whether the producer lives); ctr counts in that process. No queue
 * or sync object name contains '+', so these names never collide with
 * one. The record holds (size, pid, ctr, check).
 *
 * Put. The producer renames a spare segment to its own name (Spares,
 * below; when none is free it may first wait for one: Reuse first) or
 * creates one (O_EXCL, its memory reserved with fallocate: a
 * full /dev/shm is then MP_ENOSPC, never a SIGBUS), streams the bytes in
 * through the mapping it keeps of it ("the copy in"; pwrite past what
 * the kept mappings hold), then queues the record like any message; from its
 * commit on, the queue owns the segment. If the put fails (full at the
 * deadline, closed), the producer removes the segment.
 *
 * Get. Holding the consumer lock, the consumer opens the segment, checks
 * its size against the record, reads it (pread) or maps it read-only (for
 * mp_queue_get_msg), records its name in pend_*, commits the removal of
 * the record, then keeps the segment for reuse (a copy; see Spares below)
 * or unlinks it (zero copy: the mapping stays valid until the caller
 * releases it), and clears pend_*.
 *
 * Crash at each step. Producer killed before the commit: the segment is
 * an orphan that no record names, with a dead pid in its name; a sweep
 * removes it. Killed after the commit: the message is queued, and stays
 * until taken. Consumer killed before the commit: the message is still
 * queued. Killed after the commit, before the unlink (or the move to a
 * spare): it held the consumer lock, so the next consumer recovers it,
 * finds the name in pend_* and no record naming it, and unlinks it (a
 * name already moved is not there: nothing to do). Killed in the middle
 * of moving a spare: see Spares.
 *
 * Sweep. Whoever recovers a lock, a producer of large messages at most
 * once a second, and the last user's free list the queue's segments and
 * remove those that no queued record names and whose producer is no
 * longer alive. What a sweep cannot reach, every user of the queue gone
 * without its free, the resource tracker removes (queue.c, "The guard"):
 * an anonymous queue's creator registered the guard "<prefix>+", and the
 * whole family goes once the tree has ended; each tree that uses a named
 * queue registered a link to it, and the family goes with the last tree's
 * once the name is gone and no process uses the queue.
 *
 * Why the tracker guards the family rather than each segment: registering
 * each message's segment and unregistering it at the commit would cost a
 * message to the tracker per message, and a registration kept until the
 * message is taken would let the producer's tree take queued messages
 * with it when it ends. One guard a queue (one link a tree, named),
 * registered when a handle is made, costs nothing a message. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "fault.h"
#include "os/process_os.h"
#include "os/queue_os.h"
#include "os/shm.h"
#include "queue_internal.h"

/* Counts this process's large segments. Its start is random, so a process
 * that reuses a dead producer's pid does not walk into its leftovers. */
static _Atomic uint64_t large_ctr;
static pthread_once_t ctr_once = PTHREAD_ONCE_INIT;

static void ctr_init(void) {
  uint32_t r = 0;
  (void)mp__os_random(&r, sizeof r);
  atomic_store(&large_ctr, ((uint64_t)r << 16) + 1);
}

static uint64_t next_ctr(void) {
  pthread_once(&ctr_once, ctr_init);
  return atomic_fetch_add(&large_ctr, 1);
}

static uint32_t ref_check(uint64_t size, uint32_t pid, uint64_t ctr) {
  uint64_t x = size * 0x9e3779b97f4a7c15ull ^ ((uint64_t)pid << 17) ^
               ctr * 0xc2b2ae3d27d4eb4full ^ 0x5851f42d4c957f2dull;
  return (uint32_t)(x ^ (x >> 32));
}

static void large_name(const mp_queue *q, uint32_t pid, uint64_t ctr, char *out,
                       size_t cap) {
  snprintf(out, cap, "%s+%u.%llu", q->prefix, (unsigned)pid,
           (unsigned long long)ctr);
}

#define LARGE_NAME_MAX (MP__QUEUE_PREFIX_MAX + 40)

static bool ref_valid(mp_queue *q, const mp__qlarge_ref *ref) {
  return ref->size > q->inline_max && ref->size <= q->max_message &&
         ref->pid != 0 && ref->pid <= INT32_MAX &&
         ref->check == ref_check(ref->size, ref->pid, ref->ctr);
}

static int write_all(int fd, const void *buf, size_t len) {
  const unsigned char *p = buf;
  off_t at = 0;
  while (len > 0) {
    size_t chunk = len > (1u << 30) ? (1u << 30) : len;
    ssize_t n = pwrite(fd, p, chunk, at);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno == ENOSPC ? MP_ENOSPC : -errno;
    }
    p += n;
    at += n;
    len -= (size_t)n;
  }
  return 0;
}

static int read_all(int fd, void *buf, size_t len) {
  unsigned char *p = buf;
  off_t at = 0;
  while (len > 0) {
    size_t chunk = len > (1u << 30) ? (1u << 30) : len;
    ssize_t n = pread(fd, p, chunk, at);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      return MP_EIO; /* shorter than it said: changed from outside */
    p += n;
    at += n;
    len -= (size_t)n;
  }
  return 0;
}

/* ---- spares ----------------------------------------------------------------
 * A fresh segment costs the kernel's allocation of its pages, several
 * times the copy itself. So a consumer that has copied a message out
 * parks its segment as a spare instead of removing it (renamed to
 * "<prefix>+s<k>", slot k of the spares table), and the next producer of
 * a message that fits renames a spare to its own name and writes into
 * pages that exist. A zero-copy consumer keeps the pages mapped, so its
 * segment is removed, not parked.
 *
 * A slot moves EMPTY -> BUSY(pid) -> FULL(size) when parked and FULL ->
 * BUSY(pid) -> EMPTY when taken, each step a compare-and-swap or a store
 * by the BUSY holder, with the rename in between. A process killed while
 * BUSY leaves the slot to whoever finds it next with its holder dead: the
 * file system says which way the rename went (the spare's name exists or
 * not). A zero-copy consumer parks the segment of the message it took at
 * once, as LENT(pid) instead of FULL: the slot is its own until it
 * releases the message, which turns LENT into FULL with one
 * compare-and-swap and no rename. Killed before that, it leaves LENT with
 * a dead holder, settled as a half-done move is (the name exists: FULL). Spare
 * names do not parse as "<pid>.<ctr>", so sweeps leave them; the last user's
 * free removes them with the rest. */
enum { SPARE_EMPTY = 0, SPARE_FULL = 1, SPARE_BUSY = 2, SPARE_LENT = 3 };

/* Segments larger than this are not kept: they would hold much memory for
 * a message that may not come again. */
#define SPARE_MAX_BYTES ((uint64_t)256 << 20)

static void spare_name(const mp_queue *q, int k, char *out, size_t cap) {
  snprintf(out, cap, "%s+s%d", q->prefix, k);
}

static uint64_t busy_word(mp_queue *q) {
  return ((uint64_t)mp__queue_tag(q) << 32) | SPARE_BUSY;
}

/* spare_settle ends slot k's move that a dead process left half done (or
 * its loan to a dead zero-copy holder); returns the slot's word
 * afterwards. It asks the system whether the holder lives, so the scans
 * below look for a slot without it first, and settle only when they found
 * none. */
static uint64_t spare_settle(mp_queue *q, int k, uint64_t w) {
  if ((w & 3u) < SPARE_BUSY || !mp__queue_tag_gone(q, (uint32_t)(w >> 32)))
    return w;
  uint64_t mine = busy_word(q);
  if (!atomic_compare_exchange_strong(&q->s->spares[k], &w, mine))
    return w;
  char name[LARGE_NAME_MAX];
  spare_name(q, k, name, sizeof name);
  int fd;
  size_t size = 0;
  uint64_t now = SPARE_EMPTY;
  if (mp__os_shm_open(name, &fd, &size) == 0) {
    close(fd);
    if (size > 0 && size <= SPARE_MAX_BYTES)
      now = ((uint64_t)size << 2) | SPARE_FULL;
    else
      mp__os_shm_unlink(name);
  }
  atomic_store(&q->s->spares[k], now);
  return now;
}

/* ---- cold spares -------------------------------------------------------
 * Which spare a producer takes matters as much as taking one. The
 * consumer has just read the segment it gave back last, so its lines sit
 * in the consumer's cache: a producer that writes into it at once takes
 * each line from there first (a read for ownership), and the consumer,
 * reading the next message as soon as it is written, takes each line from
 * the producer's cache. Streaming 1 MiB messages read in place on this
 * machine's 2 vCPUs (2 MiB of L2 cache each): 135-165 us a message when
 * the producer reused what came back last, 61-95 us (about one memcpy's
 * time) when it reused only segments the consumer had read 3 MiB past
 * since, as both sides then work on lines the other's cache has given
 * up. So each slot records when it was parked (spare_at, in parked_kib's
 * terms), a producer takes the spare parked longest ago, and while the queue
 * holds messages (its consumer has work, and gives segments back as it goes) a
 * producer that may wait (Reuse first, below) waits for a cold one:
 * SPARE_COLD_KIB or more parked after it. With nothing queued, or when
 * the wait runs out, it takes the oldest there is. */
#define SPARE_COLD_KIB 3072u
/* Cold is asked for only where four messages' worth make it (smaller
 * messages all fit in a cache anyway), and waited for at most cold_wait ns
 * a MiB (about two copies of it) before a warm spare will do. */
#define COLD_MIN ((size_t)SPARE_COLD_KIB * 1024 / 4)
static _Atomic uint64_t cold_wait = 150000;

uint64_t mp__qlarge_set_cold_wait(uint64_t ns_per_mib) {
  return atomic_exchange(&cold_wait, ns_per_mib);
}

static void spare_stamp(mp_queue *q, int k, uint64_t size) {
  uint32_t kib = (uint32_t)((size + 1023) / 1024);
  atomic_store_explicit(
      &q->s->spare_at[k],
      atomic_fetch_add_explicit(&q->s->parked_kib, kib, memory_order_relaxed) +
          kib,
      memory_order_relaxed);
}

/* spare_pick returns the slot of the spare of at least len bytes parked
 * longest ago (cold ones only, if asked), leaving out the slots in the
 * mask skip and settling half-done moves first if settle; -1 when there
 * is none. *w is the slot's word. */
static int spare_pick(mp_queue *q, size_t len, bool cold, bool settle,
                      unsigned skip, uint64_t *w) {
  uint32_t now = atomic_load_explicit(&q->s->parked_kib, memory_order_relaxed);
  int best = -1;
  int32_t best_age = 0;
  for (int k = 0; k < MP__QUEUE_SPARES; k++) {
    if (skip & (1u << k))
      continue;
    uint64_t v = atomic_load(&q->s->spares[k]);
    if (settle)
      v = spare_settle(q, k, v);
    if ((v & 3u) != SPARE_FULL || (v >> 2) < len)
      continue;
    /* Parked after parked_kib was read: the youngest. */
    int32_t age = (int32_t)(now - atomic_load_explicit(&q->s->spare_at[k],
                                                       memory_order_relaxed));
    if (age < 0)
      age = 0;
    if (cold && age < (int32_t)SPARE_COLD_KIB)
      continue;
    if (best < 0 || age > best_age) {
      best = k;
      best_age = age;
      *w = v;
    }
  }
  return best;
}

/* spare_ready says, with plain loads (no system call), whether spare_take
 * would find a spare. */
static bool spare_ready(mp_queue *q, size_t len, bool cold) {
  uint64_t w;
  return spare_pick(q, len, cold, false, 0, &w) >= 0;
}

/* spare_take renames the spare spare_pick chooses to name; false when
 * there is none. A slot whose segment would not move is not chosen again
 * in the same pass: it would stay the oldest and hide the others. */
static bool spare_take(mp_queue *q, size_t len, const char *name, bool cold) {
  _Static_assert(MP__QUEUE_SPARES <= 32, "a slot is a bit of the mask");
  for (int pass = 0; pass < 2; pass++) {
    unsigned failed = 0;
    for (int tries = 0; tries < MP__QUEUE_SPARES; tries++) {
      uint64_t w;
      int k = spare_pick(q, len, cold, pass == 1, failed, &w);
      if (k < 0)
        break;
      if (!atomic_compare_exchange_strong(&q->s->spares[k], &w, busy_word(q)))
        continue;
      char sname[LARGE_NAME_MAX];
      spare_name(q, k, sname, sizeof sname);
      mp__fault(MP__FAULT_SPARE_MOVE, (const char *[2]){sname, name});
      int rc = mp__os_shm_rename(sname, name);
      /* Gone (removed from outside): the slot is empty. Not moved for
       * another reason: it is still a spare. */
      atomic_store(&q->s->spares[k], rc == 0 || rc == MP_ENOENT
                                         ? (uint64_t)SPARE_EMPTY
                                         : (w & ~(uint64_t)3) | SPARE_FULL);
      if (rc == 0)
        return true;
      failed |= 1u << k;
    }
  }
  return false;
}

/* spare_park keeps segment name (size bytes) as a spare, lent to this
 * process with lend; returns its slot, or -1 when no slot is free (the
 * caller removes it). */
static int spare_park(mp_queue *q, const char *name, uint64_t size, bool lend) {
  if (size == 0 || size > SPARE_MAX_BYTES)
    return -1;
  for (int k = 0, pass = 0; pass < 2; k = 0, pass++)
    for (; k < MP__QUEUE_SPARES; k++) {
      uint64_t w = atomic_load(&q->s->spares[k]);
      if (pass == 1)
        w = spare_settle(q, k, w);
      if (w != SPARE_EMPTY ||
          !atomic_compare_exchange_strong(&q->s->spares[k], &w, busy_word(q)))
        continue;
      char sname[LARGE_NAME_MAX];
      spare_name(q, k, sname, sizeof sname);
      int rc = mp__os_shm_rename(name, sname);
      if (rc == MP_EEXIST) {
        /* A spare name no slot knows of (left by a move cut short): this
         * slot is ours, so is the name. */
        mp__os_shm_unlink(sname);
        rc = mp__os_shm_rename(name, sname);
      }
      uint64_t now = SPARE_EMPTY;
      if (rc == 0 && lend) {
        now = ((uint64_t)mp__queue_tag(q) << 32) | SPARE_LENT;
      } else if (rc == 0) {
        spare_stamp(q, k, size);
        now = (size << 2) | SPARE_FULL;
      }
      atomic_store(&q->s->spares[k], now);
      return rc == 0 ? k : -1;
    }
  return -1;
}

void mp__qlarge_drop_spares(mp_queue *q) {
  for (int k = 0; k < MP__QUEUE_SPARES; k++) {
    char sname[LARGE_NAME_MAX];
    spare_name(q, k, sname, sizeof sname);
    mp__os_shm_unlink(sname);
    atomic_store(&q->s->spares[k], SPARE_EMPTY);
  }
}

/* ---- mappings kept for reuse ----------------------------------------------
 * A segment's pages are reused through the spares, but a fresh mapping of
 * them still costs a page-table entry per page, and its removal a TLB
 * flush on every core that ran the process. So a process keeps up to
 * MP__QUEUE_MAPS mappings (at most MP__QUEUE_MAPS_BYTES) of the segments it
 * wrote in place or read without a copy, found again by inode: a spare
 * renamed to a new message's name is the same inode, so the producer
 * writes, and the consumer reads, through the mapping it already has.
 * A mapping keeps its inode alive, so the inode number cannot name
 * another segment while the entry exists. Its size is checked against the
 * segment's on each use (another program may have resized it). */
void mp__qlarge_maps_init(mp_queue *q) {
  pthread_mutex_init(&q->maps_lock, NULL);
  memset(q->maps, 0, sizeof q->maps);
}

void mp__qlarge_maps_drop(mp_queue *q) {
  pthread_mutex_lock(&q->maps_lock);
  for (int i = 0; i < MP__QUEUE_MAPS; i++) {
    mp__qmap *m = &q->maps[i];
    if (m->addr != NULL && !m->busy)
      mp__os_unmap(m->addr, m->size);
    m->addr = NULL;
  }
  pthread_mutex_unlock(&q->maps_lock);
  pthread_mutex_destroy(&q->maps_lock);
}

/* map_get maps the whole segment fd (writable or read-only), reusing a
 * kept mapping of it; stores the address, the length mapped, and the
 * entry (-1: not kept; the caller unmaps it). */
static int map_get(mp_queue *q, int fd, bool writable, void **addr, size_t *len,
                   int *idx) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return -errno;
  size_t size = (size_t)st.st_size;
  *idx = -1;
  pthread_mutex_lock(&q->maps_lock);
  size_t held = 0;
  int victim = -1;
  for (int i = 0; i < MP__QUEUE_MAPS; i++) {
    mp__qmap *m = &q->maps[i];
    if (m->addr == NULL) {
      if (victim < 0 || q->maps[victim].addr != NULL)
        victim = i;
      continue;
    }
    if (!m->busy && m->dev == (uint64_t)st.st_dev &&
        m->ino == (uint64_t)st.st_ino && m->writable == writable) {
      if (m->size == size) {
        m->busy = true;
        m->used = ++q->maps_clock;
        *addr = m->addr;
        *len = size;
        *idx = i;
        pthread_mutex_unlock(&q->maps_lock);
        return 0;
      }
      /* Resized since: not the mapping to use. */
      mp__os_unmap(m->addr, m->size);
      m->addr = NULL;
      victim = i;
      continue;
    }
    held += m->size;
    if (!m->busy && (victim < 0 || (q->maps[victim].addr != NULL &&
                                    m->used < q->maps[victim].used)))
      victim = i;
  }
  pthread_mutex_unlock(&q->maps_lock);
  int rc = mp__os_map_fd(fd, size, writable, true, addr);
  if (rc != 0)
    return rc;
  *len = size;
  if (size > MP__QUEUE_MAPS_BYTES / 2 || victim < 0)
    return 0;
  pthread_mutex_lock(&q->maps_lock);
  mp__qmap *v = &q->maps[victim];
  if (v->busy) {
    pthread_mutex_unlock(&q->maps_lock);
    return 0;
  }
  if (v->addr != NULL) {
    held -= MP__MIN(held, v->size);
    mp__os_unmap(v->addr, v->size);
    v->addr = NULL;
  }
  if (held + size <= MP__QUEUE_MAPS_BYTES) {
    *v = (mp__qmap){.dev = (uint64_t)st.st_dev,
                    .ino = (uint64_t)st.st_ino,
                    .size = size,
                    .addr = *addr,
                    .writable = writable,
                    .busy = true,
                    .used = ++q->maps_clock};
    *idx = victim;
  }
  pthread_mutex_unlock(&q->maps_lock);
  return 0;
}

/* map_put gives back what map_get handed out; drop gives the entry up. */
static void map_put(mp_queue *q, int idx, void *addr, size_t len, bool drop) {
  if (idx < 0) {
    mp__os_unmap(addr, len);
    return;
  }
  pthread_mutex_lock(&q->maps_lock);
  mp__qmap *m = &q->maps[idx];
  if (m->addr == addr) {
    m->busy = false;
    if (drop) {
      mp__os_unmap(m->addr, m->size);
      m->addr = NULL;
    }
  } else {
    mp__os_unmap(addr, len);
  }
  pthread_mutex_unlock(&q->maps_lock);
}

/* map_find maps segment name (writable or read-only) for a copy or a
 * zero-copy hand-over, and stores its size: one look-up by name, then the
 * mapping this process keeps of that inode if it has one (no open, no
 * mmap), else a new one. Returns 0, MP_ENOENT (no such segment), or an
 * error of the system. */
static int map_find(mp_queue *q, const char *name, bool writable, void **addr,
                    size_t *len, int *idx) {
  uint64_t dev, ino;
  size_t size;
  int rc = mp__os_shm_stat(name, &dev, &ino, &size);
  if (rc != 0)
    return rc == -ENOENT ? MP_ENOENT : rc;
  pthread_mutex_lock(&q->maps_lock);
  for (int i = 0; i < MP__QUEUE_MAPS; i++) {
    mp__qmap *m = &q->maps[i];
    if (m->addr != NULL && !m->busy && m->dev == dev && m->ino == ino &&
        m->writable == writable && m->size == size) {
      m->busy = true;
      m->used = ++q->maps_clock;
      *addr = m->addr;
      *len = size;
      *idx = i;
      pthread_mutex_unlock(&q->maps_lock);
      return 0;
    }
  }
  pthread_mutex_unlock(&q->maps_lock);
  int fd;
  if ((rc = mp__os_shm_open(name, &fd, &size)) != 0)
    return rc;
  rc = map_get(q, fd, writable, addr, len, idx);
  close(fd);
  return rc;
}

void mp__qlarge_map_done(mp_queue *q, int map_idx, void *map, size_t map_len,
                         bool drop) {
  map_put(q, map_idx, map, map_len, drop);
}

/* ---- the copy in ------------------------------------------------------------
 * What a large message costs is mostly how its bytes get into the segment,
 * and which way is cheaper depends on where the consumer runs. The
 * consumer read the segment's previous message, so its lines sit in the
 * consumer's cache. When that cache is not the producer's, an ordinary
 * store must first take each line from there (a read for ownership):
 * memcpy of 1 MiB (glibc stops using rep movsb at the size of the L2
 * cache) ran at 140-150 us on this machine's 2 vCPUs against 28 us with
 * non-temporal stores, which claim whole lines without reading them. When
 * the two share a cache (the same VM minutes later: the hypervisor moves
 * vCPUs), memcpy took 30 us, as fast, and left the message in the cache,
 * while a streamed one was read from memory: the hand-over took 33 us
 * against 52 (bench_queue's handoff rows). So the producer times its
 * copies into reused segments (a fresh one's first touches would swamp
 * them) and streams only while memcpy costs it more than STREAM_GAIN
 * times streaming; every EXPLORE-th copy goes the other way, to notice
 * when that changes. Below NT_COPY_MIN the difference is small. The
 * sfence orders the streaming stores before the store that publishes the
 * record. */
#define NT_COPY_MIN ((size_t)64 << 10)
#define STREAM_GAIN 1.5
#define EXPLORE 32u

/* est_record feeds one timed way (dt_ns for len bytes) into its estimate
 * *est, ns per MiB (0: none yet): an eighth of the way to the sample, and
 * a sample over twice the estimate counts as twice (a preemption is not
 * the way's cost). Used by the copy in and the fill in place below. */
static void est_record(_Atomic uint64_t *est, int64_t dt_ns, size_t len) {
  if (dt_ns <= 0 || len == 0)
    return;
  uint64_t sample = (uint64_t)dt_ns * ((uint64_t)1 << 20) / len;
  uint64_t old = atomic_load_explicit(est, memory_order_relaxed);
  if (old != 0 && sample > 2 * old)
    sample = 2 * old;
  atomic_store_explicit(est, old == 0 ? sample : old - old / 8 + sample / 8,
                        memory_order_relaxed);
}

#if defined(__x86_64__)
static void stream_copy(void *dst, const void *src, size_t len) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  size_t head = (size_t)(-(uintptr_t)d & 15u);
  memcpy(d, s, head);
  d += head;
  s += head;
  len -= head;
  for (; len >= 64; len -= 64, d += 64, s += 64) {
    __m128i a = _mm_loadu_si128((const __m128i *)s);
    __m128i b = _mm_loadu_si128((const __m128i *)(s + 16));
    __m128i c = _mm_loadu_si128((const __m128i *)(s + 32));
    __m128i e = _mm_loadu_si128((const __m128i *)(s + 48));
    _mm_stream_si128((__m128i *)d, a);
    _mm_stream_si128((__m128i *)(d + 16), b);
    _mm_stream_si128((__m128i *)(d + 32), c);
    _mm_stream_si128((__m128i *)(d + 48), e);
  }
  _mm_sfence();
  memcpy(d, s, len);
}

/* This process's estimates, ns per MiB (0: none yet), of a copy into a
 * reused segment: [0] memcpy, [1] streamed; and a count of timed copies.
 * Threads race on them harmlessly. */
static _Atomic uint64_t copy_est[2];
static _Atomic uint32_t copy_tick;

static void copy_in(void *dst, const void *src, size_t len, bool timed) {
  if (len < NT_COPY_MIN) {
    memcpy(dst, src, len);
    return;
  }
  uint64_t mc = atomic_load_explicit(&copy_est[0], memory_order_relaxed);
  uint64_t nt = atomic_load_explicit(&copy_est[1], memory_order_relaxed);
  /* Stream until memcpy has shown itself cheap enough. */
  int way = mc == 0 || nt == 0 || (double)mc > STREAM_GAIN * (double)nt;
  if (!timed) {
    if (way)
      stream_copy(dst, src, len);
    else
      memcpy(dst, src, len);
    return;
  }
  uint32_t tick = atomic_fetch_add_explicit(&copy_tick, 1, memory_order_relaxed);
  if (nt == 0)
    way = 1;
  else if (mc == 0 || tick % EXPLORE == EXPLORE - 1)
    way = !way;
  int64_t t0 = mp__os_now_ns();
  if (way)
    stream_copy(dst, src, len);
  else
    memcpy(dst, src, len);
  est_record(&copy_est[way], mp__os_now_ns() - t0, len);
}
#else
static void copy_in(void *dst, const void *src, size_t len, bool timed) {
  (void)timed;
  memcpy(dst, src, len);
}
#endif

/* ---- the fill in place ------------------------------------------------------
 * An in-place put's caller fills a reused segment with ordinary stores, and
 * each line may first be taken from the consumer's cache (a read for
 * ownership). Flushing the segment from every cache before handing it out
 * (clflushopt) makes those lines come from memory instead: where the two
 * vCPUs had separate caches, flush plus memcpy of 1 MiB took 60-65 us here
 * against 140-150 us for the memcpy alone (the consumer's lines are clean:
 * nothing is written back). But where the caches are nearer, the flush
 * itself cost 120 us a MiB and the memcpy alone took 130 (bench_queue's
 * multiproc_inplace: 256 against 131 us). Which is cheaper can only be
 * measured, and the library never sees the caller's copy; so the claim
 * times itself, from the handing out (the flush included) to the commit,
 * each way, and takes the cheaper; every EXPLORE-th claim goes the other
 * way, to notice when that changes. The caller's own work between is in
 * both ways' times alike. Fresh segments are not timed (their first
 * touches would swamp it); claims under NT_COPY_MIN are never flushed. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("clflushopt"))) static void evict_lines(char *p,
                                                               size_t len) {
  for (size_t i = 0; i < len; i += 64)
    _mm_clflushopt(p + i);
  _mm_sfence();
}

static bool can_evict(void) {
  static _Atomic int have = -1; /* -1: not asked yet */
  int h = atomic_load_explicit(&have, memory_order_relaxed);
  if (h < 0) {
    /* CPUID leaf 7: EBX bit 23 is CLFLUSHOPT. */
    unsigned a, b, c, d;
    h = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 23 & 1u) ? 1 : 0;
    atomic_store_explicit(&have, h, memory_order_relaxed);
  }
  return h == 1;
}
#else
static void evict_lines(char *p, size_t len) {
  (void)p;
  (void)len;
}

static bool can_evict(void) {
  return false;
}
#endif

/* This process's estimates, ns per MiB (0: none yet), of a timed claim:
 * [0] handed out as it was, [1] flushed first; a count of timed claims;
 * and how many took each way (for tests). Threads race on them
 * harmlessly. */
static _Atomic uint64_t fill_est[2];
static _Atomic uint32_t fill_tick;
static _Atomic uint64_t fill_ways[2];

/* fill_start chooses the way of a reused segment's claim, flushes it if
 * that is the way, and says how long that took (*f, untimed on entry,
 * stays so under NT_COPY_MIN or without clflushopt). */
static void fill_start(void *p, size_t len, mp__qfill *f) {
  if (len < NT_COPY_MIN || !can_evict())
    return;
  uint64_t plain = atomic_load_explicit(&fill_est[0], memory_order_relaxed);
  uint64_t flushed = atomic_load_explicit(&fill_est[1], memory_order_relaxed);
  uint32_t tick =
      atomic_fetch_add_explicit(&fill_tick, 1, memory_order_relaxed);
  int way;
  if (flushed == 0)
    way = 1;
  else if (plain == 0)
    way = 0;
  else
    way = flushed < plain ? 1 : 0;
  if (plain != 0 && flushed != 0 && tick % EXPLORE == EXPLORE - 1)
    way = !way;
  f->way = way;
  atomic_fetch_add_explicit(&fill_ways[way], 1, memory_order_relaxed);
  if (way == 1) {
    int64_t t0 = mp__os_now_ns();
    evict_lines(p, len);
    f->spent_ns = mp__os_now_ns() - t0;
  }
}

void mp__qlarge_fill_done(const mp__qfill *f, size_t len) {
  if (f->way >= 0)
    est_record(&fill_est[f->way], mp__os_now_ns() - f->t0, len);
}

void mp__qlarge_fill_ways(uint64_t ways[2]) {
  ways[0] = atomic_load_explicit(&fill_ways[0], memory_order_relaxed);
  ways[1] = atomic_load_explicit(&fill_ways[1], memory_order_relaxed);
}

/* ---- put and get ------------------------------------------------------------
 */

/* ---- reuse first -----------------------------------------------------------
 * A fresh segment costs far more than a reused one: the kernel's pages,
 * and on a paravirtualised guest a trap at the first touch of each page
 * through each new mapping, in the producer and again in the consumer
 * (4.5-6 us a page on this VM, measured: 1.2-1.7 ms a MiB a process even
 * with every page populated; MAP_POPULATE and MADV_POPULATE_WRITE fill the
 * guest's page tables, not the hypervisor's). A queue whose producer runs a
 * few messages ahead of its consumer finds no kept segment free at that
 * moment, though one comes back within a message's time, and so made nine
 * or ten segments in its first thousand 1 MiB messages, each at that price.
 * So once this handle has made REUSE_MIN segments, a producer that finds no
 * kept segment waits for one before it makes another: rent or buy. The
 * waits since this handle last made a segment may add up to what a fresh
 * one has cost this process (timed, fresh_est below; no wait before one
 * was timed); then it makes one, and the count starts again. So waiting
 * costs at most as much as the segments it saves, and a producer whose
 * waits add up (its consumer holds messages long, or the machine is
 * busy) grows the pool instead. A wait never passes the put's deadline (a
 * put with timeout 0 never waits), spins REUSE_SPIN_NS at most, then
 * sleeps between looks. A wait that runs out (nobody gives a segment
 * back) turns waiting off for this handle until a kept segment is found
 * again, so a producer that fills a queue nobody reads pays one wait, not
 * one a message. */
#define REUSE_MIN 5u
#define REUSE_SPIN_NS 60000   /* spin this long, then sleep in steps */
#define REUSE_STEP_NS 10000   /* a sleep between looks */
#define REUSE_MAX_NS 100000000 /* the longest wait, whatever was measured */

/* reuse_min is how many segments a handle makes before it waits: for a
 * message that waits for a cold spare, also as many as keep the cold
 * distance, so that REUSE_MIN may still be in flight or in hand (1 MiB:
 * 8; measured here, 5 gave 100-133 us a zero-copy message, 8 gave 77-98). */
static uint32_t reuse_min(size_t len) {
  if (len < COLD_MIN)
    return REUSE_MIN;
  size_t cold = (size_t)SPARE_COLD_KIB * 1024;
  return REUSE_MIN + (uint32_t)((cold + len - 1) / len);
}

/* This process's estimate of a fresh segment's cost, ns a MiB: making it,
 * reserving and mapping its memory, the first copy in (0: none yet). */
static _Atomic uint64_t fresh_est;

uint64_t mp__qlarge_set_fresh_cost(uint64_t ns_per_mib) {
  return atomic_exchange(&fresh_est, ns_per_mib);
}

static void fresh_timed(int64_t t0, size_t len) {
  int64_t dt = mp__os_now_ns() - t0;
  if (dt <= 0 || len == 0)
    return;
  uint64_t sample = (uint64_t)dt * ((uint64_t)1 << 20) / len;
  uint64_t old = atomic_load_explicit(&fresh_est, memory_order_relaxed);
  atomic_store_explicit(&fresh_est, old == 0 ? sample : old - old / 4 + sample / 4,
                        memory_order_relaxed);
}

/* spare_wait waits, as above, for a kept segment and renames it to name;
 * false when none came (or waiting is off, or its budget spent). Time
 * waited while the queue holds messages is not charged to the budget:
 * the consumer then has work, and gives a segment back when it takes the
 * next message (a copying get at once, a zero-copy one at its release),
 * so a fresh segment would only let this producer run further ahead; it
 * is what a producer in front of a slower consumer waits in any case,
 * there or on a full queue. (Charged, such waits made a queue whose
 * consumer is the slower side buy a segment every few hundred messages,
 * each costing the consumer the wait for its first copy in.) One put
 * still waits at most a fresh segment's cost in all. Asked for a cold
 * spare, it takes only a cold one while messages are queued, for
 * cold_wait ns a MiB at most (Cold spares). */
static bool spare_wait(mp_queue *q, size_t len, const char *name, bool cold,
                       mp__deadline d) {
  if (d.poll || atomic_load_explicit(&q->reuse_off, memory_order_relaxed) ||
      atomic_load_explicit(&q->large_made, memory_order_relaxed) <
          reuse_min(len))
    return false;
  uint64_t est = atomic_load_explicit(&fresh_est, memory_order_relaxed);
  if (est == 0)
    return false;
  double cost = (double)est * (double)len / (double)(1u << 20);
  int64_t limit = cost > REUSE_MAX_NS ? REUSE_MAX_NS : (int64_t)cost;
  int64_t budget =
      limit - atomic_load_explicit(&q->reuse_spent, memory_order_relaxed);
  bool queued = q->large_count(q) > 0;
  if (budget <= 0 && !queued)
    return false; /* waited as much as a segment costs: buy one */
  int64_t left = mp__deadline_remaining_ns(d);
  if (left < limit)
    limit = left;
  int64_t start = mp__os_now_ns(), now = start, charged = 0;
  double cold_ns =
      (double)atomic_load_explicit(&cold_wait, memory_order_relaxed) *
      (double)len / (double)(1u << 20);
  int64_t cold_limit = cold_ns > REUSE_MAX_NS ? REUSE_MAX_NS : (int64_t)cold_ns;
  bool got = false;
  for (;;) {
    bool c = cold && queued && now - start < cold_limit;
    if (spare_ready(q, len, c) && spare_take(q, len, name, c)) {
      got = true;
      break;
    }
    int64_t was = now;
    now = mp__os_now_ns();
    if (now - start >= limit)
      break;
    if (!queued && (charged += now - was) >= budget)
      break; /* nothing queued, and waited as much as a segment costs */
    queued = q->large_count(q) > 0;
    if (now - start < REUSE_SPIN_NS) {
      for (int i = 0; i < 64; i++)
        mp__os_cpu_relax();
    } else {
      mp__os_sleep_until(MP__MIN(now + REUSE_STEP_NS, start + limit));
    }
  }
  atomic_fetch_add_explicit(&q->reuse_spent, charged, memory_order_relaxed);
  if (!got)
    atomic_store_explicit(&q->reuse_off, true, memory_order_relaxed);
  return got;
}

/* seg_new makes (or takes from the spares) a segment of at least len
 * bytes under this process's name for a new message; fills *ref, and the
 * open descriptor of a new one (-1 for a spare: *spare says which). */
static int seg_new(mp_queue *q, size_t len, mp__qlarge_ref *ref, int *fd_out,
                   char *name, bool *spare, mp__deadline d) {
  uint32_t pid = mp__queue_tag(q);
  int fd = -1, rc = MP_EEXIST;
  uint64_t ctr = next_ctr();
  large_name(q, pid, ctr, name, LARGE_NAME_MAX);
  *spare = false;
  bool cold = len >= COLD_MIN && q->large_count(q) > 0;
  /* A warm spare, when no cold one came, still beats a fresh one; and a
   * kept segment found turns waiting back on (spare_wait), also after a
   * wait that the put's deadline cut short. */
  if (spare_take(q, len, name, cold) || spare_wait(q, len, name, cold, d) ||
      (cold && spare_take(q, len, name, false))) {
    atomic_store_explicit(&q->reuse_off, false, memory_order_relaxed);
    *spare = true;
    rc = 0;
  }
  /* Opened (or found mapped) by the caller. */
  for (int tries = 0; tries < 16 && rc != 0; tries++) {
    if (rc == MP_EEXIST || tries > 0) {
      ctr = next_ctr();
      large_name(q, pid, ctr, name, LARGE_NAME_MAX);
    }
    rc = mp__os_shm_create(name, len, &fd);
    if (rc != MP_EEXIST && rc != 0)
      return rc;
  }
  if (rc != 0)
    return rc;
  if (!*spare) {
    atomic_fetch_add_explicit(&q->large_made, 1, memory_order_relaxed);
    atomic_store_explicit(&q->reuse_spent, 0, memory_order_relaxed);
  }
  ref->size = len;
  ref->pid = pid;
  ref->ctr = ctr;
  ref->check = ref_check(len, pid, ctr);
  *fd_out = fd;
  return 0;
}

/* Messages up to this size are copied in and out through a mapping the
 * process keeps (see "mappings kept for reuse"); larger ones, which the
 * kept mappings would not hold, with pwrite and pread. */
#define MAPPED_COPY_MAX (MP__QUEUE_MAPS_BYTES / 2)

/* seg_map maps the segment seg_new gave (writable, every page present):
 * a spare through the mapping this process keeps of it if any; a new one
 * after giving it its memory (a write through the mapping must never
 * fault for lack of it; a spare's pages exist; fallocate also grows a
 * spare that was shrunk from outside). Closes fd. The caller removes the
 * segment if it fails. */
static int seg_map(mp_queue *q, const char *name, int fd, size_t len,
                   void **map, size_t *map_len, int *map_idx) {
  int rc;
  if (fd < 0) {
    rc = map_find(q, name, true, map, map_len, map_idx);
    if (rc == 0 && *map_len >= len)
      return 0;
    /* Smaller than its slot said, or gone (changed from outside): made
     * whole as a new segment would be. */
    if (rc == 0)
      map_put(q, *map_idx, *map, *map_len, true);
    size_t size;
    rc = mp__os_shm_open(name, &fd, &size);
    if (rc == MP_ENOENT)
      rc = mp__os_shm_create(name, len, &fd);
    if (rc != 0)
      return rc;
  }
  rc = mp__os_reserve(fd, len);
  if (rc == 0)
    rc = map_get(q, fd, true, map, map_len, map_idx);
  close(fd);
  if (rc == 0 && *map_len < len) {
    /* Shrunk from outside since it was taken. */
    map_put(q, *map_idx, *map, *map_len, true);
    rc = MP_EIO;
  }
  return rc;
}

int mp__qlarge_create(mp_queue *q, const void *buf, size_t len,
                      mp__qlarge_ref *ref, mp__deadline d) {
  char name[LARGE_NAME_MAX];
  int fd;
  bool spare;
  int rc = seg_new(q, len, ref, &fd, name, &spare, d);
  if (rc != 0)
    return rc;
  if (len <= MAPPED_COPY_MAX) {
    void *map;
    size_t map_len;
    int idx;
    int64_t t0 = spare ? 0 : mp__os_now_ns();
    rc = seg_map(q, name, fd, len, &map, &map_len, &idx);
    if (rc == 0) {
      copy_in(map, buf, len, spare);
      map_put(q, idx, map, map_len, false);
      if (!spare)
        fresh_timed(t0, len);
    }
  } else {
    size_t size;
    if (fd < 0)
      rc = mp__os_shm_open(name, &fd, &size);
    if (rc == 0) {
      rc = write_all(fd, buf, len);
      close(fd);
    }
  }
  if (rc != 0)
    mp__os_shm_unlink(name);
  return rc;
}

int mp__qlarge_create_mapped(mp_queue *q, size_t len, mp__qlarge_ref *ref,
                             void **map, size_t *map_len, int *map_idx,
                             mp__qfill *fill, mp__deadline d) {
  fill->way = -1;
  fill->spent_ns = 0;
  char name[LARGE_NAME_MAX];
  int fd;
  bool spare;
  int rc = seg_new(q, len, ref, &fd, name, &spare, d);
  if (rc != 0)
    return rc;
  int64_t t0 = spare ? 0 : mp__os_now_ns();
  rc = seg_map(q, name, fd, len, map, map_len, map_idx);
  if (rc != 0) {
    mp__os_shm_unlink(name);
  } else if (spare) {
    fill_start(*map, len, fill);
  } else {
    /* The first touch of each page (the caller's, else this one) is
     * what a fresh segment costs: made here, it is timed for the wait
     * above. Its pages hold zeros: writing a zero changes nothing. */
    for (size_t at = 0; at < len; at += 4096)
      ((volatile unsigned char *)*map)[at] = 0;
    fresh_timed(t0, len);
  }
  return rc;
}

void mp__qlarge_reref(const mp__qlarge_ref *ref, size_t len,
                      mp__qlarge_ref *out) {
  *out = *ref;
  out->size = len;
  out->check = ref_check(len, ref->pid, ref->ctr);
}

void mp__qlarge_abandon(mp_queue *q, const mp__qlarge_ref *ref) {
  char name[LARGE_NAME_MAX];
  large_name(q, ref->pid, ref->ctr, name, sizeof name);
  mp__os_shm_unlink(name);
}

void mp__qlarge_unlink(mp_queue *q, const mp__qlarge_ref *ref, void *arg) {
  (void)arg;
  char name[LARGE_NAME_MAX];
  large_name(q, ref->pid, ref->ctr, name, sizeof name);
  mp__os_shm_unlink(name);
}

int mp__qlarge_take(mp_queue *q, const mp__qlarge_ref *ref, mp__qget *g) {
  if (!ref_valid(q, ref))
    return mp__fail(MP_ECORRUPT, "large message record is damaged");
  if (g->want_exact && ref->size != g->exact)
    return MP_EPROTO;
  size_t need = (size_t)ref->size + (g->reserve_nul ? 1 : 0);
  if (g->msg == NULL && need > g->cap - g->used) {
    g->needed = need;
    return MP_ETOOBIG;
  }
  char name[LARGE_NAME_MAX];
  large_name(q, ref->pid, ref->ctr, name, sizeof name);
  if (g->msg == NULL && ref->size > MAPPED_COPY_MAX) {
    /* Too large for the kept mappings: read with pread. */
    int fd;
    size_t size;
    int rc = mp__os_shm_open(name, &fd, &size);
    if (rc != 0)
      return rc;
    if (size < ref->size) {
      /* Not the segment the producer wrote: as good as gone. A reused
       * spare may be larger than its message. */
      close(fd);
      return MP_ENOENT;
    }
    rc = read_all(fd, g->buf + g->used, (size_t)ref->size);
    close(fd);
    if (rc != 0)
      return rc;
    g->lens[0] = (size_t)ref->size;
    g->used += (size_t)ref->size;
    g->seg_size = size;
    return 0;
  }
  /* Through the mapping this process keeps of the segment, if it has one:
   * a reused segment's pages are mapped already. */
  mp__qzc *zc = NULL;
  if (g->msg != NULL && (zc = mp__calloc(1, sizeof *zc)) == NULL)
    return MP_ENOMEM;
  void *map;
  size_t map_len;
  int idx;
  int rc = map_find(q, name, false, &map, &map_len, &idx);
  if (rc == 0 && map_len < ref->size) {
    /* Not the segment the producer wrote: as good as gone. A reused spare
     * may be larger than its message. */
    map_put(q, idx, map, map_len, true);
    rc = MP_ENOENT;
  }
  if (rc != 0) {
    mp__free(zc);
    return rc;
  }
  if (zc != NULL) {
    zc->q = q;
    zc->lent = -1;
    memcpy(zc->prefix, q->prefix, sizeof zc->prefix);
    zc->addr = map;
    zc->map_len = map_len;
    zc->map_idx = idx;
    zc->seg_size = map_len;
    g->msg->data = map;
    g->msg->len = (size_t)ref->size;
    g->msg->priv_[0] = zc;
    g->msg->priv_[1] = MP__QMSG_SEGMENT;
    g->lens[0] = (size_t)ref->size;
    return 0;
  }
  memcpy(g->buf + g->used, map, (size_t)ref->size);
  map_put(q, idx, map, map_len, false);
  g->lens[0] = (size_t)ref->size;
  g->used += (size_t)ref->size;
  g->seg_size = map_len;
  return 0;
}

void mp__qlarge_taken(mp_queue *q, const mp__qlarge_ref *ref,
                      const mp__qget *g) {
  char name[LARGE_NAME_MAX];
  large_name(q, ref->pid, ref->ctr, name, sizeof name);
  if (g->msg != NULL) {
    /* A zero-copy consumer still reads the pages: the segment is parked
     * lent to it until it releases the message (see Spares), else it goes
     * under the consumer's own name until then (and is parked or removed
     * at the release). Killed before that, it leaves a segment of a dead
     * process that no record names: a sweep removes it. */
    mp__qzc *zc = g->msg->priv_[0];
    zc->lent = spare_park(q, name, zc->seg_size, true);
    if (zc->lent >= 0) {
      atomic_store_explicit(&q->s->pend_pid, 0, memory_order_release);
      return;
    }
    large_name(q, mp__queue_tag(q), next_ctr(), zc->name, sizeof zc->name);
    if (mp__os_shm_rename(name, zc->name) != 0) {
      mp__os_shm_unlink(name);
      zc->name[0] = '\0';
    }
  } else if (spare_park(q, name, g->seg_size, false) < 0) {
    /* A copy consumer is done with the pages: they are kept for the next
     * producer, unless no spare slot is free. */
    mp__os_shm_unlink(name);
  }
  atomic_store_explicit(&q->s->pend_pid, 0, memory_order_release);
}

void mp__qlarge_zc_release(mp_queue *q, mp__qzc *zc) {
  if (q == NULL) {
    /* The handle is gone: nothing is kept. */
    mp__os_unmap(zc->addr, zc->map_len);
    if (zc->name[0] != '\0')
      mp__os_shm_unlink(zc->name);
    mp__free(zc);
    return;
  }
  bool parked;
  if (zc->lent >= 0) {
    /* Lent to this process: given back as a spare. Not lent any more (the
     * last user's free dropped the spares): gone. */
    uint64_t w = ((uint64_t)mp__queue_tag(q) << 32) | SPARE_LENT;
    spare_stamp(q, zc->lent, zc->seg_size);
    parked = atomic_compare_exchange_strong(&q->s->spares[zc->lent], &w,
                                            (zc->seg_size << 2) | SPARE_FULL);
  } else {
    parked = zc->name[0] != '\0' &&
             spare_park(q, zc->name, zc->seg_size, false) >= 0;
  }
  if (!parked && zc->name[0] != '\0')
    mp__os_shm_unlink(zc->name);
  /* A parked segment's mapping is worth keeping: the next message that
   * reuses the spare comes through it. */
  map_put(q, zc->map_idx, zc->addr, zc->map_len, !parked);
  mp__free(zc);
}

void mp__qlarge_recover(mp_queue *q,
                        bool (*queued)(mp_queue *, const mp__qlarge_ref *)) {
  uint32_t pid = atomic_load(&q->s->pend_pid);
  if (pid == 0)
    return;
  mp__qlarge_ref ref = {.pid = pid, .ctr = atomic_load(&q->s->pend_ctr)};
  if (!queued(q, &ref))
    mp__qlarge_unlink(q, &ref, NULL);
  atomic_store(&q->s->pend_pid, 0);
}

typedef struct sweep_arg {
  mp_queue *q;
  bool (*queued)(mp_queue *, const mp__qlarge_ref *);
  size_t plen;
} sweep_arg;

/* parse_tail reads "<pid>.<ctr>" exactly. */
static bool parse_tail(const char *s, uint32_t *pid, uint64_t *ctr) {
  char *end;
  errno = 0;
  unsigned long p = strtoul(s, &end, 10);
  if (end == s || *end != '.' || errno != 0 || p == 0 || p > INT32_MAX)
    return false;
  const char *c = end + 1;
  unsigned long long n = strtoull(c, &end, 10);
  if (end == c || *end != '\0' || errno != 0)
    return false;
  *pid = (uint32_t)p;
  *ctr = n;
  return true;
}

static int sweep_one(const char *name, void *arg) {
  sweep_arg *a = arg;
  if (strncmp(name, a->q->prefix, a->plen) != 0 || name[a->plen] != '+')
    return 0;
  mp__qlarge_ref ref = {0};
  if (!parse_tail(name + a->plen + 1, &ref.pid, &ref.ctr))
    return 0;
  if (!mp__queue_tag_gone(a->q, ref.pid))
    return 0; /* its producer may be writing it, or cannot be judged here */
  if (a->queued != NULL && a->queued(a->q, &ref))
    return 0;
  mp__os_shm_unlink(name);
  return 0;
}

static _Atomic int64_t last_sweep_ns;

bool mp__qlarge_sweep_due(void) {
  int64_t now = mp__os_now_ns();
  int64_t last = atomic_load_explicit(&last_sweep_ns, memory_order_relaxed);
  if (last != 0 && now - last < 1000000000)
    return false;
  return atomic_compare_exchange_strong(&last_sweep_ns, &last, now);
}

void mp__qlarge_sweep(mp_queue *q,
                      bool (*queued)(mp_queue *, const mp__qlarge_ref *)) {
  sweep_arg a = {.q = q, .queued = queued, .plen = strlen(q->prefix)};
  (void)mp__os_shm_list(sweep_one, &a);
}
