"""py_queue.py - the Python peer of bench_queue.c: multiprocessing.Queue,
SimpleQueue and Pipe moving byte messages between processes, in the same
benchmarks and with the same sizes as the C program.

queue_1to1/64B, /4KiB, /1MiB  one producer process sends N messages to one
                    consumer process; ns (us for 1 MiB) per message, from
                    the moment both are at the start barrier to the
                    consumer's last message.
queue_2to2/64B      two producers, two consumers on one Queue/SimpleQueue;
                    when both producers have exited (so their Queue feeder
                    threads have flushed), the parent puts one empty stop
                    message per consumer. Pipe has no row: a Connection
                    is not for two concurrent readers (SimpleQueue is that
                    Pipe with the locks).
queue_roundtrip/64B_busy  this process sends a message, a child sends it
                    back; ns per round trip.
queue_roundtrip/64B_idle  the same, this process sleeping 400 us before
                    each message and the child 100 us after each reply (as
                    bench_queue.c does); only send-to-reply is counted.

Messages are bytes: an 8-byte little-endian sequence number and the C
program's pattern. The Queue gets an immutable bytes object per message
(put pickles it later, in its feeder thread); SimpleQueue and Pipe send
from one bytearray, as they copy before returning. Each consumer counts
its messages and sums their zlib.adler32 checksums; the case fails unless
count and sum match those of the messages sent. A round trip checks each
echo byte for byte.
"""

import multiprocessing as mp
import sys
import time
import zlib

import pybench

CTX = mp.get_context("fork")
IDLE_PING_S = 400e-6
IDLE_PONG_S = 100e-6


def pattern(size):
    buf = bytearray((k * 131 + 7) & 0xFF for k in range(size))
    buf[0:8] = bytes(8)
    return buf


def set_seq(buf, seq):
    buf[0:8] = seq.to_bytes(8, "little")


def expected(size, first, n):
    buf = pattern(size)
    total = 0
    for seq in range(first, first + n):
        set_seq(buf, seq)
        total += zlib.adler32(buf)
    return total


# ---- channels: (sender, receiver) factories over one shared object --------

def make_channel(kind):
    """Returns (obj_for_sender, obj_for_receiver, send(obj, buf),
    recv(obj))."""
    if kind == "queue":
        q = CTX.Queue()
        return q, q, lambda o, b: o.put(bytes(b)), lambda o: o.get()
    if kind == "simplequeue":
        q = CTX.SimpleQueue()
        return q, q, lambda o, b: o.put(b), lambda o: o.get()
    if kind == "pipe":
        r, w = CTX.Pipe(duplex=False)
        return w, r, lambda o, b: o.send_bytes(b), lambda o: o.recv_bytes()
    raise ValueError(kind)


# ---- throughput ------------------------------------------------------------

def _producer(send, obj, size, first, n, barrier):
    buf = pattern(size)
    barrier.wait(timeout=60)
    for seq in range(first, first + n):
        set_seq(buf, seq)
        send(obj, buf)


def _consumer(recv, obj, n, barrier, results, index):
    adler = zlib.adler32
    count = 0
    total = 0
    barrier.wait(timeout=60)
    if n is not None:
        for _ in range(n):
            total += adler(recv(obj))
        count = n
    else:
        while True:
            data = recv(obj)
            if len(data) == 0:
                break
            total += adler(data)
            count += 1
    # perf_counter_ns is CLOCK_MONOTONIC on Linux, one clock for all
    # processes, so the parent can compare it with its own start time.
    end = time.perf_counter_ns()
    results[3 * index] = count
    results[3 * index + 1] = total % (1 << 64)
    results[3 * index + 2] = end


def _reap(procs, timeout):
    for p in procs:
        p.join(timeout)
        if p.exitcode != 0:
            for q in procs:
                q.kill()
                q.join()
            raise RuntimeError("worker ended with exitcode %s" % p.exitcode)


