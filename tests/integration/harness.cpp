#include "harness.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "cgroup.h"
#include "probe_witness.h"

namespace tcpka::test {

namespace {

std::atomic<int> g_counter{0};

[[noreturn]] void die(const std::string& what) {
  throw std::runtime_error(what + ": " + strerror(errno));
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  if (!out) die("writing " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t spawn(const std::vector<std::string>& argv, int out_fd, int err_fd) {
  const pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    if (out_fd >= 0) dup2(out_fd, 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int stop_process(pid_t pid) {
  if (pid <= 0) return 0;
  kill(pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -SIGKILL;
}

}  // namespace

std::string agent_binary() {
  return TCPKA_BINARY;
}

int sh(const std::string& cmd, std::string* out) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) die("popen " + cmd);
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) text.append(buf, n);
  const int status = pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TestNetns::TestNetns() {
  name_ = "tka-" + std::to_string(getpid()) + "-" + std::to_string(g_counter++);
  if (sh("ip netns add " + name_) != 0) die("ip netns add " + name_);
  const int fd = open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
  orig_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || orig_fd_ < 0) die("open netns");
  struct stat st {};
  fstat(fd, &st);
  inode_ = static_cast<uint32_t>(st.st_ino);
  if (setns(fd, CLONE_NEWNET) != 0) die("setns " + name_);
  close(fd);
  if (sh("ip link set lo up") != 0) die("ip link set lo up");
}

TestNetns::~TestNetns() {
  if (orig_fd_ >= 0) {
    setns(orig_fd_, CLONE_NEWNET);
    close(orig_fd_);
  }
  sh("ip netns del " + name_ + " 2>/dev/null");
}

TestCgroup::TestCgroup(bool join, const TestCgroup* parent) {
  auto root = tcpka::find_cgroup2_mount();
  if (!root) throw std::runtime_error("no cgroup2 mount");
  root_ = *root;
  std::istringstream cg(read_file("/proc/self/cgroup"));
  for (std::string line; std::getline(cg, line);) {
    if (line.rfind("0::", 0) == 0) orig_rel_ = line.substr(3);
  }
  rel_ = (parent ? parent->path() : "") + "/tcpka-test-" + std::to_string(getpid()) + "-" +
         std::to_string(g_counter++);
  if (mkdir((root_ + rel_).c_str(), 0755) != 0) die("mkdir " + root_ + rel_);
  if (join) enter();
}

void TestCgroup::enter() {
  write_file(root_ + rel_ + "/cgroup.procs", std::to_string(getpid()));
}

void TestCgroup::leave() {
  write_file(root_ + (orig_rel_ == "/" ? "" : orig_rel_) + "/cgroup.procs",
             std::to_string(getpid()));
}

void TestCgroup::remove() {
  if (removed_) return;
  removed_ = true;
  leave();
  for (int i = 0; i < 50 && rmdir((root_ + rel_).c_str()) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

TestCgroup::~TestCgroup() {
  try {
    remove();
  } catch (...) {
  }
}

Nft::Nft() {
  if (sh("nft 'add table inet tka; add chain inet tka out { type filter hook output priority 0; "
         "}'") != 0) {
    throw std::runtime_error("nft add table failed");
  }
}

Nft::~Nft() {
  sh("nft delete table inet tka 2>/dev/null");
}

void Nft::drop_sport(uint16_t port) {
  if (sh("nft add rule inet tka out tcp sport " + std::to_string(port) + " drop") != 0) {
    throw std::runtime_error("nft add rule failed");
  }
}

void Nft::undrop_sport(uint16_t port) {
  // The rule's handle from the listing: "tcp sport PORT drop # handle N".
  const std::string rule = "tcp sport " + std::to_string(port) + " drop # handle ";
  std::string list;
  if (sh("nft -a list chain inet tka out", &list) != 0) throw std::runtime_error("nft list failed");
  const size_t at = list.find(rule);
  if (at == std::string::npos) {
    throw std::runtime_error("nft: no drop rule for port " + std::to_string(port));
  }
  const std::string handle = list.substr(at + rule.size(), list.find('\n', at) - at - rule.size());
  if (sh("nft delete rule inet tka out handle " + handle) != 0) {
    throw std::runtime_error("nft delete rule failed");
  }
}

void Nft::flush() {
  sh("nft flush chain inet tka out");
}

uint64_t tcpext(const std::string& name) {
  std::istringstream in(read_file("/proc/thread-self/net/netstat"));
  std::string header, values;
  while (std::getline(in, header) && std::getline(in, values)) {
    if (header.rfind("TcpExt:", 0) != 0) continue;
    std::istringstream h(header), v(values);
    std::string key, val;
    while (h >> key && v >> val) {
      if (key == name) return std::stoull(val);
    }
  }
  throw std::runtime_error("no TcpExt counter " + name);
}

Agent::Agent(std::vector<std::string> extra_args, uint16_t port) : port_(port) {
  char path[] = "/tmp/tcpka-agent-XXXXXX";
  const int log_fd = mkstemp(path);
  if (log_fd < 0) die("mkstemp");
  log_path_ = path;
  std::vector<std::string> argv = {agent_binary(), "run", "--listen",
                                   "127.0.0.1:" + std::to_string(port)};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  pid_ = spawn(argv, log_fd, log_fd);
  close(log_fd);
  const bool up = eventually(
      [&] {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          return true;
        }
        int code = 0;
        get("/healthz", &code);
        return code == 200;
      },
      std::chrono::seconds(15));
  if (!up || pid_ < 0) {
    const std::string log_text = log();
    stop();
    unlink(log_path_.c_str());
    throw std::runtime_error("the agent did not become healthy: " + log_text);
  }
}

Agent::~Agent() {
  stop();
  unlink(log_path_.c_str());
}

int Agent::stop() {
  const int rc = stop_process(pid_);
  pid_ = -1;
  return rc;
}

void Agent::kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string Agent::log() const {
  return read_file(log_path_);
}

std::string Agent::get(const std::string& path, int* status) const {
  return http_get(port_, path, status);
}

std::string url_encode(const std::string& s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Background::Background(const std::vector<std::string>& argv) {
  char path[] = "/tmp/tcpka-bg-XXXXXX";
  const int log_fd = mkstemp(path);
  if (log_fd < 0) die("mkstemp");
  log_path_ = path;
  pid_ = spawn(argv, log_fd, log_fd);
  close(log_fd);
}

Background::~Background() {
  stop_process(pid_);
  unlink(log_path_.c_str());
}

std::string Background::log() const {
  return read_file(log_path_);
}

bool Background::running() {
  return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0;
}

CpusAwake::CpusAwake() {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  for (long i = 0; i < std::max(cpus, 1L); ++i) {
    spinners_.push_back(std::make_unique<Background>(
        // Ends by itself when the test process does, even if it crashes.
        std::vector<std::string>{"chrt", "--idle", "0", "sh", "-c",
                                 "while kill -0 $PPID 2>/dev/null; do :; done"}));
  }
}

void expect_shown_within_kernel(uint64_t shown, uint64_t kernel, const char* what) {
  EXPECT_LE(shown, kernel) << "the witness counted more " << what << " than the kernel";
  // A gap is a few callbacks; none shown of many is the witness itself blind
  // (it finds the socket from its timer as the agent does).
  EXPECT_TRUE(kernel < 3 || shown > 0)
      << "the witness saw none of the kernel's " << kernel << " " << what;
  if (exact_counters()) {
    EXPECT_EQ(shown, kernel) << what << ": every keepalive-timer callback must reach BPF on this "
                                "kernel (TCPKA_EXACT_COUNTERS)";
  }
  if (shown < kernel) {
    std::printf("[ NOTE     ] kernel gap: %llu of %llu %s were in callbacks no BPF "
                "program ran for\n",
                static_cast<unsigned long long>(kernel - shown),
                static_cast<unsigned long long>(kernel), what);
  }
}

KillWitness::KillWitness(uint32_t netns_inum)
    : witness_(std::make_unique<ProbeWitness>(netns_inum)),
      kernel_before_(tcpext("TCPAbortOnTimeout")) {}

KillWitness::~KillWitness() = default;

double KillWitness::shown() const {
  return static_cast<double>(witness_->timeout_kills());
}

void KillWitness::expect_kernel_killed(uint64_t kernel) {
  EXPECT_TRUE(eventually([&] { return tcpext("TCPAbortOnTimeout") - kernel_before_ >= kernel; },
                         std::chrono::seconds(10)))
      << "TcpExtTCPAbortOnTimeout rose by " << tcpext("TCPAbortOnTimeout") - kernel_before_
      << ", not " << kernel;
  kernel_ = tcpext("TCPAbortOnTimeout") - kernel_before_;
  // The witness's exit hook may run just after the counter rose.
  eventually([&] { return witness_->timeout_kills() >= kernel_; }, std::chrono::seconds(1));
  expect_shown_within_kernel(witness_->timeout_kills(), kernel_, "timeout kills");
}

double KillWitness::probes() const {
  return static_cast<double>(witness_->probes());
}

bool KillWitness::complete() const {
  return witness_->timeout_kills() == kernel_;
}

bool kernel_lacks(const std::string& what) {
  const char* env = std::getenv("TCPKA_KERNEL_LACKS");
  std::istringstream words(env ? env : "");
  for (std::string w; words >> w;) {
    if (w == what) return true;
  }
  return false;
}

bool exact_counters() {
  const char* env = std::getenv("TCPKA_EXACT_COUNTERS");
  return env && std::string(env) == "1";
}

std::vector<std::string> backends() {
  if (kernel_lacks("reset_reason")) return {"timer-bracket"};
  return {"reset-reason", "timer-bracket"};
}

std::string http_get(uint16_t port, const std::string& path, int* status) {
  if (status) *status = 0;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return "";
  }
  // HTTP/1.0: no chunked answers to decode.
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: test\r\n\r\n";
  send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[65536];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) resp.append(buf, n);
  close(fd);
  const size_t sep = resp.find("\r\n\r\n");
  if ((resp.rfind("HTTP/1.1 ", 0) != 0 && resp.rfind("HTTP/1.0 ", 0) != 0) ||
      sep == std::string::npos) {
    return "";
  }
  if (status) *status = std::stoi(resp.substr(9, 3));
  return resp.substr(sep + 4);
}

namespace {

// Parses `name{k="v",...} value`; false for comments and blank lines.
bool parse_sample(const std::string& line, std::string* name,
                  std::map<std::string, std::string>* labels, double* value) {
  if (line.empty() || line[0] == '#') return false;
  size_t i = line.find_first_of("{ ");
  if (i == std::string::npos) return false;
  *name = line.substr(0, i);
  labels->clear();
  if (line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const size_t eq = line.find('=', i);
      const std::string key = line.substr(i, eq - i);
      std::string val;
      size_t j = eq + 2;  // skip ="
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) ++j;
        val += line[j];
      }
      (*labels)[key] = val;
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    ++i;
  }
  *value = std::stod(line.substr(i + 1));
  return true;
}

}  // namespace

double metric(const std::string& body, const std::string& name,
              const std::map<std::string, std::string>& labels) {
  std::istringstream in(body);
  double sum = 0;
  for (std::string line; std::getline(in, line);) {
    std::string n;
    std::map<std::string, std::string> l;
    double v = 0;
    if (!parse_sample(line, &n, &l, &v) || n != name) continue;
    bool match = true;
    for (const auto& [k, want] : labels) {
      auto it = l.find(k);
      match = match && it != l.end() && it->second == want;
    }
    if (match) sum += v;
  }
  return sum;
}

bool has_series(const std::string& body, const std::string& name,
                const std::map<std::string, std::string>& labels) {
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    std::string n;
    std::map<std::string, std::string> l;
    double v = 0;
    if (parse_sample(line, &n, &l, &v) && n == name && l == labels) return true;
  }
  return false;
}

