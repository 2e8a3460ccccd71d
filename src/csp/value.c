/* value.c - dynamic values on a channel: the thin layer over the byte
 * channel that sends an mp_obj pickled (protocol 4, as mp_queue_put_obj
 * does) and decodes what arrives with the decoder's default limits (plain
 * data only: nothing is imported or called). */
#include <stdlib.h>

#include "csp_internal.h"
#include "multiproc/obj.h"

int mp_channel_write_obj(mp_channel_end *w, const mp_obj *o, double timeout) {
  int rc = mp__csp_end_check(w, CSP_END_WRITER);
  if (rc != 0)
    return rc;
  void *buf;
  size_t len;
  if ((rc = mp_pickle_dumps(o, &buf, &len, NULL)) < 0)
    return rc;
  rc = mp_channel_write(w, buf, len, timeout);
  free(buf);
  return rc;
}

int mp_channel_read_obj(mp_channel_end *r, mp_obj **out, double timeout) {
  int rc = mp__csp_end_check(r, CSP_END_READER);
  if (rc != 0)
    return rc;
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  size_t cap = r->ch->msg_max;
  void *buf = mp__alloc(cap > 0 ? cap : 1);
  if (buf == NULL)
    return MP_ENOMEM;
  ssize_t n = mp_channel_read(r, buf, cap, timeout);
  if (n >= 0)
    rc = mp_pickle_loads(buf, (size_t)n, out, NULL);
  else
    rc = (int)n;
  mp__free(buf);
  return rc;
}
