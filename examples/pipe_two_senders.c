/* pipe_two_senders.c - two children send on the same end of a Pipe; the
 * parent receives one message, as the seed does, and then shows that the
 * other one is still waiting in the pipe.
 *
 * It mirrors this Python program (seed 002, "Pipe() 最简示例"):
 *
 *   import multiprocessing as mp
 *   def func_1(conn):
 *       conn.send("process 1")
 *   def func_2(conn):
 *       conn.send("process 2")
 *   if __name__ == '__main__':
 *       parent_conn, child_conn = mp.Pipe()
 *       p1 = mp.Process(target=func_1, args=(child_conn,))
 *       p2 = mp.Process(target=func_2, args=(child_conn,))
 *       p1.start()
 *       p2.start()
 *       p1.join()
 *       p2.join()
 *       print(parent_conn.recv())
 *
 * The seed concludes that the parent "only gets one result": it calls recv
 * once. Both messages arrived, whole (each is far below the 4096 bytes a
 * pipe writes atomically), in the order the children happened to send.
 *
 * Usage: pipe_two_senders [--quick]   (--quick changes nothing) */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int func_1(void *arg) {
  return mp_connection_send_bytes(arg, "process 1", 0, 9) == 0 ? 0 : 1;
}

static int func_2(void *arg) {
  return mp_connection_send_bytes(arg, "process 2", 0, 9) == 0 ? 0 : 1;
}

static void print_next(mp_connection *conn, const char *prefix) {
  char buf[64];
  size_t len;
  MP_CHECK(mp_connection_recv_bytes(conn, buf, sizeof buf - 1, &len));
  buf[len] = '\0';
  printf("%s%s\n", prefix, buf);
}

int main(void) {
  mp_connection *parent_conn, *child_conn;
  MP_CHECK(mp_pipe(&parent_conn, &child_conn, 1));
  mp_process *p1, *p2;
  MP_CHECK(mp_process_new(&p1, func_1, child_conn, NULL));
  MP_CHECK(mp_process_new(&p2, func_2, child_conn, NULL));
  MP_CHECK(mp_process_start(p1));
  MP_CHECK(mp_process_start(p2));
  MP_CHECK(mp_process_join(p1, MP_FOREVER));
  MP_CHECK(mp_process_join(p2, MP_FOREVER));
  int c1, c2;
  MP_CHECK(mp_process_exitcode(p1, &c1));
  MP_CHECK(mp_process_exitcode(p2, &c2));

  print_next(parent_conn, "");
  /* What the seed did not look at: the other message is still there. */
  if (MP_CHECK(mp_connection_poll(parent_conn, 0)) == 1)
    print_next(parent_conn, "still waiting in the pipe: ");
  mp_process_free(p1);
  mp_process_free(p2);
  mp_connection_free(parent_conn);
  mp_connection_free(child_conn);
  return c1 != 0 || c2 != 0;
}
