/* rank.c - a worker rank of the MPI pool backend: the hook mp_child_main
 * calls under an MPI launcher, and the loop a worker rank runs instead of
 * main. The rank opens a local process pool when rank 0 opens an MPI
 * pool, runs each batch of descriptors it receives on that pool (a run of
 * map chunks of one function as one local map, a bytes task as one
 * apply_async), and sends the batches' results back in the order the
 * batches came. The local pool is driven (pool_internal.h): its result
 * loop runs on the rank's main thread, which does the rank's work in the
 * loop's hook (rank_hook), so a finished local chunk wakes one thread. While a pool is open, a thread of its own sends rank 0 a
 * heartbeat every MP__MPI_HEARTBEAT_NS, whatever the loop is doing (a slow
 * initializer, a close that waits for long tasks), so rank 0 can tell a
 * dead rank from a busy one. See mpi_internal.h for the design. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpi/mpi_internal.h"
#include "pool_internal.h"

#if MP_HAVE_MPI

/* How long after a pool opened or a batch's results went an idle rank
 * looks for the next batch every IDLE_SHORT_NS (see rank_loop). */
#define IDLE_RECENT_NS (20 * 1000 * 1000LL)
#define IDLE_SHORT_NS (100 * 1000LL)
/* While it holds work: the longest between looks (close, terminate, an
 * OPEN stay this prompt; the heartbeat has its own thread), and how long
 * before its held work should run out it looks once for the next batch
 * (see rank_hook). */
#define BUSY_LOOK_NS (4 * 1000 * 1000LL)
#define LOOK_AHEAD_NS (150 * 1000LL)

/* One local submission: a run of map descriptors, or one bytes task. */
typedef struct group {
  int kind;
  mp_async_result *r; /* NULL: it failed at submission (rc) */
  int rc;
  uint32_t ndesc, per; /* map: descriptors and items per descriptor */
  uint32_t out_size;
  unsigned char *in, *out;
  int *statuses;
  uint64_t out_cap; /* apply */
} group;

typedef struct batch {
  struct batch *next;
  uint32_t ngroups;
  uint32_t ndesc;
  int64_t t0;
  group *groups;
} batch;

typedef struct rank_state {
  MPI_Comm comm;
  mp_pool *pool;
  batch *head, *tail;
  bool closing;
  bool keep_chunks; /* maxtasksperchild counts the sender's chunks */
  int64_t last_done; /* when the last batch's results were sent */
  int64_t last_busy; /* when a pool opened or a batch's results went */
  unsigned char *rbuf;
  size_t rcap;
  /* RESULT messages in flight: a send completes only when rank 0 has
   * polled it in, and the next batch's results must not wait for that. */
  unsigned char *sbuf[MP__MPI_SENDS];
  MPI_Request sreq[MP__MPI_SENDS];
  uint32_t nsend;
  int64_t idle_ns; /* the last idle nap */
  int64_t per_desc_ns; /* how long a descriptor keeps this rank busy (0: ?) */
  /* The local pool's loop runs on this thread (mp__pool_drive), and this
   * rank's work in its hook: */
  bool opened;   /* OPENED was sent for it */
  bool stopping; /* it was told to end: take no message until it has */
  int after;     /* what to do once it has ended (AFTER_*) */
  long after_len; /* AFTER_OPEN, _EXIT: the message's size (in rbuf) */
  uint32_t open_seq; /* the OPEN's, echoed in OPENED */
  pthread_t hb;
  bool hb_started;
} rank_state;

enum { AFTER_CLOSED, AFTER_OPEN, AFTER_EXIT };

static void group_free(group *g) {
  mp_async_result_free(g->r);
  mp__free(g->in);
  mp__free(g->out);
  mp__free(g->statuses);
}

static void batch_free(batch *b) {
  for (uint32_t i = 0; i < b->ngroups; i++)
    group_free(&b->groups[i]);
  mp__free(b->groups);
  mp__free(b);
}

static void drop_batches(rank_state *rs) {
  while (rs->head != NULL) {
    batch *b = rs->head;
    rs->head = b->next;
    batch_free(b);
  }
  rs->tail = NULL;
}

/* sends_reap frees the RESULT sends that completed (all of them, waiting,
 * when wait). Returns whether one more can start. */
