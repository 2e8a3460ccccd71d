/* queue_1.c - the three homes of a queue: anonymous, named, in place. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <multiproc.h>

int main(void) {
  /* 1. Anonymous: shared with children forked after this point. */
  mp_queue *anon;
  if (mp_queue_new(&anon, NULL) != 0)
    return 1;

  /* 2. Named: /dev/shm/mp_<name>; any process may open it. */
  char name[64];
  snprintf(name, sizeof name, "queue1-%ld", (long)getpid());
  mp_queue *named, *opened;
  if (mp_queue_new(&named, &(mp_queue_opts){.name = name}) != 0)
    return 1;
  if (mp_queue_open(&opened, name) != 0) /* as another process would */
    return 1;
  mp_queue_put_str(named, "through one handle", MP_FOREVER);
  char text[64];
  mp_queue_get_str(opened, text, sizeof text, MP_FOREVER);
  printf("got \"%s\" through the other\n", text);

  /* 3. In place: in memory the caller provides (here from the heap, so
   * only threads share it; put it in shared memory for processes, and
   * give the other processes a handle with mp_queue_attach). */
  mp_queue_opts opts = {.capacity = 4096};
  ssize_t size = mp_queue_size_for(&opts);
  void *mem = aligned_alloc(MP_QUEUE_ALIGN, (size_t)size);
  mp_queue *inplace;
  if (mem == NULL || mp_queue_init(&inplace, mem, (size_t)size, &opts) != 0)
    return 1;
  mp_queue_put_int64(inplace, 7, MP_FOREVER);
  printf("in place: %zd queued in %zd bytes\n", mp_queue_qsize(inplace), size);
  mp_queue_destroy(inplace);
  free(mem);

  mp_queue_free(opened);
  mp_queue_free(named); /* the creator's free unlinks the name */
  mp_queue_free(anon);
  return 0;
}
