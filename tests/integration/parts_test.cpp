// No single point of failure: each part of the agent (keepalive counters,
// audit, state tracker, policies) refused by the kernel in turn, through the
// TCPKA_TEST_REFUSE hook (its programs are loaded as socket filters, which
// the verifier refuses). `check` names the refused part with the kernel's
// words, `run --strict` refuses with status 3, and `run` starts without it,
// says so on /healthz and tcpka_part_up, and the other parts still count
// against the kernel's own evidence (the errno of a keepalive kill, ss-free
// socket state, getsockopt).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "harness.h"
#include "temp_file.h"

namespace tcpka::test {
namespace {

using std::chrono::seconds;

constexpr const char* kParts[] = {"keepalive", "audit", "state_tracker", "policies"};

// The parts this kernel has (tests/matrix/kernels.list): those the test
// hook can refuse.
std::vector<std::string> present_parts() {
  std::vector<std::string> out;
  for (const char* p : kParts) {
    if (!kernel_lacks(p)) out.emplace_back(p);
  }
  return out;
}

// TCPKA_TEST_REFUSE for the object's lifetime (the agents this process
// starts inherit it).
class RefusePart {
 public:
  explicit RefusePart(const std::string& part) { setenv("TCPKA_TEST_REFUSE", part.c_str(), 1); }
  ~RefusePart() { unsetenv("TCPKA_TEST_REFUSE"); }
  RefusePart(const RefusePart&) = delete;
  RefusePart& operator=(const RefusePart&) = delete;
};

// The audit lists the CLOSE_WAIT socket of this process on `port`, with
// its owner (the accepting end of a connection whose client closed).
void expect_close_wait_listed(Agent& agent, uint16_t port) {
  EXPECT_TRUE(eventually(
      [&] {
        for (const auto& r : json_objects(agent.get("/sockets?state=close_wait"))) {
          if (json_field(r, "sport") == std::to_string(port) &&
              json_field(r, "pid") == std::to_string(getpid())) {
            return true;
          }
        }
        return false;
      },
      seconds(10)))
      << agent.get("/sockets?state=close_wait");
}

// Closes that socket after a second in CLOSE_WAIT: the state tracker,
// where it runs, times it under its cgroup.
void close_after_a_while(Conn& leak, Agent& agent, const TestCgroup& cgroup, bool tracked) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  ::close(leak.server);
  leak.server = -1;
  EXPECT_TRUE(eventually(
      [&] {
        return metric(agent.metrics(), "tcpka_close_wait_duration_seconds_count",
                      {{"cgroup", cgroup.path()}}) == (tracked ? 1 : 0);
      },
      seconds(5)))
      << agent.metrics();
}

class PartsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_EQ(geteuid(), 0u) << "integration tests need root"; }
};

TEST_P(PartsTest, CheckNamesTheRefusedPartAndStrictRefuses) {
  const std::string part = GetParam();
  RefusePart refuse(part);
  std::string out;
  EXPECT_EQ(sh(agent_binary() + " check 2>&1", &out), 0) << out;
  char line[64];
  std::snprintf(line, sizeof(line), "  %-14s OFF: loading ", part.c_str());
  EXPECT_NE(out.find(line), std::string::npos) << out;
  // The kernel's own words about the refused program follow.
  EXPECT_NE(out.find("libbpf: prog '"), std::string::npos) << out;
  EXPECT_NE(out.find("result: ok, degraded (off: "), std::string::npos) << out;
  EXPECT_NE(out.find("part " + part), std::string::npos) << out;
  for (const char* other : kParts) {
    if (other == part) continue;
    std::snprintf(line, sizeof(line), "  %-14s %s", other,
                  kernel_lacks(other) ? "OFF: the kernel lacks it" : "on");
    EXPECT_NE(out.find(line), std::string::npos) << other << " in\n" << out;
  }
  EXPECT_EQ(sh(agent_binary() + " check --strict >/dev/null 2>&1"), 3);
  EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)))
      << "check must leave nothing loaded";
}

