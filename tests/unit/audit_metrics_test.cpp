#include "audit_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <prometheus/text_serializer.h>

#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace tcpka {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSockets = "tcpka_sockets";
constexpr const char* kIdle = "tcpka_idle_sockets_without_keepalive";
constexpr const char* kOldest = "tcpka_close_wait_oldest_seconds";
constexpr const char* kDurations = "tcpka_close_wait_duration_seconds";

AuditRow row(std::string state, std::string cgroup, bool keepalive = false, double idle = 0,
             std::optional<double> exact = std::nullopt,
             std::optional<double> lower = std::nullopt) {
  AuditRow r;
  r.key.family = 2;
  r.key.saddr = "10.0.0.1";
  r.key.daddr = "10.0.0.2";
  r.state = std::move(state);
  r.cgroup = std::move(cgroup);
  r.keepalive = keepalive;
  r.idle_seconds = idle;
  r.state_seconds = exact;
  r.state_seconds_min = lower;
  return r;
}

std::vector<std::string> names_of(const std::vector<MetricFamily>& fams) {
  std::vector<std::string> out;
  for (const auto& f : fams) out.push_back(f.name);
  return out;
}

// The family called `name`; the test fails when there is none or several.
const MetricFamily* family(const std::vector<MetricFamily>& fams, const std::string& name) {
  const MetricFamily* found = nullptr;
  for (const auto& f : fams) {
    if (f.name != name) continue;
    if (found) ADD_FAILURE() << "family " << name << " twice";
    found = &f;
  }
  if (!found) ADD_FAILURE() << "no family " << name;
  return found;
}

// "cgroup=/a,state=established" for a metric's labels, in name order.
std::string label_key(const ClientMetric& m) {
  std::vector<ClientMetric::Label> labels = m.label;
  std::sort(labels.begin(), labels.end());
  std::string out;
  for (const auto& l : labels) out += (out.empty() ? "" : ",") + l.name + "=" + l.value;
  return out;
}

// Gauge values by label key; the test fails on duplicate label sets.
std::map<std::string, double> gauges(const std::vector<MetricFamily>& fams,
                                     const std::string& name) {
  std::map<std::string, double> out;
  const MetricFamily* f = family(fams, name);
  if (!f) return out;
  EXPECT_EQ(f->type, MetricType::Gauge) << name;
  for (const auto& m : f->metric) {
    if (!out.emplace(label_key(m), m.gauge.value).second) {
      ADD_FAILURE() << name << " has " << label_key(m) << " twice";
    }
  }
  return out;
}

std::map<std::string, ClientMetric::Histogram> histograms(const std::vector<MetricFamily>& fams) {
  std::map<std::string, ClientMetric::Histogram> out;
  const MetricFamily* f = family(fams, kDurations);
  if (!f) return out;
  EXPECT_EQ(f->type, MetricType::Histogram);
  for (const auto& m : f->metric) {
    if (!out.emplace(label_key(m), m.histogram).second) {
      ADD_FAILURE() << "histogram " << label_key(m) << " twice";
    }
  }
  return out;
}

TEST(AuditMetrics, BeforeAnyScanOnlyTheHistogram) {
  AuditMetrics m(300);
  const auto fams = m.families();
  ASSERT_EQ(names_of(fams), std::vector<std::string>{kDurations});
  EXPECT_EQ(fams[0].type, MetricType::Histogram);
  EXPECT_TRUE(fams[0].metric.empty());
  EXPECT_FALSE(fams[0].help.empty());
}

TEST(AuditMetrics, AnEmptyScanGivesEmptyGauges) {
  AuditMetrics m(300);
  m.update({});
  const auto fams = m.families();
  EXPECT_THAT(names_of(fams), ElementsAre(kSockets, kIdle, kOldest, kDurations));
  for (const auto& f : fams) {
    EXPECT_TRUE(f.metric.empty()) << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
  }
  EXPECT_EQ(fams[0].type, MetricType::Gauge);
  EXPECT_EQ(fams[1].type, MetricType::Gauge);
  EXPECT_EQ(fams[2].type, MetricType::Gauge);
}

