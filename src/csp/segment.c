/* segment.c - a channel's shared region and what is done to it as a whole:
 * its three homes (anonymous, named, in place) with the checks an opener
 * makes before trusting it, joining and leaving ends, poison and retire,
 * and the sweep that leaves the ends of dead processes and frees the
 * offers they had posted. The layout is described in csp_internal.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "csp_internal.h"

#define NAME_PREFIX "mp_"

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

typedef struct geometry {
  uint32_t msg_max, buffer, max_waiting, max_ends, slot_size, entry_size;
  size_t ends_off, slots_off, ring_off, total;
} geometry;

static int geometry_of(const mp_channel_opts *o, geometry *g) {
  mp_channel_opts d = {0};
  if (o != NULL)
    d = *o;
  if (d.msg_max == 0)
    d.msg_max = CSP_DEFAULT_MSG_MAX;
  if (d.max_waiting == 0)
    d.max_waiting = CSP_DEFAULT_WAITING;
  if (d.max_ends == 0)
    d.max_ends = CSP_DEFAULT_ENDS;
  if (d.msg_max > CSP_MAX_MSG)
    return mp__fail(MP_EINVAL, "msg_max %zu is over 16 MiB", d.msg_max);
  if (d.buffer > CSP_MAX_BUFFER)
    return mp__fail(MP_EINVAL, "buffer %zu is over %u messages", d.buffer,
                    CSP_MAX_BUFFER);
  if (d.max_waiting > CSP_MAX_WAITING)
    return mp__fail(MP_EINVAL, "max_waiting %u is over %u", d.max_waiting,
                    CSP_MAX_WAITING);
  if (d.max_ends > CSP_MAX_ENDS)
    return mp__fail(MP_EINVAL, "max_ends %u is over %u", d.max_ends,
                    CSP_MAX_ENDS);
  g->msg_max = (uint32_t)d.msg_max;
  g->buffer = (uint32_t)d.buffer;
  g->max_waiting = d.max_waiting;
  g->max_ends = d.max_ends;
  g->slot_size = (uint32_t)align_up(CSP_SLOT_HDR + g->msg_max, CSP_ALIGN);
  g->entry_size = (uint32_t)align_up(8 + g->msg_max, 8);
  g->ends_off = align_up(sizeof(csp_shared), CSP_ALIGN);
  g->slots_off =
      align_up(g->ends_off + (size_t)g->max_ends * sizeof(csp_end_rec),
               CSP_ALIGN);
  g->ring_off = g->slots_off + (size_t)g->max_waiting * g->slot_size;
  g->total = align_up(g->ring_off + (size_t)g->buffer * g->entry_size,
                      CSP_ALIGN);
  if ((uint64_t)g->buffer * g->entry_size > (64ull << 30))
    return mp__fail(MP_EINVAL, "buffer * msg_max is over 64 GiB");
  return 0;
}

size_t mp_channel_size(const mp_channel_opts *opts) {
  geometry g = {0}; /* set by geometry_of; zeroed for -O3's flow analysis */
  if (geometry_of(opts, &g) != 0)
    return 0;
  return g.total;
}

static int state_init(void *mem, const geometry *g, uint16_t origin) {
  csp_shared *s = mem;
  memset(mem, 0, g->ring_off); /* the ring needs no zeroing */
  s->version = CSP_VERSION;
  s->origin = origin;
  s->total_size = g->total;
  s->msg_max = g->msg_max;
  s->buffer = g->buffer;
  s->max_waiting = g->max_waiting;
  s->max_ends = g->max_ends;
  s->slot_size = g->slot_size;
  s->entry_size = g->entry_size;
  s->ends_off = g->ends_off;
  s->slots_off = g->slots_off;
  s->ring_off = g->ring_off;
  s->creator_pid = (int32_t)getpid();
  mp__sync_lock_init(&s->lock);
  /* The magic goes last: an opener trusts nothing before it. */
  atomic_store_explicit((_Atomic uint32_t *)&s->magic, CSP_MAGIC,
                        memory_order_release);
  return 0;
}

