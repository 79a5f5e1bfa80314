// `tcpka audit`: one scan, filtered, as a table or JSON. Works with or
// without a running agent; with one (and bpffs), state ages come from the
// agent's shared state map.
#include <unistd.h>

#include <cstdio>

#include "audit.h"
#include "cgroup.h"
#include "commands.h"

namespace tcpka {

int run_audit(const AuditFilter& filter, bool json, const std::string& k8s_log_root) {
  AuditOptions opts;
  if (const std::string pin = state_pin_if_possible();
      !pin.empty() && ::access(pin.c_str(), F_OK) == 0) {
    opts.state_pin = pin;
  }
  auto audit = AuditBpf::load(opts);
  if (!audit) {
    std::fprintf(stderr, "tcpka: %s\n", audit.error().c_str());
    return 1;
  }
  auto recs = audit.value()->scan();
  if (!recs) {
    std::fprintf(stderr, "tcpka: %s\n", recs.error().c_str());
    return 1;
  }
  CgroupResolver cgroups(find_cgroup2_mount().value_or(""));
  const unsigned hz = kernel_hz();
  auto rows = decode_scan(*recs, hz, [&](uint64_t id) { return cgroups.path(id); });
  PodResolver pods(k8s_log_root);
  for (auto& row : rows) row.pod = pods.labels(row.cgroup);
  std::vector<AuditRow> shown;
  shown.reserve(rows.size());
  for (auto& r : rows) {
    if (matches(r, filter)) shown.push_back(std::move(r));
  }
  const std::string out = json ? rows_to_json(shown) : rows_to_table(shown);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace tcpka
