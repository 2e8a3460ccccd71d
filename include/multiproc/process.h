/* multiproc/process.h - processes, after Python's multiprocessing.Process.
 *
 * A process object names a function to run in a child process: a target
 * with its argument, or a run callback that receives the process object
 * itself (the "subclass overrides run" style). mp_process_start starts the
 * child with the context's start method (fork by default; spawn and
 * forkserver through mp_context), mp_process_join waits for it, and
 * mp_process_exit_info tells why it ended: exit status, signal and name,
 * and an error message the child set with mp_process_set_error.
 *
 * Exit codes follow Python: the status the child exited with, or minus the
 * number of the signal that killed it. A target's return value is the
 * child's exit status.
 *
 * Lifetime: daemonic children are terminated (SIGTERM, then SIGKILL) when
 * their parent exits normally, and get SIGKILL when the parent dies any
 * other way (including SIGKILL); non-daemonic children are joined when the
 * parent exits normally, as Python does. Each process object is owned by
 * the process that created it; after fork a child sees only its own record
 * through mp_current_process, and the calls that act on a child return
 * MP_EPERM for copies of its parent's objects. Unlike Python, a daemonic
 * process may start children of its own.
 *
 * The parent-death caveat: the kernel's parent-death signal
 * (PR_SET_PDEATHSIG) fires when the *thread* that started a daemonic child
 * exits, not only when the whole parent process dies. Start daemonic
 * children (and create forkserver contexts) from a thread that lives as
 * long as they should, such as the main thread. */
#ifndef MULTIPROC_PROCESS_H
#define MULTIPROC_PROCESS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_process mp_process;
typedef struct mp_context mp_context;

/* mp_process_target_fn is a child's entry point. arg is the argument given
 * to mp_process_new: under fork the same pointer (the child has a copy of
 * the parent's memory); under spawn and forkserver a pointer to the child's
 * copy of the arg_size bytes at arg. The return value becomes the exit
 * status (0..255). */
typedef int (*mp_process_target_fn)(void *arg);

/* mp_process_run_fn is the "overridden run" style: it receives the process
 * object (name, userdata, argument) and returns the exit status. */
typedef int (*mp_process_run_fn)(mp_process *self);

/* mp_start_method selects how a child is started (Python's start methods).
 * MP_START_FORK: fork(2); the target is called by pointer. MP_START_SPAWN:
 * a fresh image of this program (/proc/self/exe); the target is found by
 * the name it was registered under, its argument passed as bytes; the
 * program must call mp_child_main first thing in main. MP_START_FORKSERVER:
 * a single-threaded server, forked from the program when the context is
 * created, forks each child on request; targets by registered name. */
typedef enum mp_start_method {
  MP_START_FORK = 0,
  MP_START_SPAWN = 1,
  MP_START_FORKSERVER = 2
} mp_start_method;

/* mp_pass_fd names a descriptor of the parent that a program started with
 * exec_argv receives: fd becomes descriptor number as in the program (as
 * < 0: the same number, like subprocess's pass_fds). */
typedef struct mp_pass_fd {
  int fd;
  int as;
} mp_pass_fd;

/* mp_process_opts holds the optional settings of mp_process_new. Zeroed or
 * NULL options mean the defaults. */
typedef struct mp_process_opts {
  const char *name;  /* copied; default "Process-N" ("Process-1:2" nested) */
  int daemon;        /* nonzero: daemonic child (see above) */
  size_t arg_size;   /* bytes at arg to copy to spawn/forkserver children
                        (at most 1 GiB); 0 passes the pointer itself (fork
                        only) */
  mp_process_run_fn run; /* called instead of target when set */
  void *userdata;        /* borrowed; returned by mp_process_userdata (in
                            a spawn/forkserver child it is NULL) */
  mp_context *context;   /* borrowed; NULL is the default context (fork) */
  /* exec_argv: run this program instead of a target, as Python's
   * subprocess.Popen(argv): argv[0] is searched in PATH unless it has a
   * '/', the vector ends with NULL; copied. The context is ignored. The
   * program inherits descriptors 0-2 and pass_fds, nothing else. */
  char *const *exec_argv;
  const mp_pass_fd *pass_fds; /* copied; only with exec_argv */
  size_t pass_fds_len;        /* entries in pass_fds (at most 256) */
} mp_process_opts;

