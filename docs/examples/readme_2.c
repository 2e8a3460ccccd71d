/* readme_2.c - crash isolation: a task that crashes ends its own process,
 * and the parent learns how. */
#include <signal.h>
#include <stdio.h>

#include <multiproc.h>

static int parse(void *arg) {
  (void)arg;
  raise(SIGSEGV); /* stands in for a bad pointer in a parser */
  return 0;
}

int main(void) {
  mp_process *p;
  if (mp_process_new(&p, parse, NULL, NULL) != 0 || mp_process_start(p) != 0)
    return 1;
  mp_process_join(p, MP_FOREVER);
  mp_exit_info info;
  if (mp_process_exit_info(p, &info) == 0)
    printf("parse failed: exitcode %d %s; the program goes on\n",
           info.exitcode, info.signal_name);
  mp_process_free(p);
  return 0;
}
