/* sync_7.c - Barrier(3) with an action, shared by the parent and two
 * forked children. */
#include <stdio.h>

#include <multiproc.h>

static mp_barrier *barrier;

static int all_arrived(void *arg) {
  (void)arg;
  printf("action: all three arrived\n");
  fflush(stdout);
  return 0; /* nonzero would break the barrier */
}

static int party(void *arg) {
  (void)arg;
  int rc = mp_barrier_wait(barrier, 30.0);
  printf("child %s: index %d\n", mp_process_name(mp_current_process()), rc);
  mp_barrier_free(barrier); /* leave the barrier before exiting */
  return rc >= 0 ? 0 : 1;
}

int main(void) {
  mp_barrier_opts opts = {.action = all_arrived, .timeout = 30.0};
  if (mp_barrier_new(&barrier, 3, &opts) != 0)
    return 1;
  mp_process *p[2];
  for (int i = 0; i < 2; i++)
    if (mp_process_new(&p[i], party, NULL, NULL) != 0 ||
        mp_process_start(p[i]) != 0)
      return 1;
  int rc = mp_barrier_wait(barrier, MP_BARRIER_DEFAULT_TIMEOUT);
  printf("parent: index %d\n", rc);
  for (int i = 0; i < 2; i++) {
    mp_process_join(p[i], MP_FOREVER);
    mp_process_free(p[i]);
  }
  mp_barrier_free(barrier);
  return rc >= 0 ? 0 : 1;
}
