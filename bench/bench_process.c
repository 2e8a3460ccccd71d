/* bench_process.c - what starting and joining a process costs: an
 * mp_process under each start method against the system calls it is built
 * on. (Python's Process start+join under the same three methods is
 * measured by bench/peers/py_process.py in the same `make bench` run.)
 *
 * process_start_join/fork        mp_process_new + start + join + free with
 *                                the default (fork) context, against raw
 *                                fork() + waitpid(). Target: within 1.5x.
 * process_start_join/spawn       the same with a spawn context (a fresh
 *                                image of this program), against
 *                                posix_spawn() of this program with an
 *                                argument that makes it exit at once +
 *                                waitpid(). Target: within 2x.
 * process_start_join/forkserver  the same with a forkserver context; no
 *                                raw peer (Python's is the comparison).
 *
 * Every child, however started, exits with BENCH_CHILD_STATUS, and each
 * case counts the children that did: a start that did not run the target
 * fails the work check. Contexts are created before the timed section,
 * as a program creates its context once.
 *
 * main calls mp_child_main first, because spawned children re-execute
 * this program and must run their target instead of the benchmarks. */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"

extern char **environ;

/* The exit status every benchmark child uses, so the parent can tell that
 * the child it reaped ran the target. */
#define BENCH_CHILD_STATUS 7

/* The argument that makes this program exit at once: the posix_spawn
 * peer's child. */
#define EXIT_NOW_ARG "--bench-exit-now"

/* How long one join may take before the case fails instead of hanging. */
#define JOIN_TIMEOUT 60.0

static int bench_noop(void *arg) {
  (void)arg;
  return BENCH_CHILD_STATUS;
}
MP_TARGET(bench_noop)

/* start_join_loop starts and joins run->iters children of ctx (NULL: the
 * default context) and counts those that exited with BENCH_CHILD_STATUS. */
static int start_join_loop(bench_run *run, mp_context *ctx) {
  mp_process_opts opts = {.context = ctx};
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    mp_process *p;
    int rc = mp_process_new(&p, bench_noop, NULL, &opts);
    if (rc != 0)
      return bench_fail(run, "mp_process_new: %s", mp_err_name(rc));
    if ((rc = mp_process_start(p)) != 0) {
      mp_process_free(p);
      return bench_fail(run, "mp_process_start: %s", mp_err_name(rc));
    }
    if ((rc = mp_process_join(p, JOIN_TIMEOUT)) != 0) {
      mp_process_kill(p);
      mp_process_join(p, JOIN_TIMEOUT);
      mp_process_free(p);
      return bench_fail(run, "mp_process_join: %s", mp_err_name(rc));
    }
    int code = -1;
    rc = mp_process_exitcode(p, &code);
    mp_process_free(p);
    if (rc != 0)
      return bench_fail(run, "mp_process_exitcode: %s", mp_err_name(rc));
    if (code == BENCH_CHILD_STATUS)
      run->done++;
  }
  bench_timer_stop(run);
  return 0;
}

static int mp_fork_case(bench_run *run) {
  return start_join_loop(run, NULL);
}

static int mp_context_case(bench_run *run, mp_start_method method) {
  mp_context *ctx;
  int rc = mp_context_new(&ctx, method);
  if (rc != 0)
    return bench_fail(run, "mp_context_new(%s): %s",
                      mp_start_method_name(method), mp_err_name(rc));
  rc = start_join_loop(run, ctx);
  mp_context_free(ctx);
  return rc;
}

static int mp_spawn_case(bench_run *run) {
  return mp_context_case(run, MP_START_SPAWN);
}

static int mp_forkserver_case(bench_run *run) {
  return mp_context_case(run, MP_START_FORKSERVER);
}

/* wait_child reaps pid and returns 1 if it exited with
 * BENCH_CHILD_STATUS, 0 if it ended otherwise, -errno on failure. */
static int wait_child(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -errno;
  return WIFEXITED(status) && WEXITSTATUS(status) == BENCH_CHILD_STATUS;
}

static int raw_fork_case(bench_run *run) {
  fflush(NULL);
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    pid_t pid = fork();
    if (pid < 0)
      return bench_fail(run, "fork: %s", strerror(errno));
    if (pid == 0)
      _exit(bench_noop(NULL));
    int rc = wait_child(pid);
    if (rc < 0)
      return bench_fail(run, "waitpid: %s", strerror(-rc));
    run->done += (uint64_t)rc;
  }
  bench_timer_stop(run);
  return 0;
}

static int raw_spawn_case(bench_run *run) {
  char self[] = "/proc/self/exe";
  char arg[] = EXIT_NOW_ARG;
  char *argv[] = {self, arg, NULL};
  bench_timer_start(run);
  for (uint64_t i = 0; i < run->iters; i++) {
    pid_t pid;
    int err = posix_spawn(&pid, self, NULL, NULL, argv, environ);
    if (err != 0)
      return bench_fail(run, "posix_spawn: %s", strerror(err));
    int rc = wait_child(pid);
    if (rc < 0)
      return bench_fail(run, "waitpid: %s", strerror(-rc));
    run->done += (uint64_t)rc;
  }
  bench_timer_stop(run);
  return 0;
}

static const bench_case cases[] = {
    {"process_start_join", "fork", "multiproc", "1 child", 2000, 3, "us/op",
     mp_fork_case, NULL},
    {"process_start_join", "fork", "fork+waitpid", "1 child", 2000, 3, "us/op",
     raw_fork_case, NULL},
    {"process_start_join", "spawn", "multiproc", "1 child", 500, 2, "us/op",
     mp_spawn_case, NULL},
    {"process_start_join", "spawn", "posix_spawn+waitpid", "1 child", 500, 2,
     "us/op", raw_spawn_case, NULL},
    {"process_start_join", "forkserver", "multiproc", "1 child", 1000, 3,
     "us/op", mp_forkserver_case, NULL},
};

int main(int argc, char **argv) {
  /* First thing: a spawned child runs its target here and never returns. */
  int rc = mp_child_main(argc, argv);
  if (rc != 0) {
    fprintf(stderr, "bench_process: mp_child_main: %s\n", mp_strerror(rc));
    return 1;
  }
  if (argc == 2 && strcmp(argv[1], EXIT_NOW_ARG) == 0)
    _exit(BENCH_CHILD_STATUS);
  static const bench_suite suite = BENCH_SUITE("bench_process", cases);
  return bench_main(argc, argv, &suite);
}
