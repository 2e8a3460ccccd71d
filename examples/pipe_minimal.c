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
 * which prints [42, None, 'hello']. The list travels as a value, pickled
 * as Python's conn.send pickles it (a Python parent could receive it).
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
  mp_obj *list = mp_obj_list_pack(3, mp_obj_int(42), mp_obj_none(),
                                  mp_obj_str("hello"));
  check(mp_connection_send(conn, list), "send");
  mp_obj_free(list);
  mp_connection_close(conn);
  return 0;
}

int main(void) {
  mp_connection *parent_conn, *child_conn;
  check(mp_pipe(&parent_conn, &child_conn, 1), "mp_pipe");
  mp_process *p;
  check(mp_process_new(&p, f, child_conn, NULL), "mp_process_new");
  check(mp_process_start(p), "mp_process_start");

  mp_obj *v;
  check(mp_connection_recv(parent_conn, &v), "recv");
  check(mp_obj_print(stdout, v), "print");
  mp_obj_free(v);
  check(mp_process_join(p, MP_FOREVER), "join");
  mp_process_free(p);
  mp_connection_free(parent_conn);
  mp_connection_free(child_conn);
  return 0;
}
