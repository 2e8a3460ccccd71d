/* test_csp_remote_crash.c - a process using served channels (through
 * mp_channel_connect) is SIGKILLed in the middle of a write, a read and a
 * choice, at a random point of a stream of messages and once surely
 * blocked in the call; the server and the other parties go on. Checked
 * every time: every message arrives whole (a pattern over all its bytes)
 * and at most once; a write that returned 0 (a chosen output guard
 * included) was received exactly once; at most one message is lost, the
 * one whose reply was on its way to the dead process; the other parties'
 * calls end (a survivor goes on; a party left with no partner gets
 * MP_ERETIRED, or MP_EPOISONED when the dead process was inside a write,
 * the local crash rule); the server still takes clients; nothing leaks
 * (the harness counts descriptors and children).
 *
 * The servers run in the test process; the victim is forked before they
 * start (see test_csp_remote.c: a fork while the server's threads run
 * could leave the child a lock of libcrypto held) and waits for their
 * addresses in shared memory. Forked children never call cmocka. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static const char KEY[] = "csp-remote-crash-key";
static const mp_channel_connect_opts copts = {.authkey = KEY,
                                              .authkey_len = sizeof KEY - 1};

#define MSG 256
#define NSEQ 4000
#define VICTIM 0u   /* the killed process's messages */
#define SURVIVOR 1u /* a party that goes on */

typedef struct shared {
  char addr[2][MP_ADDRESS_MAX];
  _Atomic uint32_t progress;          /* the victim's completed calls */
  _Atomic uint8_t ok[2][NSEQ];        /* [writer][seq]: write returned 0 */
  _Atomic uint8_t got[2][NSEQ];       /* [writer][seq]: times received */
  _Atomic uint32_t bad;               /* torn, unknown or out-of-order */
  _Atomic uint32_t next_got[2];       /* per writer: next seq expected */
  _Atomic int pause;                  /* the parent's threads hold still */
  _Atomic int stop;
} shared;

static shared *sh;

/* ---- messages ------------------------------------------------------- */

static void make_msg(uint8_t *m, uint32_t who, uint32_t seq) {
  uint32_t tag = who << 24 | seq;
  memcpy(m, &tag, 4);
  for (size_t i = 4; i < MSG; i++)
    m[i] = (uint8_t)(tag * 131u + i);
}

/* take records a received message: whole, known, each writer's in order
 * (one reader per test sees one writer's stream in order; with two
 * readers order is per reader, so only a count is kept). */
static void take(const uint8_t *m, ssize_t n, bool ordered) {
  uint32_t tag;
  if (n != MSG) {
    atomic_fetch_add(&sh->bad, 1);
    return;
  }
  memcpy(&tag, m, 4);
  uint32_t who = tag >> 24, seq = tag & 0xffffffu;
  if (who > 1 || seq >= NSEQ) {
    atomic_fetch_add(&sh->bad, 1);
    return;
  }
  for (size_t i = 4; i < MSG; i++)
    if (m[i] != (uint8_t)(tag * 131u + i)) {
      atomic_fetch_add(&sh->bad, 1); /* half delivered */
      return;
    }
  if (ordered && atomic_exchange(&sh->next_got[who], seq + 1) != seq)
    atomic_fetch_add(&sh->bad, 1);
  atomic_fetch_add(&sh->got[who][seq], 1);
}

static void hold_while_paused(void) {
  while (atomic_load(&sh->pause) && !atomic_load(&sh->stop))
    usleep(1000);
}

/* ---- the victim (forked before serving) ------------------------------ */

static mp_channel *vconnect(int which) {
  for (int i = 0; i < 20000 && atomic_load((_Atomic char *)sh->addr[which]) == 0;
       i++)
    usleep(1000);
  mp_channel *c = NULL;
  int rc = mp_channel_connect(&c, sh->addr[which], &copts);
  if (rc != 0) {
    fprintf(stderr, "victim: connect: %s (%s)\n", mp_err_name(rc),
            mp_error_detail());
    _exit(90);
  }
  return c;
}

