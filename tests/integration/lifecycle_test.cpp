// The agent's lifecycle and its limits, against the kernel:
//  - SIGTERM: exit 0 within 5 s, nothing of ours left (programs, links, pins);
//  - ten SIGKILLs and restarts: never two copies of anything;
//  - SIGHUP: the whole config file applied live, counters untouched, a bad
//    file refused whole (and said so in /metrics);
//  - tiny ring buffers and socket table under a burst: every loss counted,
//    /metrics and /healthz answering throughout, exact counts afterwards;
//  - a restart: counters from zero with a new process_start_time_seconds,
//    CLOSE_WAIT ages exact and continuing through the pinned state map.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "harness.h"
#include "probe_witness.h"
#include "temp_file.h"

namespace tcpka::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Labels = std::map<std::string, std::string>;

constexpr const char* kPinDir = "/sys/fs/bpf/tcpka";
constexpr const char* kStatePin = "/sys/fs/bpf/tcpka/sockstate";
constexpr const char* kCloseWaitPin = "/sys/fs/bpf/tcpka/closewait";
constexpr const char* kCloseWaitMorePin = "/sys/fs/bpf/tcpka/closewait_more";
constexpr const char* kProbes = "tcpka_keepalive_probes_sent_total";
constexpr const char* kKills = "tcpka_keepalive_kills_total";
constexpr const char* kDropped = "tcpka_events_dropped_total";

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::string list_dir(const std::string& path) {
  std::string out;
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d)) {
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") {
        out += std::string(e->d_name) + " ";
      }
    }
    closedir(d);
  }
  return out;
}

// The id of the map pinned at path, 0 when there is none.
uint32_t pinned_map_id(const char* path) {
  const int fd = bpf_obj_get(path);
  if (fd < 0) return 0;
  bpf_map_info info{};
  __u32 len = sizeof(info);
  const uint32_t id = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
  close(fd);
  return id;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A config file the test rewrites between SIGHUPs.
struct ConfigFile : testing_common::TempFile {
  ConfigFile() : TempFile("/tmp/tcpka-life-") {}
};

// A socket whose peer closed: ours sits in CLOSE_WAIT until we close it.
struct CloseWait {
  int fd = -1;
  uint16_t port = 0;  // our local port
};
CloseWait leak_close_wait(const Listener& l) {
  Conn c = connect_pair(l);
  CloseWait cw{c.server, l.port};
  c.server = -1;
  close(c.client);  // FIN to the server side
  c.client = -1;
  return cw;
}

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "integration tests need root";
    // Pins live in bpffs; the test mounts it where the host has not.
    bpffs_.emplace();
    ASSERT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)))
        << "programs of an earlier run are still loaded";
    ASSERT_FALSE(exists(kStatePin)) << "a state pin of an earlier run is left: " << kStatePin;
    ASSERT_FALSE(exists(kCloseWaitPin)) << "a pin of an earlier run is left: " << kCloseWaitPin;
    netns_ = std::make_unique<TestNetns>();
    cgroup_ = std::make_unique<TestCgroup>(false);
  }
  void TearDown() override {
    agent_.reset();
    // A --state-persist test leaves its pins for the next agent: not for the next test.
    unlink(kStatePin);
    unlink(kCloseWaitPin);
    unlink(kCloseWaitMorePin);
    rmdir(kPinDir);
    cgroup_.reset();
    witness_.reset();
    netns_.reset();
    awake_.reset();
    bpffs_.reset();
  }
  std::vector<std::string> policy_args() {
    return {"--keepalive-cgroup", cgroup_->abs(),
            "--keepalive-idle",   "1",
            "--keepalive-intvl",  "1",
            "--keepalive-cnt",    "4"};
  }
  // A metric of the test's cgroup; the scrape itself must have worked.
  double value(const char* name, Labels l = {}) {
    const std::string body = agent_->metrics();
    EXPECT_NE(body.find("\ntcpka_build_info{"), std::string::npos) << "scrape failed";
    l["cgroup"] = cgroup_->path();
    return metric(body, name, l);
  }
  double agent_metric(const char* name, const Labels& l = {}) {
    const std::string body = agent_->metrics();
    EXPECT_NE(body.find("\ntcpka_build_info{"), std::string::npos) << "scrape failed";
    return metric(body, name, l);
  }

  // For the tests that compare probe counts exactly: CPUs kept out of idle,
  // and the probes of the test's namespace sent by the keepalive-timer
  // callbacks BPF is shown (ProbeWitness), the oracle the agent must equal
  // exactly: TcpExtTCPKeepAlive also counts the probes of callbacks no BPF
  // program ran for (a kernel gap, see CpusAwake).
  void watch_probes() {
    awake_.emplace();
    witness_.emplace(netns_->inode());
  }
  // The probes the witness saw since `shown_before`, checked against the
  // kernel's rise since `kernel_before`; a gap is printed, not failed.
  uint64_t shown_probes(uint64_t shown_before, uint64_t kernel_before) {
    const uint64_t shown = witness_->probes() - shown_before;
    const uint64_t kernel = tcpext("TCPKeepAlive") - kernel_before;
    expect_shown_within_kernel(shown, kernel);
    return shown;
  }

  std::optional<BpffsMount> bpffs_;
  // Held by the tests that compare probe counts exactly (see CpusAwake and
  // watch_probes()).
  std::optional<CpusAwake> awake_;
  std::unique_ptr<TestNetns> netns_;
  std::optional<ProbeWitness> witness_;
  std::unique_ptr<TestCgroup> cgroup_;
  std::unique_ptr<Agent> agent_;
};

