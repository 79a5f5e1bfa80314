#!/usr/bin/env bash
# Benchmark: `tcpka audit --json` against `ss -tnoie` on the same sockets.
# usage: tests/bench/audit_vs_ss.sh SOCKETS [RUNS]   (as root, after a build)
# Creates its own network namespace tka-bench-$$, holds SOCKETS sockets in it
# (SOCKETS/2 loopback connections, spread over processes of at most 9,000
# connections each), then times each command RUNS times, alternating them,
# and prints the medians and their ratio. Removes everything on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
sockets=${1:?usage: $0 SOCKETS [RUNS]}
runs=${2:-7}
tcpka=build/agent/tcpka
holder=build/tests/bench/tcpka_hold_sockets
ns=tka-bench-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
conns=$((sockets / 2))
per=9000
fifo=$(mktemp -u)
mkfifo "$fifo"
while ((conns > 0)); do
  n=$((conns < per ? conns : per))
  nsenter --net=/run/netns/"$ns" "$holder" "$n" > "$fifo" &
  pids+=($!)
  read -r line < "$fifo"
  [[ $line == ready ]] || { echo "holder failed" >&2; exit 1; }
  conns=$((conns - n))
done
rm -f "$fifo"

now_ms() { date +%s%N; }
time_ms() {  # runs "$@" with stdout to /dev/null, prints milliseconds
  local t0 t1
  t0=$(now_ms)
  "$@" > /dev/null
  t1=$(now_ms)
  echo $(((t1 - t0) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

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
