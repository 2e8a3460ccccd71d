"""mpi4py_pool.py - the mpi4py.futures peer of bench/bench_mpi_pool.c.

Run by bench_mpi_pool under
  mpirun --oversubscribe -n 3 /usr/bin/python3 -m mpi4py.futures mpi4py_pool.py
so rank 0 runs this script and ranks 1 and 2 are MPIPoolExecutor's
workers. Cases (see bench_mpi_pool.c): mpi_pool_map/chunksize1/mpi4py, a
map of x * x over 100,000 integers with chunksize 1, ns per item; and
mpi_pool_map/cpu/mpi4py, the seeds' counter (80,000,000 increments) in
1,000 tasks, ns per increment. Same command line as every peer (pybench).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pybench  # noqa: E402
from mpi4py.futures import MPIPoolExecutor  # noqa: E402

EXECUTOR = None


def square(x):
    return x * x


def counter(n):
    i = 0
    for _ in range(n):
        i = i + 1
    return i


def map_case(n):
    data = list(range(n))
    t0 = time.perf_counter_ns()
    out = list(EXECUTOR.map(square, data, chunksize=1))
    t1 = time.perf_counter_ns()
    return t1 - t0, sum(1 for i, v in enumerate(out) if v == i * i)


def cpu_case(n):
    tasks = 1000
    ns = [n // tasks + (1 if i < n % tasks else 0) for i in range(tasks)]
    t0 = time.perf_counter_ns()
    out = list(EXECUTOR.map(counter, ns, chunksize=1))
    t1 = time.perf_counter_ns()
    return t1 - t0, sum(out)


CASES = [
    pybench.Case("mpi_pool_map", "chunksize1", "mpi4py", "1 int", 100000,
                 2000, "ns/op", map_case),
    pybench.Case("mpi_pool_map", "cpu", "mpi4py", "1 increment", 80000000,
                 100000, "ns/op", cpu_case),
]

if __name__ == "__main__":
    with MPIPoolExecutor() as EXECUTOR:
        EXECUTOR.submit(square, 1).result()  # workers up before timing
        status = pybench.main("mpi4py_pool", CASES)
    sys.exit(status)
