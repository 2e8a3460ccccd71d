/* remote_internal.h - what the files of channels across hosts share: the
 * wire format (remote_wire.c), the client's handles (remote_client.c) and
 * the choice over remote guards (remote_select.c). The server is
 * remote_server.c.
 *
 * DESIGN
 * A served channel is reached over authenticated mp_connection frames
 * (Python's handshake, then one frame per request and one per reply). A
 * client opens one connection per channel handle (the control connection:
 * poison and stats) and one per end it joins; the server runs one thread
 * per connection and joins, for each remote end, an end of its own on the
 * real channel. Every remote operation is carried out by that server
 * thread with the ordinary local calls, so the local rules (rendezvous,
 * buffering, exactly-once, poison and retire) hold unchanged: a remote
 * write is answered once a reader has the message.
 *
 * The server runs a blocking operation in slices of CSP_REMOTE_SLICE_S and
 * checks its client between slices; a slice that times out has no effect,
 * so slicing changes nothing a partner can see. A client that is gone
 * (end of stream) leaves the end: retired, or the channel poisoned when
 * the client was inside a write (the local crash rule). A client whose
 * server is gone gets MP_EPOISONED from every later call on the channel.
 *
 * Request  (client to server), little-endian:
 *   0 u8 'C'  1 u8 version (1)  2 u8 op  3 u8 flags (0)
 *   4 u32 arg (READ: capacity; HELLO: what to join: 0 control, 1 reader,
 *   2 writer)  8 f64 timeout in seconds (< 0 forever, 0 try once)
 *  16 payload: WRITE's message (at most msg_max bytes), nothing otherwise
 * Reply (server to client):
 *   0 u8 'c'  1 u8 version  2 u8 op (the request's)  3 u8 0
 *   4 i32 rc: >= 0 success (READ: the message length), < 0 an MP_E* code
 *   8 payload: READ the message (rc bytes); HELLO u32 msg_max, u32
 *     buffer; STATS six u32 (readers, writers, buffered, poisoned,
 *     readers_retired, writers_retired); nothing otherwise. */
#ifndef MP_CSP_REMOTE_INTERNAL_H
#define MP_CSP_REMOTE_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "csp_internal.h"
#include "multiproc/listener.h"

#define CSP_WIRE_VERSION 1
#define CSP_WIRE_REQ_MAGIC 0x43 /* 'C' */
#define CSP_WIRE_REP_MAGIC 0x63 /* 'c' */
#define CSP_WIRE_REQ_HDR 16
#define CSP_WIRE_REP_HDR 8

/* Ops. */
#define CSP_OP_HELLO 1
#define CSP_OP_READ 2
#define CSP_OP_WRITE 3
#define CSP_OP_POISON 4
#define CSP_OP_RETIRE 5
#define CSP_OP_STATS 6

/* What a HELLO joins. */
#define CSP_JOIN_CONTROL 0u
#define CSP_JOIN_READER 1u
#define CSP_JOIN_WRITER 2u

/* The server checks its client between slices of this many seconds. */
#define CSP_REMOTE_SLICE_S 0.05
/* A client waits this long past its own timeout for the server's answer
 * before it counts the server as gone. */
#define CSP_REMOTE_GRACE_S 5.0

typedef struct csp_wire_req {
  uint32_t op;
  uint32_t arg;
  double timeout;
  const uint8_t *payload; /* into the decoded buffer */
  size_t payload_len;
} csp_wire_req;

typedef struct csp_wire_rep {
  uint32_t op;
  int32_t rc;
  const uint8_t *payload;
  size_t payload_len;
} csp_wire_rep;

/* mp__csp_wire_req_encode writes a request header into hdr (16 bytes). */
void mp__csp_wire_req_encode(uint8_t *hdr, uint32_t op, uint32_t arg,
                             double timeout);
/* mp__csp_wire_rep_encode writes a reply header into hdr (8 bytes). */
void mp__csp_wire_rep_encode(uint8_t *hdr, uint32_t op, int32_t rc);

/* mp__csp_wire_req_decode checks the len bytes at buf as a request whose
 * WRITE message is at most msg_max bytes. Returns 0 and *out (pointing
 * into buf), or MP_EPROTO with a detail. */
int mp__csp_wire_req_decode(const uint8_t *buf, size_t len, uint32_t msg_max,
                            csp_wire_req *out);

/* mp__csp_wire_rep_decode checks the len bytes at buf as the reply to a
 * request op: magic, version, op, an rc that is a code a server may send,
 * a payload of the size op and rc call for (READ: rc bytes, at most cap).
 * Returns 0 and *out, or MP_EPROTO with a detail. */
int mp__csp_wire_rep_decode(const uint8_t *buf, size_t len, uint32_t op,
                            size_t cap, csp_wire_rep *out);

/* Little-endian u32 helpers. */
uint32_t mp__csp_wire_u32(const uint8_t *p);
void mp__csp_wire_put_u32(uint8_t *p, uint32_t v);

/* mp__csp_wire_code_ok says whether rc is a result a server may send. */
bool mp__csp_wire_code_ok(int32_t rc);

/* ---- the client (remote_client.c) ----------------------------------- */

/* A remote channel handle (mp_channel.remote). */
typedef struct csp_remote {
  char *address;
  uint8_t *key; /* NULL: no handshake */
  size_t key_len;
  mp_auth_opts auth;
  double connect_timeout;
  mp_connection *ctl; /* poison, stats */
  pthread_mutex_t mu; /* guards ctl */
  uint32_t msg_max, buffer;
  _Atomic int lost; /* the server is gone */
} csp_remote;

/* A remote end (mp_channel_end.remote). */
typedef struct csp_remote_end {
  mp_connection *conn;
  pthread_mutex_t mu; /* one operation at a time */
  uint8_t *buf;       /* request or reply: header + msg_max */
  size_t buf_cap;
  _Atomic int retired;
  _Atomic int lost;
} csp_remote_end;

/* mp__csp_remote_op runs one read (dir CSP_DIR_READ: into buf, cap bytes;
 * the length in *received) or write on the remote end e, waiting up to
 * timeout seconds (the server enforces it). Returns what the local call
 * returns, or MP_EPOISONED when the server is gone. */
int mp__csp_remote_op(mp_channel_end *e, uint32_t dir, void *buf, size_t cap,
                      const void *msg, size_t len, double timeout,
                      size_t *received);


#endif
