/* multiproc/pool.h - worker pools, after Python's multiprocessing.Pool and
 * multiprocessing.pool.ThreadPool.
 *
 * A pool keeps a fixed number of workers (processes for mp_pool_new,
 * threads for mp_threadpool_new) and runs tasks on them. Tasks come in two
 * C shapes:
 *   - a bytes task, mp_pool_task_fn: input bytes in, result bytes out
 *     (apply, apply_async);
 *   - an item function, mp_pool_map_fn, applied to every element of an
 *     array of fixed-size C structs, writing one fixed-size result per
 *     element into the caller's output array (map, map_async, imap,
 *     imap_unordered, starmap, starmap_async). Items travel to the workers
 *     in chunks; nothing is allocated per item.
 *
 * How a worker finds the function. With the fork start method (the
 * default) and in a ThreadPool, a worker calls the very pointer it was
 * given: it runs in a copy of the parent's image. With spawn and
 * forkserver (opts.context), a worker is another image of the program and
 * finds the function by the name it was registered under with
 * mp_pool_register_task, mp_pool_register_map or mp_pool_register_init (or
 * the MP_POOL_TASK, MP_POOL_MAP, MP_POOL_INIT macros, which register at
 * load time); submitting an unregistered function then fails with
 * MP_ENOENT. Register before mp_child_main and before creating a
 * forkserver context.
 *
 * Crashes. A process worker that dies while it runs a task (segfault,
 * abort, _exit, SIGKILL from the OOM killer) fails exactly that task with
 * MP_EWORKERDIED, and mp_async_result_error tells the signal or status; a
 * fresh worker takes its place and every other task completes. In a map,
 * "the task" is the one item that was running: the items of its chunk
 * finished before it keep their results, the items after it are run
 * again. A ThreadPool has no such isolation: a crashing task ends the
 * whole program, as it would in any thread.
 *
 * Results. Every asynchronous call returns an mp_async_result (map_async,
 * apply_async) or an mp_pool_iter (imap, imap_unordered) that the caller
 * frees. Callbacks run in the pool's own result thread in the calling
 * process, never with a library lock held, before the result becomes
 * ready; a slow callback delays the delivery of other results, as in
 * Python. A callback may submit more work but must not wait for a result
 * (that returns MP_EDEADLK).
 *
 * Task results. A task returns 0 for success or any other int (use a
 * negative code) for its own failure; that value becomes the result's
 * status. The library's own failure statuses are MP_EWORKERDIED (the
 * worker died), MP_ETIMEDOUT (the task ran past opts.task_timeout and its
 * worker was killed), MP_ETOOBIG (a result larger than its capacity),
 * MP_ENOENT (a spawned worker does not know the function's name),
 * MP_ECLOSED (the pool was terminated first) and MP_EBROKEN (the pool
 * broke: a replacement worker's initializer failed).
 *
 * Threads and processes. Every call may come from any thread of the
 * process that created the pool, which should not fork while it uses the
 * pool's workers to run code that is not fork-safe (see process.h). Calls
 * from another process (a forked child holding a copy) return MP_EPERM. */
#ifndef MULTIPROC_POOL_H
#define MULTIPROC_POOL_H

#include "common.h"
#include "process.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_pool mp_pool;
typedef struct mp_async_result mp_async_result;
typedef struct mp_pool_iter mp_pool_iter;

/* mp_pool_task_fn is a bytes task. It reads in_len bytes at in (borrowed
 * for the call; NULL when in_len is 0), may write up to out_cap bytes at
 * out, stores how many it wrote in *out_len (0 on entry) and returns 0 or
 * its own failure code. A *out_len over out_cap fails the task with
 * MP_ETOOBIG. in and out are aligned for any C type. */
typedef int (*mp_pool_task_fn)(const void *in, size_t in_len, void *out,
                               size_t out_cap, size_t *out_len);

/* mp_pool_map_fn is an item function: it reads one input item at in and
 * writes one result item at out (both aligned as their struct; out is NULL
 * when the result size is 0, in when the input size is 0) and returns 0 or
 * the item's own failure code. For starmap, the input item is the struct
 * of the arguments. */
typedef int (*mp_pool_map_fn)(const void *in, void *out);

