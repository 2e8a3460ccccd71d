/* shareable_list.c - ShareableList in Python's exact layout
 * (multiprocessing.shared_memory.ShareableList), so that a list created by
 * Python is read and changed here and the reverse.
 *
 * DESIGN
 * The block, all integers native-endian 64-bit, as Python's struct "q":
 *     0           N, the number of items
 *     8           N + 1 slot offsets, relative to the data area; offset 0
 *                 is 0 and slot i spans [off[i], off[i+1])
 *     (N+2)*8     the data area: each slot holds its item packed with
 *                 the slot's struct format
 *     D+off[N]    N formats of 8 bytes each, NUL-padded: "q" (int), "d"
 *                 (float), "xxxxxxx?" (bool: byte 7), "xxxxxx?x" (None),
 *                 "<n>s" (str or bytes, NUL-padded to n)
 *     then        N type codes of one byte: 0 int/float/bool, 1 str,
 *                 2 bytes, 3 None
 * Slots are 8 bytes, or for str and bytes the value's length rounded up to
 * the next multiple of 8 (always at least one NUL after it).
 *
 * Python's bugs not copied. (1) Python sizes a str slot from its length in
 * characters, so a non-ASCII string is silently truncated when packed; we
 * size slots in UTF-8 bytes. (2) Python reads "<n>s" values with trailing
 * NULs stripped, so bytes ending in NUL come back shorter. We write a str
 * or bytes value with the format "<len>s<pad>x" (for example "5s3x"),
 * which Python's struct reads as the same slot holding exactly len bytes;
 * Python, writing into such a slot, goes back to its own "<n>s". Values
 * written by Python have no recorded length, and we strip their trailing
 * NULs as Python does. When "<len>s<pad>x" does not fit in 8 characters
 * (values of 100000 bytes or more) we write Python's form too.
 *
 * Untrusted: the block can be changed by any program at any time. On open,
 * N and the offsets are read once, checked against the block's size, and
 * kept in this process (Python does the same); every later access reads
 * the slot's format and code once, checks them against the slot's bounds,
 * and only then touches the slot. A torn read (another process writing the
 * item meanwhile, as in Python there is no lock) can give a wrong value or
 * MP_ECORRUPT, never an access outside the block. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define FMT_LEN 8
#define SLOT_ALIGN 8
#define SLOT_MAX 9999999 /* "9999999s" */

enum { CODE_PLAIN = 0, CODE_STR = 1, CODE_BYTES = 2, CODE_NONE = 3 };

struct mp_shareable_list {
  mp_shared_memory *shm;
  unsigned char *buf;
  size_t size;
  size_t count;
  uint64_t *offsets; /* count + 1, checked, process-local */
  size_t data_start;
  size_t formats_start;
  size_t codes_start;
};

/* ---- small helpers ------------------------------------------------------- */
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, sizeof v); }

/* a + b, or false when it overflows. */
static bool add_ok(size_t a, size_t b, size_t *out) {
  if (a > SIZE_MAX - b)
    return false;
  *out = a + b;
  return true;
}

static bool utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len)
      return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    /* No overlong forms, no surrogates, nothing past U+10FFFF. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

static bool item_is_text(mp_shareable_type t) {
  return t == MP_SHAREABLE_STR || t == MP_SHAREABLE_BYTES;
}

static int item_check(const mp_shareable_item *it) {
  if (it == NULL)
    return MP_EINVAL;
  switch (it->type) {
  case MP_SHAREABLE_NONE:
  case MP_SHAREABLE_INT:
  case MP_SHAREABLE_FLOAT:
  case MP_SHAREABLE_BOOL:
    return 0;
  case MP_SHAREABLE_STR:
  case MP_SHAREABLE_BYTES:
    if (it->data == NULL && it->len > 0)
      return MP_EINVAL;
    if (it->type == MP_SHAREABLE_STR && !utf8_valid(it->data, it->len))
      return MP_EINVAL;
    return 0;
  default:
    return MP_EINVAL;
  }
}

/* The slot a new item needs, as Python: 8, or len rounded up to the next
 * multiple of 8 (strictly more than len). */
static bool slot_size_for(const mp_shareable_item *it, size_t *out) {
  if (!item_is_text(it->type)) {
    *out = SLOT_ALIGN;
    return true;
  }
  /* Python's limit: the slot's format "<n>s" must fit in 8 characters. */
  if (it->len >= SLOT_MAX)
    return false;
  *out = SLOT_ALIGN * (it->len / SLOT_ALIGN + 1);
  return *out <= SLOT_MAX;
}

