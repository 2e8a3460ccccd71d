/* multiproc/shared.h - shared memory, after Python's multiprocessing:
 * Value and Array (multiprocessing.sharedctypes), named SharedMemory and
 * ShareableList (multiprocessing.shared_memory), and the resource tracker
 * that removes what a dead process tree left in /dev/shm.
 *
 * Value and Array hold C numbers of one of Python's typecodes ('c', 'b',
 * 'B', 'h', 'H', 'i', 'I', 'l', 'L', 'q', 'Q', 'f', 'd', sized as the C
 * types char, signed char, unsigned char, short, unsigned short, int,
 * unsigned int, long, unsigned long, long long, unsigned long long, float
 * and double on this platform). They live in shared memory: anonymous
 * (inherited by forked children) or named ("/mp_<name>" in /dev/shm, opened
 * by name from any process), and are guarded, as in Python, by a new RLock
 * unless told otherwise. Beyond Python, the integer typecodes have
 * lock-free atomic add, exchange and compare-exchange.
 *
 * SharedMemory is a named block of bytes that Python programs open too: a
 * block called "haha" is shm_open("/haha"), exactly as Python's
 * shared_memory.SharedMemory("haha") does, with no header of ours in it.
 * ShareableList uses Python's exact layout inside such a block.
 *
 * Nothing left behind: every named object the library creates (blocks,
 * values, and the named sync objects and queues) is registered with a
 * resource tracker, a small process that unlinks the names once every
 * process of the creating tree has died, SIGKILL included. A process that
 * only attaches never registers, so it never unlinks another program's
 * block (unlike Python's tracker, CPython gh-82300). The mp-shm tool lists
 * what the trackers know and removes what dead trees left.
 *
 * Untrusted memory: a named segment can be written by any program of the
 * same user. Every size, offset, count, typecode and format read from one
 * is checked before use; a malformed segment gives MP_ECORRUPT, never a
 * crash. (One hazard no library can check: another program shrinking the
 * segment with ftruncate after it was mapped makes accesses beyond the new
 * end fault with SIGBUS, as for Python.) */
#ifndef MULTIPROC_SHARED_H
#define MULTIPROC_SHARED_H

#include <stdint.h>

#include "common.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== SharedMemory =======================================================
 * mp_shared_memory is a named block of shared memory, Python's
 * shared_memory.SharedMemory. Names follow Python's rules on POSIX: the
 * name "haha" is passed to shm_open as "/haha"; a generated name looks like
 * Python's, "psm_" and 8 hex digits. A name is 1 to
 * MP_SHARED_MEMORY_NAME_MAX bytes without '/' and is not "." or "..". */
#define MP_SHARED_MEMORY_NAME_MAX 253

typedef struct mp_shared_memory mp_shared_memory;

/* mp_shared_memory_opts are the options of mp_shared_memory_new. */
typedef struct mp_shared_memory_opts {
  int untracked; /* nonzero: do not register the new block with the
                    resource tracker (Python 3.13's track=False) */
} mp_shared_memory_opts;

/* mp_shared_memory_new creates a block of size bytes, zero-filled, under
 * name (copied), or under a generated "psm_XXXXXXXX" name when name is NULL
 * (Python's SharedMemory(create=True, size=size)). The block is registered
 * with the resource tracker unless opts->untracked. Returns 0, MP_EINVAL
 * (size 0, bad name), MP_ENAMETOOLONG, MP_EEXIST (the name is taken),
 * MP_ENOMEM, or another -errno from shm_open, ftruncate or mmap. */
MP_EXTERN int mp_shared_memory_new(mp_shared_memory **out, const char *name,
                                   size_t size,
                                   const mp_shared_memory_opts *opts);

/* mp_shared_memory_open attaches to the existing block name (Python's
 * SharedMemory(name)). Its size is the segment's size. Attaching never
 * registers the block with the tracker. Returns 0, MP_ENOENT (no such
 * block), MP_EINVAL (bad name, or the block is empty: nothing to map, as
 * Python), MP_ENAMETOOLONG, MP_EACCES, MP_ENOMEM. */
