/* csp_2.c - a choice: wait for whichever of two channels has a message,
 * or give up after half a second. */
#include <multiproc.h>
#include <stdio.h>

int wait_either(mp_channel_end *left, mp_channel_end *right) {
  char a[64], b[64];
  mp_guard g[] = {
      MP_GUARD_IN(left, a, sizeof a),
      MP_GUARD_IN(right, b, sizeof b),
      MP_GUARD_TIMEOUT_S(0.5),
  };
  int i = mp_alt_select(g, 3);
  if (i == 0)
    printf("left: %.*s\n", (int)g[0].received, a);
  else if (i == 1)
    printf("right: %.*s\n", (int)g[1].received, b);
  else if (i == 2)
    printf("nothing within 0.5 s\n");
  else
    printf("choice failed: %s\n", mp_strerror(i)); /* poisoned, retired */
  return i;
}

int main(void) {
  mp_channel *c, *d;
  mp_channel_end *cr, *cw, *dr;
  if (mp_channel_new(&c, &(mp_channel_opts){.buffer = 1}) ||
      mp_channel_new(&d, NULL) || mp_channel_reader(c, &cr) ||
      mp_channel_writer(c, &cw) || mp_channel_reader(d, &dr))
    return 1;
  mp_channel_write(cw, "hello", 5, 0); /* buffered: returns at once */
  wait_either(cr, dr);                  /* left: hello */
  wait_either(cr, dr);                  /* nothing within 0.5 s */
  mp_channel_end_free(cr);
  mp_channel_end_free(cw);
  mp_channel_end_free(dr);
  mp_channel_free(c);
  mp_channel_free(d);
  return 0;
}
