/* thread.c - threads after Python's threading.Thread: thread objects that
 * run a target (or an overridden run callback) in a new POSIX thread, with
 * Python's names ("Thread-N", "MainThread", "Dummy-N"), join with a
 * timeout, daemon flags inherited from the creating thread, enumerate and
 * active_count, and Python's exit rule: at normal exit the program waits
 * for its non-daemonic threads.
 *
 * DESIGN
 * One process-wide state (struct below, set up once under pthread_once)
 * holds a mutex, one condition variable on the monotonic clock, and the
 * list of live thread records: the main thread, every started thread until
 * it ends, and a "Dummy-N" record for each foreign thread (one not started
 * here) that asked for mp_current_thread.
 *
 * Invariants, all under the state mutex:
 *   - a record is on the list exactly while its state is STARTED;
 *   - a thread's last touch of its own record is in finish(), under the
 *     mutex; whoever frees the record takes the mutex first, so the free
 *     never races the ending thread;
 *   - a record freed by mp_thread_free while its thread runs is marked
 *     orphaned, and the thread frees it in finish(); unless mp_thread_start
 *     is still waiting on it (the thread may free itself before start
 *     returns), in which case start frees it.
 * Waiters (join, start waiting for the ident, the exit handler) sleep on
 * the one condition variable and re-check their own record's state: every
 * change of state broadcasts. One shared condition variable, not one per
 * record, means freeing a record never destroys a condition variable a
 * waiter may still be leaving, and a forked child re-initialises exactly
 * two objects.
 *
 * Threads are created detached: join waits on the record's state, not on
 * pthread_join, so a record can be joined with a deadline, by several
 * joiners, and freed while its thread still runs. A thread that leaves
 * through pthread_exit still ends its record: a thread-specific key whose
 * destructor calls finish().
 *
 * Fork: the prepare handler takes the state mutex so no other thread holds
 * it mid-update when fork copies memory; the child re-initialises mutex and
 * condition variable, keeps only the calling thread on the list (it becomes
 * the main thread, as in Python), marks every other record ended, and frees
 * the orphaned records of threads that do not exist in the child. */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "os/process_os.h"

/* Longest name a thread may be given, as for processes. */
#define THREAD_NAME_MAX 255

enum thread_state { STATE_NEW = 0, STATE_STARTED = 1, STATE_DONE = 2 };
enum thread_kind { KIND_USER = 0, KIND_MAIN = 1, KIND_DUMMY = 2 };

struct mp_thread {
  /* The list of live records; under the state mutex. */
  mp_thread *prev, *next;
  char *name;
  bool name_owned;      /* name was allocated (not the static "MainThread") */
  int kind;             /* enum thread_kind; fixed at creation */
  mp_thread_target_fn target;
  void *arg;
  mp_thread_run_fn run;
  void *userdata;
  /* Read by other threads without the mutex, written before start or under
   * it: atomics keep those reads well defined. */
  _Atomic int daemon;
  _Atomic int state;    /* enum thread_state */
  _Atomic pid_t ident;
  bool orphaned;        /* freed while running; under the state mutex */
  bool starting;        /* mp_thread_start still waits on it; under the
                           state mutex */
  mp_thread *retired_next; /* g.retired chain (forked children only) */
};

static struct {
  pthread_once_t once;
  pthread_mutex_t lock;
  pthread_cond_t cond; /* every change of a record's state broadcasts */
  pthread_key_t key;   /* ends a record when its thread exits */
  bool have_key;
  mp_thread list;      /* sentinel of the circular list of live records */
  mp_thread main_rec;  /* the "MainThread" record; never freed */
  mp_thread *main;     /* the main thread (another record after fork) */
  mp_thread *retired;  /* dummies of threads a fork left behind */
  _Atomic unsigned counter; /* N in "Thread-N" and "Dummy-N" */
  _Atomic bool initialised; /* init_once has run */
} g = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

/* The calling thread's record, once known. */
static __thread mp_thread *tls_self;

static void list_add(mp_thread *t) {
  t->prev = g.list.prev;
  t->next = &g.list;
  g.list.prev->next = t;
  g.list.prev = t;
}

static void list_remove(mp_thread *t) {
  if (t->next == NULL)
    return;
  t->prev->next = t->next;
  t->next->prev = t->prev;
  t->prev = t->next = NULL;
}

static void init_cond(void) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  /* Deadlines are CLOCK_MONOTONIC (mp__deadline); the wait must agree. */
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&g.cond, &attr);
  pthread_condattr_destroy(&attr);
}

static void free_record(mp_thread *t) {
  if (t->name_owned)
    mp__free(t->name);
  mp__free(t);
}

/* finish ends t's record: off the list, state DONE, joiners woken. The
 * caller is t's own thread, which must not touch t afterwards unless it
 * was orphaned, in which case finish frees it. */
