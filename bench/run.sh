#!/bin/sh
# run.sh - what `make bench` runs: every benchmark program of the build and
# every Python peer script, all writing to one results file, then a summary
# of each benchmark case across systems with the ratios and the targets of
# the issue (PASS or MISS; a miss is reported, not fatal).
#
# usage: bench/run.sh BUILD_DIR [--smoke] [--runs N]
#   BUILD_DIR   the CMake build directory holding bench/bench_* programs
#   --smoke     tiny sizes (checks the programs and peers work; figures
#               mean nothing); other options go to every program as given
# Results: BUILD_DIR/bench/results.tsv, truncated first, one row per
# measurement: benchmark<TAB>case<TAB>system<TAB>value<TAB>unit.
# The exit status is non-zero only when a program or peer failed (a case
# that did not do its work, a crash); target misses do not fail it.
set -u

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [--smoke] [--runs N]" >&2
  exit 2
fi
build=$1
shift
out="$build/bench"
tsv="$out/results.tsv"
mkdir -p "$out"
: >"$tsv"
status=0
start=$(date +%s)

# machine_now: what the machine gives at this moment (bench_machine.c);
# run first and last, so the table shows whether the host moved the vCPUs
# or loaded the machine while the run went on.
machine_now() {
  at=$1
  shift
  if [ -x "$out/bench_machine" ]; then
    echo
    if ! MP_BENCH_MACHINE_AT=$at "$out/bench_machine" --tsv "$tsv" "$@"; then
      echo "FAILED: $out/bench_machine" >&2
      status=1
    fi
  fi
}
machine_now at_start "$@"

found=0
for exe in "$out"/bench_*; do
  if [ ! -f "$exe" ] || [ ! -x "$exe" ] ||
     [ "$exe" = "$out/bench_machine" ]; then
    continue
  fi
  found=1
  echo
  if ! "$exe" --tsv "$tsv" "$@"; then
    echo "FAILED: $exe" >&2
    status=1
  fi
done
if [ "$found" = 0 ]; then
  echo "no benchmark programs in $out: build first (make bench)" >&2
  status=1
fi

if command -v python3 >/dev/null 2>&1; then
  for py in "$here"/peers/py_*.py; do
    [ -f "$py" ] || continue
    echo
    # No __pycache__ in the source tree.
    if ! PYTHONDONTWRITEBYTECODE=1 python3 "$py" --tsv "$tsv" "$@"; then
      echo "FAILED: $py" >&2
      status=1
    fi
  done
else
  echo "python3 not found: the Python peers were not measured" >&2
fi

