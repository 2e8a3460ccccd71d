from multiprocessing import Process
import os, time
def info(name):
    print("name:", name)
    print('parent process:', os.getppid())
    print('process id:', os.getpid())
    print("------------------")
    time.sleep(1)
def foo(name):
    info(name)
if __name__ == '__main__':
    info('main process line')
    p1 = Process(target=info, args=('alvin',))
    p2 = Process(target=foo, args=('egon',))
    p1.start()
    p2.start()
    p1.join()
    p2.join()
    print("ending")

class MyProcess(Process):
    def __init__(self):
        super(MyProcess, self).__init__()
    def run(self):
        print('hello', self.name, time.ctime())
        time.sleep(1)
if __name__ == '__main__':
    p_list = []
    for i in range(3):
        p = MyProcess()
        p.start()
        p_list.append(p)
    for p in p_list:
        p.join()
    print('end')
