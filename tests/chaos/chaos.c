/* chaos.c - the kill campaign (make chaos): six workloads run side by side
 * for CHAOS_SECONDS while their supervisors SIGKILL random processes of
 * them, then each checks what the library promised and prints one line:
 *
 *   queue    producers and consumers of a named FIFO queue (every other
 *            message put in place with mp_queue_claim; small messages
 *            and large ones, which travel through segments of their own);
 *            producers and consumers are killed.
 *   pool     a process Pool running apply_async tasks; workers are killed
 *            mid-task (the pool must fail that task with MP_EWORKERDIED,
 *            replace the worker and go on).
 *   sync     processes incrementing counters under a Lock and an RLock
 *            (taken twice); holders are killed inside the critical section
 *            (the next acquirer gets MP_EOWNERDEAD and repairs).
 *   tracker  process trees creating and unlinking named SharedMemory
 *            blocks; members are killed at any moment (inside
 *            mp_shared_memory_new too) until the tree is gone, and its
 *            resource tracker must then unlink what is left.
 *   lease    the queue workload on a lease-mode (at-least-once) queue:
 *            consumers ack after recording a message; nothing may be
 *            lost, and a message is delivered twice only when its
 *            consumer was killed between recording it and its ack.
 *   spsc     the queue workload with one producer and one consumer, so
 *            that each keeps its lock as a bias (queue_core.c): a
 *            replacement takes a killed one's bias away.
 *
 * The workloads run side by side, each for the whole time: a kill cycle
 * (SIGKILL, reap, fork a fresh process) is cheap, so every workload makes
 * well over 1000 kills a minute even on two shared cores.
 *
 * Each line: kills, operations, messages reported put (a put, task or
 * increment whose call returned success, recorded right after), received,
 * corrupt, duplicated (with how many a kill explains: lease mode
 * redelivers a message whose consumer died before its ack), lost (with
 * how many a consumer killed holding a message explains: Python's Queue
 * loses such a message too), hangs (a call still running HANG_S past its
 * own timeout, a task without a result after HANG_S, a tracker still
 * running HANG_S after its tree died) and the /dev/shm entries of the
 * workload left at the end. The exit status is 1 when a workload shows corruption,
 * unexplained duplicates or losses, hangs or entries left, or made fewer
 * than 1000 kills per minute.
 *
 *   chaos [seconds] [workload...]     default 60 s, all six */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "multiproc.h"

#define HANG_S 10.0
#define KILL_MIN_MS 0
#define KILL_MAX_MS 2

typedef struct result {
  const char *name;
  _Atomic uint64_t kills, ops, put, received, corrupt, duplicated,
      dup_explained, lost, explained, hangs, left;
  /* What the kills did that the library had to handle (see deaths_text). */
  _Atomic uint64_t deaths;
  int done;
} result;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(double ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (long)(ms / 1000) * 1000) * 1e6)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void *shared_map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) {
    perror("chaos: mmap");
    exit(2);
  }
  return p;
}

static unsigned rnd(unsigned *seed, unsigned n) { return rand_r(seed) % n; }

static double kill_pause_ms(unsigned *seed) {
  return KILL_MIN_MS + rnd(seed, 1000 * (KILL_MAX_MS - KILL_MIN_MS)) / 1000.0;
}

/* Unlinks what a workload left, once counted: the names are its own. */
static void shm_remove(const char *prefix) {
  DIR *d = opendir("/dev/shm");
  if (d == NULL)
    return;
  struct dirent *e;
  char path[300];
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
      continue;
    snprintf(path, sizeof path, "/%s", e->d_name);
    shm_unlink(path);
  }
  closedir(d);
}

static uint64_t shm_left(const char *prefix) {
  uint64_t n = 0;
  DIR *d = opendir("/dev/shm");
  if (d == NULL)
    return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
      n++;
  closedir(d);
  return n;
}

/* demote lowers the calling thread's priority: the queue and sync
 * workloads' processes (which never sleep) run at nice DEMOTE_NICE, so that on a
 * loaded machine their supervisors, at the caller's priority, keep their
 * kill cadence (and still run often enough to be killed mid-call). */
#define DEMOTE_NICE 5
static void demote(void) {
  (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), DEMOTE_NICE);
}

