/* process.c - process objects, after Python's multiprocessing.Process:
 * creating, naming, starting with the fork method (spawn.c and
 * forkserver.c add the others), joining, reaping, exit information, the
 * current and parent process records, the list of live children and what
 * happens to them when this process exits, cpu_count and signal names.
 *
 * DESIGN
 * Process-wide state lives in one struct, `g`, under one mutex: the list
 * of children this process started and has not yet seen end, the counter
 * behind default names, the forkserver contexts, and the records of the
 * current and the parent process. A pthread_atfork child handler resets
 * what a forked child must not inherit: the list (a child starts with no
 * children), the mutexes, the forkserver sockets and the error page.
 *
 * Each child object has its own mutex, taken after g.lock when both are
 * needed (never the other way round). Reaping happens exactly once, under
 * the object's mutex, with waitpid on the child's own pid (never -1, so
 * children the program made itself are left alone). Blocking waits poll
 * the sentinel without any lock held, so several threads can join one
 * object; a descriptor closed by mp_process_close while a thread polls it
 * is closed by the last waiter instead. Signals are sent only while the
 * child is unreaped (through the pidfd when there is one), so they cannot
 * hit a recycled pid.
 *
 * A child that ended is dropped from the list lazily (when children are
 * counted, started or cleaned up at exit). An object freed while its child
 * runs stays on the list, marked orphaned, and is freed there once the
 * child has ended: at exit its child is still terminated or joined.
 *
 * The child's error message travels in a page shared with the parent
 * (mp__exit_page): anonymous shared memory under fork, a memfd handed over
 * under spawn and forkserver. The parent copies it, bounded, when it reaps
 * the child, and unmaps it. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "os/process_os.h"
#include "process_internal.h"

/* How long the exit handler gives daemonic children after SIGTERM. */
#define DAEMON_GRACE_SECONDS 1.0
/* Without a pidfd, join checks the child this often. */
#define POLL_SLICE_NS (10 * 1000 * 1000)

static struct {
  pthread_mutex_t lock;
  bool have_pidfd;
  mp_process *children;  /* started by this process, not yet pruned */
  mp_context *contexts;  /* live contexts (forkserver sockets) */
  uint32_t counter;      /* behind "Process-N" */
  mp_process main_record;
  mp_process parent_record;
  char parent_name[MP__BOOT_NAME_MAX + 1];
  bool has_parent;
  mp_process *current;       /* &main_record, or the child's own object */
  mp__exit_page *error_page; /* where mp_process_set_error writes */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void record_init(mp_process *r, int kind, const char *name,
                        pid_t pid) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->lock, NULL);
  r->kind = kind;
  r->state = MP__STATE_RUNNING;
  r->owner = getpid();
  r->name = (char *)name;
  r->name_owned = false;
  r->pid = pid;
  r->sentinel = -1;
}

static void atfork_prepare(void) {
  pthread_mutex_lock(&g.lock);
  mp__registry_atfork_prepare();
  mp__spawn_atfork_prepare();
}

static void atfork_parent(void) {
  mp__spawn_atfork_parent();
  mp__registry_atfork_parent();
  pthread_mutex_unlock(&g.lock);
}

static void atfork_child(void) {
  mp__spawn_atfork_child();
  mp__registry_atfork_child();
  pthread_mutex_init(&g.lock, NULL);
  /* A child starts with no children of its own. The objects stay in its
   * memory (the program may hold pointers) but belong to the parent. */
  g.children = NULL;
  /* A forkserver belongs to the process that created it; a copy of our
   * end of its socket would keep the server alive after we exit. */
  for (mp_context *c = g.contexts; c != NULL; c = c->next) {
    if (c->server_sock >= 0)
      close(c->server_sock);
    c->server_sock = -1;
    pthread_mutex_init(&c->lock, NULL);
  }
  /* A plain fork(2) child was not started by multiproc: it has no page to
   * report an error in. mp__child_enter sets one for our children. */
  g.error_page = NULL;
  if (g.current != NULL) {
    pthread_mutex_init(&g.current->lock, NULL);
    g.current->pid = getpid();
  }
}

static void exit_handler(void) { mp__process_exit_cleanup(); }

static void init_once(void) {
  record_init(&g.main_record, MP__KIND_CURRENT, "MainProcess", getpid());
  g.current = &g.main_record;
  int fd = mp__os_pidfd_open(getpid());
  if (fd >= 0) {
    g.have_pidfd = true;
    close(fd);
  }
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  atexit(exit_handler);
}

void mp__process_init(void) { pthread_once(&g_once, init_once); }

/* ---- the exit page ---------------------------------------------------- */

