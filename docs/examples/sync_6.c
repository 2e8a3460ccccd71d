/* sync_6.c - Condition in place, between processes: a producer adds items,
 * the consumer waits for them with wait_for. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <stdio.h>
#include <sys/mman.h>

#include <multiproc.h>

struct box {
  mp_condition cond; /* owns its RLock */
  int items;
};

static struct box *box;

static int has_items(void *arg) { return ((struct box *)arg)->items > 0; }

static int producer(void *arg) {
  (void)arg;
  for (int i = 0; i < 3; i++) {
    int rc = mp_condition_acquire(&box->cond, MP_FOREVER);
    if (rc != 0 && rc != MP_EOWNERDEAD)
      return 1;
    box->items++;
    mp_condition_notify(&box->cond, 1);
    mp_condition_release(&box->cond);
  }
  return 0;
}

int main(void) {
  box = mmap(NULL, sizeof *box, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (box == MAP_FAILED || mp_condition_init(&box->cond, NULL) != 0)
    return 1;
  box->items = 0;
  mp_process *p;
  if (mp_process_new(&p, producer, NULL, NULL) != 0 ||
      mp_process_start(p) != 0)
    return 1;
  int got = 0;
  while (got < 3) {
    int rc = mp_condition_acquire(&box->cond, MP_FOREVER);
    if (rc == 0 || rc == MP_EOWNERDEAD)
      rc = mp_condition_wait_for(&box->cond, has_items, box, 10.0);
    if (rc == 0) {
      box->items--;
      got++;
      printf("consumed item %d\n", got);
    }
    mp_condition_release(&box->cond);
    if (rc != 0 && rc != MP_EOWNERDEAD)
      break;
  }
  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  mp_condition_destroy(&box->cond);
  munmap(box, sizeof *box);
  return got == 3 ? 0 : 1;
}
