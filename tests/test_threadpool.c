/* test_threadpool.c - ThreadPool: the pool API with threads of this
 * process as workers (Python's multiprocessing.pool.ThreadPool): map,
 * apply, the iterators and callbacks, initializers and task quotas,
 * close, join and terminate. Tasks share the caller's memory; there is
 * no crash isolation and no time limit. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static pid_t tid(void) { return (pid_t)syscall(SYS_gettid); }

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static mp_pool *new_threadpool(int n) {
  mp_pool *p = NULL;
  mp_pool_opts o = {.processes = n};
  assert_rc(mp_threadpool_new(&p, &o), 0);
  assert_non_null(p);
  return p;
}

static int square(const void *in, void *out) {
  long x = *(const long *)in;
  *(long *)out = x * x;
  return 0;
}

static int echo(const void *in, size_t n, void *out, size_t cap,
                size_t *len) {
  if (n > cap)
    return MP_ETOOBIG;
  if (n > 0)
    memcpy(out, in, n);
  *len = n;
  return 0;
}

static int tid_task(const void *in, size_t n, void *out, size_t cap,
                    size_t *len) {
  (void)in, (void)n, (void)cap;
  pid_t t = tid();
  memcpy(out, &t, sizeof t);
  *len = sizeof t;
  return 0;
}

/* add_to_counter adds 1 to the counter whose address is its input: the
 * workers share the caller's memory. */
static int add_to_counter(const void *in, void *out) {
  (void)out;
  _Atomic long *counter = *(_Atomic long *const *)in;
  atomic_fetch_add(counter, 1);
  return 0;
}

static int sleep_task(const void *in, size_t n, void *out, size_t cap,
                      size_t *len) {
  (void)n, (void)out, (void)cap, (void)len;
  sleep_ms(*(const int *)in);
  return 0;
}

static void threadpool_map_and_apply(void **state) {
  (void)state;
  mp_pool *p = new_threadpool(4);
  assert_int_equal(mp_pool_processes(p), 4);
  long in[5] = {1, 2, 3, 4, 5}, out[5];
  assert_rc(mp_pool_map(p, square, in, 5, sizeof(long), out, sizeof(long),
                        NULL),
            0);
  long want[5] = {1, 4, 9, 16, 25};
  assert_memory_equal(out, want, sizeof want);
  enum { N = 20000 };
  long *a = malloc(N * sizeof *a), *b = calloc(N, sizeof *b);
  for (long i = 0; i < N; i++)
    a[i] = i;
  mp_pool_map_opts mo = {.chunksize = 1};
  assert_rc(mp_pool_map(p, square, a, N, sizeof *a, b, sizeof *b, &mo), 0);
  for (long i = 0; i < N; i++)
    assert_int_equal(b[i], i * i);
  char buf[16];
  size_t len = 0;
  assert_rc(mp_pool_apply(p, echo, "thread", 6, buf, sizeof buf, &len), 0);
  assert_int_equal(len, 6);
  assert_memory_equal(buf, "thread", 6);
  mp_async_result *r[500];
  for (int i = 0; i < 500; i++)
    assert_rc(mp_pool_apply_async(p, &r[i], echo, &i, sizeof i, NULL), 0);
  for (int i = 0; i < 500; i++) {
    assert_rc(mp_async_result_get(r[i], 30), 0);
    assert_int_equal(*(const int *)mp_async_result_data(r[i], NULL), i);
    mp_async_result_free(r[i]);
  }
  free(a);
  free(b);
  mp_pool_free(p);
}

static void threadpool_iterators(void **state) {
  (void)state;
  mp_pool *p = new_threadpool(3);
  enum { N = 200 };
  long in[N], out[N];
  for (int i = 0; i < N; i++)
    in[i] = i;
  mp_pool_iter *it;
  assert_rc(mp_pool_imap(p, &it, square, in, N, sizeof(long), out,
                         sizeof(long), NULL),
            0);
  size_t index;
  int st;
  for (size_t i = 0; i < N; i++) {
    assert_rc(mp_pool_iter_next(it, 30, &index, &st), 0);
    assert_int_equal(index, i);
    assert_int_equal(st, 0);
    assert_int_equal(out[i], (long)(i * i));
  }
  assert_rc(mp_pool_iter_next(it, 30, &index, &st), MP_ECLOSED);
  mp_pool_iter_free(it);
  static char seen[N];
  mp_pool_map_opts mo = {.chunksize = 8};
  assert_rc(mp_pool_imap_unordered(p, &it, square, in, N, sizeof(long), out,
                                   sizeof(long), &mo),
            0);
  int count = 0;
  while (mp_pool_iter_next(it, 30, &index, &st) == 0) {
    assert_int_equal(seen[index], 0);
    seen[index] = 1;
    count++;
  }
  assert_int_equal(count, N);
  mp_pool_iter_free(it);
  mp_pool_free(p);
}

