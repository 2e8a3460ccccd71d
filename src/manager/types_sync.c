/* manager/types_sync.c - the queue and synchronisation types a manager
 * serves: Queue and JoinableQueue (queue.Queue's methods), Lock, RLock,
 * Semaphore, BoundedSemaphore, Condition, Event and Barrier, with the
 * methods Python's AutoProxy, AcquirerProxy, ConditionProxy, EventProxy and
 * BarrierProxy call and the exceptions Python raises (queue.Empty,
 * queue.Full, RuntimeError, ValueError, threading.BrokenBarrierError).
 *
 * Blocking methods wait with mp__mgr_wait (server.c): the server's mutex is
 * released while waiting, every other client keeps being served, and the
 * wait ends when the object changes, the deadline passes, the server stops,
 * or the waiting client hangs up (MP_ECLOSED: no reply is sent).
 *
 * Crash safety beyond Python: a Lock, RLock or Condition held by a
 * connection that ends is released (conn_gone), so a client that dies
 * holding a manager lock never hangs the others; a client that dies waiting
 * on a Barrier breaks it (the others get BrokenBarrierError, as after a
 * timeout), and a Condition notification taken by a waiter whose client
 * died is passed on to the next waiter. Semaphores count, they have no
 * owner, so a dead client's acquisitions stay taken (as Python's). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/manager_internal.h"
#include "manager/method_args.h"

static int set_result(mp__mgr_call *call, mp_obj *v) {
  if (!v) return mp__mgr_traceback(call, "MemoryError: out of memory");
  call->result = v;
  return 0;
}

static int truthy(const mp_obj *v, int dflt) {
  if (!v) return dflt;
  int b;
  if (mp_obj_get_bool(v, &b) == 0) return b;
  int64_t i;
  if (mp_obj_get_int(v, &i) == 0) return i != 0;
  return !mp_obj_is_none(v);
}

/* ---- Queue / JoinableQueue ---------------------------------------------- */

typedef struct queue_state {
  mp_obj **items;
  size_t head, n, cap;
  int64_t maxsize;
  int64_t unfinished;
} queue_state;

static int queue_create(mp__mgr_call *call, void **out) {
  ARGS("maxsize");
  BIND(0);
  int64_t m = 0;
  if (a[0] && mp_obj_get_int(a[0], &m) != 0)
    return mp__mgr_raise_msg(call, "builtins", "TypeError",
                             "maxsize must be an int");
  queue_state *q = mp__calloc(1, sizeof *q);
  if (!q) return MP_ENOMEM;
  q->maxsize = m;
  *out = q;
  return 0;
}

static void queue_destroy(void *p) {
  queue_state *q = p;
  for (size_t i = 0; i < q->n; i++) mp_obj_free(q->items[(q->head + i) % q->cap]);
  mp__free(q->items);
  mp__free(q);
}

static mp_obj *queue_getvalue(void *p) {
  queue_state *q = p;
  mp_obj *l = mp_obj_list();
  for (size_t i = 0; l && i < q->n; i++)
    if (mp_obj_list_append(l, mp_obj_copy(q->items[(q->head + i) % q->cap]))) {
      mp_obj_free(l);
      l = NULL;
    }
  return l;
}

static int queue_push(queue_state *q, mp_obj *v) {
  if (!v) return MP_ENOMEM;
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    mp_obj **ni = mp__alloc(cap * sizeof *ni);
    if (!ni) {
      mp_obj_free(v);
      return MP_ENOMEM;
    }
    for (size_t i = 0; i < q->n; i++) ni[i] = q->items[(q->head + i) % q->cap];
    mp__free(q->items);
    q->items = ni;
    q->cap = cap;
    q->head = 0;
  }
  q->items[(q->head + q->n) % q->cap] = v;
  q->n++;
  q->unfinished++;
  return 0;
}

