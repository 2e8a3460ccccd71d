"""py_process.py - the Python peer of bench_process.c: Process(target=noop)
start() + join() with the fork, spawn and forkserver start methods, in
microseconds per start+join. Each child must end with exitcode 0; the
contexts (and the forkserver's server) are set up before the timed loop.
"""

import multiprocessing as mp
import sys
import time

import pybench


def noop():
    pass


def start_join(method):
    def fn(n):
        ctx = mp.get_context(method)
        if method == "forkserver":
            # Start the server outside the timed loop, as the C benchmark
            # creates its context before timing.
            p = ctx.Process(target=noop)
            p.start()
            p.join()
        ok = 0
        t0 = time.perf_counter_ns()
        for _ in range(n):
            p = ctx.Process(target=noop)
            p.start()
            p.join(60)
            if p.exitcode == 0:
                ok += 1
            else:
                p.kill()
                p.join()
            p.close()
        t1 = time.perf_counter_ns()
        return t1 - t0, ok
    return fn


CASES = [
    pybench.Case("process_start_join", "fork", "python", "1 child", 200, 2,
                 "us/op", start_join("fork")),
    pybench.Case("process_start_join", "spawn", "python", "1 child", 10, 1,
                 "us/op", start_join("spawn")),
    pybench.Case("process_start_join", "forkserver", "python", "1 child", 50,
                 2, "us/op", start_join("forkserver")),
]

if __name__ == "__main__":
    sys.exit(pybench.main("py_process", CASES))
