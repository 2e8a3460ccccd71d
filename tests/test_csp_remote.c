/* test_csp_remote.c - CSP channels across hosts (loopback only): a channel
 * served on a TCP address with an authkey and used from other processes
 * through the ordinary reader and writer calls. Remote reads and writes in
 * both directions, rendezvous and buffered; many remote readers and
 * writers with every message received exactly once; choices with remote
 * input and output guards, mixed with local guards, with timeouts; poison
 * and retire across the wire both ways; a remote peer SIGKILLed mid-read
 * (its end retires) and mid-write (the channel is poisoned); a server that
 * dies or closes (remote users get MP_EPOISONED, never a hang); a wrong
 * authkey refused; malformed requests refused without harm to others.
 *
 * The server runs in the test process (its threads) unless the case kills
 * it, then in a forked child the case stops by pid. Forked children never
 * call cmocka: they report through their exit status or shared memory. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h" /* mp__alloc_fail_after */

static const char KEY[] = "csp-remote-test-key";
/* The served address, in memory shared with the children: a case forks
 * its children before it starts serving, and they wait for the address,
 * since a fork while the server's threads run (a handshake, an allocation)
 * could leave the child with a lock of libcrypto or of the sanitizer's
 * allocator held (a real client runs on another host). */
static char *addr;

static void fresh_addr(void) {
  if (addr == NULL)
    addr = mp_test_shared_map(MP_ADDRESS_MAX);
  memset(addr, 0, MP_ADDRESS_MAX);
}

static mp_test_signal ready; /* a child tells the case it got so far */

static const mp_channel_connect_opts copts = {.authkey = KEY,
                                              .authkey_len = sizeof KEY - 1};

static mp_channel_server *serve(mp_channel *c) {
  mp_channel_server *s = NULL;
  mp_channel_serve_opts o = {.authkey = KEY, .authkey_len = sizeof KEY - 1};
  assert_rc(mp_channel_serve(&s, c, "127.0.0.1:0", &o), 0);
  if (addr == NULL)
    fresh_addr();
  snprintf(addr, MP_ADDRESS_MAX, "%s", mp_channel_server_address(s));
  assert_true(strncmp(addr, "127.0.0.1:", 10) == 0);
  assert_true(strcmp(addr, "127.0.0.1:0") != 0);
  return s;
}

static mp_channel *chan(size_t buffer) {
  mp_channel *c = NULL;
  assert_rc(mp_channel_new(&c, &(mp_channel_opts){.buffer = buffer}), 0);
  return c;
}

static mp_channel_end *end_of(mp_channel *c, bool reader) {
  mp_channel_end *e = NULL;
  assert_rc(reader ? mp_channel_reader(c, &e) : mp_channel_writer(c, &e), 0);
  return e;
}

/* In children: connect and join, or exit with 90+. */
static mp_channel *rconnect(void) {
  for (int i = 0; i < 20000 && atomic_load((_Atomic char *)addr) == 0; i++)
    usleep(1000);
  mp_channel *c = NULL;
  int rc = mp_channel_connect(&c, addr, &copts);
  if (rc != 0) {
    fprintf(stderr, "connect: %s (%s)\n", mp_err_name(rc), mp_error_detail());
    _exit(90);
  }
  return c;
}

static mp_channel_end *rjoin(mp_channel *c, bool reader) {
  mp_channel_end *e = NULL;
  int rc = reader ? mp_channel_reader(c, &e) : mp_channel_writer(c, &e);
  if (rc != 0) {
    fprintf(stderr, "join: %s (%s)\n", mp_err_name(rc), mp_error_detail());
    _exit(91);
  }
  return e;
}

static int read_u32(mp_channel_end *r, uint32_t *v, double timeout) {
  ssize_t n = mp_channel_read(r, v, sizeof *v, timeout);
  if (n < 0)
    return (int)n;
  return n == sizeof *v ? 0 : MP_EPROTO;
}

static int write_u32(mp_channel_end *w, uint32_t v, double timeout) {
  return mp_channel_write(w, &v, sizeof v, timeout);
}

/* wait_stats waits until the served channel has the given joined ends. */
static void wait_joined(mp_channel *c, unsigned readers, unsigned writers) {
  double end = mp_test_now() + mp_test_slack(10);
  mp_channel_stats st;
  do {
    assert_rc(mp_channel_stats_get(c, &st), 0);
    if (st.readers == readers && st.writers == writers)
      return;
    usleep(2000);
  } while (mp_test_now() < end);
  fail_msg("joined %u readers, %u writers; expected %u, %u", st.readers,
           st.writers, readers, writers);
}

