// Start-up decisions that need no kernel: which capabilities a start needs
// and how their absence is named, --strict over a degraded plan, the
// message for a kernel without BTF, and --strict on the command line.
#include "startup.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/capability.h>

#include <set>
#include <string>

#include "cli.h"
#include "fixtures.h"

namespace tcpka {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing_fixtures::all_features;

// The DaemonSet's set: CAP_BPF, CAP_PERFMON, CAP_SYSLOG, CAP_NET_ADMIN.
const std::set<int> kDaemonSet = {CAP_BPF, CAP_PERFMON, CAP_SYSLOG, CAP_NET_ADMIN};

std::function<bool(int)> holding(std::set<int> caps) {
  return [caps](int cap) { return caps.count(cap) > 0; };
}

TEST(CheckCapabilitiesTest, DaemonSetSetIsEnoughForEverything) {
  EXPECT_TRUE(check_capabilities({true, true}, holding(kDaemonSet)).ok());
}

struct MissingCase {
  int cap;
  const char* name;
  const char* purpose;
};

void PrintTo(const MissingCase& c, std::ostream* os) { *os << c.name; }

class CheckCapabilitiesMissingTest : public ::testing::TestWithParam<MissingCase> {};

TEST_P(CheckCapabilitiesMissingTest, NamesTheCapabilityAndWhatItIsFor) {
  std::set<int> caps = kDaemonSet;
  caps.erase(GetParam().cap);
  // Policies configured and kallsyms hidden: every capability is needed.
  auto r = check_capabilities({true, true}, holding(caps));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr(std::string("missing capability ") + GetParam().name));
  EXPECT_THAT(r.error(), HasSubstr(GetParam().purpose));
  for (const MissingCase& other : {MissingCase{CAP_BPF, "CAP_BPF", ""},
                                   MissingCase{CAP_PERFMON, "CAP_PERFMON", ""},
                                   MissingCase{CAP_SYSLOG, "CAP_SYSLOG", ""},
                                   MissingCase{CAP_NET_ADMIN, "CAP_NET_ADMIN", ""}}) {
    if (other.cap != GetParam().cap) {
      EXPECT_THAT(r.error(), Not(HasSubstr(other.name)));
    }
  }
  EXPECT_EQ(r.error().find('\n'), std::string::npos) << "one line";
}

INSTANTIATE_TEST_SUITE_P(
    EachCapability, CheckCapabilitiesMissingTest,
    ::testing::Values(MissingCase{CAP_BPF, "CAP_BPF", "BPF maps and load BPF programs"},
                      MissingCase{CAP_PERFMON, "CAP_PERFMON", "tracing programs"},
                      MissingCase{CAP_SYSLOG, "CAP_SYSLOG", "/proc/kallsyms"},
                      MissingCase{CAP_NET_ADMIN, "CAP_NET_ADMIN", "sock_ops"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CheckCapabilitiesTest, NetAdminOnlyForPolicies) {
  auto r = check_capabilities({false, true}, holding({CAP_BPF, CAP_PERFMON, CAP_SYSLOG}));
  EXPECT_TRUE(r.ok()) << r.error();
}

TEST(CheckCapabilitiesTest, SyslogOnlyWhenKallsymsHidesTheAddress) {
  auto r = check_capabilities({true, false}, holding({CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN}));
  EXPECT_TRUE(r.ok()) << r.error();
}

TEST(CheckCapabilitiesTest, SysAdminStandsInForAllButSyslog) {
  EXPECT_TRUE(check_capabilities({true, false}, holding({CAP_SYS_ADMIN})).ok());
  auto r = check_capabilities({true, true}, holding({CAP_SYS_ADMIN}));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("CAP_SYSLOG"));
  EXPECT_THAT(r.error(), Not(HasSubstr("CAP_BPF")));
}

TEST(CheckCapabilitiesTest, NamesEveryMissingOneAtOnce) {
  auto r = check_capabilities({true, true}, holding({}));
  ASSERT_FALSE(r.ok());
  for (const char* c : {"CAP_BPF", "CAP_PERFMON", "CAP_SYSLOG", "CAP_NET_ADMIN"}) {
    EXPECT_THAT(r.error(), HasSubstr(c));
  }
}

TEST(PlanStartTest, NoBtfIsRefusedNamingTheFileAndTheKernelOption) {
  Features f = all_features();
  f.btf = false;
  f.btf_error =
      "no kernel BTF: /sys/kernel/btf/vmlinux is missing (No such file or directory); tcpka "
      "needs a kernel built with CONFIG_DEBUG_INFO_BTF=y";
  int status = 0;
  RunConfig cfg;
  auto p = plan_start(cfg, f, &status, holding(kDaemonSet));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(status, kExitCannotRun);
  EXPECT_THAT(p.error(), HasSubstr("/sys/kernel/btf/vmlinux"));
  EXPECT_THAT(p.error(), HasSubstr("CONFIG_DEBUG_INFO_BTF"));
}

TEST(PlanStartTest, MissingTracepointIsDegradedByDefault) {
  Features f = all_features();
  f.tp_receive_reset = false;
  RunConfig cfg;
  int status = 0;
  auto p = plan_start(cfg, f, &status, holding(kDaemonSet));
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_FALSE(observed(*p, "kill_reset"));
  EXPECT_TRUE(observed(*p, "kill_timeout"));
  ASSERT_EQ(unobserved(*p).size(), 1u);
  EXPECT_THAT(unobserved(*p)[0], HasSubstr("kill_reset (no tcp:tcp_receive_reset tracepoint)"));
  const auto lines = degraded_lines(*p);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("kill_reset"));
  EXPECT_THAT(lines[0], HasSubstr("NOT observed"));
}

