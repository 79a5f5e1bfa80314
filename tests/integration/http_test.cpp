// The HTTP surface of the real agent under abuse, and its TLS and basic auth
// end to end: slow clients (slowloris, plain and TLS), 100 parallel scrapes, a
// 64 KiB header, path tricks and garbage, IPv6, then TLS with client
// certificates and bcrypt basic auth checked with curl and scraped by a real
// Prometheus. Each test runs the agent in a network namespace of its own.
#include <arpa/inet.h>
#include <crypt.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "harness.h"

namespace tcpka::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
namespace fs = std::filesystem;

constexpr uint16_t kPort = 9977;

// A field of /proc/PID/status as a number (VmRSS in kB, Threads).
long proc_status(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  }
  throw std::runtime_error("no " + key + " in /proc/" + std::to_string(pid) + "/status");
}

int connect_to(int family, uint16_t port) {
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends raw bytes, returns all the answer (until close or 5 s).
std::string raw_exchange(const std::string& request, int family = AF_INET) {
  const int fd = connect_to(family, kPort);
  if (fd < 0) return "";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[65536];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) resp.append(buf, n);
  close(fd);
  return resp;
}

int status_of(const std::string& resp) {
  if (resp.rfind("HTTP/1.1 ", 0) != 0 || resp.size() < 12) return 0;
  return std::stoi(resp.substr(9, 3));
}

// Many connections that send their request one byte a second, reopened when
// the agent closes them: slowloris.
class Slowloris {
 public:
  Slowloris(int connections, const std::string& prefix) : prefix_(prefix) {
    fds_.assign(connections, -1);
    thread_ = std::thread([this] { run(); });
  }
  ~Slowloris() {
    stop_ = true;
    thread_.join();
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  int reopened() const { return reopened_.load(); }
  int open_now() const { return open_.load(); }

 private:
  void run() {
    while (!stop_) {
      int open = 0;
      for (int& fd : fds_) {
        if (fd >= 0) {
          char c;
          // The agent answered (408) or closed (eviction, timeout): reopen.
          const ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
          const bool gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || n > 0 ||
                            send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1;
          if (!gone) {
            ++open;
            continue;
          }
          close(fd);
          fd = -1;
          ++reopened_;
        }
        fd = connect_to(AF_INET, kPort);
        if (fd >= 0) {
          send(fd, prefix_.data(), prefix_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          ++open;
        }
        if (stop_) return;
      }
      open_ = open;
      for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(milliseconds(100));
    }
  }

  std::string prefix_;
  std::vector<int> fds_;
  std::atomic<bool> stop_{false};
  std::atomic<int> reopened_{0};
  std::atomic<int> open_{0};
  std::thread thread_;
};

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(geteuid(), 0u) << "integration tests need root"; }
};

// Scrapes every 200 ms for `how_long`; returns the slowest, and counts failures.
double scrape_during(const std::function<int(std::string*)>& scrape, Clock::duration how_long,
                     int* failures, int* scrapes) {
  double worst = 0;
  const auto end = Clock::now() + how_long;
  while (Clock::now() < end) {
    const auto t0 = Clock::now();
    std::string body;
    const int status = scrape(&body);
    worst = std::max(worst, std::chrono::duration<double>(Clock::now() - t0).count());
    ++*scrapes;
    if (status != 200 || body.find("tcpka_build_info") == std::string::npos) ++*failures;
    std::this_thread::sleep_for(milliseconds(200));
  }
  return worst;
}