// --- Item 4: lifecycle -------------------------------------------------------

TEST_F(LifecycleTest, SigtermExitsZeroWithinFiveSecondsLeavingNoProgramLinkOrPin) {
  agent_ = std::make_unique<Agent>(policy_args());
  // Busy while it stops: a socket of the policy's cgroup probing every second.
  cgroup_->enter();
  Listener l = listen_on(AF_INET);
  Conn c = connect_pair(l);
  cgroup_->leave();
  ASSERT_TRUE(eventually([&] { return value(kProbes) >= 1; }, kProbeCounted)) << agent_->metrics();
  EXPECT_GT(count_our_programs(), 0);
  EXPECT_EQ(sockops_programs(cgroup_->abs()), 1);
  EXPECT_TRUE(exists(kStatePin)) << "the running agent shares its state map with `tcpka audit`";
  // And the state tracker its CLOSE_WAIT records, where it runs
  // (tests/matrix/kernels.list).
  EXPECT_EQ(exists(kCloseWaitPin), !kernel_lacks("state_tracker"));
  EXPECT_EQ(exists(kCloseWaitMorePin), !kernel_lacks("state_tracker"));

  const auto t0 = std::chrono::steady_clock::now();
  const int rc = agent_->stop();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(rc, 0) << agent_->log();
  EXPECT_LT(took, 5.0) << "SIGTERM to exit";
  // Links hold their programs, so no program of ours means no link either.
  EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)))
      << count_our_programs() << " tka_ programs left";
  EXPECT_EQ(sockops_programs(cgroup_->abs()), 0);
  EXPECT_FALSE(exists(kStatePin));
  EXPECT_FALSE(exists(kPinDir)) << "left in " << kPinDir << ": " << list_dir(kPinDir);
  // The policy went with the agent: a new connection gets no keepalive.
  cgroup_->enter();
  Conn after = connect_pair(l);
  cgroup_->leave();
  EXPECT_EQ(get_keepalive(after.client).on, 0);
}

