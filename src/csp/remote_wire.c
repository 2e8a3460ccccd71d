/* remote_wire.c - the message format of channels across hosts: encoding
 * and checking the request and reply frames described in
 * remote_internal.h. Everything a peer sends is checked here before use:
 * magic, version, op, flags, lengths against the channel's msg_max, and
 * result codes against the short list a server may send. */
#include <math.h>
#include <string.h>

#include "remote_internal.h"

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

void mp__csp_wire_req_encode(uint8_t *hdr, uint32_t op, uint32_t arg,
                             double timeout) {
  hdr[0] = CSP_WIRE_REQ_MAGIC;
  hdr[1] = CSP_WIRE_VERSION;
  hdr[2] = (uint8_t)op;
  hdr[3] = 0;
  put_u32(hdr + 4, arg);
  uint64_t bits;
  memcpy(&bits, &timeout, sizeof bits);
  put_u32(hdr + 8, (uint32_t)bits);
  put_u32(hdr + 12, (uint32_t)(bits >> 32));
}

void mp__csp_wire_rep_encode(uint8_t *hdr, uint32_t op, int32_t rc) {
  hdr[0] = CSP_WIRE_REP_MAGIC;
  hdr[1] = CSP_WIRE_VERSION;
  hdr[2] = (uint8_t)op;
  hdr[3] = 0;
  put_u32(hdr + 4, (uint32_t)rc);
}

int mp__csp_wire_req_decode(const uint8_t *buf, size_t len, uint32_t msg_max,
                            csp_wire_req *out) {
  if (buf == NULL || len < CSP_WIRE_REQ_HDR)
    return mp__fail(MP_EPROTO, "request of %zu bytes is shorter than its "
                               "header",
                    len);
  if (buf[0] != CSP_WIRE_REQ_MAGIC || buf[1] != CSP_WIRE_VERSION)
    return mp__fail(MP_EPROTO, "not a channel request (magic %u, version "
                               "%u)",
                    buf[0], buf[1]);
  if (buf[3] != 0)
    return mp__fail(MP_EPROTO, "request flags %u are not 0", buf[3]);
  uint32_t op = buf[2], arg = get_u32(buf + 4);
  uint64_t bits = (uint64_t)get_u32(buf + 8) | (uint64_t)get_u32(buf + 12)
                                                   << 32;
  double timeout;
  memcpy(&timeout, &bits, sizeof timeout);
  if (isnan(timeout))
    return mp__fail(MP_EPROTO, "request timeout is NaN");
  size_t plen = len - CSP_WIRE_REQ_HDR;
  switch (op) {
  case CSP_OP_HELLO:
    if (arg > CSP_JOIN_WRITER)
      return mp__fail(MP_EPROTO, "hello joins unknown kind %u", arg);
    break;
  case CSP_OP_READ:
  case CSP_OP_POISON:
  case CSP_OP_RETIRE:
  case CSP_OP_STATS:
    break;
  case CSP_OP_WRITE:
    if (plen > msg_max)
      return mp__fail(MP_EPROTO, "write of %zu bytes, msg_max is %u", plen,
                      msg_max);
    break;
  default:
    return mp__fail(MP_EPROTO, "unknown request op %u", op);
  }
  if (op != CSP_OP_WRITE && plen != 0)
    return mp__fail(MP_EPROTO, "request op %u carries %zu payload bytes", op,
                    plen);
  if (op != CSP_OP_HELLO && op != CSP_OP_READ && arg != 0)
    return mp__fail(MP_EPROTO, "request op %u has argument %u", op, arg);
  out->op = op;
  out->arg = arg;
  out->timeout = timeout;
  out->payload = buf + CSP_WIRE_REQ_HDR;
  out->payload_len = plen;
  return 0;
}

bool mp__csp_wire_code_ok(int32_t rc) {
  switch (rc) {
  case MP_EAGAIN:
  case MP_ETIMEDOUT:
  case MP_EPOISONED:
  case MP_ERETIRED:
  case MP_ETOOBIG:
  case MP_EINVAL:
  case MP_ENOSPC:
  case MP_ENOMEM:
  case MP_EPROTO:
    return true;
  default:
    return rc >= 0;
  }
}

int mp__csp_wire_rep_decode(const uint8_t *buf, size_t len, uint32_t op,
                            size_t cap, csp_wire_rep *out) {
  if (buf == NULL || len < CSP_WIRE_REP_HDR)
    return mp__fail(MP_EPROTO, "reply of %zu bytes is shorter than its "
                               "header",
                    len);
  if (buf[0] != CSP_WIRE_REP_MAGIC || buf[1] != CSP_WIRE_VERSION ||
      buf[3] != 0)
    return mp__fail(MP_EPROTO, "not a channel reply");
  if (buf[2] != op)
    return mp__fail(MP_EPROTO, "reply to op %u where op %u was asked",
                    buf[2], op);
  int32_t rc = (int32_t)get_u32(buf + 4);
  if (!mp__csp_wire_code_ok(rc))
    return mp__fail(MP_EPROTO, "reply code %d is not one a server sends",
                    (int)rc);
  size_t plen = len - CSP_WIRE_REP_HDR, want = 0;
  if (rc >= 0) {
    if (op == CSP_OP_READ) {
      if ((size_t)rc > cap)
        return mp__fail(MP_EPROTO, "read reply of %d bytes over the %zu "
                                   "asked for",
                        (int)rc, cap);
      want = (size_t)rc;
    } else if (op == CSP_OP_HELLO) {
      want = 8;
    } else if (op == CSP_OP_STATS) {
      want = 24;
    } else if (rc != 0) {
      return mp__fail(MP_EPROTO, "reply code %d to op %u", (int)rc, op);
    }
  }
  if (plen != want)
    return mp__fail(MP_EPROTO, "reply payload of %zu bytes, %zu expected",
                    plen, want);
  out->op = op;
  out->rc = rc;
  out->payload = buf + CSP_WIRE_REP_HDR;
  out->payload_len = plen;
  return 0;
}

uint32_t mp__csp_wire_u32(const uint8_t *p) { return get_u32(p); }
void mp__csp_wire_put_u32(uint8_t *p, uint32_t v) { put_u32(p, v); }
