# Not from a seed: the shortest multiprocessing.connection program doing what the C example does
# (the client, which runs the Python server below in python3).
import subprocess, sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
SERVER = '''
import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Listener
with Listener(('127.0.0.1', 0), authkey=sys.argv[1].encode()) as l:
    print('%s:%d' % l.address, flush=True)
    for _ in range(2):
        try:
            with l.accept() as c:
                print('  python server: got', c.recv_bytes(), flush=True)
                c.send_bytes(b'hello from python')
        except AuthenticationError as e:
            print('  python server: AuthenticationError:', e, flush=True)
'''
p = subprocess.Popen([sys.executable, '-c', SERVER, 'secret password'], stdout=subprocess.PIPE, text=True)
host, _, port = p.stdout.readline().strip().rpartition(':')
print('python3 server listening on %s:%s' % (host, port))
for key in (b'secret password', b'wrong key'):
    try:
        with Client((host, int(port)), authkey=key) as c:
            c.send_bytes(b'hello from the client')
            print('  client: got', c.recv_bytes())
    except AuthenticationError as e:
        print('  client: refused:', e)
    print(p.stdout.readline(), end='')
p.wait()
