#include "audit_metrics.h"

#include <algorithm>

#include "aggregator.h"

namespace tcpka {

namespace {

std::string label_cgroup(const std::string& cg) {
  return cg.empty() ? std::string(kUnknownCgroup) : cg;
}

}  // namespace

void AuditMetrics::update(const std::vector<AuditRow>& rows) {
  std::map<std::pair<std::string, std::string>, uint64_t> sockets;
  std::map<std::string, uint64_t> idle;
  std::map<std::string, double> oldest;
  const double idle_threshold = idle_threshold_;
  for (const AuditRow& r : rows) {
    const std::string cg = label_cgroup(r.cgroup);
    ++sockets[{r.state, cg}];
    if (r.state == "established" && !r.keepalive && r.idle_seconds >= idle_threshold) {
      ++idle[cg];
    }
    if (r.state == "close_wait") {
      // A lower bound where the agent did not see the socket enter the state.
      const double age = state_age(r).value_or(0);
      auto [it, fresh] = oldest.emplace(cg, age);
      if (!fresh) it->second = std::max(it->second, age);
    }
  }
  std::lock_guard lock(mu_);
  scanned_ = true;
  sockets_ = std::move(sockets);
  idle_no_keepalive_ = std::move(idle);
  close_wait_oldest_ = std::move(oldest);
}

void AuditMetrics::observe_close_wait(const std::string& cgroup, double seconds) {
  std::lock_guard lock(mu_);
  Histogram& h = close_wait_durations_[label_cgroup(cgroup)];
  for (size_t i = 0; i < kCloseWaitBuckets.size(); ++i) {
    if (seconds <= kCloseWaitBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

size_t AuditMetrics::remove_cgroups(const std::function<bool(const std::string&)>& gone) {
  std::lock_guard lock(mu_);
  size_t removed = 0;
  for (auto it = close_wait_durations_.begin(); it != close_wait_durations_.end();) {
    if (it->first != kUnknownCgroup && gone(it->first)) {
      it = close_wait_durations_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

std::vector<prometheus::MetricFamily> AuditMetrics::families(const PodLabeler& pod_labels) const {
  using prometheus::ClientMetric;
  using prometheus::MetricFamily;
  using prometheus::MetricType;
  std::lock_guard lock(mu_);
  MetricFamily sockets{"tcpka_sockets",
                       "TCP sockets held by processes, by state and owning cgroup, at the last "
                       "audit scan.",
                       MetricType::Gauge,
                       {}};
  for (const auto& [key, n] : sockets_) {
    ClientMetric m;
    m.label = {{"cgroup", key.second}, {"state", key.first}};
    add_pod_labels(m.label, pod_labels, key.second);
    m.gauge.value = static_cast<double>(n);
    sockets.metric.push_back(std::move(m));
  }
  MetricFamily idle{"tcpka_idle_sockets_without_keepalive",
                    "ESTABLISHED sockets without SO_KEEPALIVE that received nothing for at least "
                    "--idle-threshold seconds: half-open suspects nothing will clean up.",
                    MetricType::Gauge,
                    {}};
  for (const auto& [cg, n] : idle_no_keepalive_) {
    ClientMetric m;
    m.label = {{"cgroup", cg}};
    add_pod_labels(m.label, pod_labels, cg);
    m.gauge.value = static_cast<double>(n);
    idle.metric.push_back(std::move(m));
  }
  MetricFamily oldest{"tcpka_close_wait_oldest_seconds",
                      "Age of the oldest CLOSE_WAIT socket (a lower bound for sockets already in "
                      "CLOSE_WAIT when the agent started).",
                      MetricType::Gauge,
                      {}};
  for (const auto& [cg, age] : close_wait_oldest_) {
    ClientMetric m;
    m.label = {{"cgroup", cg}};
    add_pod_labels(m.label, pod_labels, cg);
    m.gauge.value = age;
    oldest.metric.push_back(std::move(m));
  }
  MetricFamily durations{"tcpka_close_wait_duration_seconds",
                         "Time sockets spent in CLOSE_WAIT before the application closed them, "
                         "for sockets the agent saw enter CLOSE_WAIT.",
                         MetricType::Histogram,
                         {}};
  for (const auto& [cg, h] : close_wait_durations_) {
    ClientMetric m;
    m.label = {{"cgroup", cg}};
    add_pod_labels(m.label, pod_labels, cg);
    m.histogram.sample_count = h.count;
    m.histogram.sample_sum = h.sum;
    for (size_t i = 0; i < kCloseWaitBuckets.size(); ++i) {
      m.histogram.bucket.push_back({h.buckets[i], kCloseWaitBuckets[i]});
    }
    m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
    durations.metric.push_back(std::move(m));
  }
  std::vector<MetricFamily> out;
  if (scanned_) {
    out.push_back(std::move(sockets));
    out.push_back(std::move(idle));
    out.push_back(std::move(oldest));
  }
  out.push_back(std::move(durations));
  return out;
}

}  // namespace tcpka
