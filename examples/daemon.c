/* daemon.c - daemonic and non-daemonic children when their parent ends:
 * the daemonic one is terminated, the non-daemonic one is waited for.
 *
 * The seed (001, "3.2 process类") says of Process.daemon: "和线程的
 * setDeamon功能一样" - it works as a thread's setDaemon: "只要主线程完成了,
 * 不管子线程是否完成,都要和主线程一起退出" (once the main one is done,
 * daemonic ones exit with it, finished or not). This is that rule as a
 * Python program:
 *
 *   from multiprocessing import Process
 *   import time
 *   def ticker():                      # never gets to finish
 *       for i in range(20):
 *           print("daemon child: tick", i); time.sleep(0.3)
 *       print("daemon child: finished")
 *   def worker():
 *       time.sleep(1)
 *       print("non-daemonic child: finished its work")
 *   def parent():
 *       d = Process(target=ticker, daemon=True); d.start()
 *       w = Process(target=worker); w.start()
 *       time.sleep(0.5)
 *       print("parent: returning without join()")
 *       # at its end: d is terminated, w is joined
 *   if __name__ == '__main__':
 *       p = Process(target=parent); p.start(); p.join()
 *
 * Part 1 runs it with the parent as a child process, so main can check
 * afterwards what happened (through a small block of shared memory). Part
 * 2 shows the same rule at the end of main() itself: the library's exit
 * handler terminates the daemonic child and waits for the other.
 *
 * Usage: daemon [--quick]   (--quick: sleeps ten times shorter) */
#include <multiproc.h>

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
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

static void say(const char *line) {
  puts(line);
  fflush(stdout);
}

/* What the children report back to main, in shared memory. Lock-free
 * atomics work between processes as between threads. */
typedef struct report {
  _Atomic int daemon_pid;
  _Atomic int daemon_finished;
  _Atomic int worker_finished;
} report;

static int ticker(void *arg) {
  report *r = arg;
  for (int i = 0; i < 20; i++) {
    printf("daemon child: tick %d\n", i);
    fflush(stdout);
    sleep_s(0.3);
  }
  say("daemon child: finished");
  if (r != NULL)
    atomic_store(&r->daemon_finished, 1);
  return 0;
}

static int worker(void *arg) {
  report *r = arg;
  sleep_s(1);
  say("non-daemonic child: finished its work");
  if (r != NULL)
    atomic_store(&r->worker_finished, 1);
  return 0;
}

/* start_pair starts the daemonic ticker and the non-daemonic worker. The
 * objects are freed at once: freeing never stops a child, and the exit
 * rule still applies to it. */
static pid_t start_pair(report *r) {
  mp_process_opts daemonic = {.daemon = 1};
  mp_process *d, *w;
  MP_CHECK(mp_process_new(&d, ticker, r, &daemonic));
  MP_CHECK(mp_process_new(&w, worker, r, NULL));
  MP_CHECK(mp_process_start(d));
  MP_CHECK(mp_process_start(w));
  pid_t daemon_pid = mp_process_pid(d);
  mp_process_free(d);
  mp_process_free(w);
  return daemon_pid;
}

static int parent(void *arg) {
  report *r = arg;
  atomic_store(&r->daemon_pid, (int)start_pair(r));
  sleep_s(0.5);
  say("parent: returning without join()");
  /* After this return the library does what Python's process bootstrap
   * does: terminate the daemonic child, join the non-daemonic one. */
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    scale = 0.1;

  printf("== Part 1: a parent process starts a daemonic and a non-daemonic "
         "child, then ends ==\n");
  fflush(stdout);
  mp_shared_memory *shm;
  MP_CHECK(mp_shared_memory_new(&shm, NULL, sizeof(report), NULL));
  /* Forked children inherit the mapping: the name can go now. */
  MP_CHECK(mp_shared_memory_unlink(shm));
  report *r = mp_shared_memory_buf(shm);

  mp_process *p;
  MP_CHECK(mp_process_new(&p, parent, r, NULL));
  MP_CHECK(mp_process_start(p));
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  int code = -1;
  MP_CHECK(mp_process_exitcode(p, &code));
  mp_process_free(p);

  pid_t dpid = (pid_t)atomic_load(&r->daemon_pid);
  int daemon_gone = dpid > 0 && kill(dpid, 0) != 0 && errno == ESRCH;
  int daemon_finished = atomic_load(&r->daemon_finished);
  int worker_finished = atomic_load(&r->worker_finished);
  printf("main: the parent exited with %d\n", code);
  printf("main: daemonic child (pid %d): %s\n", (int)dpid,
         daemon_gone && !daemon_finished
             ? "terminated when its parent ended, unfinished"
             : "NOT terminated as it should have been");
  printf("main: non-daemonic child: %s\n",
         worker_finished ? "waited for; it finished its work"
                         : "NOT waited for as it should have been");
  mp_shared_memory_free(shm);
  if (code != 0 || !daemon_gone || daemon_finished || !worker_finished)
    return 1;

  printf("\n== Part 2: the same at the end of main(): returning from main "
         "ends the daemonic\n   child and waits for the other ==\n");
  fflush(stdout);
  start_pair(NULL);
  sleep_s(0.5);
  say("main: returning from main() without join()");
  return 0;
}
