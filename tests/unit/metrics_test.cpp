#include "metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <sys/socket.h>
#include "fixtures.h"

#include <sstream>
#include <string>
#include <vector>

namespace tcpka {
namespace {

using testing_fixtures::all_features;
using testing_fixtures::make_event;

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

class MetricsTest : public ::testing::Test {
 protected:
  MetricsTest() : agg_(2, 100) {}

  void SetUp() override {
    // Inbound to local port 5432 in /db: 3 probes, 1 recovery, 1 timeout kill, 2 reset kills.
    for (int i = 0; i < 3; ++i) {
      agg_.add(make_event(EventKind::kProbe, Direction::kInbound, 5432, 40000), "/db");
    }
    agg_.add(make_event(EventKind::kRecovered, Direction::kInbound, 5432, 40000), "/db");
    agg_.add(make_event(EventKind::kKill, Direction::kInbound, 5432, 40000, Outcome::kTimeout),
             "/db");
    agg_.add(make_event(EventKind::kKill, Direction::kInbound, 5432, 40001, Outcome::kReset),
             "/db");
    agg_.add(make_event(EventKind::kKill, Direction::kInbound, 5432, 40002, Outcome::kReset),
             "/db");
    // Outbound to port 443 from an unresolvable cgroup: 1 probe.
    agg_.add(make_event(EventKind::kProbe, Direction::kOutbound, 50000, 443), "");
    // Past max_series=2: folded into port="other".
    agg_.add(make_event(EventKind::kProbe, Direction::kOutbound, 50001, 8080), "/web");

    counters_.decode_errors = 4;
    counters_.series_removed = 6;

    auto plan = plan_for(all_features(), Backend::kAuto);
    ASSERT_TRUE(plan.ok()) << plan.error();
    info_ = AgentInfo{"1.2.3", "abcdef012345", *plan};
  }

  std::string render() {
    MetricSources sources;
    sources.programs = [] {
      return std::vector<ProgramState>{{"tka_timer_entry", "tp_btf/timer_expire_entry", true},
                                       {"tka_destroy", "tp_btf/tcp_destroy_sock", false}};
    };
    sources.drops = [] { return std::array<uint64_t, TKA_DROP__COUNT>{17, 5}; };
    sources.parts = parts_;
    MetricsCollector c(agg_, info_, std::move(sources), counters_);
    return render_metrics(c);
  }

