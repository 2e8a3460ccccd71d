/* queue_join.c - task_done and join: every item put must be marked done
 * before join returns. The queue is a multiproc queue, so the same works
 * across processes (docs/queue.md shows workers).
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
 * *
 * Usage: queue_join [--quick]   (--quick changes nothing: it is quick) */
#include <multiproc.h>
#include <stdio.h>

int main(void) {
  mp_queue *q;
  MP_CHECK(mp_queue_new(&q, &(mp_queue_opts){.maxsize = 5, .joinable = 1}));
  MP_CHECK(mp_queue_put_int64(q, 10, MP_FOREVER));
  MP_CHECK(mp_queue_put_int64(q, 20, MP_FOREVER));
  int64_t v;
  for (int i = 0; i < 2; i++) {
    MP_CHECK(mp_queue_get_int64(q, &v, MP_FOREVER));
    printf("%d\n", (int)v);
    MP_CHECK(mp_queue_task_done(q));
  }
  MP_CHECK(mp_queue_join(q, MP_FOREVER));
  printf("ending!\n");
  mp_queue_free(q);
  return 0;
}