/* attach_checked validates the header of the size bytes at mem against
 * the geometry its own options imply, then fills the handle from the
 * private copy. */
static int attach_checked(mp_channel *c, void *mem, size_t size) {
  csp_shared *s = mem;
  if (size < sizeof(csp_shared))
    return mp__fail(MP_ECORRUPT, "region of %zu bytes is smaller than a "
                                 "channel header", size);
  if (atomic_load_explicit((_Atomic uint32_t *)&s->magic,
                           memory_order_acquire) != CSP_MAGIC ||
      s->version != CSP_VERSION)
    return mp__fail(MP_ECORRUPT, "not a channel (magic or version)");
  mp_channel_opts o = {.msg_max = s->msg_max,
                       .buffer = s->buffer,
                       .max_waiting = s->max_waiting,
                       .max_ends = s->max_ends};
  geometry g = {0}; /* set by geometry_of; zeroed for -O3's flow analysis */
  if (o.msg_max == 0 || o.max_waiting == 0 || o.max_ends == 0 ||
      geometry_of(&o, &g) != 0)
    return mp__fail(MP_ECORRUPT, "channel geometry out of range");
  if (g.slot_size != s->slot_size || g.entry_size != s->entry_size ||
      g.ends_off != s->ends_off || g.slots_off != s->slots_off ||
      g.ring_off != s->ring_off || g.total != s->total_size || g.total > size)
    return mp__fail(MP_ECORRUPT, "channel geometry does not add up");
  c->s = s;
  c->msg_max = g.msg_max;
  c->buffer = g.buffer;
  c->max_waiting = g.max_waiting;
  c->max_ends = g.max_ends;
  c->slot_size = g.slot_size;
  c->entry_size = g.entry_size;
  c->ends = (char *)mem + g.ends_off;
  c->slots = (char *)mem + g.slots_off;
  c->ring = (char *)mem + g.ring_off;
  return 0;
}

int mp_channel_new(mp_channel **out, const mp_channel_opts *opts) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  geometry g = {0}; /* set by geometry_of; zeroed for -O3's flow analysis */
  int rc = geometry_of(opts, &g);
  if (rc != 0)
    return rc;
  const char *name = opts != NULL ? opts->name : NULL;
  if (name != NULL && (rc = mp__object_name_valid(name)) != 0)
    return rc;
  mp_channel *c = mp__calloc(1, sizeof *c);
  if (c == NULL)
    return MP_ENOMEM;
  c->map_size = align_up(g.total, mp__os_page_size());
  int fd = -1;
  if (name != NULL) {
    snprintf(c->shm_name, sizeof c->shm_name, NAME_PREFIX "%s", name);
    if ((rc = mp__tracker_create(c->shm_name, c->map_size, &fd)) != 0) {
      mp__free(c);
      return rc;
    }
  }
  rc = mp__os_map_shared(fd, c->map_size, &c->map);
  if (fd >= 0)
    close(fd);
  if (rc == 0 && name != NULL)
    (void)mp__tracker_register(c->shm_name, c->map_size); /* best effort */
  if (rc == 0)
    rc = state_init(c->map, &g,
                    name != NULL ? MP__ORIGIN_NAMED : MP__ORIGIN_ANON);
  if (rc == 0)
    rc = attach_checked(c, c->map, c->map_size);
  if (rc != 0) {
    if (c->map != NULL)
      mp__os_unmap(c->map, c->map_size);
    if (name != NULL) {
      mp__os_shm_unlink(c->shm_name);
      mp__tracker_unregister(c->shm_name);
    }
    mp__free(c);
    return rc;
  }
  c->origin = name != NULL ? MP__ORIGIN_NAMED : MP__ORIGIN_ANON;
  if (name != NULL)
    c->creator = getpid();
  *out = c;
  return 0;
}