MP_EXTERN int mp_shared_memory_open(mp_shared_memory **out,
                                    const char *name);

/* mp_shared_memory_buf returns the mapped bytes (Python's buf), or NULL
 * after close. The pointer is valid until close or free. */
MP_EXTERN void *mp_shared_memory_buf(const mp_shared_memory *shm);

/* mp_shared_memory_size returns the block's size in bytes (Python's size):
 * the size asked for at creation, the segment's size when attached. */
MP_EXTERN size_t mp_shared_memory_size(const mp_shared_memory *shm);

/* mp_shared_memory_name returns the name without the leading '/' (Python's
 * name). Valid until free. */
MP_EXTERN const char *mp_shared_memory_name(const mp_shared_memory *shm);

/* mp_shared_memory_close unmaps the block from this process (Python's
 * close); the block itself stays. Idempotent; returns 0, or MP_EINVAL for
 * NULL. */
MP_EXTERN int mp_shared_memory_close(mp_shared_memory *shm);

/* mp_shared_memory_unlink removes the name (Python's unlink): processes
 * that have it mapped keep their mapping; nobody can attach any more. Any
 * process may unlink, once; if this process's tree registered the name, it
 * is unregistered. Returns 0, MP_ENOENT (already unlinked), MP_EACCES. */
MP_EXTERN int mp_shared_memory_unlink(mp_shared_memory *shm);

/* mp_shared_memory_free closes the block and frees the handle. It does not
 * unlink (as in Python); NULL is a no-op. */
MP_EXTERN void mp_shared_memory_free(mp_shared_memory *shm);

/* ==== Value and Array ====================================================
 * mp_value holds one number, mp_array a fixed number of them, of one
 * typecode. Each is a handle of this process pointing at shared memory; a
 * forked child uses its copy of the handle and frees it on its own. */
typedef struct mp_value mp_value;
typedef struct mp_array mp_array;

/* mp_value_opts are the options of the Value and Array constructors.
 * Python's lock argument maps as: lock=True (default) -> all zero, a new
 * RLock guards the object; lock=False -> raw; lock=L -> lock or rlock. */
typedef struct mp_value_opts {
  const char *name; /* NULL: anonymous, inherited across fork. Else created
                       under this name (copied; the rules of mp_sync_opts:
                       [A-Za-z0-9._-], at most MP_SYNC_NAME_MAX bytes) as
                       "/mp_<name>"; MP_EEXIST if taken. The creator's free
                       unlinks the name. */
  int raw;          /* nonzero: no lock (RawValue, RawArray) */
  mp_lock *lock;    /* borrowed: guard with this Lock, or */
  mp_rlock *rlock;  /* borrowed: with this RLock. A lent lock must be
                       inherited with the object (fork) or share its
                       mapping; such an object cannot be opened by name
                       (MP_EINVAL). */
} mp_value_opts;

/* mp_typecode_size returns the size in bytes of an element of typecode, or
 * MP_EINVAL for a typecode this library does not know. */
MP_EXTERN ssize_t mp_typecode_size(char typecode);

/* mp_value_new creates a Value (Python's Value(typecode, initial, lock)).
 * init points to one element of the C type of typecode (copied), or is
 * NULL for zero. Returns 0, MP_EINVAL (unknown typecode, both lock and
 * rlock set, raw with a lock, bad name), MP_EEXIST, MP_ENOMEM, -errno. */
MP_EXTERN int mp_value_new(mp_value **out, char typecode, const void *init,
                           const mp_value_opts *opts);
/* mp_raw_value_new is mp_value_new with no lock (Python's RawValue). */
MP_EXTERN int mp_raw_value_new(mp_value **out, char typecode,
                               const void *init, const mp_value_opts *opts);
/* mp_value_open opens the Value created under name, with its typecode and
 * lock. Returns 0, MP_ENOENT, MP_EINVAL (bad name; the creator lent it a
 * lock), MP_ECORRUPT (not a Value, or a malformed segment). */
