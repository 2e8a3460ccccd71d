#!/bin/sh
# demo_shm.sh - the shared-memory part of the `make demo` tour: Value and
# Array changed by a child, and the seed's two "haha" programs, in C and in
# Python on either side. Exits non-zero if any step fails.
#
# Usage: examples/demo_shm.sh <directory with the example binaries> [--quick]
#   --quick passes --quick to value_array (smaller counts).
#
# The seeds are /work/shared/seeds/*.txt; "seed 002" is 002_*.txt
# ("共享内存": value和array, 通过名称创建共享内存), seed 004 quotes the
# Value/Array example of Python's documentation.
set -u

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 <directory with the example binaries> [--quick]" >&2
  exit 2
fi
dir=$1
shift
args="$*"
here=$(cd "$(dirname "$0")" && pwd)
name=haha
failed=""
rule='============================================================================'

heading() {
  printf '\n%s\n%s\n    seed:   %s\n    Python: %s\n%s\n' "$rule" "$1" "$2" "$3" "$rule"
}

# pair TITLE CREATOR... -- READER...: starts the creator in the background,
# runs the reader once the creator has written 0xab (171) into the block's
# first byte, as a person would run the seed's reader after its creator,
# then waits for the creator.
pair() {
  title=$1
  shift
  creator=""
  while [ "$1" != "--" ]; do creator="$creator $1"; shift; done
  shift
  printf -- '--- %s\n' "$title"
  $creator --name "$name" &
  cpid=$!
  i=0
  while [ "$(od -An -tu1 -N1 "/dev/shm/$name" 2>/dev/null | tr -d ' ')" != 171 ] &&
    [ $i -lt 500 ]; do
    sleep 0.01
    i=$((i + 1))
  done
  if ! "$@" --name "$name"; then
    failed="$failed [$title: reader]"
  fi
  if ! wait "$cpid"; then
    failed="$failed [$title: creator]"
  fi
}

heading "value_array" \
  "seed 002 (value和array) and seed 004 (Process, Value, Array)" \
  "v = mp.Value('i', 10) set to 20 by a child; num = Value('d', 0.0), arr = Array('i', range(10)) changed by f(n, a)"
"$dir/value_array" $args || failed="$failed [value_array]"

heading "shm_haha_create + shm_haha_attach" \
  "seed 002, 通过名称创建共享内存 (创建和写入 / 读取)" \
  "shared_memory.SharedMemory(name=\"haha\", create=True, size=256); buf[0] = 0xab -- and SharedMemory(name=\"haha\"); print(buf[0])"
pair "C creates, C reads" "$dir/shm_haha_create" -- "$dir/shm_haha_attach"
if command -v python3 >/dev/null 2>&1; then
  pair "Python creates, C reads" python3 "$here/shm_haha_create.py" -- \
    "$dir/shm_haha_attach"
  pair "C creates, Python reads" "$dir/shm_haha_create" -- \
    python3 "$here/shm_haha_attach.py"
else
  echo "python3 not found: the Python halves were skipped"
fi

if [ -n "$failed" ]; then
  echo "FAILED:$failed" >&2
  exit 1
fi
