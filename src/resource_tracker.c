/* resource_tracker.c - nothing left behind: the tracker that unlinks the
 * named segments a process tree created once the whole tree has died, and
 * the listing and clean-up of what trackers know (the mp-shm tool).
 *
 * DESIGN
 * A tracker is a daemon process (double-forked: nobody's child, in a
 * session of its own, holding no descriptor of its creator's but one end
 * of a SOCK_SEQPACKET socket pair, and none of its shared mappings). The
 * process that starts it keeps the other end, close-on-exec; every child
 * it forks while it holds the end inherits it. Together they are "the
 * tree". Members send one datagram per event:
 *   "R <pid> <start> <size> <inode> <hexname>"  a member created <name>;
 *   "U <inode> <hexname>"               a member unlinked it.
 * An entry is a name and an inode: one name may have several (a name
 * re-created after someone outside the tree unlinked it, or a creation
 * that failed because the name exists: see below), and a "U" removes only
 * its own, so no member's mistake unguards another member's segment.
 * Datagrams are atomic and ordered, so members may write concurrently, and
 * what a member sent before it died is still read. When the last member's
 * end closes (exit, exec, SIGKILL: the kernel closes it), recv returns 0:
 * the tracker unlinks every name still registered whose segment is the one
 * registered (same inode, which the creator reads right after creating it:
 * a name unlinked and re-created by someone else meanwhile is left alone),
 * removes its state file and exits.
 *
 * Only creators register; a process that merely attaches never does, so a
 * tracker never unlinks another program's segment (Python's tracker does:
 * CPython gh-82300). (A named queue's users register their tree's link to
 * it, which removes segments only once no process uses the queue: see
 * Users' links.) The names a process registered are kept in a
 * process-local list (never read from shared memory); forked children
 * inherit the list with the socket. A process whose list becomes empty
 * closes its end, so it holds no descriptor for nothing, and a tracker
 * with no member left exits; the next registration starts a new one. If a
 * send fails (someone killed the tracker), the member starts a new tracker
 * and registers the names it created itself there again; names inherited
 * from a parent are dropped (their creator guards them, and a tracker of
 * ours would unlink them when we die). A member checks that its socket is
 * still the one it opened (device and inode) before each use: a process
 * that closed every descriptor after fork (a fork server, a daemon) has
 * left the tree, and the number may name another descriptor by now.
 *
 * State file. While it runs a tracker keeps
 * "/dev/shm/mp-tracker.<pid>.<pidns>" (older trackers: without ".<pidns>"):
 *   "mp-tracker 1 <pid> <start> <pidns>\n" then one line per name,
 *   "<creator pid> <creator start> <size> <inode> <hexname>\n".
 * Start times (clock ticks since boot) tell a live process from a reuse of
 * its pid; pidns (the inode of the tracker's PID namespace; 0 when the
 * tracker could not know it, having no /proc of its own; absent in older
 * files, which count as the reader's) says where those pids mean
 * something: a file of another or an unknown namespace (a container
 * sharing /dev/shm) is listed as alive but never acted on. The file is what
 * mp_resource_tracker_list reads, and what lets
 * mp_resource_tracker_remove_dead clean up after a tracker that was itself
 * killed. Anyone can plant a file under that name: only a regular file
 * owned by the caller and writable by nobody else is read or written
 * (never through a link), and a clean-up only ever removes a segment that
 * is the one registered (same inode) and the caller's own. The rest of the
 * user's programs can still write it, so it is parsed as untrusted text:
 * malformed lines are skipped.
 *
 * Registered before it has a name (mp__tracker_create). A segment must
 * never exist under its name unregistered, or a creator killed in between
 * leaves it behind for good. So the library creates it without a name
 * (O_TMPFILE in /dev/shm), learns its inode, sends "R" (starting the
 * tracker if needed), and only then gives it its name with linkat, which,
 * like O_EXCL, fails if the name exists. A creator killed at any step:
 *   before "R":          the file has no name; it vanishes with the
 *                        process's descriptors. Nothing to do.
 *   after "R", unnamed:  the same; the tracker holds a name whose segment
 *                        either does not exist or is someone else's (the
 *                        linkat failed): another inode, left alone.
 *   named:               registered, removed when the tree dies.
 * When linkat fails (the name exists) the entry is taken back ("U" of
 * that inode: the name's other entries, another member's segment say,
 * stay). Where the system cannot create or name a file
 * without a name (no O_TMPFILE; no /proc and no privilege for
 * AT_EMPTY_PATH), the plain order is kept: create, then register, and a
 * member killed between the two leaves that segment (found by name only).
 *
 * Families. A registered name that ends with '+' guards a family: when the
 * tracker (or the clean-up after a dead one) removes it, it first removes
 * every segment whose name begins with it and that is a regular file of
 * its own (looked at without following a link). An anonymous queue
 * registers "<its prefix>+" (an empty file) when it is made, so that the
 * segments of its large messages, "<prefix>+<pid>.<ctr>" and its kept
 * ones, go once its tree has died, however its users ended (queue.c,
 * queue_large.c). A member that stops using the queue while others still
 * do takes the name off its own list only (mp__tracker_forget).
 *
 * Users' links. A named queue may be used by several trees, and by
 * processes that open it later: no tree may remove its segments alone.
 * Each tree that uses one registers "<base>+=<tracker pid>.<pidns>", a
 * hard link to the queue's segment "<base>" (mp__tracker_link; a base has
 * no '+'). The names a tree removes itself go first; then, for each link,
 * the family "<base>+" goes with it only if "<base>" no longer names that
 * segment, the queue's table of users, read through the link
 * (queue_users.c), names no process that may still run, and no other
 * process maps the segment (the table is anyone's to scribble on); else
 * only the link goes.
 *
 * What else a crash leaves: a tracker killed leaves its state file and
 * its names; mp-shm (mp_resource_tracker_remove_dead) removes them once
 * their creators are dead, and the members start a new tracker on their
 * next registration or unregistration that fails.
 *
 * Fork: the list and the socket are inherited (the child is a member).
 * pthread_atfork keeps the list's mutex consistent in the child; the fork
 * that starts a tracker happens under that mutex, so the handlers skip it
 * (thread-local flag). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "os/shm.h"
#include "queue_users.h"

#define STATE_PREFIX "mp-tracker."
#define STATE_MAGIC "mp-tracker 1 "
#define MSG_MAX 1024
#define HANDSHAKE_TIMEOUT_S 10.0
#define STATE_FILE_MAX (64u << 20)
#define NAME_MAX_BYTES MP_SHARED_MEMORY_NAME_MAX
/* How long a tracker whose tree has ended waits, in all, for that tree's
 * last members to finish exiting (see link_users_gone). */
