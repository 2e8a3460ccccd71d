/* barrier.c - Barrier: `parties` threads or processes wait for one
 * another, as Python's threading.Barrier, and a party that dies breaks it
 * instead of leaving the others waiting forever.
 *
 * DESIGN
 * Shared state, all changed under `lock` (the library's owner-word lock,
 * sync_lock.c, held only for a few instructions at a time, never while
 * sleeping or running the action):
 *
 *   mp__object_head head
 *   uint32 gen           moves on every change a sleeper must see; the
 *                        futex word sleepers wait on
 *   uint32 state         FILLING, ACTION, DRAINING, RESETTING or BROKEN
 *   uint32 parties
 *   uint32 untracked     parties inside wait from processes without a slot
 *   double timeout       default wait timeout (<= 0: forever)
 *   uint64 action, action_arg, creator   the action, its argument, and the
 *                        mp__image_token() it may be called under
 *   mp__sync_lock lock
 *   int32 pids[64]       member processes: pid | namespace << 22 (0: free)
 *   uint16 nwait[64]     how many of each member's threads are inside wait
 *
 * The states are Python's (filling 0, draining 1, resetting -1, broken -2)
 * plus ACTION: the last party runs the action with the lock released (a
 * callback never runs under a library lock), and ACTION keeps the others
 * waiting and new arrivals out, as Python's lock held across the action
 * does. How many are inside wait is not stored but summed: untracked +
 * sum(nwait). Each arrival and departure is then one store, so a process
 * that dies anywhere leaves no count half-updated, and removing a dead
 * member's slot takes its waiters out of the count with it.
 *
 * Members: a process takes a slot on its first wait and gives it back in
 * mp_barrier_free or mp_barrier_destroy. A slot holds the member's pid and,
 * in bits 22-24, the index of its PID namespace in the state lock's table
 * (mp__sync_lock_ns_index; 0: unknown): processes of two namespaces that
 * share /dev/shm (containers) may have one pid, and a pid means something
 * only in its own namespace. Sleepers sleep in slices of
 * MP__SYNC_SLICE_NS; each slice, the sleeper looks at every other member
 * of its own, known, namespace (mp__os_pid_alive, a zombie counts as
 * dead); a member of another or an unknown namespace is alive (unknown
 * means alive). A dead member while
 * someone waits breaks the barrier (G-BARRIER-1): the dead process cannot
 * arrive any more, and if it was inside wait, the round could not drain.
 * Its slot is freed then, so after mp_barrier_reset the barrier works with
 * the parties that are left. A slot is freed by clearing nwait before pid:
 * dying between the two leaves a member that the next look finds dead.
 *
 * A crash, at each step. Inside the lock: the next locker is told
 * MP_EOWNERDEAD and breaks the barrier, since the dead process may have
 * been anywhere in a round. Asleep, or running the
 * action: the member scan above. Only processes are watched; a thread that
 * exits inside wait is not noticed (its process lives on). Pids can be
 * reused: a dead member whose pid now names a live process goes unnoticed.
 * A process beyond the 64 slots is counted in `untracked`: its death
 * leaves that count too high, and a reset barrier will drain only when the
 * count returns to zero; sync.h promises tracking for 64 processes.
 *
 * Untrusted memory. A named barrier can be written by any process of its
 * user. Indices into pids and nwait are bounded by the arrays, never read
 * from the state; a party count outside [1, INT32_MAX] or a count of
 * waiters over INT32_MAX fails the call with MP_ECORRUPT. The state lock
 * keeps no pointer (sync_lock.c). Every wait for it is bounded: wait by
 * its deadline, after it has counted itself in by at least STATE_WAIT_NS
 * (it must take the lock again to count itself out), and the calls
 * without a timeout (reset, abort, broken, n_waiting, destroy, free) by
 * STATE_WAIT_NS: a state lock held that long is held by a stopped process
 * or was overwritten, and those calls then fail with MP_ETIMEDOUT. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "sync_internal.h"

/* The longest wait for the state lock by a call that has no deadline, or
 * whose deadline passed while it is counted in. It is held for a few
 * instructions at a time: a second means a stopped holder. */
#define STATE_WAIT_NS (1000 * 1000 * 1000)
/* How long a wait with timeout 0 waits for the state lock. */
#define POLL_GRACE_NS (1000 * 1000)

