/* pool_handler.c - the pool's result thread, Python's _handle_results,
 * _handle_workers and _handle_tasks in one: it starts the workers (so they
 * live as long as this thread, see the parent-death caveat in process.h),
 * collects finished descriptors, publishes pending work, notices workers
 * that died, exited or overran their time limit and replaces them, runs
 * callbacks and progress reports, and at close or terminate stops the
 * workers and finishes every job.
 *
 * DESIGN
 * One loop under the pool's lock: collect from every worker, look at each
 * worker's life, restart empty slots, dispatch, deliver (callbacks and
 * readiness, with the lock released), and sleep when nothing happened.
 * It sleeps on the segment's parent_wake futex: workers wake it after a
 * descriptor when it announced sleep, API calls kick it when they leave
 * work it must act on. The sleep has a deadline: the next time limit to
 * enforce, or a tick (20 ms while jobs are unfinished, 100 ms otherwise,
 * as Python's worker handler polls) at which it checks that every worker
 * process still lives. A worker that exits on purpose (task quota,
 * failed initializer) says so in its slot first and is reaped at once.
 *
 * A dead worker is handled in this order, so nothing is counted twice or
 * lost: collect what it finished, fail the one descriptor it had begun
 * (the item it was on, for a map chunk; the rest of the chunk runs
 * again), reset its slot's worker side, and leave the descriptors it had
 * not begun in its ring for the replacement, which continues from there.
 * Only when no replacement will come (terminate, a broken pool, a start
 * that failed) are they taken back into the pending queue or failed.
 *
 * Start-up failures are reported once: a worker whose initializer fails
 * (returns nonzero or dies) at pool creation fails mp_pool_new; later, it
 * breaks the pool (pending and new work fail with MP_EBROKEN,
 * mp_pool_error says why) instead of respawning forever as Python does.
 * Workers that die before they are ready several times in a row, or that
 * cannot be started many times in a row, break the pool the same way. */
#define _GNU_SOURCE
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "os/cpu.h"
#include "mpi/mpi_internal.h"
#include "pool_internal.h"

#define TICK_BUSY_NS (20 * 1000 * 1000)
#define TICK_IDLE_NS (100 * 1000 * 1000)
/* How long the thread polls for results before it sleeps. */
#define HANDLER_SPIN_NS 2000
/* How long a worker that said it is leaving may take to end before it
 * gets SIGKILL, and how long workers told to stop at close may take. */
#define REAP_WAIT_S 2.0
#define STOP_WAIT_S 5.0
/* Deaths before READY in a row, and failed starts in a row, that break
 * the pool; the pause between failed starts. */
#define MAX_EARLY_DEATHS 5
#define MAX_START_FAILURES 10
#define START_RETRY_NS (50 * 1000 * 1000)

/* Set at normal program exit: workers are not replaced any more (the exit
 * handler of process.c is about to terminate them). */
static _Atomic bool exiting;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static void on_exit_handler(void) { atomic_store(&exiting, true); }
static void register_exit(void) { atexit(on_exit_handler); }

static mp__pool_slot *slot_of(mp_pool *p, uint32_t i) {
  return mp__pool_slot_at(p->h, &p->g, i);
}

static void wake_worker(mp__pool_slot *s) {
  atomic_fetch_add_explicit(&s->wake, 1, memory_order_seq_cst);
  mp__os_futex_wake((uint32_t *)&s->wake, 1, true);
}

/* ---- starting workers ------------------------------------------------------ */

static void thread_worker_main(void *arg) {
  const mp__pool_boot *b = arg;
  (void)mp__pool_worker_run(b->seg, b, true);
}

static const char *worker_prefix(const mp_pool *p) {
  if (p->mpi)
    return "MPIRankProxy";
  if (p->threads)
    return "ThreadPoolWorker";
  switch (p->method) {
  case MP_START_SPAWN:
    return "SpawnPoolWorker";
  case MP_START_FORKSERVER:
    return "ForkServerPoolWorker";
  default:
    return "ForkPoolWorker";
  }
}

/* start_worker starts a worker in slot i, which has none. The lock is
 * held on entry and exit but not while the worker starts. */
