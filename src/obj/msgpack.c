/* msgpack.c - the MessagePack codec of mp_obj, through msgpack-c: for
 * C-to-C messages and other languages. None is nil, bool, int (int 64 /
 * uint 64), float (float 64; float 32 is read too), str, bytes (bin), list
 * and tuple both as arrays (arrays read back as lists, or as tuples when
 * they are map keys, so they can be hashed), dict as a map. GLOBAL and
 * INSTANCE have no MessagePack form.
 *
 * Before msgpack-c sees the input, a flat scan checks that every announced
 * length and element count fits in the bytes that remain: msgpack-c
 * allocates an array's slots from its announced count, so without the scan
 * a five-byte message could ask it for gigabytes. The scan also refuses
 * (MP_ETOOBIG) more than 32 nested arrays and maps, the most msgpack-c reads
 * (MSGPACK_EMBED_STACK_SIZE), which it would report as out of memory. */
#include <msgpack.h>
#include <stdlib.h>

#include "obj_internal.h"

/* ---- encoder ---------------------------------------------------------------- */

typedef struct penc {
  msgpack_packer pk;
  mp__buf b;
  size_t max_depth;
} penc;

static int buf_write(void *data, const char *p, size_t n) {
  mp__buf *b = data;
  mp__buf_put(b, p, n);
  return b->failed ? -1 : 0;
}

static int pack(penc *e, const mp_obj *o, size_t depth) {
  msgpack_packer *pk = &e->pk;
  int rc = 0;
  if (o == NULL)
    return mp__fail(MP_EINVAL, "msgpack: a NULL value inside");
  if (depth > e->max_depth)
    return mp__fail(MP_ETOOBIG, "value nested deeper than %zu (max_depth)",
                    e->max_depth);
  switch (o->type) {
  case MP_OBJ_NONE:
    msgpack_pack_nil(pk);
    break;
  case MP_OBJ_BOOL:
    if (o->u.i)
      msgpack_pack_true(pk);
    else
      msgpack_pack_false(pk);
    break;
  case MP_OBJ_INT:
    msgpack_pack_int64(pk, o->u.i);
    break;
  case MP_OBJ_FLOAT:
    msgpack_pack_double(pk, o->u.f);
    break;
  case MP_OBJ_STR:
    msgpack_pack_str_with_body(pk, o->u.s.p, o->u.s.len);
    break;
  case MP_OBJ_BYTES:
    msgpack_pack_bin_with_body(pk, o->u.s.p, o->u.s.len);
    break;
  case MP_OBJ_LIST:
  case MP_OBJ_TUPLE:
    if (o->u.seq.len > UINT32_MAX)
      return mp__fail(MP_ETOOBIG, "msgpack: array of more than 2**32 items");
    msgpack_pack_array(pk, o->u.seq.len);
    for (size_t i = 0; i < o->u.seq.len && rc == 0; i++)
      rc = pack(e, o->u.seq.items[i], depth + 1);
    break;
  case MP_OBJ_DICT:
    if (o->u.d.used > UINT32_MAX)
      return mp__fail(MP_ETOOBIG, "msgpack: map of more than 2**32 pairs");
    msgpack_pack_map(pk, o->u.d.used);
    for (size_t i = 0; i < o->u.d.n && rc == 0; i++) {
      const mp__dict_entry *en = &o->u.d.entries[i];
      if (en->key == NULL)
        continue;
      rc = pack(e, en->key, depth + 1);
      if (rc == 0)
        rc = pack(e, en->value, depth + 1);
    }
    break;
  default:
    return mp__fail(MP_ENOTSUP, "msgpack: a %s has no MessagePack form "
                                "(use pickle)",
                    mp_obj_type_name(o));
  }
  return rc;
}

int mp_msgpack_packb(const mp_obj *o, void **out, size_t *len,
                     const mp_msgpack_opts *opts) {
  if (o == NULL || out == NULL || len == NULL)
    return mp__fail(MP_EINVAL, "msgpack packb: NULL argument");
  penc e;
  memset(&e, 0, sizeof e);
  e.max_depth = opts && opts->max_depth ? opts->max_depth
                                        : MP_PICKLE_DEFAULT_DEPTH;
  msgpack_packer_init(&e.pk, &e.b, buf_write);
  int rc = pack(&e, o, 0);
  if (rc == 0 && (e.b.failed || e.b.p == NULL))
    rc = e.b.failed ? mp__fail(MP_ENOMEM, "no memory for the message")
                    : mp__fail(MP_EINVAL, "msgpack: nothing packed");
  if (rc < 0) {
    mp__free(e.b.p);
    return rc;
  }
  *out = e.b.p;
  *len = e.b.len;
  return 0;
}

