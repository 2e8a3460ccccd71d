from multiprocessing import shared_memory
if __name__ == '__main__':
    shm = shared_memory.SharedMemory(name="haha")
    buf = shm.buf
    print("readed a shared memory, the size is", shm.size)
    print(buf[0])
    shm.close()
    shm.unlink()
