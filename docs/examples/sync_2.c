/* sync_2.c - a holder that dies never deadlocks the others (G-LOCK-1). */
#include <signal.h>
#include <stdio.h>

#include <multiproc.h>

static mp_lock *lock;

static int die_holding(void *arg) {
  (void)arg;
  if (mp_lock_acquire(lock, MP_FOREVER) != 0)
    return 1;
  raise(SIGKILL); /* dies with the lock held */
  return 0;
}

int main(void) {
  mp_process *p;
  if (mp_lock_new(&lock, NULL) != 0)
    return 1;
  if (mp_process_new(&p, die_holding, NULL, NULL) != 0 ||
      mp_process_start(p) != 0)
    return 1;
  mp_process_join(p, MP_FOREVER);
  int rc = mp_lock_acquire(lock, 10.0);
  printf("first acquire: %s\n", mp_err_name(rc)); /* MP_EOWNERDEAD */
  if (rc == MP_EOWNERDEAD) {
    /* The lock is ours. Check or repair the data it protects here. */
    mp_lock_release(lock);
  }
  int rc2 = mp_lock_acquire(lock, 10.0);
  printf("next acquire: %s\n", mp_err_name(rc2)); /* MP_OK */
  if (rc2 == 0)
    mp_lock_release(lock);
  mp_process_free(p);
  mp_lock_free(lock);
  return rc == MP_EOWNERDEAD && rc2 == 0 ? 0 : 1;
}
