// The agent as a user runs it: `tcpka watch --json` lines checked field by
// field against what the test knows about its own sockets, `tcpka check`,
// refused arguments, cardinality cap and removal of vanished cgroups.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "harness.h"

namespace tcpka::test {
namespace {

using std::chrono::seconds;

int count_kind(const std::vector<std::string>& lines, const std::string& kind) {
  int n = 0;
  for (const auto& l : lines) n += json_field(l, "event") == kind;
  return n;
}

class WatchTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_EQ(geteuid(), 0u) << "integration tests need root"; }
};

TEST_P(WatchTest, JsonLinesDescribeProbesAndKillOfInboundSocket) {
  TestNetns netns;
  Watch watch({"--backend", GetParam()});
  TestCgroup cgroup;
  Listener l = listen_on(AF_INET);
  Conn c = connect_pair(l);
  Nft nft;
  nft.drop_sport(c.client_port);
  set_keepalive(c.server, 1, 1, 2);
  ASSERT_EQ(wait_error(c.server, seconds(10)), ETIMEDOUT);
  const auto lines =
      watch.lines_until([](const auto& ls) { return count_kind(ls, "kill") >= 1; }, seconds(5));
  ASSERT_EQ(count_kind(lines, "probe"), 2) << ::testing::PrintToString(lines);
  ASSERT_EQ(count_kind(lines, "kill"), 1);
  for (const auto& line : lines) {
    SCOPED_TRACE(line);
    EXPECT_EQ(json_field(line, "family"), "4");
    EXPECT_EQ(json_field(line, "saddr"), "127.0.0.1");
    EXPECT_EQ(json_field(line, "daddr"), "127.0.0.1");
    EXPECT_EQ(json_field(line, "sport"), std::to_string(l.port));
    EXPECT_EQ(json_field(line, "dport"), std::to_string(c.client_port));
    EXPECT_EQ(json_field(line, "direction"), "inbound");
    EXPECT_EQ(json_field(line, "netns"), std::to_string(netns.inode()));
    EXPECT_EQ(json_field(line, "cgroup"), cgroup.path());
    EXPECT_EQ(json_field(line, "state"), "established");
    // Connected after watch started: the state tracker gave it a cookie.
    // Where tracing programs cannot ask for one (no state tracker,
    // tests/matrix/kernels.list), nothing did.
    const bool cookies = !kernel_lacks("state_tracker");
    EXPECT_EQ(json_field(line, "cookie") != "null", cookies);
    if (json_field(line, "event") == "probe") {
      EXPECT_EQ(json_field(line, "outcome"), "null");
      EXPECT_EQ(json_field(line, "errno"), "0");
    } else {
      EXPECT_EQ(json_field(line, "outcome"), "timeout");
      EXPECT_EQ(json_field(line, "errno"), std::to_string(ETIMEDOUT));
      EXPECT_EQ(json_field(line, "error"), "ETIMEDOUT");
      EXPECT_EQ(json_field(line, "probes_out"), "2");
    }
  }
  EXPECT_EQ(json_field(lines[0], "probes_out"), "1");
  EXPECT_EQ(json_field(lines[1], "probes_out"), "2");
}

TEST_P(WatchTest, Ipv6ResetKill) {
  TestNetns netns;
  Watch watch({"--backend", GetParam()});
  Listener l = listen_on(AF_INET6);
  Conn c = connect_pair(l);
  vanish(c.server);
  set_keepalive(c.client, 1, 1, 3);
  ASSERT_EQ(wait_error(c.client, seconds(10)), ECONNRESET);
  const auto lines =
      watch.lines_until([](const auto& ls) { return count_kind(ls, "kill") >= 1; }, seconds(5));
  ASSERT_FALSE(lines.empty());
  const std::string& kill = lines.back();
  EXPECT_EQ(json_field(kill, "event"), "kill");
  EXPECT_EQ(json_field(kill, "family"), "6");
  EXPECT_EQ(json_field(kill, "saddr"), "::1");
  EXPECT_EQ(json_field(kill, "dport"), std::to_string(l.port));
  EXPECT_EQ(json_field(kill, "direction"), "outbound");
  EXPECT_EQ(json_field(kill, "outcome"), "reset");
  EXPECT_EQ(json_field(kill, "errno"), std::to_string(ECONNRESET));
}

