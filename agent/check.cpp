// `tcpka check`: what the kernel offers, the path chosen for each signal, and
// a real load of the programs (the verifier is the final judge), detached
// again before returning.
#include <cstdio>

#include "audit.h"
#include "bpf_loader.h"
#include "commands.h"
#include "kernel_features.h"
#include "sockops_policy.h"
#include "startup.h"

namespace tcpka {

int run_check(const RunConfig& cfg) {
  const Features f = probe_features();
  std::printf("%s\n", describe(f).c_str());
  int status = kExitCannotRun;
  auto plan = plan_start(cfg, f, &status);
  if (!plan) {
    std::printf("result: cannot run: %s\n", plan.error().c_str());
    return status;
  }
  std::printf("backend: %s\n", std::string(backend_name(plan->backend)).c_str());
  for (const auto& s : plan->signals) {
    std::printf("  %-13s %s%s\n", s.signal.c_str(), s.available ? s.attach.c_str() : "NOT OBSERVED",
                s.available ? "" : (" (" + s.missing + ")").c_str());
  }
  auto bpf = KeepaliveBpf::load(LoadOptions{*plan, cfg.ringbuf_bytes, cfg.max_sockets});
  if (!bpf) {
    std::printf("result: cannot run: %s\n", bpf.error().c_str());
    return kExitCannotRun;
  }
  // The audit (state tracker and iterator) is part of every `run`.
  auto audit = AuditBpf::load(AuditOptions{true, false, "", false});
  if (!audit) {
    std::printf("result: cannot run: %s\n", audit.error().c_str());
    return kExitCannotRun;
  }
  // Keepalive policies are optional: report, do not refuse.
  const auto policies = probe_sockops_load();
  std::printf("keepalive policies: %s\n",
              policies ? "supported (sockops and iter/tcp programs load)"
                       : ("NOT supported: " + policies.error()).c_str());
  const auto missing = unobserved(*plan);
  if (missing.empty()) {
    std::printf("result: ok (%zu keepalive programs and the audit load)\n",
                plan->programs.size());
  } else {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    std::printf("result: ok, degraded (%zu keepalive programs and the audit load; not observed: "
                "%s; run --strict would refuse)\n",
                plan->programs.size(), list.c_str());
  }
  return 0;
}

}  // namespace tcpka