#define USERS_WAIT_NS ((int64_t)1000 * 1000 * 1000)

/* ---- hex names ----------------------------------------------------------
 * Names travel and are stored hex-encoded, so any byte a POSIX name may
 * hold (space, newline) keeps the line formats unambiguous. */
static void hex_encode(const char *s, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    *out++ = digits[c >> 4];
    *out++ = digits[c & 15];
  }
  *out = '\0';
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Decodes n hex digits into out (cap bytes with the NUL); the result must
 * be a valid segment name. Returns 0 or -1. */
static int hex_decode(const char *s, size_t n, char *out, size_t cap) {
  if (n == 0 || n % 2 != 0 || n / 2 + 1 > cap || n / 2 > NAME_MAX_BYTES)
    return -1;
  for (size_t i = 0; i < n; i += 2) {
    int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    char c = (char)(hi << 4 | lo);
    if (c == '\0' || c == '/')
      return -1;
    out[i / 2] = c;
  }
  out[n / 2] = '\0';
  return 0;
}

/* Parses a decimal field at *p followed by a space or the end; advances. */
static int parse_u64(const char **p, const char *end, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  if (s >= end || *s < '0' || *s > '9')
    return -1;
  while (s < end && *s >= '0' && *s <= '9') {
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
    s++;
  }
  if (s < end && *s != ' ')
    return -1;
  if (s < end)
    s++;
  *p = s;
  *out = v;
  return 0;
}

/* ---- the tracker process ------------------------------------------------ */
typedef struct entry {
  pid_t pid;
  uint64_t start;
  uint64_t size;
  uint64_t ino;
  char name[NAME_MAX_BYTES + 1];
} entry;

typedef struct tracker {
  pid_t pid;
  uint64_t start;
  uint64_t pidns;
  char state_name[64];
  entry *v;
  size_t n, cap;
} tracker;

/* A growable text buffer for state files. */
typedef struct text {
  char *p;
  size_t len, cap;
  bool failed;
} text;

static void text_add(text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void text_add(text *t, const char *fmt, ...) {
  if (t->failed)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0,
                      fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->failed = true;
      return;
    }
    if (t->p != NULL && t->len + (size_t)n < t->cap) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = MP__MAX(t->cap * 2, t->len + (size_t)n + 256);
    char *p = mp__realloc(t->p, cap);
    if (p == NULL) {
      t->failed = true;
      return;
    }
    t->p = p;
    t->cap = cap;
  }
}

static void entry_line(text *t, pid_t pid, uint64_t start, uint64_t size,
                       uint64_t ino, const char *name) {
  char hex[2 * NAME_MAX_BYTES + 1];
  hex_encode(name, hex);
  text_add(t, "%d %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n", (int)pid, start,
           size, ino, hex);
}

static void tracker_save(tracker *tr) {
  text t = {0};
  text_add(&t, STATE_MAGIC "%d %" PRIu64 " %" PRIu64 "\n", (int)tr->pid,
           tr->start, tr->pidns);
  for (size_t i = 0; i < tr->n; i++)
    entry_line(&t, tr->v[i].pid, tr->v[i].start, tr->v[i].size, tr->v[i].ino,
               tr->v[i].name);
  /* Without memory the old file stays: it lists fewer or more names than
   * are registered, which only affects what mp-shm shows. */
  if (!t.failed)
    (void)mp__os_shm_write_file(tr->state_name, t.p, t.len);
  mp__free(t.p);
}

