/* csp_remote.c - a channel across hosts, as PyCSP's
 * Channel(..., connect=(host, port)): host A serves a rendezvous channel
 * on a TCP address and reads from it; host B, a separate program that
 * knows only the address and the key, connects and writes ten numbers
 * with the ordinary write call, each returning once the consumer on host
 * A has the number, then retires. Here host B is this program run again
 * (csp_remote --host-b ADDRESS), started by host A over loopback.
 *
 * The PyCSP program it corresponds to (examples/python/csp_remote.py):
 *
 *   # host A                          # host B
 *   c = Channel('numbers')            c = Channel('numbers',
 *   Parallel(consumer(+c))                        connect=('hostA', port))
 *                                     Parallel(producer(-c))
 *
 * Usage: csp_remote [--quick]                    host A (starts host B)
 *        csp_remote --host-b ADDRESS [--quick]   host B */
#include <multiproc.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Both hosts know the key (as PyCSP's configuration would hold it). */
static const char KEY[] = "csp-remote-demo-key";
static useconds_t nap = 100000;

static int host_b(const char *address) {
  mp_channel *c;
  mp_channel_end *out;
  mp_channel_connect_opts o = {.authkey = KEY, .authkey_len = sizeof KEY - 1};
  int rc = mp_channel_connect(&c, address, &o);
  if (rc != 0)
    return rc;
  if ((rc = mp_channel_writer(c, &out)) != 0)
    return rc;
  for (int i = 0; i < 10 && rc == 0; i++) {
    usleep(nap);
    printf("producer (host B): writing %d to %s\n", i, address);
    fflush(stdout);
    rc = mp_channel_write(out, &i, sizeof i, MP_FOREVER);
  }
  if (rc == 0)
    rc = mp_channel_retire(out);
  mp_channel_end_free(out);
  mp_channel_free(c);
  return rc;
}

static int consumer(mp_channel_end *in) {
  int total = 0;
  for (;;) {
    int v;
    ssize_t n = mp_channel_read(in, &v, sizeof v, MP_FOREVER);
    if (n == MP_ERETIRED) {
      printf("consumer (host A): the remote producer retired; total %d\n",
             total);
      fflush(stdout);
      return total == 45 ? 0 : 1;
    }
    if (n < 0)
      return (int)n;
    printf("consumer (host A): got %d\n", v);
    fflush(stdout);
    total += v;
  }
}

int main(int argc, char **argv) {
  int quick = 0;
  const char *address = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      quick = 1;
    else if (strcmp(argv[i], "--host-b") == 0 && i + 1 < argc)
      address = argv[++i];
  }
  if (quick)
    nap = 1000;
  if (address != NULL)
    return host_b(address) == 0 ? 0 : 1;

  /* Host A: serve the channel; port 0 lets the kernel pick one. */
  mp_channel *c;
  mp_channel_end *r;
  mp_channel_server *srv;
  mp_channel_serve_opts o = {.authkey = KEY, .authkey_len = sizeof KEY - 1};
  if (mp_channel_new(&c, NULL) != 0 || mp_channel_reader(c, &r) != 0 ||
      mp_channel_serve(&srv, c, "127.0.0.1:0", &o) != 0)
    return 1;
  char where[MP_ADDRESS_MAX];
  snprintf(where, sizeof where, "%s", mp_channel_server_address(srv));
  printf("host A serves the channel on %s\n", where);
  fflush(stdout);
  /* Start host B: this program again, given only the address. */
  char *args[] = {argv[0], "--host-b", where, quick ? "--quick" : NULL, NULL};
  pid_t pid;
  if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ) != 0)
    return 1;
  int rc = consumer(r);
  int status = 0;
  waitpid(pid, &status, 0);
  mp_channel_server_free(srv);
  mp_channel_end_free(r);
  mp_channel_free(c);
  return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
