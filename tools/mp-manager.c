/* mp-manager.c - a standalone manager server: serves dicts, lists,
 * Namespaces, queues and locks (everything mp_manager_start serves) on an
 * address, to C clients (mp_manager_connect) and to stock Python clients
 * (SyncManager(address=..., authkey=...).connect()).
 *
 * The authkey comes from a file (--authkey-file, its bytes without a
 * trailing newline) or an environment variable (--authkey-env NAME,
 * default MP_MANAGER_AUTHKEY), never from the command line, where other
 * users could read it in the process list. It logs connections and errors
 * to stderr, prints "serving on ADDRESS" on stdout once it listens (the
 * port the kernel chose for ":0"), and shuts down cleanly on SIGTERM or
 * SIGINT, or when a client sends 'shutdown': every client connection is
 * closed and a Unix socket file is removed. Exit status 0 after a clean
 * shutdown, 1 when it cannot start, 2 for a usage error.
 *
 * Usage: mp-manager --address HOST:PORT|PATH [--authkey-file FILE]
 *                   [--authkey-env NAME] [--max-request BYTES] [--quiet] */
#define _GNU_SOURCE
#include <multiproc.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
  fprintf(stderr,
          "usage: mp-manager --address HOST:PORT|PATH [--authkey-file FILE]\n"
          "                  [--authkey-env NAME] [--max-request BYTES] "
          "[--quiet]\n"
          "The authkey is read from FILE, or from the environment variable\n"
          "NAME (default MP_MANAGER_AUTHKEY); never from the command line.\n");
}

static mp_manager_server *server;

static void *signal_thread(void *arg) {
  sigset_t *set = arg;
  int sig = 0;
  sigwait(set, &sig);
  fprintf(stderr, "mp-manager: %s: shutting down\n", strsignal(sig));
  mp_manager_server_stop(server);
  return NULL;
}

static int read_key_file(const char *path, char *key, size_t cap, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "mp-manager: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t n = fread(key, 1, cap, f);
  int more = fgetc(f) != EOF;
  fclose(f);
  if (more) {
    fprintf(stderr, "mp-manager: %s holds more than %zu bytes\n", path, cap);
    return -1;
  }
  while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r')) n--;
  *len = n;
  return 0;
}

int main(int argc, char **argv) {
  const char *address = NULL, *key_file = NULL, *key_env = "MP_MANAGER_AUTHKEY";
  size_t max_request = 0;
  int quiet = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--address") == 0 && v) address = argv[++i];
    else if (strcmp(a, "--authkey-file") == 0 && v) key_file = argv[++i];
    else if (strcmp(a, "--authkey-env") == 0 && v) key_env = argv[++i];
    else if (strcmp(a, "--max-request") == 0 && v) max_request = strtoull(argv[++i], NULL, 10);
    else if (strcmp(a, "--quiet") == 0) quiet = 1;
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  if (!address) {
    usage();
    return 2;
  }
  char key[MP_AUTHKEY_MAX];
  size_t keylen = 0;
  if (key_file) {
    if (read_key_file(key_file, key, sizeof key, &keylen)) return 1;
  } else {
    const char *k = getenv(key_env);
    if (!k || !*k) {
      fprintf(stderr, "mp-manager: no authkey: set %s or pass --authkey-file\n",
              key_env);
      return 2;
    }
    keylen = strlen(k);
    if (keylen > sizeof key) {
      fprintf(stderr, "mp-manager: the authkey is over %zu bytes\n", sizeof key);
      return 2;
    }
    memcpy(key, k, keylen);
  }

  /* Signals go to one thread that stops the server; block them first so
   * the server's threads inherit the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  mp_manager_opts o = {.address = address, .authkey = key, .authkey_len = keylen,
                       .max_request = max_request, .log = !quiet};
  int rc = mp_manager_server_new(&server, &o);
  memset(key, 0, sizeof key);
  if (rc) {
    fprintf(stderr, "mp-manager: %s\n", mp_error_message(rc));
    return 1;
  }
  printf("serving on %s\n", mp_manager_server_address(server));
  fflush(stdout);
  pthread_t th;
  pthread_create(&th, NULL, signal_thread, &set);
  pthread_detach(th);
  mp_manager_server_serve_forever(server);
  mp_manager_server_free(server);
  if (!quiet) fprintf(stderr, "mp-manager: stopped\n");
  return 0;
}