/* mp_pool_init_fn is a worker's initializer, run once when each worker
 * starts, with the pool's copy of the initargs bytes. Returning nonzero
 * fails the worker (see mp_pool_new). */
typedef int (*mp_pool_init_fn)(const void *initargs, size_t initargs_size);

/* mp_pool_callback_fn is a completion callback. It runs in the pool's
 * result thread of the calling process, with no library lock held, before
 * the result becomes ready. status is 0 (callback) or the failure
 * (error_callback). For apply_async, result and result_len are the result
 * bytes (borrowed for the call); for map_async, the caller's output array
 * and its size in bytes. */
typedef void (*mp_pool_callback_fn)(void *userdata, int status,
                                    const void *result, size_t result_len);

/* mp_pool_progress_fn reports a map's progress: done of total items have
 * finished (successfully or not). It runs in the pool's result thread,
 * with no library lock held, after each batch of chunks, and once more
 * when done equals total. */
typedef void (*mp_pool_progress_fn)(void *userdata, size_t done,
                                    size_t total);

/* mp_pool_opts holds the optional settings of a pool. Zeroed or NULL
 * options mean the defaults. */
typedef struct mp_pool_opts {
  int processes; /* workers; 0: mp_cpu_count(); at most MP_POOL_MAX_WORKERS */
  mp_pool_init_fn initializer; /* run in each worker at start, or NULL */
  const void *initargs;        /* copied at creation: initargs_size bytes */
  size_t initargs_size;        /* at most MP_POOL_INITARGS_MAX */
  unsigned long maxtasksperchild; /* tasks (a bytes task or a chunk) a
                                     worker runs before it is replaced; 0:
                                     no limit */
  double task_timeout; /* seconds one task (or one map item) may run before
                          its worker is killed and it fails MP_ETIMEDOUT;
                          0: no limit. Processes only. */
  mp_context *context; /* borrowed for the pool's life; NULL: fork. Ignored
                          by mp_threadpool_new. */
  size_t max_input_size;  /* largest input of one bytes task; 0: 1 MiB */
  size_t max_result_size; /* largest result of one bytes task; 0: 1 MiB */
  int backend; /* MP_POOL_BACKEND_*: where the workers are. 0 (DEFAULT):
                  the MPI ranks when the program runs under an MPI
                  launcher (mpirun, srun) and MP_POOL_BACKEND is not
                  "local", or when MP_POOL_BACKEND is "mpi"; else local */
} mp_pool_opts;

/* The pool backends (mp_pool_opts.backend). With MPI, processes is the
 * number of local worker processes of each worker rank (0: that host's
 * mp_cpu_count()), and the context is ignored (each rank forks). */
#define MP_POOL_BACKEND_DEFAULT 0
#define MP_POOL_BACKEND_LOCAL 1
#define MP_POOL_BACKEND_MPI 2

#define MP_POOL_MAX_WORKERS 1024
#define MP_POOL_INITARGS_MAX ((size_t)1 << 20)
/* The largest max_input_size and max_result_size. */
#define MP_POOL_SIZE_MAX ((size_t)1 << 30)

/* mp_task_error describes why a task failed. */
typedef struct mp_task_error {
  int code;        /* the status: the task's own code, MP_EWORKERDIED, ... */
  size_t index;    /* the item of a map (0 for a bytes task) */
  pid_t worker;    /* the worker process that ran it (0 in a ThreadPool) */
  mp_exit_info exit; /* for MP_EWORKERDIED and MP_ETIMEDOUT: how the
                        worker ended (signal and its name, or status) */
} mp_task_error;

/* ---- pools --------------------------------------------------------------
 * mp_pool_new starts a pool of worker processes, as Python's Pool(processes,
 * initializer, initargs, maxtasksperchild). Workers are daemonic: they get
 * SIGKILL when this process dies, even by SIGKILL, and are started from
 * the pool's own result thread, which lives as long as the pool (see the
 * parent-death caveat in process.h). It returns once every worker has
 * started and run its initializer. Returns 0 and the pool in *out;
 * MP_EINVAL (out NULL, processes < 0 or over MP_POOL_MAX_WORKERS, negative
 * task_timeout, a size over its limit, initargs_size without initargs);
 * MP_ENOENT when a spawn/forkserver context is given and the initializer
 * is not registered; MP_ENOMEM; an error from starting a worker (see
 * mp_process_start); or, when an initializer fails, its return value (or
 * MP_EWORKERDIED when it crashed) — reported once, nothing left running.
 * Blocks while the workers start. */