INSTANTIATE_TEST_SUITE_P(Backends, WatchTest, ::testing::ValuesIn(backends()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

TEST(AgentCli, CheckReportsEverySignalAndSucceeds) {
  ASSERT_EQ(geteuid(), 0u);
  std::string out;
  ASSERT_EQ(sh(agent_binary() + " check", &out), 0) << out;
  const bool reason = !kernel_lacks("reset_reason");
  for (const char* s : {"probe", "recovered", "kill_timeout", "kill_reset", "socket_gone",
                        reason ? "signals (backend reset-reason)" : "signals (backend timer-bracket)",
                        "fentry", "  keepalive      on", "  audit          on"}) {
    EXPECT_NE(out.find(s), std::string::npos) << s << " missing in:\n" << out;
  }
  // Everything else on; what the kernel lacks, off (tests/matrix/kernels.list).
  for (const char* part : {"state_tracker", "policies"}) {
    char line[64];
    std::snprintf(line, sizeof(line), "  %-14s %s", part, kernel_lacks(part) ? "OFF: the kernel lacks it" : "on");
    EXPECT_NE(out.find(line), std::string::npos) << line << " missing in:\n" << out;
  }
  EXPECT_NE(out.find(kernel_lacks("keepalive_apply") ? "to open sockets: NO" : "to open sockets: yes"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(kernel_lacks("state_tracker") || kernel_lacks("policies")
                         ? "result: ok, degraded"
                         : "result: ok (every part loads"),
            std::string::npos)
      << out;
  // Proven on a real connection, the kernel's counter and errno beside.
  for (const char* s : {"end to end (a loopback connection in a network namespace of its own):\n",
                        "\n  probe         seen: reported ",
                        "\n  kill_reset    seen: reported, and the application got Connection "
                        "reset by peer\n"}) {
    EXPECT_NE(out.find(s), std::string::npos) << s << " missing in:\n" << out;
  }
  EXPECT_EQ(out.find("NOT SEEN"), std::string::npos) << out;
  ASSERT_EQ(sh(agent_binary() + " check --backend timer-bracket", &out), 0) << out;
  EXPECT_NE(out.find("kill_timeout  tp_btf/tcp_send_reset (in the timer bracket)"),
            std::string::npos)
      << out;
  // The reset reason: used where the kernel has it, refused by name where not.
  const int rc = sh(agent_binary() + " check --backend reset-reason 2>&1", &out);
  if (reason) {
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("kill_timeout  tp_btf/tcp_send_reset (reason)"), std::string::npos) << out;
  } else {
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find("SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT (Linux 6.12+); use timer-bracket"),
              std::string::npos)
        << out;
  }
  EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)))
      << "check must leave nothing loaded";
}

TEST(AgentCli, BadArgumentsExitTwoNamingTheValueAndLoadNothing) {
  ASSERT_EQ(geteuid(), 0u);
  ASSERT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)));
  struct Case {
    std::string args;
    std::string must_name;
  };
  const Case cases[] = {
      {"run --listen 127.0.0.1:99999", "99999"},
      {"run --listen nohost:80", "nohost"},
      {"run --backend kprobe", "kprobe"},
      {"run --max-series banana", "banana"},
      {"run --no-such-flag", "--no-such-flag"},
      {"run --config /nonexistent/tcpka.toml", "/nonexistent/tcpka.toml"},
      {"watch --ringbuf-bytes 1000", "1000"},
  };
  for (const auto& c : cases) {
    std::string err;
    // timeout: an argument wrongly accepted would start the agent for good.
    const int rc = sh("timeout 10 " + agent_binary() + " " + c.args + " 2>&1 >/dev/null", &err);
    EXPECT_EQ(rc, 2) << c.args << ": " << err;
    EXPECT_NE(err.find(c.must_name), std::string::npos) << c.args << ": " << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one line: " << err;
  }
  EXPECT_EQ(count_our_programs(), 0);
}

// The capability set of deploy/kubernetes/daemonset.yaml, and nothing else.
constexpr const char* kDaemonSetCaps = "-all,+bpf,+perfmon,+syslog,+net_admin";

// Running with exactly that set, with a policy, counting a kill:
// robustness_test.cpp, CapabilitiesTest.DaemonSetSetStartsAttachesServesAndCountsAKill.

TEST(AgentCapabilities, WithoutSyslogCheckNamesTheMissingCapability) {
  ASSERT_EQ(geteuid(), 0u);
  std::string out;
  EXPECT_EQ(sh("setpriv --bounding-set=-all,+bpf,+perfmon,+net_admin --inh-caps=-all " +
                   agent_binary() + " check 2>&1",
               &out),
            1)
      << out;
  EXPECT_NE(out.find("CAP_SYSLOG"), std::string::npos) << out;
  EXPECT_EQ(sh(std::string("setpriv --bounding-set=") + kDaemonSetCaps + " --inh-caps=-all " +
                   agent_binary() + " check 2>&1",
               &out),
            0)
      << out;
}