static mp_channel_end *vjoin(mp_channel *c, bool reader) {
  mp_channel_end *e = NULL;
  int rc = reader ? mp_channel_reader(c, &e) : mp_channel_writer(c, &e);
  if (rc != 0) {
    fprintf(stderr, "victim: join: %s (%s)\n", mp_err_name(rc),
            mp_error_detail());
    _exit(91);
  }
  return e;
}

static int victim_writer(void *arg) {
  (void)arg;
  mp_channel_end *w = vjoin(vconnect(0), false);
  uint8_t m[MSG];
  for (uint32_t i = 0; i < NSEQ; i++) {
    make_msg(m, VICTIM, i);
    int rc = mp_channel_write(w, m, MSG, MP_FOREVER);
    if (rc != 0) {
      fprintf(stderr, "victim: write: %s (%s)\n", mp_err_name(rc),
              mp_error_detail());
      return 1;
    }
    atomic_store(&sh->ok[VICTIM][i], 1);
    atomic_fetch_add(&sh->progress, 1);
  }
  return 2; /* never here: it is killed first */
}

static int victim_reader(void *arg) {
  (void)arg;
  mp_channel_end *r = vjoin(vconnect(0), true);
  uint8_t m[MSG];
  for (;;) {
    ssize_t n = mp_channel_read(r, m, sizeof m, MP_FOREVER);
    if (n < 0) {
      fprintf(stderr, "victim: read: %s (%s)\n", mp_err_name((int)n),
              mp_error_detail());
      return 1;
    }
    take(m, n, false);
    atomic_fetch_add(&sh->progress, 1);
  }
}

/* A choice over an input from channel 0, an output to channel 1 and a
 * timeout: each output that fires is the next message of its stream. */
static int victim_chooser(void *arg) {
  (void)arg;
  mp_channel_end *r = vjoin(vconnect(0), true);
  mp_channel_end *w = vjoin(vconnect(1), false);
  uint8_t in[MSG], out[MSG];
  uint32_t next = 0;
  make_msg(out, VICTIM, next);
  for (;;) {
    mp_guard g[] = {MP_GUARD_IN(r, in, sizeof in),
                    MP_GUARD_OUT(w, out, MSG), MP_GUARD_TIMEOUT_S(60)};
    int rc = mp_alt_select(g, 3);
    if (rc == 0) {
      take(in, (ssize_t)g[0].received, false);
    } else if (rc == 1) {
      atomic_store(&sh->ok[VICTIM][next], 1);
      make_msg(out, VICTIM, ++next);
    } else {
      fprintf(stderr, "victim: select: %s (%s)\n", mp_err_name(rc),
              mp_error_detail());
      return 1;
    }
    atomic_fetch_add(&sh->progress, 1);
  }
}

/* ---- the parent's parties ---------------------------------------------- */

typedef struct party {
  mp_channel_end *end;
  uint32_t who; /* a writer's stream */
  uint32_t count;
  bool ordered;
  int rc; /* how it ended */
  pthread_t t;
} party;

static void *read_all(void *arg) {
  party *p = arg;
  uint8_t m[MSG];
  for (;;) {
    hold_while_paused();
    ssize_t n = mp_channel_read(p->end, m, sizeof m, mp_test_slack(20));
    if (n < 0) {
      p->rc = (int)n;
      return NULL;
    }
    take(m, n, p->ordered);
    if (rand() % 4 == 0)
      usleep((useconds_t)(rand() % 500));
  }
}

static void *write_all(void *arg) {
  party *p = arg;
  uint8_t m[MSG];
  for (uint32_t i = 0; i < p->count && !atomic_load(&sh->stop); i++) {
    hold_while_paused();
    make_msg(m, p->who, i);
    int rc = mp_channel_write(p->end, m, MSG, mp_test_slack(20));
    if (rc != 0) {
      p->rc = rc;
      return NULL;
    }
    atomic_store(&sh->ok[p->who][i], 1);
    if (rand() % 4 == 0)
      usleep((useconds_t)(rand() % 500));
  }
  p->rc = mp_channel_retire(p->end);
  return NULL;
}

