/* test_alloc_fail.c - allocation-failure injection along every public
 * call's path, as SQLite's malloc tests do: for N = 1, 2, ... the Nth
 * allocation from the call on fails (mp__alloc_fail_after), until the call
 * goes through without meeting the failure. Every run that fails must
 * return MP_ENOMEM, leave a constructor's *out untouched and leave nothing
 * behind (the harness checks descriptors, children and /dev/shm names;
 * the ASan build checks memory); and the call made after the failures
 * must work. An allocation a call makes on a best-effort path may fail
 * without failing the call: the loop goes on until several runs in a row
 * have succeeded, so allocations after such a path are reached too.
 *
 * Allocations made by other threads of the library meanwhile (a pool's
 * result thread, a worker) count too: their failure paths are exercised
 * as well, and the call must still return MP_ENOMEM or succeed. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

/* Runs past the last allocation a call makes: so many successes in a row
 * end the loop. */
#define OK_STREAK 6
#define N_MAX 2000

static void *const UNTOUCHED = (void *)0x5a5a;

typedef struct oom_case {
  const char *what;
  /* The call under test: returns its code, stores what it made in *out. */
  int (*make)(void *ctx, void **out);
  /* Checks that what make returned works, then frees it. */
  void (*use_and_free)(void *ctx, void *obj);
  void *ctx;
  /* The constructor sets *out to NULL when it fails instead of leaving it
   * untouched: process.c and pool.c do (not this branch's files; the
   * convention says untouched). Accepted, and only for these. */
  bool nulls_out;
  /* A second code a failing run may return: a pool whose worker (a forked
   * child inheriting the countdown, or a worker thread) meets the failure
   * reports MP_EWORKERDIED from mp_pool_new (see the report of the fuzz
   * branch); 0 for none. */
  int also_ok;
} oom_case;

/* oom_loop runs c->make with the Nth allocation failing, for every N until
 * OK_STREAK runs in a row succeed. Returns how many runs failed. */
static int oom_loop(const oom_case *c) {
  int failures = 0, streak = 0;
  for (long n = 1; n < N_MAX && streak < OK_STREAK; n++) {
    void *obj = UNTOUCHED;
    mp__alloc_fail_after(n);
    int rc = c->make(c->ctx, &obj);
    mp__alloc_fail_after(0);
    if (rc == 0) {
      streak++;
      if (obj == UNTOUCHED)
        fail_msg("%s: succeeded at N=%ld without storing its result", c->what,
                 n);
      c->use_and_free(c->ctx, obj);
      continue;
    }
    streak = 0;
    failures++;
    if (rc != MP_ENOMEM && !(c->also_ok != 0 && rc == c->also_ok))
      fail_msg("%s: allocation %ld failed and it returned %s (%s), not "
               "MP_ENOMEM",
               c->what, n, mp_err_name(rc), mp_error_detail());
    if (obj != UNTOUCHED && !(c->nulls_out && obj == NULL))
      fail_msg("%s: failed at N=%ld and changed *out", c->what, n);
  }
  if (streak < OK_STREAK)
    fail_msg("%s: still failing after %d injected failures", c->what, N_MAX);
  return failures;
}

static void expect_failures(const oom_case *c) {
  int f = oom_loop(c);
  if (f < 1)
    fail_msg("%s: no allocation on its path failed the call", c->what);
}

/* ---- sync objects ---------------------------------------------------------- */
typedef struct sync_ctx {
  int kind; /* 0 lock, 1 rlock, 2 semaphore, 3 event, 4 condition, 5 barrier */
  const char *name;
  bool open; /* the call under test is mp_X_open (the object exists) */
  void *made; /* the existing object, for open */
} sync_ctx;

