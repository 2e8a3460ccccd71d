/* network.c - process networks: Parallel, Sequence and Spawn. Each CSP
 * process is an OS process (forked, PyCSP's @multiprocess) or a thread of
 * the caller (@process). A process that returns MP_EPOISONED poisons the
 * ends it was given, one that returns MP_ERETIRED retires them, so one
 * poison travels through a whole network.
 *
 * An OS process takes over the end records of the ends it is given (their
 * holder pid becomes its own) and hands them back to the parent when its
 * body returns; when it dies instead, the records still name it, so the
 * sweep leaves them (retired, or poisoned if it died in a write). The
 * parent sweeps at once when it reaps a child that died. Results travel
 * through a shared page, so any int, negative codes included, comes back
 * whole. */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

#include "csp_internal.h"
#include "multiproc/process.h"
#include "multiproc/thread.h"

typedef struct shared_result {
  _Atomic int32_t done;
  int32_t result;
} shared_result;

typedef struct member {
  mp_csp_network *net;
  size_t index;
  mp_process *proc;
  mp_thread *thr;
  bool started, joined;
} member;

struct mp_csp_network {
  mp_csp_process *procs;
  size_t n;
  member *members;
  shared_result *results;
  size_t map_size;
};

static int run_body(mp_csp_process *p) {
  int rc = p->fn != NULL ? p->fn(p->arg) : 0;
  if (rc == MP_EPOISONED || rc == MP_ERETIRED) {
    for (size_t i = 0; i < p->nends; i++) {
      if (p->ends[i] == NULL)
        continue;
      if (rc == MP_EPOISONED)
        mp_channel_poison(p->ends[i]);
      else
        mp_channel_retire(p->ends[i]);
    }
  }
  return rc;
}

static int child_target(void *arg) {
  member *m = arg;
  mp_csp_process *p = &m->net->procs[m->index];
  int32_t parent[64];
  size_t k = MP__MIN(p->nends, MP__ARRAY_SIZE(parent));
  for (size_t i = 0; i < k; i++)
    parent[i] = p->ends[i] != NULL ? mp__csp_adopt(p->ends[i], 0) : 0;
  int rc = run_body(p);
  for (size_t i = 0; i < k; i++)
    if (p->ends[i] != NULL && parent[i] != 0)
      (void)mp__csp_adopt(p->ends[i], parent[i]);
  m->net->results[m->index].result = rc;
  atomic_store_explicit(&m->net->results[m->index].done, 1,
                        memory_order_release);
  return 0;
}

static void thread_target(void *arg) {
  member *m = arg;
  int rc = run_body(&m->net->procs[m->index]);
  m->net->results[m->index].result = rc;
  atomic_store_explicit(&m->net->results[m->index].done, 1,
                        memory_order_release);
}

static int start_one(mp_csp_network *net, size_t i) {
  member *m = &net->members[i];
  mp_csp_process *p = &net->procs[i];
  int rc;
  if (p->nends > 64)
    return mp__fail(MP_EINVAL, "process %zu is given %zu ends, at most 64",
                    i, p->nends);
  if (p->thread) {
    if ((rc = mp_thread_new(&m->thr, thread_target, m, NULL)) != 0)
      return rc;
    if ((rc = mp_thread_start(m->thr)) != 0) {
      mp_thread_free(m->thr);
      m->thr = NULL;
      return rc;
    }
  } else {
    if ((rc = mp_process_new(&m->proc, child_target, m, NULL)) != 0)
      return rc;
    if ((rc = mp_process_start(m->proc)) != 0) {
      mp_process_free(m->proc);
      m->proc = NULL;
      return rc;
    }
  }
  m->started = true;
  return 0;
}

