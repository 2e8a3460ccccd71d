from multiprocessing import Pool
import time
def counter(n):
    i = 0
    for _ in range(n):
        i = i + 1
    return i
if __name__ == '__main__':
    start = time.time()
    counter(40000000)
    counter(40000000)
    serial = time.time() - start
    with Pool(2) as p:
        start = time.time()
        p.map(counter, [40000000, 40000000])
        parallel = time.time() - start
    print(serial, parallel, serial / parallel)
