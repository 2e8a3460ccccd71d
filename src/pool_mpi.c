/* pool_mpi.c - rank 0's side of the MPI pool backend: the proxy thread
 * that stands in for one worker rank in the pool's slot. It runs where a
 * thread worker would (started and reaped by pool_handler.c), takes the
 * descriptors the parent publishes in its slot's ring, sends them to its
 * rank in batches, several in flight, and writes each result back into
 * the slot's output area and ring exactly as a local worker does, so the
 * pool's bookkeeping (pool.c) does not know the difference; then, unlike
 * a local worker, it collects them into the pool itself and publishes
 * more work (hand_over), so a batch wakes one thread here. It declares
 * its rank dead when it hears nothing from it for MP__MPI_DEAD_NS: the
 * slot's thread then ends with the oldest descriptor in flight begun, so
 * the parent fails its first item with MP_EWORKERDIED and runs the rest
 * again elsewhere (pool_handler.c never restarts a dead rank's slot). See
 * mpi/mpi_internal.h for the design and the messages. */
#define _GNU_SOURCE
#include <string.h>
#include <time.h>

#include "mpi/mpi_internal.h"
#include "pool_internal.h"

#if MP_HAVE_MPI

/* Batches in flight per rank, and the most descriptors and bytes in one. */
#define MAX_INFLIGHT 3u
#define BATCH_DESCS 128u
#define BATCH_BYTES ((size_t)4 << 20)
#define STOP_WAIT_NS (10 * 1000 * 1000 * 1000LL)
/* The longest a proxy sleeps while results are due (bounds how late it
 * sees abort, stop, or a rank's silence). */
#define POLL_MAX_NS (2 * 1000 * 1000LL)
/* The longest a descriptor's reported run is believed. */
#define MAX_DESC_NS (10 * 1000 * 1000 * 1000LL)

typedef struct sent_desc {
  uint32_t kind, count, out_size;
  uint64_t out_cap;
} sent_desc;

typedef struct proxy {
  mp_pool *p;
  uint32_t slot;
  int rank;
  MPI_Comm comm;
  mp__pool_slot *s;
  unsigned char *in, *out;
  uint64_t in_cap, out_cap;
  uint64_t out_w;
  uint32_t sent, done; /* descriptors sent, completed */
  uint32_t batch_n[MAX_INFLIGHT];
  int64_t batch_t[MAX_INFLIGHT]; /* when each was sent */
  int64_t due[MAX_INFLIGHT];     /* when its results should come (0: ?) */
  uint32_t nbatches, bhead; /* ring of batches in flight */
  sent_desc info[MP__POOL_RING];
  /* BATCH sends in flight (one completes when the rank has polled it in). */
  unsigned char *sbuf[MP__MPI_SENDS];
  MPI_Request sreq[MP__MPI_SENDS];
  uint32_t nsend;
  unsigned char *rbuf;
  size_t rcap;
  int64_t last_seen;
  int64_t free_at;     /* when the rank should have run all it was sent */
  int64_t last_poll;   /* when the last look found no message */
  int64_t per_desc_ns; /* how long a descriptor keeps the rank busy */
} proxy;

static void nap(int64_t ns) {
  struct timespec ts = {0, (long)ns};
  nanosleep(&ts, NULL);
}

static void notify(mp__pool_header *h) {
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&h->parent_sleeping, memory_order_relaxed))
    mp__pool_wake_parent(h);
}

/* sends_reap frees the BATCH sends that completed. Returns whether all
 * have. */
static bool sends_reap(proxy *x) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < x->nsend; i++) {
    int done = 0;
    if (MPI_Test(&x->sreq[i], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS ||
        done) {
      mp__free(x->sbuf[i]);
      continue;
    }
    x->sbuf[k] = x->sbuf[i];
    x->sreq[k] = x->sreq[i];
    k++;
  }
  x->nsend = k;
  return k == 0;
}

/* sends_drop gives up the sends still in flight (the rank is gone, or
 * they are done): their buffers are kept while one may still be read. */
