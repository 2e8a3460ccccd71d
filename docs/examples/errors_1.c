/* errors_1.c - reading a result code: test for the cases you handle,
 * report the rest with mp_error_message, which adds the detail. */
#include <errno.h>
#include <stdio.h>

#include <multiproc.h>

static int open_config_lock(mp_lock **out, const char *name) {
  int rc = mp_lock_open(out, name);
  switch (rc) {
  case 0:
    return 0;
  case MP_ENOENT: /* nobody created it yet: create it ourselves */
    return mp_lock_new(out, &(mp_sync_opts){.name = name});
  default:
    fprintf(stderr, "mp_lock_open(%s): %s\n", name, mp_error_message(rc));
    return rc;
  }
}

int main(void) {
  mp_lock *lock;
  int rc = open_config_lock(&lock, "bad/name"); /* '/' is not allowed */
  printf("bad name: %s, equals -EINVAL: %d\n", mp_err_name(rc),
         rc == -EINVAL);
  return rc == MP_EINVAL ? 0 : 1;
}
