/* condition.c - Condition: a condition variable with its lock, between
 * threads and processes, that no dead process can leave hanging.
 *
 * DESIGN
 * Shared state:
 *
 *   mp__object_head head
 *   uint32 kind        OWN (the embedded RLock), LENT_LOCK or LENT_RLOCK
 *   uint32 seq         notify generation; the futex word waiters sleep on
 *   uint32 waiting     waiters not yet released; changed under the lock
 *   uint32 tokens      releases not yet taken; atomic
 *   int64 lock_offset  where a lent lock is, relative to this struct
 *   uint64 lender      mp__image_token() of the creator, for a lent lock
 *   mp_rlock own       the Condition's own RLock
 *
 * A lent lock is found by an offset from the condition, never a pointer, so
 * the struct means the same at any address: within one mapping (both in the
 * caller's shared struct) or across fork (the same addresses in the child).
 * Only a condition in place or in its creator's program image follows the
 * offset; the own lock is found without it.
 *
 * wait: under the lock, waiting++ and note seq; release every level of the
 * lock; then loop: if seq moved since we came in, try to take a token
 * (compare-and-swap tokens > 0 to tokens - 1): that is our notification.
 * Otherwise sleep on seq until it moves, the deadline passes, or a slice of
 * MP__SYNC_SLICE_NS ends. Then take the lock back at its old depth.
 * notify(n), under the lock: r = min(n, waiting); tokens += r;
 * waiting -= r; seq++; wake r sleepers.
 *
 * Invariant, under the lock: the waiters inside wait number waiting +
 * tokens. A waiter leaves by taking a token, or (timed out, or its lock's
 * holder died) under the lock by taking a token if one is there for it
 * ("notified just as it timed out": that is success) or else waiting--.
 *
 * Why a waiter must see seq move before it takes a token: tokens are for
 * the waiters present at the notify. One that came in after it (and reads
 * the seq that notify left) may not take them, or a notify_all could leave
 * one of the waiters it was meant for asleep. Every notify that finds a
 * waiter moves seq, so all waiters present at a notify may take its
 * tokens, and any one of them may take any of them. Which ones wake is
 * unspecified (sync.h); when tokens of two notifies are outstanding at
 * once, a waiter that came between them may take one meant for an older
 * waiter, which stays counted in waiting and is released by the next
 * notify, as if it had come later.
 *
 * No lost wake-up: a sleeper reads seq, then looks for tokens, then sleeps
 * only while seq still has the value it read; notify adds tokens before it
 * moves seq. The wake is sent to r sleepers, all of them entitled (new
 * waiters need the lock, which the notifier holds).
 *
 * A dead holder. A waiter does not hold the lock, so no acquire tells it
 * that a holder died; it looks every slice instead: if the lock's
 * owner-died epoch moved since it came in (someone acquired it and was told
 * MP_EOWNERDEAD) or the lock is held by a dead thread right now, it stops
 * waiting, takes the lock (MP_EOWNERDEAD) and returns MP_EOWNERDEAD
 * (G-COND-1). Nobody is left behind: every waiter notices the same way.
 *
 * A crash, at each step. A waiter killed inside wait (lock released) leaves
 * one unit too many in waiting + tokens: some later notify issues a token
 * nobody was waiting for, and another waiter takes it: one spurious
 * wake-up, never a hang. notify adds tokens before it takes them from
 * waiting, so a notifier killed in between leaves one unit too many, not
 * too few; a notifier holds the lock, so its waiters also see it die.
 * Counts never go below zero: leaving waiters clamp at 0. */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "sync_internal.h"

enum { KIND_OWN = 0, KIND_LENT_LOCK = 1, KIND_LENT_RLOCK = 2 };

typedef struct condition_state {
  mp__object_head head;
  uint32_t kind;
  _Atomic uint32_t seq;
  uint32_t waiting;
  _Atomic uint32_t tokens;
  int64_t lock_offset;
  uint64_t lender;
  mp_rlock own;
} condition_state;

_Static_assert(sizeof(condition_state) <= MP_CONDITION_SIZE,
               "Condition fits mp_condition");

/* Lent locks and untrusted offsets. The offset is read from memory other
 * processes may write (a named condition's segment, the caller's shared
 * struct): a scribbled one must not send us to an address of its choice.
 * So a lent lock is followed only if
 *   - this process (or the one it was forked from) made the condition
 *     with that very lock: the pairs are kept in process-local memory
 *     (lent_known), never in the shared state; or else
 *   - for a condition in place used by a process that mapped it on its
 *     own, the lock lies in the same mapping as the condition (it must:
 *     that process cannot see the creator's other memory).
 * Anything else makes the call fail with MP_EINVAL. Checked pairs are
 * remembered per thread, keyed by the condition and the offset (the lock
 * is always the condition plus the offset, so a cached answer stays true).
 * Without /proc the mapping cannot be checked, and a condition that is not
 * one of ours is then refused as well. */
