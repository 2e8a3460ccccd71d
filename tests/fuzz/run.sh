#!/bin/sh
# run.sh - runs every libFuzzer target of a fuzz build (make fuzz) for a
# bounded time on a copy of its committed seed corpus, and prints one line
# per target: executions, new corpus entries, crashes. Exits 1 if any target
# crashed, hung, leaked or ran out of memory; the inputs that did are kept
# under <build>/fuzz-out/<name>/ (crash-*, timeout-*, leak-*, oom-*).
#
#   tests/fuzz/run.sh <build-dir> [seconds-per-target] [name...]
#   tests/fuzz/run.sh --known <build-dir>   re-run tests/fuzz/known/<name>/*
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = "--known" ]; then
  build=$2
  status=0
  for dir in "$here"/known/*/; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    exe=$build/fuzz/fuzz_$name
    [ -x "$exe" ] || { echo "fuzz $name: no target $exe"; status=1; continue; }
    for f in "$dir"*; do
      [ -f "$f" ] || continue
      if "$exe" -timeout=10 "$f" >"$build/fuzz-known.log" 2>&1; then
        echo "fuzz $name: $(basename "$f"): ok"
      else
        echo "fuzz $name: $(basename "$f"): FAILS"
        grep -m3 -E 'ERROR|SUMMARY|runtime error' "$build/fuzz-known.log" | sed 's/^/    /'
        status=1
      fi
    done
  done
  exit $status
fi

build=${1:?usage: run.sh <build-dir> [seconds] [name...]}
seconds=${2:-60}
shift 2 2>/dev/null || shift $#
names="$*"
if [ -z "$names" ]; then
  for exe in "$build"/fuzz/fuzz_*; do
    [ -x "$exe" ] || continue
    names="$names ${exe##*/fuzz_}"
  done
fi
[ -n "$names" ] || { echo "run.sh: no fuzz targets in $build/fuzz" >&2; exit 1; }

status=0
for name in $names; do
  exe=$build/fuzz/fuzz_$name
  out=$build/fuzz-out/$name
  rm -rf "$out"
  mkdir -p "$out/corpus"
  # A copy: what the fuzzer finds stays in the build, the committed seeds
  # change only by hand.
  if [ -d "$here/corpus/$name" ]; then
    cp -r "$here/corpus/$name/." "$out/corpus/" 2>/dev/null
  fi
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" \
      >"$out/log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
  newc=$(sed -n 's/^stat::new_units_added: *//p' "$out/log" | tail -1)
  found=$(ls "$out" | grep -cE '^(crash|timeout|leak|oom|slow-unit)-')
  [ "$rc" -ne 0 ] && [ "$found" -eq 0 ] && found=1
  if [ "$found" -ne 0 ]; then
    status=1
    echo "fuzz $name: ${execs:-?} executions, ${newc:-0} new inputs, $found CRASHES (exit $rc; $out/log)"
    grep -m4 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*deadly signal)' "$out/log" | sed 's/^/    /'
  else
    echo "fuzz $name: ${execs:-?} executions, ${newc:-0} new inputs, 0 crashes"
  fi
done
exit $status
