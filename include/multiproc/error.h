/* multiproc/error.h - the one table of result codes.
 *
 * Every function that can fail returns int (or ssize_t for sizes): 0 or a
 * non-negative value on success, a negative MP_E* code on failure. Codes
 * that exist as errno values equal -errno, so a caller can compare with
 * -EINTR or pass -rc to strerror. Library-only codes sit in one reserved
 * range, MP_ERR_LIBRARY_BASE and below. */
#ifndef MULTIPROC_ERROR_H
#define MULTIPROC_ERROR_H

#include <errno.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The first library-only code; library codes count down from here. */
#define MP_ERR_LIBRARY_BASE (-4000)

/* MP_ERRNO_MAP(XX) lists every code as XX(NAME, value, description). The
 * description says what happened and, where it matters, what to do. */
#define MP_ERRNO_MAP(XX)                                                      \
  XX(EPERM, -EPERM, "operation not permitted: the caller does not own it")   \
  XX(ENOENT, -ENOENT, "no such object: nothing by that name")                \
  XX(ESRCH, -ESRCH, "no such process")                                       \
  XX(EINTR, -EINTR, "interrupted by a signal")                               \
  XX(EIO, -EIO, "input/output error")                                        \
  XX(EBADF, -EBADF, "bad file descriptor")                                   \
  XX(ECHILD, -ECHILD, "no child process to wait for")                        \
  XX(EAGAIN, -EAGAIN, "would block: try again later")                        \
  XX(ENOMEM, -ENOMEM, "out of memory")                                       \
  XX(EACCES, -EACCES, "permission denied")                                   \
  XX(EBUSY, -EBUSY, "resource busy")                                         \
  XX(EEXIST, -EEXIST, "an object by that name exists already")               \
  XX(EINVAL, -EINVAL, "invalid argument")                                    \
  XX(EMFILE, -EMFILE, "too many open files")                                 \
  XX(ENOSPC, -ENOSPC, "no space left")                                       \
  XX(EPIPE, -EPIPE, "broken pipe: the other end is gone")                    \
  XX(ERANGE, -ERANGE, "value out of range")                                  \
  XX(EDEADLK, -EDEADLK, "would deadlock: the caller holds it already")       \
  XX(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                           \
  XX(ENOSYS, -ENOSYS, "not implemented on this system")                      \
  XX(EOVERFLOW, -EOVERFLOW, "value too large for its type")                  \
  XX(EPROTO, -EPROTO, "protocol error: the peer sent malformed data")        \
  XX(ENOTSUP, -ENOTSUP, "not supported")                                     \
  XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                      \
  XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                    \
  XX(ETIMEDOUT, -ETIMEDOUT, "timed out: the deadline passed first")          \
  XX(EOWNERDEAD, -EOWNERDEAD,                                                \
     "acquired, but the previous owner died holding it: check the data it "  \
     "protects")                                                             \
  XX(ENOTRECOVERABLE, -ENOTRECOVERABLE, "state not recoverable")             \
  XX(ECLOSED, MP_ERR_LIBRARY_BASE - 1,                                       \
     "closed: the object was closed; no more operations will succeed")       \
  XX(EBROKEN, MP_ERR_LIBRARY_BASE - 2,                                       \
     "broken: a party failed, timed out or died; reset it before reuse")     \
  XX(EWORKERDIED, MP_ERR_LIBRARY_BASE - 3,                                   \
     "the worker process died while running the task")                       \
  XX(EAUTH, MP_ERR_LIBRARY_BASE - 4,                                         \
     "authentication failed: the peer does not share the key")               \
  XX(ETOOBIG, MP_ERR_LIBRARY_BASE - 5,                                       \
     "too big: the message exceeds the limit or the buffer; nothing was "    \
     "lost")                                                                 \
  XX(ESTATE, MP_ERR_LIBRARY_BASE - 6,                                        \
     "wrong state for this call (not started, started twice, still "         \
     "running, already closed)")                                             \
  XX(ECORRUPT, MP_ERR_LIBRARY_BASE - 7,                                      \
     "not a valid multiproc object of this type (bad magic, version, type "  \
     "or size)")                                                             \
  XX(EVALUE, MP_ERR_LIBRARY_BASE - 8,                                        \
     "value error: e.g. a bounded semaphore released too many times")

/* The codes themselves: MP_EPERM, MP_ETIMEDOUT, MP_ECLOSED, ... */
enum mp_errno {
#define MP__ERR_ENUM(name, value, text) MP_##name = (value),
  MP_ERRNO_MAP(MP__ERR_ENUM)
#undef MP__ERR_ENUM
};

/* mp_strerror returns a sentence describing rc, "success" for 0 and a fixed
 * text for an unknown code. Never NULL; the string is static. */
MP_EXTERN const char *mp_strerror(int rc);

/* mp_err_name returns the code's name ("MP_ETIMEDOUT"), "MP_OK" for 0 or
 * "MP_EUNKNOWN" for an unknown code. Never NULL; the string is static. */
MP_EXTERN const char *mp_err_name(int rc);

/* mp_error_detail returns the detail that the last failing call in the
 * calling thread left beside its code: which of the causes a code such as
 * MP_EINVAL, MP_ENOENT, MP_EPROTO or MP_EAUTH covers, and what to do ("name
 * contains '/'", "target 'worker' is not registered: add
 * MP_TARGET(worker)"). "" when no call in this thread has left one. Like
 * errno, a successful call does not clear it: read it right after the call
 * that failed. Never NULL; the string is the thread's own until its next
 * failing call. */
MP_EXTERN const char *mp_error_detail(void);

/* mp_error_code returns the code the detail of mp_error_detail was left
 * with (0 when none), so a caller can check that the detail belongs to the
 * rc it holds. */
MP_EXTERN int mp_error_code(void);

/* mp_error_message returns "MP_EINVAL: invalid argument: name contains
 * '/'": the name, the description and, when this thread's last detail was
 * left with rc, the detail; without it, the name and the description.
 * Never NULL; the string is the thread's own until its next call. */
MP_EXTERN const char *mp_error_message(int rc);

/* MP_CHECK(call) evaluates call (a function returning int or ssize_t) and
 * yields its result when it is not negative. When it is negative, the
 * program ends as a Python program ends on an uncaught exception: a line
 * "file:line: call: MP_EINVAL: invalid argument: <detail>" on stderr, and
 * exit status 1. In a child that multiproc started, the same text becomes
 * the child's mp_exit_info.message for its parent, and the child leaves
 * with _exit(1) after flushing stdio, as after its target. For programs
 * and examples; a library should return the code instead. */
#define MP_CHECK(call) mp_check((call), #call, __FILE__, __LINE__)
/* mp_check is MP_CHECK's function: it returns rc when rc >= 0, and does
 * not return otherwise. */
MP_EXTERN long long mp_check(long long rc, const char *call, const char *file,
                             int line);

#ifdef __cplusplus
}
#endif
#endif
