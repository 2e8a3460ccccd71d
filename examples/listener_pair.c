/* listener_pair.c - a C server and a C client that did not share a Pipe:
 * the server listens on TCP loopback with an authkey, a client process
 * connects with the same key and talks, and a second client with a wrong
 * key is refused on both sides (Python's AuthenticationError is
 * MP_EAUTH, with a detail saying why).
 *
 * The Python it mirrors (multiprocessing.connection):
 *
 *   with Listener(('127.0.0.1', 0), authkey=b'secret password') as l:
 *       ...  # a child: Client(l.address, authkey=b'secret password')
 *       with l.accept() as conn:
 *           print('connection accepted from', l.last_accepted)
 *           print(conn.recv_bytes()); conn.send_bytes(b'hello, client')
 *
 * Usage: listener_pair [--quick]   (--quick changes nothing) */
#include <multiproc.h>

#include <stdio.h>
#include <string.h>

static const char KEY[] = "secret password";

typedef struct job {
  char address[MP_ADDRESS_MAX];
  const char *key;
} job;

static int client(void *arg) {
  const job *j = arg;
  mp_client_opts o = {.authkey = j->key, .authkey_len = strlen(j->key)};
  mp_connection *c = NULL;
  int rc = mp_client(&c, j->address, &o, 5.0);
  if (rc != 0) {
    printf("  client (key '%s'): refused: %s\n", j->key, mp_err_name(rc));
    printf("    why: %s\n", mp_error_detail());
    return rc == MP_EAUTH ? 0 : 1;
  }
  const char *hello = "hello, server";
  mp_connection_send_bytes(c, hello, 0, strlen(hello));
  char buf[64];
  size_t len = 0;
  if (mp_connection_recv_bytes(c, buf, sizeof buf, &len) == 0)
    printf("  client (key '%s'): got '%.*s'\n", j->key, (int)len, buf);
  mp_connection_free(c);
  return 0;
}

static int run_client(mp_listener *l, const char *key, int expect) {
  static job j;
  snprintf(j.address, sizeof j.address, "%s", mp_listener_address(l));
  j.key = key;
  mp_process *p = NULL;
  mp_process_new(&p, client, &j, NULL);
  mp_process_start(p);
  mp_connection *c = NULL;
  int rc = mp_listener_accept(l, &c, 10.0);
  if (rc == 0) {
    printf("  server: connection accepted from %s\n",
           mp_listener_last_accepted(l));
    char buf[64];
    size_t len = 0;
    if (mp_connection_recv_bytes(c, buf, sizeof buf, &len) == 0)
      printf("  server: got '%.*s'\n", (int)len, buf);
    mp_connection_send_bytes(c, "hello, client", 0, 13);
    mp_connection_free(c);
  } else {
    printf("  server: handshake refused: %s\n", mp_err_name(rc));
    printf("    why: %s\n", mp_error_detail());
  }
  int joined = mp_process_join_check(p, 10.0); /* 0: it exited with 0 */
  mp_process_free(p);
  return rc == expect && joined == 0 ? 0 : 1;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* each line out at once, in order */
  mp_listener_opts o = {.authkey = KEY, .authkey_len = strlen(KEY)};
  mp_listener *l = NULL;
  int rc = mp_listener_new(&l, "127.0.0.1:0", &o);
  if (rc != 0) {
    fprintf(stderr, "listen: %s\n", mp_error_message(rc));
    return 1;
  }
  printf("C server listening on %s (authkey '%s')\n", mp_listener_address(l),
         KEY);
  printf("1. a C client with the right key:\n");
  int bad = run_client(l, KEY, 0);
  printf("2. a C client with a wrong key:\n");
  bad |= run_client(l, "wrong key", MP_EAUTH);
  mp_listener_free(l);
  return bad;
}
