/* listener_py_server.c - a Python server and a C client: python3 runs
 * CPython's own multiprocessing.connection.Listener with an authkey and
 * prints its address; the C program connects with mp_client, first with
 * the right key (and talks), then with a wrong one, which both sides
 * refuse.
 *
 * The Python server:
 *
 *   with Listener(('127.0.0.1', 0), authkey=key) as l:
 *       print(address); for each client:
 *           with l.accept() as conn:      # AuthenticationError: reported
 *               print('python: got', conn.recv_bytes())
 *               conn.send_bytes(b'hello from python')
 *
 * Without python3 on PATH it says so and exits 0.
 *
 * Usage: listener_py_server [--quick]   (--quick changes nothing) */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char KEY[] = "secret password";

static const char *script =
    "import sys\n"
    "from multiprocessing import AuthenticationError\n"
    "from multiprocessing.connection import Listener\n"
    "with Listener(('127.0.0.1', 0), authkey=sys.argv[1].encode()) as l:\n"
    "    print('%s:%d' % l.address, flush=True)\n"
    "    for _ in range(2):\n"
    "        try:\n"
    "            with l.accept() as c:\n"
    "                print('  python server: got', c.recv_bytes(), "
    "flush=True)\n"
    "                c.send_bytes(b'hello from python')\n"
    "        except AuthenticationError as e:\n"
    "            print('  python server: AuthenticationError:', e, "
    "flush=True)\n";

static int connect_with(const char *address, const char *key) {
  mp_client_opts o = {.authkey = key, .authkey_len = strlen(key)};
  mp_connection *c = NULL;
  int rc = mp_client(&c, address, &o, 10.0);
  if (rc != 0) {
    printf("  C client: refused: %s (%s)\n", mp_err_name(rc),
           mp_error_detail());
    fflush(stdout);
    return rc;
  }
  mp_connection_send_bytes(c, "hello from C", 0, 12);
  char buf[64];
  size_t len = 0;
  if (mp_connection_recv_bytes(c, buf, sizeof buf, &len) == 0)
    printf("  C client: got '%.*s'\n", (int)len, buf);
  fflush(stdout);
  mp_connection_free(c);
  return 0;
}

int main(void) {
  if (system("python3 -c 'import multiprocessing.connection' "
             ">/dev/null 2>&1") != 0) {
    printf("python3 not found: nothing to talk to (skipped)\n");
    return 0;
  }
  int out[2];
  if (pipe(out) != 0)
    return 1;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execlp("python3", "python3", "-c", script, KEY, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  FILE *from_py = fdopen(out[0], "r");
  char address[MP_ADDRESS_MAX] = "";
  if (from_py == NULL || fgets(address, sizeof address, from_py) == NULL) {
    fprintf(stderr, "python3 did not start its listener\n");
    return 1;
  }
  address[strcspn(address, "\n")] = '\0';
  printf("python3 server listening on %s\n", address);
  printf("1. C client with the right key:\n");
  fflush(stdout);
  int rc1 = connect_with(address, KEY);
  /* Python's own lines come through its stdout, here. */
  char line[256];
  if (fgets(line, sizeof line, from_py) != NULL)
    fputs(line, stdout);
  printf("2. C client with a wrong key:\n");
  fflush(stdout);
  int rc2 = connect_with(address, "wrong key");
  while (fgets(line, sizeof line, from_py) != NULL)
    fputs(line, stdout);
  fclose(from_py);
  int st = 0;
  waitpid(pid, &st, 0);
  return rc1 == 0 && rc2 == MP_EAUTH && WIFEXITED(st) && WEXITSTATUS(st) == 0
             ? 0
             : 1;
}