MP_EXTERN int mp_pool_new(mp_pool **out, const mp_pool_opts *opts);

/* mp_threadpool_new starts a pool whose workers are threads of this
 * process, as Python's ThreadPool: the same API, no crash isolation, no
 * task_timeout (MP_ENOTSUP), no context. Otherwise as mp_pool_new. */
MP_EXTERN int mp_threadpool_new(mp_pool **out, const mp_pool_opts *opts);

/* mp_pool_close stops the pool from accepting work, as Python's close():
 * later submissions return MP_ECLOSED; the workers finish what was
 * submitted and then exit. Returns 0 (also when already closed or
 * terminated), MP_EINVAL, MP_EPERM. Never blocks. */
MP_EXTERN int mp_pool_close(mp_pool *pool);

/* mp_pool_terminate stops the workers at once (SIGKILL for processes; a
 * ThreadPool lets each thread finish its current task), as Python's
 * terminate(). Every unfinished result becomes ready with MP_ECLOSED (its
 * error callback runs), and every unfinished map item gets MP_ECLOSED.
 * Returns 0 once no worker is left, MP_EINVAL, MP_EPERM, MP_EDEADLK from a
 * callback. Idempotent. */
MP_EXTERN int mp_pool_terminate(mp_pool *pool);

/* mp_pool_join waits up to timeout seconds for the workers to exit after
 * mp_pool_close (once every submitted task is done) or
 * mp_pool_terminate. Returns 0, MP_ETIMEDOUT, MP_ESTATE when the pool
 * still runs (close or terminate it first), MP_EDEADLK from a callback,
 * MP_EINVAL, MP_EPERM. */
MP_EXTERN int mp_pool_join(mp_pool *pool, double timeout);

/* mp_pool_free terminates the pool if it still runs (as leaving Python's
 * `with Pool() as p:` block does) and frees it. Results and iterators
 * obtained from the pool stay valid (ready with MP_ECLOSED if unfinished)
 * until freed themselves. Called from a callback, the pool is terminated
 * and freed by its result thread once it returns. NULL is a no-op. Blocks
 * only while the workers are killed and reaped. Must not run
 * concurrently with other calls on the same pool. */
MP_EXTERN void mp_pool_free(mp_pool *pool);

/* mp_pool_processes returns the number of workers, or MP_EINVAL. */
MP_EXTERN int mp_pool_processes(const mp_pool *pool);

/* mp_pool_worker_pids stores up to cap pids of the live worker processes
 * in out and returns how many there are (may exceed cap); 0 for a
 * ThreadPool; MP_EINVAL, MP_EPERM. The pids are a snapshot: a worker may
 * be replaced at any time. */
MP_EXTERN ssize_t mp_pool_worker_pids(mp_pool *pool, pid_t *out, size_t cap);

/* mp_pool_error returns 0 while the pool is healthy, or the error that
 * broke it (the failing initializer's code of a replacement worker, or
 * MP_EWORKERDIED when it crashed, or the error of starting workers),
 * filling *err (may be NULL) with the details. MP_EINVAL for NULL pool. */
MP_EXTERN int mp_pool_error(mp_pool *pool, mp_task_error *err);

/* ---- bytes tasks: apply, apply_async ------------------------------------
 * mp_pool_apply_opts holds the optional settings of apply_async. */
typedef struct mp_pool_apply_opts {
  mp_pool_callback_fn callback;       /* on success, or NULL */
  mp_pool_callback_fn error_callback; /* on failure, or NULL */
  void *userdata;                     /* passed to both */
  void *out;      /* optional: the result is copied here (borrowed until
                     the result is ready) instead of into library memory */
  size_t out_cap; /* capacity of out; the task's out_cap is the smaller of
                     this and the pool's max_result_size */
  const void *context; /* optional: context bytes, copied at submission and
                          again to the worker, which reads them with
                          mp_pool_context() while the task runs */
  size_t context_size; /* at most MP_POOL_CONTEXT_MAX */
  mp_task_error *error; /* optional, mp_pool_apply_ex: filled when it fails */
} mp_pool_apply_opts;

