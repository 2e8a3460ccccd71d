/* harness.h - what every test suite shares: running one named case (CTest
 * registers each case on its own), checking that the case leaked nothing
 * (file descriptors, children, /dev/shm entries), and small helpers for
 * forking test children and naming shared objects. */
#ifndef MP_TEST_HARNESS_H
#define MP_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "multiproc.h"

/* mp_test_main runs the case named argv[1] (every case without one), then
 * fails if the case left descriptors, children or /dev/shm entries behind. */
int mp_test_main(int argc, char **argv, const struct CMUnitTest *tests,
                 size_t count);
#define MP_TEST_MAIN(tests)                                                  \
  int main(int argc, char **argv) {                                          \
    return mp_test_main(argc, argv, tests, sizeof(tests) / sizeof((tests)[0])); \
  }

/* assert_rc checks a result code and prints both names when it differs. */
#define assert_rc(expr, expected)                                            \
  do {                                                                       \
    int rc_ = (expr), want_ = (expected);                                    \
    if (rc_ != want_)                                                        \
      fail_msg("%s returned %s (%d), expected %s (%d)", #expr,              \
               mp_err_name(rc_), rc_, mp_err_name(want_), want_);            \
  } while (0)

/* mp_test_name writes a name unique to this test process ("t<pid>-<tag>"),
 * so parallel cases never collide and the leak check finds what is ours. */
const char *mp_test_name(char *buf, size_t cap, const char *tag);

/* mp_test_fork runs fn(arg) in a forked child that exits with its return
 * value. Returns the child's pid (the test fails if fork fails). */
pid_t mp_test_fork(int (*fn)(void *), void *arg);

/* mp_test_wait waits up to timeout seconds for pid; returns the raw wait
 * status, or -1 on timeout (the child is then killed and reaped). */
int mp_test_wait(pid_t pid, double timeout);

/* mp_test_wait_exit asserts that pid exits with status within timeout. */
void mp_test_wait_exit(pid_t pid, int status, double timeout);

/* mp_test_start_join starts p, joins it (the case fails if it does not end
 * within a generous bound) and returns its exit code. */
int mp_test_start_join(mp_process *p);

/* Monotonic seconds, for checking that waits are bounded. */
double mp_test_now(void);

/* mp_test_sanitized is nonzero under ASan/TSan: scale timing slack by it. */
int mp_test_sanitized(void);

/* mp_test_slack is a generous bound for "returned within N seconds",
 * scaled for sanitizer builds. */
double mp_test_slack(double seconds);

/* mp_test_shared_map maps size zeroed bytes of anonymous shared memory
 * (inherited by forked children); the test fails if it cannot. */
void *mp_test_shared_map(size_t size);

/* mp_test_signal is a one-byte signal from a child (or thread) to the case,
 * through a close-on-exec pipe. wait returns 1 once a byte arrived, 0 after
 * timeout seconds. */
typedef struct mp_test_signal {
  int fd[2];
} mp_test_signal;
void mp_test_signal_open(mp_test_signal *s);
void mp_test_signal_close(mp_test_signal *s);
void mp_test_signal_post(mp_test_signal *s);
int mp_test_signal_wait(mp_test_signal *s, double timeout);

/* mp_test_skip marks the running case skipped, with the reason on stderr,
 * and leaves it (cmocka's skip()). The case's process then exits with
 * MP_TEST_SKIP_CODE, which CTest reports as skipped, never as passed. */
#define MP_TEST_SKIP_CODE 77
#define mp_test_skip(...)                                                    \
  do {                                                                       \
    mp_test_note_skip(__VA_ARGS__);                                          \
    skip();                                                                  \
  } while (0)
void mp_test_note_skip(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* mp_test_python returns the path of a CPython interpreter of version
 * "3.11", "3.12" or "3.13" that runs, or NULL when none is installed. It
 * looks in $MP_PYTHON_<major><minor> (MP_PYTHON_312=/path), under pyenv's
 * versions (PYENV_ROOT, ~/.pyenv, /root/.pyenv: versions/3.12.*), then for
 * python3.12 on PATH, and checks each candidate by running it. The string
 * is static. The versions the interop suites test are MP_TEST_PYTHONS. */
#define MP_TEST_PYTHONS {"3.11", "3.12", "3.13"}
const char *mp_test_python(const char *version);

/* ---- other PID namespaces ---------------------------------------------
 * Liveness is judged only where a holder's pid means something, and
 * unknown means alive (issue 8, defect 1). mp_test_in_pid_ns runs fn(arg)
 * as the first process (pid 1) of a new PID and mount namespace, made as
 * `unshare --pid --fork --mount-proc` does, and returns fn's result (its
 * exit status; 90-99 name a step of making the namespace that failed).
 * The new namespace's /proc is its own (MP_TEST_PROC_OWN), one that shows
 * nothing (MP_TEST_PROC_NONE: a tmpfs, as in a sandbox without /proc), or
 * the outer one (MP_TEST_PROC_OUTER: its pids name other processes). fn
 * runs in a forked child: it must not call cmocka, and reports through its
 * result. The case fails if it does not end within 20 s (slack).
 * MP_TEST_NEED_PID_NS skips the case where namespaces cannot be made (they
 * need root; CI runs as root). */
typedef enum mp_test_proc {
  MP_TEST_PROC_OWN,
  MP_TEST_PROC_NONE,
  MP_TEST_PROC_OUTER
} mp_test_proc;
int mp_test_in_pid_ns(mp_test_proc proc, int (*fn)(void *), void *arg);
int mp_test_pid_ns_work(void);
const char *mp_test_proc_name(mp_test_proc proc);
#define MP_TEST_NEED_PID_NS()                                                \
  do {                                                                       \
    if (!mp_test_pid_ns_work())                                              \
      mp_test_skip("cannot make PID and mount namespaces (needs root)");     \
  } while (0)

#endif
