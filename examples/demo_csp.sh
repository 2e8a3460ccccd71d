#!/bin/sh
# demo_csp.sh - the CSP part of the `make demo` tour: seed 004's PyCSP
# program (P1 and P2 under Parallel), a producer and a consumer over a
# channel, the prime sieve as a chain of processes, a network shut down
# by one poison, and a producer writing to a consumer on another "host"
# over TCP. Exits non-zero if any fails.
#
# Usage: examples/demo_csp.sh <directory with the example binaries> [--quick]
#   --quick passes --quick to every example (shorter sleeps, fewer primes).
#
# The seeds are /work/shared/seeds/*.txt; "seed 004" is 004_*.txt
# (section "Python PyCSP库").
set -u

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 <directory with the example binaries> [--quick]" >&2
  exit 2
fi
dir=$1
shift
args="$*"
failed=""
rule='============================================================================'

TOUR='csp_parallel|seed 004, Python PyCSP库|@process def P1(): time.sleep(1); print("P1 exiting"); the same P2; Parallel(P1(), P2()); print("Terminating")
csp_producer_consumer|seed 004, 顺序进程(CSP): processes that talk only over channels|producer(-c) writes 0..9 and retires; consumer(+c) reads until ChannelRetireException
csp_sieve|seed 004, CSP (the classic example of process networks)|generator -> sieve(2) -> sieve(3) -> ...: one process per prime, retire winds the chain down
csp_poison|seed 004, PyCSP poison|generator -> 3 workers -> collector; the collector poison()s its input and the whole network ends
csp_remote|seed 004, PyCSP channels across hosts|host A: c = Channel("numbers"), consumer(+c); host B (another program): Channel("numbers", connect=(hostA, port)), producer(-c), over TCP'

while IFS='|' read -r name seed python; do
  [ -n "$name" ] || continue
  printf '\n%s\n%s\n    seed:   %s\n    Python: %s\n%s\n' "$rule" "$name" "$seed" "$python" "$rule"
  if [ ! -x "$dir/$name" ]; then
    echo "MISSING: $dir/$name (build it first: make build)"
    failed="$failed $name"
    continue
  fi
  # shellcheck disable=SC2086 # args is a word list on purpose
  if ! "$dir/$name" $args; then
    echo "FAILED: $name"
    failed="$failed $name"
  fi
done <<EOF2
$TOUR
EOF2

if [ -n "$failed" ]; then
  echo "FAILED:$failed" >&2
  exit 1
fi
