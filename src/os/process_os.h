/* os/process_os.h - the platform interface for processes: fork, spawning a
 * fresh image of this program, pidfds, reaping one child by pid, the
 * parent-death signal, descriptor passing over Unix sockets, memfds, and
 * the CPU count. A port implements these; process.c, spawn.c and
 * forkserver.c call nothing else that is specific to one system. The Linux
 * implementation is src/os/linux_process.c.
 *
 * Conventions as in os.h: functions return 0 (or a count, a pid, a file
 * descriptor) on success and a negative MP_E* code (-errno) on failure.
 * Every descriptor these create is close-on-exec. Deadlines are absolute
 * CLOCK_MONOTONIC nanoseconds, INT64_MAX meaning none. */
#ifndef MP_OS_PROCESS_H
#define MP_OS_PROCESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* mp__os_fork forks the calling process. Returns the child's pid in the
 * parent, 0 in the child, or -errno. In the parent, before it returns, it
 * calls the observer set with mp__os_fork_observe with the child's pid:
 * for a module that must know of a child before the child has run (the
 * queue's table of users: a child enters itself only in its atfork
 * handler, when it first runs). */
pid_t mp__os_fork(void);
void mp__os_fork_observe(void (*fn)(pid_t child));

/* mp__os_newest_child returns the pid of the calling thread's newest
 * child not yet reaped (the last of /proc/thread-self/children), or -1
 * when it has none or cannot tell. A program's own fork(2) tells
 * pthread_atfork's parent handler its child's pid this way. (A subreaper
 * that adopts an orphan at that moment has the orphan listed last.) */
pid_t mp__os_newest_child(void);

/* mp__os_pidfd_open returns a descriptor that refers to the process pid
 * (readable once it has ended), MP_ENOSYS where the system has none, or
 * -errno. */
int mp__os_pidfd_open(pid_t pid);

/* mp__os_pidfd_send_signal sends sig to the process behind pidfd. It
 * cannot hit a recycled pid. Returns 0 or -errno. */
int mp__os_pidfd_send_signal(int pidfd, int sig);

/* mp__os_wait_nohang reaps the child pid if it has ended, storing its wait
 * status. Returns 1 when reaped, 0 while it runs, -errno (MP_ECHILD when
 * it is not our child or was reaped elsewhere). Never waits for any other
 * child. */
int mp__os_wait_nohang(pid_t pid, int *wstatus);

/* mp__os_wait_blocking waits for the child pid to end and reaps it.
 * Returns 0 or -errno. */
int mp__os_wait_blocking(pid_t pid, int *wstatus);

/* mp__os_wait_readable waits until fd is readable (or hung up) or the
 * deadline passes. Returns 1 when ready, 0 at the deadline, -errno.
 * Retries EINTR against the same deadline. */
int mp__os_wait_readable(int fd, int64_t abs_ns);

/* mp__os_sleep_until sleeps until the absolute monotonic time abs_ns. */
void mp__os_sleep_until(int64_t abs_ns);

/* mp__os_set_parent_death_signal asks the kernel to send sig to the
 * caller when the thread that created it exits. Returns 0 or MP_ENOSYS. */
int mp__os_set_parent_death_signal(int sig);

/* mp__os_unblock_signals empties the calling thread's signal mask. */
void mp__os_unblock_signals(void);

/* mp__os_pipe and mp__os_socketpair make close-on-exec pairs (the socket
 * pair is a connected stream pair). */
int mp__os_pipe(int fds[2]);
int mp__os_socketpair(int fds[2]);

/* mp__os_set_nonblocking and mp__os_set_inheritable change one flag. */
int mp__os_set_nonblocking(int fd);
int mp__os_set_inheritable(int fd);

/* mp__os_memfd makes an anonymous file of size bytes that can be passed
 * to another process and mapped there. Returns the descriptor or -errno. */
int mp__os_memfd(const char *name, size_t size);

/* mp__os_send_all writes len bytes to the stream socket sock, passing the
 * nfds descriptors in fds with the first bytes. Returns 0, MP_EPIPE when
 * the peer is gone, MP_ETIMEDOUT at the deadline, -errno. Never raises
 * SIGPIPE. */
int mp__os_send_all(int sock, const void *buf, size_t len, const int *fds,
                    size_t nfds, int64_t abs_ns);

/* mp__os_recv_all reads exactly len bytes from sock. Descriptors that
 * arrive with them are stored in fds (up to maxfds, close-on-exec) and
 * counted in *nfds; extra ones are closed and make it fail with
 * MP_EPROTO. Returns 0, MP_EPIPE at end of stream, MP_ETIMEDOUT, -errno.
 * On failure it closes the descriptors it received. fds and nfds may be
 * NULL when no descriptors are expected. */
int mp__os_recv_all(int sock, void *buf, size_t len, int *fds, size_t maxfds,
                    size_t *nfds, int64_t abs_ns);

/* mp__os_self_argv reads this program's original argument vector once
 * (the caller frees the vector with mp__free; the strings live in the same
 * block). Returns 0 or -errno. */
int mp__os_self_argv(char ***argv_out);

/* mp__os_spawn_self starts a fresh image of this program with argv and
 * envp. The child gets the parent's descriptors 0, 1 and 2, and fd as
 * descriptor child_fd; nothing else. Its signal mask is empty. Returns 0
 * and the pid in *pid_out, or -errno (also for a failed exec). */
int mp__os_spawn_self(pid_t *pid_out, char *const argv[], char *const envp[],
                      int fd, int child_fd);

/* mp__os_close_fds_except closes every descriptor from 3 up except the n
 * in keep. Used by a freshly forked single-threaded server. */
void mp__os_close_fds_except(const int *keep, size_t n);

/* mp__os_cpu_count returns how many CPUs the caller may run on (its
 * affinity mask), at least 1. */
int mp__os_cpu_count(void);

#endif
