/* pipe_python.c - a C program and a Python program on the two ends of one
 * Pipe. The child runs python3 (mp_process_opts.exec_argv), which gets its
 * end as descriptor 3 (pass_fds) and wraps it in Python's own
 * multiprocessing.connection.Connection; both sides use send_bytes and
 * recv_bytes, and the bytes on the wire are Python's framing.
 *
 * This goes beyond the seeds: Python's Pipe only connects Python
 * processes. The Python side is the seed's f(conn) (seed 001, "3.3.2
 * 管道(pipe)"), with bytes instead of pickled objects:
 *
 *   def f(conn):
 *       conn.send_bytes(b"[12, {'name': 'yuan'}, 'hello']")
 *       response = conn.recv_bytes()
 *       print("response", response.decode())
 *       conn.close()
 *
 * Without python3 on PATH it says so and exits 0.
 *
 * Usage: pipe_python [--quick]   (--quick changes nothing) */
#include <multiproc.h>
#include <stdio.h>
#include <string.h>

static const char *script = /* seed 001's f(conn), on descriptor 3 */
    "from multiprocessing.connection import Connection\n"
    "def f(conn):\n"
    "    conn.send_bytes(b\"[12, {'name': 'yuan'}, 'hello']\")\n"
    "    response = conn.recv_bytes()\n"
    "    print('python: response', response.decode(), flush=True)\n"
    "    conn.close()\n"
    "f(Connection(3))\n";

int main(void) {
  mp_connection *c_conn, *py_conn;
  MP_CHECK(mp_pipe(&c_conn, &py_conn, 1));
  char *argv[] = {"python3", "-c", (char *)script, NULL};
  mp_pass_fd fds[] = {{mp_connection_fileno(py_conn), 3}};
  mp_process *p;
  MP_CHECK(mp_process_new(&p, NULL, NULL,
                          &(mp_process_opts){.exec_argv = argv,
                                             .pass_fds = fds,
                                             .pass_fds_len = 1}));
  int rc = mp_process_start(p);
  if (rc == MP_ENOENT) {
    printf("python3 not found: nothing to talk to (skipped)\n");
    return 0;
  }
  MP_CHECK(rc);
  mp_connection_free(py_conn);
  char buf[256];
  size_t len;
  MP_CHECK(mp_connection_recv_bytes(c_conn, buf, sizeof buf, &len));
  printf("C: received from Python: %.*s\n", (int)len, buf);
  fflush(stdout);
  MP_CHECK(
      mp_connection_send_bytes(c_conn, "儿子你好!", 0, strlen("儿子你好!")));
  rc = mp_connection_recv_bytes(c_conn, buf, sizeof buf, &len);
  printf("C: then %s, as Python closed its end\n", mp_err_name(rc));
  int code;
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  MP_CHECK(mp_process_exitcode(p, &code));
  mp_process_free(p);
  mp_connection_free(c_conn);
  return code == 0 && rc == MP_ECLOSED ? 0 : 1;
}