TEST_F(HttpTest, SlowlorisDoesNotDelayScrapesAndThreadsStayBounded) {
  TestNetns netns;
  Agent agent({});
  const long threads_before = proc_status(agent.pid(), "Threads");
  int failures = 0, scrapes = 0;
  long threads_peak = 0;
  {
    // More slow connections than the agent's cap (128), each trickling a
    // header a byte a second, for longer than the 5 s request timeout.
    Slowloris attack(300, "GET /metrics HTTP/1.1\r\nX-Slow: ");
    std::this_thread::sleep_for(seconds(2));
    std::atomic<bool> done{false};
    std::thread sampler([&] {
      while (!done) {
        threads_peak = std::max(threads_peak, proc_status(agent.pid(), "Threads"));
        std::this_thread::sleep_for(milliseconds(100));
      }
    });
    const double worst = scrape_during(
        [&](std::string* body) {
          int status = 0;
          *body = agent.get("/metrics", &status);
          return status;
        },
        seconds(8), &failures, &scrapes);
    done = true;
    sampler.join();
    // At the cap a newcomer evicts the oldest unfinished connection, so a
    // scrape whose handshake is slower than ~128 attacker reconnections can
    // itself be evicted (seen once in 37 on a loaded 2-vCPU machine). Promise:
    // at least 95% of scrapes are answered.
    EXPECT_LE(failures, std::max(1, scrapes / 20))
        << "of " << scrapes << " scrapes during the attack";
    EXPECT_GE(scrapes, 20);
    EXPECT_LT(worst, 1.0) << "slowest scrape during the attack, s";
    // The attack was real: connections were evicted or timed out and came back.
    EXPECT_GT(attack.reopened(), 100);
    EXPECT_GT(attack.open_now(), 100);
    // And the operator can see it: the cap was reached, so connections were evicted.
    EXPECT_GT(
        metric(agent.metrics(), "tcpka_http_connections_dropped_total", {{"reason", "evicted"}}),
        0);
  }
  // One thread per connection: at most the cap (128) serving, and as many
  // evicted ones on their way out (the server's hard bound is twice the cap).
  EXPECT_LE(threads_peak, threads_before + 2 * 128);
  EXPECT_TRUE(
      eventually([&] { return proc_status(agent.pid(), "Threads") <= threads_before; }, seconds(7)))
      << proc_status(agent.pid(), "Threads") << " threads, " << threads_before << " before";
  int status = 0;
  agent.get("/healthz", &status);
  EXPECT_EQ(status, 200);
}

TEST_F(HttpTest, HundredParallelScrapesAreAllAnswered) {
  TestNetns netns;
  Agent agent({});
  std::vector<int> statuses(100, 0);
  std::vector<size_t> sizes(100, 0);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (ready.load() < 100) std::this_thread::yield();
      sizes[i] = agent.get(i % 2 ? "/metrics" : "/sockets", &statuses[i]).size();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(statuses[i], 200) << "scrape " << i;
    EXPECT_GT(sizes[i], 0u) << "scrape " << i;
  }
}

TEST_F(HttpTest, HugeHeaderIsRefusedAndTheAgentStaysUp) {
  TestNetns netns;
  Agent agent({});
  const std::string req =
      "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  const int status = status_of(raw_exchange(req));
  EXPECT_TRUE(status == 431 || status == 400) << status;
  int health = 0;
  agent.get("/healthz", &health);
  EXPECT_EQ(health, 200);
}

