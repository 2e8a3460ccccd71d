/* queue_4.c - a large message through its own segment, taken without a
 * copy by a child's parent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <multiproc.h>

#define SIZE (8u << 20) /* 8 MiB: over a quarter of the 1 MiB default */

static int child(void *arg) {
  mp_queue *q = arg;
  char *big = malloc(SIZE);
  if (big == NULL)
    return 1;
  memset(big, 'x', SIZE);
  /* put returns once the bytes are in shared memory: exiting right after
   * loses nothing. */
  int rc = mp_queue_put(q, big, SIZE, MP_FOREVER);
  free(big);
  return rc == 0 ? 0 : 1;
}

int main(void) {
  mp_queue *q;
  mp_process *p;
  if (mp_queue_new(&q, NULL) != 0 || mp_process_new(&p, child, q, NULL) != 0 ||
      mp_process_start(p) != 0)
    return 1;
  mp_queue_msg msg;
  if (mp_queue_get_msg(q, &msg, MP_FOREVER) != 0)
    return 1;
  const char *data = msg.data;
  printf("got %zu bytes in place: %c...%c\n", msg.len, data[0],
         data[msg.len - 1]);
  mp_queue_msg_release(&msg);
  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  mp_queue_free(q);
  return 0;
}
