/* pool_counter_40m.c - the seed's CPU-bound benchmark with a pool: count
 * to 40,000,000 twice, first one after the other in this process, then as
 * two tasks of Pool(2).map, and print both times and the speed-up.
 *
 * It mirrors the seed's counter (seed 001, "2.3.3 解决方案") run the way
 * a Python programmer would with a pool:
 *
 *   from multiprocessing import Pool
 *   import time
 *   def counter(n):
 *       i = 0
 *       for _ in range(n):
 *           i = i + 1
 *       return i
 *   if __name__ == '__main__':
 *       start = time.time(); counter(40000000); counter(40000000)
 *       serial = time.time() - start
 *       with Pool(2) as p:
 *           start = time.time()
 *           p.map(counter, [40000000, 40000000])
 *           parallel = time.time() - start
 *       print(serial, parallel, serial / parallel)
 *
 * The pool is started before the clock runs, as a program keeps its pool
 * for many maps, and an untimed count warms the CPU up first. Given two free
 * CPUs the speed-up is close to 2. An empty asm statement that claims to change
 * i after each step keeps the compiler from folding the loop away.
 *
 * Usage: pool_counter_40m [--quick]   (--quick: count to 4,000,000) */
#include <multiproc.h>

#include <stdio.h>
#include <string.h>

/* Not inlined: the serial run and the workers run the same machine code. */
__attribute__((noinline)) static long count(long n) {
  long i = 0;
  for (long k = 0; k < n; k++) {
    i = i + 1;
    __asm__ volatile("" : "+r"(i));
  }
  return i;
}

/* counter is the map's item function: count to *in, return the count. */
static int counter(const void *in, void *out) {
  *(long *)out = count(*(const long *)in);
  return 0;
}
MP_POOL_MAP(counter) /* found by name on MPI worker ranks */

int main(int argc, char **argv) {
  /* Under `mpirun -n 3` ranks 1 and 2 become the pool's workers here and
   * never return; rank 0 runs the rest, unchanged. */
  if (mp_child_main(argc, argv) != 0)
    return 1;
  long n = 40000000;
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    n = 4000000;
  printf("counting to %ld twice; %d CPUs available\n", n, mp_cpu_count());

  /* An untimed quarter count first: the CPU leaves its idle clock speed
   * before either timing starts. */
  (void)count(n / 4);
  double start = mp_monotonic();
  long a = count(n), b = count(n);
  double serial = mp_monotonic() - start;
  printf("serial:   Total time: %f\n", serial);

  mp_pool *p;
  MP_CHECK(mp_pool_new(&p, &(mp_pool_opts){.processes = 2}));
  long in[2] = {n, n}, out[2] = {0, 0};
  start = mp_monotonic();
  MP_CHECK(
      mp_pool_map(p, counter, in, 2, sizeof(long), out, sizeof(long), NULL));
  double parallel = mp_monotonic() - start;
  mp_pool_free(p);
  printf("Pool(2):  Total time: %f\n", parallel);
  printf("speed-up: %.2fx (the seed's Python 3.5 with two processes: "
         "1.85x)\n",
         parallel > 0 ? serial / parallel : 0.0);
  return a == n && b == n && out[0] == n && out[1] == n ? 0 : 1;
}
