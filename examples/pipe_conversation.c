/* pipe_conversation.c - a parent and a child talking over a Pipe: the child
 * sends a list, the parent prints it and replies, the child prints the
 * reply.
 *
 * It mirrors this Python program (seed 001, "3.3.2 管道(pipe)"):
 *
 *   from multiprocessing import Process, Pipe
 *   def f(conn):
 *       conn.send([12, {"name":"yuan"}, 'hello'])
 *       response=conn.recv()
 *       print("response",response)
 *       conn.close()
 *   if __name__ == '__main__':
 *       parent_conn, child_conn = Pipe()
 *       p = Process(target=f, args=(child_conn,))
 *       p.start()
 *       print(parent_conn.recv())
 *       parent_conn.send("儿子你好!")
 *       p.join()
 *
 * Python pickles the list; a Connection here carries bytes (dynamic values
 * come with the manager's MessagePack encoding), so the child sends the
 * list as the text Python prints for it.
 *
 * Usage: pipe_conversation [--quick]   (--quick changes nothing) */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int f(void *arg) {
  mp_connection *conn = arg;
  const char *list = "[12, {'name': 'yuan'}, 'hello']";
  MP_CHECK(mp_connection_send_bytes(conn, list, 0, strlen(list)));
  char response[256];
  size_t len;
  MP_CHECK(mp_connection_recv_bytes(conn, response, sizeof response - 1, &len));
  response[len] = '\0';
  printf("response %s\n", response);
  mp_connection_close(conn);
  return 0;
}

int main(void) {
  mp_connection *parent_conn, *child_conn;
  MP_CHECK(mp_pipe(&parent_conn, &child_conn, 1));
  mp_process *p;
  MP_CHECK(mp_process_new(&p, f, child_conn, NULL));
  MP_CHECK(mp_process_start(p));
  /* The child has its own copy of child_conn; the parent's is not needed.
   * (Python leaves it open until the object is collected.) */
  mp_connection_free(child_conn);

  char buf[256];
  size_t len;
  MP_CHECK(mp_connection_recv_bytes(parent_conn, buf, sizeof buf - 1, &len));
  buf[len] = '\0';
  printf("%s\n", buf);
  fflush(stdout);
  const char *reply = "儿子你好!";
  MP_CHECK(mp_connection_send_bytes(parent_conn, reply, 0, strlen(reply)));
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  int code;
  MP_CHECK(mp_process_exitcode(p, &code));
  mp_process_free(p);
  mp_connection_free(parent_conn);
  return code;
}
