#!/usr/bin/env bash
# The fuzz tier: builds the libFuzzer targets of tests/fuzz with clang in
# build-fuzz and runs each from its seed corpus for TCPKA_FUZZ_SECONDS (12 by
# default). A crash, a sanitizer report, a leak or a broken property fails
# the test; the input that did it is saved as build-fuzz/tests/fuzz/crash-*.
# Unprivileged. Arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${TCPKA_FUZZ_BUILD_DIR:-build-fuzz}

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTCPKA_FUZZ=ON -DTCPKA_WERROR=ON \
  -DTCPKA_BUILD_TESTS=OFF -DTCPKA_FUZZ_SECONDS="${TCPKA_FUZZ_SECONDS:-12}" "${launcher[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" -L '^fuzz$' --output-on-failure "$@"
