#!/usr/bin/env bash
# guest-tests.sh NAME BUILD OUT: what the matrix runs on one kernel, inside
# its guest (tests/matrix/boot.sh) or, for the "host" line, in place.
#  1. `tcpka check`, and `check --backend reset-reason`, saved in OUT for
#     run.sh to compare with kernels.list;
#  2. the privileged integration tests of the keepalive scenarios (against
#     the kernel's counters), the audit, the policies, the parts and the
#     lifecycle, told what the kernel lacks (TCPKA_KERNEL_LACKS, from
#     kernels.list) so that they check the refusal where a feature is
#     missing instead of the feature: results in OUT/tests.xml.
# Exit status: the tests'.
set -uo pipefail
name=$1 build=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
lacks=$(awk -v n="$name" '$1 == n {for (i = 3; i <= NF; i++) if ($i != "-") printf "%s ", $i}' \
  "$here/kernels.list" | tr -d '~')
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
uname -r >"$out/kernel"
"$build/agent/tcpka" check >"$out/check.txt" 2>&1
echo $? >"$out/check.status"
"$build/agent/tcpka" check --backend reset-reason >"$out/check-reason.txt" 2>&1
echo $? >"$out/check-reason.status"
# The scenarios that depend on the kernel. Left out, for time (each guest
# costs minutes under TCG; the main tier runs them all on the host): what
# only parses or reloads configuration (Sighup), the ring-size limits, two
# of the three restart ways, and the probe-labelling tests under the
# reset-reason backend (labelling does not depend on how kills are seen).
filter="Backends/KeepaliveTest.*:Backends/WatchTest.*:AuditTest.*:SockopsTest.*"
filter+=":LifecycleTest.*:Ways/RestartTest.*/Sigkill:EachPart/PartsTest.*:PartsBuildTest.*:AgentCli.*"
filter+=":AgentRun.MetricsExposeBuildProgramsAndSignals:SelfCheckTest.*:CheckEndToEnd.*"
filter+="-LifecycleTest.Sighup*:LifecycleTest.TinyRings*:*KeepaliveTest.*Label*/reset_reason"
filter=${TCPKA_MATRIX_FILTER:-$filter}
[[ $filter == - ]] && exit 0  # check only (the host's line: its tests are the main tier)
# Exact: where every keepalive-timer callback reaches BPF, the agent's
# counts must equal the kernel's own counters, not merely stay below them
# (harness.h, expect_shown_within_kernel).
TCPKA_KERNEL_LACKS="$lacks" TCPKA_EXACT_COUNTERS=1 \
  "$build/tests/integration/tcpka_integration_tests" --gtest_filter="$filter" \
  --gtest_repeat="${TCPKA_MATRIX_REPEAT:-1}" --gtest_output="xml:$out/tests.xml" >"$out/tests.log" 2>&1
