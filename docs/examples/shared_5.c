/* shared_5.c - atomic add, beyond Python's "v.value += 1" race
 * (docs/shared.md). */
#include <stdio.h>

#include <multiproc.h>

static int add(void *arg) {
  for (int i = 0; i < 100000; i++)
    mp_value_fetch_add(arg, 1, NULL);
  return 0;
}

int main(void) {
  mp_value *v;
  if (mp_value_new(&v, 'q', NULL, NULL) != 0)
    return 1;
  mp_process *p;
  if (mp_process_new(&p, add, v, NULL) != 0 || mp_process_start(p) != 0)
    return 1;
  add(v);
  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  int64_t x;
  mp_value_get_int(v, &x);
  printf("%lld\n", (long long)x); /* always 200000 */
  mp_value_free(v);
  return 0;
}
