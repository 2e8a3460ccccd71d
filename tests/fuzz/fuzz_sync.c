/* fuzz_sync.c - scribbles on the shared state of each named sync object
 * (Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier),
 * then uses it through the public API with timeout 0.
 *
 * Two homes are fuzzed: in place (the object's bytes in our memory), and
 * by name: a segment "/mp_fz<pid>-sync" laid out as a named object's
 * (segment header, then the object), with the scribble free to hit the
 * header too, opened with mp_X_open as an unrelated process would.
 *
 * Every byte may be scribbled, the locks' owner words included: the locks
 * keep no pointer (sync_lock.c). They were robust pthread mutexes, whose
 * robust-list pointers glibc followed on unlock (the input that showed it
 * is the seed corpus/sync/asan-robust-mutex-list-rlock-release).
 *
 * A scribbled owner word that names a live thread, or a PID namespace the
 * object cannot judge, holds the lock for good ("unknown means alive"):
 * calls then fail by their deadline. The Barrier's calls without a
 * timeout wait up to a second for its state lock before they fail with
 * MP_ETIMEDOUT; after one such failure the input's other operations are
 * skipped, to keep each input quick.
 *
 * Input: kind and home (1 byte), operations before (1 byte), the scribble
 * (fuzz_common.h), then one byte per operation. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "internal.h"

enum { K_LOCK, K_RLOCK, K_SEM, K_BSEM, K_EVENT, K_COND, K_BARRIER, K_N };

/* The segment header of a named object (object.c): its fields as
 * object.c writes them, so a scribble starts from a valid segment. */
#define SEG_HEADER 256
typedef struct seg_header {
  uint32_t magic;
  uint16_t version;
  uint16_t type;
  uint64_t segment_size;
  uint64_t object_size;
  int32_t creator_pid;
  char name[MP_SYNC_NAME_MAX + 1];
} seg_header;

static const uint16_t types[K_N] = {
    MP__TYPE_LOCK,      MP__TYPE_RLOCK,     MP__TYPE_SEMAPHORE,
    MP__TYPE_SEMAPHORE, MP__TYPE_EVENT,     MP__TYPE_CONDITION,
    MP__TYPE_BARRIER};
static const size_t sizes[K_N] = {
    MP_LOCK_SIZE,      MP_RLOCK_SIZE,     MP_SEMAPHORE_SIZE,
    MP_SEMAPHORE_SIZE, MP_EVENT_SIZE,     MP_CONDITION_SIZE,
    MP_BARRIER_SIZE};

static void scribble(fz_reader *r, void *mem, size_t size) {
  fz_scribble(r, mem, size);
}

/* Set when a Barrier call without a timeout gave up on its state lock. */
static bool stuck;

static int init_kind(int k, void *obj, unsigned parties) {
  switch (k) {
  case K_LOCK: return mp_lock_init(obj);
  case K_RLOCK: return mp_rlock_init(obj);
  case K_SEM: return mp_semaphore_init(obj, 2, 0);
  case K_BSEM: return mp_semaphore_init(obj, 2, 1);
  case K_EVENT: return mp_event_init(obj);
  case K_COND: return mp_condition_init(obj, NULL);
  default: return mp_barrier_init(obj, parties, NULL);
  }
}

static int destroy_kind(int k, void *obj) {
  switch (k) {
  case K_LOCK: return mp_lock_destroy(obj);
  case K_RLOCK: return mp_rlock_destroy(obj);
  case K_SEM: case K_BSEM: return mp_semaphore_destroy(obj);
  case K_EVENT: return mp_event_destroy(obj);
  case K_COND: return mp_condition_destroy(obj);
  default: return mp_barrier_destroy(obj);
  }
}

