/* sync_5.c - Event: workers wait for the parent's go. */
#include <stdio.h>

#include <multiproc.h>

static mp_event *go;

static int worker(void *arg) {
  int id = *(const int *)arg;
  /* Python: while not event.is_set(): event.wait(2) */
  while (!mp_event_is_set(go)) {
    int rc = mp_event_wait(go, 2.0);
    if (rc != 0 && rc != MP_ETIMEDOUT)
      return 1;
  }
  printf("worker %d: go\n", id);
  return 0;
}

int main(void) {
  if (mp_event_new(&go, NULL) != 0)
    return 1;
  mp_process *p[3];
  int id[3];
  for (int i = 0; i < 3; i++) {
    id[i] = i;
    if (mp_process_new(&p[i], worker, &id[i], NULL) != 0 ||
        mp_process_start(p[i]) != 0)
      return 1;
  }
  printf("main: setting the event\n");
  fflush(stdout);
  mp_event_set(go);
  for (int i = 0; i < 3; i++) {
    mp_process_join(p[i], MP_FOREVER);
    mp_process_free(p[i]);
  }
  mp_event_free(go);
  return 0;
}
