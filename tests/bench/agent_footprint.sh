#!/usr/bin/env bash
# Benchmark: the resident memory and CPU of `tcpka run` with SOCKETS sockets
# held open on the host (default audit interval, no keepalive traffic).
# usage: tests/bench/agent_footprint.sh SOCKETS [SECONDS [tcpka run flags...]]   (as root, after a build)
# Creates its own network namespace and holder processes, removes them on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
sockets=${1:?usage: $0 SOCKETS [SECONDS [tcpka run flags...]]}
window=${2:-30}
bench_hold_sockets "$sockets"
nsenter --net=/run/netns/"$ns" "$tcpka" run --listen 127.0.0.1:9977 "${@:3}" 2> /dev/null &
agent=$!
pids+=("$agent")
sleep 3  # start-up and first audit
t0=$(ticks "$agent")
sleep "$window"
t1=$(ticks "$agent")
rss=$(awk '/VmRSS/ {print $2}' /proc/"$agent"/status)
hwm=$(awk '/VmHWM/ {print $2}' /proc/"$agent"/status)
echo "sockets=$sockets window=${window}s"
awk -v d=$((t1 - t0)) -v hz="$hz" -v w="$window" 'BEGIN {printf "cpu: %.2f%% of one core\n", 100 * d / hz / w}'
echo "rss: $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB)"
