/* forkserver.c - the forkserver start method, after Python's
 * popen_forkserver and forkserver.py: a single-threaded server, forked
 * from the program when the context is created, forks each child on
 * request, so children never inherit the threads, locks or descriptors
 * the program has by the time it starts them.
 *
 * DESIGN
 * The context keeps one end of a socket pair; the server has the other
 * and little else (it closes every descriptor but 0, 1, 2 on start). A
 * request is a boot message (spawn.c) carrying two descriptors: the memfd
 * of the child's exit page and the write end of a status pipe. The server
 * looks the target up in the registry it inherited (MP_ENOENT if absent),
 * forks, and replies with the child's pid. It reaps its children as
 * SIGCHLD arrives (a self-pipe wakes its poll) and writes each one's wait
 * status into that child's pipe; the pipe's read end is the parent's
 * sentinel, and join reads the status from it. Requests are serialised by
 * the context's mutex: one request, one reply.
 *
 * Lifetime: the server gets SIGKILL when the thread that created it
 * exits (PR_SET_PDEATHSIG), and shuts down when its socket reaches end of
 * stream (mp_context_free, or the program exited): it SIGKILLs its
 * daemonic children, waits for the others, reporting their status, and
 * exits. A daemonic child has the parent-death signal set towards the
 * server, so it dies with the server however the server ends. Non-daemonic
 * children outlive a killed server, as they outlive a killed parent. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "os/process_os.h"
#include "process_internal.h"

typedef struct server_child {
  pid_t pid;
  int status_fd;
  int daemon;
} server_child;

/* The server's own state. It exists only in the server process. */
static struct {
  int sock;
  int wake[2]; /* the SIGCHLD self-pipe */
  pid_t self;
  server_child *children;
  size_t n, cap;
  struct sigaction old_chld, old_int, old_pipe;
} srv;

static void on_sigchld(int sig) {
  (void)sig;
  int saved = errno;
  char c = 0;
  ssize_t r = write(srv.wake[1], &c, 1);
  (void)r;
  errno = saved;
}

static void drain_wake(void) {
  char buf[64];
  while (read(srv.wake[0], buf, sizeof buf) > 0)
    ;
}

/* server_reap reaps every child that has ended and reports its status. */
static void server_reap(void) {
  size_t i = 0;
  while (i < srv.n) {
    server_child *c = &srv.children[i];
    int wstatus = 0;
    int r = mp__os_wait_nohang(c->pid, &wstatus);
    if (r == 0) {
      i++;
      continue;
    }
    if (r < 0)
      wstatus = 255 << 8;
    /* A parent that freed the process object closed the read end: the
     * write fails with EPIPE (SIGPIPE is ignored here), which is fine. */
    ssize_t w;
    do
      w = write(c->status_fd, &wstatus, sizeof wstatus);
    while (w < 0 && errno == EINTR);
    close(c->status_fd);
    srv.children[i] = srv.children[--srv.n];
  }
}

static int reply(int32_t value) {
  return mp__os_send_all(srv.sock, &value, sizeof value, NULL, 0, INT64_MAX);
}

/* server_child_main runs in a child the server forked for a request. */
_Noreturn static void server_child_main(const mp__boot *b,
                                        const mp__registered *fn,
                                        void *storage, int memfd,
                                        int status_fd) {
  /* Signals first: the program's dispositions, an empty mask. */
  sigaction(SIGCHLD, &srv.old_chld, NULL);
  sigaction(SIGINT, &srv.old_int, NULL);
  sigaction(SIGPIPE, &srv.old_pipe, NULL);
  mp__os_unblock_signals();
  /* Then what it must not hold: the server's descriptors. */
  close(srv.sock);
  close(srv.wake[0]);
  close(srv.wake[1]);
  close(status_fd);
  for (size_t i = 0; i < srv.n; i++)
    close(srv.children[i].status_fd);
  mp__free(srv.children);
  srv.children = NULL;
  srv.n = srv.cap = 0;
  if (b->daemon) {
    mp__os_set_parent_death_signal(SIGKILL);
    if (getppid() != srv.self)
      _exit(1);
  }
  mp__exit_page *page = NULL;
  int rc = mp__exit_page_map(memfd, &page);
  close(memfd);
  mp_process *self = NULL;
  if (rc == 0)
    rc = mp__child_from_boot(b, fn, storage, &self);
  if (rc != 0)
    _exit(1);
  mp__child_enter(self, b->parent_pid, b->parent_name, page);
  mp__child_run_and_exit(self);
}

/* handle_request serves one request. Returns true when the server should
 * shut down (end of stream, or a request it cannot make sense of). */
static bool handle_request(void) {
  mp__boot b;
  void *storage = NULL;
  int fds[2] = {-1, -1};
  int rc = mp__boot_recv(srv.sock, &b, &storage, fds, 2, INT64_MAX);
  if (rc != 0) {
    if (rc != MP_EPIPE)
      reply(rc);
    return true;
  }
  mp__registered fn;
  rc = mp__registry_find(b.kind, b.target, &fn);
  if (rc == 0 && srv.n == srv.cap) {
    size_t cap = srv.cap ? srv.cap * 2 : 16;
    server_child *bigger = mp__realloc(srv.children, cap * sizeof *bigger);
    if (bigger == NULL) {
      rc = MP_ENOMEM;
    } else {
      srv.children = bigger;
      srv.cap = cap;
    }
  }
  pid_t pid = rc;
  if (rc == 0) {
    fflush(NULL);
    pid = mp__os_fork();
    if (pid == 0)
      server_child_main(&b, &fn, storage, fds[0], fds[1]);
  }
  close(fds[0]);
  mp__free(storage);
  if (pid > 0) {
    srv.children[srv.n++] =
        (server_child){.pid = pid, .status_fd = fds[1], .daemon = b.daemon};
  } else {
    close(fds[1]);
  }
  return reply((int32_t)pid) != 0;
}

