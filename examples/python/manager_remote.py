# Not from a seed (seed 001 only names "local and remote concurrency"): the shortest SyncManager program doing what the C example does.
import os, sys
from multiprocessing import Process
from multiprocessing.managers import SyncManager
def other_client(d, ev):
    d['other Python client'] = 'forked'
    ev.set()
if __name__ == '__main__':
    remote = len(sys.argv) > 1 and sys.argv[1] != '--quick'
    if remote:
        host, port = sys.argv[1].rsplit(':', 1)
        m = SyncManager(address=(host, int(port)), authkey=os.environ['MP_MANAGER_AUTHKEY'].encode())
        m.connect()
    else:
        m = SyncManager(address=('127.0.0.1', 0), authkey=b'demo')
        m.start()
    print('connected to the manager at %s:%d' % m.address)
    d = m.dict()
    ev = m.Event()
    d['Python'] = 'hello from Python'
    print('TOKENS', d._token.id, ev._token.id, flush=True)
    if not remote:
        p = Process(target=other_client, args=(d, ev))
        p.start()
    print('waiting for the other client...', flush=True)
    ev.wait(60)
    print('the shared dict:', d)
    if not remote:
        p.join()
    sys.exit(0 if len(d) == 2 else 1)
