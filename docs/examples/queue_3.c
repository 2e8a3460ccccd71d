/* queue_3.c - batches: many small messages per call, one commit each. */
#include <stdio.h>
#include <string.h>

#include <multiproc.h>

int main(void) {
  mp_queue *q;
  if (mp_queue_new(&q, NULL) != 0)
    return 1;
  /* Three messages back to back, and their lengths. */
  const char *words = "redgreenblue";
  size_t lens[] = {3, 5, 4};
  ssize_t n = mp_queue_put_batch(q, words, lens, 3, MP_FOREVER);
  printf("put %zd messages at once\n", n);

  char buf[64];
  size_t got[8];
  n = mp_queue_get_batch(q, buf, sizeof buf, got, 8, MP_FOREVER);
  size_t off = 0;
  for (ssize_t i = 0; i < n; i++) {
    printf("message %zd: %.*s\n", i, (int)got[i], buf + off);
    off += got[i];
  }
  mp_queue_free(q);
  return 0;
}
