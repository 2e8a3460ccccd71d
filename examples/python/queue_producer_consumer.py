import time, random, queue, threading
q = queue.Queue()
def Producer(name):
    count = 0
    while count < 10:
        print("making........")
        time.sleep(random.randrange(3))
        q.put(count)
        print('Producer %s has produced %s baozi..' % (name, count))
        count += 1
    print("ok......")
def Consumer(name):
    count = 0
    while count < 10:
        time.sleep(random.randrange(4))
        if not q.empty():
            data = q.get()
            print('Consumer %s has eat %s baozi...' % (name, data))
        else:
            print("-----no baozi anymore----")
        count += 1
p = threading.Thread(target=Producer, args=('A君',))
p2 = threading.Thread(target=Producer, args=('B君',))
c = threading.Thread(target=Consumer, args=('C君',))
c1 = threading.Thread(target=Consumer, args=('D君',))
c2 = threading.Thread(target=Consumer, args=('E君',))
p.start()
p2.start()
c.start()
c1.start()
c2.start()
