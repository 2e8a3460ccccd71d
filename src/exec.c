/* exec.c - starting a foreign program as a process object: Python's
 * subprocess.Popen(argv, pass_fds=...) folded into mp_process, so a
 * connection or any descriptor reaches the program under a number chosen
 * by the caller, and join, is_alive, terminate and exit_info work on it as
 * on any child.
 *
 * DESIGN
 * The child is forked and then calls only async-signal-safe functions
 * (the parent may have other threads): signals first (empty mask, SIGPIPE
 * back to its default), the parent-death signal for a daemonic child, then
 * the descriptors, then execve. Descriptors move in two phases so that a
 * source number that is also a target number is never overwritten early:
 * every source is first duplicated (close-on-exec) above all the numbers
 * involved; then everything from 3 up is marked close-on-exec, as Python's
 * close_fds=True; then each copy is dup2'ed onto its target, which clears
 * close-on-exec on the target alone. The program's path is resolved in the
 * parent (PATH search, as execvp), so the child only tries execve on each
 * candidate. An exec failure reaches the parent as an errno through a
 * close-on-exec pipe (STYLE 11): the start fails with -errno and leaves no
 * child behind; end-of-file on the pipe means the exec happened. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "os/process_os.h"
#include "process_internal.h"

extern char **environ;

#define PASS_FDS_MAX 256
#define CANDIDATES_MAX 64

int mp__exec_copy_opts(mp_process *p, const mp_process_opts *o) {
  if (o->exec_argv[0] == NULL || o->exec_argv[0][0] == '\0')
    return mp__fail(MP_EINVAL, "exec_argv[0] (the program) is NULL or "
                               "empty");
  if (p->target != NULL || p->run != NULL)
    return mp__fail(MP_EINVAL, "give a target (or run) or exec_argv, not "
                               "both");
  if (o->arg_size > 0)
    return mp__fail(MP_EINVAL, "arg_size is %zu with exec_argv: a program "
                               "takes its arguments in exec_argv",
                    o->arg_size);
  if (o->pass_fds_len > PASS_FDS_MAX)
    return mp__fail(MP_EINVAL, "pass_fds_len is %zu, over %d",
                    o->pass_fds_len, PASS_FDS_MAX);
  if (o->pass_fds_len > 0 && o->pass_fds == NULL)
    return mp__fail(MP_EINVAL, "pass_fds is NULL with pass_fds_len %zu",
                    o->pass_fds_len);
  for (size_t i = 0; i < o->pass_fds_len; i++) {
    int as = o->pass_fds[i].as < 0 ? o->pass_fds[i].fd : o->pass_fds[i].as;
    if (o->pass_fds[i].fd < 0)
      return mp__fail(MP_EINVAL, "pass_fds[%zu].fd is %d", i,
                      o->pass_fds[i].fd);
    for (size_t j = 0; j < i; j++) {
      int as_j = o->pass_fds[j].as < 0 ? o->pass_fds[j].fd
                                       : o->pass_fds[j].as;
      if (as == as_j)
        return mp__fail(MP_EINVAL, "pass_fds[%zu] and [%zu] both become "
                                   "descriptor %d", j, i, as);
    }
  }
  /* One block: the pointer vector, then the strings. */
  size_t n = 0, bytes = 0;
  while (o->exec_argv[n] != NULL) {
    bytes += strlen(o->exec_argv[n]) + 1;
    if (++n > 65536)
      return mp__fail(MP_EINVAL, "exec_argv has no NULL within 65536 "
                                 "entries");
  }
  char **v = mp__alloc((n + 1) * sizeof *v + bytes);
  if (v == NULL)
    return MP_ENOMEM;
  char *s = (char *)(v + n + 1);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(o->exec_argv[i]) + 1;
    memcpy(s, o->exec_argv[i], len);
    v[i] = s;
    s += len;
  }
  v[n] = NULL;
  mp_pass_fd *fds = NULL;
  if (o->pass_fds_len > 0) {
    fds = mp__alloc(o->pass_fds_len * sizeof *fds);
    if (fds == NULL) {
      mp__free(v);
      return MP_ENOMEM;
    }
    for (size_t i = 0; i < o->pass_fds_len; i++) {
      fds[i].fd = o->pass_fds[i].fd;
      fds[i].as = o->pass_fds[i].as < 0 ? fds[i].fd : o->pass_fds[i].as;
    }
  }
  p->exec_argv = v;
  p->pass_fds = fds;
  p->pass_fds_len = o->pass_fds_len;
  return 0;
}

void mp__exec_free_opts(mp_process *p) {
  mp__free(p->exec_argv);
  mp__free(p->pass_fds);
  p->exec_argv = NULL;
  p->pass_fds = NULL;
  p->pass_fds_len = 0;
}

/* candidates fills paths (mp__free each) with where execvp would look for
 * prog. Returns how many, or MP_ENOMEM. */
