#!/bin/sh
# demo_pool.sh - the process pool part of the `make demo` tour: the seeds'
# Pool programs in C, then a crashing task that fails alone. Exits
# non-zero if any step fails.
#
# Usage: examples/demo_pool.sh <directory with the example binaries> [--quick]
#   --quick passes --quick to the programs that take it (short tasks,
#   smaller counts).
#
# The seeds are /work/shared/seeds/*.txt: seed 001 is the tutorial whose
# "3.4 进程池" has Pool(5) with 30 apply_async and whose "2.3.3" has the
# 40,000,000 counter; seed 002 has Pool(2).map with one argument; seed 003
# has Pool(4).map(task, [1, 2, 3, 4, 5]).
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

heading() {
  printf '\n%s\n%s\n    seed:   %s\n    Python: %s\n%s\n' "$rule" "$1" "$2" "$3" "$rule"
}

run() {
  name=$1
  shift
  if [ ! -x "$dir/$name" ]; then
    echo "MISSING: $dir/$name (build it first: make build)"
    failed="$failed [$name]"
    return
  fi
  # shellcheck disable=SC2086 # args is a word list on purpose
  "$dir/$name" "$@" || failed="$failed [$name]"
}

heading "pool_apply_async" "seed 001, 3.4: 进程池" \
  "p = Pool(5); for i in range(30): p.apply_async(func=foo, args=(i,)); p.close(); p.join()"
run pool_apply_async $args

heading "pool_map_square" "seed 003, 3.2: 如何创建和使用进程池" \
  "pool = multiprocessing.Pool(4); result = pool.map(task, [1, 2, 3, 4, 5]); print(result)"
run pool_map_square

heading "pool_map_one_arg" "seed 002, pool进程池" \
  "pool = mp.Pool(processes=2); res = pool.map(func, (\"process in\",)); print(res)"
run pool_map_one_arg

heading "pool_counter_40m" "seed 001, 2.3.3: GIL 解决方案, with a Pool" \
  "counter() to 40,000,000 twice: serially, then Pool(2).map(counter, [n, n]); both times and the speed-up"
run pool_counter_40m $args

heading "pool_crash" "beyond Python: a crashing worker fails only its task" \
  "pool.map(buggy, range(10)) where buggy(4) segfaults: Python's Pool hangs; here item 4 fails alone"
run pool_crash

# The same two seed programs, unchanged, on an MPI job of 3 ranks: rank 0
# runs main, ranks 1 and 2 are the pool's workers (each with a local pool
# of its own). Only when the library was built with MPI and mpirun exists.
if command -v mpirun >/dev/null 2>&1 &&
   grep -q '^on' "$dir/../mpi_backend.txt" 2>/dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  mpirun="mpirun --oversubscribe --mca btl self,vader,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo -n 3"
  # mpi_run runs an example under mpirun, without Open MPI's PMIx noise.
  mpi_run() {
    name=$1
    shift
    # shellcheck disable=SC2086
    out=$($mpirun "$dir/$name" "$@" 2>&1)
    st=$?
    printf '%s\n' "$out" | grep -v 'PMIX ERROR'
    [ "$st" -eq 0 ] || failed="$failed [mpi $name]"
  }
  heading "pool_map_square under mpirun -n 3" "seed 003, the same source" \
    "the pool's workers are MPI ranks 1 and 2: $mpirun pool_map_square"
  mpi_run pool_map_square
  heading "pool_counter_40m under mpirun -n 3" "seed 001, 2.3.3, the same source" \
    "Pool(2) is now two local workers on each of ranks 1 and 2"
  # shellcheck disable=SC2086
  mpi_run pool_counter_40m $args
else
  echo
  echo "(MPI pool part skipped: no mpirun, or the library was built without MPI)"
fi

if [ -n "$failed" ]; then
  echo "FAILED:$failed" >&2
  exit 1
fi
