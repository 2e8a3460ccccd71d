"""manager_remote.py - the Python client of the remote-manager demo: a stock
SyncManager client that connects to a C manager server (tools/mp-manager) and
uses a dict and an Event a C client created, by their idents.

Usage: MP_MANAGER_AUTHKEY=key python3 manager_remote.py HOST:PORT DICT_ID EVENT_ID
"""
import os
import sys
from multiprocessing.managers import DictProxy, EventProxy, SyncManager, Token

host, port = sys.argv[1].rsplit(':', 1)
address = (host, int(port))
key = os.environ['MP_MANAGER_AUTHKEY'].encode()
m = SyncManager(address=address, authkey=key)
m.connect()
print('Python %s connected to %s:%s' % (sys.version.split()[0], host, port))
d = DictProxy(Token('dict', address, sys.argv[2]), 'pickle', authkey=key)
ev = EventProxy(Token('Event', address, sys.argv[3]), 'pickle', authkey=key)
print('Python sees', d.copy())
d['Python'] = 'hello from Python %s' % sys.version.split()[0]
ev.set()