static void tracker_handle(tracker *tr, char *msg, size_t len) {
  const char *p = msg + 2, *end = msg + len;
  if (len < 3 || msg[1] != ' ')
    return;
  if (msg[0] == 'R') {
    uint64_t pid, start, size, ino;
    if (parse_u64(&p, end, &pid) || parse_u64(&p, end, &start) ||
        parse_u64(&p, end, &size) || parse_u64(&p, end, &ino) ||
        pid == 0 || pid > INT32_MAX)
      return;
    entry e = {.pid = (pid_t)pid, .start = start, .size = size, .ino = ino};
    if (hex_decode(p, (size_t)(end - p), e.name, sizeof e.name) != 0)
      return;
    for (size_t i = 0; i < tr->n; i++) {
      if (tr->v[i].ino == e.ino && strcmp(tr->v[i].name, e.name) == 0) {
        /* Registered again (after a tracker restart, say): the latest. */
        tr->v[i] = e;
        tracker_save(tr);
        return;
      }
    }
    if (tr->n == tr->cap) {
      size_t cap = tr->cap ? tr->cap * 2 : 16;
      entry *v = mp__realloc(tr->v, cap * sizeof *v);
      if (v == NULL)
        return;
      tr->v = v;
      tr->cap = cap;
    }
    tr->v[tr->n++] = e;
    tracker_save(tr);
  } else if (msg[0] == 'U') {
    char name[NAME_MAX_BYTES + 1];
    uint64_t ino;
    if (parse_u64(&p, end, &ino) ||
        hex_decode(p, (size_t)(end - p), name, sizeof name) != 0)
      return;
    for (size_t i = 0; i < tr->n; i++) {
      if (tr->v[i].ino == ino && strcmp(tr->v[i].name, name) == 0) {
        tr->v[i] = tr->v[--tr->n];
        tracker_save(tr);
        return;
      }
    }
  }
}

static int remove_dead_in(const char *state_name, size_t *removed);

/* same_segment: is e's name still the segment registered (same inode),
 * and the caller's own? A tracker or a clean-up never removes another
 * user's segment, whatever a state file says. */
static bool same_segment(const entry *e) {
  uint64_t ino;
  uid_t uid;
  return mp__os_shm_owner(e->name, &ino, &uid) == 0 && ino == e->ino &&
         uid == geteuid();
}

/* remove_family: a registered name that ends with '+' guards a family
 * (see Families above): every segment whose name begins with it, a
 * regular file of the caller's own, goes with it. Returns how many. */
typedef struct family {
  const char *guard;
  size_t len;
  size_t removed;
} family;

static int family_one(const char *name, void *arg) {
  family *f = arg;
  bool mine = false;
  if (strncmp(name, f->guard, f->len) == 0 && name[f->len] != '\0' &&
      mp__os_shm_mine(name, &mine) == 0 && mine && mp__os_shm_unlink(name) == 0)
    f->removed++;
  return 0;
}

static size_t remove_family(const char *guard) {
  family f = {.guard = guard, .len = strlen(guard)};
  if (f.len == 0 || guard[f.len - 1] != '+')
    return 0;
  (void)mp__os_shm_list(family_one, &f);
  return f.removed;
}

/* user_link: is name a queue user's link, "<base>+=<tracker pid>.<pidns>"?
 * A queue's name has no '+', so the first one ends the base. */
static bool user_link(const char *name) {
  const char *plus = strchr(name, '+');
  return plus != NULL && plus != name && plus[1] == '=';
}

/* link_users_gone: has every process that used the queue e links to
 * ended? Read through the link itself, checked to be e's inode. A tree's
 * last member closed its end of the socket on its way out, and looks
 * alive until its exit is done: a tracker asks again, from 1 ms, doubling,
 * while *wait_ns (shared by the tree's links) lasts. A user of another
 * tree that lives on costs it that wait once. */
static bool link_users_gone(const entry *e, int64_t *wait_ns) {
  int fd;
  size_t size;
  if (mp__os_shm_open(e->name, &fd, &size) != 0)
    return false;
  struct stat st;
  bool gone = false;
  if (fstat(fd, &st) == 0 && (uint64_t)st.st_ino == e->ino) {
    int64_t pause_ns = 1000000;
    while (!(gone = mp__queue_file_users_gone(fd)) && *wait_ns > 0) {
      int64_t t = pause_ns < *wait_ns ? pause_ns : *wait_ns;
      usleep((useconds_t)(t / 1000));
      *wait_ns -= t;
      pause_ns *= 2;
    }
  }
  close(fd);
  return gone;
}

/* remove_user_link removes a user's link (see Users' links) and, when nothing
 * reaches the queue by its name any more and no process uses it, the
 * family "<base>+" (the link is one of it). Returns how many went. */
static size_t remove_user_link(const entry *e, int64_t *wait_ns) {
  char name[NAME_MAX_BYTES + 2];
  size_t base = (size_t)(strchr(e->name, '+') - e->name);
  memcpy(name, e->name, base);
  name[base] = '\0';
  uint64_t ino;
  bool reachable = mp__os_shm_inode(name, &ino) == 0 && ino == e->ino;
  if (!reachable && link_users_gone(e, wait_ns)) {
    name[base] = '+';
    name[base + 1] = '\0';
    return remove_family(name);
  }
  return mp__os_shm_unlink(e->name) == 0;
}

/* remove_registered removes e's segment if it is still the one registered
 * and the caller's own, its family first: a tracker killed in between
 * leaves the guard in its state file, and the clean-up after it does the
 * rest. Callers take users' links last, once the names they may remove
 * themselves are gone. Returns how many segments went. */
