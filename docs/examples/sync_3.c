/* sync_3.c - RLock: the holder may acquire again; others may not release. */
#include <stdio.h>

#include <multiproc.h>

static mp_rlock *rlock;

static int try_release(void *arg) {
  (void)arg;
  int rc = mp_rlock_release(rlock); /* not the holder */
  printf("child release: %s\n", mp_err_name(rc)); /* MP_EPERM */
  return rc == MP_EPERM ? 0 : 1;
}

static void nested(int level) {
  mp_rlock_acquire(rlock, MP_FOREVER);
  printf("level %d, depth %d\n", level, mp_rlock_depth(rlock));
  if (level < 3)
    nested(level + 1);
  mp_rlock_release(rlock);
}

int main(void) {
  if (mp_rlock_new(&rlock, NULL) != 0)
    return 1;
  nested(1);
  mp_rlock_acquire(rlock, MP_FOREVER);
  mp_process *p;
  if (mp_process_new(&p, try_release, NULL, NULL) != 0 ||
      mp_process_start(p) != 0)
    return 1;
  mp_process_join(p, MP_FOREVER);
  int exitcode = -1;
  mp_process_exitcode(p, &exitcode);
  mp_rlock_release(rlock);
  printf("depth after release: %d\n", mp_rlock_depth(rlock));
  mp_process_free(p);
  mp_rlock_free(rlock);
  return exitcode;
}
