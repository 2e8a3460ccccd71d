/* os/io.h - the platform interface for byte streams: writing a gathered
 * buffer whole without SIGPIPE, reading what is there, and waiting for
 * several descriptors with a deadline. connection.c and wait.c call
 * nothing else that is specific to one system; the pipes and socket pairs
 * themselves come from mp__os_pipe and mp__os_socketpair (process_os.h).
 * The Linux implementation is src/os/linux_io.c.
 *
 * Conventions as in os.h: 0 (or a count) on success, a negative MP_E* code
 * (-errno) on failure; deadlines are absolute CLOCK_MONOTONIC nanoseconds,
 * INT64_MAX meaning none. Every call retries EINTR, and treats EAGAIN on a
 * descriptor someone made non-blocking as "wait until it is ready", so a
 * stream always behaves as a blocking one. */
#ifndef MP_OS_IO_H
#define MP_OS_IO_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* mp__os_fd_kind tells what fd is: 1 a socket, 0 anything else (a pipe, a
 * file), MP_EBADF when it is not open. */
int mp__os_fd_kind(int fd);

/* mp__os_write_all writes the iovcnt buffers at iov, in order, to fd until
 * every byte is written (iov is updated as it goes). For a socket it uses
 * send with MSG_NOSIGNAL; for anything else it blocks SIGPIPE in the
 * calling thread around the write and discards the SIGPIPE a write to a
 * closed pipe raises, so the process is never killed by it. Returns 0,
 * MP_EPIPE (the reader is gone), -errno. */
int mp__os_write_all(int fd, bool is_socket, struct iovec *iov, int iovcnt);

/* mp__os_read_some reads up to len bytes from fd. Returns how many (at
 * least 1), 0 at end of stream, or -errno. */
ssize_t mp__os_read_some(int fd, void *buf, size_t len);

/* mp__os_read_nowait reads up to len bytes from fd if some are there
 * already, never waiting: recv with MSG_DONTWAIT on a socket, preadv2
 * with RWF_NOWAIT on anything else (a pipe). Returns how many (at least
 * 1), 0 at end of stream, MP_EAGAIN when nothing is there yet, MP_ENOTSUP
 * when fd cannot be read this way (then poll it and read it blocking), or
 * -errno. The descriptor's own O_NONBLOCK flag is neither needed nor
 * changed, so other holders of the same open file see no difference. */
ssize_t mp__os_read_nowait(int fd, bool is_socket, void *buf, size_t len);

/* mp__os_poll waits until one of the n descriptors reports an event, or
 * the deadline passes (abs_ns at or before now checks once). Returns the
 * number of entries with revents set, 0 at the deadline, or -errno. */
int mp__os_poll(struct pollfd *fds, size_t n, int64_t abs_ns);

#endif
