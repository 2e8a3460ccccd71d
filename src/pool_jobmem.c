/* pool_jobmem.c - memory for the pool's job records that forked processes
 * never share.
 *
 * A fork pool's workers are forked after the parent has used its heap,
 * so every heap page is then shared copy-on-write with each of them. A
 * job record calloc'd from a reused heap chunk is the parent's first
 * write to that page since the fork: a page fault, a copy and a TLB
 * shootdown of every CPU the parent's threads run on. On this
 * paravirtualised VM that cost 5 to 9 us per apply_async, most of the
 * call. Job records come instead from chunks marked MADV_WIPEONFORK: a
 * child gets zero pages there, not the parent's, so nothing is shared
 * and the parent reuses its slots without a fault.
 *
 * A forked child sees zeros where the parent's records were (the result
 * calls check the owner first: MP_EPERM) and starts with no chunks of
 * its own. Chunks are CHUNK_SIZE bytes aligned to CHUNK_SIZE, so a slot
 * finds its chunk's header by masking its address. A chunk whose slots
 * are all free is kept for reuse, up to SPARE_MAX of them, and unmapped
 * beyond: a new chunk's pages cost a fault each on first touch (about
 * 5 us here), and an unmapping a TLB shootdown. Under
 * AddressSanitizer a free slot is poisoned, so a use after free is still
 * caught. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "pool_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define JOBMEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JOBMEM_ASAN 1
#endif
#endif
#ifdef JOBMEM_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define CHUNK_SIZE ((size_t)64 * 1024)
/* All-free chunks kept: 16 MiB, some 37,000 records. */
#define SPARE_MAX 256
#define SLOT_SIZE                                                              \
  ((sizeof(struct mp_async_result) + _Alignof(max_align_t) - 1) &             \
   ~(_Alignof(max_align_t) - 1))

typedef struct free_slot {
  struct free_slot *next;
} free_slot;

/* A chunk's header, in its first slot-aligned bytes. */
typedef struct chunk {
  struct chunk *prev, *next; /* on `partial` while it has a free slot */
  free_slot *free;
  size_t used;
} chunk;

#define HEADER_SIZE                                                            \
  ((sizeof(chunk) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1))
#define SLOTS_PER_CHUNK ((CHUNK_SIZE - HEADER_SIZE) / SLOT_SIZE)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static chunk *partial;     /* chunks with at least one free slot */
static chunk *spare;       /* all-free chunks kept, linked by next */
static size_t spare_count;
static size_t live_slots;  /* for tests: records not yet freed */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void) { pthread_mutex_lock(&lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&lock); }

/* The child's chunks are zero pages now: it forgets them (their address
 * space stays reserved, untouched) and starts afresh. */
static void atfork_child(void) {
  partial = NULL;
  spare = NULL;
  spare_count = 0;
  live_slots = 0;
  pthread_mutex_unlock(&lock);
}

static void register_atfork(void) {
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static void list_remove(chunk *c) {
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    partial = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

static void list_push(chunk *c) {
  c->prev = NULL;
  c->next = partial;
  if (partial != NULL)
    partial->prev = c;
  partial = c;
}

/* chunk_new maps an aligned chunk and threads its slots onto its free
 * list. MAP_FAILED's cases and a refused MADV_WIPEONFORK (a kernel before
 * 4.14) are told apart: the latter still gives correct records, only
 * shared with later children as the heap would be. */
static chunk *chunk_new(void) {
  size_t span = CHUNK_SIZE * 2;
  unsigned char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    return NULL;
  uintptr_t at = ((uintptr_t)raw + CHUNK_SIZE - 1) & ~(uintptr_t)(CHUNK_SIZE - 1);
  size_t before = at - (uintptr_t)raw, after = span - before - CHUNK_SIZE;
  if (before > 0)
    munmap(raw, before);
  if (after > 0)
    munmap((unsigned char *)at + CHUNK_SIZE, after);
  chunk *c = (chunk *)at;
  (void)madvise(c, CHUNK_SIZE, MADV_WIPEONFORK);
  c->prev = c->next = NULL;
  c->used = 0;
  c->free = NULL;
  unsigned char *base = (unsigned char *)c + HEADER_SIZE;
  for (size_t i = SLOTS_PER_CHUNK; i-- > 0;) {
    free_slot *s = (free_slot *)(base + i * SLOT_SIZE);
    s->next = c->free;
    c->free = s;
  }
  POISON(base, SLOTS_PER_CHUNK * SLOT_SIZE);
  return c;
}

static chunk *chunk_of(void *slot) {
  return (chunk *)((uintptr_t)slot & ~(uintptr_t)(CHUNK_SIZE - 1));
}

mp_async_result *mp__pool_job_alloc(void) {
  _Static_assert(SLOTS_PER_CHUNK >= 16, "job records too big for a chunk");
  if (mp__alloc_fails_now())
    return NULL;
  pthread_once(&once, register_atfork);
  pthread_mutex_lock(&lock);
  chunk *c = partial;
  if (c == NULL) {
    c = spare;
    if (c != NULL) {
      spare = c->next;
      spare_count--;
    } else {
      c = chunk_new();
    }
    if (c == NULL) {
      pthread_mutex_unlock(&lock);
      return NULL;
    }
    list_push(c);
  }
  free_slot *s = c->free;
  UNPOISON(s, SLOT_SIZE);
  c->free = s->next;
  c->used++;
  if (c->free == NULL)
    list_remove(c);
  live_slots++;
  pthread_mutex_unlock(&lock);
  memset(s, 0, SLOT_SIZE);
  return (mp_async_result *)s;
}

void mp__pool_job_free(mp_async_result *j) {
  if (j == NULL)
    return;
  free_slot *s = (free_slot *)j;
  chunk *c = chunk_of(s);
  pthread_mutex_lock(&lock);
  bool was_full = c->free == NULL;
  s->next = c->free;
  c->free = s;
  POISON(s, SLOT_SIZE);
  c->used--;
  live_slots--;
  if (was_full)
    list_push(c);
  if (c->used == 0) {
    list_remove(c);
    if (spare_count < SPARE_MAX) {
      c->next = spare;
      spare = c;
      spare_count++;
    } else {
      UNPOISON(c, CHUNK_SIZE); /* the next mapping here starts clean */
      munmap(c, CHUNK_SIZE);
    }
  }
  pthread_mutex_unlock(&lock);
}

size_t mp__pool_job_live(void) {
  pthread_mutex_lock(&lock);
  size_t n = live_slots;
  pthread_mutex_unlock(&lock);
  return n;
}
