/* pipe_python.c - a C program and a Python program on the two ends of one
 * Pipe. The child runs python3, which wraps its end in Python's own
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
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The descriptor Python finds its end at. */
#define PY_FD 3

static const char *script =
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "def f(conn):\n"
    "    conn.send([12, {'name': 'yuan'}, 'hello'])\n"
    "    response = conn.recv()\n"
    "    print('python: response', response, flush=True)\n"
    "    conn.close()\n"
    "f(Connection(int(sys.argv[1])))\n";

static int check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "%s: %s (%s)\n", what, mp_err_name(rc), mp_strerror(rc));
    exit(1);
  }
  return rc;
}

int main(void) {
  if (system("python3 -c 'import multiprocessing.connection' "
             ">/dev/null 2>&1") != 0) {
    printf("python3 not found: nothing to talk to (skipped)\n");
    return 0;
  }
  mp_connection *c_conn, *py_conn;
  check(mp_pipe(&c_conn, &py_conn, 1), "mp_pipe");
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    check(-1, "fork");
  if (pid == 0) {
    /* The library's descriptors are close-on-exec; dup2 makes a copy that
     * python3 inherits, at the number we tell it. */
    dup2(mp_connection_fileno(py_conn), PY_FD);
    char fd[8];
    snprintf(fd, sizeof fd, "%d", PY_FD);
    execlp("python3", "python3", "-c", script, fd, (char *)NULL);
    _exit(127);
  }
  mp_connection_free(py_conn);

  mp_obj *got;
  check(mp_connection_recv(c_conn, &got), "recv");
  char *text = mp_obj_repr(got);
  printf("C: received from Python: %s\n", text);
  fflush(stdout);
  free(text);
  mp_obj_free(got);
  mp_obj *reply = mp_obj_str("儿子你好!");
  check(mp_connection_send(c_conn, reply), "send");
  mp_obj_free(reply);
  /* Python closes its end when it is done: end of stream here. */
  int rc = mp_connection_recv(c_conn, &got);
  printf("C: then %s, as Python closed its end\n", mp_err_name(rc));
  mp_connection_free(c_conn);
  int status;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 && rc == MP_ECLOSED
             ? 0
             : 1;
}
