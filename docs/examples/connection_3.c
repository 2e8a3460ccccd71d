/* connection_3.c - waiting on several pipes and processes at once, as
 * Python's connection.wait: take results as they come, notice workers
 * that end, and stop when nothing is left to wait for. */
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include <multiproc.h>

#define WORKERS 3

static mp_connection *writers[WORKERS];

static int worker(void *arg) {
  int id = *(int *)arg;
  usleep((useconds_t)(100000 * (WORKERS - id))); /* the last one is first */
  if (id == 1)
    return 3; /* this one fails without sending anything */
  char msg[32];
  int n = snprintf(msg, sizeof msg, "result of worker %d", id);
  return mp_connection_send_bytes(writers[id], msg, 0, (size_t)n) == 0 ? 0
                                                                      : 1;
}

int main(void) {
  int ids[WORKERS];
  mp_connection *readers[WORKERS];
  mp_process *procs[WORKERS];
  mp_waitable list[2 * WORKERS];
  size_t n = 0;
  for (int i = 0; i < WORKERS; i++) {
    ids[i] = i;
    if (mp_pipe(&readers[i], &writers[i], 0) != 0)
      return 1;
  }
  for (int i = 0; i < WORKERS; i++) {
    if (mp_process_new(&procs[i], worker, &ids[i], NULL) != 0 ||
        mp_process_start(procs[i]) != 0)
      return 1;
    list[n++] = mp_waitable_connection(readers[i]);
    list[n++] = mp_waitable_process(procs[i]);
  }
  /* The children have their copies; the parent's would keep the readers
   * from ever seeing end of stream. */
  for (int i = 0; i < WORKERS; i++)
    mp_connection_close(writers[i]);

  while (n > 0) {
    size_t ready[2 * WORKERS];
    ssize_t k = mp_connection_wait(list, n, 10.0, ready);
    if (k <= 0) {
      printf("nothing within 10 s (%s)\n", mp_err_name((int)k));
      break;
    }
    /* Highest index first, so removing an entry (the last one moves into
     * its place) never moves one still to be handled. */
    while (k-- > 0) {
      mp_waitable *w = &list[ready[k]];
      bool done = true;
      if (w->type == MP_WAIT_PROCESS) {
        mp_process *p = w->object;
        int code = -1;
        mp_process_join(p, MP_FOREVER);
        mp_process_exitcode(p, &code);
        printf("%s ended with exit code %d\n", mp_process_name(p), code);
      } else {
        char buf[64];
        size_t len;
        if (mp_connection_recv_bytes(w->object, buf, sizeof buf, &len) == 0) {
          printf("%.*s\n", (int)len, buf);
          done = false; /* it may send more, or close */
        }
      }
      if (done)
        *w = list[--n];
    }
  }

  for (int i = 0; i < WORKERS; i++) {
    mp_process_free(procs[i]);
    mp_connection_free(readers[i]);
    mp_connection_free(writers[i]);
  }
  return 0;
}
