#!/usr/bin/env bash
# Benchmark: where the CPU goes under loopback load, with and without
# `tcpka run`, from a system-wide `perf` profile: the share of busy CPU spent
# in tcpka's BPF programs, in the kernel's dispatch to them, in freeing their
# socket storage, and in the agent process.
# usage: tests/bench/overhead_profile.sh [SECONDS [CONNS]]   (as root, after a build; needs perf)
#
# Why beside overhead.sh: on this VM two throughput runs of the same binary
# differ by up to 15% (RESULTS.md), more than the cost to be shown (1% of
# request/response throughput, 3% of churn). A profile of one run measures that
# cost as a share of the CPU time, inside the run, and is not moved by how fast
# the host let the run go. It is a lower bound on the all-in cost: what the
# programs do to the caches and what the RCU frees of their storage cost later
# are charged to the kernel code that pays for them.
#
# In a network namespace of its own, for each workload (rr with CONNS
# connections, default 8, then churn), twice: "off" (no agent) then "on"
# (`tcpka run`, default flags). Each run is tcpka_bench_loadgen for SECONDS+2
# seconds (default 10), profiled for SECONDS from its second second by
# `perf record -a -g` at FREQ Hz (default 4999). Each sample is put in the first
# class its stack matches:
#   agent      the agent's process (its pid)
#   prog:NAME  a frame of the BPF program tka_NAME (and everything it called)
#   dispatch   a frame of the kernel's BPF trampoline / tracepoint dispatch
#              (__bpf_prog_enter*, __bpf_prog_exit*, bpf_trampoline_*,
#              bpf_trace_run*), without a program frame
#   storage    bpf_sk_storage_free / bpf_local_storage_* / bpf_selem_* outside a
#              program: socket storage freed when a socket ends
#   idle       the idle loop (left out of "busy")
#   workload   everything else
# and the share of busy samples of each class is printed, "off" next to "on"
# (in "off" every tcpka class should be 0: a non-zero one is another BPF user on
# the host). The last column, on minus off over busy, is tcpka's cost as a share
# of the CPU; for a CPU-bound load the throughput lost is about that share.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
secs=${1:-10}
conns=${2:-8}
freq=${FREQ:-4999}
loadgen=build/tests/bench/tcpka_bench_loadgen
port=9975
[[ -x $loadgen && -x $tcpka ]] || { echo "build first: $loadgen, $tcpka" >&2; exit 1; }
command -v perf > /dev/null || { echo "needs perf (Debian package linux-perf)" >&2; exit 1; }
bench_netns
tmp=$(mktemp -d)
trap 'bench_cleanup; rm -rf "$tmp"' EXIT
agent_log=$tmp/agent.log

# classify PERF_DATA AGENT_PID (-1: none): "class samples" lines, and "busy N".
classify() {
  perf script -i "$1" -F pid,ip,sym 2> /dev/null | awk -v agent="$2" '
    BEGIN { RS = "" }
    {
      n = split($0, f, "\n")
      split(f[1], head, " ")
      c = ""
      if (head[1] == agent) c = "agent"
      for (i = 2; i <= n && c == ""; i++) {
        if (match(f[i], /bpf_prog_[0-9a-f]+_tka_[a-z_]+/)) {
          s = substr(f[i], RSTART, RLENGTH)
          sub(/bpf_prog_[0-9a-f]+_tka_/, "", s)
          c = "prog:" s
        }
      }
      for (i = 2; i <= n && c == ""; i++) {
        if (f[i] ~ /__bpf_prog_enter|__bpf_prog_exit|bpf_trampoline_|bpf_trace_run/) c = "dispatch"
        else if (f[i] ~ /bpf_sk_storage_free|bpf_local_storage_|bpf_selem_/) c = "storage"
      }
      if (c == "" && $0 ~ /(default_idle|pv_native_safe_halt|cpuidle_enter)/ && $0 ~ /do_idle/) c = "idle"
      if (c == "") c = "workload"
      count[c]++
      if (c != "idle") busy++
    }
    END { for (k in count) print k, count[k]; print "busy", busy + 0 }'
}

declare -A share rate
classes=()
one() {  # one WORKLOAD MODE
  local w=$1 mode=$2 lg pid=-1 args=("$w" $((secs + 2)))
  [[ $w == rr ]] && args+=("$conns")
  if [[ $mode == on ]]; then
    start_agent
    pid=$agent
  fi
  sleep 1
  in_ns "$loadgen" "${args[@]}" > "$tmp/$w.$mode.rate" 2> /dev/null &
  lg=$!
  pids+=("$lg")
  sleep 1
  perf record -q -a -g -F "$freq" -o "$tmp/$w.$mode.data" -- sleep "$secs" > /dev/null 2>&1
  wait "$lg"
  rate[$w.$mode]=$(cat "$tmp/$w.$mode.rate")
  [[ $mode == on ]] && stop_agent
  local busy c n
  classify "$tmp/$w.$mode.data" "$pid" > "$tmp/$w.$mode.classes"
  busy=$(awk '$1 == "busy" {print $2}' "$tmp/$w.$mode.classes")
  while read -r c n; do
    [[ $c == busy ]] && continue
    share[$w.$mode.$c]=$(awk -v n="$n" -v b="$busy" 'BEGIN {printf "%.3f", 100 * n / b}')
    [[ " ${classes[*]} " == *" $c "* ]] || classes+=("$c")
  done < "$tmp/$w.$mode.classes"
  share[$w.$mode.busy]=$busy
}

echo "machine: $(nproc) CPUs, $(uname -r); checkout $(git describe --always --dirty 2>/dev/null || echo unknown); agent $tcpka"
echo "perf record -a -g -F $freq for $secs s per run; shares are % of busy samples"
for w in rr churn; do
  one "$w" off
  one "$w" on
done

for w in rr churn; do
  echo
  echo "## $w: ${rate[$w.off]} without, ${rate[$w.on]} with the agent ($([[ $w == rr ]] && echo transactions || echo connections)/s)"
  echo
  echo "| class | off (% busy) | on (% busy) | on - off |"
  echo "|---|---|---|---|"
  total=0
  for c in $(printf '%s\n' "${classes[@]}" | sort); do
    [[ $c == idle ]] && continue
    off=${share[$w.off.$c]:-0}
    on=${share[$w.on.$c]:-0}
    d=$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%+.3f", a - b}')
    echo "| $c | $off | $on | $d |"
    [[ $c == workload ]] || total=$(awk -v t="$total" -v d="$d" 'BEGIN {printf "%.3f", t + d}')
  done
  echo "| busy samples | ${share[$w.off.busy]} | ${share[$w.on.busy]} | |"
  echo
  echo "tcpka's share of busy CPU in $w (every class but workload, on - off): $total%"
done
