/* bench.h - the benchmark driver every bench/bench_<x>.c program shares.
 *
 * A benchmark program is a table of cases and a main that hands the table
 * to bench_main. Each case names its benchmark ("lock_uncontended"), its
 * case within the benchmark ("lock"), and the system it measures
 * ("multiproc", or a peer such as "pthread_robust"). Cases that share a
 * benchmark and a case name form a group: the driver runs the whole group,
 * then prints one uniform line per case (name, size, iterations, ns/op,
 * ops/s, spread) and, on each multiproc line, its ratio to every peer of
 * the group measured in the same run. With --tsv PATH it appends one row
 * per case to PATH: benchmark, case, system, value, unit, separated by
 * tabs.
 *
 * A case function does `iters` operations and reports what it saw in
 * run->done; the driver refuses to print a timing unless done equals
 * run->expect (by default iters), so a benchmark that skipped its work
 * fails instead of looking fast. Each case runs once untimed at a tenth of
 * its size to warm up, then BENCH_RUNS times, its runs interleaved with
 * those of the other cases of its group so that a change in the machine's
 * load does not skew their ratio; the printed and recorded figure is the
 * median.
 *
 * Command line of every bench program:
 *   --smoke        tiny sizes, one run, no warm-up (CTest runs this; the
 *                  figures mean nothing, the work checks still apply)
 *   --tsv PATH     append the result rows to PATH
 *   --runs N       runs per case (default BENCH_RUNS)
 *   --filter TEXT  only cases whose "benchmark/case/system" contains TEXT
 *   --list         print the cases and exit
 * The exit status is 0 when every case that ran did its work, 1 otherwise.
 *
 * The helpers below the driver (shared memory, forked workers behind a
 * start gate) are what the process-crossing benchmarks have in common. */
#ifndef MP_BENCH_H
#define MP_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The default number of timed runs per case; the median is reported.
 * --runs accepts up to BENCH_RUNS_MAX. */
#define BENCH_RUNS 5
#define BENCH_RUNS_MAX 1000

/* The most cases one group (benchmark and case name) may hold. */
#define BENCH_GROUP_MAX 20

/* A case function returns 0, BENCH_FAILED after bench_fail, or
 * BENCH_SKIPPED after bench_skip. */
#define BENCH_FAILED (-1)
#define BENCH_SKIPPED (-2)

typedef struct bench_case bench_case;

/* bench_run is one execution of a case. The driver fills iters, smoke and
 * arg; the case does the work, brackets the part to time with
 * bench_timer_start/bench_timer_stop (or sets the times itself with
 * bench_timer_set; without either the whole call is timed), and stores the
 * work it observed in done. It may change expect (default: iters) when the
 * natural check is another number (a checksum, a total over processes). */
typedef struct bench_run {
  const bench_case *c; /* the case being run */
  void *arg;           /* c->arg */
  uint64_t iters;      /* operations to do; ns/op divides by this */
  int smoke;           /* nonzero in a --smoke run */
  uint64_t done;       /* out: the work observed (count or checksum) */
  uint64_t expect;     /* out: what done must equal */
  int64_t t0, t1;      /* monotonic ns of the timed section */
  char message[256];   /* why it failed or was skipped */
} bench_run;

typedef int (*bench_fn)(bench_run *run);

/* bench_case describes one measurement. */
struct bench_case {
  const char *benchmark; /* e.g. "lock_contended" */
  const char *name;      /* the case within the benchmark, e.g. "2procs" */
  const char *system;    /* "multiproc" or the peer's name */
  const char *size;      /* what one operation works on, for the line */
  uint64_t iters;        /* operations per run */
  uint64_t smoke_iters;  /* operations per run under --smoke */
  const char *unit;      /* recorded unit: "ns/op" or "us/op" */
  bench_fn fn;
  void *arg; /* passed in run->arg */
};

/* bench_suite is a program's table of cases. Cases of one group must be
 * adjacent (at most BENCH_GROUP_MAX); the driver runs them in table order. */
typedef struct bench_suite {
  const char *name; /* the program's name, e.g. "bench_sync" */
  const bench_case *cases;
  size_t count;
} bench_suite;

#define BENCH_SUITE(name_, cases_)                                             \
  { (name_), (cases_), sizeof(cases_) / sizeof((cases_)[0]) }

/* bench_main parses the command line above, runs the suite and returns the
 * program's exit status. */
int bench_main(int argc, char **argv, const bench_suite *suite);

/* ---- inside a case ---------------------------------------------------- */

/* bench_now_ns returns CLOCK_MONOTONIC in nanoseconds. */
int64_t bench_now_ns(void);

/* bench_timer_start and bench_timer_stop bracket the timed section of a
 * run; bench_timer_set records it from times taken elsewhere. */
void bench_timer_start(bench_run *run);
void bench_timer_stop(bench_run *run);
void bench_timer_set(bench_run *run, int64_t t0, int64_t t1);

/* bench_fail records why the run failed and returns BENCH_FAILED;
 * bench_skip records why the case cannot run here and returns
 * BENCH_SKIPPED (reported, not an error). */
int bench_fail(bench_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int bench_skip(bench_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- shared memory ------------------------------------------------------
 * bench_shared_new maps size zeroed bytes of anonymous MAP_SHARED memory
 * (inherited by forked workers), or returns NULL. bench_shared_free unmaps
 * it; NULL is a no-op. */
void *bench_shared_new(size_t size);
void bench_shared_free(void *p, size_t size);

/* ---- forked workers behind a start gate ---------------------------------
 * bench_workers_start forks n workers (at most BENCH_MAX_WORKERS); each
 * waits at the gate, runs fn(arg, index), records when it finished and
 * leaves with _exit(fn's return value). Forking is not timed:
 * bench_workers_go waits until every worker is at the gate, opens it and
 * returns the time it did. bench_workers_wait reaps them all (killing any
 * still running after timeout seconds) and stores the latest finishing
 * time in *t_end; it returns 0 when every worker exited 0, else
 * BENCH_FAILED with the reason in run->message. After a failed start no
 * worker is left behind. */
#define BENCH_MAX_WORKERS 64

typedef int (*bench_worker_fn)(void *arg, int index);

typedef struct bench_workers {
  int n;
  pid_t pid[BENCH_MAX_WORKERS];
  struct bench_gate *gate; /* shared with the workers */
  int gate_rd, gate_wr;    /* the gate pipe: closing gate_wr opens it */
} bench_workers;

int bench_workers_start(bench_run *run, bench_workers *w, int n,
                        bench_worker_fn fn, void *arg);
int64_t bench_workers_go(bench_workers *w);
int bench_workers_wait(bench_run *run, bench_workers *w, double timeout,
                       int64_t *t_end);

#endif
