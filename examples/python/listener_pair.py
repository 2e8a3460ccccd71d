# Not from a seed: the shortest multiprocessing.connection program doing what the C example does.
from multiprocessing import Process, AuthenticationError
from multiprocessing.connection import Listener, Client
KEY = b'secret password'
def client(address, key):
    try:
        with Client(address, authkey=key) as conn:
            conn.send_bytes(b'hello, server')
            print('  client (key %r): got %r' % (key, conn.recv_bytes()))
    except AuthenticationError as e:
        print('  client (key %r): refused: %s' % (key, e))
if __name__ == '__main__':
    with Listener(('127.0.0.1', 0), authkey=KEY) as l:
        print('server listening on %s:%d' % l.address)
        for key in (KEY, b'wrong key'):
            p = Process(target=client, args=(l.address, key))
            p.start()
            try:
                with l.accept() as conn:
                    print('  server: connection accepted from', l.last_accepted)
                    print('  server: got', conn.recv_bytes())
                    conn.send_bytes(b'hello, client')
            except AuthenticationError as e:
                print('  server: handshake refused:', e)
            p.join()