TEST_F(HttpTest, PathTricksAndGarbageGet4xxNever5xx) {
  TestNetns netns;
  Agent agent({});
  struct Case {
    std::string request;
    int want;
  };
  const std::vector<Case> cases = {
      {"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 200},
      {"GET /metrics?x=1&y=%2F HTTP/1.0\r\n\r\n", 200},
      {"HEAD /metrics HTTP/1.1\r\n\r\n", 200},
      {"GET /metrics/../metrics HTTP/1.1\r\n\r\n", 404},
      {"GET //metrics HTTP/1.1\r\n\r\n", 404},
      {"GET /%2e%2e/metrics HTTP/1.1\r\n\r\n", 404},
      {"GET /%6detrics HTTP/1.1\r\n\r\n", 404},
      {"GET /metrics%00 HTTP/1.1\r\n\r\n", 404},
      {"GET /metrics# HTTP/1.1\r\n\r\n", 404},
      {"GET /../../etc/passwd HTTP/1.1\r\n\r\n", 404},
      {"GET http://127.0.0.1:9977/metrics HTTP/1.1\r\n\r\n", 400},
      {"GET * HTTP/1.1\r\n\r\n", 400},
      {"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 405},
      {"PUT /metrics HTTP/1.1\r\n\r\n", 405},
      {"DELETE /metrics HTTP/1.1\r\n\r\n", 405},
      {"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n", 400},
      {"TRACE / HTTP/1.1\r\n\r\n", 405},
      {"GET /metrics HTTP/2.0\r\n\r\n", 400},
      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
      {"GET /metrics\r\n\r\n", 400},
      {"\r\n\r\n", 400},
      {"hello\r\n\r\n", 400},
      {std::string("GET /met\0rics HTTP/1.1\r\n\r\n", 26), 400},
      {"GET /m\xff\xfe HTTP/1.1\r\n\r\n", 400},
      {std::string("\x16\x03\x01\x00\x05hello\r\n\r\n", 14), 400},
  };
  for (const auto& c : cases) {
    const std::string resp = raw_exchange(c.request);
    EXPECT_EQ(status_of(resp), c.want) << c.request << "\n" << resp.substr(0, 200);
  }
  // Random bytes: a 4xx or a closed connection, never a 5xx.
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string junk(1 + rng() % 300, '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    const int status = status_of(raw_exchange(junk + "\r\n\r\n"));
    EXPECT_TRUE(status == 0 || (status >= 400 && status < 500)) << status << " for junk " << i;
  }
  int health = 0;
  agent.get("/healthz", &health);
  EXPECT_EQ(health, 200);
  EXPECT_EQ(kill(agent.pid(), 0), 0);
}

TEST_F(HttpTest, RepeatedAbuseDoesNotGrowTheAgent) {
  TestNetns netns;
  Agent agent({});
  auto round = [&] {
    std::vector<std::thread> threads;
    for (int t = 0; t < 50; ++t) {
      threads.emplace_back([&, t] {
        raw_exchange("GET /metrics HTTP/1.1\r\nX-Big: " + std::string(20000 + t, 'b') + "\r\n\r\n");
        raw_exchange("GET /metrics HTTP/1.1\r\n\r\n");
        raw_exchange("garbage " + std::to_string(t) + "\r\n\r\n");
        const int fd = connect_to(AF_INET, kPort);  // opens and hangs up mid-request
        send(fd, "GET /metr", 9, MSG_NOSIGNAL);
        close(fd);
      });
    }
    for (auto& t : threads) t.join();
  };
  round();  // the first round warms up allocator arenas and thread stacks
  ASSERT_TRUE(eventually([&] { return proc_status(agent.pid(), "Threads") < 20; }, seconds(7)));
  const long rss1 = proc_status(agent.pid(), "VmRSS");
  const long threads1 = proc_status(agent.pid(), "Threads");
  for (int i = 0; i < 5; ++i) round();
  ASSERT_TRUE(
      eventually([&] { return proc_status(agent.pid(), "Threads") <= threads1; }, seconds(7)))
      << proc_status(agent.pid(), "Threads") << " threads after, " << threads1 << " before";
  const long rss2 = proc_status(agent.pid(), "VmRSS");
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizer tier's agent keeps freed memory in ASan's quarantine (up to
  // 256 MiB) by design, so its RSS says nothing here; the main tier checks it.
  (void)rss1, (void)rss2;
#else
  // Five more rounds of 200 connections each may not cost more than 8 MiB.
  EXPECT_LT(rss2 - rss1, 8 * 1024) << "VmRSS " << rss1 << " kB -> " << rss2 << " kB";
#endif
}

TEST_F(HttpTest, ListensOnIpv6Loopback) {
  TestNetns netns;
  Background agent({agent_binary(), "run", "--listen", "[::1]:" + std::to_string(kPort)});
  ASSERT_TRUE(eventually(
      [&] { return status_of(raw_exchange("GET /healthz HTTP/1.1\r\n\r\n", AF_INET6)) == 200; },
      seconds(15)))
      << agent.log();
  const std::string resp = raw_exchange("GET /metrics HTTP/1.1\r\n\r\n", AF_INET6);
  EXPECT_EQ(status_of(resp), 200);
  EXPECT_NE(resp.find("tcpka_build_info"), std::string::npos);
  std::string out;
  EXPECT_EQ(sh("curl -sS -g -o /dev/null -w '%{http_code}' 'http://[::1]:9977/metrics?x=1'", &out),
            0);
  EXPECT_EQ(out, "200");
  // Only there: not on IPv4.
  EXPECT_LT(connect_to(AF_INET, kPort), 0);
}

// ------------------------------------------------------------ TLS and auth

// A CA, a server certificate for 127.0.0.1 signed by it, a client
// certificate signed by it, and one signed by another CA; made with the
// openssl CLI in a temporary directory.
class Pki {
 public:
  Pki() {
    char tmpl[] = "/tmp/tcpka-pki-XXXXXX";
    dir_ = mkdtemp(tmpl);
    const std::string d = dir_;
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    auto ok = [&](const std::string& cmd) { run(cmd); };
    for (const std::string ca : {"ca", "otherca"}) {
      ok("openssl req -x509 " + ec + " -keyout " + ca + ".key -out " + ca +
         ".crt -days 2 -subj /CN=" + ca);
    }
    ok("openssl req " + ec + " -keyout server.key -out server.csr -subj /CN=tcpka");
    std::ofstream(d + "/server.ext") << "subjectAltName=IP:127.0.0.1,IP:::1\n";
    ok("openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
       "-extfile server.ext -out server.crt");
    std::ofstream(d + "/client.ext") << "extendedKeyUsage=clientAuth\n";
    for (const std::string who : {"client", "stranger"}) {
      const std::string ca = who == "client" ? "ca" : "otherca";
      ok("openssl req " + ec + " -keyout " + who + ".key -out " + who + ".csr -subj /CN=" + who);
      ok("openssl x509 -req -in " + who + ".csr -CA " + ca + ".crt -CAkey " + ca +
         ".key -CAcreateserial -days 2 -extfile client.ext -out " + who + ".crt");
    }
  }
  ~Pki() { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& dir() const { return dir_; }
  // NAME.crt and NAME.key: another server certificate for 127.0.0.1, signed by CA.
  void issue_server(const std::string& name, const std::string& ca) const {
    run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + name +
        ".key -out " + name + ".csr -subj /CN=tcpka");
    run("openssl x509 -req -in " + name + ".csr -CA " + ca + ".crt -CAkey " + ca +
        ".key -CAcreateserial -days 2 -extfile server.ext -out " + name + ".crt");
  }

 private:
  void run(const std::string& cmd) const {
    std::string out;
    if (sh("cd " + dir_ + " && " + cmd + " 2>&1", &out) != 0) {
      throw std::runtime_error("openssl failed: " + cmd + "\n" + out);
    }
  }
  std::string dir_;
};

std::string bcrypt(const std::string& password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn("$2b$", 10, nullptr, 0, setting, sizeof(setting))) {
    throw std::runtime_error("crypt_gensalt_rn");
  }
  crypt_data data{};
  const char* h = crypt_rn(password.c_str(), setting, &data, sizeof(data));
  if (!h) throw std::runtime_error("crypt_rn");
  std::string hash = h;
  hash[2] = 'y';  // as htpasswd writes them
  return hash;
}

// curl's exit code; the HTTP status (or 000) in *code.
int curl(const std::string& args, std::string* code, std::string* body = nullptr) {
  char tmpl[] = "/tmp/tcpka-curl-XXXXXX";
  const int fd = mkstemp(tmpl);
  close(fd);
  const int rc = sh("curl -sS --max-time 10 -o " + std::string(tmpl) + " -w '%{http_code}' " +
                        args + " 2>/dev/null",
                    code);
  if (body) {
    std::ifstream in(tmpl);
    std::stringstream ss;
    ss << in.rdbuf();
    *body = ss.str();
  }
  unlink(tmpl);
  return rc;
}

// The agent with a web-config file, up once /healthz answers over TLS.
class TlsAgent {
 public:
  TlsAgent(const Pki& pki, const std::string& web_config)
      : config_(pki.path("web.yml")),
        client_(" --cacert " + pki.path("ca.crt") + " --cert " + pki.path("client.crt") +
                " --key " + pki.path("client.key")) {
    std::ofstream(config_) << web_config;
    agent_ = std::make_unique<Background>(std::vector<std::string>{
        agent_binary(), "run", "--listen", "127.0.0.1:9977", "--web-config-file", config_});
    const bool up = eventually(
        [&] {
          std::string code;
          curl(client_ + " https://127.0.0.1:9977/healthz", &code);
          return code == "200";
        },
        seconds(20));
    if (!up) throw std::runtime_error("agent not up over TLS: " + agent_->log());
  }
  // curl options that pass the CA and the good client certificate.
  const std::string& client() const { return client_; }
  std::string log() const { return agent_->log(); }

 private:
  std::string config_, client_;
  std::unique_ptr<Background> agent_;
};

TEST_F(HttpTest, TlsWithClientCertificatesAndBasicAuth) {
  TestNetns netns;
  Pki pki;
  TlsAgent agent(pki,
                 "tls_server_config:\n"
                 "  cert_file: server.crt   # relative to this file\n"
                 "  key_file: server.key\n"
                 "  client_auth_type: RequireAndVerifyClientCert\n"
                 "  client_ca_file: ca.crt\n"
                 "http_server_config:\n"
                 "  headers:\n"
                 "    X-Content-Type-Options: nosniff\n"
                 "basic_auth_users:\n"
                 "  prometheus: " +
                     bcrypt("correct horse") + "\n");
  const std::string url = " https://127.0.0.1:9977";
  std::string code, body;
  // The right certificate and password: the metrics.
  EXPECT_EQ(
      curl(agent.client() + " -u 'prometheus:correct horse'" + url + "/metrics", &code, &body), 0);
  EXPECT_EQ(code, "200");
  EXPECT_NE(body.find("tcpka_build_info"), std::string::npos);
  // Response headers from the file.
  std::string headers;
  sh("curl -sS -D - -o /dev/null " + agent.client() + " -u 'prometheus:correct horse'" + url +
         "/metrics",
     &headers);
  EXPECT_NE(headers.find("X-Content-Type-Options: nosniff"), std::string::npos) << headers;
  // Wrong password, unknown user, none: 401 with a challenge, no metrics.
  for (const std::string u : {" -u 'prometheus:wrong'", " -u 'nobody:correct horse'", ""}) {
    EXPECT_EQ(curl(agent.client() + u + url + "/metrics", &code, &body), 0) << u;
    EXPECT_EQ(code, "401") << u;
    EXPECT_EQ(body.find("tcpka_"), std::string::npos) << u;
  }
  sh("curl -sS -D - -o /dev/null " + agent.client() + url + "/sockets", &headers);
  EXPECT_NE(headers.find("WWW-Authenticate: Basic realm=\"tcpka\""), std::string::npos) << headers;
  // /healthz needs the certificate but no password.
  EXPECT_EQ(curl(agent.client() + url + "/healthz", &code), 0);
  EXPECT_EQ(code, "200");
  // Without a client certificate, or with one from another CA: no handshake.
  EXPECT_NE(
      curl(" --cacert " + pki.path("ca.crt") + " -u 'prometheus:correct horse'" + url + "/metrics",
           &code),
      0);
  EXPECT_EQ(code, "000");
  EXPECT_NE(
      curl(" --cacert " + pki.path("ca.crt") + " --cert " + pki.path("stranger.crt") + " --key " +
               pki.path("stranger.key") + " -u 'prometheus:correct horse'" + url + "/metrics",
           &code),
      0);
  EXPECT_EQ(code, "000");
  // The server's certificate is the one from the file: without the CA, curl refuses it.
  EXPECT_EQ(curl(" --cert " + pki.path("client.crt") + " --key " + pki.path("client.key") + url +
                     "/healthz",
                 &code),
            60);  // CURLE_PEER_FAILED_VERIFICATION
  // Plain HTTP on the TLS port: a 400 saying so, never the metrics.
  EXPECT_EQ(curl(" -u 'prometheus:correct horse' http://127.0.0.1:9977/metrics", &code, &body), 0);
  EXPECT_EQ(code, "400");
  EXPECT_NE(body.find("TLS"), std::string::npos) << body;
  // TLS 1.1 is below the default minimum (TLS 1.2).
  EXPECT_NE(curl(agent.client() + " --tls-max 1.1" + url + "/healthz", &code), 0);
}

TEST_F(HttpTest, StalledTlsHandshakesDoNotDelayScrapes) {
  TestNetns netns;
  Pki pki;
  TlsAgent agent(pki, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
  int failures = 0, scrapes = 0;
  {
    // The first bytes of a ClientHello record, then a byte a second.
    Slowloris attack(300, std::string("\x16\x03\x01\x02\x00\x01", 6));
    std::this_thread::sleep_for(seconds(2));
    const double worst = scrape_during(
        [&](std::string* body) {
          std::string code;
          curl(" --cacert " + pki.path("ca.crt") + " https://127.0.0.1:9977/metrics", &code, body);
          return code == "200" ? 200 : 0;
        },
        seconds(8), &failures, &scrapes);
    // At most 5%, as in SlowlorisDoesNotDelayScrapesAndThreadsStayBounded.
    EXPECT_LE(failures, std::max(1, scrapes / 20)) << "of " << scrapes << " scrapes; agent log:\n"
                                                   << agent.log();
    EXPECT_GE(scrapes, 20);
    // curl itself takes tens of ms to start; a stalled server would take seconds.
    EXPECT_LT(worst, 1.5);
    EXPECT_GT(attack.reopened(), 100);
  }
}

TEST_F(HttpTest, BadWebConfigIsRefusedBeforeLoadingNamingFileLineAndKey) {
  TestNetns netns;
  Pki pki;
  const int programs_before = count_our_programs();
  const std::string file = pki.path("web.yml");
  std::ofstream(file) << "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                         "  client_auth_type: Sometimes\n";
  std::string out;
  const int rc = sh(agent_binary() + " run --web-config-file " + file + " 2>&1", &out);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find(file + ": line 4: tls_server_config.client_auth_type: 'Sometimes'"),
            std::string::npos)
      << out;
  // A key that does not belong to the certificate.
  std::ofstream(file) << "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n";
  EXPECT_EQ(sh(agent_binary() + " run --web-config-file " + file + " 2>&1", &out), 2) << out;
  EXPECT_NE(out.find("tls_server_config.key_file: cannot load '" + pki.path("client.key") + "'"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("key values mismatch"), std::string::npos) << out;
  EXPECT_EQ(count_our_programs(), programs_before);
}

// Certificates are rotated by rewriting their files, with no signal to the
// agent (cert-manager, a Secret volume): the agent serves the new pair within
// seconds, and keeps the old one while the files do not match each other.
TEST_F(HttpTest, RotatedCertificateIsServedWithoutRestartOrSignal) {
  TestNetns netns;
  Pki pki;
  pki.issue_server("next", "otherca");
  TlsAgent agent(pki, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
  const std::string url = " https://127.0.0.1:9977/metrics";
  // Whether a client that trusts only `ca` gets the metrics; their body in *body.
  auto trusted_by = [&](const std::string& ca, std::string* body = nullptr) {
    std::string code;
    return curl(" --cacert " + pki.path(ca + ".crt") + url, &code, body) == 0 && code == "200";
  };
  auto reload_ok = [&](const std::string& ca) {
    std::string body;
    return trusted_by(ca, &body) ? metric(body, "tcpka_config_last_reload_successful") : -1;
  };
  ASSERT_TRUE(trusted_by("ca"));
  ASSERT_FALSE(trusted_by("otherca"));
  EXPECT_EQ(reload_ok("ca"), 1);

  // The new key first, written in place: it does not match the certificate.
  fs::copy_file(pki.path("next.key"), pki.path("server.key"), fs::copy_options::overwrite_existing);
  EXPECT_TRUE(eventually([&] { return reload_ok("ca") == 0; }, seconds(10))) << agent.log();
  EXPECT_TRUE(trusted_by("ca")) << "the previous pair keeps serving";
  EXPECT_NE(agent.log().find("reload failed, kept the previous"), std::string::npos) << agent.log();

  // Then the certificate, replaced by a rename as a Secret volume's update is.
  fs::copy_file(pki.path("next.crt"), pki.path("server.crt.new"));
  fs::rename(pki.path("server.crt.new"), pki.path("server.crt"));
  EXPECT_TRUE(eventually([&] { return trusted_by("otherca"); }, seconds(10))) << agent.log();
  EXPECT_FALSE(trusted_by("ca"));
  EXPECT_EQ(reload_ok("otherca"), 1);
}

// SIGHUP reads --web-config-file again from the config file: another file
// applies (basic auth added), none means plain HTTP, and one that does not
// load changes nothing.
TEST_F(HttpTest, SighupAppliesAnotherWebConfigFileOrNone) {
  TestNetns netns;
  Pki pki;
  const std::string tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
  std::ofstream(pki.path("tls.yml")) << tls;
  std::ofstream(pki.path("auth.yml"))
      << tls + "basic_auth_users:\n  prometheus: " + bcrypt("correct horse") + "\n";
  // A key that does not belong to the certificate.
  std::ofstream(pki.path("bad.yml"))
      << "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n";
  const std::string conf = pki.path("tcpka.conf");
  auto use = [&](const std::string& web) {
    std::ofstream(conf) << "listen = \"127.0.0.1:9977\"\n"
                        << (web.empty() ? "" : "web-config-file = \"" + pki.path(web) + "\"\n");
  };
  use("tls.yml");
  Background agent({agent_binary(), "run", "--config", conf});
  const std::string https = " --cacert " + pki.path("ca.crt") + " https://127.0.0.1:9977/metrics";
  auto status = [&](const std::string& args) {
    std::string code;
    curl(args, &code);
    return code;
  };
  ASSERT_TRUE(eventually([&] { return status(https) == "200"; }, seconds(20))) << agent.log();

  use("bad.yml");
  ASSERT_EQ(kill(agent.pid(), SIGHUP), 0);
  EXPECT_TRUE(eventually(
      [&] {
        return agent.log().find(
                   "SIGHUP: reload failed, kept the previous configuration: "
                   "--web-config-file:") != std::string::npos;
      },
      seconds(10)))
      << agent.log();
  EXPECT_EQ(status(https), "200") << "the running file keeps serving";

  use("auth.yml");
  ASSERT_EQ(kill(agent.pid(), SIGHUP), 0);
  EXPECT_TRUE(eventually([&] { return status(https) == "401"; }, seconds(10))) << agent.log();
  EXPECT_EQ(status(" -u 'prometheus:correct horse'" + https), "200");

  use("");
  ASSERT_EQ(kill(agent.pid(), SIGHUP), 0);
  EXPECT_TRUE(
      eventually([&] { return status(" http://127.0.0.1:9977/metrics") == "200"; }, seconds(10)))
      << agent.log();
}

TEST_F(HttpTest, PrometheusScrapesOverTlsWithBasicAuth) {
  TestNetns netns;
  Pki pki;
  TlsAgent agent(pki,
                 "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                 "basic_auth_users:\n  prometheus: " +
                     bcrypt("s3cret") + "\n");
  std::ofstream(pki.path("prometheus.yml"))
      << "global: {scrape_interval: 1s}\n"
         "scrape_configs:\n"
         "  - job_name: tcpka\n"
         "    scheme: https\n"
         "    tls_config: {ca_file: '" +
             pki.path("ca.crt") +
             "'}\n"
             "    basic_auth: {username: prometheus, password: s3cret}\n"
             "    static_configs: [{targets: ['127.0.0.1:9977']}]\n"
             "  - job_name: wrong-password\n"
             "    scheme: https\n"
             "    tls_config: {ca_file: '" +
             pki.path("ca.crt") +
             "'}\n"
             "    basic_auth: {username: prometheus, password: guess}\n"
             "    static_configs: [{targets: ['127.0.0.1:9977']}]\n";
  Background prometheus({"/usr/bin/prometheus", "--config.file=" + pki.path("prometheus.yml"),
                         "--storage.tsdb.path=" + pki.path("data"),
                         "--web.listen-address=127.0.0.1:9090"});
  auto value = [](const std::string& promql) {
    const std::string body = http_get(9090, "/api/v1/query?query=" + url_encode(promql));
    const size_t v = body.find("\"value\":[");
    if (v == std::string::npos) return std::string();
    const size_t q = body.find(",\"", v);
    return body.substr(q + 2, body.find('"', q + 2) - q - 2);
  };
  EXPECT_TRUE(eventually([&] { return value("up{job=\"tcpka\"}") == "1"; }, seconds(30)))
      << prometheus.log();
  EXPECT_TRUE(eventually([&] { return !value("tcpka_build_info").empty(); }, seconds(10)));
  EXPECT_TRUE(eventually([&] { return value("up{job=\"wrong-password\"}") == "0"; }, seconds(10)));
}

}  // namespace
}  // namespace tcpka::test
