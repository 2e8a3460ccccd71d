/* readme_4.c - leak containment: each job runs in a fresh process, so
 * whatever the job leaks goes back to the system when it ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <multiproc.h>

static int leaky_job(void *arg) {
  int job = *(const int *)arg;
  char *buf = malloc(1 << 20); /* never freed: a legacy library's leak */
  if (buf == NULL)
    return 1;
  memset(buf, job, 1 << 20);
  return 0;
}

int main(void) {
  for (int job = 0; job < 5; job++) {
    mp_process *p;
    if (mp_process_new(&p, leaky_job, &job, NULL) != 0 ||
        mp_process_start(p) != 0)
      return 1;
    mp_process_join(p, MP_FOREVER);
    int exitcode = -1;
    mp_process_exitcode(p, &exitcode);
    printf("job %d: exitcode %d\n", job, exitcode);
    mp_process_free(p);
  }
  return 0; /* the parent never grew */
}
