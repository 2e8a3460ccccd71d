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
 * Usage: shm_haha_attach [--name NAME | --quick]
 *   --quick  alone, as CTest runs it: a unique name, and this program
 *            starts its partner (beside it) itself.*/
#include <multiproc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  char name[64] = "haha";
  mp_process *creator = NULL;
  int alone = argc == 2; /* --quick, under CTest: a name of our own */
  if (argc > 2)          /* --name NAME */
    snprintf(name, sizeof name, "%s", argv[2]);
  if (alone) { /* start shm_haha_create, beside us, first */
    char prog[4096];
    snprintf(name, sizeof name, "haha-%d", (int)getpid());
    snprintf(prog, sizeof prog, "%.*screate", (int)strlen(argv[0]) - 6,
             argv[0]);
    char *args[] = {prog, "--name", name, NULL};
    MP_CHECK(mp_process_new(&creator, NULL, NULL,
                            &(mp_process_opts){.exec_argv = args}));
    MP_CHECK(mp_process_start(creator));
  }
  mp_shared_memory *shm; /* the creator may still be starting: retry */
  int rc;
  for (int i = 0; (rc = mp_shared_memory_open(&shm, name)) != 0 && i < 500; i++)
    mp_sleep(0.01);
  MP_CHECK(rc);
  unsigned char *buf = mp_shared_memory_buf(shm);
  for (int i = 0; buf[0] != 0xab && i < 500; i++)
    mp_sleep(0.01);
  printf("readed a shared memory, the size is %zu\n",
         mp_shared_memory_size(shm));
  printf("%d\n", buf[0]);
  mp_shared_memory_close(shm);
  MP_CHECK(mp_shared_memory_unlink(shm));
  mp_shared_memory_free(shm);
  if (creator != NULL)
    MP_CHECK(mp_process_join(creator, MP_FOREVER));
  mp_process_free(creator);
  return 0;
}
