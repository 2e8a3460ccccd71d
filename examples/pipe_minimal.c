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

static int f(void *arg) {
  mp_connection *conn = arg;
  mp_obj *list = mp_obj_list_pack(3, mp_obj_int(42), mp_obj_none(),
                                  mp_obj_str("hello"));
  MP_CHECK(mp_connection_send(conn, list));
  mp_obj_free(list);
  mp_connection_close(conn);
  return 0;
}

int main(void) {
  mp_connection *parent_conn, *child_conn;
  MP_CHECK(mp_pipe(&parent_conn, &child_conn, 1));
  mp_process *p;
  MP_CHECK(mp_process_new(&p, f, child_conn, NULL));
  MP_CHECK(mp_process_start(p));

  mp_obj *v;
  MP_CHECK(mp_connection_recv(parent_conn, &v));
  MP_CHECK(mp_obj_print(stdout, v));
  mp_obj_free(v);
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  mp_process_free(p);
  mp_connection_free(parent_conn);
  mp_connection_free(child_conn);
  return 0;
}
