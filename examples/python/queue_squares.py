from multiprocessing import Process, Queue
def f(q, n):
    q.put(n*n+1)
    print("son process", id(q))
if __name__ == '__main__':
    q = Queue()
    print("main process", id(q))
    for i in range(3):
        p = Process(target=f, args=(q, i))
        p.start()
    print(q.get())
    print(q.get())
    print(q.get())
