/* test_queue_claim.c - the in-place put (mp_queue_claim, mp_queue_commit,
 * mp_queue_abandon): a message written where it will be read, visible
 * only once committed; abandoned or cut short by SIGKILL it leaves no
 * message, no held lock and no segment.
 *
 * White-box where it counts segments: includes src/queue_internal.h for a
 * queue's segment name prefix. Forked children report through their exit
 * status and never call cmocka. */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "harness.h"
#include "queue_fixture.h"
#include "queue_internal.h"

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(i * 13 + seed);
}

static bool same(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(i * 13 + seed))
      return false;
  return true;
}

#define BIG (600 * 1024) /* over the default inline limit (256 KiB) */

static void commit_small(void **state) {
  (void)state;
  mp_queue *q = qnew(NULL);
  void *buf = NULL;
  assert_rc(mp_queue_claim(q, 100, &buf, 0), 0);
  assert_non_null(buf);
  fill(buf, 60, 1);
  /* Not visible before the commit. */
  assert_int_equal(mp_queue_qsize(q), 0);
  assert_rc(mp_queue_commit(q, 60), 0);
  assert_int_equal(mp_queue_qsize(q), 1);
  unsigned char out[128];
  size_t len = 0;
  assert_rc(mp_queue_get(q, out, sizeof out, &len, 0), 0);
  assert_int_equal(len, 60);
  assert_true(same(out, 60, 1));
  /* Claims go in order with puts, and an empty one is a message. */
  assert_rc(mp_queue_put(q, "a", 1, 0), 0);
  assert_rc(mp_queue_claim(q, 0, &buf, 0), 0);
  assert_rc(mp_queue_commit(q, 0), 0);
  assert_rc(mp_queue_get(q, out, sizeof out, &len, 0), 0);
  assert_int_equal(len, 1);
  assert_rc(mp_queue_get(q, out, sizeof out, &len, 0), 0);
  assert_int_equal(len, 0);
  mp_queue_free(q);
}

/* Claims that wrap around the ring's end, many times over. */
static void commit_small_wraps(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096});
  unsigned char out[1024];
  for (unsigned i = 0; i < 200; i++) {
    size_t n = 100 + (i * 37) % 900;
    void *buf;
    assert_rc(mp_queue_claim(q, n, &buf, 0), 0);
    fill(buf, n, i);
    assert_rc(mp_queue_commit(q, n), 0);
    size_t len = 0;
    assert_rc(mp_queue_get(q, out, sizeof out, &len, 0), 0);
    assert_int_equal(len, n);
    assert_true(same(out, n, i));
  }
  mp_queue_free(q);
}

static void commit_large(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "claim");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  void *buf = NULL;
  assert_rc(mp_queue_claim(q, BIG, &buf, 0), 0);
  fill(buf, BIG, 7);
  assert_int_equal(mp_queue_qsize(q), 0);
  assert_rc(mp_queue_commit(q, BIG), 0);
  /* Copied out. */
  unsigned char *out = malloc(BIG);
  assert_non_null(out);
  size_t len = 0;
  assert_rc(mp_queue_get(q, out, BIG, &len, 0), 0);
  assert_int_equal(len, BIG);
  assert_true(same(out, BIG, 7));
  /* Shorter than claimed, taken without a copy. */
  assert_rc(mp_queue_claim(q, BIG, &buf, 0), 0);
  fill(buf, BIG - 1000, 9);
  assert_rc(mp_queue_commit(q, BIG - 1000), 0);
  mp_queue_msg msg;
  assert_rc(mp_queue_get_msg(q, &msg, 0), 0);
  assert_int_equal(msg.len, BIG - 1000);
  assert_true(same(msg.data, BIG - 1000, 9));
  mp_queue_msg_release(&msg);
  free(out);
  assert_int_equal(count_large(q), 0);
  mp_queue_free(q);
}

