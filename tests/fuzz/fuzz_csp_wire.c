/* fuzz_csp_wire.c - the decoders of channels across hosts, fed by the
 * fuzzer: the server's request decoder (what any authenticated client may
 * send) and the client's reply decoder (what a server may answer). The
 * first input byte picks the msg_max the server checks against (low 5
 * bits, times 64), the capacity (low 5 bits) and the op (high 3 bits) the
 * client expects; the rest is the frame.
 *
 * The rule: whatever arrives, a decoder returns 0 with lengths that lie
 * inside the frame and within the limits, or MP_EPROTO; never a crash or
 * an out-of-bounds read (ASan). */
#include <stdint.h>
#include <stdlib.h>

#include "csp/remote_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t sel = data[0];
  const uint8_t *frame = data + 1;
  size_t len = size - 1;
  uint32_t msg_max = (uint32_t)(sel & 0x1f) * 64;
  csp_wire_req q;
  int rc = mp__csp_wire_req_decode(frame, len, msg_max, &q);
  if (rc == 0) {
    if (q.payload != frame + CSP_WIRE_REQ_HDR ||
        q.payload_len != len - CSP_WIRE_REQ_HDR || q.payload_len > msg_max ||
        q.op < CSP_OP_HELLO || q.op > CSP_OP_STATS || q.timeout != q.timeout)
      abort();
  } else if (rc != MP_EPROTO) {
    abort();
  }
  uint32_t op = 1 + (uint32_t)(sel >> 5) % 6;
  size_t cap = (size_t)(sel & 0x1f);
  csp_wire_rep p;
  rc = mp__csp_wire_rep_decode(frame, len, op, cap, &p);
  if (rc == 0) {
    if (p.payload != frame + CSP_WIRE_REP_HDR ||
        p.payload_len != len - CSP_WIRE_REP_HDR ||
        !mp__csp_wire_code_ok(p.rc) ||
        (op == CSP_OP_READ && p.rc >= 0 && p.payload_len > cap))
      abort();
  } else if (rc != MP_EPROTO) {
    abort();
  }
  return 0;
}
