#!/usr/bin/env bash
# Benchmark: the resident memory and CPU of `tcpka run` with SOCKETS sockets
# held open on the host (default audit interval, no keepalive traffic).
# usage: tests/bench/agent_footprint.sh SOCKETS [SECONDS [tcpka run flags...]]   (as root, after a build)
# Creates its own network namespace and holder processes, removes them on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
sockets=${1:?usage: $0 SOCKETS [SECONDS]}
window=${2:-30}
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
fifo=$(mktemp -u)
mkfifo "$fifo"
while ((conns > 0)); do
  n=$((conns < 9000 ? conns : 9000))
  nsenter --net=/run/netns/"$ns" "$holder" "$n" > "$fifo" &
  pids+=($!)
  read -r line < "$fifo"
  conns=$((conns - n))
done
rm -f "$fifo"
nsenter --net=/run/netns/"$ns" "$tcpka" run --listen 127.0.0.1:9977 "${@:3}" 2> /dev/null &
agent=$!
pids+=("$agent")
sleep 3  # start-up and first audit
ticks() { awk '{print $14 + $15}' /proc/"$agent"/stat; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
sleep "$window"
t1=$(ticks)
rss=$(awk '/VmRSS/ {print $2}' /proc/"$agent"/status)
hwm=$(awk '/VmHWM/ {print $2}' /proc/"$agent"/status)
echo "sockets=$sockets window=${window}s"
awk -v d=$((t1 - t0)) -v hz="$hz" -v w="$window" 'BEGIN {printf "cpu: %.2f%% of one core\n", 100 * d / hz / w}'
echo "rss: $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB)"
