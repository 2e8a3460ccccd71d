/* test_csp.c - CSP channels: rendezvous and buffered transfer for every mix
 * of readers and writers (1-1, many-1, 1-many, many-many) between threads
 * and processes; the three homes; timeouts, sizes and bad arguments; every
 * guard kind of PriSelect/AltSelect/FairSelect, choices on both sides of a
 * channel; poison and retire, and their propagation through a network;
 * Parallel, Sequence and Spawn; and the crash cases: a process SIGKILLed
 * mid-read, mid-write and mid-choice never hangs its partner (G-CSP-1) and
 * its ends are retired, or poisoned when it was writing (G-CSP-2).
 *
 * Forked children never call cmocka: they report through their exit
 * status or through shared memory. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "csp/csp_internal.h"

/* ---- helpers --------------------------------------------------------- */

static mp_channel *chan(size_t buffer) {
  mp_channel *c = NULL;
  assert_rc(mp_channel_new(&c, &(mp_channel_opts){.buffer = buffer}), 0);
  return c;
}

static mp_channel_end *reader(mp_channel *c) {
  mp_channel_end *e = NULL;
  assert_rc(mp_channel_reader(c, &e), 0);
  return e;
}

static mp_channel_end *writer(mp_channel *c) {
  mp_channel_end *e = NULL;
  assert_rc(mp_channel_writer(c, &e), 0);
  return e;
}

static int write_u32(mp_channel_end *w, uint32_t v, double timeout) {
  return mp_channel_write(w, &v, sizeof v, timeout);
}

static int read_u32(mp_channel_end *r, uint32_t *v, double timeout) {
  ssize_t n = mp_channel_read(r, v, sizeof *v, timeout);
  if (n < 0)
    return (int)n;
  return n == sizeof *v ? 0 : MP_EPROTO;
}

/* wait_sleeping waits until task tid sleeps in the kernel (here: in the
 * futex wait of a blocked channel call). */
static void wait_sleeping(pid_t tid, double timeout) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
  double end = mp_test_now() + timeout;
  while (mp_test_now() < end) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    if (paren != NULL && paren[2] == 'S')
      return;
    usleep(1000);
  }
  fail_msg("task %d never went to sleep", (int)tid);
}

/* ---- transfer between every mix of readers and writers --------------- */

#define MIX_MSGS 300
#define MIX_MAX_WRITERS 4

typedef struct mix_shared {
  _Atomic uint32_t seen[MIX_MAX_WRITERS * MIX_MSGS];
  _Atomic uint32_t bad;
  _Atomic uint32_t last[MIX_MAX_WRITERS][8]; /* per reader: last seq seen */
} mix_shared;

typedef struct mix_arg {
  mp_channel_end *end;
  mix_shared *sh;
  uint32_t id;
  uint32_t nmsgs;
} mix_arg;

static int mix_writer(void *p) {
  mix_arg *a = p;
  for (uint32_t i = 0; i < a->nmsgs; i++) {
    uint32_t msg[2] = {a->id, i};
    int rc = mp_channel_write(a->end, msg, sizeof msg, 10.0);
    if (rc != 0)
      return rc;
  }
  return mp_channel_retire(a->end) == 0 ? 0 : MP_EPROTO;
}

static int mix_reader(void *p) {
  mix_arg *a = p;
  for (;;) {
    uint32_t msg[2];
    ssize_t n = mp_channel_read(a->end, msg, sizeof msg, 10.0);
    if (n == MP_ERETIRED)
      return 0;
    if (n != sizeof msg || msg[0] >= MIX_MAX_WRITERS || msg[1] >= MIX_MSGS) {
      atomic_fetch_add(&a->sh->bad, 1);
      return n < 0 ? (int)n : MP_EPROTO;
    }
    /* Each writer's messages arrive in its order at any one reader. */
    uint32_t prev = atomic_load(&a->sh->last[msg[0]][a->id]);
    if (prev != 0 && msg[1] + 1 <= prev)
      atomic_fetch_add(&a->sh->bad, 1);
    atomic_store(&a->sh->last[msg[0]][a->id], msg[1] + 1);
    atomic_fetch_add(&a->sh->seen[msg[0] * MIX_MSGS + msg[1]], 1);
  }
}

static void run_mix(unsigned nw, unsigned nr, size_t buffer, int threads) {
  mp_channel *c = chan(buffer);
  mix_shared *sh = mp_test_shared_map(sizeof *sh);
  mp_channel_end *ends[16];
  mix_arg args[16];
  mp_csp_process procs[16];
  unsigned n = 0;
  for (unsigned i = 0; i < nw; i++, n++) {
    ends[n] = writer(c);
    args[n] = (mix_arg){.end = ends[n], .sh = sh, .id = i,
                        .nmsgs = MIX_MSGS};
    procs[n] = (mp_csp_process){.fn = mix_writer, .arg = &args[n],
                                .ends = &ends[n], .nends = 1,
                                .thread = threads};
  }
  for (unsigned i = 0; i < nr; i++, n++) {
    ends[n] = reader(c);
    args[n] = (mix_arg){.end = ends[n], .sh = sh, .id = i};
    procs[n] = (mp_csp_process){.fn = mix_reader, .arg = &args[n],
                                .ends = &ends[n], .nends = 1,
                                .thread = threads};
  }
  assert_rc(mp_csp_parallel(procs, n), 0);
  for (unsigned i = 0; i < n; i++)
    assert_rc(procs[i].result, 0);
  assert_int_equal(atomic_load(&sh->bad), 0);
  for (unsigned i = 0; i < nw * MIX_MSGS; i++)
    if (atomic_load(&sh->seen[i]) != 1)
      fail_msg("message %u seen %u times", i, atomic_load(&sh->seen[i]));
  for (unsigned i = 0; i < n; i++)
    mp_channel_end_free(ends[i]);
  mp_channel_free(c);
  munmap(sh, sizeof *sh);
}

