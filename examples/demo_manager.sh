#!/bin/sh
# demo_manager.sh - the manager part of the `make demo` tour: the seeds'
# Manager programs in C (a dict and a list filled by ten processes, the
# records list, the Namespace x += 5; y *= 10 and its atomic version), then
# a remote manager: tools/mp-manager serves on TCP loopback with an authkey
# from the environment, a C client and a stock Python client share a dict
# and an Event on it, and the server is stopped with SIGTERM (by its PID).
#
# Usage: examples/demo_manager.sh <directory with the example binaries> [--quick]
set -u

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 <directory with the example binaries> [--quick]" >&2
  exit 2
fi
dir=$1
shift
args="$*"
here=$(cd "$(dirname "$0")" && pwd)
failed=""
rule='============================================================================'

TOUR='manager_dict_list|seed 001, 3.3.3 manager; seed 002, 代理服务Manager()|with Manager() as manager: d = manager.dict(); l = manager.list(range(5)); ten Process(target=f, args=(d, l, i)); print(d); print(l)
manager_records|seed 004, Manager|records = manager.list([(...), ...]); Process(target=insert_record) then Process(target=print_records)
manager_namespace|seed 004, 名称空间 Namespace|using_ns.x += 5; using_ns.y *= 10 in a child; print("before", using_ns), print("after", using_ns) -- and the atomic version'

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
done <<EOF
$TOUR
EOF

printf '\n%s\nremote manager: mp-manager on TCP loopback, a C client and a Python client\n' "$rule"
printf '    seed:   seed 001, 3: "local and remote concurrency"\n%s\n' "$rule"
tool="$dir/../mp-manager"
python=python3
tmp=$(mktemp -d)
MP_MANAGER_AUTHKEY="demo-$$-$(date +%s)"
export MP_MANAGER_AUTHKEY
if [ ! -x "$tool" ] || [ ! -x "$dir/manager_remote" ]; then
  echo "MISSING: $tool or $dir/manager_remote (build it first: make build)"
  failed="$failed remote"
else
  "$tool" --address 127.0.0.1:0 >"$tmp/tool.out" 2>"$tmp/tool.log" &
  tool_pid=$!
  address=""
  for _ in $(seq 1 100); do
    address=$(sed -n 's/^serving on //p' "$tmp/tool.out")
    [ -n "$address" ] && break
    sleep 0.1
  done
  echo "\$ MP_MANAGER_AUTHKEY=... mp-manager --address 127.0.0.1:0   # pid $tool_pid, serving on $address"
  "$dir/manager_remote" "$address" >"$tmp/c.out" 2>&1 &
  c_pid=$!
  tokens=""
  for _ in $(seq 1 100); do
    tokens=$(sed -n 's/^TOKENS //p' "$tmp/c.out")
    [ -n "$tokens" ] && break
    sleep 0.1
  done
  # shellcheck disable=SC2086 # tokens is two words on purpose
  if [ -n "$tokens" ] && "$python" "$here/manager_remote.py" "$address" $tokens; then
    :
  else
    echo "FAILED: the Python client"
    failed="$failed remote-python"
    kill "$c_pid" 2>/dev/null
  fi
  if ! wait "$c_pid"; then
    failed="$failed remote-c"
  fi
  sed 's/^/[C client] /' "$tmp/c.out"
  kill -TERM "$tool_pid"
  wait "$tool_pid"
  echo "mp-manager exited with $? after SIGTERM; its log:"
  sed 's/^/[mp-manager] /' "$tmp/tool.log" | tail -n 12
fi
rm -rf "$tmp"

if [ -n "$failed" ]; then
  echo "demo_manager: FAILED:$failed"
  exit 1
fi