static void abandon_leaves_nothing(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "abandon");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  void *buf;
  assert_rc(mp_queue_claim(q, 100, &buf, 0), 0);
  memset(buf, 1, 100);
  assert_rc(mp_queue_abandon(q), 0);
  assert_rc(mp_queue_claim(q, BIG, &buf, 0), 0);
  assert_int_equal(count_large(q), 1);
  memset(buf, 2, BIG);
  assert_rc(mp_queue_abandon(q), 0);
  assert_int_equal(count_large(q), 0);
  assert_int_equal(mp_queue_qsize(q), 0);
  unsigned char out[8];
  size_t len;
  assert_rc(mp_queue_get(q, out, sizeof out, &len, 0), MP_EAGAIN);
  /* The lock was given back: a put goes through, and is the only one. */
  assert_rc(mp_queue_put(q, "x", 1, 0), 0);
  assert_rc(mp_queue_get(q, out, sizeof out, &len, 0), 0);
  assert_int_equal(len, 1);
  assert_rc(mp_queue_abandon(q), MP_EINVAL);
  mp_queue_free(q);
}

static void claim_errors(void **state) {
  (void)state;
  mp_queue *q = qnew(&(mp_queue_opts){.capacity = 4096, .max_message = BIG});
  void *buf;
  assert_rc(mp_queue_claim(NULL, 1, &buf, 0), MP_EINVAL);
  assert_rc(mp_queue_claim(q, 1, NULL, 0), MP_EINVAL);
  assert_rc(mp_queue_claim(q, BIG + 1, &buf, 0), MP_ETOOBIG);
  assert_rc(mp_queue_claim(q, 1, &buf, NAN), MP_EINVAL);
  assert_rc(mp_queue_commit(q, 0), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "no claim"));
  assert_rc(mp_queue_claim(q, 10, &buf, 0), 0);
  assert_rc(mp_queue_claim(q, 10, &buf, 0), MP_EDEADLK);
  /* The lock is this thread's until the commit. */
  assert_rc(mp_queue_put(q, "x", 1, 0), MP_EDEADLK);
  assert_rc(mp_queue_commit(q, 11), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "over the size"));
  assert_rc(mp_queue_commit(q, 10), 0);
  /* A large claim commits a large message. */
  assert_rc(mp_queue_claim(q, 5000, &buf, 0), 0);
  assert_rc(mp_queue_commit(q, 100), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "inline_max"));
  assert_rc(mp_queue_abandon(q), 0);
  /* Full: no room for a claim at timeout 0, nor within a short one. */
  while (mp_queue_put_nowait(q, "0123456789abcdef", 16) == 0) {
  }
  assert_rc(mp_queue_claim(q, 16, &buf, 0), MP_EAGAIN);
  assert_rc(mp_queue_claim(q, 16, &buf, 0.01), MP_ETIMEDOUT);
  assert_rc(mp_queue_close(q), 0);
  assert_rc(mp_queue_claim(q, 16, &buf, 0), MP_ECLOSED);
  mp_queue_free(q);
  mp_queue *lifo = qnew(&(mp_queue_opts){.order = MP_QUEUE_LIFO});
  assert_rc(mp_queue_claim(lifo, 1, &buf, 0), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "FIFO"));
  mp_queue_free(lifo);
}

/* A claim of another thread keeps producers waiting until it commits; a
 * commit or abandon from a thread without a claim is refused. */
typedef struct other_arg {
  mp_queue *q;
  int commit_rc, put_rc;
} other_arg;

static void *other_thread(void *p) {
  other_arg *a = p;
  a->commit_rc = mp_queue_commit(a->q, 1);
  a->put_rc = mp_queue_put(a->q, "b", 1, 10);
  return NULL;
}

