/* test_audit.c - gaps found by auditing issues 8 (hardening) and 9 (a
 * newcomer's first day) against their words: each case names the sentence
 * it checks, and failed on the code before its fix.
 *
 * Forked children never call cmocka: they report through their exit
 * status. */
#define _GNU_SOURCE
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static int never(void *arg) {
  (void)arg;
  return 0;
}

/* Issue 9, point 4: "Refuse NaN with MP_EINVAL in every call that takes a
 * timeout." mp_condition_wait and mp_condition_wait_for took NaN for
 * "forever" and blocked. Run in a child, so a hang fails the case rather
 * than the suite. */
static int condition_nan_child(void *arg) {
  (void)arg;
  mp_condition *c;
  if (mp_condition_new(&c, NULL) != 0)
    return 10;
  if (mp_condition_acquire(c, 1) != 0)
    return 11;
  if (mp_condition_wait(c, NAN) != MP_EINVAL)
    return 12;
  if (strcmp(mp_error_detail(), "timeout is NaN") != 0)
    return 13;
  if (mp_condition_wait_for(c, never, NULL, NAN) != MP_EINVAL)
    return 14;
  if (strcmp(mp_error_detail(), "timeout is NaN") != 0)
    return 15;
  /* Still held, still usable. */
  if (mp_condition_wait(c, 0.01) != MP_ETIMEDOUT)
    return 16;
  if (mp_condition_release(c) != 0)
    return 17;
  mp_condition_free(c);
  return 0;
}

static void condition_wait_refuses_nan(void **state) {
  (void)state;
  pid_t pid = mp_test_fork(condition_nan_child, NULL);
  mp_test_wait_exit(pid, 0, mp_test_slack(5));
}


/* Issue 9, point 2: "Set [a per-thread detail] wherever a code alone is
 * ambiguous." A failure that leaves no detail leaves the previous
 * failure's, which mp_error_message then prints as this one's reason: a
 * detail that lies. Each bad call below follows a failure with another
 * detail, and must leave a detail of its own. */
static void plant_stale_detail(void) {
  assert_rc(mp_sleep(NAN), MP_EINVAL);
  assert_string_equal(mp_error_detail(), "seconds is NaN");
}

#define assert_own_detail(expr, code)                                        \
  do {                                                                       \
    plant_stale_detail();                                                    \
    assert_rc((expr), (code));                                               \
    if (strcmp(mp_error_detail(), "seconds is NaN") == 0 ||                  \
        mp_error_detail()[0] == '\0')                                        \
      fail_msg("%s left no detail of its own", #expr);                       \
  } while (0)

static void sync_failures_leave_their_own_detail(void **state) {
  (void)state;
  _Alignas(MP_SYNC_ALIGN) unsigned char mem[MP_CONDITION_SIZE + 8];
  void *odd = mem + 1; /* misaligned */
  mp_lock *lock;
  mp_rlock *rlock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  assert_rc(mp_rlock_new(&rlock, NULL), 0);
  mp_condition *c = NULL;

  assert_own_detail(mp_condition_new(NULL, NULL), MP_EINVAL);
  assert_own_detail(mp_condition_new(&c, &(mp_condition_opts){
                                              .lock = lock, .rlock = rlock}),
                    MP_EINVAL);
  assert_own_detail(
      mp_condition_new(&c, &(mp_condition_opts){.lock = (mp_lock *)rlock}),
      MP_EINVAL);
  assert_own_detail(
      mp_condition_new(&c, &(mp_condition_opts){.rlock = (mp_rlock *)lock}),
      MP_EINVAL);
  assert_own_detail(mp_condition_init(odd, NULL), MP_EINVAL);
  assert_own_detail(mp_condition_init(NULL, NULL), MP_EINVAL);
  assert_own_detail(mp_event_init(odd), MP_EINVAL);
  assert_own_detail(mp_event_init(NULL), MP_EINVAL);
  assert_own_detail(mp_semaphore_new(NULL, 1, NULL), MP_EINVAL);
  mp_semaphore *sem = NULL;
  assert_own_detail(mp_semaphore_new(&sem, (unsigned)INT32_MAX + 1u, NULL),
                    MP_EINVAL);
  assert_own_detail(mp_bounded_semaphore_new(&sem, (unsigned)INT32_MAX + 1u,
                                             NULL),
                    MP_EINVAL);
  assert_own_detail(mp_semaphore_init(odd, 1, 0), MP_EINVAL);
  assert_own_detail(mp_semaphore_init((mp_semaphore *)(void *)mem,
                                      (unsigned)INT32_MAX + 1u, 0),
                    MP_EINVAL);
  assert_own_detail(mp_resource_tracker_list(NULL, NULL), MP_EINVAL);
  /* A destroyed barrier is named as such (the detail said "s is NULL"). */
  _Alignas(MP_SYNC_ALIGN) unsigned char bmem[MP_BARRIER_SIZE];
  mp_barrier *bar = (mp_barrier *)(void *)bmem;
  assert_rc(mp_barrier_init(bar, 2, NULL), 0);
  assert_rc(mp_barrier_destroy(bar), 0);
  assert_own_detail(mp_barrier_reset(bar), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "not an initialised object"));
  assert_own_detail(mp_barrier_wait(bar, 0), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "not an initialised object"));
  assert_null(c);
  assert_null(sem);

  /* A condition whose lent lock was destroyed: every call names why. */
  _Alignas(MP_SYNC_ALIGN) unsigned char lmem[MP_LOCK_SIZE];
  mp_lock *lent = (mp_lock *)(void *)lmem;
  assert_rc(mp_lock_init(lent), 0);
  assert_rc(mp_condition_new(&c, &(mp_condition_opts){.lock = lent}), 0);
  assert_rc(mp_lock_destroy(lent), 0);
  assert_own_detail(mp_condition_acquire(c, 0), MP_EINVAL);
  assert_own_detail(mp_condition_release(c), MP_EINVAL);
  assert_own_detail(mp_condition_wait(c, 0), MP_EINVAL);
  assert_own_detail(mp_condition_notify(c, 1), MP_EINVAL);
  mp_condition_free(c);
  mp_lock_free(lock);
  mp_rlock_free(rlock);
}

