/* shared_2.c - a named block, created and attached (docs/shared.md). A
 * Python program attaches with shared_memory.SharedMemory("haha"). */
#include <stdio.h>

#include <multiproc.h>

int main(void) {
  mp_shared_memory *shm, *other;
  int rc = mp_shared_memory_new(&shm, "haha", 256, NULL);
  if (rc != 0) {
    fprintf(stderr, "mp_shared_memory_new: %s\n", mp_error_message(rc));
    return 1;
  }
  unsigned char *buf = mp_shared_memory_buf(shm);
  buf[0] = 0xab;
  if (mp_shared_memory_open(&other, "haha") == 0) {
    unsigned char *b = mp_shared_memory_buf(other);
    printf("%zu bytes, first %d\n", mp_shared_memory_size(other), b[0]);
    mp_shared_memory_free(other);
  }
  mp_shared_memory_unlink(shm);
  mp_shared_memory_free(shm);
  return 0;
}
