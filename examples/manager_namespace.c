/* manager_namespace.c - a Namespace on a manager changed by a child, and
 * the same change made atomic.
 *
 * It mirrors this Python program (seed 004, Namespace):
 *
 *   import multiprocessing
 *   def Mng_NaSp(using_ns):
 *       using_ns.x += 5
 *       using_ns.y *= 10
 *   if __name__ == '__main__':
 *       manager = multiprocessing.Manager()
 *       using_ns = manager.Namespace()
 *       using_ns.x = 1
 *       using_ns.y = 1
 *       print('before', using_ns)
 *       p = multiprocessing.Process(target=Mng_NaSp, args=(using_ns,))
 *       p.start()
 *       p.join()
 *       print('after', using_ns)
 *
 * which prints "before Namespace(x=1, y=1)" and "after Namespace(x=6,
 * y=10)". In Python `using_ns.x += 5` is a read and then a write: two
 * children doing it at once can lose an update. Beyond Python, the second
 * half has ten children each add 5 with mp_proxy_add, one request that the
 * server applies atomically, and y *= 10 with a compare-and-set loop: the
 * result is exact every time.
 *
 * Usage: manager_namespace [--quick]   (--quick changes nothing) */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>

static int check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", what, mp_error_message(rc));
    exit(1);
  }
  return rc;
}

static mp_proxy *using_ns;

static int64_t get_int(const char *name) {
  mp_obj *v;
  check(mp_proxy_getattr(using_ns, name, &v), name);
  int64_t i = 0;
  mp_obj_get_int(v, &i);
  mp_obj_free(v);
  return i;
}

static int Mng_NaSp(void *arg) {
  (void)arg;
  /* using_ns.x += 5; using_ns.y *= 10, as Python does it: read, write */
  check(mp_proxy_setattr(using_ns, "x", mp_obj_int(get_int("x") + 5)), "x += 5");
  check(mp_proxy_setattr(using_ns, "y", mp_obj_int(get_int("y") * 10)), "y *= 10");
  return 0;
}

static int Mng_NaSp_atomic(void *arg) {
  (void)arg;
  check(mp_proxy_add(using_ns, mp_obj_str("x"), mp_obj_int(5), NULL), "x += 5");
  for (;;) { /* y *= 10 as compare-and-set */
    int64_t y = get_int("y");
    int swapped = 0;
    check(mp_proxy_compare_and_set(using_ns, mp_obj_str("y"), mp_obj_int(y),
                                   mp_obj_int(y * 10), &swapped),
          "y *= 10");
    if (swapped) break;
  }
  return 0;
}

static void print_ns(const char *when) {
  char *s;
  check(mp_proxy_repr(using_ns, &s), "repr");
  printf("%s %s\n", when, s);
  free(s);
}

int main(void) {
  mp_manager *manager;
  check(mp_manager_start(&manager, NULL), "Manager()");
  check(mp_manager_namespace(manager, &using_ns), "manager.Namespace()");
  check(mp_proxy_setattr(using_ns, "x", mp_obj_int(1)), "x = 1");
  check(mp_proxy_setattr(using_ns, "y", mp_obj_int(1)), "y = 1");
  print_ns("before");
  mp_process *p;
  check(mp_process_new(&p, Mng_NaSp, NULL, NULL), "Process");
  check(mp_process_start(p), "start");
  check(mp_process_join(p, MP_FOREVER), "join");
  mp_process_free(p);
  print_ns("after");
  int ok = get_int("x") == 6 && get_int("y") == 10;

  printf("\natomic, ten children at once:\n");
  check(mp_proxy_setattr(using_ns, "x", mp_obj_int(1)), "x = 1");
  check(mp_proxy_setattr(using_ns, "y", mp_obj_int(1)), "y = 1");
  print_ns("before");
  mp_process *ps[10];
  for (int i = 0; i < 10; i++) {
    check(mp_process_new(&ps[i], Mng_NaSp_atomic, NULL, NULL), "Process");
    check(mp_process_start(ps[i]), "start");
  }
  for (int i = 0; i < 10; i++) {
    check(mp_process_join(ps[i], MP_FOREVER), "join");
    mp_process_free(ps[i]);
  }
  print_ns("after");
  ok = ok && get_int("x") == 51 && get_int("y") == 10000000000LL;
  mp_proxy_free(using_ns);
  mp_manager_free(manager);
  return ok ? 0 : 1;
}