/* block/timeout arguments of put and get -> a deadline; nonzero: raised */
static int block_deadline(mp__mgr_call *call, const mp_obj *block,
                          const mp_obj *timeout, mp__deadline *d) {
  if (!truthy(block, 1)) {
    *d = mp__deadline_from_timeout(0);
    return 0;
  }
  double t;
  if (mp__mgr_timeout_arg(call, timeout, -1, &t)) return 1;
  if (timeout && !mp_obj_is_none(timeout) && t < 0)
    return mp__mgr_raise_msg(call, "builtins", "ValueError",
                             "'timeout' must be a non-negative number");
  *d = mp__deadline_from_timeout(t);
  return 0;
}

static int queue_call(mp__mgr_call *call) {
  queue_state *q = call->entry->state;
  mp__deadline d;
  if (IS("put") || IS("put_nowait")) {
    ARGS("item", "block", "timeout");
    BIND(1);
    if (IS("put_nowait")) d = mp__deadline_from_timeout(0);
    else if (block_deadline(call, a[1], a[2], &d)) return 0;
    while (q->maxsize > 0 && (int64_t)q->n >= q->maxsize) {
      int rc = mp__mgr_wait(call, d);
      if (rc == MP_ECLOSED) return rc;
      if (rc) return mp__mgr_raise(call, "queue", "Full", NULL);
    }
    if (queue_push(q, mp_obj_copy(a[0])))
      return mp__mgr_traceback(call, "MemoryError: out of memory");
    pthread_cond_broadcast(&call->entry->cond);
    return 0;
  }
  if (IS("get") || IS("get_nowait")) {
    ARGS("block", "timeout");
    BIND(0);
    if (IS("get_nowait")) d = mp__deadline_from_timeout(0);
    else if (block_deadline(call, a[0], a[1], &d)) return 0;
    while (q->n == 0) {
      int rc = mp__mgr_wait(call, d);
      if (rc == MP_ECLOSED) return rc;
      if (rc) return mp__mgr_raise(call, "_queue", "Empty", NULL);
    }
    /* Why check first: an item taken for a client that has hung up would
     * be lost; leave it for the next getter instead. */
    if (!mp__mgr_conn_alive(call->conn)) return MP_ECLOSED;
    mp_obj *v = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    pthread_cond_broadcast(&call->entry->cond);
    return set_result(call, v);
  }
  if (IS("qsize")) return set_result(call, mp_obj_int((int64_t)q->n));
  if (IS("empty")) return set_result(call, mp_obj_bool(q->n == 0));
  if (IS("full"))
    return set_result(call, mp_obj_bool(q->maxsize > 0 &&
                                        (int64_t)q->n >= q->maxsize));
  if (IS("task_done")) {
    if (q->unfinished <= 0)
      return mp__mgr_raise_msg(call, "builtins", "ValueError",
                               "task_done() called too many times");
    if (--q->unfinished == 0) pthread_cond_broadcast(&call->entry->cond);
    return 0;
  }
  if (IS("join")) {
    d = mp__deadline_from_timeout(-1);
    while (q->unfinished > 0) {
      int rc = mp__mgr_wait(call, d);
      if (rc) return rc; /* MP_ECLOSED, or a request run in place */
    }
    return 0;
  }
  return mp__mgr_traceback(call, "Queue has no method %s", call->method);
}

/* ---- Lock, RLock (and the lock inside a Condition) ----------------------- */

typedef struct waiter {
  struct waiter *next;
  int notified;
} waiter;

typedef struct lock_state {
  int recursive;
  uint64_t owner;   /* connection id holding it; 0: free */
  long count;       /* recursion depth (RLock), 1 for a held Lock */
  /* Semaphore */
  int64_t value, bound;
  int bounded;
  /* Condition */
  waiter *waiters;
  /* Event */
  int flag;
  /* Barrier */
  int64_t parties, nwait;
  uint64_t gen;
  int broken;
  double btimeout;
  uint8_t released[64]; /* released[g % 64]: gen g ended by a release */
} lock_state;