def throughput(kind, size, nprod, ncons):
    def fn(n):
        per = max(n // nprod, 1)
        total = per * nprod
        want = expected(size, 1, total) % (1 << 64)
        sobj, robj, send, recv = make_channel(kind)
        results = CTX.RawArray("Q", 3 * ncons + 1)
        # The clock starts when the barrier opens: its action runs in the
        # last process to arrive, before any is let through.
        barrier = CTX.Barrier(nprod + ncons + 1,
                              action=lambda: results.__setitem__(
                                  3 * ncons, time.perf_counter_ns()))
        prods = [CTX.Process(target=_producer,
                             args=(send, sobj, size, 1 + i * per, per,
                                   barrier))
                 for i in range(nprod)]
        # One consumer counts to the total; several stop at a stop message.
        cons = [CTX.Process(target=_consumer,
                            args=(recv, robj, total if ncons == 1 else None,
                                  barrier, results, i))
                for i in range(ncons)]
        for p in prods + cons:
            p.start()
        barrier.wait(timeout=60)
        _reap(prods, 300)
        if ncons > 1:
            for _ in range(ncons):
                send(sobj, b"")
        _reap(cons, 300)
        count = sum(results[3 * i] for i in range(ncons))
        got = sum(results[3 * i + 1] for i in range(ncons)) % (1 << 64)
        end = max(results[3 * i + 2] for i in range(ncons))
        t0 = results[3 * ncons]
        if count == total and got != want:
            raise pybench.WorkCheckFailed("checksum of the received "
                                          "payloads is wrong")
        return end - t0, count
    return fn


# ---- round trip ------------------------------------------------------------

def _ponger(recv, send, rx, tx, n, idle):
    for _ in range(n):
        send(tx, recv(rx))
        if idle:
            time.sleep(IDLE_PONG_S)


def roundtrip(kind, idle):
    def fn(n):
        if kind == "pipe":
            a, b = CTX.Pipe()
            send = lambda o, m: o.send_bytes(m)
            recv = lambda o: o.recv_bytes()
            mine_tx = mine_rx = a
            its_rx = its_tx = b
        else:
            _, fwd, send, recv = make_channel(kind)
            _, back, _, _ = make_channel(kind)
            mine_tx, its_rx, its_tx, mine_rx = fwd, fwd, back, back
        # One untimed round trip first: the child is then surely running.
        child = CTX.Process(target=_ponger,
                            args=(recv, send, its_rx, its_tx, n + 1, idle))
        child.start()
        buf = pattern(64)
        send(mine_tx, buf)
        recv(mine_rx)
        busy = 0
        count = 0
        t0 = time.perf_counter_ns()
        for seq in range(1, n + 1):
            set_seq(buf, seq)
            if idle:
                time.sleep(IDLE_PING_S)
                t0 = time.perf_counter_ns()
            send(mine_tx, buf)
            data = recv(mine_rx)
            if idle:
                busy += time.perf_counter_ns() - t0
            if data != buf:
                child.kill()
                child.join()
                raise pybench.WorkCheckFailed("echo %d came back wrong" % seq)
            count += 1
        if not idle:
            busy = time.perf_counter_ns() - t0
        _reap([child], 60)
        return busy, count
    return fn


def cases():
    out = []
    for case, size, iters, smoke, unit in (
            ("64B", 64, 50000, 100, "ns/op"),
            ("4KiB", 4096, 30000, 20, "ns/op"),
            ("1MiB", 1 << 20, 100, 3, "us/op")):
        label = {"64B": "64 B", "4KiB": "4 KiB", "1MiB": "1 MiB"}[case]
        for kind in ("queue", "simplequeue", "pipe"):
            out.append(pybench.Case("queue_1to1", case, "python_" + kind,
                                    label, iters, smoke, unit,
                                    throughput(kind, size, 1, 1)))
    # Each of the two producers sends half (rounded down) of the messages.
    two = lambda n: max(n // 2, 1) * 2
    for kind in ("queue", "simplequeue"):
        out.append(pybench.Case("queue_2to2", "64B", "python_" + kind,
                                "64 B", 50000, 100, "ns/op",
                                throughput(kind, 64, 2, 2), expect=two))
    for case, idle, its in (("64B_busy", False,
                             {"queue": 1000, "simplequeue": 2000,
                              "pipe": 4000}),
                            ("64B_idle", True,
                             {"queue": 300, "simplequeue": 300,
                              "pipe": 300})):
        for kind in ("queue", "simplequeue", "pipe"):
            out.append(pybench.Case("queue_roundtrip", case, "python_" + kind,
                                    "64 B", its[kind], 3 if idle else 20,
                                    "ns/op", roundtrip(kind, idle)))
    return out


if __name__ == "__main__":
    sys.exit(pybench.main("py_queue", cases()))
