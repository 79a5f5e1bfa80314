#include "startup.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <fstream>

#include "sockops_policy.h"

namespace tcpka {

namespace {

std::string sysctl(const char* path) {
  std::ifstream in(path);
  std::string v;
  in >> v;
  return v.empty() ? "?" : v;
}

}  // namespace

bool has_capability(int cap) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return false;
  return (data[CAP_TO_INDEX(cap)].effective & CAP_TO_MASK(cap)) != 0;
}

Result<void> check_capabilities(const CapabilityNeeds& needs,
                                const std::function<bool(int)>& has) {
  // CAP_SYS_ADMIN stands in for CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN in
  // the kernel's checks (bpf_capable(), perfmon_capable(),
  // bpf_net_capable()), but not for CAP_SYSLOG in kallsyms_show_value().
  const bool admin = has(CAP_SYS_ADMIN);
  std::string missing;
  auto need = [&](const char* name, const std::string& why) {
    missing += (missing.empty() ? "" : "; ") + std::string(name) + ", " + why;
  };
  if (!admin && !has(CAP_BPF)) need("CAP_BPF", "to create BPF maps and load BPF programs");
  if (!admin && !has(CAP_PERFMON)) {
    need("CAP_PERFMON",
         "to load the tracing programs (tp_btf tracepoints, socket iterators) that read kernel "
         "memory");
  }
  if (needs.kallsyms_hidden && !has(CAP_SYSLOG)) {
    need("CAP_SYSLOG", "to read the address of tcp_keepalive_timer in /proc/kallsyms "
                       "(hidden here: kernel.kptr_restrict=" +
                           sysctl("/proc/sys/kernel/kptr_restrict") +
                           ", kernel.perf_event_paranoid=" +
                           sysctl("/proc/sys/kernel/perf_event_paranoid") + ")");
  }
  if (needs.policies && !admin && !has(CAP_NET_ADMIN)) {
    need("CAP_NET_ADMIN",
         "to load the sock_ops program of the keepalive policies (not needed without "
         "--keepalive-cgroup or --keepalive-policy)");
  }
  if (missing.empty()) return {};
  return Error{"missing capability " + missing};
}

Result<Plan> plan_start(const RunConfig& cfg, const Features& features, int* status,
                        const std::function<bool(int)>& has) {
  *status = kExitCannotRun;
  // A BTF-less kernel is refused first: without it nothing else matters.
  if (!features.btf) return Error{features.btf_error};
  if (auto c = check_capabilities({!cfg.policies.empty(), features.ksym_hidden}, has); !c) {
    return Error{c.error()};
  }
  auto plan = plan_for(features, cfg.backend);
  if (!plan) return Error{plan.error()};
  if (cfg.strict) {
    if (auto s = require_every_signal(*plan); !s) {
      *status = kExitStrict;
      return Error{s.error()};
    }
  }
  return plan;
}

Result<Attached> attach_plan(const RunConfig& cfg, Plan plan, bool probe_attribution,
                             bool probe_time) {
  LoadOptions opts{plan, cfg.ringbuf_bytes, cfg.max_sockets, probe_attribution, probe_time};
  auto bpf = KeepaliveBpf::load(opts);
  if (!bpf) return Error{bpf.error()};
  if (auto a = bpf.value()->attach(); !a) return Error{a.error()};
  return Attached{std::move(plan), std::move(bpf.value())};
}

Result<Attached> load_and_attach(const RunConfig& cfg, const Features& features, int* status) {
  auto plan = plan_start(cfg, features, status);
  if (!plan) return Error{plan.error()};
  *status = kExitCannotRun;
  if (!plan->keepalive_gap.empty()) return Error{"the keepalive part cannot run: " + plan->keepalive_gap};
  return attach_plan(cfg, std::move(plan.value()));
}

std::vector<std::string> degraded_lines(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& s : unobserved(plan)) {
    out.push_back("degraded: signal " + s +
                  " is NOT observed on this kernel; tcpka_signal_info shows it with value 0 and "
                  "its series are left out (--strict refuses to start instead)");
  }
  return out;
}

void keepalive_off(Plan* plan, const std::string& why) {
  for (auto& s : plan->signals) {
    s.available = false;
    s.missing = "the keepalive part is off";
  }
  plan->programs.clear();
  if (plan->keepalive_gap.empty()) plan->keepalive_gap = why;
}

PartState policies_state(const Features& f) {
  const std::string gap = part_gap(f, Part::kPolicies);
  if (!gap.empty()) return {Part::kPolicies, false, "the kernel lacks it: " + gap};
  if (auto r = probe_sockops_load("tka_sockops"); !r) return {Part::kPolicies, false, r.error()};
  return {Part::kPolicies, true, ""};
}

std::vector<std::string> part_lines(const std::vector<PartState>& parts) {
  std::vector<std::string> out;
  for (const auto& p : parts) {
    if (p.on) {
      if (!p.note.empty()) out.push_back("part " + std::string(part_name(p.part)) + ": " + p.note);
      continue;
    }
    out.push_back("degraded: part " + std::string(part_name(p.part)) +
                  " is OFF: " + p.why + " (tcpka_part_up shows it with value 0; --strict "
                  "refuses to start instead)");
  }
  return out;
}

bool degraded(const Plan& plan, const std::vector<PartState>& parts) {
  for (const auto& p : parts) {
    if (!p.on) return true;
  }
  return !unobserved(plan).empty();
}

Result<void> require_every_part(const std::vector<PartState>& parts) {
  std::string list;
  for (const auto& p : parts) {
    if (!p.on) list += (list.empty() ? "" : "; ") + std::string(part_name(p.part)) + " (" + p.why + ")";
  }
  if (list.empty()) return {};
  return Error{"--strict: refusing to start without every part; off: " + list};
}

std::string health_text(const Plan& plan, const std::vector<PartState>& parts) {
  std::string off;
  for (const auto& p : parts) {
    if (!p.on) off += (off.empty() ? "" : ", ") + std::string("part ") + std::string(part_name(p.part));
  }
  // Without the keepalive part no signal is observed: the part says it.
  bool keepalive_on = true;
  for (const auto& p : parts) keepalive_on = keepalive_on && (p.part != Part::kKeepalive || p.on);
  for (const auto& s : plan.signals) {
    if (!s.available && keepalive_on) {
      off += (off.empty() ? "" : ", ") + std::string("signal ") + s.signal;
    }
  }
  return off.empty() ? "ok" : "degraded: " + off + " off";
}

SignalWaiter::SignalWaiter() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  sigaddset(&set_, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  // Writes to a closed socket or pipe must fail with EPIPE, not kill us.
  signal(SIGPIPE, SIG_IGN);
}

int SignalWaiter::wait(std::chrono::milliseconds timeout) {
  timespec ts{static_cast<time_t>(timeout.count() / 1000),
              static_cast<long>((timeout.count() % 1000) * 1000000)};
  for (;;) {
    const int sig = sigtimedwait(&set_, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;
    if (errno != EINTR) return 0;
  }
}

}  // namespace tcpka