static int start_worker(mp_pool *p, uint32_t i) {
  mp__pool_worker *w = &p->workers[i];
  mp__pool_slot *s = slot_of(p, i);
  /* The worker side of the slot, as a new worker expects it: continue
   * after what was collected, write output on a fresh lap past anything
   * the last worker may have touched. */
  uint64_t cap = p->g.out_cap;
  uint64_t base = (w->out_free / cap + 2) * cap;
  w->out_free = base;
  s->out_base = base;
  atomic_store_explicit(&s->out_free, base, memory_order_relaxed);
  s->tail_base = w->collected;
  atomic_store_explicit(&s->tail, w->collected, memory_order_relaxed);
  atomic_store_explicit(&s->started, w->collected, memory_order_relaxed);
  atomic_store_explicit(&s->item, 0, memory_order_relaxed);
  atomic_store_explicit(&s->sleeping, MP__POOL_AWAKE, memory_order_relaxed);
  atomic_store_explicit(&s->state, MP__POOL_W_NONE, memory_order_relaxed);
  atomic_store_explicit(&s->init_rc, 0, memory_order_relaxed);
  atomic_store_explicit(&s->item_start_ns, 0, memory_order_relaxed);
  atomic_store_explicit(&s->abort, 0, memory_order_relaxed);
  atomic_store_explicit(&s->stop, 0, memory_order_relaxed);
  s->generation++;
  atomic_thread_fence(memory_order_release);
  w->kill_reason = 0;
  w->state = MP__PW_STARTING;

  char name[64];
  snprintf(name, sizeof name, "%s-%u", worker_prefix(p),
           (unsigned)++p->worker_counter);
  bool by_name = !p->threads && p->method != MP_START_FORK;
  memset(&w->boot, 0, sizeof w->boot);
  w->boot.magic = MP__POOL_BOOT_MAGIC;
  w->boot.slot = i;
  w->boot.seg_size = p->seg_size;
  w->boot.seg = by_name ? NULL : p->h;
  w->boot.geom = p->g;
  w->boot.pool = p->mpi ? p : NULL;
  snprintf(w->boot.seg_name, sizeof w->boot.seg_name, "%s", p->seg_name);

  mp_process *proc = NULL;
  mp_thread *thread = NULL;
  pthread_mutex_unlock(&p->lock);
  int rc;
  if (p->threads) {
    mp_thread_opts to = {.name = name, .daemon = 1};
    rc = mp_thread_new(&thread,
                       p->mpi ? mp__pool_mpi_proxy_main : thread_worker_main,
                       &w->boot, &to);
    if (rc == 0)
      rc = mp_thread_start(thread);
  } else {
    mp_process_opts po = {.name = name,
                          .daemon = 1,
                          .context = p->context,
                          .arg_size = by_name ? sizeof w->boot : 0};
    rc = mp_process_new(&proc, mp__pool_worker_target, &w->boot, &po);
    if (rc == 0)
      rc = mp_process_start(proc);
  }
  pthread_mutex_lock(&p->lock);
  if (rc != 0) {
    mp_process_free(proc);
    mp_thread_free(thread);
    w->state = MP__PW_EMPTY;
    return rc;
  }
  w->proc = proc;
  w->thread = thread;
  w->pid = proc != NULL ? mp_process_pid(proc) : 0;
  return 0;
}

/* ---- workers that end --------------------------------------------------------- */

static bool worker_alive(mp__pool_worker *w) {
  if (w->proc != NULL)
    return mp_process_is_alive(w->proc) == 1;
  if (w->thread != NULL)
    return mp_thread_is_alive(w->thread) == 1;
  return false;
}

/* set_broken records why the pool cannot go on (the first reason only),
 * fails the work not yet published and the work left in empty slots. */
static void set_broken(mp_pool *p, int code, pid_t pid,
                       const mp_exit_info *info) {
  if (p->broken_rc != 0)
    return;
  p->broken_rc = code;
  memset(&p->broken, 0, sizeof p->broken);
  p->broken.code = code;
  p->broken.worker = pid;
  if (info != NULL)
    p->broken.exit = *info;
  mp__pool_fail_pending(p, MP_EBROKEN);
  for (int k = 0; k < p->nworkers; k++)
    if (p->workers[k].state == MP__PW_EMPTY)
      mp__pool_reclaim(p, (uint32_t)k, MP_EBROKEN);
}

