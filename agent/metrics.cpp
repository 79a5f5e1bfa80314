#include "metrics.h"

#include <prometheus/text_serializer.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>

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

namespace {

// The text exposition, written directly: at 10,000 label sets the three
// keepalive families are 40,000 samples, and building them as prometheus-cpp
// ClientMetric objects and serialising those through an ostream took ~58 ms
// per scrape (tests/bench/RESULTS.md). Same bytes as TextSerializer for our
// names and help texts (the unit tests compare the two).
void append_escaped(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

// Label values as valid UTF-8 (U+FFFD for stray bytes), escaped.
void append_label_value(std::string& out, std::string_view v) {
  if (std::all_of(v.begin(), v.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    append_escaped(out, v);
    return;
  }
  std::string valid;
  append_valid_utf8(valid, v);
  append_escaped(out, valid);
}

void append_header(std::string& out, std::string_view name, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += " counter\n";
}

struct Label {
  std::string_view name;
  std::string_view value;
};

void append_sample(std::string& out, std::string_view name, const Label* labels, size_t n,
                   uint64_t value) {
  out += name;
  if (n) {
    out += '{';
    for (size_t i = 0; i < n; ++i) {
      if (i) out += ',';
      out += labels[i].name;
      out += "=\"";
      append_label_value(out, labels[i].value);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, r.ptr);
  out += '\n';
}

constexpr std::string_view kProbesName = "tcpka_keepalive_probes_sent_total";
constexpr std::string_view kProbesHelp = "Keepalive probes sent by the kernel (tcp_keepalive_timer).";
constexpr std::string_view kRecoveredName = "tcpka_keepalive_recovered_total";
constexpr std::string_view kRecoveredHelp =
    "Connections whose peer answered after at least one keepalive probe went unanswered for a "
    "whole interval.";
constexpr std::string_view kKillsName = "tcpka_keepalive_kills_total";
constexpr std::string_view kKillsHelp =
    "Connections ended by keepalive: outcome timeout (probes or TCP_USER_TIMEOUT ran out) or "
    "reset (the peer answered a probe with RST).";

}  // namespace

void write_keepalive_families(std::string& out, const Aggregator::Snapshot& snap,
                              const PodLabeler& pod_labels, const Plan& plan) {
  // A signal the kernel cannot show has no series at all: a 0 would read as
  // a measurement ("no kill by reset") when nothing was measured.
  const bool see_probe = observed(plan, "probe"), see_recovered = observed(plan, "recovered"),
             see_timeout = observed(plan, "kill_timeout"), see_reset = observed(plan, "kill_reset");
  // Pod labels per cgroup, resolved once per scrape: many label sets share one cgroup.
  std::map<std::string_view, std::optional<PodLabels>> pods;
  auto pod_of = [&](const std::string& cgroup) -> const std::optional<PodLabels>& {
    auto it = pods.find(cgroup);
    if (it == pods.end()) {
      it = pods.emplace(cgroup, pod_labels ? pod_labels(cgroup) : std::nullopt).first;
    }
    return it->second;
  };
  // Labels in the order the families have always had: cgroup, direction,
  // port, then container, namespace, pod, then outcome.
  auto labels_of = [&](const SeriesKey& key, std::array<Label, 7>& l) {
    size_t n = 0;
    l[n++] = {"cgroup", key.cgroup};
    l[n++] = {"direction", direction_name(key.direction)};
    l[n++] = {"port", key.port};
    if (const auto& p = pod_of(key.cgroup)) {
      l[n++] = {"container", p->container};
      l[n++] = {"namespace", p->namespace_};
      l[n++] = {"pod", p->pod};
    }
    return n;
  };
  std::array<Label, 7> l;
  append_header(out, kProbesName, kProbesHelp);
  if (see_probe) {
    for (const auto& [key, c] : snap.series) {
      append_sample(out, kProbesName, l.data(), labels_of(key, l), c.probes);
    }
  }
  append_header(out, kRecoveredName, kRecoveredHelp);
  if (see_recovered) {
    for (const auto& [key, c] : snap.series) {
      append_sample(out, kRecoveredName, l.data(), labels_of(key, l), c.recovered);
    }
  }
  append_header(out, kKillsName, kKillsHelp);
  for (const auto& [key, c] : snap.series) {
    if (!see_timeout && !see_reset) break;
    size_t n = labels_of(key, l);
    if (see_timeout) {
      l[n] = {"outcome", "timeout"};
      append_sample(out, kKillsName, l.data(), n + 1, c.kills_timeout);
    }
    if (see_reset) {
      l[n] = {"outcome", "reset"};
      append_sample(out, kKillsName, l.data(), n + 1, c.kills_reset);
    }
  }
}

std::vector<MetricFamily> MetricsCollector::families(const Aggregator::Snapshot& snap) const {
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
             "bpf_setsockopt failures of a keepalive policy.", MetricType::Counter);
  auto unknown = family(
      "tcpka_sockops_own_keepalive_unknown_total",
      "Connections of a keepalive policy whose own SO_KEEPALIVE the kernel could not report "
      "(bpf_getsockopt(SOL_SOCKET) before Linux 6.1): the policy was applied, as with override.",
      MetricType::Counter);
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
    add(unknown, lab("direction", "inbound"), static_cast<double>(c[TKA_SO_UNKNOWN_IN]));
    add(unknown, lab("direction", "outbound"), static_cast<double>(c[TKA_SO_UNKNOWN_OUT]));
  }

  auto signals = family("tcpka_signal_info",
                        "How each signal is observed on this kernel: 1 = observed through "
                        "attach, 0 = not observed (attach=\"none\"; the signal's series are "
                        "left out).",
                        MetricType::Gauge);
  for (const auto& s : info_.plan.signals) {
    add(signals,
        {{"attach", s.available ? s.attach : "none"},
         {"backend", std::string(backend_name(info_.plan.backend))},
         {"signal", s.signal}},
        s.available ? 1 : 0);
  }

  auto dropped = family("tcpka_events_dropped_total",
                        "Events lost: ringbuf_full (kernel ring buffer full), socket_map_full "
                        "(no room to remember an unanswered socket: its recovery goes unseen), "
                        "decode_error (malformed record), state_storage (a CLOSE_WAIT entry "
                        "time or a first sighting not recorded: its age shows as unknown or a "
                        "lower bound), close_wait_ringbuf_full (a CLOSE_WAIT duration lost).",
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
                          "1 when the last reload (SIGHUP, or a change to the web-config "
                          "files) was applied or none happened, 0 when it was refused and the "
                          "previous configuration kept.",
                          MetricType::Gauge);
  add(reload_ok, {}, counters_.reload_ok.load(std::memory_order_relaxed) ? 1 : 0);
  auto reload_time = family("tcpka_config_last_reload_success_timestamp_seconds",
                            "When the configuration was last applied (start, SIGHUP or a "
                            "web-config change), seconds since the epoch.",
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
  for (auto* f : {&build, &attached, &signals, &dropped, &start, &reload_ok, &reload_time,
                  &overflow, &removed, &tracked, &untracked}) {
    out.push_back(std::move(*f));
  }
  if (src_.parts) {
    auto parts = family("tcpka_part_up",
                        "1 when the part runs, 0 when it is off on this kernel (not supported, "
                        "or its BPF programs were refused; the log and `tcpka check` say why). "
                        "Parts: keepalive, audit, state_tracker, and policies when configured.",
                        MetricType::Gauge);
    for (const auto& p : src_.parts()) {
      add(parts, {{"part", std::string(part_name(p.part))}}, p.on ? 1 : 0);
    }
    out.push_back(std::move(parts));
  }
  if (src_.http_dropped) {
    auto http = family("tcpka_http_connections_dropped_total",
                       "HTTP connections the endpoint gave up on to stay bounded, by reason: "
                       "evicted (closed unanswered, the oldest one still sending its request, "
                       "to make room at the connection cap), refused (a 503 at once: every "
                       "connection was being answered).",
                       MetricType::Counter);
    const auto h = src_.http_dropped();
    add(http, {{"reason", "evicted"}}, static_cast<double>(h[0]));
    add(http, {{"reason", "refused"}}, static_cast<double>(h[1]));
    out.push_back(std::move(http));
  }
  if (const auto sc = src_.self_check ? src_.self_check() : std::nullopt) {
    auto probes = family(
        "tcpka_self_check_probes_total",
        "Keepalive probes since the self-check started: source=\"kernel\" is TcpExtTCPKeepAlive's "
        "increase in the network namespaces the agent reads (/proc/PID/net/netstat of every task "
        "it sees), source=\"agent\" the probes its BPF programs reported. The agent's is the "
        "larger when some namespaces have no task it can see.",
        MetricType::Counter);
    add(probes, {{"source", "kernel"}}, static_cast<double>(sc->kernel_probes));
    add(probes, {{"source", "agent"}}, static_cast<double>(sc->agent_probes));
    auto timeouts = family(
        "tcpka_self_check_timeouts_total",
        "Connections killed by a timeout since the self-check started: source=\"kernel\" is "
        "TcpExtTCPAbortOnTimeout's increase in the namespaces the agent reads (keepalive, "
        "retransmission and other timeouts), source=\"agent\" the keepalive kills by timeout the "
        "agent saw, a part of the kernel's.",
        MetricType::Counter);
    add(timeouts, {{"source", "kernel"}}, static_cast<double>(sc->kernel_timeouts));
    add(timeouts, {{"source", "agent"}}, static_cast<double>(sc->agent_timeouts));
    auto unseen = family("tcpka_self_check_window_unseen_probes",
                         "Keepalive probes the kernel counted in the last self-check window "
                         "(--self-check-interval) beyond those the agent saw. Above 0 the agent "
                         "is blind to some probes: a full ring buffer, or a hook that no longer "
                         "fires on this kernel.",
                         MetricType::Gauge);
    add(unseen, {}, static_cast<double>(sc->last_unseen));
    auto unseen_total = family("tcpka_keepalive_probes_unseen_total",
                               "The sum of tcpka_self_check_window_unseen_probes over every "
                               "self-check window.",
                               MetricType::Counter);
    add(unseen_total, {}, static_cast<double>(sc->unseen_total));
    auto netns = family("tcpka_self_check_namespaces",
                        "Network namespaces whose TcpExt counters the last self-check read.",
                        MetricType::Gauge);
    add(netns, {}, static_cast<double>(sc->namespaces));
    for (auto* f : {&probes, &timeouts, &unseen, &unseen_total, &netns}) out.push_back(std::move(*f));
  }
  // Policy families only when policies exist: no empty families.
  if (!policies.empty()) {
    for (auto* f : {&applied, &kept, &so_errors, &unknown}) out.push_back(std::move(*f));
  }
  if (src_.extra) {
    for (auto& f : src_.extra()) out.push_back(std::move(f));
  }
  return out;
}

std::string MetricsCollector::render() const {
  std::string out;
  out.reserve(last_size_.load(std::memory_order_relaxed) + 4096);
  const Aggregator::Snapshot snap = agg_.snapshot();
  write_keepalive_families(out, snap, src_.pod_labels, info_.plan);
  // The other families are few samples: prometheus-cpp writes them.
  std::ostringstream rest;
  prometheus::TextSerializer().Serialize(rest, families(snap));
  // Their label values (cgroup, pod names) are bytes too: make them UTF-8.
  append_valid_utf8(out, rest.view());
  last_size_.store(out.size(), std::memory_order_relaxed);
  return out;
}

std::string render_metrics(const MetricsCollector& c) { return c.render(); }

}  // namespace tcpka