static bool sends_reap(rank_state *rs, bool wait) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < rs->nsend; i++) {
    int done = 0;
    if (wait)
      done = mp__mpi_wait_req(&rs->sreq[i], -1) == 0;
    else if (MPI_Test(&rs->sreq[i], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      done = 1;
    if (done) {
      mp__free(rs->sbuf[i]);
      continue;
    }
    rs->sbuf[k] = rs->sbuf[i];
    rs->sreq[k] = rs->sreq[i];
    k++;
  }
  rs->nsend = k;
  return k < MP__MPI_SENDS;
}

static void send_wait(rank_state *rs) { (void)sends_reap(rs, true); }

static void send_small(rank_state *rs, int tag, const void *data, int len) {
  (void)rs;
  (void)mp__mpi_send(data, len, 0, tag, -1);
}

/* default_processes is this rank's share of its host's cores, the size of
 * its local pool when rank 0 asks for 0: the CPUs it may run on when the
 * launcher bound it to fewer than the host has, else the host's CPUs
 * divided among the worker ranks on it (so `mpirun -n 3` on one host of 2
 * CPUs runs 2 workers in all, as a local Pool would, not 4). */
static int default_processes(void) {
  int cpus = mp_cpu_count();
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online > 0 && cpus < online)
    return cpus;
  int n = cpus / mp__mpi_node_workers();
  return n > 0 ? n : 1;
}

static void nap(int64_t ns) {
  struct timespec ts = {0, (long)ns};
  nanosleep(&ts, NULL);
}

/* The heartbeat thread: sends while hb_active (a pool is open). */
static _Atomic int hb_active, hb_stop;

static void *heartbeat_main(void *arg) {
  (void)arg;
  while (!atomic_load(&hb_stop)) {
    if (atomic_load(&hb_active))
      (void)mp__mpi_send(NULL, 0, 0, MP__MPI_HEARTBEAT, -1);
    nap(MP__MPI_HEARTBEAT_NS);
  }
  return NULL;
}

static int64_t rank_hook(mp_pool *p, void *arg);
static void rank_exit(rank_state *rs, const unsigned char *m, long n);

static void send_opened(rank_state *rs, int rc, uint32_t seq) {
  mp__mpi_opened rep = {.rc = rc,
                        .pid = (int32_t)getpid(),
                        .seq = seq,
                        .processes = rc == 0 ? mp_pool_processes(rs->pool)
                                             : 0};
  send_small(rs, MP__MPI_OPENED, &rep, sizeof rep);
}

/* run_pool opens the local pool an OPEN asks for and runs it on this
 * thread until rank 0 closes or terminates it (or, out of turn, opens
 * another or lets the rank go). The pool's result loop and this rank's
 * work share the thread (rank_hook): a local chunk that finishes wakes
 * only it, which collects the chunk and sends the batch's results in the
 * same wake. */
static void run_pool(rank_state *rs, const unsigned char *m, long n) {
  for (;;) {
    mp__mpi_open o;
    int rc = 0;
    uint32_t seq = 0;
    if (n < (long)sizeof o) {
      rc = MP_EPROTO;
    } else {
      memcpy(&o, m, sizeof o);
      seq = o.seq;
      o.init_name[sizeof o.init_name - 1] = '\0';
      if (o.initargs_size > (uint64_t)(n - (long)sizeof o))
        rc = MP_EPROTO;
    }
    if (rc == 0) {
      mp_pool_opts po = {.processes = o.processes > 0 ? o.processes
                                                      : default_processes(),
                         .maxtasksperchild = (unsigned long)o.maxtasks,
                         .task_timeout = o.task_timeout,
                         .max_input_size = o.max_input,
                         .max_result_size = o.max_result,
                         .backend = MP_POOL_BACKEND_LOCAL};
      if (o.init_name[0] != '\0') {
        po.initializer = (mp_pool_init_fn)mp__pool_registry_find(
            MP__POOL_FN_INIT, o.init_name);
        if (po.initializer == NULL)
          rc = MP_ENOENT;
        po.initargs = o.initargs_size ? m + sizeof o : NULL;
        po.initargs_size = o.initargs_size;
      }
      rs->keep_chunks = o.maxtasks != 0;
      /* The pool keeps its own copy of the initargs: m may change. */
      if (rc == 0)
        rc = mp__pool_new_driven(&rs->pool, &po);
    }
    if (rc != 0) {
      rs->last_busy = mp__os_now_ns();
      send_opened(rs, rc, seq);
      return;
    }
    rs->opened = rs->stopping = rs->closing = false;
    rs->after = AFTER_CLOSED;
    rs->idle_ns = 0;
    rs->per_desc_ns = 0; /* another pool, maybe other tasks */
    rs->open_seq = seq;
    rc = mp__pool_drive(rs->pool, rank_hook, rs);
    if (!rs->opened) {
      /* Its workers could not start (an initializer failed...). */
      mp_pool_free(rs->pool);
      rs->pool = NULL;
      rs->last_busy = mp__os_now_ns();
      send_opened(rs, rc != 0 ? rc : MP_ECLOSED, seq);
      return;
    }
    send_wait(rs);
    mp__mpi_trace_dump();
    drop_batches(rs);
    mp_pool_free(rs->pool);
    rs->pool = NULL;
    rs->closing = rs->stopping = false;
    switch (rs->after) {
    case AFTER_OPEN:
      m = rs->rbuf;
      n = rs->after_len;
      continue; /* the next pool, at once */
    case AFTER_EXIT:
      rank_exit(rs, rs->rbuf, rs->after_len);
      return; /* not reached */
    default:
      atomic_store(&hb_active, 0);
      send_small(rs, MP__MPI_CLOSED, NULL, 0);
      return;
    }
  }
}

