"""py_sync.py - the Python peer of bench_sync.c: multiprocessing.Lock and
RLock, uncontended in one thread and contended by two processes.

lock_uncontended/lock    acquire() + release() of multiprocessing.Lock in a
                         loop, with a counter increment in between as the C
                         loops do; ns per pair.
lock_uncontended/rlock   the same for multiprocessing.RLock.
lock_contended/2procs    two processes add 1 to a shared counter under the
                         Lock; Python does 200,000 increments per process,
                         not the C programs' 1,000,000 (hence the unit
                         "ns/op(2x200k)"); the figure is ns per locked
                         increment, the final count must be exact.
"""

import multiprocessing as mp
import sys
import time

import pybench


def uncontended(factory):
    def fn(n):
        lock = factory()
        acquire, release = lock.acquire, lock.release
        count = 0
        t0 = time.perf_counter_ns()
        for _ in range(n):
            acquire()
            count += 1
            release()
        t1 = time.perf_counter_ns()
        return t1 - t0, count
    return fn


def _contended_worker(lock, counter, n, barrier, ends, index):
    acquire, release = lock.acquire, lock.release
    barrier.wait()
    for _ in range(n):
        acquire()
        counter.value += 1
        release()
    # perf_counter_ns is CLOCK_MONOTONIC on Linux, one clock for every
    # process, so the parent can compare it with its own start time.
    ends[index] = time.perf_counter_ns()


def contended(n):
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    counter = ctx.RawValue("q", 0)
    ends = ctx.RawArray("q", 2)
    barrier = ctx.Barrier(3)
    shares = (n // 2, n - n // 2)
    procs = [ctx.Process(target=_contended_worker,
                         args=(lock, counter, shares[i], barrier, ends, i))
             for i in range(2)]
    for p in procs:
        p.start()
    # Starting the processes is not timed: the clock starts when all three
    # parties have reached the barrier, and stops at the last finish.
    barrier.wait(timeout=60)
    t0 = time.perf_counter_ns()
    for p in procs:
        p.join(300)
        if p.exitcode != 0:
            for q in procs:
                q.kill()
                q.join()
            raise RuntimeError("worker ended with exitcode %s" % p.exitcode)
    return max(ends) - t0, counter.value


CASES = [
    pybench.Case("lock_uncontended", "lock", "python", "1 lock", 1000000,
                 1000, "ns/op", uncontended(mp.Lock)),
    pybench.Case("lock_uncontended", "rlock", "python", "1 rlock", 1000000,
                 1000, "ns/op", uncontended(mp.RLock)),
    pybench.Case("lock_contended", "2procs", "python", "2 procs", 400000,
                 2000, "ns/op(2x200k)", contended),
]

if __name__ == "__main__":
    sys.exit(pybench.main("py_sync", CASES))
