/* pool_map_one_arg.c - Pool(2).map with a function of one argument, and
 * starmap for a function of several.
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
 * them, which is what Python's starmap does with tuples. */
#include <multiproc.h>

#include <stdio.h>
#include <string.h>

typedef struct text {
  char s[32];
} text;

/* func runs in a worker: print the argument, return it. */
static int func(const void *in, void *out) {
  const text *arg = in;
  printf("input :  %s\n", arg->s);
  printf("Process done ...\n");
  fflush(stdout);
  memcpy(out, arg, sizeof *arg);
  return 0;
}

/* starmap's item: the arguments of one call. */
typedef struct args2 {
  int base, exponent;
} args2;

static int power(const void *in, void *out) {
  const args2 *a = in;
  long r = 1;
  for (int i = 0; i < a->exponent; i++)
    r *= a->base;
  *(long *)out = r;
  return 0;
}

int main(void) {
  mp_pool *pool;
  int rc = mp_pool_new(&pool, &(mp_pool_opts){.processes = 2});
  if (rc != 0) {
    fprintf(stderr, "Pool: %s\n", mp_strerror(rc));
    return 1;
  }
  text items[1] = {{"process in"}}, res[1];
  rc = mp_pool_map(pool, func, items, 1, sizeof(text), res, sizeof(text), NULL);
  if (rc == 0)
    printf("['%s']\n", res[0].s);

  /* pool.starmap(pow, [(2, 10), (3, 4)]) */
  args2 calls[2] = {{2, 10}, {3, 4}};
  long powers[2];
  if (rc == 0)
    rc = mp_pool_starmap(pool, power, calls, 2, sizeof(args2), powers,
                         sizeof(long), NULL);
  if (rc == 0)
    printf("starmap: [%ld, %ld]\n", powers[0], powers[1]);
  mp_pool_free(pool);
  if (rc != 0) {
    fprintf(stderr, "map: %s\n", mp_strerror(rc));
    return 1;
  }
  return 0;
}