/* parse_batch turns a BATCH message into local submissions. */
static int on_batch(rank_state *rs, const unsigned char *m, long n) {
  if (rs->pool == NULL || n < 4)
    return MP_EPROTO;
  uint32_t nd;
  memcpy(&nd, m, 4);
  /* First pass: check every length, count descriptors. */
  size_t at = 8;
  batch *b = mp__calloc(1, sizeof *b);
  if (b == NULL)
    return MP_ENOMEM;
  b->groups = mp__calloc(nd ? nd : 1, sizeof *b->groups);
  if (b->groups == NULL) {
    mp__free(b);
    return MP_ENOMEM;
  }
  b->ndesc = nd;
  b->t0 = mp__os_now_ns();
  /* Walk descriptors, grouping runs of compatible map chunks. */
  size_t k = 0;
  int rc = 0;
  while (k < nd && rc == 0) {
    mp__mpi_desc d;
    if (at + sizeof d > (size_t)n) {
      rc = MP_EPROTO;
      break;
    }
    memcpy(&d, m + at, sizeof d);
    size_t name_at = at + sizeof d;
    size_t rec_at = name_at + mp__mpi_pad8(d.name_len);
    size_t ctx_al = mp__mpi_pad8(d.ctx_len);
    if (d.name_len > MP__POOL_NAME_MAX || d.ctx_len > MP_POOL_CONTEXT_MAX ||
        d.in_len > (size_t)n || rec_at > (size_t)n ||
        ctx_al + d.in_len > (size_t)n - rec_at ||
        (d.kind == MP__POOL_DESC_MAP &&
         (uint64_t)d.count * d.in_size != d.in_len)) {
      rc = MP_EPROTO;
      break;
    }
    char name[MP__POOL_NAME_MAX + 1];
    memcpy(name, m + name_at, d.name_len);
    name[d.name_len] = '\0';
    const unsigned char *ctx = m + rec_at;
    group *g = &b->groups[b->ngroups++];
    g->kind = (int)d.kind;
    if (d.kind == MP__POOL_DESC_APPLY) {
      g->ndesc = 1;
      g->out_cap = d.out_cap;
      g->out = mp__alloc(d.out_cap ? d.out_cap : 1);
      if (g->out == NULL) {
        g->rc = MP_ENOMEM;
      } else {
        mp_pool_task_fn fn = (mp_pool_task_fn)mp__pool_registry_find(
            MP__POOL_FN_TASK, name);
        mp_pool_apply_opts ao = {.out = g->out, .out_cap = d.out_cap,
                                 .context = d.ctx_len ? ctx : NULL,
                                 .context_size = d.ctx_len};
        g->rc = fn == NULL ? MP_ENOENT
                           : mp_pool_apply_async(rs->pool, &g->r, fn,
                                                 ctx + ctx_al, d.in_len, &ao);
      }
      at = rec_at + mp__mpi_pad8(ctx_al + d.in_len);
      k++;
      continue;
    }
    if (d.kind != MP__POOL_DESC_MAP) {
      rc = MP_EPROTO;
      break;
    }
    /* The run of map descriptors like this one. */
    size_t run_at = at, j = k;
    uint64_t items = 0;
    for (; j < nd; j++) {
      mp__mpi_desc e;
      if (run_at + sizeof e > (size_t)n)
        break;
      memcpy(&e, m + run_at, sizeof e);
      size_t e_name = run_at + sizeof e;
      size_t e_rec = e_name + mp__mpi_pad8(e.name_len);
      if (e.kind != MP__POOL_DESC_MAP || e.name_len != d.name_len ||
          e.in_size != d.in_size || e.out_size != d.out_size ||
          e.count != d.count || e.ctx_len != d.ctx_len ||
          e_rec > (size_t)n || e.in_len != (uint64_t)e.count * e.in_size ||
          mp__mpi_pad8(e.ctx_len) + e.in_len > (size_t)n - e_rec ||
          memcmp(m + e_name, name, d.name_len) != 0 ||
          memcmp(m + e_rec, ctx, d.ctx_len) != 0)
        break;
      items += e.count;
      run_at = e_rec + mp__mpi_pad8(mp__mpi_pad8(e.ctx_len) + e.in_len);
    }
    g->ndesc = (uint32_t)(j - k);
    g->per = d.count;
    g->out_size = d.out_size;
    size_t in_bytes = (size_t)items * d.in_size;
    size_t out_bytes = (size_t)items * d.out_size;
    g->in = mp__alloc(in_bytes > 0 ? in_bytes : 1);
    g->out = mp__alloc(out_bytes > 0 ? out_bytes : 1);
    g->statuses = mp__calloc(items ? items : 1, sizeof(int));
    if (g->in == NULL || g->out == NULL || g->statuses == NULL) {
      g->rc = MP_ENOMEM;
    } else {
      size_t off = 0;
      for (size_t q = k; q < j; q++) {
        mp__mpi_desc e;
        memcpy(&e, m + at, sizeof e);
        size_t e_rec = at + sizeof e + mp__mpi_pad8(e.name_len);
        memcpy(g->in + off, m + e_rec + mp__mpi_pad8(e.ctx_len), e.in_len);
        off += e.in_len;
        at = e_rec + mp__mpi_pad8(mp__mpi_pad8(e.ctx_len) + e.in_len);
      }
      mp_pool_map_fn fn =
          (mp_pool_map_fn)mp__pool_registry_find(MP__POOL_FN_MAP, name);
      /* Local chunks: one per local worker, whatever the sender's (the
       * run's results go back together, and an item's status, timeout and
       * crash are its own either way), so that small chunks cost the
       * local pool one descriptor each for many items, and a big chunk
       * still spreads over this rank's workers. One, not two: every local
       * chunk wakes the local pool's result thread, and a worker that
       * ends its chunk early takes the next batch's (rank 0 keeps two or
       * three batches queued here). With maxtasksperchild, which counts
       * chunks, the sender's or smaller. */
      size_t lp = (size_t)mp_pool_processes(rs->pool);
      size_t cs = (items + lp - 1) / lp;
      if (rs->keep_chunks)
        cs = MP__MIN(cs, (size_t)(d.count ? d.count : 1));
      cs = MP__MAX((size_t)1, cs);
      mp_pool_map_opts mo = {.chunksize = cs,
                             .statuses = g->statuses,
                             .context = d.ctx_len ? ctx : NULL,
                             .context_size = d.ctx_len};
      g->rc = fn == NULL ? MP_ENOENT
                         : mp_pool_map_async(rs->pool, &g->r, fn, g->in,
                                             items, d.in_size, g->out,
                                             d.out_size, &mo);
    }
    at = run_at;
    k = j;
  }
  if (rc != 0) {
    batch_free(b);
    return rc;
  }
  if (rs->tail != NULL)
    rs->tail->next = b;
  else
    rs->head = b;
  rs->tail = b;
  return 0;
}

