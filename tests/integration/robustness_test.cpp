// Issue 7, items 1-3, against the real binary:
// - bad input is refused with exit status 2 and a message naming the value,
//   before any bpf() call, and nothing of ours remains;
// - missing kernel support, simulated in a private mount namespace whose
//   /sys/kernel/btf/vmlinux is replaced by a bind mount: no BTF at all (an
//   empty file), or a BTF in which one tracepoint is renamed away. The agent
//   refuses the first, runs degraded on the second (or refuses with
//   --strict), and the host's own mounts are never touched: the namespace
//   dies with the process;
// - the DaemonSet's capabilities, exactly, and each one taken away.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "harness.h"

namespace tcpka::test {
namespace {

using std::chrono::seconds;

constexpr const char* kPinDir = "/sys/fs/bpf/tcpka";

// BPF links whose program is one of ours (tka_*).
int count_our_links() {
  int count = 0;
  for (__u32 id = 0; bpf_link_get_next_id(id, &id) == 0;) {
    const int fd = bpf_link_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_link_info link{};
    __u32 len = sizeof(link);
    if (bpf_obj_get_info_by_fd(fd, &link, &len) == 0) {
      const int pfd = bpf_prog_get_fd_by_id(link.prog_id);
      bpf_prog_info prog{};
      __u32 plen = sizeof(prog);
      if (pfd >= 0 && bpf_obj_get_info_by_fd(pfd, &prog, &plen) == 0 &&
          std::string(prog.name).rfind("tka_", 0) == 0) {
        ++count;
      }
      if (pfd >= 0) close(pfd);
    }
    close(fd);
  }
  return count;
}

std::set<std::string> our_pins() {
  std::set<std::string> out;
  DIR* d = opendir(kPinDir);
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out.insert(n);
  }
  closedir(d);
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A temporary file, removed on destruction.
class TempPath {
 public:
  explicit TempPath(const std::string& contents = "") {
    char tmpl[] = "/tmp/tcpka-robust-XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd < 0) throw std::runtime_error("mkstemp");
    close(fd);
    path_ = tmpl;
    std::ofstream(path_) << contents;
  }
  ~TempPath() { unlink(path_.c_str()); }
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

// What a refused start left behind and said.
struct Outcome {
  int status = -1;
  std::string err;  // stderr (and stdout for check)
  int bpf_calls = -1;  // bpf() syscalls the process (and its children) made
};

// Runs `cmd` (a shell word list, the binary first) under strace, which
// records every bpf() call; `timeout` ends an agent that wrongly started.
Outcome run_traced(const std::string& cmd) {
  TempPath trace;
  Outcome o;
  // LeakSanitizer cannot run under ptrace: in the sanitizer tier its leak
  // check is off for these (refused) runs; ASan and UBSan stay on.
  o.status = sh("ASAN_OPTIONS=\"${ASAN_OPTIONS:-}:detect_leaks=0\" strace -f -qq -e trace=bpf -o " +
                    trace.path() + " timeout 20 " + cmd + " 2>&1 >/dev/null",
                &o.err);
  const std::string t = read_text(trace.path());
  o.bpf_calls = 0;
  for (size_t at = t.find("bpf("); at != std::string::npos; at = t.find("bpf(", at + 1)) {
    ++o.bpf_calls;
  }
  return o;
}

// ---------------------------------------------------------------------------
// Item 1: bad input.

struct BadInput {
  const char* name;       // the test's name in the output
  const char* args;       // {cg}: a real cgroup of the test; {config}: the file below
  const char* config;     // the config file's contents, or nullptr
  const char* must_name;  // the offending value, as the message must quote it
};

void PrintTo(const BadInput& c, std::ostream* os) { *os << c.args; }

class BadInputTest : public ::testing::TestWithParam<BadInput> {
 protected:
  void SetUp() override { ASSERT_EQ(geteuid(), 0u) << "integration tests need root"; }
};

TEST_P(BadInputTest, ExitsTwoNamingTheValueBeforeAnyBpfCall) {
  const BadInput& c = GetParam();
  ASSERT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)));
  const auto pins_before = our_pins();
  TestCgroup cgroup(false);
  TempPath config(c.config ? replace_all(c.config, "{cg}", cgroup.path()) : "");
  std::string args = replace_all(c.args, "{cg}", cgroup.path());
  args = replace_all(args, "{config}", config.path());

