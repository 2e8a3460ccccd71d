/* test_chaos_queue.c - the chaos test of G-QUEUE-1..3 and G-QUEUE-7 (no
 * survivor hangs): several producer and consumer processes on one queue,
 * SIGKILLed at random moments over and over and replaced, for
 * MP_STRESS_SECONDS per case (default 5).
 *
 * Every message is numbered (producer id, seq) and carries a checksum of
 * all its bytes. Producers record in shared memory the seq they are about
 * to put ("attempt") and the highest seq whose put returned 0 ("put_ok").
 * Consumers record each message they got in a shared table right after
 * get returns. At the end the queue is drained, and:
 *   - no message is corrupt (checksum, length) and none was seen twice;
 *   - every message whose put returned was received, except messages a
 *     killed consumer took: a consumer killed after its get committed and
 *     before it wrote the message down consumed it whole (allowed: the get
 *     "did not return", and the promise is that it either left the message
 *     queued or consumed it whole), so each consumer kill may account for
 *     one message unseen (batch consumers: one batch);
 *   - a seq a killed producer attempted but was not told about may be
 *     there or not (the replacement marks it unsure and never reuses it);
 *   - nothing is left in /dev/shm, and no survivor hung (every wait has a
 *     timeout, every child must exit 0 once told to stop).
 *
 * Forked children never call cmocka: they report through their exit
 * status. */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "queue_internal.h"

enum { PRODUCERS = 3, CONSUMERS = 3, MAX_SEQ = 1 << 21, MAX_WORDS = 2048 };

typedef struct config {
  mp_queue_order order;
  size_t capacity, maxsize;
  bool large;   /* one message in 16 is large (over the inline limit) */
  bool batches; /* producers put_batch, consumers get_batch */
  bool named;
  bool zero_copy; /* consumers use mp_queue_get_msg */
} config;

typedef struct shared {
  _Atomic int64_t put_ok[PRODUCERS];
  _Atomic int64_t attempt[PRODUCERS];
  _Atomic uint8_t got[PRODUCERS][MAX_SEQ];
  _Atomic uint8_t unsure[PRODUCERS][MAX_SEQ];
  _Atomic uint32_t corrupt;
  _Atomic uint32_t stop;
  _Atomic uint64_t received;
} shared;

typedef struct child {
  mp_queue *q;
  shared *sh;
  const config *cfg;
  int id;
  const char *name;
} child;

static double stress_seconds(void) {
  const char *s = getenv("MP_STRESS_SECONDS");
  double v = s != NULL ? atof(s) : 0;
  return v > 0 ? v : 5.0;
}

static double slack(double s) {
  return mp_test_sanitized() ? s * 5 : s;
}

static uint32_t checksum(const uint32_t *w, size_t n) {
  uint32_t s = 0x811c9dc5u;
  for (size_t i = 0; i < n; i++)
    s = (s ^ w[i]) * 16777619u;
  return s;
}

/* words_for: how many 32-bit words message seq of this producer has. */
static size_t words_for(const config *cfg, int64_t seq) {
  if (cfg->large && seq % 16 == 7)
    return 1200 + (size_t)(seq % 700); /* 4.8 to 7.6 KB: large */
  return 3 + (size_t)(seq % 40);
}

static size_t make_message(uint32_t *buf, int id, int64_t seq,
                           const config *cfg) {
  size_t words = words_for(cfg, seq);
  buf[0] = (uint32_t)id;
  buf[1] = (uint32_t)seq;
  buf[2] = 0;
  for (size_t i = 3; i < words; i++)
    buf[i] = (uint32_t)(seq * 2654435761u + i);
  buf[2] = checksum(buf, words);
  return words * 4;
}

/* check_message verifies one received message and records it. */
static int check_message(shared *sh, const config *cfg, const void *data,
                         size_t len) {
  static _Thread_local uint32_t copy[MAX_WORDS];
  if (len < 12 || len % 4 != 0 || len > sizeof copy)
    return -1;
  memcpy(copy, data, len);
  if (copy[0] >= PRODUCERS || copy[1] >= MAX_SEQ ||
      len / 4 != words_for(cfg, copy[1]))
    return -1;
  uint32_t want = copy[2];
  copy[2] = 0;
  if (checksum(copy, len / 4) != want)
    return -1;
  atomic_fetch_add(&sh->got[copy[0]][copy[1]], 1);
  atomic_fetch_add(&sh->received, 1);
  return 0;
}

static mp_queue *child_queue(child *c) {
  if (!c->cfg->named)
    return c->q;
  mp_queue *q;
  return mp_queue_open(&q, c->name) == 0 ? q : NULL;
}

