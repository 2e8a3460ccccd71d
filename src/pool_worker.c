/* pool_worker.c - the worker side of a pool: the loop every worker
 * (process or thread) runs over its slot's ring of task descriptors, the
 * process workers' entry point, and the registry of named task functions
 * that spawn and forkserver workers look their functions up in.
 *
 * DESIGN
 * A worker owns one slot of the pool's segment (pool_internal.h). It runs
 * the initializer, reports READY, then takes descriptors in order: for
 * each it reserves room for the result in its output area, publishes
 * `started`, runs the task (a bytes task once, a map chunk item by item,
 * publishing `item` after each), writes the outcome into the descriptor
 * and publishes `tail`. The order of those stores is what lets the parent
 * tell, after a crash, which task (and which item) was running: nothing
 * of a descriptor counts as begun before `started`, and an item's result
 * and status are written before `item` passes it.
 *
 * With nothing to do a worker spins for a few microseconds (a task
 * stream keeps it busy without a system call per task), then sleeps on
 * its slot's futex word. A process worker wakes at least once a second
 * to check that the pool's process still exists, in case the
 * parent-death signal could not be armed.
 *
 * Functions are found through the segment's function table: by the
 * parent's pointer under fork and in threads (the same image), by
 * registered name under spawn and forkserver, resolved once per worker
 * and cached. A worker trusts its parent but still checks every offset and
 * length of a descriptor against its areas, so a corrupted segment ends
 * the worker (and fails its task) instead of scribbling elsewhere. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "os/cpu.h"
#include "pool_internal.h"

/* How long an idle worker spins before it sleeps, and how often a process
 * worker that sleeps checks that its parent is alive. */
/* A worker wakes its parent after a descriptor only when this many or
 * fewer remain queued. */
#define NOTIFY_LOW (MP__POOL_RING / 4)
#define WORKER_SPIN_NS 10000
#define PARENT_CHECK_NS 1000000000
/* Exit statuses of a process worker (the parent reads the slot's state
 * first; these only tell a log reader why). */
#define EXIT_OK 0
#define EXIT_INIT_FAILED 1
#define EXIT_BAD_BOOT 2
#define EXIT_CORRUPT 3

/* ---- the registry of named functions ------------------------------------
 * An append-only list with an atomic head: entries are pushed with a
 * compare-and-swap and never removed, so lookups need no lock, and a fork
 * can never leave a child with a registry lock held by a thread it does
 * not have. A registration that loses the race rescans the entries pushed
 * meanwhile, so a name is never bound twice. */

typedef void (*any_fn)(void);

typedef struct reg_entry {
  struct reg_entry *next;
  int kind;
  any_fn fn;
  char name[];
} reg_entry;

static _Atomic(reg_entry *) registry;

/* reg_scan looks for kind and name in the entries from e down to stop. */
static reg_entry *reg_scan(reg_entry *e, reg_entry *stop, int kind,
                           const char *name) {
  for (; e != stop; e = e->next)
    if (e->kind == kind && strcmp(e->name, name) == 0)
      return e;
  return NULL;
}

static int reg_add(int kind, const char *name, any_fn fn) {
  if (name == NULL || name[0] == '\0')
    return mp__fail(MP_EINVAL, "the name is NULL or empty");
  if (fn == NULL)
    return mp__fail(MP_EINVAL, "fn is NULL");
  size_t len = strlen(name);
  if (len > MP__POOL_NAME_MAX)
    return mp__fail(MP_EINVAL, "the name has %zu bytes, at most %d", len,
                    MP__POOL_NAME_MAX);
  reg_entry *head = atomic_load_explicit(&registry, memory_order_acquire);
  reg_entry *found = reg_scan(head, NULL, kind, name);
  if (found != NULL)
    return found->fn == fn ? 0
                           : mp__fail(MP_EEXIST, "'%s' names another "
                                                 "function", name);
  reg_entry *e = mp__alloc(sizeof *e + len + 1);
  if (e == NULL)
    return MP_ENOMEM;
  e->kind = kind;
  e->fn = fn;
  memcpy(e->name, name, len + 1);
  for (;;) {
    e->next = head;
    reg_entry *seen = head;
    if (atomic_compare_exchange_weak_explicit(&registry, &head, e,
                                              memory_order_release,
                                              memory_order_acquire))
      return 0;
    /* Others pushed entries meanwhile: check those before trying again. */
    found = reg_scan(head, seen, kind, name);
    if (found != NULL) {
      mp__free(e);
      return found->fn == fn ? 0 : MP_EEXIST;
    }
  }
}

