#include "self_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace tcpka {
namespace {

using ::testing::HasSubstr;

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// `nstat -asz NAME` (absolute, history untouched): iproute2's reading of the
// same counter, not ours.
uint64_t nstat(const std::string& name) {
  FILE* p = popen(("nstat -asz " + name + " 2>/dev/null").c_str(), "r");
  if (!p) return ~0ull;
  char line[256];
  uint64_t v = ~0ull;
  while (fgets(line, sizeof(line), p)) {
    char key[128];
    unsigned long long n = 0;
    if (std::sscanf(line, "%127s %llu", key, &n) == 2 && name == key) v = n;
  }
  pclose(p);
  return v;
}

TEST(ParseNetstat, ReadsTheCountersNstatReads) {
  // The counters move while the test runs (the host's own keepalive probes):
  // nstat's reading must fall between two of ours.
  auto before = parse_netstat(read_text("/proc/net/netstat"));
  const uint64_t ka = nstat("TcpExtTCPKeepAlive");
  const uint64_t ab = nstat("TcpExtTCPAbortOnTimeout");
  auto after = parse_netstat(read_text("/proc/net/netstat"));
  ASSERT_TRUE(before) << before.error();
  ASSERT_TRUE(after) << after.error();
  ASSERT_NE(ka, ~0ull) << "nstat printed no TcpExtTCPKeepAlive";
  EXPECT_LE(before->keepalive, ka);
  EXPECT_GE(after->keepalive, ka);
  EXPECT_LE(before->abort_on_timeout, ab);
  EXPECT_GE(after->abort_on_timeout, ab);
}

TEST(ParseNetstat, TakesColumnsByName) {
  auto c = parse_netstat(
      "TcpExt: SyncookiesSent TCPAbortOnTimeout TCPKeepAlive\n"
      "TcpExt: 1 22 333\n"
      "IpExt: InNoRoutes\nIpExt: 4\n");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->keepalive, 333u);
  EXPECT_EQ(c->abort_on_timeout, 22u);
}

TEST(ParseNetstat, RefusesWhatItCannotRead) {
  EXPECT_FALSE(parse_netstat(""));
  EXPECT_FALSE(parse_netstat("TcpExt: TCPKeepAlive\nTcpExt: 5\n"));  // no TCPAbortOnTimeout
  auto uneven = parse_netstat("TcpExt: TCPKeepAlive TCPAbortOnTimeout\nTcpExt: 5\n");
  ASSERT_FALSE(uneven);
  EXPECT_THAT(uneven.error(), HasSubstr("differ"));
  EXPECT_FALSE(parse_netstat("TcpExt: TCPKeepAlive TCPAbortOnTimeout\nTcpExt: 5 x\n"));
}

// A /proc-shaped tree: tasks whose net/netstat files hold their namespace's
// counters, one inode per namespace (hard links for tasks sharing one), as
// /proc has one netstat entry per namespace.
class FakeProc {
 public:
  FakeProc() {
    char tmpl[] = "/tmp/tcpka-proc-XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  ~FakeProc() { std::filesystem::remove_all(root_); }
  // Task pid/tid in namespace `ns` (a name of ours), whose counters are these.
  void task(int pid, int tid, const std::string& ns, uint64_t keepalive, uint64_t aborts) {
    namespace fs = std::filesystem;
    const std::string dir = root_ + "/" + std::to_string(pid) + "/task/" + std::to_string(tid);
    fs::create_directories(dir + "/net");
    const std::string inode = root_ + "/ns-" + ns;
    if (!fs::exists(inode)) {
      std::ofstream(inode) << "TcpExt: TCPKeepAlive TCPAbortOnTimeout\nTcpExt: " << keepalive
                           << " " << aborts << "\n";
    }
    fs::create_hard_link(inode, dir + "/net/netstat");
  }
  uint64_t inode(const std::string& ns) const {
    struct stat st {};
    stat((root_ + "/ns-" + ns).c_str(), &st);
    return st.st_ino;
  }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

TEST(ReadNetnsCounts, OneReadingPerNamespaceTasksIncluded) {
  FakeProc proc;
  proc.task(1, 1, "host", 10, 1);
  proc.task(1, 7, "test", 5, 0);   // a thread that entered another namespace
  proc.task(2, 2, "host", 99, 9);  // the same namespace again: read once (the counts are the file's)
  std::filesystem::create_directories(proc.root() + "/self");  // not a pid: ignored
  const NetnsCounts got = read_netns_counts(proc.root());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got.at(proc.inode("host")).keepalive, 10u);
  EXPECT_EQ(got.at(proc.inode("test")).keepalive, 5u);
}

TEST(ReadNetnsCounts, TheRealProcHoldsOurOwnNamespaceOnce) {
  struct stat self {};
  ASSERT_EQ(stat("/proc/thread-self/net/netstat", &self), 0);
  const NetnsCounts got = read_netns_counts();
  ASSERT_TRUE(got.count(self.st_ino)) << "our network namespace was not read";
  const uint64_t ka = nstat("TcpExtTCPKeepAlive");
  EXPECT_LE(got.at(self.st_ino).keepalive, ka);
  // As many readings as distinct namespaces among the tasks (ns links:
  // readable here, as root).
  std::set<uint64_t> namespaces;
  for (const auto& pid : std::filesystem::directory_iterator("/proc")) {
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(pid.path() / "task", ec)) {
      struct stat st {};
      if (stat((task.path() / "ns/net").c_str(), &st) == 0) namespaces.insert(st.st_ino);
    }
  }
  // Tasks come and go between the two walks: within a few.
  EXPECT_NEAR(static_cast<double>(got.size()), static_cast<double>(namespaces.size()), 2);
}

