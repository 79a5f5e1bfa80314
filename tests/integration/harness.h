// Privileged test harness: namespaces, cgroups, nftables, real TCP, and the
// agent run as a user runs it. Every resource is owned by an RAII object so a
// failing assertion still removes what the test created.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tcpka::test {

// Path of the tcpka binary under test (set by CMake).
std::string agent_binary();

// Runs a shell command in the calling thread's namespaces; returns its exit
// status and puts its stdout in *out when given.
int sh(const std::string& cmd, std::string* out = nullptr);

// A network namespace of our own, entered by the calling thread for the
// object's lifetime (processes forked meanwhile inherit it).
class TestNetns {
 public:
  TestNetns();
  ~TestNetns();
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;
  const std::string& name() const { return name_; }
  uint32_t inode() const { return inode_; }

 private:
  std::string name_;
  int orig_fd_ = -1;
  uint32_t inode_ = 0;
};

// A child cgroup of the cgroup2 root (or of another TestCgroup), joined by
// this process unless join is false; on destruction the process goes back
// where it was and the cgroup is removed.
class TestCgroup {
 public:
  explicit TestCgroup(bool join = true, const TestCgroup* parent = nullptr);
  ~TestCgroup();
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;
  // Relative to the cgroup2 mount, with a leading slash ("/tcpka-test-...").
  const std::string& path() const { return rel_; }
  std::string abs() const { return root_ + rel_; }
  void enter();
  // Back to the cgroup the process was in before.
  void leave();
  // Leaves and removes the cgroup early.
  void remove();

 private:
  std::string root_, rel_, orig_rel_;
  bool removed_ = false;
};

// bpffs on /sys/fs/bpf, where the agent pins, for the object's lifetime:
// mounted when the host has none there, and then unmounted on destruction.
// A bpffs the host already has is left alone.
class BpffsMount {
 public:
  BpffsMount();
  ~BpffsMount();
  BpffsMount(const BpffsMount&) = delete;
  BpffsMount& operator=(const BpffsMount&) = delete;

 private:
  bool mounted_ = false;
};

// Number of tka_sockops programs attached directly to a cgroup directory.
int sockops_programs(const std::string& cgroup_abs);
// Program ids of those, for checking that one was replaced in place.
std::vector<uint32_t> sockops_program_ids(const std::string& cgroup_abs);

// An nftables table "tka" in the current netns; dropped on destruction.
class Nft {
 public:
  Nft();
  ~Nft();
  // Drops every TCP segment the local stack sends from this source port.
  void drop_sport(uint16_t port);
  // Removes that rule alone: the other ports' drops stay in force throughout.
  void undrop_sport(uint16_t port);
  void flush();
};

// /proc/net/netstat of the calling thread's netns: TcpExt counters.
uint64_t tcpext(const std::string& name);

// The agent as a background process: `tcpka run --listen 127.0.0.1:PORT ...`.
class Agent {
 public:
  explicit Agent(std::vector<std::string> extra_args, uint16_t port = 9977);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;
  // HTTP GET on the agent; returns the body, "" on failure; *status set.
  std::string get(const std::string& path, int* status = nullptr) const;
  std::string metrics() const { return get("/metrics"); }
  // SIGTERM and wait; returns the exit status (or -signal).
  int stop();
  // SIGKILL and wait: a crash.
  void kill9();
  std::string log() const;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_;
  std::string log_path_;
};

// HTTP GET on 127.0.0.1:port in the current netns; the body, "" on failure.
std::string http_get(uint16_t port, const std::string& path, int* status = nullptr);
std::string url_encode(const std::string& s);

// Any program in the background, its output in a log file; SIGTERM on destruction.
class Background {
 public:
  explicit Background(const std::vector<std::string>& argv);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  std::string log() const;
  bool running();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// Keeps every CPU busy for the object's lifetime: one SCHED_IDLE busy loop per
// online CPU, which runs only when nothing else wants that CPU. On this kernel
// some tcp_keepalive_timer callbacks reach no BPF program at all (tp_btf,
// raw_tp and classic tracepoint alike), mostly when CPUs idle: with 400
// loopback sockets probing every second, 10-26 of ~2,350 probes in 4 of 10
// rounds, far fewer with every CPU busy (tests/bench/probe_accuracy.sh,
// tests/bench/RESULTS.md "Probes BPF is not shown"). The tests that compare
// probes hold one and compare against ProbeWitness, which is exact either way;
// the tests that count kills hold a KillWitness (one of each).
class CpusAwake {
 public:
  CpusAwake();
  CpusAwake(const CpusAwake&) = delete;
  CpusAwake& operator=(const CpusAwake&) = delete;

