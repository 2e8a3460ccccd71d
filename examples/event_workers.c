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

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double scale = 1.0; /* 0.1 with --quick */

static void sleep_s(double seconds) {
  seconds *= scale;
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

static const char *now_text(char *buf) {
  time_t now = time(NULL);
  ctime_r(&now, buf);
  buf[strcspn(buf, "\n")] = '\0';
  return buf;
}

/* log_debug is logging.debug with the format '(%(threadName)-10s) %s'; in
 * a child process it names the process instead. */
static void log_debug(const char *fmt, ...) {
  const char *who = mp_parent_process() != NULL
                        ? mp_process_name(mp_current_process())
                        : mp_thread_name(mp_current_thread());
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* One call per line, so lines from different threads do not mix. */
  printf("(%-10s) %s\n", who, msg);
  fflush(stdout);
}

static void worker(void *arg) {
  mp_event *event = arg;
  char buf[32];
  log_debug("Waiting for redis ready...");
  MP_CHECK(mp_event_wait(event, MP_FOREVER));
  log_debug("redis ready, and connect to redis server and do some work [%s]",
            now_text(buf));
  sleep_s(1);
}

static void worker_polling(void *arg) {
  mp_event *event = arg;
  char buf[32];
  while (!mp_event_is_set(event)) {
    log_debug("Waiting for redis ready...");
    /* MP_ETIMEDOUT is the normal outcome of a wait that ran out: loop. */
    int rc = mp_event_wait(event, 2 * scale);
    if (rc != MP_ETIMEDOUT)
      MP_CHECK(rc);
  }
  log_debug("redis ready, and connect to redis server and do some work [%s]",
            now_text(buf));
  sleep_s(1);
}

static void run_threads(mp_thread_target_fn fn) {
  mp_event *readis_ready;
  MP_CHECK(mp_event_new(&readis_ready, NULL));
  mp_thread_opts o1 = {.name = "t1"}, o2 = {.name = "t2"};
  mp_thread *t1, *t2;
  MP_CHECK(mp_thread_new(&t1, fn, readis_ready, &o1));
  MP_CHECK(mp_thread_start(t1));
  MP_CHECK(mp_thread_new(&t2, fn, readis_ready, &o2));
  MP_CHECK(mp_thread_start(t2));
  log_debug("first of all, check redis server, make sure it is OK, and then "
            "trigger the redis ready event");
  sleep_s(3); /* simulate the check progress */
  MP_CHECK(mp_event_set(readis_ready));
  MP_CHECK(mp_thread_join(t1, MP_FOREVER));
  MP_CHECK(mp_thread_join(t2, MP_FOREVER));
  mp_thread_free(t1);
  mp_thread_free(t2);
  mp_event_free(readis_ready);
}

static int process_worker(void *arg) {
  worker_polling(arg);
  return 0;
}

static void run_processes(void) {
  /* Made before the children start, so they inherit it. */
  mp_event *readis_ready;
  MP_CHECK(mp_event_new(&readis_ready, NULL));
  mp_process_opts o1 = {.name = "p1"}, o2 = {.name = "p2"};
  mp_process *p1, *p2;
  MP_CHECK(mp_process_new(&p1, process_worker, readis_ready, &o1));
  MP_CHECK(mp_process_new(&p2, process_worker, readis_ready, &o2));
  MP_CHECK(mp_process_start(p1));
  MP_CHECK(mp_process_start(p2));
  log_debug("first of all, check redis server, make sure it is OK, and then "
            "trigger the redis ready event");
  sleep_s(3);
  MP_CHECK(mp_event_set(readis_ready));
  MP_CHECK(mp_process_join(p1, MP_FOREVER));
  MP_CHECK(mp_process_join(p2, MP_FOREVER));
  int c1 = -1, c2 = -1;
  mp_process_exitcode(p1, &c1);
  mp_process_exitcode(p2, &c2);
  mp_process_free(p1);
  mp_process_free(p2);
  mp_event_free(readis_ready);
  if (c1 != 0 || c2 != 0) {
    fprintf(stderr, "event_workers: a worker process failed (%d, %d)\n", c1,
            c2);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    scale = 0.1;

  printf("== worker threads block in event.wait() until main sets it ==\n");
  run_threads(worker);

  printf("\n== while not event.is_set(): event.wait(2) -- the workers report "
         "while they wait ==\n");
  run_threads(worker_polling);

  printf("\n== the same with worker processes sharing the event ==\n");
  run_processes();
  return 0;
}
