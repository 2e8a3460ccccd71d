/* fuzz_frame.c - libFuzzer target for the connection frame reader: the
 * input is what a peer sends on a stream (length headers, short and long
 * forms, payloads, truncations). It is written into one end of a socket
 * pair, which is then shut for writing, and the other end receives
 * messages with mp_connection_recv_bytes_alloc (a 64 KiB limit, as a
 * program reading an untrusted peer passes) and with a small fixed buffer
 * (refused messages stay and are then read whole), until the stream ends
 * or breaks. Every outcome must be a message or an error code: never a
 * crash, a hang, an allocation of an announced length, or a leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <multiproc.h>

#define LIMIT 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* More than a socket buffer would block the write: not a new case. */
  if (size > 100000)
    return 0;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return 0;
  int sz = 1 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
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
  for (int i = 0; i < 10000; i++) {
    void *msg = NULL;
    size_t len = 0;
    int rc;
    if (i % 2 == 0) {
      rc = mp_connection_recv_bytes_alloc(c, &msg, &len, LIMIT);
      if (rc == 0)
        free(msg);
    } else {
      unsigned char buf[64];
      rc = mp_connection_recv_bytes(c, buf, sizeof buf, &len);
      if (rc == MP_ETOOBIG && len <= LIMIT) {
        rc = mp_connection_recv_bytes_alloc(c, &msg, &len, LIMIT);
        if (rc == 0)
          free(msg);
      }
    }
    if (rc != 0 && rc != MP_ETOOBIG)
      break;
    if (rc == MP_ETOOBIG)
      break; /* over the limit: a program would close the connection */
  }
  mp_connection_free(c);
  close(sv[0]);
  return 0;
}