static int sync_make(void *vctx, void **out) {
  sync_ctx *c = vctx;
  mp_sync_opts so = {.name = c->name};
  mp_condition_opts co = {.name = c->name};
  mp_barrier_opts bo = {.name = c->name};
  if (c->open) {
    switch (c->kind) {
    case 0: return mp_lock_open((mp_lock **)out, c->name);
    case 1: return mp_rlock_open((mp_rlock **)out, c->name);
    case 2: return mp_semaphore_open((mp_semaphore **)out, c->name);
    case 3: return mp_event_open((mp_event **)out, c->name);
    case 4: return mp_condition_open((mp_condition **)out, c->name);
    default: return mp_barrier_open((mp_barrier **)out, c->name);
    }
  }
  switch (c->kind) {
  case 0: return mp_lock_new((mp_lock **)out, &so);
  case 1: return mp_rlock_new((mp_rlock **)out, &so);
  case 2: return mp_bounded_semaphore_new((mp_semaphore **)out, 1, &so);
  case 3: return mp_event_new((mp_event **)out, &so);
  case 4: return mp_condition_new((mp_condition **)out, &co);
  default: return mp_barrier_new((mp_barrier **)out, 1, &bo);
  }
}

static void sync_use_and_free(void *vctx, void *o) {
  sync_ctx *c = vctx;
  switch (c->kind) {
  case 0:
    assert_rc(mp_lock_acquire(o, 0), 0);
    assert_rc(mp_lock_release(o), 0);
    mp_lock_free(o);
    break;
  case 1:
    assert_rc(mp_rlock_acquire(o, 0), 0);
    assert_rc(mp_rlock_acquire(o, 0), 0);
    assert_rc(mp_rlock_release(o), 0);
    assert_rc(mp_rlock_release(o), 0);
    mp_rlock_free(o);
    break;
  case 2:
    assert_rc(mp_semaphore_acquire(o, 0), 0);
    assert_rc(mp_semaphore_release(o), 0);
    mp_semaphore_free(o);
    break;
  case 3:
    assert_rc(mp_event_set(o), 0);
    assert_rc(mp_event_wait(o, 0), 0);
    assert_rc(mp_event_clear(o), 0);
    mp_event_free(o);
    break;
  case 4:
    assert_rc(mp_condition_acquire(o, 0), 0);
    assert_rc(mp_condition_notify_all(o), 0);
    assert_rc(mp_condition_release(o), 0);
    mp_condition_free(o);
    break;
  default:
    assert_int_equal(mp_barrier_wait(o, 1.0), 0);
    mp_barrier_free(o);
  }
}

static void sync_free(int kind, void *o) {
  switch (kind) {
  case 0: mp_lock_free(o); break;
  case 1: mp_rlock_free(o); break;
  case 2: mp_semaphore_free(o); break;
  case 3: mp_event_free(o); break;
  case 4: mp_condition_free(o); break;
  default: mp_barrier_free(o);
  }
}

static const char *kind_names[] = {"lock", "rlock", "semaphore",
                                   "event", "condition", "barrier"};

static void sync_objects(void **state) {
  (void)state;
  char name[64], what[80];
  for (int kind = 0; kind < 6; kind++) {
    /* Anonymous, then named, then opened by name. */
    sync_ctx c = {.kind = kind};
    snprintf(what, sizeof what, "mp_%s_new (anonymous)", kind_names[kind]);
    oom_case oc = {what, sync_make, sync_use_and_free, &c, false, 0};
    oom_loop(&oc);

    mp_test_name(name, sizeof name, kind_names[kind]);
    c.name = name;
    snprintf(what, sizeof what, "mp_%s_new (named)", kind_names[kind]);
    expect_failures(&oc);

    void *made = NULL;
    assert_rc(sync_make(&c, &made), 0);
    c.open = true;
    snprintf(what, sizeof what, "mp_%s_open", kind_names[kind]);
    expect_failures(&oc);
    sync_free(kind, made);
  }
}

/* ---- queues ---------------------------------------------------------------- */
typedef struct queue_ctx {
  mp_queue_opts opts;
  bool open;
  mp_queue *q; /* for calls on an existing queue */
  int call;    /* 0 new/open, 1 large put, 2 get_msg, 3 attach */
  void *mem;
  size_t mem_size;
} queue_ctx;

static unsigned char big[100000];

