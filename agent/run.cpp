// `tcpka run`: the agent. Threads: the ring-buffer poller (events ->
// aggregator), the HTTP server's, and main, which waits for signals, applies
// SIGHUP reloads, reads the web-config files again when they change, and
// removes series of vanished cgroups every --gc-interval seconds.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "aggregator.h"
#include "audit.h"
#include "audit_metrics.h"
#include "cgroup.h"
#include "commands.h"
#include "http_server.h"
#include "metrics.h"
#include "self_check.h"
#include "sockops_policy.h"
#include "startup.h"

#ifndef TCPKA_VERSION
#define TCPKA_VERSION "0.0.0"
#endif
#ifndef TCPKA_REVISION
#define TCPKA_REVISION "unknown"
#endif

namespace tcpka {

namespace {

Result<std::vector<ResolvedPolicy>> resolve_all(const std::vector<PolicySpec>& specs,
                                                const std::string& root) {
  std::vector<ResolvedPolicy> out;
  for (const auto& s : specs) {
    auto p = resolve_policy(s, root);
    if (!p) return Error{p.error()};
    out.push_back(std::move(p.value()));
  }
  return out;
}

// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns().
uint64_t monotonic_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

int run_agent(const RunConfig& cfg, const std::function<Result<RunConfig>()>& reload) {
  SignalWaiter signals;
  const double started = process_start_time_seconds();
  // What is in force: the start's configuration, then each reload's.
  RunConfig live = cfg;
  const ListenAddress listen = parse_listen(cfg.listen).value();

  int status = kExitCannotRun;
  const Features features = probe_features();
  auto planned = plan_start(cfg, features, &status);
  if (!planned) {
    std::fprintf(stderr, "tcpka: %s\n", planned.error().c_str());
    return status;
  }
  Plan plan = std::move(planned.value());
  // Probe events without their socket's cgroup and direction: reading
  // those was ~36 ns of every keepalive expiry in the kernel. The aggregator
  // takes them from the socket's earlier events, else from the audit scan,
  // and has the kernel read them again while it must (on_kernel_labels).
  // The scan walks the tasks of our pid namespace only: in any other, it
  // would not show most sockets, and the kernel labels every probe.
  const bool host_pids = in_initial_pid_namespace();
  if (!host_pids) {
    std::fprintf(stderr,
                 "tcpka: not in the host's pid namespace: the audit sees only this namespace's "
                 "processes (on Kubernetes, run the DaemonSet with hostPID: true)\n");
  }

  // The parts, each loaded on its own: one the kernel refuses leaves the
  // others running (README, "Parts"). The state tracker first, so the audit
  // reads its records; the keepalive programs after the audit, which labels
  // their probes; the policies last, so the kills they cause are all seen.
  std::vector<PartState> parts;
  std::unique_ptr<StateTracker> tracker;
  {
    const std::string gap = part_gap(features, Part::kStateTracker);
    Result<std::unique_ptr<StateTracker>> loaded =
        gap.empty() ? StateTracker::load({plan.plain_loads, true, state_dir_if_possible(),
                                          cfg.close_wait_ringbuf_bytes, cfg.close_wait_slots})
                    : Result<std::unique_ptr<StateTracker>>(Error{gap});
    parts.push_back(part_state(Part::kStateTracker, gap, loaded));
    if (loaded) tracker = std::move(loaded.value());
  }
  std::unique_ptr<AuditBpf> auditor;
  {
    const std::string gap = part_gap(features, Part::kAudit);
    Result<std::unique_ptr<AuditBpf>> loaded =
        gap.empty() ? AuditBpf::load({plan.plain_loads, true, state_pin_if_possible(), tracker.get()})
                    : Result<std::unique_ptr<AuditBpf>>(Error{gap});
    parts.push_back(part_state(Part::kAudit, gap, loaded));
    if (loaded) auditor = std::move(loaded.value());
  }
  std::string audit_why = parts.back().why;
  // Nor the time: reading the clock was ~45 ns of each probe event. The
  // reader stamps a probe when it reads it, which is later, never earlier,
  // than the probe (all the aggregator needs: when a socket was last seen).
  const bool scan_labels = host_pids && auditor;
  std::unique_ptr<KeepaliveBpf> bpf;
  {
    const std::string& gap = plan.keepalive_gap;
    Result<Attached> loaded = gap.empty() ? attach_plan(cfg, plan, !scan_labels, false)
                                          : Result<Attached>(Error{gap});
    parts.push_back(part_state(Part::kKeepalive, gap, loaded));
    if (loaded) {
      bpf = std::move(loaded.value().bpf);
    } else {
      keepalive_off(&plan, parts.back().why);
    }
  }
  if (tracker) tracker->keep_pin(cfg.state_persist);
  if (auditor) auditor->keep_pin(cfg.state_persist);
  const auto root = find_cgroup2_mount();
  CgroupResolver cgroups(root.value_or(""));
  // Replaced whole when a reload changes --k8s-log-root.
  std::mutex pods_mu;
  auto pods = std::make_shared<PodResolver>(cfg.k8s_log_root);
  const PodLabeler pod_labels = [&](const std::string& cg) {
    std::shared_ptr<PodResolver> p;
    {
      std::lock_guard lock(pods_mu);
      p = pods;
    }
    return p->labels(cg);
  };

  Aggregator agg(cfg.max_series, cfg.max_sockets);
  if (scan_labels && bpf) {
    agg.on_kernel_labels([b = bpf.get()](bool on) { b->set_probe_attribution(on); });
  }
  AgentCounters counters;
  AuditMetrics audit_metrics(cfg.idle_threshold);
  if (tracker) {
    if (auto r = tracker->open_events([&](double seconds, uint64_t cgroup_id) {
          audit_metrics.observe_close_wait(cgroups.path(cgroup_id), seconds);
        });
        !r) {
      std::fprintf(stderr, "tcpka: %s\n", r.error().c_str());
      return 1;
    }
  }
  const unsigned hz = kernel_hz();
  std::mutex scan_mu;
  // Rows of a fresh scan. For /sockets (display) in display order, joined
  // with what the agent saw of each socket and its pod; the periodic scan
  // only counts them (audit_metrics), and at 50,000 sockets sorting and
  // joining were half of its cost.
  auto scan_rows = [&](bool display) -> Result<std::vector<AuditRow>> {
    if (!auditor) return Error{"the audit part is off: " + audit_why};
    std::lock_guard lock(scan_mu);
    auto recs = auditor->scan();
    if (!recs) return Error{recs.error()};
    auto rows = decode_scan(
        *recs, hz, [&](uint64_t id) { return cgroups.path(id); }, display);
    if (!display) return rows;
    for (auto& row : rows) {
      row.pod = pod_labels(row.cgroup);
      const auto seen = agg.socket(row.key);
      row.probes_sent = seen ? seen->probes : 0;
      row.kills = seen ? seen->kills : 0;
    }
    return rows;
  };

  // The first scan: a scan that fails turns the audit off like a refusal.
  if (auditor) {
    if (auto rows = scan_rows(false); rows) {
      audit_metrics.update(*rows);
    } else {
      auditor.reset();
      audit_why = "the first scan failed: " + rows.error();
      for (auto& p : parts) {
        if (p.part == Part::kAudit) p = {Part::kAudit, false, audit_why};
      }
    }
  }

  // The policies: whether the kernel takes the program is known here; they
  // are attached only once the agent knows it will run.
  PolicySet policies(cfg.keepalive_persist);
  std::vector<ResolvedPolicy> start_policies;
  if (!cfg.policies.empty()) {
    auto wanted = resolve_all(cfg.policies, root.value_or(""));
    if (!wanted) {
      std::fprintf(stderr, "tcpka: %s\n", wanted.error().c_str());
      return 2;
    }
    start_policies = std::move(wanted.value());
    parts.push_back(policies_state(features));
  }
  auto part_on = [&](Part which) {
    for (const auto& p : parts) {
      if (p.part == which) return p.on;
    }
    return false;
  };
  bool runnable = false;
  for (const auto& p : parts) runnable = runnable || p.on;
  if (!runnable) {
    std::fprintf(stderr, "tcpka: cannot run: no part loads on this kernel\n");
    for (const auto& line : part_lines(parts)) std::fprintf(stderr, "tcpka: %s\n", line.c_str());
    return kExitCannotRun;
  }
  // Degraded: say so before anything else, once per part or signal off.
  for (const auto& line : part_lines(parts)) std::fprintf(stderr, "tcpka: %s\n", line.c_str());
  for (const auto& line : degraded_lines(plan)) std::fprintf(stderr, "tcpka: %s\n", line.c_str());
  if (cfg.strict) {
    if (auto r = require_every_part(parts); !r) {
      std::fprintf(stderr, "tcpka: %s\n", r.error().c_str());
      return kExitStrict;
    }
  }
  // A policy the kernel takes but that cannot be applied (another agent
  // holds the cgroup) is a configuration error, as it always was.
  if (part_on(Part::kPolicies)) {
    if (auto r = policies.reconcile(start_policies); !r) {
      std::fprintf(stderr, "tcpka: keepalive policy: %s\n", r.error().c_str());
      return 1;
    }
  }
  // Read by the metrics and /healthz; a SIGHUP that adds the first policies
  // adds their part.
  std::mutex parts_mu;

  if (bpf) {
    if (auto r = bpf->open_events([&](const void* data, size_t size) {
          Event e;
          if (!decode_event(data, size, &e)) {
            counters.decode_errors.fetch_add(1, std::memory_order_relaxed);
            return;
          }
          if (e.kind == EventKind::kProbe) {
            counters.probes_read.fetch_add(1, std::memory_order_relaxed);
          } else if (e.kind == EventKind::kKill && e.outcome == Outcome::kTimeout) {
            counters.timeout_kills_read.fetch_add(1, std::memory_order_relaxed);
          }
          if (!e.ts_ns) e.ts_ns = monotonic_ns();  // a probe, unstamped (see attach_plan)
          agg.add(e, [&cgroups](uint64_t id) { return cgroups.path(id); });
        });
        !r) {
      std::fprintf(stderr, "tcpka: %s\n", r.error().c_str());
      return 1;
    }
  }

  // The self-check (agent/self_check.h): only where the agent counts probes.
  const bool self_check_on = bpf && observed(plan, "probe");
  SelfCheck self_check;
  std::mutex self_check_mu;

  // The server, for its counters, once it runs (scrapes read it from its
  // own threads).
  std::atomic<const HttpServer*> http{nullptr};
  // The programs of the parts that run.
  auto collector_programs = [&] {
    std::vector<ProgramState> p;
    if (bpf) p = bpf->programs();
    if (auditor) {
      for (auto& a : auditor->programs()) p.push_back(std::move(a));
    }
    if (tracker) {
      for (auto& a : tracker->programs()) p.push_back(std::move(a));
    }
    return p;
  };
  MetricsCollector collector(
      agg, AgentInfo{TCPKA_VERSION, TCPKA_REVISION, plan, started},
      MetricSources{collector_programs,
                    [&] {
                      return bpf ? bpf->drops() : std::array<uint64_t, TKA_DROP__COUNT>{};
                    },
                    [&policies] { return policies.stats(); },
                    [&] {
                      const auto t = tracker ? tracker->drops()
                                             : std::array<uint64_t, TKA_STATE_DROP__COUNT>{};
                      const uint64_t seen = auditor ? auditor->drops() : 0;
                      return std::array<uint64_t, 2>{t[TKA_STATE_DROP_MORE_FULL] + seen,
                                                     t[TKA_STATE_DROP_RINGBUF]};
                    },
                    [&] { return audit_metrics.families(pod_labels); }, pod_labels,
                    [&http] {
                      const HttpServer* s = http.load();
                      return s ? std::array<uint64_t, 2>{s->evicted(), s->refused()}
                               : std::array<uint64_t, 2>{};
                    },
                    [&] {
                      std::lock_guard lock(parts_mu);
                      return parts;
                    },
                    [&]() -> std::optional<SelfCheckFigures> {
                      std::lock_guard lock(self_check_mu);
                      if (!self_check.started()) return std::nullopt;
                      return self_check.figures();
                    }},
      counters);

  counters.reload_success_time = unix_now();
  std::atomic<bool> stop{false};
  std::atomic<uint32_t> audit_interval{cfg.audit_interval};
  // The readers sleep in epoll for up to a second: the BPF programs submit
  // without a wake-up (one per event, an irq_work each, tripled the state
  // tracker's cost) unless a quarter of the ring waits, and kills wake at
  // once. Waking on short sleep timers instead was most of the agent's idle
  // CPU (25 wakeups a second, tests/bench/RESULTS.md). The 250 ms this once
  // was did not make counting exact: the probes it seemed to lose never
  // reached BPF at all (RESULTS.md, "Probes BPF is not shown").
  constexpr int kPollMs = 1000;
  // Whether each reader still reads its ring (a failed poll ends it).
  std::atomic<bool> polling{true}, tracker_polling{true};
  // Polls of the keepalive ring completed, each followed by a full consume:
  // the self-check reads the agent's count two of them after the kernel's.
  std::atomic<uint64_t> poll_rounds{0};
  std::thread audit_poller([&] {
    if (!tracker) return;
    while (!stop.load()) {
      const int n = tracker->poll(kPollMs);
      if (n < 0 && n != -EINTR) {
        std::fprintf(stderr, "tcpka: state tracker ring buffer poll failed: %s\n", strerror(-n));
        tracker_polling = false;
        break;
      }
    }
    tracker->consume();
  });
  std::thread poller([&] {
    if (!bpf) return;
    while (!stop.load()) {
      const int n = bpf->poll(kPollMs);
      if (n < 0 && n != -EINTR) {
        std::fprintf(stderr, "tcpka: ring buffer poll failed: %s\n", strerror(-n));
        polling = false;
        break;
      }
      poll_rounds.fetch_add(1, std::memory_order_release);
    }
  });

  std::map<std::string, HttpHandler> routes;
  routes["/metrics"] = [&](const HttpRequest&) {
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", render_metrics(collector)};
  };
  routes["/sockets"] = [&](const HttpRequest& req) {
    auto filter = parse_filter_query(req.query);
    if (!filter) return HttpResponse{400, "text/plain; charset=utf-8", filter.error() + "\n"};
    if (!auditor) {
      return HttpResponse{503, "text/plain; charset=utf-8",
                          "the audit part is off: " + audit_why + "\n"};
    }
    auto rows = scan_rows(true);
    if (!rows) return HttpResponse{500, "text/plain; charset=utf-8", rows.error() + "\n"};
    std::vector<AuditRow> shown;
    for (auto& r : *rows) {
      if (matches(r, *filter)) shown.push_back(std::move(r));
    }
    return HttpResponse{200, "application/json", rows_to_json(shown)};
  };
  // 200 while every part that started runs: "ok", or "degraded: ..." when
  // a part or signal is off on this kernel (restarting would not help, so
  // a liveness probe must not fail on it); 503 once a part that started
  // stopped (README, "Health").
  routes["/healthz"] = [&](const HttpRequest&) {
    bool ok = polling.load() && tracker_polling.load();
    for (const auto& p : collector_programs()) ok = ok && p.attached;
    std::string text;
    {
      std::lock_guard lock(parts_mu);
      text = health_text(plan, parts);
    }
    return ok ? HttpResponse{200, "text/plain; charset=utf-8", text + "\n"}
              : HttpResponse{503, "text/plain; charset=utf-8", "not attached or not polling\n"};
  };
  routes["/"] = [](const HttpRequest&) {
    return HttpResponse{200, "text/html; charset=utf-8",
                        "<html><body><h1>tcpka</h1><p><a href=\"/metrics\">/metrics</a> "
                        "<a href=\"/sockets\">/sockets</a> "
                        "<a href=\"/healthz\">/healthz</a></p></body></html>\n"};
  };
  // /healthz answers without basic auth: kubelet probes cannot send it, and
  // it tells no more than whether the agent works (TLS still applies).
  HttpSecurity security{nullptr, {"/healthz"}};
  // The web-config file in force, and its files as last read.
  WebConfigWatch web_watch(cfg.web_config_file);
  if (!cfg.web_config_file.empty()) {
    auto web = web_watch.load();
    if (!web) {
      stop = true;
      poller.join();
      audit_poller.join();
      std::fprintf(stderr, "tcpka: --web-config-file: %s\n", web.error().c_str());
      return 2;
    }
    security.web = std::move(web.value());
  }
  const bool tls = security.web && security.web->tls;
  auto server = HttpServer::start(listen, std::move(routes), {}, std::move(security));
  if (!server) {
    stop = true;
    poller.join();
    audit_poller.join();
    std::fprintf(stderr, "tcpka: %s\n", server.error().c_str());
    return 1;
  }
  http = server.value().get();
  std::fprintf(stderr, "tcpka: serving %s on %s (backend %s)\n", tls ? "https" : "http",
               cfg.listen.c_str(), std::string(backend_name(plan.backend)).c_str());

  // The periodic scan sleeps until it is due, or until stop or a SIGHUP
  // with a new interval wakes it. Probes of a socket no scan has shown yet
  // wait for one (Aggregator::add): while some wait, a scan comes within
  // kAttributeWithin of the last one whatever --audit-interval says. With an
  // interval longer than that, it wakes once a second to look (the main
  // thread does anyway); with the default it has no timer of its own (see
  // the readers above).
  constexpr auto kAttributeWithin = std::chrono::seconds(5);
  std::mutex scanner_mu;
  std::condition_variable scanner_cv;
  bool scanner_kick = false;
  std::thread scanner([&] {
    auto last = std::chrono::steady_clock::now();
    std::unique_lock lock(scanner_mu);
    while (!auditor && !stop.load()) scanner_cv.wait(lock);
    while (!stop.load()) {
      const auto interval = std::chrono::seconds(audit_interval.load());
      const auto next = last + interval;
      const bool early = interval > kAttributeWithin;
      const auto wake =
          early ? std::min(next, std::chrono::steady_clock::now() + std::chrono::seconds(1)) : next;
      scanner_cv.wait_until(lock, wake, [&] { return stop.load() || scanner_kick; });
      if (stop.load()) break;
      if (scanner_kick) {  // the interval changed: due time from the last scan
        scanner_kick = false;
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      auto awaiting_scan = [&] {
        const Aggregator::Held h = agg.held();
        return h.sockets > h.unseen;  // the unseen wait for the kernel's labels
      };
      if (now < next && !(early && now >= last + kAttributeWithin && awaiting_scan())) continue;
      lock.unlock();
      const uint64_t t0 = monotonic_ns();
      if (auto rows = scan_rows(false); rows) {
        audit_metrics.update(*rows);
        // Probes waiting for their socket's cgroup and direction get them,
        // and the per-socket table forgets sockets whose gone event never came.
        agg.sweep(t0, [&](const Aggregator::LiveVisitor& visit) {
          for (const auto& r : *rows) visit(r.key, r.cookie, r.cgroup_id, r.cgroup, r.direction);
        });
      }
      last = std::chrono::steady_clock::now();
      lock.lock();
    }
  });
  auto stop_scanner = [&] {
    {
      std::lock_guard lock(scanner_mu);
      stop = true;
    }
    scanner_cv.notify_all();
  };

  // SIGHUP: the configuration read again as at start (the config file,
  // then the command line over it). All of it or nothing: a file that does
  // not parse or validate changes nothing.
  auto next_gc = std::chrono::steady_clock::now() + std::chrono::seconds(cfg.gc_interval);
  auto reload_config = [&]() -> Result<void> {
    auto next = reload();
    if (!next) return Error{next.error()};
    const ReloadPlan plan = plan_reload(live, *next);
    const RunConfig& want = plan.applied;
    // The web-config file (its certificates too) before anything changes:
    // one that does not load fails the whole reload.
    std::shared_ptr<WebSecurity> web;
    WebConfigWatch next_watch(want.web_config_file);
    if (!want.web_config_file.empty()) {
      auto w = next_watch.load();
      if (!w) {
        // Failed as it is now: the check for changed files need not try
        // it again. (Refused later with the policies instead, it would.)
        if (want.web_config_file == web_watch.path()) web_watch = std::move(next_watch);
        return Error{"--web-config-file: " + w.error()};
      }
      web = std::move(w.value());
    }
    // Policies next: the one step the kernel may refuse.
    auto wanted = resolve_all(want.policies, root.value_or(""));
    if (!wanted) return Error{wanted.error()};
    // The policies' part: decided by the first start that had policies; a
    // reload that brings the first ones asks the kernel then.
    std::optional<PartState> policies_part;
    {
      std::lock_guard lock(parts_mu);
      for (const auto& p : parts) {
        if (p.part == Part::kPolicies) policies_part = p;
      }
    }
    if (!wanted->empty() && !policies_part) {
      if (auto c = check_capabilities({true, false}); !c) return Error{c.error()};
      policies_part = policies_state(features);
      std::lock_guard lock(parts_mu);
      parts.push_back(*policies_part);
    }
    if (policies_part && !policies_part->on) {
      if (!wanted->empty()) {
        std::fprintf(stderr, "tcpka: SIGHUP: the keepalive policies are off (%s): not applied\n",
                     policies_part->why.c_str());
      }
    } else if (auto r = policies.reconcile(*wanted); !r) {
      return Error{"keepalive policy: " + r.error()};
    }
    agg.set_max_series(want.max_series);
    audit_metrics.set_idle_threshold(want.idle_threshold);
    if (want.audit_interval != audit_interval.load()) {
      {
        std::lock_guard lock(scanner_mu);
        audit_interval = want.audit_interval;
        scanner_kick = true;
      }
      scanner_cv.notify_all();
    }
    if (want.gc_interval != live.gc_interval) {
      next_gc = std::chrono::steady_clock::now() + std::chrono::seconds(want.gc_interval);
    }
    if (want.k8s_log_root != live.k8s_log_root) {
      auto fresh = std::make_shared<PodResolver>(want.k8s_log_root);
      std::lock_guard lock(pods_mu);
      pods = std::move(fresh);
    }
    if (auditor) auditor->keep_pin(want.state_persist);
    if (tracker) tracker->keep_pin(want.state_persist);
    server.value()->set_web(std::move(web));
    web_watch = std::move(next_watch);
    for (const auto& key : plan.restart) {
      std::fprintf(stderr,
                   "tcpka: SIGHUP: '%s' changed but needs a restart; the running value is kept\n",
                   key.c_str());
    }
    live = want;
    return {};
  };

  // tcpka_config_last_reload_successful and its _seconds timestamp, for a
  // SIGHUP and for a changed web-config file alike.
  auto reloaded = [&](bool ok) {
    counters.reload_ok = ok;
    if (ok) counters.reload_success_time = unix_now();
  };

  // The self-check's window: the kernel's counts at its end, read before
  // the agent's, which waits for two more polls of the ring (a probe the
  // kernel counted was submitted microseconds later, and a poll reads all
  // that was submitted before it began).
  std::optional<NetnsCounts> check_kernel;
  uint64_t check_round = 0;
  bool check_was_blind = false;
  auto next_check = std::chrono::steady_clock::now();
  auto self_check_step = [&] {
    if (!self_check_on || !live.self_check_interval) {
      // Off (by SIGHUP too): its series go, and it starts again from a
      // baseline when turned on.
      check_kernel.reset();
      check_was_blind = false;
      std::lock_guard lock(self_check_mu);
      if (self_check.started()) self_check = SelfCheck{};
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!check_kernel) {
      if (now < next_check) return;
      NetnsCounts kernel = read_netns_counts();
      bool baseline = false;
      {
        std::lock_guard lock(self_check_mu);
        if (!self_check.started()) {
          // The baseline takes the agent's count of now, not after the
          // drain: the probes sent during the drain would be in the
          // kernel's first window and in no window of the agent's. Now it
          // is never ahead of the kernel's (the kernel counts a probe
          // before its event exists); what it lags is a surplus later.
          self_check.feed(kernel, counters.probes_read.load(std::memory_order_relaxed),
                          counters.timeout_kills_read.load(std::memory_order_relaxed));
          baseline = true;
        }
      }
      if (baseline) {
        next_check = now + std::chrono::seconds(live.self_check_interval);
        return;
      }
      check_kernel = std::move(kernel);
      check_round = poll_rounds.load(std::memory_order_acquire);
      return;
    }
    if (poll_rounds.load(std::memory_order_acquire) < check_round + 2 && polling.load()) return;
    SelfCheck::Window w;
    {
      std::lock_guard lock(self_check_mu);
      w = self_check.feed(*check_kernel, counters.probes_read.load(std::memory_order_relaxed),
                          counters.timeout_kills_read.load(std::memory_order_relaxed));
    }
    check_kernel.reset();
    next_check = now + std::chrono::seconds(live.self_check_interval);
    // Said when it starts and when it ends, not every window.
    if (w.unseen && !check_was_blind) {
      std::fprintf(stderr,
                   "tcpka: self-check: the kernel sent %llu keepalive probes in the last window "
                   "that the agent did not see (of %llu; tcpka_self_check_window_unseen_probes)\n",
                   static_cast<unsigned long long>(w.unseen),
                   static_cast<unsigned long long>(w.kernel_probes));
    } else if (!w.unseen && check_was_blind) {
      std::fprintf(stderr, "tcpka: self-check: the agent saw every probe of the last window\n");
    }
    check_was_blind = w.unseen != 0;
  };

  for (;;) {
    self_check_step();
    const int sig = signals.wait(std::chrono::seconds(1));
    if (sig == SIGINT || sig == SIGTERM) break;
    if (sig == SIGHUP) {
      if (auto r = reload_config(); r) {
        reloaded(true);
        std::fprintf(stderr, "tcpka: SIGHUP: configuration and keepalive policies reloaded\n");
      } else {
        reloaded(false);
        std::string why = r.error();
        while (!why.empty() && why.back() == '\n') why.pop_back();
        if (why.rfind("tcpka: ", 0) == 0) why.erase(0, 7);
        std::fprintf(stderr, "tcpka: SIGHUP: reload failed, kept the previous configuration: %s\n",
                     why.c_str());
      }
    }
    // Certificates are rotated by rewriting their files (cert-manager, a
    // Secret volume), with no signal: a change to any file of the web
    // config is read within a second, as exporter-toolkit reads its file for
    // each connection. One that does not load (a key written before its
    // certificate) leaves the previous one serving until the next change.
    if (web_watch.changed()) {
      const std::string& path = web_watch.path();
      if (auto w = web_watch.load(); w) {
        server.value()->set_web(std::move(w.value()));
        reloaded(true);
        std::fprintf(stderr, "tcpka: web config %s changed: reloaded\n", path.c_str());
      } else {
        reloaded(false);
        std::fprintf(stderr, "tcpka: web config %s changed: reload failed, kept the previous: %s\n",
                     path.c_str(), w.error().c_str());
      }
    }
    if (std::chrono::steady_clock::now() >= next_gc) {
      const size_t removed =
          agg.remove_cgroups([&](const std::string& cg) { return !cgroups.exists(cg); });
      counters.series_removed.fetch_add(
          removed + audit_metrics.remove_cgroups(
                        [&](const std::string& cg) { return !cgroups.exists(cg); }),
          std::memory_order_relaxed);
      next_gc = std::chrono::steady_clock::now() + std::chrono::seconds(live.gc_interval);
    }
  }
  http = nullptr;
  server.value().reset();
  stop_scanner();
  poller.join();
  audit_poller.join();
  scanner.join();
  return 0;
}

}  // namespace tcpka
