/* pool_crash.c - what Python's Pool cannot do: a task that crashes its
 * worker fails alone. A map over ten items has a bug on item 4 (a write
 * through a NULL pointer); Python's Pool would hang forever on it (the
 * result never arrives), this pool reports MP_EWORKERDIED for that item,
 * with the signal, starts a fresh worker, and delivers the other nine
 * results.
 *
 * Usage: pool_crash [--quick]   (the same either way) */
#include <multiproc.h>

#include <stdio.h>
#include <sys/resource.h>

/* A pointer nobody set: the compiler cannot know it is NULL. */
static int *volatile nowhere;

static int buggy(const void *in, void *out) {
  int x = *(const int *)in;
  if (x == 4)
    *nowhere = x; /* the bug: SIGSEGV */
  *(int *)out = 10 * x;
  return 0;
}

int main(void) {
  setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0}); /* no core file, please */
  mp_pool *pool;
  MP_CHECK(mp_pool_new(&pool, &(mp_pool_opts){.processes = 2}));
  int in[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, out[10] = {0}, status[10];
  int rc = mp_pool_map(pool, buggy, in, 10, sizeof(int), out, sizeof(int),
                       &(mp_pool_map_opts){.chunksize = 3, .statuses = status});
  printf("map returned %s\n", mp_error_message(rc));
  for (int i = 0; i < 10; i++)
    printf("  item %d -> %d (%s)\n", i, out[i], mp_err_name(status[i]));
  /* The pool goes on, with a replacement worker: item 7 again. */
  MP_CHECK(mp_pool_map(pool, buggy, &in[7], 1, sizeof(int), out, sizeof(int),
                       NULL));
  printf("the next map: %d\n", out[0]);
  mp_pool_free(pool);
  return status[4] == MP_EWORKERDIED && out[0] == 70 ? 0 : 1;
}
