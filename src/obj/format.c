/* format.c - printing values as Python prints them, and Value and Array as
 * values: mp_obj_printf (Python's print("...{}...".format(x)): "{}" is
 * str(x), "{!r}" repr(x)), and the typed access that turns a Value's
 * number or an Array's elements into an mp_obj (v.value, a[:]) and back,
 * with the print(v.value) and print(a[:]) shorthands. Built on the public
 * Value and Array calls and on repr.c. */
#include <stdarg.h>
#include <stdlib.h>

#include "obj_internal.h"

/* ---- mp_obj_printf -------------------------------------------------------- */

/* str(o) appended to b: a str's own text, the repr of everything else. */
static void str_into(mp__buf *b, const mp_obj *o) {
  if (o->type == MP_OBJ_STR)
    mp__buf_put(b, o->u.s.p, o->u.s.len);
  else
    mp__obj_repr_into(b, o);
}

int mp_obj_printf(FILE *f, const char *format, ...) {
  if (f == NULL || format == NULL)
    return mp__fail(MP_EINVAL, "printf: NULL %s",
                    f == NULL ? "file" : "format");
  va_list ap;
  va_start(ap, format);
  mp__buf b = {0};
  int rc = 0;
  unsigned arg = 0;
  for (const char *s = format; *s != '\0' && rc == 0; s++) {
    if ((s[0] == '{' && s[1] == '{') || (s[0] == '}' && s[1] == '}')) {
      mp__buf_byte(&b, (uint8_t)*s++);
    } else if (s[0] == '}') {
      rc = mp__fail(MP_EINVAL, "format: single '}' at offset %zu: write "
                               "'}}' for a brace",
                    (size_t)(s - format));
    } else if (s[0] == '{') {
      bool repr = strncmp(s, "{!r}", 4) == 0;
      size_t len = repr || strncmp(s, "{!s}", 4) == 0 ? 4 : 2;
      if (len == 2 && s[1] != '}') {
        rc = mp__fail(MP_EINVAL, "format: field at offset %zu is not {}, "
                                 "{!s} or {!r}",
                      (size_t)(s - format));
        break;
      }
      const mp_obj *o = va_arg(ap, const mp_obj *);
      arg++;
      if (o == NULL) {
        /* A NULL from a failed constructor: its code is this thread's. */
        rc = mp__fail(MP_EINVAL, "format: value %u is NULL", arg);
        break;
      }
      if (repr)
        mp__obj_repr_into(&b, o);
      else
        str_into(&b, o);
      s += len - 1;
    } else {
      mp__buf_byte(&b, (uint8_t)*s);
    }
  }
  va_end(ap);
  if (rc == 0 && b.failed)
    rc = mp__fail(MP_ENOMEM, "no memory for the formatted text");
  if (rc == 0 && b.len > 0 && fwrite(b.p, 1, b.len, f) != b.len)
    rc = mp__fail(MP_EIO, "printf: write failed");
  mp__free(b.p);
  return rc;
}

/* ---- Value and Array as values ------------------------------------------ */

/* One element (size bytes at p, of typecode) as a new value. */
static int elem_obj(char typecode, const void *p, mp_obj **out) {
  mp_obj *o;
  switch (typecode) {
  case 'c':
    o = mp_obj_bytes(p, 1);
    break;
  case 'f':
    o = mp_obj_float(*(const float *)p);
    break;
  case 'd':
    o = mp_obj_float(*(const double *)p);
    break;
  case 'Q':
  case 'L': {
    unsigned long long u = typecode == 'Q' ? *(const unsigned long long *)p
                                           : *(const unsigned long *)p;
    if (u > INT64_MAX)
      return mp__fail(MP_EOVERFLOW, "%llu does not fit a 64-bit int", u);
    o = mp_obj_int((int64_t)u);
    break;
  }
  case 'b':
    o = mp_obj_int(*(const signed char *)p);
    break;
  case 'B':
    o = mp_obj_int(*(const unsigned char *)p);
    break;
  case 'h':
    o = mp_obj_int(*(const short *)p);
    break;
  case 'H':
    o = mp_obj_int(*(const unsigned short *)p);
    break;
  case 'i':
    o = mp_obj_int(*(const int *)p);
    break;
  case 'I':
    o = mp_obj_int(*(const unsigned int *)p);
    break;
  case 'l':
    o = mp_obj_int(*(const long *)p);
    break;
  case 'q':
    o = mp_obj_int(*(const long long *)p);
    break;
  default:
    return mp__fail(MP_EINVAL, "unknown typecode '%c'", typecode);
  }
  if (o == NULL)
    return mp__fail(MP_ENOMEM, "no memory for a value");
  *out = o;
  return 0;
}

