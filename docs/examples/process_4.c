/* process_4.c - join with a timeout, then terminate: exitcode -SIGTERM. */
#include <stdio.h>
#include <unistd.h>

#include <multiproc.h>

static int sleeper(void *arg) {
  (void)arg;
  for (;;)
    pause(); /* until a signal ends it */
  return 0;
}

int main(void) {
  mp_process *p;
  if (mp_process_new(&p, sleeper, NULL, NULL) != 0 ||
      mp_process_start(p) != 0)
    return 1;
  int rc = mp_process_join(p, 0.2);
  printf("join(0.2): %s, is_alive %d\n", mp_err_name(rc),
         mp_process_is_alive(p));
  mp_process_terminate(p);
  rc = mp_process_join(p, 10.0);
  int exitcode = 0;
  mp_process_exitcode(p, &exitcode);
  printf("after terminate: join %s, exitcode %d, is_alive %d\n",
         mp_err_name(rc), exitcode, mp_process_is_alive(p));
  mp_process_close(p);
  mp_process_free(p);
  return rc == 0 ? 0 : 1;
}