int mp_pool_register_task(const char *name, mp_pool_task_fn fn) {
  return reg_add(MP__POOL_FN_TASK, name, (any_fn)fn);
}

int mp_pool_register_map(const char *name, mp_pool_map_fn fn) {
  return reg_add(MP__POOL_FN_MAP, name, (any_fn)fn);
}

int mp_pool_register_init(const char *name, mp_pool_init_fn fn) {
  return reg_add(MP__POOL_FN_INIT, name, (any_fn)fn);
}

int mp__pool_registry_name_of(int kind, any_fn fn, char *out, size_t cap) {
  reg_entry *e = atomic_load_explicit(&registry, memory_order_acquire);
  for (; e != NULL; e = e->next) {
    if (e->kind == kind && e->fn == fn) {
      size_t len = strlen(e->name);
      if (len >= cap)
        return MP_ENAMETOOLONG;
      memcpy(out, e->name, len + 1);
      return 0;
    }
  }
  return MP_ENOENT;
}

any_fn mp__pool_registry_find(int kind, const char *name) {
  reg_entry *e = atomic_load_explicit(&registry, memory_order_acquire);
  e = reg_scan(e, NULL, kind, name);
  return e != NULL ? e->fn : NULL;
}

/* ---- the running task's context ------------------------------------------
 * Thread-local: each worker thread of a ThreadPool runs its own task. */

static _Thread_local const void *cur_ctx;
static _Thread_local size_t cur_ctx_len;

void mp__pool_set_context(const void *ctx, size_t len) {
  cur_ctx = ctx;
  cur_ctx_len = len;
}

const void *mp_pool_context(size_t *size) {
  if (size != NULL)
    *size = cur_ctx != NULL ? cur_ctx_len : 0;
  return cur_ctx;
}

/* ---- waking the parent --------------------------------------------------- */

void mp__pool_wake_parent(mp__pool_header *h) {
  atomic_fetch_add_explicit(&h->parent_wake, 1, memory_order_seq_cst);
  mp__os_futex_wake((uint32_t *)&h->parent_wake, 1, true);
}

/* notify_parent wakes the result thread if it sleeps. The fence orders the
 * store the caller just published before the load of the flag; the
 * result thread fences between setting the flag and its last look. */
static void notify_parent(mp__pool_header *h) {
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&h->parent_sleeping, memory_order_relaxed))
    mp__pool_wake_parent(h);
}

/* ---- the worker loop ------------------------------------------------------ */

typedef struct worker {
  mp__pool_header *h;
  mp__pool_geom g; /* private: checked once, never re-read from h */
  mp__pool_slot *s;
  bool threads;
  bool use_pointers; /* fork and threads: call the parent's pointers */
  unsigned char *in, *out;
  uint64_t in_cap, out_cap;
  uint64_t out_w; /* where the next result goes (virtual) */
  pid_t owner;
  int64_t next_parent_check;
  any_fn cache[MP__POOL_FN_MAX];
  uint8_t cached[MP__POOL_FN_MAX]; /* 0 unknown, 1 found, 2 missing */
} worker;

/* resolve returns the function at index idx of the table if it is of
 * kind, or NULL. */
