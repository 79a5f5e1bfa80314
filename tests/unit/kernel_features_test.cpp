#include "kernel_features.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fixtures.h"

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

namespace tcpka {
namespace {

using testing_fixtures::all_features;

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

const SignalPath* find_signal(const Plan& p, const std::string& name) {
  for (const auto& s : p.signals) {
    if (s.signal == name) return &s;
  }
  return nullptr;
}

TEST(PlanForTest, AllFeaturesAutoPicksResetReason) {
  auto p = plan_for(all_features(), Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->backend, Backend::kResetReason);
  EXPECT_TRUE(p->keepalive_gap.empty());
  EXPECT_TRUE(p->plain_loads);
  EXPECT_TRUE(p->cookie_helper);
  EXPECT_EQ(p->programs, (std::vector<std::string>{"tka_timer_entry", "tka_timer_exit",
                                                   "tka_send_reset", "tka_recv_reset",
                                                   "tka_destroy"}));
  std::vector<std::string> names;
  for (const auto& s : p->signals) {
    names.push_back(s.signal);
    EXPECT_TRUE(s.available) << s.signal;
    EXPECT_TRUE(s.missing.empty()) << s.signal;
    EXPECT_FALSE(s.attach.empty()) << s.signal;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"probe", "recovered", "kill_timeout", "kill_reset",
                                             "socket_gone"}));
  EXPECT_EQ(find_signal(*p, "kill_timeout")->attach, "tp_btf/tcp_send_reset (reason)");
  EXPECT_EQ(find_signal(*p, "kill_reset")->attach, "tp_btf/tcp_receive_reset");
  EXPECT_EQ(find_signal(*p, "socket_gone")->attach, "tp_btf/tcp_destroy_sock");
}

TEST(PlanForTest, NoResetReasonAutoPicksTheResetInTheTimerBracket) {
  Features f = all_features();
  f.rst_reason = false;  // Linux 6.11 and older
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->backend, Backend::kTimerBracket);
  EXPECT_THAT(p->programs, Contains("tka_reset_bracket"));
  EXPECT_THAT(p->programs, Not(Contains("tka_send_reset")));
  const SignalPath* kt = find_signal(*p, "kill_timeout");
  ASSERT_NE(kt, nullptr);
  EXPECT_TRUE(kt->available);
  EXPECT_EQ(kt->attach, "tp_btf/tcp_send_reset (in the timer bracket)");
}

TEST(PlanForTest, NoSendResetTracepointLeavesKillTimeoutBlind) {
  Features f = all_features();
  f.tp_send_reset = false;
  f.rst_reason = false;
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->backend, Backend::kTimerBracket);
  const SignalPath* kt = find_signal(*p, "kill_timeout");
  ASSERT_NE(kt, nullptr);
  EXPECT_FALSE(kt->available);
  EXPECT_THAT(kt->missing, HasSubstr("tcp_send_reset"));
  EXPECT_THAT(p->programs, Not(Contains("tka_reset_bracket")));
  EXPECT_THAT(p->programs, Contains("tka_timer_entry"));
}

TEST(PlanForTest, ExplicitTimerBracketOnNewKernel) {
  auto p = plan_for(all_features(), Backend::kTimerBracket);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->backend, Backend::kTimerBracket);
  EXPECT_THAT(p->programs, Contains("tka_reset_bracket"));
  EXPECT_THAT(p->programs, Not(Contains("tka_send_reset")));
}

TEST(PlanForTest, ExplicitResetReason) {
  auto p = plan_for(all_features(), Backend::kResetReason);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->backend, Backend::kResetReason);
}

TEST(PlanForTest, RequestedResetReasonWithoutItFails) {
  Features f = all_features();
  f.rst_reason = false;
  auto p = plan_for(f, Backend::kResetReason);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.error(), HasSubstr("6.12"));
  EXPECT_THAT(p.error(), HasSubstr("reset-reason"));
}

TEST(PlanForTest, NoBtfFails) {
  Features f = all_features();
  f.btf = false;
  f.btf_error = "no kernel BTF (/sys/kernel/btf/vmlinux): No such file or directory";
  for (Backend b : {Backend::kAuto, Backend::kResetReason, Backend::kTimerBracket}) {
    auto p = plan_for(f, b);
    ASSERT_FALSE(p.ok());
    EXPECT_THAT(p.error(), HasSubstr("/sys/kernel/btf/vmlinux"));
  }
  f.btf_error.clear();
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.error(), HasSubstr("BTF"));
}