/* join_one waits for member i; returns 0 or MP_ETIMEDOUT. */
static int join_one(mp_csp_network *net, size_t i, mp__deadline d) {
  member *m = &net->members[i];
  if (!m->started || m->joined)
    return 0;
  double left = mp__deadline_forever(d)
                    ? MP_FOREVER
                    : (double)mp__deadline_remaining_ns(d) / 1e9;
  int rc = m->thr != NULL ? mp_thread_join(m->thr, left)
                          : mp_process_join(m->proc, left);
  if (rc != 0)
    return rc;
  m->joined = true;
  mp_csp_process *p = &net->procs[i];
  if (atomic_load_explicit(&net->results[i].done, memory_order_acquire)) {
    p->result = net->results[i].result;
  } else {
    /* It died: leave its ends now rather than at the next sweep. */
    p->result = MP_EWORKERDIED;
    for (size_t k = 0; k < p->nends; k++)
      if (p->ends[k] != NULL)
        mp__csp_sweep(p->ends[k]->ch,
                      mp__deadline_min_slice(d, MP__SYNC_SLICE_NS));
  }
  return 0;
}

int mp_csp_network_join(mp_csp_network *net, double timeout) {
  if (net == NULL)
    return mp__fail(MP_EINVAL, "network is NULL");
  if (timeout != timeout)
    return mp__fail(MP_EINVAL, "timeout is NaN");
  mp__deadline d = mp__deadline_from_timeout(timeout);
  for (size_t i = 0; i < net->n; i++) {
    int rc = join_one(net, i, d);
    if (rc != 0)
      return rc == MP_EAGAIN ? MP_ETIMEDOUT : rc;
  }
  return 0;
}

void mp_csp_network_free(mp_csp_network *net) {
  if (net == NULL)
    return;
  (void)mp_csp_network_join(net, MP_FOREVER);
  for (size_t i = 0; i < net->n; i++) {
    if (net->members[i].proc != NULL)
      mp_process_free(net->members[i].proc);
    if (net->members[i].thr != NULL)
      mp_thread_free(net->members[i].thr);
  }
  mp__os_unmap(net->results, net->map_size);
  mp__free(net->members);
  mp__free(net);
}

int mp_csp_spawn(mp_csp_network **out, mp_csp_process *procs, size_t n) {
  if (out == NULL || (procs == NULL && n > 0))
    return mp__fail(MP_EINVAL, "out or procs is NULL");
  for (size_t i = 0; i < n; i++)
    if (procs[i].nends > 0 && procs[i].ends == NULL)
      return mp__fail(MP_EINVAL, "process %zu: nends without ends", i);
  mp_csp_network *net = mp__calloc(1, sizeof *net);
  if (net == NULL)
    return MP_ENOMEM;
  net->procs = procs;
  net->n = n;
  net->members = mp__calloc(n > 0 ? n : 1, sizeof *net->members);
  size_t page = mp__os_page_size();
  net->map_size = ((n > 0 ? n : 1) * sizeof(shared_result) + page - 1) /
                  page * page;
  int rc = net->members == NULL ? MP_ENOMEM : 0;
  if (rc == 0)
    rc = mp__os_map_shared(-1, net->map_size, (void **)&net->results);
  if (rc != 0) {
    mp__free(net->members);
    mp__free(net);
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    net->members[i] = (member){.net = net, .index = i};
    procs[i].result = 0;
  }
  for (size_t i = 0; i < n; i++) {
    if ((rc = start_one(net, i)) != 0) {
      /* Stop what started: poison its ends so it ends, then join it. */
      for (size_t j = 0; j < i; j++)
        for (size_t k = 0; k < procs[j].nends; k++)
          if (procs[j].ends[k] != NULL)
            mp_channel_poison(procs[j].ends[k]);
      mp_csp_network_free(net);
      return rc;
    }
  }
  *out = net;
  return 0;
}

int mp_csp_parallel(mp_csp_process *procs, size_t n) {
  if (procs == NULL)
    return mp__fail(MP_EINVAL, "procs is NULL");
  mp_csp_network *net;
  int rc = mp_csp_spawn(&net, procs, n);
  if (rc != 0)
    return rc;
  mp_csp_network_free(net);
  return 0;
}

int mp_csp_sequence(mp_csp_process *procs, size_t n) {
  if (procs == NULL)
    return mp__fail(MP_EINVAL, "procs is NULL");
  for (size_t i = 0; i < n; i++) {
    int rc = mp_csp_parallel(&procs[i], 1);
    if (rc != 0)
      return rc;
  }
  return 0;
}
