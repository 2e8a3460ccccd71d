import multiprocessing as mp
def func_1(v):
    v.value = 20
if __name__ == '__main__':
    v = mp.Value('i', 10)
    p = mp.Process(target=func_1, args=(v, ))
    p.start()
    p.join()
    print(v.value)                      # 20

from multiprocessing import Process, Value, Array
def f(n, a):
    n.value = 3.1415927
    for i in range(len(a)):
        a[i] = -a[i]
if __name__ == '__main__':
    num = Value('d', 0.0)
    arr = Array('i', range(10))
    p = Process(target=f, args=(num, arr))
    p.start()
    p.join()
    print(num.value)                    # 3.1415927
    print(arr[:])                       # [0, -1, -2, ..., -9]
