/* bench_mpi_pool.c - the pool's MPI backend against mpi4py.futures and
 * against the local pool, in one run.
 *
 * mpi_pool_map/chunksize1   a map of a trivial function (x * x) over
 *                           100,000 integers with chunksize 1 under
 *                           `mpirun -n 3` (2 worker ranks). ns per item.
 *                           mpi4py: the same with
 *                           MPIPoolExecutor.map(chunksize=1) under
 *                           `mpirun -n 3 python3 -m mpi4py.futures`.
 *                           Target: 50x faster than mpi4py.futures.
 * mpi_pool_map/cpu          the seeds' CPU-bound counter (two counts of
 *                           40,000,000 increments) split into 1,000 tasks
 *                           of 80,000. ns per increment. "local" is the
 *                           local Pool on the same cores.
 *                           Target: within 1.1x of the local pool.
 *                           floor_split and floor_relay: the same tasks
 *                           with no library (see "floors" below): what
 *                           the cores do with no messages at all, and
 *                           with the processes the MPI pool has on one
 *                           host (a process per worker that passes its
 *                           tasks on) waiting the cheapest way there is.
 *
 * Like with like: both pools (and the floors) use their default size,
 * which is the same number of workers on one host: a local Pool has
 * mp_cpu_count() workers, and each of the 2 worker ranks a local pool of
 * its share of the host's cores (mp_cpu_count() / 2 here). Only the map
 * is timed, for both: pool creation (for MPI: opening each rank's local
 * pool and forking its workers) and MPI_Init are outside the timed
 * region; so is the floors' fork, and their timer runs from handing out
 * the tasks to the last result read. The local and floor rows run in
 * rank 0 under the same mpirun, ranks 1 and 2 idle.
 *
 * MP_BENCH_TIMELINE=1 prints where each worker's time went in the cpu
 * cases (see timeline_print), and the CPU every thread of the job used
 * during the map (see cpu_print).
 *
 * Run directly (as `make bench` and CTest do), the program starts itself
 * under mpirun (3 ranks on this host, loopback only) and then the mpi4py
 * peer (bench/peers/mpi4py_pool.py with Debian's /usr/bin/python3, which
 * has python3-mpi4py); under mpirun, rank 0 measures and ranks 1 and 2
 * are the pool's worker ranks. Without MPI in the library the cases are
 * skipped with the reason. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"

extern char **environ;

#define MP__FLOOR_MIN(a, b) ((a) < (b) ? (a) : (b))

static int square(const void *in, void *out) {
  int64_t x = *(const int64_t *)in;
  *(int64_t *)out = x * x;
  return 0;
}
MP_POOL_MAP(square)

__attribute__((noinline)) static uint64_t count(uint64_t n) {
  uint64_t i = 0;
  for (uint64_t k = 0; k < n; k++) {
    i = i + 1;
    __asm__ volatile("" : "+r"(i));
  }
  return i;
}

static int counter(const void *in, void *out) {
  *(uint64_t *)out = count(*(const uint64_t *)in);
  return 0;
}
MP_POOL_MAP(counter)

/* With MP_BENCH_TIMELINE=1 in rank 0's environment, the cpu cases map
 * counter_tl instead, which records when each task ran and where, and
 * print per worker process: its tasks, when its first began and its last
 * ended (ms after the map began), the time it ran tasks and the time
 * between them (docs/pool.md, "Where a CPU-bound map's time goes"). */
typedef struct tl_rec {
  int64_t start, end, pid;
} tl_rec;

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int counter_tl(const void *in, void *out) {
  tl_rec *r = out;
  r->start = mono_ns();
  uint64_t n = count(*(const uint64_t *)in);
  r->end = mono_ns();
  r->pid = n == *(const uint64_t *)in ? (int64_t)getpid() : -1;
  return 0;
}
MP_POOL_MAP(counter_tl)

static int tl_cmp(const void *a, const void *b) {
  const tl_rec *x = a, *y = b;
  if (x->pid != y->pid)
    return x->pid < y->pid ? -1 : 1;
  return (x->start > y->start) - (x->start < y->start);
}