TEST(PlanForTest, NoKsymTurnsTheKeepalivePartOff) {
  Features f = all_features();
  f.ksym_keepalive_timer = false;
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_THAT(p->keepalive_gap, HasSubstr("tcp_keepalive_timer"));
  EXPECT_THAT(p->keepalive_gap, HasSubstr("kallsyms"));
  EXPECT_TRUE(p->programs.empty());
  ASSERT_EQ(unobserved(*p).size(), 5u);
  for (const auto& s : p->signals) EXPECT_EQ(s.missing, p->keepalive_gap) << s.signal;
  EXPECT_EQ(part_gap(f, Part::kKeepalive), p->keepalive_gap);
  EXPECT_TRUE(part_gap(f, Part::kAudit).empty()) << "the other parts do not need it";
}

TEST(PlanForTest, NoTimerTracepointsTurnsTheKeepalivePartOff) {
  Features f = all_features();
  f.tp_timer_expire = false;
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_THAT(p->keepalive_gap, HasSubstr("timer_expire_entry"));
  EXPECT_TRUE(p->programs.empty());
  EXPECT_FALSE(observed(*p, "probe"));
}

TEST(PlanForTest, NoReceiveResetMakesKillResetBlind) {
  Features f = all_features();
  f.tp_receive_reset = false;
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  const SignalPath* kr = find_signal(*p, "kill_reset");
  ASSERT_NE(kr, nullptr);
  EXPECT_FALSE(kr->available);
  EXPECT_THAT(kr->missing, HasSubstr("tcp_receive_reset"));
  EXPECT_THAT(p->programs, Not(Contains("tka_recv_reset")));
  EXPECT_THAT(p->programs, Contains("tka_destroy"));
}

TEST(PlanForTest, NoDestroySockMakesSocketGoneBlind) {
  Features f = all_features();
  f.tp_destroy_sock = false;
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  const SignalPath* g = find_signal(*p, "socket_gone");
  ASSERT_NE(g, nullptr);
  EXPECT_FALSE(g->available);
  EXPECT_THAT(g->missing, HasSubstr("tcp_destroy_sock"));
  EXPECT_THAT(p->programs, Not(Contains("tka_destroy")));
}

TEST(PlanForTest, TheBuildsFollowTheProbedFeatures) {
  Features f = all_features();
  f.rdonly_cast = false;  // before 6.2
  f.cookie_helper = false;  // before 5.12
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_FALSE(p->plain_loads);
  EXPECT_FALSE(p->cookie_helper);
  EXPECT_EQ(unobserved(*p).size(), 0u) << "the probe-read build observes the same";
}

TEST(PlanForTest, FentryAndKprobesDoNotChangeThePlan) {
  Features f = all_features();
  f.fentry = false;
  f.kprobes = false;
  f.cgroup2.reset();
  auto a = plan_for(f, Backend::kAuto);
  auto b = plan_for(all_features(), Backend::kAuto);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->programs, b->programs);
  EXPECT_EQ(a->backend, b->backend);
}

// The kernels of the matrix (tests/matrix), as their features say: what each
// part needs.
TEST(PartGapTest, EachPartNamesWhatItNeeds) {
  const Features all = all_features();
  for (Part p : kParts) EXPECT_TRUE(part_gap(all, p).empty()) << part_name(p);

  Features linux510 = all_features();  // Debian bullseye
  linux510.rst_reason = false;
  linux510.rdonly_cast = false;
  linux510.cookie_helper = false;
  linux510.atomics = false;
  linux510.iter_tcp_setsockopt = false;
  EXPECT_TRUE(part_gap(linux510, Part::kKeepalive).empty());
  EXPECT_TRUE(part_gap(linux510, Part::kAudit).empty());
  EXPECT_THAT(part_gap(linux510, Part::kStateTracker), HasSubstr("bpf_get_socket_cookie"));
  EXPECT_THAT(part_gap(linux510, Part::kStateTracker), HasSubstr("5.12"));
  EXPECT_TRUE(part_gap(linux510, Part::kPolicies).empty());

  Features f = all_features();
  f.atomics = false;
  EXPECT_THAT(part_gap(f, Part::kStateTracker), HasSubstr("atomic"));
  f = all_features();
  f.tp_set_state = false;
  EXPECT_THAT(part_gap(f, Part::kStateTracker), HasSubstr("inet_sock_set_state"));
  f = all_features();
  f.iter_task_file = false;
  EXPECT_THAT(part_gap(f, Part::kAudit), HasSubstr("iter/task_file"));
  f = all_features();
  f.cgroup2.reset();
  EXPECT_THAT(part_gap(f, Part::kPolicies), HasSubstr("cgroup v2"));
  f = all_features();
  f.btf = false;
  f.btf_error = "no kernel BTF: /sys/kernel/btf/vmlinux is missing";
  for (Part p : kParts) EXPECT_THAT(part_gap(f, p), HasSubstr("BTF")) << part_name(p);
}