static void rendezvous_1_1_threads(void **s) { (void)s; run_mix(1, 1, 0, 1); }
static void rendezvous_1_1_processes(void **s) { (void)s; run_mix(1, 1, 0, 0); }
static void rendezvous_many_1(void **s) { (void)s; run_mix(3, 1, 0, 0); }
static void rendezvous_1_many(void **s) { (void)s; run_mix(1, 3, 0, 0); }
static void rendezvous_many_many(void **s) { (void)s; run_mix(3, 3, 0, 0); }
static void rendezvous_many_many_threads(void **s) {
  (void)s;
  run_mix(3, 3, 0, 1);
}
static void buffered_1_1(void **s) { (void)s; run_mix(1, 1, 4, 0); }
static void buffered_many_1(void **s) { (void)s; run_mix(3, 1, 4, 0); }
static void buffered_1_many(void **s) { (void)s; run_mix(1, 3, 4, 0); }
static void buffered_many_many(void **s) { (void)s; run_mix(3, 3, 2, 0); }
static void buffered_many_many_threads(void **s) {
  (void)s;
  run_mix(3, 3, 3, 1);
}

/* A thread and a process on the two sides of one channel. */
static int mixed_writer_proc(void *p) {
  mp_channel_end *w = p;
  for (uint32_t i = 0; i < 100; i++)
    if (write_u32(w, i, 10.0) != 0)
      return 1;
  return 0;
}

static void threads_and_processes_mix(void **state) {
  (void)state;
  mp_channel *c = chan(0);
  mp_channel_end *w = writer(c), *r = reader(c);
  pid_t pid = mp_test_fork(mixed_writer_proc, w);
  for (uint32_t i = 0; i < 100; i++) {
    uint32_t v;
    assert_rc(read_u32(r, &v, 10.0), 0);
    assert_int_equal(v, i);
  }
  mp_test_wait_exit(pid, 0, 10.0);
  mp_channel_end_free(w);
  mp_channel_end_free(r);
  mp_channel_free(c);
}

/* ---- buffered behaviour, sizes and timeouts --------------------------- */

static void buffered_fifo_and_full(void **state) {
  (void)state;
  mp_channel *c = chan(3);
  mp_channel_end *w = writer(c), *r = reader(c);
  for (uint32_t i = 0; i < 3; i++)
    assert_rc(write_u32(w, i, 0), 0);
  assert_rc(write_u32(w, 99, 0), MP_EAGAIN);
  assert_rc(write_u32(w, 99, 0.02), MP_ETIMEDOUT);
  mp_channel_stats st;
  assert_rc(mp_channel_stats_get(c, &st), 0);
  assert_int_equal(st.buffered, 3);
  for (uint32_t i = 0; i < 3; i++) {
    uint32_t v;
    assert_rc(read_u32(r, &v, 0), 0);
    assert_int_equal(v, i);
  }
  uint32_t v;
  assert_rc(read_u32(r, &v, 0), MP_EAGAIN);
  mp_channel_end_free(w);
  mp_channel_end_free(r);
  mp_channel_free(c);
}

static void rendezvous_timeouts(void **state) {
  (void)state;
  mp_channel *c = chan(0);
  mp_channel_end *w = writer(c), *r = reader(c);
  uint32_t v;
  assert_rc(read_u32(r, &v, 0), MP_EAGAIN);
  assert_rc(write_u32(w, 1, 0), MP_EAGAIN);
  double t0 = mp_test_now();
  assert_rc(read_u32(r, &v, 0.05), MP_ETIMEDOUT);
  assert_rc(write_u32(w, 1, 0.05), MP_ETIMEDOUT);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.09 && took < mp_test_slack(2.0));
  assert_rc(write_u32(w, 1, NAN), MP_EINVAL);
  /* A timed-out write left nothing behind. */
  assert_rc(read_u32(r, &v, 0), MP_EAGAIN);
  mp_channel_end_free(w);
  mp_channel_end_free(r);
  mp_channel_free(c);
}

static void *late_writer(void *p) {
  usleep(30000);
  uint32_t big[64] = {7};
  mp_channel_write(p, big, sizeof big, 10.0);
  return NULL;
}

static void too_big_stays(void **state) {
  (void)state;
  for (size_t buffer = 0; buffer <= 1; buffer++) {
    mp_channel *c = NULL;
    assert_rc(mp_channel_new(&c, &(mp_channel_opts){.buffer = buffer,
                                                    .msg_max = 256}),
              0);
    mp_channel_end *w = writer(c), *r = reader(c);
    char huge[300] = {0};
    assert_rc(mp_channel_write(w, huge, sizeof huge, 0), MP_ETOOBIG);
    pthread_t t;
    pthread_create(&t, NULL, late_writer, w);
    char small[8];
    /* The reader is waiting when the writer comes: it is told the message
     * does not fit, and the message stays with the writer. */
    ssize_t n = mp_channel_read(r, small, sizeof small, 10.0);
    assert_rc((int)n, MP_ETOOBIG);
    uint32_t big[64];
    n = mp_channel_read(r, big, sizeof big, 10.0);
    assert_int_equal(n, sizeof big);
    assert_int_equal(big[0], 7);
    pthread_join(t, NULL);
    mp_channel_end_free(w);
    mp_channel_end_free(r);
    mp_channel_free(c);
  }
}

