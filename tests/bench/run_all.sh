#!/usr/bin/env bash
# Runs every benchmark of this directory, one after another, and writes one
# Markdown report: the machine, the revision, and for each benchmark the exact
# command and its full output. About 17 minutes with the defaults.
# usage: tests/bench/run_all.sh [REPORT]   (as root, after `cmake --build build`;
#        REPORT defaults to tests/bench/report-<date>.md)
# Run it on a quiet machine: the scripts print how many other tcpka processes
# ran during each measurement, and ratios are only taken within one script.
set -euo pipefail
cd "$(dirname "$0")/../.."
report=${1:-tests/bench/report-$(date -u +%Y%m%dT%H%M%SZ).md}
[[ -x build/agent/tcpka ]] || { echo "build first: cmake -S . -B build && cmake --build build" >&2; exit 1; }

benches=(
  "tests/bench/bpf_cost.sh 3"
  "tests/bench/overhead.sh 5 10 8"
  "tests/bench/overhead_profile.sh 10"
  "tests/bench/keepalive_scale.sh 20"
  "tests/bench/agent_footprint.sh 20000 20"
  "tests/bench/scrape.sh 5000 20"
  "tests/bench/audit_vs_ss.sh 20000 7"
  "tests/bench/audit_vs_ss.sh 50000 5"
)

{
  echo "# tcpka benchmark report"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- revision: $(git rev-parse --short=12 HEAD 2> /dev/null || echo unknown)$(git diff --quiet 2> /dev/null || echo ' (with uncommitted changes)')"
  echo "- machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), Linux $(uname -r)"
  type=$(awk -F= '/^CMAKE_BUILD_TYPE:/ {print $2}' build/CMakeCache.txt)
  echo "- build: ${type:-RelWithDebInfo (the default of CMakeLists.txt)}"
  echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$report"

failed=0
for b in "${benches[@]}"; do
  echo "== $b" >&2
  {
    echo
    echo "## \`$b\`"
    echo
    echo '```'
  } >> "$report"
  # shellcheck disable=SC2086
  if ! $b >> "$report" 2>&1; then
    echo "(exited with status $?)" >> "$report"
    failed=1
  fi
  echo '```' >> "$report"
done
echo "report: $report" >&2
exit "$failed"
