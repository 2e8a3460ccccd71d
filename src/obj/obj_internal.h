/* obj_internal.h - what the files of src/obj/ share: the layout of an
 * mp_obj, the internal kinds the pickle decoder uses while it works, a
 * growable byte buffer, and the UTF-8 check.
 *
 * DESIGN. A value owns its children (a tree). A dict keeps its pairs in an
 * array in insertion order; a deleted pair leaves a hole (key NULL) that a
 * later growth compacts away. Dicts of more than MP__DICT_LINEAR pairs also
 * keep an open-addressing index of pair positions (a power of two in size,
 * at most half full), rebuilt whenever the pairs array is compacted or
 * grows; a probe steps over positions whose pair is a hole. */
#ifndef MP_OBJ_INTERNAL_H
#define MP_OBJ_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "multiproc/obj.h"

/* MP__OBJ_REF is a decoder-only kind: a reference to a memo entry that is
 * resolved into a copy when the pickle has been read (pickle.c). */
#define MP__OBJ_REF 100

/* Flags. */
#define MP__OBJ_BUSY 0x01 /* being copied (cycle detection, pickle.c) */
#define MP__OBJ_CTOR 0x02 /* a GLOBAL the decoder knows how to apply */
#define MP__OBJ_CTORONLY 0x04 /* such a GLOBAL the allow-list refused:
                               * only a REDUCE may use it */

typedef struct mp__dict_entry {
  mp_obj *key; /* NULL: a hole left by a deletion */
  mp_obj *value;
  int64_t hash;
} mp__dict_entry;

#define MP__DICT_LINEAR 8

struct mp_obj {
  uint8_t type;  /* mp_obj_type or MP__OBJ_REF */
  uint8_t flags; /* MP__OBJ_* */
  uint32_t depth; /* decoder only: height of the tree below (0: a leaf) */
  union {
    int64_t i; /* BOOL (0/1) and INT */
    double f;
    struct {
      char *p; /* STR: followed by a NUL */
      size_t len;
    } s;
    struct {
      mp_obj **items;
      size_t len, cap;
    } seq;
    struct {
      mp__dict_entry *entries;
      size_t n;    /* entries used, holes included */
      size_t used; /* live pairs */
      size_t cap;
      uint32_t *index; /* entry position + 1; 0 empty; NULL when small */
      size_t index_cap;
    } d;
    struct {
      char *module, *qualname;
    } g;
    struct {
      mp_obj *callable, *args, *state;
      int newobj;
    } inst;
    struct {
      mp_obj *target; /* borrowed: the memo entry */
    } ref;
  } u;
};

/* A new value of kind type with zeroed payload, or NULL (detail left). */
mp_obj *mp__obj_alloc(int type);
/* Dict insertion that hands back what it would free instead of freeing
 * it: *old the value it replaces, *dup the new key when an equal key was
 * kept (both NULL when the key was new). The decoder keeps them alive
 * until it finishes: a memo entry may point at them. Ownership of key and
 * value is taken on success and on failure (freed then). */
int mp__dict_set_keep(mp_obj *dict, mp_obj *key, mp_obj *value,
                      mp_obj **old, mp_obj **dup);
/* Hashable check with a detail: 0 or MP_EINVAL "unhashable type: 'list'". */
int mp__obj_check_hashable(const mp_obj *o);

/* UTF-8 as Python's strict codec accepts it: true when valid. */
bool mp__utf8_valid(const char *s, size_t len);

/* ---- a growable buffer --------------------------------------------------
 * Zeroed, it starts empty and allocates as it grows. It may instead start
 * on storage of the caller's (p, cap, borrowed set; a stack array): the
 * first growth past it moves the bytes to the heap and clears borrowed,
 * so a short result costs no allocation. Whoever frees p checks borrowed. */
typedef struct mp__buf {
  char *p;
  size_t len, cap;
  bool failed;   /* an allocation failed: everything after it is dropped */
  bool borrowed; /* p is the caller's storage, not the heap */
} mp__buf;

bool mp__buf_grow(mp__buf *b, size_t extra);

static inline void mp__buf_put(mp__buf *b, const void *data, size_t n) {
  if (b->cap - b->len < n && !mp__buf_grow(b, n))
    return;
  if (n > 0)
    memcpy(b->p + b->len, data, n);
  b->len += n;
}

static inline void mp__buf_byte(mp__buf *b, uint8_t c) {
  if (b->cap == b->len && !mp__buf_grow(b, 1))
    return;
  b->p[b->len++] = (char)c;
}

static inline void mp__buf_str(mp__buf *b, const char *s) {
  mp__buf_put(b, s, strlen(s));
}

/* mp__pickle_dump_into appends the pickle of o (as mp_pickle_dumps
 * writes it) to b, after the b->len bytes already there. Returns 0 or what
 * mp_pickle_dumps returns; on failure b->len is back where it was. */
int mp__pickle_dump_into(const mp_obj *o, mp__buf *b,
                         const mp_pickle_dump_opts *opts);

/* Python's repr of o appended to b (repr.c). */
void mp__obj_repr_into(mp__buf *b, const mp_obj *o);

#endif
