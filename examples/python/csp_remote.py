# Not from a seed: the PyCSP program doing what the C example does (PyCSP's
# channel home on host A, Channel(..., connect=) on host B), as PyCSP
# documents it; PyCSP itself no longer runs on Python 3.7 and later.
from pycsp.parallel import *
import sys, time
@process
def consumer(cin):
    total = 0
    try:
        while True:
            v = cin()
            print('consumer (host A): got', v)
            total += v
    except ChannelRetireException:
        print('consumer (host A): the remote producer retired; total', total)
@process
def producer(address):
    c = Channel('numbers', connect=address)
    cout = c.writer()
    for i in range(10):
        time.sleep(0.1)
        print('producer (host B): writing', i, 'to', address)
        cout(i)
    retire(cout)
if __name__ == '__main__':
    if len(sys.argv) > 1:  # host B: python csp_remote.py hostA 7000
        Parallel(producer((sys.argv[1], int(sys.argv[2]))))
    else:                  # host A
        c = Channel('numbers')
        print('host A serves the channel on', c.address)
        Parallel(consumer(+c))
    shutdown()
