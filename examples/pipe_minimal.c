/* pipe_minimal.c - the smallest Pipe program: a child sends one message and
 * closes its end; the parent prints what it received.
 *
 * It mirrors this Python program (seed 004, "管道", taken from Python's
 * documentation):
 *
 *   from multiprocessing import Process, Pipe
 *   def f(conn):
 *       conn.send([42, None, 'hello'])
 *       conn.close()
 *   if __name__ == '__main__':
 *       parent_conn, child_conn = Pipe()
 *       p = Process(target = f, args = (child_conn,))
 *       p.start()
 *       print (parent_conn.recv())
 *       p.join()
 *
 * which prints [42, None, 'hello']. The list travels as its text: a
 * Connection here carries bytes (see pipe_conversation.c).
 *
 * Usage: pipe_minimal [--quick]   (--quick changes nothing) */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int f(void *arg) {
  mp_connection *conn = arg;
  const char *list = "[42, None, 'hello']";
  MP_CHECK(mp_connection_send_bytes(conn, list, 0, strlen(list)));
  mp_connection_close(conn);
  return 0;
}

int main(void) {
  mp_connection *parent_conn, *child_conn;
  MP_CHECK(mp_pipe(&parent_conn, &child_conn, 1));
  mp_process *p;
  MP_CHECK(mp_process_new(&p, f, child_conn, NULL));
  MP_CHECK(mp_process_start(p));

  char buf[256];
  size_t len;
  MP_CHECK(mp_connection_recv_bytes(parent_conn, buf, sizeof buf - 1, &len));
  buf[len] = '\0';
  printf("%s\n", buf);
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  mp_process_free(p);
  mp_connection_free(parent_conn);
  mp_connection_free(child_conn);
  return 0;
}
