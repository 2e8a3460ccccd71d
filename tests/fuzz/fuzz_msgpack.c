/* fuzz_msgpack.c - the MessagePack decoder (msgpack-c behind the length
 * scan) on hostile bytes. Whatever the bytes, mp_msgpack_unpackb returns a
 * value or one of its documented codes, never crashes, leaks or reads out
 * of bounds; a value it returns prints, re-encodes, and decodes again to
 * an equal value. Seeds: tests/fuzz/corpus/msgpack/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multiproc.h"

static void check(int cond) {
  if (!cond)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mp_obj *v = NULL;
  mp_msgpack_opts o = {.max_nodes = 1 << 16};
  int rc = mp_msgpack_unpackb(data, size, &v, &o);
  if (rc != 0) {
    check(v == NULL);
    check(rc == MP_EPROTO || rc == MP_EOVERFLOW || rc == MP_ETOOBIG ||
          rc == MP_EINVAL || rc == MP_ENOMEM);
    return 0;
  }
  char *r1 = mp_obj_repr(v);
  check(r1 != NULL);
  void *buf;
  size_t len;
  check(mp_msgpack_packb(v, &buf, &len, NULL) == 0);
  mp_obj *w = NULL;
  check(mp_msgpack_unpackb(buf, len, &w, NULL) == 0);
  char *r2 = mp_obj_repr(w);
  check(r2 != NULL && strcmp(r1, r2) == 0);
  free(r1);
  free(r2);
  free(buf);
  mp_obj_free(w);
  mp_obj_free(v);
  return 0;
}
