#!/usr/bin/env bash
# Benchmark: the in-kernel cost per run of each tcpka BPF program, against an
# empty program on the same hook (the floor), from the kernel's BPF run time
# statistics (run_time_ns / run_cnt per program).
# usage: tests/bench/bpf_cost.sh [ROUNDS]   (as root, after `cmake --build build`)
#
# Starts, in a network namespace of its own (tka-bench-$$), `tcpka run` and the
# loads. On the host it starts tcpka_bench_floor twice, once before the agent
# and once after it: each attaches the empty tkb_* programs of floor.bpf.c,
# and programs on one tracepoint run in the order they were attached, so the
# agent's program runs between its two floors ("/1" runs first, "/2" last) and
# the mean of the two cancels the cost of running first on a cold hook. The
# floor loaders hold BPF_ENABLE_STATS: statistics are on while they live and
# off again when they exit; kernel.bpf_stats_enabled is never written.
# Then ROUNDS times (default 3), in turn:
#   idle       nothing of ours runs but the agent           (IDLE_S, 30 s)
#   keepalive  KA_CONNS connections, keepalive on both ends, probing every
#              second: 2*KA_CONNS probing sockets            (KA_S, 20 s)
#   halfopen   the keepalive load plus HALF_CONNS connections whose packets
#              from their listener's port are dropped (nftables, in the
#              namespace): 2*HALF_CONNS sockets whose probes go unanswered,
#              as on a host with half-open connections.       (KA_S, 20 s)
#   storm      STORM_PINGPONG connections in paced ping-pong plus STORM_CHURN
#              connect/exchange/close per second: many timers and state
#              changes, none of them keepalive               (STORM_S, 20 s)
#   halfstorm  the storm while the HALF_CONNS half-open connections have
#              probes unanswered: every socket end (tcp_destroy_sock) then
#              checks whether it was one of them          (STORM_S, 20 s)
# Each window is the difference of two snapshots of run_cnt and run_time_ns of
# the programs held by our own agent and floor loaders (found through their
# pids' file descriptors, so another agent on the host is never counted). It
# prints each window, then per scenario the medians over the rounds, then the
# cost of the keepalive-timer programs' matching path.
#
# The agent runs in a private mount namespace with a tmpfs on /sys/fs/bpf, so it
# pins nothing and never shares or removes the state map pinned by another
# agent on the host. Everything started here is ended on exit, by pid, and the
# namespace is removed.
# Environment: IDLE_S KA_S STORM_S KA_CONNS HALF_CONNS (default 100) STORM_PINGPONG STORM_CHURN
#   KA_SPREAD_MS (the keepalive connections open over this long, default 1000,
#   so their timers spread over the second; 0 opens them at once: one burst a
#   second)  SCENARIOS (default "idle keepalive halfopen storm halfstorm")
#   TCPKA_BUILD (build directory, default build)  PORT (default 9979)
#   AGENT_ARGS (more `tcpka run` flags, word-split, e.g. "--ringbuf-bytes 262144")
set -euo pipefail
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
idle_s=${IDLE_S:-30}
ka_s=${KA_S:-20}
storm_s=${STORM_S:-20}
ka_conns=${KA_CONNS:-1000}
half_conns=${HALF_CONNS:-100}
ka_spread=${KA_SPREAD_MS:-1000}
storm_pp=${STORM_PINGPONG:-1000}
storm_churn=${STORM_CHURN:-2000}
scenarios=${SCENARIOS:-idle keepalive halfopen storm halfstorm}
build=${TCPKA_BUILD:-build}
port=${PORT:-9979}
tcpka=$build/agent/tcpka
bench=$build/tests/bench
for sc in $scenarios; do
  [[ $sc == idle || $sc == keepalive || $sc == halfopen || $sc == storm || $sc == halfstorm ]] ||
    { echo "unknown scenario $sc" >&2; exit 2; }
done
for f in "$tcpka" "$bench"/tcpka_bench_floor "$bench"/tcpka_hold_sockets "$bench"/tcpka_bench_storm; do
  [[ -x $f ]] || { echo "missing $f: build first" >&2; exit 1; }
done

tmp=$(mktemp -d)
cost_cleanup() {
  bench_cleanup
  rm -rf "$tmp"
}
trap cost_cleanup EXIT
trap 'exit 130' INT TERM

