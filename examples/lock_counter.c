/* lock_counter.c - 100 workers each take one from num = 100, reading num,
 * sleeping, then writing num - 1: without a lock updates are lost, with
 * one num ends at 0. Shown with threads, and with processes sharing num in
 * shared memory, guarded by an mp_lock placed inside the shared struct.
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
 * and its case (4), the same without the lock, where every thread reads
 * 100 before any writes and num ends at 99.
 *
 * Usage: lock_counter [--quick]   (--quick: sleep 1 ms instead of 100) */
#include <multiproc.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WORKERS 100

static double pause_s = 0.1; /* time.sleep(0.1) between read and write */

static void sleep_s(double seconds) {
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- threads ------------------------------------------------------------- */

/* num is atomic only so that the unlocked case is a well-defined race in C
 * (lost updates, not undefined behaviour); each load and store is still
 * separate, exactly like Python's tmp = num ... num = tmp - 1. */
static _Atomic long num;
static mp_lock *lock;

static void sub_unlocked(void *arg) {
  (void)arg;
  long tmp = atomic_load(&num);
  sleep_s(pause_s);
  atomic_store(&num, tmp - 1);
}

static void sub(void *arg) {
  (void)arg;
  MP_CHECK(mp_lock_acquire(lock, MP_FOREVER));
  long tmp = atomic_load(&num);
  sleep_s(pause_s);
  atomic_store(&num, tmp - 1);
  MP_CHECK(mp_lock_release(lock));
}

static long run_threads(mp_thread_target_fn fn) {
  mp_thread *t[WORKERS];
  double s = now_s();
  atomic_store(&num, 100);
  for (int i = 0; i < WORKERS; i++) {
    MP_CHECK(mp_thread_new(&t[i], fn, NULL, NULL));
    MP_CHECK(mp_thread_start(t[i]));
  }
  for (int i = 0; i < WORKERS; i++) {
    MP_CHECK(mp_thread_join(t[i], MP_FOREVER));
    mp_thread_free(t[i]);
  }
  long result = atomic_load(&num);
  printf("num:%ld,time%f\n", result, now_s() - s);
  return result;
}

/* ---- processes ----------------------------------------------------------- */

/* The shared struct: the lock lives in place, next to the data it guards.
 * Positions, not pointers, so every process can use its own mapping. */
typedef struct counter {
  mp_lock lock;
  long num;
} counter;

static int sub_process(void *arg) {
  counter *c = arg;
  MP_CHECK(mp_lock_acquire(&c->lock, MP_FOREVER));
  long tmp = c->num;
  sleep_s(pause_s);
  c->num = tmp - 1;
  MP_CHECK(mp_lock_release(&c->lock));
  return 0;
}

static long run_processes(void) {
  /* A block of shared memory (Python's shared_memory.SharedMemory). Forked
   * children inherit the mapping, so its name can go at once: nothing is
   * left in /dev/shm, whatever happens next. */
  mp_shared_memory *shm;
  MP_CHECK(mp_shared_memory_new(&shm, NULL, sizeof(counter), NULL));
  MP_CHECK(mp_shared_memory_unlink(shm));
  counter *c = mp_shared_memory_buf(shm);
  MP_CHECK(mp_lock_init(&c->lock));
  c->num = 100;

  mp_process *p[WORKERS];
  double s = now_s();
  for (int i = 0; i < WORKERS; i++) {
    MP_CHECK(mp_process_new(&p[i], sub_process, c, NULL));
    MP_CHECK(mp_process_start(p[i]));
  }
  int failed = 0;
  for (int i = 0; i < WORKERS; i++) {
    int code = -1;
    MP_CHECK(mp_process_join(p[i], MP_FOREVER));
    MP_CHECK(mp_process_exitcode(p[i], &code));
    failed += code != 0;
    mp_process_free(p[i]);
  }
  long result = c->num;
  printf("num:%ld,time%f\n", result, now_s() - s);
  if (failed != 0)
    printf("   %d processes failed\n", failed);
  MP_CHECK(mp_lock_destroy(&c->lock));
  mp_shared_memory_free(shm);
  return failed == 0 ? result : -1;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    pause_s = 0.001;

  printf("== 100 threads, no lock: updates are lost (Python prints 99) ==\n");
  long racy = run_threads(sub_unlocked);
  if (racy != 0)
    printf("   %ld of the 100 decrements were lost\n", racy);

  printf("\n== 100 threads, with lock.acquire()/release(): num ends at 0 ==\n");
  MP_CHECK(mp_lock_new(&lock, NULL));
  long threads = run_threads(sub);
  mp_lock_free(lock);

  printf("\n== 100 processes, num in shared memory, the lock inside the same "
         "struct ==\n");
  long processes = run_processes();

  if (threads != 0 || processes != 0) {
    fprintf(stderr,
            "lock_counter: expected num 0, got %ld (threads), %ld "
            "(processes)\n",
            threads, processes);
    return 1;
  }
  return 0;
}
