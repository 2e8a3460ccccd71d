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

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct task {
  mp_queue *q;
  int64_t n;
} task;

static int f(void *arg) {
  task *t = arg;
  MP_CHECK(mp_queue_put_int64(t->q, t->n * t->n + 1, MP_FOREVER));
  printf("son process %p\n", (void *)t->q);
  fflush(stdout);
  return 0;
}

int main(void) {
  mp_queue *q;
  MP_CHECK(mp_queue_new(&q, NULL));
  printf("main process %p\n", (void *)q);
  task tasks[3];
  mp_process *p[3];
  for (int i = 0; i < 3; i++) {
    tasks[i] = (task){q, i};
    MP_CHECK(mp_process_new(&p[i], f, &tasks[i], NULL));
    MP_CHECK(mp_process_start(p[i]));
  }
  /* The results come in the order the children put them: any order of
   * 1, 2 and 5. */
  int64_t sum = 0;
  for (int i = 0; i < 3; i++) {
    int64_t v;
    MP_CHECK(mp_queue_get_int64(q, &v, MP_FOREVER));
    printf("%" PRId64 "\n", v);
    sum += v;
  }
  for (int i = 0; i < 3; i++) {
    MP_CHECK(mp_process_join(p[i], MP_FOREVER));
    mp_process_free(p[i]);
  }
  mp_queue_free(q);
  if (sum != 1 + 2 + 5) {
    fprintf(stderr, "wrong results: sum %" PRId64 "\n", sum);
    return 1;
  }
  return 0;
}
