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
 * Run it once the creator has written the block (examples/demo_shm.sh
 * waits for that), as the seed's reader is run.
 *
 * Usage: shm_haha_attach [--name NAME | --quick]
 *   --quick  alone, as CTest runs it: runs shm_haha_create --quick (beside
 *            it), which makes a block of its own and runs this program on
 *            it; the exit status is theirs. */
#include <multiproc.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  const char *name = argc > 2 ? argv[2] : "haha"; /* --name NAME */
  if (argc == 2) { /* --quick, alone: the creator runs us on its block */
    char prog[4096];
    snprintf(prog, sizeof prog, "%.*screate", (int)strlen(argv[0]) - 6,
             argv[0]);
    return (int)MP_CHECK(mp_subprocess_run((char *[]){prog, argv[1], NULL},
                                           NULL, 0));
  }
  mp_shared_memory *shm;
  MP_CHECK(mp_shared_memory_open(&shm, name));
  unsigned char *buf = mp_shared_memory_buf(shm);
  printf("readed a shared memory, the size is %zu\n",
         mp_shared_memory_size(shm));
  printf("%d\n", buf[0]);
  mp_shared_memory_close(shm);
  MP_CHECK(mp_shared_memory_unlink(shm));
  mp_shared_memory_free(shm);
  return 0;
}
