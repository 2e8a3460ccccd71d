/* context.c - contexts, after Python's multiprocessing.get_context(): an
 * object that fixes a start method for the processes created with it
 * (mp_process_opts.context). A forkserver context also owns its server,
 * started here and stopped when the context is freed (forkserver.c). */
#include <pthread.h>
#include <unistd.h>

#include "process_internal.h"

int mp_context_new(mp_context **out, mp_start_method method) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  if (method != MP_START_FORK && method != MP_START_SPAWN &&
      method != MP_START_FORKSERVER)
    return mp__fail(MP_EINVAL, "method %d is not an mp_start_method",
                    (int)method);
  int rc;
  if (method == MP_START_FORKSERVER && (rc = mp__spawn_unbooted()) != 0)
    return rc;
  mp__process_init();
  mp_context *ctx = mp__calloc(1, sizeof *ctx);
  if (ctx == NULL)
    return MP_ENOMEM;
  rc = pthread_mutex_init(&ctx->lock, NULL);
  if (rc != 0) {
    mp__free(ctx);
    return -rc;
  }
  ctx->method = method;
  ctx->owner = getpid();
  ctx->server_sock = -1;
  if (method == MP_START_FORKSERVER) {
    rc = mp__forkserver_create(ctx);
    if (rc != 0) {
      pthread_mutex_destroy(&ctx->lock);
      mp__free(ctx);
      return rc;
    }
  }
  mp__context_track(ctx);
  *out = ctx;
  return 0;
}

void mp_context_free(mp_context *ctx) {
  if (ctx == NULL)
    return;
  mp__context_untrack(ctx);
  if (ctx->method == MP_START_FORKSERVER)
    mp__forkserver_stop(ctx);
  pthread_mutex_destroy(&ctx->lock);
  mp__free(ctx);
}

mp_start_method mp_context_method(const mp_context *ctx) {
  return ctx != NULL ? ctx->method : MP_START_FORK;
}

const char *mp_start_method_name(mp_start_method method) {
  switch (method) {
  case MP_START_FORK:
    return "fork";
  case MP_START_SPAWN:
    return "spawn";
  case MP_START_FORKSERVER:
    return "forkserver";
  }
  return "unknown";
}