TEST(PlanStartTest, StrictRefusesAMissingSignalWithItsOwnStatus) {
  Features f = all_features();
  f.tp_receive_reset = false;
  f.tp_destroy_sock = false;
  RunConfig cfg;
  cfg.strict = true;
  int status = 0;
  auto p = plan_start(cfg, f, &status, holding(kDaemonSet));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(status, kExitStrict);
  EXPECT_THAT(p.error(), HasSubstr("--strict"));
  EXPECT_THAT(p.error(), HasSubstr("kill_reset (no tcp:tcp_receive_reset tracepoint)"));
  EXPECT_THAT(p.error(), HasSubstr("socket_gone (no tcp:tcp_destroy_sock tracepoint)"));
}

TEST(PlanStartTest, StrictAcceptsAFullPlanAndTheTimerBracketFallback) {
  RunConfig cfg;
  cfg.strict = true;
  int status = 0;
  EXPECT_TRUE(plan_start(cfg, all_features(), &status, holding(kDaemonSet)).ok());
  // No reset reason: another path observes kill_timeout, nothing is missing.
  Features f = all_features();
  f.rst_reason = false;
  auto p = plan_start(cfg, f, &status, holding(kDaemonSet));
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->backend, Backend::kTimerBracket);
}

TEST(PlanStartTest, FentryRefusedIsNotAMissingSignal) {
  Features f = all_features();
  f.fentry = false;
  f.fentry_detail = "load refused: Operation not permitted";
  RunConfig cfg;
  cfg.strict = true;
  int status = 0;
  EXPECT_TRUE(plan_start(cfg, f, &status, holding(kDaemonSet)).ok());
}

TEST(PlanForKsymTest, HiddenAddressNamesCapSyslog) {
  Features f = all_features();
  f.ksym_keepalive_timer = false;
  f.ksym_hidden = true;
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_THAT(p->keepalive_gap, HasSubstr("CAP_SYSLOG"));
  f.ksym_hidden = false;
  p = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_THAT(p->keepalive_gap, Not(HasSubstr("CAP_SYSLOG")));
}

TEST(PartsTest, DegradedLinesHealthAndStrict) {
  auto plan = plan_for(all_features(), Backend::kAuto);
  ASSERT_TRUE(plan.ok()) << plan.error();
  std::vector<PartState> parts = {{Part::kKeepalive, true, ""}, {Part::kAudit, true, ""}};
  EXPECT_FALSE(degraded(*plan, parts));
  EXPECT_TRUE(part_lines(parts).empty());
  EXPECT_EQ(health_text(*plan, parts), "ok");
  EXPECT_TRUE(require_every_part(parts).ok());

  parts.push_back({Part::kStateTracker, false, "the kernel lacks it: no cookie (Linux 5.12)"});
  EXPECT_TRUE(degraded(*plan, parts));
  const auto lines = part_lines(parts);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("state_tracker is OFF: the kernel lacks it: no cookie"));
  EXPECT_EQ(health_text(*plan, parts), "degraded: part state_tracker off");
  const auto strict = require_every_part(parts);
  ASSERT_FALSE(strict.ok());
  EXPECT_THAT(strict.error(), HasSubstr("--strict"));
  EXPECT_THAT(strict.error(), HasSubstr("state_tracker (the kernel lacks it: no cookie"));
}

TEST(PartsTest, AKeepalivePartOffMakesEverySignalUnobserved) {
  auto plan = plan_for(all_features(), Backend::kAuto);
  ASSERT_TRUE(plan.ok()) << plan.error();
  keepalive_off(&*plan, "loading the keepalive BPF programs failed: Invalid argument");
  EXPECT_TRUE(plan->programs.empty());
  EXPECT_EQ(unobserved(*plan).size(), 5u);
  EXPECT_THAT(plan->keepalive_gap, HasSubstr("Invalid argument"));
  const std::vector<PartState> parts = {
      {Part::kKeepalive, false, "loading the keepalive BPF programs failed"}};
  EXPECT_EQ(health_text(*plan, parts), "degraded: part keepalive off")
      << "its signals go with it";
  auto blind = plan_for(all_features(), Backend::kAuto);
  ASSERT_TRUE(blind.ok());
  blind->signals[3].available = false;  // kill_reset
  EXPECT_EQ(health_text(*blind, {{Part::kKeepalive, true, ""}}), "degraded: signal kill_reset off");
}

Invocation parse_ok(std::vector<std::string> args, int* rc) {
  args.insert(args.begin(), "tcpka");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  Invocation inv;
  std::string out, err;
  *rc = parse_args(static_cast<int>(argv.size()), argv.data(), &inv, &out, &err);
  return inv;
}

TEST(StrictFlagTest, RunAndCheckTakeIt) {
  int rc = 0;
  EXPECT_FALSE(parse_ok({"run"}, &rc).run.strict);
  EXPECT_EQ(rc, -1);
  EXPECT_TRUE(parse_ok({"run", "--strict"}, &rc).run.strict);
  EXPECT_EQ(rc, -1);
  EXPECT_TRUE(parse_ok({"check", "--strict"}, &rc).run.strict);
  EXPECT_EQ(rc, -1);
}

}  // namespace
}  // namespace tcpka
