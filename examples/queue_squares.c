/* queue_squares.c - three children each put n*n+1 on one queue; the parent
 * gets three results. Nothing to copy back by hand: the queue carries them.
 *
 * It mirrors this Python program (seed 001, "3.3.1 进程对列Queue"):
 *
 *   from multiprocessing import Process, Queue
 *   def f(q, n):
 *       q.put(n*n+1)
 *       print("son process", id(q))
 *   if __name__ == '__main__':
 *       q = Queue()
 *       print("main process", id(q))
 *       for i in range(3):
 *           p = Process(target=f, args=(q, i))
 *           p.start()
 *       print(q.get())
 *       print(q.get())
 *       print(q.get())
 *
 * Python's id(q) differs in each process (each has its own Queue object
 * around the same pipe); here each process has its own handle around the
 * same shared memory, and the example prints the handle's address.
 *
 * Usage: queue_squares [--quick]   (--quick changes nothing: it is quick) */
#include <multiproc.h>
#include <stdio.h>

static mp_queue *q;

static int f(void *arg) { /* arg: n itself, under fork */
  long n = (long)arg;
  MP_CHECK(mp_queue_put_int64(q, n * n + 1, MP_FOREVER));
  printf("son process %p\n", (void *)q);
  return 0;
}

int main(void) {
  MP_CHECK(mp_queue_new(&q, NULL));
  printf("main process %p\n", (void *)q);
  mp_process *p[3];
  for (long i = 0; i < 3; i++) {
    MP_CHECK(mp_process_new(&p[i], f, (void *)i, NULL));
    MP_CHECK(mp_process_start(p[i]));
  }
  int64_t v, sum = 0;
  for (int i = 0; i < 3; i++) {
    MP_CHECK(mp_queue_get_int64(q, &v, MP_FOREVER));
    printf("%ld\n", (long)v);
    sum += v;
  }
  for (int i = 0; i < 3; i++) {
    MP_CHECK(mp_process_join(p[i], MP_FOREVER));
    mp_process_free(p[i]);
  }
  mp_queue_free(q);
  return sum == 1 + 2 + 5 ? 0 : 1;
}
