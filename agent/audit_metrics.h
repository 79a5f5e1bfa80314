// Gauges and the CLOSE_WAIT histogram derived from the socket audit.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "audit.h"
#include "k8s.h"

namespace tcpka {

// Buckets of tcpka_close_wait_duration_seconds: 1 s to a day.
inline const std::vector<double> kCloseWaitBuckets = {1,   5,    15,   30,   60,    120,   300,
                                                      600, 1800, 3600, 7200, 14400, 43200, 86400};

class AuditMetrics {
 public:
  explicit AuditMetrics(double idle_threshold) : idle_threshold_(idle_threshold) {}
  // From the next update() on (SIGHUP).
  void set_idle_threshold(double seconds) { idle_threshold_ = seconds; }

  // Replaces the gauges with those of a fresh scan (deduplicated rows):
  // cgroups without sockets simply stop appearing.
  void update(const std::vector<AuditRow>& rows);
  // A socket left CLOSE_WAIT after `seconds` in it.
  void observe_close_wait(const std::string& cgroup, double seconds);
  // Drops the histograms of cgroups gone() says no longer exist.
  size_t remove_cgroups(const std::function<bool(const std::string&)>& gone);
  std::vector<prometheus::MetricFamily> families(const PodLabeler& pod_labels = {}) const;

 private:
  struct Histogram {
    std::vector<uint64_t> buckets = std::vector<uint64_t>(kCloseWaitBuckets.size(), 0);
    uint64_t count = 0;
    double sum = 0;
  };
  std::atomic<double> idle_threshold_;
  mutable std::mutex mu_;
  bool scanned_ = false;
  std::map<std::pair<std::string, std::string>, uint64_t> sockets_;  // (state, cgroup)
  std::map<std::string, uint64_t> idle_no_keepalive_;
  std::map<std::string, double> close_wait_oldest_;
  std::map<std::string, Histogram> close_wait_durations_;
};

}  // namespace tcpka
