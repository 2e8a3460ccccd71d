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
 * The parent is a child process, so main can check afterwards what
 * happened (through a small block of shared memory). The same rule holds
 * at the end of main() itself: the library's exit handler terminates the
 * daemonic children and waits for the others.
 *
 * Usage: daemon [--quick]   (--quick: sleeps ten times shorter) */
#include <multiproc.h>
#include <signal.h>
#include <stdio.h>

static double scale = 1.0; /* 0.1 with --quick */

/* What the children report back to main, in shared memory. */
static struct report { int daemon_pid, daemon_finished, worker_finished; } * r;

static int ticker(void *arg) { /* never gets to finish */
  for (int i = 0; i < 20; i++) {
    printf("daemon child: tick %d\n", i);
    fflush(stdout);
    mp_sleep(0.3 * scale);
  }
  printf("daemon child: finished\n");
  return r->daemon_finished = 1, arg != NULL;
}

static int worker(void *arg) {
  mp_sleep(1 * scale);
  printf("non-daemonic child: finished its work\n");
  return r->worker_finished = 1, arg != NULL;
}

static int parent(void *arg) {
  mp_process *d, *w; /* freed at once: freeing never stops a child */
  MP_CHECK(mp_process_new(&d, ticker, NULL, &(mp_process_opts){.daemon = 1}));
  MP_CHECK(mp_process_start(d));
  MP_CHECK(mp_process_new(&w, worker, NULL, NULL));
  MP_CHECK(mp_process_start(w));
  r->daemon_pid = mp_process_pid(d);
  mp_process_free(d);
  mp_process_free(w);
  mp_sleep(0.5 * scale);
  printf("parent: returning without join()\n");
  return arg != NULL; /* then, as Python: d is terminated, w is joined */
}

int main(int argc, char **argv) {
  (void)argv;
  scale = argc > 1 ? 0.1 : 1.0;
  mp_shared_memory *shm; /* unlinked at once: forked children inherit it */
  MP_CHECK(mp_shared_memory_new(&shm, NULL, sizeof *r, NULL));
  MP_CHECK(mp_shared_memory_unlink(shm));
  r = mp_shared_memory_buf(shm);
  mp_process *p;
  int code;
  MP_CHECK(mp_process_new(&p, parent, NULL, NULL));
  MP_CHECK(mp_process_start(p));
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  MP_CHECK(mp_process_exitcode(p, &code));
  int daemon_gone = kill(r->daemon_pid, 0) != 0;
  printf("main: daemonic child %s; non-daemonic child %s\n",
         daemon_gone && !r->daemon_finished ? "terminated, unfinished"
                                            : "NOT terminated",
         r->worker_finished ? "waited for, finished" : "NOT waited for");
  int ok =
      code == 0 && daemon_gone && !r->daemon_finished && r->worker_finished;
  mp_process_free(p);
  mp_shared_memory_free(shm);
  return ok ? 0 : 1;
}
