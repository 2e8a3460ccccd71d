/* pool.c - worker pools, after Python's multiprocessing.Pool and
 * ThreadPool: creating and stopping pools, submitting bytes tasks and maps
 * over arrays, the bookkeeping of jobs (which parts are published, which
 * finished, which failed and why), and the results and iterators the
 * caller waits on. The worker's loop is in pool_worker.c, the parent's
 * result thread in pool_handler.c; pool_internal.h describes the shared
 * segment.
 *
 * DESIGN (the parent's bookkeeping)
 * A job is one apply_async or one map. Its work is split into parts: the
 * one bytes task, or the chunks of a map (and, after a worker died in the
 * middle of a chunk, the remainder of that chunk, kept on the job's
 * requeue list). A job with parts not yet published sits on the pending
 * queue, oldest first. Dispatch takes parts from the head of that queue
 * and publishes each to the ready worker with the fewest descriptors in
 * flight that has room in its input area, up to a depth that adapts to
 * how long descriptors take to run (deep for tiny tasks, so a stream of
 * them never waits for the parent; shallow for long ones, so one worker
 * does not hoard work another could start). What was published at each
 * ring position is remembered in the worker's refs, never read back from
 * shared memory.
 *
 * Each part ends exactly once: collected from a finished descriptor,
 * failed because its worker died (only the running one; the unstarted
 * ones stay for the replacement worker or return to the pending queue),
 * failed at terminate, or dropped because the caller freed the job. A job
 * is complete when every item is accounted for (or, once abandoned, when
 * nothing of it is in flight); it then moves to the done list, and the
 * result thread runs its callbacks with no lock held and only then makes
 * it ready, as Python does.
 *
 * Lifetimes: a job has two references while unfinished, the caller's and
 * the pool's; the result thread drops the pool's after making it ready
 * and waking its waiters, so a caller may free a ready result at once.
 * The copy of results into the caller's memory (a map's output array and
 * statuses, an apply's out buffer) happens under the pool's lock, and
 * freeing an unfinished job marks it abandoned under the same lock, so
 * nothing is written to the caller's memory after the free returns. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mpi/mpi_internal.h"
#include "pool_internal.h"

/* How much work, in nanoseconds of the average descriptor, to keep queued
 * at each worker beyond the one it runs. */
#define DEPTH_TARGET_NS 500000
/* An MPI rank's: its proxy sends it a third at a time (pool_mpi.c). */
#define DEPTH_TARGET_MPI_NS 4500000
#define DEPTH_MIN 2u
#define DEPTH_MIN_MPI 32u
#define DEPTH_START 4u
/* Progress bars redraw at most this often. */
#define BAR_INTERVAL_NS 100000000
#define BAR_WIDTH 40

static _Atomic uint32_t segment_counter;

/* ---- small list helpers (lock held) -------------------------------------- */

static void pending_remove(mp_pool *p, mp_async_result *j) {
  if (!j->pending)
    return;
  if (j->prev_pending != NULL)
    j->prev_pending->next_pending = j->next_pending;
  else
    p->pending_head = j->next_pending;
  if (j->next_pending != NULL)
    j->next_pending->prev_pending = j->prev_pending;
  else
    p->pending_tail = j->prev_pending;
  j->prev_pending = j->next_pending = NULL;
  j->pending = false;
}

static void pending_append(mp_pool *p, mp_async_result *j) {
  if (j->pending)
    return;
  j->prev_pending = p->pending_tail;
  j->next_pending = NULL;
  if (p->pending_tail != NULL)
    p->pending_tail->next_pending = j;
  else
    p->pending_head = j;
  p->pending_tail = j;
  j->pending = true;
}

/* pending_push_front puts j first: work taken back from a dead worker goes
 * before newer work. */
static void pending_push_front(mp_pool *p, mp_async_result *j) {
  if (j->pending)
    pending_remove(p, j);
  j->prev_pending = NULL;
  j->next_pending = p->pending_head;
  if (p->pending_head != NULL)
    p->pending_head->prev_pending = j;
  else
    p->pending_tail = j;
  p->pending_head = j;
  j->pending = true;
}

static void jobs_add(mp_pool *p, mp_async_result *j) {
  j->prev_job = NULL;
  j->next_job = p->jobs;
  if (p->jobs != NULL)
    p->jobs->prev_job = j;
  p->jobs = j;
  p->njobs++;
}

static void jobs_remove(mp_pool *p, mp_async_result *j) {
  if (j->prev_job != NULL)
    j->prev_job->next_job = j->next_job;
  else
    p->jobs = j->next_job;
  if (j->next_job != NULL)
    j->next_job->prev_job = j->prev_job;
  j->prev_job = j->next_job = NULL;
  p->njobs--;
}

void mp__pool_kick(mp_pool *p) {
  p->kick = true;
  /* The result thread reads kick under the lock before it sleeps, and
   * announces parent_sleeping before it lets go of the lock: a kick after
   * that sees the flag. */
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&p->h->parent_sleeping, memory_order_relaxed))
    mp__pool_wake_parent(p->h);
}

/* ---- jobs ---------------------------------------------------------------- */

static void job_release(mp_async_result *j) {
  if (j->data_allocated)
    mp__free(j->data);
  mp__free(j->in_copy);
  mp__free(j->ctx);
  if (j->statuses_owned)
    mp__free(j->statuses);
  while (j->requeue != NULL) {
    mp__pool_requeue *r = j->requeue;
    j->requeue = r->next;
    mp__free(r);
  }
  mp__free((void *)j->chunk_done);
  mp__free(j->fifo);
  mp__pool_job_free(j);
}

static void job_unref(mp_async_result *j) {
  if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1)
    job_release(j);
}

static mp_async_result *job_new(mp_pool *p, int kind) {
  mp_async_result *j = mp__pool_job_alloc();
  if (j == NULL)
    return NULL;
  atomic_init(&j->refs, 2);
  j->kind = kind;
  j->owner = p->owner;
  j->handler_tid = p->handler_tid;
  j->pool = p;
  return j;
}

/* not_ours: a forked child's copy of the parent's result. The child sees
 * zeros there (pool_jobmem.c), so owner 0 is never a match. */
static bool not_ours(const mp_async_result *r) {
  return r->owner != mp__os_getpid();
}

static int fail_not_ours(void) {
  return mp__fail(MP_EPERM, "the result belongs to another process (a forked "
                            "child's copy of its parent's)");
}

/* progress_wake tells an iterator waiting on j that items finished. */
static void progress_wake(mp_async_result *j) {
  atomic_fetch_add_explicit(&j->progress, 1, memory_order_seq_cst);
  if (atomic_load_explicit(&j->progress_waiters, memory_order_seq_cst))
    mp__os_futex_wake((uint32_t *)&j->progress, INT_MAX, false);
}

/* maybe_complete moves j to the done list once every part of it is
 * accounted for. */
static void maybe_complete(mp_pool *p, mp_async_result *j) {
  if (j->complete)
    return;
  bool abandoned = atomic_load_explicit(&j->abandoned, memory_order_relaxed);
  bool done;
  if (j->kind == MP__JOB_APPLY)
    done = j->outstanding == 0 && !j->pending;
  else
    done = j->items_done == j->count ||
           (abandoned && j->outstanding == 0 && !j->pending);
  if (!done)
    return;
  j->complete = true;
  if (j->kind == MP__JOB_MAP)
    j->status = j->failed ? j->error.code : 0;
  pending_remove(p, j);
  jobs_remove(p, j);
  j->next_done = NULL;
  if (p->done_tail != NULL)
    p->done_tail->next_done = j;
  else
    p->done_head = j;
  p->done_tail = j;
  if (mp__os_gettid() != p->handler_tid)
    mp__pool_kick(p);
}

static void record_failure(mp_async_result *j, size_t index, int code,
                           pid_t pid, const mp_exit_info *info) {
  if (j->failed && index >= j->error.index)
    return;
  j->failed = true;
  memset(&j->error, 0, sizeof j->error);
  j->error.code = code;
  j->error.index = index;
  j->error.worker = pid;
  if (info != NULL)
    j->error.exit = *info;
}

static size_t chunk_len(const mp_async_result *j, size_t c) {
  size_t first = c * j->chunksize;
  return MP__MIN(j->chunksize, j->count - first);
}

static void list_progress(mp_pool *p, mp_async_result *j) {
  if ((j->progress_fn == NULL && !j->progress_bar) || j->listed_progress)
    return;
  j->listed_progress = true;
  j->next_progress = p->progress_head;
  p->progress_head = j;
}

/* items_finished accounts for n items of map job j from index first (in
 * chunk): their results (NULL: none) and statuses (NULL: all code). */
