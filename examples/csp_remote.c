/* csp_remote.c - a channel across hosts, as PyCSP's
 * Channel(..., connect=(host, port)): this process (host A) serves a
 * rendezvous channel on a TCP address; a producer that knows only the
 * address and the authkey (host B: here another process over loopback)
 * connects and writes ten numbers with the ordinary write call, each
 * returning once the consumer on host A has the number, then retires;
 * the consumer reads until it is told the channel has retired.
 *
 * The PyCSP program it corresponds to:
 *
 *   # host A                          # host B
 *   c = Channel('numbers')            c = Channel('numbers',
 *   c.reader() ... consumer(+c)                   connect=('hostA', port))
 *                                     producer(-c)
 *
 * Usage: csp_remote [--quick] */
#include <multiproc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static useconds_t nap = 100000;

/* Host B: only the address is known; the key is the process authkey,
 * which this child shares with its creator (pass .authkey for another). */
static int producer(void *arg) {
  const char *address = arg;
  mp_channel *c;
  mp_channel_end *out;
  int rc = mp_channel_connect(&c, address, NULL);
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
    mp_channel_retire(out);
  mp_channel_end_free(out);
  mp_channel_free(c);
  return rc;
}

/* Host A: the consumer reads the served channel locally. */
static int consumer(void *arg) {
  mp_channel_end *in = arg;
  int total = 0;
  for (;;) {
    int v;
    ssize_t n = mp_channel_read(in, &v, sizeof v, MP_FOREVER);
    if (n == MP_ERETIRED) {
      printf("consumer (host A): the remote producer retired; total %d\n",
             total);
      fflush(stdout);
      return 0;
    }
    if (n < 0)
      return (int)n;
    printf("consumer (host A): got %d\n", v);
    fflush(stdout);
    total += v;
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    nap = 1000;
  mp_channel *c;
  mp_channel_end *r;
  mp_channel_server *srv;
  if (mp_channel_new(&c, NULL) != 0 || mp_channel_reader(c, &r) != 0)
    return 1;
  /* Port 0: the kernel picks one; the server reports it. The key defaults
   * to this process's authkey. */
  if (mp_channel_serve(&srv, c, "127.0.0.1:0", NULL) != 0)
    return 1;
  char address[MP_ADDRESS_MAX];
  snprintf(address, sizeof address, "%s", mp_channel_server_address(srv));
  printf("host A serves the channel on %s\n", address);
  fflush(stdout);
  mp_csp_process procs[] = {
      {.fn = producer, .arg = address},
      {.fn = consumer, .arg = r, MP_CSP_ENDS(r)},
  };
  int rc = mp_csp_parallel(procs, 2);
  mp_channel_server_free(srv);
  mp_channel_end_free(r);
  mp_channel_free(c);
  return rc == 0 && procs[0].result == 0 && procs[1].result == 0 ? 0 : 1;
}
