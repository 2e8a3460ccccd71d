/* guide_5.c - one time budget spent across several blocking calls, and
 * the usual way to handle a lock's result. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <time.h>

#include <multiproc.h>

struct account {
  long balance;
  int valid; /* cleared while an update is half done */
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The time left until deadline; never negative, which would mean forever. */
static double left(double deadline) {
  double t = deadline - now();
  return t > 0 ? t : 0;
}

static void repair(struct account *a) {
  if (!a->valid) {
    a->balance = 0; /* or recompute it from a journal */
    a->valid = 1;
  }
}

static int deposit(mp_lock *lock, mp_event *open, struct account *a,
                   long amount, double budget) {
  double deadline = now() + budget;
  int rc = mp_event_wait(open, left(deadline));
  if (rc != 0)
    return rc;
  rc = mp_lock_acquire(lock, left(deadline));
  if (rc == MP_EOWNERDEAD) { /* we hold the lock; the data may be torn */
    repair(a);
    rc = 0;
  }
  if (rc != 0)
    return rc;
  a->valid = 0;
  a->balance += amount;
  a->valid = 1;
  mp_lock_release(lock);
  return 0;
}

int main(void) {
  mp_lock *lock;
  mp_event *open;
  struct account acct = {.balance = 0, .valid = 1};
  if (mp_lock_new(&lock, NULL) != 0 || mp_event_new(&open, NULL) != 0)
    return 1;
  int rc = deposit(lock, open, &acct, 10, 0.2);
  printf("before opening: %s\n", mp_error_message(rc));
  mp_event_set(open);
  int rc2 = deposit(lock, open, &acct, 10, 2.0);
  printf("after opening: %s, balance %ld\n", mp_err_name(rc2), acct.balance);
  mp_event_free(open);
  mp_lock_free(lock);
  return rc == MP_ETIMEDOUT && rc2 == 0 ? 0 : 1;
}