static int queue_make(void *vctx, void **out) {
  queue_ctx *c = vctx;
  switch (c->call) {
  case 0:
    return c->open ? mp_queue_open((mp_queue **)out, c->opts.name)
                   : mp_queue_new((mp_queue **)out, &c->opts);
  case 1: {
    /* A large message: its own segment. The queue is the result. */
    int rc = mp_queue_put(c->q, big, sizeof big, 5.0);
    if (rc == 0)
      *out = c->q;
    return rc;
  }
  case 2: {
    mp_queue_msg *m = malloc(sizeof *m);
    memset(m, 0, sizeof *m);
    int rc = mp_queue_get_msg(c->q, m, 5.0);
    if (rc == 0) {
      *out = m;
    } else {
      free(m);
    }
    return rc;
  }
  default:
    return mp_queue_attach((mp_queue **)out, c->mem, c->mem_size);
  }
}

static void queue_roundtrip(mp_queue *q) {
  char buf[16];
  size_t len = 0;
  assert_rc(mp_queue_put(q, "ping", 4, 5.0), 0);
  assert_rc(mp_queue_get(q, buf, sizeof buf, &len, 5.0), 0);
  assert_int_equal(len, 4);
  assert_memory_equal(buf, "ping", 4);
}

static void queue_use_and_free(void *vctx, void *o) {
  queue_ctx *c = vctx;
  switch (c->call) {
  case 0:
  case 3:
    queue_roundtrip(o);
    mp_queue_free(o);
    break;
  case 1: {
    /* Take the large message back: it is whole. */
    size_t len = 0;
    static unsigned char back[sizeof big];
    assert_rc(mp_queue_get(c->q, back, sizeof back, &len, 5.0), 0);
    assert_int_equal(len, sizeof big);
    assert_memory_equal(back, big, sizeof big);
    break;
  }
  default: {
    mp_queue_msg *m = o;
    assert_int_equal(m->len, sizeof big);
    assert_memory_equal(m->data, big, sizeof big);
    mp_queue_msg_release(m);
    free(m);
    /* The next run takes a message again. */
    assert_rc(mp_queue_put(c->q, big, sizeof big, 5.0), 0);
  }
  }
}

static void queues(void **state) {
  (void)state;
  char name[64], what[96];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (unsigned char)(i * 7);
  for (int order = 0; order < 3; order++) {
    queue_ctx c = {.opts = {.order = (mp_queue_order)order,
                            .joinable = order == 0}};
    oom_case oc = {what, queue_make, queue_use_and_free, &c, false, 0};
    snprintf(what, sizeof what, "mp_queue_new (order %d, anonymous)", order);
    expect_failures(&oc);

    mp_test_name(name, sizeof name, "q");
    c.opts.name = name;
    snprintf(what, sizeof what, "mp_queue_new (order %d, named)", order);
    expect_failures(&oc);

    mp_queue *made;
    assert_rc(mp_queue_new(&made, &c.opts), 0);
    c.open = true;
    snprintf(what, sizeof what, "mp_queue_open (order %d)", order);
    expect_failures(&oc);

    c.q = made;
    c.call = 1;
    snprintf(what, sizeof what, "mp_queue_put, large (order %d)", order);
    oom_loop(&oc);
    assert_rc(mp_queue_put(made, big, sizeof big, 5.0), 0);
    c.call = 2;
    snprintf(what, sizeof what, "mp_queue_get_msg, large (order %d)", order);
    oom_loop(&oc);
    /* One large message is still queued: the last user's free removes it. */
    mp_queue_free(made);
  }

  /* In place: init, then attach. */
  mp_queue_opts o = {0};
  ssize_t size = mp_queue_size_for(&o);
  assert_true(size > 0);
  void *mem = mp_test_shared_map((size_t)size);
  mp_queue *q = UNTOUCHED;
  int failures = 0, rc;
  for (long n = 1; n < N_MAX; n++) {
    mp__alloc_fail_after(n);
    rc = mp_queue_init(&q, mem, (size_t)size, &o);
    mp__alloc_fail_after(0);
    if (rc == 0)
      break;
    assert_rc(rc, MP_ENOMEM);
    assert_ptr_equal(q, UNTOUCHED);
    failures++;
  }
  assert_rc(rc, 0);
  assert_true(failures >= 1);
  queue_ctx c = {.call = 3, .mem = mem, .mem_size = (size_t)size};
  oom_case oc = {"mp_queue_attach", queue_make, queue_use_and_free, &c, false, 0};
  expect_failures(&oc);
  queue_roundtrip(q);
  assert_rc(mp_queue_destroy(q), 0);
  munmap(mem, (size_t)size);
}

