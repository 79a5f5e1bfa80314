// Keepalive policies (sockops) against the kernel: getsockopt and ss see the
// policy on sockets of the target cgroup only, a vanished peer dies within
// idle + intvl x cnt, `keepalive apply` retrofits existing sockets, and no
// sequence of starts, SIGTERMs and SIGKILLs leaves a cgroup with zero or two
// copies of the program when it should have one.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "harness.h"

namespace tcpka::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Labels = std::map<std::string, std::string>;

class SockopsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "integration tests need root";
    netns_ = std::make_unique<TestNetns>();
    target_ = std::make_unique<TestCgroup>(false);
    sibling_ = std::make_unique<TestCgroup>(false);
  }
  void TearDown() override {
    agent_.reset();
    // Whatever a test left pinned for its cgroup goes with it.
    sh(agent_binary() + " keepalive remove --cgroup " + target_->abs() + " >/dev/null 2>&1");
    target_.reset();
    sibling_.reset();
    netns_.reset();
  }

  std::vector<std::string> policy_args(int idle, int intvl, int cnt) {
    return {"--keepalive-cgroup", target_->abs(),        "--keepalive-idle", std::to_string(idle),
            "--keepalive-intvl",  std::to_string(intvl), "--keepalive-cnt",  std::to_string(cnt)};
  }
  void start_agent(std::vector<std::string> args) {
    agent_ = std::make_unique<Agent>(std::move(args));
  }
  double metric_of(const std::string& name, std::map<std::string, std::string> labels) {
    return metric(agent_->metrics(), name, labels);
  }

  std::unique_ptr<TestNetns> netns_;
  std::unique_ptr<TestCgroup> target_, sibling_;
  std::unique_ptr<Agent> agent_;
};

std::string ss_line(uint16_t port) {
  std::string out;
  sh("ss -tnoH state established '( sport = :" + std::to_string(port) + " )'", &out);
  return out;
}

TEST_F(SockopsTest, PolicyAppliesToTheTargetCgroupOnly) {
  start_agent(policy_args(7, 3, 4));
  target_->enter();
  Listener l = listen_on(AF_INET);
  Conn in_target = connect_pair(l);
  target_->leave();
  sibling_->enter();
  Listener l2 = listen_on(AF_INET);
  Conn in_sibling = connect_pair(l2);
  sibling_->leave();

  for (int fd : {in_target.client, in_target.server}) {
    const KeepaliveOpts k = get_keepalive(fd);
    EXPECT_EQ(k.on, 1);
    EXPECT_EQ(k.idle, 7);
    EXPECT_EQ(k.intvl, 3);
    EXPECT_EQ(k.cnt, 4);
  }
  // ss sees the armed keepalive timer on the accepted socket too.
  EXPECT_NE(ss_line(l.port).find("timer:(keepalive"), std::string::npos) << ss_line(l.port);
  for (int fd : {in_sibling.client, in_sibling.server}) {
    EXPECT_EQ(get_keepalive(fd).on, 0) << "the sibling cgroup must be untouched";
  }
  EXPECT_EQ(ss_line(l2.port).find("keepalive"), std::string::npos) << ss_line(l2.port);
  const std::string cg = target_->path();
  EXPECT_EQ(metric_of("tcpka_sockops_keepalive_applied_total",
                      {{"cgroup", cg}, {"direction", "inbound"}}),
            1);
  EXPECT_EQ(metric_of("tcpka_sockops_keepalive_applied_total",
                      {{"cgroup", cg}, {"direction", "outbound"}}),
            1);
  EXPECT_EQ(metric_of("tcpka_sockops_errors_total", {{"cgroup", cg}}), 0);
  EXPECT_EQ(metric_of("tcpka_bpf_program_attached",
                      {{"program", "tka_sockops"}, {"attach", "sockops:" + cg}}),
            1);
}

TEST_F(SockopsTest, DirectionInboundLeavesConnectedSocketsAlone) {
  auto args = policy_args(7, 3, 4);
  args.insert(args.end(), {"--keepalive-direction", "inbound"});
  start_agent(args);
  target_->enter();
  Listener l = listen_on(AF_INET);
  Conn c = connect_pair(l);
  target_->leave();
  EXPECT_EQ(get_keepalive(c.server).on, 1);
  EXPECT_EQ(get_keepalive(c.client).on, 0);
}

