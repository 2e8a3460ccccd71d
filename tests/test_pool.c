/* test_pool.c - process pools: apply, apply_async, map, map_async,
 * starmap, imap and imap_unordered with their callbacks and results;
 * close, join, terminate and the scoped free; initializers, task quotas,
 * time limits and progress reports; workers that crash (G-POOL-1), time
 * out (G-POOL-2), fail to initialise (G-POOL-3), or outlive a killed parent
 * (G-POOL-4); pools on spawn and forkserver contexts in a program that
 * runs other threads (G-POOL-5).
 *
 * main calls mp_child_main first: spawned pool workers re-execute this
 * program and must run their worker loop, not a test case. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "pool_internal.h"

/* ---- helpers ----------------------------------------------------------- */

static mp_pool *new_pool(int processes) {
  mp_pool *p = NULL;
  mp_pool_opts o = {.processes = processes};
  assert_rc(mp_pool_new(&p, &o), 0);
  assert_non_null(p);
  return p;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static pid_t tid(void) { return (pid_t)syscall(SYS_gettid); }

/* shared_new maps zeroed memory that fork workers share with the test. */
static void *shared_new(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  return p;
}

static void crash_setup(int sig) {
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  signal(sig, SIG_DFL);
}

/* ---- task functions ------------------------------------------------------ */

static int square(const void *in, void *out) {
  long x = *(const long *)in;
  *(long *)out = x * x;
  return 0;
}
MP_POOL_MAP(square)

static int echo(const void *in, size_t n, void *out, size_t cap,
                size_t *len) {
  if (n > cap)
    return MP_ETOOBIG;
  if (n > 0)
    memcpy(out, in, n);
  *len = n;
  return 0;
}
MP_POOL_TASK(echo)

static int upper(const void *in, size_t n, void *out, size_t cap,
                 size_t *len) {
  if (n > cap)
    return MP_ETOOBIG;
  const char *s = in;
  char *d = out;
  for (size_t i = 0; i < n; i++)
    d[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 32) : s[i];
  *len = n;
  return 0;
}

/* fail_with returns the int it is given (negated) as its own failure. */
static int fail_with(const void *in, size_t n, void *out, size_t cap,
                     size_t *len) {
  (void)n, (void)out, (void)cap, (void)len;
  return -*(const int *)in;
}

/* write_too_much claims more output than it was allowed. */
static int write_too_much(const void *in, size_t n, void *out, size_t cap,
                          size_t *len) {
  (void)in, (void)n, (void)out;
  *len = cap + 1;
  return 0;
}

/* report_cap writes the capacity it was given. */
static int report_cap(const void *in, size_t n, void *out, size_t cap,
                      size_t *len) {
  (void)in, (void)n;
  if (cap < sizeof(size_t))
    return MP_ETOOBIG;
  memcpy(out, &cap, sizeof cap);
  *len = sizeof cap;
  return 0;
}

/* sleep_task sleeps the number of milliseconds it is given. */
static int sleep_task(const void *in, size_t n, void *out, size_t cap,
                      size_t *len) {
  (void)n, (void)out, (void)cap, (void)len;
  sleep_ms(*(const int *)in);
  return 0;
}

static int getpid_task(const void *in, size_t n, void *out, size_t cap,
                       size_t *len) {
  (void)in, (void)n, (void)cap;
  pid_t me = getpid();
  memcpy(out, &me, sizeof me);
  *len = sizeof me;
  return 0;
}
MP_POOL_TASK(getpid_task)

/* crash_task ends its worker the way its input says. */
enum crash_kind { CRASH_SEGV = 1, CRASH_ABORT, CRASH_EXIT, CRASH_KILL };
static int crash_task(const void *in, size_t n, void *out, size_t cap,
                      size_t *len) {
  (void)n, (void)out, (void)cap, (void)len;
  switch (*(const int *)in) {
  case CRASH_SEGV:
    crash_setup(SIGSEGV);
    raise(SIGSEGV);
    break;
  case CRASH_ABORT:
    crash_setup(SIGABRT);
    abort();
  case CRASH_EXIT:
    _exit(3);
  case CRASH_KILL:
    raise(SIGKILL);
    break;
  }
  return 0;
}
MP_POOL_TASK(crash_task)

/* square_or_crash squares, but crashes its worker on 13 and fails -5 on
 * multiples of 7. */
static int square_or_crash(const void *in, void *out) {
  long x = *(const long *)in;
  if (x == 13) {
    crash_setup(SIGSEGV);
    raise(SIGSEGV);
  }
  if (x % 7 == 0)
    return -5;
  *(long *)out = x * x;
  return 0;
}

static int slow_square(const void *in, void *out) {
  long x = *(const long *)in;
  sleep_ms(x % 3 == 0 ? 20 : 1);
  *(long *)out = x * x;
  return 0;
}

/* sleep_item sleeps *in milliseconds and returns the worker's pid. */
static int sleep_item(const void *in, void *out) {
  sleep_ms(*(const int *)in);
  *(pid_t *)out = getpid();
  return 0;
}

struct pair {
  int a, b;
};
static int multiply(const void *in, void *out) {
  const struct pair *pr = in;
  *(int *)out = pr->a * pr->b;
  return 0;
}

/* Mixed sizes: a 24-byte input item and a 12-byte result. */
struct rec_in {
  double x;
  long id;
  int scale;
};
struct rec_out {
  int id;
  float scaled;
  int ok;
};
static int transform(const void *in, void *out) {
  const struct rec_in *r = in;
  struct rec_out *o = out;
  o->id = (int)r->id;
  o->scaled = (float)(r->x * r->scale);
  o->ok = 1;
  return 0;
}

/* add_context adds the long of its call's context to the item. */
static int add_context(const void *in, void *out) {
  size_t n = 0;
  const long *ctx = mp_pool_context(&n);
  if (ctx == NULL || n != sizeof(long))
    return -77;
  *(long *)out = *(const long *)in + *ctx;
  return 0;
}
MP_POOL_MAP(add_context)

/* prefix_context writes its context's bytes, then its input. */
static int prefix_context(const void *in, size_t n, void *out, size_t cap,
                          size_t *len) {
  size_t cn = 0;
  const void *ctx = mp_pool_context(&cn);
  if (cn + n > cap)
    return MP_ETOOBIG;
  if (cn > 0)
    memcpy(out, ctx, cn);
  if (n > 0)
    memcpy((char *)out + cn, in, n);
  *len = cn + n;
  return 0;
}
MP_POOL_TASK(prefix_context)

/* ---- creating and stopping ------------------------------------------------- */

static void new_free_defaults(void **state) {
  (void)state;
  mp_pool *p = NULL;
  assert_rc(mp_pool_new(&p, NULL), 0);
  assert_int_equal(mp_pool_processes(p), mp_cpu_count());
  pid_t pids[64];
  assert_int_equal(mp_pool_worker_pids(p, pids, 64), mp_cpu_count());
  mp_pool_free(p);
  mp_pool_free(NULL);
  mp_async_result_free(NULL);
  mp_pool_iter_free(NULL);
}

static void new_invalid_arguments(void **state) {
  (void)state;
  mp_pool *p = (mp_pool *)1;
  assert_rc(mp_pool_new(NULL, NULL), MP_EINVAL);
  mp_pool_opts o = {.processes = -1};
  assert_rc(mp_pool_new(&p, &o), MP_EINVAL);
  assert_ptr_equal(p, (mp_pool *)1); /* a failed constructor leaves it */
  o = (mp_pool_opts){.processes = MP_POOL_MAX_WORKERS + 1};
  assert_rc(mp_pool_new(&p, &o), MP_EINVAL);
  o = (mp_pool_opts){.task_timeout = -1};
  assert_rc(mp_pool_new(&p, &o), MP_EINVAL);
  o = (mp_pool_opts){.initargs_size = 4};
  assert_rc(mp_pool_new(&p, &o), MP_EINVAL);
  o = (mp_pool_opts){.max_input_size = MP_POOL_SIZE_MAX + 1};
  assert_rc(mp_pool_new(&p, &o), MP_EINVAL);
  assert_rc(mp_pool_close(NULL), MP_EINVAL);
  assert_rc(mp_pool_join(NULL, 0), MP_EINVAL);
  assert_rc(mp_pool_terminate(NULL), MP_EINVAL);
  assert_int_equal(mp_pool_processes(NULL), MP_EINVAL);
  assert_rc(mp_pool_error(NULL, NULL), MP_EINVAL);
}

/* The seed: Pool(4).map(f, [1, 2, 3, 4, 5]) == [1, 4, 9, 16, 25]. */
static void map_squares(void **state) {
  (void)state;
  mp_pool *p = new_pool(4);
  long in[5] = {1, 2, 3, 4, 5}, out[5] = {0};
  assert_rc(mp_pool_map(p, square, in, 5, sizeof(long), out, sizeof(long),
                        NULL),
            0);
  long want[5] = {1, 4, 9, 16, 25};
  assert_memory_equal(out, want, sizeof want);
  mp_pool_free(p);
}

static void check_squares(const long *in, const long *out, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (out[i] != in[i] * in[i])
      fail_msg("item %zu: %ld, expected %ld", i, out[i], in[i] * in[i]);
}

static void map_many_items(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  size_t n = 100000;
  long *in = malloc(n * sizeof *in), *out = calloc(n, sizeof *out);
  for (size_t i = 0; i < n; i++)
    in[i] = (long)i - 500;
  assert_rc(mp_pool_map(p, square, in, n, sizeof *in, out, sizeof *out, NULL),
            0);
  check_squares(in, out, n);
  /* chunksize 1: every item is its own task. */
  memset(out, 0, n * sizeof *out);
  mp_pool_map_opts mo = {.chunksize = 1};
  assert_rc(mp_pool_map(p, square, in, 20000, sizeof *in, out, sizeof *out,
                        &mo),
            0);
  check_squares(in, out, 20000);
  free(in);
  free(out);
  mp_pool_free(p);
}

static void map_struct_items(void **state) {
  (void)state;
  mp_pool *p = new_pool(3);
  enum { N = 1000 };
  static struct rec_in in[N];
  static struct rec_out out[N];
  for (int i = 0; i < N; i++)
    in[i] = (struct rec_in){.x = i * 0.5, .id = 1000 + i, .scale = 4};
  mp_pool_map_opts mo = {.chunksize = 7};
  assert_rc(mp_pool_map(p, transform, in, N, sizeof in[0], out, sizeof out[0],
                        &mo),
            0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(out[i].id, 1000 + i);
    assert_true(out[i].scaled == (float)(i * 0.5 * 4));
    assert_int_equal(out[i].ok, 1);
  }
  mp_pool_free(p);
}

static int cb_calls;
static void count_callback(void *userdata, int status, const void *result,
                           size_t len) {
  (void)status, (void)result, (void)len;
  atomic_fetch_add((_Atomic int *)userdata, 1);
}

static void map_zero_items(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  _Atomic int calls = 0;
  mp_async_result *r;
  mp_pool_map_opts mo = {.callback = count_callback, .userdata = &calls};
  assert_rc(mp_pool_map_async(p, &r, square, NULL, 0, sizeof(long), NULL,
                              sizeof(long), &mo),
            0);
  assert_int_equal(mp_async_result_ready(r), 1);
  assert_rc(mp_async_result_get(r, 0), 0);
  assert_int_equal(mp_async_result_successful(r), 1);
  mp_async_result_free(r);
  assert_rc(mp_pool_map(p, square, NULL, 0, 8, NULL, 8, NULL), 0);
  assert_int_equal(calls, 0); /* as Python: no callback for an empty map */
  (void)cb_calls;
  mp_pool_free(p);
}

static void map_invalid_arguments(void **state) {
  (void)state;
  mp_pool *p = new_pool(1);
  long x = 1, y;
  mp_async_result *r = (mp_async_result *)1;
  assert_rc(mp_pool_map_async(p, NULL, square, &x, 1, 8, &y, 8, NULL),
            MP_EINVAL);
  assert_rc(mp_pool_map_async(p, &r, NULL, &x, 1, 8, &y, 8, NULL), MP_EINVAL);
  assert_ptr_equal(r, (mp_async_result *)1); /* a failed constructor leaves it */
  assert_rc(mp_pool_map(p, square, NULL, 1, 8, &y, 8, NULL), MP_EINVAL);
  assert_rc(mp_pool_map(p, square, &x, 1, 8, NULL, 8, NULL), MP_EINVAL);
  assert_rc(mp_pool_map(NULL, square, &x, 1, 8, &y, 8, NULL), MP_EINVAL);
  /* An item larger than the pool's input limit. */
  static char big[2 << 20];
  assert_rc(mp_pool_map(p, square, big, 1, sizeof big, &y, 8, NULL),
            MP_ETOOBIG);
  mp_pool_free(p);
}

/* Items fail one by one: statuses per item, the lowest failing index. */
static int fail_multiples_of_7(const void *in, void *out) {
  long x = *(const long *)in;
  if (x % 7 == 0)
    return -(int)(100 + x);
  *(long *)out = x * x;
  return 0;
}

static void map_item_failures(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  enum { N = 100 };
  long in[N], out[N];
  int st[N];
  for (int i = 0; i < N; i++)
    in[i] = i + 1; /* 7 is the first multiple of 7, at index 6 */
  mp_pool_map_opts mo = {.chunksize = 3, .statuses = st};
  assert_rc(mp_pool_map(p, fail_multiples_of_7, in, N, sizeof(long), out,
                        sizeof(long), &mo),
            -107);
  for (int i = 0; i < N; i++) {
    if (in[i] % 7 == 0) {
      assert_int_equal(st[i], -(int)(100 + in[i]));
    } else {
      assert_int_equal(st[i], 0);
      assert_int_equal(out[i], in[i] * in[i]);
    }
  }
  mp_async_result *r;
  assert_rc(mp_pool_map_async(p, &r, fail_multiples_of_7, in, N, sizeof(long),
                              out, sizeof(long), NULL),
            0);
  assert_rc(mp_async_result_get(r, 30), -107);
  assert_int_equal(mp_async_result_successful(r), 0);
  mp_task_error err;
  assert_rc(mp_async_result_error(r, &err), 0);
  assert_int_equal(err.code, -107);
  assert_int_equal(err.index, 6);
  assert_null(mp_async_result_data(r, NULL));
  mp_async_result_free(r);
  mp_pool_free(p);
}

struct cb_record {
  _Atomic int calls, errors;
  int status;
  const void *result;
  size_t len;
  pid_t thread;
  char data[64];
};

static void record_callback(void *userdata, int status, const void *result,
                            size_t len) {
  struct cb_record *c = userdata;
  c->status = status;
  c->result = result;
  c->len = len;
  c->thread = tid();
  if (result != NULL && len <= sizeof c->data)
    memcpy(c->data, result, len);
  atomic_fetch_add(&c->calls, 1);
}

static void record_error(void *userdata, int status, const void *result,
                         size_t len) {
  struct cb_record *c = userdata;
  c->status = status;
  c->result = result;
  c->len = len;
  c->thread = tid();
  atomic_fetch_add(&c->errors, 1);
}

static void map_async_callbacks(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  long in[50], out[50];
  for (int i = 0; i < 50; i++)
    in[i] = i + 1;
  struct cb_record ok = {0}, bad = {0};
  mp_pool_map_opts mo = {.callback = record_callback,
                         .error_callback = record_error,
                         .userdata = &ok};
  mp_async_result *r;
  assert_rc(mp_pool_map_async(p, &r, square, in, 50, sizeof(long), out,
                              sizeof(long), &mo),
            0);
  assert_rc(mp_async_result_get(r, 30), 0);
  /* The callback ran, in another thread, before the result was ready. */
  assert_int_equal(ok.calls, 1);
  assert_int_equal(ok.errors, 0);
  assert_int_equal(ok.status, 0);
  assert_ptr_equal(ok.result, out);
  assert_int_equal(ok.len, sizeof out);
  assert_true(ok.thread != tid());
  mp_async_result_free(r);

  mo.userdata = &bad;
  assert_rc(mp_pool_map_async(p, &r, fail_multiples_of_7, in, 50,
                              sizeof(long), out, sizeof(long), &mo),
            0);
  assert_rc(mp_async_result_get(r, 30), -107);
  assert_int_equal(bad.calls, 0);
  assert_int_equal(bad.errors, 1);
  assert_int_equal(bad.status, -107);
  mp_async_result_free(r);
  mp_pool_free(p);
}

static void starmap_structs(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  struct pair in[10];
  int out[10];
  for (int i = 0; i < 10; i++)
    in[i] = (struct pair){i, i + 1};
  assert_rc(mp_pool_starmap(p, multiply, in, 10, sizeof in[0], out,
                            sizeof out[0], NULL),
            0);
  for (int i = 0; i < 10; i++)
    assert_int_equal(out[i], i * (i + 1));
  mp_async_result *r;
  memset(out, 0, sizeof out);
  assert_rc(mp_pool_starmap_async(p, &r, multiply, in, 10, sizeof in[0], out,
                                  sizeof out[0], NULL),
            0);
  assert_rc(mp_async_result_get(r, 30), 0);
  for (int i = 0; i < 10; i++)
    assert_int_equal(out[i], i * (i + 1));
  mp_async_result_free(r);
  mp_pool_free(p);
}

/* ---- bytes tasks ------------------------------------------------------------ */

static void apply_bytes(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  char out[32] = {0};
  size_t len = 0;
  assert_rc(mp_pool_apply(p, upper, "hello pool", 10, out, sizeof out, &len),
            0);
  assert_int_equal(len, 10);
  assert_memory_equal(out, "HELLO POOL", 10);
  /* No input, no output. */
  assert_rc(mp_pool_apply(p, echo, NULL, 0, NULL, 0, &len), 0);
  assert_int_equal(len, 0);
  /* The task's capacity is the caller's buffer. */
  size_t cap = 0;
  assert_rc(mp_pool_apply(p, report_cap, NULL, 0, &cap, sizeof cap, &len), 0);
  assert_int_equal(cap, sizeof cap);
  assert_rc(mp_pool_apply(p, echo, "0123456789", 10, out, 4, &len),
            MP_ETOOBIG);
  assert_rc(mp_pool_apply(p, write_too_much, NULL, 0, out, sizeof out, &len),
            MP_ETOOBIG);
  int code = 42;
  assert_rc(mp_pool_apply(p, fail_with, &code, sizeof code, NULL, 0, NULL),
            -42);
  assert_rc(mp_pool_apply(p, NULL, NULL, 0, NULL, 0, NULL), MP_EINVAL);
  assert_rc(mp_pool_apply(p, echo, NULL, 5, NULL, 0, NULL), MP_EINVAL);
  mp_pool_free(p);
}

static void apply_large_bytes(void **state) {
  (void)state;
  mp_pool_opts o = {.processes = 2, .max_input_size = 3 << 20,
                    .max_result_size = 3 << 20};
  mp_pool *p;
  assert_rc(mp_pool_new(&p, &o), 0);
  size_t n = (3 << 20) - 5;
  unsigned char *in = malloc(n), *out = malloc(n);
  for (size_t i = 0; i < n; i++)
    in[i] = (unsigned char)(i * 31 + 7);
  size_t len = 0;
  for (int k = 0; k < 4; k++) {
    memset(out, 0, n);
    assert_rc(mp_pool_apply(p, echo, in, n, out, n, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(in, out, n);
  }
  /* Over the limit: refused before anything runs. */
  assert_rc(mp_pool_apply(p, echo, in, (3 << 20) + 1, out, n, &len),
            MP_ETOOBIG);
  free(in);
  free(out);
  mp_pool_free(p);
  /* The default limit is 1 MiB. */
  p = new_pool(1);
  static char big[(1 << 20) + 1];
  mp_async_result *r;
  assert_rc(mp_pool_apply_async(p, &r, echo, big, sizeof big, NULL),
            MP_ETOOBIG);
  mp_pool_free(p);
}

static void apply_async_many(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  enum { N = 2000 };
  static mp_async_result *r[N];
  for (int i = 0; i < N; i++)
    assert_rc(mp_pool_apply_async(p, &r[i], echo, &i, sizeof i, NULL), 0);
  for (int i = 0; i < N; i++) {
    assert_rc(mp_async_result_get(r[i], 30), 0);
    size_t len = 0;
    const int *v = mp_async_result_data(r[i], &len);
    assert_non_null(v);
    assert_int_equal(len, sizeof(int));
    assert_int_equal(*v, i);
    mp_async_result_free(r[i]);
  }
  mp_pool_free(p);
}

static void apply_async_callbacks(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  struct cb_record ok = {0}, bad = {0};
  mp_pool_apply_opts ao = {.callback = record_callback,
                           .error_callback = record_error,
                           .userdata = &ok};
  mp_async_result *r;
  assert_rc(mp_pool_apply_async(p, &r, upper, "abc", 3, &ao), 0);
  assert_rc(mp_async_result_get(r, 30), 0);
  assert_int_equal(ok.calls, 1);
  assert_int_equal(ok.errors, 0);
  assert_int_equal(ok.len, 3);
  assert_memory_equal(ok.data, "ABC", 3);
  assert_true(ok.thread != tid());
  assert_int_equal(mp_async_result_successful(r), 1);
  mp_task_error err;
  assert_rc(mp_async_result_error(r, &err), MP_ESTATE);
  mp_async_result_free(r);

  int code = 9;
  ao.userdata = &bad;
  assert_rc(mp_pool_apply_async(p, &r, fail_with, &code, sizeof code, &ao), 0);
  assert_rc(mp_async_result_get(r, 30), -9);
  assert_int_equal(bad.calls, 0);
  assert_int_equal(bad.errors, 1);
  assert_int_equal(bad.status, -9);
  assert_int_equal(mp_async_result_successful(r), 0);
  assert_rc(mp_async_result_error(r, &err), 0);
  assert_int_equal(err.code, -9);
  assert_null(mp_async_result_data(r, NULL));
  mp_async_result_free(r);
  mp_pool_free(p);
}

static void apply_async_caller_buffer(void **state) {
  (void)state;
  mp_pool *p = new_pool(1);
  char buf[16] = {0};
  mp_pool_apply_opts ao = {.out = buf, .out_cap = sizeof buf};
  mp_async_result *r;
  assert_rc(mp_pool_apply_async(p, &r, upper, "xyz", 3, &ao), 0);
  assert_rc(mp_async_result_get(r, 30), 0);
  size_t len = 0;
  assert_ptr_equal(mp_async_result_data(r, &len), buf);
  assert_int_equal(len, 3);
  assert_memory_equal(buf, "XYZ", 3);
  mp_async_result_free(r);
  /* A large result is held by the library. */
  static char big[5000];
  memset(big, 'q', sizeof big);
  assert_rc(mp_pool_apply_async(p, &r, echo, big, sizeof big, NULL), 0);
  assert_rc(mp_async_result_get(r, 30), 0);
  const char *d = mp_async_result_data(r, &len);
  assert_int_equal(len, sizeof big);
  assert_memory_equal(d, big, sizeof big);
  mp_async_result_free(r);
  ao = (mp_pool_apply_opts){.out_cap = 4};
  assert_rc(mp_pool_apply_async(p, &r, echo, NULL, 0, &ao), MP_EINVAL);
  mp_pool_free(p);
}

static void result_timeouts(void **state) {
  (void)state;
  mp_pool *p = new_pool(1);
  int ms = 400;
  mp_async_result *r;
  assert_rc(mp_pool_apply_async(p, &r, sleep_task, &ms, sizeof ms, NULL), 0);
  assert_int_equal(mp_async_result_ready(r), 0);
  assert_rc(mp_async_result_successful(r), MP_ESTATE);
  assert_rc(mp_async_result_get(r, 0), MP_ETIMEDOUT);
  double t0 = mp_test_now();
  assert_rc(mp_async_result_wait(r, 0.05), MP_ETIMEDOUT);
  assert_true(mp_test_now() - t0 >= 0.04);
  assert_null(mp_async_result_data(r, NULL));
  mp_task_error err;
  assert_rc(mp_async_result_error(r, &err), MP_ESTATE);
  assert_rc(mp_async_result_wait(r, 30), 0);
  assert_int_equal(mp_async_result_ready(r), 1);
  assert_rc(mp_async_result_get(r, 0), 0);
  assert_rc(mp_async_result_get(NULL, 0), MP_EINVAL);
  assert_rc(mp_async_result_wait(NULL, 0), MP_EINVAL);
  assert_int_equal(mp_async_result_ready(NULL), 0);
  assert_rc(mp_async_result_successful(NULL), MP_EINVAL);
  mp_async_result_free(r);
  mp_pool_free(p);
}

/* Freeing an unfinished result cancels it: no callback, no more writes. */
static void result_free_cancels(void **state) {
  (void)state;
  mp_pool *p = new_pool(1);
  int ms = 300;
  mp_async_result *busy, *r;
  assert_rc(mp_pool_apply_async(p, &busy, sleep_task, &ms, sizeof ms, NULL),
            0);
  struct cb_record c = {0};
  mp_pool_apply_opts ao = {.callback = record_callback,
                           .error_callback = record_error,
                           .userdata = &c};
  assert_rc(mp_pool_apply_async(p, &r, upper, "abc", 3, &ao), 0);
  mp_async_result_free(r);
  /* A map whose output must stay untouched once freed. */
  enum { N = 200 };
  static long in[N], out[N];
  for (int i = 0; i < N; i++)
    in[i] = i;
  mp_pool_map_opts mo = {.chunksize = 1, .callback = record_callback,
                         .userdata = &c};
  assert_rc(mp_pool_map_async(p, &r, square, in, N, sizeof(long), out,
                              sizeof(long), &mo),
            0);
  mp_async_result_free(r);
  memset(out, 0xAA, sizeof out);
  assert_rc(mp_async_result_get(busy, 30), 0);
  mp_async_result_free(busy);
  /* The pool still works; nothing was written after the free. */
  long x = 12, y = 0;
  assert_rc(mp_pool_map(p, square, &x, 1, sizeof x, &y, sizeof y, NULL), 0);
  assert_int_equal(y, 144);
  sleep_ms(50);
  for (int i = 0; i < N; i++)
    assert_int_equal(out[i], (long)0xAAAAAAAAAAAAAAAAull);
  assert_int_equal(c.calls, 0);
  assert_int_equal(c.errors, 0);
  mp_pool_free(p);
}

/* ---- iterators ------------------------------------------------------------- */

static void imap_in_order(void **state) {
  (void)state;
  mp_pool *p = new_pool(3);
  enum { N = 300 };
  long in[N], out[N];
  for (int i = 0; i < N; i++)
    in[i] = i;
  mp_pool_iter *it;
  assert_rc(mp_pool_imap(p, &it, slow_square, in, N, sizeof(long), out,
                         sizeof(long), NULL),
            0);
  size_t index;
  int st;
  for (size_t i = 0; i < N; i++) {
    assert_rc(mp_pool_iter_next(it, 30, &index, &st), 0);
    assert_int_equal(index, i);
    assert_int_equal(st, 0);
    assert_int_equal(out[i], in[i] * in[i]);
  }
  assert_rc(mp_pool_iter_next(it, 30, &index, &st), MP_ECLOSED);
  assert_rc(mp_pool_iter_next(it, 0, NULL, NULL), MP_ECLOSED);
  mp_pool_iter_free(it);
  assert_rc(mp_pool_iter_next(NULL, 0, NULL, NULL), MP_EINVAL);
  mp_pool_free(p);
}

static void imap_unordered_all_once(void **state) {
  (void)state;
  mp_pool *p = new_pool(3);
  enum { N = 300 };
  long in[N], out[N];
  int st[N];
  for (int i = 0; i < N; i++)
    in[i] = i;
  static char seen[N];
  memset(seen, 0, sizeof seen);
  mp_pool_iter *it;
  mp_pool_map_opts mo = {.chunksize = 4, .statuses = st};
  assert_rc(mp_pool_imap_unordered(p, &it, fail_multiples_of_7, in, N,
                                   sizeof(long), out, sizeof(long), &mo),
            0);
  size_t index;
  int status, count = 0;
  while (mp_pool_iter_next(it, 30, &index, &status) == 0) {
    assert_true(index < N);
    assert_int_equal(seen[index], 0);
    seen[index] = 1;
    count++;
    if (in[index] % 7 == 0) {
      assert_int_equal(status, -(int)(100 + in[index]));
    } else {
      assert_int_equal(status, 0);
      assert_int_equal(out[index], in[index] * in[index]);
    }
    assert_int_equal(st[index], status);
  }
  assert_int_equal(count, N);
  mp_pool_iter_free(it);
  mp_pool_free(p);
}

static void imap_timeout_and_early_free(void **state) {
  (void)state;
  mp_pool *p = new_pool(1);
  int in[3] = {300, 300, 300};
  pid_t out[3];
  mp_pool_iter *it;
  assert_rc(mp_pool_imap(p, &it, sleep_item, in, 3, sizeof(int), out,
                         sizeof(pid_t), NULL),
            0);
  assert_rc(mp_pool_iter_next(it, 0, NULL, NULL), MP_ETIMEDOUT);
  assert_rc(mp_pool_iter_next(it, 0.02, NULL, NULL), MP_ETIMEDOUT);
  size_t index;
  assert_rc(mp_pool_iter_next(it, 30, &index, NULL), 0);
  assert_int_equal(index, 0);
  /* Freed before the end: the rest is cancelled. */
  mp_pool_iter_free(it);
  long x = 3, y = 0;
  assert_rc(mp_pool_map(p, square, &x, 1, sizeof x, &y, sizeof y, NULL), 0);
  assert_int_equal(y, 9);
  mp_pool_free(p);
}

/* ---- progress ---------------------------------------------------------------- */

struct progress_log {
  size_t last, total, calls;
  int monotonic;
  pid_t thread;
};

static void log_progress(void *userdata, size_t done, size_t total) {
  struct progress_log *l = userdata;
  if (done < l->last || done > total)
    l->monotonic = 0;
  l->last = done;
  l->total = total;
  l->calls++;
  l->thread = tid();
}

static void progress_reports(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  enum { N = 5000 };
  static long in[N], out[N];
  for (int i = 0; i < N; i++)
    in[i] = i;
  struct progress_log log = {.monotonic = 1};
  mp_pool_map_opts mo = {.chunksize = 10, .progress = log_progress,
                         .progress_userdata = &log};
  assert_rc(mp_pool_map(p, square, in, N, sizeof(long), out, sizeof(long),
                        &mo),
            0);
  assert_true(log.calls >= 1);
  assert_int_equal(log.last, N);
  assert_int_equal(log.total, N);
  assert_int_equal(log.monotonic, 1);
  assert_true(log.thread != tid());
  /* imap reports too. */
  log = (struct progress_log){.monotonic = 1};
  mp_pool_iter *it;
  assert_rc(mp_pool_imap(p, &it, square, in, 100, sizeof(long), out,
                         sizeof(long), &mo),
            0);
  while (mp_pool_iter_next(it, 30, NULL, NULL) == 0) {
  }
  mp_pool_iter_free(it);
  mp_pool_close(p);
  assert_rc(mp_pool_join(p, 30), 0);
  assert_int_equal(log.last, 100);
  mp_pool_free(p);
}

/* Issue 9 item 11: stderr is a file here. */
static void progress_bar_on_stderr(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  char path[] = "/tmp/mp-pool-bar-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  enum { N = 400 };
  static long in[N], out[N];
  mp_pool_map_opts mo = {.chunksize = 5, .progress_bar = 1};
  int rc = mp_pool_map(p, square, in, N, sizeof(long), out, sizeof(long), &mo);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  assert_rc(rc, 0);
  char buf[4096];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  assert_true(n > 0);
  buf[n] = '\0';
  assert_non_null(strstr(buf, "100% 400/400"));
  assert_non_null(strstr(buf, "[####"));
  assert_int_equal(buf[n - 1], '\n');
  /* Issue 9 item 11: not a terminal: one final line, no redraws. */
  assert_null(strchr(buf, '\r'));
  assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
  mp_pool_free(p);
}

/* ---- close, join, terminate ---------------------------------------------------- */

/* The seed: Pool(5), 30 apply_async, close, join. */
static void close_join_seed(void **state) {
  (void)state;
  mp_pool *p = new_pool(5);
  mp_async_result *r[30];
  for (int i = 0; i < 30; i++)
    assert_rc(mp_pool_apply_async(p, &r[i], getpid_task, NULL, 0, NULL), 0);
  assert_rc(mp_pool_join(p, 0), MP_ESTATE); /* still running */
  assert_rc(mp_pool_close(p), 0);
  assert_rc(mp_pool_close(p), 0);
  mp_async_result *late;
  assert_rc(mp_pool_apply_async(p, &late, getpid_task, NULL, 0, NULL),
            MP_ECLOSED);
  long x = 1, y;
  assert_rc(mp_pool_map(p, square, &x, 1, 8, &y, 8, NULL), MP_ECLOSED);
  assert_rc(mp_pool_join(p, 30), 0);
  pid_t pids[8];
  assert_int_equal(mp_pool_worker_pids(p, pids, 8), 0);
  for (int i = 0; i < 30; i++) {
    assert_int_equal(mp_async_result_ready(r[i]), 1);
    assert_rc(mp_async_result_get(r[i], 0), 0);
    mp_async_result_free(r[i]);
  }
  mp_pool_free(p);
}

/* G-POOL-4: terminate while tasks run returns promptly, every unfinished
 * result is ready with MP_ECLOSED, and no child is left (the harness
 * checks). */
static void terminate_is_prompt(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  int ms = 30000;
  mp_async_result *r[6];
  struct cb_record c = {0};
  mp_pool_apply_opts ao = {.error_callback = record_error, .userdata = &c};
  for (int i = 0; i < 6; i++)
    assert_rc(mp_pool_apply_async(p, &r[i], sleep_task, &ms, sizeof ms, &ao),
              0);
  int in[4] = {30000, 30000, 30000, 30000};
  pid_t out[4];
  int st[4];
  mp_pool_map_opts mo = {.chunksize = 1, .statuses = st};
  mp_async_result *m;
  assert_rc(mp_pool_map_async(p, &m, sleep_item, in, 4, sizeof(int), out,
                              sizeof(pid_t), &mo),
            0);
  sleep_ms(100);
  double t0 = mp_test_now();
  assert_rc(mp_pool_terminate(p), 0);
  assert_true(mp_test_now() - t0 < 5.0);
  assert_rc(mp_pool_terminate(p), 0);
  assert_rc(mp_pool_join(p, 5), 0);
  for (int i = 0; i < 6; i++) {
    assert_rc(mp_async_result_get(r[i], 0), MP_ECLOSED);
    mp_async_result_free(r[i]);
  }
  assert_int_equal(c.errors, 6);
  assert_rc(mp_async_result_get(m, 0), MP_ECLOSED);
  for (int i = 0; i < 4; i++)
    assert_int_equal(st[i], MP_ECLOSED);
  mp_async_result_free(m);
  mp_async_result *late;
  assert_rc(mp_pool_apply_async(p, &late, echo, NULL, 0, NULL), MP_ECLOSED);
  mp_pool_free(p);
}

/* Scoped use: mp_pool_free terminates, as leaving `with Pool() as p:`. */
static void free_terminates_running_pool(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  int ms = 30000;
  mp_async_result *r;
  assert_rc(mp_pool_apply_async(p, &r, sleep_task, &ms, sizeof ms, NULL), 0);
  pid_t pids[2];
  assert_int_equal(mp_pool_worker_pids(p, pids, 2), 2);
  double t0 = mp_test_now();
  mp_pool_free(p);
  assert_true(mp_test_now() - t0 < 5.0);
  for (int i = 0; i < 2; i++)
    assert_false(mp__os_pid_alive(pids[i]));
  /* The result outlives its pool. */
  assert_rc(mp_async_result_get(r, 0), MP_ECLOSED);
  mp_async_result_free(r);
}

/* Every pool operation from a callback that would wait for the result
 * thread itself returns MP_EDEADLK. */
struct deadlock_probe {
  mp_pool *pool;
  mp_async_result *other;
  int get_rc, join_rc, apply_rc, map_rc, term_rc;
  _Atomic int done;
};

static void probe_callback(void *userdata, int status, const void *result,
                           size_t len) {
  (void)status, (void)result, (void)len;
  struct deadlock_probe *d = userdata;
  d->get_rc = mp_async_result_get(d->other, MP_FOREVER);
  d->join_rc = mp_pool_join(d->pool, MP_FOREVER);
  d->apply_rc = mp_pool_apply(d->pool, echo, NULL, 0, NULL, 0, NULL);
  long x = 1, y;
  d->map_rc = mp_pool_map(d->pool, square, &x, 1, 8, &y, 8, NULL);
  d->term_rc = mp_pool_terminate(d->pool);
  atomic_store(&d->done, 1);
}

static void callbacks_cannot_wait(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  int ms = 500;
  struct deadlock_probe d = {.pool = p};
  assert_rc(mp_pool_apply_async(p, &d.other, sleep_task, &ms, sizeof ms,
                                NULL),
            0);
  mp_async_result *r;
  mp_pool_apply_opts ao = {.callback = probe_callback, .userdata = &d};
  assert_rc(mp_pool_apply_async(p, &r, echo, NULL, 0, &ao), 0);
  assert_rc(mp_async_result_get(r, 30), 0);
  assert_int_equal(d.done, 1);
  assert_rc(d.get_rc, MP_EDEADLK);
  assert_rc(d.join_rc, MP_ESTATE); /* "still running" comes first */
  assert_rc(d.apply_rc, MP_EDEADLK);
  assert_rc(d.map_rc, MP_EDEADLK);
  assert_rc(d.term_rc, MP_EDEADLK);
  assert_rc(mp_async_result_get(d.other, 30), 0);
  mp_async_result_free(d.other);
  mp_async_result_free(r);
  mp_pool_free(p);
}

/* mp_pool_free from a callback: the result thread frees the pool. */
static void free_pool_in_callback(void *userdata, int status,
                                  const void *result, size_t len) {
  (void)status, (void)result, (void)len;
  mp_pool_free(userdata);
}

static void free_from_callback(void **state) {
  (void)state;
  int threads_before = mp_thread_active_count();
  mp_pool *p = new_pool(2);
  pid_t pids[2];
  assert_int_equal(mp_pool_worker_pids(p, pids, 2), 2);
  mp_async_result *r;
  mp_pool_apply_opts ao = {.callback = free_pool_in_callback, .userdata = p};
  assert_rc(mp_pool_apply_async(p, &r, echo, NULL, 0, &ao), 0);
  assert_rc(mp_async_result_get(r, 30), 0);
  mp_async_result_free(r);
  /* The workers go away without anyone else calling the pool. */
  double end = mp_test_now() + 10;
  while ((mp__os_pid_alive(pids[0]) || mp__os_pid_alive(pids[1])) &&
         mp_test_now() < end)
    sleep_ms(5);
  assert_false(mp__os_pid_alive(pids[0]));
  assert_false(mp__os_pid_alive(pids[1]));
  /* The result thread frees the pool as it ends; wait for it. */
  end = mp_test_now() + 10;
  while (mp_thread_active_count() > threads_before && mp_test_now() < end)
    sleep_ms(5);
  assert_int_equal(mp_thread_active_count(), threads_before);
}

/* ---- crashes (G-POOL-1) ---------------------------------------------------------- */

static void check_crash(mp_pool *p, int kind, int sig, int status) {
  mp_async_result *r;
  assert_rc(mp_pool_apply_async(p, &r, crash_task, &kind, sizeof kind, NULL),
            0);
  assert_rc(mp_async_result_get(r, 30), MP_EWORKERDIED);
  mp_task_error err;
  assert_rc(mp_async_result_error(r, &err), 0);
  assert_int_equal(err.code, MP_EWORKERDIED);
  assert_true(err.worker > 0);
  assert_int_equal(err.exit.signal, sig);
  assert_int_equal(err.exit.status, status);
  if (sig != 0)
    assert_string_equal(err.exit.signal_name, mp_signal_name(sig));
  mp_async_result_free(r);
}

/* G-POOL-1: a worker that segfaults, aborts, _exits or is SIGKILLed fails
 * exactly its task with MP_EWORKERDIED and the signal or status; a fresh
 * worker takes its place and the other tasks complete. */
static void crash_fails_only_its_task(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  enum { N = 40 };
  mp_async_result *ok[N];
  int ms = 2;
  for (int i = 0; i < N; i++)
    assert_rc(mp_pool_apply_async(p, &ok[i], sleep_task, &ms, sizeof ms,
                                  NULL),
              0);
  check_crash(p, CRASH_SEGV, SIGSEGV, 0);
  check_crash(p, CRASH_ABORT, SIGABRT, 0);
  check_crash(p, CRASH_EXIT, 0, 3);
  check_crash(p, CRASH_KILL, SIGKILL, 0);
  for (int i = 0; i < N; i++) {
    assert_rc(mp_async_result_get(ok[i], 30), 0);
    mp_async_result_free(ok[i]);
  }
  /* Replacements run: two workers again, and they work. */
  pid_t pids[4];
  assert_int_equal(mp_pool_worker_pids(p, pids, 4), 2);
  long in[5] = {1, 2, 3, 4, 5}, out[5];
  assert_rc(mp_pool_map(p, square, in, 5, 8, out, 8, NULL), 0);
  assert_int_equal(out[4], 25);
  assert_rc(mp_pool_error(p, NULL), 0);
  mp_pool_free(p);
}

/* G-POOL-1 in a map: the crashing item fails; the items of its chunk
 * before it keep their results, those after it run again. */
static void crash_in_map_chunk(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  enum { N = 40 };
  long in[N], out[N];
  int st[N];
  for (int i = 0; i < N; i++)
    in[i] = i;
  memset(out, 0, sizeof out);
  mp_pool_map_opts mo = {.chunksize = 10, .statuses = st};
  mp_async_result *r;
  assert_rc(mp_pool_map_async(p, &r, square_or_crash, in, N, sizeof(long),
                              out, sizeof(long), &mo),
            0);
  assert_rc(mp_async_result_get(r, 30), -5); /* index 0 (0 % 7 == 0) */
  for (int i = 0; i < N; i++) {
    if (i == 13)
      assert_int_equal(st[i], MP_EWORKERDIED);
    else if (i % 7 == 0)
      assert_int_equal(st[i], -5);
    else {
      assert_int_equal(st[i], 0);
      assert_int_equal(out[i], (long)i * i);
    }
  }
  mp_async_result_free(r);
  /* Without the earlier failures the crash is the map's error. */
  long in2[3] = {12, 13, 15}, out2[3];
  assert_rc(mp_pool_map_async(p, &r, square_or_crash, in2, 3, sizeof(long),
                              out2, sizeof(long), NULL),
            0);
  assert_rc(mp_async_result_get(r, 30), MP_EWORKERDIED);
  mp_task_error err;
  assert_rc(mp_async_result_error(r, &err), 0);
  assert_int_equal(err.index, 1);
  assert_int_equal(err.exit.signal, SIGSEGV);
  assert_int_equal(out2[0], 144);
  assert_int_equal(out2[2], 225);
  mp_async_result_free(r);
  mp_pool_free(p);
}

/* G-POOL-1: a worker killed from outside (the OOM killer's SIGKILL) while
 * idle costs no task; its replacement serves. */
static void idle_worker_killed(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  pid_t pids[2];
  assert_int_equal(mp_pool_worker_pids(p, pids, 2), 2);
  kill(pids[0], SIGKILL);
  kill(pids[1], SIGKILL);
  long in[100], out[100];
  for (int i = 0; i < 100; i++)
    in[i] = i;
  int st[100];
  mp_pool_map_opts mo = {.statuses = st};
  int rc = mp_pool_map(p, square, in, 100, 8, out, 8, &mo);
  /* An item may have been handed to a worker that was already dead but
   * not yet noticed: it would not have started, so it runs again. */
  assert_rc(rc, 0);
  check_squares(in, out, 100);
  double end = mp_test_now() + 10;
  pid_t now[2] = {0, 0};
  while (mp_test_now() < end) {
    if (mp_pool_worker_pids(p, now, 2) == 2 && now[0] != pids[0] &&
        now[0] != pids[1] && now[1] != pids[0] && now[1] != pids[1])
      break;
    sleep_ms(5);
  }
  assert_true(now[0] != pids[0] && now[0] != pids[1]);
  mp_pool_free(p);
}

/* ---- time limits (G-POOL-2) ----------------------------------------------------- */

/* G-POOL-2: a task over the time limit has its worker killed and replaced
 * and fails with MP_ETIMEDOUT; the other tasks complete. */
static void task_timeout_kills_worker(void **state) {
  (void)state;
  mp_pool_opts o = {.processes = 2, .task_timeout = 0.3};
  mp_pool *p;
  assert_rc(mp_pool_new(&p, &o), 0);
  int long_ms = 20000, short_ms = 10;
  mp_async_result *slow, *fast[10];
  double t0 = mp_test_now();
  assert_rc(mp_pool_apply_async(p, &slow, sleep_task, &long_ms, sizeof(int),
                                NULL),
            0);
  for (int i = 0; i < 10; i++)
    assert_rc(mp_pool_apply_async(p, &fast[i], sleep_task, &short_ms,
                                  sizeof(int), NULL),
              0);
  assert_rc(mp_async_result_get(slow, 30), MP_ETIMEDOUT);
  assert_int_equal(mp_async_result_ready(slow), 1);
  assert_true(mp_test_now() - t0 < 10.0);
  mp_task_error err;
  assert_rc(mp_async_result_error(slow, &err), 0);
  assert_int_equal(err.code, MP_ETIMEDOUT);
  assert_int_equal(err.exit.signal, SIGKILL);
  for (int i = 0; i < 10; i++) {
    assert_rc(mp_async_result_get(fast[i], 30), 0);
    mp_async_result_free(fast[i]);
  }
  mp_async_result_free(slow);
  /* In a map, the item over the limit fails; the others complete. */
  int in[6] = {10, 10, 20000, 10, 10, 10};
  pid_t out[6];
  int st[6];
  mp_pool_map_opts mo = {.chunksize = 3, .statuses = st};
  assert_rc(mp_pool_map(p, sleep_item, in, 6, sizeof(int), out,
                        sizeof(pid_t), &mo),
            MP_ETIMEDOUT);
  for (int i = 0; i < 6; i++)
    assert_int_equal(st[i], i == 2 ? MP_ETIMEDOUT : 0);
  mp_pool_free(p);
}

/* ---- initializers (G-POOL-3) ----------------------------------------------------- */

static long init_value;
static int init_from_args(const void *args, size_t size) {
  if (size != sizeof(long))
    return -1;
  init_value = *(const long *)args;
  return 0;
}
MP_POOL_INIT(init_from_args)

static int read_init_value(const void *in, size_t n, void *out, size_t cap,
                           size_t *len) {
  (void)in, (void)n, (void)cap;
  memcpy(out, &init_value, sizeof init_value);
  *len = sizeof init_value;
  return 0;
}
MP_POOL_TASK(read_init_value)

static void initializer_runs_in_each_worker(void **state) {
  (void)state;
  long v = 4242;
  mp_pool_opts o = {.processes = 3, .initializer = init_from_args,
                    .initargs = &v, .initargs_size = sizeof v};
  mp_pool *p;
  assert_rc(mp_pool_new(&p, &o), 0);
  v = 0; /* initargs were copied */
  for (int i = 0; i < 12; i++) {
    long got = 0;
    assert_rc(mp_pool_apply(p, read_init_value, NULL, 0, &got, sizeof got,
                            NULL),
              0);
    assert_int_equal(got, 4242);
  }
  assert_int_equal(init_value, 0); /* the parent never ran it */
  mp_pool_free(p);
}

static int init_fails(const void *args, size_t size) {
  (void)args, (void)size;
  return -42;
}

static int init_crashes(const void *args, size_t size) {
  (void)args, (void)size;
  crash_setup(SIGSEGV);
  raise(SIGSEGV);
  return 0;
}

/* G-POOL-3: an initializer that fails at creation is reported once, by
 * mp_pool_new, and nothing is left running. */
static void initializer_failure_fails_new(void **state) {
  (void)state;
  mp_pool_opts o = {.processes = 3, .initializer = init_fails};
  mp_pool *p = (mp_pool *)1;
  assert_rc(mp_pool_new(&p, &o), -42);
  assert_ptr_equal(p, (mp_pool *)1); /* a failed constructor leaves it */
  o.initializer = init_crashes;
  assert_rc(mp_pool_new(&p, &o), MP_EWORKERDIED);
  o.processes = 1;
  assert_rc(mp_threadpool_new(&p, &(mp_pool_opts){.initializer = init_fails}),
            -42);
}

/* Succeeds for the first `budget` calls (shared across workers), then
 * fails: a replacement worker's initializer breaks the pool. */
static _Atomic int *init_calls;
static int init_budget(const void *args, size_t size) {
  (void)args, (void)size;
  int n = atomic_fetch_add(init_calls, 1);
  return n < 2 ? 0 : -77;
}

/* G-POOL-3: a replacement worker whose initializer fails breaks the pool
 * once: mp_pool_error says why, work fails with MP_EBROKEN, and no worker
 * is started again and again. */
static void initializer_failure_breaks_pool(void **state) {
  (void)state;
  init_calls = shared_new(sizeof *init_calls);
  mp_pool_opts o = {.processes = 2, .initializer = init_budget,
                    .maxtasksperchild = 1};
  mp_pool *p;
  assert_rc(mp_pool_new(&p, &o), 0);
  mp_async_result *r[6];
  for (int i = 0; i < 6; i++)
    assert_rc(mp_pool_apply_async(p, &r[i], getpid_task, NULL, 0, NULL), 0);
  int ok = 0, broken = 0;
  for (int i = 0; i < 6; i++) {
    int rc = mp_async_result_get(r[i], 30);
    if (rc == 0)
      ok++;
    else if (rc == MP_EBROKEN)
      broken++;
    else
      fail_msg("task %d: %s", i, mp_err_name(rc));
    mp_async_result_free(r[i]);
  }
  assert_int_equal(ok, 2); /* one task per initialised worker */
  assert_int_equal(broken, 4);
  mp_task_error err;
  assert_rc(mp_pool_error(p, &err), -77);
  assert_int_equal(err.code, -77);
  mp_async_result *late;
  assert_rc(mp_pool_apply_async(p, &late, getpid_task, NULL, 0, NULL),
            MP_EBROKEN);
  sleep_ms(300);
  int calls = atomic_load(init_calls);
  assert_true(calls <= 4); /* no respawn loop */
  sleep_ms(300);
  assert_int_equal(atomic_load(init_calls), calls);
  mp_pool_close(p);
  assert_rc(mp_pool_join(p, 30), 0);
  mp_pool_free(p);
  munmap(init_calls, sizeof *init_calls);
}

static void maxtasksperchild_replaces(void **state) {
  (void)state;
  mp_pool_opts o = {.processes = 2, .maxtasksperchild = 2};
  mp_pool *p;
  assert_rc(mp_pool_new(&p, &o), 0);
  enum { N = 20 };
  mp_async_result *r[N];
  for (int i = 0; i < N; i++)
    assert_rc(mp_pool_apply_async(p, &r[i], getpid_task, NULL, 0, NULL), 0);
  pid_t seen[N];
  int distinct = 0;
  for (int i = 0; i < N; i++) {
    assert_rc(mp_async_result_get(r[i], 30), 0);
    pid_t pid = *(const pid_t *)mp_async_result_data(r[i], NULL);
    int k;
    for (k = 0; k < distinct; k++)
      if (seen[k] == pid)
        break;
    if (k == distinct)
      seen[distinct++] = pid;
    mp_async_result_free(r[i]);
  }
  assert_true(distinct >= N / 2);
  /* A map's chunks count as tasks too. */
  long in[40], out[40];
  for (int i = 0; i < 40; i++)
    in[i] = i;
  mp_pool_map_opts mo = {.chunksize = 1};
  assert_rc(mp_pool_map(p, square, in, 40, 8, out, 8, &mo), 0);
  check_squares(in, out, 40);
  mp_pool_free(p);
}

/* ---- processes ------------------------------------------------------------------ */

static void worker_pids_are_children(void **state) {
  (void)state;
  mp_pool *p = new_pool(3);
  pid_t pids[3];
  assert_int_equal(mp_pool_worker_pids(p, pids, 3), 3);
  assert_int_equal(mp_pool_worker_pids(p, NULL, 0), 3);
  assert_int_equal(mp_pool_worker_pids(p, NULL, 1), MP_EINVAL);
  for (int i = 0; i < 3; i++) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pids[i]);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    int ppid = 0;
    char *rp = strrchr(buf, ')');
    sscanf(rp + 2, "%*c %d", &ppid);
    assert_int_equal(ppid, getpid());
  }
  mp_pool_free(p);
}

static int use_parents_pool(void *arg) {
  mp_pool *p = arg;
  long x = 2, y;
  if (mp_pool_map(p, square, &x, 1, 8, &y, 8, NULL) != MP_EPERM)
    return 1;
  if (mp_pool_close(p) != MP_EPERM)
    return 2;
  mp_pool_free(p); /* a no-op on a copy */
  return 0;
}

static void forked_child_gets_eperm(void **state) {
  (void)state;
  mp_pool *p = new_pool(1);
  /* A call first, so that the parent's pid is kept before the fork: the
   * child must not inherit it as its own. */
  long x0 = 3, y0 = 0;
  assert_rc(mp_pool_map(p, square, &x0, 1, 8, &y0, 8, NULL), 0);
  pid_t c = mp_test_fork(use_parents_pool, p);
  mp_test_wait_exit(c, 0, 30);
  long x = 2, y = 0;
  assert_rc(mp_pool_map(p, square, &x, 1, 8, &y, 8, NULL), 0);
  assert_int_equal(y, 4);
  mp_pool_free(p);
}

/* The parent's results in a forked child: the child sees zeros where the
 * records were (pool_jobmem.c) and every call says they are not its own;
 * its own new pool gets records of its own. */
typedef struct parents_results {
  mp_async_result *done, *pending;
  mp_pool_iter *it;
} parents_results;

static int use_parents_results(void *arg) {
  parents_results *pr = arg;
  mp_async_result *rs[] = {pr->done, pr->pending};
  for (int i = 0; i < 2; i++) {
    mp_task_error err;
    if (mp_async_result_get(rs[i], 0) != MP_EPERM ||
        mp_async_result_wait(rs[i], MP_FOREVER) != MP_EPERM ||
        mp_async_result_ready(rs[i]) != 0 ||
        mp_async_result_successful(rs[i]) != MP_EPERM ||
        mp_async_result_error(rs[i], &err) != MP_EPERM)
      return 10 + i;
    size_t len = 1;
    if (mp_async_result_data(rs[i], &len) != NULL || len != 0)
      return 20 + i;
    mp_async_result_free(rs[i]); /* a no-op on a copy */
  }
  size_t index;
  int status;
  if (mp_pool_iter_next(pr->it, MP_FOREVER, &index, &status) != MP_EPERM)
    return 30;
  mp_pool_iter_free(pr->it);
  mp_pool *own;
  if (mp_pool_new(&own, &(mp_pool_opts){.processes = 1}) != 0)
    return 40;
  int rc = 0;
  for (int64_t i = 0; i < 300 && rc == 0; i++) {
    mp_async_result *r;
    if (mp_pool_apply_async(own, &r, echo, &i, sizeof i, NULL) != 0)
      return 41;
    size_t len = 0;
    const int64_t *v = mp_async_result_get(r, 30) == 0
                           ? mp_async_result_data(r, &len)
                           : NULL;
    if (v == NULL || len != sizeof i || *v != i)
      rc = 42;
    mp_async_result_free(r);
  }
  mp_pool_free(own);
  return rc;
}

static void forked_child_gets_eperm_on_results(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  parents_results pr;
  int64_t v = 77;
  int ms = 300;
  assert_rc(mp_pool_apply_async(p, &pr.done, echo, &v, sizeof v, NULL), 0);
  assert_rc(mp_async_result_get(pr.done, 30), 0);
  assert_rc(mp_pool_apply_async(p, &pr.pending, sleep_task, &ms, sizeof ms,
                                NULL),
            0);
  long in[4] = {1, 2, 3, 4}, out[4];
  assert_rc(mp_pool_imap(p, &pr.it, square, in, 4, sizeof(long), out,
                         sizeof(long), NULL),
            0);
  pid_t c = mp_test_fork(use_parents_results, &pr);
  mp_test_wait_exit(c, 0, 60);
  /* The parent's own records are untouched by the child. */
  size_t len = 0;
  const int64_t *got = mp_async_result_data(pr.done, &len);
  assert_non_null(got);
  assert_int_equal(len, sizeof v);
  assert_int_equal(*got, 77);
  assert_rc(mp_async_result_get(pr.pending, 30), 0);
  size_t index;
  int status, n = 0;
  while (mp_pool_iter_next(pr.it, 30, &index, &status) == 0)
    n += status == 0 && out[index] == in[index] * in[index];
  assert_int_equal(n, 4);
  mp_pool_iter_free(pr.it);
  mp_async_result_free(pr.done);
  mp_async_result_free(pr.pending);
  mp_pool_free(p);
}

/* live_records_settle waits (up to 10 s) for the result thread to drop
 * its references: it may do so just after a waiter saw the result ready. */
static size_t live_records_settle(size_t want) {
  double end = mp_test_now() + 10;
  while (mp__pool_job_live() != want && mp_test_now() < end)
    sleep_ms(1);
  return mp__pool_job_live();
}

/* Job records are returned when their results are freed, and reused:
 * rounds of apply_async leave as many live records as they found, and a
 * result freed before it is ready returns its record once the pool is
 * done with it. */
static void job_records_are_returned(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  size_t before = mp__pool_job_live();
  enum { N = 3000 };
  mp_async_result **r = calloc(N, sizeof *r);
  assert_non_null(r);
  for (int round = 0; round < 3; round++) {
    for (int64_t i = 0; i < N; i++)
      assert_rc(mp_pool_apply_async(p, &r[i], echo, &i, sizeof i, NULL), 0);
    assert_true(mp__pool_job_live() >= before + N);
    for (int64_t i = 0; i < N; i++) {
      assert_rc(mp_async_result_get(r[i], 30), 0);
      size_t len = 0;
      const int64_t *v = mp_async_result_data(r[i], &len);
      assert_true(v != NULL && len == sizeof i && *v == i);
      mp_async_result_free(r[i]);
    }
    assert_int_equal(live_records_settle(before), before);
  }
  int ms = 200;
  mp_async_result *slow;
  assert_rc(mp_pool_apply_async(p, &slow, sleep_task, &ms, sizeof ms, NULL),
            0);
  mp_async_result_free(slow); /* not ready: the pool still holds it */
  assert_rc(mp_pool_close(p), 0);
  assert_rc(mp_pool_join(p, 30), 0);
  mp_pool_free(p);
  assert_int_equal(live_records_settle(before), before);
  free(r);
}

/* G-POOL-4: a parent killed by SIGKILL leaves no worker running. The
 * middle process makes a pool, reports its workers' pids, and waits to be
 * killed. */
static int middle_with_pool(void *arg) {
  int fd = *(int *)arg;
  mp_pool *p;
  if (mp_pool_new(&p, &(mp_pool_opts){.processes = 3}) != 0)
    return 1;
  pid_t pids[3];
  if (mp_pool_worker_pids(p, pids, 3) != 3)
    return 2;
  if (write(fd, pids, sizeof pids) != (ssize_t)sizeof pids)
    return 3;
  for (;;)
    pause();
}

static bool pid_gone(pid_t pid, double timeout) {
  double end = mp_test_now() + timeout;
  while (mp__os_pid_alive(pid)) {
    if (mp_test_now() > end)
      return false;
    sleep_ms(2);
  }
  return true;
}

static void killed_parent_leaves_no_worker(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t middle = mp_test_fork(middle_with_pool, &fds[1]);
  close(fds[1]);
  pid_t pids[3] = {0};
  size_t got = 0;
  double end = mp_test_now() + 30;
  while (got < sizeof pids && mp_test_now() < end) {
    ssize_t n = read(fds[0], (char *)pids + got, sizeof pids - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fds[0]);
  kill(middle, SIGKILL);
  int st = mp_test_wait(middle, 30);
  assert_true(st != -1 && WIFSIGNALED(st));
  assert_int_equal(got, sizeof pids);
  for (int i = 0; i < 3; i++) {
    bool gone = pid_gone(pids[i], 10);
    if (!gone)
      kill(pids[i], SIGKILL);
    assert_true(gone);
  }
}

/* ---- other start methods (G-POOL-5) ----------------------------------------------- */

static int not_registered(const void *in, void *out) {
  (void)in, (void)out;
  return 0;
}

static void check_named_pool(mp_context *ctx) {
  mp_pool_opts o = {.processes = 2, .context = ctx,
                    .initializer = init_from_args,
                    .initargs = &(long){77}, .initargs_size = sizeof(long)};
  mp_pool *p;
  assert_rc(mp_pool_new(&p, &o), 0);
  long in[50], out[50];
  for (int i = 0; i < 50; i++)
    in[i] = i;
  assert_rc(mp_pool_map(p, square, in, 50, 8, out, 8, NULL), 0);
  check_squares(in, out, 50);
  long got = 0;
  assert_rc(mp_pool_apply(p, read_init_value, NULL, 0, &got, sizeof got,
                          NULL),
            0);
  assert_int_equal(got, 77);
  char buf[8];
  size_t len;
  assert_rc(mp_pool_apply(p, echo, "named", 5, buf, sizeof buf, &len), 0);
  assert_memory_equal(buf, "named", 5);
  /* Context bytes travel to spawned workers (issue 9 item 8). */
  long add = 1000;
  mp_pool_map_opts cmo = {.context = &add, .context_size = sizeof add};
  assert_rc(mp_pool_map(p, add_context, in, 50, 8, out, 8, &cmo), 0);
  for (int i = 0; i < 50; i++)
    assert_int_equal(out[i], i + 1000);
  /* Functions are found by name: an unregistered one is refused. */
  assert_rc(mp_pool_map(p, not_registered, in, 1, 8, out, 8, NULL),
            MP_ENOENT);
  assert_rc(mp_pool_apply(p, upper, "a", 1, buf, sizeof buf, &len),
            MP_ENOENT);
  /* A crash is isolated under these methods too. */
  int kind = CRASH_KILL;
  assert_rc(mp_pool_apply(p, crash_task, &kind, sizeof kind, NULL, 0, NULL),
            MP_EWORKERDIED);
  assert_rc(mp_pool_map(p, square, in, 50, 8, out, 8, NULL), 0);
  mp_pool_free(p);
}

/* No named segment is left behind. */
static int count_pool_segments(void) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "mp_pool-%d-", (int)getpid());
  DIR *d = opendir("/dev/shm");
  int n = 0;
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  if (d != NULL)
    closedir(d);
  return n;
}

