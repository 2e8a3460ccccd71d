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
  if (x == 4) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    *nowhere = x; /* the bug: SIGSEGV */
  }
  *(int *)out = 10 * x;
  return 0;
}

int main(void) {
  mp_pool *pool;
  MP_CHECK(mp_pool_new(&pool, &(mp_pool_opts){.processes = 2}));
  int in[10], out[10], status[10];
  for (int i = 0; i < 10; i++)
    in[i] = i;
  mp_async_result *r;
  MP_CHECK(mp_pool_map_async(
      pool, &r, buggy, in, 10, sizeof(int), out, sizeof(int),
      &(mp_pool_map_opts){.chunksize = 3, .statuses = status}));
  printf("map returned %s\n", mp_error_message(mp_async_result_get(r, 60)));
  for (int i = 0; i < 10; i++)
    printf("  item %d -> %d %s\n", i, out[i],
           status[i] ? mp_err_name(status[i]) : "");
  mp_async_result_free(r);
  int x = 7, y = 0; /* the pool goes on, with a replacement worker */
  MP_CHECK(mp_pool_map(pool, buggy, &x, 1, sizeof x, &y, sizeof y, NULL));
  printf("the next map: %d\n", y);
  mp_pool_free(pool);
  return status[4] == MP_EWORKERDIED && y == 70 ? 0 : 1;
}