/* The same for the other objects' calls whose MP_EINVAL had no detail. */
static void other_failures_leave_their_own_detail(void **state) {
  (void)state;
  mp_value *v;
  assert_rc(mp_value_new(&v, 'd', NULL, NULL), 0);
  int64_t i64;
  assert_own_detail(mp_value_get_int(v, &i64), MP_EINVAL);
  assert_own_detail(mp_value_set_int(v, 1), MP_EINVAL);
  mp_value_free(v);
  assert_rc(mp_value_new(&v, 'i', NULL, NULL), 0);
  double d;
  assert_own_detail(mp_value_get_double(v, &d), MP_EINVAL);
  mp_value_free(v);
  mp_lock *lock;
  assert_rc(mp_lock_new(&lock, NULL), 0);
  mp_value *v2 = NULL;
  assert_own_detail(
      mp_value_new(&v2, 'i', NULL, &(mp_value_opts){.lock = lock, .raw = 1}),
      MP_EINVAL);
  assert_null(v2);
  mp_lock_free(lock);
  mp_array *a;
  assert_rc(mp_array_new(&a, 'i', 4, NULL, NULL), 0);
  assert_own_detail((int)mp_array_get_slice(a, 0, 2, NULL, 8), MP_EINVAL);
  mp_array_free(a);

  assert_own_detail(mp_pipe(NULL, NULL, 1), MP_EINVAL);
  mp_connection *c1, *c2;
  assert_rc(mp_pipe(&c1, &c2, 1), 0);
  assert_own_detail(mp_connection_recv_bytes(c1, NULL, 8, NULL), MP_EINVAL);
  mp_connection_free(c1);
  mp_connection_free(c2);
  assert_own_detail((int)mp_connection_wait(NULL, 1, 0, NULL), MP_EINVAL);
  mp_waitable bad = {.type = MP_WAIT_FD, .fd = -1};
  size_t ready[1];
  assert_own_detail((int)mp_connection_wait(&bad, 1, 0, ready), MP_EINVAL);
  assert_own_detail((int)mp_thread_enumerate(NULL, 1), MP_EINVAL);
  assert_own_detail((int)mp_active_children(NULL, 1), MP_EINVAL);
  assert_own_detail(mp_process_set_name(NULL, "x"), MP_EINVAL);
  assert_own_detail(mp_thread_set_name(NULL, "x"), MP_EINVAL);
}

/* The queue, listener and address calls whose MP_EINVAL had no detail. */
static void queue_and_net_failures_leave_their_own_detail(void **state) {
  (void)state;
  mp_queue *q;
  assert_rc(mp_queue_new(&q, NULL), 0);
  assert_own_detail(mp_queue_new(NULL, NULL), MP_EINVAL);
  assert_own_detail(mp_queue_open(NULL, "x"), MP_EINVAL);
  assert_own_detail(mp_queue_put(q, NULL, 5, 0), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "buf == NULL"));
  size_t len;
  assert_own_detail(mp_queue_get(q, NULL, 8, &len, 0), MP_EINVAL);
  assert_own_detail(mp_queue_get_priority(q, NULL, NULL, 0, &len, 0),
                    MP_EINVAL);
  assert_own_detail(mp_queue_put_str(q, NULL, 0), MP_EINVAL);
  assert_own_detail(mp_queue_destroy(q), MP_EINVAL);
  assert_string_equal(mp_error_detail(),
                      "not a queue made in place (mp_queue_init)");
  assert_own_detail((int)mp_queue_size_for(&(mp_queue_opts){.name = "x"}),
                    MP_EINVAL);
  mp_queue_free(q);
  assert_own_detail(mp_listener_close(NULL), MP_EINVAL);
  assert_own_detail(mp_listener_fileno(NULL), MP_EINVAL);
  mp_listener *l = NULL;
  assert_own_detail(mp_listener_new(&l, "127.0.0.1:99999", NULL), MP_EINVAL);
  assert_non_null(strstr(mp_error_detail(), "127.0.0.1:99999"));
  assert_null(l);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(condition_wait_refuses_nan),
    cmocka_unit_test(sync_failures_leave_their_own_detail),
    cmocka_unit_test(other_failures_leave_their_own_detail),
    cmocka_unit_test(queue_and_net_failures_leave_their_own_detail),
};

MP_TEST_MAIN(tests)