int mp__exit_page_map(int fd, mp__exit_page **out) {
  void *addr = NULL;
  int rc = mp__os_map_shared(fd, sizeof(mp__exit_page), &addr);
  if (rc != 0)
    return rc;
  *out = addr;
  return 0;
}

void mp__exit_page_unmap(mp__exit_page *page) {
  if (page != NULL)
    mp__os_unmap(page, sizeof *page);
}

/* ---- signal names ----------------------------------------------------- */

static const struct {
  int sig;
  const char *name;
} signal_names[] = {
    {SIGHUP, "SIGHUP"},       {SIGINT, "SIGINT"},     {SIGQUIT, "SIGQUIT"},
    {SIGILL, "SIGILL"},       {SIGTRAP, "SIGTRAP"},   {SIGABRT, "SIGABRT"},
    {SIGBUS, "SIGBUS"},       {SIGFPE, "SIGFPE"},     {SIGKILL, "SIGKILL"},
    {SIGUSR1, "SIGUSR1"},     {SIGSEGV, "SIGSEGV"},   {SIGUSR2, "SIGUSR2"},
    {SIGPIPE, "SIGPIPE"},     {SIGALRM, "SIGALRM"},   {SIGTERM, "SIGTERM"},
    {SIGCHLD, "SIGCHLD"},     {SIGCONT, "SIGCONT"},   {SIGSTOP, "SIGSTOP"},
    {SIGTSTP, "SIGTSTP"},     {SIGTTIN, "SIGTTIN"},   {SIGTTOU, "SIGTTOU"},
    {SIGURG, "SIGURG"},       {SIGXCPU, "SIGXCPU"},   {SIGXFSZ, "SIGXFSZ"},
    {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"},   {SIGWINCH, "SIGWINCH"},
    {SIGIO, "SIGIO"},         {SIGSYS, "SIGSYS"},
#ifdef SIGSTKFLT
    {SIGSTKFLT, "SIGSTKFLT"},
#endif
#ifdef SIGPWR
    {SIGPWR, "SIGPWR"},
#endif
};

static const char *const realtime_names[] = {
    "SIGRTMIN",    "SIGRTMIN+1",  "SIGRTMIN+2",  "SIGRTMIN+3",  "SIGRTMIN+4",
    "SIGRTMIN+5",  "SIGRTMIN+6",  "SIGRTMIN+7",  "SIGRTMIN+8",  "SIGRTMIN+9",
    "SIGRTMIN+10", "SIGRTMIN+11", "SIGRTMIN+12", "SIGRTMIN+13", "SIGRTMIN+14",
    "SIGRTMIN+15", "SIGRTMIN+16", "SIGRTMIN+17", "SIGRTMIN+18", "SIGRTMIN+19",
    "SIGRTMIN+20", "SIGRTMIN+21", "SIGRTMIN+22", "SIGRTMIN+23", "SIGRTMIN+24",
    "SIGRTMIN+25", "SIGRTMIN+26", "SIGRTMIN+27", "SIGRTMIN+28", "SIGRTMIN+29",
    "SIGRTMIN+30", "SIGRTMIN+31", "SIGRTMIN+32",
};

const char *mp_signal_name(int sig) {
  for (size_t i = 0; i < MP__ARRAY_SIZE(signal_names); i++)
    if (signal_names[i].sig == sig)
      return signal_names[i].name;
  if (sig == SIGRTMAX)
    return "SIGRTMAX";
  if (sig >= SIGRTMIN && sig < SIGRTMAX &&
      (size_t)(sig - SIGRTMIN) < MP__ARRAY_SIZE(realtime_names))
    return realtime_names[sig - SIGRTMIN];
  return "SIG?";
}

int mp_cpu_count(void) { return mp__os_cpu_count(); }

/* ---- objects ---------------------------------------------------------- */

/* default_name writes "Process-1:2" for the identity {1, 2}. */
static char *default_name(const uint32_t *identity, size_t n) {
  size_t cap = sizeof "Process-" + n * 11;
  char *s = mp__alloc(cap);
  if (s == NULL)
    return NULL;
  size_t len = (size_t)snprintf(s, cap, "Process-");
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(s + len, cap - len, i ? ":%u" : "%u",
                            (unsigned)identity[i]);
  return s;
}

/* ---- authkey (Python's Process.authkey) --------------------------------
 * The main process draws 32 random bytes on first use (Python draws them
 * at import); every child record copies its creator's key when created,
 * and fork, spawn and forkserver carry it to the child. Called under
 * g.lock. */
static void authkey_make(void) {
  mp_process *m = &g.main_record;
  if (g.current != m || m->authkey_made)
    return;
  mp__crypto_init();
  if (RAND_bytes(m->authkey, 32) == 1) {
    m->authkey_len = 32;
    m->authkey_made = true;
  }
}

static void authkey_inherit(mp_process *p) {
  authkey_make();
  p->authkey_len = g.current->authkey_len;
  memcpy(p->authkey, g.current->authkey, p->authkey_len);
}

ssize_t mp_process_authkey(const mp_process *p, void *buf, size_t cap) {
  if (p == NULL || (buf == NULL && cap > 0))
    return mp__fail(MP_EINVAL, "p is NULL, or buf is NULL with cap > 0");
  mp__process_init();
  pthread_mutex_lock(&g.lock);
  authkey_make();
  size_t len = p->authkey_len;
  if (len <= cap)
    memcpy(buf, p->authkey, len);
  pthread_mutex_unlock(&g.lock);
  if (len > cap)
    return mp__fail(MP_ETOOBIG, "the authkey has %zu bytes", len);
  return (ssize_t)len;
}

int mp_process_set_authkey(mp_process *p, const void *key, size_t len) {
  if (p == NULL || (key == NULL && len > 0) || len > MP_AUTHKEY_MAX)
    return mp__fail(MP_EINVAL, "p is NULL, key is NULL with len > 0, or "
                               "len is over MP_AUTHKEY_MAX");
  if (p->kind == MP__KIND_PARENT)
    return mp__fail(MP_EINVAL, "the parent's record has no settable key");
  mp__process_init();
  pthread_mutex_lock(&g.lock);
  int rc = 0;
  if (p->kind == MP__KIND_CHILD && p->state != MP__STATE_NEW) {
    rc = mp__fail(MP_ESTATE, "the child has been started");
  } else {
    memcpy(p->authkey, key, len);
    p->authkey_len = (uint16_t)len;
    p->authkey_made = true;
  }
  pthread_mutex_unlock(&g.lock);
  return rc;
}

int mp_process_new(mp_process **out, mp_process_target_fn target, void *arg,
                   const mp_process_opts *opts) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  mp_process_opts o = {0};
  if (opts != NULL)
    o = *opts;
  if (o.name != NULL && strlen(o.name) > MP__PROCESS_NAME_MAX)
    return mp__fail(MP_EINVAL, "name is %zu bytes, over %d",
                    strlen(o.name), MP__PROCESS_NAME_MAX);
  if (o.arg_size > 0 && arg == NULL)
    return mp__fail(MP_EINVAL, "arg is NULL with arg_size %zu", o.arg_size);
  if (o.exec_argv == NULL && o.pass_fds_len > 0)
    return mp__fail(MP_EINVAL, "pass_fds is only for a program started "
                               "with exec_argv");
  mp__process_init();

  mp_process *p = mp__calloc(1, sizeof *p);
  if (p == NULL)
    return MP_ENOMEM;
  p->kind = MP__KIND_CHILD;
  p->state = MP__STATE_NEW;
  p->owner = getpid();
  p->target = target;
  p->run = o.run;
  p->arg = arg;
  p->arg_size = o.arg_size;
  p->userdata = o.userdata;
  p->context = o.context;
  p->daemon = o.daemon != 0;
  p->sentinel = -1;
  if (o.exec_argv != NULL) {
    int rc = mp__exec_copy_opts(p, &o);
    if (rc != 0) {
      mp__free(p);
      return rc;
    }
  }

  /* The identity extends the creator's: Python's _identity. */
  pthread_mutex_lock(&g.lock);
  authkey_inherit(p);
  size_t depth = g.current->identity_len + 1;
  p->identity = depth <= MP__BOOT_IDENTITY_MAX
                    ? mp__calloc(depth, sizeof *p->identity)
                    : NULL;
  if (p->identity != NULL) {
    if (depth > 1)
      memcpy(p->identity, g.current->identity,
             (depth - 1) * sizeof *p->identity);
    p->identity[depth - 1] = ++g.counter;
    p->identity_len = depth;
  }
  pthread_mutex_unlock(&g.lock);
  if (p->identity == NULL) {
    mp__exec_free_opts(p);
    mp__free(p);
    return depth > MP__BOOT_IDENTITY_MAX ? MP_ERANGE : MP_ENOMEM;
  }

  p->name = o.name != NULL ? mp__strdup(o.name)
                           : default_name(p->identity, p->identity_len);
  if (p->name == NULL) {
    mp__exec_free_opts(p);
    mp__free(p->identity);
    mp__free(p);
    return MP_ENOMEM;
  }
  p->name_owned = true;
  int rc = pthread_mutex_init(&p->lock, NULL);
  if (rc != 0) {
    mp__exec_free_opts(p);
    mp__free(p->name);
    mp__free(p->identity);
    mp__free(p);
    return -rc;
  }
  *out = p;
  return 0;
}

