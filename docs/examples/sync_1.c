/* sync_1.c - the three homes of a sync object: anonymous, named, in place. */
#include <stdio.h>
#include <unistd.h>

#include <multiproc.h>

int main(void) {
  /* 1. Anonymous: shared with children forked after this point. */
  mp_lock *anon;
  if (mp_lock_new(&anon, NULL) != 0)
    return 1;

  /* 2. Named: /dev/shm/mp_<name>; any process may open it. */
  char name[64];
  snprintf(name, sizeof name, "sync1-%ld", (long)getpid());
  mp_lock *named, *opened;
  if (mp_lock_new(&named, &(mp_sync_opts){.name = name}) != 0)
    return 1;
  if (mp_lock_open(&opened, name) != 0) /* as another process would */
    return 1;
  mp_lock_acquire(named, MP_FOREVER);
  printf("locked through one mapping, seen through the other: %d\n",
         mp_lock_locked(opened));
  mp_lock_release(named);

  /* 3. In place: in memory the caller provides (here on the stack, so
   * only threads share it; put it in shared memory for processes). */
  mp_lock inplace;
  if (mp_lock_init(&inplace) != 0)
    return 1;
  printf("in place: locked %d\n", mp_lock_locked(&inplace));
  mp_lock_destroy(&inplace);

  mp_lock_free(opened);
  mp_lock_free(named); /* the creator's free unlinks the name */
  mp_lock_free(anon);
  return 0;
}
