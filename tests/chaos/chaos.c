/* chaos.c - the kill campaign (make chaos): four workloads run side by side
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
 *            blocks; members are killed until the tree is gone, and its
 *            resource tracker must then unlink what is left. A member is
 *            killed only once its first block is registered: a process
 *            killed between creating its first block and registering it
 *            (which starts or joins the tracker: a fork and a handshake,
 *            milliseconds) leaves that block, a known defect of the
 *            tracker; CHAOS_TRACKER_ANYTIME=1 kills at any time and shows
 *            it.
 *
 * The workloads run one after another, each for a quarter of the time,
 * with the machine to itself.
 *
 * Each line: kills, operations, messages reported put (a put, task or
 * increment whose call returned success, recorded right after), received,
 * corrupt, duplicated, lost (with how many a consumer killed holding a
 * message explains: Python's Queue loses such a message too), hangs (a
 * call past a generous bound, or no progress for HANG_S seconds) and the
 * /dev/shm entries of the workload left at the end. The exit status is 1
 * when a workload shows corruption, duplicates, unexplained losses, hangs
 * or entries left, or made fewer than 1000 kills per minute.
 *
 *   chaos [seconds] [workload...]     default 60 s in all, all four */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "multiproc.h"

#define HANG_S 10.0
#define KILL_MIN_MS 0
#define KILL_MAX_MS 10

