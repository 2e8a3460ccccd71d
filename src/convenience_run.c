/* convenience_run.c - one-call helpers over processes and threads, for the
 * lines a Python programmer writes without thinking: start a target in n
 * children and join them all, join a child and treat a failed exit as an
 * error (subprocess's check_returncode), and run another program as
 * subprocess.Popen and subprocess.run(check=True) do. Built only on the
 * public process and thread calls; every child started here is joined
 * here, on failure too, so none is left behind. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* The most children or threads one call starts. */
#define START_JOIN_MAX 4096

/* exit_error turns how an ended child ended into 0 (status 0) or
 * MP_EWORKERDIED with a detail naming the child, the status or signal, and
 * the message it left (MP_CHECK's text). */
static int exit_error(mp_process *p) {
  mp_exit_info info;
  int rc = mp_process_exit_info(p, &info);
  if (rc != 0)
    return rc;
  if (info.exitcode == 0)
    return 0;
  const char *sep = info.message[0] != '\0' ? ": " : "";
  if (info.signal != 0)
    return mp__fail(MP_EWORKERDIED, "%s was killed by %s%s%.200s",
                    mp_process_name(p), info.signal_name, sep, info.message);
  return mp__fail(MP_EWORKERDIED, "%s exited with status %d%s%.200s",
                  mp_process_name(p), info.status, sep, info.message);
}

int mp_process_join_check(mp_process *p, double timeout) {
  if (p == NULL)
    return mp__fail(MP_EINVAL, "p is NULL");
  int rc = mp_process_join(p, timeout);
  return rc != 0 ? rc : exit_error(p);
}

int mp_process_start_join_n(size_t n, mp_process_target_fn target,
                            void *arg, const mp_process_opts *opts) {
  if (n > START_JOIN_MAX)
    return mp__fail(MP_EINVAL, "n is %zu: at most %d processes at once", n,
                    START_JOIN_MAX);
  if (n == 0)
    return 0;
  mp_process **ps = mp__calloc(n, sizeof *ps);
  if (ps == NULL)
    return mp__fail(MP_ENOMEM, "no memory for %zu process objects", n);
  int first = 0;
  size_t started = 0;
  for (; started < n; started++) {
    first = mp_process_new(&ps[started], target, arg, opts);
    if (first == 0)
      first = mp_process_start(ps[started]);
    if (first != 0)
      break;
  }
  /* Join every child that started, also after a failed start; the first
   * failure is the result (its detail kept: later calls only succeed or
   * are not made once first is set). */
  for (size_t i = 0; i < started; i++) {
    int rc = mp_process_join(ps[i], MP_FOREVER);
    if (first == 0)
      first = rc != 0 ? rc : exit_error(ps[i]);
  }
  for (size_t i = 0; i < n; i++)
    mp_process_free(ps[i]);
  mp__free(ps);
  return first;
}

int mp_process_start_join(mp_process_target_fn target, void *arg,
                          const mp_process_opts *opts) {
  return mp_process_start_join_n(1, target, arg, opts);
}

int mp_popen(mp_process **out, char *const argv[], const mp_pass_fd *pass_fds,
             size_t pass_fds_len) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
    return mp__fail(MP_EINVAL, "argv is NULL or names no program");
  mp_process_opts o = {.exec_argv = argv,
                       .pass_fds = pass_fds,
                       .pass_fds_len = pass_fds_len};
  /* Named after the program when the name fits (exit details name it). */
  if (strlen(argv[0]) <= 255)
    o.name = argv[0];
  mp_process *p;
  int rc = mp_process_new(&p, NULL, NULL, &o);
  if (rc != 0)
    return rc;
  rc = mp_process_start(p);
  if (rc != 0) {
    mp_process_free(p); /* a failed start leaves no child behind */
    return rc;
  }
  *out = p;
  return 0;
}

int mp_subprocess_run(char *const argv[], const mp_pass_fd *pass_fds,
                      size_t pass_fds_len) {
  mp_process *p;
  int rc = mp_popen(&p, argv, pass_fds, pass_fds_len);
  if (rc != 0)
    return rc;
  rc = mp_process_join_check(p, MP_FOREVER);
  mp_process_free(p);
  return rc;
}

int mp_thread_start_join_n(size_t n, mp_thread_target_fn target, void *arg,
                           const mp_thread_opts *opts) {
  if (n > START_JOIN_MAX)
    return mp__fail(MP_EINVAL, "n is %zu: at most %d threads at once", n,
                    START_JOIN_MAX);
  if (n == 0)
    return 0;
  mp_thread **ts = mp__calloc(n, sizeof *ts);
  if (ts == NULL)
    return mp__fail(MP_ENOMEM, "no memory for %zu thread objects", n);
  int first = 0;
  size_t started = 0;
  for (; started < n; started++) {
    first = mp_thread_new(&ts[started], target, arg, opts);
    if (first == 0)
      first = mp_thread_start(ts[started]);
    if (first != 0)
      break;
  }
  for (size_t i = 0; i < started; i++) {
    int rc = mp_thread_join(ts[i], MP_FOREVER);
    if (first == 0)
      first = rc;
  }
  for (size_t i = 0; i < n; i++)
    mp_thread_free(ts[i]);
  mp__free(ts);
  return first;
}