static void sends_drop(proxy *x) {
  for (uint32_t i = 0; i < x->nsend; i++) {
    if (mp__mpi_rank_gone(x->rank)) {
      MPI_Cancel(&x->sreq[i]);
      MPI_Request_free(&x->sreq[i]); /* buffer leaked: MPI may hold it */
    } else if (mp__mpi_wait_req(&x->sreq[i], MP__MPI_DEAD_NS) == 0) {
      mp__free(x->sbuf[i]);
    } else {
      MPI_Request_free(&x->sreq[i]);
    }
  }
  x->nsend = 0;
}

/* poll_msg receives one message from the rank if there is one: its tag
 * and size, or 0 when none. */
static int poll_msg(proxy *x, long *len) {
  MPI_Status st;
  if (!mp__mpi_probe(x->rank, &st))
    return 0;
  *len = mp__mpi_recv_probed(&st, &x->rbuf, &x->rcap);
  x->last_seen = mp__os_now_ns();
  return *len < 0 ? 0 : st.MPI_TAG;
}

static bool silent(proxy *x) {
  return mp__os_now_ns() - x->last_seen > MP__MPI_DEAD_NS;
}

/* chain_due estimates when the rank will have run the batches in flight
 * from the k-th on, the first of them starting at `from` at the earliest:
 * the rank runs them one after the other, each for per_desc_ns a
 * descriptor. The estimates are chained from estimates, not from when
 * this thread happened to see a result, so a late look does not make the
 * next ones later. */
static void chain_due(proxy *x, uint32_t k, int64_t from) {
  int64_t t = k == 0 ? from : x->due[(x->bhead + k - 1) % MAX_INFLIGHT];
  for (; k < x->nbatches; k++) {
    uint32_t b = (x->bhead + k) % MAX_INFLIGHT;
    if (x->per_desc_ns <= 0) {
      x->due[b] = 0;
      continue;
    }
    t = MP__MAX(t, x->batch_t[b]) + x->per_desc_ns * (int64_t)x->batch_n[b];
    x->due[b] = t;
  }
}

/* send_batch sends the published descriptors from x->sent on. */
static int send_batch(proxy *x, uint32_t head) {
  mp_pool *p = x->p;
  /* A third of what is queued at most, so that several batches are in
   * flight and the rank has the next one while this one's results travel
   * back. (The parent queues DEPTH_TARGET_MPI_NS of this rank's work, so
   * a batch is about 1.5 ms of it: few enough messages that their costs,
   * a handful of context switches each, stay small.) */
  uint32_t part = (head - x->done + MAX_INFLIGHT - 1) / MAX_INFLIGHT;
  uint32_t n = MP__MIN(head - x->sent, MP__MIN(part, BATCH_DESCS));
  size_t size = 8;
  uint32_t k;
  for (k = 0; k < n; k++) {
    mp__pool_desc *d = &x->s->ring[(x->sent + k) % MP__POOL_RING];
    size_t name_len = strnlen(p->h->fns[d->fn % MP__POOL_FN_MAX].name,
                              MP__POOL_NAME_MAX);
    size_t add = sizeof(mp__mpi_desc) + mp__mpi_pad8(name_len) +
                 mp__mpi_pad8(d->in_len);
    if (k > 0 && size + add > BATCH_BYTES)
      break;
    size += add;
  }
  n = k;
  unsigned char *buf = mp__alloc(size);
  if (buf == NULL)
    return MP_ENOMEM;
  memcpy(buf, &n, 4);
  memset(buf + 4, 0, 4);
  size_t at = 8;
  for (k = 0; k < n; k++) {
    uint32_t num = x->sent + k;
    mp__pool_desc *d = &x->s->ring[num % MP__POOL_RING];
    /* The parent wrote these before publishing head, and only this thread
     * reads them: no one else maps this memory. */
    const char *name = p->h->fns[d->fn % MP__POOL_FN_MAX].name;
    size_t name_len = strnlen(name, MP__POOL_NAME_MAX);
    uint64_t ctx_al = mp__pool_align(d->ctx_len);
    mp__mpi_desc w = {.kind = d->kind,
                      .name_len = (uint32_t)name_len,
                      .count = d->count,
                      .in_size = d->in_size,
                      .out_size = d->out_size,
                      .ctx_len = d->ctx_len,
                      .in_len = d->in_len - ctx_al,
                      .out_cap = d->out_cap};
    memcpy(buf + at, &w, sizeof w);
    at += sizeof w;
    memset(buf + at, 0, mp__mpi_pad8(name_len));
    memcpy(buf + at, name, name_len);
    at += mp__mpi_pad8(name_len);
    const unsigned char *rec = x->in + d->in_off % x->in_cap;
    /* The context, padded to 8 instead of 16, then the input. */
    memset(buf + at, 0, mp__mpi_pad8(d->ctx_len));
    memcpy(buf + at, rec, d->ctx_len);
    at += mp__mpi_pad8(d->ctx_len);
    memcpy(buf + at, rec + ctx_al, w.in_len);
    at += w.in_len;
    size_t pad = mp__mpi_pad8(mp__mpi_pad8(d->ctx_len) + w.in_len) -
                 (mp__mpi_pad8(d->ctx_len) + w.in_len);
    memset(buf + at, 0, pad);
    at += pad;
    x->info[num % MP__POOL_RING] = (sent_desc){
        .kind = d->kind, .count = d->count, .out_size = d->out_size,
        .out_cap = d->out_cap};
  }
  if (MPI_Isend(buf, (int)at, MPI_BYTE, x->rank, MP__MPI_BATCH, x->comm,
                &x->sreq[x->nsend]) != MPI_SUCCESS) {
    mp__free(buf);
    return MP_EIO;
  }
  x->sbuf[x->nsend++] = buf;
  mp__mpi_trace("p_send", x->rank, n);
  if (x->done == x->sent)
    atomic_store_explicit(&x->s->started, x->done + 1, memory_order_release);
  x->sent += n;
  uint32_t b = (x->bhead + x->nbatches) % MAX_INFLIGHT;
  x->batch_n[b] = n;
  x->batch_t[b] = mp__os_now_ns();
  x->nbatches++;
  chain_due(x, x->nbatches - 1, x->batch_t[b]);
  return 0;
}

