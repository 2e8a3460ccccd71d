/* thread_1.c - Thread(target=countNum, args=(23,)) twice; names,
 * current_thread, enumerate, join. */
#include <stdio.h>

#include <multiproc.h>

static void count_num(void *arg) {
  int n = *(const int *)arg;
  long sum = 0;
  for (int i = 1; i <= n; i++)
    sum += i;
  printf("%s: 1 + ... + %d = %ld\n", mp_thread_name(mp_current_thread()), n,
         sum);
}

int main(void) {
  int n = 23;
  mp_thread *t[2];
  for (int i = 0; i < 2; i++)
    if (mp_thread_new(&t[i], count_num, &n, NULL) != 0 ||
        mp_thread_start(t[i]) != 0)
      return 1;
  int rc = 0;
  for (int i = 0; i < 2; i++) {
    if (mp_thread_join(t[i], 10.0) != 0)
      rc = 1;
    mp_thread_free(t[i]);
  }
  printf("after join, %s is the only live thread: %d\n",
         mp_thread_name(mp_main_thread()), mp_thread_active_count() == 1);
  return rc;
}