/* ---- Value and Array ----------------------------------------------------- */
typedef struct value_ctx {
  bool array, open;
  const char *name;
} value_ctx;

static int value_make(void *vctx, void **out) {
  value_ctx *c = vctx;
  mp_value_opts o = {.name = c->name};
  int64_t init[4] = {1, 2, 3, 4};
  if (c->open)
    return c->array ? mp_array_open((mp_array **)out, c->name)
                    : mp_value_open((mp_value **)out, c->name);
  return c->array ? mp_array_new((mp_array **)out, 'q', 4, init, &o)
                  : mp_value_new((mp_value **)out, 'q', init, &o);
}

static void value_use_and_free(void *vctx, void *o) {
  value_ctx *c = vctx;
  int64_t v = 0;
  if (c->array) {
    assert_rc(mp_array_get_int(o, 3, &v), 0);
    assert_int_equal(v, 4);
    mp_array_free(o);
  } else {
    assert_rc(mp_value_get_int(o, &v), 0);
    assert_int_equal(v, 1);
    assert_rc(mp_value_acquire(o, 0), 0);
    assert_rc(mp_value_release(o), 0);
    mp_value_free(o);
  }
}

static void values_and_arrays(void **state) {
  (void)state;
  char name[64], what[64];
  for (int array = 0; array < 2; array++) {
    value_ctx c = {.array = array};
    oom_case oc = {what, value_make, value_use_and_free, &c, false, 0};
    snprintf(what, sizeof what, "mp_%s_new (anonymous)", array ? "array" : "value");
    expect_failures(&oc);
    mp_test_name(name, sizeof name, array ? "arr" : "val");
    c.name = name;
    snprintf(what, sizeof what, "mp_%s_new (named)", array ? "array" : "value");
    expect_failures(&oc);
    void *made;
    assert_rc(value_make(&c, &made), 0);
    c.open = true;
    snprintf(what, sizeof what, "mp_%s_open", array ? "array" : "value");
    expect_failures(&oc);
    if (array)
      mp_array_free(made);
    else
      mp_value_free(made);
  }
}

/* ---- SharedMemory and ShareableList ------------------------------------------ */
typedef struct shm_ctx {
  bool list, open;
  const char *name;
} shm_ctx;

static int shm_make(void *vctx, void **out) {
  shm_ctx *c = vctx;
  if (c->list) {
    mp_shareable_item items[3] = {mp_shareable_int(7), mp_shareable_str("seven"),
                                  mp_shareable_none()};
    return c->open ? mp_shareable_list_open((mp_shareable_list **)out, c->name)
                   : mp_shareable_list_new((mp_shareable_list **)out, items, 3,
                                           c->name, NULL);
  }
  return c->open ? mp_shared_memory_open((mp_shared_memory **)out, c->name)
                 : mp_shared_memory_new((mp_shared_memory **)out, c->name, 100,
                                        NULL);
}

static void shm_use_and_free(void *vctx, void *o) {
  shm_ctx *c = vctx;
  if (c->list) {
    mp_shareable_item it;
    char buf[16];
    assert_rc(mp_shareable_list_get(o, 1, &it, buf, sizeof buf), 0);
    assert_int_equal(it.len, 5);
    if (!c->open)
      assert_rc(mp_shared_memory_unlink(mp_shareable_list_shm(o)), 0);
    mp_shareable_list_free(o);
    return;
  }
  ((unsigned char *)mp_shared_memory_buf(o))[99] = 1;
  if (!c->open)
    assert_rc(mp_shared_memory_unlink(o), 0);
  mp_shared_memory_free(o);
}

