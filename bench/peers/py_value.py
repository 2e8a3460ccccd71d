"""py_value.py - the Python peer of bench_value.c: two processes each add 1
to a shared multiprocessing.Value('i') under its lock, Python's
"with v.get_lock(): v.value += 1".

value_increment/locked   ns per locked increment; Python does 200,000
                         increments per process, not the C programs'
                         1,000,000 (hence the unit "ns/op(2x200k)"); the
                         final value must be exact.
value_increment/atomic   the same measurement again, as the figure the
                         C atomic add is compared with (Python has no
                         atomic add: a locked increment is what it offers).
"""

import multiprocessing as mp
import sys
import time

import pybench


def _worker(v, n, barrier, ends, index):
    lock = v.get_lock()
    barrier.wait()
    for _ in range(n):
        with lock:
            v.value += 1
    ends[index] = time.perf_counter_ns()


def locked(n):
    ctx = mp.get_context("fork")
    v = ctx.Value("i", 0)
    ends = ctx.RawArray("q", 2)
    barrier = ctx.Barrier(3)
    shares = (n // 2, n - n // 2)
    procs = [ctx.Process(target=_worker,
                         args=(v, shares[i], barrier, ends, i))
             for i in range(2)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter_ns()
    for p in procs:
        p.join()
    return max(ends) - t0, v.value


CASES = [
    pybench.Case("value_increment", "locked", "python", "2 procs", 400000,
                 2000, "ns/op(2x200k)", locked),
    pybench.Case("value_increment", "atomic", "python", "2 procs", 400000,
                 2000, "ns/op(2x200k)", locked),
]

if __name__ == "__main__":
    sys.exit(pybench.main("py_value", CASES))