static void items_finished(mp_pool *p, mp_async_result *j, uint32_t chunk,
                           uint64_t first, uint32_t n,
                           const unsigned char *results,
                           const int32_t *statuses, int code, pid_t pid,
                           const mp_exit_info *info) {
  if (n == 0)
    return;
  if (!atomic_load_explicit(&j->abandoned, memory_order_relaxed)) {
    if (results != NULL && j->out_size > 0)
      memcpy(j->out + first * j->out_size, results, (size_t)n * j->out_size);
    for (uint32_t k = 0; k < n; k++) {
      int st = statuses != NULL ? statuses[k] : code;
      if (j->statuses != NULL)
        j->statuses[first + k] = st;
      if (st != 0)
        record_failure(j, first + k, st, pid,
                       (st == MP_EWORKERDIED || st == MP_ETIMEDOUT) ? info
                                                                    : NULL);
    }
  }
  j->items_done += n;
  if (j->iter) {
    uint32_t v = atomic_fetch_add_explicit(&j->chunk_done[chunk], n,
                                           memory_order_release) +
                 n;
    if (v == chunk_len(j, chunk)) {
      size_t at = atomic_load_explicit(&j->fifo_len, memory_order_relaxed);
      j->fifo[at] = chunk;
      atomic_store_explicit(&j->fifo_len, at + 1, memory_order_release);
    }
    progress_wake(j);
  }
  list_progress(p, j);
  maybe_complete(p, j);
}

/* ---- the function table ----------------------------------------------------- */

/* fn_index finds or adds (kind, fn) in the pool's function table. */
static int fn_index(mp_pool *p, int kind, void (*fn)(void), uint32_t *out) {
  for (uint32_t i = 0; i < p->nfns; i++) {
    if (p->fns[i].fn == fn && p->fns[i].kind == kind) {
      *out = i;
      return 0;
    }
  }
  if (p->nfns >= MP__POOL_FN_MAX)
    return mp__fail(MP_ENOSPC, "the pool already runs %u distinct functions",
                    MP__POOL_FN_MAX);
  mp__pool_fn *e = &p->h->fns[p->nfns];
  memset(e->name, 0, sizeof e->name);
  int rc = mp__pool_registry_name_of(kind, fn, e->name, sizeof e->name);
  bool by_name = p->mpi || (!p->threads && p->method != MP_START_FORK);
  if (rc != 0 && by_name)
    return rc == MP_ENAMETOOLONG
               ? mp__fail(MP_EINVAL, "the function's registered name is too "
                                     "long")
               : mp__fail(MP_ENOENT,
                          "the function is not registered: spawn, "
                          "forkserver and MPI workers find it by name "
                          "(MP_POOL_TASK, MP_POOL_MAP, MP_POOL_INIT)");
  e->kind = (uint32_t)kind;
  e->ptr = (uint64_t)(uintptr_t)fn;
  atomic_store_explicit(&e->ready, 1, memory_order_release);
  p->fns[p->nfns].kind = kind;
  p->fns[p->nfns].fn = fn;
  *out = p->nfns++;
  atomic_store_explicit(&p->h->nfns, p->nfns, memory_order_release);
  return 0;
}

/* ---- dispatch ------------------------------------------------------------- */

/* pick returns the ready worker with the fewest descriptors in flight,
 * under depth, that has room for need bytes of input, or -1. */
static int pick(mp_pool *p, uint64_t need, uint32_t depth) {
  int best = -1;
  uint32_t best_load = UINT32_MAX;
  for (int i = 0; i < p->nworkers; i++) {
    mp__pool_worker *w = &p->workers[i];
    if (w->state != MP__PW_READY)
      continue;
    uint32_t load = w->head - w->collected;
    if (load >= depth || load >= best_load)
      continue;
    if (mp__pool_area_reserve(w->in_w, w->in_free, p->g.in_cap, need) ==
        UINT64_MAX)
      continue;
    best = i;
    best_load = load;
    if (load == 0)
      break;
  }
  return best;
}

/* record_need is the size of an input record: the job's context, then
 * in_len bytes of input. */
static uint64_t record_need(const mp_async_result *j, uint64_t in_len) {
  return mp__pool_align(j->ctx_len) + mp__pool_align(in_len);
}

/* publish copies job j's context and in_len bytes of input to worker i
 * and publishes desc (whose input fields it fills) with ref. */
static void publish(mp_pool *p, int i, mp__pool_desc *tmpl,
                    const mp_async_result *j, const void *in,
                    uint64_t in_len, mp__pool_ref ref) {
  mp__pool_worker *w = &p->workers[i];
  mp__pool_slot *s = mp__pool_slot_at(p->h, &p->g, (uint32_t)i);
  uint64_t cap = p->g.in_cap, need = record_need(j, in_len);
  uint64_t ctx_al = mp__pool_align(j->ctx_len);
  uint64_t at = mp__pool_area_reserve(w->in_w, w->in_free, cap, need);
  unsigned char *rec = mp__pool_in_area(p->h, &p->g, (uint32_t)i) + at % cap;
  if (j->ctx_len > 0)
    memcpy(rec, j->ctx, j->ctx_len);
  if (in_len > 0)
    memcpy(rec + ctx_al, in, in_len);
  w->in_w = at + need;
  uint32_t idx = w->head % MP__POOL_RING;
  mp__pool_desc *d = &s->ring[idx];
  *d = *tmpl;
  d->in_off = at;
  d->in_len = ctx_al + in_len;
  d->ctx_len = j->ctx_len;
  ref.in_off = at;
  ref.in_len = need;
  w->refs[idx] = ref;
  w->head++;
  atomic_store_explicit(&s->head, w->head, memory_order_release);
  w->wake = true;
}

/* The tail of an MPI map. A worker rank is kept DEPTH_TARGET_MPI_NS of
 * work deep (update_depth), so when the last descriptors are handed out
 * one rank may hold milliseconds of them while the others have run dry:
 * the CPU-bound bench map (1,000 tasks of 50 us on two ranks) ended with
 * one rank idle for 1.2, 1.6 and 6.5 ms of its 27-29 ms. So while the
 * map is the last job waiting, no rank is given more than its share of
 * the work left: half of (not handed out + in flight) / ready ranks, as
 * in guided self-scheduling, and never under TAIL_MIN_MPI. The depth
 * shrinks only near the end, where what is left would not fill every
 * rank's queue anyway. Local pools (0.5 ms deep) are left as they are. */
#define TAIL_MIN_MPI 4u

static uint32_t tail_depth(mp_pool *p, const mp_async_result *j) {
  if (!p->mpi || j->next_pending != NULL || j->requeue != NULL)
    return p->depth;
  uint64_t left = j->nchunks - j->next_chunk, ready = 0;
  for (int i = 0; i < p->nworkers; i++) {
    mp__pool_worker *w = &p->workers[i];
    if (w->state != MP__PW_READY)
      continue;
    left += w->head - w->collected;
    ready++;
  }
  if (ready == 0)
    return p->depth;
  uint64_t share = (left + 2 * ready - 1) / (2 * ready);
  return (uint32_t)MP__MAX(TAIL_MIN_MPI, MP__MIN(share, p->depth));
}

static void wake_workers(mp_pool *p) {
  bool any = false;
  for (int i = 0; i < p->nworkers; i++)
    any |= p->workers[i].wake;
  if (!any)
    return;
  /* Pairs with the worker's fence between announcing sleep and its last
   * look at head. */
  atomic_thread_fence(memory_order_seq_cst);
  /* One sleeping worker is woken; it wakes its sleeping siblings from its
   * own CPU (see wake_siblings in pool_worker.c), so they spread over the
   * idle CPUs. The result thread's tick wakes any a dead sibling left. */
  bool woke = false;
  for (int i = 0; i < p->nworkers; i++) {
    mp__pool_worker *w = &p->workers[i];
    if (!w->wake)
      continue;
    w->wake = false;
    mp__pool_slot *s = mp__pool_slot_at(p->h, &p->g, (uint32_t)i);
    uint32_t sleeping =
        atomic_load_explicit(&s->sleeping, memory_order_relaxed);
    /* An MPI pool's proxy threads wake no siblings: wake each. */
    if (sleeping == MP__POOL_AWAKE ||
        (woke && !p->mpi && sleeping == MP__POOL_WAIT_WORK))
      continue;
    atomic_fetch_add_explicit(&s->wake, 1, memory_order_seq_cst);
    mp__os_futex_wake((uint32_t *)&s->wake, 1, true);
    woke = true;
  }
}