static void kill_reap(pid_t pid) {
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

/* A small checksum for message payloads. */
static uint32_t sum32(const unsigned char *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

/* ==== queue =============================================================== */
#define Q_PRODUCERS 2
#define Q_CONSUMERS 2
#define Q_INST 8192 /* producer instances */
#define Q_SEQ 1024  /* messages per producer instance */
#define Q_LARGE 6000
#define Q_CSLOTS 64 /* consumer state words: live ones and unreaped victims */
#define Q_PUT_TIMEOUT 2.0
#define Q_GET_TIMEOUT 0.5

typedef struct qmsg {
  uint32_t inst, seq, len, sum;
  unsigned char payload[];
} qmsg;

/* A consumer's state, as the supervisor sees it when it kills one. */
enum { C_IDLE = 0, C_IN_GET = 1, C_RECORDED = 2 /* lease: before the ack */ };

typedef struct qshared {
  _Atomic uint32_t reported[Q_INST];            /* seqs put, per instance */
  _Atomic uint64_t seen[Q_INST][Q_SEQ / 64];    /* received, per message */
  _Atomic uint32_t cstate[Q_CSLOTS];            /* per consumer process */
  _Atomic uint64_t ops, received, corrupt, duplicated;
  /* When each process's current put or get began (0: not in one). */
  _Atomic double cstart[Q_CSLOTS], pstart[Q_PRODUCERS];
} qshared;

static void q_take(qshared *sh, const unsigned char *buf, size_t len) {
  const qmsg *m = (const qmsg *)buf;
  if (len < sizeof *m || m->len != len - sizeof *m || m->inst >= Q_INST ||
      m->seq >= Q_SEQ || sum32(m->payload, m->len) != m->sum) {
    atomic_fetch_add(&sh->corrupt, 1);
    return;
  }
  uint64_t bit = 1ull << (m->seq % 64);
  if (atomic_fetch_or(&sh->seen[m->inst][m->seq / 64], bit) & bit)
    atomic_fetch_add(&sh->duplicated, 1);
  atomic_fetch_add(&sh->received, 1);
}

static void q_producer(mp_queue *q, qshared *sh, int slot, uint32_t inst,
                       bool large) {
  demote();
  static unsigned char buf[sizeof(qmsg) + Q_LARGE];
  unsigned seed = inst * 7919u + (unsigned)getpid();
  for (uint32_t seq = 0; seq < Q_SEQ;) {
    uint32_t len = large && (seq % 16 == 5 || seq % 16 == 6)
                       ? Q_LARGE
                       : 8 + rnd(&seed, 120);
    /* Odd messages are written in place (mp_queue_claim): killed between
     * claim and commit, they must leave no message. */
    bool inplace = seq % 2 == 1;
    void *at = buf;
    atomic_store(&sh->pstart[slot], now_s());
    int rc = 0;
    if (inplace)
      rc = mp_queue_claim(q, sizeof(qmsg) + len, &at, Q_PUT_TIMEOUT);
    qmsg *m = at;
    if (rc == 0) {
      m->inst = inst;
      m->seq = seq;
      m->len = len;
      for (uint32_t i = 0; i < m->len; i++)
        m->payload[i] = (unsigned char)(seed + i * 31 + seq);
      m->sum = sum32(m->payload, m->len);
      rc = inplace ? mp_queue_commit(q, sizeof *m + len)
                   : mp_queue_put(q, buf, sizeof *m + m->len, Q_PUT_TIMEOUT);
    }
    atomic_store(&sh->pstart[slot], 0);
    atomic_fetch_add(&sh->ops, 1);
    if (rc == 0) {
      atomic_store(&sh->reported[inst], seq + 1);
      seq++;
    } else if (rc != MP_ETIMEDOUT) {
      _exit(3);
    }
  }
  _exit(0);
}

static void q_consumer(mp_queue *q, qshared *sh, int slot, bool lease) {
  demote();
  static unsigned char buf[sizeof(qmsg) + Q_LARGE];
  for (;;) {
    size_t len = 0;
    uint64_t id = 0;
    atomic_store(&sh->cstate[slot], C_IN_GET);
    atomic_store(&sh->cstart[slot], now_s());
    int rc = lease ? mp_queue_get_lease(q, buf, sizeof buf, &len, &id,
                                        Q_GET_TIMEOUT)
                   : mp_queue_get(q, buf, sizeof buf, &len, Q_GET_TIMEOUT);
    atomic_store(&sh->cstart[slot], 0);
    atomic_fetch_add(&sh->ops, 1);
    if (rc == 0) {
      /* Marked before recording: a kill from here on may have recorded
       * the message without acking it. */
      if (lease)
        atomic_store(&sh->cstate[slot], C_RECORDED);
      q_take(sh, buf, len);
      if (lease && mp_queue_ack(q, id) != 0)
        _exit(5);
    }
    atomic_store(&sh->cstate[slot], C_IDLE);
    if (rc != 0 && rc != MP_ETIMEDOUT)
      _exit(3);
  }
}

/* The supervisor's processes killed and not yet reaped. A victim is
 * replaced at once (a kill cycle never waits for the victim to die);
 * each consumer process has a state word of its own, read once it is
 * reaped, to tell in which state it died. */
#define Q_VICTIMS 64
typedef struct qvictims {
  qshared *sh;
  pid_t pid[Q_VICTIMS]; /* killed, not yet reaped */
  int nv;
  pid_t cslot_pid[Q_CSLOTS]; /* the consumer of each state word */
  uint64_t in_get_deaths, recorded_deaths;
} qvictims;

/* Reaps the victims that are gone (every one, with wait), counting the
 * state each consumer died in and freeing its state word. */
static void reap_victims(qvictims *v, bool wait) {
  for (int i = 0; i < v->nv;) {
    pid_t p = v->pid[i];
    if (waitpid(p, NULL, wait ? 0 : WNOHANG) != p) {
      i++;
      continue;
    }
    for (int k = 0; k < Q_CSLOTS; k++) {
      if (v->cslot_pid[k] != p)
        continue;
      uint32_t st = atomic_load(&v->sh->cstate[k]);
      v->in_get_deaths += st == C_IN_GET;
      v->recorded_deaths += st == C_RECORDED;
      v->cslot_pid[k] = 0;
    }
    v->pid[i] = v->pid[--v->nv];
  }
}

static void victim_add(qvictims *v, pid_t pid) {
  if (v->nv == Q_VICTIMS)
    reap_victims(v, true);
  v->pid[v->nv++] = pid;
}

static pid_t start_consumer(qvictims *v, mp_queue *q, bool lease) {
  int k = 0;
  while (v->cslot_pid[k] != 0) {
    if (++k == Q_CSLOTS) {
      reap_victims(v, true);
      k = 0;
    }
  }
  atomic_store(&v->sh->cstate[k], C_IDLE);
  atomic_store(&v->sh->cstart[k], 0);
  pid_t pid = fork();
  if (pid == 0)
    q_consumer(q, v->sh, k, lease);
  v->cslot_pid[k] = pid;
  return pid;
}

/* The queue workloads: lease is at-least-once delivery, whose leases hold
 * inline messages only (no large ones then). */
static void run_queues(result *res, double seconds, bool lease, int np,
                       int nc) {
  char name[64], prefix[80];
  snprintf(name, sizeof name, "chaos%d-%s%d", (int)getpid(), lease ? "l" : "q",
           np);
  snprintf(prefix, sizeof prefix, "mp_%s", name);
  mp_queue_opts o = {.name = name, .capacity = 1 << 16, .inline_max = 1024,
                     .lease = lease};
  mp_queue *q;
  if (mp_queue_new(&q, &o) != 0) {
    fprintf(stderr, "chaos queue: mp_queue_new failed\n");
    atomic_fetch_add(&res->hangs, 1);
    return;
  }
  qshared *sh = shared_map(sizeof *sh);
  pid_t prod[Q_PRODUCERS], cons[Q_CONSUMERS];
  uint32_t prod_inst[Q_PRODUCERS], next_inst = 0;
  unsigned seed = (unsigned)getpid();
  /* Each consumer process has a state word of its own, so a victim is
   * replaced at once and its state read once it is reaped (later). */
  qvictims v = {.sh = sh};
#define START_PRODUCER(i)                                                    \
  do {                                                                       \
    prod_inst[i] = next_inst < Q_INST ? next_inst++ : Q_INST;                \
    atomic_store(&sh->pstart[i], 0);                                         \
    prod[i] = prod_inst[i] < Q_INST ? fork() : -1;                           \
    if (prod[i] == 0)                                                        \
      q_producer(q, sh, i, prod_inst[i], !lease);                            \
  } while (0)

  for (int i = 0; i < np; i++)
    START_PRODUCER(i);
  for (int i = 0; i < nc; i++)
    cons[i] = start_consumer(&v, q, lease);
  double end = now_s() + seconds;
  while (now_s() < end) {
    /* One pair: its processes live some 20 ms (still over 1000 kills a
     * minute), long enough to take a bias before they are killed. */
    sleep_ms(np == 1 ? 5 + 10 * kill_pause_ms(&seed) : kill_pause_ms(&seed));
    reap_victims(&v, false);
    /* Producers that finished their messages leave: start others. */
    for (int i = 0; i < np; i++)
      if (prod[i] > 0 && waitpid(prod[i], NULL, WNOHANG) == prod[i])
        START_PRODUCER(i);
    int victim = (int)rnd(&seed, (unsigned)(np + nc));
    if (victim < np) {
      if (prod[victim] <= 0)
        continue;
      kill(prod[victim], SIGKILL);
      victim_add(&v, prod[victim]);
      START_PRODUCER(victim);
    } else {
      int c = victim - np;
      kill(cons[c], SIGKILL);
      victim_add(&v, cons[c]);
      cons[c] = start_consumer(&v, q, lease);
    }
    atomic_fetch_add(&res->kills, 1);
    /* A hang: a put or get still running HANG_S past its timeout. */
    double t = now_s();
    for (int i = 0; i < np; i++) {
      double t0 = atomic_load(&sh->pstart[i]);
      if (t0 > 0 && t - t0 > Q_PUT_TIMEOUT + HANG_S &&
          atomic_compare_exchange_strong(&sh->pstart[i], &t0, 0))
        atomic_fetch_add(&res->hangs, 1);
    }
    for (int k = 0; k < Q_CSLOTS; k++) {
      bool live = false;
      for (int i = 0; i < nc; i++)
        live |= v.cslot_pid[k] == cons[i];
      if (!live)
        continue; /* a victim's, or free */
      double t0 = atomic_load(&sh->cstart[k]);
      if (t0 > 0 && t - t0 > Q_GET_TIMEOUT + HANG_S &&
          atomic_compare_exchange_strong(&sh->cstart[k], &t0, 0))
        atomic_fetch_add(&res->hangs, 1);
    }
  }
  /* Stop everyone, then drain what is queued. */
  for (int i = 0; i < np; i++)
    if (prod[i] > 0)
      kill_reap(prod[i]);
  for (int i = 0; i < nc; i++) {
    kill(cons[i], SIGKILL);
    victim_add(&v, cons[i]);
  }
  reap_victims(&v, true);
  static unsigned char buf[sizeof(qmsg) + Q_LARGE];
  double drain_end = now_s() + HANG_S;
  for (;;) {
    size_t len = 0;
    uint64_t id = 0;
    int rc = lease ? mp_queue_get_lease(q, buf, sizeof buf, &len, &id, 0.2)
                   : mp_queue_get(q, buf, sizeof buf, &len, 0.2);
    if (rc == MP_ETIMEDOUT || rc == MP_EAGAIN)
      break;
    if (rc != 0 || now_s() > drain_end ||
        (lease && mp_queue_ack(q, id) != 0)) {
      atomic_fetch_add(&res->hangs, 1);
      break;
    }
    q_take(sh, buf, len);
  }
  uint64_t put = 0, lost = 0;
  for (uint32_t i = 0; i < next_inst; i++) {
    uint32_t n = atomic_load(&sh->reported[i]);
    put += n;
    for (uint32_t s = 0; s < n; s++)
      if (!(atomic_load(&sh->seen[i][s / 64]) & (1ull << (s % 64))))
        lost++;
  }
  mp_queue_free(q);
  atomic_store(&res->ops, atomic_load(&sh->ops));
  atomic_store(&res->put, put);
  atomic_store(&res->received, atomic_load(&sh->received));
  atomic_store(&res->corrupt, atomic_load(&sh->corrupt));
  uint64_t dup = atomic_load(&sh->duplicated);
  atomic_store(&res->duplicated, dup);
  atomic_store(&res->lost, lost);
  if (lease) {
    /* At-least-once: a kill explains a redelivery, never a loss. */
    atomic_store(&res->dup_explained,
                 dup < v.recorded_deaths ? dup : v.recorded_deaths);
    atomic_store(&res->deaths, v.recorded_deaths);
  } else {
    atomic_store(&res->explained,
                 lost < v.in_get_deaths ? lost : v.in_get_deaths);
    atomic_store(&res->deaths, v.in_get_deaths);
  }
  atomic_store(&res->left, shm_left(prefix));
  shm_remove(prefix);
  munmap(sh, sizeof *sh);
}

static void run_queue(result *res, double seconds) {
  run_queues(res, seconds, false, Q_PRODUCERS, Q_CONSUMERS);
}

static void run_lease(result *res, double seconds) {
  run_queues(res, seconds, true, Q_PRODUCERS, Q_CONSUMERS);
}

/* One producer and one consumer: each side's only user keeps its lock as
 * a bias (queue_core.c), and the replacement of a killed one must take the
 * dead one's bias away, whether it died outside or inside its put or get. */
static void run_spsc(result *res, double seconds) {
  run_queues(res, seconds, false, 1, 1);
}

/* ==== pool ================================================================ */
#define P_WORKERS 4
#define P_OUTSTANDING 32
#define P_TASKS (1 << 20)

typedef struct ptask {
  uint64_t id, x;
} ptask;

static uint64_t p_f(uint64_t x) {
  return x * 0x9e3779b97f4a7c15ull ^ (x >> 7);
}

static int p_task(const void *in, size_t in_len, void *out, size_t out_cap,
                  size_t *out_len) {
  if (in_len != sizeof(ptask) || out_cap < sizeof(ptask))
    return 1;
  ptask t;
  memcpy(&t, in, sizeof t);
  /* A little work, so that kills land inside tasks. */
  volatile uint64_t spin = 0;
  for (int i = 0; i < 20000; i++)
    spin += (uint64_t)i;
  t.x = p_f(t.x);
  memcpy(out, &t, sizeof t);
  *out_len = sizeof t;
  return 0;
}

static _Atomic uint8_t p_calls[P_TASKS];

static void p_callback(void *userdata, int status, const void *r, size_t len) {
  (void)status;
  (void)r;
  (void)len;
  atomic_fetch_add(&p_calls[(uintptr_t)userdata % P_TASKS], 1);
}

typedef struct pkiller {
  _Atomic(mp_pool *) pool; /* NULL until the pool is made */
  result *res;
  _Atomic int stop;
} pkiller;

/* Kills a random worker that has lived P_READY_MS: one still starting is
 * spared, because workers that die before they are ready five times in a
 * row break the pool by design (pool_handler.c: a failing start-up is not
 * retried forever), which is not what this workload measures. */
#define P_READY_MS 100.0
static void *p_killer(void *arg) {
  pkiller *k = arg;
  unsigned seed = (unsigned)getpid() ^ 0x5151;
  pid_t known[256] = {0};
  double since[256] = {0};
  while (!atomic_load(&k->stop)) {
    sleep_ms(kill_pause_ms(&seed));
    mp_pool *pool = atomic_load(&k->pool);
    if (pool == NULL)
      continue;
    pid_t pids[P_WORKERS], old[P_WORKERS];
    ssize_t n = mp_pool_worker_pids(pool, pids, P_WORKERS);
    if (n > P_WORKERS)
      n = P_WORKERS;
    double t = now_s();
    unsigned nold = 0;
    for (ssize_t i = 0; i < n; i++) {
      int slot = pids[i] % 256;
      if (known[slot] != pids[i]) {
        known[slot] = pids[i];
        since[slot] = t;
      } else if ((t - since[slot]) * 1000 >= P_READY_MS) {
        old[nold++] = pids[i];
      }
    }
    if (nold > 0 && kill(old[rnd(&seed, nold)], SIGKILL) == 0)
      atomic_fetch_add(&k->res->kills, 1);
  }
  return NULL;
}

static void run_pool(result *res, double seconds) {
  /* The pool runs at our priority: its handler threads collect results
   * and replace workers, which a demoted pool does too slowly on a loaded
   * machine (tasks then wait past HANG_S). */
  pkiller k = {.res = res};
  pthread_t killer;
  pthread_create(&killer, NULL, p_killer, &k);
  mp_pool *pool;
  mp_pool_opts o = {.processes = P_WORKERS};
  if (mp_pool_new(&pool, &o) != 0) {
    fprintf(stderr, "chaos pool: mp_pool_new failed\n");
    atomic_fetch_add(&res->hangs, 1);
    atomic_store(&k.stop, 1);
    pthread_join(killer, NULL);
    return;
  }
  atomic_store(&k.pool, pool);
  struct {
    mp_async_result *r;
    ptask in, out;
    double since;
  } slot[P_OUTSTANDING];
  memset(slot, 0, sizeof slot);
  uint64_t next_id = 0, ok = 0, corrupt = 0, died = 0, hangs = 0, ops = 0,
           broken = 0;
  double end = now_s() + seconds;
  bool stopping = false;
  for (;;) {
    bool any = false;
    if (!stopping && now_s() >= end) {
      stopping = true;
      atomic_store(&k.stop, 1);
      pthread_join(killer, NULL);
    }
    for (int i = 0; i < P_OUTSTANDING; i++) {
      if (slot[i].r == NULL) {
        if (stopping || next_id >= P_TASKS)
          continue;
        slot[i].in = (ptask){next_id, next_id * 3 + 1};
        mp_pool_apply_opts ao = {.callback = p_callback,
                                 .error_callback = p_callback,
                                 .userdata = (void *)(uintptr_t)next_id,
                                 .out = &slot[i].out,
                                 .out_cap = sizeof slot[i].out};
        if (mp_pool_apply_async(pool, &slot[i].r, p_task, &slot[i].in,
                                sizeof slot[i].in, &ao) != 0) {
          slot[i].r = NULL;
          continue;
        }
        next_id++;
        slot[i].since = now_s();
      }
      any = true;
      if (!mp_async_result_ready(slot[i].r)) {
        if (now_s() - slot[i].since > HANG_S) {
          hangs++;
          mp_async_result_free(slot[i].r);
          slot[i].r = NULL;
        }
        continue;
      }
      int rc = mp_async_result_get(slot[i].r, 0);
      ops++;
      if (rc == 0) {
        if (slot[i].out.id != slot[i].in.id ||
            slot[i].out.x != p_f(slot[i].in.x))
          corrupt++;
        ok++;
      } else if (rc == MP_EWORKERDIED) {
        died++;
      } else {
        if (broken++ == 0) {
          mp_task_error e;
          memset(&e, 0, sizeof e);
          int why = mp_pool_error(pool, &e);
          fprintf(stderr,
                  "chaos pool: a task failed with %s; the pool broke: %s "
                  "(worker %d, signal %s, exit status %d)\n",
                  mp_err_name(rc), mp_err_name(why), (int)e.worker,
                  e.exit.signal_name, e.exit.status);
        }
      }
      mp_async_result_free(slot[i].r);
      slot[i].r = NULL;
    }
    if (stopping && !any)
      break;
    sleep_ms(0.2);
  }
  mp_pool_terminate(pool);
  if (mp_pool_join(pool, HANG_S) != 0)
    hangs++;
  mp_pool_free(pool);
  uint64_t dup = 0;
  for (uint64_t i = 0; i < next_id && i < P_TASKS; i++)
    if (atomic_load(&p_calls[i]) > 1)
      dup++;
  atomic_store(&res->ops, ops);
  atomic_store(&res->put, next_id);
  atomic_store(&res->received, ok);
  atomic_store(&res->corrupt, corrupt);
  atomic_store(&res->duplicated, dup);
  /* A task whose worker was killed fails with MP_EWORKERDIED: it is
   * reported, so it counts as explained, never as lost silently. */
  /* Tasks failed as the pool broke are reported failures too, but the pool
   * stopped serving: counted as lost, unexplained. */
  atomic_store(&res->lost, died + hangs + broken);
  atomic_store(&res->explained, died);
  atomic_store(&res->deaths, died);
  atomic_store(&res->hangs, hangs);
}

/* ==== sync ================================================================ */
#define S_PROCS 4
#define S_INST 65536

typedef struct sshared {
  mp_lock lock;
  mp_rlock rlock;
  uint64_t counter[2], shadow[2];
  _Atomic int32_t in_cs[2];
  _Atomic uint64_t done[S_INST]; /* increments reported, per instance */
  _Atomic uint64_t ops, corrupt, recovered, hangs;
} sshared;

static void s_worker(sshared *sh, uint32_t inst) {
  demote();
  unsigned seed = inst;
  for (;;) {
    int which = (int)rnd(&seed, 2);
    int rc = which == 0 ? mp_lock_acquire(&sh->lock, HANG_S)
                        : mp_rlock_acquire(&sh->rlock, HANG_S);
    atomic_fetch_add(&sh->ops, 1);
    if (rc == MP_ETIMEDOUT) {
      atomic_fetch_add(&sh->hangs, 1);
      continue;
    }
    if (rc == MP_EOWNERDEAD) {
      /* The holder died inside: repair (the counter is the truth). */
      atomic_fetch_add(&sh->recovered, 1);
      sh->shadow[which] = sh->counter[which];
      atomic_store(&sh->in_cs[which], 0);
    } else if (rc != 0) {
      _exit(3);
    }
    if (which == 1 && mp_rlock_acquire(&sh->rlock, 0) != 0)
      atomic_fetch_add(&sh->corrupt, 1);
    if (atomic_load(&sh->in_cs[which]) != 0 ||
        sh->shadow[which] != sh->counter[which])
      atomic_fetch_add(&sh->corrupt, 1);
    atomic_store(&sh->in_cs[which], (int32_t)getpid());
    sh->counter[which]++;
    for (volatile int i = 0; i < 20000; i++) {
    }
    sh->shadow[which]++;
    atomic_store(&sh->in_cs[which], 0);
    if (which == 1)
      mp_rlock_release(&sh->rlock);
    rc = which == 0 ? mp_lock_release(&sh->lock) : mp_rlock_release(&sh->rlock);
    if (rc != 0)
      _exit(4);
    atomic_fetch_add(&sh->done[inst], 1);
  }
}

static void run_sync(result *res, double seconds) {
  sshared *sh = shared_map(sizeof *sh);
  if (mp_lock_init(&sh->lock) != 0 || mp_rlock_init(&sh->rlock) != 0) {
    atomic_fetch_add(&res->hangs, 1);
    return;
  }
  pid_t pid[S_PROCS];
  uint32_t next = 0;
  unsigned seed = (unsigned)getpid() ^ 0x777;
#define START_SYNC(i)                                                        \
  do {                                                                       \
    uint32_t inst_ = next < S_INST - 1 ? next++ : S_INST - 1;                \
    pid[i] = fork();                                                         \
    if (pid[i] == 0)                                                         \
      s_worker(sh, inst_);                                                   \
  } while (0)
  for (int i = 0; i < S_PROCS; i++)
    START_SYNC(i);
  double end = now_s() + seconds;
  while (now_s() < end) {
    sleep_ms(kill_pause_ms(&seed));
    /* The victims of earlier cycles (the workers are our only children):
     * a cycle replaces its victim at once, without waiting for it. */
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    int v = (int)rnd(&seed, S_PROCS);
    kill(pid[v], SIGKILL);
    atomic_fetch_add(&res->kills, 1);
    START_SYNC(v);
  }
  for (int i = 0; i < S_PROCS; i++)
    kill(pid[i], SIGKILL);
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
  }
  /* A last acquire repairs a lock whose holder was killed last. */
  for (int which = 0; which < 2; which++) {
    int rc = which == 0 ? mp_lock_acquire(&sh->lock, HANG_S)
                        : mp_rlock_acquire(&sh->rlock, HANG_S);
    if (rc == MP_EOWNERDEAD) {
      atomic_fetch_add(&sh->recovered, 1);
      sh->shadow[which] = sh->counter[which];
    } else if (rc != 0) {
      atomic_fetch_add(&sh->hangs, 1);
      continue;
    }
    if (which == 0)
      mp_lock_release(&sh->lock);
    else
      mp_rlock_release(&sh->rlock);
  }
  uint64_t reported = 0;
  for (uint32_t i = 0; i < S_INST; i++)
    reported += atomic_load(&sh->done[i]);
  uint64_t total = sh->counter[0] + sh->counter[1];
  atomic_store(&res->ops, atomic_load(&sh->ops));
  atomic_store(&res->put, reported);
  atomic_store(&res->received, total);
  atomic_store(&res->corrupt, atomic_load(&sh->corrupt));
  atomic_store(&res->lost, reported > total ? reported - total : 0);
  atomic_store(&res->explained, atomic_load(&sh->recovered));
  atomic_store(&res->deaths, atomic_load(&sh->recovered));
  atomic_store(&res->hangs, atomic_load(&sh->hangs));
  mp_lock_destroy(&sh->lock);
  mp_rlock_destroy(&sh->rlock);
  munmap(sh, sizeof *sh);
}

/* ==== tracker ============================================================= */
#define T_MEMBERS 6
#define T_ROOT_ODDS 32
#define T_START_ODDS 8
#define T_START_MS 50

typedef struct tshared {
  _Atomic pid_t members[T_MEMBERS];
  _Atomic int started; /* the root made its first block and its members */
  _Atomic int began[T_MEMBERS]; /* the member entered its first create */
  _Atomic int in_create[T_MEMBERS]; /* inside mp_shared_memory_new now */
  _Atomic uint64_t killed_in_create;
  _Atomic uint64_t created, unlinked, ops;
  _Atomic uint32_t tree;
} tshared;

/* One step of a member: create a block, and unlink half of them (the
 * rest are left to the tracker when the tree dies). */
static void t_step(tshared *sh, const char *prefix, int slot, uint32_t *n,
                   unsigned *seed) {
  char name[96];
  snprintf(name, sizeof name, "%s%u-%d-%u", prefix, atomic_load(&sh->tree),
           (int)getpid(), (*n)++);
  mp_shared_memory *shm;
  atomic_store(&sh->in_create[slot], 1);
  int rc = mp_shared_memory_new(&shm, name, 4096, NULL);
  atomic_store(&sh->in_create[slot], 0);
  atomic_fetch_add(&sh->ops, 1);
  if (rc != 0)
    return;
  atomic_fetch_add(&sh->created, 1);
  ((char *)mp_shared_memory_buf(shm))[0] = 1;
  if (rnd(seed, 2) == 0 && mp_shared_memory_unlink(shm) == 0)
    atomic_fetch_add(&sh->unlinked, 1);
  mp_shared_memory_free(shm);
}

static void t_member(tshared *sh, const char *prefix, int slot) {
  unsigned seed = (unsigned)getpid();
  for (uint32_t n = 0;;) {
    atomic_store(&sh->began[slot], 1);
    t_step(sh, prefix, slot, &n, &seed);
    sleep_ms(rnd(&seed, 2000) / 1000.0);
  }
}

/* The tree's root: it starts the tracker (its first block) and forks the
 * other members, which inherit the tracker connection; while it lives it
 * replaces every member killed at once (the replacement is a member of
 * the same tree). The tree runs at the supervisor's priority: its
 * members mostly sleep, and a demoted member takes long to start on a
 * loaded machine. The tree is a process group of its
 * own (the tracker leaves it: it runs in a session of its own), so the
 * supervisor knows when the whole tree is gone. Only the root writes the
 * members' pids (the supervisor clears one it killed), so none runs
 * unseen. The root dies with the supervisor. */
static void t_root(tshared *sh, const char *prefix, pid_t supervisor) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != supervisor)
    _exit(0);
  setpgid(0, 0);
  char name[96];
  snprintf(name, sizeof name, "%s%u-root", prefix, atomic_load(&sh->tree));
  mp_shared_memory *shm;
  if (mp_shared_memory_new(&shm, name, 4096, NULL) == 0)
    atomic_fetch_add(&sh->created, 1);
  pid_t mine[T_MEMBERS] = {0};
  for (;;) {
    for (int i = 1; i < T_MEMBERS; i++) {
      if (mine[i] != 0)
        continue;
      atomic_store(&sh->began[i], 0);
      atomic_store(&sh->in_create[i], 0);
      pid_t p = fork();
      if (p == 0)
        t_member(sh, prefix, i);
      mine[i] = p > 0 ? p : 0;
      atomic_store(&sh->members[i], mine[i]);
    }
    atomic_store(&sh->started, 1);
    /* Replaces a member as soon as it is killed. */
    pid_t dead = waitpid(-1, NULL, 0);
    for (int i = 1; i < T_MEMBERS; i++)
      if (dead > 0 && mine[i] == dead)
        mine[i] = 0;
  }
}

