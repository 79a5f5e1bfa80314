// The socket audit against the kernel's own view: `ss` in the test's network
// namespace, getsockopt() on the test's sockets, and the process that really
// owns each socket.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace tcpka::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A child process named "tka-leaky" that accepts connections and never
// closes them until told to: the classic CLOSE_WAIT leak.
class LeakyServer {
 public:
  LeakyServer() {
    int to_child[2], from_child[2];
    if (pipe(to_child) || pipe(from_child)) throw std::runtime_error("pipe");
    Listener l = listen_on(AF_INET);
    port_ = l.port;
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_NAME, "tka-leaky");
      close(to_child[1]);
      close(from_child[0]);
      std::vector<int> fds;
      char cmd;
      while (read(to_child[0], &cmd, 1) == 1) {
        if (cmd == 'a') {
          fds.push_back(accept(l.fd, nullptr, nullptr));
        } else if (cmd == 'c') {
          for (int fd : fds) close(fd);
          fds.clear();
        }
        (void)!write(from_child[1], "k", 1);
      }
      _exit(0);
    }
    close(to_child[0]);
    close(from_child[1]);
    to_ = to_child[1];
    from_ = from_child[0];
  }
  ~LeakyServer() {
    close(to_);
    close(from_);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  // Connects a client, has the server accept it, closes the client: the
  // server's socket goes to CLOSE_WAIT and stays there.
  void leak_one() {
    const int c = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      throw std::runtime_error("connect");
    command('a');
    close(c);
  }
  void close_all() { command('c'); }
  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }

 private:
  void command(char c) {
    char ack;
    if (write(to_, &c, 1) != 1 || read(from_, &ack, 1) != 1) throw std::runtime_error("server");
  }
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  uint16_t port_ = 0;
};

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "integration tests need root";
    // The agent shares its state map with `tcpka audit` through bpffs.
    bpffs_.emplace();
    netns_ = std::make_unique<TestNetns>();
  }
  void TearDown() override {
    netns_.reset();
    bpffs_.reset();
  }
  std::string audit(const std::string& args) {
    std::string out;
    EXPECT_EQ(sh(agent_binary() + " audit " + args, &out), 0) << args;
    return out;
  }
  // On a kernel without the state tracker (tests/matrix/kernels.list): the
  // agent runs without it, says so, and pins no CLOSE_WAIT records; true
  // then, and the caller's test of the tracker ends there.
  bool expect_no_state_tracker(Agent& agent) {
    if (!kernel_lacks("state_tracker")) return false;
    const std::string m = agent.metrics();
    EXPECT_EQ(metric(m, "tcpka_part_up", {{"part", "state_tracker"}}), 0) << m;
    EXPECT_NE(agent.log().find("part state_tracker is OFF: the kernel lacks it"), std::string::npos)
        << agent.log();
    EXPECT_NE(access("/sys/fs/bpf/tcpka/closewait", F_OK), 0);
    return true;
  }

  std::optional<BpffsMount> bpffs_;
  std::unique_ptr<TestNetns> netns_;
};

