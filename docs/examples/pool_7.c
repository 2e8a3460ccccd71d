/* pool_7.c - parameters beyond the item (opts.context, read in the worker
 * with mp_pool_context: the C analogue of functools.partial) and a
 * blocking map that says which item failed and why (opts.error). The
 * context travels as bytes, so the same code runs under spawn and MPI. */
#include <signal.h>
#include <stdio.h>

#include <multiproc.h>

struct line {
  double slope, offset;
};

static int eval(const void *in, void *out) {
  const struct line *l = mp_pool_context(NULL);
  double x = *(const double *)in;
  if (x < 0)
    raise(SIGSEGV); /* a crash fails this item only */
  *(double *)out = l->slope * x + l->offset;
  return 0;
}
MP_POOL_MAP(eval)

int main(void) {
  mp_pool *pool;
  mp_pool_opts opts = {.processes = 2};
  if (mp_pool_new(&pool, &opts) != 0)
    return 1;
  struct line l = {2.0, 1.0};
  double in[4] = {0, 1, -1, 3}, out[4] = {0};
  mp_task_error err;
  mp_pool_map_opts mo = {.context = &l, .context_size = sizeof l,
                         .error = &err};
  int rc = mp_pool_map(pool, eval, in, 4, sizeof(double), out,
                       sizeof(double), &mo);
  if (rc != 0)
    printf("item %zu failed: %s (%s)\n", err.index, mp_err_name(err.code),
           err.exit.signal_name);
  printf("%g %g %g\n", out[0], out[1], out[3]);
  mp_pool_free(pool);
  return 0;
}
