"""py_object.py - the Python peer of bench_object.c: a round trip of
{'id': 7, 'name': 'yuan', 'tags': [1, 2.5, None]} over a Pipe, one object
per round trip: the parent conn.send()s it, a child conn.recv()s it and
sends it back, the parent conn.recv()s and checks it.

object_roundtrip/small_dict   ns per round trip; the work check counts the
                              answers equal to the dict.
"""

import multiprocessing as mp
import sys
import time

import pybench

OBJ = {'id': 7, 'name': 'yuan', 'tags': [1, 2.5, None]}


def _echo(conn, other):
    other.close()  # the parent's end, inherited: else no end of stream
    try:
        while True:
            conn.send(conn.recv())
    except EOFError:
        pass


def roundtrip(n):
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_echo, args=(child, parent))
    p.start()
    child.close()
    ok = 0
    t0 = time.perf_counter_ns()
    for _ in range(n):
        parent.send(OBJ)
        ok += parent.recv() == OBJ
    t1 = time.perf_counter_ns()
    parent.close()
    p.join()
    return t1 - t0, ok


CASES = [
    pybench.Case("object_roundtrip", "small_dict", "python", "3-key dict",
                 20000, 200, "ns/op", roundtrip),
]

if __name__ == "__main__":
    sys.exit(pybench.main("py_object", CASES))
