/* pool_internal.h - what the pool files share: the layout of the pool's
 * shared segment (header, function table, one slot per worker with its
 * ring of task descriptors and its input and output areas), the worker's
 * boot record, the parent's private bookkeeping (workers, jobs, pending
 * work) and the function registry. pool.c holds the public calls,
 * pool_worker.c the worker's loop and the registry, pool_handler.c the
 * parent's result thread.
 *
 * DESIGN (the whole pool)
 * One shared segment per pool: anonymous MAP_SHARED memory inherited by
 * fork workers and used in place by thread workers, or a named segment
 * that spawn and forkserver workers open by name. It holds no pointers,
 * only offsets and counters.
 *
 * Each worker owns one slot. The parent hands it work through a ring of
 * MP__POOL_RING descriptors: the parent writes descriptor head % RING and
 * then publishes head (release); the worker runs descriptors in order,
 * writes each one's outcome into it and then publishes tail (release).
 * Single producer, single consumer, so no descriptor is ever claimed by
 * two workers, and the parent always knows exactly which task a worker was
 * running when it died: the one at tail, if `started` says it had begun,
 * and within a map chunk the item `item` counts up to.
 *
 * Bytes travel through two areas per slot, each used as a circular buffer
 * of virtual (ever-increasing) offsets. The input area is the parent's:
 * it copies a task's input in before publishing, and frees it when it
 * collects the result. The output area is the worker's: it reserves room
 * for a result before running a task (waiting while the parent has not
 * freed enough), and the parent frees it as it collects. A record never
 * wraps: one that would cross the end starts at the next lap instead. The
 * parent checks every offset and length it reads back against what it
 * knows, so a task that scribbles on the segment fails itself, not the
 * parent.
 *
 * Sleeping: a worker with nothing to do spins briefly, then announces
 * `sleeping` and waits on its slot's `wake` futex word; the parent bumps
 * and wakes it only when the flag says so, and of several sleeping
 * workers it gave work at once it wakes one, which wakes the others from
 * its own CPU (so they spread over idle CPUs instead of queueing behind
 * each other on the parent's); the result thread's tick wakes any that a
 * dying sibling left asleep. The result thread sleeps the same way on the
 * header's `parent_wake`, announced by `parent_sleeping`: a worker wakes
 * it after publishing a tail only when it sleeps and the worker's queue
 * runs low (or the worker waits for output room). Both sides use a
 * sequentially consistent fence between "publish" and "check the other
 * side's flag", so a wake is never lost.
 *
 * A crash at any step: a worker dead before it publishes `started` ran
 * nothing (its descriptor stays for the replacement); dead after, the
 * descriptor at tail failed (items before `item` of a map chunk are
 * complete, and the rest is run again). The parent resets the slot's
 * worker-side counters only after the dead worker is reaped. */
#ifndef MP_POOL_INTERNAL_H
#define MP_POOL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define MP__POOL_MAGIC 0x4d50504cu /* "MPPL" */
#define MP__POOL_BOOT_MAGIC 0x4d505042u /* "MPPB" */
#define MP__POOL_VERSION 1
/* Descriptors per slot ring (a power of two). */
#define MP__POOL_RING 256u
/* Distinct functions one pool can run. */
#define MP__POOL_FN_MAX 256u
#define MP__POOL_NAME_MAX 255
/* Alignment of every record in the input and output areas. */
#define MP__POOL_ALIGN 16u
/* Defaults of the size options. */
#define MP__POOL_DEFAULT_SIZE ((size_t)1 << 20)
/* The smallest input or output area, so small limits still pipeline. */
#define MP__POOL_MIN_AREA ((size_t)64 << 10)
#define MP__POOL_CACHELINE 64

/* The object type of the pool's segment (see mp__object_new). */
#define MP__POOL_OBJECT_TYPE MP__TYPE_POOL

enum mp__pool_fn_kind {
  MP__POOL_FN_TASK = 1,
  MP__POOL_FN_MAP = 2,
  MP__POOL_FN_INIT = 3,
};

/* An entry of the segment's function table. */
typedef struct mp__pool_fn {
  _Atomic uint32_t ready; /* 1 once the entry is written (release) */
  uint32_t kind;          /* enum mp__pool_fn_kind */
  uint64_t ptr;           /* its address in the parent's image */
  char name[MP__POOL_NAME_MAX + 1]; /* "" when not registered */
} mp__pool_fn;

