// Pod attribution on a node laid out like a real one: cgroups named the way
// the kubelet names them (systemd and cgroupfs drivers; containerd and CRI-O
// container scopes) and a kubelet log directory, all created by the test
// under its own cgroup and temp directory.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cgroup.h"
#include "harness.h"

namespace tcpka::test {
namespace {

using std::chrono::seconds;
namespace fs = std::filesystem;

// A chain of nested cgroups below a fresh test cgroup; the process joins the
// leaf, and everything goes away with the object.
class NestedCgroup {
 public:
  explicit NestedCgroup(const std::vector<std::string>& components) {
    root_ = *tcpka::find_cgroup2_mount();
    std::ifstream self("/proc/self/cgroup");
    for (std::string line; std::getline(self, line);) {
      if (line.rfind("0::", 0) == 0) orig_ = line.substr(3);
    }
    std::string rel = "/tcpka-test-" + std::to_string(getpid()) + "-k8s";
    created_.push_back(rel);
    for (const auto& c : components) created_.push_back(created_.back() + "/" + c);
    for (const auto& d : created_) {
      if (mkdir((root_ + d).c_str(), 0755) != 0) throw std::runtime_error("mkdir " + d);
    }
    std::ofstream(root_ + created_.back() + "/cgroup.procs") << getpid();
  }
  ~NestedCgroup() {
    std::ofstream(root_ + (orig_ == "/" ? "" : orig_) + "/cgroup.procs") << getpid();
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) rmdir((root_ + *it).c_str());
  }
  const std::string& leaf() const { return created_.back(); }
  void leave() { std::ofstream(root_ + (orig_ == "/" ? "" : orig_) + "/cgroup.procs") << getpid(); }

 private:
  std::string root_, orig_;
  std::vector<std::string> created_;
};

// The kubelet's log directories for one container.
class FakeKubeletLogs {
 public:
  FakeKubeletLogs(const std::string& ns, const std::string& pod, const std::string& uid,
                  const std::string& container, const std::string& id) {
    char tmpl[] = "/tmp/tcpka-kubelet-XXXXXX";
    root_ = mkdtemp(tmpl);
    fs::create_directories(root_ + "/pods/" + ns + "_" + pod + "_" + uid + "/" + container);
    std::ofstream(root_ + "/pods/" + ns + "_" + pod + "_" + uid + "/" + container + "/0.log");
    fs::create_directories(root_ + "/containers");
    // On a node these are symlinks into pods/; a file serves the same.
    std::ofstream(root_ + "/containers/" + pod + "_" + ns + "_" + container + "-" + id + ".log");
  }
  ~FakeKubeletLogs() { fs::remove_all(root_); }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

struct Layout {
  std::string name;
  std::vector<std::string> cgroups;  // below the test's cgroup
};

constexpr const char* kUid = "6f3c2a1e-9b7d-4c21-8e55-0a1b2c3d4e5f";
constexpr const char* kId = "4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899";

class PodAttributionTest : public ::testing::TestWithParam<Layout> {
 protected:
  void SetUp() override { ASSERT_EQ(geteuid(), 0u) << "integration tests need root"; }
};

TEST_P(PodAttributionTest, MetricsAndAuditCarryNamespacePodAndContainer) {
  TestNetns netns;
  KillWitness kills(netns.inode());
  FakeKubeletLogs logs("shop", "web-7d9f", kUid, "nginx", kId);
  Agent agent({"--k8s-log-root", logs.root(), "--audit-interval", "1"});
  NestedCgroup cg(GetParam().cgroups);
  Listener l = listen_on(AF_INET);
  Conn c = connect_pair(l);
  cg.leave();
  Nft nft;
  nft.drop_sport(l.port);
  set_keepalive(c.client, 1, 1, 2);
  ASSERT_EQ(wait_error(c.client, seconds(10)), ETIMEDOUT);
  kills.expect_kernel_killed(1);
  const std::map<std::string, std::string> pod = {
      {"namespace", "shop"}, {"pod", "web-7d9f"}, {"container", "nginx"}, {"cgroup", cg.leaf()}};
  EXPECT_TRUE(eventually(
      [&] { return metric(agent.metrics(), "tcpka_keepalive_kills_total", pod) == kills.shown(); },
      seconds(5)))
      << agent.metrics();
  EXPECT_TRUE(
      eventually([&] { return metric(agent.metrics(), "tcpka_sockets", pod) >= 2; }, seconds(5)));

  std::string out;
  ASSERT_EQ(sh(agent_binary() + " audit --json --state listen --k8s-log-root " + logs.root(), &out),
            0);
  bool found = false;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (json_field(line, "sport") != std::to_string(l.port)) continue;
    found = true;
    EXPECT_EQ(json_field(line, "namespace"), "shop") << line;
    EXPECT_EQ(json_field(line, "pod"), "web-7d9f") << line;
    EXPECT_EQ(json_field(line, "container"), "nginx") << line;
  }
  EXPECT_TRUE(found) << out;
}

TEST_P(PodAttributionTest, UnknownPodsKeepOnlyTheCgroupLabel) {
  TestNetns netns;
  // Logs of another pod only: this one cannot be named.
  FakeKubeletLogs logs("other", "api-1", "11111111-2222-3333-4444-555555555555", "api", kId);
  Agent agent({"--k8s-log-root", logs.root(), "--audit-interval", "1"});
  NestedCgroup cg(GetParam().cgroups);
  Listener l = listen_on(AF_INET);
  cg.leave();
  EXPECT_TRUE(eventually(
      [&] {
        return metric(agent.metrics(), "tcpka_sockets",
                      {{"cgroup", cg.leaf()}, {"state", "listen"}}) == 1;
      },
      seconds(5)));
  EXPECT_FALSE(has_series(agent.metrics(), "tcpka_sockets",
                          {{"cgroup", cg.leaf()},
                           {"state", "listen"},
                           {"namespace", "other"},
                           {"pod", "api-1"},
                           {"container", "api"}}));
  EXPECT_TRUE(
      has_series(agent.metrics(), "tcpka_sockets", {{"cgroup", cg.leaf()}, {"state", "listen"}}));
}

const std::string kUidUnderscores = [] {
  std::string u = kUid;
  for (char& ch : u) {
    if (ch == '-') ch = '_';
  }
  return u;
}();

INSTANTIATE_TEST_SUITE_P(
    NodeLayouts, PodAttributionTest,
    ::testing::Values(
        Layout{"systemd_containerd",
               {"kubepods.slice", "kubepods-burstable.slice",
                "kubepods-burstable-pod" + kUidUnderscores + ".slice",
                std::string("cri-containerd-") + kId + ".scope"}},
        Layout{"systemd_crio_guaranteed",
               {"kubepods.slice", "kubepods-pod" + kUidUnderscores + ".slice",
                std::string("crio-") + kId + ".scope"}},
        Layout{"cgroupfs_containerd", {"kubepods", "besteffort", std::string("pod") + kUid, kId}},
        Layout{"cgroupfs_crio",
               {"kubepods", "burstable", std::string("pod") + kUid, std::string("crio-") + kId}}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace tcpka::test