static void bad_arguments(void **state) {
  (void)state;
  mp_channel *c = NULL;
  assert_rc(mp_channel_new(NULL, NULL), MP_EINVAL);
  assert_rc(mp_channel_new(&c, &(mp_channel_opts){.msg_max = 1u << 30}),
            MP_EINVAL);
  assert_null(c);
  assert_rc(mp_channel_new(&c, &(mp_channel_opts){.name = "a/b"}), MP_EINVAL);
  assert_rc(mp_channel_new(&c, &(mp_channel_opts){.max_waiting = 5000}),
            MP_EINVAL);
  assert_rc(mp_channel_open(&c, "t-no-such-channel-here"), MP_ENOENT);
  assert_null(c);
  c = chan(0);
  mp_channel_end *w = writer(c), *r = reader(c);
  uint32_t v = 0;
  assert_rc(mp_channel_write(r, &v, 4, 0), MP_EINVAL);
  assert_rc((int)mp_channel_read(w, &v, 4, 0), MP_EINVAL);
  assert_rc(mp_channel_write(NULL, &v, 4, 0), MP_EINVAL);
  assert_rc(mp_channel_write(w, NULL, 4, 0), MP_EINVAL);
  assert_rc(mp_channel_reader(NULL, &r), MP_EINVAL);
  assert_rc(mp_channel_poison(NULL), MP_EINVAL);
  assert_rc(mp_channel_retire(NULL), MP_EINVAL);
  assert_rc(mp_channel_end_is_reader(NULL), MP_EINVAL);
  assert_int_equal(mp_channel_end_is_reader(r), 1);
  assert_int_equal(mp_channel_end_is_reader(w), 0);
  assert_rc(mp_pri_select(NULL, 0), MP_EINVAL);
  mp_guard g[2] = {MP_GUARD_IN(w, &v, 4)};
  assert_rc(mp_pri_select(g, 1), MP_EINVAL);
  g[0] = MP_GUARD_SKIP_;
  g[1] = MP_GUARD_SKIP_;
  assert_rc(mp_pri_select(g, 2), MP_EINVAL);
  g[0] = MP_GUARD_TIMEOUT_S(NAN);
  assert_rc(mp_pri_select(g, 1), MP_EINVAL);
  assert_rc(mp_csp_parallel(NULL, 1), MP_EINVAL);
  assert_int_equal(mp_channel_size(&(mp_channel_opts){.buffer = 1u << 30}), 0);
  mp_channel_end_free(NULL);
  mp_channel_free(NULL);
  mp_csp_network_free(NULL);
  mp_channel_end_free(w);
  mp_channel_end_free(r);
  mp_channel_free(c);
}

static void max_ends_and_waiting(void **state) {
  (void)state;
  mp_channel *c = NULL;
  assert_rc(mp_channel_new(&c, &(mp_channel_opts){.max_ends = 2,
                                                  .max_waiting = 1}),
            0);
  mp_channel_end *a = reader(c), *b = reader(c), *x = NULL;
  assert_rc(mp_channel_writer(c, &x), MP_ENOSPC);
  assert_null(x);
  assert_rc(mp_channel_retire(b), 0);
  assert_rc(mp_channel_writer(c, &x), 0);
  mp_channel_end_free(a);
  mp_channel_end_free(b);
  mp_channel_end_free(x);
  mp_channel_free(c);
}

/* ---- the three homes -------------------------------------------------- */

static int named_child(void *p) {
  const char *name = p;
  mp_channel *c;
  if (mp_channel_open(&c, name) != 0)
    return 1;
  mp_channel_end *w;
  if (mp_channel_writer(c, &w) != 0)
    return 2;
  int rc = write_u32(w, 42, 10.0);
  mp_channel_end_free(w);
  mp_channel_free(c);
  return rc == 0 ? 0 : 3;
}

static void named_channel(void **state) {
  (void)state;
  char name[64];
  mp_test_name(name, sizeof name, "chan");
  mp_channel *c = NULL, *dup = NULL;
  assert_rc(mp_channel_new(&c, &(mp_channel_opts){.name = name}), 0);
  assert_rc(mp_channel_new(&dup, &(mp_channel_opts){.name = name}),
            MP_EEXIST);
  mp_channel_end *r = reader(c);
  pid_t pid = mp_test_fork(named_child, name);
  uint32_t v;
  assert_rc(read_u32(r, &v, 10.0), 0);
  assert_int_equal(v, 42);
  mp_test_wait_exit(pid, 0, 10.0);
  mp_channel_end_free(r);
  mp_channel_free(c);
}

/* G-CSP-5: a damaged named channel is refused on open. */
static void named_corrupt_refused(void **state) {
  (void)state;
  char name[64], path[128];
  mp_test_name(name, sizeof name, "bogus");
  snprintf(path, sizeof path, "/dev/shm/mp_%s", name);
  int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, 4096), 0);
  char junk[4096];
  memset(junk, 0x5a, sizeof junk);
  assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
  close(fd);
  mp_channel *c = NULL;
  assert_rc(mp_channel_open(&c, name), MP_ECORRUPT);
  assert_null(c);
  unlink(path);
}

static int inplace_child(void *p) {
  mp_channel *c;
  if (mp_channel_attach(&c, p, mp_channel_size(NULL)) != 0)
    return 1;
  mp_channel_end *w;
  if (mp_channel_writer(c, &w) != 0)
    return 2;
  int rc = write_u32(w, 43, 10.0);
  mp_channel_end_free(w);
  mp_channel_free(c);
  return rc == 0 ? 0 : 3;
}

static void inplace_channel(void **state) {
  (void)state;
  size_t size = mp_channel_size(NULL);
  assert_true(size > 0);
  void *mem = mp_test_shared_map(size);
  assert_rc(mp_channel_init(mem, size - 1, NULL), MP_EINVAL);
  assert_rc(mp_channel_init((char *)mem + 8, size, NULL), MP_EINVAL);
  assert_rc(mp_channel_init(mem, size, NULL), 0);
  mp_channel *c;
  assert_rc(mp_channel_attach(&c, mem, size), 0);
  mp_channel_end *r = reader(c);
  pid_t pid = mp_test_fork(inplace_child, mem);
  uint32_t v;
  assert_rc(read_u32(r, &v, 10.0), 0);
  assert_int_equal(v, 43);
  mp_test_wait_exit(pid, 0, 10.0);
  mp_channel_end_free(r);
  mp_channel_free(c);
  memset(mem, 0, 64);
  assert_rc(mp_channel_attach(&c, mem, size), MP_ECORRUPT);
  munmap(mem, size);
}

/* The channel lock keeps no pointer (the owner-word lock, not a robust
 * pthread mutex that glibc and the kernel would follow): words another
 * program writes over it leave the channel usable, with no crash or hang,
 * from a thread that then ends (the kernel's robust-list walk). */
static void *scribbled_lock_user(void *arg) {
  mp_channel *c = arg;
  mp_channel_end *w = writer(c), *r = reader(c);
  uint32_t v = 0;
  int rc = write_u32(w, 7, 1.0);
  if (rc == 0)
    rc = read_u32(r, &v, 1.0);
  mp_channel_end_free(w);
  mp_channel_end_free(r);
  return (void *)(intptr_t)(rc == 0 && v == 7 ? 0 : rc != 0 ? rc : -1);
}