static uint64_t me(mp__mgr_call *call) { return call->conn ? call->conn->id : ~0ull; }

static int lock_create_common(void **out, int recursive) {
  lock_state *l = mp__calloc(1, sizeof *l);
  if (!l) return MP_ENOMEM;
  l->recursive = recursive;
  *out = l;
  return 0;
}

static int lock_create(mp__mgr_call *call, void **out) {
  (void)call;
  return lock_create_common(out, 0);
}
static int rlock_create(mp__mgr_call *call, void **out) {
  (void)call;
  return lock_create_common(out, 1);
}
static void plain_destroy(void *p) { mp__free(p); }

static void lock_conn_gone(mp__mgr_server *srv, void *p, uint64_t conn_id) {
  (void)srv;
  lock_state *l = p;
  if (l->owner == conn_id) {
    l->owner = 0;
    l->count = 0;
  }
}

/* acquire args (blocking=True, timeout=-1) -> deadline; nonzero: raised */
static int acquire_deadline(mp__mgr_call *call, const mp_obj *blocking,
                            const mp_obj *timeout, double dflt,
                            mp__deadline *d) {
  int block = truthy(blocking, 1);
  double t;
  if (mp__mgr_timeout_arg(call, timeout, dflt, &t)) return 1;
  if (!block) {
    if (timeout && !mp_obj_is_none(timeout) && t != -1 && dflt == -1)
      return mp__mgr_raise_msg(call, "builtins", "ValueError",
                               "can't specify a timeout for a non-blocking "
                               "call");
    *d = mp__deadline_from_timeout(0);
    return 0;
  }
  if (t < 0 && t != -1)
    return mp__mgr_raise_msg(call, "builtins", "ValueError",
                             "timeout value must be a non-negative number");
  *d = mp__deadline_from_timeout(t < 0 ? -1 : t);
  return 0;
}

/* lock_take acquires l for the caller, waiting until d: 1 acquired, 0 not,
 * MP_ECLOSED. */
static int lock_take(mp__mgr_call *call, lock_state *l, mp__deadline d) {
  uint64_t id = me(call);
  if (l->recursive && l->owner == id) {
    l->count++;
    return 1;
  }
  while (l->owner != 0) {
    int rc = mp__mgr_wait(call, d);
    if (rc == MP_ECLOSED) return rc;
    if (rc) return 0;
  }
  l->owner = id;
  l->count = 1;
  return 1;
}

static int lock_give(mp__mgr_call *call, lock_state *l) {
  if (l->owner == 0)
    return mp__mgr_raise_msg(call, "builtins", "RuntimeError",
                             l->recursive ? "cannot release un-acquired lock"
                                          : "release unlocked lock");
  if (l->recursive && l->owner != me(call))
    return mp__mgr_raise_msg(call, "builtins", "RuntimeError",
                             "cannot release un-acquired lock");
  if (--l->count <= 0) {
    l->owner = 0;
    l->count = 0;
    pthread_cond_broadcast(&call->entry->cond);
  }
  return 0;
}

static int lock_call(mp__mgr_call *call) {
  lock_state *l = call->entry->state;
  if (IS("acquire") || IS("__enter__")) {
    ARGS("blocking", "timeout");
    BIND(0);
    mp__deadline d;
    if (acquire_deadline(call, a[0], a[1], -1, &d)) return 0;
    int got = lock_take(call, l, d);
    if (got < 0) return got;
    return set_result(call, mp_obj_bool(got));
  }
  if (IS("release") || IS("__exit__")) return lock_give(call, l);
  if (IS("locked")) return set_result(call, mp_obj_bool(l->owner != 0));
  return mp__mgr_traceback(call, "Lock has no method %s", call->method);
}

/* ---- Semaphore / BoundedSemaphore ----------------------------------------- */