struct cb {
  _Atomic int calls;
  pid_t thread;
};
static void note_thread(void *userdata, int status, const void *result,
                        size_t len) {
  (void)status, (void)result, (void)len;
  struct cb *c = userdata;
  c->thread = tid();
  atomic_fetch_add(&c->calls, 1);
}

/* Callbacks run in the pool's result thread: neither the caller's nor a
 * worker's. */
static void threadpool_callbacks(void **state) {
  (void)state;
  mp_pool *p = new_threadpool(2);
  struct cb c = {0};
  mp_pool_apply_opts ao = {.callback = note_thread, .userdata = &c};
  mp_async_result *r;
  assert_rc(mp_pool_apply_async(p, &r, tid_task, NULL, 0, &ao), 0);
  assert_rc(mp_async_result_get(r, 30), 0);
  pid_t worker = *(const pid_t *)mp_async_result_data(r, NULL);
  assert_int_equal(c.calls, 1);
  assert_true(c.thread != tid());
  assert_true(c.thread != worker);
  assert_true(worker != tid());
  mp_async_result_free(r);
  mp_pool_free(p);
}

static void threadpool_shares_memory(void **state) {
  (void)state;
  mp_pool *p = new_threadpool(4);
  _Atomic long counter = 0;
  enum { N = 1000 };
  static _Atomic long *ptrs[N];
  for (int i = 0; i < N; i++)
    ptrs[i] = &counter;
  assert_rc(mp_pool_map(p, add_to_counter, ptrs, N, sizeof ptrs[0], NULL, 0,
                        NULL),
            0);
  assert_int_equal(atomic_load(&counter), N);
  mp_pool_free(p);
}

static void threadpool_limits(void **state) {
  (void)state;
  mp_pool *p = (mp_pool *)1;
  mp_pool_opts o = {.processes = 2, .task_timeout = 1.0};
  assert_rc(mp_threadpool_new(&p, &o), MP_ENOTSUP);
  assert_ptr_equal(p, (mp_pool *)1); /* a failed constructor leaves it */
  assert_rc(mp_threadpool_new(NULL, NULL), MP_EINVAL);
  /* A context is ignored: the workers are threads. */
  mp_context *ctx;
  assert_rc(mp_context_new(&ctx, MP_START_SPAWN), 0);
  o = (mp_pool_opts){.processes = 2, .context = ctx};
  assert_rc(mp_threadpool_new(&p, &o), 0);
  assert_int_equal(mp_pool_worker_pids(p, NULL, 0), 0);
  long x = 7, y = 0;
  assert_rc(mp_pool_map(p, square, &x, 1, 8, &y, 8, NULL), 0);
  assert_int_equal(y, 49);
  mp_pool_free(p);
  mp_context_free(ctx);
}

static _Atomic int init_calls;
static _Thread_local long thread_value;
static int init_thread(const void *args, size_t size) {
  (void)size;
  thread_value = *(const long *)args;
  atomic_fetch_add(&init_calls, 1);
  return 0;
}

static int read_thread_value(const void *in, size_t n, void *out, size_t cap,
                             size_t *len) {
  (void)in, (void)n, (void)cap;
  memcpy(out, &thread_value, sizeof thread_value);
  *len = sizeof thread_value;
  return 0;
}

static int init_fails(const void *args, size_t size) {
  (void)args, (void)size;
  return -13;
}

