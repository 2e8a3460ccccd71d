/* fuzz_handshake_client.c - libFuzzer target for the client's side of the
 * authkey handshake: answer, then deliver (Client's order). The input is
 * everything the peer says (framed handshake messages, garbage, lengths
 * over 256, truncations), written into one end of a socket pair that is
 * then shut for writing; the handshake runs on the other end with a short
 * deadline. Every outcome must be 0, MP_EAUTH, MP_ECLOSED or
 * MP_ETIMEDOUT: never a crash, a hang, a read past the handshake or a
 * leak. The seeds (tests/fuzz/corpus/handshake_client/) are well-formed
 * peers of CPython 3.11 and 3.12+ and near misses. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <multiproc.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 60000)
    return 0;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return 0;
  size_t off = 0;
  while (off < size) {
    ssize_t n = write(sv[0], data + off, size - off);
    if (n <= 0)
      break;
    off += (size_t)n;
  }
  shutdown(sv[0], SHUT_WR);
  mp_connection *c = NULL;
  if (mp_connection_new(&c, sv[1], NULL) != 0) {
    close(sv[0]);
    close(sv[1]);
    return 0;
  }
  mp_auth_opts o = {.timeout = 0.05, .strict = size > 0 && (data[0] & 1)};
  int rc = mp_connection_answer_challenge(c, "key", 3, &o);
  if (rc == 0)
    rc = mp_connection_deliver_challenge(c, "key", 3, &o);
  if (rc != 0 && rc != MP_EAUTH && rc != MP_ECLOSED && rc != MP_ETIMEDOUT)
    abort();
  mp_connection_free(c);
  close(sv[0]);
  return 0;
}