MP_EXTERN int mp_value_open(mp_value **out, const char *name);
/* mp_value_free drops this process's handle and mapping; the creator's free
 * also unlinks the name. NULL is a no-op. */
MP_EXTERN void mp_value_free(mp_value *v);

/* mp_value_typecode returns the typecode, or 0 for NULL. */
MP_EXTERN char mp_value_typecode(const mp_value *v);
/* mp_value_get_lock returns the RLock that guards v: its own (the default)
 * or the one lent in opts->rlock. NULL for a raw value, and for one lent a
 * plain mp_lock (the lender holds that pointer). Borrowed: valid until
 * mp_value_free. */
MP_EXTERN mp_rlock *mp_value_get_lock(mp_value *v);
/* mp_value_acquire and mp_value_release take and give back the lock that
 * guards v, whatever its kind, as the lock's own calls do (including
 * MP_EOWNERDEAD). MP_EINVAL for a raw value. */
MP_EXTERN int mp_value_acquire(mp_value *v, double timeout);
MP_EXTERN int mp_value_release(mp_value *v);
/* mp_value_ptr returns the element itself (Python's get_obj()): the caller
 * does its own locking. Valid until mp_value_free. */
MP_EXTERN void *mp_value_ptr(mp_value *v);

/* mp_value_get copies the element into out (sizeof the C type);
 * mp_value_set copies it from in. Both hold the lock, if any, during the
 * copy (Python's v.value); when the caller holds it already they go on
 * without taking it again. Returns 0, MP_EINVAL, or what acquiring the lock
 * returned (MP_EOWNERDEAD: done, but check the data). */
MP_EXTERN int mp_value_get(mp_value *v, void *out);
MP_EXTERN int mp_value_set(mp_value *v, const void *in);
/* mp_value_get_int and mp_value_set_int convert to and from int64_t for
 * the integer typecodes and 'c' (a byte, 0..255). set_int refuses a value
 * the type cannot hold with MP_EOVERFLOW (Python's ctypes truncates);
 * get_int of a 'Q' above INT64_MAX is MP_EOVERFLOW (use mp_value_get).
 * 'f' and 'd' are MP_EINVAL. */
MP_EXTERN int mp_value_get_int(mp_value *v, int64_t *out);
MP_EXTERN int mp_value_set_int(mp_value *v, int64_t value);
/* mp_value_get_double and mp_value_set_double serve 'f' and 'd' (others:
 * MP_EINVAL). Setting an 'f' to a finite double beyond FLT_MAX is
 * MP_EOVERFLOW. */
MP_EXTERN int mp_value_get_double(mp_value *v, double *out);
MP_EXTERN int mp_value_set_double(mp_value *v, double value);

/* Atomic operations, beyond Python (where v.value += 1 is a race): for the
 * integer typecodes (not 'c', 'f', 'd': MP_EINVAL), lock-free, never
 * taking the lock, and safe to mix with get/set and with each other.
 * mp_value_fetch_add adds delta modulo 2^bits (as C's atomic_fetch_add)
 * and stores the previous value in *old (may be NULL). mp_value_exchange
 * stores value (MP_EOVERFLOW if it does not fit) and returns the previous
 * one in *old. mp_value_compare_exchange stores desired if the element
 * equals *expected and returns 1; otherwise it stores the element in
 * *expected and returns 0. Values of unsigned types are converted to
 * int64_t; a 'Q' above INT64_MAX comes back as its two's complement. */
MP_EXTERN int mp_value_fetch_add(mp_value *v, int64_t delta, int64_t *old);
MP_EXTERN int mp_value_exchange(mp_value *v, int64_t value, int64_t *old);
MP_EXTERN int mp_value_compare_exchange(mp_value *v, int64_t *expected,
                                        int64_t desired);

/* mp_array_new creates an Array of length elements (Python's
 * Array(typecode, size_or_initializer, lock)). init points to length
 * elements of the C type (copied), or is NULL for zeros. length may be 0.
 * Returns 0, MP_EINVAL, MP_EOVERFLOW (too big), MP_EEXIST, MP_ENOMEM. */