/* reserve finds room for need bytes of output, waiting for the parent to
 * collect. Returns the virtual offset, or UINT64_MAX on abort. */
static uint64_t reserve(proxy *x, uint64_t need) {
  for (;;) {
    uint64_t f = atomic_load_explicit(&x->s->out_free, memory_order_acquire);
    uint64_t at = mp__pool_area_reserve(x->out_w, f, x->out_cap, need);
    if (at != UINT64_MAX)
      return at;
    if (atomic_load_explicit(&x->s->abort, memory_order_acquire))
      return UINT64_MAX;
    mp__pool_wake_parent(x->p->h);
    nap(20000);
  }
}

/* hand_over takes the results just written into the slot in, as the
 * result thread would once woken: collects them and publishes the work
 * that makes room for (into this proxy's ring and the others'). So a
 * batch's results wake no other thread of rank 0, and this thread sends
 * the next batch in the same wake; the result thread is kicked only for
 * what it alone does (callbacks, readiness, progress: mp__pool_collect
 * kicks it when a job completes). While the result thread is ending this
 * slot (not READY), it is left to it. */
static void hand_over(proxy *x) {
  mp_pool *p = x->p;
  pthread_mutex_lock(&p->lock);
  if (p->workers[x->slot].state != MP__PW_READY) {
    pthread_mutex_unlock(&p->lock);
    notify(p->h);
    return;
  }
  mp__pool_collect(p, x->slot);
  if (p->state != MP__POOL_TERMINATE)
    mp__pool_dispatch(p);
  if (p->progress_head != NULL)
    mp__pool_kick(p);
  pthread_mutex_unlock(&p->lock);
}

/* on_result writes the results of the oldest batch into the slot.
 * Returns 0, MP_EPROTO for a message that does not match it, or
 * MP_ECLOSED on abort. */
