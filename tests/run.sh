#!/usr/bin/env bash
# Install dependencies, build, run every test (unit and privileged
# integration), print ctest's summary. Run as root: the integration tests
# load BPF programs, create network namespaces and cgroups, and fail (they do
# not skip) without those rights.
set -euo pipefail
cd "$(dirname "$0")/.."
# ip, nft and bpftool live in sbin; CI's environment may not list it.
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

deploy/local/deps.sh
# Leftovers of an interrupted earlier run: only our own names.
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^tka-/ {print $1}'); do ip netns del "$ns" || true; done
cg2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
if [[ -n $cg2 ]]; then
  for d in "$cg2"/tcpka-test-* "$cg2"/tcpka-unit-*; do [[ -d $d ]] && rmdir "$d" 2>/dev/null || true; done
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure "$@"