static void claim_is_per_thread(void **state) {
  (void)state;
  mp_queue *q = qnew(NULL);
  void *buf;
  assert_rc(mp_queue_claim(q, 1, &buf, 0), 0);
  *(char *)buf = 'a';
  other_arg a = {.q = q};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_thread, &a), 0);
  usleep(20000);
  assert_int_equal(mp_queue_qsize(q), 0);
  assert_rc(mp_queue_commit(q, 1), 0);
  pthread_join(t, NULL);
  assert_rc(a.commit_rc, MP_EINVAL);
  assert_rc(a.put_rc, 0);
  char out[4];
  size_t len;
  assert_rc(mp_queue_get(q, out, sizeof out, &len, 0), 0);
  assert_int_equal(out[0], 'a');
  assert_rc(mp_queue_get(q, out, sizeof out, &len, 0), 0);
  assert_int_equal(out[0], 'b');
  mp_queue_free(q);
}

/* ---- death before and after the commit --------------------------------- */

typedef struct die_arg {
  const char *name;
  size_t size;
  bool commit;
} die_arg;

/* die_claiming opens the queue, claims, fills, commits if asked, and
 * dies by SIGKILL either way. */
static int die_claiming(void *p) {
  die_arg *a = p;
  mp_queue *q;
  if (mp_queue_open(&q, a->name) != 0)
    return 1;
  void *buf;
  if (mp_queue_claim(q, a->size, &buf, 5) != 0)
    return 2;
  fill(buf, a->size, 3);
  if (a->commit && mp_queue_commit(q, a->size) != 0)
    return 3;
  raise(SIGKILL);
  return 4;
}

static void run_death(size_t size, bool commit) {
  char name[64];
  mp_test_name(name, sizeof name, "death");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  die_arg a = {.name = name, .size = size, .commit = commit};
  int st = mp_test_wait(mp_test_fork(die_claiming, &a), mp_test_slack(30));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  unsigned char *out = malloc(size + 1);
  assert_non_null(out);
  size_t len = 0;
  if (commit) {
    /* Committed: the message is there, whole. */
    assert_rc(mp_queue_get(q, out, size + 1, &len, 0), 0);
    assert_int_equal(len, size);
    assert_true(same(out, size, 3));
  } else {
    /* Not committed: no message, and a put takes the dead claimer's lock
     * over (within its slices) and goes through. */
    assert_rc(mp_queue_get(q, out, size + 1, &len, 0), MP_EAGAIN);
    assert_rc(mp_queue_put(q, "y", 1, mp_test_slack(10)), 0);
    assert_rc(mp_queue_get(q, out, size + 1, &len, 0), 0);
    assert_int_equal(len, 1);
    /* The segment of a large claim is an orphan with a dead producer: a
     * sweep removes it. */
    mp__queue_sweep(q);
  }
  assert_int_equal(count_large(q), 0);
  free(out);
  mp_queue_free(q);
}

static void death_before_commit_small(void **state) {
  (void)state;
  run_death(1000, false);
}

static void death_before_commit_large(void **state) {
  (void)state;
  run_death(BIG, false);
}

static void death_after_commit_small(void **state) {
  (void)state;
  run_death(1000, true);
}

static void death_after_commit_large(void **state) {
  (void)state;
  run_death(BIG, true);
}

/* count_kept: spare slots holding a kept segment (FULL). */
static int count_kept(mp_queue *q) {
  int n = 0;
  for (int i = 0; i < MP__QUEUE_SPARES; i++)
    n += (atomic_load(&q->s->spares[i]) & 3u) == 1u;
  return n;
}

/* A claimer killed while it holds a recycled segment (a kept one, which
 * this process also has mapped): before its commit the segment is an
 * orphan that a sweep removes; after it, the message is read whole
 * through this process's kept mapping of the same pages. */
