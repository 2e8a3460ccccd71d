/* manager/pyarray.c - reading a Python array.array sent as a value: the
 * two forms a pickle holds (array.array(typecode, list), which the C
 * server writes, and array._array_reconstructor(array.array, typecode,
 * machine_format, bytes), which Python 3 writes) become a plain list of
 * ints or floats. Plain data only: nothing is imported or called. Used by
 * the server (a Python client's `a[0:2] = array('i', [8, 9])`) and by the
 * client (a Python server's Array). */
#include <stdint.h>
#include <string.h>

#include "manager/manager_internal.h"

int mp__mgr_is_pyarray(const mp_obj *v) {
  const char *mod, *name;
  if (mp_obj_type_of(v) != MP_OBJ_INSTANCE || mp_obj_global_name(v, &mod, &name) != 0)
    return 0;
  return strcmp(mod, "array") == 0 &&
         (strcmp(name, "array") == 0 || strcmp(name, "_array_reconstructor") == 0);
}

/* bytes per item of each machine format code */
static const uint8_t width[] = {1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8, 4, 4, 8, 8};

/* item reads the element at p of machine format code mf (Python's
 * arraymodule.c enum: 0/1 8-bit, 2-5 16-bit, 6-9 32-bit, 10-13 64-bit,
 * unsigned then signed, little then big endian; 14/15 float, 16/17
 * double). */
static mp_obj *item(const uint8_t *p, int mf) {
  size_t w = width[mf];
  int big = mf >= 2 && (mf % 2) == 1;
  uint64_t u = 0;
  for (size_t i = 0; i < w; i++) u |= (uint64_t)p[big ? i : w - 1 - i] << (8 * (w - 1 - i));
  if (mf == 14 || mf == 15) {
    float f;
    uint32_t b = (uint32_t)u;
    memcpy(&f, &b, 4);
    return mp_obj_float(f);
  }
  if (mf == 16 || mf == 17) {
    double d;
    memcpy(&d, &u, 8);
    return mp_obj_float(d);
  }
  int is_signed = mf == 1 || (mf >= 2 && ((mf - 2) / 2) % 2 == 1);
  if (!is_signed) {
    if (u > INT64_MAX) return NULL; /* beyond the 64-bit ints of mp_obj */
    return mp_obj_int((int64_t)u);
  }
  if (w < 8 && (u >> (8 * w - 1)) & 1) u |= ~0ull << (8 * w); /* sign-extend */
  return mp_obj_int((int64_t)u);
}

/* from_bytes reads len bytes of machine format mf as a new list. */
static int from_bytes(int64_t mf, const void *bytes, size_t len, mp_obj **out) {
  if (mf < 0 || mf > 17)
    return mp__fail(MP_EINVAL, "array machine format %lld is not a number format",
                    (long long)mf);
  size_t w = width[mf];
  if (len % w) return mp__fail(MP_EINVAL, "array bytes are not a whole number of items");
  mp_obj *r = mp_obj_list();
  for (size_t i = 0; r && i < len / w; i++) {
    mp_obj *x = item((const uint8_t *)bytes + i * w, (int)mf);
    if (!x || mp_obj_list_append(r, x)) {
      mp_obj_free(r);
      return x ? MP_ENOMEM : mp__fail(MP_EOVERFLOW, "array item beyond 64 bits");
    }
  }
  return (*out = r) ? 0 : MP_ENOMEM;
}

/* native_format: the machine format of typecode tc on this host (x86-64
 * and other LP64 little-endian Linux: long is 64-bit), or -1. */
static int native_format(const char *tc) {
  static const char codes[] = "bBhHiIlLqQfd";
  static const int le[] = {1, 0, 4, 2, 8, 6, 12, 10, 12, 10, 14, 16};
  const char *p = tc && tc[0] && !tc[1] ? strchr(codes, tc[0]) : NULL;
  if (!p) return -1;
  int f = le[p - codes];
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  if (f >= 2) f += 1;
#endif
  if ((tc[0] == 'l' || tc[0] == 'L') && sizeof(long) == 4) f -= 4;
  return f;
}

int mp__mgr_pyarray_items(const mp_obj *v, mp_obj **out) {
  if (!mp__mgr_is_pyarray(v)) return mp__fail(MP_EINVAL, "not an array.array");
  const char *name;
  mp_obj_global_name(v, NULL, &name);
  mp_obj *args = mp_obj_instance_args(v);
  ssize_t n = args ? mp_obj_len(args) : -1;
  if (strcmp(name, "array") == 0) {
    mp_obj *l = n >= 2 ? mp_obj_list_get(args, 1) : NULL;
    mp_obj_type t = mp_obj_type_of(l);
    if (n == 1) return (*out = mp_obj_list()) ? 0 : MP_ENOMEM;
    const char *tc = NULL;
    if (t == MP_OBJ_BYTES && mp_obj_get_str(mp_obj_list_get(args, 0), &tc, NULL) == 0) {
      /* array.array(typecode, machine bytes), as Python pickles it too */
      const void *b;
      size_t len;
      mp_obj_get_bytes(l, &b, &len);
      int f = native_format(tc);
      if (f < 0) return mp__fail(MP_EINVAL, "array typecode '%s' is not a number type", tc);
      return from_bytes(f, b, len, out);
    }
    if (t != MP_OBJ_LIST && t != MP_OBJ_TUPLE)
      return mp__fail(MP_EINVAL, "array.array(typecode, items): items is a %s",
                      mp_obj_type_name(l));
    mp_obj *r = mp_obj_list();
    for (ssize_t i = 0; r && i < mp_obj_len(l); i++)
      if (mp_obj_list_append(r, mp_obj_copy(mp_obj_list_get(l, i)))) {
        mp_obj_free(r);
        return MP_ENOMEM;
      }
    return (*out = r) ? 0 : MP_ENOMEM;
  }
  int64_t mf = -1;
  const void *bytes = NULL;
  size_t len = 0;
  if (n != 4 || mp_obj_get_int(mp_obj_list_get(args, 2), &mf) != 0 ||
      mp_obj_get_bytes(mp_obj_list_get(args, 3), &bytes, &len) != 0)
    return mp__fail(MP_EINVAL, "_array_reconstructor needs (cls, typecode, mformat, bytes)");
  return from_bytes(mf, bytes, len, out);
}