TEST_F(LifecycleTest, TenSigkillsAndRestartsNeverStackOrOrphanPrograms) {
  agent_ = std::make_unique<Agent>(policy_args());
  const int programs = count_our_programs();
  ASSERT_GT(programs, 0);
  const uint32_t state_map = pinned_map_id(kStatePin);
  ASSERT_NE(state_map, 0u);
  const uint32_t slots_map = pinned_map_id(kCloseWaitPin);
  ASSERT_EQ(slots_map != 0u, !kernel_lacks("state_tracker"));
  for (int i = 0; i < 10; ++i) {
    SCOPED_TRACE("restart " + std::to_string(i + 1));
    agent_->kill9();
    agent_.reset();
    // A crash takes every link with it; only the state maps' pins stay.
    EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)))
        << count_our_programs() << " tka_ programs orphaned";
    EXPECT_EQ(sockops_programs(cgroup_->abs()), 0);
    EXPECT_EQ(pinned_map_id(kStatePin), state_map);
    EXPECT_EQ(pinned_map_id(kCloseWaitPin), slots_map);

    agent_ = std::make_unique<Agent>(policy_args());
    EXPECT_EQ(count_our_programs(), programs) << "one copy of each program";
    EXPECT_EQ(sockops_programs(cgroup_->abs()), 1);
    EXPECT_EQ(pinned_map_id(kStatePin), state_map) << "the crashed agent's state map is reused";
    EXPECT_EQ(pinned_map_id(kCloseWaitPin), slots_map) << "and its CLOSE_WAIT slots";
    int status = 0;
    agent_->get("/healthz", &status);
    EXPECT_EQ(status, 200);
    cgroup_->enter();
    Listener l = listen_on(AF_INET);
    Conn c = connect_pair(l);
    cgroup_->leave();
    EXPECT_EQ(get_keepalive(c.client).idle, 1) << "the policy works after the restart";
  }
  EXPECT_EQ(agent_->stop(), 0);
  EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)));
  EXPECT_EQ(sockops_programs(cgroup_->abs()), 0);
  EXPECT_FALSE(exists(kStatePin));
  EXPECT_FALSE(exists(kCloseWaitPin));
  EXPECT_FALSE(exists(kCloseWaitMorePin));
}