TEST_P(PartsTest, RunStartsWithoutItAndTheOthersStillCount) {
  const std::string part = GetParam();
  RefusePart refuse(part);
  TestNetns netns;
  KillWitness kills(netns.inode());
  TestCgroup target(false);
  const std::vector<std::string> policy = {"--keepalive-cgroup", target.abs(),
                                           "--keepalive-idle",   "1",
                                           "--keepalive-intvl",  "1",
                                           "--keepalive-cnt",    "2"};
  {
    std::vector<std::string> strict = policy;
    std::string cmd = agent_binary() + " run --strict --listen 127.0.0.1:9979";
    for (const auto& a : strict) cmd += " " + a;
    std::string err;
    EXPECT_EQ(sh("timeout 30 " + cmd + " 2>&1", &err), 3) << err;
    EXPECT_NE(err.find("--strict: refusing to start without every part; off: "),
              std::string::npos)
        << err;
    EXPECT_NE(err.find(part + " (loading "), std::string::npos) << err;
  }
  std::vector<std::string> args = policy;
  args.insert(args.end(), {"--audit-interval", "1"});
  Agent agent(args);
  int status = 0;
  const std::string health = agent.get("/healthz", &status);
  EXPECT_EQ(health.rfind("degraded: ", 0), 0u) << health;
  EXPECT_NE(health.find("part " + part), std::string::npos) << health;
  EXPECT_EQ(status, 200) << "a part the kernel refuses does not make the agent unhealthy";
  EXPECT_NE(agent.log().find("degraded: part " + part + " is OFF: loading "), std::string::npos)
      << agent.log();
  const std::string m = agent.metrics();
  for (const char* p : kParts) {
    EXPECT_EQ(metric(m, "tcpka_part_up", {{"part", p}}), p == part || kernel_lacks(p) ? 0 : 1)
        << p << "\n" << m;
  }

  // Policies: a connection made in the target cgroup gets keepalive.
  Listener l = listen_on(AF_INET);
  target.enter();
  Conn policed = connect_pair(l);
  target.leave();
  EXPECT_EQ(get_keepalive(policed.client).on, part == "policies" ? 0 : 1);
  ::close(policed.client);  // not to be killed with the next one
  policed.client = -1;

  // The audit and the state tracker: a CLOSE_WAIT socket of ours, listed
  // with its owner, then closed after a second. Its listener (whose cgroup
  // accepted sockets take) in a cgroup of this test: the host's other
  // sockets pass CLOSE_WAIT too.
  TestCgroup leaky(false);
  leaky.enter();
  Listener l2 = listen_on(AF_INET);
  leaky.leave();
  Conn leak = connect_pair(l2);
  ::close(leak.client);
  leak.client = -1;
  if (part == "audit") {
    agent.get("/sockets?state=close_wait", &status);
    EXPECT_EQ(status, 503);
  } else {
    expect_close_wait_listed(agent, l2.port);
  }
  close_after_a_while(leak, agent, leaky,
                      part != "state_tracker" && !kernel_lacks("state_tracker"));

  // The keepalive counters: a kill by timeout, errno ETIMEDOUT.
  Conn doomed = connect_pair(l);
  Nft nft;
  nft.drop_sport(l.port);
  set_keepalive(doomed.client, 1, 1, 2);
  ASSERT_EQ(wait_error(doomed.client, seconds(15)), ETIMEDOUT);
  kills.expect_kernel_killed(1);
  if (part == "keepalive") {
    std::this_thread::sleep_for(seconds(2));
    EXPECT_EQ(agent.metrics().find("tcpka_keepalive_kills_total{"), std::string::npos)
        << "no series for signals nobody observes";
  } else {
    EXPECT_TRUE(eventually(
        [&] {
          return metric(agent.metrics(), "tcpka_keepalive_kills_total",
                        {{"outcome", "timeout"}, {"port", std::to_string(l.port)}}) ==
                 kills.shown();
        },
        seconds(10)))
        << agent.metrics();
  }
  EXPECT_EQ(agent.stop(), 0) << agent.log();
  EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)));
}

