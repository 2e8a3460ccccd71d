/* test_mpi_pool.c - the pool's MPI backend, run by CTest under
 * `mpirun -n 3` (cmake/mpi.cmake): rank 0 runs the case named by argv[1],
 * ranks 1 and 2 become worker ranks inside mp_child_main and never reach
 * the case. Covers every pool call, ordering, crashing tasks, an
 * initializer, context bytes, a worker rank that is SIGKILLed,
 * close/join and terminate, and a map of 1,000,000 small items. A case
 * fails by returning nonzero from rank 0 (mpirun then exits nonzero). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <multiproc.h>

static int failures;
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,       \
              #cond);                                                        \
      failures++;                                                            \
    }                                                                        \
  } while (0)
#define CHECK_RC(expr, want)                                                 \
  do {                                                                       \
    int rc_ = (expr), want_ = (want);                                        \
    if (rc_ != want_) {                                                      \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__, \
              __LINE__, #expr, mp_err_name(rc_), mp_err_name(want_),         \
              mp_error_detail());                                            \
      failures++;                                                            \
    }                                                                        \
  } while (0)

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- functions, found by name on the worker ranks --------------------- */

static int square(const void *in, void *out) {
  long x = *(const long *)in;
  *(long *)out = x * x;
  return 0;
}
MP_POOL_MAP(square)

/* square_or_crash crashes its worker on 13 and fails -5 on multiples of 7. */
static int square_or_crash(const void *in, void *out) {
  long x = *(const long *)in;
  if (x == 13) {
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
  }
  if (x != 0 && x % 7 == 0)
    return -5;
  *(long *)out = x * x;
  return 0;
}
MP_POOL_MAP(square_or_crash)

struct pair {
  int a, b;
};
static int multiply(const void *in, void *out) {
  const struct pair *p = in;
  *(int *)out = p->a * p->b;
  return 0;
}
MP_POOL_MAP(multiply)

static int add_context(const void *in, void *out) {
  size_t n = 0;
  const long *c = mp_pool_context(&n);
  if (c == NULL || n != sizeof(long))
    return -77;
  *(long *)out = *(const long *)in + *c;
  return 0;
}
MP_POOL_MAP(add_context)

static int sleep_item(const void *in, void *out) {
  sleep_ms(*(const int *)in);
  *(int *)out = (int)getppid(); /* the worker rank's pid */
  return 0;
}
MP_POOL_MAP(sleep_item)

/* who_item naps the given ms and names its worker and that worker's rank. */
struct who {
  int rank_pid, worker_pid;
};
static int who_item(const void *in, void *out) {
  sleep_ms(*(const int *)in);
  struct who w = {(int)getppid(), (int)getpid()};
  memcpy(out, &w, sizeof w);
  return 0;
}
MP_POOL_MAP(who_item)

/* uneven_item naps 1 ms on worker rank 1 and 3 ms on rank 2 (the local
 * workers inherit mpirun's OMPI_COMM_WORLD_RANK), and says which rank
 * ran it and when it ended (CLOCK_MONOTONIC: one clock on one host). */
struct ended {
  int rank;
  double at;
};
static int uneven_item(const void *in, void *out) {
  (void)in;
  const char *r = getenv("OMPI_COMM_WORLD_RANK");
  int rank = r != NULL ? atoi(r) : 0;
  sleep_ms(rank == 2 ? 3 : 1);
  struct ended e = {rank, now()};
  memcpy(out, &e, sizeof e);
  return 0;
}
MP_POOL_MAP(uneven_item)

static int not_registered(const void *in, void *out) {
  (void)in, (void)out;
  return 0;
}

