/* queue_lifo_priority.c - the other two orders of the queue module: a
 * LifoQueue hands back the last item put first, a PriorityQueue the one
 * with the lowest priority value first (and equal priorities in the order
 * they were put). They are process-safe queues: a child could put and the
 * parent get (docs/queue.md).
 *
 * It mirrors this Python program (seed 001, "2.8.4 其他模式"):
 *
 *   import queue
 *   q = queue.LifoQueue()
 *   q.put(34)
 *   q.put(56)
 *   q.put(12)
 *   q = queue.PriorityQueue()
 *   q.put([5, 100])
 *   q.put([7, 200])
 *   q.put([3, "hello"])
 *   q.put([4, {"name": "alex"}])
 *   while 1:
 *       data = q.get()
 *       print(data)
 *
 * Python's loop blocks for ever once the queue is empty; this one stops
 * there (get_nowait tells "empty").
 *
 * Usage: queue_lifo_priority [--quick]   (--quick changes nothing) */
#include <multiproc.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  mp_queue *q;
  MP_CHECK(mp_queue_new(&q, &(mp_queue_opts){.order = MP_QUEUE_LIFO}));
  MP_CHECK(mp_queue_put_int64(q, 34, MP_FOREVER));
  MP_CHECK(mp_queue_put_int64(q, 56, MP_FOREVER));
  MP_CHECK(mp_queue_put_int64(q, 12, MP_FOREVER));
  int64_t v;
  int rc;
  while ((rc = mp_queue_get_int64(q, &v, 0)) == 0) /* 0: stop when empty */
    printf("%ld\n", (long)v);
  MP_CHECK(rc == MP_EAGAIN ? 0 : rc); /* empty, not an error */
  mp_queue_free(q);
  MP_CHECK(mp_queue_new(&q, &(mp_queue_opts){.order = MP_QUEUE_PRIORITY}));
  const char *items[] = {"100", "200", "\"hello\"", "{\"name\": \"alex\"}"};
  int64_t prios[] = {5, 7, 3, 4};
  for (int i = 0; i < 4; i++)
    MP_CHECK(mp_queue_put_priority(q, prios[i], items[i], strlen(items[i]),
                                   MP_FOREVER));
  char item[64];
  size_t len;
  while ((rc = mp_queue_get_priority(q, &v, item, sizeof item, &len, 0)) == 0)
    printf("[%ld, %.*s]\n", (long)v, (int)len, item);
  mp_queue_free(q);
  return rc == MP_EAGAIN ? 0 : 1;
}