TEST_F(AuditTest, CloseWaitLeakFoundWithOwnerAgeAndHistogram) {
  TestCgroup cgroup;
  LeakyServer server;
  for (int i = 0; i < 20; ++i) server.leak_one();
  cgroup.leave();  // the agent and the test's own sockets stay out of it

  // Before any agent: the audit alone finds them, and ss agrees on each.
  const auto rows = json_objects(audit("--json --state close_wait"));
  std::set<std::pair<std::string, std::string>> ours, theirs;
  for (const auto& r : rows) {
    if (json_field(r, "netns") != std::to_string(netns_->inode())) continue;
    SCOPED_TRACE(r);
    EXPECT_EQ(json_field(r, "pid"), std::to_string(server.pid()));
    EXPECT_EQ(json_field(r, "comm"), "tka-leaky");
    EXPECT_EQ(json_field(r, "cgroup"), cgroup.path());
    EXPECT_EQ(json_field(r, "sport"), std::to_string(server.port()));
    EXPECT_EQ(json_field(r, "family"), "4");
    EXPECT_EQ(json_field(r, "state_seconds"), "null") << "no agent saw it enter CLOSE_WAIT";
    ours.insert({*json_field(r, "sport"), *json_field(r, "dport")});
  }
  EXPECT_EQ(ours.size(), 20u);
  std::string ss;
  sh("ss -tnH state close-wait", &ss);
  std::istringstream lines(ss);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream f(line);
    std::string rq, sq, local, peer;
    f >> rq >> sq >> local >> peer;
    theirs.insert({local.substr(local.rfind(':') + 1), peer.substr(peer.rfind(':') + 1)});
  }
  EXPECT_EQ(ours, theirs) << ss;

  Agent agent({"--audit-interval", "1"});
  const std::map<std::string, std::string> cw = {{"state", "close_wait"},
                                                 {"cgroup", cgroup.path()}};
  EXPECT_TRUE(
      eventually([&] { return metric(agent.metrics(), "tcpka_sockets", cw) == 20; }, seconds(5)))
      << agent.metrics();
  // Five more leak while the agent watches: their age is known exactly.
  cgroup.enter();
  for (int i = 0; i < 5; ++i) server.leak_one();
  cgroup.leave();
  const auto watched_at = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(milliseconds(2000));
  int exact = 0, lower_bound = 0;
  for (const auto& r : json_objects(audit("--json --state close_wait"))) {
    if (json_field(r, "cgroup") != cgroup.path()) continue;
    if (json_field(r, "state_seconds") != "null") {
      ++exact;
      EXPECT_GE(std::stod(*json_field(r, "state_seconds")), 1.9) << r;
    } else if (json_field(r, "state_seconds_min") != "null") {
      ++lower_bound;
    }
  }
  // Where the state tracker cannot run (tests/matrix/kernels.list), the
  // scans' first sightings stand in: lower bounds for all 25.
  const bool tracker = !kernel_lacks("state_tracker");
  EXPECT_EQ(metric(agent.metrics(), "tcpka_part_up", {{"part", "state_tracker"}}), tracker ? 1 : 0);
  EXPECT_EQ(exact, tracker ? 5 : 0) << "the CLI reads the agent's CLOSE_WAIT records";
  EXPECT_EQ(lower_bound, tracker ? 20 : 25) << "the agent's scans marked the older ones as first seen";
  EXPECT_GT(metric(agent.metrics(), "tcpka_close_wait_oldest_seconds", {{"cgroup", cgroup.path()}}),
            1.0);

  // The application finally closes them all.
  server.close_all();
  const double held =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - watched_at).count();
  EXPECT_TRUE(
      eventually([&] { return metric(agent.metrics(), "tcpka_sockets", cw) == 0; }, seconds(5)))
      << agent.metrics();
  const std::string m = agent.metrics();
  const std::map<std::string, std::string> cg = {{"cgroup", cgroup.path()}};
  if (!tracker) {
    EXPECT_FALSE(has_series(m, "tcpka_close_wait_duration_seconds_count", cg))
        << "no durations without the state tracker\n" << m;
    return;
  }
  EXPECT_EQ(metric(m, "tcpka_close_wait_duration_seconds_count", cg), 5) << m;
  const double sum = metric(m, "tcpka_close_wait_duration_seconds_sum", cg);
  EXPECT_GT(sum, 5 * 1.9);
  EXPECT_LT(sum, 5 * (held + 0.5));
  EXPECT_EQ(metric(m, "tcpka_close_wait_duration_seconds_bucket",
                   {{"cgroup", cgroup.path()}, {"le", "1"}}),
            0);
  EXPECT_EQ(metric(m, "tcpka_close_wait_duration_seconds_bucket",
                   {{"cgroup", cgroup.path()}, {"le", "5"}}),
            5);
}

// More sockets in CLOSE_WAIT at once than the agent has slots for their entry
// times: those that find their slot taken get per-socket storage instead, and
// their ages and durations are as exact.
TEST_F(AuditTest, CloseWaitBeyondItsSlotsStaysExact) {
  TestCgroup cgroup;
  LeakyServer server;
  cgroup.leave();
  Agent agent({"--audit-interval", "1", "--close-wait-slots", "1"});
  if (expect_no_state_tracker(agent)) return;
  cgroup.enter();
  for (int i = 0; i < 6; ++i) server.leak_one();
  cgroup.leave();
  const auto leaked_at = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(milliseconds(1500));
  int exact = 0;
  for (const auto& r : json_objects(audit("--json --state close_wait"))) {
    if (json_field(r, "cgroup") != cgroup.path()) continue;
    SCOPED_TRACE(r);
    ASSERT_NE(json_field(r, "state_seconds"), "null") << "exact, not a lower bound";
    EXPECT_GE(std::stod(*json_field(r, "state_seconds")), 1.4);
    ++exact;
  }
  EXPECT_EQ(exact, 6) << "one in the slot, five in tka_cw_more";

  server.close_all();
  const double held =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - leaked_at).count();
  const std::map<std::string, std::string> cg = {{"cgroup", cgroup.path()}};
  EXPECT_TRUE(eventually(
      [&] { return metric(agent.metrics(), "tcpka_close_wait_duration_seconds_count", cg) == 6; },
      seconds(5)))
      << agent.metrics();
  const std::string m = agent.metrics();
  const double sum = metric(m, "tcpka_close_wait_duration_seconds_sum", cg);
  EXPECT_GT(sum, 6 * 1.4);
  EXPECT_LT(sum, 6 * (held + 0.5));
  EXPECT_EQ(metric(m, "tcpka_events_dropped_total", {{"reason", "state_storage"}}), 0);
}