/* release frees p's resources and p itself. */
static void release(mp_process *p) {
  if (p->sentinel >= 0)
    close(p->sentinel);
  mp__exit_page_unmap(p->page);
  if (p->name_owned)
    mp__free(p->name);
  mp__free(p->identity);
  mp__exec_free_opts(p);
  pthread_mutex_destroy(&p->lock);
  mp__free(p);
}

/* record_status fills p's exit information from a wait status and the
 * child's page. p->lock held. */
static void record_status(mp_process *p, int wstatus) {
  mp_exit_info *info = &p->info;
  memset(info, 0, sizeof *info);
  if (WIFEXITED(wstatus)) {
    info->status = WEXITSTATUS(wstatus);
    info->exitcode = info->status;
  } else if (WIFSIGNALED(wstatus)) {
    info->signal = WTERMSIG(wstatus);
    info->exitcode = -info->signal;
    info->core_dumped = WCOREDUMP(wstatus) ? 1 : 0;
    snprintf(info->signal_name, sizeof info->signal_name, "%s",
             mp_signal_name(info->signal));
  }
  mp__exit_page *page = p->page;
  if (page != NULL && page->magic == MP__EXIT_PAGE_MAGIC) {
    /* The child may have written anything: bound the copy ourselves. */
    size_t n = page->length;
    if (n > sizeof info->message - 1)
      n = sizeof info->message - 1;
    memcpy(info->message, page->message, n);
    info->message[n] = '\0';
  }
  mp__exit_page_unmap(page);
  p->page = NULL;
  p->state = MP__STATE_ENDED;
  p->ended_seen = true;
}