static void timeline_print(const char *what, tl_rec *r, int n, int64_t t0,
                           int64_t t1) {
  qsort(r, (size_t)n, sizeof *r, tl_cmp);
  printf("# timeline %s: map %.2f ms\n", what, (double)(t1 - t0) / 1e6);
  for (int i = 0; i < n;) {
    int j = i;
    int64_t busy = 0, gaps = 0;
    for (; j < n && r[j].pid == r[i].pid; j++) {
      busy += r[j].end - r[j].start;
      if (j > i)
        gaps += r[j].start - r[j - 1].end;
    }
    printf("#   pid %lld: %d tasks, first %.2f ms, last %.2f ms, busy %.2f "
           "ms, between tasks %.2f ms\n",
           (long long)r[i].pid, j - i, (double)(r[i].start - t0) / 1e6,
           (double)(r[j - 1].end - t0) / 1e6, (double)busy / 1e6,
           (double)gaps / 1e6);
    i = j;
  }
}


/* With the timeline, the CPU time every thread of this job's processes
 * (those named like this program, on this host) used during the map, and
 * how many times each was put on a CPU, from /proc/PID/task/TID/schedstat:
 * the workers' (pids in the timeline) and the others' (rank 0's main
 * thread, proxies and result thread; each rank's main thread and its local
 * pool's result thread), to tell overhead that competes for the cores from
 * idle time. Printed as "cpu: workers W ms, others O ms (O/W): PID/TID:
 * ms/runs ..." for every other thread that used more than 50 us. */
enum { CPU_MAX = 512 };
typedef struct cpu_snap {
  int n;
  int64_t pid[CPU_MAX], tid[CPU_MAX], ns[CPU_MAX], runs[CPU_MAX];
} cpu_snap;

static void cpu_take(cpu_snap *c) {
  c->n = 0;
  char self[64] = "", buf[256];
  FILE *f = fopen("/proc/self/comm", "r");
  if (f != NULL) {
    if (fgets(self, sizeof self, f) == NULL)
      self[0] = '\0';
    fclose(f);
  }
  DIR *d = opendir("/proc");
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && c->n < CPU_MAX) {
    long pid = atol(e->d_name);
    if (pid <= 0)
      continue;
    snprintf(buf, sizeof buf, "/proc/%ld/comm", pid);
    char comm[64] = "";
    f = fopen(buf, "r");
    if (f == NULL)
      continue;
    if (fgets(comm, sizeof comm, f) == NULL)
      comm[0] = '\0';
    fclose(f);
    if (strcmp(comm, self) != 0)
      continue;
    snprintf(buf, sizeof buf, "/proc/%ld/task", pid);
    DIR *t = opendir(buf);
    if (t == NULL)
      continue;
    struct dirent *te;
    while ((te = readdir(t)) != NULL && c->n < CPU_MAX) {
      long tid = atol(te->d_name);
      if (tid <= 0)
        continue;
      snprintf(buf, sizeof buf, "/proc/%ld/task/%ld/schedstat", pid, tid);
      f = fopen(buf, "r");
      long long ns = 0, wait = 0, runs = 0;
      if (f == NULL)
        continue;
      if (fscanf(f, "%lld %lld %lld", &ns, &wait, &runs) != 3)
        ns = runs = 0;
      fclose(f);
      c->pid[c->n] = pid;
      c->tid[c->n] = tid;
      c->ns[c->n] = ns;
      c->runs[c->n] = runs;
      c->n++;
    }
    closedir(t);
  }
  closedir(d);
}