/* mp_exit_info says why a process ended. */
typedef struct mp_exit_info {
  int exitcode;    /* Python's exitcode: status, or -signal */
  int status;      /* exit status when it exited, else 0 */
  int signal;      /* the signal that killed it, else 0 */
  int core_dumped; /* nonzero when the kernel wrote a core dump */
  char signal_name[16]; /* "SIGSEGV", or "" when it exited */
  char message[256];    /* what the child set with mp_process_set_error */
} mp_exit_info;

/* mp_process_new creates a process object that will run target(arg) (or
 * opts->run) when started. It copies opts->name and, under spawn and
 * forkserver, the arg_size bytes at arg when the child starts; it borrows
 * arg until then, and opts->context and userdata for the object's life.
 * Returns 0 and stores the object in *out, MP_EINVAL for a NULL out, a
 * name over 255 bytes, an arg_size with a NULL arg, or bad exec options
 * (an empty program, a target too, pass_fds without exec_argv, two
 * entries onto one number), MP_ERANGE when children nest over 1024 deep,
 * MP_ENOMEM. Nothing is started. A NULL target (and no run) makes a child
 * that exits with status 0. */
MP_EXTERN int mp_process_new(mp_process **out, mp_process_target_fn target,
                             void *arg, const mp_process_opts *opts);

/* mp_process_start starts the child. It returns once the child exists
 * (under spawn and forkserver: once the child has found its target).
 * Returns 0; MP_ESTATE if started before or closed (or the forkserver is
 * gone); MP_EPERM for an object (or forkserver context) another process
 * created; MP_ENOENT when a spawn/forkserver target is not registered (in
 * this program, the spawned image or the server); MP_EINVAL for an arg
 * without arg_size under spawn/forkserver; MP_ETOOBIG; MP_ETIMEDOUT when
 * the child did not answer within 30 s; MP_EPROTO when it ended without
 * answering; MP_ESTATE (detail names the fix) in a spawned program whose
 * main did not call mp_child_main before starting a process, which
 * would otherwise re-run main in every child (the spawned program also
 * tells its parent, whose start fails with MP_ESTATE); with exec_argv,
 * MP_EBADF for a pass_fds entry that is not open and -errno of the exec
 * (MP_ENOENT: no such program); -errno of fork/exec. A failed start
 * leaves no child behind, and the object may be started again. The child starts with an empty signal mask (so
 * terminate reaches it whichever thread started it); under fork it keeps
 * the parent's signal handlers, as fork(2) does. */
MP_EXTERN int mp_process_start(mp_process *p);

/* mp_process_run runs the target in the calling process, as Python's
 * run(), and returns its return value. */
MP_EXTERN int mp_process_run(mp_process *p);

/* mp_process_join waits up to timeout seconds for the child to end and
 * reaps it. Returns 0 when it has ended, MP_ETIMEDOUT when it is still
 * running (also for timeout 0), MP_ESTATE when it was never started, was
 * closed, or is the parent record, MP_EDEADLK when a process joins
 * itself, MP_EPERM when another process created p. Any thread of the
 * creating process may call it, several at once. */
MP_EXTERN int mp_process_join(mp_process *p, double timeout);

/* mp_process_is_alive returns 1 while the child runs, 0 once it has ended
 * (reaping it) or before it was started, MP_EINVAL for a NULL p, MP_EPERM
 * when another process created p. For mp_parent_process() it tells whether the parent still
 * runs; for mp_current_process() it is 1. Never blocks. */
MP_EXTERN int mp_process_is_alive(mp_process *p);

/* mp_process_terminate sends SIGTERM; mp_process_kill sends SIGKILL. Both
 * return 0 (also when the child ended already but was not yet reaped),
 * MP_ESTATE when not started or already reaped (so a recycled pid is never
 * signalled), MP_EPERM when another process created p. */
MP_EXTERN int mp_process_terminate(mp_process *p);
MP_EXTERN int mp_process_kill(mp_process *p);

/* mp_process_close releases the object's resources, as Python's close();
 * further calls but mp_process_free return MP_ESTATE. Returns MP_ESTATE if
 * the child is still running. Idempotent. */
MP_EXTERN int mp_process_close(mp_process *p);

/* mp_process_free frees the object. A running child is not waited for nor
 * signalled; it is still terminated or joined at exit per its daemon flag.
 * NULL, mp_current_process() and mp_parent_process() are no-ops. Never
 * blocks. */
MP_EXTERN void mp_process_free(mp_process *p);

/* Accessors. name: valid until set again or freed. pid and ident: 0 before
 * start. sentinel: a file descriptor that becomes readable when the child
 * ends (for poll/select), -1 before start or after close. daemon and
 * sentinel return MP_EINVAL for a NULL p; name, userdata and arg NULL, pid
 * and ident 0. */