/* ---- the length scan -------------------------------------------------------- */

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* Walks one value's headers without building anything: every payload and
 * every announced element must fit in what remains. */
#define MAX_NESTING 32 /* msgpack-c's MSGPACK_EMBED_STACK_SIZE */

static int scan(const uint8_t *p, size_t len) {
  size_t pos = 0;
  uint64_t pending = 1; /* values still to read */
  uint64_t left[MAX_NESTING + 1]; /* values still to read at each level */
  int depth = 0;
  left[0] = 1;
  while (pending > 0) {
    while (left[depth] == 0)
      depth--;
    left[depth]--;
    if (pos >= len)
      return mp__fail(MP_EPROTO, "truncated MessagePack: %llu values "
                                 "announced, input ends at %zu",
                      (unsigned long long)pending, len);
    pending--;
    uint8_t t = p[pos++];
    uint64_t skip = 0, items = 0;
    int hdr = 0; /* bytes of length that follow */
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
    } else if (t >= 0x80 && t <= 0x8f) {
      items = 2u * (t & 0x0f);
    } else if (t >= 0x90 && t <= 0x9f) {
      items = t & 0x0f;
    } else if (t >= 0xa0 && t <= 0xbf) {
      skip = t & 0x1f;
    } else {
      switch (t) {
      case 0xcc: case 0xd0: skip = 1; break;
      case 0xcd: case 0xd1: skip = 2; break;
      case 0xca: case 0xce: case 0xd2: skip = 4; break;
      case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
      case 0xd4: skip = 2; break; /* fixext: type + data */
      case 0xd5: skip = 3; break;
      case 0xd6: skip = 5; break;
      case 0xd7: skip = 9; break;
      case 0xd8: skip = 17; break;
      case 0xc4: case 0xd9: hdr = 1; break;
      case 0xc5: case 0xda: case 0xdc: case 0xde: hdr = 2; break;
      case 0xc6: case 0xdb: case 0xdd: case 0xdf: hdr = 4; break;
      case 0xc7: hdr = 1; skip = 1; break; /* ext: + type byte */
      case 0xc8: hdr = 2; skip = 1; break;
      case 0xc9: hdr = 4; skip = 1; break;
      default:
        return mp__fail(MP_EPROTO, "malformed MessagePack: byte 0x%02x at "
                                   "offset %zu",
                        t, pos - 1);
      }
    }
    if (hdr > 0) {
      if (len - pos < (size_t)hdr)
        return mp__fail(MP_EPROTO, "truncated MessagePack at offset %zu",
                        pos);
      uint64_t n = be(p + pos, hdr);
      pos += (size_t)hdr;
      if (t == 0xdc || t == 0xdd)
        items = n;
      else if (t == 0xde || t == 0xdf)
        items = 2 * n;
      else
        skip += n;
    }
    if (skip > len - pos)
      return mp__fail(MP_EPROTO, "truncated MessagePack: %llu bytes "
                                 "announced at offset %zu, %zu left",
                      (unsigned long long)skip, pos, len - pos);
    pos += (size_t)skip;
    pending += items;
    if (items > 0) {
      if (depth + 1 > MAX_NESTING)
        return mp__fail(MP_ETOOBIG, "MessagePack nested deeper than %d "
                                    "(msgpack-c's limit)",
                        MAX_NESTING);
      left[++depth] = items;
    }
    /* Each pending value needs at least one byte. */
    if (pending > len - pos)
      return mp__fail(MP_EPROTO, "truncated MessagePack: %llu values "
                                 "announced at offset %zu, %zu bytes left",
                      (unsigned long long)pending, pos, len - pos);
  }
  if (pos != len)
    return mp__fail(MP_EPROTO, "malformed MessagePack: %zu bytes after the "
                               "value",
                    len - pos);
  return 0;
}

/* ---- decoder ---------------------------------------------------------------- */

typedef struct pdec {
  size_t nodes, max_nodes;
} pdec;

