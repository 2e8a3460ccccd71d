/* queue_users.c - the table of the processes that use a queue: entered on
 * join and by the parent of a fork, left on free, and read to decide
 * whether a free is the last one; and read from outside, by the resource
 * tracker, from a snapshot of a named queue's segment (below queue.c;
 * above queue_core.c, for namespaces). */
#define _GNU_SOURCE
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "os/os.h"
#include "queue_internal.h"
#include "queue_users.h"

/* ---- the table -----------------------------------------------------------
 * Best effort, and only used to decide whether a free is the last one (to
 * discard what is left, so large messages' segments do not outlive every
 * user). A pid known to be gone counts as gone; one of another namespace,
 * a table that overflowed, or a pid reused by another process, only make
 * that decision more cautious. */
static uint64_t proc_entry(mp_queue *q, int32_t pid) {
  return ((uint64_t)q->ns << 32) | (uint32_t)pid;
}

static bool entry_gone(mp_queue *q, uint64_t e) {
  return mp__queue_same_ns(q, (uint32_t)(e >> 32)) &&
         mp__os_liveness((pid_t)(uint32_t)e, 0, 0) == MP__LIVE_GONE;
}

int mp__queue_users_add(mp_queue *q, int32_t pid) {
  mp__qshared *s = q->s;
  uint64_t me = proc_entry(q, pid);
  /* The caller (a parent entering its child) is alive: not asked. */
  uint64_t self = proc_entry(q, (int32_t)getpid());
  for (int i = 0; i < MP__QUEUE_PROCS; i++)
    if (atomic_load(&s->procs[i]) == me)
      return i;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < MP__QUEUE_PROCS; i++) {
      uint64_t cur = atomic_load(&s->procs[i]);
      /* A dead user that held unfinished tasks keeps its entry: join
       * reports it. */
      if (pass == 0 ? cur != 0
                    : (cur == 0 || cur == self || !entry_gone(q, cur) ||
                       atomic_load(&s->held[i]) != 0))
        continue;
      if (atomic_compare_exchange_strong(&s->procs[i], &cur, me)) {
        atomic_store(&s->held[i], 0);
        return i;
      }
    }
  }
  atomic_store(&s->procs_overflow, 1);
  return -1;
}

void mp__queue_users_remove(mp_queue *q, int32_t pid) {
  uint64_t me = proc_entry(q, pid);
  for (int i = 0; i < MP__QUEUE_PROCS; i++) {
    uint64_t cur = me;
    atomic_compare_exchange_strong(&q->s->procs[i], &cur, 0);
  }
}

bool mp__queue_users_others_alive(mp_queue *q, int32_t pid) {
  mp__qshared *s = q->s;
  if (atomic_load(&s->procs_overflow))
    return true;
  uint64_t me = proc_entry(q, pid);
  for (int i = 0; i < MP__QUEUE_PROCS; i++) {
    uint64_t cur = atomic_load(&s->procs[i]);
    if (cur != 0 && cur != me && !entry_gone(q, cur))
      return true;
  }
  return false;
}

/* mp__queue_users_dead_holder: a user known to be dead that held
 * unfinished tasks, as an MP_EOWNERDEAD with its detail; 0 if none. */
int mp__queue_users_dead_holder(mp_queue *q) {
  for (int i = 0; i < MP__QUEUE_PROCS; i++) {
    uint32_t n = atomic_load(&q->s->held[i]);
    uint64_t e = atomic_load(&q->s->procs[i]);
    if (n != 0 && e != 0 && entry_gone(q, e))
      return mp__fail(MP_EOWNERDEAD,
                      "process %d died holding %u unfinished task(s)",
                      (int)(uint32_t)e, n);
  }
  return 0;
}

/* ---- from outside ----------------------------------------------------------
 * The tracker reads a copy of the shared state (a segment any program of
 * the user can write): every field is a hint checked before use, and
 * whatever cannot be read or told means "used". An entry is gone only
 * when its namespace index names the reader's own known namespace and the
 * pid is known to be gone. */
bool mp__queue_users_gone(const void *state, size_t len, uint64_t own_ns) {
  if (state == NULL || len < sizeof(mp__qshared) || own_ns == 0)
    return false;
  mp__qshared s;
  memcpy(&s, state, sizeof s); /* aligned, whatever the caller's buffer */
  if (s.head.magic != MP__OBJECT_MAGIC || s.head.type != MP__TYPE_QUEUE ||
      s.head.origin != MP__ORIGIN_NAMED || atomic_load(&s.procs_overflow))
    return false;
  for (int i = 0; i < MP__QUEUE_PROCS; i++) {
    uint64_t e = atomic_load(&s.procs[i]);
    if (e == 0)
      continue;
    uint32_t ns = (uint32_t)(e >> 32);
    pid_t pid = (pid_t)(uint32_t)e;
    if (ns == 0 || ns > MP__QUEUE_NS ||
        atomic_load(&s.pidns[ns - 1]) != own_ns || pid <= 0 ||
        mp__os_liveness(pid, 0, 0) != MP__LIVE_GONE)
      return false;
  }
  return true;
}

bool mp__queue_file_users_gone(int fd) {
  mp__qshared *s = mp__alloc(sizeof *s);
  if (s == NULL)
    return false;
  /* pread, not mmap: a segment truncated meanwhile is a short read here,
   * where a mapping would fault. */
  ssize_t n = pread(fd, s, sizeof *s, 0);
  bool gone = n == (ssize_t)sizeof *s &&
              mp__queue_users_gone(s, sizeof *s, mp__os_pidns());
  mp__free(s);
  /* The table is anyone's to scribble on: a process that still maps the
   * segment uses the queue, whatever the table says. */
  struct stat st;
  if (gone && fstat(fd, &st) == 0 &&
      mp__os_anyone_maps((uint64_t)st.st_dev, (uint64_t)st.st_ino) == 1)
    gone = false;
  return gone;
}