TEST(SelfCheck, FirstFeedIsTheBaseline) {
  SelfCheck c;
  auto w = c.feed({{1, {100, 5}}}, 40, 2);
  EXPECT_EQ(w.kernel_probes, 0u);
  EXPECT_EQ(w.unseen, 0u);
  EXPECT_TRUE(c.started());
  EXPECT_EQ(c.kernel_probes(), 0u);
  EXPECT_EQ(c.agent_probes(), 0u);
}

TEST(SelfCheck, EveryProbeSeenIsNoneUnseen) {
  SelfCheck c;
  c.feed({{1, {100, 5}}, {2, {7, 0}}}, 40, 2);
  auto w = c.feed({{1, {110, 6}}, {2, {9, 0}}}, 52, 3);
  EXPECT_EQ(w.kernel_probes, 12u);
  EXPECT_EQ(w.agent_probes, 12u);
  EXPECT_EQ(w.unseen, 0u);
  EXPECT_EQ(c.kernel_timeouts(), 1u);
  EXPECT_EQ(c.agent_timeouts(), 1u);
  EXPECT_EQ(c.namespaces(), 2u);
}

TEST(SelfCheck, ABlindAgentLeavesProbesUnseen) {
  SelfCheck c;
  c.feed({{1, {100, 5}}}, 40, 0);
  EXPECT_EQ(c.feed({{1, {107, 5}}}, 40, 0).unseen, 7u);
  EXPECT_EQ(c.feed({{1, {110, 5}}}, 41, 0).unseen, 2u);
  EXPECT_EQ(c.unseen_total(), 9u);
  EXPECT_EQ(c.last().unseen, 2u);
}

TEST(SelfCheck, AProbeReadAfterTheKernelCountIsNotUnseenInTheNextWindow) {
  // A probe sent between the kernel's reading and the agent's counts for
  // the agent in window 1 and for the kernel in window 2.
  SelfCheck c;
  c.feed({{1, {0, 0}}}, 0, 0);
  EXPECT_EQ(c.feed({{1, {3, 0}}}, 4, 0).unseen, 0u);
  EXPECT_EQ(c.feed({{1, {6, 0}}}, 6, 0).unseen, 0u);
  EXPECT_EQ(c.unseen_total(), 0u);
}

TEST(SelfCheck, ASurplusHidesNoBlindnessBeyondOneWindow) {
  SelfCheck c;
  c.feed({{1, {0, 0}}}, 0, 0);
  // Probes in namespaces the kernel side cannot read: 50 more than it counted.
  EXPECT_EQ(c.feed({{1, {10, 0}}}, 60, 0).unseen, 0u);
  // Then blind: the first blind window may be covered by the carry...
  EXPECT_EQ(c.feed({{1, {20, 0}}}, 60, 0).unseen, 0u);
  // ...the second is not.
  EXPECT_EQ(c.feed({{1, {30, 0}}}, 60, 0).unseen, 10u);
}

TEST(SelfCheck, ANamespaceFirstSeenOrRenewedIsABaseline) {
  SelfCheck c;
  c.feed({{1, {100, 0}}}, 0, 0);
  // Namespace 2 appears with counts from before it was seen; 1 was
  // replaced by a new namespace with the same inode (its counters went back).
  auto w = c.feed({{1, {4, 0}}, {2, {50, 3}}}, 0, 0);
  EXPECT_EQ(w.kernel_probes, 0u);
  EXPECT_EQ(w.unseen, 0u);
  // From then on both count.
  w = c.feed({{1, {6, 0}}, {2, {51, 3}}}, 3, 0);
  EXPECT_EQ(w.kernel_probes, 3u);
  EXPECT_EQ(w.unseen, 0u);
}

}  // namespace
}  // namespace tcpka