typedef struct result {
  const char *name;
  _Atomic uint64_t kills, ops, put, received, corrupt, duplicated, lost,
      explained, hangs, left;
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

/* Counts the /dev/shm entries whose name starts with prefix; with first,
 * also those that are the first segment a process created (names ending
 * in "-0" or "-root", see the tracker workload). */
static uint64_t shm_left_first(const char *prefix, uint64_t *first) {
  uint64_t n = 0;
  DIR *d = opendir("/dev/shm");
  if (d == NULL)
    return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
      continue;
    n++;
    size_t l = strlen(e->d_name);
    if (first != NULL &&
        ((l > 2 && strcmp(e->d_name + l - 2, "-0") == 0) ||
         (l > 5 && strcmp(e->d_name + l - 5, "-root") == 0)))
      (*first)++;
  }
  closedir(d);
  return n;
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

typedef struct qmsg {
  uint32_t inst, seq, len, sum;
  unsigned char payload[];
} qmsg;

enum { C_IDLE = 0, C_IN_GET = 1 };

typedef struct qshared {
  _Atomic uint32_t reported[Q_INST];            /* seqs put, per instance */
  _Atomic uint64_t seen[Q_INST][Q_SEQ / 64];    /* received, per message */
  _Atomic uint32_t cstate[Q_CONSUMERS];         /* consumer slot state */
  _Atomic uint64_t ops, received, corrupt, duplicated;
  _Atomic double last_progress;
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

static void q_producer(mp_queue *q, qshared *sh, uint32_t inst) {
  static unsigned char buf[sizeof(qmsg) + Q_LARGE];
  unsigned seed = inst * 7919u + (unsigned)getpid();
  for (uint32_t seq = 0; seq < Q_SEQ;) {
    uint32_t len =
        seq % 16 == 5 || seq % 16 == 6 ? Q_LARGE : 8 + rnd(&seed, 120);
    /* Odd messages are written in place (mp_queue_claim): killed between
     * claim and commit, they must leave no message. */
    bool inplace = seq % 2 == 1;
    void *at = buf;
    int rc = 0;
    if (inplace)
      rc = mp_queue_claim(q, sizeof(qmsg) + len, &at, 2.0);
    qmsg *m = at;
    if (rc == 0) {
      m->inst = inst;
      m->seq = seq;
      m->len = len;
      for (uint32_t i = 0; i < m->len; i++)
        m->payload[i] = (unsigned char)(seed + i * 31 + seq);
      m->sum = sum32(m->payload, m->len);
      rc = inplace ? mp_queue_commit(q, sizeof *m + len)
                   : mp_queue_put(q, buf, sizeof *m + m->len, 2.0);
    }
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

static void q_consumer(mp_queue *q, qshared *sh, int slot) {
  static unsigned char buf[sizeof(qmsg) + Q_LARGE];
  for (;;) {
    size_t len = 0;
    atomic_store(&sh->cstate[slot], C_IN_GET);
    int rc = mp_queue_get(q, buf, sizeof buf, &len, 0.5);
    atomic_fetch_add(&sh->ops, 1);
    if (rc == 0) {
      q_take(sh, buf, len);
      atomic_store(&sh->last_progress, now_s());
    }
    atomic_store(&sh->cstate[slot], C_IDLE);
    if (rc != 0 && rc != MP_ETIMEDOUT)
      _exit(3);
  }
}

static void run_queue(result *res, double seconds) {
  char name[64], prefix[80];
  snprintf(name, sizeof name, "chaos%d-q", (int)getpid());
  snprintf(prefix, sizeof prefix, "mp_%s", name);
  mp_queue_opts o = {.name = name, .capacity = 1 << 16, .inline_max = 1024};
  mp_queue *q;
  if (mp_queue_new(&q, &o) != 0) {
    fprintf(stderr, "chaos queue: mp_queue_new failed\n");
    atomic_fetch_add(&res->hangs, 1);
    return;
  }
  qshared *sh = shared_map(sizeof *sh);
  atomic_store(&sh->last_progress, now_s());
  pid_t prod[Q_PRODUCERS], cons[Q_CONSUMERS];
  uint32_t prod_inst[Q_PRODUCERS], next_inst = 0;
  unsigned seed = (unsigned)getpid();
  uint64_t in_get_deaths = 0;

#define START_PRODUCER(i)                                                    \
  do {                                                                       \
    prod_inst[i] = next_inst < Q_INST ? next_inst++ : Q_INST;                \
    prod[i] = prod_inst[i] < Q_INST ? fork() : -1;                           \
    if (prod[i] == 0)                                                        \
      q_producer(q, sh, prod_inst[i]);                                       \
  } while (0)
#define START_CONSUMER(i)                                                    \
  do {                                                                       \
    atomic_store(&sh->cstate[i], C_IDLE);                                    \
    cons[i] = fork();                                                        \
    if (cons[i] == 0)                                                        \
      q_consumer(q, sh, i);                                                  \
  } while (0)

  for (int i = 0; i < Q_PRODUCERS; i++)
    START_PRODUCER(i);
  for (int i = 0; i < Q_CONSUMERS; i++)
    START_CONSUMER(i);
  double end = now_s() + seconds;
  while (now_s() < end) {
    sleep_ms(kill_pause_ms(&seed));
    /* Producers that finished their messages leave: start others. */
    for (int i = 0; i < Q_PRODUCERS; i++)
      if (prod[i] > 0 && waitpid(prod[i], NULL, WNOHANG) == prod[i])
        START_PRODUCER(i);
    int victim = (int)rnd(&seed, Q_PRODUCERS + Q_CONSUMERS);
    if (victim < Q_PRODUCERS) {
      if (prod[victim] <= 0)
        continue;
      kill_reap(prod[victim]);
      START_PRODUCER(victim);
    } else {
      int c = victim - Q_PRODUCERS;
      kill_reap(cons[c]);
      if (atomic_load(&sh->cstate[c]) == C_IN_GET)
        in_get_deaths++;
      START_CONSUMER(c);
    }
    atomic_fetch_add(&res->kills, 1);
    if (now_s() - atomic_load(&sh->last_progress) > HANG_S) {
      atomic_fetch_add(&res->hangs, 1);
      atomic_store(&sh->last_progress, now_s());
    }
  }
  /* Stop everyone, then drain what is queued. */
  for (int i = 0; i < Q_PRODUCERS; i++)
    if (prod[i] > 0)
      kill_reap(prod[i]);
  for (int i = 0; i < Q_CONSUMERS; i++) {
    kill_reap(cons[i]);
    if (atomic_load(&sh->cstate[i]) == C_IN_GET)
      in_get_deaths++;
  }
  static unsigned char buf[sizeof(qmsg) + Q_LARGE];
  double drain_end = now_s() + HANG_S;
  for (;;) {
    size_t len = 0;
    int rc = mp_queue_get(q, buf, sizeof buf, &len, 0.2);
    if (rc == MP_ETIMEDOUT || rc == MP_EAGAIN)
      break;
    if (rc != 0 || now_s() > drain_end) {
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
  atomic_store(&res->duplicated, atomic_load(&sh->duplicated));
  atomic_store(&res->lost, lost);
  atomic_store(&res->explained, lost < in_get_deaths ? lost : in_get_deaths);
  atomic_store(&res->deaths, in_get_deaths);
  atomic_store(&res->left, shm_left(prefix));
  shm_remove(prefix);
  munmap(sh, sizeof *sh);
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
  mp_pool *pool;
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
    pid_t pids[P_WORKERS], old[P_WORKERS];
    ssize_t n = mp_pool_worker_pids(k->pool, pids, P_WORKERS);
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
  mp_pool *pool;
  mp_pool_opts o = {.processes = P_WORKERS};
  if (mp_pool_new(&pool, &o) != 0) {
    fprintf(stderr, "chaos pool: mp_pool_new failed\n");
    atomic_fetch_add(&res->hangs, 1);
    return;
  }
  pkiller k = {.pool = pool, .res = res};
  pthread_t killer;
  pthread_create(&killer, NULL, p_killer, &k);
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
    int v = (int)rnd(&seed, S_PROCS);
    kill_reap(pid[v]);
    atomic_fetch_add(&res->kills, 1);
    START_SYNC(v);
  }
  for (int i = 0; i < S_PROCS; i++)
    kill_reap(pid[i]);
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
#define T_MEMBERS 4

typedef struct tshared {
  _Atomic pid_t members[T_MEMBERS];
  _Atomic int ready[T_MEMBERS]; /* the member's first segment is registered */
  _Atomic uint64_t created, unlinked, ops;
  _Atomic uint32_t tree;
} tshared;

static void t_member(tshared *sh, const char *prefix, int slot) {
  char name[96];
  unsigned seed = (unsigned)getpid();
  for (uint32_t n = 0;; n++) {
    snprintf(name, sizeof name, "%s%u-%d-%u", prefix, atomic_load(&sh->tree),
             (int)getpid(), n);
    mp_shared_memory *shm;
    int rc = mp_shared_memory_new(&shm, name, 4096, NULL);
    atomic_fetch_add(&sh->ops, 1);
    if (rc != 0)
      continue;
    atomic_fetch_add(&sh->created, 1);
    atomic_store(&sh->ready[slot], 1);
    ((char *)mp_shared_memory_buf(shm))[0] = 1;
    /* Half of them are unlinked by their creator, the rest are left to
     * the tracker when the tree dies. */
    if (rnd(&seed, 2) == 0) {
      if (mp_shared_memory_unlink(shm) == 0)
        atomic_fetch_add(&sh->unlinked, 1);
    }
    mp_shared_memory_free(shm);
    sleep_ms(1 + rnd(&seed, 5));
  }
}

/* The tree's root: it starts the tracker (its first segment) and forks
 * the other members, which inherit the tracker connection. The tree is a
 * process group of its own (the tracker leaves it: it runs in a session
 * of its own), so the supervisor knows when the whole tree is gone, and
 * every member records its own pid, so none runs unseen. The root dies
 * with the supervisor. */
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
  atomic_store(&sh->members[0], getpid());
  atomic_store(&sh->ready[0], 1);
  for (int i = 1; i < T_MEMBERS; i++) {
    pid_t p = fork();
    if (p == 0) {
      atomic_store(&sh->members[i], getpid());
      t_member(sh, prefix, i);
    }
    atomic_store(&sh->members[i], p);
  }
  t_member(sh, prefix, 0);
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
  const char *env = getenv("CHAOS_TRACKER_ANYTIME");
  bool anytime = env != NULL && strcmp(env, "1") == 0;
  while (now_s() < end) {
    t_reap();
    if (root == 0 || kill(-root, 0) != 0) {
      /* The previous tree is gone (no process left in its group): a new
       * one. */
      for (int i = 0; i < T_MEMBERS; i++) {
        atomic_store(&sh->members[i], 0);
        atomic_store(&sh->ready[i], 0);
      }
      atomic_fetch_add(&sh->tree, 1);
      root = fork();
      if (root == 0)
        t_root(sh, prefix, supervisor);
      setpgid(root, root);
      atomic_store(&sh->members[0], root);
      sleep_ms(5);
      continue;
    }
    sleep_ms(kill_pause_ms(&seed));
    /* A member is killed once its first segment is registered (see the
     * DESIGN note at the top: the first registration's window). */
    int cand[T_MEMBERS], ncand = 0;
    for (int i = 0; i < T_MEMBERS; i++)
      if (t_alive(atomic_load(&sh->members[i])) &&
          (anytime || atomic_load(&sh->ready[i])))
        cand[ncand++] = i;
    if (ncand == 0)
      continue;
    int v = cand[rnd(&seed, (unsigned)ncand)];
    pid_t p = atomic_load(&sh->members[v]);
    if (kill(p, SIGKILL) == 0) {
      atomic_fetch_add(&res->kills, 1);
      atomic_store(&sh->members[v], 0);
    }
  }
  /* The last tree: wait for its members to be registered, then end it. */
  for (int i = 0; i < 100 && !anytime; i++) {
    bool all = true;
    for (int m = 0; m < T_MEMBERS; m++)
      if (t_alive(atomic_load(&sh->members[m])) && !atomic_load(&sh->ready[m]))
        all = false;
    if (all)
      break;
    sleep_ms(10);
  }
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
  uint64_t first = 0;
  uint64_t left = shm_left_first(prefix, &first);
  if (left > 0)
    fprintf(stderr,
            "chaos tracker: %llu segments left. The tracker unlinks every "
            "segment registered with it, so these are segments whose creator "
            "was killed between creating and registering them (%llu of them "
            "the process's first, whose registration also starts or joins "
            "the tracker)\n",
            (unsigned long long)left, (unsigned long long)first);
  shm_remove(prefix);
  uint64_t created = atomic_load(&sh->created);
  atomic_store(&res->deaths, atomic_load(&sh->tree));
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
    {"tracker", run_tracker, "process trees ended"},
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
  size_t nwant = 0;
  for (size_t w = 0; w < NW; w++)
    nwant += want[w];
  double each = seconds / (double)(nwant ? nwant : 1);
  printf("chaos: %.0f s in all, %.0f s per workload, SIGKILL every %d-%d ms\n",
         seconds, each, KILL_MIN_MS, KILL_MAX_MS);
  fflush(stdout);
  for (size_t w = 0; w < NW; w++) {
    res[w].name = workloads[w].name;
    if (!want[w])
      continue;
    sup[w] = fork();
    if (sup[w] == 0) {
      workloads[w].fn(&res[w], each);
      res[w].done = 1;
      _exit(0);
    }
    /* The supervisor stops by itself; one that does not within a bound is
     * a hang of its workload. */
    double until = now_s() + each + 6 * HANG_S;
    int st;
    while (waitpid(sup[w], &st, WNOHANG) == 0) {
      if (now_s() > until) {
        kill(sup[w], SIGKILL);
        waitpid(sup[w], &st, 0);
        atomic_fetch_add(&res[w].hangs, 1);
        break;
      }
      sleep_ms(50);
    }
  }
  int status = 0;
  for (size_t w = 0; w < NW; w++) {
    if (sup[w] <= 0)
      continue;
    result *r = &res[w];
    uint64_t lost = r->lost, expl = r->explained < lost ? r->explained : lost;
    double per_min = r->kills * 60.0 / each;
    printf("%-8s kills %6llu (%4.0f/min)  ops %8llu  put %8llu  received "
           "%8llu  corrupt %llu  duplicated %llu  lost %llu (%llu explained, "
           "%llu unexplained)  hangs %llu  /dev/shm left %llu  [%llu %s]%s\n",
           r->name, (unsigned long long)r->kills, per_min,
           (unsigned long long)r->ops, (unsigned long long)r->put,
           (unsigned long long)r->received, (unsigned long long)r->corrupt,
           (unsigned long long)r->duplicated, (unsigned long long)lost,
           (unsigned long long)expl, (unsigned long long)(lost - expl),
           (unsigned long long)r->hangs, (unsigned long long)r->left,
           (unsigned long long)r->deaths, workloads[w].deaths_text,
           r->done ? "" : "  (supervisor did not finish)");
    if (r->corrupt || r->duplicated || lost > expl || r->hangs || r->left ||
        per_min < 1000 || !r->done)
      status = 1;
  }
  printf("explained: queue, a consumer killed inside get (it may have taken "
         "the message); pool, a task failed with MP_EWORKERDIED (its worker "
         "was killed); sync, a holder killed in its critical section "
         "(MP_EOWNERDEAD).\n");
  printf("chaos: %s\n", status ? "FAIL" : "PASS");
  return status;
}
