// `tcpka audit`: one scan, filtered, as a table or JSON. Works with or
// without a running agent; with one (and bpffs), state ages come from the
// agent's shared state map.
#include <unistd.h>

#include <cstdio>

#include "audit.h"
#include "cgroup.h"
#include "commands.h"
#include "kernel_features.h"

namespace tcpka {

namespace {
constexpr size_t kChunk = 256 << 10;
}  // namespace

int run_audit(const AuditFilter& filter, bool json, const std::string& k8s_log_root) {
  AuditOptions opts;
  const Features features = probe_features();
  if (const std::string gap = part_gap(features, Part::kAudit); !gap.empty()) {
    std::fprintf(stderr, "tcpka: the audit cannot run on this kernel: %s\n", gap.c_str());
    return 1;
  }
  opts.plain_loads = features.rdonly_cast;
  if (const std::string pin = state_pin_if_possible();
      !pin.empty() && ::access(pin.c_str(), F_OK) == 0) {
    opts.state_pin = pin;
  }
  if (!in_initial_pid_namespace()) {
    std::fprintf(stderr,
                 "tcpka: not in the host's pid namespace: only this namespace's processes "
                 "are shown\n");
  }
  auto audit = AuditBpf::load(opts);
  if (!audit) {
    std::fprintf(stderr, "tcpka: %s\n", audit.error().c_str());
    return 1;
  }
  if (!(*audit)->build_note().empty()) {
    std::fprintf(stderr, "tcpka: audit: %s\n", (*audit)->build_note().c_str());
  }
  auto recs = audit.value()->scan();
  if (!recs) {
    std::fprintf(stderr, "tcpka: %s\n", recs.error().c_str());
    return 1;
  }
  CgroupResolver cgroups(find_cgroup2_mount().value_or(""));
  PodResolver pods(k8s_log_root);
  // Each row written as it is decoded, the text in chunks: no vector of
  // rows nor the whole text in memory (page faults were a visible share of
  // an audit of 50,000 sockets).
  std::string out;
  out.reserve(kChunk + 4096);
  RowText text(json, out);
  for_each_row(
      *recs, kernel_hz(), [&](uint64_t id) { return cgroups.path(id); }, true,
      [&](AuditRow& row) {
        row.pod = pods.labels(row.cgroup);
        if (!matches(row, filter)) return;
        text.add(row);
        if (out.size() >= kChunk) {
          std::fwrite(out.data(), 1, out.size(), stdout);
          out.clear();
        }
      });
  text.finish();
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace tcpka