enum {
  FILLING = 0,
  DRAINING = 1,
  RESETTING = 2,
  BROKEN = 3,
  ACTION = 4,
};

typedef struct barrier_state {
  mp__object_head head;
  _Atomic uint32_t gen;
  uint32_t state;
  uint32_t parties;
  uint32_t untracked;
  double timeout;
  uint64_t action;
  uint64_t action_arg;
  uint64_t creator;
  mp__sync_lock lock;
  int32_t pids[MP_BARRIER_MAX_PROCS];
  uint16_t nwait[MP_BARRIER_MAX_PROCS];
} barrier_state;

_Static_assert(sizeof(barrier_state) <= MP_BARRIER_SIZE,
               "Barrier fits mp_barrier");

static barrier_state *check(mp_barrier *b) {
  if (mp__object_check(b, MP__TYPE_BARRIER) != 0)
    return NULL;
  return (barrier_state *)b;
}

/* bump tells every sleeper to look at the state again. */
static void bump(barrier_state *s) {
  atomic_fetch_add(&s->gen, 1);
  mp__os_futex_wake((uint32_t *)&s->gen, INT32_MAX, true);
}

static void break_barrier(barrier_state *s) {
  s->state = BROKEN;
  bump(s);
}

/* lock_state takes the state lock by deadline d: 0, or an error (MP_EAGAIN,
 * MP_ETIMEDOUT: not taken; MP_ECORRUPT). A holder that died in there,
 * somewhere in a round, breaks the barrier. */
static int lock_state(barrier_state *s, mp__deadline d) {
  int rc = mp__sync_lock_acquire_until(&s->lock, d);
  if (rc == MP_EOWNERDEAD) {
    break_barrier(s);
    return 0;
  }
  if (rc == MP_ETIMEDOUT && d.ns != INT64_MAX)
    return mp__fail(rc, "the barrier's state lock stayed held (a stopped "
                        "process holds it, or its word was overwritten)");
  return rc;
}

/* at_least extends d to now + STATE_WAIT_NS if it ends sooner. */
static mp__deadline at_least(mp__deadline d) {
  int64_t floor = mp__os_now_ns() + STATE_WAIT_NS;
  if (d.ns < floor) {
    d.ns = floor;
    d.poll = false;
  }
  return d;
}

/* lock_state_now: for the calls without a timeout. */
static int lock_state_now(barrier_state *s) {
  return lock_state(s, at_least((mp__deadline){.ns = 0}));
}

static void unlock_state(barrier_state *s) {
  mp__sync_lock_release(&s->lock);
}

static uint64_t inside(const barrier_state *s) {
  uint64_t n = s->untracked;
  for (int i = 0; i < MP_BARRIER_MAX_PROCS; i++)
    n += s->nwait[i];
  return n;
}

/* The counts this library writes stay within these bounds; anything else
 * was written by another program. */
static int corrupt(const char *what, uint64_t v) {
  return mp__fail(MP_ECORRUPT,
                  "barrier %s is %llu: the shared state was overwritten", what,
                  (unsigned long long)v);
}

static int counts_check(const barrier_state *s) {
  uint32_t parties = s->parties;
  if (parties == 0 || parties > INT32_MAX)
    return corrupt("party count", parties);
  uint64_t n = inside(s);
  if (n > INT32_MAX)
    return corrupt("count of waiters", n);
  return 0;
}

/* exit_check ends a drain or a reset once the last party has left. */
static void exit_check(barrier_state *s) {
  if (inside(s) == 0 && (s->state == DRAINING || s->state == RESETTING)) {
    s->state = FILLING;
    bump(s);
  }
}

/* A member's id: its pid, and its namespace index above MEMBER_PID_BITS
 * (pids are below 2^22 on Linux; a larger one is kept without an index). */
#define MEMBER_PID_BITS 22
#define MEMBER_PID_MASK ((1u << MEMBER_PID_BITS) - 1)
#define MEMBER_NS_MASK 7u

static int32_t member_self(barrier_state *s) {
  uint32_t pid = (uint32_t)getpid();
  if (pid > MEMBER_PID_MASK)
    return (int32_t)pid;
  return (int32_t)(pid | mp__sync_lock_ns_index(&s->lock) << MEMBER_PID_BITS);
}