#define LENT_CACHE 4
#define LENT_KNOWN_MAX 1024
static _Thread_local struct {
  const void *cond;
  int64_t off;
} lent_cache[LENT_CACHE];
static _Thread_local unsigned lent_next;

static pthread_mutex_t lent_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  const void *cond, *lock;
} lent_known[LENT_KNOWN_MAX];
static size_t lent_n, lent_oldest;

static void lent_remember(const void *cond, const void *lock) {
  pthread_mutex_lock(&lent_lock);
  size_t i;
  for (i = 0; i < lent_n; i++)
    if (lent_known[i].cond == cond)
      break;
  if (i == lent_n) {
    if (lent_n < LENT_KNOWN_MAX)
      lent_n++;
    else
      i = lent_oldest++ % LENT_KNOWN_MAX;
  }
  lent_known[i].cond = cond;
  lent_known[i].lock = lock;
  pthread_mutex_unlock(&lent_lock);
}

static bool lent_is_known(const void *cond, const void *lock) {
  pthread_mutex_lock(&lent_lock);
  bool yes = false;
  for (size_t i = 0; i < lent_n && !yes; i++)
    yes = lent_known[i].cond == cond && lent_known[i].lock == lock;
  pthread_mutex_unlock(&lent_lock);
  return yes;
}

static bool lent_lock_ok(const condition_state *s, int64_t off,
                         const void *lock, size_t size) {
  for (int i = 0; i < LENT_CACHE; i++)
    if (lent_cache[i].cond == s && lent_cache[i].off == off)
      return true;
  bool ok = lent_is_known(s, lock);
  if (!ok && s->head.origin == MP__ORIGIN_INPLACE)
    ok = mp__os_same_mapping(s, lock, size) == 1;
  if (ok) {
    lent_cache[lent_next % LENT_CACHE].cond = s;
    lent_cache[lent_next % LENT_CACHE].off = off;
    lent_next++;
  }
  return ok;
}

/* lock_of returns the condition's lock, or NULL when it is not usable here
 * (destroyed, lent by another program image, or an offset that leads out
 * of the condition's mapping). */
static mp__object_head *lock_of(condition_state *s) {
  mp__object_head *lock;
  uint16_t type = MP__TYPE_RLOCK;
  if (s->kind == KIND_OWN) {
    /* Found without reading the offset: a segment that another program
     * can write never sends us to an address it chose. */
    lock = (mp__object_head *)&s->own;
  } else if (s->kind == KIND_LENT_LOCK || s->kind == KIND_LENT_RLOCK) {
    if (s->head.origin != MP__ORIGIN_INPLACE &&
        s->lender != mp__image_token()) {
      mp__fail(MP_EINVAL, "the condition's lent lock lives in another "
                          "program's memory");
      return NULL;
    }
    /* Read once: what is checked is what is followed. */
    int64_t off = atomic_load_explicit((_Atomic int64_t *)&s->lock_offset,
                                       memory_order_relaxed);
    lock = (mp__object_head *)((char *)s + (ptrdiff_t)off);
    if (s->kind == KIND_LENT_LOCK)
      type = MP__TYPE_LOCK;
    if (!lent_lock_ok(s, off, lock,
                      type == MP__TYPE_LOCK ? MP_LOCK_SIZE : MP_RLOCK_SIZE)) {
      mp__fail(MP_EINVAL, "the condition's lent lock is not where its "
                          "offset says (the shared bytes were overwritten)");
      return NULL;
    }
  } else {
    mp__fail(MP_EINVAL, "the condition's lock kind is malformed (the shared "
                        "bytes were overwritten)");
    return NULL;
  }
  if (mp__object_check(lock, type) != 0) {
    mp__fail(MP_EINVAL, "the condition's lock was destroyed or freed");
    return NULL;
  }
  return lock;
}

static condition_state *check(mp_condition *cond) {
  if (mp__object_check(cond, MP__TYPE_CONDITION) != 0)
    return NULL;
  return (condition_state *)cond;
}

