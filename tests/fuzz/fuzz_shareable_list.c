/* fuzz_shareable_list.c - a ShareableList block (Python's layout) written
 * by another program: either a list we made and then scribbled on, or a
 * whole block of the fuzzer's bytes (the seeds include blocks written by
 * Python's ShareableList). Opened with mp_shareable_list_open and used
 * through every call; the block is also scribbled on while a handle that
 * already checked its header uses it (the block may change at any time).
 *
 * Input: mode (1 byte). Mode even: item count and items, the scribble,
 * operations. Mode odd: the rest of the input is the block. */
#include "fuzz_common.h"

static void use(mp_shareable_list *sl, fz_reader *r, void *block, size_t size) {
  static unsigned char buf[4096];
  char fmt[8192];
  size_t n = mp_shareable_list_len(sl);
  for (size_t i = 0; i < n && i < 64; i++) {
    mp_shareable_item it;
    int rc = fz_rc(mp_shareable_list_get(sl, (ssize_t)i, &it, buf, sizeof buf),
                   "get");
    if (rc == 0 && (it.type == MP_SHAREABLE_STR || it.type == MP_SHAREABLE_BYTES))
      fz_check(it.len <= sizeof buf && it.data == buf);
  }
  ssize_t f = mp_shareable_list_format(sl, fmt, sizeof fmt);
  fz_rc(f < 0 ? f : 0, "format");
  fz_check(f < 0 || (size_t)f < sizeof fmt);
  unsigned ops = 0;
  while (r->left > 0 && ops++ < 32) {
    uint8_t op = fz_u8(r);
    ssize_t idx = (int8_t)fz_u8(r);
    mp_shareable_item it;
    char s[40];
    switch (op % 7) {
    case 0:
      fz_rc(mp_shareable_list_get(sl, idx, &it, buf, fz_u8(r)), "get");
      break;
    case 1:
      it = mp_shareable_int((int64_t)fz_u32(r) << 16);
      fz_rc(mp_shareable_list_set(sl, idx, &it), "set int");
      break;
    case 2: {
      size_t len = fz_u8(r) % sizeof s;
      memset(s, 'a' + op % 26, len);
      s[len] = '\0';
      it = mp_shareable_str(s);
      fz_rc(mp_shareable_list_set(sl, idx, &it), "set str");
      break;
    }
    case 3:
      it = mp_shareable_none();
      fz_rc(mp_shareable_list_set(sl, idx, &it), "set none");
      break;
    case 4: {
      it = mp_shareable_int(fz_u8(r));
      ssize_t c = mp_shareable_list_count(sl, &it);
      fz_rc(c < 0 ? c : 0, "count");
      fz_check(c <= (ssize_t)n);
      ssize_t x = mp_shareable_list_index(sl, &it);
      fz_rc(x < 0 ? x : 0, "index");
      fz_check(x < (ssize_t)n);
      break;
    }
    case 5:
      fz_scribble(r, block, size);
      break;
    default: {
      it = mp_shareable_bytes("b\0c", 3);
      fz_rc(mp_shareable_list_set(sl, idx, &it), "set bytes");
      ssize_t c = mp_shareable_list_count(sl, &it);
      fz_rc(c < 0 ? c : 0, "count bytes");
    }
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_reader r = {data, size};
  uint8_t mode = fz_u8(&r);
  char name[64];
  snprintf(name, sizeof name, "fz%d-sl", (int)getpid());
  mp_shared_memory_opts untracked = {.untracked = 1};

  if (mode & 1) {
    /* The block is the input. */
    size_t len = r.left;
    if (len == 0)
      return 0;
    mp_shared_memory *shm = NULL;
    if (mp_shared_memory_new(&shm, name, len, &untracked) != 0)
      return 0;
    memcpy(mp_shared_memory_buf(shm), r.p, len);
    fz_reader none = {NULL, 0};
    mp_shareable_list *sl = NULL;
    int rc = fz_rc(mp_shareable_list_open(&sl, name), "open");
    if (rc == 0)
      use(sl, &none, mp_shared_memory_buf(shm), len);
    else
      fz_check(sl == NULL);
    mp_shareable_list_free(sl);
    mp_shared_memory_unlink(shm);
    mp_shared_memory_free(shm);
    return 0;
  }

  /* A list we made, then written over by someone else. */
  static char strs[16][24];
  mp_shareable_item items[16];
  size_t n = fz_u8(&r) % 16;
  for (size_t i = 0; i < n; i++) {
    uint8_t t = fz_u8(&r);
    switch (t % 6) {
    case 0: items[i] = mp_shareable_none(); break;
    case 1: items[i] = mp_shareable_int((int8_t)t); break;
    case 2: items[i] = mp_shareable_float(t / 3.0); break;
    case 3: items[i] = mp_shareable_bool(t & 8); break;
    case 4:
      snprintf(strs[i], sizeof strs[i], "%.*s", (int)(t % 20),
               "abcdefghijklmnopqrstuvwxyz");
      items[i] = mp_shareable_str(strs[i]);
      break;
    default:
      items[i] = mp_shareable_bytes("\0\1\2\3\4\5\6\7\10\11", t % 10);
    }
  }
  mp_shareable_list *mine = NULL;
  if (mp_shareable_list_new(&mine, items, n, name, &untracked) != 0)
    return 0;
  mp_shared_memory *shm = mp_shareable_list_shm(mine);
  void *block = mp_shared_memory_buf(shm);
  size_t bsize = mp_shared_memory_size(shm);
  fz_scribble(&r, block, bsize);
  mp_shareable_list *other = NULL;
  int rc = fz_rc(mp_shareable_list_open(&other, name), "open");
  if (rc == 0)
    use(other, &r, block, bsize);
  /* The creator's handle checked the header before the scribble. */
  use(mine, &r, block, bsize);
  mp_shareable_list_free(other);
  mp_shared_memory_unlink(shm);
  mp_shareable_list_free(mine);
  return 0;
}