void mp__pool_dispatch(mp_pool *p) {
  while (p->pending_head != NULL) {
    mp_async_result *j = p->pending_head;
    if (j->kind == MP__JOB_APPLY) {
      int i = pick(p, record_need(j, j->in_len), p->depth);
      if (i < 0)
        break;
      mp__pool_desc d = {.kind = MP__POOL_DESC_APPLY,
                         .fn = j->fn,
                         .out_cap = j->data_cap};
      const void *in = j->in_copy != NULL ? j->in_copy : j->in_borrowed;
      publish(p, i, &d, j, in, j->in_len, (mp__pool_ref){.job = j});
      j->outstanding = 1;
      pending_remove(p, j);
      mp__free(j->in_copy);
      j->in_copy = NULL;
      j->in_borrowed = NULL;
      continue;
    }
    uint64_t first;
    uint32_t chunk, count;
    if (j->requeue != NULL) {
      first = j->requeue->first;
      chunk = j->requeue->chunk;
      count = j->requeue->count;
    } else {
      chunk = (uint32_t)j->next_chunk;
      first = (uint64_t)chunk * j->chunksize;
      count = (uint32_t)chunk_len(j, chunk);
    }
    uint64_t in_len = (uint64_t)count * j->in_size;
    int i = pick(p, record_need(j, in_len), tail_depth(p, j));
    if (i < 0)
      break;
    mp__pool_desc d = {.kind = MP__POOL_DESC_MAP,
                       .fn = j->fn,
                       .count = count,
                       .in_size = (uint32_t)j->in_size,
                       .out_size = (uint32_t)j->out_size};
    publish(p, i, &d, j, j->in_size ? j->in + first * j->in_size : NULL,
            in_len,
            (mp__pool_ref){
                .job = j, .first = first, .chunk = chunk, .count = count});
    j->outstanding++;
    if (j->requeue != NULL) {
      mp__pool_requeue *r = j->requeue;
      j->requeue = r->next;
      mp__free(r);
    } else {
      j->next_chunk++;
    }
    if (j->requeue == NULL && j->next_chunk == j->nchunks)
      pending_remove(p, j);
  }
  wake_workers(p);
}

/* ---- collecting ------------------------------------------------------------ */

/* out_record_ok checks a result record a worker reports against what the
 * parent knows of its output area. */
static bool out_record_ok(mp_pool *p, mp__pool_worker *w, uint64_t off,
                          uint64_t need) {
  uint64_t cap = p->g.out_cap;
  if (off < w->out_free || off - w->out_free > cap || need > cap / 2)
    return false;
  if ((off % cap) + need > cap)
    return false;
  return off + need - w->out_free <= cap;
}

/* map_need is the size of a map descriptor's output record. */
static uint64_t map_need(uint32_t count, size_t out_size,
                         uint64_t *status_off) {
  uint64_t so = ((uint64_t)count * out_size + 3) & ~(uint64_t)3;
  if (status_off != NULL)
    *status_off = so;
  return mp__pool_align(so + (uint64_t)count * sizeof(int32_t));
}

/* update_depth feeds one descriptor's run time into the average that sets
 * how deep to queue. The average falls fast and rises slowly, so a task
 * stream whose worker was preempted once keeps its deep queue. */
static void update_depth(mp_pool *p, uint64_t run_ns) {
  uint64_t avg = p->avg_run_ns;
  if (avg == 0)
    avg = run_ns;
  else if (run_ns > avg)
    avg += (run_ns - avg) / 16;
  else
    avg -= (avg - run_ns) / 2;
  p->avg_run_ns = avg + 1;
  uint64_t d = (p->mpi ? DEPTH_TARGET_MPI_NS : DEPTH_TARGET_NS) / p->avg_run_ns;
  /* A worker rank is a round trip away and runs several descriptors at
   * once on its local workers: keep more in flight. */
  uint32_t min = p->mpi ? DEPTH_MIN_MPI : DEPTH_MIN;
  p->depth = (uint32_t)MP__MAX(min, MP__MIN(d, MP__POOL_RING));
}

/* finish_apply stores the outcome of a bytes task. */
static void finish_apply(mp_async_result *j, int st, const unsigned char *src,
                         uint64_t len, pid_t pid) {
  if (atomic_load_explicit(&j->abandoned, memory_order_relaxed))
    return;
  if (st == 0) {
    if (j->data_caller) {
      memcpy(j->data, src, len);
    } else if (len <= sizeof j->inline_data) {
      j->data = j->inline_data;
      memcpy(j->data, src, len);
    } else {
      j->data = mp__alloc(len);
      if (j->data == NULL) {
        st = MP_ENOMEM;
      } else {
        j->data_allocated = true;
        memcpy(j->data, src, len);
      }
    }
    j->data_len = st == 0 ? len : 0;
  }
  j->status = st;
  if (st != 0)
    record_failure(j, 0, st, pid, NULL);
}

/* kill_corrupt stops a worker whose reports do not add up. */
static void kill_corrupt(mp_pool *p, mp__pool_worker *w, uint32_t i) {
  if (w->state == MP__PW_LEAVING && w->kill_reason != 0)
    return;
  w->kill_reason = MP_ECORRUPT;
  w->state = MP__PW_LEAVING;
  if (w->proc != NULL)
    mp_process_kill(w->proc);
  else
    atomic_store_explicit(&mp__pool_slot_at(p->h, &p->g, i)->abort, 1,
                          memory_order_release);
}

void mp__pool_collect(mp_pool *p, uint32_t i) {
  mp__pool_worker *w = &p->workers[i];
  mp__pool_slot *s = mp__pool_slot_at(p->h, &p->g, i);
  uint32_t tail = atomic_load_explicit(&s->tail, memory_order_acquire);
  uint32_t avail = tail - w->collected;
  if (avail == 0)
    return;
  if (avail > w->head - w->collected) {
    kill_corrupt(p, w, i);
    return;
  }
  uint64_t cap = p->g.out_cap;
  unsigned char *area = mp__pool_out_area(p->h, &p->g, i);
  while (w->collected != tail) {
    uint32_t idx = w->collected % MP__POOL_RING;
    mp__pool_desc *d = &s->ring[idx];
    mp__pool_ref *ref = &w->refs[idx];
    mp_async_result *j = ref->job;
    uint64_t off = d->out_off, len = d->out_len;
    if (j->kind == MP__JOB_APPLY) {
      if (len > j->data_cap || !out_record_ok(p, w, off, mp__pool_align(len))) {
        kill_corrupt(p, w, i);
        break;
      }
      j->outstanding--;
      finish_apply(j, d->status, area + off % cap, len, w->pid);
      maybe_complete(p, j);
    } else {
      uint64_t status_off;
      uint64_t need = map_need(ref->count, j->out_size, &status_off);
      if (len != need || !out_record_ok(p, w, off, need)) {
        kill_corrupt(p, w, i);
        break;
      }
      j->outstanding--;
      const unsigned char *rec = area + off % cap;
      items_finished(p, j, ref->chunk, ref->first, ref->count, rec,
                     (const int32_t *)(rec + status_off), 0, w->pid, NULL);
    }
    update_depth(p, d->run_ns);
    w->out_free = off + mp__pool_align(len);
    w->in_free = ref->in_off + ref->in_len;
    ref->job = NULL;
    w->collected++;
  }
  atomic_store_explicit(&s->out_free, w->out_free, memory_order_release);
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&s->sleeping, memory_order_relaxed) ==
      MP__POOL_WAIT_SPACE) {
    atomic_fetch_add_explicit(&s->wake, 1, memory_order_seq_cst);
    mp__os_futex_wake((uint32_t *)&s->wake, 1, true);
  }
}

/* ---- failures ---------------------------------------------------------------- */

static int requeue_push(mp_async_result *j, uint64_t first, uint32_t chunk,
                        uint32_t count) {
  mp__pool_requeue *r = mp__alloc(sizeof *r);
  if (r == NULL)
    return MP_ENOMEM;
  r->first = first;
  r->chunk = chunk;
  r->count = count;
  r->next = j->requeue;
  j->requeue = r;
  return 0;
}

/* rerun puts n items of j back to run again, or fails them (code) when the
 * pool is terminating or memory ran out. */
static void rerun(mp_pool *p, mp_async_result *j, uint32_t chunk,
                  uint64_t first, uint32_t n, int code) {
  if (n == 0)
    return;
  if (atomic_load_explicit(&j->abandoned, memory_order_relaxed))
    return;
  if (code == 0 && p->state != MP__POOL_TERMINATE && p->broken_rc == 0 &&
      requeue_push(j, first, chunk, n) == 0) {
    pending_push_front(p, j);
    return;
  }
  if (code == 0)
    code = p->state == MP__POOL_TERMINATE ? MP_ECLOSED
           : p->broken_rc != 0            ? MP_EBROKEN
                                          : MP_ENOMEM;
  items_finished(p, j, chunk, first, n, NULL, NULL, code, 0, NULL);
}

