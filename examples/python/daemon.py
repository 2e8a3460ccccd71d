from multiprocessing import Process
import time
def ticker():                      # never gets to finish
    for i in range(20):
        print("daemon child: tick", i)
        time.sleep(0.3)
    print("daemon child: finished")
def worker():
    time.sleep(1)
    print("non-daemonic child: finished its work")
def parent():
    d = Process(target=ticker, daemon=True)
    d.start()
    w = Process(target=worker)
    w.start()
    time.sleep(0.5)
    print("parent: returning without join()")
    # at its end: d is terminated, w is joined
if __name__ == '__main__':
    p = Process(target=parent)
    p.start()
    p.join()