static int open_kind(int k, void **out, const char *name) {
  switch (k) {
  case K_LOCK: return mp_lock_open((mp_lock **)out, name);
  case K_RLOCK: return mp_rlock_open((mp_rlock **)out, name);
  case K_SEM: case K_BSEM: return mp_semaphore_open((mp_semaphore **)out, name);
  case K_EVENT: return mp_event_open((mp_event **)out, name);
  case K_COND: return mp_condition_open((mp_condition **)out, name);
  default: return mp_barrier_open((mp_barrier **)out, name);
  }
}

static void free_kind(int k, void *obj) {
  switch (k) {
  case K_LOCK: mp_lock_free(obj); break;
  case K_RLOCK: mp_rlock_free(obj); break;
  case K_SEM: case K_BSEM: mp_semaphore_free(obj); break;
  case K_EVENT: mp_event_free(obj); break;
  case K_COND: mp_condition_free(obj); break;
  default: mp_barrier_free(obj); break;
  }
}

static int pred_calls;
static int pred(void *arg) {
  (void)arg;
  return ++pred_calls % 3 == 0;
}

/* One operation on the object; the result must be a library code, or in
 * range where the call returns a value. */
static void op_kind(int k, void *o, uint8_t op) {
  int rc = 0;
  switch (k) {
  case K_LOCK:
    switch (op % 3) {
    case 0: fz_rc(mp_lock_acquire(o, 0), "lock acquire"); break;
    case 1: fz_rc(mp_lock_release(o), "lock release"); break;
    default:
      rc = mp_lock_locked(o);
      fz_check(rc == 0 || rc == 1 || fz_rc(rc, "locked") < 0);
    }
    break;
  case K_RLOCK:
    switch (op % 3) {
    case 0: fz_rc(mp_rlock_acquire(o, 0), "rlock acquire"); break;
    case 1: fz_rc(mp_rlock_release(o), "rlock release"); break;
    default:
      rc = mp_rlock_depth(o);
      fz_check(rc >= 0 || fz_rc(rc, "depth") < 0);
    }
    break;
  case K_SEM:
  case K_BSEM:
    switch (op % 3) {
    case 0: fz_rc(mp_semaphore_acquire(o, 0), "sem acquire"); break;
    case 1: fz_rc(mp_semaphore_release(o), "sem release"); break;
    default:
      rc = mp_semaphore_get_value(o);
      fz_check(rc >= 0 || fz_rc(rc, "get_value") < 0);
    }
    break;
  case K_EVENT:
    switch (op % 4) {
    case 0: fz_rc(mp_event_set(o), "event set"); break;
    case 1: fz_rc(mp_event_clear(o), "event clear"); break;
    case 2: fz_rc(mp_event_wait(o, 0), "event wait"); break;
    default:
      rc = mp_event_is_set(o);
      fz_check(rc == 0 || rc == 1 || fz_rc(rc, "is_set") < 0);
    }
    break;
  case K_COND:
    switch (op % 6) {
    case 0: fz_rc(mp_condition_acquire(o, 0), "cond acquire"); break;
    case 1: fz_rc(mp_condition_release(o), "cond release"); break;
    case 2: fz_rc(mp_condition_wait(o, 0), "cond wait"); break;
    case 3: fz_rc(mp_condition_notify(o, op >> 4), "cond notify"); break;
    case 4: fz_rc(mp_condition_notify_all(o), "cond notify_all"); break;
    default: fz_rc(mp_condition_wait_for(o, pred, NULL, 0), "wait_for");
    }
    break;
  default:
    switch (op % 6) {
    case 0:
      rc = mp_barrier_wait(o, 0);
      fz_check(rc >= 0 || fz_rc(rc, "barrier wait") < 0);
      break;
    case 1: rc = fz_rc(mp_barrier_reset(o), "barrier reset"); break;
    case 2: rc = fz_rc(mp_barrier_abort(o), "barrier abort"); break;
    case 3:
      rc = mp_barrier_broken(o);
      fz_check(rc == 0 || rc == 1 || fz_rc(rc, "broken") < 0);
      break;
    case 4:
      rc = mp_barrier_n_waiting(o);
      fz_check(rc >= 0 || fz_rc(rc, "n_waiting") < 0);
      break;
    default:
      rc = mp_barrier_parties(o);
      fz_check(rc >= 0 || fz_rc(rc, "parties") < 0);
    }
    if (rc == MP_ETIMEDOUT)
      stuck = true;
  }
}