// The policies part refused by the kernel, and a SIGHUP that brings the first
// policies: the reload applies the rest, leaves the policies unapplied and
// says so, and the part shows as off from then on.
TEST(PartsReloadTest, FirstPoliciesBySighupWhileTheKernelRefusesThem) {
  ASSERT_EQ(geteuid(), 0u) << "integration tests need root";
  RefusePart refuse("policies");
  TestNetns netns;
  TestCgroup target(false);
  testing_common::TempFile file("/tmp/tcpka-parts-");
  file.write("audit-interval = 1\n");
  Agent agent({"--config", file.path()});
  EXPECT_FALSE(has_series(agent.metrics(), "tcpka_part_up", {{"part", "policies"}}))
      << "none configured yet";
  file.write("audit-interval = 2\nkeepalive-policy = [\"cgroup=" + target.abs() +
             ",idle=1,intvl=1,cnt=2\"]\n");
  ASSERT_EQ(kill(agent.pid(), SIGHUP), 0);
  EXPECT_TRUE(eventually(
      [&] { return agent.log().find("SIGHUP: configuration") != std::string::npos; }, seconds(5)))
      << agent.log();
  EXPECT_NE(agent.log().find("SIGHUP: the keepalive policies are off (loading tka_sockops "),
            std::string::npos)
      << agent.log();
  const std::string m = agent.metrics();
  EXPECT_EQ(metric(m, "tcpka_part_up", {{"part", "policies"}}), 0) << m;
  EXPECT_TRUE(has_series(m, "tcpka_part_up", {{"part", "policies"}})) << m;
  EXPECT_EQ(metric(m, "tcpka_config_last_reload_successful"), 1) << "the rest applied";
  EXPECT_NE(agent.get("/healthz").find("part policies"), std::string::npos);
  EXPECT_EQ(sockops_programs(target.abs()), 0);
  Listener l = listen_on(AF_INET);
  target.enter();
  Conn c = connect_pair(l);
  target.leave();
  EXPECT_EQ(get_keepalive(c.client).on, 0) << "no policy applied";
  EXPECT_EQ(agent.stop(), 0);
}

// A verifier that refuses a part's plain-load build (bpf_rdonly_cast), as
// the development host's 6.18 build v1272 refused a load the build before
// it took: the part loads in its probe-read build, says so, and works.
// TCPKA_TEST_REFUSE=plain:part refuses only the plain-load build.
TEST(PartsBuildTest, ARefusedPlainLoadBuildFallsBackToTheProbeReadOne) {
  ASSERT_EQ(geteuid(), 0u) << "integration tests need root";
  std::string out;
  ASSERT_EQ(sh(agent_binary() + " check 2>&1", &out), 0) << out;
  // Without bpf_rdonly_cast (before 6.2) the probe-read build is the plan:
  // there is nothing to fall back from, and nothing may say so.
  const bool plain = out.find(", plain-load build)") != std::string::npos;
  const std::vector<std::string> parts = {"keepalive", "audit", "state_tracker"};
  RefusePart refuse("plain:keepalive,plain:audit,plain:state_tracker");
  ASSERT_EQ(sh(agent_binary() + " check 2>&1", &out), 0) << out;
  const std::string note = "probe-read build: the plain-load build was refused: loading the ";
  for (const auto& part : parts) {
    if (kernel_lacks(part)) continue;
    char head[64];
    std::snprintf(head, sizeof(head), "\n  %-14s on", part.c_str());
    const size_t at = out.find(head);
    ASSERT_NE(at, std::string::npos) << part << " in\n" << out;
    const std::string line = out.substr(at + 1, out.find('\n', at + 1) - at - 1);
    EXPECT_EQ(line.find(note) != std::string::npos, plain) << line;
  }
  // The keepalive programs of that build see a real connection's probe and
  // reset.
  EXPECT_NE(out.find("\n  probe         seen: "), std::string::npos) << out;
  EXPECT_NE(out.find("\n  kill_reset    seen: "), std::string::npos) << out;

  // `run`: the audit and the state tracker of that build list a CLOSE_WAIT
  // socket of ours with its owner, and time it when it closes.
  TestNetns netns;
  Agent agent({"--audit-interval", "1"});
  if (plain) {
    for (const auto& part : parts) {
      if (kernel_lacks(part)) continue;
      EXPECT_NE(agent.log().find("part " + part + ": " + note), std::string::npos) << agent.log();
    }
  }
  TestCgroup leaky(false);
  leaky.enter();
  Listener l = listen_on(AF_INET);
  leaky.leave();
  Conn leak = connect_pair(l);
  ::close(leak.client);
  leak.client = -1;
  expect_close_wait_listed(agent, l.port);
  close_after_a_while(leak, agent, leaky, !kernel_lacks("state_tracker"));
  EXPECT_EQ(agent.stop(), 0) << agent.log();
}

INSTANTIATE_TEST_SUITE_P(EachPart, PartsTest, ::testing::ValuesIn(present_parts()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tcpka::test