/* MP_POOL_CONTEXT_MAX is the largest context of one call. */
#define MP_POOL_CONTEXT_MAX ((size_t)64 << 10)

/* mp_pool_apply_async submits fn(in) and returns at once, as Python's
 * apply_async. It copies the in_len bytes at in. Returns 0 and the result
 * in *out; MP_EINVAL (NULL pool, out or fn; in NULL with in_len > 0);
 * MP_ETOOBIG (in_len over max_input_size); MP_ECLOSED (closed or
 * terminated); MP_EBROKEN; MP_ENOENT (fn not registered, spawn and
 * forkserver); MP_ENOSPC (over 256 distinct functions in one pool);
 * MP_ENOMEM; MP_EPERM. Callbacks are never called when it fails. */
MP_EXTERN int mp_pool_apply_async(mp_pool *pool, mp_async_result **out,
                                  mp_pool_task_fn fn, const void *in,
                                  size_t in_len,
                                  const mp_pool_apply_opts *opts);

/* mp_pool_apply runs fn(in) on a worker and waits for it, as Python's
 * apply. The result (at most out_cap bytes: the task's out_cap) is copied
 * to out and its length stored in *out_len (may be NULL). Returns the
 * task's status (0, its own code, MP_EWORKERDIED, ...) or a submission
 * error of mp_pool_apply_async; MP_EDEADLK from a callback. */
MP_EXTERN int mp_pool_apply(mp_pool *pool, mp_pool_task_fn fn,
                            const void *in, size_t in_len, void *out,
                            size_t out_cap, size_t *out_len);

/* mp_pool_apply_ex is mp_pool_apply with options: opts->context (see
 * mp_pool_context), and opts->error, which it fills when it returns
 * nonzero: as mp_async_result_error for a failed task (code, worker, how
 * the worker ended), or just the code for a submission error. The
 * callbacks, out and out_cap of opts must be unset (MP_EINVAL). opts may
 * be NULL. */
MP_EXTERN int mp_pool_apply_ex(mp_pool *pool, mp_pool_task_fn fn,
                               const void *in, size_t in_len, void *out,
                               size_t out_cap, size_t *out_len,
                               const mp_pool_apply_opts *opts);

/* ---- maps over arrays ---------------------------------------------------
 * mp_pool_map_opts holds the optional settings of the map family. */
typedef struct mp_pool_map_opts {
  size_t chunksize; /* items per task; 0: Python's default (map: count /
                       (4 * processes), rounded up; imap: 1). Chunks that
                       would exceed the pool's size limits are smaller. */
  int *statuses;    /* optional: count ints, each item's status (borrowed
                       until the result is ready) */
  mp_pool_callback_fn callback;       /* map_async: on success, or NULL */
  mp_pool_callback_fn error_callback; /* map_async: on failure, or NULL */
  void *userdata;                     /* passed to both callbacks */
  mp_pool_progress_fn progress;       /* progress reports, or NULL */
  void *progress_userdata;
  int progress_bar; /* nonzero: a progress bar on stderr: redrawn in place
                       on a terminal; otherwise one line when done */
  const void *context; /* optional: context bytes for every item, copied at
                          submission and to the workers (once per chunk);
                          the item function reads them with
                          mp_pool_context() */
  size_t context_size; /* at most MP_POOL_CONTEXT_MAX */
  mp_task_error *error; /* optional, the blocking map and starmap: filled
                           with the first failure when they fail */
} mp_pool_map_opts;

/* mp_pool_map_async applies fn to each of the count items of in_size bytes
 * at in, writing item i's result at out + i * out_size, and returns at
 * once, as Python's map_async. It borrows in, out and opts->statuses until
 * the result is ready (or freed: see mp_async_result_free). The result's
 * status is 0 when every item succeeded, else the status of the failing
 * item with the lowest index (mp_async_result_error names it); the other
 * items' results are still written. Items and results are at most 4 GiB
 * each, and one item must fit the pool's max_input_size and
 * max_result_size. Returns 0 and the result in *out_result; MP_EINVAL
 * (NULL arguments where count > 0 needs them, in_size or out_size over
 * the limits); MP_ETOOBIG; MP_ECLOSED; MP_EBROKEN; MP_ENOENT; MP_ENOSPC;
 * MP_ENOMEM; MP_EPERM. A map of 0 items is ready at once with status 0. */
