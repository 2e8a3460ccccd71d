#!/bin/sh
# demo_queue.sh - the queue part of the `make demo` tour: the seeds'
# Queue programs in C. Three children put n*n+1 and the parent gets three
# results; the minimal func(q, arg) example; the producer/consumer model
# with several producers and consumers; LIFO and priority order as in the
# queue module's examples; task_done/join. Exits non-zero if any fails.
#
# Usage: examples/demo_queue.sh <directory with the example binaries> [--quick]
#   --quick passes --quick to every example (shorter sleeps).
#
# The seeds are /work/shared/seeds/*.txt; "seed 001" is 001_*.txt
# (sections 2.8 队列(queue) and 3.3.1 进程对列Queue), "seed 002" is 002_*.txt
# ("Queue() 最简示例"), "seed 004" quotes Python's documentation.
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

TOUR='queue_squares|seed 001, 3.3.1: 进程对列Queue|def f(q,n): q.put(n*n+1); three Process(target=f, args=(q,i)); print(q.get()) three times
queue_func|seed 002, Queue() 最简示例; seed 004, 队列|func(q, arg): q.put(arg), p.join(), print(q.get()); f(q): q.put([42, None, '"'"'hello'"'"'])
queue_producer_consumer|seed 001, 2.8.5: 生产者消费者模型|Producer(name) puts count with random sleeps; Consumer(name) gets if not q.empty() -- two producers, three consumers, as processes
queue_lifo_priority|seed 001, 2.8.4: 其他模式|queue.LifoQueue(): put 34, 56, 12; queue.PriorityQueue(): put [5,100], [7,200], [3,"hello"], [4,{"name":"alex"}]; while 1: print(q.get())
queue_join|seed 001, 2.8.2: join与task_done方法|q = queue.Queue(5); put(10); put(20); get; task_done(); get; task_done(); q.join(); print("ending!")'

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