static int convert(pdec *d, const msgpack_object *m, bool key, mp_obj **out) {
  mp_obj *o = NULL;
  int rc = 0;
  if (++d->nodes > d->max_nodes)
    return mp__fail(MP_ETOOBIG, "MessagePack holds more than %zu values "
                                "(max_nodes)",
                    d->max_nodes);
  switch (m->type) {
  case MSGPACK_OBJECT_NIL:
    o = mp_obj_none();
    break;
  case MSGPACK_OBJECT_BOOLEAN:
    o = mp_obj_bool(m->via.boolean);
    break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    if (m->via.u64 > INT64_MAX)
      return mp__fail(MP_EOVERFLOW, "MessagePack uint %llu beyond int64",
                      (unsigned long long)m->via.u64);
    o = mp_obj_int((int64_t)m->via.u64);
    break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    o = mp_obj_int(m->via.i64);
    break;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    o = mp_obj_float(m->via.f64);
    break;
  case MSGPACK_OBJECT_STR:
    o = mp_obj_str_len(m->via.str.ptr, m->via.str.size);
    if (o == NULL && mp_error_code() == MP_EINVAL)
      return mp__fail(MP_EINVAL, "MessagePack str is not valid UTF-8");
    break;
  case MSGPACK_OBJECT_BIN:
    o = mp_obj_bytes(m->via.bin.ptr, m->via.bin.size);
    break;
  case MSGPACK_OBJECT_ARRAY: {
    mp_obj **items = NULL;
    uint32_t n = m->via.array.size;
    if (n > 0) {
      items = mp__calloc(n, sizeof *items);
      if (items == NULL)
        return mp__fail(MP_ENOMEM, "no memory for an array of %u", n);
    }
    uint32_t i = 0;
    for (; i < n && rc == 0; i++)
      rc = convert(d, &m->via.array.ptr[i], key, &items[i]);
    if (rc < 0) {
      for (uint32_t k = 0; k + 1 < i; k++)
        mp_obj_free(items[k]);
      mp__free(items);
      return rc;
    }
    o = mp__obj_alloc(key ? MP_OBJ_TUPLE : MP_OBJ_LIST);
    if (o == NULL) {
      for (uint32_t k = 0; k < n; k++)
        mp_obj_free(items[k]);
      mp__free(items);
      return MP_ENOMEM;
    }
    o->u.seq.items = items;
    o->u.seq.len = o->u.seq.cap = n;
    break;
  }
  case MSGPACK_OBJECT_MAP:
    if (key)
      return mp__fail(MP_EINVAL, "MessagePack map used as a map key: "
                                 "unhashable type: 'dict'");
    o = mp_obj_dict();
    for (uint32_t i = 0; o != NULL && i < m->via.map.size; i++) {
      mp_obj *k, *v;
      if ((rc = convert(d, &m->via.map.ptr[i].key, true, &k)) < 0)
        break;
      if ((rc = convert(d, &m->via.map.ptr[i].val, false, &v)) < 0) {
        mp_obj_free(k);
        break;
      }
      if ((rc = mp_obj_dict_set(o, k, v)) < 0)
        break;
    }
    if (rc < 0) {
      mp_obj_free(o);
      return rc;
    }
    break;
  default:
    return mp__fail(MP_EPROTO, "MessagePack ext type refused");
  }
  if (o == NULL)
    return mp_error_code() < 0 ? mp_error_code() : MP_ENOMEM;
  *out = o;
  return 0;
}

int mp_msgpack_unpackb(const void *buf, size_t len, mp_obj **out,
                       const mp_msgpack_opts *opts) {
  if (buf == NULL || out == NULL)
    return mp__fail(MP_EINVAL, "msgpack unpackb: NULL argument");
  int rc = scan(buf, len);
  if (rc < 0)
    return rc;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  msgpack_unpack_return r = msgpack_unpack_next(&u, buf, len, &off);
  if (r == MSGPACK_UNPACK_NOMEM_ERROR) {
    msgpack_unpacked_destroy(&u);
    return mp__fail(MP_ENOMEM, "no memory to unpack MessagePack");
  }
  if (r != MSGPACK_UNPACK_SUCCESS || off != len) {
    msgpack_unpacked_destroy(&u);
    return mp__fail(MP_EPROTO, "malformed MessagePack (msgpack-c: %d)",
                    (int)r);
  }
  pdec d = {0, opts && opts->max_nodes ? opts->max_nodes
                                       : MP_PICKLE_DEFAULT_NODES};
  mp_obj *o = NULL;
  rc = convert(&d, &u.data, false, &o);
  msgpack_unpacked_destroy(&u);
  if (rc < 0)
    return rc;
  *out = o;
  return 0;
}
