/* harness.c - see harness.h. */
#define _GNU_SOURCE
#include "harness.h"

#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/mman.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

static void list_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char path[300], target[300];
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    ssize_t n = readlink(path, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    fprintf(stderr, "    fd %s -> %s\n", e->d_name, target);
  }
  if (d)
    closedir(d);
}

/* Our shared objects are named "mp_t<pid>-..." (or "t<pid>-..."). */
static int count_shm(int report) {
  char tag[32];
  snprintf(tag, sizeof tag, "t%d-", (int)getpid());
  DIR *d = opendir("/dev/shm");
  if (d == NULL)
    return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strstr(e->d_name, tag) != NULL) {
      n++;
      if (report)
        fprintf(stderr, "    /dev/shm/%s\n", e->d_name);
    }
  }
  closedir(d);
  return n;
}

static int reap_children(void) {
  int leaked = 0, status;
  pid_t pid;
  /* A child still running after the case is a leak: kill it, then reap. */
  while ((pid = waitpid(-1, &status, WNOHANG)) != 0) {
    if (pid < 0)
      break;
    leaked++;
    fprintf(stderr, "    child %d was not reaped by the case\n", (int)pid);
  }
  if (pid == 0) {
    leaked++;
    fprintf(stderr, "    children still running after the case\n");
  }
  return leaked;
}

/* Set by mp_test_note_skip: the case skipped itself. */
static int skipped;

void mp_test_note_skip(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "SKIPPED: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  skipped = 1;
}

/* Runs path with "-c pass" quietly: does this interpreter start? */
static int python_runs(const char *path) {
  if (access(path, X_OK) != 0)
    return 0;
  char cmd[3600];
  snprintf(cmd, sizeof cmd, "'%s' -c pass >/dev/null 2>&1", path);
  return system(cmd) == 0;
}

const char *mp_test_python(const char *version) {
  static char found[3500];
  char var[32] = "MP_PYTHON_";
  size_t n = strlen(var);
  for (const char *c = version; *c && n < sizeof var - 1; c++)
    if (*c != '.')
      var[n++] = *c;
  var[n] = '\0';
  const char *env = getenv(var);
  if (env != NULL && python_runs(env)) {
    snprintf(found, sizeof found, "%s", env);
    return found;
  }
  const char *home = getenv("HOME");
  char roots[3][1024];
  int nroots = 0;
  if (getenv("PYENV_ROOT") != NULL)
    snprintf(roots[nroots++], sizeof roots[0], "%s", getenv("PYENV_ROOT"));
  if (home != NULL)
    snprintf(roots[nroots++], sizeof roots[0], "%s/.pyenv", home);
  snprintf(roots[nroots++], sizeof roots[0], "/root/.pyenv");
  char prefix[32];
  snprintf(prefix, sizeof prefix, "%s.", version);
  for (int r = 0; r < nroots; r++) {
    char dir[3100];
    snprintf(dir, sizeof dir, "%s/versions", roots[r]);
    DIR *d = opendir(dir);
    if (d == NULL)
      continue;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
        continue;
      snprintf(found, sizeof found, "%s/%s/bin/python%s", dir, e->d_name,
               version);
      if (python_runs(found)) {
        closedir(d);
        return found;
      }
    }
    closedir(d);
  }
  const char *path = getenv("PATH");
  while (path != NULL && *path) {
    const char *end = strchr(path, ':');
    size_t len = end ? (size_t)(end - path) : strlen(path);
    if (len > 1024)
      len = 1024;
    snprintf(found, sizeof found, "%.*s/python%s", (int)len, path, version);
    /* pyenv's shims exist for every version but run only the chosen one:
     * python_runs weeds out the ones that fail. */
    if (python_runs(found))
      return found;
    path = end ? end + 1 : NULL;
  }
  return NULL;
}

int mp_test_main(int argc, char **argv, const struct CMUnitTest *tests,
                 size_t count) {
  /* Each case leaves its process group clean; a new group lets the leak
   * check kill stray children without touching CTest. */
  setpgid(0, 0);
  if (argc > 1) {
    /* A name that matches no case must fail, not pass having run nothing. */
    size_t i = 0;
    while (i < count && strcmp(tests[i].name, argv[1]) != 0)
      i++;
    if (i == count) {
      fprintf(stderr, "no test case named '%s'\n", argv[1]);
      return 1;
    }
    cmocka_set_test_filter(argv[1]);
  }
  int fds_before = count_fds();
  int shm_before = count_shm(0);
  int failed = _cmocka_run_group_tests(argc > 1 ? argv[1] : "all", tests,
                                       count, NULL, NULL);
  int leaks = 0;
  int fds_after = count_fds();
  if (fds_after != fds_before) {
    fprintf(stderr, "LEAK: %d file descriptors before the case, %d after\n",
            fds_before, fds_after);
    list_fds();
    leaks++;
  }
  if (count_shm(0) != shm_before) {
    fprintf(stderr, "LEAK: /dev/shm entries left behind:\n");
    count_shm(1);
    leaks++;
  }
  if (reap_children() != 0) {
    fprintf(stderr, "LEAK: children left behind\n");
    leaks++;
  }
  if (failed != 0 || leaks != 0)
    return 1;
  return skipped ? MP_TEST_SKIP_CODE : 0;
}

