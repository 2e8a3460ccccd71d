/* event_workers.c - workers that wait for an Event before they start: the
 * main thread checks that "redis" is up, then sets the event.
 *
 * It mirrors these Python programs (seed 001, "2.6 Event对象"):
 *
 *   import threading, time, logging
 *   logging.basicConfig(level=logging.DEBUG,
 *                       format='(%(threadName)-10s) %(message)s',)
 *   def worker(event):
 *       logging.debug('Waiting for redis ready...')
 *       event.wait()
 *       logging.debug('redis ready, and connect to redis server and do some
 * work [%s]', time.ctime()) time.sleep(1) def main(): readis_ready =
 * threading.Event() t1 = threading.Thread(target=worker, args=(readis_ready,),
 * name='t1') t1.start() t2 = threading.Thread(target=worker,
 * args=(readis_ready,), name='t2') t2.start() logging.debug('first of all,
 * check redis server, make sure it is OK, and then trigger the redis ready
 * event') time.sleep(3) # simulate the check progress readis_ready.set()
 *
 * and the variant whose workers keep reporting while they wait:
 *
 *   def worker(event):
 *       while not event.is_set():
 *           logging.debug('Waiting for redis ready...')
 *           event.wait(2)
 *       logging.debug('redis ready, and connect to redis server and do some
 * work [%s]', time.ctime()) time.sleep(1)
 *
 * A third part runs the second worker in processes: an mp_event works
 * between processes exactly as between threads.
 *
 * Usage: event_workers [--quick]   (--quick: sleeps ten times shorter) */
#include <multiproc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double scale = 1.0; /* 0.1 with --quick */
static mp_event *readis_ready;

/* logging.debug with the format '(%(threadName)-10s) %(message)s'; in a
 * child process it names the process instead. */
static void log_debug(const char *msg, int with_time) {
  time_t now = time(NULL);
  char when[32];
  ctime_r(&now, when);
  when[strcspn(when, "\n")] = '\0';
  printf(with_time ? "(%-10s) %s [%s]\n" : "(%-10s) %s\n",
         mp_parent_process() ? mp_process_name(mp_current_process())
                             : mp_thread_name(mp_current_thread()),
         msg, when);
  fflush(stdout);
}

static void worker(void *arg) { /* arg != NULL: the polling worker */
  while (!mp_event_is_set(readis_ready)) {
    log_debug("Waiting for redis ready...", 0);
    int rc = mp_event_wait(readis_ready, arg ? 2 * scale : MP_FOREVER);
    MP_CHECK(rc == MP_ETIMEDOUT ? 0 : rc); /* ran out: wait again */
  }
  log_debug("redis ready, and connect to redis server and do some work", 1);
  mp_sleep(1 * scale);
}
static int process_worker(void *arg) {
  return worker(arg), 0;
}

int main(int argc, char **argv) {
  (void)argv;
  scale = argc > 1 ? 0.1 : 1.0;
  const char *title[] = {"threads block in event.wait() until main sets it",
                         "while not event.is_set(): event.wait(2)",
                         "the same with worker processes sharing the event"};
  for (int round = 0; round < 3; round++) {
    printf("== %s ==\n", title[round]);
    MP_CHECK(mp_event_new(&readis_ready, NULL)); /* before the children start */
    void *polling = round > 0 ? "poll" : NULL;
    mp_thread *t[2];
    mp_process *p[2];
    for (int i = 0; i < 2; i++) {
      const char *name = round < 2 ? (i ? "t2" : "t1") : (i ? "p2" : "p1");
      if (round < 2) {
        MP_CHECK(mp_thread_new(&t[i], worker, polling,
                               &(mp_thread_opts){.name = name}));
        MP_CHECK(mp_thread_start(t[i]));
      } else {
        MP_CHECK(mp_process_new(&p[i], process_worker, polling,
                                &(mp_process_opts){.name = name}));
        MP_CHECK(mp_process_start(p[i]));
      }
    }
    log_debug("first of all, check redis server, make sure it is OK, and then "
              "trigger the redis ready event",
              0);
    mp_sleep(3 * scale); /* simulate the check progress */
    MP_CHECK(mp_event_set(readis_ready));
    for (int i = 0; i < 2; i++) {
      int code = 0;
      if (round < 2) {
        MP_CHECK(mp_thread_join(t[i], MP_FOREVER));
        mp_thread_free(t[i]);
      } else {
        MP_CHECK(mp_process_join(p[i], MP_FOREVER));
        MP_CHECK(mp_process_exitcode(p[i], &code));
        mp_process_free(p[i]);
      }
      if (code != 0)
        return 1;
    }
    mp_event_free(readis_ready);
  }
  return 0;
}
