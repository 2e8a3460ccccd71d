/* shm_haha_create.c - one of two programs sharing a named block: this one
 * creates "haha" (256 bytes), writes 0xab into its first byte and waits
 * for the other program (shm_haha_attach, in C, or the seed's reader in
 * Python) to read it. Either side may be Python: the block is
 * /dev/shm/haha, exactly what Python's SharedMemory("haha") opens.
 *
 * It mirrors this Python program (seed 002, "通过名称创建共享内存"):
 *
 *   import time
 *   from multiprocessing import shared_memory
 *   if __name__ == '__main__':
 *       shm = shared_memory.SharedMemory(name="haha", create=True, size=256)
 *       buf = shm.buf
 *       print("created a shared memory, the size is", shm.size)
 *       buf[0] = 0xab
 *       time.sleep(60)
 *       shm.close()
 *       shm.unlink()
 *
 * Instead of always sleeping 60 s it waits at most that long, and stops as
 * soon as the reader has unlinked the block (the seed's reader does).
 *
 * Usage: shm_haha_create [--name NAME] [--wait SECONDS] [--quick]
 *   --quick  alone, as CTest runs it: a unique name, and this program
 *            starts the reader (shm_haha_attach beside it) itself. */
#define _GNU_SOURCE
#include <libgen.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <multiproc.h>

extern char **environ;

/* Starts the program `sibling` that sits beside this one. */
static pid_t start_sibling(const char *sibling, char **args) {
  char self[4096], path[4200];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return -1;
  self[n] = '\0';
  snprintf(path, sizeof path, "%s/%s", dirname(self), sibling);
  args[0] = path;
  pid_t pid;
  if (posix_spawn(&pid, path, NULL, NULL, args, environ) != 0)
    return -1;
  return pid;
}

int main(int argc, char **argv) {
  const char *name = "haha";
  double wait = 60;
  int quick = 0;
  char unique[64];
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      quick = 1;
    else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
      name = argv[++i];
    else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc)
      wait = atof(argv[++i]);
  }
  if (quick) {
    snprintf(unique, sizeof unique, "haha-%d", (int)getpid());
    name = unique;
    wait = 30;
  }

  mp_shared_memory *shm;
  int rc = mp_shared_memory_new(&shm, name, 256, NULL);
  if (rc != 0) {
    fprintf(stderr, "SharedMemory(%s): %s\n", name, mp_strerror(rc));
    return 1;
  }
  unsigned char *buf = mp_shared_memory_buf(shm);
  printf("created a shared memory, the size is %zu\n",
         mp_shared_memory_size(shm));
  fflush(stdout);
  buf[0] = 0xab;

  pid_t reader = -1;
  if (quick) {
    char *args[] = {NULL, "--name", (char *)name, NULL};
    reader = start_sibling("shm_haha_attach", args);
    if (reader < 0) {
      fprintf(stderr, "could not start shm_haha_attach\n");
      mp_shared_memory_unlink(shm);
      mp_shared_memory_free(shm);
      return 1;
    }
  }

  /* time.sleep(60), cut short once the reader has unlinked the block. */
  struct timespec tick = {0, 50 * 1000 * 1000};
  for (double waited = 0; waited < wait; waited += 0.05) {
    mp_shared_memory *probe;
    if (mp_shared_memory_open(&probe, name) == MP_ENOENT)
      break;
    mp_shared_memory_free(probe);
    nanosleep(&tick, NULL);
  }
  int status = 0;
  if (reader > 0)
    waitpid(reader, &status, 0);

  mp_shared_memory_close(shm);
  rc = mp_shared_memory_unlink(shm);
  if (rc == MP_ENOENT)
    printf("the reader unlinked it already\n");
  mp_shared_memory_free(shm);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
