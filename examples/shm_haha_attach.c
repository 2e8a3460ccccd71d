/* shm_haha_attach.c - the other of two programs sharing a named block: it
 * attaches to "haha", prints its size and first byte (171, the 0xab that
 * shm_haha_create or the seed's Python creator wrote), then closes and
 * unlinks it, as the seed's reader does.
 *
 * It mirrors this Python program (seed 002, "通过名称创建共享内存 / 读取"):
 *
 *   from multiprocessing import shared_memory
 *   if __name__ == '__main__':
 *       shm = shared_memory.SharedMemory(name="haha")
 *       buf = shm.buf
 *       print("readed a shared memory, the size is", shm.size)
 *       print(buf[0])
 *       shm.close()
 *       shm.unlink()
 *
 * Usage: shm_haha_attach [--name NAME] [--quick]
 *   --quick  alone, as CTest runs it: a unique name, and this program
 *            starts the creator (shm_haha_create beside it) itself first. */
#define _GNU_SOURCE
#include <libgen.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <multiproc.h>

extern char **environ;

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
  int quick = 0;
  char unique[64];
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      quick = 1;
    else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
      name = argv[++i];
  }
  pid_t creator = -1;
  if (quick) {
    snprintf(unique, sizeof unique, "haha-%d", (int)getpid());
    name = unique;
    char *args[] = {NULL, "--name", (char *)name, "--wait", "30", NULL};
    creator = start_sibling("shm_haha_create", args);
    if (creator < 0) {
      fprintf(stderr, "could not start shm_haha_create\n");
      return 1;
    }
  }

  /* The creator may still be starting: try for a few seconds. */
  mp_shared_memory *shm = NULL;
  int rc = MP_ENOENT;
  struct timespec tick = {0, 10 * 1000 * 1000};
  for (int tries = 0; tries < 1000; tries++) {
    rc = mp_shared_memory_open(&shm, name);
    if (rc == 0 && ((unsigned char *)mp_shared_memory_buf(shm))[0] == 0xab)
      break;
    if (rc == 0) {
      mp_shared_memory_free(shm);
      shm = NULL;
    }
    if (rc != 0 && rc != MP_ENOENT && rc != MP_EINVAL)
      break;
    nanosleep(&tick, NULL);
  }
  if (shm == NULL) {
    fprintf(stderr, "SharedMemory(%s): %s\n", name, mp_strerror(rc));
    return 1;
  }
  unsigned char *buf = mp_shared_memory_buf(shm);
  printf("readed a shared memory, the size is %zu\n",
         mp_shared_memory_size(shm));
  printf("%d\n", buf[0]);
  fflush(stdout);
  mp_shared_memory_close(shm);
  rc = mp_shared_memory_unlink(shm);
  mp_shared_memory_free(shm);
  int status = 0;
  if (creator > 0)
    waitpid(creator, &status, 0);
  return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