MP_EXTERN int mp_array_new(mp_array **out, char typecode, size_t length,
                           const void *init, const mp_value_opts *opts);
/* mp_raw_array_new is mp_array_new with no lock (Python's RawArray). */
MP_EXTERN int mp_raw_array_new(mp_array **out, char typecode, size_t length,
                               const void *init, const mp_value_opts *opts);
/* mp_array_open opens the Array created under name (errors as
 * mp_value_open). */
MP_EXTERN int mp_array_open(mp_array **out, const char *name);
MP_EXTERN void mp_array_free(mp_array *a);

MP_EXTERN char mp_array_typecode(const mp_array *a);
/* mp_array_len returns the number of elements (Python's len), or 0 for
 * NULL. */
MP_EXTERN size_t mp_array_len(const mp_array *a);
MP_EXTERN mp_rlock *mp_array_get_lock(mp_array *a);
MP_EXTERN int mp_array_acquire(mp_array *a, double timeout);
MP_EXTERN int mp_array_release(mp_array *a);
/* mp_array_ptr returns the first element (Python's get_obj()). */
MP_EXTERN void *mp_array_ptr(mp_array *a);

/* Element access as Python's a[index]: a negative index counts from the
 * end; an index out of range is MP_ERANGE (IndexError). The lock is held
 * as for mp_value_get; the conversions are those of mp_value_get_int etc. */
MP_EXTERN int mp_array_get(mp_array *a, ssize_t index, void *out);
MP_EXTERN int mp_array_set(mp_array *a, ssize_t index, const void *in);
MP_EXTERN int mp_array_get_int(mp_array *a, ssize_t index, int64_t *out);
MP_EXTERN int mp_array_set_int(mp_array *a, ssize_t index, int64_t value);
MP_EXTERN int mp_array_get_double(mp_array *a, ssize_t index, double *out);
MP_EXTERN int mp_array_set_double(mp_array *a, ssize_t index, double value);

/* mp_array_get_slice copies a[start:stop] (Python's slice rules: negative
 * bounds count from the end, bounds beyond the ends are clamped, an empty
 * slice is fine) into out, which has room for cap elements, under the lock
 * in one go. Returns the number of elements copied, or MP_ETOOBIG when cap
 * is too small (nothing copied), MP_EINVAL, or MP_EOWNERDEAD (the slice was
 * copied, but a previous holder of the lock died: check the data). */
MP_EXTERN ssize_t mp_array_get_slice(mp_array *a, ssize_t start,
                                     ssize_t stop, void *out, size_t cap);
/* mp_array_set_slice assigns a[start:stop] = in[0..count) under the lock.
 * count must equal the slice's length (MP_EVALUE otherwise, as Python's
 * "can only assign sequence of same size"). Returns 0 or an error. */
MP_EXTERN int mp_array_set_slice(mp_array *a, ssize_t start, ssize_t stop,
                                 const void *in, size_t count);

/* Atomic operations on one element, as the mp_value ones. */
MP_EXTERN int mp_array_fetch_add(mp_array *a, ssize_t index, int64_t delta,
                                 int64_t *old);
MP_EXTERN int mp_array_exchange(mp_array *a, ssize_t index, int64_t value,
                                int64_t *old);
MP_EXTERN int mp_array_compare_exchange(mp_array *a, ssize_t index,
                                        int64_t *expected, int64_t desired);

/* ==== ShareableList ======================================================
 * mp_shareable_list is Python's shared_memory.ShareableList: a fixed-length
 * list of int (64-bit), float (double), bool, str (UTF-8), bytes and None
 * in a named block, in Python's exact layout, so a list made by Python is
 * read and changed by C and the reverse. Like Python's it has no lock.
 * Two of Python's bugs are not copied (docs/shared.md): str slots are sized
 * in UTF-8 bytes, not characters; and a str or bytes value written by this
 * library keeps its trailing NUL bytes (Python strips them when reading a
 * value whose length it does not know; values Python wrote are read back
 * the same way here). */
typedef struct mp_shareable_list mp_shareable_list;