# stop PID: end one process we started and forget it, so the cleanup never
# signals a pid the system may have reused since.
stop() {
  local p=$1 keep=() q
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for q in "${pids[@]}"; do [[ $q == "$p" ]] || keep+=("$q"); done
  pids=(${keep[@]+"${keep[@]}"})
}

# wait_line FILE PATTERN SECONDS PID: until FILE has a line matching PATTERN.
wait_line() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$4" 2>/dev/null || { echo "$(basename "$1" .out) exited early:" >&2; cat "$1" "${1%.out}.err" >&2; exit 1; }
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2
  exit 1
}

bench_netns
# Not a function: a function run in the background is a subshell, and $! would
# name the subshell instead of the program (nsenter execs it).
in_ns=(nsenter --net=/run/netns/"$ns")

# start_floor N: a floor loader whose programs are labelled /N; sets floor.
start_floor() {
  "$bench"/tcpka_bench_floor > "$tmp"/floor$1.out 2> "$tmp"/floor$1.err &
  floor=$!
  pids+=("$floor")
  wait_line "$tmp"/floor$1.out '^ready' 10 "$floor"
}

start_floor 1
floor1=$floor
"${in_ns[@]}" unshare --mount --propagation private \
  sh -c 'mount -t tmpfs tcpka-bench /sys/fs/bpf && exec "$@"' sh \
  "$tcpka" run --listen 127.0.0.1:"$port" ${AGENT_ARGS:-} > "$tmp"/agent.out 2> "$tmp"/agent.err &
agent=$!
pids+=("$agent")
for ((i = 0; ; i++)); do
  "${in_ns[@]}" curl -sf -o /dev/null http://127.0.0.1:"$port"/healthz && break
  kill -0 "$agent" 2>/dev/null && ((i < 300)) || { echo "agent not healthy:" >&2; cat "$tmp"/agent.err >&2; exit 1; }
  sleep 0.1
done
[[ $(cat /proc/"$agent"/comm) == tcpka ]] || { echo "pid $agent is not the agent" >&2; exit 1; }
start_floor 2
floor2=$floor

# The BPF programs (not links) that a process holds open, as "id SUFFIX".
prog_ids() {
  local fd
  for fd in /proc/"$1"/fd/*; do
    [[ $(readlink "$fd" 2>/dev/null) == anon_inode:bpf-prog ]] || continue
    awk -v s="$2" '/^prog_id:/ {print $2, s}' /proc/"$1"/fdinfo/"${fd##*/}"
  done | sort -un
}
{ prog_ids "$agent" ""; prog_ids "$floor1" /1; prog_ids "$floor2" /2; } > "$tmp"/labels
ids=$(cut -d' ' -f1 "$tmp"/labels | paste -sd, -)
# snapshot: "label run_cnt run_time_ns" for our programs, then "irq_IWI count".
snapshot() {
  bpftool prog show --json | jq -r --argjson ids "[$ids]" \
    '.[] | select(.id as $i | $ids | index($i)) | select(.name | test("^tk[ab]_"))
     | "\(.id) \(.name) \(.run_cnt // 0) \(.run_time_ns // 0)"' |
    awk 'NR == FNR {s[$1] = $2; next} {print $2 s[$1], $3, $4}' "$tmp"/labels -
  awk '$1 == "IWI:" {for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; print "irq_IWI", n, 0}' /proc/interrupts
}
snapshot > "$tmp"/check
for p in tka_timer_entry tkb_timer_entry/1 tkb_timer_entry/2; do
  grep -q "^$p " "$tmp"/check || { echo "$p not found (ids: $ids)" >&2; cat "$tmp"/check >&2; exit 1; }
done

