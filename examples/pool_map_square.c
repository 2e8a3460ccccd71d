/* pool_map_square.c - Pool(4).map(task, [1, 2, 3, 4, 5]) printing
 * [1, 4, 9, 16, 25].
 *
 * It mirrors this Python program (seed 003, "3.2 如何创建和使用进程池"):
 *
 *   import multiprocessing
 *   def task(n):
 *       return n * n
 *   if __name__ == "__main__":
 *       pool = multiprocessing.Pool(4)
 *       result = pool.map(task, [1, 2, 3, 4, 5])
 *       pool.close()
 *       pool.join()
 *       print(result)
 *
 * In C, map applies an item function to every element of an array of
 * fixed-size items and writes each result into the caller's output
 * array, in order: nothing is allocated per item.
 *
 * The same program runs on an MPI job: `mpirun -n 3 pool_map_square`
 * makes ranks 1 and 2 the pool's workers (inside mp_child_main, which
 * they never leave) and rank 0 runs main; the task is found by the name
 * MP_POOL_MAP registered. */
#include <multiproc.h>

#include <stdio.h>

static int task(const void *in, void *out) {
  long n = *(const long *)in;
  *(long *)out = n * n;
  return 0;
}
MP_POOL_MAP(task)

int main(int argc, char **argv) {
  if (mp_child_main(argc, argv) != 0) /* MPI worker ranks stay in here */
    return 1;
  long items[] = {1, 2, 3, 4, 5}, result[5];
  mp_pool *pool;
  MP_CHECK(mp_pool_new(&pool, &(mp_pool_opts){.processes = 4}));
  MP_CHECK(mp_pool_map(pool, task, items, 5, sizeof(long), result, sizeof(long),
                       NULL));
  MP_CHECK(mp_pool_close(pool));
  MP_CHECK(mp_pool_join(pool, MP_FOREVER));
  mp_pool_free(pool);
  printf("[%ld, %ld, %ld, %ld, %ld]\n", result[0], result[1], result[2],
         result[3], result[4]);
  return 0;
}