enum mp__pool_desc_kind {
  MP__POOL_DESC_APPLY = 1,
  MP__POOL_DESC_MAP = 2,
};

/* A task descriptor: the first block is written by the parent before it
 * publishes head, the second by the worker before it publishes tail. */
typedef struct mp__pool_desc {
  uint32_t kind;     /* enum mp__pool_desc_kind */
  uint32_t fn;       /* index in the function table */
  uint64_t in_off;   /* virtual offset of the input record */
  uint64_t in_len;   /* bytes of the record: the aligned context, then the
                        input (map: count * in_size) */
  uint64_t out_cap;  /* apply: the task's output capacity */
  uint32_t count;    /* map: items */
  uint32_t in_size;  /* map: bytes of one input item */
  uint32_t out_size; /* map: bytes of one result item */
  uint32_t ctx_len;  /* context bytes at the start of the input record;
                        the input proper follows, aligned */
  /* The worker's part. */
  uint64_t out_off; /* virtual offset of the result in the output area */
  uint64_t out_len; /* apply: result bytes; map: items and statuses */
  int32_t status;   /* apply: the task's return value */
  uint32_t reserved2;
  uint64_t run_ns; /* how long it ran: a hint for how deep to queue */
} mp__pool_desc;

/* Worker life, as the worker reports it in its slot. */
enum mp__pool_wstate {
  MP__POOL_W_NONE = 0,   /* no worker, or not yet running */
  MP__POOL_W_READY,      /* initialised; running descriptors */
  MP__POOL_W_EXITING,    /* done (maxtasksperchild or stop); exits now */
  MP__POOL_W_INIT_FAILED /* its initializer failed; init_rc says how */
};

/* What a sleeping worker waits for. */
enum mp__pool_sleep {
  MP__POOL_AWAKE = 0,
  MP__POOL_WAIT_WORK = 1,  /* head == tail */
  MP__POOL_WAIT_SPACE = 2, /* the output area is full */
};

typedef struct mp__pool_slot {
  /* Written by the parent. */
  _Atomic uint32_t head; /* descriptors published */
  _Atomic uint32_t wake; /* futex word the worker sleeps on */
  _Atomic uint32_t stop; /* leave once the ring is empty */
  _Atomic uint32_t abort; /* leave before the next descriptor */
  _Atomic uint64_t out_free; /* the parent collected output up to here */
  uint64_t out_base; /* where a new worker starts writing output */
  uint32_t tail_base; /* where a new worker starts reading descriptors */
  uint32_t generation; /* counts the workers this slot had */
  char pad1[MP__POOL_CACHELINE - 40];
  /* Written by the worker. */
  _Atomic uint32_t tail;    /* descriptors completed */
  _Atomic uint32_t started; /* descriptors begun (tail or tail + 1) */
  _Atomic uint32_t item;    /* items of the running map chunk finished */
  _Atomic uint32_t sleeping; /* enum mp__pool_sleep */
  _Atomic uint32_t state;    /* enum mp__pool_wstate */
  _Atomic int32_t init_rc;   /* the initializer's failure */
  _Atomic uint64_t item_start_ns; /* when the running item began */
  char pad2[MP__POOL_CACHELINE - 32];
  mp__pool_desc ring[MP__POOL_RING];
} mp__pool_slot;

/* The segment's header: an object head (see internal.h), the geometry,
 * the parent's futex, the function table and the initargs. Slots follow
 * at slot_off, slot_stride bytes apart; each slot's input area starts
 * area_off bytes into its stride, its output area in_cap bytes later. */
typedef struct mp__pool_header {
  mp__object_head head;
  uint32_t magic;
  uint32_t version;
  uint64_t size;       /* of the object (what mp__object_open checks) */
  uint32_t nslots;
  uint32_t method;     /* mp_start_method, or MP__POOL_THREADS */
  uint64_t slot_off;
  uint64_t slot_stride;
  uint64_t area_off;
  uint64_t in_cap;     /* bytes of each input area */
  uint64_t out_cap;    /* bytes of each output area */
  uint64_t max_result; /* a bytes task's output capacity */
  uint64_t maxtasks;   /* per worker, 0: no limit */
  uint32_t timed;      /* workers record when each item starts */
  int32_t owner;       /* the pool's process */
  uint64_t image_token; /* see mp__image_token */
  int32_t init_fn;     /* index of the initializer, -1: none */
  uint32_t reserved;
  uint64_t initargs_off;
  uint64_t initargs_size;
  char pad[MP__POOL_CACHELINE];
  _Atomic uint32_t parent_wake;     /* futex word of the result thread */
  _Atomic uint32_t parent_sleeping; /* it waits on parent_wake */
  char pad2[MP__POOL_CACHELINE - 8];
  _Atomic uint32_t nfns;
  uint32_t reserved3;
  mp__pool_fn fns[MP__POOL_FN_MAX];
} mp__pool_header;

