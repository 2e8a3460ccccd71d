/* sync_4.c - Semaphore(2) shared by four processes; a BoundedSemaphore
 * refuses a release past its initial value. */
#include <stdio.h>
#include <unistd.h>

#include <multiproc.h>

static mp_semaphore *sem;

static int worker(void *arg) {
  int id = *(const int *)arg;
  if (mp_semaphore_acquire(sem, 30.0) != 0)
    return 1;
  printf("worker %d in (%d more may enter)\n", id,
         mp_semaphore_get_value(sem));
  fflush(stdout);
  sleep(1);
  mp_semaphore_release(sem);
  return 0;
}

int main(void) {
  if (mp_semaphore_new(&sem, 2, NULL) != 0)
    return 1;
  mp_process *p[4];
  int id[4];
  for (int i = 0; i < 4; i++) {
    id[i] = i;
    if (mp_process_new(&p[i], worker, &id[i], NULL) != 0 ||
        mp_process_start(p[i]) != 0)
      return 1;
  }
  for (int i = 0; i < 4; i++) {
    mp_process_join(p[i], MP_FOREVER);
    mp_process_free(p[i]);
  }
  mp_semaphore_free(sem);

  mp_semaphore *bounded;
  if (mp_bounded_semaphore_new(&bounded, 1, NULL) != 0)
    return 1;
  int rc = mp_semaphore_release(bounded); /* would make it 2 */
  printf("bounded release: %s\n", mp_err_name(rc)); /* MP_EVALUE */
  mp_semaphore_free(bounded);
  return rc == MP_EVALUE ? 0 : 1;
}