static any_fn resolve(worker *w, uint32_t idx, int kind) {
  if (idx >= MP__POOL_FN_MAX)
    return NULL;
  if (w->cached[idx] == 1)
    return w->cache[idx];
  if (w->cached[idx] == 2)
    return NULL;
  mp__pool_fn *e = &w->h->fns[idx];
  if (!atomic_load_explicit(&e->ready, memory_order_acquire))
    return NULL; /* not yet published: do not cache */
  any_fn fn = NULL;
  if ((int)e->kind == kind) {
    if (w->use_pointers) {
      fn = (any_fn)(uintptr_t)e->ptr;
    } else {
      char name[MP__POOL_NAME_MAX + 1];
      memcpy(name, e->name, sizeof name);
      name[MP__POOL_NAME_MAX] = '\0';
      if (name[0] != '\0')
        fn = mp__pool_registry_find(kind, name);
    }
  }
  w->cache[idx] = fn;
  w->cached[idx] = fn != NULL ? 1 : 2;
  return fn;
}

/* parent_gone tells whether the pool's process has ended (checked at
 * most once a second; never for threads). */
static bool parent_gone(worker *w) {
  if (w->threads)
    return false;
  int64_t now = mp__os_now_ns();
  if (now < w->next_parent_check)
    return false;
  w->next_parent_check = now + PARENT_CHECK_NS;
  return !mp__os_pid_alive(w->owner);
}

/* ready_for tells whether what a worker waits for has happened. */
static bool ready_for(worker *w, int why, uint32_t tail, uint64_t need) {
  mp__pool_slot *s = w->s;
  if (atomic_load_explicit(&s->abort, memory_order_acquire))
    return true;
  if (why == MP__POOL_WAIT_WORK)
    return atomic_load_explicit(&s->head, memory_order_acquire) != tail ||
           atomic_load_explicit(&s->stop, memory_order_acquire);
  uint64_t f = atomic_load_explicit(&s->out_free, memory_order_acquire);
  return mp__pool_area_reserve(w->out_w, f, w->out_cap, need) != UINT64_MAX;
}

/* wake_siblings wakes the other workers that sleep while work waits in
 * their rings. The parent wakes only one sleeping worker per dispatch and
 * leaves the rest to it: woken one after the other from the CPU the
 * parent runs on, every worker would be queued on that CPU or the one
 * woken just before, and run one after another until the scheduler
 * moves them; woken from here, each finds an idle CPU. */
static void wake_siblings(worker *w) {
  atomic_thread_fence(memory_order_seq_cst);
  for (uint32_t i = 0; i < w->g.nslots; i++) {
    mp__pool_slot *o = mp__pool_slot_at(w->h, &w->g, i);
    if (o == w->s ||
        atomic_load_explicit(&o->sleeping, memory_order_relaxed) !=
            MP__POOL_WAIT_WORK ||
        atomic_load_explicit(&o->head, memory_order_acquire) ==
            atomic_load_explicit(&o->tail, memory_order_relaxed))
      continue;
    atomic_fetch_add_explicit(&o->wake, 1, memory_order_seq_cst);
    mp__os_futex_wake((uint32_t *)&o->wake, 1, true);
  }
}

/* wait_for spins, then sleeps, until ready_for holds. Returns 0, or -1
 * when the pool's process is gone. */
