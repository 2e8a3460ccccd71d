# Not from a seed: the shortest PyCSP program doing what the C example does.
from pycsp.parallel import *
import time
@process
def producer(cout):
    for i in range(10):
        time.sleep(0.1)
        print('producer: writing', i)
        cout(i)
    retire(cout)
@process
def consumer(cin):
    total = 0
    try:
        while True:
            v = cin()
            print('consumer: got', v)
            total += v
    except ChannelRetireException:
        print('consumer: the producer retired; total', total)
if __name__ == '__main__':
    c = Channel()
    Parallel(producer(-c), consumer(+c))