// The cookie held by the only slot of an agent run with --close-wait-slots 1,
// read from its pin with bpftool (0: free).
uint64_t only_slot_cookie() {
  std::string out;
  if (sh("bpftool -j map dump pinned /sys/fs/bpf/tcpka/closewait", &out) != 0) return ~0ull;
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("\"cookie\":([0-9]+)"))) return ~0ull;
  return std::stoull(m[1]);
}

// A slot held by a socket that left CLOSE_WAIT while no agent ran (the pins
// outlive a crash) is taken over by the next socket that needs it: it is not
// held for good.
TEST_F(AuditTest, CloseWaitSlotLeftWhileNoAgentRanIsTakenOver) {
  struct PinsGone {  // a crashed agent leaves its pins: not for the next test
    ~PinsGone() {
      unlink("/sys/fs/bpf/tcpka/closewait");
      unlink("/sys/fs/bpf/tcpka/closewait_more");
      unlink("/sys/fs/bpf/tcpka/sockstate");
      rmdir("/sys/fs/bpf/tcpka");
    }
  } pins_gone;
  const std::vector<std::string> args = {"--audit-interval", "1", "--close-wait-slots", "1"};
  TestCgroup cgroup;
  LeakyServer server;
  cgroup.leave();
  auto agent = std::make_unique<Agent>(args);
  if (expect_no_state_tracker(*agent)) return;
  cgroup.enter();
  server.leak_one();
  cgroup.leave();
  const uint64_t first = only_slot_cookie();
  ASSERT_NE(first, 0u) << "the slot holds the first socket";
  agent->kill9();
  agent.reset();
  server.close_all();  // it leaves CLOSE_WAIT with no agent to see it
  ASSERT_EQ(only_slot_cookie(), first) << "the pinned slot still holds it";

  agent = std::make_unique<Agent>(args);
  cgroup.enter();
  server.leak_one();
  cgroup.leave();
  std::vector<std::string> cookies;
  for (const auto& r : json_objects(audit("--json --state close_wait"))) {
    if (json_field(r, "cgroup") != cgroup.path()) continue;
    EXPECT_NE(json_field(r, "state_seconds"), "null") << r;
    cookies.push_back(*json_field(r, "cookie"));
  }
  ASSERT_EQ(cookies.size(), 1u);
  EXPECT_EQ(only_slot_cookie(), std::stoull(cookies[0])) << "taken over from " << first;
  EXPECT_EQ(agent->stop(), 0);
}

TEST_F(AuditTest, KeepaliveFlagAndEffectiveValuesAgreeWithGetsockoptAndSs) {
  // This namespace's default differs from the host's 7200.
  ASSERT_EQ(sh("sysctl -qw net.ipv4.tcp_keepalive_time=1234"), 0);
  Listener l = listen_on(AF_INET);
  Conn own = connect_pair(l), sysctl_only = connect_pair(l), off = connect_pair(l);
  set_keepalive(own.client, 77, 11, 4);
  const int one = 1;
  ASSERT_EQ(setsockopt(sysctl_only.client, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)), 0);

  std::map<int, std::string> by_port;
  for (const auto& r : json_objects(audit("--json --state established"))) {
    if (json_field(r, "netns") == std::to_string(netns_->inode()) &&
        json_field(r, "dport") == std::to_string(l.port)) {
      by_port[std::stoi(*json_field(r, "sport"))] = r;
    }
  }
  std::string ss;
  sh("ss -tnoH state established", &ss);
  for (const Conn* c : {&own, &sysctl_only, &off}) {
    ASSERT_TRUE(by_port.count(c->client_port)) << c->client_port;
    const std::string& r = by_port[c->client_port];
    SCOPED_TRACE(r);
    const KeepaliveOpts k = get_keepalive(c->client);  // the kernel's effective values
    EXPECT_EQ(json_field(r, "keepalive"), k.on ? "true" : "false");
    EXPECT_EQ(json_field(r, "keepalive_idle"), std::to_string(k.idle));
    EXPECT_EQ(json_field(r, "keepalive_intvl"), std::to_string(k.intvl));
    EXPECT_EQ(json_field(r, "keepalive_cnt"), std::to_string(k.cnt));
    // ss shows a keepalive timer exactly on the sockets with keepalive on.
    const std::string local = "127.0.0.1:" + std::to_string(c->client_port);
    std::string line;
    std::istringstream ss_lines(ss);
    for (std::string l; std::getline(ss_lines, l);) {
      std::istringstream tokens(l);
      // The first address on a line is the local one.
      for (std::string t; tokens >> t;) {
        if (t.find(':') == std::string::npos) continue;
        if (t == local) line = l;
        break;
      }
    }
    ASSERT_FALSE(line.empty()) << ss;
    EXPECT_EQ(line.find("timer:(keepalive") != std::string::npos, k.on == 1) << line;
  }
  EXPECT_EQ(json_field(by_port[sysctl_only.client_port], "keepalive_idle"), "1234");
  EXPECT_EQ(json_field(by_port[own.client_port], "keepalive_idle"), "77");
  EXPECT_EQ(json_field(by_port[off.client_port], "keepalive"), "false");
}

