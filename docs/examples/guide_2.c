/* guide_2.c - sharing by name: the parent creates a named event; a child
 * started with the spawn method (a fresh image of this program, like an
 * unrelated program) opens it by name and sets it. */
#include <stdio.h>
#include <unistd.h>

#include <multiproc.h>

struct job {
  char event_name[64];
};

static int child(void *arg) {
  const struct job *job = arg; /* the child's own copy of the bytes */
  mp_event *ev;
  int rc = mp_event_open(&ev, job->event_name);
  if (rc != 0) {
    mp_process_set_error(mp_error_message(rc));
    return 1;
  }
  rc = mp_event_set(ev);
  mp_event_free(ev);
  return rc == 0 ? 0 : 1;
}
MP_TARGET(child) /* spawn finds targets by name */

int main(int argc, char **argv) {
  mp_child_main(argc, argv); /* a spawned child runs its target here */

  struct job job;
  snprintf(job.event_name, sizeof job.event_name, "guide2-%ld",
           (long)getpid());
  mp_event *ev;
  mp_context *spawn;
  mp_process *p;
  if (mp_event_new(&ev, &(mp_sync_opts){.name = job.event_name}) != 0)
    return 1;
  if (mp_context_new(&spawn, MP_START_SPAWN) != 0)
    return 1;
  mp_process_opts opts = {.context = spawn, .arg_size = sizeof job};
  if (mp_process_new(&p, child, &job, &opts) != 0 || mp_process_start(p) != 0)
    return 1;
  int rc = mp_event_wait(ev, 30.0);
  printf("parent: event %s: %s\n", job.event_name, mp_err_name(rc));
  mp_process_join(p, MP_FOREVER);
  mp_exit_info info;
  if (mp_process_exit_info(p, &info) == 0 && info.exitcode != 0)
    printf("child failed: exitcode %d %s\n", info.exitcode, info.message);
  mp_process_free(p);
  mp_context_free(spawn);
  mp_event_free(ev); /* the creator's free also unlinks the name */
  return rc == 0 ? 0 : 1;
}