static void start(party *p, void *(*fn)(void *)) {
  assert_int_equal(pthread_create(&p->t, NULL, fn, p), 0);
}

/* finish joins a party, which must end within the bound. */
static void finish(party *p) {
  double t0 = mp_test_now();
  assert_int_equal(pthread_join(p->t, NULL), 0);
  assert_true(mp_test_now() - t0 < mp_test_slack(30));
}

/* ---- the case's frame --------------------------------------------------- */

typedef struct served {
  mp_channel *c;
  mp_channel_server *s;
} served;

static void serve(served *v, int which) {
  assert_rc(mp_channel_new(&v->c, &(mp_channel_opts){.msg_max = MSG}), 0);
  mp_channel_serve_opts o = {.authkey = KEY, .authkey_len = sizeof KEY - 1};
  assert_rc(mp_channel_serve(&v->s, v->c, "127.0.0.1:0", &o), 0);
  /* Published whole: the first byte, which the victim waits for, last. */
  char a[MP_ADDRESS_MAX];
  snprintf(a, sizeof a, "%s", mp_channel_server_address(v->s));
  memcpy(sh->addr[which] + 1, a + 1, sizeof a - 1);
  atomic_store((_Atomic char *)sh->addr[which], a[0]);
}

static void unserve(served *v) {
  /* The server still takes clients after the crash. */
  mp_channel *rc = NULL;
  assert_rc(mp_channel_connect(&rc, mp_channel_server_address(v->s), &copts),
            0);
  mp_channel_stats st;
  assert_rc(mp_channel_stats_get(rc, &st), 0);
  mp_channel_free(rc);
  mp_channel_server_free(v->s);
  mp_channel_free(v->c);
}

static void fresh(void) {
  if (sh == NULL)
    sh = mp_test_shared_map(sizeof *sh);
  memset(sh, 0, sizeof *sh);
}

/* kill_when waits until the victim made target calls (or, with blocked,
 * pauses the parent's parties for a while first, so that the victim is
 * surely blocked inside its call), then SIGKILLs it. */
static void kill_when(pid_t pid, uint32_t target, bool blocked) {
  double end = mp_test_now() + mp_test_slack(30);
  while (atomic_load(&sh->progress) < target && mp_test_now() < end) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid)
      fail_msg("the victim ended first: status %#x after %u calls", status,
               atomic_load(&sh->progress));
    usleep(200);
  }
  assert_true(atomic_load(&sh->progress) >= target);
  if (blocked) {
    atomic_store(&sh->pause, 1);
    usleep(150 * 1000); /* past the server's slice: the call is blocked */
  }
  kill(pid, SIGKILL);
  int status = mp_test_wait(pid, 10);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* joined waits until channel c has the given ends (the victim's
 * included: the parties start only then, so that none retires before the
 * victim joined). */
static void joined(mp_channel *c, uint32_t readers, uint32_t writers) {
  double end = mp_test_now() + mp_test_slack(20);
  mp_channel_stats st;
  do {
    assert_rc(mp_channel_stats_get(c, &st), 0);
    if (st.readers == readers && st.writers == writers)
      return;
    usleep(1000);
  } while (mp_test_now() < end);
  fail_msg("joined %u readers, %u writers; expected %u, %u", st.readers,
           st.writers, readers, writers);
}

/* oks counts the writes of stream who that returned 0; went_on waits
 * until ten more did than before (the survivors go on after the crash). */
static uint32_t oks(uint32_t who) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < NSEQ; i++)
    n += atomic_load(&sh->ok[who][i]);
  return n;
}

static void went_on(uint32_t who, uint32_t before) {
  double end = mp_test_now() + mp_test_slack(10);
  while (oks(who) < before + 10 && mp_test_now() < end)
    usleep(1000);
  assert_true(oks(who) >= before + 10);
}

/* resume lets the parent's parties go on once the server has left the
 * victim's ends on channel c (readers and writers as given), so that what
 * the rule says (retired or poisoned) is settled before they look. */
