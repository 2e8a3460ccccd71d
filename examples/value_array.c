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
#include <stdio.h>
#include <string.h>

#include <multiproc.h>

static int func_1(void *arg) {
  mp_value *v = arg;
  return mp_value_set_int(v, 20) == 0 ? 0 : 1;
}

typedef struct num_arr {
  mp_value *num;
  mp_array *arr;
} num_arr;

static int f(void *arg) {
  num_arr *na = arg;
  if (mp_value_set_double(na->num, 3.1415927) != 0)
    return 1;
  /* Python's loop takes the lock per element; taking it once for the whole
   * loop is what a C programmer would write. */
  mp_array_acquire(na->arr, MP_FOREVER);
  for (size_t i = 0; i < mp_array_len(na->arr); i++) {
    int64_t x;
    mp_array_get_int(na->arr, (ssize_t)i, &x);
    mp_array_set_int(na->arr, (ssize_t)i, -x);
  }
  mp_array_release(na->arr);
  return 0;
}

typedef struct counters {
  mp_value *racy, *atomic;
  int n;
} counters;

/* "v.value += 1" without the lock (a race in Python too), and the atomic
 * add that Python lacks. */
static int add(void *arg) {
  counters *c = arg;
  for (int i = 0; i < c->n; i++) {
    int64_t x;
    mp_value_get_int(c->racy, &x);
    mp_value_set_int(c->racy, x + 1);
    mp_value_fetch_add(c->atomic, 1, NULL);
  }
  return 0;
}

static int run(mp_process_target_fn fn, void *arg) {
  mp_process *p;
  int rc = mp_process_new(&p, fn, arg, NULL);
  if (rc == 0 && (rc = mp_process_start(p)) == 0)
    rc = mp_process_join(p, MP_FOREVER);
  int code = -1;
  if (rc == 0)
    mp_process_exitcode(p, &code);
  mp_process_free(p);
  return rc != 0 ? rc : code;
}

int main(int argc, char **argv) {
  int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;

  /* v = mp.Value('i', 10); a child sets it to 20. */
  int ten = 10;
  mp_value *v;
  if (mp_value_new(&v, 'i', &ten, NULL) != 0 || run(func_1, v) != 0)
    return 1;
  int64_t x;
  mp_value_get_int(v, &x);
  printf("%lld\n", (long long)x);
  mp_value_free(v);

  /* num = Value('d', 0.0); arr = Array('i', range(10)); f negates. */
  num_arr na;
  double zero = 0.0;
  int range10[10];
  for (int i = 0; i < 10; i++)
    range10[i] = i;
  if (mp_value_new(&na.num, 'd', &zero, NULL) != 0 ||
      mp_array_new(&na.arr, 'i', 10, range10, NULL) != 0 || run(f, &na) != 0)
    return 1;
  double d;
  mp_value_get_double(na.num, &d);
  printf("%.7f\n", d);
  int out[10];
  mp_array_get_slice(na.arr, 0, 10, out, 10);
  printf("[");
  for (int i = 0; i < 10; i++)
    printf("%s%d", i ? ", " : "", out[i]);
  printf("]\n");
  mp_value_free(na.num);
  mp_array_free(na.arr);

  /* Beyond Python: two processes add 1 many times. */
  counters c = {.n = quick ? 20000 : 200000};
  if (mp_value_new(&c.racy, 'q', NULL, NULL) != 0 ||
      mp_value_new(&c.atomic, 'q', NULL, NULL) != 0)
    return 1;
  mp_process *p;
  if (mp_process_new(&p, add, &c, NULL) != 0 || mp_process_start(p) != 0)
    return 1;
  add(&c);
  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  int64_t racy, atomic;
  mp_value_get_int(c.racy, &racy);
  mp_value_get_int(c.atomic, &atomic);
  printf("2 processes x %d increments: get+set %lld (updates lost to the "
         "race), atomic add %lld\n",
         c.n, (long long)racy, (long long)atomic);
  mp_value_free(c.racy);
  mp_value_free(c.atomic);
  return atomic == 2LL * c.n ? 0 : 1;
}
