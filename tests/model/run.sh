#!/bin/sh
# run.sh - check the queue lock model (queue_lock.pml) with SPIN: make model.
#   tests/model/run.sh [BUILD_DIR] [SECONDS]
# 1. The protocol before the debt (-DOLD_REVOKE) must fail: the model can
#    see a double holder (a sanity check of the model itself).
# 2. Without kills: every interleaving (a full search, a few seconds).
# 3. With one thread SIGKILLed at any step and replaced: a bit-state search
#    (most, not provably all, states) for SECONDS (default 60), then
#    interrupted; it must have found no error.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-build}/model
secs=${2:-60}
mkdir -p "$out"
cd "$out"

check() { # name, spin defines, cc defines, pan options, timeout, want
  name=$1
  rm -rf "$name" && mkdir "$name" && cd "$name"
  # shellcheck disable=SC2086
  spin $2 -a "$here/queue_lock.pml" >/dev/null
  # shellcheck disable=SC2086
  cc -O2 -DSAFETY $3 -o pan pan.c
  # shellcheck disable=SC2086
  timeout -s INT "$5" ./pan $4 >pan.out 2>&1 || true
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | tail -1)
  states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.out | tail -1)
  cd ..
  if [ -z "$errors" ]; then
    echo "model $name: no result (see $out/$name/pan.out)"
    return 1
  fi
  echo "model $name: $errors error(s), $states states"
  if [ "$6" = fail ] && [ "$errors" = 0 ]; then
    echo "model $name: the old protocol's double holder was not found"
    return 1
  fi
  if [ "$6" = pass ] && [ "$errors" != 0 ]; then
    echo "model $name: FAILED (trail: cd $out/$name && spin -t -p $here/queue_lock.pml)"
    return 1
  fi
}

check old_revoke "-DOLD_REVOKE -DMAXKILL=0" "" "-m1000000" 60 fail
check no_kill "-DMAXKILL=0" "-DCOLLAPSE" "-m1000000" 600 pass
check one_kill "-DMAXKILL=1" "-DBITSTATE" "-m3000000 -w30" "$secs" pass