static void spawn_context_pool(void **state) {
  (void)state;
  mp_context *ctx;
  assert_rc(mp_context_new(&ctx, MP_START_SPAWN), 0);
  check_named_pool(ctx);
  mp_context_free(ctx);
  assert_int_equal(count_pool_segments(), 0);
}

static _Atomic int spinning;
static void busy_thread(void *arg) {
  (void)arg;
  /* Allocate and free all the time: fork from another thread must not
   * inherit a malloc lock held here (forkserver and spawn never do). */
  while (atomic_load(&spinning)) {
    void *m = malloc(1000);
    free(m);
  }
}

/* G-POOL-5: a pool on a forkserver context works while the program runs
 * other threads. */
static void forkserver_pool_with_threads(void **state) {
  (void)state;
  mp_context *ctx;
  /* The server is forked now, while this program has one thread. */
  assert_rc(mp_context_new(&ctx, MP_START_FORKSERVER), 0);
  atomic_store(&spinning, 1);
  mp_thread *t[3];
  for (int i = 0; i < 3; i++) {
    assert_rc(mp_thread_new(&t[i], busy_thread, NULL, NULL), 0);
    assert_rc(mp_thread_start(t[i]), 0);
  }
  check_named_pool(ctx);
  atomic_store(&spinning, 0);
  for (int i = 0; i < 3; i++) {
    assert_rc(mp_thread_join(t[i], 30), 0);
    mp_thread_free(t[i]);
  }
  mp_context_free(ctx);
  assert_int_equal(count_pool_segments(), 0);
}