TEST_F(SockopsTest, HalfOpenConnectionDiesAfterIdlePlusProbes) {
  KillWitness kills(netns_->inode());
  start_agent(policy_args(2, 1, 2));
  target_->enter();
  Listener l = listen_on(AF_INET);
  Conn c = connect_pair(l);
  target_->leave();
  const auto t0 = std::chrono::steady_clock::now();
  Nft nft;
  nft.drop_sport(l.port);  // the peer vanishes; nobody in the app set keepalive
  EXPECT_EQ(wait_error(c.client, seconds(15)), ETIMEDOUT);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // idle 2 + intvl 1 x cnt 2 = 4 s; the kernel's timer slack is well under 1 s here.
  EXPECT_GT(elapsed, 3.5);
  EXPECT_LT(elapsed, 6.0);
  // Both ends die: the policy gave the server keepalive too, and its
  // probes leave from the dropped port.
  kills.expect_kernel_killed(2);
  const std::string cg = target_->path();
  EXPECT_TRUE(eventually(
      [&] {
        return metric_of("tcpka_keepalive_kills_total", {{"cgroup", cg}, {"outcome", "timeout"}}) ==
               kills.shown();
      },
      seconds(5)));
  if (kills.complete()) {
    const std::map<std::string, std::string> client_kill = {{"cgroup", cg},
                                                            {"direction", "outbound"},
                                                            {"port", std::to_string(l.port)},
                                                            {"outcome", "timeout"}};
    EXPECT_EQ(metric_of("tcpka_keepalive_kills_total", client_kill), 1);
  }
  EXPECT_GE(
      metric_of("tcpka_keepalive_probes_sent_total", {{"cgroup", cg}, {"direction", "outbound"}}),
      2);
}

TEST_F(SockopsTest, ApplicationKeepaliveKeptUnlessOverride) {
  auto app_sets_its_own = [](int fd) {
    const int one = 1, idle = 100;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  };
  start_agent(policy_args(7, 3, 4));
  target_->enter();
  Listener l = listen_on(AF_INET);
  Conn kept = connect_pair(l, app_sets_its_own);
  target_->leave();
  const std::string cg = target_->path();
  EXPECT_EQ(get_keepalive(kept.server).idle, 7) << "the listener had no keepalive";
  const Labels out = {{"cgroup", cg}, {"direction", "outbound"}};
  if (kernel_lacks("policy_keep")) {
    // Before Linux 6.1 the program cannot see the application's keepalive
    // (tests/matrix/kernels.list): the policy applies, counted apart.
    EXPECT_EQ(get_keepalive(kept.client).idle, 7) << "applied as with override";
    EXPECT_EQ(metric_of("tcpka_sockops_own_keepalive_unknown_total", out), 1);
    EXPECT_EQ(metric_of("tcpka_sockops_keepalive_kept_total", out), 0);
    EXPECT_EQ(metric_of("tcpka_sockops_errors_total", {{"cgroup", cg}}), 0);
    return;
  }
  EXPECT_EQ(get_keepalive(kept.client).idle, 100) << "default: the application's values win";
  EXPECT_EQ(metric_of("tcpka_sockops_keepalive_kept_total", out), 1);
  EXPECT_EQ(metric_of("tcpka_sockops_own_keepalive_unknown_total", out), 0);

  agent_.reset();
  auto args = policy_args(7, 3, 4);
  args.push_back("--keepalive-override");
  start_agent(args);
  target_->enter();
  Conn overridden = connect_pair(l, app_sets_its_own);
  target_->leave();
  EXPECT_EQ(get_keepalive(overridden.client).idle, 7) << "--keepalive-override: ours win";
  EXPECT_EQ(metric_of("tcpka_sockops_keepalive_applied_total",
                      {{"cgroup", cg}, {"direction", "outbound"}}),
            1);
}