static size_t remove_registered(const entry *e, int64_t *wait_ns) {
  if (!same_segment(e))
    return 0;
  if (user_link(e->name))
    return remove_user_link(e, wait_ns);
  size_t n = remove_family(e->name);
  return n + (mp__os_shm_unlink(e->name) == 0);
}

static void tracker_main(int fd, void *arg) {
  (void)arg;
  /* Failure injection is for the tests' process, not for the tracker. */
  mp__alloc_fail_after(0);
  /* What the starting process had mapped (writable, shared) is none of the
   * tracker's: held, it would keep segments' memory after their users
   * unmapped them, and make the tracker look like a queue's user. */
  (void)mp__os_unmap_shared();
  tracker tr = {.pid = getpid(), .pidns = mp__os_pidns()};
  (void)mp__os_pid_start_time(tr.pid, &tr.start);
  /* The namespace is in the name: two trackers of one pid in two PID
   * namespaces that share /dev/shm (containers) keep two files. */
  snprintf(tr.state_name, sizeof tr.state_name, STATE_PREFIX "%d.%" PRIu64,
           (int)tr.pid, tr.pidns);
  /* A state file under our pid is from a tracker that was killed and whose
   * pid we reuse: clean what it left before replacing it. */
  (void)remove_dead_in(tr.state_name, NULL);
  tracker_save(&tr);
  char msg[MSG_MAX + 1];
  int n = snprintf(msg, sizeof msg, "P %d", (int)tr.pid);
  if (send(fd, msg, (size_t)n, MSG_NOSIGNAL) < 0) {
    mp__os_shm_unlink(tr.state_name);
    return;
  }
  for (;;) {
    ssize_t r = recv(fd, msg, MSG_MAX, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break; /* every member has closed its end: the tree is gone */
    msg[r] = '\0';
    tracker_handle(&tr, msg, (size_t)r);
  }
  int64_t wait_ns = USERS_WAIT_NS;
  for (int links = 0; links < 2; links++)
    for (size_t i = 0; i < tr.n; i++)
      if (user_link(tr.v[i].name) == (links == 1))
        (void)remove_registered(&tr.v[i], &wait_ns);
  mp__os_shm_unlink(tr.state_name);
  mp__free(tr.v);
}

/* ---- the members' side -------------------------------------------------- */
typedef struct reg {
  struct reg *next;
  size_t size;
  uint64_t ino;
  pid_t creator; /* the process that registered it (a parent, after fork) */
  char name[];
} reg;

static struct {
  pthread_mutex_t lock;
  int fd;            /* our end of the tracker's socket, or -1 */
  dev_t fd_dev;      /* its identity: the number alone may be reused */
  ino_t fd_ino;
  pid_t tracker_pid; /* valid while fd >= 0 */
  reg *names;        /* what this process (or its parent) registered */
  pid_t self;        /* the pid self_start belongs to */
  uint64_t self_start;
} g = {PTHREAD_MUTEX_INITIALIZER, -1, 0, 0, 0, NULL, 0, 0};

/* Set while this thread forks the tracker, holding g.lock. */
static __thread bool in_spawn;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void) {
  if (!in_spawn)
    pthread_mutex_lock(&g.lock);
}
static void atfork_release(void) {
  if (!in_spawn)
    pthread_mutex_unlock(&g.lock);
}
static void install_atfork(void) {
  pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

static int send_msg(int fd, const char *msg, size_t len) {
  for (;;) {
    if (send(fd, msg, len, MSG_NOSIGNAL) >= 0)
      return 0;
    if (errno != EINTR)
      return -errno;
  }
}

static int send_register(int fd, const reg *r) {
  char msg[MSG_MAX];
  char hex[2 * NAME_MAX_BYTES + 1];
  hex_encode(r->name, hex);
  pid_t me = getpid();
  if (g.self != me) {
    g.self = me;
    g.self_start = 0;
    (void)mp__os_pid_start_time(me, &g.self_start);
  }
  int n = snprintf(msg, sizeof msg, "R %d %" PRIu64 " %zu %" PRIu64 " %s",
                   (int)me, g.self_start, r->size, r->ino, hex);
  return send_msg(fd, msg, (size_t)n);
}

/* Starts a tracker and waits for its hello. Called with g.lock held. */
static int start_tracker_locked(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return -errno;
  in_spawn = true;
  int rc = mp__os_spawn_daemon(sv[1], tracker_main, NULL);
  in_spawn = false;
  close(sv[1]);
  if (rc != 0) {
    close(sv[0]);
    return rc;
  }
  mp__deadline d = mp__deadline_from_timeout(HANDSHAKE_TIMEOUT_S);
  char msg[64];
  ssize_t n;
  for (;;) {
    struct pollfd pfd = {.fd = sv[0], .events = POLLIN};
    int64_t left = mp__deadline_remaining_ns(d);
    int prc = poll(&pfd, 1, (int)(left / 1000000) + 1);
    if (prc < 0 && errno == EINTR)
      continue;
    if (prc <= 0) {
      close(sv[0]);
      return prc == 0 ? MP_ETIMEDOUT : -errno;
    }
    n = recv(sv[0], msg, sizeof msg - 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    break;
  }
  if (n <= 2 || msg[0] != 'P' || msg[1] != ' ') {
    close(sv[0]);
    return MP_EPIPE; /* the tracker died before it said hello */
  }
  msg[n] = '\0';
  struct stat st;
  if (fstat(sv[0], &st) != 0) {
    close(sv[0]);
    return -errno;
  }
  g.fd = sv[0];
  g.fd_dev = st.st_dev;
  g.fd_ino = st.st_ino;
  g.tracker_pid = (pid_t)atoi(msg + 2);
  return 0;
}

/* Drops the names other processes registered (this process inherited
 * them across fork): guarding them is their creators' business, and a
 * tracker of ours would unlink them when we die. */
static void drop_inherited_locked(void) {
  pid_t me = getpid();
  for (reg **pp = &g.names; *pp != NULL;) {
    reg *r = *pp;
    if (r->creator != me) {
      *pp = r->next;
      mp__free(r);
    } else {
      pp = &r->next;
    }
  }
}

/* connected_locked tells whether g.fd is still our end of the tracker's
 * socket. A process that closes every descriptor after fork (a fork
 * server, a daemon) closes it too, and the number may since name another
 * descriptor: then we are no longer part of that tree. Forget the number
 * without closing it, and the names inherited from the tree. */
static bool connected_locked(void) {
  if (g.fd < 0)
    return false;
  struct stat st;
  if (fstat(g.fd, &st) == 0 && st.st_dev == g.fd_dev &&
      st.st_ino == g.fd_ino)
    return true;
  g.fd = -1;
  g.tracker_pid = 0;
  drop_inherited_locked();
  return false;
}

/* Starts a fresh tracker and registers this process's names with it. */
static int restart_tracker_locked(void) {
  if (g.fd >= 0)
    close(g.fd);
  g.fd = -1;
  g.tracker_pid = 0;
  drop_inherited_locked();
  int rc = start_tracker_locked();
  for (reg *r = g.names; rc == 0 && r != NULL; r = r->next)
    rc = send_register(g.fd, r);
  if (rc != 0 && g.fd >= 0) {
    close(g.fd);
    g.fd = -1;
  }
  return rc;
}

/* What register_locked changed, so that a creation that fails after it
 * can put the list (and the tracker) back as they were. */
typedef struct reg_undo {
  reg *r;
  bool fresh; /* r was added; otherwise its old fields follow */
  size_t size;
  uint64_t ino;
  pid_t creator;
} reg_undo;

/* register_locked records that this process created (or is creating)
 * segment name of size bytes and inode ino, and tells the tracker,
 * starting one if needed. Called with g.lock held. */
static int register_locked(const char *name, size_t size, uint64_t ino,
                           reg_undo *undo) {
  size_t len = strlen(name);
  reg *r = NULL;
  for (reg *q = g.names; q != NULL; q = q->next)
    if (strcmp(q->name, name) == 0)
      r = q;
  bool fresh = r == NULL;
  if (fresh) {
    /* Registered before, unlinked by someone outside the tree and created
     * again (fresh == false): the same entry now guards the new segment. */
    r = mp__alloc(sizeof *r + len + 1);
    if (r == NULL)
      return MP_ENOMEM;
    memcpy(r->name, name, len + 1);
    r->next = g.names;
    g.names = r;
  }
  if (undo != NULL)
    *undo = (reg_undo){.r = r, .fresh = fresh, .size = r->size,
                       .ino = r->ino, .creator = r->creator};
  r->size = size;
  r->ino = ino;
  r->creator = getpid();
  int rc = connected_locked() ? send_register(g.fd, r) : MP_EPIPE;
  if (rc != 0)
    rc = restart_tracker_locked();
  if (rc != 0 && fresh) {
    /* r is ours (restarting drops only inherited names): still first. */
    g.names = r->next;
    mp__free(r);
    if (g.names == NULL && g.fd >= 0) {
      close(g.fd);
      g.fd = -1;
    }
  }
  return rc;
}

/* send_unregister_locked tells the tracker to forget entry (name, ino). */
static void send_unregister_locked(const char *name, uint64_t ino) {
  char msg[MSG_MAX];
  char hex[2 * NAME_MAX_BYTES + 1];
  hex_encode(name, hex);
  int n = snprintf(msg, sizeof msg, "U %" PRIu64 " %s", ino, hex);
  /* If the tracker is gone, the survivors of the list need a new one. */
  if (send_msg(g.fd, msg, (size_t)n) != 0 && g.names != NULL)
    (void)restart_tracker_locked();
}

/* forget_replaced_locked: the name now refers to a new segment (ino) of
 * this process; the entry of the segment it replaced (u->ino, unlinked by
 * someone outside the tree) guards nothing any more. */
static void forget_replaced_locked(const reg_undo *u, uint64_t ino) {
  if (!u->fresh && u->ino != ino && connected_locked())
    send_unregister_locked(u->r->name, u->ino);
}

/* undo_locked takes back what register_locked did (entry (name, ino)),
 * for a segment that was never named. The tracker only ever unlinks the
 * inode registered, so whatever it heard meanwhile never touched the
 * name's real owner, and its other entries of that name stay. */
static void undo_locked(const reg_undo *u, uint64_t ino) {
  reg *r = u->r;
  if (!u->fresh) {
    r->size = u->size;
    r->ino = u->ino;
    r->creator = u->creator;
    if (!connected_locked())
      return;
    if (u->ino == ino)
      (void)send_register(g.fd, r); /* the same entry: as it was */
    else
      send_unregister_locked(r->name, ino);
    return;
  }
  for (reg **pp = &g.names; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  }
  if (connected_locked())
    send_unregister_locked(r->name, ino);
  mp__free(r);
  if (g.names == NULL && g.fd >= 0) {
    close(g.fd);
    g.fd = -1;
    g.tracker_pid = 0;
  }
}

int mp__tracker_create(const char *shm_name, size_t size, int *fd_out) {
  if (shm_name == NULL || fd_out == NULL)
    return mp__fail(MP_EINVAL, "shm_name or fd_out is NULL");
  size_t len = strlen(shm_name);
  int fd;
  uint64_t ino;
  /* A name the tracker cannot carry, or a system that cannot create a
   * segment without a name: the plain order (create, then register). */
  if (len == 0 || len > NAME_MAX_BYTES ||
      mp__os_shm_create_unnamed(size, &fd, &ino) != 0)
    return mp__os_shm_create(shm_name, size, fd_out);
  pthread_once(&atfork_once, install_atfork);
  pthread_mutex_lock(&g.lock);
  reg_undo u;
  int rc = register_locked(shm_name, size, ino, &u);
  if (rc == 0) {
    mp__fault(MP__FAULT_SHM_UNNAMED, (void *)shm_name);
    rc = mp__os_shm_link(fd, shm_name);
    if (rc != 0)
      undo_locked(&u, ino);
    else
      forget_replaced_locked(&u, ino);
  }
  pthread_mutex_unlock(&g.lock);
  if (rc == 0) {
    *fd_out = fd;
    return 0;
  }
  close(fd);
  if (rc == MP_EEXIST)
    return rc;
  /* No tracker (the caller's mp__tracker_register reports that, or not,
   * as it always did), or no way to name the file here: the plain order. */
  return mp__os_shm_create(shm_name, size, fd_out);
}

int mp__tracker_link(int fd, const char *base, char *name, size_t cap) {
  if (base == NULL || name == NULL || strchr(base, '+') != NULL)
    return mp__fail(MP_EINVAL, "base or name is NULL, or base has a '+'");
  struct stat st;
  if (fstat(fd, &st) != 0)
    return -errno;
  uint64_t ino = (uint64_t)st.st_ino;
  pthread_once(&atfork_once, install_atfork);
  pthread_mutex_lock(&g.lock);
  /* The link is the tree's: named after its tracker (and the tracker's
   * namespace, where pids of two containers may meet). */
  int rc = connected_locked() ? 0 : restart_tracker_locked();
  int n = rc != 0 ? 0
                  : snprintf(name, cap, "%s+=%d.%" PRIu64, base,
                             (int)g.tracker_pid, mp__os_pidns());
  if (rc == 0 && (n < 0 || (size_t)n >= cap || n > NAME_MAX_BYTES))
    rc = mp__fail(MP_ENAMETOOLONG, "link name over %zu bytes", cap - 1);
  reg_undo u;
  if (rc == 0 && (rc = register_locked(name, 0, ino, &u)) == 0) {
    rc = mp__os_shm_link(fd, name);
    /* Linked before by this tree (another member, or a handle freed). */
    uint64_t have;
    if (rc == MP_EEXIST && mp__os_shm_inode(name, &have) == 0 && have == ino)
      rc = 0;
    if (rc != 0)
      undo_locked(&u, ino);
    else
      forget_replaced_locked(&u, ino);
  }
  if (rc != 0 && g.names == NULL && g.fd >= 0) {
    close(g.fd); /* started for nothing: no descriptor held for it */
    g.fd = -1;
    g.tracker_pid = 0;
  }
  pthread_mutex_unlock(&g.lock);
  return rc;
}

int mp__tracker_register(const char *shm_name, size_t size) {
  if (shm_name == NULL)
    return mp__fail(MP_EINVAL, "shm_name is NULL");
  size_t len = strlen(shm_name);
  if (len == 0 || len > NAME_MAX_BYTES)
    return mp__fail(MP_EINVAL, "name is empty or over %d bytes",
                    NAME_MAX_BYTES);
  pthread_once(&atfork_once, install_atfork);
  /* Its identity now, right after its creation: the tracker will only
   * ever unlink this very segment. */
  uint64_t ino;
  int rc = mp__os_shm_inode(shm_name, &ino);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&g.lock);
  /* Registered already by mp__tracker_create, before it had its name. */
  for (reg *q = g.names; q != NULL; q = q->next) {
    if (strcmp(q->name, shm_name) == 0 && q->creator == getpid() &&
        q->ino == ino && q->size == size && connected_locked()) {
      pthread_mutex_unlock(&g.lock);
      return 0;
    }
  }
  reg_undo u;
  rc = register_locked(shm_name, size, ino, &u);
  if (rc == 0)
    forget_replaced_locked(&u, ino);
  pthread_mutex_unlock(&g.lock);
  return rc;
}

/* drop: unregister (tell: the tracker forgets it too) or forget. */
static void drop(const char *shm_name, bool tell) {
  if (shm_name == NULL)
    return;
  pthread_mutex_lock(&g.lock);
  reg *found = NULL;
  for (reg **pp = &g.names; *pp != NULL; pp = &(*pp)->next) {
    if (strcmp((*pp)->name, shm_name) == 0) {
      found = *pp;
      *pp = found->next;
      break;
    }
  }
  if (found != NULL && tell && connected_locked())
    send_unregister_locked(found->name, found->ino);
  mp__free(found);
  if (g.names == NULL && g.fd >= 0) {
    close(g.fd);
    g.fd = -1;
    g.tracker_pid = 0;
  }
  pthread_mutex_unlock(&g.lock);
}

void mp__tracker_unregister(const char *shm_name) {
  drop(shm_name, true);
}

void mp__tracker_forget(const char *shm_name) {
  drop(shm_name, false);
}

pid_t mp_resource_tracker_pid(void) {
  pthread_mutex_lock(&g.lock);
  pid_t pid = connected_locked() ? g.tracker_pid : 0;
  pthread_mutex_unlock(&g.lock);
  return pid;
}

/* ---- listing and cleaning up -------------------------------------------- */
typedef struct state_header {
  pid_t pid;      /* from the file name */
  uint64_t start; /* from the first line; 0 when it is malformed */
  uint64_t pidns; /* the tracker's PID namespace; 0: not written (older
                   * trackers: taken as the caller's) */
  bool ns_unknown; /* the tracker wrote 0: it could not know its namespace
                    * (it ran without /proc), so its pids are not judged */
} state_header;

/* foreign: the file's pids mean nothing (or nothing known) here. */
static bool foreign(const state_header *h) {
  return h->ns_unknown || (h->pidns != 0 && h->pidns != mp__os_pidns());
}

/* Parses the first line of a state file into *h. Returns where the entry
 * lines begin. */
static const char *parse_header(const char *data, size_t len,
                                state_header *h) {
  const char *end = data + len;
  const char *nl = memchr(data, '\n', len);
  const char *line_end = nl ? nl : end;
  size_t ml = sizeof STATE_MAGIC - 1;
  const char *q = data;
  uint64_t pid, start;
  if ((size_t)(line_end - q) > ml && memcmp(q, STATE_MAGIC, ml) == 0) {
    q += ml;
    uint64_t ns;
    if (parse_u64(&q, line_end, &pid) == 0 && (pid_t)pid == h->pid &&
        pid <= INT32_MAX && parse_u64(&q, line_end, &start) == 0) {
      h->start = start;
      if (parse_u64(&q, line_end, &ns) == 0) {
        h->pidns = ns;
        h->ns_unknown = ns == 0;
      }
    }
  }
  return nl ? nl + 1 : end;
}

/* Calls fn for each well-formed entry line in [p, end). */
static int for_each_entry(const char *p, const char *end,
                          int (*fn)(const entry *e, const char *line,
                                    size_t line_len, void *arg),
                          void *arg) {
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = nl ? nl : end;
    const char *q = p;
    uint64_t pid, start, size, ino;
    entry e;
    if (parse_u64(&q, line_end, &pid) == 0 && pid > 0 && pid <= INT32_MAX &&
        parse_u64(&q, line_end, &start) == 0 &&
        parse_u64(&q, line_end, &size) == 0 &&
        parse_u64(&q, line_end, &ino) == 0 &&
        hex_decode(q, (size_t)(line_end - q), e.name, sizeof e.name) == 0) {
      e.pid = (pid_t)pid;
      e.start = start;
      e.size = size;
      e.ino = ino;
      int rc = fn(&e, p, (size_t)(line_end - p), arg);
      if (rc != 0)
        return rc;
    }
    p = nl ? nl + 1 : end;
  }
  return 0;
}

