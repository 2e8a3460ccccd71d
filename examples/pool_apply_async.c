/* pool_apply_async.c - the seed's process pool: Pool(5) runs 30
 * apply_async tasks, then close() and join().
 *
 * It mirrors this Python program (seed 001, "3.4 进程池"):
 *
 *   from multiprocessing import Pool
 *   import time
 *   def foo(args):
 *       time.sleep(1)
 *       print(args)
 *   if __name__ == '__main__':
 *       p = Pool(5)
 *       for i in range(30):
 *           p.apply_async(func=foo, args=(i,))
 *       p.close()    # no more tasks; the workers finish what they have
 *       p.join()     # wait for the workers (after close or terminate)
 *
 * Five workers take the thirty one-second tasks five at a time, so the
 * numbers appear in groups of five, about a second apart, in an order
 * that varies, and the whole run takes about six seconds. A task is a C
 * function from input bytes to output bytes; here the input is the int
 * and there is no output.
 *
 * Usage: pool_apply_async [--quick]   (--quick: 50 ms tasks) */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long task_ms = 1000;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(int rc, const char *what) {
  if (rc != 0) {
    fprintf(stderr, "%s: %s (%s)\n", what, mp_err_name(rc), mp_strerror(rc));
    exit(1);
  }
}

/* foo runs in a worker process: sleep, then print the argument. */
static int foo(const void *in, size_t in_len, void *out, size_t out_cap,
               size_t *out_len) {
  (void)in_len, (void)out, (void)out_cap, (void)out_len;
  struct timespec ts = {task_ms / 1000, (task_ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  printf("%d\n", *(const int *)in);
  fflush(stdout); /* a worker's stdout is a pipe or file too */
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    task_ms = 50;
  double start = now_s();
  mp_pool *p;
  check(mp_pool_new(&p, &(mp_pool_opts){.processes = 5}), "Pool(5)");
  mp_async_result *r[30];
  for (int i = 0; i < 30; i++)
    check(mp_pool_apply_async(p, &r[i], foo, &i, sizeof i, NULL),
          "apply_async");
  check(mp_pool_close(p), "close");
  check(mp_pool_join(p, MP_FOREVER), "join");
  int failed = 0;
  for (int i = 0; i < 30; i++) {
    failed += mp_async_result_get(r[i], 0) != 0;
    mp_async_result_free(r[i]);
  }
  mp_pool_free(p);
  printf("30 tasks on 5 workers of %ld ms each: %.2f s, %d failed\n", task_ms,
         now_s() - start, failed);
  return failed == 0 ? 0 : 1;
}