static void scribbled_channel_lock(void **state) {
  (void)state;
  mp_channel_opts o = {.buffer = 2};
  size_t size = mp_channel_size(&o);
  void *mem = mp_test_shared_map(size);
  const uint64_t words[] = {~(uint64_t)0, 0x7e000001u, (uint64_t)1 << 22,
                            (uint64_t)5 << 22 | 77};
  for (size_t i = 0; i < MP__ARRAY_SIZE(words); i++) {
    assert_rc(mp_channel_init(mem, size, &o), 0);
    csp_shared *s = mem;
    memcpy(&s->lock.word, &words[i], sizeof words[i]);
    mp_channel *c;
    assert_rc(mp_channel_attach(&c, mem, size), 0);
    pthread_t t;
    void *res;
    assert_int_equal(pthread_create(&t, NULL, scribbled_lock_user, c), 0);
    assert_int_equal(pthread_join(t, &res), 0);
    assert_int_equal((intptr_t)res, 0);
    mp_channel_free(c);
  }
  munmap(mem, size);
}

/* ---- choice ----------------------------------------------------------- */

typedef struct delayed {
  mp_channel_end *end;
  uint32_t value;
  useconds_t delay;
  int rc;
} delayed;

static void *delayed_write(void *p) {
  delayed *d = p;
  usleep(d->delay);
  d->rc = write_u32(d->end, d->value, 10.0);
  return NULL;
}

static void *delayed_read(void *p) {
  delayed *d = p;
  usleep(d->delay);
  d->rc = read_u32(d->end, &d->value, 10.0);
  return NULL;
}

static void guard_input_fires(void **state) {
  (void)state;
  mp_channel *a = chan(0), *b = chan(0);
  mp_channel_end *ar = reader(a), *aw = writer(a), *br = reader(b),
                 *bw = writer(b);
  delayed d = {.end = bw, .value = 5, .delay = 20000};
  pthread_t t;
  pthread_create(&t, NULL, delayed_write, &d);
  uint32_t va = 0, vb = 0;
  mp_guard g[] = {MP_GUARD_IN(ar, &va, 4), MP_GUARD_IN(br, &vb, 4)};
  assert_int_equal(mp_pri_select(g, 2), 1);
  assert_int_equal(vb, 5);
  assert_int_equal(g[1].received, 4);
  pthread_join(t, NULL);
  assert_rc(d.rc, 0);
  mp_channel_end *ends[] = {ar, aw, br, bw};
  for (int i = 0; i < 4; i++)
    mp_channel_end_free(ends[i]);
  mp_channel_free(a);
  mp_channel_free(b);
}

/* G-CSP-4: the chosen output guard delivers once; the other leaves no
 * trace. */
static void guard_output_fires(void **state) {
  (void)state;
  mp_channel *a = chan(0), *b = chan(0);
  mp_channel_end *ar = reader(a), *aw = writer(a), *br = reader(b),
                 *bw = writer(b);
  delayed d = {.end = ar, .delay = 20000};
  pthread_t t;
  pthread_create(&t, NULL, delayed_read, &d);
  uint32_t m0 = 10, m1 = 11;
  mp_guard g[] = {MP_GUARD_OUT(bw, &m1, 4), MP_GUARD_OUT(aw, &m0, 4)};
  assert_int_equal(mp_alt_select(g, 2), 1);
  pthread_join(t, NULL);
  assert_rc(d.rc, 0);
  assert_int_equal(d.value, 10);
  /* The output guard that did not fire left nothing behind. */
  uint32_t v;
  assert_rc(read_u32(br, &v, 0), MP_EAGAIN);
  mp_channel_end *ends[] = {ar, aw, br, bw};
  for (int i = 0; i < 4; i++)
    mp_channel_end_free(ends[i]);
  mp_channel_free(a);
  mp_channel_free(b);
}

static void guard_timeout_and_skip(void **state) {
  (void)state;
  mp_channel *a = chan(0);
  mp_channel_end *ar = reader(a), *aw = writer(a);
  uint32_t v;
  mp_guard g[] = {MP_GUARD_IN(ar, &v, 4), MP_GUARD_TIMEOUT_S(0.05)};
  double t0 = mp_test_now();
  assert_int_equal(mp_pri_select(g, 2), 1);
  double took = mp_test_now() - t0;
  assert_true(took >= 0.045 && took < mp_test_slack(2.0));
  mp_guard s[] = {MP_GUARD_SKIP_, MP_GUARD_IN(ar, &v, 4)};
  assert_int_equal(mp_pri_select(s, 2), 0);
  /* Skip fires only when nothing else is ready, even when listed first. */
  mp_channel *b = chan(1);
  mp_channel_end *br = reader(b), *bw = writer(b);
  assert_rc(write_u32(bw, 9, 0), 0);
  mp_guard s2[] = {MP_GUARD_SKIP_, MP_GUARD_IN(br, &v, 4)};
  assert_int_equal(mp_pri_select(s2, 2), 1);
  assert_int_equal(v, 9);
  /* A lone timeout guard waits it out. */
  mp_guard t[] = {MP_GUARD_TIMEOUT_S(0.01)};
  assert_int_equal(mp_pri_select(t, 1), 0);
  /* And the output guard's timeout leaves no message behind. */
  uint32_t m = 3;
  mp_guard o[] = {MP_GUARD_OUT(aw, &m, 4), MP_GUARD_TIMEOUT_S(0.02)};
  assert_int_equal(mp_pri_select(o, 2), 1);
  assert_rc(read_u32(ar, &v, 0), MP_EAGAIN);
  mp_channel_end *ends[] = {ar, aw, br, bw};
  for (int i = 0; i < 4; i++)
    mp_channel_end_free(ends[i]);
  mp_channel_free(a);
  mp_channel_free(b);
}

