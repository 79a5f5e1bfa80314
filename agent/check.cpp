// `tcpka check`: what the kernel offers, the path chosen for each signal, and
// a real load of the programs (the verifier is the final judge), detached
// again before returning.
#include <cstdio>

#include "audit.h"
#include "bpf_loader.h"
#include "sockops_policy.h"
#include "commands.h"
#include "kernel_features.h"

namespace tcpka {

int run_check(const RunConfig& cfg) {
  const Features f = probe_features();
  std::printf("%s\n", describe(f).c_str());
  auto plan = plan_for(f, cfg.backend);
  if (!plan) {
    std::printf("result: cannot run: %s\n", plan.error().c_str());
    return 1;
  }
  std::printf("backend: %s\n", std::string(backend_name(plan->backend)).c_str());
  for (const auto& s : plan->signals) {
    std::printf("  %-13s %s%s\n", s.signal.c_str(), s.available ? s.attach.c_str() : "NOT OBSERVED",
                s.available ? "" : (" (" + s.missing + ")").c_str());
  }
  auto bpf = KeepaliveBpf::load(LoadOptions{*plan, cfg.ringbuf_bytes, cfg.max_sockets});
  if (!bpf) {
    std::printf("result: cannot run: %s\n", bpf.error().c_str());
    return 1;
  }
  // The audit (state tracker and iterator) is part of every `run`.
  auto audit = AuditBpf::load(AuditOptions{true, false, "", false});
  if (!audit) {
    std::printf("result: cannot run: %s\n", audit.error().c_str());
    return 1;
  }
  // Keepalive policies are optional: report, do not refuse.
  const auto policies = probe_sockops_load();
  std::printf("keepalive policies: %s\n",
              policies ? "supported (sockops and iter/tcp programs load)"
                       : ("NOT supported: " + policies.error()).c_str());
  std::printf("result: ok (%zu keepalive programs and the audit load)\n",
              plan->programs.size());
  return 0;
}

}  // namespace tcpka
