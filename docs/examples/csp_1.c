/* csp_1.c - a pipeline of three processes over two channels: a source
 * writes 1..5, a doubler doubles them, the main process prints them; the
 * source retires when done, and the retirement travels down the pipe. */
#include <multiproc.h>
#include <stdio.h>

static int source(void *arg) {
  mp_channel_end *out = arg;
  for (int i = 1; i <= 5; i++)
    if (mp_channel_write(out, &i, sizeof i, MP_FOREVER) != 0)
      return 1;
  return MP_ERETIRED; /* the process network retires `out` */
}

typedef struct pair {
  mp_channel_end *in, *out;
} pair;

static int doubler(void *arg) {
  pair *p = arg;
  for (;;) {
    int v;
    ssize_t n = mp_channel_read(p->in, &v, sizeof v, MP_FOREVER);
    if (n < 0)
      return (int)n; /* MP_ERETIRED: passed on to p->out */
    v *= 2;
    int rc = mp_channel_write(p->out, &v, sizeof v, MP_FOREVER);
    if (rc != 0)
      return rc;
  }
}

int main(void) {
  mp_channel *a, *b;
  mp_channel_end *a_w, *a_r, *b_w, *b_r;
  if (mp_channel_new(&a, NULL) || mp_channel_new(&b, NULL) ||
      mp_channel_writer(a, &a_w) || mp_channel_reader(a, &a_r) ||
      mp_channel_writer(b, &b_w) || mp_channel_reader(b, &b_r))
    return 1;
  pair d = {a_r, b_w};
  mp_csp_process procs[] = {
      {.fn = source, .arg = a_w, MP_CSP_ENDS(a_w)},
      {.fn = doubler, .arg = &d, MP_CSP_ENDS(a_r, b_w)},
  };
  mp_csp_network *net;
  if (mp_csp_spawn(&net, procs, 2) != 0)
    return 1;
  int v;
  while (mp_channel_read(b_r, &v, sizeof v, MP_FOREVER) >= 0)
    printf("%d\n", v); /* 2 4 6 8 10, then MP_ERETIRED ends the loop */
  mp_csp_network_free(net); /* joins */
  mp_channel_end_free(a_w);
  mp_channel_end_free(a_r);
  mp_channel_end_free(b_w);
  mp_channel_end_free(b_r);
  mp_channel_free(a);
  mp_channel_free(b);
  return 0;
}