static bool t_alive(pid_t p) { return p > 0 && kill(p, 0) == 0; }

/* Reaps whatever exited: members, and trackers (reparented to us, the
 * subreaper, by their double fork). */
static void t_reap(void) {
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

static void run_tracker(result *res, double seconds) {
  /* Orphans of a killed root, and the trackers, become our children. */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  char prefix[64];
  snprintf(prefix, sizeof prefix, "chaos%d-t", (int)getpid());
  tshared *sh = shared_map(sizeof *sh);
  unsigned seed = (unsigned)getpid() ^ 0x3131;
  double end = now_s() + seconds;
  pid_t root = 0;
  pid_t supervisor = getpid();
  double start_kill_at = 1e300;
  while (now_s() < end) {
    t_reap();
    if (root == 0 || kill(-root, 0) != 0) {
      /* The previous tree is gone (no process left in its group): a new
       * one. */
      for (int i = 0; i < T_MEMBERS; i++)
        atomic_store(&sh->members[i], 0);
      atomic_store(&sh->started, 0);
      atomic_fetch_add(&sh->tree, 1);
      start_kill_at = rnd(&seed, T_START_ODDS) == 0
                          ? now_s() + rnd(&seed, T_START_MS * 1000) / 1e6
                          : 1e300;
      root = fork();
      if (root == 0)
        t_root(sh, prefix, supervisor);
      setpgid(root, root);
      atomic_store(&sh->members[0], root);
      sleep_ms(5);
      continue;
    }
    sleep_ms(kill_pause_ms(&seed));
    /* Any member that has begun its work (entered its first create),
     * at any moment from then on: inside mp_shared_memory_new too. The
     * root, which replaces the others, one kill in T_ROOT_ODDS: then the
     * tree winds down. While it makes its first block (which starts the
     * tracker: a fork and a handshake, slow on a loaded machine) and its
     * members, the root of one tree in T_START_ODDS is killed, at a random
     * moment of its first T_START_MS: the other trees get going. */
    int cand[T_MEMBERS], ncand = 0, nlive = 0;
    for (int i = 1; i < T_MEMBERS; i++) {
      if (!t_alive(atomic_load(&sh->members[i])))
        continue;
      nlive++;
      if (atomic_load(&sh->began[i]))
        cand[ncand++] = i;
    }
    bool root_alive = t_alive(atomic_load(&sh->members[0]));
    int v;
    if (root_alive && !atomic_load(&sh->started)) {
      if (now_s() < start_kill_at)
        continue;
      v = 0;
    } else if (ncand == 0) {
      /* The root is replacing them, or they are starting: wait. Or the
       * root is dead, and died between forking a member and recording it,
       * which then runs unseen: end the tree. */
      if (!root_alive && nlive == 0)
        kill(-root, SIGKILL);
      continue;
    } else {
      /* The odds are per kill, not per cycle: a root slow to replace its
       * members must not die sooner for it. */
      v = root_alive && rnd(&seed, T_ROOT_ODDS) == 0
              ? 0
              : cand[rnd(&seed, (unsigned)ncand)];
    }
    pid_t p = atomic_load(&sh->members[v]);
    /* Cleared only if the root has not put a replacement there since. */
    bool inside = v > 0 && atomic_load(&sh->in_create[v]);
    if (p > 0 && kill(p, SIGKILL) == 0) {
      atomic_fetch_add(&res->kills, 1);
      if (inside)
        atomic_fetch_add(&sh->killed_in_create, 1);
      atomic_compare_exchange_strong(&sh->members[v], &p, 0);
    }
  }
  /* The last tree ends. */
  if (root > 0 && kill(-root, SIGKILL) == 0)
    atomic_fetch_add(&res->kills, 1);
  /* The trackers unlink what the dead trees left, then exit; they are our
   * children (subreaper), so when none is left they are all done. One
   * still running after HANG_S is a hang. */
  double until = now_s() + HANG_S;
  while (waitpid(-1, NULL, WNOHANG) >= 0 && now_s() < until)
    sleep_ms(10);
  if (waitpid(-1, NULL, WNOHANG) >= 0)
    atomic_fetch_add(&res->hangs, 1);
  uint64_t left = shm_left(prefix);
  if (left > 0)
    fprintf(stderr,
            "chaos tracker: %llu segments left (the tracker unlinks every "
            "segment registered with it, and a segment is registered "
            "before it has its name)\n",
            (unsigned long long)left);
  shm_remove(prefix);
  uint64_t created = atomic_load(&sh->created);
  atomic_store(&res->deaths, atomic_load(&sh->killed_in_create));
  fprintf(stderr, "chaos tracker: %u process trees, %llu blocks created, "
          "%llu unlinked by their creator\n", atomic_load(&sh->tree),
          (unsigned long long)atomic_load(&sh->created),
          (unsigned long long)atomic_load(&sh->unlinked));
  atomic_store(&res->ops, atomic_load(&sh->ops));
  atomic_store(&res->put, created);
  atomic_store(&res->received, created - left);
  atomic_store(&res->lost, 0);
  atomic_store(&res->left, left);
  munmap(sh, sizeof *sh);
}

/* ==== main ================================================================ */
typedef void (*workload_fn)(result *res, double seconds);

static const struct {
  const char *name;
  workload_fn fn;
  const char *deaths_text;
} workloads[] = {
    {"queue", run_queue, "consumers killed inside get"},
    {"pool", run_pool, "tasks failed with MP_EWORKERDIED"},
    {"sync", run_sync, "holders killed in the critical section, recovered"},
    {"tracker", run_tracker,
     "members killed inside mp_shared_memory_new, as seen just before"},
    {"lease", run_lease, "consumers killed between recording and ack"},
    {"spsc", run_spsc, "consumers killed inside get"},
};
#define NW (sizeof workloads / sizeof workloads[0])

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 60;
  if (!(seconds > 0))
    seconds = 60;
  bool want[NW];
  for (size_t w = 0; w < NW; w++) {
    want[w] = argc <= 2;
    for (int a = 2; a < argc; a++)
      if (strcmp(argv[a], workloads[w].name) == 0)
        want[w] = true;
  }
  result *res = shared_map(sizeof(result) * NW);
  pid_t sup[NW] = {0};
  printf("chaos: %.0f s, the workloads side by side, SIGKILL every %d-%d ms "
         "in each\n",
         seconds, KILL_MIN_MS, KILL_MAX_MS);
  fflush(stdout);
  for (size_t w = 0; w < NW; w++) {
    res[w].name = workloads[w].name;
    if (!want[w])
      continue;
    sup[w] = fork();
    if (sup[w] == 0) {
      workloads[w].fn(&res[w], seconds);
      res[w].done = 1;
      _exit(0);
    }
  }
  /* A supervisor stops by itself; one that does not within a bound is a
   * hang of its workload. */
  double until = now_s() + seconds + 6 * HANG_S;
  for (;;) {
    bool running = false;
    for (size_t w = 0; w < NW; w++) {
      if (sup[w] <= 0 || (res[w].done & 2))
        continue;
      int st;
      if (waitpid(sup[w], &st, WNOHANG) == sup[w]) {
        res[w].done |= 2; /* reaped (done keeps bit 0: finished) */
        continue;
      }
      if (now_s() > until) {
        kill(sup[w], SIGKILL);
        waitpid(sup[w], &st, 0);
        atomic_fetch_add(&res[w].hangs, 1);
        res[w].done |= 2;
        continue;
      }
      running = true;
    }
    if (!running)
      break;
    sleep_ms(50);
  }
  int status = 0;
  for (size_t w = 0; w < NW; w++) {
    if (sup[w] <= 0)
      continue;
    result *r = &res[w];
    uint64_t lost = r->lost, expl = r->explained < lost ? r->explained : lost;
    uint64_t dup = r->duplicated,
             dexpl = r->dup_explained < dup ? r->dup_explained : dup;
    bool finished = r->done & 1;
    double per_min = r->kills * 60.0 / seconds;
    printf("%-8s kills %6llu (%4.0f/min)  ops %8llu  put %8llu  received "
           "%8llu  corrupt %llu  duplicated %llu (%llu explained)  lost %llu "
           "(%llu explained, %llu unexplained)  hangs %llu  /dev/shm left "
           "%llu  [%llu %s]%s\n",
           r->name, (unsigned long long)r->kills, per_min,
           (unsigned long long)r->ops, (unsigned long long)r->put,
           (unsigned long long)r->received, (unsigned long long)r->corrupt,
           (unsigned long long)dup, (unsigned long long)dexpl,
           (unsigned long long)lost, (unsigned long long)expl,
           (unsigned long long)(lost - expl), (unsigned long long)r->hangs,
           (unsigned long long)r->left, (unsigned long long)r->deaths,
           workloads[w].deaths_text,
           finished ? "" : "  (supervisor did not finish)");
    if (r->corrupt || dup > dexpl || lost > expl || r->hangs || r->left ||
        per_min < 1000 || !finished)
      status = 1;
  }
  printf("explained: queue, a consumer killed inside get (it may have taken "
         "the message); pool, a task failed with MP_EWORKERDIED (its worker "
         "was killed); sync, a holder killed in its critical section "
         "(MP_EOWNERDEAD); lease, a message delivered again because its "
         "consumer was killed before acking it.\n");
  printf("chaos: %s\n", status ? "FAIL" : "PASS");
  return status;
}
