/* counter_40m.c - the seed's CPU-bound benchmark: count to 40,000,000
 * twice, first one after the other, then in two processes at once.
 *
 * It mirrors this Python program (seed 001, "2.3.3 解决方案"):
 *
 *   from multiprocessing import Process
 *   import time
 *   def counter():
 *       i = 0
 *       for _ in range(40000000):
 *           i = i + 1
 *       return True
 *   def main():
 *       l = []
 *       start_time = time.time()
 *       for _ in range(2):
 *           t = Process(target=counter)
 *           t.start()
 *           l.append(t)
 *           # t.join()
 *       for t in l:
 *           t.join()
 *       end_time = time.time()
 *       print("Total time: {}".format(end_time - start_time))
 *   if __name__ == '__main__':
 *       main()
 *
 * The seed reports, for Python 3.5: serial 6.56 s, parallel 3.54 s. Two
 * processes take about half the time of one doing both counts, given two
 * free CPUs. An empty asm statement that claims to change i after each
 * step keeps the compiler from folding the loop into i = 40000000.
 *
 * Usage: counter_40m [--quick]   (--quick: count to 4,000,000) */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long count_to = 40000000;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* counter returns 0 (the exit status of a child) when it counted right. */
static int counter(void *arg) {
  (void)arg;
  long i = 0;
  for (long n = 0; n < count_to; n++) {
    i = i + 1;
    /* "i may have changed": the compiler must do every step. */
    __asm__ volatile("" : "+r"(i));
  }
  return i == count_to ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    count_to = 4000000;
  printf("counting to %ld twice; %d CPUs available\n", count_to,
         mp_cpu_count());

  /* Serially, in this process. */
  double start = now_s();
  int bad = counter(NULL) + counter(NULL);
  double serial = now_s() - start;
  printf("serial:   Total time: %f\n", serial);
  fflush(stdout);

  /* In parallel: two processes, started, then joined. */
  mp_process *l[2];
  start = now_s();
  for (int k = 0; k < 2; k++) {
    MP_CHECK(mp_process_new(&l[k], counter, NULL, NULL));
    MP_CHECK(mp_process_start(l[k]));
  }
  for (int k = 0; k < 2; k++) {
    int code = -1;
    MP_CHECK(mp_process_join(l[k], MP_FOREVER));
    MP_CHECK(mp_process_exitcode(l[k], &code));
    bad += code != 0;
    mp_process_free(l[k]);
  }
  double parallel = now_s() - start;
  printf("parallel: Total time: %f\n", parallel);
  printf("speed-up: %.2fx (the seed's Python 3.5: 6.56 s serial, 3.54 s in "
         "two processes, 1.85x)\n",
         parallel > 0 ? serial / parallel : 0.0);
  if (bad != 0) {
    fprintf(stderr, "counter_40m: a count came out wrong\n");
    return 1;
  }
  return 0;
}