/* G-POOL-5 with spawn: other threads run while the pool starts workers. */
static void spawn_pool_with_threads(void **state) {
  (void)state;
  mp_context *ctx;
  assert_rc(mp_context_new(&ctx, MP_START_SPAWN), 0);
  atomic_store(&spinning, 1);
  mp_thread *t[2];
  for (int i = 0; i < 2; i++) {
    assert_rc(mp_thread_new(&t[i], busy_thread, NULL, NULL), 0);
    assert_rc(mp_thread_start(t[i]), 0);
  }
  mp_pool_opts o = {.processes = 2, .context = ctx, .maxtasksperchild = 3};
  mp_pool *p;
  assert_rc(mp_pool_new(&p, &o), 0);
  mp_async_result *r[12];
  for (int i = 0; i < 12; i++)
    assert_rc(mp_pool_apply_async(p, &r[i], getpid_task, NULL, 0, NULL), 0);
  for (int i = 0; i < 12; i++) {
    assert_rc(mp_async_result_get(r[i], 60), 0);
    mp_async_result_free(r[i]);
  }
  mp_pool_free(p);
  atomic_store(&spinning, 0);
  for (int i = 0; i < 2; i++) {
    assert_rc(mp_thread_join(t[i], 30), 0);
    mp_thread_free(t[i]);
  }
  mp_context_free(ctx);
}