bool eventually(const std::function<bool()>& probe, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (probe()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Listener::~Listener() {
  if (fd >= 0) close(fd);
}

Listener listen_on(int family, int backlog) {
  Listener l;
  l.family = family;
  l.fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l.fd < 0) die("socket");
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
  }
  if (bind(l.fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) die("bind");
  if (listen(l.fd, backlog) != 0) die("listen");
  getsockname(l.fd, reinterpret_cast<sockaddr*>(&ss), &len);
  l.port = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                    : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return l;
}

Conn::~Conn() {
  if (client >= 0) close(client);
  if (server >= 0) close(server);
}

Conn::Conn(Conn&& o) noexcept : client(o.client), server(o.server), client_port(o.client_port) {
  o.client = o.server = -1;
}

Conn connect_pair(const Listener& l, const std::function<void(int)>& before_connect) {
  Conn c;
  c.client = socket(l.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (before_connect) before_connect(c.client);
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(l.fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (connect(c.client, reinterpret_cast<sockaddr*>(&ss), len) != 0) die("connect");
  c.server = accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (c.server < 0) die("accept");
  len = sizeof(ss);
  getsockname(c.client, reinterpret_cast<sockaddr*>(&ss), &len);
  c.client_port = ntohs(l.family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return c;
}

void set_keepalive(int fd, int idle, int intvl, int cnt) {
  const int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0) {
    die("setsockopt keepalive");
  }
}

KeepaliveOpts get_keepalive(int fd) {
  KeepaliveOpts k;
  socklen_t len = sizeof(int);
  getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &k.on, &len);
  getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &k.idle, &len);
  getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &k.intvl, &len);
  getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &k.cnt, &len);
  return k;
}