static int sem_create_common(mp__mgr_call *call, void **out, int bounded) {
  ARGS("value");
  BIND(0);
  int64_t v = 1;
  if (a[0] && (mp_obj_get_int(a[0], &v) != 0 || v < 0))
    return mp__mgr_raise_msg(call, "builtins", "ValueError",
                             "semaphore initial value must be >= 0");
  lock_state *l = mp__calloc(1, sizeof *l);
  if (!l) return MP_ENOMEM;
  l->value = v;
  l->bound = v;
  l->bounded = bounded;
  *out = l;
  return 0;
}
static int sem_create(mp__mgr_call *call, void **out) {
  return sem_create_common(call, out, 0);
}
static int bsem_create(mp__mgr_call *call, void **out) {
  return sem_create_common(call, out, 1);
}

static int sem_call(mp__mgr_call *call) {
  lock_state *l = call->entry->state;
  if (IS("acquire") || IS("__enter__")) {
    ARGS("blocking", "timeout");
    BIND(0);
    mp__deadline d;
    if (acquire_deadline(call, a[0], a[1], -1, &d)) return 0;
    while (l->value == 0) {
      int rc = mp__mgr_wait(call, d);
      if (rc == MP_ECLOSED) return rc;
      if (rc) return set_result(call, mp_obj_bool(0));
    }
    l->value--;
    return set_result(call, mp_obj_bool(1));
  }
  if (IS("release") || IS("__exit__")) {
    ARGS("n");
    BIND(0);
    int64_t n = 1;
    if (IS("release") && a[0] && (mp_obj_get_int(a[0], &n) != 0 || n < 1))
      return mp__mgr_raise_msg(call, "builtins", "ValueError",
                               "n must be one or more");
    if (l->bounded && l->value + n > l->bound)
      return mp__mgr_raise_msg(call, "builtins", "ValueError",
                               "Semaphore released too many times");
    l->value += n;
    pthread_cond_broadcast(&call->entry->cond);
    return 0;
  }
  if (IS("get_value")) return set_result(call, mp_obj_int(l->value));
  return mp__mgr_traceback(call, "Semaphore has no method %s", call->method);
}

/* ---- Condition ------------------------------------------------------------ */

static int cond_create(mp__mgr_call *call, void **out) {
  (void)call;
  return lock_create_common(out, 1);
}

static void cond_pass_on(lock_state *l) {
  for (waiter *w = l->waiters; w; w = w->next)
    if (!w->notified) {
      w->notified = 1;
      return;
    }
}

static void unlink_waiter(lock_state *l, waiter *me_) {
  for (waiter **pp = &l->waiters; *pp; pp = &(*pp)->next)
    if (*pp == me_) {
      *pp = me_->next;
      return;
    }
}

static int cond_call(mp__mgr_call *call) {
  lock_state *l = call->entry->state;
  if (IS("acquire") || IS("release") || IS("__enter__") || IS("__exit__"))
    return lock_call(call);
  if (IS("wait")) {
    ARGS("timeout");
    BIND(0);
    double t;
    if (mp__mgr_timeout_arg(call, a[0], -1, &t)) return 0;
    if (l->owner != me(call))
      return mp__mgr_raise_msg(call, "builtins", "RuntimeError",
                               "cannot wait on un-acquired lock");
    long saved = l->count;
    l->owner = 0;
    l->count = 0;
    waiter w = {.next = NULL, .notified = 0};
    waiter **pp = &l->waiters;
    while (*pp) pp = &(*pp)->next;
    *pp = &w;
    pthread_cond_broadcast(&call->entry->cond);
    mp__deadline d = mp__deadline_from_timeout(t < 0 ? -1 : t);
    int rc = 0;
    while (!w.notified) {
      rc = mp__mgr_wait(call, d);
      if (rc) break;
    }
    unlink_waiter(l, &w);
    if (rc == MP_ECLOSED) {
      if (w.notified) cond_pass_on(l); /* a dead waiter's wake-up */
      return rc;
    }
    /* reacquire, without the deadline, as Python's wait does */
    mp__deadline forever = mp__deadline_from_timeout(-1);
    while (l->owner != 0) {
      int r2 = mp__mgr_wait(call, forever);
      if (r2 == MP_ECLOSED) return r2;
    }
    l->owner = me(call);
    l->count = saved;
    return set_result(call, mp_obj_bool(w.notified));
  }
  if (IS("notify") || IS("notify_all")) {
    ARGS("n");
    BIND(0);
    if (l->owner != me(call))
      return mp__mgr_raise_msg(call, "builtins", "RuntimeError",
                               "cannot notify on un-acquired lock");
    int64_t n = 1;
    if (IS("notify_all")) n = INT64_MAX;
    else if (a[0]) mp_obj_get_int(a[0], &n);
    for (waiter *w = l->waiters; w && n > 0; w = w->next)
      if (!w->notified) {
        w->notified = 1;
        n--;
      }
    pthread_cond_broadcast(&call->entry->cond);
    return 0;
  }
  return mp__mgr_traceback(call, "Condition has no method %s", call->method);
}

