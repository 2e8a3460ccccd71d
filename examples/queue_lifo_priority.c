/* queue_lifo_priority.c - the other two orders of the queue module: a
 * LifoQueue hands back the last item put first, a PriorityQueue the one
 * with the lowest priority value first (and equal priorities in the order
 * they were put). Here between a child that puts and the parent that gets.
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

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int put_lifo(void *arg) {
  mp_queue *q = arg;
  int64_t items[] = {34, 56, 12};
  for (int i = 0; i < 3; i++)
    MP_CHECK(mp_queue_put_int64(q, items[i], MP_FOREVER));
  return 0;
}

static int put_priority(void *arg) {
  mp_queue *q = arg;
  struct {
    int64_t priority;
    const char *item;
  } items[] = {
      {5, "100"}, {7, "200"}, {3, "\"hello\""}, {4, "{\"name\": \"alex\"}"}};
  for (int i = 0; i < 4; i++)
    MP_CHECK(mp_queue_put_priority(q, items[i].priority, items[i].item,
                                   strlen(items[i].item), MP_FOREVER));
  return 0;
}

static void run_child(mp_process_target_fn fn, mp_queue *q) {
  mp_process *p;
  MP_CHECK(mp_process_new(&p, fn, q, NULL));
  MP_CHECK(mp_process_start(p));
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  mp_process_free(p);
}

int main(void) {
  int ok = 1;
  mp_queue *q;
  MP_CHECK(mp_queue_new(&q, &(mp_queue_opts){.order = MP_QUEUE_LIFO}));
  run_child(put_lifo, q);
  int64_t want_lifo[] = {12, 56, 34};
  for (int i = 0;; i++) {
    int64_t v;
    int rc = mp_queue_get_int64(q, &v, 0);
    if (rc == MP_EAGAIN)
      break;
    MP_CHECK(rc);
    printf("%" PRId64 "\n", v);
    ok &= i < 3 && v == want_lifo[i];
  }
  mp_queue_free(q);

  MP_CHECK(mp_queue_new(&q, &(mp_queue_opts){.order = MP_QUEUE_PRIORITY}));
  run_child(put_priority, q);
  int64_t want_prio[] = {3, 4, 5, 7};
  for (int i = 0;; i++) {
    char item[64];
    size_t len;
    int64_t prio;
    int rc = mp_queue_get_priority(q, &prio, item, sizeof item - 1, &len, 0);
    if (rc == MP_EAGAIN)
      break;
    MP_CHECK(rc);
    item[len] = '\0';
    printf("[%" PRId64 ", %s]\n", prio, item);
    ok &= i < 4 && prio == want_prio[i];
  }
  mp_queue_free(q);
  return ok ? 0 : 1;
}