void set_keepalive_off(int fd) {
  const int zero = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &zero, sizeof(zero)) != 0) die("SO_KEEPALIVE 0");
}

int probes_out(int fd) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) die("TCP_INFO");
  return info.tcpi_probes;
}

int wait_error(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return 0;
  char c;
  const ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
  return n < 0 ? errno : 0;
}

void vanish(int& fd) {
  const int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &one, sizeof(one)) != 0) die("TCP_REPAIR");
  close(fd);
  fd = -1;
}

Watch::Watch(std::vector<std::string> extra_args) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) die("pipe");
  char path[] = "/tmp/tcpka-watch-XXXXXX";
  const int err_fd = mkstemp(path);
  std::vector<std::string> argv = {agent_binary(), "watch", "--json"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  pid_ = spawn(argv, out[1], err_fd);
  close(out[1]);
  close(err_fd);
  fd_ = out[0];
  const bool ready =
      eventually([&] { return read_file(path).find("watching") != std::string::npos; },
                 std::chrono::seconds(15));
  const std::string err_text = read_file(path);
  unlink(path);
  if (!ready) {
    stop_process(pid_);
    throw std::runtime_error("tcpka watch did not start: " + err_text);
  }
}

Watch::~Watch() {
  stop_process(pid_);
  if (fd_ >= 0) close(fd_);
}

