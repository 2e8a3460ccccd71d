"""py_manager.py - the Python peer of bench_manager.c: one synchronous
request from one client to Python's Manager().dict().

manager_dict/set   ns per d['key'] = i
manager_dict/get   ns per d['key'] (the value read back is summed and
                   checked)
"""

import multiprocessing as mp
import sys
import time

import pybench

_manager = None
_dict = None


def _d():
    global _manager, _dict
    if _dict is None:
        _manager = mp.get_context("fork").Manager()
        _dict = _manager.dict()
    return _dict


def set_(n):
    d = _d()
    t0 = time.perf_counter_ns()
    for i in range(n):
        d['key'] = i
    return time.perf_counter_ns() - t0, n


def get(n):
    d = _d()
    d['key'] = 7
    s = 0
    t0 = time.perf_counter_ns()
    for _ in range(n):
        s += d['key']
    return time.perf_counter_ns() - t0, s


CASES = [
    pybench.Case("manager_dict", "set", "python", "d[k]=int", 20000, 50,
                 "ns/op", set_),
    pybench.Case("manager_dict", "get", "python", "d[k]", 20000, 50,
                 "ns/op", get, expect=lambda n: 7 * n),
]

if __name__ == "__main__":
    rc = pybench.main("py_manager", CASES)
    if _manager is not None:
        _manager.shutdown()
    sys.exit(rc)
