/* fuzz_pickle.c - the pickle decoder on hostile bytes. The first input
 * byte chooses the options (allow-list on or off, small limits), the rest
 * is the pickle. Whatever the bytes, mp_pickle_loads returns a value or
 * one of its documented codes, never crashes, leaks or reads out of
 * bounds; a value it returns prints, re-encodes under every protocol, and
 * decodes again to the same repr. Seeds: tests/fuzz/corpus/pickle/ (pickles
 * CPython wrote, under protocols 2 to 5, of plain data, the manager's
 * objects, shared and recursive values). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multiproc.h"

static int allow_all(void *ctx, const char *module, const char *name) {
  (void)ctx;
  return strcmp(module, "os") != 0 || strcmp(name, "system") != 0;
}

static void check(int cond) {
  if (!cond)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t mode = data[0];
  mp_pickle_load_opts o = {0};
  if (mode & 1) {
    o.allow = allow_all;
  }
  if (mode & 2) {
    o.max_depth = 8;
    o.max_memo = 16;
    o.max_nodes = 256;
  }
  mp_obj *v = NULL;
  int rc = mp_pickle_loads(data + 1, size - 1, &v, &o);
  if (rc != 0) {
    check(v == NULL);
    check(rc == MP_EPROTO || rc == MP_EOVERFLOW || rc == MP_ETOOBIG ||
          rc == MP_EINVAL || rc == MP_ENOMEM);
    check(mp_error_detail()[0] != '\0');
    return 0;
  }
  char *r1 = mp_obj_repr(v);
  check(r1 != NULL);
  for (int proto = 2; proto <= 5; proto++) {
    void *buf;
    size_t len;
    mp_pickle_dump_opts d = {.protocol = proto};
    check(mp_pickle_dumps(v, &buf, &len, &d) == 0);
    mp_obj *w = NULL;
    mp_pickle_load_opts o2 = {.allow = allow_all};
    int rc2 = mp_pickle_loads(buf, len, &w, &o2);
    check(rc2 == 0);
    char *r2 = mp_obj_repr(w);
    check(r2 != NULL && strcmp(r1, r2) == 0);
    free(r2);
    mp_obj_free(w);
    free(buf);
  }
  mp_obj *c = mp_obj_copy(v);
  check(c != NULL);
  free(r1);
  mp_obj_free(c);
  mp_obj_free(v);
  return 0;
}
