"""py_connection.py - the Python peer of bench_connection.c:
multiprocessing.connection Listener/Client over TCP loopback with an
authkey, in microseconds per operation.

connection_rtt/64B_tcp        send_bytes + recv_bytes of 64 bytes to an
                              echoing child, after the handshake
connection_setup/authkey_tcp  Client() (connect + handshake), a 64-byte
                              message and its echo, close; a child accepts
                              and echoes

Every echo must come back equal to what was sent.
"""

import multiprocessing as mp
import sys
import time
from multiprocessing.connection import Client, Listener

import pybench

KEY = b"bench authkey"
MSG = bytes([0xAB]) * 64


def echo(conn):
    while True:
        try:
            m = conn.recv_bytes()
        except EOFError:
            return
        if not m:
            return
        conn.send_bytes(m)


def rtt_child(address):
    c = Client(address, authkey=KEY)
    echo(c)
    c.close()


def rtt(n):
    ctx = mp.get_context("fork")
    with Listener(("127.0.0.1", 0), authkey=KEY) as listener:
        p = ctx.Process(target=rtt_child, args=(listener.address,))
        p.start()
        conn = listener.accept()
    ok = 0
    t0 = time.perf_counter_ns()
    for _ in range(n):
        conn.send_bytes(MSG)
        if conn.recv_bytes() == MSG:
            ok += 1
    t1 = time.perf_counter_ns()
    conn.send_bytes(b"")
    conn.close()
    p.join(60)
    return t1 - t0, ok


def setup_child(listener, n):
    for _ in range(n):
        c = listener.accept()
        echo(c)
        c.close()


def setup(n):
    ctx = mp.get_context("fork")
    listener = Listener(("127.0.0.1", 0), authkey=KEY)
    p = ctx.Process(target=setup_child, args=(listener, n))
    p.start()
    ok = 0
    t0 = time.perf_counter_ns()
    for _ in range(n):
        c = Client(listener.address, authkey=KEY)
        c.send_bytes(MSG)
        if c.recv_bytes() == MSG:
            ok += 1
        c.close()
    t1 = time.perf_counter_ns()
    listener.close()
    p.join(60)
    return t1 - t0, ok


CASES = [
    pybench.Case("connection_rtt", "64B_tcp", "python", "64 B", 5000, 20,
                 "us/op", rtt),
    pybench.Case("connection_setup", "authkey_tcp", "python", "1 client",
                 300, 5, "us/op", setup),
]

if __name__ == "__main__":
    sys.exit(pybench.main("py_connection", CASES))