TEST(PartGapTest, NamesAreTheMetricLabels) {
  std::vector<std::string> names;
  for (Part p : kParts) names.emplace_back(part_name(p));
  EXPECT_EQ(names, (std::vector<std::string>{"keepalive", "audit", "state_tracker", "policies"}));
}

TEST(DescribeTest, MentionsEveryFeature) {
  const std::string d = describe(all_features());
  for (const char* what :
       {"kernel BTF", "tcp_keepalive_timer", "timer_expire_entry", "tcp_send_reset", "6.12",
        "tcp_receive_reset", "tcp_destroy_sock", "inet_sock_set_state", "bpf_rdonly_cast",
        "plain-load", "socket cookie", "atomics", "iter/task_file", "iter/tcp", "fentry", "loads",
        "kprobes", "cgroup v2 mount", "/sys/fs/cgroup"}) {
    EXPECT_THAT(d, HasSubstr(what));
  }
  // Every yes/no line says yes; only the cgroup line has no yes/no.
  size_t yes = 0;
  for (size_t at = d.find(": "); at != std::string::npos; at = d.find(": ", at + 1)) {
    const size_t word = d.find_first_not_of(' ', at + 1);
    yes += d.compare(word, 4, "yes\n") == 0 || d.compare(word, 4, "yes ") == 0;
  }
  EXPECT_EQ(yes, 15u) << d;
}

TEST(DescribeTest, ReportsWhatIsMissing) {
  Features f;
  f.btf_error = "no kernel BTF (/sys/kernel/btf/vmlinux): No such file or directory";
  f.fentry_detail = "tcp_keepalive_timer has no BTF FUNC record";
  const std::string d = describe(f);
  EXPECT_THAT(d, HasSubstr("No such file or directory"));
  EXPECT_THAT(d, HasSubstr("has no BTF FUNC record"));
  EXPECT_THAT(d, HasSubstr("bpf_probe_read_kernel builds"));
  EXPECT_THAT(d, HasSubstr("cgroup v2 mount:                  none"));
  EXPECT_THAT(d, Not(HasSubstr("yes")));
  // One line per feature.
  EXPECT_EQ(std::count(d.begin(), d.end(), '\n'), 16);
}

TEST(KallsymsTest, FindsTheSymbolWithARealAddress) {
  std::istringstream in(
      "ffffffff81000000 T _stext\n"
      "ffffffff81b2c3d0 t tcp_keepalive_timer\n"
      "ffffffffc0a01000 t tcp_keepalive_timer_x\t[mod]\n");
  EXPECT_TRUE(kallsyms_has(in, "tcp_keepalive_timer"));
}

TEST(KallsymsTest, ZeroAddressesModulesAndTruncatedLinesDoNotCount) {
  // kptr_restrict: every address reads as zeros.
  std::istringstream restricted("0000000000000000 t tcp_keepalive_timer\n");
  EXPECT_FALSE(kallsyms_has(restricted, "tcp_keepalive_timer"));
  std::istringstream module("ffffffffc0a01000 t tcp_keepalive_timer\t[tcpka]\n");
  EXPECT_FALSE(kallsyms_has(module, "tcp_keepalive_timer"));
  std::istringstream truncated("ffffffff81b2c3d0 t");
  EXPECT_FALSE(kallsyms_has(truncated, "tcp_keepalive_timer"));
  std::istringstream empty("");
  EXPECT_FALSE(kallsyms_has(empty, ""));
}

}  // namespace
}  // namespace tcpka