static int wait_for(worker *w, int why, uint32_t tail, uint64_t need) {
  mp__pool_slot *s = w->s;
  int64_t spin_until = mp__os_now_ns() + WORKER_SPIN_NS;
  for (unsigned i = 1;; i++) {
    if (ready_for(w, why, tail, need))
      return 0;
    mp__os_cpu_relax();
    if ((i & 63) == 0) {
      if (mp__os_now_ns() >= spin_until)
        break;
      /* On a busy machine the thread we wait for may need this CPU. */
      mp__os_yield();
    }
  }
  for (;;) {
    uint32_t seq = atomic_load_explicit(&s->wake, memory_order_acquire);
    atomic_store_explicit(&s->sleeping, (uint32_t)why, memory_order_relaxed);
    /* Pairs with the parent's fence between publishing and reading
     * `sleeping`: either it sees the flag or we see its change. */
    atomic_thread_fence(memory_order_seq_cst);
    if (ready_for(w, why, tail, need)) {
      atomic_store_explicit(&s->sleeping, MP__POOL_AWAKE,
                            memory_order_relaxed);
      /* The parent may have counted this worker as the one it woke. */
      if (why == MP__POOL_WAIT_WORK)
        wake_siblings(w);
      return 0;
    }
    /* Room comes only when the parent collects, and it may sleep without
     * knowing: descriptors finished with a long queue ahead do not wake
     * it. */
    if (why == MP__POOL_WAIT_SPACE)
      notify_parent(w->h);
    int64_t until = w->threads ? INT64_MAX
                               : mp__os_now_ns() + PARENT_CHECK_NS;
    mp__os_futex_wait((uint32_t *)&s->wake, seq, until, true);
    atomic_store_explicit(&s->sleeping, MP__POOL_AWAKE, memory_order_relaxed);
    if (ready_for(w, why, tail, need)) {
      if (why == MP__POOL_WAIT_WORK)
        wake_siblings(w);
      return 0;
    }
    if (parent_gone(w))
      return -1;
  }
}

/* run_desc runs descriptor d (number tail). Returns 0, -1 when the worker
 * must leave (parent gone, abort), EXIT_CORRUPT for a descriptor that
 * does not fit the areas. */
static int run_desc(worker *w, mp__pool_desc *d, uint32_t tail) {
  mp__pool_slot *s = w->s;
  uint32_t kind = d->kind, fn_idx = d->fn;
  uint64_t in_off = d->in_off, in_len = d->in_len;
  uint64_t ctx_len = d->ctx_len, ctx_al = mp__pool_align(ctx_len);
  uint64_t need;
  uint32_t count = 0, in_size = 0, out_size = 0;
  uint64_t status_off = 0;

  if (in_len > w->in_cap / 2 || (in_off % w->in_cap) + in_len > w->in_cap ||
      ctx_al > in_len)
    return EXIT_CORRUPT;
  /* The record: the context, then the input proper. */
  uint64_t rec_off = in_off;
  in_off += ctx_al;
  in_len -= ctx_al;
  /* Read once: the descriptor is shared memory, and the bound checked here
   * must be the bound the task is given. */
  uint64_t out_cap = d->out_cap;
  if (kind == MP__POOL_DESC_APPLY) {
    need = out_cap;
    if (need > w->g.max_result)
      return EXIT_CORRUPT;
  } else if (kind == MP__POOL_DESC_MAP) {
    count = d->count;
    in_size = d->in_size;
    out_size = d->out_size;
    if ((uint64_t)count * in_size != in_len)
      return EXIT_CORRUPT;
    status_off = ((uint64_t)count * out_size + 3) & ~(uint64_t)3;
    need = status_off + (uint64_t)count * sizeof(int32_t);
  } else {
    return EXIT_CORRUPT;
  }
  need = mp__pool_align(need);
  if (need > w->out_cap / 2)
    return EXIT_CORRUPT;

  /* Room for the result first: a worker that waits here has not begun
   * the task, so dying now fails nothing. */
  uint64_t at;
  for (;;) {
    uint64_t f = atomic_load_explicit(&s->out_free, memory_order_acquire);
    at = mp__pool_area_reserve(w->out_w, f, w->out_cap, need);
    if (at != UINT64_MAX)
      break;
    if (wait_for(w, MP__POOL_WAIT_SPACE, tail, need) != 0)
      return -1;
    if (atomic_load_explicit(&s->abort, memory_order_acquire))
      return -1;
  }
  const unsigned char *in = w->in + in_off % w->in_cap;
  unsigned char *out = w->out + at % w->out_cap;
  mp__pool_set_context(ctx_len ? w->in + rec_off % w->in_cap : NULL,
                       (size_t)ctx_len);

  bool timed = w->g.timed != 0;
  int64_t t0 = mp__os_now_ns();
  /* Published with `started`: where the results go (so the parent can
   * read the finished items of a chunk after a crash) and, under a time
   * limit, when the first item began (so the parent never measures this
   * item from an older one's start). */
  d->out_off = at;
  if (timed)
    atomic_store_explicit(&s->item_start_ns, (uint64_t)t0,
                          memory_order_relaxed);
  atomic_store_explicit(&s->item, 0, memory_order_relaxed);
  atomic_store_explicit(&s->started, tail + 1, memory_order_release);

  if (kind == MP__POOL_DESC_APPLY) {
    mp_pool_task_fn fn =
        (mp_pool_task_fn)resolve(w, fn_idx, MP__POOL_FN_TASK);
    size_t len = 0;
    int st = MP_ENOENT;
    if (fn != NULL) {
      st = fn(in_len ? in : NULL, in_len, out, out_cap, &len);
      if (len > out_cap) {
        st = MP_ETOOBIG;
        len = 0;
      }
    }
    d->out_len = len;
    d->status = st;
    w->out_w = at + mp__pool_align(len);
  } else {
    mp_pool_map_fn fn = (mp_pool_map_fn)resolve(w, fn_idx, MP__POOL_FN_MAP);
    int32_t *statuses = (int32_t *)(out + status_off);
    for (uint32_t j = 0; j < count; j++) {
      int st = MP_ENOENT;
      if (fn != NULL)
        st = fn(in_size ? in + (size_t)j * in_size : NULL,
                out_size ? out + (size_t)j * out_size : NULL);
      statuses[j] = st;
      /* The item's result and status, and the next item's start time,
       * are written before the item counts as finished. */
      if (timed && j + 1 < count)
        atomic_store_explicit(&s->item_start_ns, (uint64_t)mp__os_now_ns(),
                              memory_order_relaxed);
      atomic_store_explicit(&s->item, j + 1, memory_order_release);
    }
    d->out_len = need;
    d->status = 0;
    w->out_w = at + need;
  }
  mp__pool_set_context(NULL, 0);
  d->run_ns = (uint64_t)(mp__os_now_ns() - t0);
  return 0;
}

