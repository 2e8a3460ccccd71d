import multiprocessing as mp
def func(q, arg):
    print("input : ", arg)
    q.put(arg)
    print("Process done ...")
if __name__ == '__main__':
    q = mp.Queue()
    p = mp.Process(target=func, args=(q, "I'm process"))
    p.start()
    p.join()
    print(q.get())

from multiprocessing import Process, Queue
def f(q):
    q.put([42, None, 'hello'])
if __name__ == '__main__':
    q = Queue()
    p = Process(target=f, args=(q,))
    p.start()
    print(q.get())
    p.join()
