#!/bin/sh
# demo.sh - the `make demo` tour: runs each of the seeds' programs in C, at
# full size, under a heading naming the seed article and the Python program
# it mirrors. Exits non-zero if any example fails (or is missing).
#
# Usage: examples/demo.sh <directory with the example binaries> [--quick]
#   --quick passes --quick to every example (short sleeps, small counts).
#
# The seeds are /work/shared/seeds/*.txt (Chinese articles on Python's
# multiprocessing and threading); "seed 001" is 001_*.txt, the tutorial
# "二 threading模块 / 三 multiprocessing模块". To add an example, add a line
# to TOUR below: binary|seed and section|the Python program it mirrors.
# Parts of the tour that need more than one program at a time live in
# their own examples/demo_<part>.sh (same arguments), run after the TOUR.
set -u

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 <directory with the example binaries> [--quick]" >&2
  exit 2
fi
dir=$1
shift
args="$*"

TOUR='threads_basic|seed 001, 2.1-2.2: Thread类直接创建, 继承式创建, join() and setDaemon()|threading.Thread(target=countNum, args=(23,)); class MyThread(threading.Thread); Music/Blog with join and daemon
lock_counter|seed 001, 2.4: 互斥锁 (Lock)|100 threads doing tmp=num; time.sleep(0.1); num=tmp-1 under lock.acquire()/release() -- and the same with processes
deadlock_rlock|seed 001, 2.5: 死锁与递归锁|class MyThread with fun1/fun2 and mutexA/mutexB = threading.Lock(); then mutexA = mutexB = threading.RLock()
event_workers|seed 001, 2.6: Event对象|worker(event): event.wait() gated by readis_ready.set(); and while not event.is_set(): event.wait(2)
semaphore_five|seed 001, 2.7: Semaphore(信号量)|semaphore = threading.Semaphore(5); 20 threads print getName() + " get semaphore"
process_info|seed 001, 3.1-3.2: python的进程调用, process类|info(name) printing name, os.getppid(), os.getpid() in main, Process(target=info), Process(target=foo); class MyProcess(Process)
daemon|seed 001, 3.2: process类 (daemon: 和线程的setDeamon功能一样)|Process(target=..., daemon=True) terminated when its parent ends; a non-daemonic child joined
counter_40m|seed 001, 2.3.3: GIL 解决方案|counter() counting to 40,000,000, serially and in two Process()es: "Total time"'

failed=""
count=0
rule='============================================================================'

run_one() {
  name=$1 seed=$2 python=$3
  count=$((count + 1))
  printf '\n%s\n' "$rule"
  printf '[%d] %s\n    seed:   %s\n    Python: %s\n' "$count" "$name" "$seed" "$python"
  printf '%s\n' "$rule"
  if [ ! -x "$dir/$name" ]; then
    echo "MISSING: $dir/$name (build it first: make build)"
    failed="$failed $name"
    return
  fi
  # shellcheck disable=SC2086 # args is a word list on purpose
  "$dir/$name" $args
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "FAILED: $name exited with $rc"
    failed="$failed $name"
  fi
}

# A here-document keeps the loop in this shell, so run_one can update
# failed and count.
while IFS='|' read -r name seed python; do
  [ -n "$name" ] || continue
  run_one "$name" "$seed" "$python"
done <<EOF
$TOUR
EOF

# The other parts of the tour (examples/demo_<part>.sh, e.g. demo_shm.sh
# for shared memory) take the same arguments; each runs in turn.
here=$(cd "$(dirname "$0")" && pwd)
for part in "$here"/demo_*.sh; do
  [ -f "$part" ] || continue
  count=$((count + 1))
  # shellcheck disable=SC2086 # args is a word list on purpose
  if ! sh "$part" "$dir" $args; then
    echo "FAILED: $(basename "$part")"
    failed="$failed $(basename "$part")"
  fi
done

printf '\n%s\n' "$rule"
if [ -n "$failed" ]; then
  echo "demo: $count parts, FAILED:$failed"
  exit 1
fi
echo "demo: all $count parts ran successfully"