static bool batch_ready(const batch *b) {
  for (uint32_t i = 0; i < b->ngroups; i++)
    if (b->groups[i].r != NULL && !mp_async_result_ready(b->groups[i].r))
      return false;
  return true;
}

/* send_result sends the results of the oldest batch (ready). */
static int send_result(rank_state *rs, batch *b) {
  /* How long the batch kept this rank busy: from when it came, or when
   * the previous one was done if later (the local pool runs batches in
   * the order they came), to now. Rank 0 expects results, and sizes its
   * queue, by it. */
  int64_t now = mp__os_now_ns();
  uint64_t run_ns = (uint64_t)(now - MP__MAX(b->t0, rs->last_done));
  rs->last_done = now;
  size_t size = 8;
  for (uint32_t i = 0; i < b->ngroups; i++) {
    group *g = &b->groups[i];
    if (g->kind == MP__POOL_DESC_APPLY) {
      size_t len = 0;
      if (g->r != NULL)
        (void)mp_async_result_data(g->r, &len);
      size += sizeof(mp__mpi_res) + mp__mpi_pad8(len);
    } else {
      size += g->ndesc * (sizeof(mp__mpi_res) +
                          mp__mpi_pad8((uint64_t)g->per *
                                       (g->out_size + sizeof(int32_t))));
    }
  }
  if (rs->nsend == MP__MPI_SENDS)
    return MP_EBUSY;
  unsigned char *buf = mp__alloc(size);
  if (buf == NULL)
    return MP_ENOMEM;
  memcpy(buf, &b->ndesc, 4);
  size_t at = 8;
  uint64_t per_ns = b->ndesc ? run_ns / b->ndesc : run_ns;
  rs->per_desc_ns = rs->per_desc_ns == 0
                        ? (int64_t)per_ns
                        : (3 * rs->per_desc_ns + (int64_t)per_ns) / 4;
  for (uint32_t i = 0; i < b->ngroups; i++) {
    group *g = &b->groups[i];
    if (g->kind == MP__POOL_DESC_APPLY) {
      mp__mpi_res r = {.run_ns = per_ns};
      size_t len = 0;
      if (g->r == NULL) {
        r.status = g->rc;
      } else {
        r.status = mp_async_result_get(g->r, 0);
        (void)mp_async_result_data(g->r, &len);
      }
      r.out_len = len;
      memcpy(buf + at, &r, sizeof r);
      at += sizeof r;
      if (len > 0)
        memcpy(buf + at, g->out, len);
      at += mp__mpi_pad8(len);
      continue;
    }
    for (uint32_t q = 0; q < g->ndesc; q++) {
      uint64_t res = (uint64_t)g->per * g->out_size;
      mp__mpi_res r = {.out_len = res + (uint64_t)g->per * 4,
                       .run_ns = per_ns};
      memcpy(buf + at, &r, sizeof r);
      at += sizeof r;
      if (res > 0)
        memcpy(buf + at, g->out + (size_t)q * res, res);
      int32_t *st = (int32_t *)(buf + at + res);
      for (uint32_t k = 0; k < g->per; k++) {
        int v = g->r == NULL ? g->rc : g->statuses[(size_t)q * g->per + k];
        memcpy(&st[k], &v, 4);
      }
      at += mp__mpi_pad8(r.out_len);
    }
  }
  if (MPI_Isend(buf, (int)at, MPI_BYTE, 0, MP__MPI_RESULT, rs->comm,
                &rs->sreq[rs->nsend]) != MPI_SUCCESS) {
    mp__free(buf);
    return MP_EIO;
  }
  rs->sbuf[rs->nsend++] = buf;
  return 0;
}

