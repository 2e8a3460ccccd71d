/* repr.c - Python's repr() of an mp_obj, and print().
 *
 * Floats print as Python's repr does: the shortest digit string that reads
 * back as the same double, in fixed notation when the decimal exponent is
 * in -4..16 ("0.0001", "1e-05", "1000000000000000.0", "1e+16"). Strings
 * take Python's quote choice (single quotes unless the text holds a single
 * quote and no double quote) and its escapes: \\, the quote, \t \n \r,
 * \xNN / \uNNNN / \UNNNNNNNN for characters Python does not print. Which
 * non-ASCII characters Python prints comes from its Unicode database; here
 * it is glibc's iswprint in the C.UTF-8 locale with Python's extra rule that
 * separators (Zs, Zl, Zp) and format characters (Cf) are escaped, so a
 * character assigned in one Unicode version and not the other may differ. */
#define _GNU_SOURCE
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <wctype.h>

#include "obj_internal.h"

/* ---- float ---------------------------------------------------------------- */

static void repr_float(mp__buf *b, double v) {
  if (isnan(v)) {
    mp__buf_str(b, "nan");
    return;
  }
  if (isinf(v)) {
    mp__buf_str(b, v > 0 ? "inf" : "-inf");
    return;
  }
  char tmp[40];
  int prec;
  for (prec = 0; prec < 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*e", prec, v);
    if (strtod(tmp, NULL) == v)
      break;
  }
  if (prec == 17)
    snprintf(tmp, sizeof tmp, "%.16e", v);
  /* tmp: [-]d[.ddd]e[+-]XX -> sign, digits, decimal point position. */
  const char *p = tmp;
  bool neg = *p == '-';
  if (neg)
    p++;
  char digits[24];
  size_t nd = 0;
  for (; *p != 'e'; p++)
    if (*p != '.')
      digits[nd++] = *p;
  int exp10 = atoi(p + 1);
  while (nd > 1 && digits[nd - 1] == '0')
    nd--;
  int decpt = exp10 + 1;
  if (neg)
    mp__buf_byte(b, '-');
  if (decpt <= -4 || decpt > 16) {
    mp__buf_byte(b, (uint8_t)digits[0]);
    if (nd > 1) {
      mp__buf_byte(b, '.');
      mp__buf_put(b, digits + 1, nd - 1);
    }
    char e[16];
    snprintf(e, sizeof e, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    mp__buf_str(b, e);
  } else if (decpt <= 0) {
    mp__buf_str(b, "0.");
    for (int i = 0; i < -decpt; i++)
      mp__buf_byte(b, '0');
    mp__buf_put(b, digits, nd);
  } else if ((size_t)decpt >= nd) {
    mp__buf_put(b, digits, nd);
    for (size_t i = nd; i < (size_t)decpt; i++)
      mp__buf_byte(b, '0');
    mp__buf_str(b, ".0");
  } else {
    mp__buf_put(b, digits, (size_t)decpt);
    mp__buf_byte(b, '.');
    mp__buf_put(b, digits + decpt, nd - (size_t)decpt);
  }
}

/* ---- str and bytes ------------------------------------------------------- */

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void utf8_init(void) {
  utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* Separators and format characters, which Python escapes though glibc may
 * call them printable. Sorted ranges. */
static const uint32_t not_printable[][2] = {
    {0x00a0, 0x00a0},   {0x00ad, 0x00ad},   {0x0600, 0x0605},
    {0x061c, 0x061c},   {0x06dd, 0x06dd},   {0x070f, 0x070f},
    {0x0890, 0x0891},   {0x08e2, 0x08e2},   {0x1680, 0x1680},
    {0x180e, 0x180e},   {0x2000, 0x200f},   {0x2028, 0x202f},
    {0x205f, 0x2064},   {0x2066, 0x206f},   {0x3000, 0x3000},
    {0xd800, 0xf8ff},   {0xfeff, 0xfeff},   {0xfff9, 0xfffb},
    {0x110bd, 0x110bd}, {0x110cd, 0x110cd}, {0x13430, 0x1343f},
    {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0001, 0xe0001},
    {0xe0020, 0xe007f}, {0xf0000, 0x10ffff}};

static bool printable(uint32_t cp) {
  if (cp < 0x80)
    return cp >= 0x20 && cp < 0x7f;
  if (cp < 0xa0)
    return false;
  for (size_t i = 0; i < sizeof not_printable / sizeof *not_printable; i++) {
    if (cp < not_printable[i][0])
      break;
    if (cp <= not_printable[i][1])
      return false;
  }
  pthread_once(&utf8_once, utf8_init);
  if (utf8_locale == (locale_t)0)
    return true;
  return iswprint_l((wint_t)cp, utf8_locale) != 0;
}

static const char hexdig[] = "0123456789abcdef";

static void put_hex(mp__buf *b, char kind, uint32_t v, int width) {
  char t[12];
  t[0] = '\\';
  t[1] = kind;
  for (int i = 0; i < width; i++)
    t[2 + i] = hexdig[(v >> (4 * (width - 1 - i))) & 0xf];
  mp__buf_put(b, t, (size_t)width + 2);
}

static char pick_quote(const char *p, size_t n) {
  bool single = memchr(p, '\'', n) != NULL;
  bool dbl = memchr(p, '"', n) != NULL;
  return single && !dbl ? '"' : '\'';
}

static bool simple_escape(mp__buf *b, unsigned c, char quote) {
  switch (c) {
  case '\\':
    mp__buf_str(b, "\\\\");
    return true;
  case '\t':
    mp__buf_str(b, "\\t");
    return true;
  case '\n':
    mp__buf_str(b, "\\n");
    return true;
  case '\r':
    mp__buf_str(b, "\\r");
    return true;
  default:
    if (c == (unsigned char)quote) {
      mp__buf_byte(b, '\\');
      mp__buf_byte(b, (uint8_t)c);
      return true;
    }
    return false;
  }
}

static void repr_str(mp__buf *b, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  char quote = pick_quote(str, n);
  mp__buf_byte(b, (uint8_t)quote);
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      if (!simple_escape(b, c, quote)) {
        if (c < 0x20 || c == 0x7f)
          put_hex(b, 'x', c, 2);
        else
          mp__buf_byte(b, (uint8_t)c);
      }
      i++;
      continue;
    }
    /* The value was checked as UTF-8 when it was made. */
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    if (len > n - i)
      len = n - i;
    uint32_t cp = c & (0xff >> (len + 1));
    for (size_t k = 1; k < len; k++)
      cp = (cp << 6) | (s[i + k] & 0x3f);
    if (printable(cp))
      mp__buf_put(b, s + i, len);
    else if (cp < 0x100)
      put_hex(b, 'x', cp, 2);
    else if (cp < 0x10000)
      put_hex(b, 'u', cp, 4);
    else
      put_hex(b, 'U', cp, 8);
    i += len;
  }
  mp__buf_byte(b, (uint8_t)quote);
}

