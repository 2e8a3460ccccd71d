/* manager/convenience.c - shorthands over proxies for what Python writes
 * in one expression: print(proxy) (the server's repr of the referent, as
 * Python's BaseProxy.__str__) and reading a Namespace attribute as a C
 * integer (ns.x in an arithmetic expression). Built on mp_proxy_call and
 * mp_proxy_getattr only. */
#include <stdio.h>

#include "internal.h"

int mp_proxy_print(FILE *f, mp_proxy *p) {
  if (f == NULL || p == NULL)
    return mp__fail(MP_EINVAL, "print: NULL %s", f == NULL ? "file" : "proxy");
  mp_obj *r = NULL;
  int rc = mp_proxy_call(p, "__repr__", NULL, NULL, &r);
  if (rc != 0)
    return rc;
  if (mp_obj_type_of(r) != MP_OBJ_STR) {
    mp_obj_free(r);
    return mp__fail(MP_EPROTO, "__repr__ returned a %s, not a str",
                    mp_obj_type_name(r));
  }
  rc = mp_obj_print(f, r);
  mp_obj_free(r);
  return rc;
}

int mp_proxy_getattr_int(mp_proxy *p, const char *name, int64_t *out) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  mp_obj *v = NULL;
  int rc = mp_proxy_getattr(p, name, &v);
  if (rc != 0)
    return rc;
  rc = mp_obj_get_int(v, out); /* MP_EINVAL "expected int, got str" */
  mp_obj_free(v);
  return rc;
}
