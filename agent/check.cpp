// `tcpka check`: what the kernel offers, the path chosen for each signal, a
// real load of every part (the verifier is the final judge), and the probe
// and reset signals proven end to end on a real connection (end_to_end.h);
// everything detached again before returning.
#include <cstdio>

#include "audit.h"
#include "bpf_loader.h"
#include "commands.h"
#include "end_to_end.h"
#include "kernel_features.h"
#include "sockops_policy.h"
#include "startup.h"
#include "state_tracker.h"

namespace tcpka {

namespace {

// The first line of an error, and the rest (the verifier's words) indented.
void print_part(const PartState& p, const std::string& detail) {
  std::printf("  %-14s %s\n", std::string(part_name(p.part)).c_str(),
              p.on ? ("on" + (detail.empty() ? "" : " (" + detail + ")")).c_str()
                   : ("OFF: " + p.why).c_str());
}

}  // namespace

int run_check(const RunConfig& cfg) {
  const Features f = probe_features();
  std::printf("%s\n", describe(f).c_str());
  int status = kExitCannotRun;
  auto planned = plan_start(cfg, f, &status);
  if (!planned) {
    std::printf("result: cannot run: %s\n", planned.error().c_str());
    return status;
  }
  Plan plan = std::move(planned.value());

  // Each part loaded as `run` loads it (the keepalive programs and the state
  // tracker not attached), then unloaded.
  std::vector<PartState> parts;
  std::vector<std::string> details;
  std::unique_ptr<KeepaliveBpf> keepalive;
  {
    const std::string& gap = plan.keepalive_gap;
    Result<std::unique_ptr<KeepaliveBpf>> loaded =
        gap.empty() ? KeepaliveBpf::load(LoadOptions{plan, cfg.ringbuf_bytes, cfg.max_sockets})
                    : Result<std::unique_ptr<KeepaliveBpf>>(Error{gap});
    parts.push_back(part_state(Part::kKeepalive, gap, loaded));
    const std::string& note = parts.back().note;
    details.push_back("backend " + std::string(backend_name(plan.backend)) + ", " +
                      std::to_string(plan.programs.size()) + " programs, " +
                      (note.empty()
                           ? std::string(plan.plain_loads ? "plain-load" : "probe-read") + " build"
                           : note));
    if (!loaded) keepalive_off(&plan, parts.back().why);
    if (loaded) keepalive = std::move(loaded.value());
  }
  std::unique_ptr<StateTracker> tracker;
  {
    const std::string gap = part_gap(f, Part::kStateTracker);
    Result<std::unique_ptr<StateTracker>> loaded =
        gap.empty() ? StateTracker::load({plan.plain_loads, false, "", 0, 0})
                    : Result<std::unique_ptr<StateTracker>>(Error{gap});
    parts.push_back(part_state(Part::kStateTracker, gap, loaded));
    details.push_back(parts.back().note);
    if (loaded) tracker = std::move(loaded.value());
  }
  {
    const std::string gap = part_gap(f, Part::kAudit);
    Result<std::unique_ptr<AuditBpf>> loaded =
        gap.empty() ? AuditBpf::load({plan.plain_loads, false, "", tracker.get()})
                    : Result<std::unique_ptr<AuditBpf>>(Error{gap});
    parts.push_back(part_state(Part::kAudit, gap, loaded));
    details.push_back(parts.back().note);
  }
  {
    // Reported whether or not a policy is configured: check tells what the
    // agent can do here (README, "tcpka check").
    const PartState p = policies_state(f);
    std::string retrofit;
    if (p.on) {
      const auto r = f.iter_tcp_setsockopt ? probe_sockops_load("tka_iter_apply")
                                           : Result<void>(Error{
                                                 "iter/tcp programs cannot call "
                                                 "bpf_setsockopt() (Linux 5.15)"});
      retrofit = r ? "`keepalive apply` to open sockets: yes"
                   : "`keepalive apply` to open sockets: NO, " + r.error();
    }
    parts.push_back(p);
    details.push_back(retrofit);
  }

  std::printf("parts:\n");
  for (size_t i = 0; i < parts.size(); ++i) print_part(parts[i], details[i]);
  std::printf("signals (backend %s):\n", std::string(backend_name(plan.backend)).c_str());
  for (const auto& s : plan.signals) {
    std::printf("  %-13s %s%s\n", s.signal.c_str(), s.available ? s.attach.c_str() : "NOT OBSERVED",
                s.available ? "" : (" (" + s.missing + ")").c_str());
  }
  // What the programs see of a real connection: a load proves nothing of a
  // filter that no longer matches (README, "tcpka check").
  std::vector<std::string> not_seen;
  if (keepalive) {
    Result<EndToEnd> e2e = Error{""};
    if (auto a = keepalive->attach(); !a) {
      e2e = Error{"attaching the keepalive programs: " + a.error()};
    } else {
      e2e = prove_end_to_end(*keepalive, plan);
    }
    keepalive.reset();
    if (!e2e) {
      std::printf("end to end: NOT RUN: %s\n", e2e.error().c_str());
      not_seen.push_back("end to end (not run)");
    } else {
      std::printf("end to end (%s):\n", e2e->where.c_str());
      for (const auto& s : e2e->signals) {
        std::printf("  %-13s %s: %s\n", s.signal.c_str(), s.seen ? "seen" : "NOT SEEN",
                    s.detail.c_str());
        if (!s.seen) not_seen.push_back("signal " + s.signal + " (not seen end to end)");
      }
    }
  }
  bool runnable = false;
  for (const auto& p : parts) runnable = runnable || (p.on && p.part != Part::kPolicies);
  if (!runnable) {
    std::printf("result: cannot run: no part loads on this kernel\n");
    return kExitCannotRun;
  }
  if (!degraded(plan, parts) && not_seen.empty()) {
    std::printf(
        "result: ok (every part loads, every signal is observed; probe and reset seen end to "
        "end)\n");
    return 0;
  }
  std::string off;
  for (const auto& p : parts) {
    if (!p.on) off += (off.empty() ? "" : ", ") + std::string("part ") + std::string(part_name(p.part));
  }
  for (const auto& m : unobserved(plan)) off += (off.empty() ? "" : ", ") + ("signal " + m);
  for (const auto& m : not_seen) off += (off.empty() ? "" : ", ") + m;
  std::printf("result: ok, degraded (off: %s; run --strict would refuse)\n", off.c_str());
  if (cfg.strict) return kExitStrict;
  return 0;
}

}  // namespace tcpka