void mp__pool_fail_running(mp_pool *p, uint32_t i, int code,
                           const mp_exit_info *info) {
  mp__pool_worker *w = &p->workers[i];
  mp__pool_slot *s = mp__pool_slot_at(p->h, &p->g, i);
  if (w->collected == w->head)
    return;
  if (atomic_load_explicit(&s->started, memory_order_acquire) !=
      w->collected + 1)
    return; /* it died between descriptors: nothing was running */
  uint32_t idx = w->collected % MP__POOL_RING;
  mp__pool_desc *d = &s->ring[idx];
  mp__pool_ref *ref = &w->refs[idx];
  mp_async_result *j = ref->job;
  j->outstanding--;
  if (j->kind == MP__JOB_APPLY) {
    if (!atomic_load_explicit(&j->abandoned, memory_order_relaxed)) {
      j->status = code;
      record_failure(j, 0, code, w->pid, info);
    }
    maybe_complete(p, j);
  } else {
    uint32_t k = atomic_load_explicit(&s->item, memory_order_acquire);
    uint64_t status_off;
    uint64_t need = map_need(ref->count, j->out_size, &status_off);
    uint64_t off = d->out_off;
    if (k > ref->count || (k > 0 && !out_record_ok(p, w, off, need)))
      k = 0; /* its record cannot be trusted: count nothing as done */
    /* The items before k keep their results, item k fails, the rest run
     * again. In this order: an iterator reads a chunk's finished items as
     * a prefix, and the job cannot complete before the rest is counted
     * (it is not finished, so items_done stays short of count). */
    if (k > 0) {
      const unsigned char *rec =
          mp__pool_out_area(p->h, &p->g, i) + off % p->g.out_cap;
      items_finished(p, j, ref->chunk, ref->first, k, rec,
                     (const int32_t *)(rec + status_off), 0, w->pid, NULL);
    }
    if (k < ref->count) {
      items_finished(p, j, ref->chunk, ref->first + k, 1, NULL, NULL, code,
                     w->pid, info);
      rerun(p, j, ref->chunk, ref->first + k + 1, ref->count - k - 1, 0);
    }
    maybe_complete(p, j);
  }
  ref->job = NULL;
  w->in_free = ref->in_off + ref->in_len;
  w->collected++;
}

void mp__pool_reclaim(mp_pool *p, uint32_t i, int code) {
  mp__pool_worker *w = &p->workers[i];
  /* Newest first, each to the front: the queue keeps their order. */
  while (w->head != w->collected) {
    w->head--;
    uint32_t idx = w->head % MP__POOL_RING;
    mp__pool_ref *ref = &w->refs[idx];
    mp_async_result *j = ref->job;
    ref->job = NULL;
    j->outstanding--;
    if (j->kind == MP__JOB_APPLY) {
      if (atomic_load_explicit(&j->abandoned, memory_order_relaxed)) {
        maybe_complete(p, j);
        continue;
      }
      int rc = code;
      if (rc == 0 && j->in_len > 0) {
        j->in_copy = mp__alloc(j->in_len);
        if (j->in_copy == NULL)
          rc = MP_ENOMEM;
        else
          memcpy(j->in_copy,
                 mp__pool_in_area(p->h, &p->g, i) +
                     ref->in_off % p->g.in_cap + mp__pool_align(j->ctx_len),
                 j->in_len);
      }
      if (rc == 0) {
        pending_push_front(p, j);
      } else {
        j->status = rc;
        record_failure(j, 0, rc, 0, NULL);
        maybe_complete(p, j);
      }
    } else {
      rerun(p, j, ref->chunk, ref->first, ref->count, code);
      maybe_complete(p, j);
    }
  }
  w->in_w = w->in_free;
}

void mp__pool_fail_pending(mp_pool *p, int code) {
  while (p->pending_head != NULL) {
    mp_async_result *j = p->pending_head;
    pending_remove(p, j);
    if (j->kind == MP__JOB_APPLY) {
      if (!atomic_load_explicit(&j->abandoned, memory_order_relaxed)) {
        j->status = code;
        record_failure(j, 0, code, 0, NULL);
      }
    } else {
      while (j->requeue != NULL) {
        mp__pool_requeue *r = j->requeue;
        j->requeue = r->next;
        items_finished(p, j, r->chunk, r->first, r->count, NULL, NULL, code,
                       0, NULL);
        mp__free(r);
      }
      while (j->next_chunk < j->nchunks) {
        uint32_t c = (uint32_t)j->next_chunk++;
        items_finished(p, j, c, (uint64_t)c * j->chunksize,
                       (uint32_t)chunk_len(j, c), NULL, NULL, code, 0, NULL);
      }
    }
    maybe_complete(p, j);
  }
}

/* ---- delivery ----------------------------------------------------------------- */

/* draw_bar redraws the bar in place on a terminal; anywhere else (a file,
 * a pipe) it writes one line, when the map is done, so a log holds no
 * carriage-return redraws. */
static void draw_bar(mp_async_result *j, size_t done) {
  size_t total = j->count;
  int64_t now = mp__os_now_ns();
  bool last = done >= total;
  bool tty = isatty(STDERR_FILENO) == 1;
  if (!tty && !last)
    return;
  if (!last && j->bar_drawn_ns != 0 && now - j->bar_drawn_ns < BAR_INTERVAL_NS)
    return;
  j->bar_drawn_ns = now;
  size_t filled = total ? done * BAR_WIDTH / total : BAR_WIDTH;
  char bar[BAR_WIDTH + 1];
  for (size_t k = 0; k < BAR_WIDTH; k++)
    bar[k] = k < filled ? '#' : '.';
  bar[BAR_WIDTH] = '\0';
  fprintf(stderr, "%s[%s] %3d%% %zu/%zu%s", tty ? "\r" : "", bar,
          total ? (int)(done * 100 / total) : 100, done, total,
          last ? "\n" : "");
  fflush(stderr);
}

void mp__pool_deliver(mp_pool *p, mp_async_result *done,
                      mp_async_result *progress) {
  (void)p;
  for (mp_async_result *j = progress; j != NULL; j = j->next_progress) {
    size_t n = j->progress_snapshot;
    if (n == j->progress_reported ||
        atomic_load_explicit(&j->abandoned, memory_order_relaxed))
      continue;
    j->progress_reported = n;
    if (j->progress_fn != NULL)
      j->progress_fn(j->progress_userdata, n, j->count);
    if (j->progress_bar)
      draw_bar(j, n);
  }
  while (done != NULL) {
    mp_async_result *j = done;
    done = j->next_done;
    if (!atomic_load_explicit(&j->abandoned, memory_order_acquire)) {
      mp_pool_callback_fn cb = j->status == 0 ? j->callback : j->error_callback;
      if (cb != NULL) {
        if (j->kind == MP__JOB_APPLY)
          cb(j->userdata, j->status, j->data, j->data_len);
        else
          cb(j->userdata, j->status, j->out, j->count * j->out_size);
      }
    }
    atomic_store_explicit(&j->ready, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&j->waiters, memory_order_seq_cst))
      mp__os_futex_wake((uint32_t *)&j->ready, INT_MAX, false);
    if (j->iter)
      progress_wake(j);
    job_unref(j);
  }
}

/* ---- creating and stopping pools ---------------------------------------------- */

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

static void release_segment(mp_pool *p) {
  if (p->h != NULL)
    mp__object_free(p->h, p->seg_size);
  p->h = NULL;
}

/* The live MPI pool, terminated when rank 0's program ends (before MPI
 * is finalized). */
static mp_pool *_Atomic live_mpi;

static void mpi_shutdown(void) {
  mp_pool *p = atomic_exchange(&live_mpi, NULL);
  if (p != NULL)
    mp_pool_terminate(p);
}

void mp__pool_release(mp_pool *p) {
  if (p->mpi) {
    mp_pool *me = p;
    atomic_compare_exchange_strong(&live_mpi, &me, NULL);
    mp__mpi_release();
  }
  for (int i = 0; i < p->nworkers; i++) {
    mp_process_free(p->workers[i].proc);
    mp_thread_free(p->workers[i].thread);
  }
  release_segment(p);
  mp__free(p->workers);
  pthread_mutex_destroy(&p->lock);
  mp__free(p);
}

