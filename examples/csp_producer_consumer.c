/* csp_producer_consumer.c - a producer and a consumer that share nothing
 * and talk only over a channel, in the CSP style of seed 004: the producer
 * writes ten numbers on a rendezvous channel (each write waits until the
 * consumer has the number), then retires its end; the consumer reads until
 * it is told the channel has retired. Both are OS processes run by
 * Parallel.
 *
 * The PyCSP program it corresponds to:
 *
 *   @process
 *   def producer(cout):
 *       for i in range(10):
 *           cout(i)
 *       retire(cout)
 *   @process
 *   def consumer(cin):
 *       while True:
 *           print(cin())
 *   c = Channel()
 *   Parallel(producer(-c), consumer(+c))
 *
 * Usage: csp_producer_consumer [--quick] */
#include <multiproc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static useconds_t nap = 100000;

static int producer(void *arg) {
  mp_channel_end *out = arg;
  for (int i = 0; i < 10; i++) {
    usleep(nap);
    printf("producer: writing %d\n", i);
    fflush(stdout);
    int rc = mp_channel_write(out, &i, sizeof i, MP_FOREVER);
    if (rc != 0)
      return rc;
  }
  return MP_ERETIRED; /* retire: the runner retires our end */
}

static int consumer(void *arg) {
  mp_channel_end *in = arg;
  int total = 0;
  for (;;) {
    int v;
    ssize_t n = mp_channel_read(in, &v, sizeof v, MP_FOREVER);
    if (n == MP_ERETIRED) {
      printf("consumer: the producer retired; total %d\n", total);
      fflush(stdout);
      return 0;
    }
    if (n < 0)
      return (int)n;
    printf("consumer: got %d\n", v);
    fflush(stdout);
    total += v;
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    nap = 1000;
  mp_channel *c;
  mp_channel_end *r, *w;
  if (mp_channel_new(&c, NULL) != 0 || mp_channel_reader(c, &r) != 0 ||
      mp_channel_writer(c, &w) != 0)
    return 1;
  mp_csp_process procs[] = {
      {.fn = producer, .arg = w, MP_CSP_ENDS(w)},
      {.fn = consumer, .arg = r, MP_CSP_ENDS(r)},
  };
  int rc = mp_csp_parallel(procs, 2);
  mp_channel_end_free(r);
  mp_channel_end_free(w);
  mp_channel_free(c);
  return rc == 0 && procs[0].result == MP_ERETIRED && procs[1].result == 0
             ? 0
             : 1;
}
