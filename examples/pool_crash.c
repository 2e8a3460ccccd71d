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
  int rc = mp_pool_new(&pool, &(mp_pool_opts){.processes = 2});
  if (rc != 0) {
    fprintf(stderr, "Pool: %s\n", mp_strerror(rc));
    return 1;
  }
  int in[10], out[10], status[10];
  for (int i = 0; i < 10; i++)
    in[i] = i;
  mp_pool_map_opts opts = {.chunksize = 3, .statuses = status};
  mp_async_result *r;
  rc = mp_pool_map_async(pool, &r, buggy, in, 10, sizeof(int), out, sizeof(int),
                         &opts);
  if (rc != 0) {
    fprintf(stderr, "map_async: %s\n", mp_strerror(rc));
    return 1;
  }
  rc = mp_async_result_get(r, 60);
  printf("map returned %s\n", mp_err_name(rc));
  mp_task_error err;
  if (mp_async_result_error(r, &err) == 0)
    printf("item %zu failed: %s; worker %d ended by %s\n", err.index,
           mp_err_name(err.code), (int)err.worker,
           err.exit.signal ? err.exit.signal_name : "exit");
  for (int i = 0; i < 10; i++) {
    if (status[i] == 0)
      printf("  item %d -> %d\n", i, out[i]);
    else
      printf("  item %d -> %s\n", i, mp_err_name(status[i]));
  }
  mp_async_result_free(r);
  /* The pool goes on with a replacement worker. */
  int x = 7, y = 0;
  int rc2 = mp_pool_map(pool, buggy, &x, 1, sizeof x, &y, sizeof y, NULL);
  printf("the next map: %s, %d\n", mp_err_name(rc2), y);
  mp_pool_free(pool);
  return rc == MP_EWORKERDIED && status[4] == MP_EWORKERDIED && rc2 == 0 &&
                 y == 70
             ? 0
             : 1;
}
