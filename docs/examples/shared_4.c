/* shared_4.c - what the resource trackers hold, as mp-shm lists it
 * (docs/shared.md). */
#include <stdio.h>

#include <multiproc.h>

static int show(const mp_tracked_object *o, void *arg) {
  (void)arg;
  printf("%s %zu bytes, creator %d %s\n", o->name, o->size,
         (int)o->creator_pid, o->creator_alive ? "alive" : "dead");
  return 0;
}

int main(void) {
  size_t removed = 0;
  mp_resource_tracker_list(show, NULL);
  mp_resource_tracker_remove_dead(&removed);
  printf("removed %zu\n", removed);
  return 0;
}
