import threading, time
s = time.time()
num = 100
lock = threading.Lock()
def sub():
    global num
    lock.acquire()
    tmp = num
    time.sleep(0.1)
    num = tmp - 1
    lock.release()
t = {}
for i in range(100):
    t[i] = threading.Thread(target=sub)
    t[i].start()
for i in range(100):
    t[i].join()
print("num:%s,time%s" % (num, time.time() - s))
