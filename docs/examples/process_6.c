/* process_6.c - the forkserver start method: a single-threaded server,
 * forked when the context is made, forks each child by target name. */
#include <stdio.h>

#include <multiproc.h>

static int square(void *arg) {
  int x = *(const int *)arg;
  return x * x;
}
MP_TARGET(square)

int main(void) {
  /* Make the context while the program has one thread. */
  mp_context *ctx;
  if (mp_context_new(&ctx, MP_START_FORKSERVER) != 0)
    return 1;
  int ok = 1;
  for (int x = 1; x <= 3; x++) {
    mp_process_opts opts = {.context = ctx, .arg_size = sizeof x};
    mp_process *p;
    int exitcode = -1;
    if (mp_process_new(&p, square, &x, &opts) == 0 &&
        mp_process_start(p) == 0 && mp_process_join(p, 30.0) == 0)
      mp_process_exitcode(p, &exitcode);
    printf("%d squared = %d\n", x, exitcode);
    ok = ok && exitcode == x * x;
    mp_process_free(p);
  }
  mp_context_free(ctx); /* after its children have ended */
  return ok ? 0 : 1;
}