static void register_functions(void **state) {
  (void)state;
  assert_rc(mp_pool_register_task("echo", echo), 0); /* again: fine */
  assert_rc(mp_pool_register_task("echo", upper), MP_EEXIST);
  assert_rc(mp_pool_register_map("echo", square), 0); /* another kind */
  assert_rc(mp_pool_register_task(NULL, echo), MP_EINVAL);
  assert_rc(mp_pool_register_task("", echo), MP_EINVAL);
  assert_rc(mp_pool_register_task("x", NULL), MP_EINVAL);
  char longname[300];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_rc(mp_pool_register_init(longname, init_fails), MP_EINVAL);
}



/* ---- blocking calls that say why, context bytes (issue 9 items 7, 8) ---------- */

/* Issue 9 item 7: the blocking map fills opts.error with the first
 * failing item, its code and how its worker ended. */
static void map_fills_error(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  enum { N = 13 };
  long in[N], out[N];
  for (int i = 0; i < N; i++)
    in[i] = 8 + i; /* 13 (index 5) crashes, 14 (index 6) fails -5 */
  mp_task_error err;
  memset(&err, 0xff, sizeof err);
  mp_pool_map_opts mo = {.chunksize = 2, .error = &err};
  assert_rc(mp_pool_map(p, square_or_crash, in, N, 8, out, 8, &mo),
            MP_EWORKERDIED);
  assert_int_equal(err.code, MP_EWORKERDIED);
  assert_int_equal(err.index, 5);
  assert_int_equal(err.exit.signal, SIGSEGV);
  assert_true(err.worker > 0);
  /* An item's own failure: its code and index, no exit record. */
  for (int i = 0; i < N; i++)
    in[i] = 14 + i; /* 14 (index 0) fails -5 */
  assert_rc(mp_pool_starmap(p, square_or_crash, in, N, 8, out, 8, &mo), -5);
  assert_int_equal(err.code, -5);
  assert_int_equal(err.index, 0);
  assert_int_equal(err.exit.signal, 0);
  /* A submission error: the code alone, and a detail. */
  assert_rc(mp_pool_map(p, NULL, in, N, 8, out, 8, &mo), MP_EINVAL);
  assert_int_equal(err.code, MP_EINVAL);
  assert_int_equal(err.worker, 0);
  assert_non_null(strstr(mp_error_detail(), "fn is NULL"));
  /* Success leaves it alone. */
  memset(&err, 0, sizeof err);
  assert_rc(mp_pool_map(p, square, in, N, 8, out, 8, &mo), 0);
  assert_int_equal(err.code, 0);
  mp_pool_free(p);
}