/* ---- formats ------------------------------------------------------------- */
typedef struct slot_format {
  mp_shareable_type kind; /* STR means "str or bytes": the code decides */
  size_t need;            /* bytes the format covers */
  size_t len;             /* text: bytes of value */
  bool exact;             /* text: len is exact (else strip NULs) */
} slot_format;

/* Parses a decimal count at *p; advances. */
static bool parse_count(const char **p, size_t *out) {
  const char *s = *p;
  size_t v = 0;
  if (*s < '0' || *s > '9')
    return false;
  while (*s >= '0' && *s <= '9') {
    size_t d = (size_t)(*s - '0');
    if (v > (SIZE_MAX - d) / 10)
      return false;
    v = v * 10 + d;
    s++;
  }
  *p = s;
  *out = v;
  return true;
}

/* Parses one slot's 8 format bytes (read once by the caller). */
static int parse_format(const unsigned char raw[FMT_LEN], slot_format *f) {
  char s[FMT_LEN + 1];
  memcpy(s, raw, FMT_LEN);
  s[FMT_LEN] = '\0';
  /* Python strips trailing NULs; a NUL inside would end the format. */
  size_t n = strlen(s);
  for (size_t i = n; i < FMT_LEN; i++)
    if (s[i] != '\0')
      return MP_ECORRUPT;
  memset(f, 0, sizeof *f);
  if (strcmp(s, "q") == 0) {
    f->kind = MP_SHAREABLE_INT;
    f->need = 8;
  } else if (strcmp(s, "d") == 0) {
    f->kind = MP_SHAREABLE_FLOAT;
    f->need = 8;
  } else if (strcmp(s, "xxxxxxx?") == 0) {
    f->kind = MP_SHAREABLE_BOOL;
    f->need = 8;
  } else if (strcmp(s, "xxxxxx?x") == 0) {
    f->kind = MP_SHAREABLE_NONE;
    f->need = 8;
  } else {
    const char *p = s;
    size_t len, pad = 0;
    if (!parse_count(&p, &len) || *p++ != 's')
      return MP_ECORRUPT;
    if (*p != '\0') {
      if (!parse_count(&p, &pad) || *p++ != 'x' || *p != '\0')
        return MP_ECORRUPT;
      f->exact = true;
    }
    if (!add_ok(len, pad, &f->need))
      return MP_ECORRUPT;
    f->kind = MP_SHAREABLE_STR;
    f->len = len;
  }
  return 0;
}

/* Writes the format for a text value of len bytes in a slot of slot bytes:
 * exact "<len>s<pad>x" when it fits in 8 characters, else Python's
 * "<slot>s", else "<len>s" (both read back with trailing NULs stripped).
 * Returns false when no form fits (len of 10^8 bytes or more). */
static bool text_format(char out[FMT_LEN], size_t len, size_t slot) {
  char s[48];
  int n = snprintf(s, sizeof s, "%zus%zux", len, slot - len);
  if (n < 0 || n > FMT_LEN)
    n = snprintf(s, sizeof s, "%zus", slot);
  if (n < 0 || n > FMT_LEN)
    n = snprintf(s, sizeof s, "%zus", len);
  if (n < 0 || n > FMT_LEN)
    return false;
  memset(out, 0, FMT_LEN);
  memcpy(out, s, (size_t)n);
  return true;
}

/* ---- reading one slot ---------------------------------------------------- */
typedef struct slot_view {
  mp_shareable_type type;
  int64_t i;
  double f;
  const unsigned char *text; /* in the block */
  size_t len;
} slot_view;

static int resolve_index(const mp_shareable_list *sl, ssize_t index,
                         size_t *out) {
  if (index < 0) {
    size_t back = (size_t)(-(index + 1)) + 1;
    if (back > sl->count)
      return MP_ERANGE;
    *out = sl->count - back;
  } else {
    if ((size_t)index >= sl->count)
      return MP_ERANGE;
    *out = (size_t)index;
  }
  return 0;
}