static int on_result(proxy *x, const unsigned char *m, long len) {
  if (x->nbatches == 0 || len < 8)
    return MP_EPROTO;
  uint32_t n;
  memcpy(&n, m, 4);
  if (n != x->batch_n[x->bhead])
    return MP_EPROTO;
  mp__mpi_trace("p_recv", x->rank, n);
  int64_t now = mp__os_now_ns();
  /* When the results came: between the last look that found nothing and
   * now; the estimate if it lies there. */
  int64_t due = x->due[x->bhead];
  int64_t came = due == 0 ? now : MP__MIN(MP__MAX(due, x->last_poll), now);
  size_t at = 8;
  for (uint32_t k = 0; k < n; k++) {
    mp__mpi_res r;
    if (at + sizeof r > (size_t)len)
      return MP_EPROTO;
    memcpy(&r, m + at, sizeof r);
    at += sizeof r;
    if (r.out_len > (size_t)len - at)
      return MP_EPROTO;
    uint32_t num = x->done;
    sent_desc *si = &x->info[num % MP__POOL_RING];
    mp__pool_desc *d = &x->s->ring[num % MP__POOL_RING];
    if (si->kind == MP__POOL_DESC_APPLY) {
      if (r.out_len > si->out_cap)
        return MP_EPROTO;
      uint64_t need = mp__pool_align(si->out_cap);
      uint64_t o = reserve(x, need);
      if (o == UINT64_MAX)
        return MP_ECLOSED;
      memcpy(x->out + o % x->out_cap, m + at, r.out_len);
      d->out_off = o;
      d->out_len = r.out_len;
      d->status = r.status;
      x->out_w = o + mp__pool_align(r.out_len);
    } else {
      uint64_t res = (uint64_t)si->count * si->out_size;
      if (r.out_len != res + (uint64_t)si->count * 4)
        return MP_EPROTO;
      uint64_t so = (res + 3) & ~(uint64_t)3;
      uint64_t need = mp__pool_align(so + (uint64_t)si->count * 4);
      uint64_t o = reserve(x, need);
      if (o == UINT64_MAX)
        return MP_ECLOSED;
      unsigned char *rec = x->out + o % x->out_cap;
      memcpy(rec, m + at, res);
      memcpy(rec + so, m + at + res, (size_t)si->count * 4);
      d->out_off = o;
      d->out_len = need;
      d->status = 0;
      x->out_w = o + need;
    }
    /* How long the descriptor kept the rank busy (its throughput, whatever
     * its local workers; rank.c): the run time the parent sets its queue
     * depth by, and this thread its expectations. It falls fast and
     * rises slowly: a rank's first batch of a pool takes longer than its
     * tasks (its local worker wakes), and an estimate too long makes this
     * thread sleep past results that came early, while the rank, whose
     * batches rank 0 sends only on results, runs dry; one too short costs
     * a look or two. */
    if (k == 0 && r.run_ns <= MAX_DESC_NS) {
      int64_t per = (int64_t)r.run_ns;
      if (x->per_desc_ns == 0)
        x->per_desc_ns = per;
      else if (per < x->per_desc_ns)
        x->per_desc_ns = (x->per_desc_ns + 3 * per) / 4;
      else
        x->per_desc_ns = (3 * x->per_desc_ns + per) / 4;
    }
    d->run_ns = (uint64_t)x->per_desc_ns;
    at += mp__mpi_pad8(r.out_len);
    x->done++;
    atomic_store_explicit(&x->s->started,
                          x->done + (x->done != x->sent ? 1 : 0),
                          memory_order_relaxed);
    atomic_store_explicit(&x->s->tail, x->done, memory_order_release);
  }
  x->bhead = (x->bhead + 1) % MAX_INFLIGHT;
  x->nbatches--;
  chain_due(x, 0, came);
  hand_over(x);
  return 0;
}

/* finish tells the rank to close (or terminate) its local pool and waits
 * for it, bounded. */
static void finish(proxy *x, int tag) {
  while (!sends_reap(x) && !silent(x))
    nap(20000);
  if (mp__mpi_send(NULL, 0, x->rank, tag, MP__MPI_DEAD_NS) != 0)
    return;
  int64_t until = mp__os_now_ns() + STOP_WAIT_NS;
  while (mp__os_now_ns() < until && !silent(x)) {
    long len;
    int t = poll_msg(x, &len);
    if (t == MP__MPI_CLOSED)
      return;
    if (t == 0)
      nap(50000);
  }
}

/* open_rank opens the rank's local pool. Returns its rc, or MP_EWORKERDIED
 * when the rank is silent. */
