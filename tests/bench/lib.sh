# Shared by the benchmark scripts (sourced, not run): a network namespace of
# the script's own holding SOCKETS loopback sockets, removed on exit.
# Sets: tcpka, ns, pids (append your own background pids to have them ended).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
tcpka=${TCPKA:-build/agent/tcpka}  # TCPKA: another build to compare
ns=tka-bench-$$
pids=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap bench_cleanup EXIT

# bench_netns: creates $ns with loopback up (bench_cleanup removes it).
bench_netns() {
  ip netns add "$ns"
  ip -n "$ns" link set lo up
}

# bench_hold_sockets SOCKETS: bench_netns, and SOCKETS/2 connections in it
# (bench_start_holders).
bench_hold_sockets() {
  bench_netns
  bench_start_holders "$1"
}

# bench_start_holders SOCKETS [tcpka_hold_sockets OPTIONS...]: SOCKETS/2
# connections in $ns, spread over holder processes of at most 9,000
# connections each (20,000 open files per process); waits until each is
# ready. Sets holders to their pids (also added to pids).
holders=()
bench_start_holders() {
  local conns=$(($1 / 2)) n line fifo
  shift
  holders=()
  fifo=$(mktemp -u)
  mkfifo "$fifo"
  while ((conns > 0)); do
    n=$((conns < 9000 ? conns : 9000))
    # nsenter itself, not in_ns: a function in the background runs in a
    # subshell, and $! would name the subshell, not the holder.
    nsenter --net=/run/netns/"$ns" build/tests/bench/tcpka_hold_sockets "$@" "$n" > "$fifo" &
    holders+=($!)
    pids+=($!)
    read -r line < "$fifo"
    [[ $line == ready ]] || { echo "holder failed" >&2; exit 1; }
    conns=$((conns - n))
  done
  rm -f "$fifo"
}

in_ns() { nsenter --net=/run/netns/"$ns" "$@"; }

# start_agent [tcpka run flags...]: `tcpka run` in $ns on 127.0.0.1:$port
# (the caller sets port and agent_log), waits until /healthz answers; sets agent.
agent=
start_agent() {
  nsenter --net=/run/netns/"$ns" "$tcpka" run --listen 127.0.0.1:"$port" "$@" 2> "$agent_log" &
  agent=$!  # nsenter execs tcpka: the agent's own pid
  pids+=("$agent")
  local i
  for ((i = 0; i < 300; i++)); do  # up to 30 s: loaded, attached, first audit done
    if in_ns curl -sf -o /dev/null http://127.0.0.1:"$port"/healthz; then return 0; fi
    kill -0 "$agent" 2> /dev/null || break
    sleep 0.1
  done
  echo "tcpka run did not become healthy:" >&2
  cat "$agent_log" >&2
  exit 1
}

# median: the median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {printf "%.10g\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# ticks PID: the CPU time (user + system) of process PID, in clock ticks of hz.
ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
hz=$(getconf CLK_TCK)

# metric NAME: the sum of a family's samples on the /metrics of the agent in
# $ns on 127.0.0.1:$port.
metric() {
  in_ns curl -sf http://127.0.0.1:"$port"/metrics |
    awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $NF} END {printf "%d\n", s}'
}

# stop_agent: SIGTERM to the agent by pid, and forget it.
stop_agent() {
  local p keep=()
  kill "$agent"
  wait "$agent" || true
  for p in "${pids[@]}"; do [[ $p == "$agent" ]] || keep+=("$p"); done
  pids=("${keep[@]}")
  agent=
}
