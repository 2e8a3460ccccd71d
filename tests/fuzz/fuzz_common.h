/* fuzz_common.h - what the shared-layout fuzz targets share: a reader over
 * the fuzzer's bytes, the scribble step (the input says where to write
 * what into a shared layout, as a hostile process of the same user could),
 * a check that a call returned one of the library's codes, and the removal
 * of the /dev/shm entries an iteration of this process left behind.
 *
 * The rule every target checks: whatever was written, each call returns an
 * error or a consistent result; never a crash, a hang (every call has
 * timeout 0 or a small one; libFuzzer's -timeout catches the rest) or an
 * out-of-bounds access (ASan). */
#ifndef MP_FUZZ_COMMON_H
#define MP_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "multiproc.h"

typedef struct fz_reader {
  const uint8_t *p;
  size_t left;
} fz_reader;

static inline uint8_t fz_u8(fz_reader *r) {
  if (r->left == 0)
    return 0;
  r->left--;
  return *r->p++;
}

static inline uint16_t fz_u16(fz_reader *r) {
  uint16_t lo = fz_u8(r);
  return (uint16_t)(lo | (uint16_t)fz_u8(r) << 8);
}

static inline uint32_t fz_u32(fz_reader *r) {
  uint32_t lo = fz_u16(r);
  return lo | (uint32_t)fz_u16(r) << 16;
}

/* fz_scribble reads a count, then that many (offset, length, bytes)
 * records, and writes each into mem[0, size) (offsets wrap). Offsets are
 * 16 bits, or 32 bits for a layout over 64 KiB. fz_scribble_except leaves
 * the bytes [keep_lo, keep_hi) alone (a part a known defect trusts). */
static inline void fz_scribble_except(fz_reader *r, void *mem, size_t size,
                                      size_t keep_lo, size_t keep_hi) {
  unsigned n = fz_u8(r) % 9;
  unsigned char *m = mem;
  for (unsigned i = 0; i < n && r->left > 0; i++) {
    size_t off = size > 65536 ? fz_u32(r) : fz_u16(r);
    off %= size;
    size_t len = fz_u8(r) % 17;
    for (size_t k = 0; k < len && off + k < size; k++) {
      uint8_t v = fz_u8(r);
      if (off + k < keep_lo || off + k >= keep_hi)
        m[off + k] = v;
    }
  }
}

static inline void fz_scribble(fz_reader *r, void *mem, size_t size) {
  fz_scribble_except(r, mem, size, 0, 0);
}

/* fz_rc: rc is 0 or one of the library's negative codes. A positive or
 * unnamed value is a broken promise: abort, so libFuzzer keeps the input. */
static inline int fz_rc(long rc, const char *what) {
  if (rc > 0 || (rc < 0 && strcmp(mp_err_name((int)rc), "MP_EUNKNOWN") == 0)) {
    fprintf(stderr, "fuzz: %s returned %ld, not a library code\n", what, rc);
    abort();
  }
  return (int)rc;
}

/* fz_check aborts when a promise the API makes is broken. */
#define fz_check(cond)                                                       \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "fuzz: %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
      abort();                                                               \
    }                                                                        \
  } while (0)

/* fz_shm_sweep unlinks an iteration's leftovers in /dev/shm: the entries
 * whose name starts with prefix (and, with tag, contains tag). */
static inline void fz_shm_sweep(const char *prefix, const char *tag) {
  DIR *d = opendir("/dev/shm");
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
      continue;
    if (tag != NULL && strstr(e->d_name, tag) == NULL)
      continue;
    char path[300];
    snprintf(path, sizeof path, "/%s", e->d_name);
    shm_unlink(path);
  }
  closedir(d);
}

/* fz_aligned returns size bytes aligned to 64, made once per site. */
static inline void *fz_aligned(size_t size) {
  void *p = NULL;
  if (posix_memalign(&p, 64, size) != 0)
    abort();
  return p;
}

#endif