/* The tracker pid in a state file's name ("<prefix><pid>", or
 * "<prefix><pid>.<pidns>"), or 0 if it is not one. The namespace in the
 * name only keeps names apart; the file's first line is what says it. */
static pid_t state_file_pid(const char *name) {
  size_t pl = sizeof STATE_PREFIX - 1;
  if (strncmp(name, STATE_PREFIX, pl) != 0)
    return 0;
  const char *p = name + pl;
  long v = 0;
  if (*p < '0' || *p > '9')
    return 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > INT32_MAX / 10)
      return 0;
    v = v * 10 + (*p - '0');
  }
  if (*p == '.') {
    const char *ns = ++p;
    while (*p >= '0' && *p <= '9')
      p++;
    if (p == ns || p - ns > 20)
      return 0;
  }
  if (*p != '\0')
    return 0;
  return v > 0 && v <= INT32_MAX ? (pid_t)v : 0;
}

typedef struct name_list {
  char **v;
  size_t n, cap;
} name_list;

static int collect_state_file(const char *name, void *arg) {
  name_list *l = arg;
  if (state_file_pid(name) == 0)
    return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    char **v = mp__realloc(l->v, cap * sizeof *v);
    if (v == NULL)
      return MP_ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  if ((l->v[l->n] = mp__strdup(name)) == NULL)
    return MP_ENOMEM;
  l->n++;
  return 0;
}