/* record_lost ends p whose status cannot be known (reaped elsewhere, e.g.
 * with SIGCHLD ignored, or its forkserver died). */
static void record_lost(mp_process *p, const char *why) {
  record_status(p, 255 << 8);
  if (p->info.message[0] == '\0')
    snprintf(p->info.message, sizeof p->info.message, "%s", why);
}

/* try_reap reaps p's child if it has ended. Returns true when p is no
 * longer running. p->lock held, p RUNNING. */
static bool try_reap(mp_process *p) {
  int wstatus = 0;
  if (p->sentinel_kind == MP__SENTINEL_STATUSPIPE) {
    ssize_t n;
    do
      n = read(p->sentinel, &wstatus, sizeof wstatus);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof wstatus) {
      record_status(p, wstatus);
      return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return false;
    record_lost(p, "exit status lost: the forkserver ended first");
    return true;
  }
  int r = mp__os_wait_nohang(p->pid, &wstatus);
  if (r == 0)
    return false;
  if (r == 1)
    record_status(p, wstatus);
  else
    record_lost(p, "exit status lost: the child was reaped elsewhere");
  return true;
}

/* close_sentinel closes p's descriptor unless a joining thread still
 * polls it (then the last one closes it). p->lock held. */
static void close_sentinel(mp_process *p) {
  if (p->waiters == 0 && p->sentinel >= 0) {
    close(p->sentinel);
    p->sentinel = -1;
  }
}

/* check_child is the common check of the calls that act on a child: p is
 * a child object created by this process. */
static int check_child(const mp_process *p) {
  if (p == NULL)
    return mp__fail(MP_EINVAL, "p is NULL");
  if (p->kind != MP__KIND_CHILD)
    return mp__fail(MP_ESTATE, "p is %s's own record, not a child",
                    p->kind == MP__KIND_CURRENT ? "this process"
                                                : "the parent");
  if (p->owner != mp__os_getpid())
    return mp__fail(MP_EPERM, "p was created by process %d, not this one",
                    (int)p->owner);
  return 0;
}

/* prune drops ended children from the list, freeing the orphaned ones.
 * g.lock held. */
static void prune(void) {
  mp_process **link = &g.children;
  while (*link != NULL) {
    mp_process *p = *link;
    pthread_mutex_lock(&p->lock);
    bool ended = p->state != MP__STATE_RUNNING || try_reap(p);
    pthread_mutex_unlock(&p->lock);
    if (!ended) {
      link = &p->next;
      continue;
    }
    *link = p->next;
    p->listed = false;
    p->next = NULL;
    if (p->orphaned)
      release(p);
  }
}

/* ---- starting: the fork method ---------------------------------------- */

