#!/usr/bin/env bash
# Check, not a timing: does the agent count every keepalive probe the kernel
# sends? Holds SOCKETS loopback sockets probing every second (opened over
# SPREAD_MS, default 1000, so their timers spread over the second) in a
# network namespace of the script's own, with `tcpka run` in it, for WINDOW
# seconds; then ends the load and compares, ROUNDS times:
#   kernel  the namespace's TcpExtTCPKeepAlive: probes sent;
#   shown   the probes sent by the keepalive-timer callbacks BPF was shown at
#           all, by the kernel's own per-CPU count around each callback
#           (tcpka_bench_witness, tests/common/probe_witness.bpf.c);
#   agent   the agent's tcpka_keepalive_probes_sent_total.
# agent != shown is the agent's own error: the round FAILS. shown < kernel is
# a kernel gap: callbacks no BPF program was run for, which happen here when
# CPUs idle (tests/bench/RESULTS.md, "Probes BPF is not shown"); BUSY=1 keeps
# every CPU busy with a SCHED_IDLE spinner to show that. The witness also
# counts the expiries as tp_btf, raw_tp and a classic tracepoint saw them (the
# last "-" unless tracefs is mounted).
# Exits 1 if any round failed. TCPKA=/path/to/tcpka compares another build.
# usage: tests/bench/probe_accuracy.sh [ROUNDS] [WINDOW]   (as root, after `cmake --build build`)
# Environment: SOCKETS (default 400), SPREAD_MS, HUP=1 (SIGHUP the agent every
# second), BUSY=1, PORT (default 9993).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
window=${2:-6}
sockets=${SOCKETS:-400}
spread=${SPREAD_MS:-1000}
port=${PORT:-9993}
agent_log=$(mktemp)
witness=build/tests/bench/tcpka_bench_witness
[[ -x build/tests/bench/tcpka_hold_sockets && -x $witness && -x $tcpka ]] || { echo "build first (cmake --build build)" >&2; exit 1; }
bench_netns

keepalive_mib() {  # TcpExtTCPKeepAlive of $ns
  in_ns awk '/^TcpExt:/ {if (!h) {for (i = 1; i <= NF; i++) if ($i == "TCPKeepAlive") c = i; h = 1} else print $c}' \
    /proc/net/netstat
}

if [[ -n ${BUSY:-} ]]; then
  for ((c = 0; c < $(nproc); c++)); do
    chrt --idle 0 bash -c 'while :; do :; done' &
    pids+=($!)
  done
fi

failed=0 gaps=0
for ((r = 1; r <= rounds; r++)); do
  start_agent
  wfifo=$(mktemp -u)
  mkfifo "$wfifo"
  nsenter --net=/run/netns/"$ns" "$witness" > "$wfifo" &
  wpid=$!
  pids+=("$wpid")
  exec 3< "$wfifo"
  rm -f "$wfifo"
  read -r line <&3
  [[ $line == ready ]] || { echo "witness failed" >&2; exit 1; }
  k0=$(keepalive_mib)
  a0=$(metric tcpka_keepalive_probes_sent_total)
  bench_start_holders "$sockets" --keepalive --spread-ms "$spread"
  for ((j = 0; j < window; j++)); do
    sleep 1
    [[ -n ${HUP:-} ]] && kill -HUP "$agent"
  done
  for h in "${holders[@]}"; do kill "$h"; wait "$h" 2> /dev/null || true; done
  sleep 0.5
  k1=$(keepalive_mib)
  kill "$wpid"
  read -r _ shown _ w_btf _ w_raw _ w_tp <&3
  exec 3<&-
  wait "$wpid" || true
  sleep 3  # the agent reads its ring at least once a second
  a1=$(metric tcpka_keepalive_probes_sent_total)
  dropped=$(metric tcpka_events_dropped_total)
  kernel=$((k1 - k0)) counted=$((a1 - a0))
  if ((counted != shown)); then
    verdict="FAILS: the agent counted $counted of the $shown BPF was shown"
    failed=1
  elif ((shown != kernel)); then
    verdict="kernel gap: $((kernel - shown)) sent by callbacks no BPF program ran for"
    gaps=$((gaps + 1))
  else
    verdict=exact
  fi
  printf 'round %d: kernel %d, shown %d, agent %d, dropped %d; expiries tp_btf %d raw_tp %d tracepoint %s: %s\n' \
    "$r" "$kernel" "$shown" "$counted" "$dropped" "$w_btf" "$w_raw" "$w_tp" "$verdict"
  stop_agent
  keep=()
  for p in "${pids[@]}"; do [[ " ${holders[*]} $wpid " == *" $p "* ]] || keep+=("$p"); done
  pids=(${keep[@]+"${keep[@]}"})
done
echo "rounds with a kernel gap: $gaps of $rounds${BUSY:+ (BUSY)}"
exit "$failed"
