/* bench.c - the benchmark driver (see bench.h): runs a suite's cases,
 * checks that each did its work, takes the median of several runs, prints
 * one uniform line per case with its ratio to the peers of its group, and
 * appends the rows to a TSV file. Also the helpers for benchmarks that
 * cross processes: shared memory and forked workers behind a start gate.
 *
 * DESIGN. Results are printed a group at a time (the adjacent cases that
 * share benchmark and case name), after the whole group has run, because a
 * multiproc line carries its ratio to peers that may come after it in the
 * table. The ratio is multiproc's time per operation divided by the peer's
 * (lower is better; 1.10x means 10% slower than the peer).
 *
 * Forked workers wait at a gate made of a pipe: each blocks in read() on
 * it, and the parent opens the gate by closing the write end, so every
 * worker wakes at once with end-of-file and none spins while its siblings
 * are still being forked. Each worker records when it finished in shared
 * memory; the run's time is from the gate's opening to the last finish, so
 * the time the parent takes to notice and reap the workers is not
 * counted. */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- timing and reporting helpers -------------------------------------- */

int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_timer_start(bench_run *run) {
  run->t0 = bench_now_ns();
}

void bench_timer_stop(bench_run *run) {
  run->t1 = bench_now_ns();
}

void bench_timer_set(bench_run *run, int64_t t0, int64_t t1) {
  run->t0 = t0;
  run->t1 = t1;
}

static void set_message(bench_run *run, const char *fmt, va_list ap) {
  vsnprintf(run->message, sizeof run->message, fmt, ap);
}

int bench_fail(bench_run *run, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_message(run, fmt, ap);
  va_end(ap);
  return BENCH_FAILED;
}

int bench_skip(bench_run *run, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_message(run, fmt, ap);
  va_end(ap);
  return BENCH_SKIPPED;
}

/* ---- the driver -------------------------------------------------------- */

enum result_state {
  RESULT_NOT_RUN = 0,
  RESULT_PENDING,
  RESULT_OK,
  RESULT_FAILED,
  RESULT_SKIPPED
};

typedef struct result {
  enum result_state state;
  uint64_t iters;
  double median_ns, min_ns, max_ns; /* per operation */
  char message[256];
} result;

typedef struct options {
  int smoke;
  int runs;
  int list;
  const char *tsv;
  const char *filter;
} options;

static void usage(FILE *f, const char *prog) {
  fprintf(f,
          "usage: %s [--smoke] [--tsv PATH] [--runs N] [--filter TEXT] "
          "[--list]\n",
          prog);
}

static int parse_options(int argc, char **argv, options *o) {
  memset(o, 0, sizeof *o);
  o->runs = BENCH_RUNS;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--smoke") == 0) {
      o->smoke = 1;
    } else if (strcmp(a, "--list") == 0) {
      o->list = 1;
    } else if (strcmp(a, "--tsv") == 0 && i + 1 < argc) {
      o->tsv = argv[++i];
    } else if (strcmp(a, "--filter") == 0 && i + 1 < argc) {
      o->filter = argv[++i];
    } else if (strcmp(a, "--runs") == 0 && i + 1 < argc) {
      char *end;
      long n = strtol(argv[++i], &end, 10);
      if (*end != '\0' || n < 1 || n > BENCH_RUNS_MAX)
        return -1;
      o->runs = (int)n;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout, argv[0]);
      exit(0);
    } else {
      return -1;
    }
  }
  if (o->smoke)
    o->runs = 1;
  return 0;
}

static int selected(const bench_case *c, const options *o) {
  if (o->filter == NULL)
    return 1;
  char full[256];
  snprintf(full, sizeof full, "%s/%s/%s", c->benchmark, c->name, c->system);
  return strstr(full, o->filter) != NULL;
}

static int same_group(const bench_case *a, const bench_case *b) {
  return strcmp(a->benchmark, b->benchmark) == 0 &&
         strcmp(a->name, b->name) == 0;
}

static int is_multiproc(const bench_case *c) {
  return strcmp(c->system, "multiproc") == 0;
}

/* execute runs the case once with iters operations and returns its time
 * per operation in *ns_per_op, or the case's failure or skip code. */