static void pri_and_fair_order(void **state) {
  (void)state;
  mp_channel *a = chan(8), *b = chan(8);
  mp_channel_end *ar = reader(a), *aw = writer(a), *br = reader(b),
                 *bw = writer(b);
  for (uint32_t i = 0; i < 4; i++) {
    assert_rc(write_u32(aw, i, 0), 0);
    assert_rc(write_u32(bw, 100 + i, 0), 0);
  }
  uint32_t va, vb;
  mp_guard g[] = {MP_GUARD_IN(ar, &va, 4), MP_GUARD_IN(br, &vb, 4)};
  /* PriSelect: the first ready guard wins every time. */
  assert_int_equal(mp_pri_select(g, 2), 0);
  assert_int_equal(mp_pri_select(g, 2), 0);
  /* FairSelect: turns. */
  int first = mp_fair_select(g, 2);
  int second = mp_fair_select(g, 2);
  assert_true(first >= 0 && second >= 0 && first != second);
  /* AltSelect: either, and every message once. */
  unsigned got = 0;
  while (got < 4) {
    mp_guard s[] = {MP_GUARD_IN(ar, &va, 4), MP_GUARD_IN(br, &vb, 4),
                    MP_GUARD_SKIP_};
    int i = mp_alt_select(s, 3);
    assert_true(i >= 0);
    if (i == 2)
      break;
    got++;
  }
  assert_int_equal(got, 4);
  mp_channel_end *ends[] = {ar, aw, br, bw};
  for (int i = 0; i < 4; i++)
    mp_channel_end_free(ends[i]);
  mp_channel_free(a);
  mp_channel_free(b);
}

/* Choices on both sides: one process chooses among outputs, the other
 * among inputs, on the same rendezvous channels. Every message once
 * (G-CSP-3, G-CSP-4). */
#define BOTH_N 400
typedef struct both_arg {
  mp_channel_end *w[2];
  mp_channel_end *r[2];
} both_arg;

static int both_writer(void *p) {
  both_arg *a = p;
  for (uint32_t i = 0; i < BOTH_N; i++) {
    mp_guard g[] = {MP_GUARD_OUT(a->w[0], &i, 4), MP_GUARD_OUT(a->w[1], &i, 4)};
    if (mp_alt_select(g, 2) < 0)
      return 1;
  }
  mp_channel_retire(a->w[0]);
  mp_channel_retire(a->w[1]);
  return 0;
}

static void choices_on_both_sides(void **state) {
  (void)state;
  mp_channel *a = chan(0), *b = chan(0);
  both_arg arg = {.w = {writer(a), writer(b)}, .r = {reader(a), reader(b)}};
  mp_csp_process proc = {.fn = both_writer, .arg = &arg,
                         MP_CSP_ENDS(arg.w[0], arg.w[1])};
  mp_csp_network *net;
  assert_rc(mp_csp_spawn(&net, &proc, 1), 0);
  unsigned char seen[BOTH_N] = {0};
  int live = 2;
  bool alive[2] = {true, true};
  while (live > 0) {
    uint32_t v[2];
    mp_guard g[2];
    unsigned map[2], n = 0;
    for (unsigned k = 0; k < 2; k++)
      if (alive[k]) {
        map[n] = k;
        g[n++] = MP_GUARD_IN(arg.r[k], &v[k], 4);
      }
    int i = mp_fair_select(g, n);
    if (i == MP_ERETIRED) {
      for (unsigned k = 0; k < 2; k++)
        if (alive[k] && read_u32(arg.r[k], &v[k], 0) == MP_ERETIRED)
          alive[k] = false, live--;
      continue;
    }
    assert_true(i >= 0);
    uint32_t got = v[map[i]];
    assert_true(got < BOTH_N);
    seen[got]++;
  }
  assert_rc(mp_csp_network_join(net, 10.0), 0);
  assert_rc(proc.result, 0);
  mp_csp_network_free(net);
  for (unsigned i = 0; i < BOTH_N; i++)
    assert_int_equal(seen[i], 1);
  mp_channel_end_free(arg.w[0]);
  mp_channel_end_free(arg.w[1]);
  mp_channel_end_free(arg.r[0]);
  mp_channel_end_free(arg.r[1]);
  mp_channel_free(a);
  mp_channel_free(b);
}

/* ---- poison and retire ------------------------------------------------ */

static void *poison_later(void *p) {
  usleep(30000);
  mp_channel_poison(p);
  return NULL;
}

static void poison_wakes_and_sticks(void **state) {
  (void)state;
  mp_channel *c = chan(2);
  mp_channel_end *w = writer(c), *r = reader(c);
  assert_rc(write_u32(w, 1, 0), 0);
  uint32_t v;
  assert_rc(read_u32(r, &v, 0), 0);
  pthread_t t;
  pthread_create(&t, NULL, poison_later, w);
  assert_rc(read_u32(r, &v, 10.0), MP_EPOISONED);
  pthread_join(t, NULL);
  assert_rc(write_u32(w, 1, 0), MP_EPOISONED);
  assert_rc(read_u32(r, &v, 0), MP_EPOISONED);
  mp_guard g[] = {MP_GUARD_IN(r, &v, 4), MP_GUARD_SKIP_};
  assert_rc(mp_pri_select(g, 2), MP_EPOISONED);
  mp_channel_end *x = NULL;
  assert_rc(mp_channel_reader(c, &x), MP_EPOISONED);
  assert_rc(mp_channel_poison(r), 0); /* idempotent */
  mp_channel_end_free(w);
  mp_channel_end_free(r);
  mp_channel_free(c);
}

