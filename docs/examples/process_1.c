/* process_1.c - Process(target=f, args=(12,)): start, join, exitcode. */
#include <stdio.h>

#include <multiproc.h>

static int func(void *arg) {
  int a = *(int *)arg; /* fork: the child's copy of the parent's int */
  printf("Process param : %d\n", a);
  return 0; /* the child's exit status */
}

int main(void) {
  int a = 12;
  mp_process *p = NULL;
  int rc = mp_process_new(&p, func, &a, NULL);
  if (rc == 0)
    rc = mp_process_start(p);
  if (rc == 0)
    rc = mp_process_join(p, MP_FOREVER);
  int exitcode = -1;
  if (rc == 0)
    rc = mp_process_exitcode(p, &exitcode);
  printf("%s exitcode %d (%s)\n", p ? mp_process_name(p) : "?", exitcode,
         mp_err_name(rc));
  mp_process_free(p);
  return rc == 0 && exitcode == 0 ? 0 : 1;
}
