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
  MP_CHECK(mp_value_set_double(num, 3.1415927));
  for (ssize_t i = 0; i < (ssize_t)mp_array_len(arr); i++) {
    int64_t x;
    MP_CHECK(mp_array_get_int(arr, i, &x));
    MP_CHECK(mp_array_set_int(arr, i, -x));
  }
  return arg != NULL;
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

int main(int argc, char **argv) {
  (void)argv;
  n = argc > 1 ? 20000 : 200000;
  MP_CHECK(mp_value_new(&v, 'i', &(int){10}, NULL));
  MP_CHECK(mp_process_start_join(func_1, NULL, NULL));
  MP_CHECK(mp_value_print(stdout, v)); /* print(v.value) */
  int range10[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  MP_CHECK(mp_value_new(&num, 'd', &(double){0.0}, NULL));
  MP_CHECK(mp_array_new(&arr, 'i', 10, range10, NULL));
  MP_CHECK(mp_process_start_join(f, NULL, NULL));
  MP_CHECK(mp_value_print(stdout, num)); /* print(num.value) */
  MP_CHECK(mp_array_print(stdout, arr)); /* print(arr[:]) */
  MP_CHECK(mp_value_new(&racy, 'q', NULL, NULL));
  MP_CHECK(mp_value_new(&atomic, 'q', NULL, NULL));
  MP_CHECK(mp_process_start_join_n(2, add, NULL, NULL)); /* two at once */
  int64_t x, y;
  MP_CHECK(mp_value_get_int(racy, &x));
  MP_CHECK(mp_value_get_int(atomic, &y));
  printf("2 processes x %d increments: get+set %lld (updates lost to the "
         "race), atomic add %lld\n",
         n, (long long)x, (long long)y);
  mp_value_free(v);
  mp_value_free(num);
  mp_array_free(arr);
  mp_value_free(racy);
  mp_value_free(atomic);
  return y == 2LL * n ? 0 : 1;
}