  const Outcome o = run_traced(agent_binary() + " " + args);
  EXPECT_EQ(o.status, 2) << args << ": " << o.err;
  EXPECT_NE(o.err.find(c.must_name), std::string::npos)
      << args << ": the message must name '" << c.must_name << "': " << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << "one line: " << o.err;
  EXPECT_EQ(o.err.rfind("tcpka: ", 0), 0u) << o.err;
  EXPECT_EQ(o.bpf_calls, 0) << "refused before anything is loaded: " << o.err;
  EXPECT_EQ(count_our_programs(), 0);
  EXPECT_EQ(count_our_links(), 0);
  EXPECT_EQ(our_pins(), pins_before);
  EXPECT_EQ(sockops_programs(cgroup.abs()), 0);
}

const BadInput kBadInputs[] = {
    // --listen
    {"ListenPortZero", "run --listen 127.0.0.1:0", nullptr, "'0'"},
    {"ListenPortTooBig", "run --listen 127.0.0.1:70000", nullptr, "'70000'"},
    {"ListenPortNotANumber", "run --listen 127.0.0.1:abc", nullptr, "'abc'"},
    {"ListenPortMissing", "run --listen 127.0.0.1", nullptr, "'127.0.0.1'"},
    {"ListenHostBadIpv4", "run --listen 1.2.3.400:9977", nullptr, "'1.2.3.400'"},
    {"ListenHostName", "run --listen example.com:9977", nullptr, "'example.com'"},
    {"ListenHostBadIpv6", "run --listen [::zz]:9977", nullptr, "'::zz'"},
    // flags and subcommands
    {"UnknownFlagRun", "run --no-such-flag", nullptr, "--no-such-flag"},
    {"UnknownFlagCheck", "check --no-such-flag", nullptr, "--no-such-flag"},
    {"UnknownFlagWatch", "watch --no-such-flag", nullptr, "--no-such-flag"},
    {"UnknownSubcommand", "frobnicate", nullptr, "frobnicate"},
    {"FlagWithoutValue", "run --max-series", nullptr, "--max-series"},
    {"BadBackend", "run --backend kprobe", nullptr, "'kprobe'"},
    {"StrictWithAValue", "run --strict=maybe", nullptr, "maybe"},
    // the config file: missing, not TOML, unknown key and section
    {"ConfigMissing", "run --config /nonexistent/tcpka.toml", nullptr, "/nonexistent/tcpka.toml"},
    {"ConfigNotToml", "run --config {config}", "this is not toml\n", "this is not toml"},
    {"ConfigUnknownKey", "run --config {config}", "no-such-key = 3\n", "no-such-key"},
    {"ConfigUnknownSection", "run --config {config}", "[other]\nmax-series = 3\n", "[other]"},
    {"ConfigConfigKey", "run --config {config}", "config = \"/etc/x.toml\"\n", "'config'"},
    // ... each key type: integers
    {"ConfigIntNotANumber", "run --config {config}", "max-series = \"abc\"\n", "abc"},
    {"ConfigIntNegative", "run --config {config}", "max-sockets = -5\n", "-5"},
    {"ConfigIntFraction", "run --config {config}", "max-series = 1.5\n", "1.5"},
    {"ConfigIntOverflow", "run --config {config}", "max-sockets = 99999999999\n", "99999999999"},
    {"ConfigIntZero", "run --config {config}", "max-series = 0\n", "--max-series: '0'"},
    {"ConfigRingbufNotPowerOfTwo", "run --config {config}", "ringbuf-bytes = 5000\n", "'5000'"},
    // ... durations and thresholds (seconds)
    {"ConfigGcIntervalZero", "run --config {config}", "gc-interval = 0\n", "'0'"},
    {"ConfigGcIntervalNegative", "run --config {config}", "gc-interval = -30\n", "-30"},
    {"ConfigAuditIntervalTooBig", "run --config {config}", "audit-interval = 3601\n", "'3601'"},
    {"ConfigIdleThresholdNegative", "run --config {config}", "idle-threshold = -1\n", "-1"},
    {"ConfigIdleThresholdNotANumber", "run --config {config}", "idle-threshold = \"5m\"\n",
     "5m"},
    // ... strings and enums
    {"ConfigListenHostName", "run --config {config}", "listen = \"example.com:80\"\n",
     "example.com"},
    {"ConfigListenNumber", "run --config {config}", "listen = 5\n", "'5'"},
    {"ConfigBackend", "run --config {config}", "backend = \"kprobe\"\n", "'kprobe'"},
    {"ConfigDirection", "run --config {config}",
     "keepalive-cgroup = \"{cg}\"\nkeepalive-idle = 1\nkeepalive-intvl = 1\nkeepalive-cnt = 1\n"
     "keepalive-direction = \"sideways\"\n",
     "'sideways'"},
    // ... booleans
    {"ConfigBoolPersist", "run --config {config}", "keepalive-persist = maybe\n", "maybe"},
    {"ConfigBoolStrict", "run --config {config}", "strict = \"sometimes\"\n", "sometimes"},
    // ... lists
    {"ConfigListNotSpecs", "run --config {config}", "keepalive-policy = [1, 2]\n", "'1'"},
    {"ConfigListOutOfRange", "run --config {config}",
     "keepalive-policy = [\"cgroup={cg},idle=0,intvl=1,cnt=1\"]\n", "idle: '0'"},
    {"ConfigListMissingCgroup", "run --config {config}",
     "keepalive-policy = [\"cgroup=/tcpka-no-such-cgroup,idle=1,intvl=1,cnt=1\"]\n",
     "/tcpka-no-such-cgroup"},
    // out-of-range keepalive values (the kernel's own limits)
    {"KeepaliveIdleZero",
     "run --keepalive-cgroup {cg} --keepalive-idle 0 --keepalive-intvl 1 --keepalive-cnt 1",
     nullptr, "--keepalive-idle: '0'"},
    {"KeepaliveIdleTooBig",
     "run --keepalive-cgroup {cg} --keepalive-idle 32768 --keepalive-intvl 1 --keepalive-cnt 1",
     nullptr, "'32768'"},
    {"KeepaliveIdleNegative",
     "run --keepalive-cgroup {cg} --keepalive-idle -1 --keepalive-intvl 1 --keepalive-cnt 1",
     nullptr, "-1"},
    {"KeepaliveIntvlZero",
     "run --keepalive-cgroup {cg} --keepalive-idle 1 --keepalive-intvl 0 --keepalive-cnt 1",
     nullptr, "--keepalive-intvl: '0'"},
    {"KeepaliveIntvlNotANumber",
     "run --keepalive-cgroup {cg} --keepalive-idle 1 --keepalive-intvl 10s --keepalive-cnt 1",
     nullptr, "10s"},
    {"KeepaliveCntZero",
     "run --keepalive-cgroup {cg} --keepalive-idle 1 --keepalive-intvl 1 --keepalive-cnt 0",
     nullptr, "--keepalive-cnt: '0'"},
    {"KeepaliveCntTooBig",
     "run --keepalive-cgroup {cg} --keepalive-idle 1 --keepalive-intvl 1 --keepalive-cnt 128",
     nullptr, "'128'"},
    {"KeepaliveSpecOutOfRange", "run --keepalive-policy cgroup={cg},idle=1,intvl=1,cnt=200",
     nullptr, "cnt: '200'"},
    {"KeepaliveApplyOutOfRange", "keepalive apply --cgroup {cg} --idle 1 --intvl 99999 --cnt 1",
     nullptr, "'99999'"},
    // missing cgroups
    {"MissingCgroupFlag",
     "run --keepalive-cgroup /tcpka-no-such-cgroup --keepalive-idle 1 --keepalive-intvl 1 "
     "--keepalive-cnt 1",
     nullptr, "/tcpka-no-such-cgroup"},
    {"MissingCgroupSpec", "run --keepalive-policy cgroup=/tcpka-no-such-cgroup,idle=1,intvl=1,cnt=1",
     nullptr, "/tcpka-no-such-cgroup"},
    {"MissingCgroupApply",
     "keepalive apply --cgroup /tcpka-no-such-cgroup --idle 1 --intvl 1 --cnt 1", nullptr,
     "/tcpka-no-such-cgroup"},
    {"MissingCgroupRemove", "keepalive remove --cgroup /tcpka-no-such-cgroup", nullptr,
     "/tcpka-no-such-cgroup"},
    // negative or non-numeric thresholds and sizes on the command line
    {"IdleThresholdNegative", "run --idle-threshold -300", nullptr, "-300"},
    {"IdleThresholdNotANumber", "run --idle-threshold 5m", nullptr, "5m"},
    {"AuditIntervalZero", "run --audit-interval 0", nullptr, "'0'"},
    {"GcIntervalNegative", "run --gc-interval -1", nullptr, "-1"},
    {"MaxSeriesNegative", "run --max-series -1", nullptr, "-1"},
    {"MaxSeriesNotANumber", "run --max-series banana", nullptr, "banana"},
    {"MaxSocketsZero", "run --max-sockets 0", nullptr, "--max-sockets: '0'"},
    {"WatchRingbufNotPowerOfTwo", "watch --ringbuf-bytes 1000", nullptr, "'1000'"},
    {"AuditMinAgeNegative", "audit --min-age -5", nullptr, "--min-age"},
    {"AuditIdleOverNotANumber", "audit --idle-over soon", nullptr, "soon"},
    {"AuditBadState", "audit --state sleepy", nullptr, "sleepy"},
};