  Aggregator agg_;
  AgentCounters counters_;
  AgentInfo info_;
  std::function<std::vector<PartState>()> parts_;
};

TEST_F(MetricsTest, HelpAndTypeForEveryFamily) {
  const std::string out = "\n" + render();
  const std::vector<std::pair<std::string, std::string>> families = {
      {"tcpka_keepalive_probes_sent_total", "counter"},
      {"tcpka_keepalive_recovered_total", "counter"},
      {"tcpka_keepalive_kills_total", "counter"},
      {"tcpka_build_info", "gauge"},
      {"tcpka_bpf_program_attached", "gauge"},
      {"tcpka_signal_info", "gauge"},
      {"tcpka_events_dropped_total", "counter"},
      {"process_start_time_seconds", "gauge"},
      {"tcpka_config_last_reload_successful", "gauge"},
      {"tcpka_config_last_reload_success_timestamp_seconds", "gauge"},
      {"tcpka_series_overflow_total", "counter"},
      {"tcpka_series_removed_total", "counter"},
      {"tcpka_tracked_sockets", "gauge"},
      {"tcpka_untracked_sockets_total", "counter"},
  };
  for (const auto& [name, type] : families) {
    EXPECT_THAT(out, HasSubstr("\n# HELP " + name + " ")) << name;
    EXPECT_THAT(out, HasSubstr("\n# TYPE " + name + " " + type + "\n")) << name;
  }
  // Nothing else is exposed.
  int types = 0;
  for (const auto& line : lines_of(out)) types += line.rfind("# TYPE ", 0) == 0;
  EXPECT_EQ(types, static_cast<int>(families.size()));
}

TEST_F(MetricsTest, KeepaliveSamples) {
  const std::string out = render();
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_probes_sent_total{cgroup=\"/db\",direction="
                             "\"inbound\",port=\"5432\"} 3\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_probes_sent_total{cgroup=\"unknown\",direction="
                             "\"outbound\",port=\"443\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_probes_sent_total{cgroup=\"/web\",direction="
                             "\"outbound\",port=\"other\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_recovered_total{cgroup=\"/db\",direction="
                             "\"inbound\",port=\"5432\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_recovered_total{cgroup=\"unknown\",direction="
                             "\"outbound\",port=\"443\"} 0\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_kills_total{cgroup=\"/db\",direction=\"inbound\","
                             "port=\"5432\",outcome=\"timeout\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_kills_total{cgroup=\"/db\",direction=\"inbound\","
                             "port=\"5432\",outcome=\"reset\"} 2\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_kills_total{cgroup=\"unknown\",direction="
                             "\"outbound\",port=\"443\",outcome=\"timeout\"} 0\n"));
}

TEST_F(MetricsTest, AgentSamples) {
  const std::string out = render();
  EXPECT_THAT(out, HasSubstr("tcpka_build_info{revision=\"abcdef012345\",version=\"1.2.3\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_bpf_program_attached{attach=\"tp_btf/timer_expire_entry\","
                             "program=\"tka_timer_entry\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_bpf_program_attached{attach=\"tp_btf/tcp_destroy_sock\","
                             "program=\"tka_destroy\"} 0\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_signal_info{attach=\"tp_btf/tcp_send_reset (reason)\","
                             "backend=\"reset-reason\",signal=\"kill_timeout\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_signal_info{attach=\"tp_btf/tcp_receive_reset\",backend="
                             "\"reset-reason\",signal=\"kill_reset\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_events_dropped_total{reason=\"ringbuf_full\"} 17\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_events_dropped_total{reason=\"socket_map_full\"} 5\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_events_dropped_total{reason=\"decode_error\"} 4\n"));
  EXPECT_THAT(out, HasSubstr("\ntcpka_series_overflow_total 1\n"));
  EXPECT_THAT(out, HasSubstr("\ntcpka_series_removed_total 6\n"));
  // Sockets: the killed ones had no gone event to wait for (gone_follows
  // false), so only the two probed ones stay tracked.
  EXPECT_THAT(out, HasSubstr("\ntcpka_tracked_sockets 2\n"));
  EXPECT_THAT(out, HasSubstr("\ntcpka_untracked_sockets_total 0\n"));
}

TEST_F(MetricsTest, BlindSignalIsZeroAndHasNoSeries) {
  Features f = all_features();
  f.tp_receive_reset = false;
  f.rst_reason = false;
  auto plan = plan_for(f, Backend::kAuto);
  ASSERT_TRUE(plan.ok()) << plan.error();
  info_.plan = *plan;
  const std::string out = render();
  EXPECT_THAT(out, HasSubstr("tcpka_signal_info{attach=\"none\",backend="
                             "\"timer-bracket\",signal=\"kill_reset\"} 0\n"));
  // Not observed is not "zero kills by reset": no such series at all.
  EXPECT_THAT(out, Not(HasSubstr("outcome=\"reset\"")));
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_kills_total{cgroup=\"/db\",direction=\"inbound\","
                             "port=\"5432\",outcome=\"timeout\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_probes_sent_total{cgroup=\"/db\",direction="
                             "\"inbound\",port=\"5432\"} 3\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_signal_info{attach=\"tp_btf/tcp_send_reset (in the timer "
                             "bracket)\",backend=\"timer-bracket\",signal=\"kill_timeout\"} 1\n"));
}

TEST_F(MetricsTest, PartsUpOrOff) {
  parts_ = [] {
    return std::vector<PartState>{{Part::kKeepalive, true, ""},
                                  {Part::kAudit, true, ""},
                                  {Part::kStateTracker, false, "the kernel lacks it: 5.12"}};
  };
  const std::string out = render();
  EXPECT_THAT(out, HasSubstr("# TYPE tcpka_part_up gauge\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_part_up{part=\"keepalive\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_part_up{part=\"audit\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_part_up{part=\"state_tracker\"} 0\n"));
  EXPECT_THAT(out, Not(HasSubstr("part=\"policies\""))) << "not configured: no series";
}

TEST_F(MetricsTest, UntrackedSocketsAndLargeCounts) {
  Aggregator agg(10, 1);
  for (uint16_t p = 1; p <= 3; ++p) {
    agg.add(make_event(EventKind::kProbe, Direction::kInbound, 22, p), "/ssh");
  }
  for (int i = 0; i < 1234567; ++i) {
    agg.add(make_event(EventKind::kProbe, Direction::kInbound, 22, 1), "/ssh");
  }
  MetricsCollector c(agg, info_, MetricSources{}, counters_);
  const std::string out = render_metrics(c);
  EXPECT_THAT(out, HasSubstr("\ntcpka_tracked_sockets 1\n"));
  EXPECT_THAT(out, HasSubstr("\ntcpka_untracked_sockets_total 2\n"));
  // Integral counts print without exponent or decimals.
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_probes_sent_total{cgroup=\"/ssh\",direction="
                             "\"inbound\",port=\"22\"} 1234570\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_events_dropped_total{reason=\"ringbuf_full\"} 0\n"));
  EXPECT_THAT(out, Not(HasSubstr("tcpka_bpf_program_attached{")));
}

