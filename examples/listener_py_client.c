/* listener_py_client.c - a C server and a Python client: the C program
 * listens with an authkey, and python3 connects with CPython's own
 * multiprocessing.connection.Client, first with the right key, then with
 * a wrong one, which both sides refuse. The handshake bytes are
 * CPython's (3.11's HMAC-MD5 or 3.12+'s {sha256}), so any python3 works.
 *
 * The Python client:
 *
 *   from multiprocessing.connection import Client
 *   with Client(address, authkey=key) as conn:
 *       conn.send_bytes(b'hello from python')
 *       print('python: got', conn.recv_bytes())
 *
 * Without python3 on PATH it says so and exits 0.
 *
 * Usage: listener_py_client [--quick]   (--quick changes nothing) */
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
    "from multiprocessing.connection import Client\n"
    "host, _, port = sys.argv[1].rpartition(':')\n"
    "try:\n"
    "    with Client((host, int(port)), authkey=sys.argv[2].encode()) as c:\n"
    "        c.send_bytes(b'hello from python')\n"
    "        print('  python client: got', c.recv_bytes(), flush=True)\n"
    "except AuthenticationError as e:\n"
    "    print('  python client: AuthenticationError:', e, flush=True)\n";

/* one runs python3 with key and accepts it; returns accept's code. */
static int one(mp_listener *l, const char *key, int *py_ok) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    execlp("python3", "python3", "-c", script, mp_listener_address(l), key,
           (char *)NULL);
    _exit(127);
  }
  mp_connection *c = NULL;
  int rc = mp_listener_accept(l, &c, 30.0);
  if (rc == 0) {
    char buf[64];
    size_t len = 0;
    if (mp_connection_recv_bytes(c, buf, sizeof buf, &len) == 0)
      printf("  C server: got '%.*s' from %s\n", (int)len, buf,
             mp_listener_last_accepted(l));
    fflush(stdout);
    mp_connection_send_bytes(c, "hello from C", 0, 12);
    mp_connection_free(c);
  } else {
    printf("  C server: refused: %s (%s)\n", mp_err_name(rc),
           mp_error_detail());
    fflush(stdout);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  *py_ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  return rc;
}

int main(void) {
  if (system("python3 -c 'import multiprocessing.connection' "
             ">/dev/null 2>&1") != 0) {
    printf("python3 not found: nothing to talk to (skipped)\n");
    return 0;
  }
  mp_listener_opts o = {.authkey = KEY, .authkey_len = strlen(KEY)};
  mp_listener *l = NULL;
  int rc = mp_listener_new(&l, "127.0.0.1:0", &o);
  if (rc != 0) {
    fprintf(stderr, "listen: %s\n", mp_error_message(rc));
    return 1;
  }
  printf("C server listening on %s\n", mp_listener_address(l));
  int ok1, ok2;
  printf("1. python3 client with the right key:\n");
  int rc1 = one(l, KEY, &ok1);
  printf("2. python3 client with a wrong key:\n");
  int rc2 = one(l, "wrong key", &ok2);
  mp_listener_free(l);
  return rc1 == 0 && rc2 == MP_EAUTH && ok1 && ok2 ? 0 : 1;
}