int mp_channel_open(mp_channel **out, const char *name) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  int rc = mp__object_name_valid(name);
  if (rc != 0)
    return rc;
  mp_channel *c = mp__calloc(1, sizeof *c);
  if (c == NULL)
    return MP_ENOMEM;
  snprintf(c->shm_name, sizeof c->shm_name, NAME_PREFIX "%s", name);
  int fd;
  size_t size;
  if ((rc = mp__os_shm_open(c->shm_name, &fd, &size)) != 0) {
    mp__free(c);
    return rc;
  }
  /* Never map (or touch) less than a header, nor something absurd. */
  if (size < sizeof(csp_shared) || size % mp__os_page_size() != 0 ||
      size > (80ull << 30)) {
    close(fd);
    mp__free(c);
    return mp__fail(MP_ECORRUPT, "segment size %zu is not a channel's",
                    size);
  }
  rc = mp__os_map_shared(fd, size, &c->map);
  close(fd);
  if (rc != 0) {
    mp__free(c);
    return rc;
  }
  c->map_size = size;
  /* A creator between create and publish: wait for the magic, bounded. */
  int64_t give_up = mp__os_now_ns() + 1000000000LL;
  while (atomic_load_explicit((_Atomic uint32_t *)&((csp_shared *)c->map)->magic,
                              memory_order_acquire) == 0 &&
         mp__os_now_ns() < give_up)
    usleep(1000);
  rc = attach_checked(c, c->map, size);
  if (rc == 0 && align_up(c->s->total_size, mp__os_page_size()) != size)
    rc = mp__fail(MP_ECORRUPT, "segment is longer than the channel");
  if (rc == 0 && c->s->origin != MP__ORIGIN_NAMED)
    rc = mp__fail(MP_ECORRUPT, "segment is not a named channel");
  if (rc != 0) {
    mp__os_unmap(c->map, size);
    mp__free(c);
    return rc;
  }
  c->origin = MP__ORIGIN_NAMED;
  *out = c;
  return 0;
}

int mp_channel_init(void *mem, size_t size, const mp_channel_opts *opts) {
  if (mem == NULL || (uintptr_t)mem % MP_CHANNEL_ALIGN != 0)
    return mp__fail(MP_EINVAL, "mem is NULL or not aligned to %d",
                    MP_CHANNEL_ALIGN);
  geometry g = {0}; /* set by geometry_of; zeroed for -O3's flow analysis */
  int rc = geometry_of(opts, &g);
  if (rc != 0)
    return rc;
  if (size < g.total)
    return mp__fail(MP_EINVAL, "%zu bytes given, mp_channel_size says %zu",
                    size, g.total);
  return state_init(mem, &g, MP__ORIGIN_INPLACE);
}

int mp_channel_attach(mp_channel **out, void *mem, size_t size) {
  if (out == NULL || mem == NULL || (uintptr_t)mem % MP_CHANNEL_ALIGN != 0)
    return mp__fail(MP_EINVAL, "out or mem is NULL, or mem is misaligned");
  mp_channel *c = mp__calloc(1, sizeof *c);
  if (c == NULL)
    return MP_ENOMEM;
  int rc = attach_checked(c, mem, size);
  if (rc != 0) {
    mp__free(c);
    return rc;
  }
  c->origin = MP__ORIGIN_INPLACE;
  *out = c;
  return 0;
}

void mp_channel_free(mp_channel *c) {
  if (c == NULL)
    return;
  if (c->remote != NULL)
    return mp__csp_remote_free(c);
  if (c->map != NULL)
    mp__os_unmap(c->map, c->map_size);
  if (c->origin == MP__ORIGIN_NAMED && c->creator == getpid()) {
    mp__os_shm_unlink(c->shm_name);
    mp__tracker_unregister(c->shm_name);
  }
  mp__free(c);
}

