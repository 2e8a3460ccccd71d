/* pipe_python.c - a C program and a Python program on the two ends of one
 * Pipe. The child runs python3 (mp_popen, as subprocess.Popen), which gets its
 * end as descriptor 3 (pass_fds) and wraps it in Python's own
 * multiprocessing.connection.Connection; Python uses send and recv
 * (pickled objects), C uses mp_connection_recv and mp_connection_send
 * (values, pickled and unpickled by the library), and the bytes on the
 * wire are Python's framing and Python's pickle.
 *
 * This goes beyond the seeds: Python's Pipe only connects Python
 * processes. The Python side is the seed's f(conn) (seed 001, "3.3.2
 * 管道(pipe)"):
 *
 *   def f(conn):
 *       conn.send([12, {"name": "yuan"}, 'hello'])
 *       response = conn.recv()
 *       print("response", response)
 *       conn.close()
 *
 * Without python3 on PATH it says so and exits 0.
 *
 * Usage: pipe_python [--quick]   (--quick changes nothing) */
#include <multiproc.h>
#include <stdio.h>

static const char *script = /* seed 001's f(conn), on descriptor 3 */
    "from multiprocessing.connection import Connection\n"
    "def f(conn):\n"
    "    conn.send([12, {'name': 'yuan'}, 'hello'])\n"
    "    response = conn.recv()\n"
    "    print('python: response', response, flush=True)\n"
    "    conn.close()\n"
    "f(Connection(3))\n";

int main(void) {
  mp_connection *c_conn, *py_conn;
  MP_CHECK(mp_pipe(&c_conn, &py_conn, 1));
  char *argv[] = {"python3", "-c", (char *)script, NULL};
  mp_process *p; /* subprocess.Popen(argv, pass_fds=...), py_conn as fd 3 */
  int rc = mp_popen(&p, argv,
                    &(mp_pass_fd){mp_connection_fileno(py_conn), 3}, 1);
  if (rc == MP_ENOENT) {
    printf("python3 not found: nothing to talk to (skipped)\n");
    return 0;
  }
  MP_CHECK(rc);
  mp_connection_free(py_conn);
  mp_obj *got, *reply = mp_obj_str("儿子你好!");
  MP_CHECK(mp_connection_recv(c_conn, &got));
  MP_CHECK(mp_obj_printf(stdout, "C: received from Python: {!r}\n", got));
  fflush(stdout); /* before Python prints */
  MP_CHECK(mp_connection_send(c_conn, reply));
  mp_obj_free(got);
  mp_obj_free(reply);
  /* Python closes its end when it is done: end of stream here. */
  rc = mp_connection_recv(c_conn, &got);
  printf("C: then %s, as Python closed its end\n", mp_err_name(rc));
  MP_CHECK(mp_process_join_check(p, MP_FOREVER));
  mp_process_free(p);
  mp_connection_free(c_conn);
  return rc == MP_ECLOSED ? 0 : 1;
}