static int read_slot(const mp_shareable_list *sl, size_t i, slot_view *v) {
  unsigned char raw[FMT_LEN];
  memcpy(raw, sl->buf + sl->formats_start + i * FMT_LEN, FMT_LEN);
  int code = (signed char)sl->buf[sl->codes_start + i];
  slot_format f;
  int rc = parse_format(raw, &f);
  if (rc != 0)
    return rc;
  size_t start = sl->data_start + (size_t)sl->offsets[i];
  size_t slot = (size_t)(sl->offsets[i + 1] - sl->offsets[i]);
  if (f.need > slot)
    return MP_ECORRUPT;
  const unsigned char *p = sl->buf + start;
  memset(v, 0, sizeof *v);
  switch (f.kind) {
  case MP_SHAREABLE_INT:
    if (code != CODE_PLAIN)
      return MP_ECORRUPT;
    v->type = MP_SHAREABLE_INT;
    v->i = (int64_t)get_u64(p);
    break;
  case MP_SHAREABLE_FLOAT: {
    if (code != CODE_PLAIN)
      return MP_ECORRUPT;
    uint64_t bits = get_u64(p);
    v->type = MP_SHAREABLE_FLOAT;
    memcpy(&v->f, &bits, sizeof v->f);
    break;
  }
  case MP_SHAREABLE_BOOL:
    if (code != CODE_PLAIN)
      return MP_ECORRUPT;
    v->type = MP_SHAREABLE_BOOL;
    v->i = p[7] != 0;
    break;
  case MP_SHAREABLE_NONE:
    if (code != CODE_NONE)
      return MP_ECORRUPT;
    v->type = MP_SHAREABLE_NONE;
    break;
  default:
    if (code != CODE_STR && code != CODE_BYTES)
      return MP_ECORRUPT;
    v->type = code == CODE_STR ? MP_SHAREABLE_STR : MP_SHAREABLE_BYTES;
    v->text = p;
    v->len = f.len;
    if (!f.exact)
      while (v->len > 0 && p[v->len - 1] == '\0')
        v->len--;
    break;
  }
  return 0;
}

/* ---- writing one slot ---------------------------------------------------- */
static int write_slot(mp_shareable_list *sl, size_t i,
                      const mp_shareable_item *it) {
  size_t start = sl->data_start + (size_t)sl->offsets[i];
  size_t slot = (size_t)(sl->offsets[i + 1] - sl->offsets[i]);
  unsigned char *p = sl->buf + start;
  char fmt[FMT_LEN];
  int code = CODE_PLAIN;
  memset(fmt, 0, sizeof fmt);
  if (item_is_text(it->type)) {
    if (it->len > slot)
      return MP_ETOOBIG; /* Python: "exceeds available storage" */
    if (!text_format(fmt, it->len, slot))
      return MP_ETOOBIG;
    code = it->type == MP_SHAREABLE_STR ? CODE_STR : CODE_BYTES;
  } else if (it->type == MP_SHAREABLE_INT) {
    memcpy(fmt, "q", 1);
  } else if (it->type == MP_SHAREABLE_FLOAT) {
    memcpy(fmt, "d", 1);
  } else if (it->type == MP_SHAREABLE_BOOL) {
    memcpy(fmt, "xxxxxxx?", 8);
  } else {
    memcpy(fmt, "xxxxxx?x", 8);
    code = CODE_NONE;
  }
  /* Format and code first, then the value, in Python's order. */
  memcpy(sl->buf + sl->formats_start + i * FMT_LEN, fmt, FMT_LEN);
  sl->buf[sl->codes_start + i] = (unsigned char)code;
  switch (it->type) {
  case MP_SHAREABLE_INT:
    put_u64(p, (uint64_t)it->i);
    break;
  case MP_SHAREABLE_FLOAT: {
    uint64_t bits;
    memcpy(&bits, &it->f, sizeof bits);
    put_u64(p, bits);
    break;
  }
  case MP_SHAREABLE_BOOL:
    memset(p, 0, 7);
    p[7] = it->i != 0;
    break;
  case MP_SHAREABLE_NONE:
    memset(p, 0, 8);
    break;
  default:
    /* struct pads "<n>s" and "x" with NULs: the whole slot is written. */
    if (it->len > 0)
      memcpy(p, it->data, it->len);
    memset(p + it->len, 0, slot - it->len);
    break;
  }
  return 0;
}