/* ---- Event ---------------------------------------------------------------- */

static int event_create(mp__mgr_call *call, void **out) {
  (void)call;
  return lock_create_common(out, 0);
}

static int event_call(mp__mgr_call *call) {
  lock_state *l = call->entry->state;
  if (IS("is_set")) return set_result(call, mp_obj_bool(l->flag));
  if (IS("set")) {
    l->flag = 1;
    pthread_cond_broadcast(&call->entry->cond);
    return 0;
  }
  if (IS("clear")) {
    l->flag = 0;
    return 0;
  }
  if (IS("wait")) {
    ARGS("timeout");
    BIND(0);
    double t;
    if (mp__mgr_timeout_arg(call, a[0], -1, &t)) return 0;
    mp__deadline d = mp__deadline_from_timeout(t < 0 ? -1 : t);
    while (!l->flag) {
      int rc = mp__mgr_wait(call, d);
      if (rc == MP_ECLOSED) return rc;
      if (rc) break;
    }
    return set_result(call, mp_obj_bool(l->flag));
  }
  return mp__mgr_traceback(call, "Event has no method %s", call->method);
}

/* ---- Barrier --------------------------------------------------------------- */

static int barrier_create(mp__mgr_call *call, void **out) {
  ARGS("parties", "action", "timeout");
  BIND(1);
  int64_t n;
  if (mp_obj_get_int(a[0], &n) != 0 || n < 1)
    return mp__mgr_raise_msg(call, "builtins", "ValueError",
                             "parties must be >= 1");
  if (a[1] && !mp_obj_is_none(a[1]))
    return mp__mgr_raise_msg(call, "builtins", "TypeError",
                             "the C manager runs no Barrier action");
  double t;
  if (mp__mgr_timeout_arg(call, a[2], -1, &t)) return 0;
  lock_state *l = mp__calloc(1, sizeof *l);
  if (!l) return MP_ENOMEM;
  l->parties = n;
  l->btimeout = t;
  *out = l;
  return 0;
}

static int broken(mp__mgr_call *call) {
  return mp__mgr_raise(call, "threading", "BrokenBarrierError", NULL);
}

static void barrier_break(mp__mgr_call *call, lock_state *l) {
  l->broken = 1;
  pthread_cond_broadcast(&call->entry->cond);
}

