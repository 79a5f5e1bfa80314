#!/usr/bin/env bash
# Install dependencies, build, run every test (unit and privileged
# integration), print ctest's summary. Then the kernel matrix (Debian's
# kernels under qemu, tests/matrix/run.sh), the unit and integration tests
# again under ASan+UBSan (tests/sanitize.sh), the fuzz targets
# (tests/fuzz.sh), and a Release build with warnings as errors. With
# arguments, only the main build's ctest runs, with them.
# Run as root: the integration tests load BPF programs, create network
# namespaces and cgroups, and fail (they do not skip) without those rights.
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

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTCPKA_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
if (($#)); then
  # Arguments pick tests of the main build only (ctest -R, -L ...).
  exec ctest --test-dir build --output-on-failure "$@"
fi

# Every tier runs even when an earlier one failed; the exit status is the worst.
tiers=()
run_tier() {
  local name=$1 start=$SECONDS rc=0
  shift
  "$@" || rc=$?
  tiers+=("$(printf '%-10s %s (%d s)' "$name" "$([[ $rc == 0 ]] && echo passed || echo FAILED)" $((SECONDS - start)))")
  return "$rc"
}
status=0
run_tier main ctest --test-dir build --output-on-failure || status=1
run_tier matrix tests/matrix/run.sh build || status=1  # every kernel of tests/matrix/kernels.list
run_tier sanitize tests/sanitize.sh || status=1  # build-asan: unit + integration, ASan+UBSan
run_tier fuzz tests/fuzz.sh || status=1          # build-fuzz: each libFuzzer target, 12 s
# build-release: what `cmake -DCMAKE_BUILD_TYPE=Release` (-O3) compiles for a user, warnings
# as errors: the optimiser finds warnings -O2 does not.
release_build() {
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DTCPKA_WERROR=ON "${launcher[@]}" >/dev/null &&
    cmake --build build-release -j"$(nproc)"
}
run_tier release release_build || status=1
echo
# What failed, last: CI keeps the end of the log. ctest names its own
# failures above; the matrix's are in guests' logs.
if [[ -s build/matrix/problems.txt ]]; then
  cat build/matrix/problems.txt
  echo
fi
printf 'tier %s\n' "${tiers[@]}"
exit "$status"
