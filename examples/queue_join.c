/* queue_join.c - task_done and join: every item put must be marked done
 * before join returns. First the seed's program in one process, then the
 * same idea across processes: workers take tasks and mark them done, and
 * the parent's join waits until all are.
 *
 * It mirrors this Python program (seed 001, "2.8.2 join与task_done方法"):
 *
 *   import queue
 *   q = queue.Queue(5)
 *   q.put(10)
 *   q.put(20)
 *   print(q.get())
 *   q.task_done()
 *   print(q.get())
 *   q.task_done()
 *   q.join()
 *   print("ending!")
 *
 * and, for the processes, multiprocessing.JoinableQueue with workers that
 * call task_done after each get.
 *
 * Usage: queue_join [--quick]   (--quick: workers sleep 1 ms, not 20 ms) */
#include <multiproc.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WORKERS 3
#define TASKS 12

static long work_ns = 20 * 1000 * 1000;

static int worker(void *arg) {
  mp_queue *q = arg;
  for (;;) {
    int64_t task;
    int rc = mp_queue_get_int64(q, &task, MP_FOREVER);
    if (rc == MP_ECLOSED)
      return 0; /* closed and empty: no more work */
    MP_CHECK(rc);
    struct timespec ts = {0, work_ns};
    nanosleep(&ts, NULL);
    printf("worker %s did task %" PRId64 "\n",
           mp_process_name(mp_current_process()), task);
    fflush(stdout);
    MP_CHECK(mp_queue_task_done(q));
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    work_ns = 1000 * 1000;

  /* The seed, as it is. */
  mp_queue *q;
  MP_CHECK(mp_queue_new(&q, &(mp_queue_opts){.maxsize = 5, .joinable = 1}));
  MP_CHECK(mp_queue_put_int64(q, 10, MP_FOREVER));
  MP_CHECK(mp_queue_put_int64(q, 20, MP_FOREVER));
  int64_t v;
  MP_CHECK(mp_queue_get_int64(q, &v, MP_FOREVER));
  printf("%" PRId64 "\n", v);
  MP_CHECK(mp_queue_task_done(q));
  MP_CHECK(mp_queue_get_int64(q, &v, MP_FOREVER));
  printf("%" PRId64 "\n", v);
  MP_CHECK(mp_queue_task_done(q));
  MP_CHECK(mp_queue_join(q, MP_FOREVER));
  printf("ending!\n");
  /* One task_done too many is Python's ValueError. */
  int rc = mp_queue_task_done(q);
  printf("one task_done too many: %s\n", mp_err_name(rc));
  mp_queue_free(q);
  if (rc != MP_EVALUE)
    return 1;

  /* Across processes: a JoinableQueue and three workers. */
  MP_CHECK(mp_queue_new(&q, &(mp_queue_opts){.joinable = 1}));
  mp_process *p[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    MP_CHECK(mp_process_new(&p[i], worker, q, NULL));
    MP_CHECK(mp_process_start(p[i]));
  }
  for (int64_t t = 0; t < TASKS; t++)
    MP_CHECK(mp_queue_put_int64(q, t, MP_FOREVER));
  MP_CHECK(mp_queue_join(q, MP_FOREVER));
  printf("all %d tasks done\n", TASKS);
  /* Done: closing lets the workers' gets return MP_ECLOSED. */
  MP_CHECK(mp_queue_close(q));
  for (int i = 0; i < WORKERS; i++) {
    MP_CHECK(mp_process_join(p[i], MP_FOREVER));
    mp_process_free(p[i]);
  }
  mp_queue_free(q);
  return 0;
}
