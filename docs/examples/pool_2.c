/* pool_2.c - apply_async with a callback and an error callback, then
 * close and join, as Python's apply_async(f, args, callback=...,
 * error_callback=...). Callbacks run in the pool's result thread. */
#include <stdatomic.h>
#include <stdio.h>

#include <multiproc.h>

static int half(const void *in, size_t n, void *out, size_t cap,
                size_t *len) {
  (void)n, (void)cap;
  int x = *(const int *)in;
  if (x % 2 != 0)
    return -1; /* odd numbers fail */
  *(int *)out = x / 2;
  *len = sizeof(int);
  return 0;
}

static atomic_int sum, failures;

static void on_result(void *userdata, int status, const void *result,
                      size_t len) {
  (void)userdata, (void)status, (void)len;
  atomic_fetch_add(&sum, *(const int *)result);
}

static void on_error(void *userdata, int status, const void *result,
                     size_t len) {
  (void)userdata, (void)status, (void)result, (void)len;
  atomic_fetch_add(&failures, 1);
}

int main(void) {
  mp_pool *pool;
  if (mp_pool_new(&pool, &(mp_pool_opts){.processes = 2}) != 0)
    return 1;
  mp_pool_apply_opts opts = {.callback = on_result,
                             .error_callback = on_error};
  mp_async_result *r[10];
  for (int i = 0; i < 10; i++)
    if (mp_pool_apply_async(pool, &r[i], half, &i, sizeof i, &opts) != 0)
      return 1;
  mp_pool_close(pool);              /* no more work */
  mp_pool_join(pool, MP_FOREVER);   /* every task has run */
  for (int i = 0; i < 10; i++) {
    if (mp_async_result_successful(r[i]) == 1)
      printf("%d / 2 = %d\n", i, *(const int *)mp_async_result_data(r[i], NULL));
    mp_async_result_free(r[i]);
  }
  printf("sum %d, %d failed\n", atomic_load(&sum), atomic_load(&failures));
  mp_pool_free(pool);
  return 0;
}
