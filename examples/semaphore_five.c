/* semaphore_five.c - Semaphore(5) and twenty threads: the timestamps show
 * them getting in five at a time.
 *
 * It mirrors this Python program (seed 001, "2.7 Semaphore(信号量)"):
 *
 *   import threading, time
 *   semaphore = threading.Semaphore(5)
 *   def func():
 *       if semaphore.acquire():
 *           print(threading.currentThread().getName() + ' get semaphore')
 *           time.sleep(2)
 *           semaphore.release()
 *   for i in range(20):
 *       t1 = threading.Thread(target=func)
 *       t1.start()
 *
 * Each line carries the seconds since the start, so the groups of five are
 * visible; the program also counts how many threads hold the semaphore at
 * once and fails if that ever exceeds five.
 *
 * Usage: semaphore_five [--quick]   (--quick: hold it 0.2 s, not 2 s) */
#include <multiproc.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS 20
#define SLOTS 5

static double hold_s = 2.0; /* time.sleep(2) */
static double start_s;
static mp_semaphore *semaphore;
static _Atomic int inside, most_inside;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double seconds) {
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

static void func(void *arg) {
  (void)arg;
  if (mp_semaphore_acquire(semaphore, MP_FOREVER) == 0) {
    int n = atomic_fetch_add(&inside, 1) + 1;
    int most = atomic_load(&most_inside);
    while (n > most && !atomic_compare_exchange_weak(&most_inside, &most, n))
      ;
    printf("[%5.2fs] %s get semaphore\n", now_s() - start_s,
           mp_thread_name(mp_current_thread()));
    fflush(stdout);
    sleep_s(hold_s);
    atomic_fetch_sub(&inside, 1);
    MP_CHECK(mp_semaphore_release(semaphore));
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    hold_s = 0.2;

  MP_CHECK(mp_semaphore_new(&semaphore, SLOTS, NULL));
  start_s = now_s();
  mp_thread *t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    MP_CHECK(mp_thread_new(&t[i], func, NULL, NULL));
    MP_CHECK(mp_thread_start(t[i]));
  }
  /* Python's program just ends and is waited for; we join to report. */
  for (int i = 0; i < THREADS; i++) {
    MP_CHECK(mp_thread_join(t[i], MP_FOREVER));
    mp_thread_free(t[i]);
  }
  mp_semaphore_free(semaphore);
  int most = atomic_load(&most_inside);
  printf("at most %d threads held the semaphore at once (limit %d)\n", most,
         SLOTS);
  return most <= SLOTS ? 0 : 1;
}