/* make_segment maps the pool's shared segment and fills its header. */
static int make_segment(mp_pool *p, const mp_pool_opts *o) {
  size_t page = mp__os_page_size();
  size_t in_cap =
      round_up(MP__MAX(2 * mp__pool_align(p->max_input), MP__POOL_MIN_AREA),
               page);
  size_t out_cap =
      round_up(MP__MAX(2 * mp__pool_align(p->max_result), MP__POOL_MIN_AREA),
               page);
  size_t initargs_off = round_up(sizeof(mp__pool_header), 64);
  size_t slot_off = round_up(initargs_off + o->initargs_size, page);
  size_t area_off = round_up(sizeof(mp__pool_slot), page);
  size_t stride = area_off + in_cap + out_cap;
  size_t size = slot_off + (size_t)p->nworkers * stride;

  bool named = !p->threads && p->method != MP_START_FORK;
  if (named)
    snprintf(p->seg_name, sizeof p->seg_name, "pool-%d-%u", (int)getpid(),
             (unsigned)atomic_fetch_add(&segment_counter, 1));
  void *obj = NULL;
  int rc = mp__object_new(&obj, size, MP__POOL_OBJECT_TYPE,
                          named ? p->seg_name : NULL);
  if (rc != 0)
    return rc;
  mp__pool_header *h = obj;
  p->h = h;
  p->seg_size = size;
  mp__pool_geom *g = &p->g;
  g->nslots = (uint32_t)p->nworkers;
  g->method = p->threads ? MP__POOL_THREADS : (uint32_t)p->method;
  g->slot_off = slot_off;
  g->slot_stride = stride;
  g->area_off = area_off;
  g->in_cap = in_cap;
  g->out_cap = out_cap;
  g->max_result = p->max_result;
  g->maxtasks = o->maxtasksperchild;
  g->timed = p->timeout_ns > 0;
  g->owner = (int32_t)getpid();
  g->image_token = mp__image_token();
  g->init_fn = -1;
  g->initargs_off = initargs_off;
  g->initargs_size = o->initargs_size;
  /* The header's copy is for readers of the segment; no process of the
   * pool reads it back (see mp__pool_geom). */
  h->magic = MP__POOL_MAGIC;
  h->version = MP__POOL_VERSION;
  h->size = size;
  h->nslots = g->nslots;
  h->method = g->method;
  h->slot_off = slot_off;
  h->slot_stride = stride;
  h->area_off = area_off;
  h->in_cap = in_cap;
  h->out_cap = out_cap;
  h->max_result = g->max_result;
  h->maxtasks = g->maxtasks;
  h->timed = g->timed;
  h->owner = g->owner;
  h->image_token = g->image_token;
  h->init_fn = -1;
  h->initargs_off = initargs_off;
  h->initargs_size = o->initargs_size;
  if (o->initargs_size > 0)
    memcpy((char *)h + initargs_off, o->initargs, o->initargs_size);
  if (o->initializer != NULL) {
    uint32_t idx;
    rc = fn_index(p, MP__POOL_FN_INIT, (void (*)(void))o->initializer, &idx);
    if (rc != 0) {
      release_segment(p);
      return rc;
    }
    h->init_fn = (int32_t)idx;
    g->init_fn = (int32_t)idx;
    p->has_init = true;
  }
  /* The object's magic goes last: an opener never sees a half-made
   * header. */
  atomic_store_explicit((_Atomic uint32_t *)&h->head.magic, MP__OBJECT_MAGIC,
                        memory_order_release);
  return 0;
}

static int pool_create(mp_pool **out, const mp_pool_opts *opts,
                       bool threads, bool driven) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out (the pool's address) is NULL");
  mp_pool_opts o = {0};
  if (opts != NULL)
    o = *opts;
  if (o.processes < 0 || o.processes > MP_POOL_MAX_WORKERS)
    return mp__fail(MP_EINVAL, "processes is %d: 0 (one per CPU) to %d",
                    o.processes, MP_POOL_MAX_WORKERS);
  if (o.task_timeout != o.task_timeout)
    return mp__fail(MP_EINVAL, "task_timeout is NaN");
  if (o.task_timeout < 0)
    return mp__fail(MP_EINVAL, "task_timeout is negative (0: no limit)");
  if (o.max_input_size > MP_POOL_SIZE_MAX ||
      o.max_result_size > MP_POOL_SIZE_MAX)
    return mp__fail(MP_EINVAL, "max_input_size or max_result_size is over "
                               "MP_POOL_SIZE_MAX");
  if (o.initargs_size > MP_POOL_INITARGS_MAX)
    return mp__fail(MP_EINVAL, "initargs_size %zu is over %zu",
                    o.initargs_size, MP_POOL_INITARGS_MAX);
  if (o.initargs_size > 0 && o.initargs == NULL)
    return mp__fail(MP_EINVAL, "initargs is NULL but initargs_size is %zu",
                    o.initargs_size);
  bool mpi = false;
  if (!threads) {
    if (o.backend < MP_POOL_BACKEND_DEFAULT || o.backend > MP_POOL_BACKEND_MPI)
      return mp__fail(MP_EINVAL, "backend is %d: not an MP_POOL_BACKEND_*",
                      o.backend);
    mpi = o.backend == MP_POOL_BACKEND_MPI ||
          (o.backend == MP_POOL_BACKEND_DEFAULT && mp__mpi_default_backend());
  }
  if (mpi) {
    if (mp__mpi_size() < 2)
      return mp__fail(MP_ENOTSUP,
                      "no MPI job to run on: run under mpirun with at least "
                      "2 ranks, with mp_child_main called first in main "
                      "(and a library built with MPI)");
    if (mp__mpi_rank() != 0)
      return mp__fail(MP_ENOTSUP, "only rank 0 creates MPI pools");
    if (o.context != NULL)
      return mp__fail(MP_EINVAL, "an MPI pool takes no context: its ranks "
                                 "fork their local workers");
    if (mp__mpi_claim() != 0)
      return mp__fail(MP_EBUSY, "another MPI pool holds the worker ranks: "
                                "free it first");
  }
  if (threads && o.task_timeout > 0)
    return mp__fail(MP_ENOTSUP, "a ThreadPool cannot kill a task: no "
                                "task_timeout");
  mp_pool *p = mp__calloc(1, sizeof *p);
  if (p == NULL) {
    if (mpi)
      mp__mpi_release();
    return MP_ENOMEM;
  }
  p->owner = getpid();
  p->threads = threads || mpi;
  p->mpi = mpi;
  p->nworkers = o.processes > 0 ? o.processes : mp_cpu_count();
  if (mpi) {
    /* One slot per worker rank; processes is each rank's own count. */
    p->nworkers = MP__MIN(mp__mpi_size() - 1, MP_POOL_MAX_WORKERS);
    p->mpi_processes = o.processes;
    p->mpi_task_timeout = o.task_timeout;
    o.context = NULL;
  }
  p->nworkers = MP__MIN(p->nworkers, MP_POOL_MAX_WORKERS);
  p->context = threads ? NULL : o.context;
  p->method = threads ? MP_START_FORK : mp_context_method(o.context);
  p->max_input = o.max_input_size ? o.max_input_size : MP__POOL_DEFAULT_SIZE;
  p->max_result =
      o.max_result_size ? o.max_result_size : MP__POOL_DEFAULT_SIZE;
  p->timeout_ns = o.task_timeout > 0 ? (int64_t)(o.task_timeout * 1e9) : 0;
  if (o.task_timeout > 0 && p->timeout_ns <= 0)
    p->timeout_ns = 1;
  p->depth = mpi ? DEPTH_MIN_MPI : DEPTH_START;
  int rc = pthread_mutex_init(&p->lock, NULL);
  if (rc != 0) {
    if (mpi)
      mp__mpi_release();
    mp__free(p);
    return -rc;
  }
  p->workers = mp__calloc((size_t)p->nworkers, sizeof *p->workers);
  if (p->workers == NULL) {
    if (mpi)
      mp__mpi_release();
    pthread_mutex_destroy(&p->lock);
    mp__free(p);
    return MP_ENOMEM;
  }
  rc = make_segment(p, &o);
  if (rc != 0) {
    mp__pool_release(p);
    return rc;
  }
  if (driven) {
    /* The owner starts the workers and runs the loop: mp__pool_drive. */
    p->driven = true;
    *out = p;
    return 0;
  }
  mp_thread_opts topts = {.name = "mp-pool-handler", .daemon = 1};
  rc = mp_thread_new(&p->handler, mp__pool_handler_main, p, &topts);
  if (rc == 0)
    rc = mp_thread_start(p->handler);
  if (rc != 0) {
    mp_thread_free(p->handler);
    mp__pool_release(p);
    return rc;
  }
  /* Wait until every worker has started and run its initializer. */
  while (atomic_load_explicit(&p->started, memory_order_acquire) == 0)
    mp__os_futex_wait((uint32_t *)&p->started, 0, INT64_MAX, false);
  if (p->startup_rc != 0) {
    rc = p->startup_rc;
    mp_thread_join(p->handler, MP_FOREVER);
    mp_thread_free(p->handler);
    mp__pool_release(p);
    return rc;
  }
  if (mpi) {
    atomic_store(&live_mpi, p);
    mp__mpi_set_shutdown_hook(mpi_shutdown);
  }
  *out = p;
  return 0;
}

int mp_pool_new(mp_pool **out, const mp_pool_opts *opts) {
  return pool_create(out, opts, false, false);
}

int mp_threadpool_new(mp_pool **out, const mp_pool_opts *opts) {
  return pool_create(out, opts, true, false);
}

int mp__pool_new_driven(mp_pool **out, const mp_pool_opts *opts) {
  mp_pool_opts o = {0};
  if (opts != NULL)
    o = *opts;
  o.backend = MP_POOL_BACKEND_LOCAL;
  return pool_create(out, &o, false, true);
}

void mp__pool_stop(mp_pool *p, bool terminate) {
  pthread_mutex_lock(&p->lock);
  if (terminate)
    p->state = MP__POOL_TERMINATE;
  else if (p->state == MP__POOL_RUN)
    p->state = MP__POOL_CLOSE;
  mp__pool_kick(p);
  pthread_mutex_unlock(&p->lock);
}