static void name_list_free(name_list *l) {
  for (size_t i = 0; i < l->n; i++)
    mp__free(l->v[i]);
  mp__free(l->v);
}

/* Collects the names first: cleaning up while reading the directory would
 * change what the walk sees. */
static int state_files(name_list *l) {
  memset(l, 0, sizeof *l);
  int rc = mp__os_shm_list(collect_state_file, l);
  if (rc != 0)
    name_list_free(l);
  return rc;
}

typedef struct list_ctx {
  mp_resource_tracker_visit_fn fn;
  void *arg;
  pid_t tracker_pid;
  bool tracker_alive;
  bool foreign; /* of another PID namespace: its pids are not judged */
} list_ctx;

static int list_one(const entry *e, const char *line, size_t line_len,
                    void *arg) {
  (void)line;
  (void)line_len;
  list_ctx *c = arg;
  mp_tracked_object o;
  memset(&o, 0, sizeof o);
  memcpy(o.name, e->name, strlen(e->name) + 1);
  o.size = e->size > SIZE_MAX ? SIZE_MAX : (size_t)e->size;
  o.creator_pid = e->pid;
  o.creator_alive = c->foreign || mp__os_process_alive(e->pid, e->start);
  o.tracker_pid = c->tracker_pid;
  o.tracker_alive = c->tracker_alive;
  o.exists = same_segment(e);
  return c->fn(&o, c->arg);
}