# Targets: benchmark, case, peer, the largest acceptable ratio of
# multiproc's time to the peer's. Reference lines compare two peers and
# carry the figure the issue quotes, for context only. A peer written
# "a|b|c" is the fastest of those measured; a "max" line bounds a value
# itself: benchmark, case, system, unit, the largest acceptable value.
# A "floor" line says whether a target can be met at all here: the ratio
# of a bare-kernel floor (no library; the fastest of "a|b" measured) to
# the peer is the best any library could reach on this machine;
# benchmark, case, floors, peer, target. A "drift" line compares the
# machine at the end of the run with the machine at its start.
targets='drift	machine	c2c_roundtrip	at_end	at_start
drift	machine	syscall	at_end	at_start
drift	machine	fault_1MiB	at_end	at_start
target	lock_uncontended	lock	multiproc	pthread_robust	1.3
target	process_start_join	fork	multiproc	fork+waitpid	1.5
target	process_start_join	spawn	multiproc	posix_spawn+waitpid	2.0
target	value_increment	locked	multiproc	python	0.1
target	value_increment	atomic	multiproc	python	0.02
target	pool_map	chunksize1	multiproc	python	0.05
target	pool_apply_async	10000	multiproc	python	0.1
target	pool_cpu_loop	2x400M	multiproc	serial	0.513
target	mpi_pool_map	chunksize1	multiproc	mpi4py	0.02
target	mpi_pool_map	cpu	multiproc	local	1.1
floor	mpi_pool_map	cpu	floor_relay|floor_split	local	1.1
reference	mpi_pool_map	cpu	floor_relay	floor_split	1
reference	pool_cpu_loop	py-2x4M	python	python-serial	0.54
reference	process_start_join	fork	python	fork+waitpid	14
target	object_roundtrip	small_dict	multiproc	python	0.2
target	queue_1to1	64B	multiproc	python_queue	0.025
target	queue_1to1	64B	multiproc	framed_pipe|socketpair|zmq_ipc	0.25
target	queue_1to1	64B	multiproc_batch	python_queue	0.025
target	queue_1to1	64B	multiproc_batch	framed_pipe|socketpair|zmq_ipc	0.25
target	queue_1to1	1MiB	multiproc	zmq_ipc	0.2
target	queue_1to1	1MiB	multiproc_zerocopy	zmq_ipc	0.2
target	queue_1to1	1MiB	multiproc_16MiB_ring	zmq_ipc	0.2
floor	queue_1to1	1MiB	ring_limit|handoff_copy_limit|handoff_cold_copy_limit	zmq_ipc	0.2
target	queue_1to1	1MiB	multiproc_zerocopy	memcpy_limit	1.5
target	queue_1to1	1MiB	multiproc_inplace	memcpy_limit	1.5
target	queue_1to1	1MiB	multiproc	ring_limit	1.3
floor	queue_1to1	1MiB	handoff_limit|handoff_memcpy_limit|handoff_cold_limit	memcpy_limit	1.5
floor	queue_1to1	1MiB	handoff_guard_limit	memcpy_limit	1.5
reference	queue_1to1	1MiB	multiproc_zerocopy	handoff_guard_limit	1
reference	queue_1to1	1MiB	multiproc_zerocopy	handoff_cold_limit	1
floor	queue_1to1	1MiB	handoff_copy_limit|handoff_cold_copy_limit	ring_limit	1.3
target	queue_1to1	64B	multiproc	ring_limit	1.3
target	queue_1to1	64B	multiproc_batch	ring_batch_limit	1.3
target	queue_roundtrip	64B_busy	multiproc	ring_limit	1.5
max	queue_roundtrip	64B_busy	multiproc	ns/op	1000
target	queue_roundtrip	64B_idle	multiproc	futex_handoff	1.0
reference	queue_roundtrip	64B_idle	multiproc_nospin	futex_handoff	1
floor	queue_roundtrip	64B_idle	futex_bounded	futex_handoff	1.0
reference	queue_roundtrip	64B_idle	multiproc_nospin	futex_bounded	1
target	connection_rtt	64B_tcp	multiproc	python	0.2
target	connection_setup	authkey_tcp	multiproc	python	0.2
floor	connection_rtt	64B_tcp	floor_busy_poll|floor_block	python	0.2
floor	object_roundtrip	small_dict	floor_busy_poll|floor_block	python	0.2
reference	queue_1to1	64B	framed_pipe	python_queue	0.11
reference	queue_1to1	64B	ring_batch_limit	ring_limit	0.27
target	manager_dict	set	multiproc	python	0.2
target	manager_dict	set	multiproc	redis	0.667
target	manager_dict	get	multiproc	python	0.2
target	manager_dict	get	multiproc	redis	0.667
target	manager_dict	set	multiproc	redis	0.333
target	manager_dict	get	multiproc	redis	0.333
target	manager_dict	set	multiproc_socket	python	0.2
target	manager_dict	set	multiproc_socket	redis	0.667
target	manager_dict	get	multiproc_socket	python	0.2
target	manager_dict	get	multiproc_socket	redis	0.667
reference	manager_dict	set	multiproc_socket	socketpair	1
target	csp_commstime	processes	multiproc	python_pipe	0.02'

machine_now at_end "$@"

