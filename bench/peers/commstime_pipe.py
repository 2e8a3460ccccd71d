"""commstime_pipe.py - the Python peer of bench_csp.c: the classic
Commstime network (prefix, delta, successor, consumer) with one
multiprocessing.Process per node and multiprocessing.Pipe(duplex=False)
for each channel, since PyCSP no longer runs on Python 3.7 and later.
Prints "<communications> <nanoseconds> <last value>". Run by bench_csp
(not by run.sh directly: bench_csp records its row beside its own).
usage: python3 commstime_pipe.py CYCLES
"""

import multiprocessing as mp
import sys
import time


def prefix(cin, aout):
    aout.send(0)
    while True:
        aout.send(cin.recv())


def delta(ain, bout, dout):
    while True:
        v = ain.recv()
        bout.send(v)
        dout.send(v)


def succ(bin_, cout):
    while True:
        cout.send(bin_.recv() + 1)


def main():
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    ctx = mp.get_context("fork")
    a_r, a_w = ctx.Pipe(duplex=False)
    b_r, b_w = ctx.Pipe(duplex=False)
    c_r, c_w = ctx.Pipe(duplex=False)
    d_r, d_w = ctx.Pipe(duplex=False)
    procs = [ctx.Process(target=prefix, args=(c_r, a_w)),
             ctx.Process(target=delta, args=(a_r, b_w, d_w)),
             ctx.Process(target=succ, args=(b_r, c_w))]
    for p in procs:
        p.start()
    last = d_r.recv()
    t0 = time.perf_counter_ns()
    for _ in range(cycles - 1):
        last = d_r.recv()
    ns = time.perf_counter_ns() - t0
    # The nodes loop for ever: stop them.
    for p in procs:
        p.terminate()
    for p in procs:
        p.join()
    print("%d %d %d" % (4 * (cycles - 1), ns, last))


if __name__ == "__main__":
    main()
