/* csp_poison.c - a whole network shut down by one poison. A generator
 * feeds numbers to three workers over one any-to-any channel; the workers
 * square them and send them to a collector over a second one. After ten
 * results the collector poisons its input. The poison reaches each worker
 * at its next write; a worker that returns MP_EPOISONED has its ends
 * poisoned for it by the process network, so the first channel is
 * poisoned too, and the generator stops. Every process says how it ended.
 *
 * In PyCSP this is
 *   @process
 *   def worker(cin, cout):
 *       while True: cout(cin() ** 2)
 *   ... Parallel(generator(-a), 3 * worker(+a, -b), collector(+b))
 * where the collector's poison(cin) raises ChannelPoisonException in the
 * others, which their @process decorator catches and passes on.
 *
 * Usage: csp_poison [--quick] */
#include <multiproc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static useconds_t nap = 20000;

static int generator(void *arg) {
  mp_channel_end *out = arg;
  for (long i = 1;; i++) {
    int rc = mp_channel_write(out, &i, sizeof i, MP_FOREVER);
    if (rc != 0) {
      printf("generator: stopped by %s after %ld numbers\n",
             rc == MP_EPOISONED ? "poison" : mp_err_name(rc), i - 1);
      return rc;
    }
  }
}

typedef struct worker_ends {
  mp_channel_end *in, *out;
  int id;
} worker_ends;

static int worker(void *arg) {
  worker_ends *e = arg;
  for (;;) {
    long v;
    ssize_t n = mp_channel_read(e->in, &v, sizeof v, MP_FOREVER);
    int rc = n < 0 ? (int)n : 0;
    if (rc == 0) {
      usleep(nap);
      v *= v;
      rc = mp_channel_write(e->out, &v, sizeof v, MP_FOREVER);
    }
    if (rc != 0) {
      printf("worker %d: %s, passing it on\n", e->id,
             rc == MP_EPOISONED ? "poisoned" : mp_err_name(rc));
      return rc;
    }
  }
}

static int collector(void *arg) {
  mp_channel_end *in = arg;
  for (int i = 0; i < 10; i++) {
    long v;
    ssize_t n = mp_channel_read(in, &v, sizeof v, MP_FOREVER);
    if (n < 0)
      return (int)n;
    printf("collector: %ld\n", v);
  }
  printf("collector: enough, poisoning\n");
  mp_channel_poison(in);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    nap = 1000;
  setvbuf(stdout, NULL, _IOLBF, 0); /* each line out at once, in order */
  mp_channel *a, *b;
  MP_CHECK(mp_channel_new(&a, NULL));
  MP_CHECK(mp_channel_new(&b, NULL));
  mp_channel_end *gen_out, *col_in;
  worker_ends we[3];
  MP_CHECK(mp_channel_writer(a, &gen_out));
  MP_CHECK(mp_channel_reader(b, &col_in));
  for (int i = 0; i < 3; i++) {
    we[i].id = i + 1;
    MP_CHECK(mp_channel_reader(a, &we[i].in));
    MP_CHECK(mp_channel_writer(b, &we[i].out));
  }
  mp_csp_process procs[] = {
      {.fn = generator, .arg = gen_out, MP_CSP_ENDS(gen_out)},
      {.fn = worker, .arg = &we[0], MP_CSP_ENDS(we[0].in, we[0].out)},
      {.fn = worker, .arg = &we[1], MP_CSP_ENDS(we[1].in, we[1].out)},
      {.fn = worker, .arg = &we[2], MP_CSP_ENDS(we[2].in, we[2].out)},
      {.fn = collector, .arg = col_in, MP_CSP_ENDS(col_in)},
  };
  int rc = mp_csp_parallel(procs, 5);
  int ok = rc == 0;
  for (int i = 0; i < 4; i++)
    ok = ok && procs[i].result == MP_EPOISONED;
  printf("network: %s\n", ok ? "every process ended by the one poison"
                             : "some process did not end by poison");
  mp_channel_end_free(gen_out);
  mp_channel_end_free(col_in);
  for (int i = 0; i < 3; i++) {
    mp_channel_end_free(we[i].in);
    mp_channel_end_free(we[i].out);
  }
  mp_channel_free(a);
  mp_channel_free(b);
  return ok && procs[4].result == 0 ? 0 : 1;
}