static void retire_semantics(void **state) {
  (void)state;
  mp_channel *c = chan(4);
  mp_channel_end *w1 = writer(c), *w2 = writer(c), *r = reader(c);
  assert_rc(write_u32(w1, 1, 0), 0);
  assert_rc(mp_channel_retire(w1), 0);
  assert_rc(mp_channel_retire(w1), 0); /* idempotent */
  assert_rc(write_u32(w1, 1, 0), MP_ERETIRED);
  uint32_t v;
  assert_rc(read_u32(r, &v, 0), 0); /* one writer left: still open */
  assert_rc(write_u32(w2, 2, 0), 0);
  assert_rc(mp_channel_retire(w2), 0);
  /* The buffered message comes first, then the retirement. */
  assert_rc(read_u32(r, &v, 0), 0);
  assert_int_equal(v, 2);
  assert_rc(read_u32(r, &v, 10.0), MP_ERETIRED);
  mp_channel_end *x = NULL;
  assert_rc(mp_channel_writer(c, &x), MP_ERETIRED);
  /* Readers retiring stops writers. */
  mp_channel *d = chan(0);
  mp_channel_end *dw = writer(d), *dr = reader(d);
  assert_rc(mp_channel_retire(dr), 0);
  assert_rc(write_u32(dw, 1, 10.0), MP_ERETIRED);
  mp_channel_stats st;
  assert_rc(mp_channel_stats_get(d, &st), 0);
  assert_int_equal(st.readers, 0);
  assert_int_equal(st.readers_retired, 1);
  mp_channel_end *ends[] = {w1, w2, r, dw, dr};
  for (int i = 0; i < 5; i++)
    mp_channel_end_free(ends[i]);
  mp_channel_free(c);
  mp_channel_free(d);
}

/* A pipeline source -> relay -> relay -> sink; the sink poisons its input
 * after five messages, and the poison travels back to the source. */
typedef struct stage {
  mp_channel_end *in, *out;
} stage;

static int source_fn(void *p) {
  stage *s = p;
  for (uint32_t i = 0;; i++) {
    int rc = write_u32(s->out, i, 10.0);
    if (rc != 0)
      return rc;
  }
}

static int relay_fn(void *p) {
  stage *s = p;
  for (;;) {
    uint32_t v;
    int rc = read_u32(s->in, &v, 10.0);
    if (rc == 0)
      rc = write_u32(s->out, v + 1, 10.0);
    if (rc != 0)
      return rc;
  }
}

static int sink_fn(void *p) {
  stage *s = p;
  for (int i = 0; i < 5; i++) {
    uint32_t v;
    int rc = read_u32(s->in, &v, 10.0);
    if (rc != 0)
      return rc;
  }
  mp_channel_poison(s->in);
  return MP_EPOISONED;
}

static void run_poison_network(int threads, bool retire) {
  mp_channel *c[3] = {chan(0), chan(1), chan(0)};
  stage st[4] = {{.out = writer(c[0])},
                 {.in = reader(c[0]), .out = writer(c[1])},
                 {.in = reader(c[1]), .out = writer(c[2])},
                 {.in = reader(c[2])}};
  mp_csp_process procs[4] = {
      {.fn = source_fn, .arg = &st[0], MP_CSP_ENDS(st[0].out)},
      {.fn = relay_fn, .arg = &st[1], MP_CSP_ENDS(st[1].in, st[1].out)},
      {.fn = relay_fn, .arg = &st[2], MP_CSP_ENDS(st[2].in, st[2].out)},
      {.fn = sink_fn, .arg = &st[3], MP_CSP_ENDS(st[3].in)}};
  for (int i = 0; i < 4; i++)
    procs[i].thread = threads && i % 2 == 0;
  (void)retire;
  double t0 = mp_test_now();
  assert_rc(mp_csp_parallel(procs, 4), 0);
  assert_true(mp_test_now() - t0 < mp_test_slack(5.0));
  for (int i = 0; i < 4; i++)
    assert_rc(procs[i].result, MP_EPOISONED);
  for (int i = 0; i < 4; i++) {
    mp_channel_end_free(st[i].in);
    mp_channel_end_free(st[i].out);
  }
  for (int i = 0; i < 3; i++)
    mp_channel_free(c[i]);
}

static void poison_propagates_processes(void **s) {
  (void)s;
  run_poison_network(0, false);
}
static void poison_propagates_mixed(void **s) {
  (void)s;
  run_poison_network(1, false);
}

/* Retire travels the same way: a source that retires after 3 messages. */
static int finite_source(void *p) {
  stage *s = p;
  for (uint32_t i = 0; i < 3; i++)
    if (write_u32(s->out, i, 10.0) != 0)
      return 1;
  mp_channel_retire(s->out);
  return 0;
}

static int counting_sink(void *p) {
  stage *s = p;
  int n = 0;
  for (;;) {
    uint32_t v;
    int rc = read_u32(s->in, &v, 10.0);
    if (rc == MP_ERETIRED)
      return n == 3 ? MP_ERETIRED : 100 + n;
    if (rc != 0)
      return rc;
    n++;
  }
}

static void retire_propagates(void **state) {
  (void)state;
  mp_channel *c[2] = {chan(0), chan(0)};
  stage st[3] = {{.out = writer(c[0])},
                 {.in = reader(c[0]), .out = writer(c[1])},
                 {.in = reader(c[1])}};
  mp_csp_process procs[3] = {
      {.fn = finite_source, .arg = &st[0], MP_CSP_ENDS(st[0].out)},
      {.fn = relay_fn, .arg = &st[1], MP_CSP_ENDS(st[1].in, st[1].out)},
      {.fn = counting_sink, .arg = &st[2], MP_CSP_ENDS(st[2].in)}};
  assert_rc(mp_csp_parallel(procs, 3), 0);
  assert_rc(procs[0].result, 0);
  assert_rc(procs[1].result, MP_ERETIRED);
  assert_rc(procs[2].result, MP_ERETIRED);
  for (int i = 0; i < 3; i++) {
    mp_channel_end_free(st[i].in);
    mp_channel_end_free(st[i].out);
  }
  mp_channel_free(c[0]);
  mp_channel_free(c[1]);
}

/* ---- Parallel, Sequence, Spawn --------------------------------------- */

static int ret_arg(void *p) { return (int)(intptr_t)p; }

/* sleeper records when it ran in the two doubles at p (if any). */
static int sleeper(void *p) {
  double *when = p;
  if (when != NULL)
    when[0] = mp_test_now();
  usleep(200000);
  if (when != NULL)
    when[1] = mp_test_now();
  return 7;
}

static int append_fn(void *p) {
  /* Sequence: each one writes its mark after the previous. */
  int *log = p;
  int n = atomic_fetch_add((_Atomic int *)&log[0], 1);
  log[1 + n] = getpid();
  return n;
}

static int crash_fn(void *p) {
  (void)p;
  raise(SIGKILL);
  return 0;
}