INSTANTIATE_TEST_SUITE_P(Refused, BadInputTest, ::testing::ValuesIn(kBadInputs),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------
// Item 2: missing kernel support, simulated in a mount namespace.

// Writes a copy of the kernel's BTF in which the raw tracepoint `tp` does
// not exist: its btf_trace_<tp> typedef (what libbpf and our probe look up
// to attach tp_btf programs), its __traceiter_/__probestub_ functions and
// its own trace_event_raw_ struct, if any, get other names. Type ids do not
// change, so every other attach_btf_id and CO-RE relocation that libbpf
// resolves from this file still matches the kernel's own BTF.
void write_btf_without_tracepoint(const std::string& tp, const std::string& path) {
  btf* b = btf__parse("/sys/kernel/btf/vmlinux", nullptr);
  ASSERT_NE(b, nullptr) << "the host has no kernel BTF to rewrite";
  int renamed = 0;
  const std::set<std::string> names = {"btf_trace_" + tp, "__traceiter_" + tp,
                                       "__probestub_" + tp, "trace_event_raw_" + tp};
  for (__u32 id = 1; id < btf__type_cnt(b); ++id) {
    const std::string name = btf__name_by_offset(b, btf__type_by_id(b, id)->name_off);
    if (names.count(name) == 0) continue;
    // Adding the string first makes the BTF writable; the type pointer is
    // taken after, from the writable copy.
    const int off = btf__add_str(b, ("tka_absent_" + name).c_str());
    ASSERT_GT(off, 0);
    const_cast<btf_type*>(btf__type_by_id(b, id))->name_off = static_cast<__u32>(off);
    ++renamed;
  }
  ASSERT_GE(renamed, 1) << "the host kernel has no btf_trace_" << tp;
  __u32 size = 0;
  const void* raw = btf__raw_data(b, &size);
  ASSERT_NE(raw, nullptr);
  std::ofstream(path, std::ios::binary).write(static_cast<const char*>(raw), size);
  btf__free(b);
  // The file parses, and the tracepoint is gone from it.
  btf* check = btf__parse_raw(path.c_str());
  ASSERT_NE(check, nullptr);
  EXPECT_LT(btf__find_by_name_kind(check, ("btf_trace_" + tp).c_str(), BTF_KIND_TYPEDEF), 0);
  EXPECT_GT(btf__find_by_name_kind(check, "btf_trace_tcp_destroy_sock", BTF_KIND_TYPEDEF), 0);
  btf__free(check);
}

// argv that runs `cmd` in a private mount namespace where
// /sys/kernel/btf/vmlinux is `btf_file`. unshare(1) execs in place (no
// --fork), so the pid is the agent's and the namespace ends with it.
std::vector<std::string> with_btf(const std::string& btf_file, std::vector<std::string> cmd) {
  std::vector<std::string> argv = {"/usr/bin/unshare", "--mount",        "--propagation",
                                   "private",          "/bin/sh",        "-c",
                                   "mount --bind \"$0\" /sys/kernel/btf/vmlinux && exec \"$@\"",
                                   btf_file};
  argv.insert(argv.end(), cmd.begin(), cmd.end());
  return argv;
}

// Waits until the agent on 127.0.0.1:9977 of this netns answers /healthz 200.
bool becomes_healthy() {
  return eventually(
      [] {
        int status = 0;
        http_get(9977, "/healthz", &status);
        return status == 200;
      },
      seconds(15));
}

std::string shell_words(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + ("'" + a + "'");
  return s;
}

class KernelSupportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "integration tests need root";
    struct stat st {};
    ASSERT_EQ(stat("/sys/kernel/btf/vmlinux", &st), 0);
    host_btf_size_ = st.st_size;
    ASSERT_GT(host_btf_size_, 0);
    ASSERT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)));
    pins_before_ = our_pins();
  }
  void TearDown() override {
    // The bind mounts lived in the agents' namespaces only.
    struct stat st {};
    EXPECT_EQ(stat("/sys/kernel/btf/vmlinux", &st), 0);
    EXPECT_EQ(st.st_size, host_btf_size_) << "the host's /sys/kernel/btf/vmlinux changed";
    EXPECT_EQ(read_text("/proc/self/mountinfo").find("/sys/kernel/btf/vmlinux"),
              std::string::npos);
  }
  // `tcpka ARGS...` in a namespace whose kernel BTF is btf_file; its exit
  // status, and stdout and stderr in *out.
  static int check_with(const std::string& btf_file, std::vector<std::string> args,
                        std::string* out) {
    args.insert(args.begin(), agent_binary());
    return sh(shell_words(with_btf(btf_file, args)) + " 2>&1", out);
  }
  void expect_nothing_remains() {
    EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)));
    EXPECT_EQ(count_our_links(), 0);
    EXPECT_EQ(our_pins(), pins_before_);
  }
  off_t host_btf_size_ = 0;
  std::set<std::string> pins_before_;
};

