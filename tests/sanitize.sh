#!/usr/bin/env bash
# The sanitizer tier: builds the agent and the tests with AddressSanitizer
# and UndefinedBehaviorSanitizer (including LeakSanitizer) in build-asan,
# then runs the unit and the privileged integration tests there. The
# integration tests start build-asan/agent/tcpka, so the agent runs
# sanitized too. Run as root, like tests/run.sh; arguments go to ctest.
#
# Every process writes its reports to a file under $TCPKA_SANITIZER_LOG_DIR
# (log_path), not to stderr: tests/sanitizer_check.cpp fails the test during
# which a report appeared, also one from an agent the test started, and this
# script fails if any report exists at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
build=${TCPKA_ASAN_BUILD_DIR:-build-asan}

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTCPKA_SANITIZE=address,undefined -DTCPKA_WERROR=ON \
  "${launcher[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)" --target tcpka tcpka_unit_tests tcpka_integration_tests

logs=$(mktemp -d /tmp/tcpka-sanitizer-XXXXXX)
trap 'rm -rf "$logs"' EXIT
export TCPKA_SANITIZER_LOG_DIR=$logs
# halt_on_error: the first report ends the process with exitcode (1; LSan 23).
common="halt_on_error=1:log_path=$logs/report:print_stacktrace=1"
export ASAN_OPTIONS="$common:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="$common"
export LSAN_OPTIONS="$common"

status=0
ctest --test-dir "$build" -L '^(unit|privileged)$' --output-on-failure "$@" || status=1
if compgen -G "$logs/*" >/dev/null; then
  echo "tests/sanitize.sh: sanitizer reports:" >&2
  for f in "$logs"/*; do
    echo "=== $f" >&2
    cat "$f" >&2
  done
  status=1
fi
exit "$status"