MP_EXTERN int mp_pool_map_async(mp_pool *pool, mp_async_result **out_result,
                                mp_pool_map_fn fn, const void *in,
                                size_t count, size_t in_size, void *out,
                                size_t out_size,
                                const mp_pool_map_opts *opts);

/* mp_pool_map is mp_pool_map_async followed by a wait, as Python's map.
 * Returns the map's status (see above) or a submission error; MP_EDEADLK
 * from a callback. When it returns nonzero and opts->error is set, that
 * is filled as by mp_async_result_error (the failing item with the lowest
 * index, and how its worker ended), or with just the code for a
 * submission error. */
MP_EXTERN int mp_pool_map(mp_pool *pool, mp_pool_map_fn fn, const void *in,
                          size_t count, size_t in_size, void *out,
                          size_t out_size, const mp_pool_map_opts *opts);

/* mp_pool_starmap and mp_pool_starmap_async are Python's starmap: in C, a
 * map whose input items are structs holding each call's arguments. They
 * behave exactly as mp_pool_map and mp_pool_map_async. */
MP_EXTERN int mp_pool_starmap(mp_pool *pool, mp_pool_map_fn fn,
                              const void *in, size_t count, size_t in_size,
                              void *out, size_t out_size,
                              const mp_pool_map_opts *opts);
MP_EXTERN int mp_pool_starmap_async(mp_pool *pool,
                                    mp_async_result **out_result,
                                    mp_pool_map_fn fn, const void *in,
                                    size_t count, size_t in_size, void *out,
                                    size_t out_size,
                                    const mp_pool_map_opts *opts);

/* mp_pool_imap starts a map and returns an iterator that yields the items
 * in order as they finish, as Python's imap; mp_pool_imap_unordered yields
 * them as they finish, chunk by chunk. Results are written to out as for
 * map_async (borrowed until the iterator is exhausted or freed); callbacks
 * in opts are ignored. Same errors as mp_pool_map_async. */
MP_EXTERN int mp_pool_imap(mp_pool *pool, mp_pool_iter **out_iter,
                           mp_pool_map_fn fn, const void *in, size_t count,
                           size_t in_size, void *out, size_t out_size,
                           const mp_pool_map_opts *opts);
MP_EXTERN int mp_pool_imap_unordered(mp_pool *pool, mp_pool_iter **out_iter,
                                     mp_pool_map_fn fn, const void *in,
                                     size_t count, size_t in_size, void *out,
                                     size_t out_size,
                                     const mp_pool_map_opts *opts);

/* mp_pool_iter_next waits up to timeout seconds for the next item, as
 * Python's next(it, timeout). Returns 0 with the item's index in *index
 * and its status in *status (its result is at out + index * out_size when
 * the status is 0); MP_ECLOSED once every item was yielded and the map's
 * progress reports have run (Python's StopIteration); MP_ETIMEDOUT when
 * none came in time (also for timeout 0); MP_EDEADLK from a callback;
 * MP_EPERM in a forked child (the parent's iterator: mp_pool_iter_free
 * then frees only the child's copy); MP_EINVAL. index and status may be
 * NULL. One thread at a time per iterator. */
MP_EXTERN int mp_pool_iter_next(mp_pool_iter *it, double timeout,
                                size_t *index, int *status);

/* mp_pool_iter_free frees the iterator. If its map is unfinished, the map
 * is cancelled: chunks not yet started are dropped and the results of
 * running ones discarded, so out is no longer written once this returns.
 * NULL is a no-op. Never blocks. */
MP_EXTERN void mp_pool_iter_free(mp_pool_iter *it);

/* mp_pool_context returns, in a task or item function, the context bytes
 * of the call it runs for (opts.context of apply_async, apply_ex or the
 * map family), aligned for any C type, and stores their size in *size
 * (may be NULL). NULL and 0 outside a task or when the call had none. The
 * bytes are the worker's copy, valid until the function returns: under
 * spawn, forkserver and MPI a pointer in them means nothing, under fork
 * and in a ThreadPool it does (the same image). This is the C analogue of
 * functools.partial and of a callback's void *userdata. */