static void run_death_recycled(bool commit) {
  char name[64];
  mp_test_name(name, sizeof name, "deathrec");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  unsigned char *out = malloc(BIG + 1);
  assert_non_null(out);
  fill(out, BIG, 4);
  size_t len = 0;
  assert_rc(mp_queue_put(q, out, BIG, 0), 0);
  assert_rc(mp_queue_get(q, out, BIG + 1, &len, 0), 0);
  assert_true(same(out, BIG, 4));
  assert_int_equal(count_kept(q), 1);
  die_arg a = {.name = name, .size = BIG, .commit = commit};
  int st = mp_test_wait(mp_test_fork(die_claiming, &a), mp_test_slack(30));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  /* The claimer took the kept segment. */
  assert_int_equal(count_kept(q), 0);
  assert_int_equal(count_large(q), 1);
  if (commit) {
    assert_rc(mp_queue_get(q, out, BIG + 1, &len, 0), 0);
    assert_int_equal(len, BIG);
    assert_true(same(out, BIG, 3));
    assert_int_equal(count_kept(q), 1);
  } else {
    assert_rc(mp_queue_get(q, out, BIG + 1, &len, 0), MP_EAGAIN);
    mp__queue_sweep(q);
    assert_int_equal(count_large(q), 0);
    /* A put takes the dead claimer's lock over and goes through. */
    fill(out, BIG, 6);
    assert_rc(mp_queue_put(q, out, BIG, mp_test_slack(10)), 0);
    memset(out, 0, BIG);
    assert_rc(mp_queue_get(q, out, BIG + 1, &len, 0), 0);
    assert_true(same(out, BIG, 6));
  }
  assert_int_equal(count_large(q), 0);
  free(out);
  mp_queue_free(q);
}

static void death_before_commit_recycled(void **state) {
  (void)state;
  run_death_recycled(false);
}

static void death_after_commit_recycled(void **state) {
  (void)state;
  run_death_recycled(true);
}

/* A kept segment shrunk from outside is grown back by the next put that
 * takes it (and the consumer reads the whole message, not what a stale
 * mapping held). */
static void shrunk_spare_is_grown(void **state) {
  (void)state;
  mp_queue *q = qnew(NULL);
  unsigned char *buf = malloc(BIG + 1);
  assert_non_null(buf);
  size_t len = 0;
  for (unsigned round = 0; round < 2; round++) {
    fill(buf, BIG, 10 + round);
    assert_rc(mp_queue_put(q, buf, BIG, 0), 0);
    memset(buf, 0, BIG);
    assert_rc(mp_queue_get(q, buf, BIG + 1, &len, 0), 0);
    assert_true(same(buf, BIG, 10 + round));
    assert_int_equal(count_kept(q), 1);
    char path[256];
    int k = -1;
    for (int i = 0; i < MP__QUEUE_SPARES; i++)
      if ((atomic_load(&q->s->spares[i]) & 3u) == 1u)
        k = i;
    snprintf(path, sizeof path, "/dev/shm/%s+s%d", q->prefix, k);
    assert_int_equal(truncate(path, 4096), 0);
  }
  fill(buf, BIG, 20);
  assert_rc(mp_queue_put(q, buf, BIG, 0), 0);
  memset(buf, 0, BIG);
  assert_rc(mp_queue_get(q, buf, BIG + 1, &len, 0), 0);
  assert_int_equal(len, BIG);
  assert_true(same(buf, BIG, 20));
  free(buf);
  mp_queue_free(q);
}

/* The last user's free removes a dead claimer's segment too. */
static void death_before_commit_then_free(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "deathfree");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  die_arg a = {.name = name, .size = BIG, .commit = false};
  int st = mp_test_wait(mp_test_fork(die_claiming, &a), mp_test_slack(30));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  assert_int_equal(count_large(q), 1);
  /* The harness fails the case if the segment outlives the free. */
  mp_queue_free(q);
}

/* ---- zero-copy holders ---------------------------------------------------
 * A zero-copy consumer holds its message's segment under its own name
 * until it releases it; killed before, the segment is a dead process's
 * that no record names, and a sweep removes it. */