/* Releases whatever this thread may still hold, as a program would before
 * destroying (locks held by this thread keep destroy busy). A scribbled
 * head makes release refuse (MP_EINVAL) with the lock still held: that
 * leaves a word in memory about to be freed, which nothing follows. */
static void unwind(int k, void *o) {
  for (int i = 0; i < 8; i++) {
    int rc = k == K_LOCK    ? mp_lock_release(o)
             : k == K_RLOCK ? mp_rlock_release(o)
             : k == K_COND  ? mp_condition_release(o)
                            : -1;
    if (rc != 0)
      break;
  }
}

static void run_ops(fz_reader *r, int k, void *o, void *mem, size_t size) {
  unsigned n = 0;
  while (r->left > 0 && n++ < 48 && !stuck) {
    uint8_t op = fz_u8(r);
    if (op == 0xff)
      scribble(r, mem, size);
    else
      op_kind(k, o, op);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_reader r = {data, size};
  uint8_t sel = fz_u8(&r);
  int k = sel % K_N;
  bool named = (sel >> 3) & 1;
  unsigned parties = 1 + ((sel >> 4) & 3);
  unsigned pre = fz_u8(&r) % 8;
  stuck = false;

  if (!named) {
    void *obj = fz_aligned(MP_BARRIER_SIZE);
    memset(obj, 0, MP_BARRIER_SIZE);
    fz_check(init_kind(k, obj, parties) == 0);
    for (unsigned i = 0; i < pre; i++)
      op_kind(k, obj, (uint8_t)i);
    scribble(&r, obj, sizes[k]);
    run_ops(&r, k, obj, obj, sizes[k]);
    unwind(k, obj);
    fz_rc(destroy_kind(k, obj), "destroy");
    free(obj);
    return 0;
  }

  /* By name: a segment laid out as object.c lays out a named object, then
   * scribbled, then opened. */
  char name[64], shm[80];
  snprintf(name, sizeof name, "fz%d-sync", (int)getpid());
  snprintf(shm, sizeof shm, "/mp_%s", name);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t seg = (SEG_HEADER + sizes[k] + page - 1) / page * page;
  int fd = shm_open(shm, O_RDWR | O_CREAT | O_TRUNC, 0600);
  fz_check(fd >= 0);
  fz_check(ftruncate(fd, (off_t)seg) == 0);
  unsigned char *m = mmap(NULL, seg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  fz_check(m != MAP_FAILED);
  fz_check(init_kind(k, m + SEG_HEADER, parties) == 0);
  for (unsigned i = 0; i < pre; i++)
    op_kind(k, m + SEG_HEADER, (uint8_t)i);
  unwind(k, m + SEG_HEADER);
  /* It claims to be a named object now (it was made in place). */
  ((mp__object_head *)(m + SEG_HEADER))->origin = MP__ORIGIN_NAMED;
  seg_header h = {.magic = 0x4d505347u, .version = MP__LAYOUT_VERSION,
                  .type = types[k], .segment_size = seg,
                  .object_size = sizes[k], .creator_pid = (int32_t)getpid()};
  snprintf(h.name, sizeof h.name, "%s", name);
  memcpy(m, &h, sizeof h);
  scribble(&r, m, seg);
  void *o = NULL;
  int rc = fz_rc(open_kind(k, &o, name), "open");
  if (rc == 0) {
    run_ops(&r, k, o, m, seg);
    unwind(k, o);
    free_kind(k, o);
  } else {
    fz_check(o == NULL);
  }
  munmap(m, seg);
  shm_unlink(shm);
  return 0;
}
