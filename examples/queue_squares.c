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

static int check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "%s: %s (%s)\n", what, mp_err_name(rc), mp_strerror(rc));
    exit(1);
  }
  return rc;
}

typedef struct task {
  mp_queue *q;
  int64_t n;
} task;

static int f(void *arg) {
  task *t = arg;
  check(mp_queue_put_int64(t->q, t->n * t->n + 1, MP_FOREVER), "put");
  printf("son process %p\n", (void *)t->q);
  fflush(stdout);
  return 0;
}

int main(void) {
  mp_queue *q;
  check(mp_queue_new(&q, NULL), "Queue");
  printf("main process %p\n", (void *)q);
  task tasks[3];
  mp_process *p[3];
  for (int i = 0; i < 3; i++) {
    tasks[i] = (task){q, i};
    check(mp_process_new(&p[i], f, &tasks[i], NULL), "Process");
    check(mp_process_start(p[i]), "start");
  }
  /* The results come in the order the children put them: any order of
   * 1, 2 and 5. */
  int64_t sum = 0;
  for (int i = 0; i < 3; i++) {
    int64_t v;
    check(mp_queue_get_int64(q, &v, MP_FOREVER), "get");
    printf("%" PRId64 "\n", v);
    sum += v;
  }
  for (int i = 0; i < 3; i++) {
    check(mp_process_join(p[i], MP_FOREVER), "join");
    mp_process_free(p[i]);
  }
  mp_queue_free(q);
  if (sum != 1 + 2 + 5) {
    fprintf(stderr, "wrong results: sum %" PRId64 "\n", sum);
    return 1;
  }
  return 0;
}
