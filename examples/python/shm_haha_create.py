import time
from multiprocessing import shared_memory
if __name__ == '__main__':
    shm = shared_memory.SharedMemory(name="haha", create=True, size=256)
    buf = shm.buf
    print("created a shared memory, the size is", shm.size)
    buf[0] = 0xab
    time.sleep(60)
    shm.close()
    shm.unlink()
