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

static double task_s = 1.0; /* time.sleep(1); 0.05 with --quick */

static int foo(const void *in, size_t in_len, void *out, size_t cap,
               size_t *out_len) {
  (void)in_len, (void)out, (void)cap, (void)out_len;
  mp_sleep(task_s);
  printf("%d\n", *(const int *)in);
  fflush(stdout); /* a worker's stdout may be a pipe or a file */
  return 0;
}

int main(int argc, char **argv) {
  (void)argv;
  task_s = argc > 1 ? 0.05 : 1.0;
  mp_pool *p;
  MP_CHECK(mp_pool_new(&p, &(mp_pool_opts){.processes = 5}));
  mp_async_result *r[30];
  for (int i = 0; i < 30; i++)
    MP_CHECK(mp_pool_apply_async(p, &r[i], foo, &i, sizeof i, NULL));
  MP_CHECK(mp_pool_close(p));
  MP_CHECK(mp_pool_join(p, MP_FOREVER));
  for (int i = 0; i < 30; i++) { /* each task's outcome: 0 or why it failed */
    MP_CHECK(mp_async_result_get(r[i], 0));
    mp_async_result_free(r[i]);
  }
  mp_pool_free(p);
  return 0;
}