/* rank_exit leaves the job (EXIT: m, n), the pool already gone. */
static void rank_exit(rank_state *rs, const unsigned char *m, long n) {
  send_wait(rs);
  atomic_store(&hb_stop, 1);
  if (rs->hb_started)
    pthread_join(rs->hb, NULL);
  /* One byte 1: a rank died, and Open MPI's MPI_Finalize may wait for it
   * forever: leave without. */
  if (n >= 1 && m[0] == 1)
    _exit(0);
  mp__free(rs->rbuf);
  MPI_Comm_free(&rs->comm);
  MPI_Finalize();
  exit(0);
}

/* end_pool asks the pool being driven to end (terminate, or close once
 * its work is done), then what to do after: it ends without this thread
 * taking another message, so an OPEN's or EXIT's stays in rbuf. */
static void end_pool(rank_state *rs, bool terminate, int after, long len) {
  mp__pool_stop(rs->pool, terminate);
  rs->stopping = true;
  rs->after = after;
  rs->after_len = len;
}

/* rank_turn does what this rank can do now: send the results of the
 * finished batches, close the pool once asked and its batches are done,
 * take one message from rank 0. Returns whether anything happened. Runs
 * in the pool's hook while a pool is open, else in rank_loop (where an
 * OPEN runs the whole pool, inside run_pool). */
