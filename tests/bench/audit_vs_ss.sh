#!/usr/bin/env bash
# Benchmark: `tcpka audit --json` against `ss -tnoie` on the same sockets.
# usage: tests/bench/audit_vs_ss.sh SOCKETS [RUNS]   (as root, after a build)
# Creates its own network namespace tka-bench-$$, holds SOCKETS sockets in it
# (SOCKETS/2 loopback connections, spread over processes of at most 9,000
# connections each), then times each command RUNS times, alternating them,
# and prints the medians and their ratio. Removes everything on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
sockets=${1:?usage: $0 SOCKETS [RUNS]}
runs=${2:-7}
bench_hold_sockets "$sockets"

now_ms() { date +%s%N; }
time_ms() {  # runs "$@" with stdout to /dev/null, prints milliseconds
  local t0 t1
  t0=$(now_ms)
  "$@" > /dev/null
  t1=$(now_ms)
  echo $(((t1 - t0) / 1000000))
}

seen=$($tcpka audit --json | grep -c '"netns":'"$(stat -L -c %i /run/netns/"$ns")")
audit_t=() ss_t=()
for ((i = 0; i < runs; i++)); do
  audit_t+=("$(time_ms "$tcpka" audit --json)")
  ss_t+=("$(time_ms nsenter --net=/run/netns/"$ns" ss -tnoie)")
done
a=$(printf '%s\n' "${audit_t[@]}" | median)
s=$(printf '%s\n' "${ss_t[@]}" | median)
echo "sockets=$sockets audited_in_netns=$seen runs=$runs"
echo "tcpka audit --json: median ${a} ms (${audit_t[*]})"
echo "ss -tnoie:          median ${s} ms (${ss_t[*]})"
awk -v a="$a" -v s="$s" 'BEGIN {printf "ratio audit/ss: %.2f\n", a / s}'