int mp_resource_tracker_list(mp_resource_tracker_visit_fn fn, void *arg) {
  if (fn == NULL)
    return mp__fail(MP_EINVAL, "fn is NULL");
  name_list l;
  int rc = state_files(&l);
  if (rc != 0)
    return rc;
  for (size_t i = 0; rc == 0 && i < l.n; i++) {
    char *data;
    size_t len;
    if (mp__os_shm_read_file(l.v[i], STATE_FILE_MAX, &data, &len) != 0)
      continue; /* gone meanwhile (its tracker exited), or unreadable */
    state_header h = {.pid = state_file_pid(l.v[i])};
    const char *body = parse_header(data, len, &h);
    list_ctx c = {.fn = fn, .arg = arg, .tracker_pid = h.pid};
    c.foreign = foreign(&h);
    /* A malformed header gives no start time: the pid alone decides. */
    c.tracker_alive = c.foreign || mp__os_process_alive(h.pid, h.start);
    rc = for_each_entry(body, data + len, list_one, &c);
    mp__free(data);
  }
  name_list_free(&l);
  return rc;
}

typedef struct clean_ctx {
  text keep;
  size_t removed;
  size_t kept;
  bool links; /* this pass: users' links only, or everything else */
} clean_ctx;

static int clean_one(const entry *e, const char *line, size_t line_len,
                     void *arg) {
  clean_ctx *c = arg;
  if (user_link(e->name) != c->links)
    return 0;
  if (mp__os_process_alive(e->pid, e->start)) {
    /* Its creator still runs (the tree lives on without a tracker): keep
     * the line, so a later clean-up removes it once the creator is gone. */
    text_add(&c->keep, "%.*s\n", (int)line_len, line);
    c->kept++;
    return 0;
  }
  int64_t no_wait = 0; /* no tracker saw this tree end: no one to wait for */
  c->removed += remove_registered(e, &no_wait);
  return 0;
}

