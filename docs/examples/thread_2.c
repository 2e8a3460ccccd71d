/* thread_2.c - the "subclass overrides run" style, and a join that times
 * out while the thread still runs. */
#include <stdio.h>

#include <multiproc.h>

struct my_thread {
  mp_event *stop;
  int ticks;
};

static void my_run(mp_thread *self) {
  struct my_thread *me = mp_thread_userdata(self);
  while (mp_event_wait(me->stop, 0.05) == MP_ETIMEDOUT)
    me->ticks++;
}

int main(void) {
  struct my_thread state = {0};
  if (mp_event_new(&state.stop, NULL) != 0)
    return 1;
  mp_thread_opts opts = {.name = "ticker", .run = my_run,
                         .userdata = &state};
  mp_thread *t;
  if (mp_thread_new(&t, NULL, NULL, &opts) != 0 || mp_thread_start(t) != 0)
    return 1;
  int rc = mp_thread_join(t, 0.2);
  printf("join(0.2): %s, %s alive: %d\n", mp_err_name(rc), mp_thread_name(t),
         mp_thread_is_alive(t));
  mp_event_set(state.stop);
  rc = mp_thread_join(t, 10.0);
  printf("join: %s, alive: %d\n", mp_err_name(rc), mp_thread_is_alive(t));
  mp_thread_free(t); /* after join: state.ticks is ours to read */
  printf("ticks: %s\n", state.ticks > 0 ? "some" : "none");
  mp_event_free(state.stop);
  return rc == 0 ? 0 : 1;
}
