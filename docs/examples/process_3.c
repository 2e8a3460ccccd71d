/* process_3.c - why did the child end? (G-PROC-1) One child reports an
 * error and exits with status 3, another is killed by SIGABRT. */
#include <stdio.h>
#include <stdlib.h>

#include <multiproc.h>

static int fails(void *arg) {
  (void)arg;
  mp_process_set_error("config file missing: /etc/app.conf");
  return 3;
}

static int crashes(void *arg) {
  (void)arg;
  abort();
}

static void report(mp_process *p) {
  mp_exit_info info;
  if (mp_process_exit_info(p, &info) != 0)
    return;
  if (info.signal != 0)
    printf("%s: killed by %s (exitcode %d)%s\n", mp_process_name(p),
           info.signal_name, info.exitcode,
           info.core_dumped ? ", core dumped" : "");
  else
    printf("%s: exit status %d, message \"%s\"\n", mp_process_name(p),
           info.status, info.message);
}

int main(void) {
  mp_process_target_fn targets[2] = {fails, crashes};
  for (int i = 0; i < 2; i++) {
    mp_process *p;
    if (mp_process_new(&p, targets[i], NULL, NULL) != 0 ||
        mp_process_start(p) != 0)
      return 1;
    mp_process_join(p, MP_FOREVER);
    report(p);
    mp_process_free(p);
  }
  return 0;
}
