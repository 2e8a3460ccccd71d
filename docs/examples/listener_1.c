/* listener_1.c - a Listener on TCP loopback with an authkey, and a child
 * that connects as a Client: one question, one answer. */
#include <stdio.h>
#include <string.h>

#include <multiproc.h>

static const char KEY[] = "secret password";

static int client(void *arg) {
  const char *address = arg;
  mp_client_opts opts = {.authkey = KEY, .authkey_len = strlen(KEY)};
  mp_connection *conn = NULL;
  int rc = mp_client(&conn, address, &opts, 5.0);
  if (rc != 0) {
    fprintf(stderr, "client: %s\n", mp_error_message(rc));
    return 1;
  }
  mp_connection_send_bytes(conn, "ping", 0, 4);
  char buf[16];
  size_t len = 0;
  if (mp_connection_recv_bytes(conn, buf, sizeof buf, &len) == 0)
    printf("client got: %.*s\n", (int)len, buf);
  mp_connection_free(conn);
  return 0;
}

int main(void) {
  mp_listener_opts opts = {.authkey = KEY, .authkey_len = strlen(KEY)};
  mp_listener *l = NULL;
  int rc = mp_listener_new(&l, "127.0.0.1:0", &opts); /* port 0: any */
  if (rc != 0) {
    fprintf(stderr, "listen: %s\n", mp_error_message(rc));
    return 1;
  }
  printf("listening on %s\n", mp_listener_address(l));

  mp_process *p = NULL;
  mp_process_new(&p, client, (void *)mp_listener_address(l), NULL);
  mp_process_start(p);

  mp_connection *conn = NULL;
  rc = mp_listener_accept(l, &conn, 10.0);
  if (rc == 0) {
    char buf[16];
    size_t len = 0;
    if (mp_connection_recv_bytes(conn, buf, sizeof buf, &len) == 0)
      printf("server got: %.*s\n", (int)len, buf);
    mp_connection_send_bytes(conn, "pong", 0, 4);
    mp_connection_free(conn);
  } else {
    fprintf(stderr, "accept: %s\n", mp_error_message(rc));
  }
  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  mp_listener_free(l);
  return rc == 0 ? 0 : 1;
}