/* ---- the lock ------------------------------------------------------- */

int mp__csp_lock_until(mp_channel *c, mp__deadline d) {
  /* MP_EOWNERDEAD: a holder died, and every change under the lock is a
   * single store or CAS, so the state is consistent as it is. MP_ECORRUPT:
   * another program wrote over the word; the caller goes on without the
   * lock, as every shared read is checked anyway (a scribbler can only
   * spoil this channel's messages, never this process's memory). A holder
   * that stays (a live one that never lets go, or a word naming a thread
   * of another PID namespace, which nobody here can judge) costs a caller
   * with a deadline no more than its deadline. */
  mp__sync_lock *l = &c->s->lock;
  int rc = mp__sync_lock_acquire_until(l, (mp__deadline){.poll = true});
  if (rc == MP_EAGAIN) {
    /* Held: every caller, a poll and one already late included, gives a
     * holder inside its short critical section CSP_POLL_GRACE_NS. */
    int64_t least = mp__os_now_ns() + CSP_POLL_GRACE_NS;
    mp__deadline ld = {.ns = d.poll || d.ns < least ? least : d.ns};
    rc = mp__sync_lock_acquire_until(l, ld);
  }
  if (rc == MP_ETIMEDOUT || rc == MP_EAGAIN)
    return mp__fail(mp__deadline_error(d),
                    "the channel lock stayed held past the deadline (by a "
                    "holder not known to be gone)");
  return 0;
}

void mp__csp_lock(mp_channel *c) {
  (void)mp__csp_lock_until(c, mp__deadline_from_timeout(MP_FOREVER));
}

void mp__csp_unlock(mp_channel *c) {
  if (mp__sync_lock_held(&c->s->lock))
    mp__sync_lock_unlock(&c->s->lock);
}

/* ---- ends ----------------------------------------------------------- */

static int join(mp_channel *c, uint32_t kind, mp_channel_end **out) {
  if (c == NULL || out == NULL)
    return mp__fail(MP_EINVAL, "channel or out is NULL");
  if (c->remote != NULL)
    return mp__csp_remote_join(c, kind, out);
  mp_channel_end *e = mp__calloc(1, sizeof *e);
  if (e == NULL)
    return MP_ENOMEM;
  mp__csp_lock(c);
  uint32_t st = mp__csp_status(c);
  int rc = 0;
  if (st & CSP_POISONED)
    rc = MP_EPOISONED;
  else if (st & (kind == CSP_END_READER ? CSP_READERS_RETIRED
                                        : CSP_WRITERS_RETIRED))
    rc = mp__fail(MP_ERETIRED, "every %s of this channel has retired",
                  kind == CSP_END_READER ? "reader" : "writer");
  uint32_t i = 0;
  if (rc == 0) {
    for (; i < c->max_ends; i++)
      if (atomic_load(&csp_end_rec_of(c, i)->kind) == CSP_END_FREE)
        break;
    if (i == c->max_ends)
      rc = mp__fail(MP_ENOSPC, "max_ends (%u) ends are joined", c->max_ends);
  }
  if (rc == 0) {
    csp_end_rec *r = csp_end_rec_of(c, i);
    atomic_store(&r->pid, mp__csp_self_id(c));
    atomic_store(&r->busy, CSP_BUSY_IDLE);
    atomic_store(&r->kind, kind);
    e->ch = c;
    e->index = i;
    e->gen = atomic_load(&r->gen);
    e->kind = kind;
    if (kind == CSP_END_READER)
      c->s->nreaders++, c->s->joined_readers++;
    else
      c->s->nwriters++, c->s->joined_writers++;
  }
  mp__csp_unlock(c);
  if (rc != 0) {
    mp__free(e);
    return rc;
  }
  *out = e;
  return 0;
}

int mp_channel_reader(mp_channel *c, mp_channel_end **out) {
  return join(c, CSP_END_READER, out);
}

