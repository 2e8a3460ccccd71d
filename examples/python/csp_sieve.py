# Not from a seed: the shortest PyCSP program doing what the C example does.
from pycsp.parallel import *
import sys
@process
def generator(cout, limit):
    for i in range(2, limit):
        cout(i)
    retire(cout)
@process
def sieve(cin):
    prime = cin()
    print(prime)
    c = Channel()
    Parallel(sieve(+c), passon(prime, cin, -c))
@process
def passon(prime, cin, cout):
    while True:
        v = cin()
        if v % prime:
            cout(v)
if __name__ == '__main__':
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    print('primes below %d, one process each:' % limit)
    c = Channel()
    Parallel(generator(-c, limit), sieve(+c))
