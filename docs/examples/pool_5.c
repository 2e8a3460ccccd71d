/* pool_5.c - crashes and hangs fail one task each: a worker that aborts
 * fails its task with MP_EWORKERDIED and says how it died; a task over
 * the time limit has its worker killed and fails with MP_ETIMEDOUT. The
 * pool replaces both workers and goes on. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <multiproc.h>

static int risky(const void *in, void *out) {
  int x = *(const int *)in;
  if (x == 3) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    abort(); /* dies: SIGABRT */
  }
  if (x == 5)
    sleep(60); /* hangs past the limit */
  *(int *)out = x + 100;
  return 0;
}

int main(void) {
  mp_pool_opts opts = {.processes = 2, .task_timeout = 1.0};
  mp_pool *pool;
  if (mp_pool_new(&pool, &opts) != 0)
    return 1;
  int in[8] = {0, 1, 2, 3, 4, 5, 6, 7}, out[8], status[8];
  mp_pool_map_opts mo = {.chunksize = 1, .statuses = status};
  mp_async_result *r;
  if (mp_pool_map_async(pool, &r, risky, in, 8, sizeof(int), out,
                        sizeof(int), &mo) != 0)
    return 1;
  int rc = mp_async_result_get(r, MP_FOREVER);
  mp_task_error err;
  if (mp_async_result_error(r, &err) == 0) /* the lowest failing item */
    printf("map: %s at item %zu, worker %d: %s\n", mp_err_name(rc),
           err.index, (int)err.worker, err.exit.signal_name);
  for (int i = 0; i < 8; i++)
    printf("  %d -> %s %d\n", i, mp_err_name(status[i]),
           status[i] == 0 ? out[i] : 0);
  mp_async_result_free(r);
  mp_pool_free(pool);
  return status[3] == MP_EWORKERDIED && status[5] == MP_ETIMEDOUT ? 0 : 1;
}