MP_EXTERN const char *mp_process_name(const mp_process *p);
MP_EXTERN int mp_process_set_name(mp_process *p, const char *name);
MP_EXTERN pid_t mp_process_pid(const mp_process *p);
MP_EXTERN pid_t mp_process_ident(const mp_process *p);
MP_EXTERN int mp_process_daemon(const mp_process *p);
/* mp_process_set_daemon returns MP_ESTATE once started, as Python. */
MP_EXTERN int mp_process_set_daemon(mp_process *p, int daemon);
MP_EXTERN void *mp_process_userdata(const mp_process *p);
MP_EXTERN void *mp_process_arg(const mp_process *p);
MP_EXTERN int mp_process_sentinel(const mp_process *p);

/* mp_process_exitcode stores Python's exitcode in *exitcode and returns 0
 * once the child has ended and been reaped; MP_EAGAIN while it runs (it
 * does not wait), MP_ESTATE before start and after close, MP_EPERM when
 * another process created p. */
MP_EXTERN int mp_process_exitcode(mp_process *p, int *exitcode);

/* mp_process_exit_info fills *info once the child has ended (same returns
 * as mp_process_exitcode). */
MP_EXTERN int mp_process_exit_info(mp_process *p, mp_exit_info *info);

/* mp_process_set_error records, in the calling child, a message its parent
 * reads in mp_exit_info.message (truncated to 255 bytes). Call it before
 * failing. Returns 0, MP_ESTATE in a process multiproc did not start. */
MP_EXTERN int mp_process_set_error(const char *message);

/* mp_current_process returns the calling process's own record (name
 * "MainProcess" in a program's first process). Never NULL; owned by the
 * library. Only the accessors apply to it. */
MP_EXTERN mp_process *mp_current_process(void);

/* mp_parent_process returns a record of the parent that started this
 * process (name and pid; is_alive works; join returns MP_ESTATE; its
 * sentinel is -1), or NULL in the main process. Under forkserver it is the
 * program that asked for the child, not the server. */
MP_EXTERN mp_process *mp_parent_process(void);

/* mp_active_children reaps ended children and stores up to cap of the
 * calling process's live children in out (borrowed; objects the program
 * freed while running are not listed). Returns how many are alive (may
 * exceed cap), or a negative code. */
MP_EXTERN ssize_t mp_active_children(mp_process **out, size_t cap);

/* mp_process_authkey copies p's authkey (Python's Process.authkey) into
 * buf, which holds cap bytes, and returns its length; MP_ETOOBIG (nothing
 * copied) when cap is smaller, MP_EINVAL for NULL p or NULL buf with cap >
 * 0. The main process's key is 32 random bytes (made on first use); a
 * child gets its creator's key when created, carried to it by fork, spawn
 * and forkserver. Pass mp_current_process() for this process's own key
 * (Python's current_process().authkey). Keys are at most MP_AUTHKEY_MAX
 * bytes. */
#define MP_AUTHKEY_MAX 256
MP_EXTERN ssize_t mp_process_authkey(const mp_process *p, void *buf,
                                     size_t cap);

/* mp_process_set_authkey copies len bytes of key into p's record: for a
 * child not yet started, the key it will have; for mp_current_process(),
 * this process's key from now on (children created later inherit it).
 * Returns 0; MP_EINVAL (NULL p, NULL key with len > 0, len over
 * MP_AUTHKEY_MAX, the parent record); MP_ESTATE (a child already started). */
MP_EXTERN int mp_process_set_authkey(mp_process *p, const void *key,
                                     size_t len);

/* mp_cpu_count returns the number of CPUs this process may run on (its
 * affinity mask), at least 1. */
MP_EXTERN int mp_cpu_count(void);

/* mp_signal_name returns "SIGKILL" for SIGKILL and so on, "SIG?" for an
 * unknown number. Static. */
MP_EXTERN const char *mp_signal_name(int sig);

/* mp_register_target registers fn under name, so spawn and forkserver
 * children can find it. Register the same names in the same program before
 * mp_child_main and before creating a forkserver context. Copies name.
 * Returns 0, MP_EEXIST for a name bound to another function, MP_EINVAL,
 * MP_ENOMEM. MP_TARGET(fn) registers fn under its own name at load time. */
