# Not from a seed: the shortest multiprocessing.connection program doing what the C example does
# (the server, which runs the Python client below in python3).
import subprocess, sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Listener
CLIENT = '''
import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
host, _, port = sys.argv[1].rpartition(':')
try:
    with Client((host, int(port)), authkey=sys.argv[2].encode()) as c:
        c.send_bytes(b'hello from python')
        print('  python client: got', c.recv_bytes(), flush=True)
except AuthenticationError as e:
    print('  python client: AuthenticationError:', e, flush=True)
'''
with Listener(('127.0.0.1', 0), authkey=b'secret password') as l:
    address = '%s:%d' % l.address
    print('server listening on', address, flush=True)
    for key in ('secret password', 'wrong key'):
        p = subprocess.Popen([sys.executable, '-c', CLIENT, address, key])
        try:
            with l.accept() as c:
                print('  server: got %r from %s' % (c.recv_bytes(), l.last_accepted), flush=True)
                c.send_bytes(b'hello from the server')
        except AuthenticationError as e:
            print('  server: refused:', e, flush=True)
        p.wait()
