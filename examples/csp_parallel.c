/* csp_parallel.c - seed 004's PyCSP program in C: two processes, P1 and
 * P2, each sleep one second and say they are exiting; Parallel runs them at
 * once and waits for both; then "Terminating". The whole takes about one
 * second, not two.
 *
 * It mirrors this Python program (seed 004, "Python PyCSP库"):
 *
 *   from pycsp.parallel import *
 *   import time
 *   @process
 *   def P1():
 *       time.sleep(1)
 *       print('P1 exiting')
 *   @process
 *   def P2():
 *       time.sleep(1)
 *       print('P2 exiting')
 *   def main():
 *       Parallel(P1(), P2())
 *       print('Terminating')
 *
 * Here P1 and P2 are OS processes (PyCSP's @multiprocess); set .thread = 1
 * to make them threads (@process).
 *
 * Usage: csp_parallel [--quick]   (--quick sleeps 0.1 s instead of 1 s) */
#include <multiproc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static useconds_t nap = 1000000;

static int P1(void *arg) {
  (void)arg;
  usleep(nap);
  printf("P1 exiting\n");
  fflush(stdout);
  return 0;
}

static int P2(void *arg) {
  (void)arg;
  usleep(nap);
  printf("P2 exiting\n");
  fflush(stdout);
  return 0;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    nap = 100000;
  double t0 = now();
  mp_csp_process procs[] = {{.fn = P1}, {.fn = P2}};
  int rc = mp_csp_parallel(procs, 2);
  if (rc != 0) {
    fprintf(stderr, "Parallel: %s\n", mp_strerror(rc));
    return 1;
  }
  printf("Terminating\n");
  printf("(took %.2f s for two %.1f s sleeps)\n", now() - t0, nap / 1e6);
  return procs[0].result == 0 && procs[1].result == 0 ? 0 : 1;
}
