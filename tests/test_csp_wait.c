/* test_csp_wait.c - how a CSP party waits for its partner
 * (mp__csp_bells_wait: spin, yield, then sleep counted in the bell's
 * sleepers) and the wait on several words at once beneath a choice
 * (mp__os_futex_waitv, with its fallback where the kernel lacks
 * futex_waitv). The ringing side waits until the waiter is counted as a
 * sleeper before it rings, so each case reaches the sleep stage for sure;
 * a lost wake-up shows as a wait that runs to its (far) deadline.
 *
 * Forked children never call cmocka: they report through their exit
 * status (0 = fine, other values name the step that failed). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "csp/csp_internal.h"
#include "harness.h"
#include "os/futexv.h"

#define NBELLS 3

typedef struct bells {
  _Atomic uint32_t bell[NBELLS];
  _Atomic uint32_t sleepers[NBELLS];
  int ring; /* which bell the ringer rings */
} bells;

static int64_t ns_after(double seconds) {
  return mp__os_now_ns() + (int64_t)(seconds * 1e9);
}

/* ringer waits (bounded) until someone sleeps on b->ring, then rings it. */
static int ring_when_asleep(bells *b) {
  int64_t give_up = ns_after(30);
  while (atomic_load(&b->sleepers[b->ring]) == 0) {
    if (mp__os_now_ns() > give_up)
      return 1;
    usleep(200);
  }
  mp__csp_wake(&b->bell[b->ring], &b->sleepers[b->ring]);
  return 0;
}

static void *ringer_thread(void *p) {
  return (void *)(intptr_t)ring_when_asleep(p);
}

static int ringer_child(void *p) { return ring_when_asleep(p); }

/* wait_all waits on the first n bells of b until deadline. */
static bool wait_all(bells *b, int n, int64_t deadline) {
  _Atomic uint32_t *bell[NBELLS], *sleepers[NBELLS];
  uint32_t expect[NBELLS];
  for (int i = 0; i < n; i++) {
    bell[i] = &b->bell[i];
    sleepers[i] = &b->sleepers[i];
    expect[i] = atomic_load(&b->bell[i]);
  }
  return mp__csp_bells_wait(bell, expect, sleepers, n, deadline);
}

static void wait_returns_at_once_when_rung(void **state) {
  (void)state;
  bells b = {0};
  _Atomic uint32_t *bell = &b.bell[0], *sleepers = &b.sleepers[0];
  uint32_t expect = 7; /* the bell is 0: it already differs */
  double t0 = mp_test_now();
  assert_true(mp__csp_bells_wait(&bell, &expect, &sleepers, 1,
                                 ns_after(mp_test_slack(5))));
  assert_true(mp_test_now() - t0 < mp_test_slack(1));
  assert_int_equal(atomic_load(&b.sleepers[0]), 0);
}

static void wait_times_out_at_deadline(void **state) {
  (void)state;
  bells b = {0};
  for (int n = 1; n <= NBELLS; n += NBELLS - 1) {
    int64_t deadline = ns_after(0.02);
    assert_false(wait_all(&b, n, deadline));
    assert_true(mp__os_now_ns() >= deadline);
    for (int i = 0; i < NBELLS; i++)
      assert_int_equal(atomic_load(&b.sleepers[i]), 0);
  }
}

static void wait_past_deadline_returns_false(void **state) {
  (void)state;
  bells b = {0};
  assert_false(wait_all(&b, 1, mp__os_now_ns() - 1));
  assert_int_equal(atomic_load(&b.sleepers[0]), 0);
}

/* A waiter that went to sleep is woken by the ring, long before its
 * deadline, for one bell (futex) and for several (futex_waitv), by a
 * thread and by another process. */
static void woken_from_sleep(int n, int ring, bool process) {
  bells *b = mp_test_shared_map(sizeof *b);
  b->ring = ring;
  pthread_t th;
  pid_t pid = -1;
  if (process)
    pid = mp_test_fork(ringer_child, b);
  else
    assert_int_equal(pthread_create(&th, NULL, ringer_thread, b), 0);
  int64_t deadline = ns_after(mp_test_slack(20));
  bool rung = false;
  /* The bell may ring between two waits (a spurious early return). */
  while (!rung && mp__os_now_ns() < deadline)
    rung = wait_all(b, n, deadline) && atomic_load(&b->bell[ring]) != 0;
  assert_true(rung);
  assert_true(mp__os_now_ns() < deadline);
  if (process) {
    mp_test_wait_exit(pid, 0, mp_test_slack(10));
  } else {
    void *ret;
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal((intptr_t)ret, 0);
  }
  for (int i = 0; i < NBELLS; i++)
    assert_int_equal(atomic_load(&b->sleepers[i]), 0);
  munmap(b, sizeof *b);
}

static void one_bell_woken_by_thread(void **state) {
  (void)state;
  woken_from_sleep(1, 0, false);
}

static void several_bells_woken_by_thread(void **state) {
  (void)state;
  woken_from_sleep(NBELLS, NBELLS - 1, false);
}

static void one_bell_woken_by_process(void **state) {
  (void)state;
  woken_from_sleep(1, 0, true);
}

