// The agent as Prometheus sees it: a real server (Debian's prometheus)
// scrapes a running agent on the test namespace's loopback while the test
// leaks CLOSE_WAIT sockets and has keepalive kill a connection. The shipped
// alert rules (their windows shortened for a test that lasts seconds, the
// expressions unchanged) must fire, every dashboard query must run, and
// `promtool check metrics` must find nothing to say about /metrics.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "harness.h"

namespace tcpka::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
namespace fs = std::filesystem;

constexpr uint16_t kPromPort = 9090;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Values of the samples in a Prometheus /api/v1/query answer.
std::vector<double> prom_values(const std::string& body) {
  std::vector<double> out;
  static const std::regex value(R"re("value":\[[0-9.]+,"([^"]+)"\])re");
  for (std::sregex_iterator it(body.begin(), body.end(), value), end; it != end; ++it) {
    out.push_back(std::stod((*it)[1]));
  }
  return out;
}

std::string query(const std::string& promql, int* status = nullptr) {
  return http_get(kPromPort, "/api/v1/query?query=" + url_encode(promql), status);
}

// Every "expr" of the dashboard, JSON-unescaped, template variables filled.
std::vector<std::string> dashboard_queries(const std::string& json) {
  std::vector<std::string> out;
  static const std::regex expr(R"re("expr"\s*:\s*"((?:[^"\\]|\\.)*)")re");
  for (std::sregex_iterator it(json.begin(), json.end(), expr), end; it != end; ++it) {
    std::string raw = (*it)[1], q;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 1 < raw.size()) {
        ++i;
        q += raw[i] == 'n' ? '\n' : raw[i];
      } else {
        q += raw[i];
      }
    }
    q = std::regex_replace(q, std::regex(R"(\$__rate_interval|\$\{__rate_interval\})"), "30s");
    q = std::regex_replace(q, std::regex(R"(\$__interval|\$\{__interval\})"), "5s");
    q = std::regex_replace(q, std::regex(R"(\$__range|\$\{__range\})"), "1h");
    q = std::regex_replace(q, std::regex(R"(\$\{?[a-z_]+(:[a-z]+)?\}?)"), ".*");
    out.push_back(q);
  }
  return out;
}

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(geteuid(), 0u) << "integration tests need root"; }
};

TEST_F(PrometheusTest, ServerScrapesAgentRulesFireDashboardQueriesRun) {
  // Before the cgroup: the witness's spinners must not be in it.
  TestNetns netns;
  KillWitness killed(netns.inode());
  Agent agent({"--audit-interval", "1"});
  TestCgroup cgroup;
  const std::string cg = cgroup.path();

  char tmpl[] = "/tmp/tcpka-prom-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  struct Cleanup {
    std::string d;
    ~Cleanup() { fs::remove_all(d); }
  } cleanup{dir};
  // The shipped rules with test-sized windows: [15m] -> [20s], for: 15m -> 3s.
  std::string rules = read_text(std::string(TCPKA_SOURCE_DIR) + "/deploy/prometheus/rules.yml");
  ASSERT_FALSE(rules.empty());
  rules = std::regex_replace(rules, std::regex(R"(\[\d+[mh]\])"), "[20s]");
  rules = std::regex_replace(rules, std::regex(R"(for: \d+[mh])"), "for: 3s");
  std::ofstream(dir + "/rules.yml") << rules;
  std::ofstream(dir + "/prometheus.yml")
      << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
         "rule_files: [rules.yml]\n"
         "scrape_configs:\n"
         "  - job_name: tcpka\n"
         "    static_configs: [{targets: ['127.0.0.1:9977']}]\n";
  Background prometheus({"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
                         "--storage.tsdb.path=" + dir + "/data",
                         "--web.listen-address=127.0.0.1:" + std::to_string(kPromPort)});
  ASSERT_TRUE(eventually(
      [&] {
        int status = 0;
        http_get(kPromPort, "/-/ready", &status);
        return status == 200;
      },
      seconds(20)))
      << prometheus.log();

  // A keepalive kill.
  Listener dead_l = listen_on(AF_INET);
  Conn dead = connect_pair(dead_l);
  {
    Nft nft;
    nft.drop_sport(dead_l.port);
    set_keepalive(dead.client, 1, 1, 2);
    ASSERT_EQ(wait_error(dead.client, seconds(10)), ETIMEDOUT);
  }
  killed.expect_kernel_killed(1);
  // A CLOSE_WAIT leak that keeps growing until the alert fires.
  Listener l = listen_on(AF_INET);
  std::vector<Conn> leaked;
  auto leak = [&] {
    leaked.push_back(connect_pair(l));
    close(leaked.back().client);
    leaked.back().client = -1;
  };
  for (int i = 0; i < 12; ++i) leak();
  bool fired = false;
  std::string alerts;
  for (int i = 0; i < 120 && !fired; ++i) {
    leak();
    std::this_thread::sleep_for(milliseconds(500));
    alerts = http_get(kPromPort, "/api/v1/alerts");
    fired = alerts.find("\"alertname\":\"TcpkaCloseWaitLeakGrowing\"") != std::string::npos &&
            alerts.find("\"state\":\"firing\"") != std::string::npos &&
            alerts.find("\"cgroup\":\"" + cg + "\"") != std::string::npos;
  }
  EXPECT_TRUE(fired) << alerts;

  // The numbers behind the dashboard, as Prometheus stored them.
  const size_t n = leaked.size();
  EXPECT_TRUE(eventually(
      [&] {
        const auto v =
            prom_values(query("sum(tcpka_sockets{state=\"close_wait\",cgroup=\"" + cg + "\"})"));
        return v.size() == 1 && v[0] == static_cast<double>(n);
      },
      seconds(10)))
      << query("tcpka_sockets{cgroup=\"" + cg + "\"}");
  const auto kills = prom_values(
      query("sum(tcpka_keepalive_kills_total{cgroup=\"" + cg + "\",outcome=\"timeout\"})"));
  ASSERT_EQ(kills.size(), 1u);
  EXPECT_EQ(kills[0], killed.shown());
  const auto probes =
      prom_values(query("sum(tcpka_keepalive_probes_sent_total{cgroup=\"" + cg + "\"})"));
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_EQ(probes[0], 2);

  const std::string dashboard =
      read_text(std::string(TCPKA_SOURCE_DIR) + "/deploy/grafana/tcpka-dashboard.json");
  const auto queries = dashboard_queries(dashboard);
  ASSERT_GE(queries.size(), 8u);
  size_t with_data = 0;
  for (const auto& q : queries) {
    int status = 0;
    const std::string body = query(q, &status);
    EXPECT_EQ(status, 200) << q << "\n" << body;
    EXPECT_NE(body.find("\"status\":\"success\""), std::string::npos) << q << "\n" << body;
    with_data += body.find("\"result\":[]") == std::string::npos;
  }
  // Some panels have nothing to show here (no policy, no drops); most do.
  EXPECT_GE(with_data * 2, queries.size()) << with_data << " of " << queries.size();

  // The exposition format is clean by promtool's standards.
  const std::string metrics_file = dir + "/metrics.txt";
  std::ofstream(metrics_file) << agent.metrics();
  std::string lint;
  EXPECT_EQ(sh("promtool check metrics < " + metrics_file + " 2>&1", &lint), 0) << lint;
  EXPECT_EQ(lint, "") << lint;
}

}  // namespace
}  // namespace tcpka::test