echo
echo "== summary: $tsv ($(($(date +%s) - start)) s)"
printf '%s\n' "$targets" | awk -F '\t' -v tsv="$tsv" '
  # base strips a parenthetical note from a unit: "ns/op(2x200k)" -> "ns/op".
  function base(u) { sub(/\(.*$/, "", u); return u }
  # fmt shows a ratio with two decimals, or two significant digits below
  # 0.1 (targets such as 0.025x need them).
  function fmt(r) { return r >= 0.1 ? sprintf("%.2f", r) : sprintf("%.2g", r) }
  # ratio: the value of s over that of p, or over the lowest of
  # "p1|p2|..." (whose name is left in best); -1 when not measured.
  function ratio(b, c, s, p,    k, q, ps, n, i, m) {
    k = b SUBSEP c SUBSEP s
    if (!(k in val)) return -1
    n = split(p, ps, "|"); m = -1; best = ""
    for (i = 1; i <= n; i++) {
      q = b SUBSEP c SUBSEP ps[i]
      if (!(q in val) || val[q] <= 0 || base(unit[k]) != base(unit[q]))
        continue
      if (m < 0 || val[q] < m) { m = val[q]; best = ps[i] }
    }
    return m < 0 ? -1 : val[k] / m
  }
  FILENAME == "-" { t[++nt] = $0; next }
  {
    k = $1 SUBSEP $2 SUBSEP $3
    val[k] = $4; unit[k] = $5
    g = $1 SUBSEP $2
    if (!(g in seen)) { seen[g] = 1; order[++ng] = g; gname[g] = $1 "/" $2 }
    members[g] = members[g] SUBSEP $3
  }
  END {
    printf "%-30s %-20s %14s %-16s %s\n", "benchmark/case", "system",
           "value", "unit", "multiproc / this"
    for (i = 1; i <= ng; i++) {
      g = order[i]; split(g, gp, SUBSEP)
      n = split(substr(members[g], 2), ms, SUBSEP)
      for (j = 1; j <= n; j++) {
        s = ms[j]; k = g SUBSEP s
        r = (s == "multiproc") ? -1 : ratio(gp[1], gp[2], "multiproc", s)
        line = sprintf("%-30s %-20s %14.3f %-16s %s", (j == 1 ? gname[g] : ""),
                       s, val[k], unit[k], (r < 0 ? "" : fmt(r) "x"))
        sub(/ +$/, "", line)
        print line
      }
    }
    print ""
    print "targets (time of the first system / time of the second):"
    for (i = 1; i <= nt; i++) {
      split(t[i], f, "\t")
      if (f[1] == "max") {
        k = f[2] SUBSEP f[3] SUBSEP f[4]
        what = sprintf("%s/%s: %s", f[2], f[3], f[4])
        if (!(k in val) || base(unit[k]) != f[5])
          printf "  %-58s %8s  <= %s %s MISS (not measured)\n", what, "-",
                 f[6], f[5]
        else
          printf "  %-58s %8.1f  <= %s %s %s\n", what, val[k], f[6], f[5],
                 (val[k] <= f[6] + 0 ? "PASS" : "MISS")
        continue
      }
      if (f[1] == "drift") {
        r = ratio(f[2], f[3], f[4], f[5])
        what = sprintf("%s/%s: %s vs %s", f[2], f[3], f[4], f[5])
        printf "  %-58s %8s  (1x when the machine did not change)\n", what,
               (r < 0 ? "-" : fmt(r) "x")
        continue
      }
      if (f[1] == "floor") {
        # peer / fastest floor, inverted: fastest floor / peer.
        r = ratio(f[2], f[3], f[5], f[4])
        what = sprintf("%s/%s: best possible (%s vs %s)", f[2], f[3],
                       (r < 0 ? f[4] : best), f[5])
        if (r <= 0)
          printf "  %-58s %8s  (not measured)\n", what, "-"
        else
          printf "  %-58s %8s  (target %sx %s on this machine)\n", what,
                 fmt(1 / r) "x", f[6], (1 / r <= f[6] + 0 ? "reachable" : "out of reach")
        continue
      }
      r = ratio(f[2], f[3], f[4], f[5])
      if (index(f[5], "|") == 0)
        what = sprintf("%s/%s: %s vs %s", f[2], f[3], f[4], f[5])
      else
        what = sprintf("%s/%s: %s vs best (%s)", f[2], f[3], f[4],
                       (r < 0 ? "none measured" : best))
      if (f[1] == "target") {
        if (r < 0)
          printf "  %-58s %8s  <= %-5s MISS (not measured)\n", what, "-", f[6] "x"
        else
          printf "  %-58s %8s  <= %-5s %s\n", what, fmt(r) "x", f[6] "x",
                 (r <= f[6] + 0 ? "PASS" : "MISS")
      } else {
        printf "  %-58s %8s  (reference: the issue quotes ~%sx)\n", what,
               (r < 0 ? "-" : fmt(r) "x"), f[6]
      }
    }
  }' - "$tsv"

exit $status