static void repr_bytes(mp__buf *b, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  char quote = pick_quote(str, n);
  mp__buf_byte(b, 'b');
  mp__buf_byte(b, (uint8_t)quote);
  for (size_t i = 0; i < n; i++) {
    unsigned c = s[i];
    if (simple_escape(b, c, quote))
      continue;
    if (c < 0x20 || c >= 0x7f)
      put_hex(b, 'x', c, 2);
    else
      mp__buf_byte(b, (uint8_t)c);
  }
  mp__buf_byte(b, (uint8_t)quote);
}

/* ---- containers ---------------------------------------------------------- */

static void repr_items(mp__buf *b, const mp_obj *o) {
  for (size_t i = 0; i < o->u.seq.len; i++) {
    if (i > 0)
      mp__buf_str(b, ", ");
    mp__obj_repr_into(b, o->u.seq.items[i]);
  }
}

void mp__obj_repr_into(mp__buf *b, const mp_obj *o) {
  char tmp[32];
  if (b->failed)
    return;
  switch (o->type) {
  case MP_OBJ_NONE:
    mp__buf_str(b, "None");
    break;
  case MP_OBJ_BOOL:
    mp__buf_str(b, o->u.i ? "True" : "False");
    break;
  case MP_OBJ_INT:
    snprintf(tmp, sizeof tmp, "%lld", (long long)o->u.i);
    mp__buf_str(b, tmp);
    break;
  case MP_OBJ_FLOAT:
    repr_float(b, o->u.f);
    break;
  case MP_OBJ_STR:
    repr_str(b, o->u.s.p, o->u.s.len);
    break;
  case MP_OBJ_BYTES:
    repr_bytes(b, o->u.s.p, o->u.s.len);
    break;
  case MP_OBJ_LIST:
    mp__buf_byte(b, '[');
    repr_items(b, o);
    mp__buf_byte(b, ']');
    break;
  case MP_OBJ_TUPLE:
    mp__buf_byte(b, '(');
    repr_items(b, o);
    if (o->u.seq.len == 1)
      mp__buf_byte(b, ',');
    mp__buf_byte(b, ')');
    break;
  case MP_OBJ_DICT: {
    mp__buf_byte(b, '{');
    bool first = true;
    for (size_t i = 0; i < o->u.d.n; i++) {
      const mp__dict_entry *e = &o->u.d.entries[i];
      if (e->key == NULL)
        continue;
      if (!first)
        mp__buf_str(b, ", ");
      first = false;
      mp__obj_repr_into(b, e->key);
      mp__buf_str(b, ": ");
      mp__obj_repr_into(b, e->value);
    }
    mp__buf_byte(b, '}');
    break;
  }
  case MP_OBJ_GLOBAL:
    mp__buf_str(b, o->u.g.module);
    mp__buf_byte(b, '.');
    mp__buf_str(b, o->u.g.qualname);
    break;
  case MP_OBJ_INSTANCE: {
    const mp_obj *g = o->u.inst.callable;
    if (strcmp(g->u.g.module, "builtins") != 0) {
      mp__buf_str(b, g->u.g.module);
      mp__buf_byte(b, '.');
    }
    mp__buf_str(b, g->u.g.qualname);
    mp__buf_byte(b, '(');
    repr_items(b, o->u.inst.args);
    mp__buf_byte(b, ')');
    if (o->u.inst.state != NULL) {
      mp__buf_str(b, " with state ");
      mp__obj_repr_into(b, o->u.inst.state);
    }
    break;
  }
  default:
    mp__buf_str(b, "<reference>");
    break;
  }
}

char *mp_obj_repr(const mp_obj *o) {
  if (o == NULL) {
    mp__fail(MP_EINVAL, "repr of NULL");
    return NULL;
  }
  mp__buf b = {0};
  mp__obj_repr_into(&b, o);
  mp__buf_byte(&b, '\0');
  if (b.failed) {
    mp__free(b.p);
    mp__fail(MP_ENOMEM, "no memory for a repr");
    return NULL;
  }
  return b.p;
}

int mp_obj_print(FILE *f, const mp_obj *o) {
  if (f == NULL || o == NULL)
    return mp__fail(MP_EINVAL, "print: NULL %s", f == NULL ? "file" : "value");
  int w;
  if (o->type == MP_OBJ_STR) {
    w = fwrite(o->u.s.p, 1, o->u.s.len, f) == o->u.s.len ? 0 : -1;
  } else {
    char *s = mp_obj_repr(o);
    if (s == NULL)
      return MP_ENOMEM;
    w = fputs(s, f) < 0 ? -1 : 0;
    mp__free(s);
  }
  if (w < 0 || fputc('\n', f) == EOF)
    return mp__fail(MP_EIO, "print: write failed");
  return 0;
}
