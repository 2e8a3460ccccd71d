/* process_7.c - current_process, parent_process, active_children and
 * cpu_count. */
#include <stdio.h>

#include <multiproc.h>

static mp_event *go;

static int show(void *arg) {
  (void)arg;
  mp_process *me = mp_current_process();
  mp_process *parent = mp_parent_process();
  printf("%s (pid %ld), parent %s (pid %ld)\n", mp_process_name(me),
         (long)mp_process_pid(me), mp_process_name(parent),
         (long)mp_process_pid(parent));
  return mp_event_wait(go, 30.0) == 0 ? 0 : 1; /* stay alive until told */
}

int main(void) {
  printf("%s, %d CPUs usable\n", mp_process_name(mp_current_process()),
         mp_cpu_count());
  if (mp_event_new(&go, NULL) != 0)
    return 1;
  mp_process *p[2];
  for (int i = 0; i < 2; i++)
    if (mp_process_new(&p[i], show, NULL, NULL) != 0 ||
        mp_process_start(p[i]) != 0)
      return 1;
  mp_process *live[8];
  ssize_t n = mp_active_children(live, 8);
  printf("active children: %zd\n", n);
  mp_event_set(go);
  for (int i = 0; i < 2; i++) {
    mp_process_join(p[i], MP_FOREVER);
    mp_process_free(p[i]);
  }
  printf("active children after join: %zd\n", mp_active_children(live, 8));
  mp_event_free(go);
  return n == 2 ? 0 : 1;
}
