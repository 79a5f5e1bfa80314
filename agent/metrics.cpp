#include "metrics.h"

#include <prometheus/text_serializer.h>

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

namespace tcpka {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void add(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
}

}  // namespace

double process_start_time_seconds() {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::ifstream self("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(self)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');  // comm may hold spaces and parentheses
  if (paren == std::string::npos) return now;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  // Field 22 (starttime, clock ticks after boot) is the 20th after comm.
  for (int i = 0; i < 20 && fields >> field; ++i) {
  }
  std::ifstream proc("/proc/stat");
  double btime = 0;
  for (std::string key; proc >> key;) {
    if (key == "btime") {
      proc >> btime;
      break;
    }
  }
  const long ticks = sysconf(_SC_CLK_TCK);
  if (!fields || btime <= 0 || ticks <= 0) return now;
  return btime + std::stod(field) / static_cast<double>(ticks);
}

MetricsCollector::MetricsCollector(const Aggregator& agg, AgentInfo info, MetricSources sources,
                                   const AgentCounters& counters)
    : agg_(agg), info_(std::move(info)), src_(std::move(sources)), counters_(counters) {}

std::vector<MetricFamily> MetricsCollector::Collect() const {
  const Aggregator::Snapshot snap = agg_.snapshot();
  auto probes =
      family("tcpka_keepalive_probes_sent_total",
             "Keepalive probes sent by the kernel (tcp_keepalive_timer).", MetricType::Counter);
  auto recovered = family("tcpka_keepalive_recovered_total",
                          "Connections whose peer answered after at least one keepalive probe "
                          "went unanswered for a whole interval.",
                          MetricType::Counter);
  auto kills = family("tcpka_keepalive_kills_total",
                      "Connections ended by keepalive: outcome timeout (probes or "
                      "TCP_USER_TIMEOUT ran out) or reset (the peer answered a probe with RST).",
                      MetricType::Counter);
  for (const auto& [key, c] : snap.series) {
    std::vector<ClientMetric::Label> l = {{"cgroup", key.cgroup},
                                          {"direction", std::string(direction_name(key.direction))},
                                          {"port", key.port}};
    add_pod_labels(l, src_.pod_labels, key.cgroup);
    add(probes, l, static_cast<double>(c.probes));
    add(recovered, l, static_cast<double>(c.recovered));
    auto lt = l;
    lt.push_back({"outcome", "timeout"});
    add(kills, lt, static_cast<double>(c.kills_timeout));
    auto lr = l;
    lr.push_back({"outcome", "reset"});
    add(kills, lr, static_cast<double>(c.kills_reset));
  }

  auto build =
      family("tcpka_build_info", "The agent's version and source revision.", MetricType::Gauge);
  add(build, {{"revision", info_.revision}, {"version", info_.version}}, 1);

  auto attached = family("tcpka_bpf_program_attached",
                         "1 when the BPF program is attached, 0 when loaded but not attached.",
                         MetricType::Gauge);
  for (const auto& p : src_.programs()) {
    add(attached, {{"attach", p.attach}, {"program", p.program}}, p.attached ? 1 : 0);
  }

  auto applied = family("tcpka_sockops_keepalive_applied_total",
                        "Connections on which a keepalive policy set SO_KEEPALIVE and the timers.",
                        MetricType::Counter);
  auto kept = family("tcpka_sockops_keepalive_kept_total",
                     "Connections a keepalive policy left alone because the application had "
                     "turned keepalive on itself (policy without override).",
                     MetricType::Counter);
  auto so_errors =
      family("tcpka_sockops_errors_total",
             "bpf_setsockopt/bpf_getsockopt failures of a keepalive policy.", MetricType::Counter);
  const auto policies = src_.policies ? src_.policies() : std::vector<PolicySet::Stats>{};
  for (const auto& pol : policies) {
    add(attached, {{"attach", pol.state.attach}, {"program", pol.state.program}},
        pol.state.attached ? 1 : 0);
    const auto& c = pol.counts;
    auto lab = [&](const char* key, const char* value) {
      std::vector<ClientMetric::Label> l = {{"cgroup", pol.cgroup}, {key, value}};
      add_pod_labels(l, src_.pod_labels, pol.cgroup);
      return l;
    };
    add(applied, lab("direction", "inbound"), static_cast<double>(c[TKA_SO_APPLIED_IN]));
    add(applied, lab("direction", "outbound"), static_cast<double>(c[TKA_SO_APPLIED_OUT]));
    add(kept, lab("direction", "inbound"), static_cast<double>(c[TKA_SO_KEPT_IN]));
    add(kept, lab("direction", "outbound"), static_cast<double>(c[TKA_SO_KEPT_OUT]));
    add(so_errors, lab("option", "so_keepalive"), static_cast<double>(c[TKA_SO_ERR_KEEPALIVE]));
    add(so_errors, lab("option", "tcp_keepidle"), static_cast<double>(c[TKA_SO_ERR_IDLE]));
    add(so_errors, lab("option", "tcp_keepintvl"), static_cast<double>(c[TKA_SO_ERR_INTVL]));
    add(so_errors, lab("option", "tcp_keepcnt"), static_cast<double>(c[TKA_SO_ERR_CNT]));
  }

  auto signals = family("tcpka_signal_info",
                        "How each signal is observed on this kernel (1 = observed, 0 = blind).",
                        MetricType::Gauge);
  for (const auto& s : info_.plan.signals) {
    add(signals,
        {{"attach", s.attach},
         {"backend", std::string(backend_name(info_.plan.backend))},
         {"signal", s.signal}},
        s.available ? 1 : 0);
  }

  auto dropped = family("tcpka_events_dropped_total",
                        "Events lost: ringbuf_full (kernel ring buffer full), socket_map_full "
                        "(no room to track a probed socket: its recovery and end go unseen), "
                        "decode_error (malformed record), state_storage (a state change not "
                        "recorded), close_wait_ringbuf_full (a CLOSE_WAIT duration lost).",
                        MetricType::Counter);
  const auto d = src_.drops();
  add(dropped, {{"reason", "ringbuf_full"}}, static_cast<double>(d[TKA_DROP_RINGBUF]));
  add(dropped, {{"reason", "socket_map_full"}}, static_cast<double>(d[TKA_DROP_SOCKMAP]));
  add(dropped, {{"reason", "decode_error"}},
      static_cast<double>(counters_.decode_errors.load(std::memory_order_relaxed)));
  if (src_.audit_drops) {
    const auto a = src_.audit_drops();
    add(dropped, {{"reason", "state_storage"}}, static_cast<double>(a[0]));
    add(dropped, {{"reason", "close_wait_ringbuf_full"}}, static_cast<double>(a[1]));
  }

  auto start = family("process_start_time_seconds",
                      "Start time of the process since the epoch, in seconds: the agent's "
                      "counters start from zero with it.",
                      MetricType::Gauge);
  add(start, {}, info_.start_time_seconds);
  auto reload_ok = family("tcpka_config_last_reload_successful",
                          "1 when the last SIGHUP reload was applied (or none happened), 0 when "
                          "it was refused and the previous configuration kept.",
                          MetricType::Gauge);
  add(reload_ok, {}, counters_.reload_ok.load(std::memory_order_relaxed) ? 1 : 0);
  auto reload_time = family("tcpka_config_last_reload_success_timestamp_seconds",
                            "When the configuration was last applied (start or SIGHUP), seconds "
                            "since the epoch.",
                            MetricType::Gauge);
  add(reload_time, {}, counters_.reload_success_time.load(std::memory_order_relaxed));

  auto overflow = family("tcpka_series_overflow_total",
                         "Events counted under port=\"other\" because --max-series was reached.",
                         MetricType::Counter);
  add(overflow, {}, static_cast<double>(snap.overflowed_events));

  auto removed =
      family("tcpka_series_removed_total",
             "Label sets removed because their cgroup no longer exists.", MetricType::Counter);
  add(removed, {}, static_cast<double>(counters_.series_removed.load(std::memory_order_relaxed)));

  auto tracked =
      family("tcpka_tracked_sockets", "Sockets with keepalive activity the agent currently tracks.",
             MetricType::Gauge);
  add(tracked, {}, static_cast<double>(snap.sockets));
  auto untracked = family("tcpka_untracked_sockets_total",
                          "Sockets not tracked individually because the socket table was full "
                          "(they are still counted in the totals).",
                          MetricType::Counter);
  add(untracked, {}, static_cast<double>(snap.untracked_sockets));

  std::vector<MetricFamily> out;
  for (auto* f : {&probes, &recovered, &kills, &build, &attached, &signals, &dropped, &start,
                  &reload_ok, &reload_time, &overflow, &removed, &tracked, &untracked}) {
    out.push_back(std::move(*f));
  }
  // Policy families only when policies exist: no empty families.
  if (!policies.empty()) {
    for (auto* f : {&applied, &kept, &so_errors}) out.push_back(std::move(*f));
  }
  if (src_.extra) {
    for (auto& f : src_.extra()) out.push_back(std::move(f));
  }
  return out;
}

std::string render_metrics(const prometheus::Collectable& c) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, c.Collect());
  return out.str();
}

}  // namespace tcpka