/* The calling thread's run time: its scans of /proc are not the map's. */
static int64_t cpu_self(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void cpu_fix_self(cpu_snap *c, int64_t self_ns) {
  for (int i = 0; i < c->n; i++)
    if (c->tid[i] == (int64_t)gettid())
      c->ns[i] = self_ns;
}

static void cpu_print(const cpu_snap *a, const cpu_snap *b, const tl_rec *r,
                      int n) {
  int64_t workers = 0, others = 0;
  char line[1024] = "";
  size_t at = 0;
  for (int i = 0; i < b->n; i++) {
    int64_t before = 0, rbefore = 0;
    for (int j = 0; j < a->n; j++)
      if (a->tid[j] == b->tid[i]) {
        before = a->ns[j];
        rbefore = a->runs[j];
      }
    int64_t dt = b->ns[i] - before, dr = b->runs[i] - rbefore;
    bool w = false;
    for (int k = 0; k < n && !w; k++)
      w = r[k].pid == b->tid[i];
    if (w) {
      workers += dt;
    } else {
      others += dt;
      if (dt > 50000 && at < sizeof line - 64)
        at += (size_t)snprintf(line + at, sizeof line - at, " %lld/%lld:%.2f/%lld",
                               (long long)b->pid[i], (long long)b->tid[i],
                               (double)dt / 1e6, (long long)dr);
    }
  }
  printf("#   cpu: workers %.2f ms, others %.2f ms (%.2f per worker ms):%s\n",
         (double)workers / 1e6, (double)others / 1e6,
         workers > 0 ? (double)others / (double)workers : 0.0, line);
}

static int new_pool(bench_run *run, mp_pool **p, int backend) {
  /* The default size either way: the same workers on this host (see
   * above). */
  mp_pool_opts o = {.backend = backend};
  int rc = mp_pool_new(p, &o);
  if (rc == MP_ENOTSUP)
    return bench_skip(run, "no MPI pool: %s", mp_error_detail());
  if (rc != 0)
    return bench_fail(run, "mp_pool_new: %s", mp_err_name(rc));
  return 0;
}

static int map_case(bench_run *run, int backend) {
  size_t n = (size_t)run->iters;
  int64_t *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
  if (in == NULL || out == NULL) {
    free(in);
    free(out);
    return bench_fail(run, "out of memory");
  }
  for (size_t i = 0; i < n; i++)
    in[i] = (int64_t)i;
  mp_pool *p;
  int rc = new_pool(run, &p, backend);
  if (rc == 0) {
    mp_pool_map_opts mo = {.chunksize = 1};
    bench_timer_start(run);
    rc = mp_pool_map(p, square, in, n, sizeof *in, out, sizeof *out, &mo);
    bench_timer_stop(run);
    mp_pool_free(p);
    if (rc != 0)
      rc = bench_fail(run, "mp_pool_map: %s", mp_err_name(rc));
    else
      for (size_t i = 0; i < n; i++)
        run->done += out[i] == (int64_t)i * (int64_t)i;
  }
  free(in);
  free(out);
  return rc;
}

static int map_mpi(bench_run *run) {
  return map_case(run, MP_POOL_BACKEND_MPI);
}
static int map_local(bench_run *run) {
  return map_case(run, MP_POOL_BACKEND_LOCAL);
}

/* cpu_case: run->iters increments in 1,000 tasks. */
static int cpu_case(bench_run *run, int backend) {
  enum { TASKS = 1000 };
  static uint64_t in[TASKS], out[TASKS];
  static tl_rec recs[TASKS];
  const char *tl = getenv("MP_BENCH_TIMELINE");
  bool timeline = tl != NULL && strcmp(tl, "1") == 0;
  for (int i = 0; i < TASKS; i++)
    in[i] = run->iters / TASKS + (i < (int)(run->iters % TASKS));
  mp_pool *p;
  int rc = new_pool(run, &p, backend);
  if (rc != 0)
    return rc;
  static cpu_snap c0, c1;
  if (timeline) {
    cpu_take(&c0);
    cpu_fix_self(&c0, cpu_self());
  }
  int64_t t0 = mono_ns();
  bench_timer_start(run);
  if (timeline)
    rc = mp_pool_map(p, counter_tl, in, TASKS, sizeof *in, recs,
                     sizeof *recs, &(mp_pool_map_opts){.chunksize = 1});
  else
    rc = mp_pool_map(p, counter, in, TASKS, sizeof *in, out, sizeof *out,
                     &(mp_pool_map_opts){.chunksize = 1});
  bench_timer_stop(run);
  int64_t t1 = mono_ns();
  if (timeline) {
    int64_t self_ns = cpu_self();
    cpu_take(&c1);
    cpu_fix_self(&c1, self_ns);
  }
  mp_pool_free(p);
  if (rc != 0)
    return bench_fail(run, "mp_pool_map: %s", mp_err_name(rc));
  for (int i = 0; i < TASKS; i++)
    run->done += timeline ? (recs[i].pid > 0 ? in[i] : 0) : out[i];
  if (timeline)
  {
    timeline_print(backend == MP_POOL_BACKEND_MPI ? "mpi" : "local", recs,
                   TASKS, t0, t1);
    cpu_print(&c0, &c1, recs, TASKS);
  }
  return 0;
}

static int cpu_mpi(bench_run *run) { return cpu_case(run, MP_POOL_BACKEND_MPI); }

/* ---- floors: the same 1,000 tasks with no library ------------------------
 * FLOOR_UNITS processes (as many as the local pool's workers), forked
 * before the timer; each gets a contiguous share of the tasks up front.
 * floor_split: each process runs its share and writes all its results back
 * through a pipe at the end (one message each way). floor_relay: the
 * structure the MPI pool has on one host, a rank process and its local
 * worker: each process forks a worker behind a pipe, passes its share on
 * in batches of FLOOR_BATCH tasks (about as long as the pool's ~1.5 ms
 * batches) and forwards each batch's results to the parent as they come,
 * everyone waiting in blocking reads (what MPI cannot do: see
 * docs/pool.md). */
enum { FLOOR_TASKS = 1000, FLOOR_BATCH = 50, FLOOR_MAX_UNITS = 64 };

static int full_write(int fd, const void *p, size_t len) {
  const char *c = p;
  while (len > 0) {
    ssize_t n = write(fd, c, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    c += n;
    len -= (size_t)n;
  }
  return 0;
}

static int full_read(int fd, void *p, size_t len) {
  char *c = p;
  while (len > 0) {
    ssize_t n = read(fd, c, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    c += n;
    len -= (size_t)n;
  }
  return 0;
}

/* floor_worker reads batches (a count, then the inputs) from in and
 * writes each batch's results to out, until the end of in. */
static void floor_worker(int in, int out) {
  uint32_t n;
  uint64_t buf[FLOOR_TASKS];
  while (full_read(in, &n, sizeof n) == 0 && n <= FLOOR_TASKS &&
         full_read(in, buf, n * sizeof *buf) == 0) {
    for (uint32_t i = 0; i < n; i++)
      buf[i] = count(buf[i]);
    if (full_write(out, buf, n * sizeof *buf) != 0)
      break;
  }
}

/* floor_unit is one process of a floor: it reads its share from in (a
 * count, then the inputs) and writes the results to out, in one piece
 * (split) or batch by batch through a worker of its own (relay). */
static void floor_unit(int in, int out, bool relay) {
  uint32_t n;
  static uint64_t buf[FLOOR_TASKS];
  int to[2] = {-1, -1}, from[2] = {-1, -1};
  pid_t w = -1;
  if (relay) {
    if (pipe(to) != 0 || pipe(from) != 0)
      return;
    w = fork();
    if (w < 0)
      return;
    if (w == 0) {
      close(to[1]);
      close(from[0]);
      floor_worker(to[0], from[1]);
      _exit(0);
    }
    close(to[0]);
    close(from[1]);
  }
  if (full_read(in, &n, sizeof n) != 0 || n > FLOOR_TASKS ||
      full_read(in, buf, n * sizeof *buf) != 0)
    return;
  if (!relay) {
    for (uint32_t i = 0; i < n; i++)
      buf[i] = count(buf[i]);
    (void)full_write(out, buf, n * sizeof *buf);
    return;
  }
  /* All batches go at once (the pipe holds them), the results come back
   * one batch at a time and go straight on. */
  for (uint32_t at = 0; at < n; at += FLOOR_BATCH) {
    uint32_t k = MP__FLOOR_MIN(FLOOR_BATCH, n - at);
    if (full_write(to[1], &k, sizeof k) != 0 ||
        full_write(to[1], buf + at, k * sizeof *buf) != 0)
      return;
  }
  close(to[1]);
  for (uint32_t at = 0; at < n; at += FLOOR_BATCH) {
    uint32_t k = MP__FLOOR_MIN(FLOOR_BATCH, n - at);
    if (full_read(from[0], buf + at, k * sizeof *buf) != 0 ||
        full_write(out, buf + at, k * sizeof *buf) != 0)
      return;
  }
  waitpid(w, NULL, 0);
}

static int cpu_floor(bench_run *run, bool relay) {
  int units = MP__FLOOR_MIN(mp_cpu_count(), FLOOR_MAX_UNITS);
  static uint64_t in[FLOOR_TASKS], out[FLOOR_TASKS];
  for (int i = 0; i < FLOOR_TASKS; i++)
    in[i] = run->iters / FLOOR_TASKS + (i < (int)(run->iters % FLOOR_TASKS));
  int down[FLOOR_MAX_UNITS][2], up[FLOOR_MAX_UNITS][2];
  pid_t pid[FLOOR_MAX_UNITS];
  uint32_t first[FLOOR_MAX_UNITS + 1];
  int started = 0, rc = 0;
  fflush(NULL);
  for (int u = 0; u < units; u++) {
    first[u] = (uint32_t)(FLOOR_TASKS * u / units);
    if (pipe(down[u]) != 0) {
      rc = bench_fail(run, "pipe: %s", strerror(errno));
      break;
    }
    if (pipe(up[u]) != 0) {
      close(down[u][0]);
      close(down[u][1]);
      rc = bench_fail(run, "pipe: %s", strerror(errno));
      break;
    }
    pid[u] = fork();
    if (pid[u] == 0) {
      /* The parent's ends (the others it closed before this fork). */
      for (int v = 0; v <= u; v++) {
        close(down[v][1]);
        close(up[v][0]);
      }
      floor_unit(down[u][0], up[u][1], relay);
      _exit(0);
    }
    close(down[u][0]);
    close(up[u][1]);
    if (pid[u] < 0) {
      close(down[u][1]);
      close(up[u][0]);
      rc = bench_fail(run, "fork: %s", strerror(errno));
      break;
    }
    started++;
  }
  first[units] = FLOOR_TASKS;
  if (rc == 0) {
    bench_timer_start(run);
    for (int u = 0; u < units && rc == 0; u++) {
      uint32_t n = first[u + 1] - first[u];
      if (full_write(down[u][1], &n, sizeof n) != 0 ||
          full_write(down[u][1], in + first[u], n * sizeof *in) != 0)
        rc = bench_fail(run, "write to a floor process failed");
    }
    /* Each unit's results in order, read as they come. */
    uint32_t got[FLOOR_MAX_UNITS] = {0};
    int left = units;
    while (rc == 0 && left > 0) {
      struct pollfd pf[FLOOR_MAX_UNITS];
      for (int u = 0; u < units; u++)
        pf[u] = (struct pollfd){
            .fd = got[u] < first[u + 1] - first[u] ? up[u][0] : -1,
            .events = POLLIN};
      if (poll(pf, (nfds_t)units, -1) < 0 && errno != EINTR) {
        rc = bench_fail(run, "poll: %s", strerror(errno));
        break;
      }
      for (int u = 0; u < units && rc == 0; u++) {
        if (pf[u].revents == 0)
          continue;
        uint32_t want = first[u + 1] - first[u] - got[u];
        ssize_t n = read(up[u][0], out + first[u] + got[u],
                         want * sizeof *out);
        if (n <= 0 || n % (ssize_t)sizeof *out != 0) {
          /* Records are 8 bytes, written whole by one process: a short
           * one is not expected from a pipe, so it is an error here. */
          rc = bench_fail(run, "a floor process ended early");
          break;
        }
        got[u] += (uint32_t)(n / (ssize_t)sizeof *out);
        if (got[u] == first[u + 1] - first[u])
          left--;
      }
    }
    bench_timer_stop(run);
  }
  for (int u = 0; u < started; u++) {
    close(down[u][1]);
    close(up[u][0]);
    waitpid(pid[u], NULL, 0);
  }
  if (rc != 0)
    return rc;
  for (int i = 0; i < FLOOR_TASKS; i++)
    run->done += out[i];
  return 0;
}

static int cpu_floor_split(bench_run *run) { return cpu_floor(run, false); }
static int cpu_floor_relay(bench_run *run) { return cpu_floor(run, true); }
static int cpu_local(bench_run *run) {
  return cpu_case(run, MP_POOL_BACKEND_LOCAL);
}

static const bench_case cases[] = {
    {"mpi_pool_map", "chunksize1", "multiproc", "1 int", 100000, 2000,
     "ns/op", map_mpi, NULL},
    {"mpi_pool_map", "chunksize1", "local", "1 int", 100000, 2000, "ns/op",
     map_local, NULL},
    {"mpi_pool_map", "cpu", "multiproc", "1 increment", 80000000, 100000,
     "ns/op", cpu_mpi, NULL},
    {"mpi_pool_map", "cpu", "local", "1 increment", 80000000, 100000,
     "ns/op", cpu_local, NULL},
    {"mpi_pool_map", "cpu", "floor_split", "1 increment", 80000000, 100000,
     "ns/op", cpu_floor_split, NULL},
    {"mpi_pool_map", "cpu", "floor_relay", "1 increment", 80000000, 100000,
     "ns/op", cpu_floor_relay, NULL},
};

/* run_cmd runs argv and returns its exit status (-1 if it did not run). */
__attribute__((unused)) static int run_cmd(char **argv) {
  pid_t pid;
  if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
    return -1;
  int st;
  if (waitpid(pid, &st, 0) != pid)
    return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define MPIRUN_ARGS                                                          \
  "mpirun", "--oversubscribe", "--mca", "btl", "self,vader,tcp", "--mca",    \
      "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo", "-n", \
      "3"

int main(int argc, char **argv) {
  static const bench_suite suite = BENCH_SUITE("bench_mpi_pool", cases);
  if (mp_child_main(argc, argv) != 0)
    return 1;
  if (getenv("OMPI_COMM_WORLD_SIZE") != NULL) { /* rank 0 under mpirun */
    printf("# timed: the map alone, for both pools (pool creation and "
           "MPI_Init are not); both of their default size: a local Pool of "
           "%d workers, or 2 worker ranks of %d each\n",
           mp_cpu_count(), mp_cpu_count() > 1 ? mp_cpu_count() / 2 : 1);
    return bench_main(argc, argv, &suite);
  }
#if !MP_HAVE_MPI
  printf("bench_mpi_pool: skipped: multiproc was built without MPI\n");
  return 0;
#else
  /* As root, Open MPI wants its own consent variables. */
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return 1;
  self[n] = '\0';
  char *args[64] = {MPIRUN_ARGS, self};
  int k = 0;
  while (args[k] != NULL)
    k++;
  for (int i = 1; i < argc && k < 60; i++)
    args[k++] = argv[i];
  args[k] = NULL;
  int status = run_cmd(args);
  if (status != 0) {
    fprintf(stderr, "bench_mpi_pool: mpirun failed (%d)\n", status);
    return 1;
  }
  /* The peer: mpi4py.futures with Debian's python3 (python3-mpi4py). */
  const char *py = "/usr/bin/python3";
  char script[4096];
  snprintf(script, sizeof script, "%s/bench/peers/mpi4py_pool.py",
           MP_SOURCE_DIR);
  char *check[] = {(char *)py, "-c", "import mpi4py.futures", NULL};
  if (access(script, R_OK) != 0 || run_cmd(check) != 0) {
    printf("mpi4py peer: skipped: %s -m mpi4py.futures is not available "
           "(apt-get install python3-mpi4py)\n",
           py);
    return 0;
  }
  char *pargs[64] = {MPIRUN_ARGS, (char *)py, "-m", "mpi4py.futures", script};
  k = 0;
  while (pargs[k] != NULL)
    k++;
  /* The peer takes the options every peer takes (pybench): --smoke,
   * --runs N, --tsv PATH; a --filter that names none of its rows skips
   * it. */
  for (int i = 1; i < argc && k < 60; i++) {
    if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
      const char *f = argv[++i];
      if (strstr("mpi_pool_map/chunksize1/mpi4py", f) == NULL &&
          strstr("mpi_pool_map/cpu/mpi4py", f) == NULL) {
        printf("mpi4py peer: skipped by --filter %s\n", f);
        return 0;
      }
    } else if (strcmp(argv[i], "--smoke") == 0) {
      pargs[k++] = argv[i];
    } else if ((strcmp(argv[i], "--runs") == 0 ||
                strcmp(argv[i], "--tsv") == 0) &&
               i + 1 < argc && k < 59) {
      pargs[k++] = argv[i];
      pargs[k++] = argv[++i];
    }
  }
  pargs[k] = NULL;
  status = run_cmd(pargs);
  if (status != 0) {
    fprintf(stderr, "bench_mpi_pool: the mpi4py peer failed (%d)\n", status);
    return 1;
  }
  return 0;
#endif
}
