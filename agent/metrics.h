// The /metrics exposition: renders the aggregator's totals and the agent's
// own health at scrape time, so nothing is mirrored into prometheus-cpp
// objects and removing a series is erasing one map entry.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "aggregator.h"
#include "bpf_loader.h"
#include "k8s.h"
#include "kernel_features.h"
#include "self_check.h"
#include "sockops_policy.h"
#include "startup.h"

namespace tcpka {

struct AgentInfo {
  std::string version;
  std::string revision;
  Plan plan;
  // process_start_time_seconds: counters restart from zero with the
  // process, and this tells rate() and increase() that they did.
  double start_time_seconds = 0;
};

// When this process started, in seconds since the epoch (from /proc, as
// the Prometheus clients compute process_start_time_seconds); now when
// /proc cannot tell.
double process_start_time_seconds();

// What the agent itself lost, besides the kernel's drop counters.
struct AgentCounters {
  std::atomic<uint64_t> decode_errors{0};
  std::atomic<uint64_t> series_removed{0};
  // SIGHUP: whether the last reload was applied, and when the last one that
  // was applied happened (the start counts as one).
  std::atomic<bool> reload_ok{true};
  std::atomic<double> reload_success_time{0};
  // Events read from the keepalive ring, for the self-check: probes, and
  // kills by timeout.
  std::atomic<uint64_t> probes_read{0};
  std::atomic<uint64_t> timeout_kills_read{0};
};


// Where the collector reads live state from at scrape time. Every member has
// a default (no programs, zero drops, the optional ones empty), so a test
// names only what it uses: MetricSources{.policies = ...}. The empty `{}`
// keep -Wmissing-field-initializers quiet about the members it leaves out.
struct MetricSources {
  std::function<std::vector<ProgramState>()> programs = [] { return std::vector<ProgramState>{}; };
  std::function<std::array<uint64_t, TKA_DROP__COUNT>()> drops = [] {
    return std::array<uint64_t, TKA_DROP__COUNT>{};
  };
  std::function<std::vector<PolicySet::Stats>()> policies{};  // may be empty
  // The state records not kept (first sightings and CLOSE_WAIT entries: a
  // full map) and the CLOSE_WAIT ring's drops; may be empty.
  std::function<std::array<uint64_t, 2>()> audit_drops{};
  // More families appended as they are (the audit's); may be empty.
  std::function<std::vector<prometheus::MetricFamily>()> extra{};
  // Pod labels for a cgroup path on Kubernetes nodes; may be empty.
  PodLabeler pod_labels{};
  // The HTTP server's evicted and refused connections; may be empty.
  std::function<std::array<uint64_t, 2>()> http_dropped{};
  // The parts of the agent and whether each runs; may be empty.
  std::function<std::vector<PartState>()> parts{};
  // The self-check, once it has a baseline; may be empty, or return
  // nullopt (off, or not started yet): then it has no series.
  std::function<std::optional<SelfCheckFigures>()> self_check{};
};

class MetricsCollector {
 public:
  MetricsCollector(const Aggregator& agg, AgentInfo info, MetricSources sources,
                   const AgentCounters& counters);
  // The whole text exposition (format 0.0.4) of one scrape.
  std::string render() const;

 private:
  // Every family but the three keepalive ones, which render() writes itself.
  std::vector<prometheus::MetricFamily> families(const Aggregator::Snapshot& snap) const;

  const Aggregator& agg_;
  AgentInfo info_;
  MetricSources src_;
  const AgentCounters& counters_;
  mutable std::atomic<size_t> last_size_{0};  // to reserve the next body at once
};

// The three keepalive families of a snapshot, in the text exposition format.
// Signals the plan does not observe get no series (the family header stays).
void write_keepalive_families(std::string& out, const Aggregator::Snapshot& snap,
                              const PodLabeler& pod_labels, const Plan& plan);

std::string render_metrics(const MetricsCollector& c);

}  // namespace tcpka