int mp_channel_writer(mp_channel *c, mp_channel_end **out) {
  return join(c, CSP_END_WRITER, out);
}

void mp_channel_end_free(mp_channel_end *e) {
  if (e != NULL && e->remote != NULL)
    return mp__csp_remote_end_free(e);
  mp__free(e);
}

int mp_channel_end_is_reader(const mp_channel_end *e) {
  if (e == NULL)
    return mp__fail(MP_EINVAL, "e is NULL");
  return e->kind == CSP_END_READER;
}

int mp__csp_end_check(const mp_channel_end *e, uint32_t kind) {
  if (e == NULL || e->ch == NULL)
    return mp__fail(MP_EINVAL, "end is NULL");
  if (e->remote != NULL)
    return mp__csp_remote_check(e, kind);
  if (kind != 0 && e->kind != kind)
    return mp__fail(MP_EINVAL, "a %s end where a %s end is needed",
                    e->kind == CSP_END_READER ? "reader" : "writer",
                    kind == CSP_END_READER ? "reader" : "writer");
  if (e->index >= e->ch->max_ends)
    return mp__fail(MP_EINVAL, "end index out of range");
  csp_end_rec *r = csp_end_rec_of(e->ch, e->index);
  if (atomic_load_explicit(&r->gen, memory_order_acquire) != e->gen)
    return mp__fail(MP_ERETIRED, "this end has retired (or its process "
                                 "was counted as dead)");
  return 0;
}

void mp__csp_set_busy(const mp_channel_end *e, uint32_t busy) {
  atomic_store_explicit(&csp_end_rec_of(e->ch, e->index)->busy, busy,
                        memory_order_relaxed);
}

int32_t mp__csp_self_id(mp_channel *c) {
  /* Every offer and claim records who made it: the kept pid, no system
   * call. */
  int32_t p = (int32_t)mp__os_getpid();
  unsigned ns = mp__sync_lock_ns_index(&c->s->lock);
  return (int32_t)((uint32_t)p | ns << CSP_ID_PID_BITS);
}

bool mp__csp_id_gone(mp_channel *c, int32_t id) {
  unsigned ns = (uint32_t)id >> CSP_ID_PID_BITS;
  if (ns == 0 || ns != mp__sync_lock_ns_index(&c->s->lock))
    return false;
  return !mp__os_pid_alive((pid_t)(id & ((1 << CSP_ID_PID_BITS) - 1)));
}

int32_t mp__csp_adopt(const mp_channel_end *e, int32_t id) {
  if (e->remote != NULL)
    return 0; /* a remote end's holder is its connection */
  csp_end_rec *r = csp_end_rec_of(e->ch, e->index);
  if (atomic_load(&r->gen) != e->gen)
    return 0;
  return atomic_exchange(&r->pid, id != 0 ? id : mp__csp_self_id(e->ch));
}

void mp__csp_poke(mp_channel *c, uint32_t dir) {
  for (uint32_t i = 0; i < c->max_waiting; i++) {
    csp_slot *sl = csp_slot_of(c, i);
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    if (csp_st(w) == ST_FREE)
      continue;
    if (dir != 0 && sl->dir != dir)
      continue;
    mp__csp_wake(&sl->bell, &sl->sleepers);
  }
}

void mp__csp_leave_locked(mp_channel *c, uint32_t index, bool poison) {
  csp_end_rec *r = csp_end_rec_of(c, index);
  uint32_t kind = atomic_load(&r->kind);
  if (kind == CSP_END_FREE)
    return;
  atomic_store(&r->kind, CSP_END_FREE);
  atomic_fetch_add_explicit(&r->gen, 1, memory_order_release);
  uint32_t bits = 0;
  if (kind == CSP_END_READER) {
    if (c->s->nreaders > 0 && --c->s->nreaders == 0)
      bits |= CSP_READERS_RETIRED;
  } else {
    if (c->s->nwriters > 0 && --c->s->nwriters == 0)
      bits |= CSP_WRITERS_RETIRED;
  }
  if (poison)
    bits |= CSP_POISONED;
  if (bits != 0) {
    atomic_fetch_or_explicit(&c->s->status, bits, memory_order_acq_rel);
    mp__csp_poke(c, 0);
  }
}

