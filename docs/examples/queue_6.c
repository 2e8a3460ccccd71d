/* queue_6.c - a JoinableQueue: join waits until every task is done. */
#include <inttypes.h>
#include <stdio.h>

#include <multiproc.h>

static int worker(void *arg) {
  mp_queue *q = arg;
  int64_t task;
  while (mp_queue_get_int64(q, &task, MP_FOREVER) == 0) {
    printf("did task %" PRId64 "\n", task);
    fflush(stdout);
    mp_queue_task_done(q);
  }
  return 0; /* MP_ECLOSED: closed and empty */
}

int main(void) {
  mp_queue *q;
  mp_process *p;
  if (mp_queue_new(&q, &(mp_queue_opts){.joinable = 1}) != 0 ||
      mp_process_new(&p, worker, q, NULL) != 0 || mp_process_start(p) != 0)
    return 1;
  for (int64_t i = 0; i < 3; i++)
    mp_queue_put_int64(q, i, MP_FOREVER);
  mp_queue_join(q, MP_FOREVER);
  printf("all done\n");
  mp_queue_close(q);
  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  mp_queue_free(q);
  return 0;
}
