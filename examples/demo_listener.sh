#!/bin/sh
# demo_listener.sh - the Listener/Client part of the `make demo` tour:
# processes that did not start each other meet at an address and prove
# they share an authkey with Python's handshake. Three pairs, each with the
# right key and then a wrong one, which is refused on both sides:
#   a C server with a C client, a C server with a python3 client, and a
#   python3 server with a C client.
# Exits non-zero if any step fails.
#
# Usage: examples/demo_listener.sh <directory with the example binaries> [--quick]
#   --quick is passed on (these examples run the same either way).
#
# The seeds (/work/shared/seeds/*.txt) stop at Pipe and Queue between a
# parent and its children; Listener and Client are Python's
# multiprocessing.connection, the step beyond them.
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

# step BINARY WHAT PYTHON: runs one example under a heading.
step() {
  printf '\n%s\n%s\n    what:   %s\n    Python: %s\n%s\n' "$rule" "$1" "$2" "$3" "$rule"
  if [ ! -x "$dir/$1" ]; then
    echo "MISSING: $dir/$1 (build it first: make build)"
    failed="$failed [$1]"
    return
  fi
  # shellcheck disable=SC2086 # args is a word list on purpose
  "$dir/$1" $args || failed="$failed [$1]"
}

step listener_pair "beyond the seeds: a C server and a C client, right key then wrong key" \
  "Listener(('127.0.0.1', 0), authkey=b'secret password').accept(); Client(address, authkey=...)"
step listener_py_client "beyond the seeds: a C server and CPython's Client" \
  "multiprocessing.connection.Client(address, authkey=key).send_bytes()/recv_bytes()"
step listener_py_server "beyond the seeds: CPython's Listener and a C client" \
  "multiprocessing.connection.Listener(('127.0.0.1', 0), authkey=key).accept()"

if [ -n "$failed" ]; then
  echo "FAILED:$failed" >&2
  exit 1
fi