/* ---- construction -------------------------------------------------------- */
/* Checks the header of a block and fills sl's layout (offsets copied). */
static int load_layout(mp_shareable_list *sl) {
  size_t size = sl->size;
  if (size < 16)
    return MP_ECORRUPT;
  uint64_t n = get_u64(sl->buf);
  /* Each item needs at least 8 (offset) + 8 (slot) + 8 (format) + 1
   * (code) bytes; this also keeps the sums below from overflowing. */
  if (n > (size - 16) / 25)
    return MP_ECORRUPT;
  size_t count = (size_t)n;
  size_t data_start = (count + 2) * 8;
  uint64_t *off = mp__alloc((count + 1) * sizeof *off);
  if (off == NULL)
    return MP_ENOMEM;
  memcpy(off, sl->buf + 8, (count + 1) * sizeof *off);
  int rc = 0;
  if (off[0] != 0)
    rc = MP_ECORRUPT;
  for (size_t i = 0; rc == 0 && i < count; i++)
    if (off[i + 1] < off[i] || off[i + 1] - off[i] < SLOT_ALIGN ||
        off[i + 1] > size)
      rc = MP_ECORRUPT;
  size_t formats_start = 0, codes_start = 0, end = 0;
  if (rc == 0 &&
      !(add_ok(data_start, (size_t)off[count], &formats_start) &&
        add_ok(formats_start, count * FMT_LEN, &codes_start) &&
        add_ok(codes_start, count, &end) && end <= size))
    rc = MP_ECORRUPT;
  if (rc != 0) {
    mp__free(off);
    return rc;
  }
  sl->count = count;
  sl->offsets = off;
  sl->data_start = data_start;
  sl->formats_start = formats_start;
  sl->codes_start = codes_start;
  return 0;
}

int mp_shareable_list_new(mp_shareable_list **out,
                          const mp_shareable_item *items, size_t count,
                          const char *name,
                          const mp_shared_memory_opts *opts) {
  if (out == NULL || (items == NULL && count > 0))
    return MP_EINVAL;
  int rc;
  size_t data = 0;
  for (size_t i = 0; i < count; i++) {
    if ((rc = item_check(&items[i])) != 0)
      return rc;
    size_t slot;
    if (!slot_size_for(&items[i], &slot) || !add_ok(data, slot, &data))
      return MP_EOVERFLOW;
  }
  /* 8 (N) + 8 (N+1) (offsets) + data + 8 N (formats) + N (codes). */
  size_t size;
  if (count > (SIZE_MAX - 16) / 25 ||
      !add_ok((count + 2) * 8 + count * 9, data, &size))
    return MP_EOVERFLOW;
  mp_shareable_list *sl = mp__calloc(1, sizeof *sl);
  if (sl == NULL)
    return MP_ENOMEM;
  sl->offsets = mp__alloc((count + 1) * sizeof *sl->offsets);
  if (sl->offsets == NULL) {
    mp__free(sl);
    return MP_ENOMEM;
  }
  if ((rc = mp_shared_memory_new(&sl->shm, name, size, opts)) != 0) {
    mp__free(sl->offsets);
    mp__free(sl);
    return rc;
  }
  sl->buf = mp_shared_memory_buf(sl->shm);
  sl->size = size;
  sl->count = count;
  sl->offsets[0] = 0;
  for (size_t i = 0; i < count; i++) {
    size_t slot = SLOT_ALIGN;
    (void)slot_size_for(&items[i], &slot); /* checked above */
    sl->offsets[i + 1] = sl->offsets[i] + slot;
  }
  sl->data_start = (count + 2) * 8;
  sl->formats_start = sl->data_start + (size_t)sl->offsets[count];
  sl->codes_start = sl->formats_start + count * FMT_LEN;
  put_u64(sl->buf, count);
  for (size_t i = 0; i <= count; i++)
    put_u64(sl->buf + 8 + i * 8, sl->offsets[i]);
  for (size_t i = 0; i < count; i++)
    write_slot(sl, i, &items[i]);
  *out = sl;
  return 0;
}

int mp_shareable_list_open(mp_shareable_list **out, const char *name) {
  if (out == NULL)
    return MP_EINVAL;
  mp_shareable_list *sl = mp__calloc(1, sizeof *sl);
  if (sl == NULL)
    return MP_ENOMEM;
  int rc = mp_shared_memory_open(&sl->shm, name);
  if (rc == 0) {
    sl->buf = mp_shared_memory_buf(sl->shm);
    sl->size = mp_shared_memory_size(sl->shm);
    rc = load_layout(sl);
  }
  if (rc != 0) {
    mp_shared_memory_free(sl->shm);
    mp__free(sl);
    return rc;
  }
  *out = sl;
  return 0;
}

void mp_shareable_list_free(mp_shareable_list *sl) {
  if (sl == NULL)
    return;
  mp_shared_memory_free(sl->shm);
  mp__free(sl->offsets);
  mp__free(sl);
}

mp_shared_memory *mp_shareable_list_shm(mp_shareable_list *sl) {
  return sl != NULL ? sl->shm : NULL;
}

size_t mp_shareable_list_len(const mp_shareable_list *sl) {
  return sl != NULL ? sl->count : 0;
}

