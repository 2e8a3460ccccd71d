/* pool_1.c - Pool(4).map over an array of C structs, with a status per
 * item, and apply for one bytes task. */
#include <stdio.h>
#include <string.h>

#include <multiproc.h>

typedef struct point {
  double x, y;
} point;

/* The item function: one input struct in, one result out. */
static int norm2(const void *in, void *out) {
  const point *p = in;
  if (p->x < 0)
    return MP_ERANGE; /* this item's own failure */
  *(double *)out = p->x * p->x + p->y * p->y;
  return 0;
}

/* A bytes task: input bytes in, result bytes out. */
static int reverse(const void *in, size_t n, void *out, size_t cap,
                   size_t *len) {
  if (n > cap)
    return MP_ETOOBIG;
  for (size_t i = 0; i < n; i++)
    ((char *)out)[i] = ((const char *)in)[n - 1 - i];
  *len = n;
  return 0;
}

int main(void) {
  mp_pool *pool;
  int rc = mp_pool_new(&pool, &(mp_pool_opts){.processes = 4});
  if (rc != 0)
    return 1;

  point pts[5] = {{3, 4}, {1, 1}, {-2, 0}, {0, 5}, {6, 8}};
  double sq[5];
  int status[5];
  mp_pool_map_opts opts = {.statuses = status};
  rc = mp_pool_map(pool, norm2, pts, 5, sizeof(point), sq, sizeof(double),
                   &opts);
  printf("map: %s\n", mp_err_name(rc)); /* the failing item's status */
  for (int i = 0; i < 5; i++)
    if (status[i] == 0)
      printf("  %d: %g\n", i, sq[i]);
    else
      printf("  %d: failed with %s\n", i, mp_err_name(status[i]));

  char out[16];
  size_t len = 0;
  rc = mp_pool_apply(pool, reverse, "stressed", 8, out, sizeof out, &len);
  if (rc == 0)
    printf("apply: %.*s\n", (int)len, out);

  mp_pool_free(pool); /* like leaving `with Pool(4) as pool:` */
  return rc == 0 ? 0 : 1;
}
