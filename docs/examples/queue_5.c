/* queue_5.c - a PriorityQueue: lowest key first, FIFO among equals. */
#include <inttypes.h>
#include <stdio.h>

#include <multiproc.h>

int main(void) {
  mp_queue *q;
  if (mp_queue_new(&q, &(mp_queue_opts){.order = MP_QUEUE_PRIORITY}) != 0)
    return 1;
  mp_queue_put_priority(q, 5, "write the report", 16, MP_FOREVER);
  mp_queue_put_priority(q, 1, "fix the build", 13, MP_FOREVER);
  mp_queue_put_priority(q, 5, "answer mail", 11, MP_FOREVER);
  char task[32];
  size_t len;
  int64_t prio;
  while (mp_queue_get_priority(q, &prio, task, sizeof task, &len, 0) == 0)
    printf("%" PRId64 ": %.*s\n", prio, (int)len, task);
  mp_queue_free(q);
  return 0;
}
