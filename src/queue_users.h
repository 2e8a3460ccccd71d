/* queue_users.h - what the resource tracker asks of a named queue's
 * segment (queue_users.c): has every process that used it ended? */
#ifndef MP_QUEUE_USERS_H
#define MP_QUEUE_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* mp__queue_users_gone: state holds len bytes copied from the start of a
 * named queue's segment; true only when it is a named queue whose table
 * of users names no process that may still run, as seen from PID
 * namespace own_ns (its inode; 0: unknown, so never). An overflowed
 * table, an entry of another namespace and anything unreadable mean the
 * queue is used. */
bool mp__queue_users_gone(const void *state, size_t len, uint64_t own_ns);

/* mp__queue_file_users_gone: the same, read from the segment open as fd. */
bool mp__queue_file_users_gone(int fd);

#endif