std::vector<std::string> Watch::lines_until(
    const std::function<bool(const std::vector<std::string>&)>& pred,
    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred(lines_)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = read(fd_, buf, sizeof(buf));
    if (n <= 0) break;
    buf_.append(buf, n);
    for (size_t nl; (nl = buf_.find('\n')) != std::string::npos;) {
      lines_.push_back(buf_.substr(0, nl));
      buf_.erase(0, nl + 1);
    }
  }
  return lines_;
}

std::vector<std::string> json_objects(const std::string& array) {
  std::vector<std::string> out;
  std::istringstream in(array);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '{') out.push_back(line);
  }
  return out;
}

std::optional<std::string> json_field(const std::string& line, const std::string& key) {
  const std::string needle = "\"" + key + "\":";
  const size_t at = line.find(needle);
  if (at == std::string::npos) return std::nullopt;
  size_t i = at + needle.size();
  std::string val;
  if (i < line.size() && line[i] == '"') {
    for (++i; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) ++i;
      val += line[i];
    }
    return val;
  }
  while (i < line.size() && line[i] != ',' && line[i] != '}') val += line[i++];
  return val;
}

std::vector<uint32_t> sockops_program_ids(const std::string& cgroup_abs) {
  std::vector<uint32_t> out;
  const int cg = open(cgroup_abs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) return out;
  __u32 ids[64];
  __u32 count = 64, flags = 0;
  if (bpf_prog_query(cg, BPF_CGROUP_SOCK_OPS, 0, &flags, ids, &count) == 0) {
    for (__u32 i = 0; i < count; ++i) {
      const int fd = bpf_prog_get_fd_by_id(ids[i]);
      if (fd < 0) continue;
      bpf_prog_info info{};
      __u32 len = sizeof(info);
      if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && std::string(info.name) == "tka_sockops") {
        out.push_back(ids[i]);
      }
      close(fd);
    }
  }
  close(cg);
  return out;
}

BpffsMount::BpffsMount() {
  struct statfs fs {};
  if (statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type == BPF_FS_MAGIC) return;
  if (mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) != 0) die("mount bpffs on /sys/fs/bpf");
  mounted_ = true;
}

BpffsMount::~BpffsMount() {
  if (mounted_) umount("/sys/fs/bpf");
}

int sockops_programs(const std::string& cgroup_abs) {
  return static_cast<int>(sockops_program_ids(cgroup_abs).size());
}

int count_our_programs() {
  int count = 0;
  for (__u32 id = 0; bpf_prog_get_next_id(id, &id) == 0;) {
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
        std::string(info.name).rfind("tka_", 0) == 0) {
      ++count;
    }
    close(fd);
  }
  return count;
}

}  // namespace tcpka::test
