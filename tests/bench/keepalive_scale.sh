#!/usr/bin/env bash
# Benchmark: the user-space cost of `tcpka run` as keepalive-probing sockets
# grow. For each count in SOCKET_COUNTS (default "1000 10000 50000"), holds
# that many sockets that send a keepalive probe every second and have it
# answered (tcpka_hold_sockets --keepalive: TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, both
# ends of each connection, opened over 1 s so the expiries spread over the
# second), starts `tcpka run` with its defaults, waits until it tracks them
# all, and measures over WINDOW seconds (default 20):
#   - the agent's CPU (run time of its threads from schedstat), in % of one core and
#     per 1,000 probing sockets: every probe is one ring-buffer event, so this
#     is the event path (decode, aggregate) plus the periodic audit scan;
#   - its resident memory (VmRSS) and peak (VmHWM), against 30 MB + 1 KB per
#     socket;
#   - the probes it counted per second and its drop counters.
# usage: tests/bench/keepalive_scale.sh [WINDOW]   (as root, after `cmake --build build`)
# Environment: SOCKET_COUNTS, PORT (default 9981), AGENT_FLAGS (extra `tcpka run` flags).
# Everything runs in a network namespace of the script's own, removed on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
window=${1:-20}
counts=${SOCKET_COUNTS:-1000 10000 50000}
port=${PORT:-9981}
[[ -x build/tests/bench/tcpka_hold_sockets && -x $tcpka ]] || { echo "build first (cmake --build build)" >&2; exit 1; }
agent_log=$(mktemp)
bench_netns

# The agent's CPU time in ns, summed over its threads (all live as long as it
# does): schedstat's run time is exact, where /proc/PID/stat counts 10 ms ticks
# (0.07% of a core over 60 s is only 4 of them).
cpu_ns() { cat /proc/"$agent"/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'; }

printf '%s\n' "nproc=$(nproc) kernel=$(uname -r) window=${window}s agent flags: ${AGENT_FLAGS:-(defaults)}"
printf '| probing sockets | agent CPU (%% of one core) | CPU per 1k sockets | RSS | peak RSS | memory target (30 MB + 1 KB/socket) | probes counted/s | dropped |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for n in $counts; do
  bench_start_holders "$n" --keepalive --spread-ms 1000
  # shellcheck disable=SC2086
  start_agent ${AGENT_FLAGS:-}
  # Every socket probes once a second: wait until the agent tracks them all.
  for ((i = 0; i < 60; i++)); do
    (($(metric tcpka_tracked_sockets) >= n)) && break
    sleep 1
  done
  tracked=$(metric tcpka_tracked_sockets)
  # The agent counts a new socket's first probes in their series with the
  # audit scan after them (every 5 s by default): start the window after
  # one, or it would count probes from before it.
  sleep 7
  p0=$(metric tcpka_keepalive_probes_sent_total)
  t0=$(cpu_ns)
  sleep "$window"
  t1=$(cpu_ns)
  p1=$(metric tcpka_keepalive_probes_sent_total)
  rss=$(awk '/VmRSS/ {print $2}' /proc/"$agent"/status)
  hwm=$(awk '/VmHWM/ {print $2}' /proc/"$agent"/status)
  dropped=$(metric tcpka_events_dropped_total)
  awk -v n="$n" -v d=$((t1 - t0)) -v w="$window" -v rss="$rss" -v hwm="$hwm" \
    -v p=$((p1 - p0)) -v dr="$dropped" -v tr="$tracked" 'BEGIN {
      cpu = 100 * d / 1e9 / w
      target = (30e6 + 1000 * n) / 1024  # KiB: 30 MB + 1 KB per socket, decimal units
      printf "| %d (tracked %d) | %.2f%% | %.3f%% | %.1f MiB | %.1f MiB | %.1f MiB: %s | %.0f | %d |\n",
        n, tr, cpu, cpu / (n / 1000), rss / 1024, hwm / 1024, target / 1024,
        (hwm <= target ? "holds" : "exceeded"), p / w, dr
    }'
  stop_agent
  for h in "${holders[@]}"; do kill "$h"; wait "$h" 2> /dev/null || true; done
  # The next count starts from none: nothing of ours may still probe.
  for ((i = 0; i < 50; i++)); do
    left=$(in_ns ss -tanH state established | wc -l)
    ((left == 0)) && break
    sleep 0.1
  done
  ((left == 0)) || { echo "$left connections still open after the load ended" >&2; exit 1; }
  keep=()
  for p in "${pids[@]}"; do [[ " ${holders[*]} " == *" $p "* ]] || keep+=("$p"); done
  pids=("${keep[@]}")
done
echo "targets: CPU under 0.1% of a core per 1,000 keepalive sockets; memory under 30 MB + 1 KB per socket"