/* worker_ended accounts for worker i, which has ended and been reaped. */
static void worker_ended(mp_pool *p, uint32_t i) {
  mp__pool_worker *w = &p->workers[i];
  mp__pool_slot *s = slot_of(p, i);
  mp_exit_info info;
  memset(&info, 0, sizeof info);
  if (w->proc != NULL)
    (void)mp_process_exit_info(w->proc, &info);
  mp__pool_collect(p, i);
  uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
  bool was_ready = st == MP__POOL_W_READY || st == MP__POOL_W_EXITING;
  pid_t pid = w->pid;
  if (st == MP__POOL_W_INIT_FAILED ||
      (!was_ready && w->kill_reason == 0 && (p->has_init || p->starting))) {
    /* Its initializer failed, or it died before it was ready. */
    int code = st == MP__POOL_W_INIT_FAILED
                   ? atomic_load_explicit(&s->init_rc, memory_order_relaxed)
                   : MP_EWORKERDIED;
    if (code == 0)
      code = MP_EWORKERDIED;
    set_broken(p, code, pid, &info);
  } else {
    int code = MP_EWORKERDIED;
    if (w->kill_reason == MP_ETIMEDOUT) {
      if (w->collected == w->kill_desc &&
          atomic_load_explicit(&s->item, memory_order_acquire) ==
              w->kill_item)
        code = MP_ETIMEDOUT;
    } else if (w->kill_reason != 0) {
      code = w->kill_reason;
    }
    mp__pool_fail_running(p, i, code, &info);
    if (was_ready) {
      w->early_deaths = 0;
    } else if (w->kill_reason == 0 && info.signal != SIGKILL &&
               ++w->early_deaths >= MAX_EARLY_DEATHS) {
      /* A worker SIGKILLed from outside before it was ready (a busy
       * machine makes that window long) says nothing about whether
       * workers can start: only deaths of their own count. */
      set_broken(p, MP_EWORKERDIED, pid, &info);
    }
  }
  mp_process_free(w->proc);
  mp_thread_free(w->thread);
  w->proc = NULL;
  w->thread = NULL;
  w->pid = 0;
  w->state = MP__PW_EMPTY;
  if (p->state == MP__POOL_TERMINATE)
    mp__pool_reclaim(p, i, MP_ECLOSED);
  else if (p->broken_rc != 0)
    mp__pool_reclaim(p, i, MP_EBROKEN);
}

/* reap waits up to wait_s seconds for worker i to end (then kills a
 * process), and accounts for it. A thread cannot be killed: with a bounded
 * wait_s it is told to leave first, since the state word that said it
 * leaves is in the segment a task can scribble, and one still running
 * stays LEAVING to be waited for again; MP_FOREVER waits for it (the pool
 * ends, and its segment must outlive every worker). The lock is released
 * while it waits. */
static void reap(mp_pool *p, uint32_t i, double wait_s) {
  mp__pool_worker *w = &p->workers[i];
  mp_process *proc = w->proc;
  mp_thread *thread = w->thread;
  if (proc == NULL && thread == NULL) {
    w->state = MP__PW_EMPTY;
    return;
  }
  pthread_mutex_unlock(&p->lock);
  if (proc != NULL) {
    if (mp_process_join(proc, wait_s) == MP_ETIMEDOUT) {
      mp_process_kill(proc);
      mp_process_join(proc, MP_FOREVER);
    }
  } else if (wait_s == MP_FOREVER) {
    mp_thread_join(thread, MP_FOREVER);
  } else {
    mp__pool_slot *s = slot_of(p, i);
    atomic_store_explicit(&s->abort, 1, memory_order_release);
    wake_worker(s);
    if (mp_thread_join(thread, wait_s) == MP_ETIMEDOUT) {
      pthread_mutex_lock(&p->lock);
      w->state = MP__PW_LEAVING;
      return;
    }
  }
  pthread_mutex_lock(&p->lock);
  worker_ended(p, i);
}

/* check_time_limit kills worker i if its item ran past the pool's limit,
 * else lowers *deadline to when it would. */
