/* process_5.c - the spawn start method: the child is a fresh image of
 * this program; its target is found by name and its argument is copied
 * as bytes. */
#include <stdio.h>

#include <multiproc.h>

struct sum_args {
  int a, b;
};

static int add(void *arg) {
  const struct sum_args *s = arg; /* the child's copy of the bytes */
  return s->a + s->b;             /* reported as the exit status */
}
MP_TARGET(add)

int main(int argc, char **argv) {
  mp_child_main(argc, argv); /* first thing: a spawned child runs here */

  mp_context *ctx;
  if (mp_context_new(&ctx, MP_START_SPAWN) != 0)
    return 1;
  struct sum_args args = {.a = 20, .b = 22};
  mp_process_opts opts = {.context = ctx, .arg_size = sizeof args};
  mp_process *p;
  int rc = mp_process_new(&p, add, &args, &opts);
  if (rc == 0)
    rc = mp_process_start(p);
  if (rc == 0)
    rc = mp_process_join(p, 30.0);
  int exitcode = -1;
  if (rc == 0)
    mp_process_exitcode(p, &exitcode);
  printf("%s via %s: 20 + 22 = %d (%s)\n", mp_process_name(p),
         mp_start_method_name(mp_context_method(ctx)), exitcode,
         mp_err_name(rc));
  mp_process_free(p);
  mp_context_free(ctx);
  return exitcode == 42 ? 0 : 1;
}