void mp__child_enter(mp_process *self, pid_t parent_pid,
                     const char *parent_name, mp__exit_page *page) {
  pthread_mutex_init(&self->lock, NULL);
  self->kind = MP__KIND_CURRENT;
  self->state = MP__STATE_RUNNING;
  self->pid = getpid();
  self->owner = self->pid;
  self->sentinel = -1;
  self->sentinel_kind = MP__SENTINEL_NONE;
  self->page = NULL;
  self->listed = false;
  self->orphaned = false;
  self->next = NULL;

  snprintf(g.parent_name, sizeof g.parent_name, "%s", parent_name);
  record_init(&g.parent_record, MP__KIND_PARENT, g.parent_name, parent_pid);
  g.has_parent = true;
  g.children = NULL;
  g.counter = 0;
  g.error_page = page;
  g.current = self;
}

_Noreturn void mp__child_run_and_exit(mp_process *self) {
  int status = 0;
  if (self->run != NULL)
    status = self->run(self);
  else if (self->target != NULL)
    status = self->target(self->arg);
  /* As Python's _bootstrap: our own children are terminated or joined,
   * buffered output is written, and the parent's atexit handlers (which
   * belong to the parent's program state) are not run; then, as Python's
   * threading._shutdown, the child waits for its non-daemonic threads. */
  mp__process_exit_cleanup();
  mp__thread_shutdown();
  fflush(NULL);
  _exit(status & 0xff);
}

/* fork_child runs in the new child: signals first, then the parent-death
 * link, then the records, then the target. */
_Noreturn static void fork_child(mp_process *p, pid_t parent_pid,
                                 const char *parent_name,
                                 mp__exit_page *page, int exit_pipe) {
  /* Whichever thread forked, terminate must reach the child. */
  mp__os_unblock_signals();
  if (p->daemon) {
    mp__os_set_parent_death_signal(SIGKILL);
    /* The parent may have died before the line above: then nothing will
     * ever kill this daemonic child, so it leaves now. */
    if (getppid() != parent_pid)
      _exit(1);
  }
  /* The exit pipe must stay open until the child ends, even across an
   * exec, for the parent's sentinel to mean "ended". */
  if (exit_pipe >= 0)
    mp__os_set_inheritable(exit_pipe);
  mp__child_enter(p, parent_pid, parent_name, page);
  mp__child_run_and_exit(p);
}

static int start_fork(mp_process *p) {
  mp__exit_page *page = NULL;
  int rc = mp__exit_page_map(-1, &page);
  if (rc != 0)
    return rc;
  int pipefd[2] = {-1, -1};
  if (!g.have_pidfd) {
    rc = mp__os_pipe(pipefd);
    if (rc != 0) {
      mp__exit_page_unmap(page);
      return rc;
    }
  }
  /* The parent's name is read here, in the parent, so the child copies a
   * string nobody changes under it. */
  pid_t parent_pid = getpid();
  char *parent_name = mp__current_name_dup();
  if (parent_name == NULL) {
    mp__exit_page_unmap(page);
    if (pipefd[0] >= 0) {
      close(pipefd[0]);
      close(pipefd[1]);
    }
    return MP_ENOMEM;
  }
  /* Python flushes before fork, so buffered output is not written twice. */
  fflush(NULL);
  pid_t pid = mp__os_fork();
  if (pid == 0) {
    if (pipefd[0] >= 0)
      close(pipefd[0]);
    fork_child(p, parent_pid, parent_name, page, pipefd[1]);
  }
  mp__free(parent_name);
  if (pid < 0) {
    mp__exit_page_unmap(page);
    if (pipefd[0] >= 0) {
      close(pipefd[0]);
      close(pipefd[1]);
    }
    return pid;
  }
  p->pid = pid;
  p->page = page;
  if (pipefd[0] >= 0) {
    close(pipefd[1]);
    p->sentinel = pipefd[0];
    p->sentinel_kind = MP__SENTINEL_EXITPIPE;
  } else {
    /* The child cannot have been reaped yet (only we reap it), so the pid
     * still names it. */
    int fd = mp__os_pidfd_open(pid);
    p->sentinel = fd >= 0 ? fd : -1;
    p->sentinel_kind = fd >= 0 ? MP__SENTINEL_PIDFD : MP__SENTINEL_NONE;
  }
  return 0;
}