/* Issue 9 item 7: mp_pool_apply_ex fills opts.error. */
static void apply_ex_fills_error(void **state) {
  (void)state;
  mp_pool *p = new_pool(1);
  mp_task_error err;
  mp_pool_apply_opts ao = {.error = &err};
  int kind = CRASH_ABORT;
  assert_rc(mp_pool_apply_ex(p, crash_task, &kind, sizeof kind, NULL, 0,
                             NULL, &ao),
            MP_EWORKERDIED);
  assert_int_equal(err.code, MP_EWORKERDIED);
  assert_int_equal(err.exit.signal, SIGABRT);
  assert_true(err.worker > 0);
  int minus = 9;
  assert_rc(mp_pool_apply_ex(p, fail_with, &minus, sizeof minus, NULL, 0,
                             NULL, &ao),
            -9);
  assert_int_equal(err.code, -9);
  assert_int_equal(err.exit.signal, 0);
  /* Options only apply_async takes are refused, and say so. */
  mp_pool_apply_opts bad = {.error = &err, .callback = count_callback};
  assert_rc(mp_pool_apply_ex(p, echo, "x", 1, NULL, 0, NULL, &bad),
            MP_EINVAL);
  assert_int_equal(err.code, MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "callbacks"));
  /* NULL opts is mp_pool_apply. */
  char buf[4];
  size_t len = 0;
  assert_rc(mp_pool_apply_ex(p, echo, "abc", 3, buf, sizeof buf, &len, NULL),
            0);
  assert_int_equal(len, 3);
  mp_pool_free(p);
}

