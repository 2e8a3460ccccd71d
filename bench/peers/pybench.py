"""pybench.py - the Python side of the benchmark driver (see bench/bench.h).

The peer scripts (py_*.py) describe their cases as the C programs do:
benchmark, case, system, size, iterations, unit, and a function that does
the work and returns (elapsed nanoseconds, work observed). This module runs
each case once untimed at a tenth of its size, then RUNS times, checks the
work before printing anything, and prints the same uniform line as the C
driver: name, size, iterations, ns/op, ops/s, range. With --tsv PATH it
appends one row per case: benchmark, case, system, value, unit.
Command line: --smoke (tiny sizes, one run), --tsv PATH, --runs N.
"""

import argparse
import platform
import statistics
import sys

RUNS = 5


class Case:
    """One measurement. fn(iters) returns (elapsed_ns, done); done must
    equal expect(iters) (by default iters)."""

    def __init__(self, benchmark, case, system, size, iters, smoke_iters,
                 unit, fn, expect=None):
        self.benchmark = benchmark
        self.case = case
        self.system = system
        self.size = size
        self.iters = iters
        self.smoke_iters = smoke_iters
        self.unit = unit
        self.fn = fn
        self.expect = expect or (lambda n: n)


class WorkCheckFailed(Exception):
    pass


def _unit_scale(unit):
    if unit.startswith("us"):
        return 1e3
    if unit.startswith("ms"):
        return 1e6
    if unit.startswith("s"):
        return 1e9
    return 1.0


def _human(v):
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return "%.3g%s" % (v / div, suffix)
    return "%.3g" % v


def _execute(case, iters):
    elapsed, done = case.fn(iters)
    want = case.expect(iters)
    # The work check comes before any figure, as in the C driver.
    if done != want:
        raise WorkCheckFailed("work check failed: did %d, expected %d"
                              % (done, want))
    return elapsed / max(iters, 1)


def main(name, cases, argv=None):
    """Runs the cases; returns the exit status (0: every case did its
    work)."""
    ap = argparse.ArgumentParser(prog=name)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--tsv")
    ap.add_argument("--runs", type=int, default=RUNS)
    args = ap.parse_args(argv)
    runs = 1 if args.smoke else max(1, args.runs)
    what = ("smoke run (tiny sizes, figures meaningless)" if args.smoke
            else "median of the runs per case")
    print("# %s (%s %s): %s" % (name, platform.python_implementation(),
                                platform.python_version(), what))
    if not args.smoke and runs > 1:
        print("# %d timed runs per case after one warm-up at a tenth of the "
              "size; range = (max - min) / median" % runs)
    print("%-30s %-20s %-12s %10s %12s %10s %6s" % (
        "benchmark/case", "system", "size", "iters", "ns/op", "ops/s",
        "range"))
    sys.stdout.flush()
    tsv = open(args.tsv, "a") if args.tsv else None
    failed = False
    for c in cases:
        label = "%s/%s" % (c.benchmark, c.case)
        iters = c.smoke_iters if args.smoke else c.iters
        try:
            if not args.smoke:
                _execute(c, max(iters // 10, 1))
            samples = [_execute(c, iters) for _ in range(runs)]
        except Exception as e:  # a failing case is reported, not fatal
            print("%-30s %-20s FAIL: %s" % (label, c.system, e))
            failed = True
            continue
        med = statistics.median(samples)
        rng = 100.0 * (max(samples) - min(samples)) / med if med > 0 else 0
        print("%-30s %-20s %-12s %10d %12.1f %10s %5.0f%%" % (
            label, c.system, c.size, iters, med,
            _human(1e9 / med if med > 0 else 0), rng))
        sys.stdout.flush()
        if tsv:
            tsv.write("%s\t%s\t%s\t%.3f\t%s\n" % (
                c.benchmark, c.case, c.system, med / _unit_scale(c.unit),
                c.unit))
            tsv.flush()
    if tsv:
        tsv.close()
    return 1 if failed else 0