/* run_initializer runs the pool's initializer, if any. Returns its status.
 * The copy of initargs lives as long as the worker, since an initializer
 * may keep pointers into it (Python's initargs objects live on too). */
static int run_initializer(worker *w, void **initargs_copy) {
  /* The private geometry, checked against the mapping at start. */
  if (w->g.init_fn < 0)
    return 0;
  mp_pool_init_fn init =
      (mp_pool_init_fn)resolve(w, (uint32_t)w->g.init_fn, MP__POOL_FN_INIT);
  if (init == NULL)
    return MP_ENOENT;
  size_t n = (size_t)w->g.initargs_size;
  void *copy = NULL;
  if (n > 0) {
    copy = mp__alloc(n);
    if (copy == NULL)
      return MP_ENOMEM;
    memcpy(copy, (const char *)w->h + w->g.initargs_off, n);
  }
  *initargs_copy = copy;
  return init(copy, n);
}

int mp__pool_worker_run(mp__pool_header *h, const mp__pool_boot *b,
                        bool threads) {
  uint32_t slot = b->slot;
  if (!mp__pool_geom_ok(&b->geom, slot, b->seg_size))
    return EXIT_BAD_BOOT;
  /* The fn cache makes this a few kilobytes: on the heap, not the stack
   * of a thread the caller sized. */
  worker *w = mp__calloc(1, sizeof *w);
  if (w == NULL)
    return EXIT_INIT_FAILED;
  w->h = h;
  w->g = b->geom;
  w->s = mp__pool_slot_at(h, &w->g, slot);
  w->threads = threads;
  w->use_pointers = threads || (w->g.method == MP_START_FORK &&
                                w->g.image_token == mp__image_token());
  w->in = mp__pool_in_area(h, &w->g, slot);
  w->out = mp__pool_out_area(h, &w->g, slot);
  w->in_cap = w->g.in_cap;
  w->out_cap = w->g.out_cap;
  w->owner = (pid_t)w->g.owner;
  mp__pool_slot *s = w->s;
  uint32_t tail = s->tail_base;
  w->out_w = s->out_base;
  /* Workers started one after the other from one thread would otherwise
   * all be woken on the CPU they were forked on. */
  mp__os_spread(slot);

  void *initargs_copy = NULL;
  int rc = run_initializer(w, &initargs_copy);
  if (rc != 0) {
    atomic_store_explicit(&s->init_rc, rc, memory_order_relaxed);
    atomic_store_explicit(&s->state, MP__POOL_W_INIT_FAILED,
                          memory_order_release);
    notify_parent(h);
    mp__free(initargs_copy);
    mp__free(w);
    return EXIT_INIT_FAILED;
  }
  atomic_store_explicit(&s->state, MP__POOL_W_READY, memory_order_release);
  notify_parent(h);

  int status = EXIT_OK;
  uint64_t done = 0;
  for (;;) {
    if (atomic_load_explicit(&s->abort, memory_order_acquire))
      break;
    uint32_t head = atomic_load_explicit(&s->head, memory_order_acquire);
    if (head == tail) {
      if (atomic_load_explicit(&s->stop, memory_order_acquire))
        break;
      if (wait_for(w, MP__POOL_WAIT_WORK, tail, 0) != 0)
        break;
      continue;
    }
    if (head - tail > MP__POOL_RING) {
      status = EXIT_CORRUPT;
      break;
    }
    int r = run_desc(w, &s->ring[tail % MP__POOL_RING], tail);
    if (r != 0) {
      status = r < 0 ? EXIT_OK : r;
      break;
    }
    tail++;
    atomic_store_explicit(&s->tail, tail, memory_order_release);
    /* With a long queue ahead, the parent is woken once the queue runs
     * low rather than for every descriptor: it collects in batches, and a
     * stream of small tasks costs no system call per task. */
    if (head - tail <= NOTIFY_LOW)
      notify_parent(h);
    if (w->g.maxtasks != 0 && ++done >= w->g.maxtasks)
      break;
  }
  atomic_store_explicit(&s->state, MP__POOL_W_EXITING, memory_order_release);
  notify_parent(h);
  mp__free(initargs_copy);
  mp__free(w);
  return status;
}

