/* guide_4.c - timeouts and result codes: try a lock another process holds,
 * once without waiting and once with a timeout. */
#include <stdio.h>

#include <multiproc.h>

static mp_lock *lock;
static mp_event *held, *done;

static int holder(void *arg) {
  (void)arg;
  if (mp_lock_acquire(lock, MP_FOREVER) != 0)
    return 1;
  mp_event_set(held);
  mp_event_wait(done, 30.0); /* keep the lock until the parent is done */
  mp_lock_release(lock);
  return 0;
}

static void show(const char *what, int rc) {
  printf("%-28s -> %s\n", what, mp_error_message(rc));
}

int main(void) {
  mp_process *p;
  if (mp_lock_new(&lock, NULL) != 0 || mp_event_new(&held, NULL) != 0 ||
      mp_event_new(&done, NULL) != 0)
    return 1;
  if (mp_process_new(&p, holder, NULL, NULL) != 0 || mp_process_start(p) != 0)
    return 1;
  if (mp_event_wait(held, 30.0) != 0)
    return 1;
  show("acquire, timeout 0", mp_lock_acquire(lock, 0));     /* MP_EAGAIN */
  show("acquire, timeout 0.1 s", mp_lock_acquire(lock, 0.1)); /* MP_ETIMEDOUT */
  mp_event_set(done);
  int rc = mp_lock_acquire(lock, 10.0); /* the holder releases it now */
  show("acquire, timeout 10 s", rc);
  if (rc == 0)
    mp_lock_release(lock);
  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  mp_event_free(done);
  mp_event_free(held);
  mp_lock_free(lock);
  return rc == 0 ? 0 : 1;
}
