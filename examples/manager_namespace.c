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

static mp_proxy *using_ns;
static int64_t x, y; /* using_ns.x and .y as this process last read them */

static int Mng_NaSp(void *arg) { /* as Python does it: read, then write */
  MP_CHECK(mp_proxy_getattr_int(using_ns, "x", &x));
  MP_CHECK(mp_proxy_setattr(using_ns, "x", mp_obj_int(x + 5)));
  MP_CHECK(mp_proxy_getattr_int(using_ns, "y", &y));
  MP_CHECK(mp_proxy_setattr(using_ns, "y", mp_obj_int(y * 10)));
  return arg != NULL;
}

static int Mng_NaSp_atomic(void *arg) { /* one request each: no race */
  MP_CHECK(mp_proxy_add(using_ns, mp_obj_str("x"), mp_obj_int(5), NULL));
  for (int swapped = 0; !swapped;) { /* y *= 10 as compare-and-set */
    MP_CHECK(mp_proxy_getattr_int(using_ns, "y", &y));
    MP_CHECK(mp_proxy_compare_and_set(using_ns, mp_obj_str("y"), mp_obj_int(y),
                                      mp_obj_int(y * 10), &swapped));
  }
  return arg != NULL;
}

int main(void) {
  mp_manager *manager;
  MP_CHECK(mp_manager_start(&manager, NULL));
  MP_CHECK(mp_manager_namespace(manager, &using_ns));
  for (int atomic = 0; atomic < 2; atomic++) {
    MP_CHECK(mp_proxy_setattr(using_ns, "x", mp_obj_int(1)));
    MP_CHECK(mp_proxy_setattr(using_ns, "y", mp_obj_int(1)));
    printf(atomic ? "\natomic, ten children at once:\nbefore " : "before ");
    MP_CHECK(mp_proxy_print(stdout, using_ns));
    MP_CHECK(mp_process_start_join_n(atomic ? 10 : 1,
                                     atomic ? Mng_NaSp_atomic : Mng_NaSp,
                                     NULL, NULL));
    printf("after ");
    MP_CHECK(mp_proxy_print(stdout, using_ns));
  }
  MP_CHECK(mp_proxy_getattr_int(using_ns, "x", &x)); /* exact every time */
  MP_CHECK(mp_proxy_getattr_int(using_ns, "y", &y));
  mp_proxy_free(using_ns);
  mp_manager_free(manager);
  return x == 51 && y == 10000000000LL ? 0 : 1;
}
