/* connection_1.c - a Pipe between a parent and its child: the child asks,
 * the parent answers, each end closed when done. */
#include <stdio.h>
#include <string.h>

#include <multiproc.h>

static int child(void *arg) {
  mp_connection *conn = arg;
  const char *question = "what is 6 * 7?";
  if (mp_connection_send_bytes(conn, question, 0, strlen(question)) != 0)
    return 1;
  char answer[64];
  size_t len;
  if (mp_connection_recv_bytes(conn, answer, sizeof answer, &len) != 0)
    return 1;
  printf("child got: %.*s\n", (int)len, answer);
  mp_connection_close(conn);
  return 0;
}

int main(void) {
  mp_connection *parent_end, *child_end;
  if (mp_pipe(&parent_end, &child_end, 1) != 0) /* Pipe(duplex=True) */
    return 1;
  mp_process *p;
  if (mp_process_new(&p, child, child_end, NULL) != 0 ||
      mp_process_start(p) != 0)
    return 1;
  mp_connection_free(child_end); /* the child has its own copy */

  char question[64];
  size_t len;
  if (mp_connection_recv_bytes(parent_end, question, sizeof question,
                               &len) != 0)
    return 1;
  printf("parent got: %.*s\n", (int)len, question);
  fflush(stdout); /* before the child's line, which comes after the answer */
  mp_connection_send_bytes(parent_end, "42", 0, 2);

  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  mp_connection_free(parent_end);
  return 0;
}
