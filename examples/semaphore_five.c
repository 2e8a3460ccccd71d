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
 * The program also counts how many threads hold the semaphore at once
 * and fails if that ever exceeds five.
 *
 * Usage: semaphore_five [--quick]   (--quick: hold it 0.2 s, not 2 s) */
#include <multiproc.h>
#include <stdio.h>

static mp_semaphore *semaphore;
static double hold = 2.0;    /* time.sleep(2); 0.2 with --quick */
static int inside, too_many; /* holders now; set if ever over five */

static void func(void *arg) {
  (void)arg;
  MP_CHECK(mp_semaphore_acquire(semaphore, MP_FOREVER));
  if (__atomic_add_fetch(&inside, 1, __ATOMIC_SEQ_CST) > 5)
    too_many = 1;
  printf("%s get semaphore\n", mp_thread_name(mp_current_thread()));
  mp_sleep(hold);
  __atomic_sub_fetch(&inside, 1, __ATOMIC_SEQ_CST);
  MP_CHECK(mp_semaphore_release(semaphore));
}

int main(int argc, char **argv) {
  (void)argv;
  hold = argc > 1 ? 0.2 : 2.0;
  MP_CHECK(mp_semaphore_new(&semaphore, 5, NULL));
  MP_CHECK(mp_thread_start_join_n(20, func, NULL, NULL)); /* and join */
  printf("never more than five at once: %s\n", too_many ? "NO" : "yes");
  return too_many;
}
