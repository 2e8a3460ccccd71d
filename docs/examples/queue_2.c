/* queue_2.c - full and empty told apart, and a buffer too small. */
#include <stdio.h>
#include <stdlib.h>

#include <multiproc.h>

int main(void) {
  mp_queue *q;
  if (mp_queue_new(&q, &(mp_queue_opts){.maxsize = 1}) != 0)
    return 1;
  mp_queue_put_str(q, "a message of 26 characters", MP_FOREVER);
  /* Full: put_nowait is Python's queue.Full. */
  printf("put_nowait: %s\n", mp_err_name(mp_queue_put_nowait(q, "x", 1)));

  char small[8];
  size_t len;
  int rc = mp_queue_get(q, small, sizeof small, &len, 0);
  printf("get into 8 bytes: %s, needs %zu\n", mp_err_name(rc), len);
  /* The message stayed queued: get it with a buffer that fits. */
  char *buf = malloc(len);
  rc = mp_queue_get(q, buf, len, &len, 0);
  printf("get into %zu bytes: %s: %.*s\n", len, mp_err_name(rc), (int)len, buf);
  free(buf);

  /* Empty: get_nowait is Python's queue.Empty; a timeout gives up later. */
  printf("get_nowait: %s\n",
         mp_err_name(mp_queue_get_nowait(q, small, sizeof small, &len)));
  printf("get(0.1 s): %s\n",
         mp_err_name(mp_queue_get(q, small, sizeof small, &len, 0.1)));
  mp_queue_free(q);
  return 0;
}
