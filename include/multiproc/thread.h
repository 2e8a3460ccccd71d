/* multiproc/thread.h - threads, after Python's threading.Thread.
 *
 * A thread object runs target(arg) (or the run callback) in a new thread.
 * join takes a timeout, is_alive never blocks. Non-daemonic threads are
 * joined when the program exits normally, as Python waits for them;
 * daemonic ones are not waited for. The sync objects and queues of this
 * library work between threads as between processes. */
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
  const char *name;     /* copied; default "Thread-N" */
  int daemon;           /* default: the creating thread's daemon flag */
  mp_thread_run_fn run; /* called instead of target when set */
  void *userdata;       /* borrowed; returned by mp_thread_userdata */
} mp_thread_opts;

/* mp_thread_new creates a thread object; borrows arg until the thread ends.
 * Returns 0, MP_EINVAL, MP_ENOMEM. */
MP_EXTERN int mp_thread_new(mp_thread **out, mp_thread_target_fn target,
                            void *arg, const mp_thread_opts *opts);
/* mp_thread_start returns 0, MP_ESTATE if started before, -errno. */
MP_EXTERN int mp_thread_start(mp_thread *t);
/* mp_thread_run runs the target in the calling thread. */
MP_EXTERN void mp_thread_run(mp_thread *t);
/* mp_thread_join waits up to timeout for the thread to end. Returns 0,
 * MP_ETIMEDOUT, MP_ESTATE (never started), MP_EDEADLK (joins itself). */
MP_EXTERN int mp_thread_join(mp_thread *t, double timeout);
MP_EXTERN int mp_thread_is_alive(mp_thread *t);
/* mp_thread_free frees a thread object. If the thread is running it is
 * detached and its object freed when it ends. NULL is a no-op. */
MP_EXTERN void mp_thread_free(mp_thread *t);
MP_EXTERN const char *mp_thread_name(const mp_thread *t);
MP_EXTERN int mp_thread_set_name(mp_thread *t, const char *name);
MP_EXTERN int mp_thread_daemon(const mp_thread *t);
/* mp_thread_set_daemon returns MP_ESTATE once started. */
MP_EXTERN int mp_thread_set_daemon(mp_thread *t, int daemon);
/* mp_thread_ident returns the kernel thread id (gettid), 0 before start. */
MP_EXTERN pid_t mp_thread_ident(const mp_thread *t);
MP_EXTERN void *mp_thread_userdata(const mp_thread *t);
/* mp_current_thread returns the calling thread's object ("MainThread" for
 * the main thread; a "Dummy-N" record for threads not started here). */
MP_EXTERN mp_thread *mp_current_thread(void);
MP_EXTERN mp_thread *mp_main_thread(void);
/* mp_thread_enumerate stores up to cap live thread objects (started here,
 * plus the main thread). Returns how many are alive. */
MP_EXTERN ssize_t mp_thread_enumerate(mp_thread **out, size_t cap);
MP_EXTERN int mp_thread_active_count(void);

#ifdef __cplusplus
}
#endif
#endif
