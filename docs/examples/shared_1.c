/* shared_1.c - Value and Array changed by a forked child (docs/shared.md). */
#include <stdio.h>

#include <multiproc.h>

typedef struct shared {
  mp_value *num;
  mp_array *arr;
} shared;

static int f(void *arg) {
  shared *s = arg;
  mp_value_set_double(s->num, 3.1415927);
  for (ssize_t i = 0; i < (ssize_t)mp_array_len(s->arr); i++) {
    int64_t x;
    mp_array_get_int(s->arr, i, &x);
    mp_array_set_int(s->arr, i, -x);
  }
  return 0;
}

int main(void) {
  shared s;
  double zero = 0.0;
  int range10[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  if (mp_value_new(&s.num, 'd', &zero, NULL) != 0 ||
      mp_array_new(&s.arr, 'i', 10, range10, NULL) != 0)
    return 1;
  mp_process *p;
  if (mp_process_new(&p, f, &s, NULL) != 0 || mp_process_start(p) != 0)
    return 1;
  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  double d;
  int out[10];
  mp_value_get_double(s.num, &d);
  mp_array_get_slice(s.arr, 0, 10, out, 10);
  printf("%.7f %d %d\n", d, out[1], out[9]); /* 3.1415927 -1 -9 */
  mp_value_free(s.num);
  mp_array_free(s.arr);
  return 0;
}
