/* shared_memory.c - named SharedMemory, after Python's
 * multiprocessing.shared_memory.SharedMemory on POSIX: the user's name
 * exactly, passed to shm_open with a leading '/'; generated names
 * "psm_" + 8 hex digits; the attached size from the segment; no header of
 * ours inside the block, so Python sees the same bytes at the same offsets.
 *
 * The handle is process-local: the mapping's address and length are kept
 * here, never read back from the block, which other programs can write.
 * A creator registers the name with the resource tracker (unless told not
 * to), before the name even exists; attaching never registers. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define GENERATED_PREFIX "psm_"
#define GENERATED_TRIES 100

struct mp_shared_memory {
  void *buf;    /* NULL after close */
  size_t size;  /* what the caller sees: asked for, or the segment's */
  char name[MP_SHARED_MEMORY_NAME_MAX + 1];
};

/* Python accepts any name shm_open accepts; glibc refuses '/' inside a
 * name and names of NAME_MAX - 1 bytes or more. "." and ".." would be the
 * directory itself. */
static int name_valid(const char *name) {
  if (name == NULL)
    return mp__fail(MP_EINVAL, "name is NULL");
  if (name[0] == '\0')
    return mp__fail(MP_EINVAL, "name is empty");
  if (strchr(name, '/') != NULL)
    return mp__fail(MP_EINVAL, "name contains '/'");
  if (strlen(name) > MP_SHARED_MEMORY_NAME_MAX)
    return mp__fail(MP_ENAMETOOLONG, "name is %zu bytes, over %d",
                    strlen(name), MP_SHARED_MEMORY_NAME_MAX);
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return mp__fail(MP_EINVAL, "name is '%s'", name);
  return 0;
}

/* A tracked block is registered before its name exists (see
 * mp__tracker_create): its creator may be killed at any moment. */
static int create(const char *name, size_t size, bool tracked, int *fd) {
  return tracked ? mp__tracker_create(name, size, fd)
                 : mp__os_shm_create(name, size, fd);
}

static int generate_name(char *out, size_t cap) {
  unsigned char r[4];
  int rc = mp__os_random(r, sizeof r);
  if (rc != 0)
    return rc;
  snprintf(out, cap, GENERATED_PREFIX "%02x%02x%02x%02x", r[0], r[1], r[2],
           r[3]);
  return 0;
}

int mp_shared_memory_new(mp_shared_memory **out, const char *name,
                         size_t size, const mp_shared_memory_opts *opts) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  /* Python: "'size' must be a positive number different from zero". */
  if (size == 0)
    return mp__fail(MP_EINVAL, "size is 0");
  int rc;
  if (name != NULL && (rc = name_valid(name)) != 0)
    return rc;
  mp_shared_memory *shm = mp__calloc(1, sizeof *shm);
  if (shm == NULL)
    return MP_ENOMEM;
  int fd = -1;
  bool tracked = !(opts != NULL && opts->untracked);
  if (name != NULL) {
    memcpy(shm->name, name, strlen(name) + 1);
    rc = create(shm->name, size, tracked, &fd);
  } else {
    /* As Python: draw names until one is free. */
    rc = MP_EEXIST;
    for (int i = 0; i < GENERATED_TRIES && rc == MP_EEXIST; i++) {
      if ((rc = generate_name(shm->name, sizeof shm->name)) != 0)
        break;
      rc = create(shm->name, size, tracked, &fd);
    }
  }
  if (rc != 0) {
    mp__free(shm);
    return rc;
  }
  mp__fault(MP__FAULT_SHM_CREATED, shm->name);
  rc = mp__os_map_shared(fd, size, &shm->buf);
  close(fd);
  if (rc == 0 && tracked)
    rc = mp__tracker_register(shm->name, size);
  if (rc != 0) {
    if (shm->buf != NULL)
      mp__os_unmap(shm->buf, size);
    mp__os_shm_unlink(shm->name);
    mp__free(shm);
    return rc;
  }
  shm->size = size;
  *out = shm;
  return 0;
}

int mp_shared_memory_open(mp_shared_memory **out, const char *name) {
  if (out == NULL)
    return mp__fail(MP_EINVAL, "out is NULL");
  int rc = name_valid(name);
  if (rc != 0)
    return rc;
  mp_shared_memory *shm = mp__calloc(1, sizeof *shm);
  if (shm == NULL)
    return MP_ENOMEM;
  memcpy(shm->name, name, strlen(name) + 1);
  int fd;
  size_t size;
  if ((rc = mp__os_shm_open(shm->name, &fd, &size)) != 0) {
    mp__free(shm);
    return rc;
  }
  /* An empty block has nothing to map (Python: "cannot mmap an empty
   * file"); it is also what a creator shows between shm_open and
   * ftruncate. */
  if (size == 0)
    rc = mp__fail(MP_EINVAL, "the block '%s' is empty (0 bytes)", name);
  else
    rc = mp__os_map_shared(fd, size, &shm->buf);
  close(fd);
  if (rc != 0) {
    mp__free(shm);
    return rc;
  }
  shm->size = size;
  *out = shm;
  return 0;
}

void *mp_shared_memory_buf(const mp_shared_memory *shm) {
  return shm != NULL ? shm->buf : NULL;
}

size_t mp_shared_memory_size(const mp_shared_memory *shm) {
  return shm != NULL ? shm->size : 0;
}

const char *mp_shared_memory_name(const mp_shared_memory *shm) {
  return shm != NULL ? shm->name : NULL;
}

int mp_shared_memory_close(mp_shared_memory *shm) {
  if (shm == NULL)
    return mp__fail(MP_EINVAL, "shm is NULL");
  if (shm->buf != NULL) {
    mp__os_unmap(shm->buf, shm->size);
    shm->buf = NULL;
  }
  return 0;
}

int mp_shared_memory_unlink(mp_shared_memory *shm) {
  if (shm == NULL)
    return mp__fail(MP_EINVAL, "shm is NULL");
  int rc = mp__os_shm_unlink(shm->name);
  /* Unregister even when it was gone already: nothing is left to guard. */
  mp__tracker_unregister(shm->name);
  return rc;
}

void mp_shared_memory_free(mp_shared_memory *shm) {
  if (shm == NULL)
    return;
  mp_shared_memory_close(shm);
  mp__free(shm);
}
