/* manager_dict_list.c - a dict and a list on a manager, filled by ten
 * processes, then the same with one child as in seed 002.
 *
 * It mirrors these Python programs. Seed 001, 3.3.3 manager:
 *
 *   from multiprocessing import Process, Manager
 *   def f(d, l, n):
 *       d[n] = n
 *       d["name"] = "alvin"
 *       l.append(n)
 *   if __name__ == '__main__':
 *       with Manager() as manager:
 *           d = manager.dict()
 *           l = manager.list(range(5))
 *           p_list = []
 *           for i in range(10):
 *               p = Process(target=f, args=(d, l, i))
 *               p.start()
 *               p_list.append(p)
 *           for res in p_list:
 *               res.join()
 *           print(d)
 *           print(l)
 *
 * and seed 002 (代理服务Manager()): func_1(dict, list) sets
 * dict["haha"] = 88 and appends 20, in one child; the parent prints both.
 * The children inherit the proxies across fork, as Python's do; the order
 * of the keys and items is the order the children ran in.
 *
 * Usage: manager_dict_list [--quick]   (--quick changes nothing) */
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

typedef struct shared {
  mp_proxy *d, *l;
} shared;

static shared sh;

static int f(void *arg) {
  long n = (long)arg;
  check(mp_proxy_setitem(sh.d, mp_obj_int(n), mp_obj_int(n)), "d[n] = n");
  check(mp_proxy_setitem(sh.d, mp_obj_str("name"), mp_obj_str("alvin")),
        "d['name'] = 'alvin'");
  check(mp_proxy_append(sh.l, mp_obj_int(n)), "l.append(n)");
  return 0;
}

static int func_1(void *arg) {
  (void)arg;
  check(mp_proxy_setitem(sh.d, mp_obj_str("haha"), mp_obj_int(88)), "dict['haha'] = 88");
  check(mp_proxy_append(sh.l, mp_obj_int(20)), "list.append(20)");
  return 0;
}

static void print_proxy(mp_proxy *p) {
  char *s;
  check(mp_proxy_repr(p, &s), "repr");
  printf("%s\n", s);
  free(s);
}

int main(void) {
  mp_manager *manager;
  check(mp_manager_start(&manager, NULL), "Manager()");
  check(mp_manager_dict(manager, &sh.d), "manager.dict()");
  mp_obj *range5 = mp_obj_list();
  for (int i = 0; i < 5; i++) mp_obj_list_append(range5, mp_obj_int(i));
  check(mp_manager_create(manager, "list", mp_obj_tuple_pack(1, range5), NULL, &sh.l),
        "manager.list(range(5))");
  mp_process *p_list[10];
  for (long i = 0; i < 10; i++) {
    check(mp_process_new(&p_list[i], f, (void *)i, NULL), "Process");
    check(mp_process_start(p_list[i]), "start");
  }
  for (int i = 0; i < 10; i++) {
    check(mp_process_join(p_list[i], MP_FOREVER), "join");
    mp_process_free(p_list[i]);
  }
  print_proxy(sh.d);
  print_proxy(sh.l);
  int ok = mp_proxy_len(sh.d) == 11 && mp_proxy_len(sh.l) == 15;
  mp_proxy_free(sh.d);
  mp_proxy_free(sh.l);

  /* seed 002 */
  check(mp_manager_dict(manager, &sh.d), "m.dict()");
  check(mp_manager_list(manager, &sh.l), "m.list()");
  mp_process *p;
  check(mp_process_new(&p, func_1, NULL, NULL), "Process");
  check(mp_process_start(p), "start");
  check(mp_process_join(p, MP_FOREVER), "join");
  mp_process_free(p);
  print_proxy(sh.d);
  print_proxy(sh.l);
  ok = ok && mp_proxy_len(sh.d) == 1 && mp_proxy_len(sh.l) == 1;
  mp_proxy_free(sh.d);
  mp_proxy_free(sh.l);
  mp_manager_free(manager); /* leaving `with Manager()`: shut down */
  return ok ? 0 : 1;
}