int mp_value_get_obj(mp_value *v, mp_obj **out) {
  if (v == NULL || out == NULL)
    return mp__fail(MP_EINVAL, "value_get_obj: NULL %s",
                    v == NULL ? "value" : "out");
  unsigned char elem[16];
  int rc = mp_value_get(v, elem);
  if (rc < 0 && rc != MP_EOWNERDEAD)
    return rc;
  int rc2 = elem_obj(mp_value_typecode(v), elem, out);
  return rc2 != 0 ? rc2 : rc;
}

int mp_value_set_obj(mp_value *v, const mp_obj *o) {
  if (v == NULL || o == NULL)
    return mp__fail(MP_EINVAL, "value_set_obj: NULL %s",
                    v == NULL ? "value" : "value to set");
  char tc = mp_value_typecode(v);
  if (tc == 'f' || tc == 'd') {
    double d;
    int rc = mp_obj_get_float(o, &d);
    return rc != 0 ? rc : mp_value_set_double(v, d);
  }
  if (tc == 'c') {
    const void *p;
    size_t len;
    int rc = mp_obj_get_bytes(o, &p, &len);
    if (rc != 0)
      return rc;
    if (len != 1)
      return mp__fail(MP_EINVAL, "a 'c' Value holds one byte, not %zu", len);
    return mp_value_set_int(v, *(const unsigned char *)p);
  }
  int64_t i;
  int rc = mp_obj_get_int(o, &i);
  return rc != 0 ? rc : mp_value_set_int(v, i);
}

int mp_array_get_obj(mp_array *a, mp_obj **out) {
  if (a == NULL || out == NULL)
    return mp__fail(MP_EINVAL, "array_get_obj: NULL %s",
                    a == NULL ? "array" : "out");
  char tc = mp_array_typecode(a);
  size_t n = mp_array_len(a);
  ssize_t size = mp_typecode_size(tc);
  if (size <= 0)
    return mp__fail(MP_EINVAL, "unknown typecode '%c'", tc);
  unsigned char *elems = mp__alloc(n * (size_t)size + 1);
  if (elems == NULL)
    return mp__fail(MP_ENOMEM, "no memory for %zu elements", n);
  /* One copy under the lock, as a[:] does. */
  ssize_t got = mp_array_get_slice(a, 0, (ssize_t)n, elems, n);
  int rc = got < 0 && got != MP_EOWNERDEAD ? (int)got : 0;
  int dead = got == MP_EOWNERDEAD;
  mp_obj *list = NULL;
  if (rc == 0 && tc == 'c') { /* Python: an Array('c')[:] is bytes */
    list = mp_obj_bytes(elems, n);
  } else if (rc == 0) {
    list = mp_obj_list();
    for (size_t i = 0; i < n && list != NULL && rc == 0; i++) {
      mp_obj *e = NULL;
      rc = elem_obj(tc, elems + i * (size_t)size, &e);
      if (rc == 0)
        rc = mp_obj_list_append(list, e);
    }
  }
  mp__free(elems);
  if (rc == 0 && list == NULL)
    rc = mp__fail(MP_ENOMEM, "no memory for the list");
  if (rc != 0) {
    mp_obj_free(list);
    return rc;
  }
  *out = list;
  return dead ? MP_EOWNERDEAD : 0;
}

/* print(x) of a value that get made; the get's MP_EOWNERDEAD kept. */
static int print_got(FILE *f, int rc, mp_obj *o) {
  if (rc < 0 && rc != MP_EOWNERDEAD)
    return rc;
  int prc = mp_obj_print(f, o);
  mp_obj_free(o);
  return prc != 0 ? prc : rc;
}

int mp_value_print(FILE *f, mp_value *v) {
  if (f == NULL)
    return mp__fail(MP_EINVAL, "print: NULL file");
  mp_obj *o = NULL;
  int rc = mp_value_get_obj(v, &o);
  return print_got(f, rc, o);
}

int mp_array_print(FILE *f, mp_array *a) {
  if (f == NULL)
    return mp__fail(MP_EINVAL, "print: NULL file");
  mp_obj *o = NULL;
  int rc = mp_array_get_obj(a, &o);
  return print_got(f, rc, o);
}