TEST_F(SockopsTest, ApplyRetrofitsExistingSocketsOfTheCgroupOnly) {
  target_->enter();
  Listener l = listen_on(AF_INET);
  Conn old_target = connect_pair(l);
  target_->leave();
  Listener l2 = listen_on(AF_INET);
  Conn old_elsewhere = connect_pair(l2);
  ASSERT_EQ(get_keepalive(old_target.client).on, 0);

  std::string out;
  const int rc = sh(agent_binary() + " keepalive apply --cgroup " + target_->path() +
                        " --idle 9 --intvl 2 --cnt 3 2>&1",
                    &out);
  if (kernel_lacks("keepalive_apply")) {
    // Before Linux 5.15 (tests/matrix/kernels.list): refused by name, and
    // nothing changed.
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find("bpf_setsockopt() (Linux 5.15)"), std::string::npos) << out;
    for (int fd : {old_target.client, old_target.server}) EXPECT_EQ(get_keepalive(fd).on, 0);
    return;
  }
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("keepalive set on 2 established sockets"), std::string::npos) << out;
  for (int fd : {old_target.client, old_target.server}) {
    const KeepaliveOpts k = get_keepalive(fd);
    EXPECT_EQ(k.on, 1);
    EXPECT_EQ(k.idle, 9);
    EXPECT_EQ(k.intvl, 2);
    EXPECT_EQ(k.cnt, 3);
  }
  for (int fd : {old_elsewhere.client, old_elsewhere.server}) EXPECT_EQ(get_keepalive(fd).on, 0);
  EXPECT_NE(ss_line(l.port).find("timer:(keepalive"), std::string::npos);
}

TEST_F(SockopsTest, BadValuesRefusedWithNothingAttached) {
  const std::string base = "timeout 10 " + agent_binary() + " run --listen 127.0.0.1:9977 ";
  const std::string cg = " --keepalive-cgroup " + target_->abs();
  const std::pair<std::string, std::string> cases[] = {
      {cg + " --keepalive-idle 0 --keepalive-intvl 1 --keepalive-cnt 1", "'0'"},
      {cg + " --keepalive-idle 32768 --keepalive-intvl 1 --keepalive-cnt 1", "32768"},
      {cg + " --keepalive-idle 1 --keepalive-intvl 1 --keepalive-cnt 128", "128"},
      {cg + " --keepalive-idle 1 --keepalive-intvl 0 --keepalive-cnt 1", "intvl"},
      {" --keepalive-cgroup /no/such/cgroup --keepalive-idle 1 --keepalive-intvl 1 "
       "--keepalive-cnt 1",
       "/no/such/cgroup"},
      {cg + " --keepalive-idle 5", "cnt"},
  };
  for (const auto& [args, must_name] : cases) {
    std::string err;
    EXPECT_EQ(sh(base + args + " 2>&1 >/dev/null", &err), 2) << args;
    EXPECT_NE(err.find(must_name), std::string::npos) << args << ": " << err;
    EXPECT_EQ(sockops_programs(target_->abs()), 0) << args;
  }
  std::string err;
  EXPECT_EQ(sh(agent_binary() + " keepalive apply --cgroup " + target_->abs() +
                   " --idle 40000 --intvl 1 --cnt 1 2>&1",
               &err),
            2)
      << err;
}

TEST_F(SockopsTest, SigtermAndCrashesNeverLeaveZeroOrTwoCopies) {
  const std::string cg = target_->abs();
  start_agent(policy_args(7, 3, 4));
  EXPECT_EQ(sockops_programs(cg), 1);
  EXPECT_EQ(agent_->stop(), 0);
  agent_.reset();
  EXPECT_EQ(sockops_programs(cg), 0) << "SIGTERM leaves nothing attached";

  for (int i = 0; i < 3; ++i) {
    start_agent(policy_args(7, 3, 4));
    EXPECT_EQ(sockops_programs(cg), 1);
    agent_->kill9();
    agent_.reset();
  }
  EXPECT_EQ(sockops_programs(cg), 0) << "a crashed agent's link dies with it";
  start_agent(policy_args(7, 3, 4));
  EXPECT_EQ(sockops_programs(cg), 1) << "exactly one after three SIGKILLs and a restart";
}

