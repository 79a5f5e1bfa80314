# Shared by the benchmark scripts (sourced, not run): a network namespace of
# the script's own holding SOCKETS loopback sockets, removed on exit.
# Sets: tcpka, ns, pids (append your own background pids to have them ended).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
tcpka=build/agent/tcpka
ns=tka-bench-$$
pids=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap bench_cleanup EXIT

# bench_hold_sockets SOCKETS: SOCKETS/2 connections in $ns, spread over holder
# processes of at most 9,000 connections each (20,000 open files per process).
bench_hold_sockets() {
  local conns=$(($1 / 2)) n line fifo
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  fifo=$(mktemp -u)
  mkfifo "$fifo"
  while ((conns > 0)); do
    n=$((conns < 9000 ? conns : 9000))
    nsenter --net=/run/netns/"$ns" build/tests/bench/tcpka_hold_sockets "$n" > "$fifo" &
    pids+=($!)
    read -r line < "$fifo"
    [[ $line == ready ]] || { echo "holder failed" >&2; exit 1; }
    conns=$((conns - n))
  done
  rm -f "$fifo"
}