int mp_process_start(mp_process *p) {
  int rc = check_child(p);
  if (rc != 0)
    return rc;
  if ((rc = mp__spawn_unbooted()) != 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  if (p->state != MP__STATE_NEW) {
    pthread_mutex_unlock(&p->lock);
    return MP_ESTATE;
  }
  p->state = MP__STATE_STARTING;
  pthread_mutex_unlock(&p->lock);

  /* As Python's _cleanup: reap children that ended meanwhile. */
  pthread_mutex_lock(&g.lock);
  prune();
  pthread_mutex_unlock(&g.lock);

  mp_start_method method = mp_context_method(p->context);
  if (p->exec_argv != NULL)
    rc = mp__exec_start(p);
  else if (method == MP_START_SPAWN)
    rc = mp__spawn_start(p);
  else if (method == MP_START_FORKSERVER)
    rc = mp__forkserver_start(p);
  else
    rc = start_fork(p);

  if (rc == 0) {
    pthread_mutex_lock(&g.lock);
    p->next = g.children;
    g.children = p;
    p->listed = true;
    pthread_mutex_unlock(&g.lock);
  }
  pthread_mutex_lock(&p->lock);
  p->state = rc == 0 ? MP__STATE_RUNNING : MP__STATE_NEW;
  pthread_mutex_unlock(&p->lock);
  return rc;
}

int mp_process_run(mp_process *p) {
  if (p == NULL)
    return mp__fail(MP_EINVAL, "p is NULL");
  if (p->run != NULL)
    return p->run(p);
  if (p->target != NULL)
    return p->target(p->arg);
  return 0;
}

/* ---- waiting ---------------------------------------------------------- */

int mp_process_join(mp_process *p, double timeout) {
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  if (p == NULL)
    return mp__fail(MP_EINVAL, "p is NULL");
  if (p->kind == MP__KIND_CURRENT)
    return MP_EDEADLK;
  int rc = check_child(p);
  if (rc != 0)
    return rc;
  mp__deadline d = mp__deadline_from_timeout(timeout);
  bool waited = false;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    if (p->state == MP__STATE_ENDED) {
      rc = 0;
      break;
    }
    if (p->state == MP__STATE_CLOSED) {
      /* Closed while we waited: it can only be closed once ended. */
      rc = waited && p->ended_seen ? 0 : MP_ESTATE;
      break;
    }
    if (p->state != MP__STATE_RUNNING) {
      rc = MP_ESTATE;
      break;
    }
    if (try_reap(p)) {
      rc = 0;
      break;
    }
    if (mp__deadline_expired(d) || d.poll) {
      rc = MP_ETIMEDOUT;
      break;
    }
    int fd = p->sentinel;
    bool exact = p->sentinel_kind == MP__SENTINEL_PIDFD ||
                 p->sentinel_kind == MP__SENTINEL_STATUSPIPE;
    /* Without an exact sentinel (a grandchild may hold the exit pipe open)
     * check waitpid in slices. */
    int64_t until = exact ? d.ns : mp__deadline_min_slice(d, POLL_SLICE_NS).ns;
    p->waiters++;
    waited = true;
    pthread_mutex_unlock(&p->lock);
    int r = fd >= 0 ? mp__os_wait_readable(fd, until) : 0;
    if (fd < 0 || r < 0)
      mp__os_sleep_until(
          mp__deadline_min_slice((mp__deadline){.ns = until}, POLL_SLICE_NS)
              .ns);
    pthread_mutex_lock(&p->lock);
    p->waiters--;
    if (p->state == MP__STATE_CLOSED)
      close_sentinel(p);
  }
  pthread_mutex_unlock(&p->lock);
  return rc;
}

int mp_process_is_alive(mp_process *p) {
  if (p == NULL)
    return mp__fail(MP_EINVAL, "p is NULL");
  if (p->kind == MP__KIND_CURRENT)
    return 1;
  if (p->kind == MP__KIND_PARENT)
    return mp__os_pid_alive(p->pid) ? 1 : 0;
  if (p->owner != mp__os_getpid())
    return MP_EPERM;
  pthread_mutex_lock(&p->lock);
  int alive = p->state == MP__STATE_RUNNING && !try_reap(p);
  pthread_mutex_unlock(&p->lock);
  return alive;
}

static int send_signal(mp_process *p, int sig) {
  int rc = check_child(p);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  if (p->state != MP__STATE_RUNNING) {
    rc = MP_ESTATE;
  } else if (p->sentinel_kind == MP__SENTINEL_STATUSPIPE) {
    /* A forkserver child is the server's to reap. Its status in the pipe
     * means it has ended: then there is nothing to signal, and its pid may
     * already be free. Otherwise the server reaps it only after this
     * check, and a pid is not reused that fast. */
    if (mp__os_wait_readable(p->sentinel, mp__os_now_ns()) == 0 &&
        kill(p->pid, sig) != 0 && errno != ESRCH)
      rc = -errno;
  } else if (p->sentinel_kind == MP__SENTINEL_PIDFD) {
    rc = mp__os_pidfd_send_signal(p->sentinel, sig);
    if (rc == MP_ENOSYS)
      rc = kill(p->pid, sig) == 0 ? 0 : -errno;
    if (rc == MP_ESRCH)
      rc = 0;
  } else {
    /* Unreaped, the pid cannot have been reused. */
    if (kill(p->pid, sig) != 0 && errno != ESRCH)
      rc = -errno;
  }
  pthread_mutex_unlock(&p->lock);
  return rc;
}

