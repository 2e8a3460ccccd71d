/* spawn.c - the spawn start method, after Python's popen_spawn_posix: the
 * child is a fresh image of this program (/proc/self/exe with the original
 * argv), which finds the registered target by name and receives the
 * argument as bytes. Also the boot message both spawn and forkserver use
 * to describe a child, and mp_child_main, the child's side.
 *
 * DESIGN
 * The parent makes a socket pair and starts the child with its end as
 * descriptor 3 and MP_SPAWN_FD=3 in the environment (nothing else is
 * inherited). mp_child_main, called first thing in main, sees the
 * variable, removes it, and reads the boot message: a fixed header (sent
 * with the memfd of the exit page, by SCM_RIGHTS), the identity, the
 * names, and the argument bytes. Every length is checked against a limit
 * and against what was announced before anything is allocated. The child
 * replies with one int32: 0 when it found its target, or an error code
 * (MP_ENOENT). mp_process_start waits for that reply up to
 * MP__START_TIMEOUT seconds; on timeout, a protocol error or an error
 * reply it kills and reaps the child, so a failed start leaves nothing.
 *
 * The receiver lays the argument out first in its buffer, so the target
 * gets it aligned as malloc would align it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "os/process_os.h"
#include "process_internal.h"

extern char **environ;

#define BOOT_MAGIC 0x4d50424fu /* "MPBO" */
#define BOOT_VERSION 1

/* The fixed part of a boot message; the variable parts follow in order:
 * identity, name, parent name, target name, argument bytes. Native byte
 * order: both ends are the same program on the same machine. */
typedef struct boot_wire {
  uint32_t magic;
  uint32_t version;
  uint8_t kind;
  uint8_t daemon;
  uint16_t reserved;
  int32_t parent_pid;
  uint32_t identity_len;
  uint32_t name_len;
  uint32_t parent_name_len;
  uint32_t target_len;
  uint64_t arg_size;
  uint32_t authkey_len;
  uint8_t authkey[MP_AUTHKEY_MAX];
} boot_wire;

int mp__boot_send(int sock, const mp__boot *b, const int *fds, size_t nfds,
                  int64_t abs_ns) {
  size_t name_len = strlen(b->name);
  size_t parent_len = strlen(b->parent_name);
  size_t target_len = strlen(b->target);
  if (name_len > MP__BOOT_NAME_MAX || parent_len > MP__BOOT_NAME_MAX ||
      target_len > MP__PROCESS_NAME_MAX ||
      b->identity_len > MP__BOOT_IDENTITY_MAX ||
      b->arg_size > MP__BOOT_ARG_MAX)
    return MP_ETOOBIG;
  boot_wire w = {
      .magic = BOOT_MAGIC,
      .version = BOOT_VERSION,
      .kind = (uint8_t)b->kind,
      .daemon = b->daemon ? 1 : 0,
      .parent_pid = (int32_t)b->parent_pid,
      .identity_len = (uint32_t)b->identity_len,
      .name_len = (uint32_t)name_len,
      .parent_name_len = (uint32_t)parent_len,
      .target_len = (uint32_t)target_len,
      .arg_size = b->arg_size,
      .authkey_len = (uint32_t)b->authkey_len,
  };
  if (b->authkey_len > MP_AUTHKEY_MAX)
    return MP_ETOOBIG;
  memcpy(w.authkey, b->authkey, b->authkey_len);
  size_t id_bytes = b->identity_len * sizeof(uint32_t);
  size_t head = sizeof w + id_bytes + name_len + parent_len + target_len;
  char *buf = mp__alloc(head);
  if (buf == NULL)
    return MP_ENOMEM;
  char *q = buf;
  memcpy(q, &w, sizeof w);
  q += sizeof w;
  if (id_bytes > 0)
    memcpy(q, b->identity, id_bytes);
  q += id_bytes;
  memcpy(q, b->name, name_len);
  q += name_len;
  memcpy(q, b->parent_name, parent_len);
  q += parent_len;
  memcpy(q, b->target, target_len);
  int rc = mp__os_send_all(sock, buf, head, fds, nfds, abs_ns);
  mp__free(buf);
  /* The argument goes on its own: no copy of what may be large. */
  if (rc == 0 && b->arg_size > 0)
    rc = mp__os_send_all(sock, b->arg, b->arg_size, NULL, 0, abs_ns);
  return rc;
}

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

