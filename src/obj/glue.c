/* glue.c - values on the library's channels: Python's conn.send/recv
 * (pickle on a Connection), a MessagePack variant for C-to-C, put and get
 * of a value on an mp_queue, and a ShareableList item as a value. Built on
 * the public connection, queue and ShareableList APIs and the codecs. */
#include <stdlib.h>

#include "obj_internal.h"

/* The largest message mp_connection_recv accepts by default. */
#define DEFAULT_MAX_MESSAGE ((size_t)64 << 20)

/* A message up to this long is received into the stack and decoded from
 * there: no allocation for the buffer of a small message. */
#define SMALL_MESSAGE 1024

typedef int (*decode_fn)(const void *buf, size_t len, mp_obj **out,
                         const void *opts);

static int decode_pickle(const void *buf, size_t len, mp_obj **out,
                         const void *opts) {
  return mp_pickle_loads(buf, len, out, opts);
}

static int decode_msgpack(const void *buf, size_t len, mp_obj **out,
                          const void *opts) {
  (void)opts;
  return mp_msgpack_unpackb(buf, len, out, NULL);
}

/* recv_decoded receives one message of at most maxlength bytes on c and
 * decodes it: a small one from a stack buffer, a larger one from a buffer
 * allocated for it. A message over maxlength stays unread (MP_ETOOBIG). */
static int recv_decoded(mp_connection *c, mp_obj **out, size_t maxlength,
                        decode_fn decode, const void *opts) {
  unsigned char small[SMALL_MESSAGE];
  size_t len = 0;
  int rc = mp_connection_recv_bytes(
      c, small, maxlength < sizeof small ? maxlength : sizeof small, &len);
  if (rc == 0)
    return decode(small, len, out, opts);
  if (rc != MP_ETOOBIG || len > maxlength)
    return rc;
  void *buf;
  rc = mp_connection_recv_bytes_alloc(c, &buf, &len, maxlength);
  if (rc < 0)
    return rc;
  rc = decode(buf, len, out, opts);
  free(buf);
  return rc;
}

int mp_connection_send(mp_connection *c, const mp_obj *o) {
  if (c == NULL)
    return mp__fail(MP_EINVAL, "send: NULL connection");
  /* A small pickle is written on the stack and sent from there: no
   * allocation; a larger one moves to the heap as it grows. */
  char small[SMALL_MESSAGE];
  mp__buf b = {.p = small, .cap = sizeof small, .borrowed = true};
  int rc = mp__pickle_dump_into(o, &b, NULL);
  if (rc == 0)
    rc = mp_connection_send_bytes(c, b.p, 0, b.len);
  if (!b.borrowed)
    mp__free(b.p);
  return rc;
}

int mp_connection_recv_ex(mp_connection *c, mp_obj **out, size_t maxlength,
                          const mp_pickle_load_opts *opts) {
  if (c == NULL || out == NULL)
    return mp__fail(MP_EINVAL, "recv: NULL %s",
                    c == NULL ? "connection" : "out");
  return recv_decoded(c, out, maxlength, decode_pickle, opts);
}

int mp_connection_recv(mp_connection *c, mp_obj **out) {
  return mp_connection_recv_ex(c, out, DEFAULT_MAX_MESSAGE, NULL);
}

int mp_connection_send_msgpack(mp_connection *c, const mp_obj *o) {
  void *buf;
  size_t len;
  if (c == NULL)
    return mp__fail(MP_EINVAL, "send: NULL connection");
  int rc = mp_msgpack_packb(o, &buf, &len, NULL);
  if (rc < 0)
    return rc;
  rc = mp_connection_send_bytes(c, buf, 0, len);
  free(buf);
  return rc;
}

int mp_connection_recv_msgpack(mp_connection *c, mp_obj **out) {
  if (c == NULL || out == NULL)
    return mp__fail(MP_EINVAL, "recv: NULL %s",
                    c == NULL ? "connection" : "out");
  return recv_decoded(c, out, DEFAULT_MAX_MESSAGE, decode_msgpack, NULL);
}

int mp_queue_put_obj(mp_queue *q, const mp_obj *o, double timeout) {
  if (q == NULL)
    return mp__fail(MP_EINVAL, "put: NULL queue");
  char small[SMALL_MESSAGE];
  mp__buf b = {.p = small, .cap = sizeof small, .borrowed = true};
  int rc = mp__pickle_dump_into(o, &b, NULL);
  if (rc == 0)
    rc = mp_queue_put(q, b.p, b.len, timeout);
  if (!b.borrowed)
    mp__free(b.p);
  return rc;
}

int mp_queue_get_obj(mp_queue *q, mp_obj **out, double timeout) {
  mp_queue_msg msg;
  if (q == NULL || out == NULL)
    return mp__fail(MP_EINVAL, "get: NULL %s", q == NULL ? "queue" : "out");
  memset(&msg, 0, sizeof msg);
  int rc = mp_queue_get_msg(q, &msg, timeout);
  if (rc < 0)
    return rc;
  rc = mp_pickle_loads(msg.data, msg.len, out, NULL);
  mp_queue_msg_release(&msg);
  return rc;
}

int mp_shareable_list_get_obj(mp_shareable_list *sl, ssize_t index,
                              mp_obj **out) {
  mp_shareable_item it;
  char small[256];
  char *buf = small;
  size_t cap = sizeof small;
  if (sl == NULL || out == NULL)
    return mp__fail(MP_EINVAL, "shareable_list_get_obj: NULL %s",
                    sl == NULL ? "list" : "out");
  int rc = mp_shareable_list_get(sl, index, &it, buf, cap);
  if (rc == MP_ETOOBIG) {
    cap = it.len + 1;
    buf = mp__alloc(cap);
    if (buf == NULL)
      return mp__fail(MP_ENOMEM, "no memory for a %zu-byte item", it.len);
    rc = mp_shareable_list_get(sl, index, &it, buf, cap);
  }
  mp_obj *o = NULL;
  if (rc == 0) {
    switch (it.type) {
    case MP_SHAREABLE_NONE:
      o = mp_obj_none();
      break;
    case MP_SHAREABLE_INT:
      o = mp_obj_int(it.i);
      break;
    case MP_SHAREABLE_FLOAT:
      o = mp_obj_float(it.f);
      break;
    case MP_SHAREABLE_BOOL:
      o = mp_obj_bool((int)it.i);
      break;
    case MP_SHAREABLE_STR:
      o = mp_obj_str_len(it.data, it.len);
      break;
    case MP_SHAREABLE_BYTES:
      o = mp_obj_bytes(it.data, it.len);
      break;
    default:
      rc = mp__fail(MP_ECORRUPT, "shareable list item of unknown type %d",
                    (int)it.type);
    }
    if (rc == 0 && o == NULL)
      rc = mp_error_code() < 0 ? mp_error_code() : MP_ENOMEM;
  }
  if (buf != small)
    mp__free(buf);
  if (rc == 0)
    *out = o;
  return rc;
}
