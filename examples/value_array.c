/* value_array.c - Value and Array in shared memory, changed by a child
 * process: the two programs of the seeds, and the race Python's
 * "v.value += 1" has, done right with the atomic add.
 *
 * It mirrors these Python programs (seed 002, "共享内存 / value和array",
 * and seed 004, the example from Python's documentation):
 *
 *   import multiprocessing as mp
 *   def func_1(v):
 *       v.value = 20
 *   if __name__ == '__main__':
 *       v = mp.Value('i', 10)
 *       p = mp.Process(target=func_1, args=(v, ))
 *       p.start()
 *       p.join()
 *       print(v.value)                      # 20
 *
 *   from multiprocessing import Process, Value, Array
 *   def f(n, a):
 *       n.value = 3.1415927
 *       for i in range(len(a)):
 *           a[i] = -a[i]
 *   if __name__ == '__main__':
 *       num = Value('d', 0.0)
 *       arr = Array('i', range(10))
 *       p = Process(target=f, args=(num, arr))
 *       p.start()
 *       p.join()
 *       print(num.value)                    # 3.1415927
 *       print(arr[:])                       # [0, -1, -2, ..., -9]
 *
 * Usage: value_array [--quick] */
#include <multiproc.h>
#include <stdio.h>

static mp_value *v, *num, *racy, *atomic;
static mp_array *arr;
static int n = 200000; /* increments per process; 20000 with --quick */

static int func_1(void *arg) {
  (void)arg;
  return (int)MP_CHECK(mp_value_set_int(v, 20));
}

static int f(void *arg) {
  (void)arg;
  MP_CHECK(mp_value_set_double(num, 3.1415927));
  MP_CHECK(mp_array_acquire(arr, MP_FOREVER)); /* once for the whole loop */
  for (ssize_t i = 0; i < (ssize_t)mp_array_len(arr); i++) {
    int64_t x;
    MP_CHECK(mp_array_get_int(arr, i, &x));
    MP_CHECK(mp_array_set_int(arr, i, -x));
  }
  return (int)MP_CHECK(mp_array_release(arr));
}

/* Beyond Python: "v.value += 1" (a race in Python too), and an atomic add. */
static int add(void *arg) {
  for (int i = 0; i < n; i++) {
    int64_t x;
    MP_CHECK(mp_value_get_int(racy, &x));
    MP_CHECK(mp_value_set_int(racy, x + 1));
    MP_CHECK(mp_value_fetch_add(atomic, 1, NULL));
  }
  return arg != NULL;
}

static void run(mp_process_target_fn fn) { /* start, join, check */
  mp_process *p;
  int code;
  MP_CHECK(mp_process_new(&p, fn, NULL, NULL));
  MP_CHECK(mp_process_start(p));
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  MP_CHECK(mp_process_exitcode(p, &code));
  MP_CHECK(code == 0 ? 0 : MP_ECHILD);
  mp_process_free(p);
}

int main(int argc, char **argv) {
  (void)argv;
  n = argc > 1 ? 20000 : 200000;
  int64_t x, y;
  MP_CHECK(mp_value_new(&v, 'i', &(int){10}, NULL));
  run(func_1);
  MP_CHECK(mp_value_get_int(v, &x));
  printf("%lld\n", (long long)x);
  int range10[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, out[10];
  MP_CHECK(mp_value_new(&num, 'd', &(double){0.0}, NULL));
  MP_CHECK(mp_array_new(&arr, 'i', 10, range10, NULL));
  run(f);
  double d;
  MP_CHECK(mp_value_get_double(num, &d));
  MP_CHECK(mp_array_get_slice(arr, 0, 10, out, 10));
  printf("%.7f\n[", d);
  for (int i = 0; i < 10; i++)
    printf("%s%d", i ? ", " : "", out[i]);
  printf("]\n");
  MP_CHECK(mp_value_new(&racy, 'q', NULL, NULL));
  MP_CHECK(mp_value_new(&atomic, 'q', NULL, NULL));
  mp_process *p;
  MP_CHECK(mp_process_new(&p, add, NULL, NULL));
  MP_CHECK(mp_process_start(p));
  add(NULL);
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  MP_CHECK(mp_value_get_int(racy, &x));
  MP_CHECK(mp_value_get_int(atomic, &y));
  printf("2 processes x %d increments: get+set %lld (updates lost to the "
         "race), atomic add %lld\n",
         n, (long long)x, (long long)y);
  mp_process_free(p);
  mp_value_free(v);
  mp_value_free(num);
  mp_array_free(arr);
  mp_value_free(racy);
  mp_value_free(atomic);
  return y == 2LL * n ? 0 : 1;
}
