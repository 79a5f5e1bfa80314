#!/usr/bin/env bash
# Build tcpka and run the agent on this host: `deploy/local/run.sh [tcpka run flags]`.
# Default listen address 127.0.0.1:9977 (override with --listen HOST:PORT).
set -euo pipefail
cd "$(dirname "$0")/../.."

[[ $(id -u) -eq 0 ]] || { echo "run.sh: run as root (BPF needs CAP_BPF and CAP_PERFMON)" >&2; exit 1; }
deploy/local/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target tcpka
build/agent/tcpka check >/dev/null || build/agent/tcpka check
exec build/agent/tcpka run "$@"