typedef enum mp_shareable_type {
  MP_SHAREABLE_NONE = 0,
  MP_SHAREABLE_INT = 1,
  MP_SHAREABLE_FLOAT = 2,
  MP_SHAREABLE_BOOL = 3,
  MP_SHAREABLE_STR = 4,
  MP_SHAREABLE_BYTES = 5
} mp_shareable_type;

/* mp_shareable_item is one list element. i holds an INT, or a BOOL as 0 or
 * 1; f a FLOAT; data and len a STR (UTF-8, no terminating NUL needed) or
 * BYTES. */
typedef struct mp_shareable_item {
  mp_shareable_type type;
  int64_t i;
  double f;
  const void *data;
  size_t len;
} mp_shareable_item;

/* Shorthands that build an item. */
static inline mp_shareable_item mp_shareable_none(void) {
  mp_shareable_item it = {MP_SHAREABLE_NONE, 0, 0.0, NULL, 0};
  return it;
}
static inline mp_shareable_item mp_shareable_int(int64_t v) {
  mp_shareable_item it = {MP_SHAREABLE_INT, v, 0.0, NULL, 0};
  return it;
}
static inline mp_shareable_item mp_shareable_float(double v) {
  mp_shareable_item it = {MP_SHAREABLE_FLOAT, 0, v, NULL, 0};
  return it;
}
static inline mp_shareable_item mp_shareable_bool(int v) {
  mp_shareable_item it = {MP_SHAREABLE_BOOL, v != 0, 0.0, NULL, 0};
  return it;
}
static inline mp_shareable_item mp_shareable_str(const char *s) {
  size_t n = 0;
  while (s != NULL && s[n] != '\0')
    n++;
  mp_shareable_item it = {MP_SHAREABLE_STR, 0, 0.0, s, n};
  return it;
}
static inline mp_shareable_item mp_shareable_bytes(const void *p, size_t n) {
  mp_shareable_item it = {MP_SHAREABLE_BYTES, 0, 0.0, p, n};
  return it;
}

/* mp_shareable_list_new creates a list of count items (copied) in a new
 * block under name, or a generated name when name is NULL (Python's
 * ShareableList(sequence, name=name)); opts as for mp_shared_memory_new.
 * A str or bytes slot gets room for its value rounded up to the next
 * multiple of 8 bytes, as in Python; later values for that slot must fit.
 * Returns 0, MP_EINVAL (bad item: unknown type, str not valid UTF-8, NULL
 * data with len > 0), MP_EOVERFLOW (too big), and the errors of
 * mp_shared_memory_new. */
MP_EXTERN int mp_shareable_list_new(mp_shareable_list **out,
                                    const mp_shareable_item *items,
                                    size_t count, const char *name,
                                    const mp_shared_memory_opts *opts);
/* mp_shareable_list_open attaches to the list in block name (Python's
 * ShareableList(name=name)). Its header (count, slot offsets, formats) is
 * checked against the block's size first. Returns 0, MP_ECORRUPT (not a
 * well-formed list), and the errors of mp_shared_memory_open. */
MP_EXTERN int mp_shareable_list_open(mp_shareable_list **out,
                                     const char *name);
/* mp_shareable_list_free closes the block and frees the handle; it does not
 * unlink (use mp_shared_memory_unlink on mp_shareable_list_shm). */
MP_EXTERN void mp_shareable_list_free(mp_shareable_list *sl);
/* mp_shareable_list_shm returns the list's block (Python's sl.shm);
 * borrowed until mp_shareable_list_free. */
MP_EXTERN mp_shared_memory *mp_shareable_list_shm(mp_shareable_list *sl);
/* mp_shareable_list_len returns the number of items (Python's len). */
MP_EXTERN size_t mp_shareable_list_len(const mp_shareable_list *sl);

/* mp_shareable_list_get reads item index (negative counts from the end).
 * A STR or BYTES value is copied into buf (cap bytes) and out->data points
 * to buf; a NUL is added after it when there is room. Returns 0, MP_ERANGE
 * (index), MP_EINVAL (NULL sl or out; NULL buf with cap > 0), MP_ETOOBIG
 * (cap too small, or buf NULL with cap 0 to ask: out->type and out->len
 * say what is needed), MP_ECORRUPT (the slot's format or type code is malformed, or a
 * str is not valid UTF-8). */
