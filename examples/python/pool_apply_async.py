from multiprocessing import Pool
import time
def foo(args):
    time.sleep(1)
    print(args)
if __name__ == '__main__':
    p = Pool(5)
    for i in range(30):
        p.apply_async(func=foo, args=(i,))
    p.close()    # no more tasks; the workers finish what they have
    p.join()     # wait for the workers (after close or terminate)