/* A producer starts after the seq its predecessor attempted, and marks
 * that one unsure if its put was never confirmed. */
static int producer(void *arg) {
  child *c = arg;
  shared *sh = c->sh;
  mp_queue *q = child_queue(c);
  if (q == NULL)
    return 10;
  int64_t done = atomic_load(&sh->put_ok[c->id]);
  int64_t tried = atomic_load(&sh->attempt[c->id]);
  for (int64_t s = done + 1; s <= tried; s++)
    atomic_store(&sh->unsure[c->id][s], 1);
  int64_t seq = (tried > done ? tried : done) + 1;
  static uint32_t buf[8 * MAX_WORDS];
  while (seq + 8 < MAX_SEQ && !atomic_load(&sh->stop)) {
    if (!c->cfg->batches) {
      size_t len = make_message(buf, c->id, seq, c->cfg);
      atomic_store(&sh->attempt[c->id], seq);
      int rc = mp_queue_put(q, buf, len, 0.5);
      if (rc == MP_ETIMEDOUT)
        continue;
      if (rc != 0)
        return 1;
      atomic_store(&sh->put_ok[c->id], seq);
      seq++;
      continue;
    }
    size_t lens[8], off = 0;
    int n = 1 + (int)(seq % 8);
    for (int i = 0; i < n; i++) {
      lens[i] =
          make_message((uint32_t *)((char *)buf + off), c->id, seq + i, c->cfg);
      off += lens[i];
    }
    atomic_store(&sh->attempt[c->id], seq + n - 1);
    ssize_t put = mp_queue_put_batch(q, buf, lens, (size_t)n, 0.5);
    if (put == MP_ETIMEDOUT)
      continue;
    if (put <= 0)
      return 2;
    /* A partial batch (timeout) confirms what it put; the rest are
     * attempted again under new numbers. */
    atomic_store(&sh->put_ok[c->id], seq + put - 1);
    if (put < n) {
      for (int64_t s = seq + put; s < seq + n; s++)
        atomic_store(&sh->unsure[c->id][s], 1);
    }
    seq += n;
  }
  /* Out of numbers: wait to be told to stop (or killed) like the rest. */
  while (!atomic_load(&sh->stop))
    usleep(1000);
  return 0;
}

static int consumer(void *arg) {
  child *c = arg;
  shared *sh = c->sh;
  mp_queue *q = child_queue(c);
  if (q == NULL)
    return 10;
  static unsigned char buf[16 * MAX_WORDS * 4];
  while (!atomic_load(&sh->stop)) {
    int rc;
    if (c->cfg->zero_copy) {
      mp_queue_msg m;
      rc = mp_queue_get_msg(q, &m, 0.2);
      if (rc == 0) {
        rc = check_message(sh, c->cfg, m.data, m.len);
        mp_queue_msg_release(&m);
      }
    } else if (c->cfg->batches) {
      size_t lens[16];
      ssize_t n = mp_queue_get_batch(q, buf, sizeof buf, lens, 16, 0.2);
      rc = n < 0 ? (int)n : 0;
      size_t off = 0;
      for (ssize_t i = 0; i < n && rc == 0; i++) {
        rc = check_message(sh, c->cfg, buf + off, lens[i]);
        off += lens[i];
      }
    } else {
      size_t len;
      rc = mp_queue_get(q, buf, sizeof buf, &len, 0.2);
      if (rc == 0)
        rc = check_message(sh, c->cfg, buf, len);
    }
    if (rc == MP_ETIMEDOUT)
      continue;
    if (rc != 0) {
      atomic_fetch_add(&sh->corrupt, 1);
      return 1;
    }
  }
  return 0;
}

static int count_prefix(const char *prefix) {
  size_t plen = strlen(prefix);
  DIR *d = opendir("/dev/shm");
  int n = 0;
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    n += strncmp(e->d_name, prefix, plen) == 0 && e->d_name[plen] == '+';
  if (d != NULL)
    closedir(d);
  return n;
}

