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
 * Usage: shm_haha_create [--name NAME | --quick]
 *   --quick  alone, as CTest runs it: a unique name, and this program
 *            runs its partner (beside it) on the block itself. */
#include <multiproc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  char name[64] = "haha", path[80], prog[4096];
  if (argc > 2) /* --name NAME */
    snprintf(name, sizeof name, "%s", argv[2]);
  else if (argc == 2) /* --quick, alone: a name of our own */
    snprintf(name, sizeof name, "haha-%d", (int)getpid());
  mp_shared_memory *shm;
  MP_CHECK(mp_shared_memory_new(&shm, name, 256, NULL));
  unsigned char *buf = mp_shared_memory_buf(shm);
  printf("created a shared memory, the size is %zu\n",
         mp_shared_memory_size(shm));
  fflush(stdout); /* shown before the reader's lines, as Python's print */
  buf[0] = 0xab;
  if (argc == 2) { /* alone: run shm_haha_attach, beside us, on the block */
    snprintf(prog, sizeof prog, "%.*sattach", (int)strlen(*argv) - 6, *argv);
    MP_CHECK(mp_subprocess_run((char *[]){prog, "--name", name, NULL}, NULL, 0));
  }
  /* time.sleep(60), cut short once the reader has unlinked the block */
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  for (int i = 0; i < 1200 && access(path, F_OK) == 0; i++)
    mp_sleep(0.05);
  mp_shared_memory_close(shm);
  if (mp_shared_memory_unlink(shm) == MP_ENOENT)
    printf("the reader unlinked it already\n");
  mp_shared_memory_free(shm);
  return 0;
}