TEST_F(KernelSupportTest, NoBtfRefusesNamingTheFileAndTheKernelOption) {
  TempPath empty;
  for (const char* cmd : {"run", "watch"}) {
    SCOPED_TRACE(cmd);
    const Outcome o = run_traced(shell_words(with_btf(empty.path(), {agent_binary(), cmd})));
    EXPECT_EQ(o.status, 1) << o.err;
    EXPECT_NE(o.err.find("no kernel BTF: /sys/kernel/btf/vmlinux"), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("CONFIG_DEBUG_INFO_BTF=y"), std::string::npos) << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << "one line: " << o.err;
    EXPECT_NE(o.err.find("/sys/kernel/btf/vmlinux is empty"), std::string::npos) << o.err;
    // Refused before loading anything: not one bpf() call.
    EXPECT_EQ(o.bpf_calls, 0) << o.err;
    expect_nothing_remains();
  }
  std::string out;
  EXPECT_EQ(check_with(empty.path(), {"check"}, &out), 1);
  EXPECT_NE(out.find("kernel BTF:                       no"), std::string::npos) << out;
  EXPECT_NE(out.find("result: cannot run: no kernel BTF"), std::string::npos) << out;
  expect_nothing_remains();
}

TEST_F(KernelSupportTest, AbsentReceiveResetTracepointRunsDegradedAndSaysSo) {
  TempPath btf_file;
  write_btf_without_tracepoint("tcp_receive_reset", btf_file.path());
  if (HasFatalFailure()) return;

  std::string out;
  EXPECT_EQ(check_with(btf_file.path(), {"check"}, &out), 0)
      << out;
  EXPECT_NE(out.find("tp tcp_receive_reset:             no"), std::string::npos) << out;
  EXPECT_NE(out.find("kill_reset    NOT OBSERVED (no tcp:tcp_receive_reset tracepoint)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("result: ok, degraded"), std::string::npos) << out;
  EXPECT_NE(out.find("socket_gone   tp_btf/tcp_destroy_sock"), std::string::npos) << out;
  expect_nothing_remains();

  TestNetns netns;
  KillWitness kills(netns.inode());
  {
    Background agent(with_btf(btf_file.path(),
                              {agent_binary(), "run", "--listen", "127.0.0.1:9977"}));
    ASSERT_TRUE(becomes_healthy()) << agent.log();
    EXPECT_NE(agent.log().find("degraded: signal kill_reset (no tcp:tcp_receive_reset "
                               "tracepoint) is NOT observed"),
              std::string::npos)
        << agent.log();
    std::string m = http_get(9977, "/metrics");
    EXPECT_TRUE(has_series(m, "tcpka_signal_info",
                           {{"signal", "kill_reset"}, {"attach", "none"}, {"backend", "reset-reason"}}))
        << m;
    EXPECT_EQ(metric(m, "tcpka_signal_info", {{"signal", "kill_reset"}}), 0);
    EXPECT_EQ(metric(m, "tcpka_signal_info", {{"signal", "kill_timeout"}}), 1);
    EXPECT_EQ(m.find("tka_recv_reset"), std::string::npos) << "not loaded, not listed";
    // Four keepalive programs (no tka_recv_reset) and the audit's two.
    EXPECT_EQ(count_our_programs(), 6);

    // A reset kill the agent cannot see, then a timeout kill it can.
    Listener l = listen_on(AF_INET);
    Conn reset = connect_pair(l);
    vanish(reset.server);
    set_keepalive(reset.client, 1, 1, 3);
    ASSERT_EQ(wait_error(reset.client, seconds(10)), ECONNRESET);
    Conn timeout = connect_pair(l);
    Nft nft;
    nft.drop_sport(l.port);
    set_keepalive(timeout.client, 1, 1, 2);
    ASSERT_EQ(wait_error(timeout.client, seconds(10)), ETIMEDOUT);
    kills.expect_kernel_killed(1);
    ASSERT_TRUE(eventually(
        [&] {
          return metric(http_get(9977, "/metrics"), "tcpka_keepalive_kills_total",
                        {{"outcome", "timeout"}}) == kills.shown();
        },
        seconds(5)))
        << http_get(9977, "/metrics");
    m = http_get(9977, "/metrics");
    // The blind signal is absent, not a 0 that reads like a measurement.
    EXPECT_EQ(m.find("outcome=\"reset\""), std::string::npos) << m;
  }
  expect_nothing_remains();
}

TEST_F(KernelSupportTest, StrictRefusesAMissingTracepointNamingTheSignal) {
  TempPath btf_file;
  write_btf_without_tracepoint("tcp_receive_reset", btf_file.path());
  if (HasFatalFailure()) return;
  TempPath config("strict = true\n");
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {agent_binary(), "run", "--strict"},
           {agent_binary(), "run", "--config", config.path()}}) {
    SCOPED_TRACE(shell_words(cmd));
    const Outcome o = run_traced(shell_words(with_btf(btf_file.path(), cmd)));
    EXPECT_EQ(o.status, 3) << o.err;
    EXPECT_NE(o.err.find("--strict"), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("kill_reset (no tcp:tcp_receive_reset tracepoint)"), std::string::npos)
        << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << "one line: " << o.err;
    expect_nothing_remains();
  }
  std::string out;
  EXPECT_EQ(check_with(btf_file.path(), {"check", "--strict"}, &out), 3)
      << out;
  EXPECT_NE(out.find("result: cannot run: --strict"), std::string::npos) << out;
  expect_nothing_remains();
}