TEST(AuditMetrics, SocketsByStateAndCgroup) {
  AuditMetrics m(300);
  m.update({
      row("established", "/a"), row("established", "/a"), row("established", "/a", true),
      row("close_wait", "/a"), row("established", "/b"), row("listen", ""), row("listen", ""),
      row("listen", "unknown"),  // the same label as an unresolved cgroup
  });
  const auto fams = m.families();
  EXPECT_EQ(gauges(fams, kSockets), (std::map<std::string, double>{
                                        {"cgroup=/a,state=close_wait", 1},
                                        {"cgroup=/a,state=established", 3},
                                        {"cgroup=/b,state=established", 1},
                                        {"cgroup=unknown,state=listen", 3},
                                    }));
  for (const auto& metric : family(fams, kSockets)->metric) {
    ASSERT_EQ(metric.label.size(), 2u);
  }
}

TEST(AuditMetrics, IdleWithoutKeepaliveCountsOnlyEstablishedAtTheThreshold) {
  AuditMetrics m(300);
  m.update({
      row("established", "/a", false, 300),      // boundary: counted
      row("established", "/a", false, 86400),    // counted
      row("established", "/a", false, 299.999),  // not idle enough
      row("established", "/a", true, 86400),     // has keepalive
      row("close_wait", "/a", false, 86400),     // not established
      row("syn_recv", "/a", false, 86400),       // not established
      row("established", "/b", true, 1000),      // only ones with keepalive
      row("established", "/c", false, 0),        // only fresh ones
      row("established", "", false, 301),        // unresolved cgroup
  });
  const auto fams = m.families();
  EXPECT_EQ(gauges(fams, kIdle), (std::map<std::string, double>{
                                     {"cgroup=/a", 2},
                                     {"cgroup=unknown", 1},
                                 }));
}

TEST(AuditMetrics, IdleThresholdZeroCountsEveryEstablishedWithoutKeepalive) {
  AuditMetrics m(0);
  m.update({row("established", "/a", false, 0), row("established", "/a", true, 0)});
  EXPECT_EQ(gauges(m.families(), kIdle), (std::map<std::string, double>{{"cgroup=/a", 1}}));
}

TEST(AuditMetrics, CloseWaitOldestPerCgroup) {
  AuditMetrics m(300);
  m.update({
      row("close_wait", "/a", false, 0, 10.0),
      row("close_wait", "/a", false, 0, 50.0),
      row("close_wait", "/a", false, 0, std::nullopt, 70.0),  // lower bound only: 70
      row("close_wait", "/b", false, 0, 5.0, 100.0),          // the exact age wins: 5
      row("close_wait", "/c"),                                // no age at all: 0
      row("established", "/d", false, 0, 9999.0),             // not close_wait
      row("last_ack", "/a", false, 0, 9999.0),                // not close_wait
      row("close_wait", "", false, 0, 3.0),
  });
  EXPECT_EQ(gauges(m.families(), kOldest), (std::map<std::string, double>{
                                               {"cgroup=/a", 70},
                                               {"cgroup=/b", 5},
                                               {"cgroup=/c", 0},
                                               {"cgroup=unknown", 3},
                                           }));
}

TEST(AuditMetrics, CloseWaitOldestIsTheMaxWhateverTheOrder) {
  AuditMetrics m(300);
  m.update({row("close_wait", "/a", false, 0, 80.0), row("close_wait", "/a"),
            row("close_wait", "/a", false, 0, std::nullopt, 20.0)});
  EXPECT_EQ(gauges(m.families(), kOldest), (std::map<std::string, double>{{"cgroup=/a", 80}}));
}

TEST(AuditMetrics, VanishedCgroupsDisappear) {
  AuditMetrics m(300);
  m.update({
      row("established", "/a", false, 1000),
      row("close_wait", "/a", false, 0, 10.0),
      row("established", "/b", false, 1000),
      row("close_wait", "/b", false, 0, 20.0),
  });
  m.observe_close_wait("/b", 2);
  auto fams = m.families();
  EXPECT_EQ(gauges(fams, kSockets).size(), 4u);
  EXPECT_EQ(gauges(fams, kIdle).size(), 2u);
  EXPECT_EQ(gauges(fams, kOldest).size(), 2u);

  m.update({row("established", "/a", false, 1000)});
  fams = m.families();
  EXPECT_EQ(gauges(fams, kSockets),
            (std::map<std::string, double>{{"cgroup=/a,state=established", 1}}));
  EXPECT_EQ(gauges(fams, kIdle), (std::map<std::string, double>{{"cgroup=/a", 1}}));
  EXPECT_TRUE(gauges(fams, kOldest).empty());
  // The histogram is not part of the scan.
  EXPECT_EQ(histograms(fams).count("cgroup=/b"), 1u);

  m.update({});
  fams = m.families();
  EXPECT_TRUE(gauges(fams, kSockets).empty());
  EXPECT_TRUE(gauges(fams, kIdle).empty());
  EXPECT_EQ(names_of(fams).size(), 4u);
}