static int execute(const bench_case *c, uint64_t iters, int smoke,
                   double *ns_per_op, char *message, size_t cap) {
  bench_run run;
  memset(&run, 0, sizeof run);
  run.c = c;
  run.arg = c->arg;
  run.iters = iters;
  run.smoke = smoke;
  run.expect = iters;
  int64_t start = bench_now_ns();
  int rc = c->fn(&run);
  int64_t end = bench_now_ns();
  if (rc != 0) {
    snprintf(message, cap, "%s",
             run.message[0] ? run.message : "the case reported an error");
    return rc == BENCH_SKIPPED ? BENCH_SKIPPED : BENCH_FAILED;
  }
  /* The work check comes before any figure: a case that did less than it
   * claims must fail, not look fast. */
  if (run.done != run.expect) {
    snprintf(message, cap, "work check failed: did %llu, expected %llu",
             (unsigned long long)run.done, (unsigned long long)run.expect);
    return BENCH_FAILED;
  }
  if (run.t0 == 0 && run.t1 == 0) {
    run.t0 = start;
    run.t1 = end;
  }
  if (run.t1 < run.t0) {
    snprintf(message, cap, "the case recorded a negative time");
    return BENCH_FAILED;
  }
  *ns_per_op = (double)(run.t1 - run.t0) / (double)(iters ? iters : 1);
  return 0;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* set_state records a case's failure or skip from execute's code. */
static void set_state(result *r, int rc) {
  r->state = rc == BENCH_SKIPPED ? RESULT_SKIPPED : RESULT_FAILED;
}

/* measure_group runs the selected cases lo..hi-1 of one group: a warm-up
 * each, then the timed runs interleaved across the cases (run 1 of every
 * case, then run 2, ...), so that a change in the machine's load during the
 * group touches every system alike instead of skewing their ratio. */
static void measure_group(const bench_suite *s, const options *o, result *res,
                          size_t lo, size_t hi,
                          double (*samples)[BENCH_RUNS_MAX]) {
  for (size_t i = lo; i < hi; i++) {
    const bench_case *c = &s->cases[i];
    result *r = &res[i];
    if (!selected(c, o))
      continue;
    r->state = RESULT_PENDING;
    r->iters = o->smoke ? c->smoke_iters : c->iters;
    if (r->iters == 0)
      r->iters = 1;
    if (!o->smoke) {
      /* One untimed run at a tenth of the size warms caches, page tables
       * and the kernel's process machinery; it must do its work too. */
      double ignored;
      uint64_t warm = r->iters / 10 ? r->iters / 10 : 1;
      int rc = execute(c, warm, 0, &ignored, r->message, sizeof r->message);
      if (rc != 0)
        set_state(r, rc);
    }
  }
  for (int k = 0; k < o->runs; k++) {
    for (size_t i = lo; i < hi; i++) {
      result *r = &res[i];
      if (r->state != RESULT_PENDING)
        continue;
      int rc = execute(&s->cases[i], r->iters, o->smoke, &samples[i - lo][k],
                       r->message, sizeof r->message);
      if (rc != 0)
        set_state(r, rc);
    }
  }
  for (size_t i = lo; i < hi; i++) {
    result *r = &res[i];
    if (r->state != RESULT_PENDING)
      continue;
    double *v = samples[i - lo];
    int n = o->runs;
    qsort(v, (size_t)n, sizeof v[0], compare_double);
    r->median_ns = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
    r->min_ns = v[0];
    r->max_ns = v[n - 1];
    r->state = RESULT_OK;
  }
}

/* human formats a rate with a k/M/G suffix. */
static const char *human(double v, char *buf, size_t cap) {
  const char *suffix = "";
  if (v >= 1e9) {
    v /= 1e9;
    suffix = "G";
  } else if (v >= 1e6) {
    v /= 1e6;
    suffix = "M";
  } else if (v >= 1e3) {
    v /= 1e3;
    suffix = "k";
  }
  snprintf(buf, cap, "%.3g%s", v, suffix);
  return buf;
}

/* unit_scale returns how many nanoseconds one of the unit's time units is
 * ("ns/op" 1, "us/op" 1000, "ms/op" 1e6), by its first two letters. */
static double unit_scale(const char *unit) {
  if (strncmp(unit, "us", 2) == 0)
    return 1e3;
  if (strncmp(unit, "ms", 2) == 0)
    return 1e6;
  if (unit[0] == 's')
    return 1e9;
  return 1.0;
}

static void print_header(const bench_suite *s, const options *o) {
  printf("# %s: %s; ratio = multiproc time / peer time (lower is "
         "better)\n",
         s->name,
         o->smoke ? "smoke run (tiny sizes, figures meaningless)"
                  : (o->runs == 1 ? "one run per case"
                                  : "median of the runs per case"));
  if (!o->smoke && o->runs > 1)
    printf("# %d timed runs per case, interleaved across the systems of a "
           "case, after one warm-up at a tenth of the size; range = (max - "
           "min) / median\n",
           o->runs);
  printf("%-30s %-20s %-12s %10s %12s %10s %6s  %s\n", "benchmark/case",
         "system", "size", "iters", "ns/op", "ops/s", "range", "ratio");
}

static void print_group(const bench_suite *s, const result *res, size_t lo,
                        size_t hi, FILE *tsv) {
  for (size_t i = lo; i < hi; i++) {
    const bench_case *c = &s->cases[i];
    const result *r = &res[i];
    char name[128];
    snprintf(name, sizeof name, "%s/%s", c->benchmark, c->name);
    if (r->state == RESULT_NOT_RUN)
      continue;
    if (r->state != RESULT_OK) {
      printf("%-30s %-20s %s: %s\n", name, c->system,
             r->state == RESULT_SKIPPED ? "SKIP" : "FAIL", r->message);
      continue;
    }
    char rate[32];
    double range =
        r->median_ns > 0 ? 100.0 * (r->max_ns - r->min_ns) / r->median_ns : 0.0;
    printf("%-30s %-20s %-12s %10llu %12.1f %10s %5.0f%%", name, c->system,
           c->size, (unsigned long long)r->iters, r->median_ns,
           human(r->median_ns > 0 ? 1e9 / r->median_ns : 0, rate, sizeof rate),
           range);
    if (is_multiproc(c)) {
      const char *sep = "  ";
      for (size_t j = lo; j < hi; j++) {
        if (j == i || is_multiproc(&s->cases[j]) || res[j].state != RESULT_OK ||
            res[j].median_ns <= 0)
          continue;
        printf("%s%.2fx %s", sep, r->median_ns / res[j].median_ns,
               s->cases[j].system);
        sep = ", ";
      }
    }
    printf("\n");
    if (tsv != NULL)
      fprintf(tsv, "%s\t%s\t%s\t%.3f\t%s\n", c->benchmark, c->name, c->system,
              r->median_ns / unit_scale(c->unit), c->unit);
  }
  fflush(stdout);
  if (tsv != NULL)
    fflush(tsv);
}

int bench_main(int argc, char **argv, const bench_suite *suite) {
  options o;
  if (parse_options(argc, argv, &o) != 0) {
    usage(stderr, argv[0]);
    return 2;
  }
  if (o.list) {
    for (size_t i = 0; i < suite->count; i++) {
      const bench_case *c = &suite->cases[i];
      if (selected(c, &o))
        printf("%s/%s/%s\n", c->benchmark, c->name, c->system);
    }
    return 0;
  }
  FILE *tsv = NULL;
  if (o.tsv != NULL) {
    tsv = fopen(o.tsv, "a");
    if (tsv == NULL) {
      fprintf(stderr, "%s: cannot open %s: %s\n", suite->name, o.tsv,
              strerror(errno));
      return 1;
    }
  }
  result *res = calloc(suite->count ? suite->count : 1, sizeof *res);
  double(*samples)[BENCH_RUNS_MAX] = calloc(BENCH_GROUP_MAX, sizeof *samples);
  if (res == NULL || samples == NULL) {
    free(res);
    free(samples);
    fprintf(stderr, "%s: out of memory\n", suite->name);
    if (tsv)
      fclose(tsv);
    return 1;
  }
  /* Results go to a pipe or file when run.sh collects them; line
   * buffering keeps the progress visible either way. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  print_header(suite, &o);
  int failed = 0;
  size_t lo = 0;
  while (lo < suite->count) {
    size_t hi = lo + 1;
    while (hi < suite->count &&
           same_group(&suite->cases[lo], &suite->cases[hi]))
      hi++;
    if (hi - lo > BENCH_GROUP_MAX) {
      fprintf(stderr, "%s: more than %d cases in %s/%s\n", suite->name,
              BENCH_GROUP_MAX, suite->cases[lo].benchmark,
              suite->cases[lo].name);
      failed = 1;
      break;
    }
    measure_group(suite, &o, res, lo, hi, samples);
    for (size_t i = lo; i < hi; i++)
      if (res[i].state == RESULT_FAILED)
        failed = 1;
    print_group(suite, res, lo, hi, tsv);
    lo = hi;
  }
  free(res);
  free(samples);
  if (tsv != NULL && fclose(tsv) != 0) {
    fprintf(stderr, "%s: writing %s failed\n", suite->name, o.tsv);
    failed = 1;
  }
  return failed ? 1 : 0;
}

/* ---- shared memory ----------------------------------------------------- */

void *bench_shared_new(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void bench_shared_free(void *p, size_t size) {
  if (p != NULL)
    munmap(p, size);
}

/* ---- forked workers ---------------------------------------------------- */

struct bench_gate {
  atomic_int ready;                          /* workers waiting at the gate */
  _Atomic int64_t end_ns[BENCH_MAX_WORKERS]; /* when each one finished */
};

static void close_fd(int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

/* reap_all kills (when asked) and reaps every worker not yet reaped. */
static void reap_all(bench_workers *w, int kill_them) {
  for (int i = 0; i < w->n; i++) {
    if (w->pid[i] <= 0)
      continue;
    if (kill_them)
      kill(w->pid[i], SIGKILL);
    while (waitpid(w->pid[i], NULL, 0) < 0 && errno == EINTR)
      ;
    w->pid[i] = 0;
  }
}

static void workers_release(bench_workers *w) {
  close_fd(&w->gate_rd);
  close_fd(&w->gate_wr);
  bench_shared_free(w->gate, sizeof *w->gate);
  w->gate = NULL;
}

int bench_workers_start(bench_run *run, bench_workers *w, int n,
                        bench_worker_fn fn, void *arg) {
  memset(w, 0, sizeof *w);
  w->gate_rd = w->gate_wr = -1;
  if (n < 1 || n > BENCH_MAX_WORKERS)
    return bench_fail(run, "bad worker count %d", n);
  w->gate = bench_shared_new(sizeof *w->gate);
  if (w->gate == NULL)
    return bench_fail(run, "mmap: %s", strerror(errno));
  int fds[2];
  if (pipe(fds) != 0) {
    int e = errno;
    workers_release(w);
    return bench_fail(run, "pipe: %s", strerror(e));
  }
  w->gate_rd = fds[0];
  w->gate_wr = fds[1];
  /* Flush before forking so no buffered output is written twice. */
  fflush(NULL);
  for (int i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      int e = errno;
      reap_all(w, 1);
      workers_release(w);
      return bench_fail(run, "fork: %s", strerror(e));
    }
    if (pid == 0) {
      close(fds[1]);
      atomic_fetch_add(&w->gate->ready, 1);
      char byte;
      ssize_t got;
      while ((got = read(fds[0], &byte, 1)) < 0 && errno == EINTR)
        ;
      int rc = fn(arg, i);
      atomic_store(&w->gate->end_ns[i], bench_now_ns());
      _exit(rc & 0xff);
    }
    w->pid[i] = pid;
    w->n = i + 1;
  }
  close_fd(&w->gate_rd);
  return 0;
}

int64_t bench_workers_go(bench_workers *w) {
  /* Wait for every worker to reach the gate, but not forever: one that
   * died on the way is reported by bench_workers_wait. */
  int64_t give_up = bench_now_ns() + 60 * (int64_t)1000000000;
  while (atomic_load(&w->gate->ready) < w->n && bench_now_ns() < give_up) {
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
  }
  int64_t t0 = bench_now_ns();
  close_fd(&w->gate_wr);
  return t0;
}

int bench_workers_wait(bench_run *run, bench_workers *w, double timeout,
                       int64_t *t_end) {
  int rc = 0;
  int64_t deadline = bench_now_ns() + (int64_t)(timeout * 1e9);
  long sleep_ns = 50000;
  int left = w->n;
  close_fd(&w->gate_wr); /* in case the caller never opened the gate */
  while (left > 0) {
    for (int i = 0; i < w->n; i++) {
      if (w->pid[i] <= 0)
        continue;
      int status;
      pid_t got = waitpid(w->pid[i], &status, WNOHANG);
      if (got == 0)
        continue;
      if (got < 0 && errno == EINTR)
        continue;
      w->pid[i] = 0;
      left--;
      if (got < 0) {
        if (rc == 0)
          rc = bench_fail(run, "waitpid: %s", strerror(errno));
      } else if (WIFSIGNALED(status)) {
        if (rc == 0)
          rc = bench_fail(run, "worker %d killed by signal %d", i,
                          WTERMSIG(status));
      } else if (WEXITSTATUS(status) != 0) {
        if (rc == 0)
          rc = bench_fail(run, "worker %d exited with status %d", i,
                          WEXITSTATUS(status));
      }
    }
    if (left == 0)
      break;
    if (bench_now_ns() > deadline) {
      reap_all(w, 1);
      rc = bench_fail(run, "workers still running after %.0f s; killed",
                      timeout);
      break;
    }
    struct timespec ts = {0, sleep_ns};
    nanosleep(&ts, NULL);
    if (sleep_ns < 5000000)
      sleep_ns *= 2;
  }
  int64_t last = 0;
  for (int i = 0; i < w->n; i++) {
    int64_t e = atomic_load(&w->gate->end_ns[i]);
    if (e > last)
      last = e;
  }
  if (t_end != NULL)
    *t_end = last;
  workers_release(w);
  return rc;
}
