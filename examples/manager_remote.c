/* manager_remote.c - a remote manager: "local and remote concurrency" (seed
 * 001, 3 multiprocessing模块). A manager served on TCP, which a program on
 * another host reaches with the address and the authkey, shared by a C
 * client and a Python client.
 *
 *   manager_remote HOST:PORT   connect to a running server (mp-manager, or
 *                              Python's SyncManager) with the authkey in
 *                              $MP_MANAGER_AUTHKEY; create a dict and an
 *                              Event; print "TOKENS <dict> <event>"; wait
 *                              for another client (manager_remote.py) to add
 *                              to the dict and set the Event; print the dict.
 *   manager_remote [--quick]   the same against a server it starts itself on
 *                              127.0.0.1:0, with a forked C client as the
 *                              other client.
 *
 * The Python side, for a C program's objects, is (manager_remote.py):
 *
 *   m = SyncManager(address=(host, port), authkey=key); m.connect()
 *   d = DictProxy(Token('dict', (host, port), ident), 'pickle', authkey=key)
 *   d['python'] = sys.version.split()[0]
 */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", what, mp_error_message(rc));
    exit(1);
  }
  return rc;
}

static mp_manager_opts opts;
static char dict_token[128], event_token[128];

/* The other client, in the self-contained run: a separate connection,
 * opening the objects by their tokens as a remote program would. */
static int other_client(void *arg) {
  (void)arg;
  mp_manager *m;
  check(mp_manager_connect(&m, &opts), "connect");
  mp_proxy *d, *ev;
  check(mp_proxy_open(m, dict_token, &d), "open dict");
  check(mp_proxy_open(m, event_token, &ev), "open event");
  check(mp_proxy_setitem(d, mp_obj_str("other C client"), mp_obj_str("forked")), "d[...]");
  check(mp_proxy_set(ev), "event.set()");
  mp_proxy_free(d);
  mp_proxy_free(ev);
  mp_manager_free(m);
  return 0;
}

int main(int argc, char **argv) {
  const char *address = argc > 1 && strcmp(argv[1], "--quick") != 0 ? argv[1] : NULL;
  mp_manager *m = NULL, *server = NULL;
  if (address) {
    const char *key = getenv("MP_MANAGER_AUTHKEY");
    if (!key) {
      fprintf(stderr, "set MP_MANAGER_AUTHKEY to the server's authkey\n");
      return 2;
    }
    opts = (mp_manager_opts){.address = address, .authkey = key, .authkey_len = strlen(key)};
    check(mp_manager_connect(&m, &opts), "connect");
  } else {
    mp_manager_opts so = {.address = "127.0.0.1:0", .authkey = "demo", .authkey_len = 4};
    check(mp_manager_start(&server, &so), "start a server");
    opts = (mp_manager_opts){.address = mp_manager_address(server), .authkey = "demo",
                             .authkey_len = 4};
    check(mp_manager_connect(&m, &opts), "connect");
  }
  printf("connected to the manager at %s\n", mp_manager_address(m));
  mp_proxy *d, *ev;
  check(mp_manager_dict(m, &d), "dict()");
  check(mp_manager_event(m, &ev), "Event()");
  check(mp_proxy_setitem(d, mp_obj_str("C"), mp_obj_str("hello from C")), "d['C']");
  check(mp_proxy_token(d, dict_token, sizeof dict_token), "token");
  check(mp_proxy_token(ev, event_token, sizeof event_token), "token");
  printf("TOKENS %s %s\n", strchr(dict_token, ' ') + 1, strchr(event_token, ' ') + 1);
  fflush(stdout);
  mp_process *p = NULL;
  if (!address) {
    check(mp_process_new(&p, other_client, NULL, NULL), "Process");
    check(mp_process_start(p), "start");
  }
  printf("waiting for the other client...\n");
  fflush(stdout);
  int rc = mp_proxy_wait(ev, 60, NULL);
  check(rc, "event.wait(60)");
  char *s;
  check(mp_proxy_repr(d, &s), "repr");
  printf("the shared dict: %s\n", s);
  free(s);
  int ok = mp_proxy_len(d) == 2;
  if (p) {
    check(mp_process_join(p, MP_FOREVER), "join");
    mp_process_free(p);
  }
  mp_proxy_free(d);
  mp_proxy_free(ev);
  mp_manager_free(m);
  mp_manager_free(server);
  return ok ? 0 : 1;
}