TEST_F(KernelSupportTest, AbsentSendResetLeavesKillTimeoutUnobserved) {
  // Both ways of seeing a timeout kill go through tcp:tcp_send_reset (with
  // its reason, or inside the timer bracket): without it, that signal alone
  // is blind, and the kernel matrix shows no kernel lacks it.
  TempPath btf_file;
  write_btf_without_tracepoint("tcp_send_reset", btf_file.path());
  if (HasFatalFailure()) return;
  std::string out;
  EXPECT_EQ(check_with(btf_file.path(), {"check"}, &out), 0) << out;
  EXPECT_NE(out.find("signals (backend timer-bracket)"), std::string::npos) << out;
  EXPECT_NE(out.find("kill_timeout  NOT OBSERVED (no tcp:tcp_send_reset tracepoint)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("probe         tp_btf/timer_expire_entry+exit"), std::string::npos) << out;
  EXPECT_NE(out.find("result: ok, degraded"), std::string::npos) << out;
  EXPECT_EQ(check_with(btf_file.path(), {"check", "--strict"}, &out), 3) << out;
  EXPECT_NE(out.find("kill_timeout (no tcp:tcp_send_reset tracepoint)"), std::string::npos)
      << out;
  expect_nothing_remains();
}

// ---------------------------------------------------------------------------
// Item 3: capabilities.

// The capability set of deploy/kubernetes/daemonset.yaml, and nothing else.
const std::vector<std::string> kDaemonSetCaps = {"bpf", "perfmon", "syslog", "net_admin"};

std::vector<std::string> setpriv(const std::vector<std::string>& caps,
                                 std::vector<std::string> cmd) {
  std::string set = "-all";
  for (const auto& c : caps) set += ",+" + c;
  std::vector<std::string> argv = {"/usr/bin/setpriv", "--bounding-set=" + set, "--inh-caps=-all"};
  argv.insert(argv.end(), cmd.begin(), cmd.end());
  return argv;
}

// The pid of our child process called `comm` (setpriv execs in place).
pid_t child_named(const std::string& comm) {
  DIR* d = opendir("/proc");
  pid_t found = -1;
  while (dirent* e = d ? readdir(d) : nullptr) {
    const pid_t pid = static_cast<pid_t>(atoi(e->d_name));
    if (pid <= 0) continue;
    const std::string st = read_text("/proc/" + std::string(e->d_name) + "/status");
    if (st.find("Name:\t" + comm + "\n") != std::string::npos &&
        st.find("PPid:\t" + std::to_string(getpid()) + "\n") != std::string::npos) {
      found = pid;
    }
  }
  if (d) closedir(d);
  return found;
}

std::vector<std::string> run_with_policy(const TestCgroup& cg) {
  return {agent_binary(),     "run", "--listen",          "127.0.0.1:9977",
          "--keepalive-cgroup", cg.abs(), "--keepalive-idle", "30",
          "--keepalive-intvl",  "5",      "--keepalive-cnt",  "3"};
}

class CapabilitiesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "integration tests need root";
    ASSERT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)));
  }
};