_Noreturn static void server_main(int sock, pid_t parent_pid) {
  srv.self = getpid();
  srv.sock = sock;
  mp__os_set_parent_death_signal(SIGKILL);
  if (getppid() != parent_pid)
    _exit(0);
  if (mp__os_pipe(srv.wake) != 0)
    _exit(1);
  mp__os_set_nonblocking(srv.wake[0]);
  mp__os_set_nonblocking(srv.wake[1]);
  int keep[] = {sock, srv.wake[0], srv.wake[1]};
  mp__os_close_fds_except(keep, MP__ARRAY_SIZE(keep));

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, &srv.old_chld);
  /* Like Python's forkserver: Ctrl-C is for the program, not the server;
   * a closed status pipe must not kill it. Children get the old ones. */
  sa.sa_handler = SIG_IGN;
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, &srv.old_int);
  sigaction(SIGPIPE, &sa, &srv.old_pipe);
  mp__os_unblock_signals();

  for (;;) {
    server_reap();
    struct pollfd pfd[2] = {{.fd = sock, .events = POLLIN},
                            {.fd = srv.wake[0], .events = POLLIN}};
    if (poll(pfd, 2, -1) < 0)
      continue;
    if (pfd[1].revents)
      drain_wake();
    if (pfd[0].revents && handle_request())
      break;
  }

  for (size_t i = 0; i < srv.n; i++)
    if (srv.children[i].daemon)
      kill(srv.children[i].pid, SIGKILL);
  for (;;) {
    server_reap();
    if (srv.n == 0)
      break;
    struct pollfd pfd = {.fd = srv.wake[0], .events = POLLIN};
    if (poll(&pfd, 1, -1) > 0)
      drain_wake();
  }
  _exit(0);
}

int mp__forkserver_create(mp_context *ctx) {
  int sv[2];
  int rc = mp__os_socketpair(sv);
  if (rc != 0)
    return rc;
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = mp__os_fork();
  if (pid == 0) {
    close(sv[0]);
    server_main(sv[1], parent);
  }
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    return pid;
  }
  ctx->server_sock = sv[0];
  ctx->server_pid = pid;
  return 0;
}

void mp__forkserver_stop(mp_context *ctx) {
  if (ctx->server_sock >= 0)
    close(ctx->server_sock);
  ctx->server_sock = -1;
  /* A copy of the context in a forked child does not own the server. */
  if (ctx->owner == getpid() && ctx->server_pid > 0) {
    int st;
    mp__os_wait_blocking(ctx->server_pid, &st);
  }
  ctx->server_pid = 0;
}

int mp__forkserver_start(mp_process *p) {
  mp_context *ctx = p->context;
  if (ctx->owner != getpid())
    return MP_EPERM;
  mp__boot b;
  char target[MP__PROCESS_NAME_MAX + 1];
  int rc = mp__start_prepare(p, &b, target, sizeof target);
  if (rc != 0)
    return rc;
  char *parent_name = mp__current_name_dup();
  if (parent_name == NULL)
    return MP_ENOMEM;
  b.parent_name = parent_name;
  int status[2] = {-1, -1};
  mp__exit_page *page = NULL;
  int memfd = mp__os_memfd("mp-exit-info", sizeof(mp__exit_page));
  if (memfd < 0) {
    rc = memfd;
    goto out;
  }
  rc = mp__exit_page_map(memfd, &page);
  if (rc == 0)
    rc = mp__os_pipe(status);
  if (rc == 0)
    rc = mp__os_set_nonblocking(status[0]);
  if (rc != 0)
    goto out;

  int32_t answer = 0;
  pthread_mutex_lock(&ctx->lock);
  if (ctx->server_sock < 0) {
    rc = MP_ESTATE;
  } else {
    int64_t deadline = mp__deadline_from_timeout(MP__START_TIMEOUT).ns;
    int fds[2] = {memfd, status[1]};
    rc = mp__boot_send(ctx->server_sock, &b, fds, 2, deadline);
    if (rc == 0)
      rc = mp__os_recv_all(ctx->server_sock, &answer, sizeof answer, NULL, 0,
                           NULL, deadline);
    if (rc != 0 && rc != MP_ETOOBIG && rc != MP_ENOMEM) {
      /* Out of step with the server (or it is gone): give it up. The
       * server shuts down when it sees the end of the stream. */
      close(ctx->server_sock);
      ctx->server_sock = -1;
    } else if (rc == 0 && answer <= 0) {
      rc = answer > -100000 ? (int)answer : MP_EPROTO;
      if (rc == 0)
        rc = MP_EPROTO;
    }
  }
  pthread_mutex_unlock(&ctx->lock);
  if (rc != 0)
    goto out;
  p->pid = (pid_t)answer;
  p->page = page;
  page = NULL;
  p->sentinel = status[0];
  p->sentinel_kind = MP__SENTINEL_STATUSPIPE;
  status[0] = -1;
out:
  if (memfd >= 0)
    close(memfd);
  if (status[0] >= 0)
    close(status[0]);
  if (status[1] >= 0)
    close(status[1]);
  mp__exit_page_unmap(page);
  mp__free(parent_name);
  return rc;
}