/* Issue 9 item 8: context bytes reach every item and task, in process
 * and thread pools, through mp_pool_context; the call's copy is taken at
 * submission. */
static void check_context(mp_pool *p) {
  enum { N = 200 };
  long in[N], out[N];
  for (long i = 0; i < N; i++)
    in[i] = i;
  long add = 5;
  mp_pool_map_opts mo = {.chunksize = 7, .context = &add,
                         .context_size = sizeof add};
  mp_async_result *r;
  assert_rc(mp_pool_map_async(p, &r, add_context, in, N, 8, out, 8, &mo), 0);
  add = -1; /* copied at submission */
  assert_rc(mp_async_result_get(r, 30), 0);
  mp_async_result_free(r);
  for (long i = 0; i < N; i++)
    assert_int_equal(out[i], i + 5);
  /* Without a context, the function sees none. */
  assert_rc(mp_pool_map(p, add_context, in, 3, 8, out, 8, NULL), -77);
  /* imap with a context. */
  add = 100;
  mp_pool_iter *it;
  assert_rc(mp_pool_imap(p, &it, add_context, in, N, 8, out, 8, &mo), 0);
  size_t idx;
  int st, n = 0;
  while (mp_pool_iter_next(it, 30, &idx, &st) == 0) {
    assert_int_equal(st, 0);
    assert_int_equal(out[idx], (long)idx + 100);
    n++;
  }
  assert_int_equal(n, N);
  mp_pool_iter_free(it);
  /* Bytes tasks: the context, then the input. */
  char buf[64];
  size_t len = 0;
  mp_pool_apply_opts ao = {.context = "ctx:", .context_size = 4};
  assert_rc(mp_pool_apply_ex(p, prefix_context, "abc", 3, buf, sizeof buf,
                             &len, &ao),
            0);
  assert_int_equal(len, 7);
  assert_memory_equal(buf, "ctx:abc", 7);
  ao.out = buf;
  ao.out_cap = sizeof buf;
  assert_rc(mp_pool_apply_async(p, &r, prefix_context, "z", 1, &ao), 0);
  assert_rc(mp_async_result_get(r, 30), 0);
  assert_memory_equal(buf, "ctx:z", 5);
  mp_async_result_free(r);
  /* A large context with a large input: each within the limits. */
  static char big[MP_POOL_CONTEXT_MAX];
  memset(big, 'c', sizeof big);
  static char bigout[MP_POOL_CONTEXT_MAX + 16];
  mp_pool_apply_opts bo = {.context = big, .context_size = sizeof big};
  assert_rc(mp_pool_apply_ex(p, prefix_context, "tail", 4, bigout,
                             sizeof bigout, &len, &bo),
            0);
  assert_int_equal(len, sizeof big + 4);
  assert_memory_equal(bigout + sizeof big, "tail", 4);
}