/* ---- remote writes and reads ---------------------------------------- */

static int remote_writer_100(void *arg) {
  (void)arg;
  mp_channel *c = rconnect();
  mp_channel_end *w = rjoin(c, false);
  for (uint32_t i = 0; i < 100; i++)
    if (write_u32(w, i, 10) != 0)
      return 1;
  if (mp_channel_retire(w) != 0)
    return 2;
  /* Using a retired end is refused locally. */
  if (write_u32(w, 0, 0) != MP_ERETIRED)
    return 3;
  mp_channel_end_free(w);
  mp_channel_free(c);
  return 0;
}

static void remote_write_local_read(void **state) {
  (void)state;
  fresh_addr(); /* fork before serving (see addr) */
  pid_t pid = mp_test_fork(remote_writer_100, NULL);
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  mp_channel_end *r = end_of(c, true);
  for (uint32_t i = 0; i < 100; i++) {
    uint32_t v = 0;
    assert_rc(read_u32(r, &v, 10), 0);
    assert_int_equal(v, i);
  }
  /* The remote writer's retire travels back: the only writer retired. */
  uint32_t v;
  assert_rc(read_u32(r, &v, 10), MP_ERETIRED);
  mp_test_wait_exit(pid, 0, 10);
  mp_channel_end_free(r);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

static int remote_reader_100(void *arg) {
  (void)arg;
  mp_channel *c = rconnect();
  mp_channel_end *r = rjoin(c, true);
  for (uint32_t i = 0; i < 100; i++) {
    uint32_t v = ~0u;
    if (read_u32(r, &v, 10) != 0 || v != i)
      return 1;
  }
  /* A buffer too small: MP_ETOOBIG, the message stays with its writer. */
  char small[2];
  if (mp_channel_read(r, small, sizeof small, 10) != MP_ETOOBIG)
    return 2;
  uint32_t v = 0;
  if (read_u32(r, &v, 10) != 0 || v != 1000)
    return 3;
  /* The writer retires: the remote reader sees it. */
  if (read_u32(r, &v, 10) != MP_ERETIRED)
    return 4;
  mp_channel_end_free(r);
  mp_channel_free(c);
  return 0;
}

static void local_write_remote_read(void **state) {
  (void)state;
  fresh_addr(); /* fork before serving (see addr) */
  pid_t pid = mp_test_fork(remote_reader_100, NULL);
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  mp_channel_end *w = end_of(c, false);
  for (uint32_t i = 0; i < 100; i++)
    assert_rc(write_u32(w, i, 10), 0);
  assert_rc(write_u32(w, 1000, 10), 0);
  assert_rc(mp_channel_retire(w), 0);
  mp_test_wait_exit(pid, 0, 10);
  mp_channel_end_free(w);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

/* A remote write on a rendezvous channel returns only once a reader has
 * the message: with no reader it times out and nothing was sent. */
static int remote_rendezvous_child(void *arg) {
  (void)arg;
  mp_channel *c = rconnect();
  mp_channel_end *w = rjoin(c, false);
  double t0 = mp_test_now();
  if (write_u32(w, 7, 0.2) != MP_ETIMEDOUT)
    return 1;
  if (mp_test_now() - t0 < 0.19)
    return 2;
  if (write_u32(w, 7, 0) != MP_EAGAIN)
    return 3;
  mp_test_signal_post(&ready);
  if (write_u32(w, 8, 10) != 0) /* the parent reads this one */
    return 4;
  mp_channel_end_free(w);
  mp_channel_free(c);
  return 0;
}

static void remote_rendezvous_and_timeout(void **state) {
  (void)state;
  fresh_addr(); /* fork before serving (see addr) */
  mp_test_signal_open(&ready);
  pid_t pid = mp_test_fork(remote_rendezvous_child, NULL);
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  mp_channel_end *r = end_of(c, true);
  /* Let the timed-out writes pass, then read: only the third arrives. */
  assert_int_equal(mp_test_signal_wait(&ready, mp_test_slack(20)), 1);
  mp_test_signal_close(&ready);
  uint32_t v = 0;
  assert_rc(read_u32(r, &v, 10), 0);
  assert_int_equal(v, 8);
  /* Nothing else was sent (the writer may have left by now). */
  int rc = read_u32(r, &v, 0);
  if (rc != MP_EAGAIN && rc != MP_ERETIRED)
    fail_msg("a read after the only message returned %s", mp_err_name(rc));
  mp_test_wait_exit(pid, 0, 10);
  mp_channel_end_free(r);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

static int remote_buffered_child(void *arg) {
  (void)arg;
  mp_channel *c = rconnect();
  mp_channel_end *w = rjoin(c, false);
  for (uint32_t i = 0; i < 4; i++)
    if (write_u32(w, i, 0) != 0) /* room in the buffer: no wait */
      return 1;
  if (write_u32(w, 4, 0) != MP_EAGAIN) /* full */
    return 2;
  mp_channel_stats st;
  if (mp_channel_stats_get(c, &st) != 0 || st.buffered != 4 ||
      st.writers != 1)
    return 3;
  mp_test_signal_post(&ready);
  mp_obj *o = mp_obj_str("hello");
  if (o == NULL || mp_channel_write_obj(w, o, 10) != 0)
    return 4;
  mp_obj_free(o);
  mp_channel_end_free(w);
  mp_channel_free(c);
  return 0;
}

static void remote_buffered_and_obj(void **state) {
  (void)state;
  fresh_addr(); /* fork before serving (see addr) */
  mp_test_signal_open(&ready);
  pid_t pid = mp_test_fork(remote_buffered_child, NULL);
  mp_channel *c = chan(4);
  mp_channel_server *s = serve(c);
  mp_channel_end *r = end_of(c, true);
  assert_int_equal(mp_test_signal_wait(&ready, mp_test_slack(20)), 1);
  mp_test_signal_close(&ready);
  mp_channel_stats st = {0};
  assert_rc(mp_channel_stats_get(c, &st), 0);
  assert_int_equal(st.buffered, 4);
  for (uint32_t i = 0; i < 4; i++) {
    uint32_t v = 0;
    assert_rc(read_u32(r, &v, 10), 0);
    assert_int_equal(v, i);
  }
  mp_obj *o = NULL;
  assert_rc(mp_channel_read_obj(r, &o, 10), 0);
  const char *str = NULL;
  assert_rc(mp_obj_get_str(o, &str, NULL), 0);
  assert_string_equal(str, "hello");
  mp_obj_free(o);
  mp_test_wait_exit(pid, 0, 10);
  mp_channel_end_free(r);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

/* ---- many remote readers and writers --------------------------------- */

#define NW 3
#define NR 3
#define PER 60

/* Shared: how often each value arrived; the last slot counts the remote
 * ends joined (the local writer retires only once all have joined, so the
 * writers never all retire before a slow one joins). */
static _Atomic uint32_t *seen;
#define JOINED ((NW + 1) * PER)

static int many_writer(void *arg) {
  uint32_t base = (uint32_t)(uintptr_t)arg * PER;
  mp_channel *c = rconnect();
  mp_channel_end *w = rjoin(c, false);
  atomic_fetch_add(&seen[JOINED], 1);
  for (uint32_t i = 0; i < PER; i++)
    if (write_u32(w, base + i, 20) != 0)
      return 1;
  mp_channel_retire(w);
  mp_channel_end_free(w);
  mp_channel_free(c);
  return 0;
}

static int many_reader(void *arg) {
  (void)arg;
  mp_channel *c = rconnect();
  mp_channel_end *r = rjoin(c, true);
  atomic_fetch_add(&seen[JOINED], 1);
  for (;;) {
    uint32_t v = 0;
    int rc = read_u32(r, &v, 20);
    if (rc == MP_ERETIRED)
      break;
    if (rc != 0 || v >= (NW + 1) * PER)
      return 1;
    atomic_fetch_add(&seen[v], 1);
  }
  mp_channel_end_free(r);
  mp_channel_free(c);
  return 0;
}

static void many_remote_any_to_any(void **state) {
  (void)state;
  for (int buffer = 0; buffer <= 3; buffer += 3) {
    seen = mp_test_shared_map((JOINED + 1) * sizeof *seen);
    fresh_addr();
    pid_t pids[NW + NR];
    for (int i = 0; i < NW; i++)
      pids[i] = mp_test_fork(many_writer, (void *)(uintptr_t)i);
    for (int i = 0; i < NR; i++)
      pids[NW + i] = mp_test_fork(many_reader, NULL);
    mp_channel *c = chan((size_t)buffer);
    /* A local writer and a local reader join in too. */
    mp_channel_end *lw = end_of(c, false), *lr = end_of(c, true);
    mp_channel_server *s = serve(c);
    double end = mp_test_now() + mp_test_slack(20);
    while (atomic_load(&seen[JOINED]) < NW + NR && mp_test_now() < end)
      usleep(2000);
    assert_int_equal(atomic_load(&seen[JOINED]), NW + NR);
    for (uint32_t i = 0; i < PER; i++)
      assert_rc(write_u32(lw, NW * PER + i, 20), 0);
    assert_rc(mp_channel_retire(lw), 0);
    for (;;) {
      uint32_t v = 0;
      int rc = read_u32(lr, &v, 20);
      if (rc == MP_ERETIRED)
        break;
      assert_rc(rc, 0);
      assert_true(v < (NW + 1) * PER);
      atomic_fetch_add(&seen[v], 1);
    }
    for (int i = 0; i < NW + NR; i++)
      mp_test_wait_exit(pids[i], 0, 30);
    for (uint32_t v = 0; v < (NW + 1) * PER; v++)
      if (atomic_load(&seen[v]) != 1)
        fail_msg("buffer %d: value %u arrived %u times", buffer, v,
                 atomic_load(&seen[v]));
    mp_channel_end_free(lw);
    mp_channel_end_free(lr);
    mp_channel_server_free(s);
    mp_channel_free(c);
    munmap((void *)seen, (JOINED + 1) * sizeof *seen);
  }
}

/* ---- choice ------------------------------------------------------------ */

static int select_child(void *arg) {
  (void)arg;
  mp_channel *c = rconnect();
  mp_channel_end *r = rjoin(c, true);
  /* A remote input guard and a timeout: nothing comes, the timeout fires
   * on time. */
  uint32_t v = 0;
  mp_guard g[3] = {MP_GUARD_IN(r, &v, sizeof v), MP_GUARD_TIMEOUT_S(0.2)};
  double t0 = mp_test_now();
  if (mp_alt_select(g, 2) != 1)
    return 1;
  double took = mp_test_now() - t0;
  if (took < 0.19 || took > mp_test_slack(3))
    return 2;
  /* Skip fires at once when nothing is ready. */
  g[1] = MP_GUARD_SKIP_;
  if (mp_pri_select(g, 2) != 1)
    return 3;
  /* Now the parent writes 5: the input guard fires with the message. */
  mp_test_signal_post(&ready);
  g[1] = MP_GUARD_TIMEOUT_S(mp_test_slack(10));
  if (mp_pri_select(g, 2) != 0 || g[0].received != sizeof v || v != 5)
    return 4;
  /* Mixed with a local channel nobody writes to: the remote guard still
   * fires (the parent writes 6), and the local guard leaves no trace. */
  mp_channel *lc = NULL;
  mp_channel_end *lr = NULL, *lw = NULL;
  if (mp_channel_new(&lc, NULL) != 0 || mp_channel_reader(lc, &lr) != 0 ||
      mp_channel_writer(lc, &lw) != 0)
    return 5;
  uint32_t lv = 0;
  g[0] = MP_GUARD_IN(lr, &lv, sizeof lv);
  g[1] = MP_GUARD_IN(r, &v, sizeof v);
  g[2] = MP_GUARD_TIMEOUT_S(mp_test_slack(10));
  if (mp_fair_select(g, 3) != 1 || v != 6)
    return 6;
  /* A remote output guard: the parent reads 7. */
  mp_channel_end *w = rjoin(c, false);
  uint32_t seven = 7;
  mp_guard o[2] = {MP_GUARD_OUT(w, &seven, sizeof seven),
                   MP_GUARD_TIMEOUT_S(mp_test_slack(10))};
  if (mp_pri_select(o, 2) != 0)
    return 7;
  /* The same remote end twice in one choice is refused. */
  mp_guard twice[2] = {MP_GUARD_IN(r, &v, sizeof v),
                       MP_GUARD_IN(r, &v, sizeof v)};
  if (mp_pri_select(twice, 2) != MP_EINVAL)
    return 8;
  mp_channel_end_free(w);
  mp_channel_end_free(lr);
  mp_channel_end_free(lw);
  mp_channel_free(lc);
  mp_channel_end_free(r);
  mp_channel_free(c);
  return 0;
}

static void select_remote_guards(void **state) {
  (void)state;
  fresh_addr(); /* fork before serving (see addr) */
  mp_test_signal_open(&ready);
  pid_t pid = mp_test_fork(select_child, NULL);
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  mp_channel_end *w = end_of(c, false), *r = end_of(c, true);
  assert_int_equal(mp_test_signal_wait(&ready, mp_test_slack(20)), 1);
  mp_test_signal_close(&ready);
  assert_rc(write_u32(w, 5, mp_test_slack(20)), 0);
  assert_rc(write_u32(w, 6, mp_test_slack(20)), 0);
  uint32_t v = 0;
  assert_rc(read_u32(r, &v, mp_test_slack(20)), 0);
  assert_int_equal(v, 7);
  mp_test_wait_exit(pid, 0, 30);
  mp_channel_end_free(w);
  mp_channel_end_free(r);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

/* Two remote choices facing each other over the channel meet (each waits
 * on its one remote guard and a local one), and a chosen write is
 * delivered exactly once. */
static int choice_writer(void *arg) {
  (void)arg;
  mp_channel *c = rconnect();
  mp_channel_end *w = rjoin(c, false);
  mp_channel *lc = NULL;
  mp_channel_end *lw = NULL;
  if (mp_channel_new(&lc, NULL) != 0 || mp_channel_writer(lc, &lw) != 0)
    return 1;
  for (uint32_t i = 0; i < 20; i++) {
    uint32_t x = 99;
    mp_guard g[3] = {MP_GUARD_OUT(lw, &x, sizeof x),
                     MP_GUARD_OUT(w, &i, sizeof i),
                     MP_GUARD_TIMEOUT_S(mp_test_slack(20))};
    if (mp_alt_select(g, 3) != 1)
      return 2;
  }
  mp_channel_retire(w);
  mp_channel_end_free(w);
  mp_channel_end_free(lw);
  mp_channel_free(lc);
  mp_channel_free(c);
  return 0;
}

static int choice_reader(void *arg) {
  (void)arg;
  mp_channel *c = rconnect();
  mp_channel_end *r = rjoin(c, true);
  mp_channel *lc = NULL;
  mp_channel_end *lr = NULL;
  if (mp_channel_new(&lc, NULL) != 0 || mp_channel_reader(lc, &lr) != 0)
    return 1;
  for (uint32_t i = 0; i < 20; i++) {
    uint32_t v = ~0u, x;
    mp_guard g[3] = {MP_GUARD_IN(lr, &x, sizeof x),
                     MP_GUARD_IN(r, &v, sizeof v),
                     MP_GUARD_TIMEOUT_S(mp_test_slack(20))};
    if (mp_alt_select(g, 3) != 1 || v != i)
      return 2;
  }
  mp_channel_end_free(r);
  mp_channel_end_free(lr);
  mp_channel_free(lc);
  mp_channel_free(c);
  return 0;
}

static void select_remote_both_sides(void **state) {
  (void)state;
  fresh_addr();
  pid_t a = mp_test_fork(choice_writer, NULL);
  pid_t b = mp_test_fork(choice_reader, NULL);
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  mp_test_wait_exit(a, 0, 60);
  mp_test_wait_exit(b, 0, 60);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

/* ---- poison and retire across the wire ------------------------------ */

static int blocked_reader(void *arg) {
  int expect = (int)(intptr_t)arg;
  mp_channel *c = rconnect();
  mp_channel_end *r = rjoin(c, true);
  uint32_t v;
  int rc = read_u32(r, &v, MP_FOREVER);
  mp_channel_end_free(r);
  mp_channel_free(c);
  return rc == expect ? 0 : 1;
}

static void poison_local_reaches_remote(void **state) {
  (void)state;
  fresh_addr(); /* fork before serving (see addr) */
  pid_t pid = mp_test_fork(blocked_reader, (void *)(intptr_t)MP_EPOISONED);
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  mp_channel_end *w = end_of(c, false);
  wait_joined(c, 1, 1);
  usleep(100000); /* let the remote read block */
  assert_rc(mp_channel_poison(w), 0);
  mp_test_wait_exit(pid, 0, 10);
  mp_channel_end_free(w);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

static int poisoner(void *arg) {
  (void)arg;
  mp_channel *c = rconnect();
  mp_channel_end *w = rjoin(c, false);
  if (mp_channel_poison(w) != 0)
    return 1;
  if (write_u32(w, 1, 1) != MP_EPOISONED)
    return 2;
  mp_channel_stats st;
  if (mp_channel_stats_get(c, &st) != 0 || !st.poisoned)
    return 3;
  mp_channel_end_free(w);
  mp_channel_free(c);
  return 0;
}

static void poison_remote_reaches_local(void **state) {
  (void)state;
  fresh_addr(); /* fork before serving (see addr) */
  pid_t pid = mp_test_fork(poisoner, NULL);
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  mp_channel_end *r = end_of(c, true);
  uint32_t v;
  assert_rc(read_u32(r, &v, mp_test_slack(10)), MP_EPOISONED);
  mp_test_wait_exit(pid, 0, 10);
  mp_channel_end_free(r);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

/* ---- crashes ------------------------------------------------------------ */

/* G-CSP-6: a remote reader that dies mid-read is retired. */
static void killed_remote_mid_read(void **state) {
  (void)state;
  fresh_addr(); /* fork before serving (see addr) */
  pid_t pid = mp_test_fork(blocked_reader, (void *)(intptr_t)0);
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  mp_channel_end *w = end_of(c, false);
  wait_joined(c, 1, 1);
  usleep(100000);
  kill(pid, SIGKILL);
  double t0 = mp_test_now();
  assert_int_equal(WTERMSIG(mp_test_wait(pid, 10)), SIGKILL);
  /* The dead remote reader is retired within the death notice time (a
   * message written inside that window may go to it and be lost, as one
   * read by a local reader that dies as its read returns). */
  mp_channel_stats st = {.readers = 1};
  while (st.readers > 0 && mp_test_now() - t0 < mp_test_slack(2)) {
    assert_rc(mp_channel_stats_get(c, &st), 0);
    usleep(2000);
  }
  assert_int_equal(st.readers, 0);
  assert_true(st.readers_retired);
  assert_false(st.poisoned);
  /* It was the only reader: writes fail with MP_ERETIRED at once. */
  assert_rc(write_u32(w, 1, mp_test_slack(10)), MP_ERETIRED);
  mp_channel_end_free(w);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

static int blocked_writer(void *arg) {
  (void)arg;
  mp_channel *c = rconnect();
  mp_channel_end *w = rjoin(c, false);
  mp_test_signal_post(&ready);
  (void)write_u32(w, 1, MP_FOREVER);
  return 0;
}

/* G-CSP-6: a remote writer that dies mid-write poisons the channel. */
static void killed_remote_mid_write(void **state) {
  (void)state;
  fresh_addr(); /* fork before serving (see addr) */
  mp_test_signal_open(&ready);
  pid_t pid = mp_test_fork(blocked_writer, NULL);
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  mp_channel_end *r = end_of(c, true);
  mp_channel_end *w = end_of(c, false); /* keeps writers from retiring */
  assert_int_equal(mp_test_signal_wait(&ready, mp_test_slack(20)), 1);
  mp_test_signal_close(&ready);
  wait_joined(c, 1, 2);
  usleep(200000); /* the write is under way (a round trip) */
  kill(pid, SIGKILL);
  assert_int_equal(WTERMSIG(mp_test_wait(pid, 10)), SIGKILL);
  /* Died inside a write: the channel is poisoned (G-CSP-2 across hosts). */
  double end = mp_test_now() + mp_test_slack(5);
  mp_channel_stats st = {0};
  while (!st.poisoned && mp_test_now() < end) {
    assert_rc(mp_channel_stats_get(c, &st), 0);
    usleep(5000);
  }
  assert_true(st.poisoned);
  uint32_t v;
  assert_rc(read_u32(r, &v, 1), MP_EPOISONED);
  mp_channel_end_free(r);
  mp_channel_end_free(w);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

/* The server in a child process, stopped by pid. */
static int server_child(void *arg) {
  int fd = (int)(intptr_t)arg;
  mp_channel *c = NULL;
  mp_channel_end *r = NULL, *w = NULL;
  /* Ends of its own keep either side from retiring for good when remote
   * ends come and go. */
  if (mp_channel_new(&c, NULL) != 0 || mp_channel_reader(c, &r) != 0 ||
      mp_channel_writer(c, &w) != 0)
    return 1;
  mp_channel_server *s = NULL;
  mp_channel_serve_opts o = {.authkey = KEY, .authkey_len = sizeof KEY - 1};
  if (mp_channel_serve(&s, c, "127.0.0.1:0", &o) != 0)
    return 2;
  const char *a = mp_channel_server_address(s);
  if (write(fd, a, strlen(a) + 1) < 0)
    return 3;
  for (;;)
    pause();
}

static pid_t start_server_child(void) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = mp_test_fork(server_child, (void *)(intptr_t)p[1]);
  close(p[1]);
  fresh_addr();
  ssize_t n = read(p[0], addr, MP_ADDRESS_MAX - 1);
  close(p[0]);
  assert_true(n > 0);
  addr[n] = 0;
  return pid;
}

static void *kill_later(void *arg) {
  usleep(200000);
  kill((pid_t)(intptr_t)arg, SIGKILL);
  return NULL;
}

/* G-CSP-7: a server that dies wakes a blocked remote reader. */
static void server_dies(void **state) {
  (void)state;
  pid_t srv = start_server_child();
  mp_channel *c = NULL;
  assert_rc(mp_channel_connect(&c, addr, &copts), 0);
  mp_channel_end *r = NULL, *w = NULL;
  assert_rc(mp_channel_reader(c, &r), 0);
  assert_rc(mp_channel_writer(c, &w), 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, kill_later, (void *)(intptr_t)srv),
                   0);
  /* Blocked in a read when the server dies: woken with MP_EPOISONED. */
  uint32_t v;
  double t0 = mp_test_now();
  assert_rc(read_u32(r, &v, MP_FOREVER), MP_EPOISONED);
  assert_true(mp_test_now() - t0 < mp_test_slack(5));
  pthread_join(th, NULL);
  assert_int_equal(WTERMSIG(mp_test_wait(srv, 10)), SIGKILL);
  assert_rc(write_u32(w, 1, 1), MP_EPOISONED);
  /* A new end connects anew: nobody listens there any more. */
  mp_channel_end *e = NULL;
  assert_rc(mp_channel_reader(c, &e), MP_ECONNREFUSED);
  assert_null(e);
  assert_rc(mp_channel_poison(w), 0);
  mp_channel_end_free(r);
  mp_channel_end_free(w);
  mp_channel_free(c);
}

/* G-CSP-7: closing the server wakes a blocked remote reader. */
static void server_close_wakes_remote(void **state) {
  (void)state;
  fresh_addr(); /* fork before serving (see addr) */
  pid_t pid = mp_test_fork(blocked_reader, (void *)(intptr_t)MP_EPOISONED);
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  wait_joined(c, 1, 0);
  usleep(100000);
  assert_rc(mp_channel_server_close(s), 0);
  assert_rc(mp_channel_server_close(s), 0);
  mp_test_wait_exit(pid, 0, 10);
  /* The server's end for the remote reader retired. */
  mp_channel_stats st;
  assert_rc(mp_channel_stats_get(c, &st), 0);
  assert_int_equal(st.readers, 0);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

/* Every allocation of the client's connect and join failing in turn:
 * MP_ENOMEM, *out untouched, nothing leaked (the harness checks fds); the
 * server (a child, out of reach of the injection) serves on. */
static void allocation_failures(void **state) {
  (void)state;
  pid_t srv = start_server_child();
  int streak = 0;
  for (long n = 1; n < 200 && streak < 3; n++) {
    mp_channel *c = (mp_channel *)&streak;
    mp__alloc_fail_after(n);
    int rc = mp_channel_connect(&c, addr, &copts);
    mp_channel_end *e = (mp_channel_end *)&streak;
    int rj = rc == 0 ? mp_channel_reader(c, &e) : MP_ENOMEM;
    mp__alloc_fail_after(0);
    if (rc != 0) {
      if (rc != MP_ENOMEM)
        fail_msg("connect with allocation %ld failing: %s (%s)", n,
                 mp_err_name(rc), mp_error_detail());
      assert_ptr_equal(c, (mp_channel *)&streak);
      streak = 0;
      continue;
    }
    if (rj != 0) {
      if (rj != MP_ENOMEM)
        fail_msg("join with allocation %ld failing: %s (%s)", n,
                 mp_err_name(rj), mp_error_detail());
      assert_ptr_equal(e, (mp_channel_end *)&streak);
      mp_channel_free(c);
      streak = 0;
      continue;
    }
    streak++;
    uint32_t v;
    assert_rc(read_u32(e, &v, 0), MP_EAGAIN);
    mp_channel_end_free(e);
    mp_channel_free(c);
  }
  assert_int_equal(streak, 3);
  kill(srv, SIGKILL);
  assert_int_equal(WTERMSIG(mp_test_wait(srv, 10)), SIGKILL);
}

/* ---- refusals ---------------------------------------------------------- */

static void wrong_authkey_refused(void **state) {
  (void)state;
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  mp_channel *rc = NULL;
  mp_channel_connect_opts bad = {.authkey = "wrong", .authkey_len = 5};
  assert_rc(mp_channel_connect(&rc, addr, &bad), MP_EAUTH);
  assert_null(rc);
  /* No key at all (a server with one refuses it). */
  mp_channel_connect_opts none = {.authkey = "", .authkey_len = 0};
  assert_rc(mp_channel_connect(&rc, addr, &none), MP_EAUTH);
  /* The right key still works after the refusals. */
  assert_rc(mp_channel_connect(&rc, addr, &copts), 0);
  mp_channel_free(rc);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

static void bad_arguments(void **state) {
  (void)state;
  mp_channel *c = chan(0), *rc = NULL;
  mp_channel_server *s = NULL;
  assert_rc(mp_channel_serve(NULL, c, "127.0.0.1:0", NULL), MP_EINVAL);
  assert_rc(mp_channel_serve(&s, NULL, "127.0.0.1:0", NULL), MP_EINVAL);
  assert_rc(mp_channel_serve(&s, c, "127.0.0.1:0",
                             &(mp_channel_serve_opts){.authkey_len = 3}),
            MP_EINVAL);
  assert_rc(mp_channel_connect(NULL, "127.0.0.1:1", NULL), MP_EINVAL);
  assert_rc(mp_channel_connect(&rc, NULL, NULL), MP_EINVAL);
  assert_rc(mp_channel_connect(&rc, "127.0.0.1:1",
                               &(mp_channel_connect_opts){.timeout = NAN}),
            MP_EINVAL);
  assert_rc(mp_channel_connect(&rc, "127.0.0.1:1", &copts), MP_ECONNREFUSED);
  assert_null(rc);
  assert_rc(mp_channel_server_close(NULL), MP_EINVAL);
  mp_channel_server_free(NULL);
  assert_string_equal(mp_channel_server_address(NULL), "");
  /* Serving a remote handle is refused. */
  s = serve(c);
  assert_rc(mp_channel_connect(&rc, addr, &copts), 0);
  mp_channel_server *s2 = NULL;
  assert_rc(mp_channel_serve(&s2, rc, "127.0.0.1:0", NULL), MP_EINVAL);
  mp_channel_end *r = NULL;
  assert_rc(mp_channel_reader(rc, &r), 0);
  uint32_t v;
  assert_rc(mp_channel_read(r, &v, sizeof v, NAN), MP_EINVAL);
  assert_rc(mp_channel_read(r, NULL, 4, 0), MP_EINVAL);
  assert_rc(mp_channel_write(r, &v, sizeof v, 0), MP_EINVAL);
  assert_int_equal(mp_channel_end_is_reader(r), 1);
  mp_channel_end_free(r);
  mp_channel_free(rc);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

/* A client that speaks garbage after the handshake is dropped; the server
 * goes on serving the others. */
static void malformed_requests_refused(void **state) {
  (void)state;
  mp_channel *c = chan(0);
  mp_channel_server *s = serve(c);
  const char *junk[] = {"", "C", "Xxxxxxxxxxxxxxxxxxxx",
                        "C\x01\x63\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                        "\x00\x00"};
  size_t lens[] = {0, 1, 20, 16};
  for (size_t i = 0; i < 4; i++) {
    mp_connection *k = NULL;
    assert_rc(mp_client(&k, addr,
                        &(mp_client_opts){.authkey = KEY,
                                          .authkey_len = sizeof KEY - 1},
                        5),
              0);
    assert_rc(mp_connection_send_bytes(k, junk[i], 0, lens[i]), 0);
    char buf[64];
    size_t n;
    assert_int_equal(mp_connection_poll(k, mp_test_slack(5)), 1);
    assert_rc(mp_connection_recv_bytes(k, buf, sizeof buf, &n), MP_ECLOSED);
    mp_connection_free(k);
  }
  mp_channel *rc = NULL;
  assert_rc(mp_channel_connect(&rc, addr, &copts), 0);
  mp_channel_stats st;
  assert_rc(mp_channel_stats_get(rc, &st), 0);
  assert_int_equal(st.readers + st.writers, 0);
  mp_channel_free(rc);
  mp_channel_server_free(s);
  mp_channel_free(c);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(remote_write_local_read),
    cmocka_unit_test(local_write_remote_read),
    cmocka_unit_test(remote_rendezvous_and_timeout),
    cmocka_unit_test(remote_buffered_and_obj),
    cmocka_unit_test(many_remote_any_to_any),
    cmocka_unit_test(select_remote_guards),
    cmocka_unit_test(select_remote_both_sides),
    cmocka_unit_test(poison_local_reaches_remote),
    cmocka_unit_test(poison_remote_reaches_local),
    cmocka_unit_test(killed_remote_mid_read),
    cmocka_unit_test(killed_remote_mid_write),
    cmocka_unit_test(server_dies),
    cmocka_unit_test(server_close_wakes_remote),
    cmocka_unit_test(wrong_authkey_refused),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(malformed_requests_refused),
    cmocka_unit_test(allocation_failures),
};

MP_TEST_MAIN(tests)