/* The method value of a ThreadPool. */
#define MP__POOL_THREADS 100

/* The segment's geometry and the pool's settings, as the pool's process
 * decided them. Each side keeps its own private copy and never re-reads
 * them from the segment, which anyone who can write it (a task that
 * scribbles, a same-user process opening a named segment) could change
 * under it: the parent in mp_pool.g from creation on, each worker in its
 * boot record (checked once against the size of its mapping). The header
 * holds the same values for readers of the segment only. */
typedef struct mp__pool_geom {
  uint32_t nslots;
  uint32_t method;      /* mp_start_method, or MP__POOL_THREADS */
  uint64_t slot_off;
  uint64_t slot_stride;
  uint64_t area_off;
  uint64_t in_cap;
  uint64_t out_cap;
  uint64_t max_result;
  uint64_t maxtasks;
  uint64_t initargs_off;
  uint64_t initargs_size;
  uint64_t image_token;
  int32_t init_fn;      /* -1: none */
  int32_t owner;
  uint32_t timed;
  uint32_t reserved;
} mp__pool_geom;

/* What a worker receives: under fork and in threads a pointer to this
 * record in the parent's memory (seg is valid), under spawn and
 * forkserver a copy of its bytes (the worker opens seg_name). */
typedef struct mp__pool_boot {
  uint32_t magic;
  uint32_t slot;
  uint64_t seg_size;
  void *seg; /* fork and threads only */
  char seg_name[64];
  mp__pool_geom geom;
  struct mp_pool *pool; /* MPI proxies only */
} mp__pool_boot;

/* The addresses of slot i and its areas in a mapping at base, computed
 * from a private, checked geometry only. */
static inline mp__pool_slot *mp__pool_slot_at(void *base,
                                              const mp__pool_geom *g,
                                              uint32_t i) {
  return (mp__pool_slot *)((char *)base + g->slot_off +
                           (uint64_t)i * g->slot_stride);
}
static inline unsigned char *mp__pool_in_area(void *base,
                                              const mp__pool_geom *g,
                                              uint32_t i) {
  return (unsigned char *)mp__pool_slot_at(base, g, i) + g->area_off;
}
static inline unsigned char *mp__pool_out_area(void *base,
                                               const mp__pool_geom *g,
                                               uint32_t i) {
  return mp__pool_in_area(base, g, i) + g->in_cap;
}
static inline uint64_t mp__pool_align(uint64_t n) {
  return (n + MP__POOL_ALIGN - 1) & ~(uint64_t)(MP__POOL_ALIGN - 1);
}

/* mp__pool_geom_ok checks geometry g for slot `slot` against a mapping of
 * size bytes: every area of the slot and the initargs lie inside it, with
 * no overflow on the way. */
static inline bool mp__pool_geom_ok(const mp__pool_geom *g, uint32_t slot,
                                    uint64_t size) {
  uint64_t off = g->slot_off, stride = g->slot_stride, area = g->area_off;
  uint64_t in_cap = g->in_cap, out_cap = g->out_cap;
  if (slot >= g->nslots || in_cap == 0 || out_cap == 0 || stride == 0)
    return false;
  if (g->initargs_off > size || g->initargs_size > size - g->initargs_off)
    return false;
  if (off > size || stride > size || area > stride || in_cap > size ||
      out_cap > size)
    return false;
  /* Every slot up to nslots, since a worker looks at its siblings. */
  if ((uint64_t)g->nslots > (size - off) / stride ||
      area + in_cap + out_cap > stride)
    return false;
  return true;
}

/* mp__pool_area_reserve finds room for need bytes in a circular area of
 * cap bytes whose writer is at w and whose reader has freed up to f (both
 * virtual offsets; the live records are [f, w)). Returns the record's
 * virtual offset (the writer then moves to its end), or UINT64_MAX when
 * there is no room yet. A record never crosses the end of the area, and
 * every record lies within [f, f + cap), so records never overlap. need <=
 * cap / 2 always fits once f == w. When the area is empty and the writer
 * is in its second half, the record starts a fresh lap (at least half the
 * area stays free): a lightly used area keeps touching the same pages. */