static void check_time_limit(mp_pool *p, uint32_t i, int64_t now,
                             int64_t *deadline) {
  mp__pool_worker *w = &p->workers[i];
  mp__pool_slot *s = slot_of(p, i);
  uint32_t started = atomic_load_explicit(&s->started, memory_order_acquire);
  uint32_t tail = atomic_load_explicit(&s->tail, memory_order_acquire);
  if (started != tail + 1 || tail - w->collected >= w->head - w->collected)
    return;
  mp__pool_ref *ref = &w->refs[tail % MP__POOL_RING];
  uint32_t item = atomic_load_explicit(&s->item, memory_order_acquire);
  if (ref->job != NULL && ref->job->kind == MP__JOB_MAP &&
      item >= ref->count)
    return; /* every item ran; only the tail is not yet published */
  int64_t t0 =
      (int64_t)atomic_load_explicit(&s->item_start_ns, memory_order_relaxed);
  if (now - t0 < p->timeout_ns) {
    if (t0 + p->timeout_ns < *deadline)
      *deadline = t0 + p->timeout_ns;
    return;
  }
  w->kill_reason = MP_ETIMEDOUT;
  w->kill_desc = tail;
  w->kill_item = item;
  w->state = MP__PW_LEAVING;
  mp_process_kill(w->proc);
  reap(p, i, REAP_WAIT_S);
}

/* poll_workers looks at each worker's life. tick: check that processes
 * still run. */
static void poll_workers(mp_pool *p, int64_t now, bool tick,
                         int64_t *deadline) {
  for (uint32_t i = 0; i < (uint32_t)p->nworkers; i++) {
    mp__pool_worker *w = &p->workers[i];
    mp__pool_slot *s = slot_of(p, i);
    if (w->state == MP__PW_EMPTY)
      continue;
    if (w->state == MP__PW_LEAVING) {
      reap(p, i, REAP_WAIT_S);
      continue;
    }
    uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
    if (st == MP__POOL_W_EXITING || st == MP__POOL_W_INIT_FAILED) {
      w->state = MP__PW_LEAVING;
      reap(p, i, REAP_WAIT_S);
      continue;
    }
    if (w->state == MP__PW_STARTING && st == MP__POOL_W_READY)
      w->state = MP__PW_READY;
    if (tick && !worker_alive(w)) {
      worker_ended(p, i);
      continue;
    }
    /* A worker that sleeps with work queued was left to a sibling that
     * died before it woke it. */
    if (tick &&
        atomic_load_explicit(&s->sleeping, memory_order_relaxed) ==
            MP__POOL_WAIT_WORK &&
        atomic_load_explicit(&s->head, memory_order_relaxed) !=
            atomic_load_explicit(&s->tail, memory_order_relaxed))
      wake_worker(s);
    if (w->state == MP__PW_READY && p->timeout_ns > 0 && w->proc != NULL)
      check_time_limit(p, i, now, deadline);
  }
}

/* respawn starts workers in empty slots while the pool needs them. */
static void respawn(mp_pool *p, int64_t now, int64_t *deadline) {
  if (p->broken_rc != 0 || p->state == MP__POOL_TERMINATE ||
      atomic_load(&exiting))
    return;
  if (p->state == MP__POOL_CLOSE && p->njobs == 0)
    return;
  for (uint32_t i = 0; i < (uint32_t)p->nworkers; i++) {
    mp__pool_worker *w = &p->workers[i];
    if (w->state != MP__PW_EMPTY)
      continue;
    if (p->mpi && mp__mpi_rank_gone((int)i + 1)) {
      /* A dead rank is never replaced: its queued work goes elsewhere,
       * and with no rank left the pool is broken. */
      mp__pool_reclaim(p, i, 0);
      bool any = false;
      for (int k = 0; k < p->nworkers; k++)
        any |= !mp__mpi_rank_gone(k + 1);
      if (!any) {
        set_broken(p, MP_EWORKERDIED, 0, NULL);
        return;
      }
      continue;
    }
    if (now < w->retry_ns) {
      if (w->retry_ns < *deadline)
        *deadline = w->retry_ns;
      continue;
    }
    int rc = start_worker(p, i);
    if (rc == 0) {
      w->start_failures = 0;
      continue;
    }
    /* Let the other workers run what was queued here meanwhile. */
    mp__pool_reclaim(p, i, 0);
    if (++w->start_failures >= MAX_START_FAILURES) {
      set_broken(p, rc, 0, NULL);
      return;
    }
    w->retry_ns = mp__os_now_ns() + START_RETRY_NS;
    if (w->retry_ns < *deadline)
      *deadline = w->retry_ns;
  }
}

/* ---- delivering and sleeping ---------------------------------------------------- */

/* deliver hands the finished jobs and progress reports to
 * mp__pool_deliver with the lock released. */
static void deliver(mp_pool *p) {
  mp_async_result *done = p->done_head, *progress = p->progress_head;
  p->done_head = p->done_tail = NULL;
  p->progress_head = NULL;
  for (mp_async_result *j = progress; j != NULL; j = j->next_progress) {
    j->listed_progress = false;
    j->progress_snapshot = j->items_done;
  }
  pthread_mutex_unlock(&p->lock);
  mp__pool_deliver(p, done, progress);
  pthread_mutex_lock(&p->lock);
}

