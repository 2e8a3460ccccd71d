"""obj_peer.py - the Python side of tests/interop/test_interop_obj.c.

The C test hands this program one end of a multiproc Pipe as descriptor FD;
this program wraps it in multiprocessing.connection.Connection, so Python's
own send/recv (pickle) is on the wire. Exit status 0 means every check
held; a failed check prints why on stderr and exits 1.

  py2c FD     for each value of CASES and each way Python writes it
              (conn.send, and pickle protocols 2 to 5 through send_bytes):
              send it, send repr() of what C should read (sets as lists,
              frozensets as tuples, bytearray as bytes), then receive C's
              echo (C decoded it and sent it back with mp_connection_send)
              and check repr() of the echo is that repr too. Then b"end".
  c2py FD     receive pairs (a value C sent with mp_connection_send, then
              C's mp_obj_repr of it as bytes) until b"end"; check that
              repr() of the value equals C's repr.
  manager FD  send the manager protocol's objects (Token, KeyError, slice,
              a reply tuple) with conn.send, receive C's echo and check the
              objects Python rebuilt from C's bytes.
  hostile FD  send a pickle that would run os.system, then a plain value;
              C refuses the first and reads the second.
"""

import os
import pickle
import sys
from multiprocessing.connection import Connection
from multiprocessing.managers import Token

CASES = [
    [42, None, 'hello'],
    {'id': 7, 'name': 'yuan', 'tags': [1, 2.5, None]},
    (), (1,), (1, (2, (3, [4, {5: b'6'}]))),
    {None: 0, True: 1, 2.5: 'x', b'k': (), (1, 'a'): [], 'é中😀': "it's"},
    [2**63 - 1, -2**63, 2**31, -2**31 - 1, 255, 256, 65535, 65536, -1, 0],
    [0.1, 1e16, 1e-05, float('inf'), float('nan'), -0.0, 1 / 3, 1e300],
    ['', 'a\tb\nc\\', '\x00\x7f\x85\xa0\u200b', 'both \' "', b'',
     b'\x00\xff\'"'],
    list(range(2500)),
    {str(i): i for i in range(1500)},
    [[1, 2]] * 3,
    {1, 2, 3},
    frozenset({'a'}),
    bytearray(b'xyz'),
    'x' * 70000,
    True,
    None,
]


def plain(v):
    """What C reads: sets as lists, frozensets as tuples, bytearray as
    bytes."""
    if isinstance(v, frozenset):
        return tuple(plain(x) for x in v)
    if isinstance(v, (set, list)):
        return [plain(x) for x in v]
    if isinstance(v, tuple):
        return tuple(plain(x) for x in v)
    if isinstance(v, dict):
        return {plain(k): plain(x) for k, x in v.items()}
    if isinstance(v, bytearray):
        return bytes(v)
    return v


def check(cond, what):
    if not cond:
        print("FAILED: " + what, file=sys.stderr, flush=True)
        sys.exit(1)


def py2c(c):
    for v in CASES:
        want = repr(plain(v))
        for proto in (None, 2, 3, 4, 5):
            if proto is None:
                c.send(v)
            else:
                c.send_bytes(pickle.dumps(v, proto))
            c.send_bytes(want.encode('utf-8', 'surrogatepass'))
            echo = c.recv()
            check(repr(echo) == want,
                  f"echo of {want[:80]} (protocol {proto}) came back as "
                  f"{repr(echo)[:80]}")
    c.send_bytes(b'end')


def c2py(c):
    n = 0
    while True:
        m = c.recv_bytes()
        if m == b'end':
            break
        v = pickle.loads(m)
        want = c.recv_bytes().decode('utf-8')
        check(repr(v) == want, f"C sent {want[:80]}, Python read {repr(v)[:80]}")
        n += 1
    check(n > 0, "C sent nothing")


def manager(c):
    tok = Token('dict', '/tmp/x.sock', '7f00')
    tok_tcp = Token('Value', ('127.0.0.1', 5000), 'ab')
    msgs = [tok, tok_tcp, KeyError('missing'), slice(1, 3, None),
            ('#RETURN', [1, 2]), ('#ERROR', ValueError('bad', 2)),
            ('#PROXY', (('get', 'set'), tok))]
    for m in msgs:
        c.send(m)
        echo = c.recv()
        check(type(echo) is type(m), f"{m!r} came back as {echo!r}")
        if isinstance(m, Token):
            check((echo.typeid, echo.address, echo.id) ==
                  (m.typeid, m.address, m.id), f"token {echo!r}")
        elif isinstance(m, BaseException):
            check(echo.args == m.args, f"exception {echo!r}")
        elif isinstance(m, tuple) and isinstance(m[1], BaseException):
            check(type(echo[1]) is type(m[1]) and echo[1].args == m[1].args,
                  f"{echo!r}")
        elif isinstance(m, tuple) and m[0] == '#PROXY':
            t = echo[1][1]
            check(echo[1][0] == m[1][0] and isinstance(t, Token) and
                  t.id == tok.id, f"{echo!r}")
        else:
            check(echo == m, f"{m!r} came back as {echo!r}")


class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned >&2',))


def hostile(c):
    c.send(Evil())
    c.send([42, None, 'hello'])
    check(c.recv() == 'ok', "C did not answer ok")


def main():
    mode, fd = sys.argv[1], int(sys.argv[2])
    c = Connection(fd)
    {'py2c': py2c, 'c2py': c2py, 'manager': manager, 'hostile': hostile}[mode](c)
    c.close()


if __name__ == '__main__':
    main()