MP_EXTERN const void *mp_pool_context(size_t *size);

/* ---- results ------------------------------------------------------------
 * A result, like its pool, belongs to the process that made it: in a
 * forked child every call below on the parent's results returns MP_EPERM
 * (ready: 0, data: NULL, free: does nothing).
 *
 * mp_async_result_get waits up to timeout seconds for the result, as
 * Python's get(timeout), and returns its status (0 or the failure, see
 * "Task results"); MP_ETIMEDOUT when it is not ready in time (also for
 * timeout 0: a task failing with MP_ETIMEDOUT is told apart by
 * mp_async_result_ready); MP_EDEADLK when called from a callback on a
 * result that is not ready; MP_EPERM; MP_EINVAL. */
MP_EXTERN int mp_async_result_get(mp_async_result *r, double timeout);

/* mp_async_result_wait waits up to timeout seconds for the result to be
 * ready, as Python's wait(timeout). Returns 0 when ready, MP_ETIMEDOUT,
 * MP_EDEADLK, MP_EPERM, MP_EINVAL. */
MP_EXTERN int mp_async_result_wait(mp_async_result *r, double timeout);

/* mp_async_result_ready returns 1 once the result is ready, else 0 (also
 * for NULL). Never blocks. */
MP_EXTERN int mp_async_result_ready(const mp_async_result *r);

/* mp_async_result_successful returns 1 when the ready result succeeded, 0
 * when it failed, MP_ESTATE when it is not ready (Python's ValueError),
 * MP_EPERM, MP_EINVAL. */
MP_EXTERN int mp_async_result_successful(const mp_async_result *r);

/* mp_async_result_data returns the bytes of a ready, successful
 * apply_async result and stores their length in *len (may be NULL): the
 * caller's opts.out when one was given, else library memory (aligned for
 * any C type) valid until the result is freed. NULL (and *len 0) when not ready, failed, or a
 * map's result (its results are in the caller's array). */
MP_EXTERN const void *mp_async_result_data(const mp_async_result *r,
                                           size_t *len);

/* mp_async_result_error fills *err with why a ready result failed: the
 * failing item's index for a map, and how the worker ended for
 * MP_EWORKERDIED and MP_ETIMEDOUT. Returns 0, MP_ESTATE when not ready or
 * successful, MP_EPERM, MP_EINVAL. */
MP_EXTERN int mp_async_result_error(const mp_async_result *r,
                                    mp_task_error *err);

/* mp_async_result_free frees the result. If it is not ready, its work is
 * cancelled: no callback runs, a bytes task not yet started is dropped, a
 * map's unstarted chunks are dropped, and nothing more is written to the
 * memory it borrowed once this returns. NULL is a no-op. Never blocks. */
MP_EXTERN void mp_async_result_free(mp_async_result *r);

/* ---- naming functions for spawn and forkserver workers -----------------
 * mp_pool_register_task, mp_pool_register_map and mp_pool_register_init
 * register fn under name (copied; at most 255 bytes) for workers started
 * by spawn or forkserver. Returns 0 (also when registered again with the
 * same function), MP_EEXIST for a name bound to another function of the
 * same kind, MP_EINVAL, MP_ENOMEM. The macros register fn under its own
 * name at load time. */
MP_EXTERN int mp_pool_register_task(const char *name, mp_pool_task_fn fn);
MP_EXTERN int mp_pool_register_map(const char *name, mp_pool_map_fn fn);
MP_EXTERN int mp_pool_register_init(const char *name, mp_pool_init_fn fn);
#define MP_POOL_TASK(fn)                                                    \
  __attribute__((constructor)) static void mp__pool_task_##fn(void) {       \
    (void)mp_pool_register_task(#fn, (fn));                                  \
  }
#define MP_POOL_MAP(fn)                                                     \
  __attribute__((constructor)) static void mp__pool_map_##fn(void) {        \
    (void)mp_pool_register_map(#fn, (fn));                                   \
  }
#define MP_POOL_INIT(fn)                                                    \
  __attribute__((constructor)) static void mp__pool_init_##fn(void) {       \
    (void)mp_pool_register_init(#fn, (fn));                                  \
  }

#ifdef __cplusplus
}
#endif
#endif
