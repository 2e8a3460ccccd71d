/* process_info.c - who is who: each process prints the name it was given,
 * its parent's pid and its own, first the main process, then two children
 * (one runs info directly, the other through foo); then the "subclass"
 * style, a process whose run is overridden and prints its own name.
 *
 * It mirrors these Python programs (seed 001, "3.1 python的进程调用" and
 * "3.2 process类"):
 *
 *   from multiprocessing import Process
 *   import os, time
 *   def info(name):
 *       print("name:", name)
 *       print('parent process:', os.getppid())
 *       print('process id:', os.getpid())
 *       print("------------------")
 *       time.sleep(1)
 *   def foo(name):
 *       info(name)
 *   if __name__ == '__main__':
 *       info('main process line')
 *       p1 = Process(target=info, args=('alvin',))
 *       p2 = Process(target=foo, args=('egon',))
 *       p1.start()
 *       p2.start()
 *       p1.join()
 *       p2.join()
 *       print("ending")
 *
 *   class MyProcess(Process):
 *       def __init__(self):
 *           super(MyProcess, self).__init__()
 *       def run(self):
 *           print('hello', self.name, time.ctime())
 *           time.sleep(1)
 *   if __name__ == '__main__':
 *       p_list = []
 *       for i in range(3):
 *           p = MyProcess()
 *           p.start()
 *           p_list.append(p)
 *       for p in p_list:
 *           p.join()
 *       print('end')
 *
 * The children's parent pid is the main process's pid; Python names a
 * subclass's processes after the class ("MyProcess-3"), which we copy.
 *
 * Usage: process_info [--quick]   (--quick: sleep 0.1 s, not 1 s) */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double sleep_time = 1.0;

static void sleep_s(double seconds) {
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

static int info(void *arg) {
  const char *name = arg;
  /* One write for the whole block, so two children's blocks do not mix. */
  char block[256];
  snprintf(block, sizeof block,
           "name: %s\nparent process: %d\nprocess id: %d\n"
           "------------------\n",
           name, (int)getppid(), (int)getpid());
  fputs(block, stdout);
  fflush(stdout);
  sleep_s(sleep_time);
  return 0;
}

static int foo(void *arg) {
  return info(arg);
}

/* MyProcess.run */
static int my_process_run(mp_process *self) {
  char now[32];
  time_t t = time(NULL);
  ctime_r(&t, now);
  now[strcspn(now, "\n")] = '\0';
  printf("hello %s %s\n", mp_process_name(self), now);
  fflush(stdout);
  sleep_s(sleep_time);
  return 0;
}

/* my_process_new is MyProcess(): a Process whose run is overridden, named
 * as Python names a subclass's processes ("MyProcess-N"). */
static mp_process *my_process_new(void) {
  mp_process_opts opts = {.run = my_process_run};
  mp_process *p;
  MP_CHECK(mp_process_new(&p, NULL, NULL, &opts));
  char name[64];
  snprintf(name, sizeof name, "My%s", mp_process_name(p));
  MP_CHECK(mp_process_set_name(p, name));
  return p;
}

static int join_ok(mp_process *p) {
  int code = -1;
  MP_CHECK(mp_process_join(p, MP_FOREVER));
  MP_CHECK(mp_process_exitcode(p, &code));
  return code == 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0)
    sleep_time = 0.1;
  int ok = 1;

  printf("== info() in the main process, then in p1 (target=info) and p2 "
         "(target=foo) ==\n");
  fflush(stdout);
  info("main process line");
  mp_process *p1, *p2;
  MP_CHECK(mp_process_new(&p1, info, "alvin", NULL));
  MP_CHECK(mp_process_new(&p2, foo, "egon", NULL));
  MP_CHECK(mp_process_start(p1));
  MP_CHECK(mp_process_start(p2));
  ok &= join_ok(p1);
  ok &= join_ok(p2);
  printf("ending\n");
  printf("(p1 is %s, pid %d; p2 is %s, pid %d; main is %s, pid %d)\n",
         mp_process_name(p1), (int)mp_process_pid(p1), mp_process_name(p2),
         (int)mp_process_pid(p2), mp_process_name(mp_current_process()),
         (int)getpid());
  mp_process_free(p1);
  mp_process_free(p2);

  printf("\n== class MyProcess(Process) with run() overridden, three of them "
         "==\n");
  fflush(stdout);
  mp_process *p_list[3];
  for (int i = 0; i < 3; i++) {
    p_list[i] = my_process_new();
    MP_CHECK(mp_process_start(p_list[i]));
  }
  for (int i = 0; i < 3; i++) {
    ok &= join_ok(p_list[i]);
    mp_process_free(p_list[i]);
  }
  printf("end\n");
  return ok ? 0 : 1;
}