static int state_init(condition_state *s, const mp_condition_opts *opts,
                      uint8_t origin) {
  memset((char *)s + sizeof s->head, 0, sizeof *s - sizeof s->head);
  s->head.type = MP__TYPE_CONDITION;
  s->head.version = MP__LAYOUT_VERSION;
  s->head.origin = origin;
  const void *lent = NULL;
  if (opts != NULL && opts->lock != NULL) {
    s->kind = KIND_LENT_LOCK;
    lent = opts->lock;
  } else if (opts != NULL && opts->rlock != NULL) {
    s->kind = KIND_LENT_RLOCK;
    lent = opts->rlock;
  }
  if (lent != NULL) {
    s->lock_offset = (int64_t)((const char *)lent - (const char *)s);
    s->lender = mp__image_token();
    lent_remember(s, lent);
  } else {
    int rc = mp_rlock_init(&s->own);
    if (rc != 0)
      return rc;
    s->lock_offset = (int64_t)offsetof(condition_state, own);
  }
  atomic_init(&s->seq, 0);
  atomic_init(&s->tokens, 0);
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, MP__OBJECT_MAGIC,
                        memory_order_release);
  return 0;
}

static int check_opts(const mp_condition_opts *opts) {
  if (opts == NULL)
    return 0;
  if (opts->lock != NULL && opts->rlock != NULL)
    return mp__fail(MP_EINVAL, "opts gives both a lock and an rlock");
  if (opts->lock != NULL && mp__object_check(opts->lock, MP__TYPE_LOCK) != 0)
    return mp__fail(MP_EINVAL, "opts.lock is not an initialised Lock");
  if (opts->rlock != NULL && mp__object_check(opts->rlock, MP__TYPE_RLOCK) != 0)
    return mp__fail(MP_EINVAL, "opts.rlock is not an initialised RLock");
  return 0;
}

int mp_condition_new(mp_condition **out, const mp_condition_opts *opts) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  int rc = check_opts(opts);
  if (rc != 0)
    return rc;
  void *obj;
  rc = mp__object_new(&obj, sizeof(mp_condition), MP__TYPE_CONDITION,
                      opts ? opts->name : NULL);
  if (rc != 0)
    return rc;
  condition_state *s = obj;
  if ((rc = state_init(s, opts, s->head.origin)) != 0) {
    mp__object_free(obj, sizeof(mp_condition));
    return rc;
  }
  *out = obj;
  return 0;
}

int mp_condition_open(mp_condition **out, const char *name) {
  void *obj;
  int rc =
      mp__object_open(&obj, sizeof(mp_condition), MP__TYPE_CONDITION, name);
  if (rc != 0)
    return rc;
  condition_state *s = obj;
  /* A lent lock lives in the creator's memory, out of this mapping. */
  if (s->kind != KIND_OWN) {
    mp__object_free(obj, sizeof(mp_condition));
    return mp__fail(MP_EINVAL, "the condition uses a lent lock, which lives "
                               "in its creator's memory: it cannot be opened "
                               "by name");
  }
  *out = obj;
  return 0;
}

void mp_condition_free(mp_condition *cond) {
  if (cond == NULL || ((mp__object_head *)cond)->type != MP__TYPE_CONDITION)
    return;
  condition_state *s = (condition_state *)cond;
  /* As mp_rlock_free: never unmap a lock this thread holds. */
  if (s->head.origin != MP__ORIGIN_INPLACE && s->kind == KIND_OWN &&
      mp__object_check(&s->own, MP__TYPE_RLOCK) == 0) {
    while (mp_rlock_depth(&s->own) > 0)
      mp_rlock_release(&s->own);
  }
  mp__object_free(cond, sizeof(mp_condition));
}

int mp_condition_init(mp_condition *cond, const mp_condition_opts *opts) {
  if (cond == NULL)
    return mp__fail(MP_EINVAL, "cond is NULL");
  if ((uintptr_t)cond % MP_SYNC_ALIGN != 0)
    return mp__fail(MP_EINVAL, "cond is not aligned to MP_SYNC_ALIGN");
  int rc = check_opts(opts);
  if (rc != 0)
    return rc;
  memset(cond, 0, sizeof(mp__object_head));
  return state_init((condition_state *)cond, opts, MP__ORIGIN_INPLACE);
}

int mp_condition_destroy(mp_condition *cond) {
  condition_state *s = check(cond);
  if (s == NULL)
    return MP_EINVAL;
  if (s->waiting != 0 || atomic_load(&s->tokens) != 0)
    return MP_EBUSY;
  if (s->kind == KIND_OWN) {
    int rc = mp_rlock_destroy(&s->own);
    if (rc != 0)
      return rc;
  }
  atomic_store_explicit((_Atomic uint32_t *)&s->head.magic, 0,
                        memory_order_release);
  return 0;
}

int mp_condition_acquire(mp_condition *cond, double timeout) {
  condition_state *s = check(cond);
  mp__object_head *lock = s ? lock_of(s) : NULL;
  if (lock == NULL)
    return MP_EINVAL;
  if (lock->type == MP__TYPE_LOCK)
    return mp_lock_acquire((mp_lock *)lock, timeout);
  return mp_rlock_acquire((mp_rlock *)lock, timeout);
}