# The hook of every program, from the sections in the sources.
awk '/^SEC\("/ {s = $0; sub(/^SEC\("/, "", s); sub(/"\).*/, "", s); sub(/^tp_btf\//, "", s); next}
     s != "" && /^int / {n = $0; sub(/^int (BPF_PROG\()?/, "", n); sub(/[,(].*/, "", n); print n, s; s = ""}' \
  bpf/keepalive.bpf.c bpf/audit.bpf.c bpf/state.bpf.c tests/bench/floor.bpf.c > "$tmp"/hooks

# Other tcpka processes (integration tests, another benchmark's agent or
# load), not ours: their load would run through the same hooks.
others() {
  local p mine=" ${pids[*]} "
  for p in $(pgrep tcpka || true); do
    [[ $mine == *" $p "* ]] || echo "$p"
  done
}
# note_others SCENARIO ROUND: records the window as shared when others run.
note_others() {
  local o
  o=$(others | wc -l)
  ((o == 0)) || echo "$1 $2" >> "$tmp"/shared
}

# window SCENARIO ROUND BEFORE AFTER: appends "scenario round label runs ns" to raw.
window() {
  awk -v sc="$1" -v r="$2" 'NR == FNR {c[$1] = $2; t[$1] = $3; next}
       {print sc, r, $1, $2 - c[$1], $3 - t[$1]}' "$3" "$4" >> "$tmp"/raw
}

# Keepalive probes the namespace's kernel has sent (TcpExtTCPKeepAlive): timer
# expiries that took the matching path and sent a probe. Not the agent's
# count: that counts the probes of a socket new to it only with the audit
# scan after them (README, "How a probe gets its labels"), so a window just
# after the sockets opened would take in probes from before it.
probes() {
  "${in_ns[@]}" awk '$1 == "TcpExt:" && !seen {for (i = 2; i <= NF; i++) col[$i] = i; seen = 1; next}
                     $1 == "TcpExt:" {print $col["TCPKeepAlive"]}' /proc/net/netstat
}

run_idle() {
  note_others idle "$1"
  snapshot > "$tmp"/a
  sleep "$idle_s"
  snapshot > "$tmp"/b
  note_others idle "$1"
  window idle "$1" "$tmp"/a "$tmp"/b
}

# start_halfopen: HALF_CONNS keepalive connections whose packets from their
# listener's port are dropped; sets half (the holder's pid).
start_halfopen() {
  local half_port
  "${in_ns[@]}" "$bench"/tcpka_hold_sockets --keepalive --print-port --spread-ms "$ka_spread" \
    "$half_conns" > "$tmp"/half.out 2> "$tmp"/half.err &
  half=$!
  pids+=("$half")
  wait_line "$tmp"/half.out '^ready' 60 "$half"
  half_port=$(awk '$1 == "port" {print $2}' "$tmp"/half.out)
  # In our namespace only; removed with it at exit, and by stop_halfopen.
  "${in_ns[@]}" nft -f - <<NFT
table inet tkb_halfopen {
  chain out {
    type filter hook output priority 0;
    tcp sport $half_port drop
  }
}
NFT
}

stop_halfopen() {
  stop "$half"
  "${in_ns[@]}" nft delete table inet tkb_halfopen
}

# unanswered: sockets of the namespace with 2 or more keepalive probes out
# (ss's timer:(keepalive,...,N)), the ones the agent keeps in tka_probed.
unanswered() {
  "${in_ns[@]}" ss -tno state established |
    awk '{if (match($0, /timer:\(keepalive,[^,]*,[0-9]+\)/)) {t = substr($0, RSTART, RLENGTH); gsub(/.*,|\)/, "", t); if (t + 0 >= 2) n++}} END {print n + 0}'
}

# expect_unanswered SCENARIO ROUND: waits (up to 10 s) until both ends of
# every half-open connection have 2+ probes out, else fails the benchmark: a
# window without them would measure the wrong thing.
expect_unanswered() {
  local n i
  for ((i = 0; i < 100; i++)); do
    n=$(unanswered)
    ((n >= 2 * half_conns)) && break
    sleep 0.1
  done
  echo "round $2: $1: $n sockets with 2+ probes unanswered"
  ((n >= 2 * half_conns)) || { echo "$1: expected $((2 * half_conns)) unanswered sockets, saw $n" >&2; exit 1; }
}

# run_keepalive ROUND [SCENARIO]: the keepalive load; with SCENARIO halfopen,
# also the half-open connections.
run_keepalive() {
  local sc=${2:-keepalive} load half="" p0 p1
  "${in_ns[@]}" "$bench"/tcpka_hold_sockets --keepalive --spread-ms "$ka_spread" "$ka_conns" \
    > "$tmp"/ka.out 2> "$tmp"/ka.err &
  load=$!
  pids+=("$load")
  wait_line "$tmp"/ka.out '^ready' 60 "$load"
  [[ $sc == halfopen ]] && start_halfopen
  # Every keepalive timer has fired at least once: steady probing. The
  # half-open sockets have had their second unanswered probe.
  sleep 3
  [[ $sc != halfopen ]] || expect_unanswered "$sc" "$1"
  note_others "$sc" "$1"
  snapshot > "$tmp"/a
  p0=$(probes)
  sleep "$ka_s"
  snapshot > "$tmp"/b
  # Right away, as p0: the agent reads the ring buffer with the same lag at
  # both ends, so the count covers the window.
  p1=$(probes)
  note_others "$sc" "$1"
  window "$sc" "$1" "$tmp"/a "$tmp"/b
  echo "$sc $1 probes $((p1 - p0)) 0" >> "$tmp"/raw
  stop "$load"
  [[ -z $half ]] || stop_halfopen
}

run_halfopen() {
  run_keepalive "$1" halfopen
}

# run_storm ROUND [SCENARIO]: the storm; with SCENARIO halfstorm, while
# half-open connections have probes unanswered.
run_storm() {
  local sc=${2:-storm} load half=""
  if [[ $sc == halfstorm ]]; then
    start_halfopen
    sleep 3  # their second probe has gone unanswered: tka_probed holds them
  fi
  "${in_ns[@]}" "$bench"/tcpka_bench_storm "$storm_s" "$storm_pp" "$storm_churn" > "$tmp"/storm.out 2> "$tmp"/storm.err &
  load=$!
  pids+=("$load")
  wait_line "$tmp"/storm.out '^ready' 60 "$load"
  [[ $sc != halfstorm ]] || expect_unanswered "$sc" "$1"
  note_others "$sc" "$1"
  snapshot > "$tmp"/a
  kill -USR1 "$load"
  wait_line "$tmp"/storm.out '^done' $((storm_s + 60)) "$load"
  snapshot > "$tmp"/b
  note_others "$sc" "$1"
  window "$sc" "$1" "$tmp"/a "$tmp"/b
  echo "round $1: $sc $(grep '^done' "$tmp"/storm.out | cut -d' ' -f2-)"
  stop "$load"
  [[ -z $half ]] || stop_halfopen
}

run_halfstorm() {
  run_storm "$1" halfstorm
}

echo "machine: $(nproc) CPUs, Linux $(uname -r); agent pid $agent, floor pids $floor1 (/1) $floor2 (/2)"
echo "rounds=$rounds scenarios: $scenarios; idle=${idle_s}s keepalive=${ka_s}s (${ka_conns} conns," \
  "$((2 * ka_conns)) probing sockets, opened over ${ka_spread} ms)" \
  "halfopen: the keepalive load and ${half_conns} conns dropping (${half_conns}x2 unanswered sockets)" \
  "storm=${storm_s}s (${storm_pp} ping-pong conns, ${storm_churn} churn/s)"
touch "$tmp"/shared
for ((r = 1; r <= rounds; r++)); do
  for sc in $scenarios; do
    "run_$sc" "$r"
  done
  kill -0 "$agent" 2>/dev/null || { echo "agent exited:" >&2; cat "$tmp"/agent.err >&2; exit 1; }
  echo "round $r done: $(date +%T)"
done

if [[ -s $tmp/shared ]]; then
  echo
  echo "WARNING: other tcpka processes (integration tests, another benchmark) ran during these"
  echo "windows; their load went through the same hooks: $(sort -u "$tmp"/shared | paste -sd, -)"
fi
echo
echo "Windows (scenario round program runs ns/run):"
awk '$3 !~ /^(probes|irq_)/ {printf "%s %s %s %d %s\n", $1, $2, $3, $4, $4 ? sprintf("%.1f", $5 / $4) : "-"}
     $3 ~ /^(probes|irq_)/ {printf "%s %s %s %d\n", $1, $2, $3, $4}' "$tmp"/raw

median='function median(s,   a, n, i, j, x) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }'

# Medians over the rounds of runs and of ns/run, per scenario and program. The
# floor is the mean of the medians of the two tkb_ programs on the same hook.
echo
echo "Medians of $rounds rounds: ns/run is the median over the windows where the program ran (it"
echo "includes the statistics' own clock reads, as the floor does); runs/s is the mean rate."
echo
echo "| scenario | program | hook | runs/s | ns/run | floor /1 | floor /2 | floor (mean) | difference |"
echo "|---|---|---|---|---|---|---|---|---|"
awk -v idle="$idle_s" -v ka="$ka_s" -v storm="$storm_s" "$median"'
  NR == FNR {hook[$1] = $2; next}
  {
    key = $1 SUBSEP $3
    if (!(key in runs)) order[++n] = key
    runs[key] += $4
    nr[$1] = $2 > nr[$1] ? $2 : nr[$1]
    if ($4) ns[key] = ns[key] " " $5 / $4
  }
  END {
    secs["idle"] = idle; secs["keepalive"] = ka; secs["halfopen"] = ka; secs["storm"] = storm
    secs["halfstorm"] = storm
    for (h in hook) if (h ~ /^tkb_/) floor_of[hook[h]] = h
    for (i = 1; i <= n; i++) {
      split(order[i], k, SUBSEP)
      sc = k[1]; p = k[2]
      if (p !~ /^tka_/) continue
      f = floor_of[hook[p]]
      rs = runs[order[i]] / (secs[sc] * nr[sc])
      if (ns[order[i]] == "") {
        printf "| %s | %s | %s | %.0f | - | - | - | - | - |\n", sc, p, hook[p], rs
        continue
      }
      m = median(ns[order[i]])
      f1 = sc SUBSEP f "/1"; f2 = sc SUBSEP f "/2"
      if (f == "" || ns[f1] == "" || ns[f2] == "") {
        printf "| %s | %s | %s | %.0f | %.1f | - | - | - | - |\n", sc, p, hook[p], rs, m
        continue
      }
      a = median(ns[f1]); b = median(ns[f2])
      printf "| %s | %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f | %+.1f |\n", sc, p, hook[p], rs, m, a, b, (a + b) / 2, m - (a + b) / 2
    }
  }' "$tmp"/hooks "$tmp"/raw

[[ " $scenarios " == *" keepalive "* ]] || exit 0
# The matching path alone, from the keepalive windows. A non-matching timer
# costs what the floor costs (the storm shows it), so the time a tka_timer_*
# program took beyond its floors is the extra cost of its matching runs. It is
# divided by the probes the namespace's kernel sent: every probe is one
# keepalive timer expiry, and the few expiries that only re-arm the timer, and
# probes of other namespaces on the host, are left out of the count but not
# out of the time, so the figure is an upper bound (and not thrown off by
# other timers on the host). The exit program does its full
# work (map update, event) only on the expiries that sent a probe.
echo
echo "Matching path, keepalive windows (medians of $rounds rounds):"
echo
echo "| program | runs/s | probes/s | IRQ-work interrupts/s | extra over floor per probe | floor (mean) | ns per matching run (upper bound) |"
echo "|---|---|---|---|---|---|---|"
awk -v secs="$ka_s" "$median"'
  $1 == "keepalive" {c[$2, $3] = $4; t[$2, $3] = $5; rounds[$2] = 1}
  END {
    for (k = 1; k <= 2; k++) {
      p = k == 1 ? "tka_timer_entry" : "tka_timer_exit"
      f = k == 1 ? "tkb_timer_entry" : "tkb_timer_exit"
      ex = fl = est = rs = ps = iw = ""
      for (r in rounds) {
        m = c[r, "probes"]
        if (m <= 0 || !c[r, f "/1"] || !c[r, f "/2"]) continue
        fm = (t[r, f "/1"] / c[r, f "/1"] + t[r, f "/2"] / c[r, f "/2"]) / 2
        e = (t[r, p] - (t[r, f "/1"] + t[r, f "/2"]) / 2) / m
        ex = ex " " e; fl = fl " " fm; est = est " " (fm + e)
        rs = rs " " c[r, p] / secs; ps = ps " " m / secs; iw = iw " " c[r, "irq_IWI"] / secs
      }
      if (ex == "") { printf "| %s | - | - | - | - | - | - |\n", p; continue }
      printf "| %s | %.0f | %.0f | %.0f | %+.1f | %.1f | %.1f |\n", p, median(rs), median(ps), median(iw), median(ex), median(fl), median(est)
    }
  }' "$tmp"/raw
