/* lock_counter.c - 100 workers each take one from num = 100, reading num,
 * sleeping, then writing num - 1 under a lock, so num ends at 0. Shown
 * with threads, then with processes sharing num in shared memory, guarded
 * by an mp_lock placed inside the shared struct.
 *
 * It mirrors this Python program (seed 001, "2.4 互斥锁 (Lock)"):
 *
 *   import threading, time
 *   s = time.time()
 *   num = 100
 *   lock = threading.Lock()
 *   def sub():
 *       global num
 *       lock.acquire()
 *       tmp = num
 *       time.sleep(0.1)
 *       num = tmp - 1
 *       lock.release()
 *   t = {}
 *   for i in range(100):
 *       t[i] = threading.Thread(target=sub)
 *       t[i].start()
 *   for i in range(100):
 *       t[i].join()
 *   print("num:%s,time%s" % (num, time.time() - s))
 *
 * (Without the lock, every thread reads 100 before any writes and num ends
 * at 99, the seed's case (4).)
 *
 * Usage: lock_counter [--quick]   (--quick: sleep 1 ms instead of 100) */
#include <multiproc.h>
#include <stdio.h>

static double pause_s = 0.1; /* time.sleep(0.1) between read and write */

/* num and its lock in one struct in shared memory: the threads of this
 * process and, in the second round, 100 forked processes all use it. */
static struct counter {
  mp_lock lock;
  long num;
} * c;

static int sub(void *arg) {
  MP_CHECK(mp_lock_acquire(&c->lock, MP_FOREVER));
  long tmp = c->num;
  mp_sleep(pause_s);
  c->num = tmp - 1;
  MP_CHECK(mp_lock_release(&c->lock));
  return arg != NULL; /* (exit status 0 for a process) */
}
static void sub_thread(void *arg) {
  sub(arg);
}

int main(int argc, char **argv) {
  (void)argv;
  pause_s = argc > 1 ? 0.001 : 0.1;
  mp_shared_memory *shm; /* unlinked at once: forked children inherit it */
  MP_CHECK(mp_shared_memory_new(&shm, NULL, sizeof *c, NULL));
  MP_CHECK(mp_shared_memory_unlink(shm));
  c = mp_shared_memory_buf(shm);
  MP_CHECK(mp_lock_init(&c->lock)); /* the lock inside the shared struct */
  for (int round = 0; round < 2; round++) { /* threads, then processes */
    double s = mp_monotonic();
    c->num = 100;
    /* 100 started, then all joined */
    MP_CHECK(round == 0 ? mp_thread_start_join_n(100, sub_thread, NULL, NULL)
                        : mp_process_start_join_n(100, sub, NULL, NULL));
    printf("%s num:%ld,time%f\n",
           round == 0 ? "threads:  " : "processes:", c->num,
           mp_monotonic() - s);
    if (c->num != 0)
      return 1;
  }
  MP_CHECK(mp_lock_destroy(&c->lock));
  mp_shared_memory_free(shm);
  return 0;
}