TEST(AuditMetrics, CloseWaitHistogramBuckets) {
  AuditMetrics m(300);
  for (double s : {0.0, 1.0, 5.0, 5.0001, 86400.0, 100000.0}) m.observe_close_wait("/a", s);
  const auto hs = histograms(m.families());
  ASSERT_EQ(hs.size(), 1u);
  const ClientMetric::Histogram& h = hs.at("cgroup=/a");
  EXPECT_EQ(h.sample_count, 6u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 0 + 1 + 5 + 5.0001 + 86400 + 100000);
  ASSERT_EQ(h.bucket.size(), kCloseWaitBuckets.size() + 1);
  const std::vector<double> bounds = {1,   5,    15,   30,   60,    120,   300,
                                      600, 1800, 3600, 7200, 14400, 43200, 86400};
  ASSERT_EQ(kCloseWaitBuckets, bounds);
  // le=1 holds 0 and 1; le=5 adds 5; le=15 adds 5.0001; le=86400 adds 86400.
  const std::vector<uint64_t> want = {2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 6};
  for (size_t i = 0; i < h.bucket.size(); ++i) {
    EXPECT_EQ(h.bucket[i].cumulative_count, want[i]) << "bucket " << i;
    if (i < bounds.size()) {
      EXPECT_EQ(h.bucket[i].upper_bound, bounds[i]) << "bucket " << i;
    }
    if (i > 0) {
      EXPECT_GE(h.bucket[i].cumulative_count, h.bucket[i - 1].cumulative_count);
    }
  }
  EXPECT_TRUE(std::isinf(h.bucket.back().upper_bound));
  EXPECT_GT(h.bucket.back().upper_bound, 0);
  EXPECT_EQ(h.bucket.back().cumulative_count, h.sample_count);
}

TEST(AuditMetrics, EveryBoundFallsInItsOwnBucket) {
  for (size_t b = 0; b < kCloseWaitBuckets.size(); ++b) {
    AuditMetrics m(300);
    m.observe_close_wait("/a", kCloseWaitBuckets[b]);
    const auto hs = histograms(m.families());
    ASSERT_EQ(hs.size(), 1u);
    const auto& buckets = hs.at("cgroup=/a").bucket;
    ASSERT_EQ(buckets.size(), kCloseWaitBuckets.size() + 1);
    for (size_t i = 0; i < buckets.size(); ++i) {
      EXPECT_EQ(buckets[i].cumulative_count, i >= b ? 1u : 0u)
          << "value " << kCloseWaitBuckets[b] << " bucket " << i;
    }
  }
}

TEST(AuditMetrics, HistogramsPerCgroupAndUnknown) {
  AuditMetrics m(300);
  m.observe_close_wait("/a", 2);
  m.observe_close_wait("/b", 20);
  m.observe_close_wait("", 3);
  m.observe_close_wait("unknown", 4);
  const auto hs = histograms(m.families());
  ASSERT_EQ(hs.size(), 3u);
  EXPECT_EQ(hs.at("cgroup=/a").sample_count, 1u);
  EXPECT_EQ(hs.at("cgroup=/b").sample_count, 1u);
  EXPECT_EQ(hs.at("cgroup=unknown").sample_count, 2u);
  EXPECT_DOUBLE_EQ(hs.at("cgroup=unknown").sample_sum, 7);
  EXPECT_EQ(hs.at("cgroup=/a").bucket[1].cumulative_count, 1u);  // le=5
  EXPECT_EQ(hs.at("cgroup=/b").bucket[1].cumulative_count, 0u);
  EXPECT_EQ(hs.at("cgroup=/b").bucket[3].cumulative_count, 1u);  // le=30
}

