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
  EXPECT_THAT(p->programs, Contains("tka_send_reset"));
  EXPECT_THAT(p->programs, Not(Contains("tka_err_report")));
  EXPECT_THAT(p->programs, Contains("tka_timer_entry"));
  EXPECT_THAT(p->programs, Contains("tka_timer_exit"));
  EXPECT_THAT(p->programs, Contains("tka_recv_reset"));
  EXPECT_THAT(p->programs, Contains("tka_destroy"));
  EXPECT_EQ(p->programs.size(), 5u);

  std::vector<std::string> names;
  for (const auto& s : p->signals) {
    names.push_back(s.signal);
    EXPECT_TRUE(s.available) << s.signal;
    EXPECT_TRUE(s.missing.empty()) << s.signal;
    EXPECT_FALSE(s.attach.empty()) << s.signal;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"probe", "recovered", "kill_timeout", "kill_reset",
                                             "socket_gone"}));
  EXPECT_EQ(find_signal(*p, "kill_timeout")->attach, "tp_btf/tcp_send_reset");
  EXPECT_EQ(find_signal(*p, "kill_reset")->attach, "tp_btf/tcp_receive_reset");
  EXPECT_EQ(find_signal(*p, "socket_gone")->attach, "tp_btf/tcp_destroy_sock");
}

TEST(PlanForTest, NoResetReasonAutoPicksTimerBracket) {
  Features f = all_features();
  f.rst_reason = false;
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->backend, Backend::kTimerBracket);
  EXPECT_THAT(p->programs, Contains("tka_err_report"));
  EXPECT_THAT(p->programs, Not(Contains("tka_send_reset")));
  const SignalPath* kt = find_signal(*p, "kill_timeout");
  ASSERT_NE(kt, nullptr);
  EXPECT_TRUE(kt->available);
  EXPECT_EQ(kt->attach, "tp_btf/inet_sk_error_report");
}

TEST(PlanForTest, NoSendResetTracepointAutoPicksTimerBracket) {
  Features f = all_features();
  f.tp_send_reset = false;
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->backend, Backend::kTimerBracket);
}

TEST(PlanForTest, ExplicitTimerBracketOnNewKernel) {
  auto p = plan_for(all_features(), Backend::kTimerBracket);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->backend, Backend::kTimerBracket);
  EXPECT_THAT(p->programs, Contains("tka_err_report"));
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
  EXPECT_THAT(p.error(), HasSubstr("6.10"));
  EXPECT_THAT(p.error(), HasSubstr("reset-reason"));
}

TEST(PlanForTest, RequestedTimerBracketWithoutErrorReportFails) {
  Features f = all_features();
  f.tp_error_report = false;
  auto p = plan_for(f, Backend::kTimerBracket);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.error(), HasSubstr("inet_sk_error_report"));
  // auto still works through the reset reason.
  auto a = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(a->backend, Backend::kResetReason);
}

TEST(PlanForTest, NoKillBackendAtAllFails) {
  Features f = all_features();
  f.rst_reason = false;
  f.tp_error_report = false;
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.error(), HasSubstr("inet_sk_error_report"));
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

TEST(PlanForTest, NoKsymFails) {
  Features f = all_features();
  f.ksym_keepalive_timer = false;
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.error(), HasSubstr("tcp_keepalive_timer"));
  EXPECT_THAT(p.error(), HasSubstr("kallsyms"));
}

TEST(PlanForTest, NoTimerTracepointsFails) {
  Features f = all_features();
  f.tp_timer_expire = false;
  auto p = plan_for(f, Backend::kAuto);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.error(), HasSubstr("timer_expire_entry"));
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

TEST(DescribeTest, MentionsEveryFeature) {
  const std::string d = describe(all_features());
  EXPECT_THAT(d, HasSubstr("kernel BTF"));
  EXPECT_THAT(d, HasSubstr("tcp_keepalive_timer"));
  EXPECT_THAT(d, HasSubstr("timer_expire_entry"));
  EXPECT_THAT(d, HasSubstr("tcp_send_reset"));
  EXPECT_THAT(d, HasSubstr("6.10"));
  EXPECT_THAT(d, HasSubstr("inet_sk_error_report"));
  EXPECT_THAT(d, HasSubstr("tcp_receive_reset"));
  EXPECT_THAT(d, HasSubstr("tcp_destroy_sock"));
  EXPECT_THAT(d, HasSubstr("fentry"));
  EXPECT_THAT(d, HasSubstr("loads"));
  EXPECT_THAT(d, HasSubstr("kprobes"));
  EXPECT_THAT(d, HasSubstr("cgroup v2 mount"));
  EXPECT_THAT(d, HasSubstr("/sys/fs/cgroup"));
  // Every yes/no line says yes; only the cgroup line has no yes/no.
  size_t yes = 0;
  for (size_t at = d.find(": "); at != std::string::npos; at = d.find(": ", at + 1)) {
    const size_t word = d.find_first_not_of(' ', at + 1);
    yes += d.compare(word, 4, "yes\n") == 0 || d.compare(word, 4, "yes ") == 0;
  }
  EXPECT_EQ(yes, 10u) << d;
}

TEST(DescribeTest, ReportsWhatIsMissing) {
  Features f;
  f.btf_error = "no kernel BTF (/sys/kernel/btf/vmlinux): No such file or directory";
  f.fentry_detail = "tcp_keepalive_timer has no BTF FUNC record";
  const std::string d = describe(f);
  EXPECT_THAT(d, HasSubstr("No such file or directory"));
  EXPECT_THAT(d, HasSubstr("has no BTF FUNC record"));
  EXPECT_THAT(d, HasSubstr("cgroup v2 mount:                  none"));
  EXPECT_THAT(d, Not(HasSubstr("yes")));
  // One line per feature.
  EXPECT_EQ(std::count(d.begin(), d.end(), '\n'), 11);
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
