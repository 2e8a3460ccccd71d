/* os/shm.h - the platform interface for shared memory beyond os/os.h:
 * what SharedMemory and the resource tracker need (the inode behind a name,
 * the list of names, small whole-file reads and writes of a segment,
 * process start times, and starting a detached daemon process). A port
 * implements these; the Linux implementation is src/os/linux_shm.c.
 * Names are given without the leading '/', as in os/os.h. */
#ifndef MP_OS_SHM_H
#define MP_OS_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* mp__os_shm_inode stores the identity (inode number) of the segment that
 * name refers to now. Returns 0, MP_ENOENT or -errno. */
int mp__os_shm_inode(const char *name, uint64_t *ino);

/* Creating a segment that is guarded before anyone can see it (see
 * mp__tracker_create): the file is made without a name, registered, then
 * given its name in one step that fails if the name exists.
 *
 * mp__os_shm_create_unnamed creates a segment of size bytes (mode 0600)
 * that has no name yet: it disappears with its last descriptor. Stores a
 * close-on-exec read-write descriptor and the segment's inode. Returns 0,
 * or -errno (EISDIR, EOPNOTSUPP: the system has no O_TMPFILE here). */
int mp__os_shm_create_unnamed(size_t size, int *fd_out, uint64_t *ino);

/* mp__os_shm_link gives the unnamed segment behind fd the name name, as
 * shm_open(O_CREAT | O_EXCL) would have: MP_EEXIST when the name exists
 * (which is left alone). Returns 0, MP_EEXIST or -errno (the system
 * cannot name it: no /proc and no privilege for AT_EMPTY_PATH). */
int mp__os_shm_link(int fd, const char *name);

/* mp__os_shm_list calls fn for every segment name of this machine (without
 * '/'); a nonzero return from fn stops the walk and is returned. */
int mp__os_shm_list(int (*fn)(const char *name, void *arg), void *arg);

/* mp__os_shm_owner stores the owner (effective uid of its creator) of
 * the segment name refers to now, and its inode. Returns 0, MP_ENOENT or
 * -errno. */
int mp__os_shm_owner(const char *name, uint64_t *ino, uid_t *uid);

/* Private files: the tracker's state files are segments that any program
 * could plant under the expected name. The two calls below accept only a
 * regular file owned by the caller (effective uid) that neither group nor
 * others may write, and never follow a link; anything else is MP_EPERM
 * (mp_error_detail says why).
 *
 * mp__os_shm_write_file replaces the contents of segment name (created
 * with mode 0600 when missing) with len bytes of data. Returns 0 or -errno. */
int mp__os_shm_write_file(const char *name, const void *data, size_t len);

/* mp__os_shm_read_file reads segment name into a new buffer of *len bytes
 * (plus a NUL), from mp__alloc; refuses segments over max bytes with
 * MP_ETOOBIG. Returns 0, MP_ENOENT, MP_EPERM (not private), -errno. */
int mp__os_shm_read_file(const char *name, size_t max, char **data,
                         size_t *len);

/* mp__os_pid_start_time stores when pid started, in clock ticks since boot
 * (a pid and its start time name one process, even after the pid is
 * reused). Returns 0 or MP_ESRCH. */
int mp__os_pid_start_time(pid_t pid, uint64_t *start);

/* mp__os_process_alive is false only when pid is known to be gone or, if
 * start is nonzero, known to be another process that reuses the pid
 * (mp__os_liveness: unknown means alive). */
bool mp__os_process_alive(pid_t pid, uint64_t start);

/* mp__os_spawn_daemon starts fn(fd, arg) in a detached process: forked
 * twice (so it is nobody's child), in a session of its own, with standard
 * input and output on /dev/null, every signal handler at its default and
 * SIGINT, SIGTERM, SIGHUP and SIGPIPE ignored, and no descriptor open but
 * keep_fd (passed to fn as fd). The daemon leaves with _exit when fn
 * returns. Returns 0 once the intermediate process is reaped, or -errno. */
int mp__os_spawn_daemon(int keep_fd, void (*fn)(int fd, void *arg),
                        void *arg);

/* mp__os_shm_mine says whether name is a regular file owned by the
 * caller (effective uid), looked at without following a link or opening
 * it (a planted FIFO would block an open). Returns 0 (*mine set),
 * MP_ENOENT or -errno. */
int mp__os_shm_mine(const char *name, bool *mine);

/* mp__os_shm_stat stores the identity (device and inode numbers) and the
 * size of the segment that name refers to now, with one look-up and
 * without opening it. Returns 0, MP_ENOENT or -errno. */
int mp__os_shm_stat(const char *name, uint64_t *dev, uint64_t *ino,
                    size_t *size);

#endif