static int die_holding_msg(void *p) {
  const char *name = p;
  mp_queue *q;
  if (mp_queue_open(&q, name) != 0)
    return 1;
  mp_queue_msg m;
  if (mp_queue_get_msg(q, &m, 5) != 0 || !same(m.data, m.len, 5))
    return 2;
  raise(SIGKILL);
  return 3;
}

/* count_lent: spare slots lent to a zero-copy holder. */
static int count_lent(mp_queue *q) {
  int n = 0;
  for (int i = 0; i < MP__QUEUE_SPARES; i++)
    n += (atomic_load(&q->s->spares[i]) & 3u) == 3u;
  return n;
}

static void zero_copy_holder_death_swept(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "zcdeath");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  unsigned char *in = malloc(BIG);
  assert_non_null(in);
  fill(in, BIG, 5);
  assert_rc(mp_queue_put(q, in, BIG, 0), 0);
  int st = mp_test_wait(mp_test_fork(die_holding_msg, name), mp_test_slack(30));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  assert_int_equal(mp_queue_qsize(q), 0);
  /* Its segment was parked lent to it: no orphan, and the slot names a
   * dead holder. */
  assert_int_equal(count_large(q), 0);
  assert_int_equal(count_lent(q), 1);
  /* The next large put settles the slot (the spare exists: it is one
   * again) and reuses the segment, right to the last byte. */
  fill(in, BIG, 7);
  assert_rc(mp_queue_put(q, in, BIG, 0), 0);
  assert_int_equal(count_lent(q), 0);
  assert_int_equal(count_large(q), 1);
  mp_queue_msg m;
  assert_rc(mp_queue_get_msg(q, &m, 0), 0);
  assert_true(same(m.data, m.len, 7));
  mp_queue_msg_release(&m);
  assert_int_equal(count_large(q), 0);
  free(in);
  mp_queue_free(q);
}

/* With every spare slot taken, a zero-copy consumer holds its segment
 * under its own name instead, and removes it at the release; killed
 * while holding it, a sweep removes it. */
static void zero_copy_without_a_free_slot(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "zcnoslot");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  unsigned char *in = malloc(BIG);
  assert_non_null(in);
  /* Slots held by a live process (this one) in the middle of a move. */
  uint64_t busy = ((uint64_t)mp__queue_tag(q) << 32) | 2u;
  for (int i = 0; i < MP__QUEUE_SPARES; i++)
    atomic_store(&q->s->spares[i], busy);
  fill(in, BIG, 8);
  assert_rc(mp_queue_put(q, in, BIG, 0), 0);
  mp_queue_msg m;
  assert_rc(mp_queue_get_msg(q, &m, 0), 0);
  assert_true(same(m.data, m.len, 8));
  assert_int_equal(count_large(q), 1);
  assert_int_equal(count_lent(q), 0);
  mp_queue_msg_release(&m);
  assert_int_equal(count_large(q), 0);
  fill(in, BIG, 5);
  assert_rc(mp_queue_put(q, in, BIG, 0), 0);
  int st = mp_test_wait(mp_test_fork(die_holding_msg, name), mp_test_slack(30));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  assert_int_equal(count_large(q), 1);
  mp__queue_sweep(q);
  assert_int_equal(count_large(q), 0);
  for (int i = 0; i < MP__QUEUE_SPARES; i++)
    atomic_store(&q->s->spares[i], 0);
  free(in);
  mp_queue_free(q);
}

/* A message released after its queue's handle was freed removes its
 * segment and mapping on its own. */
static void zero_copy_release_after_free(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "zcfree");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  void *buf;
  assert_rc(mp_queue_claim(q, BIG, &buf, 0), 0);
  fill(buf, BIG, 6);
  assert_rc(mp_queue_commit(q, BIG), 0);
  mp_queue_msg m;
  assert_rc(mp_queue_get_msg(q, &m, 0), 0);
  mp_queue_free(q);
  assert_true(same(m.data, m.len, 6));
  mp_queue_msg_release(&m);
  /* The harness fails the case if anything is left in /dev/shm. */
}