const char *mp_test_name(char *buf, size_t cap, const char *tag) {
  snprintf(buf, cap, "t%d-%s", (int)getpid(), tag);
  return buf;
}

pid_t mp_test_fork(int (*fn)(void *), void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    fail_msg("fork: %s", strerror(errno));
  if (pid == 0)
    _exit(fn(arg));
  return pid;
}

double mp_test_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int mp_test_wait(pid_t pid, double timeout) {
  double end = mp_test_now() + timeout;
  int status;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      return status;
    if (r < 0)
      return -1;
    if (mp_test_now() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    usleep(1000);
  }
}

void mp_test_wait_exit(pid_t pid, int want, double timeout) {
  int status = mp_test_wait(pid, timeout);
  if (status == -1)
    fail_msg("child %d did not exit within %.1f s", (int)pid, timeout);
  if (!WIFEXITED(status))
    fail_msg("child %d was killed by signal %d", (int)pid, WTERMSIG(status));
  if (WEXITSTATUS(status) != want)
    fail_msg("child %d exited %d, expected %d", (int)pid,
             WEXITSTATUS(status), want);
}

int mp_test_sanitized(void) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return 1;
#else
  return 0;
#endif
}

double mp_test_slack(double seconds) {
  return mp_test_sanitized() ? seconds * 5 : seconds;
}

void *mp_test_shared_map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  assert_true(p != MAP_FAILED);
  return p;
}

void mp_test_signal_open(mp_test_signal *s) {
  assert_int_equal(pipe2(s->fd, O_CLOEXEC), 0);
}

void mp_test_signal_close(mp_test_signal *s) {
  close(s->fd[0]);
  close(s->fd[1]);
}

void mp_test_signal_post(mp_test_signal *s) {
  char c = 1;
  ssize_t n = write(s->fd[1], &c, 1);
  (void)n;
}

int mp_test_signal_wait(mp_test_signal *s, double timeout) {
  struct pollfd pfd = {.fd = s->fd[0], .events = POLLIN};
  if (poll(&pfd, 1, (int)(timeout * 1000)) != 1)
    return 0;
  char c;
  return read(s->fd[0], &c, 1) == 1;
}

int mp_test_start_join(mp_process *p) {
  assert_rc(mp_process_start(p), 0);
  assert_rc(mp_process_join(p, mp_test_slack(60)), 0);
  int code = -1000;
  assert_rc(mp_process_exitcode(p, &code), 0);
  return code;
}

/* ---- other PID namespaces ------------------------------------------------ */

typedef struct pid_ns_job {
  mp_test_proc proc;
  int (*fn)(void *arg);
  void *arg;
} pid_ns_job;

/* ns_first runs as the new namespace's first process (pid 1): it makes its
 * mounts private, then gives itself the /proc asked for. */
static int ns_first(pid_ns_job *j) {
  if (j->proc != MP_TEST_PROC_OUTER) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
      return 90;
    if (j->proc == MP_TEST_PROC_OWN &&
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              NULL) != 0)
      return 91;
    if (j->proc == MP_TEST_PROC_NONE &&
        mount("none", "/proc", "tmpfs", 0, NULL) != 0)
      return 92;
  }
  return j->fn(j->arg);
}

/* ns_parent unshares, forks the namespace's first process and reports its
 * exit status as its own. */
static int ns_parent(void *arg) {
  pid_ns_job *j = arg;
  if (unshare(CLONE_NEWPID | CLONE_NEWNS) != 0)
    return 99;
  pid_t pid = fork();
  if (pid < 0)
    return 98;
  if (pid == 0)
    _exit(ns_first(j));
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return 97;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 96;
}

int mp_test_in_pid_ns(mp_test_proc proc, int (*fn)(void *), void *arg) {
  pid_ns_job j = {.proc = proc, .fn = fn, .arg = arg};
  pid_t pid = mp_test_fork(ns_parent, &j);
  int st = mp_test_wait(pid, mp_test_slack(20));
  assert_true(st != -1);
  assert_true(WIFEXITED(st));
  return WEXITSTATUS(st);
}

static int is_pid1(void *arg) {
  (void)arg;
  return getpid() == 1 ? 0 : 1;
}

int mp_test_pid_ns_work(void) {
  static int known = -1;
  if (known < 0)
    known = mp_test_in_pid_ns(MP_TEST_PROC_OWN, is_pid1, NULL) == 0;
  return known;
}

const char *mp_test_proc_name(mp_test_proc proc) {
  return proc == MP_TEST_PROC_OWN    ? "own /proc"
         : proc == MP_TEST_PROC_NONE ? "no /proc"
                                     : "outer /proc";
}