static inline uint64_t mp__pool_area_reserve(uint64_t w, uint64_t f,
                                             uint64_t cap, uint64_t need) {
  uint64_t at = w;
  if (at == f && at % cap >= cap / 2)
    at += cap - at % cap;
  uint64_t phys = at % cap;
  if (phys + need > cap)
    at += cap - phys;
  if (at + need - f > cap)
    return UINT64_MAX;
  return at;
}

/* ---- the futex helpers both sides use ---------------------------------- */
void mp__pool_wake_parent(mp__pool_header *h);

/* ---- pool_worker.c ------------------------------------------------------ */
/* mp__pool_worker_run runs a worker's loop in slot b->slot of the segment
 * mapped at h (b->seg_size bytes), with the geometry of b (never the
 * header's), until it is told to stop, its task quota is reached or its
 * initializer fails. threads: a thread worker (no parent-death checks).
 * Returns the exit status of a process worker. */
int mp__pool_worker_run(mp__pool_header *h, const mp__pool_boot *b,
                        bool threads);
/* mp__pool_set_context sets what mp_pool_context returns in this thread
 * (the worker loops set it around each task; NULL clears it). */
void mp__pool_set_context(const void *ctx, size_t len);
/* mp__pool_worker_target is the process workers' entry point, registered
 * as MP__POOL_WORKER_TARGET for spawn and forkserver. */
int mp__pool_worker_target(void *arg);
#define MP__POOL_WORKER_TARGET "mp.pool.worker"

/* The registry of named functions (mp_pool_register_*). */
int mp__pool_registry_name_of(int kind, void (*fn)(void), char *out,
                              size_t cap);
void (*mp__pool_registry_find(int kind, const char *name))(void);

/* ---- the parent's side (pool.c, pool_handler.c) ---------------------------
 * Everything below lives in the pool's process only, under mp_pool.lock
 * unless a field says otherwise. Lock order: the pool's lock, then nothing
 * (callbacks and progress reports run with no lock held). */

/* The pool's life, as Python's RUN, CLOSE, TERMINATE. */
enum mp__pool_state {
  MP__POOL_RUN = 0,
  MP__POOL_CLOSE = 1,
  MP__POOL_TERMINATE = 2,
};

/* A worker's life, as the parent sees it. */
enum mp__pool_pw {
  MP__PW_EMPTY = 0, /* no worker: (re)start one when needed */
  MP__PW_STARTING,  /* started; not yet READY (no new work for it) */
  MP__PW_READY,     /* takes work */
  MP__PW_LEAVING,   /* exiting, killed or told to stop: no new work */
};

/* What the parent published at one ring position. */
typedef struct mp__pool_ref {
  mp_async_result *job;
  uint64_t first;  /* map: the index of the first item */
  uint32_t chunk;  /* map: the chunk the items belong to */
  uint32_t count;  /* map: how many items */
  uint64_t in_off; /* the input record, freed when collected */
  uint64_t in_len;
} mp__pool_ref;

typedef struct mp__pool_worker {
  int state;         /* enum mp__pool_pw */
  mp_process *proc;  /* process workers */
  mp_thread *thread; /* thread workers */
  pid_t pid;
  uint32_t head;      /* descriptors published */
  uint32_t collected; /* descriptors collected */
  uint64_t in_w, in_free; /* the input area (virtual offsets) */
  uint64_t out_free;      /* the output area, as far as collected */
  int kill_reason;    /* 0, or the status of the task it was killed for */
  uint32_t kill_desc; /* which descriptor and item that was */
  uint32_t kill_item;
  int early_deaths;   /* consecutive deaths before READY */
  int start_failures; /* consecutive starts that failed */
  int64_t retry_ns;   /* when to try starting it again */
  bool wake;          /* dispatch published: wake it if it sleeps */
  mp__pool_boot boot;
  mp__pool_ref refs[MP__POOL_RING];
} mp__pool_worker;

/* The remainder of a map chunk to run again (its worker died). */
typedef struct mp__pool_requeue {
  struct mp__pool_requeue *next;
  uint64_t first;
  uint32_t chunk;
  uint32_t count;
} mp__pool_requeue;

enum mp__pool_job_kind {
  MP__JOB_APPLY = 1,
  MP__JOB_MAP = 2,
};

/* A job: one apply_async or one map. The public mp_async_result is a job;
 * an mp_pool_iter points to one. */