/* Cleans up after the tracker of one state file, if it is dead. */
static int remove_dead_in(const char *state_name, size_t *removed) {
  char *data;
  size_t len;
  int rc = mp__os_shm_read_file(state_name, STATE_FILE_MAX, &data, &len);
  if (rc != 0)
    /* Gone meanwhile, or not ours (planted by another user, writable by
     * others, a link): nothing to act on. */
    return rc == MP_ENOENT || rc == MP_EPERM ? 0 : rc;
  state_header h = {.pid = state_file_pid(state_name)};
  const char *body = parse_header(data, len, &h);
  /* The pids in the file mean something only in the tracker's PID
   * namespace: a file of another namespace (a container sharing
   * /dev/shm), or of a tracker that could not know its own, is left
   * alone. */
  if (foreign(&h)) {
    mp__free(data);
    return 0;
  }
  /* Our own pid in the name means we are the tracker that reuses a dead
   * one's pid: its file is stale even when its header is unreadable. */
  bool dead = !mp__os_process_alive(h.pid, h.start) ||
              (h.pid == getpid() && h.start == 0);
  if (dead) {
    clean_ctx c;
    memset(&c, 0, sizeof c);
    text_add(&c.keep, STATE_MAGIC "%d %" PRIu64 " %" PRIu64 "\n", (int)h.pid,
             h.start, h.pidns);
    for_each_entry(body, data + len, clean_one, &c);
    c.links = true;
    for_each_entry(body, data + len, clean_one, &c);
    if (c.keep.failed)
      rc = MP_ENOMEM;
    else if (c.kept > 0)
      rc = mp__os_shm_write_file(state_name, c.keep.p, c.keep.len);
    else
      (void)mp__os_shm_unlink(state_name);
    if (removed != NULL)
      *removed = c.removed;
    mp__free(c.keep.p);
  }
  mp__free(data);
  return rc;
}

int mp_resource_tracker_remove_dead(size_t *removed) {
  if (removed != NULL)
    *removed = 0;
  name_list l;
  int rc = state_files(&l);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < l.n; i++) {
    size_t n = 0;
    int r = remove_dead_in(l.v[i], &n);
    if (r != 0 && rc == 0)
      rc = r;
    if (removed != NULL)
      *removed += n;
  }
  name_list_free(&l);
  return rc;
}