static void finish(mp_thread *t) {
  tls_self = NULL;
  pthread_mutex_lock(&g.lock);
  list_remove(t);
  atomic_store(&t->state, STATE_DONE);
  bool free_it = t->orphaned && !t->starting;
  pthread_cond_broadcast(&g.cond);
  pthread_mutex_unlock(&g.lock);
  if (free_it)
    free_record(t);
}

/* key_destructor runs when a thread whose key value is still set exits:
 * a started thread leaving through pthread_exit, or a foreign thread with
 * a dummy record. */
static void key_destructor(void *value) {
  mp_thread *t = value;
  if (t->kind == KIND_USER) {
    finish(t);
    return;
  }
  /* A dummy: its thread is gone, and the record belongs to the library. */
  tls_self = NULL;
  pthread_mutex_lock(&g.lock);
  list_remove(t);
  atomic_store(&t->state, STATE_DONE);
  pthread_cond_broadcast(&g.cond);
  pthread_mutex_unlock(&g.lock);
  free_record(t);
}

static void atfork_prepare(void) { pthread_mutex_lock(&g.lock); }

static void atfork_parent(void) { pthread_mutex_unlock(&g.lock); }

/* atfork_child runs in the child's only thread. Other threads' records
 * stay valid objects (the child may still hold and join them: they report
 * ended), except orphaned ones, which nobody can reach any more. */
static void atfork_child(void) {
  /* This thread took the mutex in prepare, so it may release it; the
   * threads that waited on the condition variable do not exist here, so
   * it starts afresh rather than trusting their copied bookkeeping. The
   * mutex is released last, once the list is consistent. */
  init_cond();
  mp_thread *self = tls_self;
  if (self == NULL)
    self = &g.main_rec; /* the main thread, or a foreign thread: Python
                           gives the latter a new main-thread record */
  mp_thread *t = g.list.next;
  while (t != &g.list) {
    mp_thread *next = t->next;
    if (t != self) {
      list_remove(t);
      atomic_store(&t->state, STATE_DONE);
      if (t->kind == KIND_USER && t->orphaned) {
        free_record(t);
      } else if (t->kind == KIND_DUMMY) {
        /* Kept reachable: someone may hold the pointer. */
        t->retired_next = g.retired;
        g.retired = t;
      }
    }
    t = next;
  }
  if (self->next == NULL)
    list_add(self);
  /* A start() waiting on this thread is in the parent, not here. */
  self->starting = false;
  atomic_store(&self->state, STATE_STARTED);
  atomic_store(&self->ident, mp__os_gettid());
  g.main = self;
  tls_self = self;
  pthread_mutex_unlock(&g.lock);
}

/* mp__thread_shutdown is Python's threading._shutdown: the main thread
 * counts as ended, then the exit waits for every non-daemonic thread. */
void mp__thread_shutdown(void) {
  /* A program that never used threads here has nothing to wait for. */
  if (!atomic_load(&g.initialised))
    return;
  mp_thread *self = mp_current_thread();
  pthread_mutex_lock(&g.lock);
  if (self == g.main) {
    list_remove(self);
    atomic_store(&self->state, STATE_DONE);
    pthread_cond_broadcast(&g.cond);
  }
  for (;;) {
    mp_thread *wait_for = NULL;
    for (mp_thread *t = g.list.next; t != &g.list; t = t->next) {
      if (t != self && t->kind == KIND_USER && !atomic_load(&t->daemon)) {
        wait_for = t;
        break;
      }
    }
    if (wait_for == NULL)
      break;
    /* The record may be freed once it ends (if orphaned): re-scan the list
     * after every wake instead of looking at it again. */
    pthread_cond_wait(&g.cond, &g.lock);
  }
  pthread_mutex_unlock(&g.lock);
}

static void thread_atexit(void) { mp__thread_shutdown(); }

static void init_once(void) {
  init_cond();
  g.list.next = g.list.prev = &g.list;
  g.main_rec.name = (char *)"MainThread";
  g.main_rec.kind = KIND_MAIN;
  atomic_store(&g.main_rec.state, STATE_STARTED);
  atomic_store(&g.main_rec.ident, getpid());
  g.main = &g.main_rec;
  list_add(&g.main_rec);
  g.have_key = pthread_key_create(&g.key, key_destructor) == 0;
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  atexit(thread_atexit);
  atomic_store(&g.initialised, true);
}

static void ensure_init(void) { pthread_once(&g.once, init_once); }

static char *new_name(const char *fmt) {
  char buf[32];
  unsigned n = atomic_fetch_add(&g.counter, 1) + 1;
  snprintf(buf, sizeof buf, fmt, n);
  return mp__strdup(buf);
}