/* ---- the process workers' entry point ------------------------------------ */

int mp__pool_worker_target(void *arg) {
  const mp__pool_boot *b = arg;
  if (b == NULL || b->magic != MP__POOL_BOOT_MAGIC) {
    (void)mp_process_set_error("pool worker: malformed boot record");
    return EXIT_BAD_BOOT;
  }
  if (b->seg != NULL) /* fork: the inherited mapping */
    return mp__pool_worker_run(b->seg, b, false);
  char name[sizeof b->seg_name];
  memcpy(name, b->seg_name, sizeof name);
  name[sizeof name - 1] = '\0';
  void *obj = NULL;
  if (mp__object_open(&obj, (size_t)b->seg_size, MP__POOL_OBJECT_TYPE,
                      name) != 0) {
    (void)mp_process_set_error("pool worker: cannot open the pool's segment");
    return EXIT_BAD_BOOT;
  }
  mp__pool_header *h = obj;
  int status;
  if (h->magic != MP__POOL_MAGIC || h->version != MP__POOL_VERSION ||
      h->size != b->seg_size)
    status = EXIT_BAD_BOOT;
  else
    status = mp__pool_worker_run(h, b, false);
  mp__object_free(obj, (size_t)b->seg_size);
  return status;
}

/* Spawn and forkserver workers find their entry point by this name. */
__attribute__((constructor)) static void register_worker_target(void) {
  (void)mp_register_target(MP__POOL_WORKER_TARGET, mp__pool_worker_target);
}
