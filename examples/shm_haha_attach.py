"""shm_haha_attach.py - the seed's reader (seed 002, "通过名称创建共享内存 /
读取"), unchanged but for the name option. Pair it with shm_haha_create (C)
or shm_haha_create.py.

usage: python3 shm_haha_attach.py [--name NAME]
"""
import argparse
import time
from multiprocessing import shared_memory

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="haha")
    args = ap.parse_args()
    for _ in range(500):  # the creator may still be starting
        try:
            shm = shared_memory.SharedMemory(name=args.name)
            if shm.buf[0] == 0xab:
                break
            shm.close()
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.01)
    else:
        raise SystemExit("no block named %s with 0xab in it" % args.name)
    buf = shm.buf
    print("readed a shared memory, the size is", shm.size)
    print(buf[0])
    shm.close()
    shm.unlink()
