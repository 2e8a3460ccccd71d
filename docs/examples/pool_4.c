/* pool_4.c - a pool whose workers are spawned: fresh images of this
 * program that find the functions by the names MP_POOL_MAP and
 * MP_POOL_INIT registered. main calls mp_child_main first, as every
 * program that uses spawn must. */
#include <stdio.h>

#include <multiproc.h>

static int scale;

static int setup(const void *initargs, size_t size) {
  if (size != sizeof(int))
    return -1;
  scale = *(const int *)initargs; /* per-worker state, as Python's */
  return 0;
}
MP_POOL_INIT(setup)

static int times_scale(const void *in, void *out) {
  *(int *)out = *(const int *)in * scale;
  return 0;
}
MP_POOL_MAP(times_scale)

int main(int argc, char **argv) {
  if (mp_child_main(argc, argv) != 0) /* a spawned worker never returns */
    return 1;
  mp_context *ctx;
  if (mp_context_new(&ctx, MP_START_SPAWN) != 0)
    return 1;
  int ten = 10;
  mp_pool_opts opts = {.processes = 2, .context = ctx,
                       .initializer = setup, .initargs = &ten,
                       .initargs_size = sizeof ten};
  mp_pool *pool;
  int rc = mp_pool_new(&pool, &opts);
  int in[4] = {1, 2, 3, 4}, out[4] = {0};
  if (rc == 0)
    rc = mp_pool_map(pool, times_scale, in, 4, sizeof(int), out, sizeof(int),
                     NULL);
  printf("%s: %d %d %d %d\n", mp_err_name(rc), out[0], out[1], out[2],
         out[3]);
  mp_pool_free(pool);
  mp_context_free(ctx);
  return rc == 0 ? 0 : 1;
}