int mp_process_terminate(mp_process *p) { return send_signal(p, SIGTERM); }
int mp_process_kill(mp_process *p) { return send_signal(p, SIGKILL); }

static int ended_info(mp_process *p, mp_exit_info *info) {
  int rc = check_child(p);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  if (p->state == MP__STATE_RUNNING && !try_reap(p))
    rc = MP_EAGAIN;
  else if (p->state != MP__STATE_ENDED)
    rc = MP_ESTATE;
  else
    *info = p->info;
  pthread_mutex_unlock(&p->lock);
  return rc;
}

int mp_process_exitcode(mp_process *p, int *exitcode) {
  if (exitcode == NULL)
    return mp__fail(MP_EINVAL, "exitcode is NULL");
  mp_exit_info info;
  int rc = ended_info(p, &info);
  if (rc == 0)
    *exitcode = info.exitcode;
  return rc;
}

int mp_process_exit_info(mp_process *p, mp_exit_info *info) {
  if (info == NULL)
    return mp__fail(MP_EINVAL, "info is NULL");
  return ended_info(p, info);
}

/* ---- closing and freeing ---------------------------------------------- */

int mp_process_close(mp_process *p) {
  int rc = check_child(p);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&p->lock);
  if (p->state == MP__STATE_STARTING ||
      (p->state == MP__STATE_RUNNING && !try_reap(p))) {
    rc = MP_ESTATE;
  } else if (p->state != MP__STATE_CLOSED) {
    p->state = MP__STATE_CLOSED;
    close_sentinel(p);
  }
  pthread_mutex_unlock(&p->lock);
  return rc;
}

void mp_process_free(mp_process *p) {
  if (p == NULL || p->kind != MP__KIND_CHILD)
    return;
  if (p->owner != mp__os_getpid()) {
    /* A copy inherited through fork: its child is the parent's. */
    release(p);
    return;
  }
  pthread_mutex_lock(&g.lock);
  pthread_mutex_lock(&p->lock);
  bool running = p->state == MP__STATE_RUNNING && !try_reap(p);
  pthread_mutex_unlock(&p->lock);
  if (running && p->listed) {
    /* Still terminated or joined at exit: the list frees it later. */
    p->orphaned = true;
    pthread_mutex_unlock(&g.lock);
    return;
  }
  if (p->listed) {
    for (mp_process **link = &g.children; *link != NULL;
         link = &(*link)->next) {
      if (*link == p) {
        *link = p->next;
        break;
      }
    }
    p->listed = false;
  }
  pthread_mutex_unlock(&g.lock);
  release(p);
}

/* ---- accessors -------------------------------------------------------- */

const char *mp_process_name(const mp_process *p) {
  return p != NULL ? p->name : NULL;
}

int mp_process_set_name(mp_process *p, const char *name) {
  if (p == NULL || name == NULL || strlen(name) > MP__PROCESS_NAME_MAX)
    return mp__fail(MP_EINVAL, "p or name is NULL, or name is too long");
  if (p->kind == MP__KIND_PARENT)
    return MP_ESTATE;
  char *copy = mp__strdup(name);
  if (copy == NULL)
    return MP_ENOMEM;
  /* g.lock: a child being started copies the current record's name. */
  pthread_mutex_lock(&g.lock);
  char *old = p->name_owned ? p->name : NULL;
  p->name = copy;
  p->name_owned = true;
  pthread_mutex_unlock(&g.lock);
  mp__free(old);
  return 0;
}

pid_t mp_process_pid(const mp_process *p) { return p != NULL ? p->pid : 0; }
pid_t mp_process_ident(const mp_process *p) { return mp_process_pid(p); }
int mp_process_daemon(const mp_process *p) {
  if (p == NULL)
    return mp__fail(MP_EINVAL, "p is NULL");
  return p->daemon;
}

int mp_process_set_daemon(mp_process *p, int daemon) {
  if (p == NULL)
    return mp__fail(MP_EINVAL, "p is NULL");
  if (p->kind != MP__KIND_CHILD)
    return MP_ESTATE;
  pthread_mutex_lock(&p->lock);
  int rc = p->state == MP__STATE_NEW ? 0 : MP_ESTATE;
  if (rc == 0)
    p->daemon = daemon != 0;
  pthread_mutex_unlock(&p->lock);
  return rc;
}

void *mp_process_userdata(const mp_process *p) {
  return p != NULL ? p->userdata : NULL;
}
void *mp_process_arg(const mp_process *p) {
  return p != NULL ? p->arg : NULL;
}

