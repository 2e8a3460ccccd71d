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
 *
 * Like with like: both pools use their default size, which is the same
 * number of workers on one host: a local Pool has mp_cpu_count() workers,
 * and each of the 2 worker ranks a local pool of its share of the host's
 * cores (mp_cpu_count() / 2 here). Only the map is timed, for both: pool
 * creation (for MPI: opening each rank's local pool and forking its
 * workers) and MPI_Init are outside the timed region. The local rows run
 * in rank 0 under the same mpirun, ranks 1 and 2 idle.
 *
 * Run directly (as `make bench` and CTest do), the program starts itself
 * under mpirun (3 ranks on this host, loopback only) and then the mpi4py
 * peer (bench/peers/mpi4py_pool.py with Debian's /usr/bin/python3, which
 * has python3-mpi4py); under mpirun, rank 0 measures and ranks 1 and 2
 * are the pool's worker ranks. Without MPI in the library the cases are
 * skipped with the reason. */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"

extern char **environ;

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
  for (int i = 0; i < TASKS; i++)
    in[i] = run->iters / TASKS + (i < (int)(run->iters % TASKS));
  mp_pool *p;
  int rc = new_pool(run, &p, backend);
  if (rc != 0)
    return rc;
  bench_timer_start(run);
  rc = mp_pool_map(p, counter, in, TASKS, sizeof *in, out, sizeof *out,
                   &(mp_pool_map_opts){.chunksize = 1});
  bench_timer_stop(run);
  mp_pool_free(p);
  if (rc != 0)
    return bench_fail(run, "mp_pool_map: %s", mp_err_name(rc));
  for (int i = 0; i < TASKS; i++)
    run->done += out[i];
  return 0;
}

static int cpu_mpi(bench_run *run) { return cpu_case(run, MP_POOL_BACKEND_MPI); }
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
