/* object.c - the homes of shared objects. An object made by mp_X_new lives
 * in a segment of its own: anonymous shared memory (inherited across fork)
 * or a named POSIX segment "/mp_<name>". The segment starts with a header
 * (magic, layout version, type, sizes) that mp_X_open checks before it
 * trusts anything; the object follows at a fixed offset, so the object
 * pointer alone finds its segment again.
 *
 * What was mapped, how big, and which process unlinks a name are kept in
 * process-local memory (the list below), never read back from the segment,
 * which other programs can write: free trusts only its own records. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define SEGMENT_MAGIC 0x4d505347u /* "MPSG" */
#define SEGMENT_HEADER_SIZE 256
#define NAME_PREFIX "mp_"

typedef struct segment_header {
  uint32_t magic;
  uint16_t version;
  uint16_t type;
  uint64_t segment_size;
  uint64_t object_size;
  int32_t creator_pid;
  char name[MP_SYNC_NAME_MAX + 1];
} segment_header;

_Static_assert(sizeof(segment_header) <= SEGMENT_HEADER_SIZE,
               "segment header fits its slot");

/* A segment this process mapped with mp__object_new or _open (or inherited
 * across fork). creator is set only for a named segment made here: its
 * creator unlinks the name on free. */
typedef struct mapping {
  struct mapping *next;
  void *object;
  size_t size;
  pid_t creator;
  char shm_name[sizeof NAME_PREFIX + MP_SYNC_NAME_MAX];
} mapping;

static pthread_mutex_t mappings_lock = PTHREAD_MUTEX_INITIALIZER;
static mapping *mappings;

/* fork() while another thread holds the lock would leave it held forever in
 * the child: hold it across fork. */
static void mappings_prepare(void) { pthread_mutex_lock(&mappings_lock); }
static void mappings_release(void) { pthread_mutex_unlock(&mappings_lock); }
__attribute__((constructor)) static void mappings_init(void) {
  pthread_atfork(mappings_prepare, mappings_release, mappings_release);
}

static void mappings_add(mapping *m) {
  pthread_mutex_lock(&mappings_lock);
  m->next = mappings;
  mappings = m;
  pthread_mutex_unlock(&mappings_lock);
}

static mapping *mappings_take(void *obj) {
  mapping *m = NULL;
  pthread_mutex_lock(&mappings_lock);
  for (mapping **pp = &mappings; *pp; pp = &(*pp)->next) {
    if ((*pp)->object == obj) {
      m = *pp;
      *pp = m->next;
      break;
    }
  }
  pthread_mutex_unlock(&mappings_lock);
  return m;
}

static size_t segment_size(size_t obj_size) {
  size_t page = mp__os_page_size();
  return (SEGMENT_HEADER_SIZE + obj_size + page - 1) / page * page;
}

static segment_header *header_of(void *obj) {
  return (segment_header *)((char *)obj - SEGMENT_HEADER_SIZE);
}

int mp__object_name_valid(const char *name) {
  if (name == NULL || name[0] == '\0')
    return mp__fail(MP_EINVAL, "the name is empty");
  size_t n = 0;
  for (const char *c = name; *c; c++, n++) {
    bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' ||
              *c == '-';
    if (!ok)
      return mp__fail(MP_EINVAL,
                      "name contains '%c': use letters, digits, '.', '_' "
                      "and '-' only",
                      *c);
  }
  if (n > MP_SYNC_NAME_MAX)
    return mp__fail(MP_ENAMETOOLONG, "name has %zu characters, at most %d",
                    n, (int)MP_SYNC_NAME_MAX);
  /* "." and ".." are directory names in /dev/shm. */
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return mp__fail(MP_EINVAL, "name '%s' is a directory name", name);
  return 0;
}

static void shm_name_of(char *out, size_t cap, const char *name) {
  size_t p = sizeof NAME_PREFIX - 1;
  memcpy(out, NAME_PREFIX, p);
  size_t n = strlen(name);
  if (n > cap - p - 1)
    n = cap - p - 1;
  memcpy(out + p, name, n);
  out[p + n] = '\0';
}