static int slot_find(const barrier_state *s, int32_t pid) {
  for (int i = 0; i < MP_BARRIER_MAX_PROCS; i++)
    if (s->pids[i] == pid)
      return i;
  return -1;
}

static int slot_take(barrier_state *s, int32_t pid) {
  int i = slot_find(s, pid);
  if (i >= 0)
    return i;
  for (i = 0; i < MP_BARRIER_MAX_PROCS; i++) {
    if (s->pids[i] == 0) {
      s->nwait[i] = 0;
      s->pids[i] = pid;
      return i;
    }
  }
  return -1;
}

static void slot_clear(barrier_state *s, int i) {
  s->nwait[i] = 0;
  s->pids[i] = 0;
}

/* reap_dead frees the slots of dead members other than self and breaks the
 * barrier if there was one. */
static void reap_dead(barrier_state *s, int32_t self) {
  bool dead = false;
  uint32_t mine = ((uint32_t)self >> MEMBER_PID_BITS) & MEMBER_NS_MASK;
  if ((uint32_t)self > (MEMBER_NS_MASK << MEMBER_PID_BITS | MEMBER_PID_MASK))
    mine = 0;
  for (int i = 0; i < MP_BARRIER_MAX_PROCS; i++) {
    uint32_t id = (uint32_t)s->pids[i];
    /* Judged only from its own, known, namespace. */
    if (id == 0 || id == (uint32_t)self || mine == 0 ||
        (id >> MEMBER_PID_BITS) != mine)
      continue;
    if (!mp__os_pid_alive((pid_t)(id & MEMBER_PID_MASK))) {
      slot_clear(s, i);
      dead = true;
    }
  }
  if (dead) {
    break_barrier(s);
    exit_check(s);
  }
}

/* sleep_locked releases the mutex, sleeps until the state may have changed
 * or the slice ends, and takes the mutex back; every slice it looks for
 * dead members. Returns 0 or a lock error. */
static int sleep_locked(barrier_state *s, mp__deadline d, int32_t self,
                        int64_t *last_scan) {
  uint32_t g = atomic_load(&s->gen);
  unlock_state(s);
  mp__deadline slice = mp__deadline_min_slice(d, MP__SYNC_SLICE_NS);
  mp__os_futex_wait((uint32_t *)&s->gen, g, slice.ns, true);
  /* The caller may be counted in: it must get the lock back to count
   * itself out, even past its deadline (bounded, see Untrusted memory). */
  int rc = lock_state(s, at_least(d));
  if (rc != 0)
    return rc;
  int64_t now = mp__os_now_ns();
  if (now - *last_scan >= MP__SYNC_SLICE_NS) {
    *last_scan = now;
    reap_dead(s, self);
  }
  return 0;
}

/* release_round is the last arrival's work: run the action, then let the
 * round drain. Called and returns with the mutex held, unless taking it
 * back after the action failed (*lost). */
static int release_round(barrier_state *s, int index, bool *lost) {
  if (s->action != 0) {
    if (s->creator != mp__image_token()) {
      /* Another program image: the pointer means nothing here. */
      break_barrier(s);
      return mp__fail(MP_EINVAL, "the barrier's action is a function of "
                                 "another program, which cannot run here");
    }
    mp_barrier_action_fn fn = (mp_barrier_action_fn)(uintptr_t)s->action;
    void *arg = (void *)(uintptr_t)s->action_arg;
    s->state = ACTION;
    unlock_state(s);
    int arc = fn(arg);
    int rc = lock_state_now(s);
    if (rc != 0) {
      *lost = true;
      return rc;
    }
    /* Broken, aborted or reset while the action ran. */
    if (s->state != ACTION)
      return MP_EBROKEN;
    if (arc != 0) {
      break_barrier(s);
      return MP_EBROKEN;
    }
  }
  s->state = DRAINING;
  bump(s);
  return index;
}