/* Many large messages through in-place puts and zero-copy gets reuse a
 * few segments and mappings, with the data right each time. */
static int produce_inplace(void *p) {
  const char *name = p;
  mp_queue *q;
  if (mp_queue_open(&q, name) != 0)
    return 1;
  for (unsigned i = 0; i < 40; i++) {
    void *buf;
    size_t n = BIG - i * 1000;
    if (mp_queue_claim(q, n, &buf, 30) != 0)
      return 2;
    fill(buf, n, i);
    if (mp_queue_commit(q, n) != 0)
      return 3;
  }
  mp_queue_free(q);
  return 0;
}

static void inplace_to_zero_copy_stream(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "stream");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  pid_t pid = mp_test_fork(produce_inplace, name);
  mp_queue_msg m = {0};
  for (unsigned i = 0; i < 40; i++) {
    mp_queue_msg_release(&m);
    assert_rc(mp_queue_get_msg(q, &m, mp_test_slack(30)), 0);
    assert_int_equal(m.len, BIG - i * 1000);
    assert_true(same(m.data, m.len, i));
  }
  mp_queue_msg_release(&m);
  mp_test_wait_exit(pid, 0, mp_test_slack(30));
  assert_int_equal(count_large(q), 0);
  mp_queue_free(q);
}

static bool has_clflushopt(void) {
#if defined(__x86_64__)
  unsigned a, b, c, d; /* CPUID leaf 7: EBX bit 23 is CLFLUSHOPT. */
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 23 & 1u);
#else
  return false;
#endif
}

/* A reused segment is handed out either flushed from the caches or as it
 * was, whichever this process's timed claims found cheaper, and now and
 * then the other way (queue_large.c, "The fill in place"): over enough
 * claims both ways are taken, and each gives the message right. */
static void inplace_fill_takes_both_ways(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "ways");
  mp_queue *q = qnew(&(mp_queue_opts){.name = name});
  uint64_t before[2], after[2];
  mp__qlarge_fill_ways(before);
  for (unsigned i = 0; i < 80; i++) {
    void *buf;
    assert_rc(mp_queue_claim(q, BIG, &buf, 0), 0);
    fill(buf, BIG, i);
    assert_rc(mp_queue_commit(q, BIG), 0);
    mp_queue_msg m;
    assert_rc(mp_queue_get_msg(q, &m, 0), 0);
    assert_int_equal(m.len, BIG);
    assert_true(same(m.data, m.len, i));
    mp_queue_msg_release(&m);
  }
  mp__qlarge_fill_ways(after);
  mp_queue_free(q);
  if (!has_clflushopt()) {
    /* Every claim is handed out as it was, untimed. */
    assert_true(after[0] == before[0] && after[1] == before[1]);
    skip();
  }
  assert_true(after[0] > before[0]);
  assert_true(after[1] > before[1]);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(commit_small),
    cmocka_unit_test(commit_small_wraps),
    cmocka_unit_test(commit_large),
    cmocka_unit_test(abandon_leaves_nothing),
    cmocka_unit_test(claim_errors),
    cmocka_unit_test(claim_is_per_thread),
    cmocka_unit_test(death_before_commit_small),
    cmocka_unit_test(death_before_commit_large),
    cmocka_unit_test(death_after_commit_small),
    cmocka_unit_test(death_after_commit_large),
    cmocka_unit_test(death_before_commit_then_free),
    cmocka_unit_test(shrunk_spare_is_grown),
    cmocka_unit_test(death_before_commit_recycled),
    cmocka_unit_test(death_after_commit_recycled),
    cmocka_unit_test(zero_copy_holder_death_swept),
    cmocka_unit_test(zero_copy_without_a_free_slot),
    cmocka_unit_test(zero_copy_release_after_free),
    cmocka_unit_test(inplace_to_zero_copy_stream),
    cmocka_unit_test(inplace_fill_takes_both_ways),
};

MP_TEST_MAIN(tests)
