/* process_2.c - the "subclass overrides run" style: a run callback that
 * receives the process object, with userdata in place of attributes. */
#include <stdio.h>

#include <multiproc.h>

struct my_process {
  int loops;
};

static int my_run(mp_process *self) {
  const struct my_process *me = mp_process_userdata(self);
  for (int i = 0; i < me->loops; i++)
    printf("%s: loop %d\n", mp_process_name(self), i);
  return 0;
}

int main(void) {
  struct my_process state = {.loops = 3};
  mp_process_opts opts = {.name = "MyProcess", .run = my_run,
                          .userdata = &state};
  mp_process *p;
  if (mp_process_new(&p, NULL, NULL, &opts) != 0)
    return 1;
  int rc = mp_process_start(p);
  if (rc == 0)
    rc = mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  return rc == 0 ? 0 : 1;
}
