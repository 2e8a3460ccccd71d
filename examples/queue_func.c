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

/* Python's list [42, None, 'hello'] as C data: a struct, sent as bytes. */
typedef struct record {
  int number;
  int has_value; /* None */
  char text[8];
} record;

static int f(void *p) {
  mp_queue *q = p;
  record r = {.number = 42, .has_value = 0};
  strcpy(r.text, "hello");
  MP_CHECK(mp_queue_put(q, &r, sizeof r, MP_FOREVER));
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
  record r;
  size_t len;
  MP_CHECK(mp_queue_get(q, &r, sizeof r, &len, MP_FOREVER));
  printf("[%d, %s, '%s']\n", r.number, r.has_value ? "?" : "None", r.text);
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  mp_process_free(p);
  mp_queue_free(q);
  return strcmp(text, "I'm process") == 0 && r.number == 42 ? 0 : 1;
}
