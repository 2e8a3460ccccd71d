/* multiproc/thread.h - threads, after Python's threading.Thread.
 *
 * A thread object runs target(arg) (or the run callback) in a new thread.
 * join takes a timeout, is_alive never blocks. Non-daemonic threads are
 * joined when the program exits normally (exit() or a return from main),
 * as Python waits for them; daemonic ones are not waited for. The sync
 * objects and queues of this library work between threads as between
 * processes.
 *
 * Names: "Thread-N" by default, "MainThread" for the main thread,
 * "Dummy-N" for a thread not started here that calls mp_current_thread
 * (N counts from 1, shared by both, as in Python).
 *
 * Fork: a forked child keeps only the thread that called fork. It becomes
 * the child's main thread (mp_main_thread); every other thread's object
 * reports ended (is_alive 0, join returns 0 at once).
 *
 * Threads: every call may come from any thread, except that
 * mp_thread_set_name must not race with readers of the same object's
 * name. */
#ifndef MULTIPROC_THREAD_H
#define MULTIPROC_THREAD_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_thread mp_thread;
typedef void (*mp_thread_target_fn)(void *arg);
typedef void (*mp_thread_run_fn)(mp_thread *self);

typedef struct mp_thread_opts {
  const char *name;     /* copied; at most 255 bytes; default "Thread-N" */
  int daemon;           /* > 0 daemonic, < 0 not daemonic, 0 (default): the
                           creating thread's flag, as Python's daemon=None
                           (the main thread's is 0, a Dummy's 1) */
  mp_thread_run_fn run; /* called instead of target when set */
  void *userdata;       /* borrowed; returned by mp_thread_userdata */
} mp_thread_opts;

/* mp_thread_new creates a thread object; borrows arg until the thread ends.
 * A NULL target (and no run callback) makes a thread that does nothing, as
 * Python's Thread(). Returns 0, MP_EINVAL (out NULL, name too long),
 * MP_ENOMEM. Nothing is started. */
MP_EXTERN int mp_thread_new(mp_thread **out, mp_thread_target_fn target,
                            void *arg, const mp_thread_opts *opts);
/* mp_thread_start starts the thread and returns once it runs (its ident is
 * known). Returns 0, MP_ESTATE if started before (or for the main thread
 * or a Dummy), -errno of pthread_create (MP_EAGAIN). */
MP_EXTERN int mp_thread_start(mp_thread *t);
/* mp_thread_run runs the target in the calling thread. */
MP_EXTERN void mp_thread_run(mp_thread *t);
/* mp_thread_join waits up to timeout for the thread to end. Any number of
 * threads may join the same thread. Returns 0, MP_ETIMEDOUT (also for
 * timeout 0), MP_ESTATE (never started), MP_EDEADLK (joins itself),
 * MP_EINVAL (a Dummy, which cannot be joined, as in Python). The main
 * thread counts as ended once the program starts its normal exit. */
MP_EXTERN int mp_thread_join(mp_thread *t, double timeout);
/* mp_thread_is_alive returns 1 from start until the target returns (or
 * the thread calls pthread_exit), else 0; MP_EINVAL for a NULL t. Never
 * blocks. */
MP_EXTERN int mp_thread_is_alive(mp_thread *t);
/* mp_thread_free frees a thread object. If the thread is running it is
 * detached and its object freed when it ends (a non-daemonic one is still
 * waited for at exit). The main thread's and Dummy objects belong to the
 * library: freeing them is a no-op, as is NULL. Never blocks. */
MP_EXTERN void mp_thread_free(mp_thread *t);
/* mp_thread_name returns the name, valid until set again or freed. */
MP_EXTERN const char *mp_thread_name(const mp_thread *t);
/* mp_thread_set_name copies name (at most 255 bytes, else MP_EINVAL);
 * returns 0 or MP_ENOMEM. */
MP_EXTERN int mp_thread_set_name(mp_thread *t, const char *name);
/* mp_thread_daemon returns 1 for a daemonic thread, else 0; MP_EINVAL for
 * a NULL t. */
MP_EXTERN int mp_thread_daemon(const mp_thread *t);
/* mp_thread_set_daemon returns MP_ESTATE once started. */
MP_EXTERN int mp_thread_set_daemon(mp_thread *t, int daemon);
/* mp_thread_ident returns the kernel thread id (gettid), 0 before start. */
MP_EXTERN pid_t mp_thread_ident(const mp_thread *t);
MP_EXTERN void *mp_thread_userdata(const mp_thread *t);
/* mp_current_thread returns the calling thread's object ("MainThread" for
 * the main thread; a "Dummy-N" record for threads not started here, which
 * is daemonic, always alive, and freed when that thread exits). Owned by
 * the library. NULL only when a Dummy record cannot be allocated. */
MP_EXTERN mp_thread *mp_current_thread(void);
MP_EXTERN mp_thread *mp_main_thread(void);
/* mp_thread_enumerate stores up to cap live thread objects (the main
 * thread first, then those started here and the Dummy records of foreign
 * threads, as Python's enumerate). Returns how many are alive, which may
 * exceed cap; MP_EINVAL for a NULL out with cap > 0. The pointers are
 * borrowed: an object freed while running disappears when its thread
 * ends. */
MP_EXTERN ssize_t mp_thread_enumerate(mp_thread **out, size_t cap);
/* mp_thread_active_count returns how many mp_thread_enumerate would. */
MP_EXTERN int mp_thread_active_count(void);

/* mp_sleep suspends the calling thread for seconds, as Python's
 * time.sleep; a signal does not cut it short. Returns 0, MP_EINVAL for a
 * negative or NaN duration (Python's ValueError). */
MP_EXTERN int mp_sleep(double seconds);

/* mp_monotonic returns seconds of a clock that never goes back, as
 * Python's time.monotonic (for measuring durations). */
MP_EXTERN double mp_monotonic(void);

/* mp_thread_start_join_n creates n threads of target(arg) with opts (as
 * mp_thread_new), starts them all, then joins them all and frees them
 * (src/convenience_run.c). Returns 0 (n 0 too); else the first error of
 * mp_thread_new, mp_thread_start or mp_thread_join (the threads already
 * started are still joined); MP_EINVAL for n over 4096. Blocks until every
 * thread has ended. */
MP_EXTERN int mp_thread_start_join_n(size_t n, mp_thread_target_fn target,
                                     void *arg, const mp_thread_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
