import threading, time
def countNum(n):
    print("running on number:%s" % n)
    time.sleep(3)
if __name__ == '__main__':
    t1 = threading.Thread(target=countNum, args=(23,))
    t2 = threading.Thread(target=countNum, args=(34,))
    t1.start()
    t2.start()
    print("ending!")

class MyThread(threading.Thread):
    def __init__(self, num):
        threading.Thread.__init__(self)
        self.num = num
    def run(self):
        print("running on number:%s" % self.num)
        time.sleep(3)
if __name__ == '__main__':
    t1 = MyThread(56)
    t2 = MyThread(78)
    t1.start()
    t2.start()
    print("ending")

from time import ctime, sleep

def Music(name):
    print("Begin listening to {name}. {time}".format(name=name, time=ctime()))
    sleep(3)
    print("end listening {time}".format(time=ctime()))
def Blog(title):
    print("Begin recording the {title}. {time}".format(title=title, time=ctime()))
    sleep(5)
    print('end recording {time}'.format(time=ctime()))
threads = []
t1 = threading.Thread(target=Music, args=('FILL ME',))
threads.append(t1)
t2 = threading.Thread(target=Blog, args=('',))
threads.append(t2)
if __name__ == '__main__':
    t2.setDaemon(True)
    for t in threads:
        t.start()
    t1.join()
    print("all over %s" % ctime())