static int barrier_call(mp__mgr_call *call) {
  lock_state *l = call->entry->state;
  if (IS("wait")) {
    ARGS("timeout");
    BIND(0);
    double t;
    if (mp__mgr_timeout_arg(call, a[0], l->btimeout, &t)) return 0;
    if (l->broken) return broken(call);
    int64_t index = l->nwait++;
    uint64_t gen = l->gen;
    if (l->nwait == l->parties) {
      l->released[gen % 64] = 1;
      l->gen++;
      l->nwait = 0;
      pthread_cond_broadcast(&call->entry->cond);
      return set_result(call, mp_obj_int(index));
    }
    mp__deadline d = mp__deadline_from_timeout(t < 0 ? -1 : t);
    for (;;) {
      if (l->gen != gen) {
        if (l->released[gen % 64]) return set_result(call, mp_obj_int(index));
        return broken(call); /* reset while waiting */
      }
      if (l->broken) return broken(call);
      int rc = mp__mgr_wait(call, d);
      if (rc == MP_ECLOSED) {
        /* Why break it: the parties can never all arrive now. */
        if (l->gen == gen) {
          l->nwait--;
          barrier_break(call, l);
        }
        return rc;
      }
      if (rc && l->gen == gen) {
        l->nwait--;
        barrier_break(call, l);
        return broken(call);
      }
    }
  }
  if (IS("abort")) {
    barrier_break(call, l);
    return 0;
  }
  if (IS("reset")) {
    if (l->nwait > 0) {
      l->released[l->gen % 64] = 0;
      l->gen++;
    }
    l->nwait = 0;
    l->broken = 0;
    pthread_cond_broadcast(&call->entry->cond);
    return 0;
  }
  if (IS("__getattribute__")) {
    ARGS("name");
    BIND(1);
    const char *n = "";
    mp_obj_get_str(a[0], &n, NULL);
    if (strcmp(n, "parties") == 0) return set_result(call, mp_obj_int(l->parties));
    if (strcmp(n, "n_waiting") == 0) return set_result(call, mp_obj_int(l->nwait));
    if (strcmp(n, "broken") == 0) return set_result(call, mp_obj_bool(l->broken));
    return mp__mgr_raise_msg(call, "builtins", "AttributeError",
                             "'Barrier' object has no attribute '%s'", n);
  }
  return mp__mgr_traceback(call, "Barrier has no method %s", call->method);
}

/* ---- repr: what Python's referent prints (str(proxy) on a client) ------ */

static char *queue_repr(void *p, const char *ident) {
  (void)p;
  return mp__mgr_format("<queue.Queue object at 0x%s>", ident);
}

static char *lock_repr(void *p, const char *ident) {
  lock_state *l = p;
  return mp__mgr_format("<%s _thread.lock object at 0x%s>",
                        l->owner ? "locked" : "unlocked", ident);
}

static char *rlock_text(lock_state *l, const char *ident) {
  /* owner: Python prints the holder's thread id; the connection id here. */
  return mp__mgr_format("<%s _thread.RLock object owner=%llu count=%ld at 0x%s>",
                        l->owner ? "locked" : "unlocked",
                        (unsigned long long)(l->owner ? l->owner : 0),
                        l->owner ? l->count : 0L, ident);
}

static char *rlock_repr(void *p, const char *ident) { return rlock_text(p, ident); }

static char *sem_repr(void *p, const char *ident) {
  lock_state *l = p;
  if (l->bounded)
    return mp__mgr_format("<threading.BoundedSemaphore at 0x%s: value=%lld/%lld>",
                          ident, (long long)l->value, (long long)l->bound);
  return mp__mgr_format("<threading.Semaphore at 0x%s: value=%lld>", ident,
                        (long long)l->value);
}

static char *cond_repr(void *p, const char *ident) {
  lock_state *l = p;
  size_t n = 0;
  for (waiter *w = l->waiters; w; w = w->next) n++;
  char *inner = rlock_text(l, ident);
  if (!inner) return NULL;
  char *r = mp__mgr_format("<Condition(%s, %zu)>", inner, n);
  mp__free(inner);
  return r;
}

static char *event_repr(void *p, const char *ident) {
  lock_state *l = p;
  return mp__mgr_format("<threading.Event at 0x%s: %s>", ident,
                        l->flag ? "set" : "unset");
}

