/* pool_map_one_arg.c - Pool(2).map with a function of one argument.
 *
 * It mirrors this Python program (seed 002, "pool进程池"):
 *
 *   import multiprocessing as mp
 *   def func(arg):
 *       print("input : ", arg)
 *       print("Process done ...")
 *       return arg
 *   if __name__ == '__main__':
 *       pool = mp.Pool(processes=2)
 *       res = pool.map(func, ("process in",))
 *       print(res)
 *
 * The seed notes that map's function takes exactly one argument: the
 * tuple's one element is passed to func once. In C an item is one
 * fixed-size struct; a function of several arguments takes a struct of
 * them, which is what Python's starmap does with tuples (mp_pool_starmap).
 *
 * Usage: pool_map_one_arg [--quick]   (the same either way) */
#include <multiproc.h>
#include <stdio.h>
#include <string.h>

typedef struct text {
  char s[32];
} text;

static int func(const void *in, void *out) { /* runs in a worker */
  printf("input :  %s\n", ((const text *)in)->s);
  printf("Process done ...\n");
  fflush(stdout); /* a worker's buffer is not flushed for it */
  memcpy(out, in, sizeof(text));
  return 0;
}

int main(void) {
  mp_pool *pool;
  MP_CHECK(mp_pool_new(&pool, &(mp_pool_opts){.processes = 2}));
  text items[1] = {{"process in"}}, res[1];
  MP_CHECK(
      mp_pool_map(pool, func, items, 1, sizeof(text), res, sizeof(text), NULL));
  printf("['%s']\n", res[0].s);
  mp_pool_free(pool);
  return 0;
}
