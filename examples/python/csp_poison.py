# Not from a seed: the shortest PyCSP program doing what the C example does.
from pycsp.parallel import *
import itertools, time
@process
def generator(cout):
    for i in itertools.count(1):
        try:
            cout(i)
        except ChannelPoisonException:
            print('generator: stopped by poison after %d numbers' % (i - 1))
            raise
@process
def worker(id, cin, cout):
    try:
        while True:
            v = cin()
            time.sleep(0.02)
            cout(v * v)
    except ChannelPoisonException:
        print('worker %d: poisoned, passing it on' % id)
        raise
@process
def collector(cin):
    for i in range(10):
        print('collector:', cin())
    print('collector: enough, poisoning')
    poison(cin)
if __name__ == '__main__':
    a, b = Channel(), Channel()
    Parallel(generator(-a), [worker(i, +a, -b) for i in (1, 2, 3)], collector(+b))
    print('network: every process ended by the one poison')