static char *barrier_repr(void *p, const char *ident) {
  lock_state *l = p;
  if (l->broken) return mp__mgr_format("<threading.Barrier at 0x%s: broken>", ident);
  return mp__mgr_format("<threading.Barrier at 0x%s: waiters=%lld/%lld>", ident,
                        (long long)l->nwait, (long long)l->parties);
}

/* ---- the type table ---------------------------------------------------------- */

static char *queue_exposed[] = {"empty", "full", "get", "get_nowait", "join",
                                "put", "put_nowait", "qsize", "task_done",
                                NULL};
static char *lock_exposed[] = {"acquire", "release", "locked", NULL};
static char *sem_exposed[] = {"acquire", "release", "get_value", NULL};
static char *cond_exposed[] = {"acquire", "release", "wait", "notify",
                               "notify_all", NULL};
static char *event_exposed[] = {"is_set", "set", "clear", "wait", NULL};
static char *barrier_exposed[] = {"__getattribute__", "wait", "abort", "reset",
                                  NULL};

#define N(x) (MP__ARRAY_SIZE(x) - 1)

mp__mgr_type mp__mgr_type_queue = {
    .typeid = "Queue", .exposed = queue_exposed, .n_exposed = N(queue_exposed),
    .proxytype = "AutoProxy", .create = queue_create, .call = queue_call,
    .destroy = queue_destroy, .getvalue = queue_getvalue, .repr = queue_repr};
mp__mgr_type mp__mgr_type_joinable_queue = {
    .typeid = "JoinableQueue", .exposed = queue_exposed,
    .n_exposed = N(queue_exposed), .proxytype = "AutoProxy",
    .create = queue_create, .call = queue_call, .destroy = queue_destroy,
    .getvalue = queue_getvalue, .repr = queue_repr};
mp__mgr_type mp__mgr_type_lock = {
    .typeid = "Lock", .exposed = lock_exposed, .n_exposed = N(lock_exposed),
    .proxytype = "AcquirerProxy", .create = lock_create, .call = lock_call,
    .destroy = plain_destroy, .conn_gone = lock_conn_gone, .repr = lock_repr};
mp__mgr_type mp__mgr_type_rlock = {
    .typeid = "RLock", .exposed = lock_exposed, .n_exposed = N(lock_exposed),
    .proxytype = "AcquirerProxy", .create = rlock_create, .call = lock_call,
    .destroy = plain_destroy, .conn_gone = lock_conn_gone, .repr = rlock_repr};
mp__mgr_type mp__mgr_type_semaphore = {
    .typeid = "Semaphore", .exposed = sem_exposed, .n_exposed = N(sem_exposed),
    .proxytype = "AcquirerProxy", .create = sem_create, .call = sem_call,
    .destroy = plain_destroy, .repr = sem_repr};
mp__mgr_type mp__mgr_type_bounded_semaphore = {
    .typeid = "BoundedSemaphore", .exposed = sem_exposed,
    .n_exposed = N(sem_exposed), .proxytype = "AcquirerProxy",
    .create = bsem_create, .call = sem_call, .destroy = plain_destroy,
    .repr = sem_repr};
mp__mgr_type mp__mgr_type_condition = {
    .typeid = "Condition", .exposed = cond_exposed,
    .n_exposed = N(cond_exposed), .proxytype = "ConditionProxy",
    .create = cond_create, .call = cond_call, .destroy = plain_destroy,
    .conn_gone = lock_conn_gone, .repr = cond_repr};
mp__mgr_type mp__mgr_type_event = {
    .typeid = "Event", .exposed = event_exposed, .n_exposed = N(event_exposed),
    .proxytype = "EventProxy", .create = event_create, .call = event_call,
    .destroy = plain_destroy, .repr = event_repr};
mp__mgr_type mp__mgr_type_barrier = {
    .typeid = "Barrier", .exposed = barrier_exposed,
    .n_exposed = N(barrier_exposed), .proxytype = "BarrierProxy",
    .create = barrier_create, .call = barrier_call, .destroy = plain_destroy,
    .repr = barrier_repr};