static void resume(mp_channel *c, uint32_t readers, uint32_t writers) {
  double end = mp_test_now() + mp_test_slack(10);
  mp_channel_stats st;
  do {
    assert_rc(mp_channel_stats_get(c, &st), 0);
    if (st.readers <= readers && st.writers <= writers)
      break;
    usleep(1000);
  } while (mp_test_now() < end);
  assert_true(st.readers <= readers && st.writers <= writers);
  atomic_store(&sh->pause, 0);
}

/* check_stream checks writer who's stream: each message received at most
 * once, every write that returned 0 received, at most `lost` written and
 * not received, nothing received that was never written (the victim's
 * in-flight message aside). Returns the number received. */
static uint32_t check_stream(uint32_t who, uint32_t lost) {
  uint32_t nok = 0, ngot = 0, okmissing = 0, gotnotok = 0;
  for (uint32_t i = 0; i < NSEQ; i++) {
    uint8_t ok = atomic_load(&sh->ok[who][i]);
    uint8_t got = atomic_load(&sh->got[who][i]);
    if (got > 1)
      fail_msg("stream %u: message %u received %u times", who, i, got);
    nok += ok;
    ngot += got;
    if (ok && !got)
      okmissing++;
    if (got && !ok)
      gotnotok++;
  }
  if (okmissing > lost)
    fail_msg("stream %u: %u messages written and never received", who,
             okmissing);
  /* A message the victim's write delivered just before it died, whose
   * reply never reached it. */
  if (gotnotok > (who == VICTIM ? 1u : 0u))
    fail_msg("stream %u: %u messages received that no write returned",
             who, gotnotok);
  assert_int_equal(atomic_load(&sh->bad), 0);
  (void)nok;
  return ngot;
}

static bool crash_code(int rc) {
  return rc == MP_ERETIRED || rc == MP_EPOISONED;
}

/* ---- killed mid-write -------------------------------------------------- */

static void run_mid_write(uint32_t target, bool blocked) {
  fresh();
  pid_t pid = mp_test_fork(victim_writer, NULL);
  served v;
  serve(&v, 0);
  party reader = {.ordered = true};
  party survivor = {.who = SURVIVOR, .count = NSEQ};
  assert_rc(mp_channel_reader(v.c, &reader.end), 0);
  assert_rc(mp_channel_writer(v.c, &survivor.end), 0);
  joined(v.c, 1, 2);
  start(&reader, read_all);
  start(&survivor, write_all);
  kill_when(pid, target, blocked);
  resume(v.c, 1, 1);
  mp_channel_stats st;
  assert_rc(mp_channel_stats_get(v.c, &st), 0);
  if (!st.poisoned)
    went_on(SURVIVOR, oks(SURVIVOR));
  atomic_store(&sh->stop, 1);
  finish(&survivor);
  finish(&reader);
  assert_rc(mp_channel_stats_get(v.c, &st), 0);
  if (blocked) {
    /* Died inside a write: poisoned; both parties were told. */
    assert_true(st.poisoned);
    assert_rc(reader.rc, MP_EPOISONED);
  }
  assert_true(crash_code(reader.rc));
  assert_true(survivor.rc == 0 || survivor.rc == MP_EPOISONED);
  uint32_t got = check_stream(VICTIM, 0);
  assert_true(got >= target);
  check_stream(SURVIVOR, survivor.rc == 0 ? 0 : 1);
  mp_channel_end_free(reader.end);
  mp_channel_end_free(survivor.end);
  unserve(&v);
}

static void killed_blocked_mid_write(void **state) {
  (void)state;
  run_mid_write(20, true);
}

static void killed_randomly_mid_write(void **state) {
  (void)state;
  srand((unsigned)getpid());
  for (int round = 0; round < 4; round++)
    run_mid_write(5 + (uint32_t)(rand() % 60), false);
}

/* ---- killed mid-read --------------------------------------------------- */