TEST_F(LifecycleTest, SighupAppliesTheFileKeepsCountersAndRefusesABadFileWhole) {
  watch_probes();
  ConfigFile file;
  auto config = [&](int idle_threshold, int max_series, int max_sockets) {
    return "[run]\naudit-interval = 1\nidle-threshold = " + std::to_string(idle_threshold) +
           "\nmax-series = " + std::to_string(max_series) +
           "\nmax-sockets = " + std::to_string(max_sockets) +
           "\nkeepalive-policy = [\"cgroup=" + cgroup_->abs() + ",idle=1,intvl=1,cnt=2\"]\n";
  };
  file.write(config(300, 10000, 1024));
  agent_ = std::make_unique<Agent>(std::vector<std::string>{"--config", file.path()});
  const double start_reload = agent_metric("tcpka_config_last_reload_success_timestamp_seconds");
  EXPECT_GT(start_reload, unix_now() - 60) << "the start counts as the first load";
  EXPECT_EQ(agent_metric("tcpka_config_last_reload_successful"), 1);

  // In the policy's cgroup: a live peer probed every second, a dead peer
  // killed after two probes, and an idle socket without keepalive.
  cgroup_->enter();
  Listener alive = listen_on(AF_INET), dead = listen_on(AF_INET), idle = listen_on(AF_INET);
  Conn probing = connect_pair(alive);
  Conn doomed = connect_pair(dead);
  Conn quiet = connect_pair(idle, [](int fd) {
    const int zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &zero, sizeof(zero));
  });
  cgroup_->leave();
  set_keepalive_off(quiet.client);
  set_keepalive_off(quiet.server);
  Nft nft;
  nft.drop_sport(dead.port);
  const uint64_t kernel_kills_before = tcpext("TCPAbortOnTimeout");
  EXPECT_EQ(wait_error(doomed.client, seconds(10)), ETIMEDOUT);
  // Both ends die: the server's probes leave from the dropped port too.
  ASSERT_TRUE(eventually([&] { return tcpext("TCPAbortOnTimeout") - kernel_kills_before >= 2; },
                         seconds(10)));
  // The kills the agent must count: those of the callbacks BPF was shown,
  // by the kernel's own counter (ProbeWitness; on this host a callback
  // sometimes reaches no BPF program, see watch_probes()). The witness is
  // read inside the wait: its exit hook may run just after the kernel's.
  double killed = 0;
  ASSERT_TRUE(eventually(
      [&] {
        killed = static_cast<double>(witness_->timeout_kills());
        return value(kKills) == killed;
      },
      seconds(5)))
      << "witness: " << witness_->timeout_kills() << " of the kernel's "
      << tcpext("TCPAbortOnTimeout") - kernel_kills_before << "\n"
      << agent_->metrics();
  expect_shown_within_kernel(witness_->timeout_kills(),
                             tcpext("TCPAbortOnTimeout") - kernel_kills_before, "timeout kills");
  const double probes_before = value(kProbes);
  ASSERT_GE(probes_before, 2);
  EXPECT_EQ(value("tcpka_idle_sockets_without_keepalive"), 0);

  // A good reload: live keys change, a start-only key is reported, counters stay.
  file.write(config(1, 1, 2048));
  ASSERT_EQ(kill(agent_->pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually(
      [&] {
        return agent_->log().find("configuration and keepalive policies reloaded") !=
               std::string::npos;
      },
      seconds(5)))
      << agent_->log();
  EXPECT_NE(agent_->log().find("'max-sockets' changed but needs a restart"), std::string::npos)
      << agent_->log();
  EXPECT_EQ(agent_metric("tcpka_config_last_reload_successful"), 1);
  const double good_reload = agent_metric("tcpka_config_last_reload_success_timestamp_seconds");
  EXPECT_GT(good_reload, start_reload);
  EXPECT_EQ(value(kKills), killed) << "SIGHUP does not reset counters";
  EXPECT_GE(value(kProbes), probes_before);
  EXPECT_TRUE(eventually([&] { return value(kProbes) >= probes_before + 2; }, kProbeCounted))
      << "and they keep counting";
  // idle-threshold 300 -> 1: both ends of the quiet pair are now half-open suspects.
  EXPECT_TRUE(
      eventually([&] { return value("tcpka_idle_sockets_without_keepalive") == 2; }, seconds(5)))
      << agent_->metrics();
  // max-series 1: a new port's probes fold into port="other".
  cgroup_->enter();
  Listener third = listen_on(AF_INET);
  Conn folded = connect_pair(third);
  cgroup_->leave();
  EXPECT_TRUE(eventually(
      [&] {
        return value(kProbes, {{"port", "other"}}) >= 1;
      },
      kProbeCounted))
      << agent_->metrics();
  EXPECT_EQ(value(kProbes, {{"port", std::to_string(third.port)}}), 0);

  // Bad files: nothing of them applies, the metric says so, counting goes on.
  for (const std::string& bad : {std::string("[run]\nidle-threshold = [\n"),
                                 config(300, 10000, 1024) + "audit-interval = 0\n",
                                 std::string("[run]\nno-such-key = 1\n")}) {
    SCOPED_TRACE(bad);
    file.write(bad);
    const size_t log_at = agent_->log().size();
    ASSERT_EQ(kill(agent_->pid(), SIGHUP), 0);
    ASSERT_TRUE(eventually(
        [&] {
          return agent_->log().find("reload failed, kept the previous configuration", log_at) !=
                 std::string::npos;
        },
        seconds(5)))
        << agent_->log();
    EXPECT_EQ(agent_metric("tcpka_config_last_reload_successful"), 0);
    EXPECT_EQ(agent_metric("tcpka_config_last_reload_success_timestamp_seconds"), good_reload);
  }
  // Still the reloaded configuration: threshold 1, after two more scans.
  std::this_thread::sleep_for(milliseconds(2200));
  EXPECT_EQ(value("tcpka_idle_sockets_without_keepalive"), 2);
  EXPECT_EQ(value(kKills), killed);
  cgroup_->enter();
  Conn still = connect_pair(alive);
  cgroup_->leave();
  EXPECT_EQ(get_keepalive(still.client).cnt, 2) << "the policy as reloaded, not as the bad file";

  // Every probe sent in this namespace was counted, across the reloads (all
  // that BPF was shown: see watch_probes()).
  for (const Conn* c : {&probing, &folded, &still}) set_keepalive_off(c->client);
  for (const Conn* c : {&probing, &folded, &still}) set_keepalive_off(c->server);
  const uint64_t shown = shown_probes(0, 0);
  eventually([&] { return value(kProbes) == static_cast<double>(shown); }, kProbeCounted);
  EXPECT_EQ(value(kProbes), static_cast<double>(shown))
      << "the probes BPF was shown disagree; every series and drop counter:\n"
      << agent_->metrics();

  // A fixed file is applied again.
  file.write(config(300, 10000, 1024));
  ASSERT_EQ(kill(agent_->pid(), SIGHUP), 0);
  EXPECT_TRUE(eventually([&] { return agent_metric("tcpka_config_last_reload_successful") == 1; },
                         seconds(5)));
  EXPECT_GT(agent_metric("tcpka_config_last_reload_success_timestamp_seconds"), good_reload);
  EXPECT_EQ(agent_->stop(), 0);
}