static void several_bells_woken_by_process(void **state) {
  (void)state;
  woken_from_sleep(NBELLS, 1, true);
}

static void wake_without_sleepers_rings_only(void **state) {
  (void)state;
  bells b = {0};
  mp__csp_wake(&b.bell[0], &b.sleepers[0]);
  mp__csp_wake(&b.bell[0], &b.sleepers[0]);
  assert_int_equal(atomic_load(&b.bell[0]), 2);
  assert_int_equal(atomic_load(&b.sleepers[0]), 0);
}

/* ---- mp__os_futex_waitv ------------------------------------------------ */

static void futexv_returns_when_a_word_differs(void **state) {
  (void)state;
  uint32_t w[3] = {1, 2, 3};
  uint32_t *words[3] = {&w[0], &w[1], &w[2]};
  uint32_t expect[3] = {1, 2, 4}; /* the last differs */
  int64_t deadline = ns_after(mp_test_slack(10));
  mp__os_futex_waitv(words, expect, 3, deadline);
  assert_true(mp__os_now_ns() < deadline);
}

static void futexv_returns_at_deadline(void **state) {
  (void)state;
  uint32_t w[2] = {0, 0};
  uint32_t *words[2] = {&w[0], &w[1]};
  uint32_t expect[2] = {0, 0};
  int64_t deadline = ns_after(0.02);
  /* Early (spurious) returns are allowed: loop until the deadline. */
  while (mp__os_now_ns() < deadline)
    mp__os_futex_waitv(words, expect, 2, deadline);
  assert_true(mp__os_now_ns() - deadline < (int64_t)(mp_test_slack(5) * 1e9));
}

static void futexv_zero_words_returns(void **state) {
  (void)state;
  int64_t deadline = ns_after(mp_test_slack(10));
  mp__os_futex_waitv(NULL, NULL, 0, deadline);
  assert_true(mp__os_now_ns() < deadline);
}

/* More words than it watches: the first MP__OS_FUTEXV_MAX count. */
static void futexv_watches_at_most_max(void **state) {
  (void)state;
  enum { N = MP__OS_FUTEXV_MAX + 10 };
  static uint32_t w[N];
  uint32_t *words[N], expect[N];
  for (int i = 0; i < N; i++) {
    words[i] = &w[i];
    expect[i] = 0;
  }
  expect[MP__OS_FUTEXV_MAX - 1] = 1; /* the last watched differs */
  int64_t deadline = ns_after(mp_test_slack(10));
  mp__os_futex_waitv(words, expect, N, deadline);
  assert_true(mp__os_now_ns() < deadline);
}

/* Without futex_waitv (a seccomp filter makes it fail with ENOSYS, as an
 * old kernel does), the wait falls back to slices on the first word. */
static int no_waitv_child(void *arg) {
  (void)arg;
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 449 /* futex_waitv */, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
    return 77; /* no seccomp here */
  uint32_t w[2] = {5, 6};
  uint32_t *words[2] = {&w[0], &w[1]};
  uint32_t expect[2] = {5, 7}; /* the second differs */
  int64_t far = ns_after(30);
  for (int k = 0; k < 2; k++) { /* the second call knows ENOSYS already */
    mp__os_futex_waitv(words, expect, 2, far);
    if (mp__os_now_ns() >= far)
      return 10 + k;
  }
  /* Nothing differs: it sleeps a slice (about 1 ms), not to the deadline. */
  expect[1] = 6;
  mp__os_futex_waitv(words, expect, 2, far);
  if (mp__os_now_ns() >= far)
    return 20;
  /* And it still honours a deadline shorter than a slice. */
  int64_t soon = ns_after(0.0002);
  while (mp__os_now_ns() < soon)
    mp__os_futex_waitv(words, expect, 2, soon);
  return 0;
}

static void futexv_falls_back_without_waitv(void **state) {
  (void)state;
  pid_t pid = mp_test_fork(no_waitv_child, NULL);
  int st = mp_test_wait(pid, mp_test_slack(20));
  assert_true(st != -1 && WIFEXITED(st));
  if (WEXITSTATUS(st) == 77)
    mp_test_skip("seccomp filters are not available here");
  assert_int_equal(WEXITSTATUS(st), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(wait_returns_at_once_when_rung),
    cmocka_unit_test(wait_times_out_at_deadline),
    cmocka_unit_test(wait_past_deadline_returns_false),
    cmocka_unit_test(one_bell_woken_by_thread),
    cmocka_unit_test(several_bells_woken_by_thread),
    cmocka_unit_test(one_bell_woken_by_process),
    cmocka_unit_test(several_bells_woken_by_process),
    cmocka_unit_test(wake_without_sleepers_rings_only),
    cmocka_unit_test(futexv_returns_when_a_word_differs),
    cmocka_unit_test(futexv_returns_at_deadline),
    cmocka_unit_test(futexv_zero_words_returns),
    cmocka_unit_test(futexv_watches_at_most_max),
    cmocka_unit_test(futexv_falls_back_without_waitv),
};

MP_TEST_MAIN(tests)