static int check_pool(const mp_pool *p) {
  if (p == NULL)
    return mp__fail(MP_EINVAL, "pool is NULL");
  if (p->owner != mp__os_getpid())
    return mp__fail(MP_EPERM, "the pool belongs to process %d, not this one",
                    (int)p->owner);
  return 0;
}

/* check_timeout refuses a NaN timeout. */
static int check_timeout(double timeout) {
  if (timeout != timeout)
    return mp__fail(MP_EINVAL, "timeout is NaN");
  return 0;
}

static bool in_handler(const mp_pool *p) {
  return mp__os_gettid() == p->handler_tid;
}

int mp_pool_close(mp_pool *p) {
  int rc = check_pool(p);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  if (p->state == MP__POOL_RUN) {
    p->state = MP__POOL_CLOSE;
    mp__pool_kick(p);
  }
  pthread_mutex_unlock(&p->lock);
  return 0;
}

static int wait_finished(mp_pool *p, mp__deadline d) {
  for (;;) {
    if (atomic_load_explicit(&p->finished, memory_order_acquire))
      return 0;
    if (d.poll || mp__deadline_expired(d))
      return MP_ETIMEDOUT;
    mp__os_futex_wait((uint32_t *)&p->finished, 0, d.ns, false);
  }
}

int mp_pool_terminate(mp_pool *p) {
  int rc = check_pool(p);
  if (rc != 0)
    return rc;
  if (in_handler(p))
    return MP_EDEADLK;
  pthread_mutex_lock(&p->lock);
  p->state = MP__POOL_TERMINATE;
  mp__pool_kick(p);
  pthread_mutex_unlock(&p->lock);
  return wait_finished(p, mp__deadline_from_timeout(MP_FOREVER));
}

int mp_pool_join(mp_pool *p, double timeout) {
  int rc = check_pool(p);
  if (rc == 0)
    rc = check_timeout(timeout);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  int state = p->state;
  pthread_mutex_unlock(&p->lock);
  if (state == MP__POOL_RUN)
    return mp__fail(MP_ESTATE, "the pool still runs: close or terminate it "
                               "before joining");
  if (in_handler(p))
    return mp__fail(MP_EDEADLK, "a pool callback cannot join its pool");
  return wait_finished(p, mp__deadline_from_timeout(timeout));
}

void mp_pool_free(mp_pool *p) {
  if (p == NULL)
    return;
  if (p->owner != mp__os_getpid()) {
    /* A forked copy: the workers and the thread are the parent's. */
    return;
  }
  if (in_handler(p)) {
    pthread_mutex_lock(&p->lock);
    p->state = MP__POOL_TERMINATE;
    p->free_on_exit = true;
    mp__pool_kick(p);
    pthread_mutex_unlock(&p->lock);
    return;
  }
  if (p->driven) {
    /* Its loop ran on the owner's thread and has returned (or never
     * ran): no worker is left. */
    mp__pool_release(p);
    return;
  }
  mp_pool_terminate(p);
  mp_thread_join(p->handler, MP_FOREVER);
  mp_thread_free(p->handler);
  mp__pool_release(p);
}

int mp_pool_processes(const mp_pool *p) {
  return p != NULL ? p->nworkers : MP_EINVAL;
}

ssize_t mp_pool_worker_pids(mp_pool *p, pid_t *out, size_t cap) {
  int rc = check_pool(p);
  if (rc != 0)
    return rc;
  if (out == NULL && cap > 0)
    return mp__fail(MP_EINVAL, "out is NULL with cap > 0");
  ssize_t n = 0;
  pthread_mutex_lock(&p->lock);
  for (int i = 0; i < p->nworkers; i++) {
    mp__pool_worker *w = &p->workers[i];
    if (w->proc == NULL || w->state == MP__PW_EMPTY)
      continue;
    if ((size_t)n < cap)
      out[n] = w->pid;
    n++;
  }
  pthread_mutex_unlock(&p->lock);
  return n;
}

int mp_pool_error(mp_pool *p, mp_task_error *err) {
  int rc = check_pool(p);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  rc = p->broken_rc;
  if (err != NULL)
    *err = p->broken;
  pthread_mutex_unlock(&p->lock);
  return rc;
}

/* ---- submitting ------------------------------------------------------------- */

/* submit_check returns why p takes no work now (lock held). */
static int submit_check(mp_pool *p) {
  if (p->state != MP__POOL_RUN)
    return MP_ECLOSED;
  if (p->broken_rc != 0)
    return MP_EBROKEN;
  return 0;
}

/* context_copy gives job j its copy of a call's context. */
static int context_copy(mp_async_result *j, const void *ctx, size_t size) {
  if (size == 0)
    return 0;
  j->ctx = mp__alloc(size);
  if (j->ctx == NULL)
    return MP_ENOMEM;
  memcpy(j->ctx, ctx, size);
  j->ctx_len = (uint32_t)size;
  return 0;
}

/* context_check validates a call's context option. */
static int context_check(const void *ctx, size_t size) {
  if (ctx == NULL && size > 0)
    return mp__fail(MP_EINVAL, "context is NULL but context_size is %zu",
                    size);
  if (size > MP_POOL_CONTEXT_MAX)
    return mp__fail(MP_EINVAL, "context_size %zu is over %zu", size,
                    MP_POOL_CONTEXT_MAX);
  return 0;
}

int mp_pool_apply_async(mp_pool *p, mp_async_result **out,
                        mp_pool_task_fn fn, const void *in, size_t in_len,
                        const mp_pool_apply_opts *opts) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out (the result's address) is NULL");
  if (fn == NULL)
    return mp__fail(MP_EINVAL, "fn is NULL");
  if (in == NULL && in_len > 0)
    return mp__fail(MP_EINVAL, "in is NULL but in_len is %zu", in_len);
  int rc = check_pool(p);
  if (rc != 0)
    return rc;
  mp_pool_apply_opts o = {0};
  if (opts != NULL)
    o = *opts;
  if (o.out == NULL && o.out_cap > 0)
    return mp__fail(MP_EINVAL, "opts.out is NULL but opts.out_cap is %zu",
                    o.out_cap);
  rc = context_check(o.context, o.context_size);
  if (rc != 0)
    return rc;
  if (in_len > p->max_input)
    return mp__fail(MP_ETOOBIG, "in_len %zu is over max_input_size %zu",
                    in_len, p->max_input);
  if (mp__pool_align(o.context_size) + mp__pool_align(in_len) >
      p->g.in_cap / 2)
    return mp__fail(MP_ETOOBIG,
                    "context (%zu bytes) and input (%zu) together are over "
                    "what one task can carry (%zu)",
                    o.context_size, in_len, (size_t)(p->g.in_cap / 2));
  mp_async_result *j = job_new(p, MP__JOB_APPLY);
  if (j == NULL)
    return MP_ENOMEM;
  if (context_copy(j, o.context, o.context_size) != 0) {
    job_release(j);
    return MP_ENOMEM;
  }
  j->callback = o.callback;
  j->error_callback = o.error_callback;
  j->userdata = o.userdata;
  j->in_len = in_len;
  if (o.out != NULL) {
    j->data = o.out;
    j->data_caller = true;
    j->data_cap = MP__MIN(o.out_cap, p->max_result);
  } else {
    j->data_cap = p->max_result;
  }

  pthread_mutex_lock(&p->lock);
  rc = submit_check(p);
  if (rc == 0)
    rc = fn_index(p, MP__POOL_FN_TASK, (void (*)(void))fn, &j->fn);
  if (rc == 0) {
    jobs_add(p, j);
    pending_append(p, j);
    if (j == p->pending_head) {
      j->in_borrowed = in;
      mp__pool_dispatch(p);
      j->in_borrowed = NULL;
    }
    if (j->pending && in_len > 0) {
      /* It waits: keep a copy of the input, as Python pickles it now. */
      j->in_copy = mp__alloc(in_len);
      if (j->in_copy == NULL) {
        pending_remove(p, j);
        jobs_remove(p, j);
        rc = MP_ENOMEM;
      } else {
        memcpy(j->in_copy, in, in_len);
      }
    }
    if (rc == 0 && j->pending)
      mp__pool_kick(p);
  }
  pthread_mutex_unlock(&p->lock);
  if (rc != 0) {
    job_release(j);
    return rc;
  }
  *out = j;
  return 0;
}

/* fill_error fills *err (may be NULL) for a blocking call that returns
 * rc: r's failure record when it is r's status, else the code alone. */
static void fill_error(mp_task_error *err, int rc, const mp_async_result *r) {
  if (err == NULL || rc == 0)
    return;
  if (r == NULL || mp_async_result_error(r, err) != 0) {
    memset(err, 0, sizeof *err);
    err->code = rc;
  }
}