int mp__boot_recv(int sock, mp__boot *b, void **storage, int *fds,
                  size_t maxfds, int64_t abs_ns) {
  boot_wire w;
  size_t nfds = 0;
  *storage = NULL;
  int rc = mp__os_recv_all(sock, &w, sizeof w, fds, maxfds, &nfds, abs_ns);
  if (rc != 0)
    return rc;
  if (nfds != maxfds || w.magic != BOOT_MAGIC || w.version != BOOT_VERSION ||
      w.kind > MP__BOOT_RUN || w.identity_len > MP__BOOT_IDENTITY_MAX ||
      w.name_len > MP__BOOT_NAME_MAX ||
      w.parent_name_len > MP__BOOT_NAME_MAX ||
      w.target_len > MP__PROCESS_NAME_MAX || w.arg_size > MP__BOOT_ARG_MAX ||
      w.parent_pid <= 0 || w.authkey_len > MP_AUTHKEY_MAX) {
    rc = MP_EPROTO;
    goto fail;
  }
  /* Layout: argument, identity, then the three strings with their NULs.
   * All sizes are bounded above, so the sums cannot overflow. */
  size_t arg_off = 0;
  size_t id_off = round_up((size_t)w.arg_size, sizeof(uint64_t));
  size_t name_off = id_off + (size_t)w.identity_len * sizeof(uint32_t);
  size_t parent_off = name_off + w.name_len + 1;
  size_t target_off = parent_off + w.parent_name_len + 1;
  size_t total = target_off + w.target_len + 1;
  char *s = mp__alloc(total);
  if (s == NULL) {
    rc = MP_ENOMEM;
    goto fail;
  }
  *storage = s;
  struct {
    size_t off, len;
  } parts[] = {
      {id_off, (size_t)w.identity_len * sizeof(uint32_t)},
      {name_off, w.name_len},
      {parent_off, w.parent_name_len},
      {target_off, w.target_len},
      {arg_off, (size_t)w.arg_size},
  };
  for (size_t i = 0; i < MP__ARRAY_SIZE(parts) && rc == 0; i++)
    if (parts[i].len > 0)
      rc = mp__os_recv_all(sock, s + parts[i].off, parts[i].len, NULL, 0,
                           NULL, abs_ns);
  if (rc != 0)
    goto fail;
  s[name_off + w.name_len] = '\0';
  s[parent_off + w.parent_name_len] = '\0';
  s[target_off + w.target_len] = '\0';
  /* A name with a NUL inside would not be the name that was sent. */
  if (strlen(s + name_off) != w.name_len ||
      strlen(s + parent_off) != w.parent_name_len ||
      strlen(s + target_off) != w.target_len) {
    rc = MP_EPROTO;
    goto fail;
  }
  b->kind = w.kind;
  b->daemon = w.daemon != 0;
  b->parent_pid = (pid_t)w.parent_pid;
  b->identity = (const uint32_t *)(void *)(s + id_off);
  b->identity_len = w.identity_len;
  b->name = s + name_off;
  b->parent_name = s + parent_off;
  b->target = s + target_off;
  b->arg = w.arg_size > 0 ? s + arg_off : NULL;
  b->arg_size = (size_t)w.arg_size;
  b->authkey_len = w.authkey_len;
  memcpy(b->authkey, w.authkey, w.authkey_len);
  return 0;
fail:
  mp__free(*storage);
  *storage = NULL;
  for (size_t i = 0; i < nfds; i++)
    close(fds[i]);
  return rc;
}