/* news tells whether a worker finished a descriptor or changed its life
 * since the thread last looked. Reads only what this thread writes and
 * the slots' atomics, so it needs no lock. */
static bool news(mp_pool *p) {
  for (uint32_t i = 0; i < (uint32_t)p->nworkers; i++) {
    mp__pool_worker *w = &p->workers[i];
    if (w->state == MP__PW_EMPTY)
      continue;
    mp__pool_slot *s = slot_of(p, i);
    /* A ready MPI proxy collects its own results (pool_mpi.c, under the
     * lock: collected is not this thread's alone then) and kicks this
     * thread for what it must do. */
    if (!(p->mpi && w->state == MP__PW_READY) &&
        atomic_load_explicit(&s->tail, memory_order_relaxed) != w->collected)
      return true;
    uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    if (st != (w->state == MP__PW_STARTING ? MP__POOL_W_NONE
                                           : MP__POOL_W_READY))
      return true;
  }
  return false;
}

static void handler_sleep(mp_pool *p, int64_t deadline) {
  pthread_mutex_unlock(&p->lock);
  int64_t spin_until = mp__os_now_ns() + HANDLER_SPIN_NS;
  bool found = false;
  /* A driven pool's thread has the owner's work to do too: it sleeps at
   * once (the spin's yields would each be a context switch more). */
  for (unsigned k = 1; !found && p->drive_hook == NULL; k++) {
    found = news(p);
    if ((k & 15) == 0) {
      if (mp__os_now_ns() >= spin_until)
        break;
      mp__os_yield();
    }
    mp__os_cpu_relax();
  }
  pthread_mutex_lock(&p->lock);
  if (found)
    return;
  mp__pool_header *h = p->h;
  uint32_t seq = atomic_load_explicit(&h->parent_wake, memory_order_acquire);
  atomic_store_explicit(&h->parent_sleeping, 1, memory_order_relaxed);
  /* Pairs with the workers' fence between publishing a tail and reading
   * parent_sleeping, and with mp__pool_kick's. */
  atomic_thread_fence(memory_order_seq_cst);
  if (!p->kick && !news(p)) {
    pthread_mutex_unlock(&p->lock);
    mp__os_futex_wait((uint32_t *)&h->parent_wake, seq, deadline, true);
    pthread_mutex_lock(&p->lock);
  }
  atomic_store_explicit(&h->parent_sleeping, 0, memory_order_relaxed);
}

/* ---- the phases -------------------------------------------------------------------- */

/* startup starts every worker and waits until all are ready. Returns 0 or
 * why one could not start or get ready. */
/* gone_rank: slot i of an MPI pool stands for a rank known dead (an
 * earlier pool found it silent): it is never started, and work goes to
 * the others. */
static bool gone_rank(const mp_pool *p, uint32_t i) {
  return p->mpi && mp__mpi_rank_gone((int)i + 1);
}

static int startup(mp_pool *p) {
  p->starting = true;
  bool any = false;
  for (uint32_t i = 0; i < (uint32_t)p->nworkers; i++)
    any |= !gone_rank(p, i);
  if (!any)
    return MP_EWORKERDIED; /* every worker rank is dead */
  for (uint32_t i = 0; i < (uint32_t)p->nworkers; i++) {
    if (gone_rank(p, i))
      continue;
    int rc = start_worker(p, i);
    if (rc != 0)
      return rc;
  }
  for (;;) {
    int64_t now = mp__os_now_ns();
    int64_t deadline = now + TICK_BUSY_NS;
    poll_workers(p, now, true, &deadline);
    if (p->broken_rc != 0)
      return p->broken_rc;
    bool all = true;
    for (int i = 0; i < p->nworkers; i++) {
      if (gone_rank(p, (uint32_t)i))
        continue;
      if (p->workers[i].state == MP__PW_EMPTY)
        return MP_EWORKERDIED;
      all &= p->workers[i].state == MP__PW_READY;
    }
    if (all)
      return 0;
    handler_sleep(p, deadline);
  }
}