 private:
  std::vector<std::unique_ptr<Background>> spinners_;
};

// What ProbeWitness saw (shown) against the rise of the kernel's own
// counter over the same time (kernel): probes (TcpExtTCPKeepAlive) or
// timeout kills (TcpExtTCPAbortOnTimeout). Never more; fewer is a kernel gap
// (see CpusAwake), printed as a note, not failed, but where exact_counters().
void expect_shown_within_kernel(uint64_t shown, uint64_t kernel, const char* what = "probes");

class ProbeWitness;

// For a test that counts keepalive kills by timeout in its own network
// namespace: CPUs kept out of idle (CpusAwake) and a ProbeWitness of that
// namespace, made before the test's cgroups (the spinners must not join
// them). Some keepalive-timer callbacks of this host's kernel reach no BPF
// program, the kill in them neither: the count the agent must equal is the
// witness's, the kills of the callbacks BPF was shown by the kernel's own
// counter, not the kernel's whole count.
class KillWitness {
 public:
  explicit KillWitness(uint32_t netns_inum);
  ~KillWitness();
  KillWitness(const KillWitness&) = delete;
  KillWitness& operator=(const KillWitness&) = delete;
  // The kills the agent must have counted since construction. Read it
  // inside the wait for the agent: the witness's exit hook may run just
  // after the kernel's counter rose.
  double shown() const;
  // The probes of the callbacks BPF was shown, in the namespace (the same
  // witness's count, by TcpExtTCPKeepAlive).
  double probes() const;
  // Waits (10 s at most) until the namespace's TcpExtTCPAbortOnTimeout rose
  // by `kernel` since construction, then checks the witness against it
  // (expect_shown_within_kernel: a gap is printed, and fails only where
  // every callback must reach BPF). Call from the namespace's thread.
  void expect_kernel_killed(uint64_t kernel);
  // Whether the witness saw every kill the kernel counted: per-socket
  // expectations hold only then.
  bool complete() const;

 private:
  CpusAwake awake_;
  std::unique_ptr<ProbeWitness> witness_;
  uint64_t kernel_before_ = 0;
  uint64_t kernel_ = 0;
};

// What the kernel under test lacks, as tests/matrix/kernels.list declares it
// (TCPKA_KERNEL_LACKS, set by the kernel matrix; empty elsewhere: the host
// must have everything). A test of a missing feature asserts that tcpka
// refuses or reports it, never skips.
bool kernel_lacks(const std::string& what);
// TCPKA_EXACT_COUNTERS=1 (the matrix's guests): the witness must see every
// probe and kill the kernel counted (expect_shown_within_kernel).
bool exact_counters();
// The kill-detection backends this kernel supports, for test parameters.
std::vector<std::string> backends();

// Sum of the samples of a metric whose labels include all of `labels`.
double metric(const std::string& body, const std::string& name,
              const std::map<std::string, std::string>& labels = {});
// Whether any sample of the metric carries exactly-matching labels.
bool has_series(const std::string& body, const std::string& name,
                const std::map<std::string, std::string>& labels);

// Polls `probe` every 100 ms until it returns true or the timeout passes.
bool eventually(const std::function<bool()>& probe, std::chrono::milliseconds timeout);

// How long a keepalive probe may take to reach its series in /metrics.
// `tcpka run` counts the probe of a socket it has not seen yet in its series
// with the next audit scan, every --audit-interval seconds (5 by default):
// two of those, and a margin (agent/aggregator.h, Aggregator::add).
inline constexpr std::chrono::seconds kProbeCounted{12};

// TCP on loopback.
struct Listener {
  int fd = -1;
  uint16_t port = 0;
  int family = 0;
  Listener() = default;
  Listener(Listener&& o) noexcept : fd(o.fd), port(o.port), family(o.family) { o.fd = -1; }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();
};
Listener listen_on(int family, int backlog = 1024);

struct Conn {
  int client = -1;  // connect()ed
  int server = -1;  // accept()ed
  uint16_t client_port = 0;
  ~Conn();
  Conn() = default;
  Conn(Conn&& o) noexcept;
  Conn& operator=(Conn&&) = delete;
};
// before_connect runs on the client socket before connect() (options the
// application sets first).
Conn connect_pair(const Listener& l, const std::function<void(int)>& before_connect = {});

void set_keepalive(int fd, int idle, int intvl, int cnt);
void set_keepalive_off(int fd);
// The socket's keepalive probes out, unanswered (icsk_probes_out, as
// TCP_INFO's tcpi_probes reports it).
int probes_out(int fd);
struct KeepaliveOpts {
  int on = 0, idle = 0, intvl = 0, cnt = 0;
};
KeepaliveOpts get_keepalive(int fd);
// Waits until fd reports an error, returns the errno recv() gives
// (0 when the timeout passes first).
int wait_error(int fd, std::chrono::milliseconds timeout);
// Makes the accepted socket vanish without FIN or RST (TCP_REPAIR close).
void vanish(int& fd);

// `tcpka watch --json` with its stdout in a pipe.
class Watch {
 public:
  explicit Watch(std::vector<std::string> extra_args);
  ~Watch();
  // Lines read so far plus any that arrive within timeout, until pred holds.
  std::vector<std::string> lines_until(
      const std::function<bool(const std::vector<std::string>&)>& pred,
      std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buf_;
  std::vector<std::string> lines_;
};

// Value of a top-level key in a one-line JSON object written by tcpka
// (strings unquoted, null as "null"); nullopt when the key is absent.
std::optional<std::string> json_field(const std::string& line, const std::string& key);
// The objects of `tcpka audit --json` (or /sockets): one per line.
std::vector<std::string> json_objects(const std::string& array);

// Number of BPF programs loaded whose name starts with tka_.
int count_our_programs();

}  // namespace tcpka::test
