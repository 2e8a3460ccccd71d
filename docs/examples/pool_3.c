/* pool_3.c - imap_unordered: take results as they finish, with a
 * progress bar on stderr for a long map. */
#include <stdio.h>
#include <time.h>

#include <multiproc.h>

static int slow_cube(const void *in, void *out) {
  long x = *(const long *)in;
  struct timespec ts = {0, (x % 5) * 1000000L}; /* 0 to 4 ms */
  nanosleep(&ts, NULL);
  *(long *)out = x * x * x;
  return 0;
}

int main(void) {
  enum { N = 200 };
  long in[N], out[N];
  for (int i = 0; i < N; i++)
    in[i] = i;
  mp_pool *pool;
  if (mp_pool_new(&pool, NULL) != 0) /* cpu_count() workers */
    return 1;
  mp_pool_map_opts opts = {.chunksize = 4, .progress_bar = 1};
  mp_pool_iter *it;
  if (mp_pool_imap_unordered(pool, &it, slow_cube, in, N, sizeof(long), out,
                             sizeof(long), &opts) != 0)
    return 1;
  size_t i;
  int status, n = 0;
  long total = 0;
  while (mp_pool_iter_next(it, MP_FOREVER, &i, &status) == 0) {
    if (status == 0)
      total += out[i]; /* out[i] is ready once yielded */
    n++;
  }
  mp_pool_iter_free(it);
  mp_pool_free(pool);
  printf("%d results, sum of cubes %ld\n", n, total);
  return 0;
}