static int open_rank(proxy *x) {
  mp_pool *p = x->p;
  size_t args = (size_t)p->g.initargs_size;
  size_t size = sizeof(mp__mpi_open) + args;
  unsigned char *buf = mp__calloc(1, size);
  if (buf == NULL)
    return MP_ENOMEM;
  static _Atomic uint32_t open_seq;
  uint32_t seq = atomic_fetch_add(&open_seq, 1) + 1;
  mp__mpi_open o = {.processes = p->mpi_processes,
                    .seq = seq,
                    .maxtasks = p->g.maxtasks,
                    .task_timeout = p->mpi_task_timeout,
                    .max_input = p->max_input,
                    .max_result = p->max_result,
                    .initargs_size = args};
  if (p->g.init_fn >= 0)
    memcpy(o.init_name, p->h->fns[p->g.init_fn].name, sizeof o.init_name);
  memcpy(buf, &o, sizeof o);
  if (args > 0)
    memcpy(buf + sizeof o, (const char *)p->h + p->g.initargs_off, args);
  /* Bounded: a rank that died while no pool was open (no heartbeats
   * then) never takes a message too big to go eagerly. */
  int rc = mp__mpi_send(buf, (int)size, x->rank, MP__MPI_OPEN,
                        MP__MPI_DEAD_NS);
  if (rc == MP_ETIMEDOUT)
    return MP_EWORKERDIED; /* buf stays: MPI may still read it */
  mp__free(buf);
  while (rc == 0) {
    long len;
    int t = poll_msg(x, &len);
    if (t == MP__MPI_OPENED) {
      mp__mpi_opened rep;
      if (len < (long)sizeof rep)
        return MP_EPROTO;
      memcpy(&rep, x->rbuf, sizeof rep);
      if (rep.seq != seq)
        continue; /* the reply to an OPEN of a pool that failed */
      return rep.rc;
    }
    if (t != 0)
      continue;
    if (silent(x))
      return MP_EWORKERDIED;
    if (atomic_load_explicit(&x->s->abort, memory_order_acquire))
      return MP_ECLOSED;
    nap(50000);
  }
  return rc;
}

/* wait_work sleeps until the parent publishes, is told to stop, or a
 * while passes (to hear heartbeats). */
static void wait_work(proxy *x, int64_t ns) {
  mp__pool_slot *s = x->s;
  uint32_t seq = atomic_load_explicit(&s->wake, memory_order_acquire);
  atomic_store_explicit(&s->sleeping, MP__POOL_WAIT_WORK,
                        memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&s->head, memory_order_acquire) == x->sent &&
      !atomic_load_explicit(&s->stop, memory_order_acquire) &&
      !atomic_load_explicit(&s->abort, memory_order_acquire))
    mp__os_futex_wait((uint32_t *)&s->wake, seq, mp__os_now_ns() + ns, true);
  atomic_store_explicit(&s->sleeping, MP__POOL_AWAKE, memory_order_relaxed);
}

