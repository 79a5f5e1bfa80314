#!/usr/bin/env bash
# Benchmark: the all-in overhead of `tcpka run` on loopback traffic.
# usage: tests/bench/overhead.sh [RUNS [SECONDS [CONNS]]]   (as root, after a build)
# In a network namespace of its own, runs RUNS times (default 5) each of
#   tcpka_bench_loadgen rr SECONDS CONNS   (request/response, transactions/s)
#   tcpka_bench_loadgen churn SECONDS      (connect/accept/close, connections/s)
# without and with `tcpka run` (default flags, started in the namespace before
# the pair and stopped by pid after it), the two alternating, and prints each
# run, the medians, the ratio of the medians and of each adjacent pair
# (with/without, against the targets 0.99 and 0.97), the agent's CPU while it
# ran and its event-drop counters after the last run.
# It also prints the CPU time per transaction and per connection, from
# /proc/stat (user, nice, system, irq and softirq of all CPUs, over the run,
# divided by the operations): this VM's throughput moves by 10% between runs
# when the host takes its CPUs away (steal time), which that time leaves out.
# Their ratio without/with is the throughput the agent leaves for a CPU-bound
# load, on the same targets. The host's other processes count in both.
# Defaults: SECONDS=10, CONNS=8. Removes everything on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${1:-5}
secs=${2:-10}
conns=${3:-8}
loadgen=build/tests/bench/tcpka_bench_loadgen
port=9977
[[ -x $loadgen && -x $tcpka ]] || { echo "build first: $loadgen, $tcpka" >&2; exit 1; }
bench_hold_sockets 0  # the namespace, nothing held
log=$(mktemp)
trap 'bench_cleanup; rm -f "$log" "$log.metrics"' EXIT
revision=

agent_log="$log"

rr_off=() rr_on=() churn_off=() churn_on=() cpu_on=()
rrcpu_off=() rrcpu_on=() chcpu_off=() chcpu_on=()
# busy: jiffies (USER_HZ) all CPUs spent outside idle, iowait and steal.
busy() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }
# per_op JIFFIES RATE: microseconds of CPU per operation over secs seconds.
per_op() { awk -v j="$1" -v r="$2" -v s="$secs" -v hz="$hz" 'BEGIN {printf "%.3f", 1e6 * j / hz / (r * s)}'; }
# Other tcpka agents or benchmarks on the host (another agent's programs would
# run in "without" too): counted before and after each run, shown per line.
others() { pgrep -f 'tcpka' | grep -vxF -e "$$" -e "${agent:-none}" | grep -c . || true; }
one() {  # one: MODE (off|on) -- one rr run and one churn run
  local rr churn t0=0 t1 w0 w1 busy0 busy1 c0 c1 c2 rrcpu chcpu
  busy0=$(others)
  [[ $1 == on ]] && start_agent
  sleep 1  # the same settling time either way
  if [[ $1 == on ]]; then
    t0=$(ticks "$agent")
    w0=$(date +%s%N)
  fi
  c0=$(busy)
  rr=$(in_ns "$loadgen" rr "$secs" "$conns" 2> /dev/null)
  c1=$(busy)
  churn=$(in_ns "$loadgen" churn "$secs" 2> /dev/null)
  c2=$(busy)
  rrcpu=$(per_op $((c1 - c0)) "$rr")
  chcpu=$(per_op $((c2 - c1)) "$churn")
  if [[ $1 == on ]]; then
    t1=$(ticks "$agent")
    w1=$(date +%s%N)
    in_ns curl -sf -o /dev/null http://127.0.0.1:$port/healthz || { echo "agent unhealthy after the run" >&2; exit 1; }
    in_ns curl -sf -o "$log.metrics" http://127.0.0.1:$port/metrics
    cpu_on+=("$(awk -v d=$((t1 - t0)) -v hz="$hz" -v w=$(((w1 - w0) / 1000000)) 'BEGIN {printf "%.1f", 100 * d / hz / (w / 1000)}')")
    stop_agent
    rr_on+=("$rr") churn_on+=("$churn") rrcpu_on+=("$rrcpu") chcpu_on+=("$chcpu")
    [[ -n $revision ]] || revision=$(grep -o 'revision="[^"]*"' "$log.metrics" || true)
  else
    rr_off+=("$rr") churn_off+=("$churn") rrcpu_off+=("$rrcpu") chcpu_off+=("$chcpu")
  fi
  busy1=$(others)
  printf '%-7s rr %8s tps %7s us CPU each   churn %7s conn/s %7s us CPU each   other tcpka processes before/after: %s/%s\n' \
    "$1" "$rr" "$rrcpu" "$churn" "$chcpu" "$busy0" "$busy1"
}

echo "nproc=$(nproc) kernel=$(uname -r) runs=$runs seconds=$secs conns=$conns"
for ((i = 0; i < runs; i++)); do
  one off
  one on
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.4f", a / b}'; }
pair_ratios() {  # pair_ratios ON... -- OFF...: with/without of each adjacent pair
  local -n on_=$1 off_=$2
  local k
  for k in "${!on_[@]}"; do ratio "${on_[$k]}" "${off_[$k]}"; echo; done
}
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r >= t) ? "holds" : "FAILS"}'; }
rro=$(printf '%s\n' "${rr_off[@]}" | median)
rrn=$(printf '%s\n' "${rr_on[@]}" | median)
cho=$(printf '%s\n' "${churn_off[@]}" | median)
chn=$(printf '%s\n' "${churn_on[@]}" | median)
cpu=$(printf '%s\n' "${cpu_on[@]}" | median)
rrr=$(ratio "$rrn" "$rro")
chr=$(ratio "$chn" "$cho")
echo "rr (tps, $conns connections):  without median $rro (${rr_off[*]})"
echo "                               with    median $rrn (${rr_on[*]})"
echo "churn (connections/s):         without median $cho (${churn_off[*]})"
echo "                               with    median $chn (${churn_on[*]})"
echo "agent CPU during rr+churn (% of one core): median $cpu (${cpu_on[*]})"
rrp=$(pair_ratios rr_on rr_off | median)
chp=$(pair_ratios churn_on churn_off | median)
echo "agent: ${revision:-revision unknown}"
echo "agent, last run: $(grep -E '^tcpka_(events_dropped|audit[a-z_]*drop[a-z_]*)' "$log.metrics" | tr '\n' ' ')"
echo "pair ratios rr:    $(pair_ratios rr_on rr_off | tr '\n' ' ')(median $rrp)"
echo "pair ratios churn: $(pair_ratios churn_on churn_off | tr '\n' ' ')(median $chp)"
echo "ratio of medians rr with/without:    $rrr (target >= 0.99: $(verdict "$rrr" 0.99))"
echo "ratio of medians churn with/without: $chr (target >= 0.97: $(verdict "$chr" 0.97))"
# cpu_per_op LABEL OFF ON TARGET: the medians of the arrays named OFF and ON
# (CPU microseconds per operation), and OFF/ON against TARGET.
cpu_per_op() {
  local -n off_=$2 on_=$3
  local o n r
  o=$(printf '%s\n' "${off_[@]}" | median)
  n=$(printf '%s\n' "${on_[@]}" | median)
  r=$(ratio "$o" "$n")
  echo "CPU per $1 (us): without median $o (${off_[*]}), with $n (${on_[*]});" \
    "without/with $r (target >= $4: $(verdict "$r" "$4"))"
}
cpu_per_op transaction rrcpu_off rrcpu_on 0.99
cpu_per_op connection chcpu_off chcpu_on 0.97
