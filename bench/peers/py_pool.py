"""py_pool.py - the Python peer of bench_pool.c: multiprocessing.Pool(2)
with the fork start method, created before each timed run.

pool_map/chunksize1     Pool(2).map(square, range(100000), chunksize=1);
                        ns per item; every square must be right.
pool_map/default        the same with the default chunksize.
pool_apply_async/10000  10,000 apply_async(echo, (i,)) then get() of each;
                        ns per task.
pool_cpu_loop/py-2x4M   the seed's counter loop in Python, two counts of
                        4,000,000 (a hundredth of the C programs' count:
                        Python runs about a hundred times slower):
                        "python" runs them as Pool(2).map(counter, [n, n]),
                        "python-serial" one after the other; ns per
                        increment. Their ratio is Python's speed-up.
"""

import multiprocessing as mp
import sys
import time

import pybench


def square(x):
    return x * x


def echo(x):
    return x


def counter(n):
    i = 0
    for _ in range(n):
        i = i + 1
    return i


def _pool():
    return mp.get_context("fork").Pool(2)


def pool_map(chunksize):
    def fn(n):
        with _pool() as p:
            p.map(square, range(10))  # the workers are up
            t0 = time.perf_counter_ns()
            out = p.map(square, range(n), chunksize=chunksize)
            t1 = time.perf_counter_ns()
        ok = sum(1 for i, v in enumerate(out) if v == i * i)
        return t1 - t0, ok
    return fn


def apply_async(n):
    with _pool() as p:
        p.map(square, range(10))
        t0 = time.perf_counter_ns()
        results = [p.apply_async(echo, (i,)) for i in range(n)]
        ok = sum(1 for i, r in enumerate(results) if r.get(300) == i)
        t1 = time.perf_counter_ns()
    return t1 - t0, ok


def cpu_pool(n):
    with _pool() as p:
        p.map(square, range(10))
        t0 = time.perf_counter_ns()
        out = p.map(counter, [n // 2, n - n // 2])
        t1 = time.perf_counter_ns()
    return t1 - t0, sum(out)


def cpu_serial(n):
    t0 = time.perf_counter_ns()
    a = counter(n // 2)
    b = counter(n - n // 2)
    t1 = time.perf_counter_ns()
    return t1 - t0, a + b


CASES = [
    pybench.Case("pool_map", "chunksize1", "python", "1 int", 100000, 1000,
                 "ns/op", pool_map(1)),
    pybench.Case("pool_map", "default", "python", "1 int", 100000, 1000,
                 "ns/op", pool_map(None)),
    pybench.Case("pool_apply_async", "10000", "python", "1 task", 10000, 200,
                 "ns/op", apply_async),
    pybench.Case("pool_cpu_loop", "py-2x4M", "python", "1 increment",
                 8000000, 2000, "ns/op", cpu_pool),
    pybench.Case("pool_cpu_loop", "py-2x4M", "python-serial", "1 increment",
                 8000000, 2000, "ns/op", cpu_serial),
]

if __name__ == "__main__":
    sys.exit(pybench.main("py_pool", CASES))
