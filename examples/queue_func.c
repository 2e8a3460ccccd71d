/* queue_func.c - the minimal Queue example: a child puts its argument and
 * the parent gets it after joining the child; then the same with the
 * message Python's documentation sends, [42, None, 'hello'].
 *
 * It mirrors these Python programs. Seed 002 ("Queue() 最简示例"):
 *
 *   import multiprocessing as mp
 *   def func(q, arg):
 *       print("input : ", arg)
 *       q.put(arg)
 *       print("Process done ...")
 *   if __name__ == '__main__':
 *       q = mp.Queue()
 *       p = mp.Process(target=func, args=(q, "I'm process"))
 *       p.start()
 *       p.join()
 *       print(q.get())
 *
 * and seed 004 (Python's documentation):
 *
 *   from multiprocessing import Process, Queue
 *   def f(q): q.put([42, None, 'hello'])
 *   def main(): q = Queue(); p = Process(target=f, args=(q,)); p.start();
 *               print(q.get())
 *
 * Joining before getting is safe here for any size of message, unlike in
 * Python, whose feeder thread must flush a large item before the child
 * can end: put returns once the message is in shared memory.
 *
 * Usage: queue_func [--quick]   (--quick changes nothing: it is quick) */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct func_args {
  mp_queue *q;
  const char *arg;
} func_args;

static int func(void *p) {
  func_args *a = p;
  printf("input :  %s\n", a->arg);
  MP_CHECK(mp_queue_put_str(a->q, a->arg, MP_FOREVER));
  printf("Process done ...\n");
  fflush(stdout);
  return 0;
}

/* f puts Python's list [42, None, 'hello'] as a value (pickled, as
 * Python's q.put does). */
static int f(void *p) {
  mp_queue *q = p;
  mp_obj *v = mp_obj_list_pack(3, mp_obj_int(42), mp_obj_none(),
                               mp_obj_str("hello"));
  MP_CHECK(mp_queue_put_obj(q, v, MP_FOREVER));
  mp_obj_free(v);
  return 0;
}

int main(void) {
  mp_queue *q;
  MP_CHECK(mp_queue_new(&q, NULL));

  func_args a = {q, "I'm process"};
  mp_process *p;
  MP_CHECK(mp_process_new(&p, func, &a, NULL));
  MP_CHECK(mp_process_start(p));
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  mp_process_free(p);
  char text[64];
  MP_CHECK(mp_queue_get_str(q, text, sizeof text, MP_FOREVER));
  printf("%s\n", text);

  MP_CHECK(mp_process_new(&p, f, q, NULL));
  MP_CHECK(mp_process_start(p));
  mp_obj *v;
  MP_CHECK(mp_queue_get_obj(q, &v, MP_FOREVER));
  MP_CHECK(mp_obj_print(stdout, v)); /* [42, None, 'hello'] */
  int64_t first = 0;
  mp_obj_get_int(mp_obj_list_get(v, 0), &first);
  mp_obj_free(v);
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  mp_process_free(p);
  mp_queue_free(q);
  return strcmp(text, "I'm process") == 0 && first == 42 ? 0 : 1;
}
