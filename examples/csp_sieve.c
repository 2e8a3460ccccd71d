/* csp_sieve.c - the prime sieve of CSP (Hoare's, and Go's best-known
 * example) with OS processes: a generator writes 2, 3, 4, ... on a
 * channel; each sieve process reads its first number, which is prime,
 * prints it, starts the next sieve process behind a new channel and passes
 * on every number that its prime does not divide. When the generator
 * retires its end, each sieve finds its input retired, retires its output
 * in turn (the process network does that for a process that returns
 * MP_ERETIRED) and waits for the sieve it started: the chain winds down
 * from the front.
 *
 * Usage: csp_sieve [--quick] [LIMIT]   (primes below LIMIT, default 100;
 *                                       --quick: 30) */
#include <multiproc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int limit = 100;

static int generator(void *arg) {
  mp_channel_end *out = arg;
  for (int i = 2; i < limit; i++) {
    int rc = mp_channel_write(out, &i, sizeof i, MP_FOREVER);
    if (rc != 0)
      return rc;
  }
  return MP_ERETIRED;
}

static int sieve(void *arg) {
  mp_channel_end *in = arg;
  int prime;
  ssize_t n = mp_channel_read(in, &prime, sizeof prime, MP_FOREVER);
  if (n < 0)
    return (int)n; /* retired before any number came: the end of the chain */
  printf("%d\n", prime);
  mp_channel *c;
  mp_channel_end *r, *w;
  if (mp_channel_new(&c, NULL) != 0 || mp_channel_reader(c, &r) != 0 ||
      mp_channel_writer(c, &w) != 0)
    return 1;
  mp_csp_process next = {.fn = sieve, .arg = r, MP_CSP_ENDS(r)};
  mp_csp_network *net;
  int rc = mp_csp_spawn(&net, &next, 1);
  for (int v; rc == 0;) {
    n = mp_channel_read(in, &v, sizeof v, MP_FOREVER);
    if (n < 0)
      rc = (int)n;
    else if (v % prime != 0)
      rc = mp_channel_write(w, &v, sizeof v, MP_FOREVER);
  }
  /* The input retired (or was poisoned): pass it on, wait for the rest. */
  if (rc == MP_EPOISONED)
    mp_channel_poison(w);
  else
    mp_channel_retire(w);
  mp_csp_network_free(net);
  mp_channel_end_free(r);
  mp_channel_end_free(w);
  mp_channel_free(c);
  return rc;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) /* --quick: 30; else a number */
    limit = strcmp(argv[i], "--quick") == 0 ? 30 : atoi(argv[i]);
  if (limit < 3 || limit > 2000) {
    fprintf(stderr, "LIMIT must be 3..2000 (one process per prime)\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* each line out at once, in order */
  printf("primes below %d, one process each:\n", limit);
  mp_channel *c;
  mp_channel_end *r, *w;
  if (mp_channel_new(&c, NULL) != 0 || mp_channel_reader(c, &r) != 0 ||
      mp_channel_writer(c, &w) != 0)
    return 1;
  mp_csp_process procs[] = {
      {.fn = generator, .arg = w, MP_CSP_ENDS(w)},
      {.fn = sieve, .arg = r, MP_CSP_ENDS(r)},
  };
  int rc = mp_csp_parallel(procs, 2);
  mp_channel_end_free(r);
  mp_channel_end_free(w);
  mp_channel_free(c);
  return rc == 0 && procs[1].result == MP_ERETIRED ? 0 : 1;
}
