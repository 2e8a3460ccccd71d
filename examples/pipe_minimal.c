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

static int check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "%s: %s (%s)\n", what, mp_err_name(rc), mp_strerror(rc));
    exit(1);
  }
  return rc;
}

static int f(void *arg) {
  mp_connection *conn = arg;
  const char *list = "[42, None, 'hello']";
  check(mp_connection_send_bytes(conn, list, 0, strlen(list)), "send");
  mp_connection_close(conn);
  return 0;
}

int main(void) {
  mp_connection *parent_conn, *child_conn;
  check(mp_pipe(&parent_conn, &child_conn, 1), "mp_pipe");
  mp_process *p;
  check(mp_process_new(&p, f, child_conn, NULL), "mp_process_new");
  check(mp_process_start(p), "mp_process_start");

  char buf[256];
  size_t len;
  check(mp_connection_recv_bytes(parent_conn, buf, sizeof buf - 1, &len),
        "recv");
  buf[len] = '\0';
  printf("%s\n", buf);
  check(mp_process_join(p, MP_FOREVER), "join");
  mp_process_free(p);
  mp_connection_free(parent_conn);
  mp_connection_free(child_conn);
  return 0;
}
