/* internal.h - what the library's files share and nothing outside sees:
 * the allocation wrapper, deadlines, and the segment helper that gives every
 * shared object its three homes (anonymous, named, in place). */
#ifndef MP_INTERNAL_H
#define MP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "fault.h"
#include "mp_config.h"
#include "multiproc.h"
#include "os/os.h"

/* Every allocation goes through these, so a test can fail the Nth one. */
void *mp__alloc(size_t size);
void *mp__calloc(size_t n, size_t size);
void *mp__realloc(void *p, size_t size);
char *mp__strdup(const char *s);
void mp__free(void *p);
/* mp__alloc_fails_now counts one allocation for the injection below and
 * says whether it is the one to fail: for allocators of their own. */
bool mp__alloc_fails_now(void);
/* mp__alloc_fail_after makes the Nth allocation from now fail (0: never).
 * Exported for the tests only (declared here, not under include/). */
MP_EXTERN void mp__alloc_fail_after(long n);

/* ---- failure details ----------------------------------------------------
 * mp__fail records a printf-formatted detail for rc in this thread (see
 * mp_error_detail) and returns rc, so a failure path reads
 *   return mp__fail(MP_EINVAL, "name contains '/'");
 * Set it wherever the code alone does not say which cause it was. */
int mp__fail(int rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mp__detail_clear(void);

/* mp__crypto_init starts libcrypto without its atexit cleanup (see
 * crypto.c); call it before any libcrypto function. */
void mp__crypto_init(void);

/* ---- deadlines ----------------------------------------------------------
 * A timeout becomes one absolute CLOCK_MONOTONIC deadline on entry. */
typedef struct mp__deadline {
  int64_t ns; /* absolute monotonic time; INT64_MAX: forever; */
  bool poll;  /* the caller's timeout was 0: try once */
} mp__deadline;

mp__deadline mp__deadline_from_timeout(double timeout);
bool mp__deadline_forever(mp__deadline d);
bool mp__deadline_expired(mp__deadline d);
/* Nanoseconds left (0 when expired, INT64_MAX when forever). */
int64_t mp__deadline_remaining_ns(mp__deadline d);
/* The earlier of d and now + slice_ns, as a deadline. */
mp__deadline mp__deadline_min_slice(mp__deadline d, int64_t slice_ns);
/* MP_EAGAIN for a timeout-0 deadline, MP_ETIMEDOUT for the others. */
int mp__deadline_error(mp__deadline d);
/* mp__timeout_check returns 0 for a usable timeout, MP_EINVAL with the
 * detail "timeout is NaN" for a NaN one (Python raises ValueError). Every
 * public call that takes a timeout calls it first. */
int mp__timeout_check(double timeout);

/* ---- shared objects -----------------------------------------------------
 * Every shared object starts with mp__object_head. Objects made by
 * mp__object_new sit in a segment of their own, after a segment header at
 * a fixed offset; objects made in place have no segment. */
#define MP__OBJECT_MAGIC 0x4d505359u /* "MPSY" */
/* 2: the sync objects' owner-word lock, the barrier's members with their
 * PID namespace, the queue's counted futex words. 3: the queue's biased
 * locks (a larger lock) and the producers' copy of the tail word. 4: the
 * queue lock's debt (a 32-bit last beside it). A process of an older
 * build refuses these objects (MP_ECORRUPT) rather than misread them. */
#define MP__LAYOUT_VERSION 4

/* A type whose layout changes gets a new number, so that libraries of the
 * two layouts refuse each other's objects (MP_ECORRUPT on open, MP_EINVAL
 * in place) rather than misread them. Numbers are never reused: 1, 2, 5
 * and 6 were Lock, RLock, Condition and Barrier with pthread mutexes. */
enum mp__object_type {
  MP__TYPE_SEMAPHORE = 3,
  MP__TYPE_EVENT = 4,
  MP__TYPE_QUEUE = 7,
  MP__TYPE_VALUE = 8,
  MP__TYPE_POOL = 9, /* added for the pool's segment (pool_internal.h) */
  /* Owner-word locks (sync_lock.c) instead of pthread mutexes. */
  MP__TYPE_LOCK = 10,
  MP__TYPE_RLOCK = 11,
  MP__TYPE_CONDITION = 12,
  MP__TYPE_BARRIER = 13,
};

enum mp__object_origin {
  MP__ORIGIN_INPLACE = 1,
  MP__ORIGIN_ANON = 2,
  MP__ORIGIN_NAMED = 3,
};

typedef struct mp__object_head {
  uint32_t magic;   /* MP__OBJECT_MAGIC once initialised, 0 after destroy */
  uint16_t type;    /* enum mp__object_type */
  uint8_t version;  /* MP__LAYOUT_VERSION */
  uint8_t origin;   /* enum mp__object_origin */
} mp__object_head;

/* mp__object_check returns 0 when obj is an initialised object of type,
 * else MP_EINVAL. Cheap: used on every call. */
static inline int mp__object_check(const void *obj, uint16_t type) {
  const mp__object_head *h = (const mp__object_head *)obj;
  if (h == NULL)
    return mp__fail(MP_EINVAL, "the object is NULL");
  if (h->magic != MP__OBJECT_MAGIC || h->type != type)
    return mp__fail(MP_EINVAL, "not an initialised object of this type "
                               "(freed, destroyed, or another type)");
  return 0;
}

/* mp__object_new maps zeroed shared memory for an object of obj_size bytes:
 * anonymous (inherited across fork) when name is NULL, else a new named
 * segment (MP_EEXIST if taken). The head's type/origin are filled; the
 * caller initialises the rest and then sets head->magic last. */
int mp__object_new(void **out, size_t obj_size, uint16_t type,
                   const char *name);
/* mp__object_open attaches to the named object, checking the segment's
 * magic, version, type and size before returning (MP_ENOENT, MP_ECORRUPT). */
int mp__object_open(void **out, size_t obj_size, uint16_t type,
                    const char *name);
/* mp__object_free unmaps a segment object (the creator also unlinks its
 * name). In-place objects are left alone. */
void mp__object_free(void *obj, size_t obj_size);
/* mp__object_name_valid checks a user's object name. */
int mp__object_name_valid(const char *name);

/* mp__image_token identifies this address-space layout: equal in a process
 * and its forked children, different after exec. Function pointers stored
 * in shared memory are called only where the token matches. */
uint64_t mp__image_token(void);

/* ---- resource tracker (src/resource_tracker.c; added for shared memory) --
 * mp__tracker_register records that this process created the named segment
 * shm_name (without the leading '/') of size bytes, so that the tracker of
 * its process tree unlinks it if the tree dies first; it starts the tracker
 * on first use. Returns 0 or an error (the segment is then unprotected).
 * mp__tracker_unregister forgets the name again (call it when unlinking);
 * names this process never registered are ignored. mp__tracker_forget
 * takes it off this process's list only: the tracker still guards it for
 * the rest of the tree (a process that stops using what others still
 * use). A name that ends with '+' guards a family: with it the tracker
 * removes every segment of the caller's whose name begins with it.
 * mp__tracker_create is mp__os_shm_create for a segment the caller will
 * register: it registers the segment before the name exists, so a creator
 * killed at any moment leaves nothing once its tree is gone (the caller's
 * mp__tracker_register afterwards finds it done). Returns 0, MP_EEXIST or
 * what mp__os_shm_create returns. mp__tracker_link gives the named queue
 * segment open as fd a hard link of the tree's, "<base>+=<tracker>" (its
 * name stored in name, cap bytes), registered first: the tracker removes
 * it once the tree has ended, and the family "<base>+" with it if nothing
 * reaches the queue by its name any more and no process uses it. A link
 * the tree made before is the same one. Returns 0 or an error (nothing is
 * registered then). */
int mp__tracker_register(const char *shm_name, size_t size);
void mp__tracker_unregister(const char *shm_name);
void mp__tracker_forget(const char *shm_name);
int mp__tracker_create(const char *shm_name, size_t size, int *fd_out);
int mp__tracker_link(int fd, const char *base, char *name, size_t cap);

/* ---- threads (src/thread.c; added by the thread helper) -----------------
 * mp__thread_shutdown is Python's threading._shutdown: the calling thread,
 * if it is the main thread, counts as ended, then it waits for every
 * non-daemonic thread (but itself) to end. The library's atexit handler
 * runs it; a child process should run it after its target returns (Python's
 * _bootstrap does), since children leave with _exit. */
void mp__thread_shutdown(void);

#define MP__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MP__MIN(a, b) ((a) < (b) ? (a) : (b))
#define MP__MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
