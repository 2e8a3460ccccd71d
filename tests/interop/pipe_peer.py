"""pipe_peer.py - the Python side of tests/interop/test_interop_pipe.c.

The C test hands this program one end of a multiproc Pipe as descriptor FD
and this program wraps it in multiprocessing.connection.Connection, so
every byte that crosses is framed by Python's own code. Exit status 0 means
every check held; a failed check prints why on stderr and exits 1.

  echo FD     duplex: answer each message M with M reversed + b"|py" until
              b"quit", then send the MESSAGES list, then close
  writer FD   send-only end (Pipe(False)'s writer): send MESSAGES, close
  reader FD   receive-only end: receive MESSAGES and check each, then
              expect end of stream (EOFError)
  huge FD     send-only: send one message of 0x80000000 zero bytes, which
              Python frames as -1 and an 8-byte length

MESSAGES is the list both sides generate the same way (see messages()): an
empty message, messages around Python's 16384-byte single-write limit
(header + payload sent in one write at or under it, as two writes over
it), and messages over 64 KiB.
"""

import sys
from multiprocessing.connection import Connection

SIZES = [0, 1, 5, 16380, 16383, 16384, 16385, 65537, 70000, 1 << 20]


def pattern(size, seed):
    return bytes((i * 31 + seed) & 0xFF for i in range(size))


def messages():
    return [pattern(n, k) for k, n in enumerate(SIZES)]


def check(cond, what):
    if not cond:
        print("FAILED: " + what, file=sys.stderr, flush=True)
        sys.exit(1)


def echo(fd):
    c = Connection(fd)
    while True:
        m = c.recv_bytes()
        if m == b"quit":
            break
        c.send_bytes(m[::-1] + b"|py")
    for m in messages():
        c.send_bytes(m)
    c.close()


def writer(fd):
    c = Connection(fd, readable=False)
    for m in messages():
        c.send_bytes(m)
    c.close()


def reader(fd):
    c = Connection(fd, writable=False)
    for k, want in enumerate(messages()):
        got = c.recv_bytes()
        check(got == want, "message %d: %d bytes, expected %d"
              % (k, len(got), len(want)))
    try:
        c.recv_bytes()
        check(False, "expected end of stream after the last message")
    except EOFError:
        pass
    c.close()


def huge(fd):
    c = Connection(fd, readable=False)
    c.send_bytes(bytes(0x80000000))
    c.close()


def main():
    cmd, fd = sys.argv[1], int(sys.argv[2])
    {"echo": echo, "writer": writer, "reader": reader, "huge": huge}[cmd](fd)


if __name__ == "__main__":
    main()
