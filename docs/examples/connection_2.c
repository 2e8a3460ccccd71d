/* connection_2.c - receiving messages of unknown size: a buffer that is
 * too small refuses the message and says how long it is, and nothing is
 * lost; or let the library allocate, with a limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <multiproc.h>

int main(void) {
  mp_connection *r, *w;
  if (mp_pipe(&r, &w, 0) != 0) /* Pipe(duplex=False): r reads, w writes */
    return 1;
  const char *text = "a message longer than sixteen bytes";
  mp_connection_send_bytes(w, text, 0, strlen(text));
  mp_connection_send_bytes(w, text, 2, 7); /* offset 2, size 7: "message" */

  char small[16];
  size_t len;
  int rc = mp_connection_recv_bytes(r, small, sizeof small, &len);
  if (rc == MP_ETOOBIG) {
    /* The message is still first in line: read it with room enough. */
    char *big = malloc(len);
    if (big == NULL ||
        mp_connection_recv_bytes(r, big, len, &len) != 0)
      return 1;
    printf("%zu bytes: %.*s\n", len, (int)len, big);
    free(big);
  }

  void *msg;
  if (mp_connection_recv_bytes_alloc(r, &msg, &len, 1 << 20) == 0) {
    printf("%zu bytes: %.*s\n", len, (int)len, (char *)msg);
    free(msg);
  }

  mp_connection_free(w); /* the reader now sees end of stream */
  rc = mp_connection_recv_bytes(r, small, sizeof small, &len);
  printf("after the writer closed: %s\n", mp_err_name(rc)); /* MP_ECLOSED */
  mp_connection_free(r);
  return 0;
}