static int state_init(barrier_state *s, unsigned parties,
                      const mp_barrier_opts *opts, uint8_t origin) {
  memset((char *)s + sizeof s->head, 0, sizeof *s - sizeof s->head);
  s->head.type = MP__TYPE_BARRIER;
  s->head.version = MP__LAYOUT_VERSION;
  s->head.origin = origin;
  s->parties = parties;
  s->state = FILLING;
  if (opts != NULL) {
    s->timeout = opts->timeout;
    if (opts->action != NULL) {
      s->action = (uint64_t)(uintptr_t)opts->action;
      s->action_arg = (uint64_t)(uintptr_t)opts->action_arg;
      s->creator = mp__image_token();
    }
  }
  mp__sync_lock_init(&s->lock);
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, MP__OBJECT_MAGIC,
                        memory_order_release);
  return 0;
}

static bool parties_valid(unsigned parties) {
  return parties >= 1 && parties <= INT32_MAX;
}

/* args_check says which argument of new/init is wrong, if one is. */
static int args_check(const void *out, unsigned parties,
                      const mp_barrier_opts *opts) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  if (!parties_valid(parties))
    return mp__fail(MP_EINVAL, "parties is %u: give 1 to %d", parties,
                    INT32_MAX);
  if (opts != NULL && mp__timeout_check(opts->timeout) != 0)
    return mp__fail(MP_EINVAL, "opts.timeout is NaN");
  return 0;
}

int mp_barrier_new(mp_barrier **out, unsigned parties,
                   const mp_barrier_opts *opts) {
  int rc = args_check(out, parties, opts);
  if (rc != 0)
    return rc;
  void *obj;
  rc = mp__object_new(&obj, sizeof(mp_barrier), MP__TYPE_BARRIER,
                          opts ? opts->name : NULL);
  if (rc != 0)
    return rc;
  barrier_state *s = obj;
  if ((rc = state_init(s, parties, opts, s->head.origin)) != 0) {
    mp__object_free(obj, sizeof(mp_barrier));
    return rc;
  }
  *out = obj;
  return 0;
}

int mp_barrier_open(mp_barrier **out, const char *name) {
  void *obj;
  int rc = mp__object_open(&obj, sizeof(mp_barrier), MP__TYPE_BARRIER, name);
  if (rc != 0)
    return rc;
  barrier_state *s = obj;
  /* The action is a pointer into the creator's program image. */
  if (s->action != 0) {
    mp__object_free(obj, sizeof(mp_barrier));
    return mp__fail(MP_EINVAL, "the barrier has an action (a pointer into "
                               "its creator's program): it cannot be opened");
  }
  *out = obj;
  return 0;
}

void mp_barrier_free(mp_barrier *b) {
  if (b == NULL || ((mp__object_head *)b)->type != MP__TYPE_BARRIER)
    return;
  barrier_state *s = (barrier_state *)b;
  /* This process stops being a member: its exit no longer breaks the
   * barrier. For an in-place barrier that is all free does. */
  if (check(b) != NULL && lock_state_now(s) == 0) {
    int i = slot_find(s, member_self(s));
    if (i >= 0 && s->nwait[i] == 0)
      slot_clear(s, i);
    unlock_state(s);
  }
  mp__object_free(b, sizeof(mp_barrier));
}

int mp_barrier_init(mp_barrier *b, unsigned parties,
                    const mp_barrier_opts *opts) {
  int rc = args_check(b, parties, opts);
  if (rc != 0)
    return rc;
  if ((uintptr_t)b % MP_SYNC_ALIGN != 0)
    return mp__fail(MP_EINVAL, "b is not aligned to MP_SYNC_ALIGN");
  memset(b, 0, sizeof(mp__object_head));
  return state_init((barrier_state *)b, parties, opts, MP__ORIGIN_INPLACE);
}

int mp_barrier_destroy(mp_barrier *b) {
  barrier_state *s = check(b);
  if (s == NULL)
    return MP_EINVAL; /* check left the detail */
  int rc = lock_state_now(s);
  if (rc != 0)
    return rc;
  if (inside(s) != 0) {
    unlock_state(s);
    return MP_EBUSY;
  }
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, 0,
                        memory_order_release);
  unlock_state(s);
  return 0;
}