static void run(const config *cfg) {
  char name[64];
  mp_test_name(name, sizeof name, "chaos");
  mp_queue *q = NULL;
  assert_rc(mp_queue_new(&q,
                         &(mp_queue_opts){
                             .name = cfg->named ? name : NULL,
                             .order = cfg->order,
                             .capacity = cfg->capacity,
                             .maxsize = cfg->maxsize,
                         }),
            0);
  char prefix[MP__QUEUE_PREFIX_MAX];
  snprintf(prefix, sizeof prefix, "%s", q->prefix);
  shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(sh != MAP_FAILED);
  enum { N = PRODUCERS + CONSUMERS };
  child args[N];
  pid_t pids[N];
  for (int i = 0; i < N; i++) {
    args[i] = (child){.q = q,
                      .sh = sh,
                      .cfg = cfg,
                      .name = name,
                      .id = i < PRODUCERS ? i : i - PRODUCERS};
    pids[i] = mp_test_fork(i < PRODUCERS ? producer : consumer, &args[i]);
  }
  long kills = 0, consumer_kills = 0;
  int early = -1, early_status = 0;
  uint32_t x = (uint32_t)getpid() * 2654435761u;
  double end = mp_test_now() + stress_seconds();
  while (mp_test_now() < end && early < 0) {
    x = x * 1103515245u + 12345u;
    usleep(500 + (x >> 16) % 5000);
    int victim = (int)((x >> 4) % N);
    kill(pids[victim], SIGKILL);
    int status;
    if (waitpid(pids[victim], &status, 0) != pids[victim])
      status = 0;
    /* A child that exited by itself failed (it only exits when told to
     * stop): stop them all before failing, so none is left behind. */
    if (!WIFSIGNALED(status)) {
      early = victim;
      early_status = status;
      pids[victim] = 0;
      break;
    }
    kills++;
    consumer_kills += victim >= PRODUCERS;
    pids[victim] =
        mp_test_fork(victim < PRODUCERS ? producer : consumer, &args[victim]);
  }
  atomic_store(&sh->stop, 1);
  int bad = -1, bad_status = 0;
  for (int i = 0; i < N; i++) {
    if (pids[i] == 0)
      continue;
    int status = mp_test_wait(pids[i], slack(60));
    if (bad < 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      bad = i;
      bad_status = status;
    }
  }
  if (early >= 0)
    fail_msg("child %d ended by itself before the end (status 0x%x)", early,
             early_status);
  if (bad >= 0)
    fail_msg("child %d did not exit cleanly when told to stop (status "
             "0x%x)",
             bad, bad_status);
  /* Drain. */
  static unsigned char buf[MAX_WORDS * 4];
  for (;;) {
    size_t len;
    int rc = mp_queue_get(q, buf, sizeof buf, &len, 0);
    if (rc == MP_EAGAIN)
      break;
    assert_rc(rc, 0);
    assert_int_equal(check_message(sh, cfg, buf, len), 0);
  }
  assert_int_equal(atomic_load(&sh->corrupt), 0);
  long missing = 0, confirmed = 0;
  for (int p = 0; p < PRODUCERS; p++) {
    int64_t last = atomic_load(&sh->put_ok[p]);
    for (int64_t s = 1; s < MAX_SEQ; s++) {
      uint8_t n = atomic_load(&sh->got[p][s]);
      if (n > 1)
        fail_msg("producer %d seq %lld received %u times", p, (long long)s, n);
      if (s <= last && !atomic_load(&sh->unsure[p][s])) {
        confirmed++;
        missing += n == 0;
      }
    }
  }
  long allowed = consumer_kills * (cfg->batches ? 16 : 1);
  printf("    %ld kills (%ld consumers), %ld messages confirmed, %llu "
         "received, %ld unaccounted (at most %ld allowed)\n",
         kills, consumer_kills, confirmed,
         (unsigned long long)atomic_load(&sh->received), missing, allowed);
  assert_true(confirmed > 0);
  if (missing > allowed)
    fail_msg("%ld messages whose put returned were lost", missing);
  munmap(sh, sizeof *sh);
  mp_queue_free(q);
  assert_int_equal(count_prefix(prefix), 0);
}

static void chaos_fifo(void **state) {
  (void)state;
  run(&(config){.order = MP_QUEUE_FIFO, .capacity = 16384, .maxsize = 200});
}

static void chaos_fifo_large_messages(void **state) {
  (void)state;
  run(&(config){.order = MP_QUEUE_FIFO, .capacity = 16384, .large = true});
}

static void chaos_fifo_batches(void **state) {
  (void)state;
  run(&(config){.order = MP_QUEUE_FIFO, .capacity = 16384, .batches = true});
}

static void chaos_priority_named(void **state) {
  (void)state;
  run(&(config){.order = MP_QUEUE_PRIORITY,
                .maxsize = 100,
                .named = true,
                .large = true});
}

static void chaos_lifo_zero_copy(void **state) {
  (void)state;
  run(&(config){.order = MP_QUEUE_LIFO,
                .maxsize = 100,
                .large = true,
                .zero_copy = true});
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(chaos_fifo),
    cmocka_unit_test(chaos_fifo_large_messages),
    cmocka_unit_test(chaos_fifo_batches),
    cmocka_unit_test(chaos_priority_named),
    cmocka_unit_test(chaos_lifo_zero_copy),
};

MP_TEST_MAIN(tests)