static void run(mp_pool *p) {
  int64_t next_tick = 0;
  for (;;) {
    p->kick = false;
    int64_t now = mp__os_now_ns();
    bool tick = now >= next_tick;
    if (tick)
      next_tick = now + (p->njobs > 0 ? TICK_BUSY_NS : TICK_IDLE_NS);
    int64_t deadline = next_tick;
    for (uint32_t i = 0; i < (uint32_t)p->nworkers; i++)
      if (p->workers[i].state != MP__PW_EMPTY)
        mp__pool_collect(p, i);
    if (p->state == MP__POOL_TERMINATE)
      return;
    poll_workers(p, now, tick, &deadline);
    respawn(p, now, &deadline);
    mp__pool_dispatch(p);
    if (p->done_head != NULL || p->progress_head != NULL) {
      deliver(p);
      continue;
    }
    if (p->drive_hook != NULL) {
      /* A driven pool: the owner's work, in the same wake. */
      pthread_mutex_unlock(&p->lock);
      int64_t until = p->drive_hook(p, p->drive_arg);
      pthread_mutex_lock(&p->lock);
      if (p->kick || p->done_head != NULL || p->progress_head != NULL ||
          p->state == MP__POOL_TERMINATE || until <= mp__os_now_ns())
        continue;
      if (until < deadline)
        deadline = until;
    }
    if (p->state == MP__POOL_CLOSE && p->njobs == 0)
      return;
    if (p->state == MP__POOL_TERMINATE)
      return;
    handler_sleep(p, deadline);
  }
}

/* stop_workers ends every worker: kill (terminate, or a failed start-up)
 * or ask them to leave once idle (close). */
static void stop_workers(mp_pool *p, bool kill) {
  for (uint32_t i = 0; i < (uint32_t)p->nworkers; i++) {
    mp__pool_worker *w = &p->workers[i];
    mp__pool_slot *s = slot_of(p, i);
    if (w->state == MP__PW_EMPTY)
      continue;
    if (kill) {
      if (w->kill_reason == 0)
        w->kill_reason = MP_ECLOSED;
      if (w->proc != NULL)
        mp_process_kill(w->proc);
      atomic_store_explicit(&s->abort, 1, memory_order_release);
    } else {
      atomic_store_explicit(&s->stop, 1, memory_order_release);
    }
    wake_worker(s);
    w->state = MP__PW_LEAVING;
  }
  for (uint32_t i = 0; i < (uint32_t)p->nworkers; i++)
    if (p->workers[i].state == MP__PW_LEAVING)
      reap(p, i,
           kill || p->workers[i].thread != NULL ? MP_FOREVER : STOP_WAIT_S);
  for (uint32_t i = 0; i < (uint32_t)p->nworkers; i++)
    mp__pool_reclaim(p, i, MP_ECLOSED);
}

int mp__pool_drive(mp_pool *p, mp__pool_drive_hook hook, void *arg) {
  p->drive_hook = hook;
  p->drive_arg = arg;
  mp__pool_handler_main(p);
  /* This thread is the owner's again (mp_pool_free, waits). */
  p->handler_tid = 0;
  return p->startup_rc;
}

void mp__pool_handler_main(void *arg) {
  mp_pool *p = arg;
  pthread_once(&exit_once, register_exit);
  pthread_mutex_lock(&p->lock);
  p->handler_tid = mp__os_gettid();
  int rc = startup(p);
  p->starting = false;
  if (rc == 0) {
    atomic_store_explicit(&p->started, 1, memory_order_release);
    mp__os_futex_wake((uint32_t *)&p->started, INT_MAX, false);
    run(p);
  }
  bool kill = rc != 0 || p->state == MP__POOL_TERMINATE;
  stop_workers(p, kill);
  mp__pool_fail_pending(p, MP_ECLOSED);
  while (p->done_head != NULL || p->progress_head != NULL)
    deliver(p);
  bool free_self = p->free_on_exit;
  if (rc != 0) {
    /* mp_pool_new reports it and frees the pool once this thread ends. */
    p->startup_rc = rc;
    atomic_store_explicit(&p->started, 1, memory_order_release);
    mp__os_futex_wake((uint32_t *)&p->started, INT_MAX, false);
  }
  atomic_store_explicit(&p->finished, 1, memory_order_release);
  mp__os_futex_wake((uint32_t *)&p->finished, INT_MAX, false);
  pthread_mutex_unlock(&p->lock);
  if (free_self) {
    /* mp_pool_free was called from a callback: nobody else will. */
    mp_thread_free(p->handler);
    mp__pool_release(p);
  }
}