static void context_bytes_fork(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  check_context(p);
  assert_null(mp_pool_context(NULL)); /* outside a task */
  mp_pool_free(p);
}

static void context_bytes_threads(void **state) {
  (void)state;
  mp_pool *p;
  mp_pool_opts o = {.processes = 2};
  assert_rc(mp_threadpool_new(&p, &o), 0);
  check_context(p);
  mp_pool_free(p);
}

static void context_invalid(void **state) {
  (void)state;
  mp_pool *p = new_pool(1);
  long in[1] = {1}, out[1];
  mp_pool_map_opts mo = {.context = NULL, .context_size = 8};
  assert_rc(mp_pool_map(p, add_context, in, 1, 8, out, 8, &mo), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "context"));
  static char big[MP_POOL_CONTEXT_MAX + 1];
  mo.context = big;
  mo.context_size = sizeof big;
  assert_rc(mp_pool_map(p, add_context, in, 1, 8, out, 8, &mo), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "context_size"));
  mp_pool_apply_opts ao = {.context = big, .context_size = sizeof big};
  mp_async_result *r;
  assert_rc(mp_pool_apply_async(p, &r, echo, "x", 1, &ao), MP_EINVAL);
  /* A context and an input that fit alone but not together. */
  mp_pool_free(p);
  mp_pool_opts o = {.processes = 1, .max_input_size = 1024};
  assert_rc(mp_pool_new(&p, &o), 0);
  static char in2[1024];
  ao.context_size = MP_POOL_CONTEXT_MAX;
  assert_rc(mp_pool_apply_async(p, &r, echo, in2, sizeof in2, &ao),
            MP_ETOOBIG);
  assert_non_null(strstr(mp_error_detail(), "context"));
  mp_pool_free(p);
}

/* Issue 9 item 4: a NaN timeout is MP_EINVAL everywhere, with a detail. */
static void nan_timeouts_are_einval(void **state) {
  (void)state;
  mp_pool *p = new_pool(1);
  long in[2] = {1, 2}, out[2];
  mp_async_result *r;
  assert_rc(mp_pool_map_async(p, &r, square, in, 2, 8, out, 8, NULL), 0);
  assert_rc(mp_async_result_get(r, NAN), MP_EINVAL);
  assert_string_equal(mp_error_detail(), "timeout is NaN");
  assert_rc(mp_async_result_wait(r, NAN), MP_EINVAL);
  assert_rc(mp_async_result_get(r, 30), 0);
  mp_async_result_free(r);
  mp_pool_iter *it;
  assert_rc(mp_pool_imap(p, &it, square, in, 2, 8, out, 8, NULL), 0);
  assert_rc(mp_pool_iter_next(it, NAN, NULL, NULL), MP_EINVAL);
  mp_pool_iter_free(it);
  assert_rc(mp_pool_close(p), 0);
  assert_rc(mp_pool_join(p, NAN), MP_EINVAL);
  assert_string_equal(mp_error_detail(), "timeout is NaN");
  assert_rc(mp_pool_join(p, 30), 0);
  mp_pool_free(p);
  mp_pool_opts o = {.processes = 1, .task_timeout = NAN};
  assert_rc(mp_pool_new(&p, &o), MP_EINVAL);
  assert_string_equal(mp_error_detail(), "task_timeout is NaN");
  o.processes = -1;
  o.task_timeout = 0;
  assert_rc(mp_pool_new(&p, &o), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "processes"));
}

/* Issue 9 item 11: on a terminal the bar redraws in place. */
static void progress_bar_on_terminal(void **state) {
  (void)state;
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
    if (master >= 0)
      close(master);
    mp_test_skip("no pseudo-terminal");
    return;
  }
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  assert_true(slave >= 0);
  mp_pool *p = new_pool(2);
  fflush(stderr);
  int saved = dup(2);
  dup2(slave, 2);
  enum { N = 40 };
  static long in[N], out[N];
  mp_pool_map_opts mo = {.chunksize = 1, .progress_bar = 1};
  int rc = mp_pool_map(p, slow_square, in, N, sizeof(long), out,
                       sizeof(long), &mo);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(slave);
  assert_rc(rc, 0);
  char buf[8192];
  int fl = fcntl(master, F_GETFL);
  fcntl(master, F_SETFL, fl | O_NONBLOCK);
  size_t n = 0;
  for (;;) {
    ssize_t k = read(master, buf + n, sizeof buf - 1 - n);
    if (k <= 0)
      break;
    n += (size_t)k;
  }
  close(master);
  mp_pool_free(p);
  buf[n] = '\0';
  if (strstr(buf, "100% 40/40") == NULL)
    fprintf(stderr, "terminal got %zu bytes: %s\n", n, buf);
  assert_non_null(strchr(buf, '\r'));
  assert_non_null(strstr(buf, "100% 40/40"));
}


/* ---- the backend option outside an MPI job ----------------------------------- */

/* Outside mpirun an MPI pool is MP_ENOTSUP with a detail that says why;
 * MP_POOL_BACKEND=local or an unset variable keeps the default local;
 * MP_POOL_BACKEND=mpi asks for MPI; a bad backend value is MP_EINVAL. */