/* ---- access -------------------------------------------------------------- */
int mp_shareable_list_get(mp_shareable_list *sl, ssize_t index,
                          mp_shareable_item *out, void *buf, size_t cap) {
  if (sl == NULL || out == NULL)
    return MP_EINVAL;
  size_t i;
  int rc = resolve_index(sl, index, &i);
  if (rc != 0)
    return rc;
  slot_view v;
  if ((rc = read_slot(sl, i, &v)) != 0)
    return rc;
  memset(out, 0, sizeof *out);
  out->type = v.type;
  out->i = v.i;
  out->f = v.f;
  if (!item_is_text(v.type))
    return 0;
  out->len = v.len;
  if (v.len > cap || (buf == NULL && v.len > 0))
    return MP_ETOOBIG;
  /* Copy first, then check: the slot may change under us. */
  if (v.len > 0)
    memcpy(buf, v.text, v.len);
  if (cap > v.len)
    ((unsigned char *)buf)[v.len] = '\0';
  out->data = buf;
  if (v.type == MP_SHAREABLE_STR && !utf8_valid(buf, v.len))
    return MP_ECORRUPT;
  return 0;
}

int mp_shareable_list_set(mp_shareable_list *sl, ssize_t index,
                          const mp_shareable_item *item) {
  if (sl == NULL)
    return MP_EINVAL;
  int rc = item_check(item);
  if (rc != 0)
    return rc;
  size_t i;
  if ((rc = resolve_index(sl, index, &i)) != 0)
    return rc;
  return write_slot(sl, i, item);
}

ssize_t mp_shareable_list_format(mp_shareable_list *sl, char *buf,
                                 size_t cap) {
  if (sl == NULL || (buf == NULL && cap > 0))
    return MP_EINVAL;
  size_t len = 0;
  for (size_t i = 0; i < sl->count; i++) {
    unsigned char raw[FMT_LEN];
    memcpy(raw, sl->buf + sl->formats_start + i * FMT_LEN, FMT_LEN);
    slot_format f;
    if (parse_format(raw, &f) != 0)
      return MP_ECORRUPT;
    size_t n = strnlen((const char *)raw, FMT_LEN);
    if (len + n + 1 > cap)
      return MP_ETOOBIG;
    memcpy(buf + len, raw, n);
    len += n;
  }
  if (cap == 0)
    return MP_ETOOBIG;
  buf[len] = '\0';
  return (ssize_t)len;
}

/* Python's ==: numbers compare by value across int, bool and float (an
 * int and a float exactly); None equals None; str and bytes compare by
 * their bytes and never equal each other. */
static bool equal(const slot_view *v, const mp_shareable_item *it) {
  bool v_num = v->type == MP_SHAREABLE_INT || v->type == MP_SHAREABLE_BOOL;
  bool it_num = it->type == MP_SHAREABLE_INT || it->type == MP_SHAREABLE_BOOL;
  if (v_num && it_num)
    return v->i == it->i;
  if (v->type == MP_SHAREABLE_FLOAT && it->type == MP_SHAREABLE_FLOAT)
    return v->f == it->f;
  if ((v_num && it->type == MP_SHAREABLE_FLOAT) ||
      (it_num && v->type == MP_SHAREABLE_FLOAT)) {
    double f = v_num ? it->f : v->f;
    int64_t i = v_num ? v->i : it->i;
    /* Exact: f must be integral and within int64_t. */
    if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0) ||
        f != floor(f))
      return false;
    return (int64_t)f == i;
  }
  if (v->type != it->type)
    return false;
  if (v->type == MP_SHAREABLE_NONE)
    return true;
  return v->len == it->len &&
         (v->len == 0 || memcmp(v->text, it->data, v->len) == 0);
}

static ssize_t find(mp_shareable_list *sl, const mp_shareable_item *item,
                    bool first) {
  if (sl == NULL)
    return MP_EINVAL;
  int rc = item_check(item);
  if (rc != 0)
    return rc;
  ssize_t count = 0;
  for (size_t i = 0; i < sl->count; i++) {
    slot_view v;
    if ((rc = read_slot(sl, i, &v)) != 0)
      return rc;
    if (equal(&v, item)) {
      if (first)
        return (ssize_t)i;
      count++;
    }
  }
  return first ? MP_ENOENT : count;
}

ssize_t mp_shareable_list_count(mp_shareable_list *sl,
                                const mp_shareable_item *item) {
  return find(sl, item, false);
}

ssize_t mp_shareable_list_index(mp_shareable_list *sl,
                                const mp_shareable_item *item) {
  return find(sl, item, true);
}
