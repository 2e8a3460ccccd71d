/* fuzz_manager_request.c - the manager server's request path, fed by the
 * fuzzer: each input is a sequence of requests (a 2-byte little-endian
 * length, then that many bytes of pickle), run in order through the
 * decoder (with the request allow-list and limits) and the dispatcher of
 * one server, as the requests of one authenticated client would be:
 * control calls (create, incref, decref, get_methods, ...) and method calls
 * on the objects they made (idents are deterministic: 7f0000000010,
 * 7f0000000020, ...). The server is reset between inputs.
 *
 * The rule: whatever arrives, the server answers with a reply that pickles
 * (or none), never crashes, never reads or writes out of bounds (ASan),
 * never leaks (LSan), never blocks (waits time out at once here). */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "manager/manager_internal.h"
#include "multiproc.h"

static mp_manager_server *server;

static void cleanup(void) {
  mp_manager_server_free(server); /* removes the socket file */
  server = NULL;
}

static int allow_all(void *ctx, const char *module, const char *name) {
  (void)ctx;
  (void)module;
  (void)name;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!server) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/mp-fuzz-manager-%d.sock", (int)getpid());
    mp_manager_opts o = {.address = path, .authkey = "k", .authkey_len = 1,
                         .max_request = 1 << 16};
    if (mp_manager_server_new(&server, &o) != 0) abort();
    atexit(cleanup);
  }
  mp__mgr_server_reset(server);
  size_t n = 0;
  while (size - n >= 2 && n < size) {
    size_t len = (size_t)data[n] | (size_t)data[n + 1] << 8;
    n += 2;
    if (len > size - n) len = size - n;
    void *reply = NULL;
    size_t rlen = 0;
    mp__mgr_handle_request(server, data + n, len, &reply, &rlen);
    if (reply) {
      /* the reply must read back as a pickle */
      mp_obj *back = NULL;
      mp_pickle_load_opts lo = {.allow = allow_all};
      if (mp_pickle_loads(reply, rlen, &back, &lo) != 0) abort();
      mp_obj_free(back);
      free(reply);
    }
    n += len;
  }
  return 0;
}