TEST(AuditMetrics, RemoveCgroupsKeepsUnknown) {
  AuditMetrics m(300);
  for (const char* cg : {"/a", "/b", "/c", ""}) m.observe_close_wait(cg, 1);
  std::set<std::string> asked;
  const size_t removed = m.remove_cgroups([&](const std::string& cg) {
    asked.insert(cg);
    return cg != "/b";  // says "unknown" is gone too
  });
  EXPECT_EQ(removed, 2u);
  EXPECT_EQ(asked.count("/a") + asked.count("/b") + asked.count("/c"), 3u);
  auto hs = histograms(m.families());
  EXPECT_EQ(hs.size(), 2u);
  EXPECT_EQ(hs.count("cgroup=/b"), 1u);
  EXPECT_EQ(hs.count("cgroup=unknown"), 1u);

  EXPECT_EQ(m.remove_cgroups([](const std::string&) { return false; }), 0u);
  EXPECT_EQ(histograms(m.families()).size(), 2u);

  EXPECT_EQ(m.remove_cgroups([](const std::string&) { return true; }), 1u);
  hs = histograms(m.families());
  EXPECT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs.count("cgroup=unknown"), 1u);

  EXPECT_EQ(m.remove_cgroups([](const std::string&) { return true; }), 0u);
}

TEST(AuditMetrics, RemovedCgroupStartsAfresh) {
  AuditMetrics m(300);
  m.observe_close_wait("/a", 100);
  m.observe_close_wait("/a", 200);
  EXPECT_EQ(m.remove_cgroups([](const std::string& cg) { return cg == "/a"; }), 1u);
  m.observe_close_wait("/a", 3);
  const auto hs = histograms(m.families());
  ASSERT_EQ(hs.count("cgroup=/a"), 1u);
  EXPECT_EQ(hs.at("cgroup=/a").sample_count, 1u);
  EXPECT_DOUBLE_EQ(hs.at("cgroup=/a").sample_sum, 3);
}

TEST(AuditMetrics, RemoveCgroupsLeavesTheGauges) {
  AuditMetrics m(300);
  m.update({row("close_wait", "/a", false, 0, 10.0)});
  m.observe_close_wait("/a", 1);
  EXPECT_EQ(m.remove_cgroups([](const std::string&) { return true; }), 1u);
  const auto fams = m.families();
  EXPECT_EQ(gauges(fams, kOldest), (std::map<std::string, double>{{"cgroup=/a", 10}}));
  EXPECT_TRUE(histograms(fams).empty());
}

TEST(AuditMetrics, TextExposition) {
  AuditMetrics m(300);
  m.update({row("established", "/db", false, 600), row("established", "/db", true, 600),
            row("close_wait", "", false, 0, std::nullopt, 42.5)});
  m.observe_close_wait("/db", 5);
  m.observe_close_wait("/db", 7);
  const std::string text = prometheus::TextSerializer().Serialize(m.families());
  EXPECT_THAT(text, HasSubstr("# TYPE tcpka_sockets gauge\n"));
  EXPECT_THAT(text, HasSubstr("tcpka_sockets{cgroup=\"/db\",state=\"established\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("tcpka_sockets{cgroup=\"unknown\",state=\"close_wait\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tcpka_idle_sockets_without_keepalive{cgroup=\"/db\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tcpka_close_wait_oldest_seconds{cgroup=\"unknown\"} 42.5\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE tcpka_close_wait_duration_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("tcpka_close_wait_duration_seconds_bucket{cgroup=\"/db\",le=\"5\"} "
                              "1\n"));
  EXPECT_THAT(text, HasSubstr("tcpka_close_wait_duration_seconds_bucket{cgroup=\"/db\",le=\"15\"} "
                              "2\n"));
  EXPECT_THAT(
      text, HasSubstr("tcpka_close_wait_duration_seconds_bucket{cgroup=\"/db\",le=\"+Inf\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("tcpka_close_wait_duration_seconds_count{cgroup=\"/db\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("tcpka_close_wait_duration_seconds_sum{cgroup=\"/db\"} 12\n"));
  EXPECT_THAT(text, Not(HasSubstr("cgroup=\"\"")));
}

}  // namespace
}  // namespace tcpka