static bool rank_turn(rank_state *rs) {
  bool progress = false;
  mp__mpi_trace("r_wake", mp__mpi_rank(), 0);
  bool can_send = sends_reap(rs, false);
  while (can_send && rs->head != NULL && batch_ready(rs->head)) {
    batch *b = rs->head;
    if (send_result(rs, b) != 0)
      break;
    mp__mpi_trace("r_send", mp__mpi_rank(), b->ndesc);
    rs->head = b->next;
    if (rs->head == NULL)
      rs->tail = NULL;
    batch_free(b);
    rs->last_busy = mp__os_now_ns();
    progress = true;
    can_send = rs->nsend < MP__MPI_SENDS;
  }
  if (rs->stopping)
    return progress;
  if (rs->closing && rs->head == NULL && rs->pool != NULL) {
    end_pool(rs, false, AFTER_CLOSED, 0);
    return true;
  }
  MPI_Status st;
  if (!mp__mpi_probe(0, &st))
    return progress;
  long n = mp__mpi_recv_probed(&st, &rs->rbuf, &rs->rcap);
  if (n < 0)
    return true;
  switch (st.MPI_TAG) {
  case MP__MPI_OPEN:
    atomic_store(&hb_active, 1);
    if (rs->pool != NULL)
      end_pool(rs, true, AFTER_OPEN, n); /* rank 0 gave up on this one */
    else
      run_pool(rs, rs->rbuf, n);
    break;
  case MP__MPI_BATCH:
    mp__mpi_trace("r_recv", mp__mpi_rank(), n);
    if (on_batch(rs, rs->rbuf, n) != 0) {
      /* Rank 0 sent what this rank cannot read: it will see this rank
       * fall silent on that batch and treat it as dead. */
      fprintf(stderr, "multiproc: MPI rank %d: malformed batch\n",
              mp__mpi_rank());
    }
    break;
  case MP__MPI_CLOSE:
  case MP__MPI_TERMINATE:
    if (rs->pool == NULL) {
      atomic_store(&hb_active, 0);
      send_small(rs, MP__MPI_CLOSED, NULL, 0);
    } else if (st.MPI_TAG == MP__MPI_CLOSE) {
      rs->closing = true;
    } else {
      end_pool(rs, true, AFTER_CLOSED, 0);
    }
    break;
  case MP__MPI_EXIT:
    if (rs->pool != NULL)
      end_pool(rs, true, AFTER_EXIT, n);
    else
      rank_exit(rs, rs->rbuf, n);
    break;
  default:
    break;
  }
  return true;
}

/* idle_wait is how long this rank may sleep with nothing to do. Just after
 * a pool opened or a batch's results went (within IDLE_RECENT_NS), the
 * next batch is likely on its way (a map starts right after the pool is
 * made; its next round follows the results): look every IDLE_SHORT_NS,
 * so it starts within about that. Later, while a pool is open, up to 1 ms
 * (a pool between maps); without one only an OPEN (a pool being created)
 * or EXIT can come. */
static int64_t idle_wait(rank_state *rs, int64_t now) {
  int64_t idle_max = 10000000;
  if (rs->pool != NULL)
    idle_max = now - rs->last_busy < IDLE_RECENT_NS ? IDLE_SHORT_NS : 1000000;
  rs->idle_ns =
      rs->idle_ns == 0 ? 20000 : MP__MIN(rs->idle_ns * 2, idle_max);
  return MP__MIN(rs->idle_ns, idle_max);
}

/* held_until is when the batches this rank holds should be done, from how
 * long a descriptor has kept it busy (0: not known yet). */
