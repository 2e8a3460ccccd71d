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
#include <stdio.h>

static double hold = 0.2, timeout = 2.0; /* 0.02 and 0.5 with --quick */
static const char *res_name[] = {"ResA", "ResB"};
/* mutexA, mutexB: two locks (RLocks here, which behave as the seed's two
 * Locks since no thread takes one twice), or one RLock standing for both. */
static mp_rlock *res[2];
static int deadlocks;

/* take is fun1 (A then B) or fun2 (B, sleep, then A). The second wait is
 * bounded: running out of it while holding the first lock is the
 * deadlock, where Python hangs for ever; the thread lets go and gives up. */
static int take(mp_thread *self, int first, int second, double pause) {
  MP_CHECK(mp_rlock_acquire(res[first], MP_FOREVER));
  printf("I am %s , get res: %s---%f\n", mp_thread_name(self), res_name[first],
         mp_monotonic());
  mp_sleep(pause);
  int rc = mp_rlock_acquire(res[second], timeout);
  if (rc == MP_ETIMEDOUT) {
    printf("I am %s , hold %s and wait for %s: deadlock (Python hangs here)\n",
           mp_thread_name(self), res_name[first], res_name[second]);
    __atomic_add_fetch(&deadlocks, 1, __ATOMIC_SEQ_CST);
  } else {
    MP_CHECK(rc);
    printf("I am %s , get res: %s---%f\n", mp_thread_name(self),
           res_name[second], mp_monotonic());
    MP_CHECK(mp_rlock_release(res[second]));
  }
  MP_CHECK(mp_rlock_release(res[first]));
  return rc;
}

static void my_thread_run(mp_thread *self) { /* MyThread.run */
  if (take(self, 0, 1, 0) == 0)
    take(self, 1, 0, hold);
}

int main(int argc, char **argv) {
  (void)argv;
  hold = argc > 1 ? 0.02 : 0.2;
  timeout = argc > 1 ? 0.5 : 2.0;
  for (int round = 0; round < 2; round++) {
    printf(round
               ? "\n== mutexA = mutexB = RLock(): no deadlock ==\n"
               : "== mutexA, mutexB = two locks: fun1 and fun2 deadlock ==\n");
    MP_CHECK(mp_rlock_new(&res[0], NULL));
    res[1] = res[0];
    if (round == 0)
      MP_CHECK(mp_rlock_new(&res[1], NULL));
    deadlocks = 0;
    printf("start---------------------------%f\n", mp_monotonic());
    mp_thread *t[10];
    for (int i = 0; i < 10; i++) {
      MP_CHECK(mp_thread_new(&t[i], NULL, NULL,
                             &(mp_thread_opts){.run = my_thread_run}));
      MP_CHECK(mp_thread_start(t[i]));
    }
    for (int i = 0; i < 10; i++) {
      MP_CHECK(mp_thread_join(t[i], MP_FOREVER));
      mp_thread_free(t[i]);
    }
    printf("-> %d time(s) a thread held one lock and waited for ever for the "
           "other\n",
           deadlocks);
    if (round == 0)
      mp_rlock_free(res[1]);
    mp_rlock_free(res[0]);
    if (round == 1 && deadlocks != 0)
      return 1;
  }
  return 0;
}
