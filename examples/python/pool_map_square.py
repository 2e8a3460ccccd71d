import multiprocessing
def task(n):
    return n * n
if __name__ == "__main__":
    pool = multiprocessing.Pool(4)
    result = pool.map(task, [1, 2, 3, 4, 5])
    pool.close()
    pool.join()
    print(result)
