"""manager_peer.py - the Python side of test_interop_manager.c.

  manager_peer.py client ADDRESS   a stock SyncManager(address, authkey).connect()
                                   client that uses a C manager server: dict,
                                   list, Namespace, Queue, Lock, Event, Value,
                                   the exceptions, nested values and proxies,
                                   and the C server's atomic operations through
                                   _callmethod. Prints OK and exits 0.
  manager_peer.py server ADDRESS   a stock SyncManager server (get_server()) on
                                   ADDRESS ("host:0" or a path); prints the
                                   address it got, serves until a client sends
                                   shutdown.
The authkey is b'secret' on both sides.
"""
import array
import multiprocessing
import queue
import sys
from multiprocessing.managers import SyncManager

KEY = b'secret'


def parse(addr):
    if ':' in addr and not addr.startswith('/'):
        host, port = addr.rsplit(':', 1)
        return (host, int(port))
    return addr


def check(cond, what):
    if not cond:
        print('FAILED:', what, flush=True)
        sys.exit(1)


def client(addr):
    # Nested proxies are rebuilt with the process authkey, as in Python.
    multiprocessing.current_process().authkey = KEY
    m = SyncManager(address=parse(addr), authkey=KEY)
    m.connect()

    d = m.dict()
    nested = [1, 2.5, None, 'text', b'\x00bytes', (1, (2, 3)), {'k': [True, False]}, -2**63]
    d['a'] = 1
    d['nested'] = nested
    check(d['a'] == 1 and d['nested'] == nested, 'nested values round trip')
    check(len(d) == 2 and 'a' in d and 'zz' not in d, 'len/contains')
    check(d.get('zz', 7) == 7, 'get default')
    try:
        d['missing']
        check(False, 'KeyError expected')
    except KeyError as e:
        check(e.args == ('missing',), 'KeyError args')
    check(sorted(d.keys()) == ['a', 'nested'], 'keys')
    check(list(d) == ['a', 'nested'], 'iter (Iterator proxy)')
    d.update({'b': 2}, c=3)
    check(d.pop('b') == 2 and d.setdefault('c', 9) == 3, 'pop/setdefault')
    check(d.copy() == {'a': 1, 'nested': nested, 'c': 3}, 'copy')
    check(str(d) == repr(d.copy()), '__str__ fallback')
    del d['c']

    check(m.list(range(2, 5))[:] == [2, 3, 4], 'list(range)')
    lst = m.list([3, 1, 2])
    lst.append(4)
    lst.extend([5])
    lst += [6]
    check(lst[1:3] == [1, 2] and lst[-1] == 6 and len(lst) == 6, 'list slice/index')
    lst.sort()
    check(lst[:] == [1, 2, 3, 4, 5, 6], 'sort')
    lst[0] = 'x'
    del lst[1]
    check(lst.pop() == 6 and lst.index(3) == 1 and lst.count('x') == 1, 'pop/index/count')
    try:
        lst[100]
        check(False, 'IndexError expected')
    except IndexError as e:
        check(str(e) == 'list index out of range', 'IndexError text')
    try:
        lst.remove('nope')
        check(False, 'ValueError expected')
    except ValueError:
        pass

    ns = m.Namespace(x=1, y=2)
    ns.x += 5
    ns.y *= 10
    check((ns.x, ns.y) == (6, 20), 'Namespace')
    check(str(ns) == 'Namespace(x=6, y=20)', 'Namespace str: ' + str(ns))
    try:
        ns.missing
        check(False, 'AttributeError expected')
    except AttributeError:
        pass

    q = m.Queue()
    q.put({'job': 1})
    check(q.get() == {'job': 1} and q.qsize() == 0 and q.empty(), 'Queue')
    try:
        q.get(timeout=0.05)
        check(False, 'Empty expected')
    except queue.Empty:
        pass
    bq = m.Queue(1)
    bq.put(1)
    try:
        bq.put_nowait(2)
        check(False, 'Full expected')
    except queue.Full:
        pass

    lk = m.Lock()
    check(lk.acquire() is True and lk.acquire(False) is False, 'Lock acquire')
    lk.release()
    with lk:
        pass
    try:
        lk.release()
        check(False, 'RuntimeError expected')
    except RuntimeError:
        pass

    ev = m.Event()
    check(not ev.is_set() and ev.wait(0.01) is False, 'Event clear')
    ev.set()
    check(ev.is_set() and ev.wait(1) is True, 'Event set')

    v = m.Value('i', 5)
    v.value = 7
    check(v.value == 7, 'Value')

    # _getvalue() and str() give what Python's server gives
    check(v._getvalue().value == 7 and str(v) == "Value('i', 7)", 'Value getvalue/str: ' + str(v))
    check(ns._getvalue().x == 6 and type(ns._getvalue()).__name__ == 'Namespace', 'Namespace getvalue')
    arr = m.Array('i', [1, 2, 3])
    check(arr[0:2] == array.array('i', [1, 2]) and str(arr) == "array('i', [1, 2, 3])", 'Array slice/str')
    check(arr._getvalue() == array.array('i', [1, 2, 3]), 'Array getvalue')
    check(str(lk).startswith('<unlocked _thread.lock object at 0x'), 'Lock str: ' + str(lk))
    check(str(ev).startswith('<threading.Event at 0x') and str(ev).endswith(': set>'), 'Event str')
    check(str(m.Semaphore(2)).endswith(': value=2>'), 'Semaphore str')
    check(str(q).startswith('<queue.Queue object at 0x'), 'Queue str')
    check(m.list('ab')[:] == ['a', 'b'], "list('ab')")
    arr[0:2] = array.array('i', [8, -9])
    al = m.list(array.array('d', [1.5]))
    al.extend(array.array('q', [-2**63]))
    check(arr[:] == array.array('i', [8, -9, 3]) and al[:] == [1.5, -2**63], 'array values sent')
    try:
        m.dict(5)
        check(False, 'TypeError expected from dict(5)')
    except TypeError:
        pass
    mixed = m.list([1, 's'])
    try:
        mixed.sort()
        check(False, 'TypeError expected from sort')
    except TypeError as e:
        check(str(e) == "'<' not supported between instances of 'str' and 'int'", 'sort text: ' + str(e))

    # a proxy nested in a dict comes back as a proxy
    d['inner'] = lst
    inner = d['inner']
    inner.append('deep')
    check(lst[-1] == 'deep', 'nested proxy')

    # the C server's atomic operations, beyond Python
    c = m.dict()
    c['n'] = 0
    check(c._callmethod('mp_add', ('n', 5)) == 5, 'mp_add')
    check(c._callmethod('mp_cas', ('n', 5, 10)) is True and c['n'] == 10, 'mp_cas')
    check(ns._callmethod('mp_add', ('x', 1)) == 7, 'mp_add on Namespace')

    # a type the C program registered, used as Python's register() does
    SyncManager.register('Counter')
    ctr = m.Counter(5)
    check(ctr.increment(2) == 7 and ctr.increment() == 8, 'registered Counter')
    try:
        ctr.increment(-1)
        check(False, 'ValueError expected from Counter')
    except ValueError as e:
        check(str(e) == 'by must be >= 0', 'Counter error text: ' + str(e))
    try:
        ctr.nope
        check(False, 'AttributeError expected from Counter')
    except AttributeError:
        pass

    # a method that is not exposed is refused with #ERROR: the
    # AttributeError itself (Python's own server sends a RemoteError)
    try:
        d._callmethod('__class__')
        check(False, 'AttributeError expected')
    except AttributeError as e:
        check('not in exposed' in str(e), 'not-exposed text: ' + str(e))
    print('OK', flush=True)


def server(addr):
    m = SyncManager(address=parse(addr), authkey=KEY)
    s = m.get_server()
    a = s.address
    if isinstance(a, tuple):
        a = '%s:%d' % a
    print(a, flush=True)
    s.serve_forever()


if __name__ == '__main__':
    {'client': client, 'server': server}[sys.argv[1]](sys.argv[2])
