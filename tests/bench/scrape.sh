#!/usr/bin/env bash
# Benchmark: the latency and body size of a /metrics scrape of `tcpka run`.
# usage: tests/bench/scrape.sh [PORTS [SCRAPES]]   (as root, after a build)
# In a network namespace of its own, times SCRAPES (default 20) sequential
# `curl /metrics` twice:
#  1. default cardinality: `tcpka run` with its defaults, no keepalive traffic
#     of ours (the series are whatever the host's own sockets produce);
#  2. high cardinality: PORTS (default 5000) listeners on distinct ports with
#     one keepalive connection each, probing every second on both ends and
#     answered (tcpka_bench_loadgen ports, at most 2,000 ports a process for
#     the 20,000 open-file limit), i.e. 2 x PORTS label sets (inbound and
#     outbound per port), under `tcpka run --max-series 20000`; timed once
#     tcpka_keepalive_probes_sent_total has 2 x PORTS series (or after 120 s).
# Prints, for each, the series count, the median and range of curl's
# time_total, and the body size. Removes everything on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
nports=${1:-5000}
scrapes=${2:-20}
loadgen=build/tests/bench/tcpka_bench_loadgen
port=9977
url=http://127.0.0.1:$port/metrics
[[ -x $loadgen && -x $tcpka ]] || { echo "build first: $loadgen, $tcpka" >&2; exit 1; }
bench_hold_sockets 0  # the namespace, nothing held
tmp=$(mktemp -d)
trap 'bench_cleanup; rm -rf "$tmp"' EXIT

agent_log="$tmp/agent.log"
probe_series() { in_ns curl -sf "$url" | grep -c '^tcpka_keepalive_probes_sent_total{' || true; }

measure() {  # measure LABEL: SCRAPES timed scrapes of the running agent
  local t0 t1 cpu i out times=() sizes=() busy0
  busy0=$(others)
  t0=$(ticks "$agent")
  sleep 5
  t1=$(ticks "$agent")
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN {printf "%.1f", 100 * d / hz / 5}')
  in_ns curl -sf "$url" > "$tmp/body"
  local series lines
  series=$(grep -c '^tcpka_keepalive_probes_sent_total{' "$tmp/body" || true)
  lines=$(grep -vc '^#' "$tmp/body" || true)
  for ((i = 0; i < scrapes; i++)); do
    out=$(in_ns curl -sf -o /dev/null -w '%{time_total} %{size_download}' "$url")
    times+=("$(awk -v t="${out% *}" 'BEGIN {printf "%.1f", t * 1000}')")
    sizes+=("${out#* }")
  done
  local med lo hi size
  med=$(printf '%s\n' "${times[@]}" | median)
  lo=$(printf '%s\n' "${times[@]}" | sort -g | head -1)
  hi=$(printf '%s\n' "${times[@]}" | sort -g | tail -1)
  # The body grows while probes count up: its median may fall between two
  # sizes (x.5); bytes are whole.
  size=$(printf '%s\n' "${sizes[@]}" | median | cut -d. -f1)
  echo "$1: probes_sent series=$series sample lines=$lines agent CPU (5 s before)=${cpu}%"
  echo "$1: scrape median ${med} ms (min $lo, max $hi, n=$scrapes), body $size bytes ($((size / 1024)) KiB)"
  echo "$1: times ms: ${times[*]}"
  echo "$1: other tcpka processes before/after: $busy0/$(others)"
}

echo "nproc=$(nproc) kernel=$(uname -r) ports=$nports scrapes=$scrapes"
# Other tcpka agents or benchmarks on the host, shown with each measurement.
others() {
  local p skip=(-e "$$" -e "${agent:-none}")
  for p in "${pids[@]}"; do skip+=(-e "$p"); done
  pgrep -f 'tcpka' | grep -vxF "${skip[@]}" | grep -c . || true
}

start_agent
measure "default cardinality (tcpka run)"
stop_agent

# High cardinality: the agent first, then the probing ports.
start_agent --max-series 20000
fifo=$tmp/fifo
mkfifo "$fifo"
left=$nports
while ((left > 0)); do
  n=$((left < 2000 ? left : 2000))
  nsenter --net=/run/netns/"$ns" "$loadgen" ports "$n" > "$fifo" &
  pids+=($!)
  read -r line < "$fifo"
  [[ $line == ready ]] || { echo "loadgen ports failed" >&2; exit 1; }
  left=$((left - n))
done
want=$((2 * nports))
t_start=$(date +%s)
while :; do
  have=$(probe_series)
  (( have >= want )) && break
  (( $(date +%s) - t_start >= 120 )) && { echo "note: only $have of $want series after 120 s" >&2; break; }
  sleep 2
done
echo "high cardinality: $have probes_sent series after $(($(date +%s) - t_start)) s"
measure "high cardinality (tcpka run --max-series 20000, $nports ports)"
