/* guide_3.c - in place: a lock inside the caller's own shared struct. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <stdio.h>
#include <sys/mman.h>

#include <multiproc.h>

struct shared {
  mp_lock lock; /* MP_LOCK_SIZE bytes, suitably aligned */
  long counter;
};

static struct shared *sh;

static int work(void *arg) {
  (void)arg;
  for (int i = 0; i < 10000; i++) {
    int rc = mp_lock_acquire(&sh->lock, MP_FOREVER);
    if (rc != 0 && rc != MP_EOWNERDEAD)
      return 1;
    sh->counter++;
    mp_lock_release(&sh->lock);
  }
  return 0;
}

int main(void) {
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED || mp_lock_init(&sh->lock) != 0)
    return 1;
  sh->counter = 0;
  mp_process *p[4];
  for (int i = 0; i < 4; i++)
    if (mp_process_new(&p[i], work, NULL, NULL) != 0 ||
        mp_process_start(p[i]) != 0)
      return 1;
  for (int i = 0; i < 4; i++) {
    mp_process_join(p[i], MP_FOREVER);
    mp_process_free(p[i]);
  }
  printf("counter = %ld (expected 40000)\n", sh->counter);
  int ok = sh->counter == 40000;
  mp_lock_destroy(&sh->lock);
  munmap(sh, sizeof *sh);
  return ok ? 0 : 1;
}