int mp_condition_release(mp_condition *cond) {
  condition_state *s = check(cond);
  mp__object_head *lock = s ? lock_of(s) : NULL;
  if (lock == NULL)
    return MP_EINVAL;
  if (lock->type == MP__TYPE_LOCK)
    return mp_lock_release((mp_lock *)lock);
  return mp_rlock_release((mp_rlock *)lock);
}

/* take_token takes one release if any is left. */
static bool take_token(condition_state *s) {
  uint32_t t = atomic_load(&s->tokens);
  while (t > 0) {
    if (atomic_compare_exchange_weak(&s->tokens, &t, t - 1))
      return true;
  }
  return false;
}

/* wait_until is mp_condition_wait against deadline d. */
static int wait_until(condition_state *s, mp__object_head *lock,
                      mp__deadline d) {
  if (!mp__lock_held_by_caller(lock))
    return MP_EPERM;
  /* Under the lock: count ourselves in, and note the generation and the
   * lock's death count we came in with. */
  s->waiting++;
  uint32_t entered = atomic_load(&s->seq);
  uint32_t epoch = mp__lock_died_epoch(lock);
  unsigned depth;
  int rc = mp__lock_release_save(lock, &depth);
  if (rc != 0) {
    s->waiting--;
    return rc;
  }
  bool notified = false, died = false;
  for (;;) {
    /* seq before tokens: a notify that adds tokens after we looked moves
     * seq, and the futex call then returns at once. */
    uint32_t seen = atomic_load(&s->seq);
    if (seen != entered && take_token(s)) {
      notified = true;
      break;
    }
    if (mp__lock_died_epoch(lock) != epoch || mp__lock_owner_died(lock)) {
      died = true;
      break;
    }
    if (mp__deadline_expired(d))
      break;
    mp__deadline slice = mp__deadline_min_slice(d, MP__SYNC_SLICE_NS);
    mp__os_futex_wait((uint32_t *)&s->seq, seen, slice.ns, true);
  }
  int relock = mp__lock_acquire_restore(lock, depth);
  if (!notified) {
    /* Under the lock again. A notify may have released us after our last
     * look: then the token is ours, and we report it. */
    if (atomic_load(&s->seq) != entered && take_token(s))
      notified = true;
    else if (s->waiting > 0)
      s->waiting--;
  }
  if (relock == MP_EOWNERDEAD || died || mp__lock_died_epoch(lock) != epoch)
    return MP_EOWNERDEAD;
  if (relock != 0)
    return relock;
  return notified ? 0 : mp__deadline_error(d);
}

int mp_condition_wait(mp_condition *cond, double timeout) {
  condition_state *s = check(cond);
  mp__object_head *lock = s ? lock_of(s) : NULL;
  if (lock == NULL)
    return MP_EINVAL;
  int rc = mp__timeout_check(timeout);
  if (rc != 0)
    return rc;
  return wait_until(s, lock, mp__deadline_from_timeout(timeout));
}

int mp_condition_wait_for(mp_condition *cond, mp_condition_predicate_fn pred,
                          void *arg, double timeout) {
  condition_state *s = check(cond);
  mp__object_head *lock = s ? lock_of(s) : NULL;
  if (lock == NULL)
    return MP_EINVAL;
  if (pred == NULL)
    return mp__fail(MP_EINVAL, "pred is NULL");
  if (!mp__lock_held_by_caller(lock))
    return MP_EPERM;
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  mp__deadline d = mp__deadline_from_timeout(timeout);
  while (!pred(arg)) {
    int rc = wait_until(s, lock, d);
    if (rc == MP_ETIMEDOUT || rc == MP_EAGAIN)
      /* As Python: the predicate has the last word. */
      return pred(arg) ? 0 : rc;
    if (rc != 0)
      return rc;
  }
  return 0;
}

int mp_condition_notify(mp_condition *cond, unsigned n) {
  condition_state *s = check(cond);
  mp__object_head *lock = s ? lock_of(s) : NULL;
  if (lock == NULL)
    return MP_EINVAL;
  if (!mp__lock_held_by_caller(lock))
    return MP_EPERM;
  uint32_t r = MP__MIN(n, s->waiting);
  if (r == 0)
    return 0;
  /* tokens first, then waiting: dying in between leaves one too many (a
   * spurious wake-up later), never one too few (a lost one). */
  atomic_fetch_add(&s->tokens, r);
  s->waiting -= r;
  atomic_fetch_add(&s->seq, 1);
  mp__os_futex_wake((uint32_t *)&s->seq, (int)MP__MIN(r, (uint32_t)INT32_MAX),
                    true);
  return 0;
}

int mp_condition_notify_all(mp_condition *cond) {
  return mp_condition_notify(cond, UINT32_MAX);
}