static int apply_common(mp_pool *p, mp_pool_task_fn fn, const void *in,
                        size_t in_len, void *out, size_t out_cap,
                        size_t *out_len, const mp_pool_apply_opts *opts) {
  if (out_len != NULL)
    *out_len = 0;
  if (out == NULL && out_cap > 0)
    return mp__fail(MP_EINVAL, "out is NULL but out_cap is %zu", out_cap);
  int rc = check_pool(p);
  if (rc != 0)
    return rc;
  if (in_handler(p))
    return mp__fail(MP_EDEADLK, "a pool callback cannot wait for a result");
  unsigned char none[1];
  mp_pool_apply_opts o = {0};
  if (opts != NULL) {
    o = *opts;
    if (o.callback != NULL || o.error_callback != NULL || o.out != NULL ||
        o.out_cap != 0)
      return mp__fail(MP_EINVAL, "mp_pool_apply_ex takes no callbacks, "
                                 "opts.out or opts.out_cap");
  }
  o.out = out != NULL ? out : none;
  o.out_cap = out != NULL ? out_cap : 0;
  o.error = NULL;
  mp_async_result *r;
  rc = mp_pool_apply_async(p, &r, fn, in, in_len, &o);
  if (rc != 0)
    return rc;
  rc = mp_async_result_get(r, MP_FOREVER);
  if (rc == 0 && out_len != NULL)
    *out_len = r->data_len;
  if (opts != NULL)
    fill_error(opts->error, rc, r);
  mp_async_result_free(r);
  return rc;
}

int mp_pool_apply(mp_pool *p, mp_pool_task_fn fn, const void *in,
                  size_t in_len, void *out, size_t out_cap, size_t *out_len) {
  return apply_common(p, fn, in, in_len, out, out_cap, out_len, NULL);
}

int mp_pool_apply_ex(mp_pool *p, mp_pool_task_fn fn, const void *in,
                     size_t in_len, void *out, size_t out_cap,
                     size_t *out_len, const mp_pool_apply_opts *opts) {
  if (opts != NULL && opts->error != NULL)
    memset(opts->error, 0, sizeof *opts->error);
  int rc = apply_common(p, fn, in, in_len, out, out_cap, out_len, opts);
  /* Failures before the submission fill it too. */
  if (rc != 0 && opts != NULL && opts->error != NULL &&
      opts->error->code == 0)
    fill_error(opts->error, rc, NULL);
  return rc;
}

/* map_submit is the map family's common body. */
static int map_submit(mp_pool *p, mp_async_result **out_job, bool iter,
                      mp_pool_map_fn fn, const void *in, size_t count,
                      size_t in_size, void *out, size_t out_size,
                      const mp_pool_map_opts *opts) {
  int rc = check_pool(p);
  if (rc != 0)
    return rc;
  if (count > 0 && fn == NULL)
    return mp__fail(MP_EINVAL, "fn is NULL");
  if (count > 0 && in_size > 0 && in == NULL)
    return mp__fail(MP_EINVAL, "in is NULL but there are %zu items", count);
  if (count > 0 && out_size > 0 && out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL but results are %zu bytes",
                    out_size);
  if (in_size > UINT32_MAX || out_size > UINT32_MAX)
    return mp__fail(MP_EINVAL, "an item or result is over 4 GiB");
  mp_pool_map_opts o = {0};
  if (opts != NULL)
    o = *opts;
  rc = context_check(o.context, o.context_size);
  if (rc != 0)
    return rc;
  uint64_t ctx_al = mp__pool_align(o.context_size);
  uint64_t in_half = p->g.in_cap / 2, out_half = p->g.out_cap / 2;
  if (in_size > p->max_input || out_size > p->max_result ||
      ctx_al + mp__pool_align(in_size) > in_half ||
      out_size + 4 + 2 * MP__POOL_ALIGN > out_half)
    return mp__fail(MP_ETOOBIG,
                    "an item (%zu bytes, with %zu of context) or its result "
                    "(%zu) is over the pool's max_input_size or "
                    "max_result_size",
                    in_size, o.context_size, out_size);
  in_half -= ctx_al;

  mp_async_result *j = job_new(p, MP__JOB_MAP);
  if (j == NULL)
    return MP_ENOMEM;
  if (context_copy(j, o.context, o.context_size) != 0) {
    job_release(j);
    return MP_ENOMEM;
  }
  j->in = in;
  j->out = out;
  j->count = count;
  j->in_size = in_size;
  j->out_size = out_size;
  j->statuses = o.statuses;
  j->iter = iter;
  if (!iter) {
    j->callback = o.callback;
    j->error_callback = o.error_callback;
    j->userdata = o.userdata;
  }
  j->progress_fn = o.progress;
  j->progress_userdata = o.progress_userdata;
  j->progress_bar = o.progress_bar;

  size_t cs = o.chunksize;
  if (cs == 0) {
    if (iter) {
      cs = 1;
    } else {
      /* Python: chunksize, extra = divmod(len, len(pool) * 4). */
      size_t per = (size_t)p->nworkers * 4;
      cs = count / per + (count % per != 0);
    }
  }
  size_t lim_in = in_size ? (size_t)(in_half / in_size) : SIZE_MAX;
  size_t lim_out = (size_t)((out_half - 2 * MP__POOL_ALIGN) / (out_size + 4));
  cs = MP__MIN(cs, MP__MIN(lim_in, lim_out));
  cs = MP__MIN(cs, (size_t)UINT32_MAX);
  cs = MP__MAX(cs, (size_t)1);
  j->chunksize = cs;
  j->nchunks = count / cs + (count % cs != 0);
  if (j->nchunks > UINT32_MAX) {
    job_release(j);
    return mp__fail(MP_EINVAL, "%zu items make over 2^32 chunks: raise "
                               "chunksize", count);
  }
  if (iter && count > 0) {
    j->chunk_done = mp__calloc(j->nchunks, sizeof *j->chunk_done);
    j->fifo = mp__calloc(j->nchunks, sizeof *j->fifo);
    if (j->statuses == NULL) {
      j->statuses = mp__calloc(count, sizeof *j->statuses);
      j->statuses_owned = true;
    }
    if (j->chunk_done == NULL || j->fifo == NULL || j->statuses == NULL) {
      job_release(j);
      return MP_ENOMEM;
    }
  }

  pthread_mutex_lock(&p->lock);
  rc = submit_check(p);
  if (rc == 0 && count > 0)
    rc = fn_index(p, MP__POOL_FN_MAP, (void (*)(void))fn, &j->fn);
  if (rc == 0 && count > 0) {
    jobs_add(p, j);
    pending_append(p, j);
    mp__pool_dispatch(p);
    if (j->pending)
      mp__pool_kick(p);
  }
  pthread_mutex_unlock(&p->lock);
  if (rc != 0) {
    job_release(j);
    return rc;
  }
  if (count == 0) {
    /* Nothing to run: ready at once, without callbacks, as Python. */
    j->pool = NULL;
    atomic_store_explicit(&j->ready, 1, memory_order_release);
    atomic_store_explicit(&j->refs, 1, memory_order_relaxed);
  }
  *out_job = j;
  return 0;
}

int mp_pool_map_async(mp_pool *p, mp_async_result **out_result,
                      mp_pool_map_fn fn, const void *in, size_t count,
                      size_t in_size, void *out, size_t out_size,
                      const mp_pool_map_opts *opts) {
  if (out_result == NULL)
    return mp__fail(MP_EINVAL, "out_result is NULL");
  return map_submit(p, out_result, false, fn, in, count, in_size, out,
                    out_size, opts);
}

int mp_pool_map(mp_pool *p, mp_pool_map_fn fn, const void *in, size_t count,
                size_t in_size, void *out, size_t out_size,
                const mp_pool_map_opts *opts) {
  mp_task_error *err = opts != NULL ? opts->error : NULL;
  int rc;
  if (p != NULL && p->owner == mp__os_getpid() && in_handler(p)) {
    rc = mp__fail(MP_EDEADLK, "a pool callback cannot wait for a result");
    fill_error(err, rc, NULL);
    return rc;
  }
  mp_async_result *r;
  rc = mp_pool_map_async(p, &r, fn, in, count, in_size, out, out_size, opts);
  if (rc != 0) {
    fill_error(err, rc, NULL);
    return rc;
  }
  rc = mp_async_result_get(r, MP_FOREVER);
  fill_error(err, rc, r);
  mp_async_result_free(r);
  return rc;
}

int mp_pool_starmap(mp_pool *p, mp_pool_map_fn fn, const void *in,
                    size_t count, size_t in_size, void *out, size_t out_size,
                    const mp_pool_map_opts *opts) {
  return mp_pool_map(p, fn, in, count, in_size, out, out_size, opts);
}

int mp_pool_starmap_async(mp_pool *p, mp_async_result **out_result,
                          mp_pool_map_fn fn, const void *in, size_t count,
                          size_t in_size, void *out, size_t out_size,
                          const mp_pool_map_opts *opts) {
  return mp_pool_map_async(p, out_result, fn, in, count, in_size, out,
                           out_size, opts);
}