// --- Item 5: maps and buffers full --------------------------------------------

TEST_F(LifecycleTest, TinyRingsAndSocketTableCountEveryLossKeepServingAndRecover) {
  watch_probes();
  constexpr int kSockets = 1500;
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  ASSERT_GE(nofile.rlim_max, static_cast<rlim_t>(2 * kSockets + 200));
  const rlimit saved = nofile;
  nofile.rlim_cur = nofile.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &nofile), 0);

  agent_ = std::make_unique<Agent>(
      std::vector<std::string>{"--ringbuf-bytes", "4096", "--max-sockets", "16",
                               "--close-wait-ringbuf-bytes", "4096", "--audit-interval", "1"});

  // Scrapes all along the burst: each must answer, and promptly.
  std::atomic<bool> done{false}, paused{false};
  std::atomic<int> scrapes{0}, failures{0};
  std::atomic<long> slowest_ms{0};
  std::thread scraper([&] {
    while (!done) {
      if (paused) {
        std::this_thread::sleep_for(milliseconds(10));
        continue;
      }
      for (const char* path : {"/metrics", "/healthz"}) {
        const auto t0 = std::chrono::steady_clock::now();
        int status = 0;
        agent_->get(path, &status);
        const long ms =
            std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
        slowest_ms = std::max(slowest_ms.load(), ms);
        ++scrapes;
        if (status != 200) ++failures;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
  });

  // The burst: kSockets connections whose keepalive is armed in one go, so
  // their timers expire together, every second, in the same timer batches.
  cgroup_->enter();
  Listener l = listen_on(AF_INET, 4096);
  std::vector<Conn> conns;
  conns.reserve(kSockets);
  for (int i = 0; i < kSockets; ++i) conns.push_back(connect_pair(l));
  cgroup_->leave();
  // The peers' answers never arrive: from its second probe on each socket
  // has one unanswered for a whole interval, and the kernel must remember
  // it (for its recovery) in a map of 16.
  auto nft = std::make_unique<Nft>();
  nft->drop_sport(l.port);
  const uint64_t kernel_before = tcpext("TCPKeepAlive");
  const uint64_t shown_before = witness_->probes();
  for (auto& c : conns) set_keepalive(c.client, 1, 1, 5);
  std::this_thread::sleep_for(milliseconds(3500));
  for (auto& c : conns) set_keepalive_off(c.client);
  nft.reset();
  const uint64_t burst_probes = shown_probes(shown_before, kernel_before);
  ASSERT_GE(burst_probes, 2u * kSockets);

  // Every probe is counted or a counted loss, once the ring is drained (a
  // loss may also be another process's event on the host: never fewer).
  // Counted by the listener's port: with the table full, a probe can have
  // no cgroup (cgroup="unknown": it came before the agent had the kernel
  // attribute probes again, Aggregator::on_full).
  std::string m;
  double counted = 0, ring_drops = 0;
  EXPECT_TRUE(eventually(
      [&] {
        m = agent_->metrics();
        counted = metric(m, kProbes, {{"port", std::to_string(l.port)}});
        ring_drops = metric(m, kDropped, {{"reason", "ringbuf_full"}});
        return counted + ring_drops >= static_cast<double>(burst_probes);
      },
      kProbeCounted))
      << m;
  std::fprintf(stderr, "burst: %llu probes sent, %.0f counted, %.0f lost to the ring\n",
               static_cast<unsigned long long>(burst_probes), counted, ring_drops);
  EXPECT_GT(ring_drops, 0) << "the 4 KiB ring must overflow in this burst";
  EXPECT_LT(counted, static_cast<double>(burst_probes));
  // Most in the cgroup all the same: the kernel attributes them while the
  // table is full.
  EXPECT_GT(metric(m, kProbes, {{"cgroup", cgroup_->path()}}), counted / 2) << m;
  EXPECT_GE(metric(m, kDropped, {{"reason", "socket_map_full"}}), kSockets - 16.0) << m;
  EXPECT_LE(metric(m, "tcpka_tracked_sockets"), 16) << m;
  EXPECT_GT(metric(m, "tcpka_untracked_sockets_total"), 0) << m;

  // The CLOSE_WAIT ring: kSockets sockets seen entering CLOSE_WAIT, closed
  // while the agent is stopped (SIGSTOP), so no reader drains the 4 KiB ring
  // however it is woken. Each duration is observed or counted lost.
  for (auto& c : conns) {
    close(c.client);
    c.client = -1;
  }
  EXPECT_TRUE(eventually(
      [&] {
        return metric(agent_->metrics(), "tcpka_sockets",
                      {{"state", "close_wait"}, {"cgroup", cgroup_->path()}}) == kSockets;
      },
      seconds(5)));
  const double cw_lost_before = agent_metric(kDropped, {{"reason", "close_wait_ringbuf_full"}});
  paused = true;
  std::this_thread::sleep_for(milliseconds(100));  // no scrape in flight
  ASSERT_EQ(kill(agent_->pid(), SIGSTOP), 0);
  for (auto& c : conns) {
    close(c.server);  // CLOSE_WAIT -> LAST_ACK: the duration is submitted in close()
    c.server = -1;
  }
  conns.clear();
  ASSERT_EQ(kill(agent_->pid(), SIGCONT), 0);
  paused = false;
  EXPECT_TRUE(eventually(
      [&] {
        m = agent_->metrics();
        return metric(m, "tcpka_close_wait_duration_seconds_count", {{"cgroup", cgroup_->path()}}) +
                   metric(m, kDropped, {{"reason", "close_wait_ringbuf_full"}}) - cw_lost_before >=
               kSockets;
      },
      seconds(5)))
      << m;
  std::fprintf(stderr, "close: %d CLOSE_WAIT durations, %.0f observed, %.0f lost to the ring\n",
               kSockets,
               metric(m, "tcpka_close_wait_duration_seconds_count", {{"cgroup", cgroup_->path()}}),
               metric(m, kDropped, {{"reason", "close_wait_ringbuf_full"}}) - cw_lost_before);
  EXPECT_GT(metric(m, kDropped, {{"reason", "close_wait_ringbuf_full"}}), cw_lost_before) << m;
  EXPECT_LT(metric(m, "tcpka_close_wait_duration_seconds_count", {{"cgroup", cgroup_->path()}}),
            kSockets);

  done = true;
  scraper.join();
  EXPECT_EQ(failures.load(), 0) << "of " << scrapes.load() << " scrapes during the burst";
  EXPECT_GT(scrapes.load(), 20);
  EXPECT_LT(slowest_ms.load(), 2000) << "the slowest scrape during the burst";

  // Recovery: the table emptied (by the gone events of the sockets the
  // kernel remembered, and the audit scan for the others: their keepalive
  // was off when they ended, so no gone event came), and a socket made after
  // the burst counted exactly against its own namespace's kernel counter.
  EXPECT_TRUE(eventually([&] { return agent_metric("tcpka_tracked_sockets") == 0; }, seconds(5)))
      << agent_->metrics();
  const double ring_drops_after = agent_metric(kDropped, {{"reason", "ringbuf_full"}});
  const double map_drops_after = agent_metric(kDropped, {{"reason", "socket_map_full"}});
  {
    const uint64_t k0 = tcpext("TCPKeepAlive");  // the burst's sockets are all closed
    const uint64_t w0 = witness_->probes();
    cgroup_->enter();
    Listener l2 = listen_on(AF_INET);
    Conn c = connect_pair(l2);
    cgroup_->leave();
    set_keepalive(c.client, 1, 1, 5);
    std::this_thread::sleep_for(milliseconds(3500));
    set_keepalive_off(c.client);
    const double shown = static_cast<double>(shown_probes(w0, k0));
    ASSERT_GE(shown, 2);
    const Labels port = {{"port", std::to_string(l2.port)}, {"direction", "outbound"}};
    eventually([&] { return value(kProbes, port) == shown; }, kProbeCounted);
    EXPECT_EQ(value(kProbes, port), shown) << "the probes BPF was shown disagree";
    EXPECT_EQ(agent_metric("tcpka_tracked_sockets"), 1) << "tracked again after the burst";
  }
  EXPECT_EQ(agent_metric(kDropped, {{"reason", "socket_map_full"}}), map_drops_after);
  EXPECT_EQ(agent_metric(kDropped, {{"reason", "ringbuf_full"}}), ring_drops_after);
  EXPECT_EQ(agent_metric(kDropped, {{"reason", "decode_error"}}), 0);
  int status = 0;
  agent_->get("/healthz", &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(agent_->stop(), 0);
  setrlimit(RLIMIT_NOFILE, &saved);
}

// --- Item 9: what survives a restart -------------------------------------------

enum class Restart { kSigkill, kSigtermPersist, kSigterm };

class RestartTest : public LifecycleTest, public ::testing::WithParamInterface<Restart> {};

TEST_P(RestartTest, CountersRestartFromZeroAndCloseWaitAgesContinue) {
  const Restart how = GetParam();
  watch_probes();
  std::vector<std::string> args = {"--audit-interval", "1"};
  if (how == Restart::kSigtermPersist) args.push_back("--state-persist");
  agent_ = std::make_unique<Agent>(args);
  const double start1 = agent_metric("process_start_time_seconds");
  EXPECT_NEAR(start1, unix_now(), 20);

  cgroup_->enter();
  Listener alive = listen_on(AF_INET), leaky = listen_on(AF_INET);
  Conn probing = connect_pair(alive);
  std::vector<CloseWait> cws;
  for (int i = 0; i < 3; ++i) cws.push_back(leak_close_wait(leaky));
  cgroup_->leave();
  const auto leaked_at = std::chrono::steady_clock::now();
  auto age = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - leaked_at).count();
  };
  set_keepalive(probing.client, 1, 1, 9);
  const Labels series = {{"port", std::to_string(alive.port)}, {"direction", "outbound"}};
  ASSERT_TRUE(eventually([&] { return value(kProbes, series) >= 2; }, kProbeCounted));
  set_keepalive_off(probing.client);
  const double probes1 = value(kProbes, series);

  if (how == Restart::kSigkill) {
    agent_->kill9();
  } else {
    EXPECT_EQ(agent_->stop(), 0);
  }
  agent_.reset();
  EXPECT_EQ(exists(kStatePin), how != Restart::kSigterm)
      << "the state map stays pinned after a crash or with --state-persist";
  std::this_thread::sleep_for(milliseconds(2000));  // the agent is down for 2 s
  const double down_for = 2.0;

  agent_ = std::make_unique<Agent>(args);
  const double start2 = agent_metric("process_start_time_seconds");
  EXPECT_GE(start2, start1 + down_for - 1.0) << "btime has one-second resolution";
  EXPECT_EQ(value(kProbes, series), 0) << "counters start from zero with the new process";

  // The new process counts exactly what the kernel sends from now on (all
  // that BPF is shown: see watch_probes()).
  // Probes at 1 s and 2 s; switched off half-way to the next, as KeepaliveTest does.
  const uint64_t k0 = tcpext("TCPKeepAlive");
  const uint64_t w0 = witness_->probes();
  set_keepalive(probing.client, 1, 1, 9);
  std::this_thread::sleep_for(milliseconds(2500));
  set_keepalive_off(probing.client);
  const double shown = static_cast<double>(shown_probes(w0, k0));
  eventually([&] { return value(kProbes, series) == shown; }, seconds(5));
  EXPECT_GE(shown, 2);
  EXPECT_EQ(value(kProbes, series), shown) << "the probes BPF was shown since the restart";
  EXPECT_GT(probes1, 0);

  // CLOSE_WAIT ages, from /sockets and from `tcpka audit --json`: exact
  // from the state tracker's records, else (a kernel without it,
  // tests/matrix/kernels.list) the first sightings, which a pin keeps too.
  const bool tracker = !kernel_lacks("state_tracker");
  std::string out;
  ASSERT_EQ(sh(agent_binary() + " audit --json --state close_wait", &out), 0);
  for (const std::string& json : {agent_->get("/sockets?state=close_wait"), out}) {
    int ours = 0;
    const double now_age = age();
    for (const auto& r : json_objects(json)) {
      if (json_field(r, "netns") != std::to_string(netns_->inode())) continue;
      SCOPED_TRACE(r);
      ++ours;
      if (how == Restart::kSigterm) {
        // The documented default: the new agent first saw them now.
        EXPECT_EQ(json_field(r, "state_seconds"), "null");
        ASSERT_NE(json_field(r, "state_seconds_min"), "null");
        EXPECT_LT(std::stod(*json_field(r, "state_seconds_min")), now_age - down_for);
        continue;
      }
      if (!tracker) {
        EXPECT_EQ(json_field(r, "state_seconds"), "null");
        ASSERT_NE(json_field(r, "state_seconds_min"), "null");
        const double at_least = std::stod(*json_field(r, "state_seconds_min"));
        EXPECT_GT(at_least, down_for) << "first seen before the restart gap";
        // The first scan after the leak saw them (--audit-interval 1).
        EXPECT_NEAR(at_least, now_age, 1.5) << "the sighting kept through the restart";
        continue;
      }
      ASSERT_NE(json_field(r, "state_seconds"), "null") << "exact, not a lower bound";
      const double seconds_in_state = std::stod(*json_field(r, "state_seconds"));
      EXPECT_GT(seconds_in_state, down_for) << "older than the restart gap";
      EXPECT_NEAR(seconds_in_state, now_age, 0.5) << "the age since the leak, through the restart";
    }
    EXPECT_EQ(ours, 3) << json;
  }

  // Closing them: their whole CLOSE_WAIT time lands in the new agent's histogram.
  const double held = age();
  for (auto& cw : cws) close(cw.fd);
  const Labels cg = {{"cgroup", cgroup_->path()}};
  if (how != Restart::kSigterm && tracker) {
    ASSERT_TRUE(eventually([&] { return value("tcpka_close_wait_duration_seconds_count") == 3; },
                           seconds(5)))
        << agent_->metrics();
    const double sum = value("tcpka_close_wait_duration_seconds_sum");
    EXPECT_GT(sum, 3 * (held - 0.5));
    EXPECT_LT(sum, 3 * (held + 0.5));
  }
  EXPECT_EQ(agent_->stop(), 0);
  EXPECT_EQ(exists(kStatePin), how == Restart::kSigtermPersist);
}

INSTANTIATE_TEST_SUITE_P(Ways, RestartTest,
                         ::testing::Values(Restart::kSigkill, Restart::kSigtermPersist,
                                           Restart::kSigterm),
                         [](const auto& info) {
                           switch (info.param) {
                             case Restart::kSigkill:
                               return "Sigkill";
                             case Restart::kSigtermPersist:
                               return "SigtermWithStatePersist";
                             case Restart::kSigterm:
                               return "SigtermDefault";
                           }
                           return "";
                         });

}  // namespace
}  // namespace tcpka::test