static int candidates(const char *prog, char **paths) {
  if (strchr(prog, '/') != NULL) {
    paths[0] = mp__strdup(prog);
    return paths[0] != NULL ? 1 : MP_ENOMEM;
  }
  const char *path = getenv("PATH");
  if (path == NULL || path[0] == '\0')
    path = "/usr/local/bin:/usr/bin:/bin";
  int n = 0;
  size_t plen = strlen(prog);
  while (n < CANDIDATES_MAX) {
    const char *colon = strchr(path, ':');
    size_t dlen = colon != NULL ? (size_t)(colon - path) : strlen(path);
    /* An empty entry is the current directory, as execvp. */
    char *c = mp__alloc(dlen + plen + 3);
    if (c == NULL) {
      while (n > 0)
        mp__free(paths[--n]);
      return MP_ENOMEM;
    }
    if (dlen == 0) {
      memcpy(c, "./", 2);
      memcpy(c + 2, prog, plen + 1);
    } else {
      memcpy(c, path, dlen);
      c[dlen] = '/';
      memcpy(c + dlen + 1, prog, plen + 1);
    }
    paths[n++] = c;
    if (colon == NULL)
      break;
    path = colon + 1;
  }
  return n;
}

/* mark_cloexec_from sets close-on-exec on every descriptor from lo up. */
static void mark_cloexec_from(int lo) {
#if defined(SYS_close_range) && defined(CLOSE_RANGE_CLOEXEC)
  if (syscall(SYS_close_range, (unsigned)lo, ~0u, CLOSE_RANGE_CLOEXEC) == 0)
    return;
#endif
  struct rlimit rl;
  long max = 65536;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < 65536)
    max = (long)rl.rlim_cur;
  for (long fd = lo; fd < max; fd++)
    (void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}

_Noreturn static void child_fail(int errpipe, int err) {
  int32_t e = err;
  ssize_t w = write(errpipe, &e, sizeof e);
  (void)w;
  _exit(127);
}

/* exec_child runs in the forked child; async-signal-safe calls only. */
_Noreturn static void exec_child(const mp_process *p, char **paths, int n,
                                 pid_t parent_pid, int errpipe) {
  mp__os_unblock_signals();
  signal(SIGPIPE, SIG_DFL);
  if (p->daemon) {
    mp__os_set_parent_death_signal(SIGKILL);
    if (getppid() != parent_pid)
      _exit(1);
  }
  int high = errpipe;
  for (size_t i = 0; i < p->pass_fds_len; i++) {
    if (p->pass_fds[i].fd > high)
      high = p->pass_fds[i].fd;
    if (p->pass_fds[i].as > high)
      high = p->pass_fds[i].as;
  }
  int tmp[PASS_FDS_MAX];
  for (size_t i = 0; i < p->pass_fds_len; i++) {
    tmp[i] = fcntl(p->pass_fds[i].fd, F_DUPFD_CLOEXEC, high + 1);
    if (tmp[i] < 0)
      child_fail(errpipe, errno);
  }
  mark_cloexec_from(3);
  for (size_t i = 0; i < p->pass_fds_len; i++)
    if (dup2(tmp[i], p->pass_fds[i].as) < 0)
      child_fail(errpipe, errno);
  /* As execvp: report ENOENT unless a candidate existed but failed
   * otherwise (EACCES, ENOEXEC, ...). */
  int err = ENOENT;
  for (int i = 0; i < n; i++) {
    execve(paths[i], p->exec_argv, environ);
    if (errno != ENOENT && errno != ENOTDIR)
      err = errno;
    if (err != ENOENT && err != EACCES)
      break;
  }
  child_fail(errpipe, err);
}

int mp__exec_start(mp_process *p) {
  for (size_t i = 0; i < p->pass_fds_len; i++)
    if (fcntl(p->pass_fds[i].fd, F_GETFD) < 0)
      return mp__fail(MP_EBADF, "pass_fds[%zu].fd %d is not an open "
                                "descriptor", i, p->pass_fds[i].fd);
  char *paths[CANDIDATES_MAX];
  int n = candidates(p->exec_argv[0], paths);
  if (n < 0)
    return n;
  int pipefd[2];
  int rc = mp__os_pipe(pipefd);
  if (rc != 0)
    goto out;
  pid_t parent_pid = getpid();
  /* Buffered output must not be written twice (once by the child). */
  fflush(NULL);
  pid_t pid = mp__os_fork();
  if (pid == 0) {
    close(pipefd[0]);
    exec_child(p, paths, n, parent_pid, pipefd[1]);
  }
  close(pipefd[1]);
  if (pid < 0) {
    close(pipefd[0]);
    rc = pid;
    goto out;
  }
  int32_t err = 0;
  ssize_t got;
  do
    got = read(pipefd[0], &err, sizeof err);
  while (got < 0 && errno == EINTR);
  close(pipefd[0]);
  if (got == (ssize_t)sizeof err) {
    int st;
    mp__os_wait_blocking(pid, &st);
    rc = mp__fail(err > 0 ? -err : MP_EIO, "cannot run '%s': %s",
                  p->exec_argv[0], strerror(err > 0 ? err : EIO));
    goto out;
  }
  p->pid = pid;
  p->page = NULL;
  int fd = mp__os_pidfd_open(pid);
  p->sentinel = fd >= 0 ? fd : -1;
  p->sentinel_kind = fd >= 0 ? MP__SENTINEL_PIDFD : MP__SENTINEL_NONE;
  rc = 0;
out:
  for (int i = 0; i < n; i++)
    mp__free(paths[i]);
  return rc;
}