static void shared_memory_and_lists(void **state) {
  (void)state;
  char name[64], what[64];
  for (int list = 0; list < 2; list++) {
    mp_test_name(name, sizeof name, list ? "sl" : "shm");
    shm_ctx c = {.list = list, .name = name};
    oom_case oc = {what, shm_make, shm_use_and_free, &c, false, 0};
    snprintf(what, sizeof what, "%s new", list ? "mp_shareable_list" : "mp_shared_memory");
    expect_failures(&oc);
    void *made;
    assert_rc(shm_make(&c, &made), 0);
    c.open = true;
    snprintf(what, sizeof what, "%s open", list ? "mp_shareable_list" : "mp_shared_memory");
    expect_failures(&oc);
    c.open = false;
    if (list) {
      assert_rc(mp_shared_memory_unlink(mp_shareable_list_shm(made)), 0);
      mp_shareable_list_free(made);
    } else {
      assert_rc(mp_shared_memory_unlink(made), 0);
      mp_shared_memory_free(made);
    }
  }
}

/* ---- connections --------------------------------------------------------- */
typedef struct conn_ctx {
  int call; /* 0 pipe, 1 connection_new, 2 recv_bytes_alloc */
  mp_connection *a, *b;
} conn_ctx;

typedef struct pipe_pair {
  mp_connection *a, *b;
} pipe_pair;

static int conn_make(void *vctx, void **out) {
  conn_ctx *c = vctx;
  switch (c->call) {
  case 0: {
    pipe_pair *p = malloc(sizeof *p);
    p->a = p->b = UNTOUCHED;
    int rc = mp_pipe(&p->a, &p->b, 1);
    if (rc != 0) {
      if (p->a != UNTOUCHED || p->b != UNTOUCHED)
        fail_msg("mp_pipe failed and changed its outputs");
      free(p);
      return rc;
    }
    *out = p;
    return 0;
  }
  case 1: {
    int fd = dup(0);
    assert_true(fd >= 0);
    int rc = mp_connection_new((mp_connection **)out, fd, NULL);
    if (rc != 0)
      close(fd);
    return rc;
  }
  default: {
    void *data = NULL;
    size_t len = 0;
    int rc = mp_connection_recv_bytes_alloc(c->b, &data, &len,
                                            MP_CONNECTION_NO_LIMIT);
    if (rc == 0)
      *out = data;
    return rc;
  }
  }
}

