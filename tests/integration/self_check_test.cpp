// The self-check (agent/self_check.h) against the kernel's own counters: an
// agent blind to probes is named, a healthy one never is. The blind one is
// made with TCPKA_TEST_BLIND=probe: its timer filter matches nothing, the
// fault met on Linux 7.2 before the kernel matrix, where the programs load,
// attach, and count no probe.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace tcpka::test {
namespace {

using std::chrono::seconds;

constexpr const char* kUnseenTotal = "tcpka_keepalive_probes_unseen_total";
constexpr const char* kChecked = "tcpka_self_check_probes_total";

class SelfCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "integration tests need root (CAP_BPF, CAP_NET_ADMIN)";
    awake_ = std::make_unique<CpusAwake>();
    // Before the agent: the namespace is in the self-check's first reading,
    // so every probe it sends falls in a window.
    netns_ = std::make_unique<TestNetns>();
  }
  void TearDown() override {
    if (agent_) {
      EXPECT_EQ(agent_->stop(), 0);
    }
    agent_.reset();
    netns_.reset();
    awake_.reset();
  }
  void start(bool blind) {
    if (blind) setenv("TCPKA_TEST_BLIND", "probe", 1);
    agent_ = std::make_unique<Agent>(std::vector<std::string>{"--self-check-interval", "2"});
    unsetenv("TCPKA_TEST_BLIND");
    // Its first window has closed: the figures exist.
    ASSERT_TRUE(eventually(
        [&] { return has_series(agent_->metrics(), "tcpka_self_check_namespaces", {}); },
        seconds(10)))
        << agent_->log();
  }
  // Our namespace was read, by the inode the kernel gives it.
  void expect_our_namespace_read() {
    EXPECT_GE(metric(agent_->metrics(), "tcpka_self_check_namespaces"), 2)
        << "the host's namespace and the test's";
  }
  // Probes from `conns` loopback connections whose peers answer, for
  // `secs`: about one a second each (TCP_KEEPIDLE 1), their timers 1/conns
  // of a second apart. Returns how many the kernel sent.
  uint64_t probe_for(int secs, int conns = 1) {
    Listener l = listen_on(AF_INET);
    std::vector<Conn> cs;
    for (int i = 0; i < conns; ++i) cs.push_back(connect_pair(l));
    const uint64_t before = tcpext("TCPKeepAlive");
    for (auto& c : cs) {
      set_keepalive(c.client, 1, 1, 3);
      std::this_thread::sleep_for(std::chrono::milliseconds(1000 / conns));
    }
    std::this_thread::sleep_for(seconds(secs - 1));
    for (auto& c : cs) set_keepalive_off(c.client);
    return tcpext("TCPKeepAlive") - before;
  }
  // Until every probe sent falls in a closed window, whose kernel side then
  // holds at least `sent`: a window is the interval plus the drain (two
  // polls of up to a second) plus the main loop's second, about 5 s here.
  void wait_windows(uint64_t sent) {
    EXPECT_TRUE(eventually(
        [&] {
          return metric(agent_->metrics(), kChecked, {{"source", "kernel"}}) >=
                 static_cast<double>(sent);
        },
        seconds(20)))
        << "the windows never held our namespace's " << sent << " probes\n"
        << agent_->metrics();
    // The agent's side of that window is read two polls after its kernel side.
    std::this_thread::sleep_for(seconds(3));
  }

  std::unique_ptr<CpusAwake> awake_;
  std::unique_ptr<TestNetns> netns_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(SelfCheckTest, ABlindAgentIsNamedByTheKernelsCounters) {
  start(true);
  expect_our_namespace_read();
  const uint64_t sent = probe_for(6);
  ASSERT_GE(sent, 3u) << "the kernel sent too few probes to check anything";
  wait_windows(sent);
  const std::string body = agent_->metrics();
  // Blind everywhere: the agent saw no probe, so every probe the kernel
  // counted in the windows is unseen, ours among them.
  EXPECT_EQ(metric(body, kChecked, {{"source", "agent"}}), 0) << body;
  EXPECT_GE(metric(body, kChecked, {{"source", "kernel"}}), static_cast<double>(sent));
  EXPECT_EQ(metric(body, kUnseenTotal), metric(body, kChecked, {{"source", "kernel"}}));
  EXPECT_NE(agent_->log().find("self-check: the kernel sent"), std::string::npos) << agent_->log();
}

TEST_F(SelfCheckTest, AHealthyAgentIsNeverNamed) {
  start(false);
  expect_our_namespace_read();
  // Eight connections, their probes spread over each second: where some
  // callbacks reach no BPF program (see CpusAwake), one such moment takes a
  // probe or two, not all eight, and the tenth below has room for it.
  const uint64_t sent = probe_for(8, 8);
  ASSERT_GE(sent, 32u) << "the kernel sent too few probes to check anything";
  wait_windows(sent);
  const std::string body = agent_->metrics();
  const double kernel = metric(body, kChecked, {{"source", "kernel"}});
  EXPECT_GE(kernel, static_cast<double>(sent)) << "our namespace's probes were not all counted";
  // Where every keepalive-timer callback reaches BPF (the matrix's guests),
  // none is unseen, and the agent saw at least what the kernel counted in
  // the namespaces it read. Here some callbacks reach no BPF program at all
  // (see CpusAwake): the self-check rightly names those, and the alert
  // (TcpkaBlindToProbes) fires only above a tenth of the kernel's.
  if (exact_counters()) {
    EXPECT_EQ(metric(body, kUnseenTotal), 0) << body;
    EXPECT_GE(metric(body, kChecked, {{"source", "agent"}}), kernel) << body;
    EXPECT_EQ(agent_->log().find("self-check: the kernel sent"), std::string::npos)
        << agent_->log();
  } else {
    EXPECT_LE(metric(body, kUnseenTotal) * 10, kernel) << body;
  }
}

// `tcpka check` proves the probe signal on a real connection: blind
// programs load and attach, and check still says the probe is not seen,
// with what the kernel sent, and --strict refuses.
TEST(CheckEndToEnd, ABlindProbePathIsNotSeenAndStrictRefusesIt) {
  ASSERT_EQ(geteuid(), 0u) << "integration tests need root (CAP_BPF, CAP_NET_ADMIN)";
  CpusAwake awake;
  std::string out;
  const std::string blind = "TCPKA_TEST_BLIND=probe " + agent_binary() + " check";
  EXPECT_EQ(sh(blind + " 2>&1", &out), 0) << out;
  // Three probes, or fewer if they came slower than one a second.
  for (const char* s : {"\n  probe         NOT SEEN: reported 0, the kernel sent ",
                        "\n  kill_reset    seen: reported, and the application got Connection "
                        "reset by peer\n",
                        "result: ok, degraded (off: ", "signal probe (not seen end to end)"}) {
    EXPECT_NE(out.find(s), std::string::npos) << s << " missing in:\n" << out;
  }
  // ...and at least one: the kernel did send.
  const std::string sent_text = "NOT SEEN: reported 0, the kernel sent ";
  const size_t at = out.find(sent_text);
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_TRUE(out[at + sent_text.size()] >= '1' && out[at + sent_text.size()] <= '9') << out;
  EXPECT_EQ(sh(blind + " --strict 2>&1", &out), 3) << out;
  // Released with its descriptors, freed after an RCU grace period.
  EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)))
      << "check left programs loaded";
}

}  // namespace
}  // namespace tcpka::test