int mp__start_prepare(const mp_process *p, mp__boot *b, char *target,
                      size_t cap) {
  /* A pointer means nothing in another image: the bytes must be given. */
  if (p->arg != NULL && p->arg_size == 0)
    return MP_EINVAL;
  if (p->arg_size > MP__BOOT_ARG_MAX)
    return MP_ETOOBIG;
  int kind = MP__BOOT_NOTHING;
  int rc = mp__registry_name_of(p, &kind, target, cap);
  if (rc != 0)
    return rc;
  memset(b, 0, sizeof *b);
  b->kind = kind;
  b->daemon = p->daemon;
  b->parent_pid = getpid();
  b->target = target;
  b->name = p->name;
  b->identity = p->identity;
  b->identity_len = p->identity_len;
  b->arg = p->arg;
  b->arg_size = p->arg_size;
  b->authkey_len = p->authkey_len;
  memcpy(b->authkey, p->authkey, p->authkey_len);
  return 0;
}

int mp__child_from_boot(const mp__boot *b, const mp__registered *fn,
                        void *storage, mp_process **out) {
  mp_process *self = mp__calloc(1, sizeof *self);
  if (self == NULL)
    return MP_ENOMEM;
  self->kind = MP__KIND_CHILD;
  self->target = fn->target;
  self->run = fn->run;
  self->arg = (void *)b->arg;
  self->arg_size = b->arg_size;
  self->name = (char *)b->name;
  self->name_owned = false;
  self->daemon = b->daemon;
  self->identity = (uint32_t *)b->identity;
  self->identity_len = b->identity_len;
  self->sentinel = -1;
  self->authkey_len = (uint16_t)b->authkey_len;
  memcpy(self->authkey, b->authkey, b->authkey_len);
  /* The record lives as long as the child: its strings stay in storage. */
  self->boot_storage = storage;
  *out = self;
  return 0;
}

/* ---- the parent's side ------------------------------------------------ */

/* The program's argv, read once (a failed read is tried again). */
static pthread_mutex_t argv_lock = PTHREAD_MUTEX_INITIALIZER;
static char **self_argv;

void mp__spawn_atfork_prepare(void) { pthread_mutex_lock(&argv_lock); }
void mp__spawn_atfork_parent(void) { pthread_mutex_unlock(&argv_lock); }
void mp__spawn_atfork_child(void) { pthread_mutex_init(&argv_lock, NULL); }

static int get_argv(char ***out) {
  pthread_mutex_lock(&argv_lock);
  int rc = self_argv != NULL ? 0 : mp__os_self_argv(&self_argv);
  *out = self_argv;
  pthread_mutex_unlock(&argv_lock);
  return rc;
}

/* child_env copies environ without any MP_SPAWN_FD and adds ours. */
static char **child_env(void) {
  static char entry[] = MP__SPAWN_ENV "=3";
  _Static_assert(MP__SPAWN_CHILD_FD == 3, "entry names the child's fd");
  size_t n = 0;
  for (char **e = environ; e != NULL && *e != NULL; e++)
    n++;
  char **env = mp__alloc((n + 2) * sizeof *env);
  if (env == NULL)
    return NULL;
  size_t k = 0, plen = strlen(MP__SPAWN_ENV);
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], MP__SPAWN_ENV, plen) != 0 ||
        environ[i][plen] != '=')
      env[k++] = environ[i];
  env[k++] = entry;
  env[k] = NULL;
  return env;
}

