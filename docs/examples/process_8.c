/* process_8.c - daemonic and non-daemonic children at the parent's normal
 * exit (G-PROC-2): the daemonic one is terminated, the other is joined. */
#include <stdio.h>
#include <unistd.h>

#include <multiproc.h>

static int forever(void *arg) {
  (void)arg;
  for (;;)
    pause(); /* ended by SIGTERM when the parent exits */
  return 0;
}

static int brief(void *arg) {
  (void)arg;
  sleep(1);
  printf("non-daemonic child: done, the parent waited for me\n");
  return 0;
}

int main(void) {
  mp_process *d, *n;
  mp_process_opts daemonic = {.name = "daemon", .daemon = 1};
  if (mp_process_new(&d, forever, NULL, &daemonic) != 0 ||
      mp_process_start(d) != 0)
    return 1;
  if (mp_process_new(&n, brief, NULL, NULL) != 0 || mp_process_start(n) != 0)
    return 1;
  printf("main: returning without joining either child\n");
  mp_process_free(d); /* free does not stop or wait for a child */
  mp_process_free(n);
  return 0; /* at exit: SIGTERM the daemon, then join the other */
}