static void threadpool_initializer(void **state) {
  (void)state;
  long v = 99;
  mp_pool_opts o = {.processes = 3, .initializer = init_thread,
                    .initargs = &v, .initargs_size = sizeof v};
  mp_pool *p;
  atomic_store(&init_calls, 0);
  assert_rc(mp_threadpool_new(&p, &o), 0);
  assert_int_equal(atomic_load(&init_calls), 3);
  for (int i = 0; i < 10; i++) {
    long got = 0;
    assert_rc(mp_pool_apply(p, read_thread_value, NULL, 0, &got, sizeof got,
                            NULL),
              0);
    assert_int_equal(got, 99);
  }
  assert_int_equal(thread_value, 0);
  mp_pool_free(p);
  o.initializer = init_fails;
  assert_rc(mp_threadpool_new(&p, &o), -13);
}

static void threadpool_maxtasksperchild(void **state) {
  (void)state;
  mp_pool_opts o = {.processes = 2, .maxtasksperchild = 1};
  mp_pool *p;
  assert_rc(mp_threadpool_new(&p, &o), 0);
  enum { N = 12 };
  mp_async_result *r[N];
  for (int i = 0; i < N; i++)
    assert_rc(mp_pool_apply_async(p, &r[i], tid_task, NULL, 0, NULL), 0);
  pid_t seen[N];
  int distinct = 0;
  for (int i = 0; i < N; i++) {
    assert_rc(mp_async_result_get(r[i], 30), 0);
    pid_t t = *(const pid_t *)mp_async_result_data(r[i], NULL);
    int k;
    for (k = 0; k < distinct; k++)
      if (seen[k] == t)
        break;
    if (k == distinct)
      seen[distinct++] = t;
    mp_async_result_free(r[i]);
  }
  /* Thread ids may be reused once a thread ends; most are new. */
  assert_true(distinct >= 2);
  mp_pool_close(p);
  assert_rc(mp_pool_join(p, 30), 0);
  mp_pool_free(p);
}

static void threadpool_close_join(void **state) {
  (void)state;
  mp_pool *p = new_threadpool(5);
  mp_async_result *r[30];
  int ms = 5;
  for (int i = 0; i < 30; i++)
    assert_rc(mp_pool_apply_async(p, &r[i], sleep_task, &ms, sizeof ms, NULL),
              0);
  assert_rc(mp_pool_join(p, 0), MP_ESTATE);
  assert_rc(mp_pool_close(p), 0);
  mp_async_result *late;
  assert_rc(mp_pool_apply_async(p, &late, echo, NULL, 0, NULL), MP_ECLOSED);
  assert_rc(mp_pool_join(p, 30), 0);
  for (int i = 0; i < 30; i++) {
    assert_int_equal(mp_async_result_ready(r[i]), 1);
    assert_rc(mp_async_result_get(r[i], 0), 0);
    mp_async_result_free(r[i]);
  }
  mp_pool_free(p);
}

/* terminate cannot stop a running thread: it waits for the running tasks
 * and fails the queued ones. */
static void threadpool_terminate(void **state) {
  (void)state;
  mp_pool *p = new_threadpool(2);
  int ms = 200;
  mp_async_result *r[10];
  for (int i = 0; i < 10; i++)
    assert_rc(mp_pool_apply_async(p, &r[i], sleep_task, &ms, sizeof ms, NULL),
              0);
  sleep_ms(50);
  double t0 = mp_test_now();
  assert_rc(mp_pool_terminate(p), 0);
  assert_true(mp_test_now() - t0 < 10);
  int ok = 0, closed = 0;
  for (int i = 0; i < 10; i++) {
    int rc = mp_async_result_get(r[i], 0);
    ok += rc == 0;
    closed += rc == MP_ECLOSED;
    mp_async_result_free(r[i]);
  }
  assert_int_equal(ok + closed, 10);
  assert_true(ok <= 4); /* at most the ones that were running */
  assert_true(closed >= 6);
  mp_pool_free(p);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(threadpool_map_and_apply),
    cmocka_unit_test(threadpool_iterators),
    cmocka_unit_test(threadpool_callbacks),
    cmocka_unit_test(threadpool_shares_memory),
    cmocka_unit_test(threadpool_limits),
    cmocka_unit_test(threadpool_initializer),
    cmocka_unit_test(threadpool_maxtasksperchild),
    cmocka_unit_test(threadpool_close_join),
    cmocka_unit_test(threadpool_terminate),
};

MP_TEST_MAIN(tests)