/* ---- iterators ------------------------------------------------------------- */

struct mp_pool_iter {
  mp_async_result *job;
  bool ordered;
  size_t pos;       /* ordered: the next index */
  size_t delivered; /* unordered: items yielded */
  size_t fifo_pos;  /* unordered: next finished chunk to take */
  size_t cur, left; /* unordered: the rest of the current chunk */
};

static int imap_common(mp_pool *p, mp_pool_iter **out_iter, bool ordered,
                       mp_pool_map_fn fn, const void *in, size_t count,
                       size_t in_size, void *out, size_t out_size,
                       const mp_pool_map_opts *opts) {
  if (out_iter == NULL)
    return mp__fail(MP_EINVAL, "out_iter is NULL");
  mp_pool_iter *it = mp__calloc(1, sizeof *it);
  if (it == NULL)
    return MP_ENOMEM;
  int rc = map_submit(p, &it->job, true, fn, in, count, in_size, out,
                      out_size, opts);
  if (rc != 0) {
    mp__free(it);
    return rc;
  }
  it->ordered = ordered;
  *out_iter = it;
  return 0;
}

int mp_pool_imap(mp_pool *p, mp_pool_iter **out_iter, mp_pool_map_fn fn,
                 const void *in, size_t count, size_t in_size, void *out,
                 size_t out_size, const mp_pool_map_opts *opts) {
  return imap_common(p, out_iter, true, fn, in, count, in_size, out,
                     out_size, opts);
}

int mp_pool_imap_unordered(mp_pool *p, mp_pool_iter **out_iter,
                           mp_pool_map_fn fn, const void *in, size_t count,
                           size_t in_size, void *out, size_t out_size,
                           const mp_pool_map_opts *opts) {
  return imap_common(p, out_iter, false, fn, in, count, in_size, out,
                     out_size, opts);
}

/* iter_end is the end of an iteration: MP_ECLOSED once the map is ready
 * (so its progress reports have run when the caller sees the end), else 1
 * (wait). */
static int iter_end(mp_async_result *j) {
  return atomic_load_explicit(&j->ready, memory_order_acquire) ? MP_ECLOSED
                                                               : 1;
}

/* iter_take yields the next finished item if there is one: 0 with it, 1
 * when none has finished yet, MP_ECLOSED at the end. */
static int iter_take(mp_pool_iter *it, size_t *index, int *status) {
  mp_async_result *j = it->job;
  size_t i;
  if (it->ordered) {
    if (it->pos >= j->count)
      return iter_end(j);
    size_t c = it->pos / j->chunksize;
    uint32_t done =
        atomic_load_explicit(&j->chunk_done[c], memory_order_acquire);
    if (done <= it->pos - c * j->chunksize)
      return 1;
    i = it->pos++;
  } else {
    if (it->delivered >= j->count)
      return iter_end(j);
    if (it->left == 0) {
      size_t n = atomic_load_explicit(&j->fifo_len, memory_order_acquire);
      if (it->fifo_pos >= n)
        return 1;
      size_t c = j->fifo[it->fifo_pos++];
      it->cur = c * j->chunksize;
      it->left = chunk_len(j, c);
    }
    i = it->cur++;
    it->left--;
    it->delivered++;
  }
  if (index != NULL)
    *index = i;
  if (status != NULL)
    *status = j->statuses[i];
  return 0;
}

int mp_pool_iter_next(mp_pool_iter *it, double timeout, size_t *index,
                      int *status) {
  if (it == NULL)
    return mp__fail(MP_EINVAL, "iterator is NULL");
  if (check_timeout(timeout) != 0)
    return MP_EINVAL;
  mp_async_result *j = it->job;
  if (not_ours(j))
    return fail_not_ours();
  mp__deadline d = mp__deadline_from_timeout(timeout);
  for (;;) {
    uint32_t seq = atomic_load_explicit(&j->progress, memory_order_seq_cst);
    int rc = iter_take(it, index, status);
    if (rc <= 0)
      return rc;
    if (d.poll || mp__deadline_expired(d))
      return MP_ETIMEDOUT;
    if (mp__os_gettid() == j->handler_tid)
      return mp__fail(MP_EDEADLK, "a pool callback cannot wait for a result");
    atomic_fetch_add_explicit(&j->progress_waiters, 1, memory_order_seq_cst);
    mp__os_futex_wait((uint32_t *)&j->progress, seq, d.ns, false);
    atomic_fetch_sub_explicit(&j->progress_waiters, 1, memory_order_seq_cst);
  }
}

/* ---- results ---------------------------------------------------------------- */

/* abandon cancels an unfinished job whose caller let go of it. */
static void abandon(mp_async_result *j) {
  /* A job that is not ready still has its pool: a pool is freed only
   * after every job of it was made ready. */
  if (atomic_load_explicit(&j->ready, memory_order_acquire))
    return;
  mp_pool *p = j->pool;
  pthread_mutex_lock(&p->lock);
  atomic_store_explicit(&j->abandoned, true, memory_order_release);
  if (!j->complete) {
    pending_remove(p, j);
    while (j->requeue != NULL) {
      mp__pool_requeue *r = j->requeue;
      j->requeue = r->next;
      mp__free(r);
    }
    j->next_chunk = j->nchunks;
    maybe_complete(p, j);
  }
  pthread_mutex_unlock(&p->lock);
}

void mp_pool_iter_free(mp_pool_iter *it) {
  if (it == NULL)
    return;
  if (not_ours(it->job)) {
    mp__free(it); /* the child's copy of the iterator; the job is not */
    return;
  }
  abandon(it->job);
  job_unref(it->job);
  mp__free(it);
}

static int wait_ready(mp_async_result *r, double timeout) {
  if (atomic_load_explicit(&r->ready, memory_order_acquire))
    return 0;
  mp__deadline d = mp__deadline_from_timeout(timeout);
  if (mp__os_gettid() == r->handler_tid)
    return mp__fail(MP_EDEADLK, "a pool callback cannot wait for a result");
  for (;;) {
    if (atomic_load_explicit(&r->ready, memory_order_acquire))
      return 0;
    if (d.poll || mp__deadline_expired(d))
      return MP_ETIMEDOUT;
    atomic_fetch_add_explicit(&r->waiters, 1, memory_order_seq_cst);
    if (!atomic_load_explicit(&r->ready, memory_order_seq_cst))
      mp__os_futex_wait((uint32_t *)&r->ready, 0, d.ns, false);
    atomic_fetch_sub_explicit(&r->waiters, 1, memory_order_seq_cst);
  }
}

int mp_async_result_wait(mp_async_result *r, double timeout) {
  if (r == NULL)
    return mp__fail(MP_EINVAL, "result is NULL");
  if (not_ours(r))
    return fail_not_ours();
  if (check_timeout(timeout) != 0)
    return MP_EINVAL;
  return wait_ready(r, timeout);
}

int mp_async_result_get(mp_async_result *r, double timeout) {
  if (r == NULL)
    return mp__fail(MP_EINVAL, "result is NULL");
  if (not_ours(r))
    return fail_not_ours();
  if (check_timeout(timeout) != 0)
    return MP_EINVAL;
  int rc = wait_ready(r, timeout);
  return rc != 0 ? rc : r->status;
}

int mp_async_result_ready(const mp_async_result *r) {
  return r != NULL && !not_ours(r) &&
         atomic_load_explicit(&((mp_async_result *)r)->ready,
                              memory_order_acquire) != 0;
}

int mp_async_result_successful(const mp_async_result *r) {
  if (r == NULL)
    return mp__fail(MP_EINVAL, "result is NULL");
  if (not_ours(r))
    return fail_not_ours();
  if (!mp_async_result_ready(r))
    return mp__fail(MP_ESTATE, "the result is not ready");
  return r->status == 0;
}

const void *mp_async_result_data(const mp_async_result *r, size_t *len) {
  if (len != NULL)
    *len = 0;
  if (!mp_async_result_ready(r) || r->kind != MP__JOB_APPLY || r->status != 0)
    return NULL;
  if (len != NULL)
    *len = r->data_len;
  return r->data;
}

int mp_async_result_error(const mp_async_result *r, mp_task_error *err) {
  if (r == NULL || err == NULL)
    return mp__fail(MP_EINVAL, r == NULL ? "result is NULL" : "err is NULL");
  if (not_ours(r))
    return fail_not_ours();
  if (!mp_async_result_ready(r) || r->status == 0)
    return mp__fail(MP_ESTATE, mp_async_result_ready(r)
                                   ? "the result succeeded"
                                   : "the result is not ready");
  *err = r->error;
  err->code = r->status;
  return 0;
}

void mp_async_result_free(mp_async_result *r) {
  if (r == NULL || not_ours(r))
    return;
  abandon(r);
  job_unref(r);
}