static void run_mid_read(uint32_t target, bool blocked) {
  fresh();
  pid_t pid = mp_test_fork(victim_reader, NULL);
  served v;
  serve(&v, 0);
  party writer = {.who = SURVIVOR, .count = NSEQ};
  party reader = {.ordered = false};
  assert_rc(mp_channel_writer(v.c, &writer.end), 0);
  assert_rc(mp_channel_reader(v.c, &reader.end), 0);
  joined(v.c, 2, 1);
  start(&writer, write_all);
  start(&reader, read_all);
  kill_when(pid, target, blocked);
  uint32_t before = oks(SURVIVOR);
  resume(v.c, 1, 1);
  went_on(SURVIVOR, before);
  atomic_store(&sh->stop, 1);
  /* Died reading: its end retires, the channel is not poisoned, and the
   * writer goes on with the surviving reader to its last message. */
  finish(&writer);
  finish(&reader);
  assert_rc(writer.rc, 0);
  assert_rc(reader.rc, MP_ERETIRED);
  mp_channel_stats st;
  assert_rc(mp_channel_stats_get(v.c, &st), 0);
  assert_false(st.poisoned);
  check_stream(SURVIVOR, 1);
  mp_channel_end_free(writer.end);
  mp_channel_end_free(reader.end);
  unserve(&v);
}

static void killed_blocked_mid_read(void **state) {
  (void)state;
  run_mid_read(20, true);
}

static void killed_randomly_mid_read(void **state) {
  (void)state;
  srand((unsigned)getpid());
  for (int round = 0; round < 4; round++)
    run_mid_read(5 + (uint32_t)(rand() % 60), false);
}

/* ---- killed mid-choice ------------------------------------------------- */

static void run_mid_choice(uint32_t target, bool blocked) {
  fresh();
  pid_t pid = mp_test_fork(victim_chooser, NULL);
  served in, out;
  serve(&in, 0);
  serve(&out, 1);
  /* Channel 0: our writer feeds the victim's input guard and a surviving
   * reader; channel 1: the victim's output guard's stream, read here. */
  party writer = {.who = SURVIVOR, .count = NSEQ};
  party survivor = {.ordered = false};
  party reader = {.ordered = true};
  assert_rc(mp_channel_writer(in.c, &writer.end), 0);
  assert_rc(mp_channel_reader(in.c, &survivor.end), 0);
  assert_rc(mp_channel_reader(out.c, &reader.end), 0);
  joined(in.c, 2, 1);
  joined(out.c, 1, 1);
  start(&writer, write_all);
  start(&survivor, read_all);
  start(&reader, read_all);
  kill_when(pid, target, blocked);
  uint32_t before = oks(SURVIVOR);
  resume(in.c, 1, 1);
  resume(out.c, 1, 0);
  went_on(SURVIVOR, before);
  atomic_store(&sh->stop, 1);
  finish(&writer);
  finish(&survivor);
  finish(&reader);
  /* The input side goes on to its end; the output stream's only writer is
   * gone: retired, or poisoned when it died in a write attempt. */
  assert_rc(writer.rc, 0);
  assert_rc(survivor.rc, MP_ERETIRED);
  assert_true(crash_code(reader.rc));
  check_stream(SURVIVOR, 1);
  check_stream(VICTIM, 0);
  mp_channel_end_free(writer.end);
  mp_channel_end_free(survivor.end);
  mp_channel_end_free(reader.end);
  unserve(&in);
  unserve(&out);
}

static void killed_blocked_mid_choice(void **state) {
  (void)state;
  run_mid_choice(20, true);
}

static void killed_randomly_mid_choice(void **state) {
  (void)state;
  srand((unsigned)getpid());
  for (int round = 0; round < 4; round++)
    run_mid_choice(5 + (uint32_t)(rand() % 60), false);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(killed_blocked_mid_write),
    cmocka_unit_test(killed_randomly_mid_write),
    cmocka_unit_test(killed_blocked_mid_read),
    cmocka_unit_test(killed_randomly_mid_read),
    cmocka_unit_test(killed_blocked_mid_choice),
    cmocka_unit_test(killed_randomly_mid_choice),
};

MP_TEST_MAIN(tests)