MP_EXTERN int mp_register_target(const char *name, mp_process_target_fn fn);
MP_EXTERN int mp_register_run(const char *name, mp_process_run_fn fn);
#define MP_TARGET(fn)                                                       \
  __attribute__((constructor)) static void mp__register_##fn(void) {        \
    (void)mp_register_target(#fn, (fn));                                     \
  }

/* mp_child_main must be called first thing in main() of a program that uses
 * the spawn start method, like Python's `if __name__ == '__main__':` guard.
 * In a spawned child it runs the registered target and exits with its
 * status, never returning (status 1 if its description cannot be read or
 * its target is not registered). Elsewhere it returns 0 at once. */
MP_EXTERN int mp_child_main(int argc, char **argv);

/* mp_context_new creates a context that fixes a start method, as Python's
 * get_context(). For MP_START_FORKSERVER it starts the server now: create it
 * while the program has one thread. Returns 0, MP_EINVAL, MP_ENOMEM, or
 * -errno from starting the server. */
MP_EXTERN int mp_context_new(mp_context **out, mp_start_method method);

/* mp_context_free stops the context's server (if any) and frees it. Call it
 * after the processes that used it have ended: the server SIGKILLs its
 * daemonic children and waits for the others before it exits, and this
 * call waits for the server. NULL is a no-op. */
MP_EXTERN void mp_context_free(mp_context *ctx);

MP_EXTERN mp_start_method mp_context_method(const mp_context *ctx);

/* mp_start_method_name returns "fork", "spawn" or "forkserver". */
MP_EXTERN const char *mp_start_method_name(mp_start_method method);

/* ==== one-call helpers (src/convenience_run.c) ===========================
 * What a Python program writes as p = Process(...); p.start(); p.join(),
 * and subprocess's Popen and run(check=True), in one call each.
 *
 * mp_process_join_check is mp_process_join followed by a check of how the
 * child ended, as subprocess's check_returncode(): 0 when it exited with
 * status 0; MP_EWORKERDIED when it exited with another status or was
 * killed, with the detail "Process-1 exited with status 1: <the message
 * it left>" (MP_CHECK's text in a child) or "Process-1 was killed by
 * SIGSEGV"; the errors of mp_process_join (MP_ETIMEDOUT: still running);
 * MP_EINVAL for a NULL p. */
MP_EXTERN int mp_process_join_check(mp_process *p, double timeout);

/* mp_process_start_join_n creates n processes of target(arg) with opts
 * (as mp_process_new), starts them all, then joins them all and frees
 * them. Returns 0 when every child exited with status 0 (n 0 too); else
 * the first failure: an error of mp_process_new or mp_process_start (the
 * children already started are still joined: none is left behind), or
 * MP_EWORKERDIED for the first child, in start order, that failed (detail
 * as mp_process_join_check). MP_EINVAL for n over 4096. Blocks until every
 * child has ended. mp_process_start_join is the same with n = 1. */
MP_EXTERN int mp_process_start_join_n(size_t n, mp_process_target_fn target,
                                      void *arg,
                                      const mp_process_opts *opts);
MP_EXTERN int mp_process_start_join(mp_process_target_fn target, void *arg,
                                    const mp_process_opts *opts);

/* mp_popen starts the program argv (argv[0] searched in PATH unless it has
 * a '/'; NULL-terminated; copied) with the descriptors of pass_fds
 * (pass_fds_len entries, may be 0) as Python's subprocess.Popen(argv,
 * pass_fds=...): mp_process_new with exec_argv, then mp_process_start. The
 * process is named after argv[0] when that fits 255 bytes. Returns 0 and
 * the started process in *out; MP_EINVAL (NULL out, NULL or empty argv,
 * bad pass_fds), MP_ENOENT (no such program), MP_EBADF (a pass_fds entry
 * is not open), and the other errors of mp_process_new and
 * mp_process_start. On failure *out is untouched and nothing runs. Join it
 * with mp_process_join or mp_process_join_check, then mp_process_free. */
MP_EXTERN int mp_popen(mp_process **out, char *const argv[],
                       const mp_pass_fd *pass_fds, size_t pass_fds_len);

/* mp_subprocess_run runs argv to its end, as subprocess.run(argv,
 * pass_fds=..., check=True): mp_popen, then mp_process_join_check with
 * MP_FOREVER. Returns 0 when the program exited with status 0, else the
 * errors of those two calls (MP_EWORKERDIED: it failed; the detail says
 * how). */
MP_EXTERN int mp_subprocess_run(char *const argv[],
                                const mp_pass_fd *pass_fds,
                                size_t pass_fds_len);

#ifdef __cplusplus
}
#endif
#endif