struct mp_async_result {
  /* Read without the lock. */
  _Atomic uint32_t ready;    /* futex word: 1 once ready */
  _Atomic uint32_t waiters;  /* threads waiting on ready */
  _Atomic uint32_t progress; /* futex word bumped as items finish */
  _Atomic uint32_t progress_waiters;
  _Atomic int refs; /* the caller's, and the pool's until delivered */
  int kind;         /* enum mp__pool_job_kind */
  pid_t owner;
  pid_t handler_tid; /* the pool's result thread (MP_EDEADLK) */
  mp_pool *pool;     /* while not ready */
  /* Under the pool's lock until ready, then read-only. */
  int status;
  bool failed;       /* error holds the first failure */
  mp_task_error error;
  _Atomic bool abandoned; /* the caller freed it: no callbacks, no copies */
  bool complete;     /* every part accounted for; on the done list */
  bool pending;      /* on the pending queue */
  bool listed_progress;
  mp_pool_callback_fn callback, error_callback;
  void *userdata;
  struct mp_async_result *prev_pending, *next_pending;
  struct mp_async_result *prev_job, *next_job; /* unfinished jobs */
  struct mp_async_result *next_done;           /* delivery list */
  struct mp_async_result *next_progress;       /* progress list */
  uint32_t fn;
  unsigned char *ctx; /* the context bytes (opts.context), or NULL */
  uint32_t ctx_len;
  /* apply */
  unsigned char *in_copy; /* input while not yet published */
  const void *in_borrowed; /* the caller's input, during apply_async */
  size_t in_len;
  unsigned char *data;    /* the result: caller's, inline or allocated */
  size_t data_len;
  size_t data_cap;        /* the task's out_cap */
  bool data_caller;
  bool data_allocated;
  _Alignas(max_align_t) unsigned char inline_data[64]; /* small results */
  /* map */
  const unsigned char *in;
  unsigned char *out;
  size_t count, in_size, out_size;
  size_t chunksize, nchunks, next_chunk;
  size_t items_done;
  size_t outstanding; /* descriptors in flight */
  int *statuses;
  bool statuses_owned;
  mp__pool_requeue *requeue;
  mp_pool_progress_fn progress_fn;
  void *progress_userdata;
  int progress_bar;
  size_t progress_snapshot; /* items_done when listed for a report */
  size_t progress_reported;
  int64_t bar_drawn_ns;
  /* imap */
  bool iter;
  _Atomic uint32_t *chunk_done; /* items finished per chunk */
  uint32_t *fifo;               /* chunks in the order they finished */
  _Atomic size_t fifo_len;
};

/* What a driven pool's owner runs in its result loop (see mp__pool_drive):
 * called once per turn, without the lock, after the turn collected and
 * delivered; returns the latest time (CLOCK_MONOTONIC ns) the loop may
 * sleep until (a finished descriptor, a kick or a dying worker wake it
 * sooner), or a past time to turn again at once. */
typedef int64_t (*mp__pool_drive_hook)(mp_pool *p, void *arg);

struct mp_pool {
  pthread_mutex_t lock;
  pid_t owner;
  bool threads;
  bool mpi;             /* the workers are MPI ranks (pool_mpi.c) */
  int mpi_processes;    /* each rank's local workers, 0: its CPUs */
  double mpi_task_timeout;
  int nworkers;
  mp_start_method method;
  mp_context *context;
  mp__pool_header *h;
  mp__pool_geom g; /* the segment's geometry: never read back from h */
  size_t seg_size;
  char seg_name[64];
  size_t max_input, max_result;
  int64_t timeout_ns; /* per task, 0: none */
  bool has_init;
  mp__pool_worker *workers;
  uint32_t worker_counter; /* behind the workers' names */
  int state; /* enum mp__pool_state */
  int broken_rc;
  mp_task_error broken;
  /* Work not yet published, oldest first. */
  mp_async_result *pending_head, *pending_tail;
  /* Every unfinished job. */
  mp_async_result *jobs;
  size_t njobs;
  /* Jobs to deliver (callbacks, ready) and to report progress of. */
  mp_async_result *done_head, *done_tail;
  mp_async_result *progress_head;
  /* The result thread. */
  mp_thread *handler;
  pid_t handler_tid;
  bool kick; /* something needs the result thread's attention */
  bool starting; /* the first workers are starting (mp_pool_new waits) */
  bool free_on_exit;
  /* Driven (mp__pool_new_driven): no result thread of its own; the
   * owner's thread runs the result loop in mp__pool_drive, and drive_hook
   * each turn. */
  bool driven;
  mp__pool_drive_hook drive_hook;
  void *drive_arg;
  _Atomic uint32_t started;  /* futex word: start-up finished */
  int startup_rc;
  _Atomic uint32_t finished; /* futex word: no worker is left */
  /* The function table, as the parent knows it. */
  uint32_t nfns;
  struct {
    int kind;
    void (*fn)(void);
  } fns[MP__POOL_FN_MAX];
  /* How deep to queue: a running average of descriptor run times. */
  uint64_t avg_run_ns;
  uint32_t depth;
};