TEST_F(MetricsTest, RemovedSeriesDisappear) {
  agg_.remove_cgroups([](const std::string& cg) { return cg == "/db"; });
  const std::string out = render();
  EXPECT_THAT(out, Not(HasSubstr("cgroup=\"/db\"")));
  EXPECT_THAT(out, HasSubstr("cgroup=\"unknown\""));
  // The family headers stay even when a family has fewer samples.
  EXPECT_THAT(out, HasSubstr("# TYPE tcpka_keepalive_kills_total counter\n"));
}

TEST_F(MetricsTest, KeepalivePolicyFamiliesPerCgroup) {
  PolicySet::Stats pol;
  pol.cgroup = "/app";
  pol.counts[TKA_SO_APPLIED_IN] = 3;
  pol.counts[TKA_SO_APPLIED_OUT] = 4;
  pol.counts[TKA_SO_KEPT_OUT] = 2;
  pol.counts[TKA_SO_ERR_INTVL] = 1;
  pol.state = ProgramState{"tka_sockops", "sockops:/app", true};
  MetricsCollector c(
      agg_, info_, MetricSources{.policies = [pol] { return std::vector<PolicySet::Stats>{pol}; }},
      counters_);
  const std::string out = render_metrics(c);
  EXPECT_THAT(out, HasSubstr("# TYPE tcpka_sockops_keepalive_applied_total counter\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_sockops_keepalive_applied_total{cgroup=\"/app\",direction="
                             "\"inbound\"} 3\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_sockops_keepalive_applied_total{cgroup=\"/app\",direction="
                             "\"outbound\"} 4\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_sockops_keepalive_kept_total{cgroup=\"/app\",direction="
                             "\"outbound\"} 2\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_sockops_errors_total{cgroup=\"/app\",option="
                             "\"tcp_keepintvl\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_sockops_errors_total{cgroup=\"/app\",option="
                             "\"so_keepalive\"} 0\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_bpf_program_attached{attach=\"sockops:/app\",program="
                             "\"tka_sockops\"} 1\n"));
}

TEST_F(MetricsTest, PodLabelsOnlyForPodCgroups) {
  Aggregator agg(10, 10);
  agg.add(make_event(EventKind::kProbe, Direction::kInbound, 8080, 1), "/kubepods/pod-a");
  agg.add(make_event(EventKind::kProbe, Direction::kInbound, 22, 1), "/system.slice/ssh");
  PodLabeler labeler = [](const std::string& cg) -> std::optional<PodLabels> {
    if (cg == "/kubepods/pod-a") return PodLabels{"shop", "web-1", "nginx"};
    return std::nullopt;
  };
  MetricsCollector c(agg, info_, MetricSources{.pod_labels = labeler}, counters_);
  const std::string out = render_metrics(c);
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_probes_sent_total{cgroup=\"/kubepods/pod-a\","
                             "direction=\"inbound\",port=\"8080\",container=\"nginx\","
                             "namespace=\"shop\",pod=\"web-1\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_keepalive_probes_sent_total{cgroup=\"/system.slice/ssh\","
                             "direction=\"inbound\",port=\"22\"} 1\n"));
}

TEST_F(MetricsTest, NoPolicyFamiliesWithoutPolicies) {
  EXPECT_THAT(render(), Not(HasSubstr("tcpka_sockops_")));
}

TEST_F(MetricsTest, HttpConnectionsDroppedByReason) {
  EXPECT_THAT(render(), Not(HasSubstr("tcpka_http_connections_dropped_total")));
  MetricsCollector c(agg_, info_,
                     MetricSources{.http_dropped =
                                       [] {
                                         return std::array<uint64_t, 2>{7, 3};
                                       }},
                     counters_);
  const std::string out = c.render();
  EXPECT_THAT(out, HasSubstr("# TYPE tcpka_http_connections_dropped_total counter\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_http_connections_dropped_total{reason=\"evicted\"} 7\n"));
  EXPECT_THAT(out, HasSubstr("tcpka_http_connections_dropped_total{reason=\"refused\"} 3\n"));
}

TEST_F(MetricsTest, EscapesLabelValues) {
  Aggregator agg(10, 10);
  agg.add(make_event(EventKind::kProbe, Direction::kInbound, 1, 2), "/we\"ird\\path");
  MetricsCollector c(agg, info_, MetricSources{}, counters_);
  EXPECT_THAT(render_metrics(c), HasSubstr("cgroup=\"/we\\\"ird\\\\path\""));
}

}  // namespace
}  // namespace tcpka