TEST_F(SockopsTest, PersistSurvivesRestartsAndRemoveCleans) {
  BpffsMount bpffs;  // the policy is pinned there
  const std::string cg = target_->abs();
  auto args = policy_args(7, 3, 4);
  args.push_back("--keepalive-persist");
  start_agent(args);
  EXPECT_EQ(agent_->stop(), 0);
  agent_.reset();
  const auto first = sockops_program_ids(cg);
  ASSERT_EQ(first.size(), 1u) << "persist: the policy outlives the agent";

  // No agent running: new connections still get the policy.
  target_->enter();
  Listener l = listen_on(AF_INET);
  Conn c = connect_pair(l);
  target_->leave();
  EXPECT_EQ(get_keepalive(c.client).idle, 7);

  // A restart replaces the program in place; a crash keeps it.
  start_agent(args);
  const auto second = sockops_program_ids(cg);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_NE(second[0], first[0]) << "the new agent's program took over the pinned link";
  agent_->kill9();
  agent_.reset();
  EXPECT_EQ(sockops_programs(cg), 1);

  // Without persist, a start takes the pinned policy over and unpins it.
  start_agent(policy_args(7, 3, 4));
  EXPECT_EQ(sockops_programs(cg), 1);
  EXPECT_EQ(agent_->stop(), 0);
  agent_.reset();
  EXPECT_EQ(sockops_programs(cg), 0);

  start_agent(args);
  agent_->kill9();
  agent_.reset();
  std::string out;
  EXPECT_EQ(sh(agent_binary() + " keepalive remove --cgroup " + cg, &out), 0) << out;
  EXPECT_NE(out.find("removed"), std::string::npos) << out;
  EXPECT_EQ(sockops_programs(cg), 0);
  struct stat st {};
  EXPECT_NE(stat(("/sys/fs/bpf/tcpka/keepalive-" + std::to_string([&] {
                    struct stat s {};
                    stat(cg.c_str(), &s);
                    return s.st_ino;
                  }()))
                     .c_str(),
                 &st),
            0)
      << "the pin is gone";
}

TEST_F(SockopsTest, SecondAgentCannotTakeARunningAgentsPolicy) {
  BpffsMount bpffs;  // the policy is pinned there
  auto args = policy_args(7, 3, 4);
  args.push_back("--keepalive-persist");
  start_agent(args);
  const auto ids = sockops_program_ids(target_->abs());
  ASSERT_EQ(ids.size(), 1u);
  // Even with a pinned link to take over, a second agent must refuse.
  std::string err;
  EXPECT_EQ(
      sh("timeout 10 " + agent_binary() +
             " run --listen 127.0.0.1:9978 --keepalive-persist --keepalive-cgroup " +
             target_->abs() + " --keepalive-idle 9 --keepalive-intvl 1 --keepalive-cnt 1 2>&1",
         &err),
      1)
      << err;
  EXPECT_NE(err.find("another running agent"), std::string::npos) << err;
  EXPECT_EQ(sockops_program_ids(target_->abs()), ids) << "the first agent keeps its program";
  // Removing the pinned policy under the running agent shows as detached.
  ASSERT_EQ(sh(agent_binary() + " keepalive remove --cgroup " + target_->abs()), 0);
  EXPECT_EQ(metric_of("tcpka_bpf_program_attached", {{"program", "tka_sockops"}}), 0);
  agent_.reset();
}

TEST_F(SockopsTest, SighupChangesValuesWithoutReattaching) {
  // The policy comes from a config file the test rewrites.
  char path[] = "/tmp/tcpka-policy-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  auto write_policy = [&](int idle) {
    FILE* f = fopen(path, "w");
    fprintf(f, "keepalive-policy = [\"cgroup=%s,idle=%d,intvl=3,cnt=4\"]\n", target_->abs().c_str(),
            idle);
    fclose(f);
  };
  write_policy(7);
  start_agent({"--config", path});
  const auto before = sockops_program_ids(target_->abs());
  write_policy(13);
  kill(agent_->pid(), SIGHUP);
  ASSERT_TRUE(eventually(
      [&] { return agent_->log().find("keepalive policies reloaded") != std::string::npos; },
      seconds(5)))
      << agent_->log();
  target_->enter();
  Listener l = listen_on(AF_INET);
  Conn c = connect_pair(l);
  target_->leave();
  EXPECT_EQ(get_keepalive(c.client).idle, 13);
  EXPECT_EQ(sockops_program_ids(target_->abs()), before) << "same program, same attachment";
  unlink(path);
}

}  // namespace
}  // namespace tcpka::test