static void backend_outside_mpi(void **state) {
  (void)state;
  mp_pool *p = NULL;
  mp_pool_opts o = {.processes = 1, .backend = MP_POOL_BACKEND_MPI};
  assert_rc(mp_pool_new(&p, &o), MP_ENOTSUP);
  assert_null(p); /* a failed constructor leaves it */
  assert_non_null(strstr(mp_error_detail(), "mpirun"));
  o.backend = 7;
  assert_rc(mp_pool_new(&p, &o), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "backend"));
  setenv("MP_POOL_BACKEND", "mpi", 1);
  o.backend = MP_POOL_BACKEND_DEFAULT;
  assert_rc(mp_pool_new(&p, &o), MP_ENOTSUP);
  o.backend = MP_POOL_BACKEND_LOCAL; /* the option wins */
  assert_rc(mp_pool_new(&p, &o), 0);
  mp_pool_free(p);
  setenv("MP_POOL_BACKEND", "local", 1);
  o.backend = MP_POOL_BACKEND_DEFAULT;
  assert_rc(mp_pool_new(&p, &o), 0);
  mp_pool_free(p);
  unsetenv("MP_POOL_BACKEND");
  assert_rc(mp_pool_new(&p, &o), 0);
  mp_pool_free(p);
}

/* ---- a segment whose header is scribbled on (issue 8, defects 5, 6) ---------- */

/* scribble_header overwrites the geometry in the pool's header, whose
 * address (the same in a fork worker) is its input, the way its second
 * int says: 1 everything, 2 only nslots, 3 only the initargs. */
struct scribble {
  mp__pool_header *h;
  int what;
};
static int scribble_header(const void *in, size_t n, void *out, size_t cap,
                           size_t *len) {
  (void)n, (void)out, (void)cap, (void)len;
  const struct scribble *sc = in;
  mp__pool_header *h = sc->h;
  if (sc->what == 1 || sc->what == 2)
    h->nslots = 1000000000u;
  if (sc->what == 1) {
    h->out_cap = 0;
    h->in_cap = 0;
    h->slot_off = (uint64_t)1 << 40;
    h->slot_stride = (uint64_t)1 << 40;
    h->area_off = (uint64_t)1 << 39;
    h->max_result = 0;
    h->maxtasks = 1;
  }
  if (sc->what == 1 || sc->what == 3) {
    h->initargs_off = (uint64_t)1 << 40;
    h->initargs_size = (uint64_t)1 << 40;
  }
  return 0;
}

static void scribble(mp_pool *p, int what) {
  struct scribble sc = {.h = p->h, .what = what};
  assert_rc(mp_pool_apply(p, scribble_header, &sc, sizeof sc, NULL, 0, NULL),
            0);
}

/* Let the workers go to sleep: a woken worker wakes its siblings. */
static void let_workers_sleep(void) { sleep_ms(50); }

/* Issue 8 defect 5: a task that scribbles on the header's geometry (out_cap
 * 0, slots elsewhere) neither crashes the parent (no division by the
 * shared out_cap, no copy to a shared offset) nor the workers, and
 * replacement workers start with the geometry the parent decided. */
static void scribbled_header_spares_parent(void **state) {
  (void)state;
  mp_pool *p = new_pool(2);
  scribble(p, 1);
  let_workers_sleep();
  enum { N = 1000 };
  static long in[N], out[N];
  for (long i = 0; i < N; i++)
    in[i] = i;
  assert_rc(mp_pool_map(p, square, in, N, sizeof(long), out, sizeof(long),
                        NULL),
            0);
  check_squares(in, out, N);
  /* A crash makes the parent reset the slot and start a replacement. */
  check_crash(p, CRASH_SEGV, SIGSEGV, 0);
  let_workers_sleep();
  memset(out, 0, sizeof out);
  assert_rc(mp_pool_map(p, square, in, N, sizeof(long), out, sizeof(long),
                        NULL),
            0);
  check_squares(in, out, N);
  char big[4096];
  memset(big, 'x', sizeof big);
  char back[4096];
  size_t len = 0;
  assert_rc(mp_pool_apply(p, echo, big, sizeof big, back, sizeof back, &len),
            0);
  assert_int_equal(len, sizeof big);
  assert_rc(mp_pool_error(p, NULL), 0);
  mp_pool_free(p);
}

/* Issue 8 defect 6: a worker woken for work looks at its siblings' slots
 * up to the pool's own slot count, not to an nslots read from the
 * segment, so a scribbled count kills no worker. */
static void scribbled_nslots_kills_no_worker(void **state) {
  (void)state;
  mp_pool *p = new_pool(3);
  pid_t before[3], after[3];
  assert_int_equal(mp_pool_worker_pids(p, before, 3), 3);
  scribble(p, 2);
  for (int round = 0; round < 5; round++) {
    let_workers_sleep();
    enum { N = 60 };
    long in[N], out[N];
    for (long i = 0; i < N; i++)
      in[i] = i;
    mp_pool_map_opts mo = {.chunksize = 1};
    assert_rc(mp_pool_map(p, square, in, N, sizeof(long), out, sizeof(long),
                          &mo),
              0);
    check_squares(in, out, N);
  }
  assert_int_equal(mp_pool_worker_pids(p, after, 3), 3);
  for (int i = 0; i < 3; i++) {
    int found = 0;
    for (int k = 0; k < 3; k++)
      found |= before[i] == after[k];
    assert_true(found);
  }
  mp_pool_free(p);
}

/* Issue 8 defect 6: a replacement worker runs its initializer with the
 * initargs where the parent put them, whatever the header says now. */
static void scribbled_initargs_spare_replacement(void **state) {
  (void)state;
  long v = 777;
  mp_pool_opts o = {.processes = 1, .initializer = init_from_args,
                    .initargs = &v, .initargs_size = sizeof v};
  mp_pool *p;
  assert_rc(mp_pool_new(&p, &o), 0);
  scribble(p, 3);
  check_crash(p, CRASH_EXIT, 0, 3);
  long got = 0;
  assert_rc(mp_pool_apply(p, read_init_value, NULL, 0, &got, sizeof got,
                          NULL),
            0);
  assert_int_equal(got, 777);
  assert_rc(mp_pool_error(p, NULL), 0);
  mp_pool_free(p);
}

/* A thread worker whose state word a task rewrote to "exiting" is told to
 * leave and replaced: the handler once waited forever for a thread that
 * still slept waiting for work (found by fuzz_pool: a hang in terminate). */
struct said_exiting {
  mp__pool_header *h;
  const mp__pool_geom *g;
  int nslots;
};
static int say_exiting(const void *in, size_t n, void *out, size_t cap,
                       size_t *len) {
  (void)n, (void)out, (void)cap, (void)len;
  const struct said_exiting *se = in;
  for (int i = 0; i < se->nslots; i++)
    atomic_store(&mp__pool_slot_at(se->h, se->g, (uint32_t)i)->state,
                 MP__POOL_W_EXITING);
  return 0;
}

static void thread_said_exiting_is_replaced(void **state) {
  (void)state;
  mp_pool *p;
  assert_rc(mp_threadpool_new(&p, &(mp_pool_opts){.processes = 2}), 0);
  struct said_exiting se = {.h = p->h, .g = &p->g, .nslots = 2};
  assert_rc(mp_pool_apply(p, say_exiting, &se, sizeof se, NULL, 0, NULL), 0);
  let_workers_sleep();
  mp_async_result *r = NULL;
  char msg[] = "still served";
  assert_rc(mp_pool_apply_async(p, &r, echo, msg, sizeof msg, NULL), 0);
  assert_rc(mp_async_result_get(r, mp_test_slack(10.0)), 0);
  size_t len = 0;
  const void *d = mp_async_result_data(r, &len);
  assert_int_equal(len, sizeof msg);
  assert_memory_equal(d, msg, sizeof msg);
  mp_async_result_free(r);
  assert_rc(mp_pool_terminate(p), 0);
  assert_rc(mp_pool_join(p, mp_test_slack(10.0)), 0);
  mp_pool_free(p);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(new_free_defaults),
    cmocka_unit_test(new_invalid_arguments),
    cmocka_unit_test(map_squares),
    cmocka_unit_test(map_many_items),
    cmocka_unit_test(map_struct_items),
    cmocka_unit_test(map_zero_items),
    cmocka_unit_test(map_invalid_arguments),
    cmocka_unit_test(map_item_failures),
    cmocka_unit_test(map_async_callbacks),
    cmocka_unit_test(starmap_structs),
    cmocka_unit_test(apply_bytes),
    cmocka_unit_test(apply_large_bytes),
    cmocka_unit_test(apply_async_many),
    cmocka_unit_test(apply_async_callbacks),
    cmocka_unit_test(apply_async_caller_buffer),
    cmocka_unit_test(result_timeouts),
    cmocka_unit_test(result_free_cancels),
    cmocka_unit_test(imap_in_order),
    cmocka_unit_test(imap_unordered_all_once),
    cmocka_unit_test(imap_timeout_and_early_free),
    cmocka_unit_test(progress_reports),
    cmocka_unit_test(progress_bar_on_stderr),
    cmocka_unit_test(close_join_seed),
    cmocka_unit_test(terminate_is_prompt),
    cmocka_unit_test(free_terminates_running_pool),
    cmocka_unit_test(callbacks_cannot_wait),
    cmocka_unit_test(free_from_callback),
    cmocka_unit_test(crash_fails_only_its_task),
    cmocka_unit_test(crash_in_map_chunk),
    cmocka_unit_test(idle_worker_killed),
    cmocka_unit_test(task_timeout_kills_worker),
    cmocka_unit_test(initializer_runs_in_each_worker),
    cmocka_unit_test(initializer_failure_fails_new),
    cmocka_unit_test(initializer_failure_breaks_pool),
    cmocka_unit_test(maxtasksperchild_replaces),
    cmocka_unit_test(worker_pids_are_children),
    cmocka_unit_test(forked_child_gets_eperm),
    cmocka_unit_test(forked_child_gets_eperm_on_results),
    cmocka_unit_test(job_records_are_returned),
    cmocka_unit_test(killed_parent_leaves_no_worker),
    cmocka_unit_test(spawn_context_pool),
    cmocka_unit_test(forkserver_pool_with_threads),
    cmocka_unit_test(spawn_pool_with_threads),
    cmocka_unit_test(register_functions),
    cmocka_unit_test(scribbled_header_spares_parent),
    cmocka_unit_test(scribbled_nslots_kills_no_worker),
    cmocka_unit_test(scribbled_initargs_spare_replacement),
    cmocka_unit_test(thread_said_exiting_is_replaced),
    cmocka_unit_test(map_fills_error),
    cmocka_unit_test(apply_ex_fills_error),
    cmocka_unit_test(context_bytes_fork),
    cmocka_unit_test(context_bytes_threads),
    cmocka_unit_test(context_invalid),
    cmocka_unit_test(nan_timeouts_are_einval),
    cmocka_unit_test(progress_bar_on_terminal),
    cmocka_unit_test(backend_outside_mpi),
};

int main(int argc, char **argv) {
  /* First thing: a spawned pool worker runs its loop here. */
  int rc = mp_child_main(argc, argv);
  if (rc != 0) {
    fprintf(stderr, "test_pool: mp_child_main: %s\n", mp_strerror(rc));
    return 1;
  }
  return mp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