static void conn_use_and_free(void *vctx, void *o) {
  conn_ctx *c = vctx;
  switch (c->call) {
  case 0: {
    pipe_pair *p = o;
    char buf[8];
    size_t len = 0;
    assert_rc(mp_connection_send_bytes(p->a, "abc", 0, 3), 0);
    assert_rc(mp_connection_recv_bytes(p->b, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 3);
    mp_connection_free(p->a);
    mp_connection_free(p->b);
    free(p);
    break;
  }
  case 1:
    mp_connection_free(o);
    break;
  default:
    assert_memory_equal(o, "message", 7);
    free(o);
    assert_rc(mp_connection_send_bytes(c->a, "message", 0, 7), 0);
  }
}

static void connections(void **state) {
  (void)state;
  conn_ctx c = {.call = 0};
  oom_case oc = {"mp_pipe", conn_make, conn_use_and_free, &c, false, 0};
  oom_loop(&oc);
  c.call = 1;
  oc.what = "mp_connection_new";
  expect_failures(&oc);
  assert_rc(mp_pipe(&c.a, &c.b, 1), 0);
  assert_rc(mp_connection_send_bytes(c.a, "message", 0, 7), 0);
  c.call = 2;
  oc.what = "mp_connection_recv_bytes_alloc";
  oom_loop(&oc);
  mp_connection_free(c.a);
  mp_connection_free(c.b);
}

/* ---- processes ------------------------------------------------------------- */
static int exit_seven(void *arg) {
  (void)arg;
  return 7;
}

static int process_make(void *vctx, void **out) {
  (void)vctx;
  mp_process *p = UNTOUCHED;
  int rc = mp_process_new(&p, exit_seven, NULL, NULL);
  if (rc != 0) {
    if (p != UNTOUCHED && p != NULL) /* NULL: see nulls_out */
      fail_msg("mp_process_new failed and stored %p", (void *)p);
    return rc;
  }
  rc = mp_process_start(p);
  if (rc != 0) {
    mp_process_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

static void process_use_and_free(void *vctx, void *o) {
  (void)vctx;
  int code = -1;
  assert_rc(mp_process_join(o, mp_test_slack(30)), 0);
  assert_rc(mp_process_exitcode(o, &code), 0);
  assert_int_equal(code, 7);
  mp_process_free(o);
}

static void processes(void **state) {
  (void)state;
  oom_case oc = {"mp_process_new + mp_process_start", process_make,
                 process_use_and_free, NULL, false, 0};
  expect_failures(&oc);
}

/* ---- pools ----------------------------------------------------------------- */
static int double_it(const void *in, void *out) {
  *(int *)out = 2 * *(const int *)in;
  return 0;
}

static int echo(const void *in, size_t in_len, void *out, size_t out_cap,
                size_t *out_len) {
  size_t n = in_len < out_cap ? in_len : out_cap;
  memcpy(out, in, n);
  *out_len = n;
  return 0;
}

typedef struct pool_ctx {
  bool threads;
  int call; /* 0 new, 1 apply_async, 2 map */
  mp_pool *pool;
} pool_ctx;

static int pool_make(void *vctx, void **out) {
  pool_ctx *c = vctx;
  mp_pool_opts o = {.processes = 2};
  switch (c->call) {
  case 0:
    return c->threads ? mp_threadpool_new((mp_pool **)out, &o)
                      : mp_pool_new((mp_pool **)out, &o);
  case 1:
    return mp_pool_apply_async(c->pool, (mp_async_result **)out, echo, "xyz",
                               3, NULL);
  default: {
    int in[50], *res = malloc(sizeof in);
    for (int i = 0; i < 50; i++)
      in[i] = i;
    int rc = mp_pool_map(c->pool, double_it, in, 50, sizeof in[0], res,
                         sizeof res[0], NULL);
    if (rc == 0)
      *out = res;
    else
      free(res);
    return rc;
  }
  }
}

static void pool_use_and_free(void *vctx, void *o) {
  pool_ctx *c = vctx;
  switch (c->call) {
  case 0: {
    int in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
    assert_rc(mp_pool_map(o, double_it, in, 8, sizeof in[0], out,
                          sizeof out[0], NULL),
              0);
    assert_int_equal(out[7], 16);
    assert_rc(mp_pool_close(o), 0);
    assert_rc(mp_pool_join(o, mp_test_slack(30)), 0);
    mp_pool_free(o);
    break;
  }
  case 1: {
    size_t len = 0;
    assert_rc(mp_async_result_get(o, mp_test_slack(30)), 0);
    const void *d = mp_async_result_data(o, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(d, "xyz", 3);
    mp_async_result_free(o);
    break;
  }
  default:
    assert_int_equal(((int *)o)[49], 98);
    free(o);
  }
}

static void run_pool_cases(bool threads) {
  pool_ctx c = {.threads = threads};
  oom_case oc = {threads ? "mp_threadpool_new" : "mp_pool_new", pool_make,
                 pool_use_and_free, &c, true, MP_EWORKERDIED};
  expect_failures(&oc);
  assert_rc(pool_make(&c, (void **)&c.pool), 0);
  c.call = 1;
  oc.what = threads ? "mp_pool_apply_async (threads)" : "mp_pool_apply_async";
  expect_failures(&oc);
  c.call = 2;
  oc.what = threads ? "mp_pool_map (threads)" : "mp_pool_map";
  expect_failures(&oc);
  assert_rc(mp_pool_close(c.pool), 0);
  assert_rc(mp_pool_join(c.pool, mp_test_slack(30)), 0);
  mp_pool_free(c.pool);
}

static void process_pool(void **state) {
  (void)state;
  run_pool_cases(false);
}

static void thread_pool(void **state) {
  (void)state;
  run_pool_cases(true);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(sync_objects),
    cmocka_unit_test(queues),
    cmocka_unit_test(values_and_arrays),
    cmocka_unit_test(shared_memory_and_lists),
    cmocka_unit_test(connections),
    cmocka_unit_test(processes),
    cmocka_unit_test(process_pool),
    cmocka_unit_test(thread_pool),
};

MP_TEST_MAIN(tests)