int mp__object_new(void **out, size_t obj_size, uint16_t type,
                   const char *name) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  size_t size = segment_size(obj_size);
  int fd = -1, rc;
  if (name != NULL && (rc = mp__object_name_valid(name)) != 0)
    return rc;
  mapping *m = mp__calloc(1, sizeof *m);
  if (m == NULL)
    return MP_ENOMEM;
  m->size = size;
  if (name != NULL) {
    shm_name_of(m->shm_name, sizeof m->shm_name, name);
    if ((rc = mp__tracker_create(m->shm_name, size, &fd)) != 0) {
      mp__free(m);
      return rc;
    }
  }
  void *base;
  rc = mp__os_map_shared(fd, size, &base);
  if (fd >= 0)
    close(fd);
  if (rc != 0) {
    if (name != NULL) {
      mp__os_shm_unlink(m->shm_name);
      mp__tracker_unregister(m->shm_name); /* mp__tracker_create registered */
    }
    mp__free(m);
    return rc;
  }
  segment_header *h = base;
  h->version = MP__LAYOUT_VERSION;
  h->type = type;
  h->segment_size = size;
  h->object_size = obj_size;
  h->creator_pid = getpid();
  if (name != NULL)
    snprintf(h->name, sizeof h->name, "%s", name);
  void *obj = (char *)base + SEGMENT_HEADER_SIZE;
  mp__object_head *oh = obj;
  oh->type = type;
  oh->version = MP__LAYOUT_VERSION;
  oh->origin = name != NULL ? MP__ORIGIN_NAMED : MP__ORIGIN_ANON;
  /* The segment magic goes last: an opener never trusts a half-made
   * header (it waits a moment for the magic, see mp__object_open). */
  atomic_store_explicit((_Atomic uint32_t *)&h->magic, SEGMENT_MAGIC,
                        memory_order_release);
  m->object = obj;
  if (name != NULL) {
    m->creator = getpid();
    (void)mp__tracker_register(m->shm_name, size); /* best effort */
  }
  mappings_add(m);
  *out = obj;
  return 0;
}

/* How long an opener waits for a creator that is still initialising the
 * object it just created (between O_EXCL create and the magic store). */
#define OPEN_INIT_WAIT_NS 1000000000LL

int mp__object_open(void **out, size_t obj_size, uint16_t type,
                    const char *name) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  int rc = mp__object_name_valid(name);
  if (rc != 0)
    return rc;
  char shm_name[sizeof NAME_PREFIX + MP_SYNC_NAME_MAX];
  shm_name_of(shm_name, sizeof shm_name, name);
  int fd;
  size_t actual;
  if ((rc = mp__os_shm_open(shm_name, &fd, &actual)) != 0)
    return rc;
  size_t size = segment_size(obj_size);
  /* Check the size before mapping: a short segment would fault on access. */
  if (actual != size) {
    close(fd);
    return MP_ECORRUPT;
  }
  void *base;
  rc = mp__os_map_shared(fd, size, &base);
  close(fd);
  if (rc != 0)
    return rc;
  segment_header *h = base;
  void *obj = (char *)base + SEGMENT_HEADER_SIZE;
  mp__object_head *oh = obj;
  _Atomic uint32_t *segment_magic = (_Atomic uint32_t *)&h->magic;
  _Atomic uint32_t *object_magic = (_Atomic uint32_t *)&oh->magic;
  /* Zero magics mean the creator is between create and publish: wait for
   * it, bounded, so a crashed creator reads as corrupt, not as a hang. */
  int64_t give_up = mp__os_now_ns() + OPEN_INIT_WAIT_NS;
  while ((atomic_load_explicit(segment_magic, memory_order_acquire) == 0 ||
          atomic_load_explicit(object_magic, memory_order_acquire) == 0) &&
         mp__os_now_ns() < give_up)
    usleep(1000);
  uint32_t magic = atomic_load_explicit(segment_magic, memory_order_acquire);
  if (magic != SEGMENT_MAGIC || h->version != MP__LAYOUT_VERSION ||
      h->type != type || h->segment_size != size ||
      h->object_size != obj_size || oh->type != type ||
      oh->origin != MP__ORIGIN_NAMED ||
      atomic_load_explicit(object_magic, memory_order_acquire) !=
          MP__OBJECT_MAGIC) {
    mp__os_unmap(base, size);
    return MP_ECORRUPT;
  }
  mapping *m = mp__calloc(1, sizeof *m);
  if (m == NULL) {
    mp__os_unmap(base, size);
    return MP_ENOMEM;
  }
  m->object = obj;
  m->size = size;
  mappings_add(m);
  *out = obj;
  return 0;
}

void mp__object_free(void *obj, size_t obj_size) {
  (void)obj_size; /* the record knows the size that was mapped */
  if (obj == NULL)
    return;
  /* In-place objects (and pointers we never mapped) have no record. */
  mapping *m = mappings_take(obj);
  if (m == NULL)
    return;
  mp__os_unmap(header_of(obj), m->size);
  /* A forked child inherits the records but did not create the name. */
  if (m->creator != 0 && m->creator == getpid()) {
    mp__os_shm_unlink(m->shm_name);
    mp__tracker_unregister(m->shm_name);
  }
  mp__free(m);
}

static _Atomic uint64_t image_token;

uint64_t mp__image_token(void) {
  uint64_t t = atomic_load_explicit(&image_token, memory_order_acquire);
  if (t != 0)
    return t;
  uint64_t fresh = 0;
  while (fresh == 0) {
    if (mp__os_random(&fresh, sizeof fresh) != 0)
      fresh = (uint64_t)mp__os_now_ns() ^ ((uint64_t)getpid() << 32);
  }
  uint64_t expected = 0;
  if (atomic_compare_exchange_strong(&image_token, &expected, fresh))
    return fresh;
  return expected;
}

/* The token is drawn at load time, before any fork, so a parent and the
 * children it forks always agree on it; an exec'd image draws a new one. */
__attribute__((constructor)) static void image_token_init(void) {
  (void)mp__image_token();
}