TEST_F(CapabilitiesTest, DaemonSetSetStartsAttachesServesAndCountsAKill) {
  TestNetns netns;
  KillWitness kills(netns.inode());
  TestCgroup cgroup(false);
  Background agent(setpriv(kDaemonSetCaps, run_with_policy(cgroup)));
  ASSERT_TRUE(becomes_healthy()) << agent.log();
  // The agent really runs with only those four.
  // CAP_BPF (39), CAP_PERFMON (38), CAP_SYSLOG (34), CAP_NET_ADMIN (12).
  const std::string status = read_text("/proc/" + std::to_string(child_named("tcpka")) + "/status");
  EXPECT_NE(status.find("CapEff:\t000000c400001000"), std::string::npos) << status;
  std::string m = http_get(9977, "/metrics");
  EXPECT_EQ(metric(m, "tcpka_bpf_program_attached"), 8) << m;  // 7 + the sockops policy
  EXPECT_EQ(sockops_programs(cgroup.abs()), 1);

  Listener l = listen_on(AF_INET);
  Conn c = connect_pair(l);
  Nft nft;
  nft.drop_sport(l.port);
  set_keepalive(c.client, 1, 1, 2);
  ASSERT_EQ(wait_error(c.client, seconds(10)), ETIMEDOUT);
  kills.expect_kernel_killed(1);
  EXPECT_TRUE(eventually(
      [&] {
        return metric(http_get(9977, "/metrics"), "tcpka_keepalive_kills_total",
                      {{"outcome", "timeout"}, {"port", std::to_string(l.port)}}) == kills.shown();
      },
      seconds(5)))
      << http_get(9977, "/metrics");
  EXPECT_EQ(metric(http_get(9977, "/metrics"), "tcpka_keepalive_probes_sent_total",
                   {{"port", std::to_string(l.port)}}),
            kills.probes());
  // The self-check reads the counters of namespaces whose tasks it has no
  // ptrace rights over (this process has capabilities the agent lacks):
  // the host's, besides its own (the test's).
  EXPECT_GE(metric(http_get(9977, "/metrics"), "tcpka_self_check_namespaces"), 2)
      << http_get(9977, "/metrics");
}

class WithoutCapabilityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "integration tests need root";
    ASSERT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)));
  }
};

TEST_P(WithoutCapabilityTest, RunStopsNamingTheMissingCapability) {
  const std::string cap = GetParam();
  std::vector<std::string> caps;
  for (const auto& c : kDaemonSetCaps) {
    if (c != cap) caps.push_back(c);
  }
  TestNetns netns;
  TestCgroup cgroup(false);
  const auto pins_before = our_pins();
  // A keepalive policy, so that every one of the four is needed.
  std::string out;
  const int rc = sh("timeout 20 " + shell_words(setpriv(caps, run_with_policy(cgroup))) + " 2>&1",
                    &out);
  std::string upper = "CAP_";
  for (char ch : cap) upper += static_cast<char>(toupper(ch));
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("missing capability " + upper + ", to "), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "one line: " << out;
  EXPECT_TRUE(eventually([] { return count_our_programs() == 0; }, seconds(5)));
  EXPECT_EQ(count_our_links(), 0);
  EXPECT_EQ(sockops_programs(cgroup.abs()), 0);
  EXPECT_EQ(our_pins(), pins_before);
}

INSTANTIATE_TEST_SUITE_P(EachDaemonSetCapability, WithoutCapabilityTest,
                         ::testing::ValuesIn(kDaemonSetCaps),
                         [](const auto& info) { return info.param; });

// CAP_NET_ADMIN is needed for keepalive policies only: the requirement is
// not invented where nothing uses it.
TEST_F(CapabilitiesTest, WithoutNetAdminRunStartsWhenNoPolicyIsConfigured) {
  TestNetns netns;
  Background agent(setpriv({"bpf", "perfmon", "syslog"},
                           {agent_binary(), "run", "--listen", "127.0.0.1:9977"}));
  EXPECT_TRUE(becomes_healthy()) << agent.log();
  EXPECT_EQ(metric(http_get(9977, "/metrics"), "tcpka_bpf_program_attached"), 7);
}

}  // namespace
}  // namespace tcpka::test