static int64_t held_until(const rank_state *rs) {
  if (rs->per_desc_ns <= 0 || rs->head == NULL)
    return 0;
  uint64_t nd = 0;
  for (const batch *b = rs->head; b != NULL; b = b->next)
    nd += b->ndesc;
  return MP__MAX(rs->head->t0, rs->last_done) +
         (int64_t)MP__MIN(nd * (uint64_t)rs->per_desc_ns,
                          (uint64_t)INT64_MAX / 2);
}

/* rank_hook is this rank's work in its local pool's loop: a turn, then
 * how long the loop may sleep. A local chunk that finishes wakes the loop
 * sooner (it collects it, then calls this in the same wake), and every
 * such wake is a look for rank 0's messages. So while its batches run, it
 * looks only then, once more LOOK_AHEAD_NS before the work it holds
 * should run out (so that rank 0's next batch, on its way since the last
 * results went, is queued before its workers run dry), and otherwise
 * every BUSY_LOOK_NS: each look is a wake-up, two MPI_Iprobe calls and
 * their sched_yields, taken from a core its workers want. Until a batch
 * has run here (the rate is not known), briefly while it holds only one
 * batch. */
static int64_t rank_hook(mp_pool *p, void *arg) {
  rank_state *rs = arg;
  (void)p;
  int64_t now = mp__os_now_ns();
  if (!rs->opened) {
    rs->opened = true;
    rs->last_busy = now;
    send_opened(rs, 0, rs->open_seq);
  }
  if (rank_turn(rs)) {
    rs->idle_ns = 0;
    return 0;
  }
  mp__mpi_trace("r_idle", mp__mpi_rank(),
                rs->head == NULL ? 0 : 1 + (rs->head->next != NULL));
  if (rs->stopping)
    return now + 1000000; /* the loop ends once its workers have */
  if (rs->head != NULL) {
    rs->idle_ns = 0;
    if (batch_ready(rs->head))
      return now + 50000; /* ready, but its send cannot start yet */
    int64_t end = held_until(rs);
    if (end == 0)
      return now + (rs->head->next != NULL ? 2000000 : 200000);
    int64_t look = end - LOOK_AHEAD_NS;
    if (look > now + 50000)
      return MP__MIN(look, now + BUSY_LOOK_NS);
    return now + BUSY_LOOK_NS;
  }
  return now + idle_wait(rs, now);
}

static void rank_loop(void) {
  rank_state rs = {.comm = mp__mpi_comm()};
  /* This thread waits by napping (Open MPI 4 cannot block until a message
   * comes): a nap should end when asked, not up to the default 50 µs of
   * timer slack later. */
  (void)prctl(PR_SET_TIMERSLACK, 5000UL, 0, 0, 0);
  rs.hb_started = pthread_create(&rs.hb, NULL, heartbeat_main, NULL) == 0;
  for (;;) {
    if (rank_turn(&rs)) {
      rs.idle_ns = 0;
      continue;
    }
    nap(idle_wait(&rs, mp__os_now_ns()));
  }
}

/* The program's end in rank 0: let the worker ranks go, then finalize. */
static void (*shutdown_hook)(void);

void mp__mpi_set_shutdown_hook(void (*fn)(void)) { shutdown_hook = fn; }

static void rank0_exit(void) {
  if (shutdown_hook != NULL)
    shutdown_hook();
  MPI_Comm c = mp__mpi_comm();
  unsigned char any_gone = 0;
  for (int r = 1; r < mp__mpi_size(); r++)
    any_gone |= mp__mpi_rank_gone(r);
  for (int r = 1; r < mp__mpi_size(); r++)
    if (!mp__mpi_rank_gone(r))
      MPI_Send(&any_gone, 1, MPI_BYTE, r, MP__MPI_EXIT, c);
  /* With a dead rank, Open MPI 4's MPI_Finalize can wait for it forever
   * (its closing fence counts every rank): leave without it. */
  if (!any_gone)
    MPI_Finalize();
}

void mp__mpi_child_hook(int argc, char **argv) {
  if (!mp__mpi_launched() || !mp__mpi_default_backend())
    return;
  if (mp__mpi_init(&argc, &argv) != 0)
    return;
  if (mp__mpi_rank() == 0) {
    atexit(rank0_exit);
    return;
  }
  rank_loop();
}

#else

void mp__mpi_child_hook(int argc, char **argv) {
  (void)argc, (void)argv;
}
void mp__mpi_set_shutdown_hook(void (*fn)(void)) { (void)fn; }

#endif