int mp_barrier_wait(mp_barrier *b, double timeout) {
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  barrier_state *s = check(b);
  if (s == NULL)
    return MP_EINVAL; /* check left the detail */
  if (timeout == MP_BARRIER_DEFAULT_TIMEOUT)
    timeout = s->timeout > 0 ? s->timeout : MP_FOREVER;
  mp__deadline d = mp__deadline_from_timeout(timeout);
  int32_t self = member_self(s);
  int64_t last_scan = mp__os_now_ns();
  /* Timeout 0 still lets a party that holds the state lock for its few
   * instructions finish (it may have lost its core): a short grace. */
  mp__deadline first = d;
  if (d.poll) {
    first.poll = false;
    first.ns = last_scan + POLL_GRACE_NS;
  }
  int rc = lock_state(s, first);
  if (rc == MP_ETIMEDOUT && d.poll)
    rc = mp__fail(MP_EAGAIN, "another party held the barrier's state");
  if (rc != 0)
    return rc;
  if ((rc = counts_check(s)) != 0) {
    unlock_state(s);
    return rc;
  }
  int slot = slot_take(s, self);
  /* Python's _enter: wait while the previous round drains or resets. */
  while (s->state == DRAINING || s->state == RESETTING || s->state == ACTION) {
    if (mp__deadline_expired(d)) {
      break_barrier(s);
      unlock_state(s);
      return mp__deadline_error(d);
    }
    if ((rc = sleep_locked(s, d, self, &last_scan)) != 0)
      return rc;
  }
  if (s->state != FILLING) {
    unlock_state(s);
    return MP_EBROKEN;
  }
  int index = (int)inside(s);
  if (slot >= 0)
    s->nwait[slot]++;
  else
    s->untracked++;
  int result;
  if ((uint32_t)index + 1 >= s->parties) {
    bool lost = false;
    result = release_round(s, index, &lost);
    if (lost)
      return result;
  } else {
    for (;;) {
      if (s->state != FILLING && s->state != ACTION) {
        result = s->state == DRAINING ? index : MP_EBROKEN;
        break;
      }
      if (mp__deadline_expired(d)) {
        break_barrier(s);
        result = mp__deadline_error(d);
        break;
      }
      if ((rc = sleep_locked(s, d, self, &last_scan)) != 0)
        return rc;
    }
  }
  /* Python's finally: leave, and end the drain if we were the last. */
  if (slot >= 0 && s->pids[slot] == self && s->nwait[slot] > 0)
    s->nwait[slot]--;
  else if (s->untracked > 0)
    s->untracked--;
  exit_check(s);
  unlock_state(s);
  return result;
}

int mp_barrier_reset(mp_barrier *b) {
  barrier_state *s = check(b);
  if (s == NULL)
    return MP_EINVAL; /* check left the detail */
  int rc = lock_state_now(s);
  if (rc != 0)
    return rc;
  if (inside(s) > 0) {
    /* Waiters leave with MP_EBROKEN; the last one out makes it FILLING. */
    if (s->state == FILLING || s->state == ACTION || s->state == BROKEN)
      s->state = RESETTING;
  } else {
    s->state = FILLING;
  }
  bump(s);
  unlock_state(s);
  return 0;
}

int mp_barrier_abort(mp_barrier *b) {
  barrier_state *s = check(b);
  if (s == NULL)
    return MP_EINVAL; /* check left the detail */
  int rc = lock_state_now(s);
  if (rc != 0)
    return rc;
  break_barrier(s);
  unlock_state(s);
  return 0;
}

int mp_barrier_broken(mp_barrier *b) {
  barrier_state *s = check(b);
  if (s == NULL)
    return MP_EINVAL; /* check left the detail */
  int rc = lock_state_now(s);
  if (rc != 0)
    return rc;
  int broken = s->state == BROKEN;
  unlock_state(s);
  return broken;
}

int mp_barrier_n_waiting(mp_barrier *b) {
  barrier_state *s = check(b);
  if (s == NULL)
    return MP_EINVAL; /* check left the detail */
  int rc = lock_state_now(s);
  if (rc != 0)
    return rc;
  int n = s->state == FILLING ? (int)inside(s) : 0;
  if ((rc = counts_check(s)) != 0)
    n = rc;
  unlock_state(s);
  return n;
}

int mp_barrier_parties(mp_barrier *b) {
  barrier_state *s = check(b);
  if (s == NULL)
    return MP_EINVAL; /* check left the detail */
  uint32_t parties = s->parties;
  return parties == 0 || parties > INT32_MAX ? corrupt("party count", parties)
                                             : (int)parties;
}
