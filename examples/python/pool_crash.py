import ctypes
from multiprocessing import Pool
def buggy(n):
    if n == 4:
        ctypes.string_at(0)  # segfaults this worker
    return n * n
if __name__ == '__main__':
    with Pool(4) as pool:
        print(pool.map(buggy, range(10)))  # hangs: Python never fails item 4
