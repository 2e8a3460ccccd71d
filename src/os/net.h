/* os/net.h - the platform interface for listening and connecting sockets:
 * what src/net/ needs of the system beyond os/io.h (streams) - a bound
 * listening socket, accept, a connect with a deadline, socket names, and
 * a readiness set (one descriptor that is readable when any of several
 * is, so a listener with handshakes under way is one entry in a wait).
 * The Linux implementation is src/os/linux_net.c.
 *
 * Conventions as in os.h: 0 or a descriptor on success, a negative MP_E*
 * code (-errno) on failure; deadlines are absolute CLOCK_MONOTONIC
 * nanoseconds, INT64_MAX meaning none. Every descriptor is close-on-exec. */
#ifndef MP_OS_NET_H
#define MP_OS_NET_H

#include <stdint.h>
#include <sys/socket.h>

/* mp__os_listen makes a stream socket of sa's family, bound to sa and
 * listening with backlog, non-blocking so that accept never waits for a
 * client that went away. SO_REUSEADDR is set on TCP sockets, as Python
 * does. Returns the descriptor or -errno. */
int mp__os_listen(const struct sockaddr *sa, socklen_t len, int backlog);

/* mp__os_accept accepts one client of the listening socket lfd, as a
 * blocking, close-on-exec descriptor, storing its address in peer (cap
 * *len bytes; *len becomes its length). Returns the descriptor, MP_EAGAIN
 * when none waits, or -errno. */
int mp__os_accept(int lfd, struct sockaddr_storage *peer, socklen_t *len);

/* mp__os_connect connects a new stream socket to sa, waiting until abs_ns
 * at most. Returns a blocking, close-on-exec descriptor, MP_ETIMEDOUT, or
 * -errno (MP_ECONNREFUSED, MP_ENOENT for a Unix path that is not there). */
int mp__os_connect(const struct sockaddr *sa, socklen_t len, int64_t abs_ns);

/* mp__os_sockname stores fd's own address (peer 0) or its peer's (peer 1)
 * in ss. Returns 0 or -errno. */
int mp__os_sockname(int fd, int peer, struct sockaddr_storage *ss,
                    socklen_t *len);

/* mp__os_nodelay turns Nagle's algorithm off on a TCP socket (a no-op on
 * others): handshake and request/response messages must leave at once. */
void mp__os_nodelay(int fd);

/* A readiness set: mp__os_rset_new returns its descriptor (readable while
 * any member is readable or hung up) or -errno; add and del change its
 * members and return 0 or -errno. Close it with close(2). */
int mp__os_rset_new(void);
int mp__os_rset_add(int set, int fd);
int mp__os_rset_del(int set, int fd);

#endif