static void parallel_sequence_spawn(void **state) {
  (void)state;
  mp_csp_process procs[] = {
      {.fn = ret_arg, .arg = (void *)(intptr_t)MP_ETIMEDOUT},
      {.fn = ret_arg, .arg = (void *)(intptr_t)3, .thread = 1},
      {.fn = crash_fn}};
  assert_rc(mp_csp_parallel(procs, 3), 0);
  assert_rc(procs[0].result, MP_ETIMEDOUT);
  assert_int_equal(procs[1].result, 3);
  assert_rc(procs[2].result, MP_EWORKERDIED);
  /* Parallel: the two sleepers sleep at the same time (their runs
   * overlap), rather than one after the other. */
  double *when = mp_test_shared_map(4096);
  mp_csp_process two[] = {{.fn = sleeper, .arg = when},
                          {.fn = sleeper, .arg = when + 2}};
  assert_rc(mp_csp_parallel(two, 2), 0);
  assert_int_equal(two[0].result, 7);
  assert_int_equal(two[1].result, 7);
  assert_true(when[0] < when[3] && when[2] < when[1]);
  munmap(when, 4096);
  /* Sequence: one after the other, in order. */
  int *log = mp_test_shared_map(4096);
  mp_csp_process seq[] = {{.fn = append_fn, .arg = log},
                          {.fn = append_fn, .arg = log},
                          {.fn = append_fn, .arg = log, .thread = 1}};
  assert_rc(mp_csp_sequence(seq, 3), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(seq[i].result, i);
  assert_true(log[1] != log[2]);
  assert_int_equal(log[3], getpid());
  munmap(log, 4096);
  /* Spawn: in the background; join with a timeout. */
  mp_csp_network *net = NULL;
  mp_csp_process bg[] = {{.fn = sleeper}};
  assert_rc(mp_csp_spawn(&net, bg, 1), 0);
  assert_rc(mp_csp_network_join(net, NAN), MP_EINVAL);
  assert_string_equal(mp_error_detail(), "timeout is NaN");
  assert_rc(mp_csp_network_join(net, 0.01), MP_ETIMEDOUT);
  assert_rc(mp_csp_network_join(net, 10.0), 0);
  assert_int_equal(bg[0].result, 7);
  mp_csp_network_free(net);
}

/* ---- crashes: G-CSP-1 (no partner hangs), G-CSP-2 (retired or poisoned) */

typedef struct crash_arg {
  mp_channel *c;
  mp_channel *c2;
  int what; /* 0 read, 1 write, 2 choice with inputs, 3 choice w/ output */
  mp_test_signal sig;
} crash_arg;

static int crash_child(void *p) {
  crash_arg *a = p;
  mp_channel_end *e, *e2 = NULL;
  uint32_t v = 1;
  int rc = (a->what == 0 || a->what == 2) ? mp_channel_reader(a->c, &e)
                                          : mp_channel_writer(a->c, &e);
  if (rc != 0)
    return 1;
  if (a->what >= 2 && mp_channel_reader(a->c2, &e2) != 0)
    return 2;
  mp_test_signal_post(&a->sig);
  if (a->what == 0)
    mp_channel_read(e, &v, 4, MP_FOREVER);
  else if (a->what == 1)
    mp_channel_write(e, &v, 4, MP_FOREVER);
  else {
    mp_guard g[] = {a->what == 2 ? MP_GUARD_IN(e, &v, 4)
                                 : MP_GUARD_OUT(e, &v, 4),
                    MP_GUARD_IN(e2, &v, 4)};
    mp_pri_select(g, 2);
  }
  return 3;
}

static void run_crash(int what) {
  crash_arg a = {.c = chan(0), .c2 = chan(0), .what = what};
  mp_test_signal_open(&a.sig);
  /* The partner's end: a writer for a reader that dies, and so on. */
  mp_channel_end *partner = (what == 0 || what == 2) ? writer(a.c)
                                                     : reader(a.c);
  pid_t pid = mp_test_fork(crash_child, &a);
  assert_int_equal(mp_test_signal_wait(&a.sig, 10.0), 1);
  wait_sleeping(pid, 10.0);
  kill(pid, SIGKILL);
  int status = mp_test_wait(pid, 10.0);
  assert_true(WIFSIGNALED(status));
  /* The partner blocks on the channel and is released. One operation may
   * still complete against the offer the dead process left whole (as if it
   * had died just after); the next ones fail. */
  uint32_t v = 9;
  double t0 = mp_test_now();
  int rc, ok = 0;
  for (;;) {
    rc = (what == 0 || what == 2) ? write_u32(partner, v, 10.0)
                                  : read_u32(partner, &v, 10.0);
    if (rc != 0)
      break;
    ok++;
  }
  double took = mp_test_now() - t0;
  assert_true(ok <= 1);
  assert_true(took < mp_test_slack(2.0));
  if (what == 1 || what == 3)
    assert_rc(rc, MP_EPOISONED); /* died inside a write: poisoned */
  else
    assert_rc(rc, MP_ERETIRED); /* died reading: its end retired */
  mp_channel_stats st;
  assert_rc(mp_channel_stats_get(a.c, &st), 0);
  assert_int_equal(st.poisoned, what == 1 || what == 3);
  mp_channel_end_free(partner);
  mp_channel_free(a.c);
  mp_channel_free(a.c2);
  mp_test_signal_close(&a.sig);
}

static void crash_mid_read(void **s) { (void)s; run_crash(0); }
static void crash_mid_write(void **s) { (void)s; run_crash(1); }
static void crash_mid_choice_input(void **s) { (void)s; run_crash(2); }
static void crash_mid_choice_output(void **s) { (void)s; run_crash(3); }

/* A partner already blocked when the other side dies is released too. */
static int blocked_reader_child(void *p) {
  crash_arg *a = p;
  mp_channel_end *e;
  if (mp_channel_reader(a->c, &e) != 0)
    return 1;
  mp_test_signal_post(&a->sig);
  pause();
  return 0;
}

static void crash_while_partner_blocked(void **state) {
  (void)state;
  crash_arg a = {.c = chan(0)};
  mp_test_signal_open(&a.sig);
  mp_channel_end *w = writer(a.c);
  pid_t pid = mp_test_fork(blocked_reader_child, &a);
  assert_int_equal(mp_test_signal_wait(&a.sig, 10.0), 1);
  delayed d = {.end = w, .value = 1};
  pthread_t t;
  pthread_create(&t, NULL, delayed_write, &d);
  usleep(50000);
  kill(pid, SIGKILL);
  mp_test_wait(pid, 10.0);
  double t0 = mp_test_now();
  pthread_join(t, NULL);
  assert_true(mp_test_now() - t0 < mp_test_slack(2.0));
  assert_rc(d.rc, MP_ERETIRED);
  mp_channel_end_free(w);
  mp_channel_free(a.c);
  mp_test_signal_close(&a.sig);
}

/* A process of a network killed mid-write: Parallel reports it, and its
 * partner is poisoned and ends. */
static int stuck_writer(void *p) {
  stage *s = p;
  uint32_t v = 1;
  for (;;) {
    int rc = mp_channel_write(s->out, &v, 4, MP_FOREVER);
    if (rc != 0)
      return rc;
    if (v++ == 3)
      raise(SIGKILL); /* dies between writes: idle, so its end retires */
  }
}

static int drain(void *p) {
  stage *s = p;
  for (;;) {
    uint32_t v;
    int rc = read_u32(s->in, &v, MP_FOREVER);
    if (rc != 0)
      return rc;
  }
}

static void network_member_dies(void **state) {
  (void)state;
  mp_channel *c = chan(0);
  stage st[2] = {{.out = writer(c)}, {.in = reader(c)}};
  mp_csp_process procs[2] = {
      {.fn = stuck_writer, .arg = &st[0], MP_CSP_ENDS(st[0].out)},
      {.fn = drain, .arg = &st[1], MP_CSP_ENDS(st[1].in)}};
  assert_rc(mp_csp_parallel(procs, 2), 0);
  assert_rc(procs[0].result, MP_EWORKERDIED);
  assert_rc(procs[1].result, MP_ERETIRED);
  mp_channel_end_free(st[0].out);
  mp_channel_end_free(st[1].in);
  mp_channel_free(c);
}

/* ---- dynamic values ---------------------------------------------------- */

static int obj_writer(void *p) {
  mp_channel_end *w = p;
  mp_obj *v = mp_obj_list_pack(3, mp_obj_int(42), mp_obj_none(),
                               mp_obj_str("hello"));
  int rc = v == NULL ? MP_ENOMEM : mp_channel_write_obj(w, v, 10.0);
  mp_obj_free(v);
  return rc == 0 ? 0 : 1;
}

static void values_between_processes(void **state) {
  (void)state;
  mp_channel *c = chan(0);
  mp_channel_end *w = writer(c), *r = reader(c);
  pid_t pid = mp_test_fork(obj_writer, w);
  mp_obj *got = NULL;
  assert_rc(mp_channel_read_obj(r, &got, 10.0), 0);
  char *repr = mp_obj_repr(got);
  assert_string_equal(repr, "[42, None, 'hello']");
  free(repr);
  mp_obj_free(got);
  mp_test_wait_exit(pid, 0, 10.0);
  mp_channel_end *w2 = w;
  /* Bytes that are not a pickle: refused, and the message is consumed. */
  mp_channel *b = chan(1);
  mp_channel_end *bw = writer(b), *br = reader(b);
  assert_rc(mp_channel_write(bw, "junk", 4, 0), 0);
  got = NULL;
  assert_rc(mp_channel_read_obj(br, &got, 0), MP_EPROTO);
  assert_null(got);
  assert_rc(mp_channel_read_obj(w2, &got, 0), MP_EINVAL);
  assert_rc(mp_channel_write_obj(r, NULL, 0), MP_EINVAL);
  assert_rc(mp_channel_read_obj(r, NULL, 0), MP_EINVAL);
  assert_rc(mp_channel_read_obj(br, &got, 0), MP_EAGAIN);
  mp_channel_end *ends[] = {w, r, bw, br};
  for (int i = 0; i < 4; i++)
    mp_channel_end_free(ends[i]);
  mp_channel_free(c);
  mp_channel_free(b);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(rendezvous_1_1_threads),
    cmocka_unit_test(rendezvous_1_1_processes),
    cmocka_unit_test(rendezvous_many_1),
    cmocka_unit_test(rendezvous_1_many),
    cmocka_unit_test(rendezvous_many_many),
    cmocka_unit_test(rendezvous_many_many_threads),
    cmocka_unit_test(buffered_1_1),
    cmocka_unit_test(buffered_many_1),
    cmocka_unit_test(buffered_1_many),
    cmocka_unit_test(buffered_many_many),
    cmocka_unit_test(buffered_many_many_threads),
    cmocka_unit_test(threads_and_processes_mix),
    cmocka_unit_test(buffered_fifo_and_full),
    cmocka_unit_test(rendezvous_timeouts),
    cmocka_unit_test(too_big_stays),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(max_ends_and_waiting),
    cmocka_unit_test(named_channel),
    cmocka_unit_test(named_corrupt_refused),
    cmocka_unit_test(inplace_channel),
    cmocka_unit_test(scribbled_channel_lock),
    cmocka_unit_test(guard_input_fires),
    cmocka_unit_test(guard_output_fires),
    cmocka_unit_test(guard_timeout_and_skip),
    cmocka_unit_test(pri_and_fair_order),
    cmocka_unit_test(choices_on_both_sides),
    cmocka_unit_test(poison_wakes_and_sticks),
    cmocka_unit_test(retire_semantics),
    cmocka_unit_test(poison_propagates_processes),
    cmocka_unit_test(poison_propagates_mixed),
    cmocka_unit_test(retire_propagates),
    cmocka_unit_test(parallel_sequence_spawn),
    cmocka_unit_test(crash_mid_read),
    cmocka_unit_test(crash_mid_write),
    cmocka_unit_test(crash_mid_choice_input),
    cmocka_unit_test(crash_mid_choice_output),
    cmocka_unit_test(crash_while_partner_blocked),
    cmocka_unit_test(network_member_dies),
    cmocka_unit_test(values_between_processes),
};

MP_TEST_MAIN(tests)
