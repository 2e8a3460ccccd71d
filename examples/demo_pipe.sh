#!/bin/sh
# demo_pipe.sh - the Pipe part of the `make demo` tour: the seeds' Pipe
# programs in C (the conversation, two children sending on one end, the
# minimal example), and a C program talking to Python over one Pipe.
# Exits non-zero if any step fails.
#
# Usage: examples/demo_pipe.sh <directory with the example binaries> [--quick]
#   --quick is passed on (the Pipe examples run the same either way).
#
# The seeds are /work/shared/seeds/*.txt: seed 001 is the tutorial ("3.3.2
# 管道(pipe)"), seed 002 the "Queue(), Pipe(), pool" notes ("Pipe()
# 最简示例"), seed 004 the tutorial quoting Python's documentation ("管道").
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

# step BINARY SEED PYTHON: runs one example under a heading.
step() {
  printf '\n%s\n%s\n    seed:   %s\n    Python: %s\n%s\n' "$rule" "$1" "$2" "$3" "$rule"
  if [ ! -x "$dir/$1" ]; then
    echo "MISSING: $dir/$1 (build it first: make build)"
    failed="$failed [$1]"
    return
  fi
  # shellcheck disable=SC2086 # args is a word list on purpose
  "$dir/$1" $args || failed="$failed [$1]"
}

step pipe_conversation "seed 001, 3.3.2 管道(pipe)" \
  "parent_conn, child_conn = Pipe(); f(conn) sends [12, {\"name\":\"yuan\"}, 'hello'], the parent replies \"儿子你好!\""
step pipe_two_senders "seed 002, Pipe() 最简示例" \
  "func_1 and func_2 both conn.send() on child_conn; the parent prints parent_conn.recv()"
step pipe_minimal "seed 004, 管道 (from Python's documentation)" \
  "f(conn) sends [42, None, 'hello'] and closes; print(parent_conn.recv())"
step pipe_python "beyond the seeds: seed 001's f(conn) in Python, the parent in C" \
  "multiprocessing.connection.Connection(fd).send()/recv() (pickle) against mp_connection_recv/mp_connection_send of mp_obj values"

if [ -n "$failed" ]; then
  echo "FAILED:$failed" >&2
  exit 1
fi