int mp_process_sentinel(const mp_process *p) {
  if (p == NULL)
    return mp__fail(MP_EINVAL, "p is NULL");
  if (p->kind != MP__KIND_CHILD)
    return -1;
  mp_process *m = (mp_process *)p;
  pthread_mutex_lock(&m->lock);
  int fd = (m->state == MP__STATE_RUNNING || m->state == MP__STATE_ENDED)
               ? m->sentinel
               : -1;
  pthread_mutex_unlock(&m->lock);
  return fd;
}

/* ---- the process-wide records ----------------------------------------- */

int mp_process_set_error(const char *message) {
  if (message == NULL)
    return mp__fail(MP_EINVAL, "message is NULL");
  mp__process_init();
  mp__exit_page *page = g.error_page;
  if (page == NULL)
    return MP_ESTATE;
  size_t n = strnlen(message, sizeof page->message - 1);
  memcpy(page->message, message, n);
  page->message[n] = '\0';
  page->length = (uint32_t)n;
  page->magic = MP__EXIT_PAGE_MAGIC;
  return 0;
}

mp_process *mp_current_process(void) {
  mp__process_init();
  return g.current;
}

mp_process *mp_parent_process(void) {
  mp__process_init();
  return g.has_parent ? &g.parent_record : NULL;
}

ssize_t mp_active_children(mp_process **out, size_t cap) {
  if (out == NULL && cap > 0)
    return mp__fail(MP_EINVAL, "out is NULL with cap > 0");
  mp__process_init();
  ssize_t n = 0;
  pthread_mutex_lock(&g.lock);
  prune();
  for (mp_process *p = g.children; p != NULL; p = p->next) {
    if (p->orphaned)
      continue; /* its owner gave it up: not the caller's to see */
    if ((size_t)n < cap)
      out[n] = p;
    n++;
  }
  pthread_mutex_unlock(&g.lock);
  return n;
}

char *mp__current_name_dup(void) {
  mp__process_init();
  pthread_mutex_lock(&g.lock);
  char *s = mp__strdup(g.current->name);
  pthread_mutex_unlock(&g.lock);
  return s;
}

void mp__context_track(mp_context *ctx) {
  mp__process_init();
  pthread_mutex_lock(&g.lock);
  ctx->next = g.contexts;
  g.contexts = ctx;
  pthread_mutex_unlock(&g.lock);
}

void mp__context_untrack(mp_context *ctx) {
  pthread_mutex_lock(&g.lock);
  for (mp_context **link = &g.contexts; *link != NULL;
       link = &(*link)->next) {
    if (*link == ctx) {
      *link = ctx->next;
      break;
    }
  }
  ctx->next = NULL;
  pthread_mutex_unlock(&g.lock);
}

void mp__process_exit_cleanup(void) {
  pthread_mutex_lock(&g.lock);
  prune();
  if (g.children == NULL) {
    pthread_mutex_unlock(&g.lock);
    return;
  }
  /* As Python's _exit_function: daemonic children are terminated, then
   * every child is joined. We also SIGKILL a daemonic child that ignores
   * SIGTERM, so exit cannot hang on one. */
  for (mp_process *p = g.children; p != NULL; p = p->next)
    if (p->daemon)
      mp_process_terminate(p);
  mp__deadline grace = mp__deadline_from_timeout(DAEMON_GRACE_SECONDS);
  for (mp_process *p = g.children; p != NULL; p = p->next) {
    if (!p->daemon)
      continue;
    double left = (double)mp__deadline_remaining_ns(grace) / 1e9;
    if (mp_process_join(p, left) == MP_ETIMEDOUT) {
      mp_process_kill(p);
      mp_process_join(p, MP_FOREVER);
    }
  }
  for (mp_process *p = g.children; p != NULL; p = p->next)
    if (!p->daemon)
      mp_process_join(p, MP_FOREVER);
  prune();
  pthread_mutex_unlock(&g.lock);
}

/* ---- MP_CHECK: ending a process as on an uncaught exception ---------- */

long long mp_check(long long rc, const char *call, const char *file,
                   int line) {
  if (rc >= 0)
    return rc;
  int code = rc < INT32_MIN ? MP_EINVAL : (int)rc;
  char text[600];
  snprintf(text, sizeof text, "%s:%d: %s: %s", file ? file : "?", line,
           call ? call : "?", mp_error_message(code));
  fprintf(stderr, "%s\n", text);
  /* A child multiproc started reports it to its parent and leaves as
   * after its target; the main process exits, running atexit handlers
   * (which join its non-daemonic children, as Python does). */
  if (mp_parent_process() != NULL && mp_process_set_error(text) == 0) {
    fflush(NULL);
    _exit(1);
  }
  exit(1);
}