static int upper(const void *in, size_t n, void *out, size_t cap,
                 size_t *len) {
  if (n > cap)
    return MP_ETOOBIG;
  for (size_t i = 0; i < n; i++) {
    char c = ((const char *)in)[i];
    ((char *)out)[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
  }
  *len = n;
  return 0;
}
MP_POOL_TASK(upper)


static int crash_task(const void *in, size_t n, void *out, size_t cap,
                      size_t *len) {
  (void)in, (void)n, (void)out, (void)cap, (void)len;
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  signal(SIGABRT, SIG_DFL);
  abort();
}
MP_POOL_TASK(crash_task)

static long init_value;
static int init_from_args(const void *args, size_t size) {
  if (size != sizeof(long))
    return -1;
  init_value = *(const long *)args;
  return 0;
}
MP_POOL_INIT(init_from_args)

static int init_any(const void *args, size_t size) {
  (void)args, (void)size;
  return 0;
}
MP_POOL_INIT(init_any)

static int init_fails(const void *args, size_t size) {
  (void)args, (void)size;
  return -42;
}
MP_POOL_INIT(init_fails)

static int read_init(const void *in, size_t n, void *out, size_t cap,
                     size_t *len) {
  (void)in, (void)n, (void)cap;
  memcpy(out, &init_value, sizeof init_value);
  *len = sizeof init_value;
  return 0;
}
MP_POOL_TASK(read_init)

static mp_pool *mpi_pool(int processes) {
  mp_pool *p = NULL;
  mp_pool_opts o = {.processes = processes, .backend = MP_POOL_BACKEND_MPI};
  CHECK_RC(mp_pool_new(&p, &o), 0);
  return p;
}

/* ---- cases ---------------------------------------------------------------- */

static _Atomic int callbacks;
static void count_cb(void *u, int status, const void *r, size_t n) {
  (void)u, (void)r, (void)n;
  if (status == 0)
    atomic_fetch_add(&callbacks, 1);
}
static _Atomic size_t last_progress;
static void progress(void *u, size_t done, size_t total) {
  (void)u, (void)total;
  atomic_store(&last_progress, done);
}

/* Every call of the pool, and ordering: map and imap in order, imap_unordered
 * every item once. */
static int every_call(void) {
  mp_pool *p = mpi_pool(2);
  if (p == NULL)
    return 1;
  CHECK(mp_pool_processes(p) == 2); /* two worker ranks */
  enum { N = 2000 };
  static long in[N], out[N];
  for (long i = 0; i < N; i++)
    in[i] = i;
  mp_pool_map_opts mo = {.progress = progress};
  CHECK_RC(mp_pool_map(p, square, in, N, 8, out, 8, &mo), 0);
  for (long i = 0; i < N; i++)
    CHECK(out[i] == i * i);
  CHECK(atomic_load(&last_progress) == N);
  /* map_async with a callback, chunksize 1. */
  memset(out, 0, sizeof out);
  mp_async_result *r;
  mp_pool_map_opts ao = {.chunksize = 1, .callback = count_cb};
  CHECK_RC(mp_pool_map_async(p, &r, square, in, N, 8, out, 8, &ao), 0);
  CHECK_RC(mp_async_result_get(r, 60), 0);
  mp_async_result_free(r);
  CHECK(atomic_load(&callbacks) == 1);
  for (long i = 0; i < N; i++)
    CHECK(out[i] == i * i);
  /* starmap over structs of arguments. */
  struct pair pairs[100];
  int prod[100];
  for (int i = 0; i < 100; i++)
    pairs[i] = (struct pair){i, i + 1};
  CHECK_RC(mp_pool_starmap(p, multiply, pairs, 100, sizeof *pairs, prod,
                           sizeof *prod, NULL),
           0);
  for (int i = 0; i < 100; i++)
    CHECK(prod[i] == i * (i + 1));
  /* imap: in order; imap_unordered: each once. */
  mp_pool_iter *it;
  mp_pool_map_opts io = {.chunksize = 3};
  CHECK_RC(mp_pool_imap(p, &it, square, in, 500, 8, out, 8, &io), 0);
  size_t idx, expect = 0;
  int st;
  while (mp_pool_iter_next(it, 60, &idx, &st) == 0) {
    CHECK(idx == expect++);
    CHECK(st == 0 && out[idx] == (long)(idx * idx));
  }
  CHECK(expect == 500);
  mp_pool_iter_free(it);
  static char seen[500];
  memset(seen, 0, sizeof seen);
  CHECK_RC(mp_pool_imap_unordered(p, &it, square, in, 500, 8, out, 8, &io),
           0);
  size_t n = 0;
  while (mp_pool_iter_next(it, 60, &idx, &st) == 0) {
    CHECK(idx < 500 && !seen[idx]);
    seen[idx] = 1;
    n++;
  }
  CHECK(n == 500);
  mp_pool_iter_free(it);
  /* apply, apply_async with a callback, apply_ex with a context. */
  char buf[16];
  size_t len = 0;
  CHECK_RC(mp_pool_apply(p, upper, "hello", 5, buf, sizeof buf, &len), 0);
  CHECK(len == 5 && memcmp(buf, "HELLO", 5) == 0);
  mp_pool_apply_opts aa = {.callback = count_cb};
  CHECK_RC(mp_pool_apply_async(p, &r, upper, "abc", 3, &aa), 0);
  CHECK_RC(mp_async_result_get(r, 60), 0);
  const char *d = mp_async_result_data(r, &len);
  CHECK(d != NULL && len == 3 && memcmp(d, "ABC", 3) == 0);
  mp_async_result_free(r);
  CHECK(atomic_load(&callbacks) == 2);
  long add = 1000;
  mp_pool_map_opts co = {.context = &add, .context_size = sizeof add,
                         .chunksize = 7};
  CHECK_RC(mp_pool_map(p, add_context, in, N, 8, out, 8, &co), 0);
  for (long i = 0; i < N; i++)
    CHECK(out[i] == i + 1000);
  /* An unregistered function is refused at submission. */
  CHECK_RC(mp_pool_map(p, not_registered, in, 1, 8, out, 8, NULL),
           MP_ENOENT);
  /* An MPI pool takes no start-method context. */
  mp_context *ctx;
  CHECK_RC(mp_context_new(&ctx, MP_START_SPAWN), 0);
  mp_pool *cp = NULL;
  mp_pool_opts co2 = {.backend = MP_POOL_BACKEND_MPI, .context = ctx};
  CHECK_RC(mp_pool_new(&cp, &co2), MP_EINVAL);
  mp_context_free(ctx);
  /* Rank 0 may run a local pool beside it. */
  mp_pool *lp = NULL;
  mp_pool_opts lo = {.processes = 1, .backend = MP_POOL_BACKEND_LOCAL};
  CHECK_RC(mp_pool_new(&lp, &lo), 0);
  CHECK_RC(mp_pool_map(lp, square, in, 10, 8, out, 8, NULL), 0);
  mp_pool_free(lp);
  /* Only one MPI pool at a time. */
  mp_pool *q = NULL;
  mp_pool_opts qo = {.backend = MP_POOL_BACKEND_MPI};
  CHECK_RC(mp_pool_new(&q, &qo), MP_EBUSY);
  mp_pool_free(p);
  /* ... and a new one once it is freed. */
  p = mpi_pool(1);
  CHECK_RC(mp_pool_map(p, square, in, 10, 8, out, 8, NULL), 0);
  mp_pool_free(p);
  return 0;
}
/* MP_MPI_CASE(every_call) */

/* A crashing task fails alone with MP_EWORKERDIED; the ranks live on. */
static int crashing_tasks(void) {
  mp_pool *p = mpi_pool(2);
  if (p == NULL)
    return 1;
  enum { N = 40 };
  long in[N], out[N];
  int statuses[N];
  for (long i = 0; i < N; i++)
    in[i] = i;
  mp_task_error err;
  mp_pool_map_opts mo = {.chunksize = 4, .statuses = statuses,
                         .error = &err};
  CHECK_RC(mp_pool_map(p, square_or_crash, in, N, 8, out, 8, &mo), -5);
  CHECK(err.index == 7);
  for (long i = 0; i < N; i++) {
    if (i == 13)
      CHECK(statuses[i] == MP_EWORKERDIED);
    else if (i != 0 && i % 7 == 0)
      CHECK(statuses[i] == -5);
    else
      CHECK(statuses[i] == 0 && out[i] == i * i);
  }
  mp_pool_apply_opts ao = {.error = &err};
  CHECK_RC(mp_pool_apply_ex(p, crash_task, NULL, 0, NULL, 0, NULL, &ao),
           MP_EWORKERDIED);
  /* Both ranks still serve. */
  static long big[10000], bout[10000];
  for (long i = 0; i < 10000; i++)
    big[i] = i;
  CHECK_RC(mp_pool_map(p, square, big, 10000, 8, bout, 8, NULL), 0);
  CHECK(bout[9999] == 9999L * 9999L);
  CHECK_RC(mp_pool_error(p, NULL), 0);
  mp_pool_free(p);
  return 0;
}
/* MP_MPI_CASE(crashing_tasks) */

/* task_timeout holds on the ranks: the item that overruns it fails with
 * MP_ETIMEDOUT (its local worker is killed and replaced by the rank's
 * pool, whose result loop runs on the rank's main thread), the others
 * complete, and the ranks serve on. */
static int task_timeout(void) {
  mp_pool *p = NULL;
  mp_pool_opts o = {.processes = 1, .task_timeout = 0.3,
                    .backend = MP_POOL_BACKEND_MPI};
  CHECK_RC(mp_pool_new(&p, &o), 0);
  if (p == NULL)
    return 1;
  enum { N = 8 };
  int in[N], out[N], statuses[N];
  for (int i = 0; i < N; i++)
    in[i] = i == 3 ? 20000 : 10;
  mp_pool_map_opts mo = {.chunksize = 1, .statuses = statuses};
  double t0 = now();
  CHECK_RC(mp_pool_map(p, sleep_item, in, N, sizeof *in, out, sizeof *out,
                       &mo),
           MP_ETIMEDOUT);
  CHECK(now() - t0 < 10.0); /* not the 20 s the item would sleep */
  for (int i = 0; i < N; i++)
    CHECK(statuses[i] == (i == 3 ? MP_ETIMEDOUT : 0));
  for (int i = 0; i < N; i++)
    in[i] = 1;
  CHECK_RC(mp_pool_map(p, sleep_item, in, N, sizeof *in, out, sizeof *out,
                       NULL),
           0);
  CHECK_RC(mp_pool_close(p), 0);
  CHECK_RC(mp_pool_join(p, MP_FOREVER), 0);
  mp_pool_free(p);
  return 0;
}
/* MP_MPI_CASE(task_timeout) */

/* The initializer runs in every local worker of every rank, with the
 * initargs bytes. */
static int initializer(void) {
  long v = 4242;
  mp_pool_opts o = {.processes = 2, .backend = MP_POOL_BACKEND_MPI,
                    .initializer = init_from_args, .initargs = &v,
                    .initargs_size = sizeof v};
  mp_pool *p;
  CHECK_RC(mp_pool_new(&p, &o), 0);
  if (failures)
    return 1;
  for (int i = 0; i < 20; i++) {
    long got = 0;
    CHECK_RC(mp_pool_apply(p, read_init, NULL, 0, &got, sizeof got, NULL), 0);
    CHECK(got == 4242);
  }
  mp_pool_free(p);
  /* A failing initializer fails mp_pool_new, once; the ranks serve the
   * next pool. */
  mp_pool_opts f = {.processes = 1, .backend = MP_POOL_BACKEND_MPI,
                    .initializer = init_fails};
  p = NULL;
  CHECK_RC(mp_pool_new(&p, &f), -42);
  CHECK(p == NULL);
  CHECK_RC(mp_pool_new(&p, &o), 0);
  long got = 0;
  CHECK_RC(mp_pool_apply(p, read_init, NULL, 0, &got, sizeof got, NULL), 0);
  CHECK(got == 4242);
  mp_pool_free(p);
  return 0;
}
/* MP_MPI_CASE(initializer) */

/* close then join finishes the work; terminate stops long tasks at once. */
static int close_terminate(void) {
  mp_pool *p = mpi_pool(2);
  if (p == NULL)
    return 1;
  int ms[40], pids[40];
  for (int i = 0; i < 40; i++)
    ms[i] = 5;
  mp_async_result *r;
  CHECK_RC(mp_pool_map_async(p, &r, sleep_item, ms, 40, sizeof(int), pids,
                             sizeof(int), NULL),
           0);
  CHECK_RC(mp_pool_close(p), 0);
  CHECK_RC(mp_pool_join(p, 60), 0);
  CHECK(mp_async_result_ready(r) && mp_async_result_get(r, 0) == 0);
  mp_async_result_free(r);
  mp_pool_free(p);
  p = mpi_pool(2);
  for (int i = 0; i < 40; i++)
    ms[i] = 20000;
  CHECK_RC(mp_pool_map_async(p, &r, sleep_item, ms, 40, sizeof(int), pids,
                             sizeof(int), NULL),
           0);
  sleep_ms(300);
  double t0 = now();
  CHECK_RC(mp_pool_terminate(p), 0);
  CHECK(now() - t0 < 10);
  CHECK_RC(mp_async_result_get(r, 0), MP_ECLOSED);
  mp_async_result_free(r);
  mp_pool_free(p);
  return 0;
}
/* MP_MPI_CASE(close_terminate) */

/* A worker rank SIGKILLed mid-map: the master notices its silence, fails
 * one item with MP_EWORKERDIED, runs the rest on the other rank, and
 * never hangs; the pool goes on with one rank. */
static int killed_rank(void) {
  mp_pool *p = mpi_pool(2);
  if (p == NULL)
    return 1;
  /* Find the worker ranks' pids (same host here): items that sleep
   * spread over both ranks. */
  pid_t ranks[2] = {0, 0};
  int naps[16], who[16];
  for (int i = 0; i < 16; i++)
    naps[i] = 30;
  mp_pool_map_opts one = {.chunksize = 1};
  CHECK_RC(mp_pool_map(p, sleep_item, naps, 16, sizeof(int), who,
                       sizeof(int), &one),
           0);
  for (int i = 0; i < 16; i++) {
    if (ranks[0] == 0)
      ranks[0] = who[i];
    else if (who[i] != ranks[0])
      ranks[1] = who[i];
  }
  enum { N = 200 };
  int ms[N], pids[N], statuses[N];
  for (int i = 0; i < N; i++)
    ms[i] = 10;
  mp_async_result *r;
  mp_pool_map_opts mo = {.chunksize = 2, .statuses = statuses};
  CHECK_RC(mp_pool_map_async(p, &r, sleep_item, ms, N, sizeof(int), pids,
                             sizeof(int), &mo),
           0);
  sleep_ms(200);
  CHECK(ranks[0] > 0 && ranks[1] > 0 && ranks[0] != getpid());
  CHECK(kill(ranks[0], SIGKILL) == 0);
  double t0 = now();
  int rc = mp_async_result_get(r, 60);
  CHECK(now() - t0 < 30);
  CHECK(rc == 0 || rc == MP_EWORKERDIED);
  int died = 0;
  for (int i = 0; i < N; i++) {
    CHECK(statuses[i] == 0 || statuses[i] == MP_EWORKERDIED);
    died += statuses[i] != 0;
  }
  CHECK(died <= 1);
  fprintf(stderr, "rank pid %d killed: %d item(s) failed, map ended after "
                  "%.2f s\n", (int)ranks[0], died, now() - t0);
  mp_async_result_free(r);
  /* The pool goes on with the other rank. */
  long in[100], out[100];
  for (long i = 0; i < 100; i++)
    in[i] = i;
  CHECK_RC(mp_pool_map(p, square, in, 100, 8, out, 8, NULL), 0);
  CHECK(out[99] == 99 * 99);
  mp_pool_free(p);
  return 0;
}
/* MP_MPI_CASE(killed_rank) */

/* workers_per_rank counts the distinct local workers of each of the two
 * worker ranks in a map of n items of ms each. */
static void workers_per_rank(mp_pool *p, int n, int ms, size_t chunksize,
                             int count[2]) {
  enum { MAX = 256 };
  static int naps[MAX];
  static struct who w[MAX];
  n = n < MAX ? n : MAX;
  for (int i = 0; i < MAX; i++)
    naps[i] = ms;
  mp_pool_map_opts mo = {.chunksize = chunksize};
  CHECK_RC(mp_pool_map(p, who_item, naps, (size_t)n, sizeof(int), w,
                       sizeof *w, &mo),
           0);
  int ranks[2] = {0, 0}, nseen[2] = {0, 0};
  static int seen[2][MAX];
  for (int i = 0; i < n; i++) {
    int r = w[i].rank_pid == ranks[0] || ranks[0] == 0 ? 0 : 1;
    if (ranks[r] == 0)
      ranks[r] = w[i].rank_pid;
    CHECK(w[i].rank_pid == ranks[r]);
    bool known = false;
    for (int k = 0; k < nseen[r]; k++)
      known |= seen[r][k] == w[i].worker_pid;
    if (!known)
      seen[r][nseen[r]++] = w[i].worker_pid;
  }
  count[0] = nseen[0];
  count[1] = nseen[1];
}

/* processes 0: each worker rank's local pool is its share of the host's
 * cores (here both ranks share this host: its CPUs / 2), not all of them;
 * an explicit processes is what each rank runs; and with
 * maxtasksperchild a rank keeps the sender's chunks (one local worker per
 * chunk of one item here), as maxtasksperchild counts them. */
static int rank_workers(void) {
  int cpus = mp_cpu_count();
  int share = cpus / 2 > 0 ? cpus / 2 : 1;
  if (sysconf(_SC_NPROCESSORS_ONLN) > cpus)
    share = cpus; /* the launcher bound this rank: its CPUs are its share */
  mp_pool *p = mpi_pool(0);
  if (p == NULL)
    return 1;
  int count[2];
  /* Enough items of 10 ms that every local worker of a rank gets some. */
  workers_per_rank(p, 16 * share, 10, 1, count);
  if (share <= 16)
    CHECK(count[0] == share && count[1] == share);
  else
    CHECK(count[0] <= share && count[1] <= share);
  mp_pool_free(p);
  p = mpi_pool(3);
  workers_per_rank(p, 48, 10, 1, count);
  CHECK(count[0] == 3 && count[1] == 3);
  mp_pool_free(p);
  mp_pool_opts o = {.processes = 1, .maxtasksperchild = 1,
                    .backend = MP_POOL_BACKEND_MPI};
  p = NULL;
  CHECK_RC(mp_pool_new(&p, &o), 0);
  if (p == NULL)
    return 1;
  workers_per_rank(p, 20, 0, 1, count);
  CHECK(count[0] + count[1] == 20); /* a fresh worker for every item */
  mp_pool_free(p);
  return 0;
}
/* MP_MPI_CASE(rank_workers) */

/* The tail of a map: a worker rank is kept milliseconds of work deep,
 * but near the end no rank is given more than its share of what is left
 * (pool.c, "The tail of an MPI map"), so a rank three times slower than
 * the other does not hold a deep queue while the fast one has run dry:
 * both ranks' last items end within a few of the slow one's naps. (Kept
 * 32 deep, as before, the slow rank ended about 64 ms after the fast
 * one.) */
static int uneven_ranks_end_together(void) {
  enum { N = 240 };
  static struct ended e[N];
  mp_pool *p = mpi_pool(1);
  if (p == NULL)
    return 1;
  mp_pool_map_opts mo = {.chunksize = 1};
  CHECK_RC(mp_pool_map(p, uneven_item, NULL, N, 0, e, sizeof *e, &mo), 0);
  double last[3] = {0, 0, 0};
  int ran[3] = {0, 0, 0};
  for (int i = 0; i < N; i++) {
    CHECK(e[i].rank == 1 || e[i].rank == 2);
    if (e[i].rank < 1 || e[i].rank > 2)
      continue;
    ran[e[i].rank]++;
    if (e[i].at > last[e[i].rank])
      last[e[i].rank] = e[i].at;
  }
  CHECK(ran[1] > ran[2]);
  double gap_ms =
      (last[2] > last[1] ? last[2] - last[1] : last[1] - last[2]) * 1e3;
  fprintf(stderr, "uneven ranks: %d and %d items, last ends %.1f ms apart\n",
          ran[1], ran[2], gap_ms);
  CHECK(gap_ms < 30);
  mp_pool_free(p);
  return 0;
}
/* MP_MPI_CASE(uneven_ranks_end_together) */

/* A worker rank killed while no pool is open (no heartbeats then): the
 * next pool's opening message, too big to go eagerly, is not waited for
 * forever: mp_pool_new fails with MP_EWORKERDIED after the silence limit,
 * and the pool after it runs on the other rank. */
static int rank_killed_between_pools(void) {
  mp_pool *p = mpi_pool(1);
  if (p == NULL)
    return 1;
  int naps[16], who[16];
  for (int i = 0; i < 16; i++)
    naps[i] = 30;
  mp_pool_map_opts one = {.chunksize = 1};
  CHECK_RC(mp_pool_map(p, sleep_item, naps, 16, sizeof(int), who,
                       sizeof(int), &one),
           0);
  mp_pool_free(p);
  pid_t victim = who[0];
  CHECK(victim > 0 && victim != getpid());
  CHECK(kill(victim, SIGKILL) == 0);
  sleep_ms(200);
  static char args[256 * 1024]; /* far past Open MPI's eager limit */
  mp_pool_opts o = {.processes = 1, .backend = MP_POOL_BACKEND_MPI,
                    .initializer = init_any, .initargs = args,
                    .initargs_size = sizeof args};
  p = NULL;
  double t0 = now();
  CHECK_RC(mp_pool_new(&p, &o), MP_EWORKERDIED);
  CHECK(p == NULL);
  CHECK(now() - t0 < 30);
  fprintf(stderr, "rank pid %d killed: the next pool failed after %.2f s\n",
          (int)victim, now() - t0);
  CHECK_RC(mp_pool_new(&p, &o), 0);
  if (p == NULL)
    return 1;
  long in[100], out[100];
  for (long i = 0; i < 100; i++)
    in[i] = i;
  CHECK_RC(mp_pool_map(p, square, in, 100, 8, out, 8, NULL), 0);
  CHECK(out[99] == 99 * 99);
  mp_pool_free(p);
  return 0;
}
/* MP_MPI_CASE(rank_killed_between_pools) */

/* A map of 1,000,000 small items. */
static int million_items(void) {
  mp_pool *p = mpi_pool(2);
  if (p == NULL)
    return 1;
  enum { N = 1000000 };
  long *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
  for (long i = 0; i < N; i++)
    in[i] = i;
  double t0 = now();
  CHECK_RC(mp_pool_map(p, square, in, N, 8, out, 8, NULL), 0);
  double t = now() - t0;
  for (long i = 0; i < N; i++)
    if (out[i] != i * i) {
      CHECK(out[i] == i * i);
      break;
    }
  fprintf(stderr, "1,000,000 items in %.3f s\n", t);
  free(in);
  free(out);
  mp_pool_free(p);
  return 0;
}
/* MP_MPI_CASE(million_items) */

#define CASE(name) {#name, name}
static const struct {
  const char *name;
  int (*fn)(void);
} cases[] = {CASE(every_call),   CASE(crashing_tasks),
             CASE(initializer),  CASE(close_terminate),
             CASE(killed_rank),  CASE(million_items),
             CASE(rank_workers), CASE(rank_killed_between_pools),
             CASE(task_timeout), CASE(uneven_ranks_end_together)};

int main(int argc, char **argv) {
  /* Ranks 1.. become the pool's worker ranks here and never return. */
  if (mp_child_main(argc, argv) != 0)
    return 1;
  if (argc < 2) {
    fprintf(stderr, "usage: mpirun -n 3 %s <case>\n", argv[0]);
    return 2;
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (strcmp(cases[i].name, argv[1]) != 0)
      continue;
    int rc = cases[i].fn();
    if (rc != 0 || failures != 0) {
      fprintf(stderr, "FAILED %s (%d failures)\n", argv[1], failures);
      return 1;
    }
    fprintf(stderr, "OK %s\n", argv[1]);
    return 0;
  }
  fprintf(stderr, "no case %s\n", argv[1]);
  return 2;
}
