/* guide_1.c - sharing by inheritance: an object created before a child
 * starts is shared with it (fork start method). */
#include <stdio.h>

#include <multiproc.h>

static mp_event *ready; /* made before the fork, so the child shares it */

static int child(void *arg) {
  (void)arg;
  printf("child: setting the event\n");
  return mp_event_set(ready) == 0 ? 0 : 1;
}

int main(void) {
  mp_process *p;
  if (mp_event_new(&ready, NULL) != 0)
    return 1;
  if (mp_process_new(&p, child, NULL, NULL) != 0)
    return 1;
  if (mp_process_start(p) != 0)
    return 1;
  int rc = mp_event_wait(ready, 10.0);
  printf("parent: mp_event_wait returned %s\n", mp_err_name(rc));
  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  mp_event_free(ready);
  return rc == 0 ? 0 : 1;
}