TEST_F(AuditTest, IdleSocketsWithoutKeepaliveCountedPastTheThreshold) {
  // The agent first: its start-up time must not count towards the idle time.
  Agent agent({"--audit-interval", "1", "--idle-threshold", "3"});
  TestCgroup cgroup;
  Listener l = listen_on(AF_INET);
  Conn bare = connect_pair(l), guarded = connect_pair(l);
  set_keepalive(guarded.client, 600, 60, 5);
  set_keepalive(guarded.server, 600, 60, 5);
  cgroup.leave();
  const std::map<std::string, std::string> cg = {{"cgroup", cgroup.path()}};
  const char* kIdle = "tcpka_idle_sockets_without_keepalive";
  EXPECT_TRUE(eventually(
      [&] {
        return metric(agent.metrics(), "tcpka_sockets",
                      {{"cgroup", cgroup.path()}, {"state", "established"}}) == 4;
      },
      seconds(3)));
  EXPECT_EQ(metric(agent.metrics(), kIdle, cg), 0) << "not idle long enough yet";
  // Both ends of the bare connection, never the guarded one.
  EXPECT_TRUE(eventually([&] { return metric(agent.metrics(), kIdle, cg) == 2; }, seconds(6)))
      << agent.metrics();
  // Data wakes the receiving end up; the sender still received nothing.
  ASSERT_EQ(send(bare.client, "x", 1, 0), 1);
  EXPECT_TRUE(eventually([&] { return metric(agent.metrics(), kIdle, cg) == 1; }, seconds(3)));
  EXPECT_EQ(metric(agent.metrics(), "tcpka_sockets",
                   {{"cgroup", cgroup.path()}, {"state", "established"}}),
            4);
}

TEST_F(AuditTest, RawTcpSocketsAreNotTcpConnections) {
  const int raw = socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
  ASSERT_GE(raw, 0) << strerror(errno);
  Listener l = listen_on(AF_INET);
  int in_netns = 0;
  for (const auto& r : json_objects(audit("--json"))) {
    in_netns += json_field(r, "netns") == std::to_string(netns_->inode());
  }
  EXPECT_EQ(in_netns, 1) << "only the listener: a raw socket has no TCP state to read";
  close(raw);
}

TEST_F(AuditTest, FiltersOnTheCommandLineAndOverHttp) {
  TestCgroup cgroup;
  LeakyServer server;
  for (int i = 0; i < 3; ++i) server.leak_one();
  Listener l = listen_on(AF_INET);
  Conn ka = connect_pair(l);
  set_keepalive(ka.client, 600, 60, 5);
  cgroup.leave();
  Agent agent({});
  auto count_in_cgroup = [&](const std::string& json) {
    int n = 0;
    for (const auto& r : json_objects(json)) n += json_field(r, "cgroup") == cgroup.path();
    return n;
  };
  EXPECT_EQ(count_in_cgroup(audit("--json --state close_wait")), 3);
  EXPECT_EQ(count_in_cgroup(audit("--json --no-keepalive --state established")), 1);
  EXPECT_EQ(count_in_cgroup(audit("--json --idle-over 3600")), 0);
  EXPECT_EQ(count_in_cgroup(audit("--json --min-age 3600")), 0);
  int status = 0;
  EXPECT_EQ(count_in_cgroup(agent.get("/sockets?state=close_wait", &status)), 3);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(count_in_cgroup(agent.get("/sockets?state=established&no_keepalive=1", &status)), 1);
  const std::string all = agent.get("/sockets", &status);
  for (const auto& r : json_objects(all)) {
    if (json_field(r, "cgroup") != cgroup.path()) continue;
    EXPECT_EQ(json_field(r, "probes_sent"), "0") << "the agent knows it saw no probe";
  }
  agent.get("/sockets?state=bogus", &status);
  EXPECT_EQ(status, 400);
  agent.get("/sockets?min-age=-1", &status);
  EXPECT_EQ(status, 400);
  std::string err;
  EXPECT_EQ(sh(agent_binary() + " audit --min-age -5 2>&1", &err), 2) << err;
  EXPECT_EQ(sh(agent_binary() + " audit --state nonsense 2>&1", &err), 2) << err;
  EXPECT_NE(err.find("nonsense"), std::string::npos);
}

}  // namespace
}  // namespace tcpka::test