void mp__pool_mpi_proxy_main(void *arg) {
  const mp__pool_boot *b = arg;
  mp_pool *p = b->pool;
  proxy *x = mp__calloc(1, sizeof *x);
  mp__pool_header *h = b->seg;
  mp__pool_slot *s = mp__pool_slot_at(h, &b->geom, b->slot);
  if (x == NULL) {
    atomic_store_explicit(&s->init_rc, MP_ENOMEM, memory_order_relaxed);
    atomic_store_explicit(&s->state, MP__POOL_W_INIT_FAILED,
                          memory_order_release);
    notify(h);
    return;
  }
  x->p = p;
  x->slot = b->slot;
  x->rank = (int)b->slot + 1;
  x->comm = mp__mpi_comm();
  x->s = s;
  x->in = mp__pool_in_area(h, &b->geom, b->slot);
  x->out = mp__pool_out_area(h, &b->geom, b->slot);
  x->in_cap = b->geom.in_cap;
  x->out_cap = b->geom.out_cap;
  x->out_w = s->out_base;
  x->sent = x->done = s->tail_base;
  x->last_seen = mp__os_now_ns();

  int rc = open_rank(x);
  if (rc != 0) {
    if (rc == MP_EWORKERDIED)
      mp__mpi_mark_gone(x->rank);
    atomic_store_explicit(&s->init_rc, rc, memory_order_relaxed);
    atomic_store_explicit(&s->state, MP__POOL_W_INIT_FAILED,
                          memory_order_release);
    notify(h);
    goto out_failed;
  }
  atomic_store_explicit(&s->state, MP__POOL_W_READY, memory_order_release);
  notify(h);

  int64_t idle = 0;
  for (;;) {
    mp__mpi_trace("p_wake", x->rank, 0);
    if (atomic_load_explicit(&s->abort, memory_order_acquire)) {
      finish(x, MP__MPI_TERMINATE);
      break;
    }
    bool progress = false;
    uint32_t head = atomic_load_explicit(&s->head, memory_order_acquire);
    if (head - x->done > MP__POOL_RING)
      break; /* cannot happen: the parent is this process */
    bool can_send = x->nbatches < MAX_INFLIGHT &&
                    (sends_reap(x) || x->nsend < MP__MPI_SENDS);
    if (head != x->sent && can_send) {
      if (send_batch(x, head) != 0)
        break;
      progress = true;
    }
    long len;
    int t = poll_msg(x, &len);
    if (t == 0)
      x->last_poll = mp__os_now_ns();
    if (t == MP__MPI_RESULT) {
      int r = on_result(x, x->rbuf, len);
      if (r == MP_ECLOSED)
        continue; /* abort: handled above */
      if (r != 0) {
        mp__mpi_mark_gone(x->rank); /* it speaks nonsense: stop using it */
        break;
      }
      progress = true;
    } else if (t != 0) {
      progress = true; /* a heartbeat */
    }
    if (x->done == x->sent && head == x->sent &&
        atomic_load_explicit(&s->stop, memory_order_acquire)) {
      finish(x, MP__MPI_CLOSE);
      break;
    }
    if (x->done != x->sent && silent(x)) {
      mp__mpi_mark_gone(x->rank);
      break;
    }
    if (progress) {
      idle = 0;
      continue;
    }
    if (x->done == x->sent && head == x->sent) {
      if (silent(x)) {
        mp__mpi_mark_gone(x->rank);
        break;
      }
      wait_work(x, 100 * 1000 * 1000);
      continue;
    }
    /* Results due. Sleep until the oldest batch's are expected (from how
     * long a descriptor has taken on this rank) and an eighth more (they
     * are rarely early, and a little late costs nothing while the rank has
     * the next batches), then poll, napping longer while none come: about
     * one wakeup per batch, not one per few µs (each costs a context
     * switch and MPI's progress loop). While another batch could be sent,
     * sleep where the parent's next publish wakes this thread. */
    int64_t now = mp__os_now_ns();
    int64_t batch_ns = x->per_desc_ns * (int64_t)x->batch_n[x->bhead];
    int64_t slack = MP__MIN(batch_ns / 16, 100000);
    int64_t ahead = x->due[x->bhead] + slack - now;
    int64_t ns;
    if (x->nbatches > 0 && x->due[x->bhead] != 0 && ahead > 30000) {
      ns = MP__MIN(ahead, POLL_MAX_NS);
      idle = 0;
    } else {
      /* Unknown yet (this pool's first batch): up to 1 ms, as it may be
       * one long task. */
      int64_t cap = x->per_desc_ns <= 0 ? 1000000 : batch_ns / 16;
      cap = MP__MAX(20000, MP__MIN(cap, x->per_desc_ns <= 0 ? 1000000
                                                           : 200000));
      idle = idle == 0 ? 2000 : MP__MIN(idle * 2, cap);
      ns = idle;
    }
    if (can_send)
      wait_work(x, ns);
    else
      nap(ns);
  }
  sends_drop(x);
  mp__mpi_trace_dump();
  atomic_store_explicit(&s->state, MP__POOL_W_EXITING, memory_order_release);
  notify(h);
out_failed:
  mp__free(x->rbuf);
  mp__free(x);
}

#else

void mp__pool_mpi_proxy_main(void *arg) { (void)arg; }

#endif