mp_thread *mp_current_thread(void) {
  ensure_init();
  if (tls_self != NULL)
    return tls_self;
  pid_t tid = mp__os_gettid();
  if (tid == getpid()) {
    tls_self = g.main;
    return tls_self;
  }
  mp_thread *d = mp__calloc(1, sizeof *d);
  if (d == NULL)
    return NULL;
  d->name = new_name("Dummy-%u");
  if (d->name == NULL) {
    mp__free(d);
    return NULL;
  }
  d->name_owned = true;
  d->kind = KIND_DUMMY;
  atomic_store(&d->daemon, 1); /* as Python's _DummyThread */
  atomic_store(&d->ident, tid);
  atomic_store(&d->state, STATE_STARTED);
  pthread_mutex_lock(&g.lock);
  list_add(d);
  pthread_mutex_unlock(&g.lock);
  if (g.have_key)
    pthread_setspecific(g.key, d);
  tls_self = d;
  return d;
}

mp_thread *mp_main_thread(void) {
  ensure_init();
  pthread_mutex_lock(&g.lock);
  mp_thread *m = g.main;
  pthread_mutex_unlock(&g.lock);
  return m;
}

int mp_thread_new(mp_thread **out, mp_thread_target_fn target, void *arg,
                  const mp_thread_opts *opts) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  static const mp_thread_opts defaults = {0};
  if (opts == NULL)
    opts = &defaults;
  if (opts->name != NULL && strlen(opts->name) > THREAD_NAME_MAX)
    return mp__fail(MP_EINVAL, "name is %zu bytes, over %d",
                    strlen(opts->name), THREAD_NAME_MAX);
  mp_thread *creator = mp_current_thread();
  mp_thread *t = mp__calloc(1, sizeof *t);
  if (t == NULL)
    return MP_ENOMEM;
  t->name = opts->name != NULL ? mp__strdup(opts->name) : new_name("Thread-%u");
  if (t->name == NULL) {
    mp__free(t);
    return MP_ENOMEM;
  }
  t->name_owned = true;
  t->kind = KIND_USER;
  t->target = target;
  t->arg = arg;
  t->run = opts->run;
  t->userdata = opts->userdata;
  int daemon;
  if (opts->daemon > 0)
    daemon = 1;
  else if (opts->daemon < 0)
    daemon = 0;
  else /* Python: the creating thread's flag (a foreign thread's is 1). */
    daemon = creator != NULL ? atomic_load(&creator->daemon) : 1;
  atomic_store(&t->daemon, daemon);
  *out = t;
  return 0;
}

static void *trampoline(void *p) {
  mp_thread *t = p;
  tls_self = t;
  if (g.have_key)
    pthread_setspecific(g.key, t);
  pthread_mutex_lock(&g.lock);
  atomic_store(&t->ident, mp__os_gettid());
  pthread_cond_broadcast(&g.cond);
  pthread_mutex_unlock(&g.lock);
  mp_thread_run(t);
  /* A normal return ends the record here; the key only covers
   * pthread_exit. */
  if (g.have_key)
    pthread_setspecific(g.key, NULL);
  finish(t);
  return NULL;
}

int mp_thread_start(mp_thread *t) {
  if (t == NULL)
    return mp__fail(MP_EINVAL, "t is NULL");
  ensure_init();
  pthread_mutex_lock(&g.lock);
  if (t->kind != KIND_USER || atomic_load(&t->state) != STATE_NEW) {
    pthread_mutex_unlock(&g.lock);
    return MP_ESTATE;
  }
  /* On the list before the thread exists: from here on is_alive is true,
   * and the exit handler knows to wait for it. */
  atomic_store(&t->state, STATE_STARTED);
  t->starting = true;
  list_add(t);
  pthread_mutex_unlock(&g.lock);

  pthread_attr_t attr;
  int err = pthread_attr_init(&attr);
  if (err == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t handle;
    err = pthread_create(&handle, &attr, trampoline, t);
    pthread_attr_destroy(&attr);
  }
  pthread_mutex_lock(&g.lock);
  if (err != 0) {
    t->starting = false;
    list_remove(t);
    atomic_store(&t->state, STATE_NEW);
    pthread_mutex_unlock(&g.lock);
    return -err;
  }
  /* As Python's start(): return once the thread runs, so ident is known.
   * The record cannot go away meanwhile: `starting` pins it. */
  while (atomic_load(&t->ident) == 0)
    pthread_cond_wait(&g.cond, &g.lock);
  t->starting = false;
  /* The thread may have ended and freed its own object already: finish()
   * left the free to us. */
  bool free_it = atomic_load(&t->state) == STATE_DONE && t->orphaned;
  pthread_mutex_unlock(&g.lock);
  if (free_it)
    free_record(t);
  return 0;
}

void mp_thread_run(mp_thread *t) {
  if (t == NULL)
    return;
  if (t->run != NULL)
    t->run(t);
  else if (t->target != NULL)
    t->target(t->arg);
}

