/* manager_1.c - a dict on a manager, changed by a child, read by the
 * parent; an atomic add; the server shut down as `with Manager()` ends. */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>

static mp_proxy *d;

static int child(void *arg) {
  (void)arg;
  /* d['from child'] = [1, 2.5, None] */
  mp_obj *v = mp_obj_list_pack(3, mp_obj_int(1), mp_obj_float(2.5), mp_obj_none());
  if (mp_proxy_setitem(d, mp_obj_str("from child"), v) != 0) return 1;
  /* d['count'] += 1, in one request: no lost update */
  return mp_proxy_add(d, mp_obj_str("count"), mp_obj_int(1), NULL) != 0;
}

int main(void) {
  mp_manager *m;
  int rc = mp_manager_start(&m, NULL); /* Manager() */
  if (rc) {
    fprintf(stderr, "%s\n", mp_error_message(rc));
    return 1;
  }
  mp_manager_dict(m, &d);
  mp_proxy_setitem(d, mp_obj_str("count"), mp_obj_int(0));
  mp_process *p;
  mp_process_new(&p, child, NULL, NULL);
  mp_process_start(p);
  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);

  char *s;
  mp_proxy_repr(d, &s);
  printf("%s\n", s); /* {'count': 1, 'from child': [1, 2.5, None]} */
  free(s);
  mp_obj *v;
  if (mp_proxy_getitem(d, mp_obj_str("missing"), &v) == MP_ENOENT)
    printf("%s\n", mp_error_detail()); /* KeyError('missing') */
  mp_proxy_free(d);
  mp_manager_free(m); /* shuts the server down */
  return 0;
}