MP_EXTERN int mp_shareable_list_get(mp_shareable_list *sl, ssize_t index,
                                    mp_shareable_item *out, void *buf,
                                    size_t cap);
/* mp_shareable_list_set stores item at index; any type may replace any
 * other, as in Python. Returns 0, MP_ERANGE, MP_ETOOBIG (a str or bytes
 * value longer than the slot: Python's "exceeds available storage"),
 * MP_EINVAL (bad item), MP_ECORRUPT. */
MP_EXTERN int mp_shareable_list_set(mp_shareable_list *sl, ssize_t index,
                                    const mp_shareable_item *item);
/* mp_shareable_list_format writes Python's format string (the struct
 * formats of all items, concatenated) into buf with a NUL and returns its
 * length; MP_ETOOBIG when cap is too small. */
MP_EXTERN ssize_t mp_shareable_list_format(mp_shareable_list *sl, char *buf,
                                           size_t cap);
/* mp_shareable_list_count returns how many items equal item, with Python's
 * equality (1 == 1.0 == True; str never equals bytes); mp_shareable_list_
 * index returns the first such index, or MP_ENOENT (Python's ValueError).
 * Both may return MP_ECORRUPT. */
MP_EXTERN ssize_t mp_shareable_list_count(mp_shareable_list *sl,
                                          const mp_shareable_item *item);
MP_EXTERN ssize_t mp_shareable_list_index(mp_shareable_list *sl,
                                          const mp_shareable_item *item);

/* ==== Resource tracker ===================================================
 * The first time a process creates a named object, the library starts a
 * tracker for it: a process of its own (not a child of the caller) that
 * holds one end of a socket; the creator and every child forked from it
 * from then on hold the other end. Creators register names, and unregister
 * them when they unlink. When the last holder dies, the tracker unlinks
 * what is still registered (only if the name still refers to the segment
 * that was registered) and exits. A process that holds no registered name
 * any more closes its end, so it keeps no descriptor open for nothing.
 * While it runs, a tracker keeps a list of its names in
 * /dev/shm/mp-tracker.<pid>, which mp_resource_tracker_list reads. */

/* mp_tracked_object describes one name a tracker holds. */
typedef struct mp_tracked_object {
  char name[MP_SHARED_MEMORY_NAME_MAX + 1]; /* without the leading '/' */
  size_t size;        /* bytes, as the creator registered it */
  pid_t creator_pid;  /* the process that created it */
  int creator_alive;  /* nonzero when that process still runs */
  pid_t tracker_pid;  /* the tracker that guards it */
  int tracker_alive;  /* nonzero when that tracker still runs */
  int exists;         /* nonzero when the name is still in /dev/shm */
} mp_tracked_object;

/* mp_resource_tracker_visit_fn is called once per tracked object, in the
 * caller's thread; a nonzero return stops the listing. */
typedef int (*mp_resource_tracker_visit_fn)(const mp_tracked_object *obj,
                                            void *arg);

/* mp_resource_tracker_list calls fn for each named object that a tracker of
 * this user on this machine holds or held (a tracker that was killed leaves
 * its list behind). Returns 0 or the callback's nonzero value. */
MP_EXTERN int mp_resource_tracker_list(mp_resource_tracker_visit_fn fn,
                                       void *arg);
/* mp_resource_tracker_remove_dead unlinks every listed object whose
 * tracker and creator are both dead (what a tracker could not clean up) and
 * removes the lists of dead trackers. *removed (may be NULL) gets the
 * number of names unlinked. Returns 0 or -errno. */
MP_EXTERN int mp_resource_tracker_remove_dead(size_t *removed);
/* mp_resource_tracker_pid returns the pid of the tracker this process is
 * connected to, or 0 when it holds no registered name. */
MP_EXTERN pid_t mp_resource_tracker_pid(void);

#ifdef __cplusplus
}
#endif
#endif