TEST(AgentRun, MetricsExposeBuildProgramsAndSignals) {
  ASSERT_EQ(geteuid(), 0u);
  TestNetns netns;
  Agent agent({});
  const std::string m = agent.metrics();
  for (const char* family :
       {"tcpka_keepalive_probes_sent_total", "tcpka_keepalive_recovered_total",
        "tcpka_keepalive_kills_total", "tcpka_build_info", "tcpka_bpf_program_attached",
        "tcpka_signal_info", "tcpka_events_dropped_total", "tcpka_series_overflow_total"}) {
    EXPECT_NE(m.find(std::string("# HELP ") + family + " "), std::string::npos) << family;
  }
  // What this kernel has (tests/matrix/kernels.list; everything on the host).
  const bool reason = !kernel_lacks("reset_reason");
  const bool tracker = !kernel_lacks("state_tracker");
  for (const char* prog : {"tka_timer_entry", "tka_timer_exit",
                           reason ? "tka_send_reset" : "tka_reset_bracket", "tka_recv_reset",
                           "tka_destroy", "tka_iter_socks"}) {
    EXPECT_EQ(metric(m, "tcpka_bpf_program_attached", {{"program", prog}}), 1) << prog;
  }
  EXPECT_EQ(has_series(m, "tcpka_bpf_program_attached",
                       {{"program", "tka_set_state"}, {"attach", "tp_btf/inet_sock_set_state"}}),
            tracker);
  EXPECT_EQ(metric(m, "tcpka_signal_info",
                   {{"signal", "kill_timeout"},
                    {"attach", reason ? "tp_btf/tcp_send_reset (reason)"
                                      : "tp_btf/tcp_send_reset (in the timer bracket)"}}),
            1);
  for (const char* part : {"keepalive", "audit", "state_tracker"}) {
    EXPECT_EQ(metric(m, "tcpka_part_up", {{"part", part}}), kernel_lacks(part) ? 0 : 1) << part;
  }
  EXPECT_FALSE(has_series(m, "tcpka_part_up", {{"part", "policies"}})) << "none configured";
  EXPECT_EQ(metric(m, "tcpka_build_info"), 1);
  int status = 0;
  agent.get("/nope", &status);
  EXPECT_EQ(status, 404);
  // Five keepalive programs, the state tracker and the socket iterator.
  EXPECT_EQ(count_our_programs(), tracker ? 7 : 6);
  EXPECT_EQ(agent.stop(), 0);
  // Program ids outlive the process for an RCU grace period.
  EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)))
      << "SIGTERM must leave nothing loaded";
}

TEST(AgentRun, SeriesCapFoldsIntoOtherAndVanishedCgroupsAreRemoved) {
  ASSERT_EQ(geteuid(), 0u);
  TestNetns netns;
  KillWitness kills(netns.inode());
  Agent agent({"--max-series", "1", "--gc-interval", "1"});
  auto cgroup = std::make_unique<TestCgroup>();
  const std::string cg = cgroup->path();
  auto l1 = std::make_unique<Listener>(listen_on(AF_INET));
  auto l2 = std::make_unique<Listener>(listen_on(AF_INET));
  Conn c1 = connect_pair(*l1), c2 = connect_pair(*l2);
  const uint16_t port1 = l1->port;
  Nft nft;
  nft.drop_sport(l1->port);
  nft.drop_sport(l2->port);
  set_keepalive(c1.client, 1, 1, 2);
  ASSERT_EQ(wait_error(c1.client, seconds(10)), ETIMEDOUT);
  kills.expect_kernel_killed(1);
  double first = 0;
  ASSERT_TRUE(eventually(
      [&] {
        first = kills.shown();
        return metric(agent.metrics(), "tcpka_keepalive_kills_total", {{"cgroup", cg}}) == first;
      },
      seconds(5)));
  set_keepalive(c2.client, 1, 1, 2);
  ASSERT_EQ(wait_error(c2.client, seconds(10)), ETIMEDOUT);
  kills.expect_kernel_killed(2);
  double both = 0;
  ASSERT_TRUE(eventually(
      [&] {
        both = kills.shown();
        return metric(agent.metrics(), "tcpka_keepalive_kills_total", {{"cgroup", cg}}) == both;
      },
      seconds(5)));
  std::string m = agent.metrics();
  EXPECT_EQ(
      metric(m, "tcpka_keepalive_kills_total", {{"cgroup", cg}, {"port", std::to_string(port1)}}),
      first);
  EXPECT_EQ(metric(m, "tcpka_keepalive_kills_total", {{"cgroup", cg}, {"port", "other"}}),
            both - first);
  EXPECT_GE(metric(m, "tcpka_series_overflow_total"), 1);

  // Every socket of the cgroup is closed, then the cgroup goes.
  { Conn dead1 = std::move(c1), dead2 = std::move(c2); }
  l1.reset();
  l2.reset();
  cgroup->remove();
  EXPECT_TRUE(
      eventually([&] { return agent.metrics().find("cgroup=\"" + cg + "\"") == std::string::npos; },
                 seconds(5)))
      << agent.metrics();
  EXPECT_GE(metric(agent.metrics(), "tcpka_series_removed_total"), 1);
}

}  // namespace
}  // namespace tcpka::test
