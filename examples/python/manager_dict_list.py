from multiprocessing import Process, Manager

def f(d, l,n):

    d[n] = n
    d["name"] ="alvin"
    l.append(n)
    #print("l",l)
if __name__ == '__main__':
    with Manager() as manager:
        d = manager.dict()
        l = manager.list(range(5))
        p_list = []
        for i in range(10):
            p = Process(target=f, args=(d,l,i))
            p.start()
            p_list.append(p)
        for res in p_list:
            res.join()
        print(d)
        print(l)

import time
import multiprocessing as mp
def func_1(dict, list):
    dict["haha"] = 88
    list.append(20)
if __name__ == '__main__':
    with mp.Manager() as m:
        d = m.dict()
        l = m.list()
        p = mp.Process(target=func_1, args=(d, l))
        p.start()
        p.join()
        time.sleep(0.1)
        print(d)
        print(l)
