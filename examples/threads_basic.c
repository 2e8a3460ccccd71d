/* threads_basic.c - creating threads, the two ways of the seed (a target
 * function, or a "subclass" whose run is overridden), then join and daemon.
 *
 * It mirrors these Python programs (seed 001, "threading模块"):
 *
 *   import threading, time
 *   def countNum(n):
 *       print("running on number:%s" % n)
 *       time.sleep(3)
 *   if __name__ == '__main__':
 *       t1 = threading.Thread(target=countNum, args=(23,))
 *       t2 = threading.Thread(target=countNum, args=(34,))
 *       t1.start()
 *       t2.start()
 *       print("ending!")
 *
 *   class MyThread(threading.Thread):
 *       def __init__(self, num):
 *           threading.Thread.__init__(self)
 *           self.num = num
 *       def run(self):
 *           print("running on number:%s" % self.num)
 *           time.sleep(3)
 *   t1 = MyThread(56); t2 = MyThread(78)
 *   t1.start(); t2.start()
 *   print("ending")
 *
 *   def Music(name):
 *       print("Begin listening to {name}. {time}".format(name=name,
 * time=ctime())) sleep(3) print("end listening {time}".format(time=ctime()))
 *   def Blog(title):
 *       print("Begin recording the {title}. {time}".format(title=title,
 * time=ctime())) sleep(5) print('end recording {time}'.format(time=ctime())) t1
 * = threading.Thread(target=Music, args=('FILL ME',)) t2 =
 * threading.Thread(target=Blog, args=('',)) # t2.setDaemon(True); for t in
 * threads: t.start(); t1.join() print("all over %s" % ctime())
 *
 * In C the "subclass" is a run callback that receives the thread object;
 * its extra fields travel as userdata. As in Python, a program that returns
 * from main waits for its non-daemonic threads, and does not wait for
 * daemonic ones.
 *
 * Usage: threads_basic [--quick]   (--quick: sleeps ten times shorter) */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double scale = 1.0; /* 0.1 with --quick */

static void sleep_s(double seconds) {
  seconds *= scale;
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

/* now_text is Python's time.ctime() without the newline. */
static const char *now_text(char *buf) {
  time_t now = time(NULL);
  ctime_r(&now, buf);
  buf[strcspn(buf, "\n")] = '\0';
  return buf;
}

/* ---- Thread(target=countNum, args=(23,)) --------------------------------- */

static void countNum(void *arg) {
  int n = *(const int *)arg;
  printf("running on number:%d\n", n);
  fflush(stdout);
  sleep_s(3);
}

static void target_style(void) {
  static const int a = 23, b = 34;
  mp_thread *t1, *t2;
  MP_CHECK(mp_thread_new(&t1, countNum, (void *)&a, NULL));
  MP_CHECK(mp_thread_new(&t2, countNum, (void *)&b, NULL));
  MP_CHECK(mp_thread_start(t1));
  MP_CHECK(mp_thread_start(t2));
  printf("ending!\n");
  fflush(stdout);
  /* Python's program would end here and wait for both threads at exit;
   * we join them so the next part starts after them. */
  MP_CHECK(mp_thread_join(t1, MP_FOREVER));
  MP_CHECK(mp_thread_join(t2, MP_FOREVER));
  mp_thread_free(t1);
  mp_thread_free(t2);
}

/* ---- class MyThread(threading.Thread) ------------------------------------ */

typedef struct my_thread {
  int num; /* self.num */
} my_thread;

static void my_thread_run(mp_thread *self) {
  const my_thread *me = mp_thread_userdata(self);
  printf("running on number:%d (%s)\n", me->num, mp_thread_name(self));
  fflush(stdout);
  sleep_s(3);
}

static mp_thread *my_thread_new(my_thread *me) {
  mp_thread_opts opts = {.run = my_thread_run, .userdata = me};
  mp_thread *t;
  MP_CHECK(mp_thread_new(&t, NULL, NULL, &opts));
  return t;
}

static void subclass_style(void) {
  my_thread a = {56}, b = {78};
  mp_thread *t1 = my_thread_new(&a), *t2 = my_thread_new(&b);
  MP_CHECK(mp_thread_start(t1));
  MP_CHECK(mp_thread_start(t2));
  printf("ending\n");
  fflush(stdout);
  MP_CHECK(mp_thread_join(t1, MP_FOREVER));
  MP_CHECK(mp_thread_join(t2, MP_FOREVER));
  mp_thread_free(t1);
  mp_thread_free(t2);
}

/* ---- join() and setDaemon(True) ------------------------------------------ */

static void Music(void *arg) {
  char buf[32];
  printf("Begin listening to %s. %s\n", (const char *)arg, now_text(buf));
  fflush(stdout);
  sleep_s(3);
  printf("end listening %s\n", now_text(buf));
  fflush(stdout);
}

static void Blog(void *arg) {
  char buf[32];
  printf("Begin recording the %s. %s\n", (const char *)arg, now_text(buf));
  fflush(stdout);
  sleep_s(5);
  printf("end recording %s\n", now_text(buf));
  fflush(stdout);
}

/* One round of the seed's puzzle: start both, then join as told. */
static void music_and_blog(int blog_daemon, int join_music, int join_blog) {
  char buf[32];
  mp_thread *t1, *t2;
  mp_thread_opts blog_opts = {.daemon = blog_daemon ? 1 : 0};
  MP_CHECK(mp_thread_new(&t1, Music, "FILL ME", NULL));
  MP_CHECK(mp_thread_new(&t2, Blog, "", &blog_opts));
  MP_CHECK(mp_thread_start(t1));
  MP_CHECK(mp_thread_start(t2));
  if (join_music)
    MP_CHECK(mp_thread_join(t1, MP_FOREVER));
  if (join_blog)
    MP_CHECK(mp_thread_join(t2, MP_FOREVER));
  printf("all over %s\n", now_text(buf));
  fflush(stdout);
  /* Freeing a running thread detaches it: it goes on, and a non-daemonic
   * one is still waited for when the program exits. */
  mp_thread_free(t1);
  mp_thread_free(t2);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    scale = 0.1;

  printf("== Thread(target=countNum, args=(23,)) and (34,) ==\n");
  target_style();

  printf("\n== class MyThread(threading.Thread) with run() overridden ==\n");
  subclass_style();

  printf("\n== t1.join(); t2.join(): 'all over' after both ==\n");
  music_and_blog(0, 1, 1);

  printf("\n== t2.setDaemon(True); t1.join(): 'all over' after Music, and the "
         "program\n   ends without waiting for the daemonic Blog "
         "(no 'end recording') ==\n");
  fflush(stdout);
  music_and_blog(1, 1, 0);
  /* Returning from main: the library waits for non-daemonic threads (none
   * is left) and not for the daemonic Blog, which dies with the program. */
  return 0;
}
