"""shm_haha_create.py - the seed's creator (seed 002, "通过名称创建共享内存"),
with the 60 s sleep cut short once the reader has unlinked the block, so
`make demo` does not wait a minute. Pair it with shm_haha_attach (C) or
shm_haha_attach.py.

usage: python3 shm_haha_create.py [--name NAME] [--wait SECONDS]
"""
import argparse
import os
import time
from multiprocessing import resource_tracker, shared_memory

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="haha")
    ap.add_argument("--wait", type=float, default=60)
    args = ap.parse_args()
    # 创建一个共享内存
    shm = shared_memory.SharedMemory(name=args.name, create=True, size=256)
    buf = shm.buf
    print("created a shared memory, the size is", shm.size, flush=True)
    buf[0] = 0xab
    # 这里休眠一分钟,等待另一个进程能够读取 (at most; the reader unlinks)
    end = time.monotonic() + args.wait
    while time.monotonic() < end and os.path.exists("/dev/shm/" + args.name):
        time.sleep(0.05)
    shm.close()
    try:
        shm.unlink()
    except FileNotFoundError:
        print("the reader unlinked it already")
        # unlink() raised before it unregistered the name: without this,
        # Python's resource tracker would unlink "haha" again when it shuts
        # down, even if someone has created a new "haha" meanwhile.
        resource_tracker.unregister(shm._name, "shared_memory")
