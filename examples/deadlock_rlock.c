/* deadlock_rlock.c - the seed's two-lock deadlock, shown safely, and its
 * RLock fix.
 *
 * It mirrors this Python program (seed 001, "2.5 死锁与递归锁"):
 *
 *   import threading, time
 *   mutexA = threading.Lock()
 *   mutexB = threading.Lock()
 *   class MyThread(threading.Thread):
 *       def __init__(self):
 *           threading.Thread.__init__(self)
 *       def run(self):
 *           self.fun1()
 *           self.fun2()
 *       def fun1(self):
 *           mutexA.acquire()
 *           print("I am %s , get res: %s---%s" % (self.name, "ResA",
 * time.time())) mutexB.acquire() print("I am %s , get res: %s---%s" %
 * (self.name, "ResB", time.time())) mutexB.release() mutexA.release() def
 * fun2(self): mutexB.acquire() print("I am %s , get res: %s---%s" % (self.name,
 * "ResB", time.time())) time.sleep(0.2) mutexA.acquire() print("I am %s , get
 * res: %s---%s" % (self.name, "ResA", time.time())) mutexA.release()
 *           mutexB.release()
 *   if __name__ == "__main__":
 *       print("start---------------------------%s" % time.time())
 *       for i in range(0, 10):
 *           my_thread = MyThread()
 *           my_thread.start()
 *
 * and the fix the seed gives: one re-entrant lock for both resources,
 *   mutexA = mutexB = threading.RLock()
 *
 * Python's first program hangs for ever: one thread holds ResB (in fun2)
 * and wants ResA, while another holds ResA (in fun1) and wants ResB. Here
 * the second acquire of each function has a timeout: every wait for the
 * second lock while holding the first is a wait on a thread that waits for
 * us, so a timeout there is the deadlock. The thread reports it, lets go
 * of what it holds and gives up, which frees the others.
 *
 * Usage: deadlock_rlock [--quick]   (--quick: shorter sleep and timeout) */
#include <multiproc.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS 10

static double hold_s = 0.2;    /* fun2's time.sleep(0.2) */
static double timeout_s = 2.0; /* how long a second acquire may wait */

static void sleep_s(double seconds) {
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

/* Python's time.time(). */
static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The two resources: two Locks, or one RLock standing for both. */
typedef struct resources {
  mp_lock *mutexA, *mutexB;
  mp_rlock *rlock;       /* set: mutexA = mutexB = RLock() */
  _Atomic int deadlocks; /* threads that found themselves deadlocked */
} resources;

enum { RES_A, RES_B };
static const char *const res_name[] = {"ResA", "ResB"};

/* acquire takes resource which; a second lock (holding the other one) may
 * wait only timeout_s. Returns 0 or MP_ETIMEDOUT. */
static int acquire(resources *r, int which, int second) {
  if (r->rlock != NULL)
    return MP_CHECK(mp_rlock_acquire(r->rlock, MP_FOREVER));
  mp_lock *l = which == RES_A ? r->mutexA : r->mutexB;
  int rc = mp_lock_acquire(l, second ? timeout_s : MP_FOREVER);
  if (rc != MP_ETIMEDOUT)
    MP_CHECK(rc);
  return rc;
}

static void release(resources *r, int which) {
  if (r->rlock != NULL)
    MP_CHECK(mp_rlock_release(r->rlock));
  else
    MP_CHECK(mp_lock_release(which == RES_A ? r->mutexA : r->mutexB));
}

static void got(mp_thread *self, int which) {
  printf("I am %s , get res: %s---%f\n", mp_thread_name(self), res_name[which],
         wall_s());
  fflush(stdout);
}

/* take_second acquires `want` while holding `held`; on a timeout it reports
 * the deadlock and lets go of `held`. Returns 0 when it got `want`. */
static int take_second(mp_thread *self, resources *r, int held, int want) {
  if (acquire(r, want, 1) == 0)
    return 0;
  printf("I am %s , hold %s and wait for %s: no progress in %.1f s -- "
         "deadlock (Python hangs here); letting go of %s\n",
         mp_thread_name(self), res_name[held], res_name[want], timeout_s,
         res_name[held]);
  fflush(stdout);
  atomic_fetch_add(&r->deadlocks, 1);
  release(r, held);
  return -1;
}

static int fun1(mp_thread *self, resources *r) {
  acquire(r, RES_A, 0);
  got(self, RES_A);
  if (take_second(self, r, RES_A, RES_B) != 0)
    return -1;
  got(self, RES_B);
  release(r, RES_B);
  release(r, RES_A);
  return 0;
}

static int fun2(mp_thread *self, resources *r) {
  acquire(r, RES_B, 0);
  got(self, RES_B);
  sleep_s(hold_s);
  if (take_second(self, r, RES_B, RES_A) != 0)
    return -1;
  got(self, RES_A);
  release(r, RES_A);
  release(r, RES_B);
  return 0;
}

/* MyThread.run */
static void my_thread_run(mp_thread *self) {
  resources *r = mp_thread_userdata(self);
  if (fun1(self, r) == 0)
    fun2(self, r);
}

static int run_ten(resources *r) {
  mp_thread *t[THREADS];
  printf("start---------------------------%f\n", wall_s());
  fflush(stdout);
  mp_thread_opts opts = {.run = my_thread_run, .userdata = r};
  for (int i = 0; i < THREADS; i++) {
    MP_CHECK(mp_thread_new(&t[i], NULL, NULL, &opts));
    MP_CHECK(mp_thread_start(t[i]));
  }
  for (int i = 0; i < THREADS; i++) {
    MP_CHECK(mp_thread_join(t[i], MP_FOREVER));
    mp_thread_free(t[i]);
  }
  return atomic_load(&r->deadlocks);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
    hold_s = 0.02;
    timeout_s = 0.5;
  }

  printf("== mutexA, mutexB = Lock(), Lock(): ten threads run fun1 then fun2 "
         "==\n");
  resources two = {0};
  MP_CHECK(mp_lock_new(&two.mutexA, NULL));
  MP_CHECK(mp_lock_new(&two.mutexB, NULL));
  int deadlocks = run_ten(&two);
  if (deadlocks > 0)
    printf("-> %d time(s) a thread held one lock and waited for the other "
           "for ever: the\n   Python program deadlocks here.\n",
           deadlocks);
  else
    printf("-> the threads happened not to interleave this time (the "
           "deadlock needs one\n   thread in fun2 while another is in fun1)."
           "\n");
  mp_lock_free(two.mutexA);
  mp_lock_free(two.mutexB);

  printf("\n== mutexA = mutexB = RLock(): the same threads all finish ==\n");
  resources one = {0};
  MP_CHECK(mp_rlock_new(&one.rlock, NULL));
  deadlocks = run_ten(&one);
  mp_rlock_free(one.rlock);
  if (deadlocks != 0) {
    fprintf(stderr, "deadlock_rlock: the RLock version must not deadlock\n");
    return 1;
  }
  printf("-> all %d threads finished fun1 and fun2: no deadlock\n", THREADS);
  return 0;
}
