/* shared_memory.c - named SharedMemory, after Python's
 * multiprocessing.shared_memory.SharedMemory on POSIX: the user's name
 * exactly, passed to shm_open with a leading '/'; generated names
 * "psm_" + 8 hex digits; the attached size from the segment; no header of
 * ours inside the block, so Python sees the same bytes at the same offsets.
 *
 * The handle is process-local: the mapping's address and length are kept
 * here, never read back from the block, which other programs can write.
 * A creator registers the name with the resource tracker (unless told not
 * to); attaching never registers. */
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
  if (name == NULL || name[0] == '\0')
    return MP_EINVAL;
  if (strchr(name, '/') != NULL)
    return MP_EINVAL;
  if (strlen(name) > MP_SHARED_MEMORY_NAME_MAX)
    return MP_ENAMETOOLONG;
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return MP_EINVAL;
  return 0;
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
    return MP_EINVAL;
  /* Python: "'size' must be a positive number different from zero". */
  if (size == 0)
    return MP_EINVAL;
  int rc;
  if (name != NULL && (rc = name_valid(name)) != 0)
    return rc;
  mp_shared_memory *shm = mp__calloc(1, sizeof *shm);
  if (shm == NULL)
    return MP_ENOMEM;
  int fd = -1;
  if (name != NULL) {
    memcpy(shm->name, name, strlen(name) + 1);
    rc = mp__os_shm_create(shm->name, size, &fd);
  } else {
    /* As Python: draw names until one is free. */
    rc = MP_EEXIST;
    for (int i = 0; i < GENERATED_TRIES && rc == MP_EEXIST; i++) {
      if ((rc = generate_name(shm->name, sizeof shm->name)) != 0)
        break;
      rc = mp__os_shm_create(shm->name, size, &fd);
    }
  }
  if (rc != 0) {
    mp__free(shm);
    return rc;
  }
  rc = mp__os_map_shared(fd, size, &shm->buf);
  close(fd);
  if (rc == 0 && !(opts != NULL && opts->untracked))
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
    return MP_EINVAL;
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
    rc = MP_EINVAL;
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
    return MP_EINVAL;
  if (shm->buf != NULL) {
    mp__os_unmap(shm->buf, shm->size);
    shm->buf = NULL;
  }
  return 0;
}

int mp_shared_memory_unlink(mp_shared_memory *shm) {
  if (shm == NULL)
    return MP_EINVAL;
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