int mp_channel_poison(mp_channel_end *e) {
  if (e == NULL || e->ch == NULL)
    return mp__fail(MP_EINVAL, "end is NULL");
  if (e->remote != NULL)
    return mp__csp_remote_poison(e);
  mp_channel *c = e->ch;
  mp__csp_lock(c);
  atomic_fetch_or_explicit(&c->s->status, CSP_POISONED, memory_order_acq_rel);
  c->s->ring_count = 0; /* buffered messages are dropped */
  mp__csp_poke(c, 0);
  mp__csp_unlock(c);
  return 0;
}

int mp_channel_retire(mp_channel_end *e) {
  if (e != NULL && e->remote != NULL)
    return mp__csp_remote_retire(e);
  if (e == NULL || e->ch == NULL || e->index >= e->ch->max_ends)
    return mp__fail(MP_EINVAL, "end is NULL");
  mp_channel *c = e->ch;
  mp__csp_lock(c);
  csp_end_rec *r = csp_end_rec_of(c, e->index);
  if (atomic_load(&r->gen) == e->gen)
    mp__csp_leave_locked(c, e->index, false);
  mp__csp_unlock(c);
  return 0;
}

/* ---- the sweep ------------------------------------------------------ */

void mp__csp_sweep(mp_channel *c, mp__deadline d) {
  if (c->remote != NULL || mp__csp_lock_until(c, d) != 0)
    return;
  for (uint32_t i = 0; i < c->max_ends; i++) {
    csp_end_rec *r = csp_end_rec_of(c, i);
    if (atomic_load(&r->kind) == CSP_END_FREE)
      continue;
    if (!mp__csp_id_gone(c, atomic_load(&r->pid)))
      continue;
    /* Died inside a write: poison (a message the network expected may be
     * lost). Anything else: retire. */
    bool poison = atomic_load(&r->busy) == CSP_BUSY_WRITE;
    mp__csp_leave_locked(c, i, poison);
  }
  for (uint32_t i = 0; i < c->max_waiting; i++) {
    csp_slot *sl = csp_slot_of(c, i);
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    if (csp_st(w) == ST_FREE)
      continue;
    if (mp__csp_id_gone(c, sl->owner_pid)) {
      /* A dead owner's offer: free it; a partner waiting on it sees the
       * change and gives up on it. */
      if (atomic_compare_exchange_strong(
              &sl->state, &w, csp_word(csp_seq(w), ST_FREE, 0)))
        mp__csp_wake(&sl->bell, &sl->sleepers);
    }
  }
  mp__csp_unlock(c);
}

int mp_channel_stats_get(mp_channel *c, mp_channel_stats *st) {
  if (c == NULL || st == NULL)
    return mp__fail(MP_EINVAL, "channel or stats is NULL");
  if (c->remote != NULL)
    return mp__csp_remote_stats(c, st);
  mp__csp_sweep(c, mp__deadline_from_timeout(MP__SYNC_SLICE_NS / 1e9));
  mp__csp_lock(c);
  uint32_t bits = mp__csp_status(c);
  st->readers = c->s->nreaders;
  st->writers = c->s->nwriters;
  st->buffered = MP__MIN(c->s->ring_count, c->buffer);
  st->poisoned = (bits & CSP_POISONED) != 0;
  st->readers_retired = (bits & CSP_READERS_RETIRED) != 0;
  st->writers_retired = (bits & CSP_WRITERS_RETIRED) != 0;
  mp__csp_unlock(c);
  return 0;
}