/* ---- pool.c: bookkeeping shared with the result thread ------------------- */
/* mp__pool_kick asks the result thread to look at the pool (lock held). */
void mp__pool_kick(mp_pool *p);
/* mp__pool_dispatch publishes pending work to workers with room. */
void mp__pool_dispatch(mp_pool *p);
/* mp__pool_collect takes in the finished descriptors of worker i. */
void mp__pool_collect(mp_pool *p, uint32_t i);
/* mp__pool_fail_running accounts for the descriptor worker i was running
 * when it died (code: MP_EWORKERDIED, MP_ETIMEDOUT, MP_ECLOSED), keeping
 * the items of a map chunk that finished and running the rest again
 * (or failing them with MP_ECLOSED when the pool is terminating). */
void mp__pool_fail_running(mp_pool *p, uint32_t i, int code,
                           const mp_exit_info *info);
/* mp__pool_reclaim takes the unstarted descriptors of worker i (dead) back
 * into the pending queue, or fails them with code when code != 0. */
void mp__pool_reclaim(mp_pool *p, uint32_t i, int code);
/* mp__pool_fail_pending fails every part of every job not yet published
 * with code. */
void mp__pool_fail_pending(mp_pool *p, int code);
/* mp__pool_deliver runs the callbacks and progress reports of finished
 * work and makes the results ready. Called without the lock. */
void mp__pool_deliver(mp_pool *p, mp_async_result *done,
                      mp_async_result *progress);
/* mp__pool_release frees the pool's memory (its workers are gone). */
void mp__pool_release(mp_pool *p);
/* mp__pool_new_driven makes a local process pool (opts as mp_pool_new;
 * the backend is local) with no result thread and no workers yet: its
 * owner then runs it with mp__pool_drive on its own thread, so that one
 * thread collects the results and does the owner's own work (an MPI
 * worker rank: one wake per finished chunk instead of two). Every call
 * works on it from inside the hook except the ones that wait for the
 * result thread (mp_pool_join, mp_pool_terminate, a blocking get, which
 * are MP_EDEADLK there, as in a callback); mp__pool_stop closes or
 * terminates it from there. mp_pool_free after mp__pool_drive returned
 * (or instead of it) frees it. */
int mp__pool_new_driven(mp_pool **out, const mp_pool_opts *opts);
/* mp__pool_stop closes (terminate false) or terminates the pool without
 * waiting: the result loop ends once it has finished. */
void mp__pool_stop(mp_pool *p, bool terminate);

/* ---- pool_mpi.c ------------------------------------------------------------ */
/* mp__pool_mpi_proxy_main is the body of the thread that stands in for
 * worker rank slot + 1 of an MPI pool (arg: its mp__pool_boot). */
void mp__pool_mpi_proxy_main(void *arg);

/* ---- pool_jobmem.c -------------------------------------------------------- */
/* mp__pool_job_alloc gives a zeroed job record from memory a forked child
 * does not share (NULL when out of memory); mp__pool_job_free returns it
 * (NULL: no-op). mp__pool_job_live counts the records not yet freed. */
mp_async_result *mp__pool_job_alloc(void);
void mp__pool_job_free(mp_async_result *j);
size_t mp__pool_job_live(void);

/* ---- pool_handler.c ------------------------------------------------------- */
/* mp__pool_handler_main is the result thread's body. */
void mp__pool_handler_main(void *arg);
/* mp__pool_drive runs a driven pool's result loop on the calling thread,
 * calling hook(p, arg) every turn: it starts the workers (returning why
 * they could not start, the hook never called), then runs until the pool
 * was closed and its work is done, or terminated, and every worker is
 * gone. Returns 0 or the start-up failure. Called once. */
int mp__pool_drive(mp_pool *p, mp__pool_drive_hook hook, void *arg);

#endif