int mp__spawn_start(mp_process *p) {
  mp__boot b;
  char target[MP__PROCESS_NAME_MAX + 1];
  int rc = mp__start_prepare(p, &b, target, sizeof target);
  if (rc != 0)
    return rc;
  char **argv = NULL;
  rc = get_argv(&argv);
  if (rc != 0)
    return rc;

  char *parent_name = mp__current_name_dup();
  char **env = child_env();
  int memfd = -1, sv[2] = {-1, -1};
  mp__exit_page *page = NULL;
  pid_t pid = 0;
  if (parent_name == NULL || env == NULL) {
    rc = MP_ENOMEM;
    goto out;
  }
  b.parent_name = parent_name;
  memfd = mp__os_memfd("mp-exit-info", sizeof(mp__exit_page));
  if (memfd < 0) {
    rc = memfd;
    goto out;
  }
  rc = mp__exit_page_map(memfd, &page);
  if (rc == 0)
    rc = mp__os_socketpair(sv);
  if (rc == 0)
    rc = mp__os_spawn_self(&pid, argv, env, sv[1], MP__SPAWN_CHILD_FD);
  if (rc != 0)
    goto out;
  close(sv[1]);
  sv[1] = -1;

  int64_t deadline = mp__deadline_from_timeout(MP__START_TIMEOUT).ns;
  rc = mp__boot_send(sv[0], &b, &memfd, 1, deadline);
  if (rc == 0) {
    int32_t reply = 0;
    rc = mp__os_recv_all(sv[0], &reply, sizeof reply, NULL, 0, NULL,
                         deadline);
    if (rc == 0)
      rc = (reply <= 0 && reply > -100000) ? (int)reply : MP_EPROTO;
    else if (rc == MP_EPIPE)
      rc = MP_EPROTO; /* it ended before answering: no mp_child_main? */
  } else if (rc == MP_EPIPE) {
    rc = MP_EPROTO;
  }
  if (rc != 0) {
    /* Unreaped, the pid is still this child's. */
    int st;
    kill(pid, SIGKILL);
    mp__os_wait_blocking(pid, &st);
    goto out;
  }
  p->pid = pid;
  p->page = page;
  page = NULL;
  int fd = mp__os_pidfd_open(pid);
  p->sentinel = fd >= 0 ? fd : -1;
  p->sentinel_kind = fd >= 0 ? MP__SENTINEL_PIDFD : MP__SENTINEL_NONE;
out:
  if (sv[0] >= 0)
    close(sv[0]);
  if (sv[1] >= 0)
    close(sv[1]);
  if (memfd >= 0)
    close(memfd);
  mp__exit_page_unmap(page);
  mp__free(env);
  mp__free(parent_name);
  return rc;
}

/* ---- the child's side ------------------------------------------------- */

int mp_child_main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  const char *v = getenv(MP__SPAWN_ENV);
  if (v == NULL)
    return 0;
  char *end = NULL;
  errno = 0;
  long fd = strtol(v, &end, 10);
  bool valid = end != v && *end == '\0' && errno == 0 && fd >= 0 &&
               fd <= INT_MAX;
  /* Gone before anything else runs, so the target's own children do not
   * mistake themselves for spawned ones. */
  unsetenv(MP__SPAWN_ENV);
  struct stat st;
  if (!valid || fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode))
    return 0;
  int sock = (int)fd;
  fcntl(sock, F_SETFD, FD_CLOEXEC);
  mp__process_init();

  int64_t deadline = mp__deadline_from_timeout(MP__START_TIMEOUT).ns;
  mp__boot b;
  void *storage = NULL;
  int memfd = -1;
  int rc = mp__boot_recv(sock, &b, &storage, &memfd, 1, deadline);
  if (rc != 0)
    _exit(1);
  if (b.daemon) {
    mp__os_set_parent_death_signal(SIGKILL);
    /* The parent died before the line above: nobody would kill us. */
    if (getppid() != b.parent_pid)
      _exit(1);
  }
  mp__exit_page *page = NULL;
  rc = mp__exit_page_map(memfd, &page);
  close(memfd);
  mp__registered fn = {0};
  mp_process *self = NULL;
  if (rc == 0)
    rc = mp__registry_find(b.kind, b.target, &fn);
  if (rc == 0)
    rc = mp__child_from_boot(&b, &fn, storage, &self);
  int32_t reply = rc;
  mp__os_send_all(sock, &reply, sizeof reply, NULL, 0, deadline);
  close(sock);
  if (rc != 0)
    _exit(1);
  mp__child_enter(self, b.parent_pid, b.parent_name, page);
  mp__child_run_and_exit(self);
}