namespace tcpka {
namespace {

// The keepalive families are written by hand for speed: prometheus-cpp's own
// serializer, fed the same samples as ClientMetric objects, is the oracle.
TEST(KeepaliveExposition, SameBytesAsPrometheusCppSerializer) {
  Aggregator agg(100, 100);
  using testing_fixtures::make_event;
  agg.add(make_event(EventKind::kProbe, Direction::kInbound, 5432, 40000), "/db");
  agg.add(make_event(EventKind::kRecovered, Direction::kInbound, 5432, 40000), "/db");
  agg.add(make_event(EventKind::kKill, Direction::kOutbound, 1, 443, Outcome::kReset),
          "/we\"ird\\pa\nth");
  agg.add(make_event(EventKind::kKill, Direction::kOutbound, 2, 443, Outcome::kTimeout),
          "/kubepods/pod-a");
  for (int i = 0; i < 70000; ++i) {
    agg.add(make_event(EventKind::kProbe, Direction::kOutbound, 3, 8080), "/kubepods/pod-a");
  }
  PodLabeler labeler = [](const std::string& cg) -> std::optional<PodLabels> {
    if (cg == "/kubepods/pod-a") return PodLabels{"shop", "web-\"1\"", ""};
    return std::nullopt;
  };
  const auto snap = agg.snapshot();
  ASSERT_EQ(snap.series.size(), 4u);

  using prometheus::ClientMetric;
  auto fam = [](std::string name, std::string help) {
    prometheus::MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = prometheus::MetricType::Counter;
    return f;
  };
  auto probes = fam("tcpka_keepalive_probes_sent_total",
                    "Keepalive probes sent by the kernel (tcp_keepalive_timer).");
  auto recovered = fam("tcpka_keepalive_recovered_total",
                       "Connections whose peer answered after at least one keepalive probe went "
                       "unanswered for a whole interval.");
  auto kills = fam("tcpka_keepalive_kills_total",
                   "Connections ended by keepalive: outcome timeout (probes or TCP_USER_TIMEOUT "
                   "ran out) or reset (the peer answered a probe with RST).");
  auto sample = [](prometheus::MetricFamily& f, std::vector<ClientMetric::Label> l, uint64_t v) {
    ClientMetric m;
    m.label = std::move(l);
    m.counter.value = static_cast<double>(v);
    f.metric.push_back(std::move(m));
  };
  for (const auto& [key, c] : snap.series) {
    std::vector<ClientMetric::Label> l = {{"cgroup", key.cgroup},
                                          {"direction", std::string(direction_name(key.direction))},
                                          {"port", key.port}};
    add_pod_labels(l, labeler, key.cgroup);
    sample(probes, l, c.probes);
    sample(recovered, l, c.recovered);
    auto lt = l;
    lt.push_back({"outcome", "timeout"});
    sample(kills, lt, c.kills_timeout);
    auto lr = l;
    lr.push_back({"outcome", "reset"});
    sample(kills, lr, c.kills_reset);
  }
  const std::string expected = prometheus::TextSerializer().Serialize({probes, recovered, kills});

  auto plan = plan_for(testing_fixtures::all_features(), Backend::kAuto);
  ASSERT_TRUE(plan.ok()) << plan.error();
  std::string out;
  write_keepalive_families(out, snap, labeler, *plan);
  EXPECT_EQ(out, expected);
  EXPECT_THAT(out, HasSubstr("port=\"8080\",container=\"\",namespace=\"shop\","
                             "pod=\"web-\\\"1\\\"\"} 70000\n"));
}

}  // namespace
}  // namespace tcpka

namespace tcpka {
namespace {

// Prometheus refuses a whole scrape over one label value that is not UTF-8;
// cgroup names are bytes (any tenant can make one in a delegated subtree).
TEST(Exposition, LabelValuesThatAreNotUtf8BecomeReplacementCharacters) {
  Aggregator agg(10, 10);
  agg.add(testing_fixtures::make_event(EventKind::kProbe, Direction::kInbound, 1, 2),
          "/bad\xff\xfe/caf\xc3\xa9");
  PolicySet::Stats pol;
  pol.cgroup = "/pol\xc3";
  pol.state = ProgramState{"tka_sockops", "sockops:/pol", true};
  auto plan = plan_for(testing_fixtures::all_features(), Backend::kAuto);
  ASSERT_TRUE(plan.ok()) << plan.error();
  AgentCounters counters;
  MetricsCollector c(
      agg, AgentInfo{"1", "r", *plan},
      MetricSources{.policies = [pol] { return std::vector<PolicySet::Stats>{pol}; }}, counters);
  const std::string out = render_metrics(c);
  EXPECT_THAT(out, HasSubstr("cgroup=\"/bad\xEF\xBF\xBD\xEF\xBF\xBD/caf\xc3\xa9\""));
  EXPECT_THAT(out, HasSubstr("cgroup=\"/pol\xEF\xBF\xBD\""));
  std::string valid;
  append_valid_utf8(valid, out);
  EXPECT_EQ(valid, out) << "the whole body is valid UTF-8";
}

}  // namespace
}  // namespace tcpka