int mp_thread_join(mp_thread *t, double timeout) {
  int trc = mp__timeout_check(timeout);
  if (trc != 0)
    return trc;
  if (t == NULL)
    return mp__fail(MP_EINVAL, "t is NULL");
  if (t->kind == KIND_DUMMY)
    return mp__fail(MP_EINVAL, "the thread is a dummy (a thread the library "
                               "did not start)");
  mp__deadline d = mp__deadline_from_timeout(timeout);
  ensure_init();
  if (t == mp_current_thread())
    return MP_EDEADLK;
  pthread_mutex_lock(&g.lock);
  int rc = 0;
  if (atomic_load(&t->state) == STATE_NEW) {
    rc = MP_ESTATE;
  } else {
    struct timespec ts = {.tv_sec = d.ns / 1000000000,
                          .tv_nsec = d.ns % 1000000000};
    while (atomic_load(&t->state) != STATE_DONE) {
      if (mp__deadline_forever(d)) {
        pthread_cond_wait(&g.cond, &g.lock);
      } else if (d.poll || pthread_cond_timedwait(&g.cond, &g.lock, &ts) ==
                               ETIMEDOUT) {
        /* A last look: the thread may have ended just as time ran out. */
        if (atomic_load(&t->state) != STATE_DONE)
          rc = MP_ETIMEDOUT;
        break;
      }
    }
  }
  pthread_mutex_unlock(&g.lock);
  return rc;
}

int mp_thread_is_alive(mp_thread *t) {
  if (t == NULL)
    return mp__fail(MP_EINVAL, "t is NULL");
  return atomic_load(&t->state) == STATE_STARTED;
}

void mp_thread_free(mp_thread *t) {
  if (t == NULL || t->kind != KIND_USER)
    return;
  ensure_init();
  pthread_mutex_lock(&g.lock);
  if (atomic_load(&t->state) == STATE_STARTED) {
    /* Still running: the thread frees its record when it ends. */
    t->orphaned = true;
    pthread_mutex_unlock(&g.lock);
    return;
  }
  pthread_mutex_unlock(&g.lock);
  free_record(t);
}

const char *mp_thread_name(const mp_thread *t) {
  return t != NULL ? t->name : NULL;
}

int mp_thread_set_name(mp_thread *t, const char *name) {
  if (t == NULL || name == NULL || strlen(name) > THREAD_NAME_MAX)
    return mp__fail(MP_EINVAL, "t or name is NULL, or name is too long");
  char *copy = mp__strdup(name);
  if (copy == NULL)
    return MP_ENOMEM;
  if (t->name_owned)
    mp__free(t->name);
  t->name = copy;
  t->name_owned = true;
  return 0;
}

int mp_thread_daemon(const mp_thread *t) {
  if (t == NULL)
    return mp__fail(MP_EINVAL, "t is NULL");
  return atomic_load(&t->daemon) ? 1 : 0;
}

int mp_thread_set_daemon(mp_thread *t, int daemon) {
  if (t == NULL)
    return mp__fail(MP_EINVAL, "t is NULL");
  if (t->kind != KIND_USER || atomic_load(&t->state) != STATE_NEW)
    return MP_ESTATE;
  atomic_store(&t->daemon, daemon != 0);
  return 0;
}

pid_t mp_thread_ident(const mp_thread *t) {
  return t != NULL ? atomic_load(&t->ident) : 0;
}

void *mp_thread_userdata(const mp_thread *t) {
  return t != NULL ? t->userdata : NULL;
}

ssize_t mp_thread_enumerate(mp_thread **out, size_t cap) {
  if (out == NULL && cap > 0)
    return mp__fail(MP_EINVAL, "out is NULL with cap > 0");
  ensure_init();
  pthread_mutex_lock(&g.lock);
  size_t n = 0;
  for (mp_thread *t = g.list.next; t != &g.list; t = t->next) {
    if (n < cap)
      out[n] = t;
    n++;
  }
  pthread_mutex_unlock(&g.lock);
  return (ssize_t)n;
}

int mp_thread_active_count(void) {
  return (int)mp_thread_enumerate(NULL, 0);
}

/* ---- time.sleep, time.monotonic ---------------------------------------- */

int mp_sleep(double seconds) {
  if (isnan(seconds) || seconds < 0)
    return mp__fail(MP_EINVAL, "seconds is %s", isnan(seconds) ? "NaN"
                                                               : "negative");
  mp__deadline d = mp__deadline_from_timeout(seconds);
  if (mp__deadline_forever(d))
    return mp__fail(MP_EINVAL, "seconds is too large");
  while (!mp__deadline_expired(d))
    mp__os_sleep_until(d.ns);
  return 0;
}

double mp_monotonic(void) { return (double)mp__os_now_ns() / 1e9; }
