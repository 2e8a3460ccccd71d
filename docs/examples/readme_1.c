/* readme_1.c - Python's "hello world" with a Lock, in C:
 *
 *   def f(l, i):
 *       with l:
 *           print('hello world', i)
 *   lock = Lock()
 *   for num in range(10):
 *       Process(target=f, args=(lock, num)).start()
 */
#include <stdio.h>

#include <multiproc.h>

static mp_lock *lock; /* created before the children: they share it */

static int f(void *arg) {
  int i = *(const int *)arg;
  int rc = mp_lock_acquire(lock, MP_FOREVER);
  if (rc != 0 && rc != MP_EOWNERDEAD)
    return 1;
  printf("hello world %d\n", i);
  fflush(stdout);
  mp_lock_release(lock);
  return 0;
}

int main(void) {
  mp_process *p[10];
  int num[10];
  if (mp_lock_new(&lock, NULL) != 0)
    return 1;
  for (int i = 0; i < 10; i++) {
    num[i] = i;
    if (mp_process_new(&p[i], f, &num[i], NULL) != 0 ||
        mp_process_start(p[i]) != 0)
      return 1;
  }
  for (int i = 0; i < 10; i++) {
    mp_process_join(p[i], MP_FOREVER);
    mp_process_free(p[i]);
  }
  mp_lock_free(lock);
  return 0;
}
