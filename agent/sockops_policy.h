// Keepalive policies: the sockops program attached per cgroup, its live
// values, its persistence under bpffs, and the one-shot retrofit of existing
// sockets through iter/tcp.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bpf_loader.h"
#include "cgroup.h"
#include "config.h"
#include "result.h"
#include "tcpka.h"

struct sockops_bpf;
struct bpf_link;

namespace tcpka {

struct ResolvedPolicy {
  PolicySpec spec;
  CgroupDir dir;
  tka_policy to_bpf() const;
};

Result<ResolvedPolicy> resolve_policy(const PolicySpec& spec, const std::string& cgroup2_root);

// Where a persistent policy's link is pinned: one file per cgroup id.
inline constexpr const char* kPinDir = "/sys/fs/bpf/tcpka";
std::string pin_path(uint64_t cgroup_id);

// One policy attached to one cgroup.
class SockopsPolicy {
 public:
  // Attaches, or takes over the pinned link of an earlier persistent run
  // (replacing its program atomically). persist pins the link; without it a
  // link taken over is unpinned, so it dies with this process.
  static Result<std::unique_ptr<SockopsPolicy>> attach(const ResolvedPolicy& p, bool persist);
  ~SockopsPolicy();
  SockopsPolicy(const SockopsPolicy&) = delete;
  SockopsPolicy& operator=(const SockopsPolicy&) = delete;

  // New values for the same cgroup, effective on the next connection.
  Result<void> update(const ResolvedPolicy& p);
  std::array<uint64_t, TKA_SO__COUNT> stats() const;
  const ResolvedPolicy& policy() const { return policy_; }
  ProgramState state() const;

 private:
  SockopsPolicy() = default;
  sockops_bpf* skel_ = nullptr;
  bpf_link* link_ = nullptr;
  int cgroup_fd_ = -1;  // flock()ed for our lifetime: one agent per cgroup
  bool persist_ = false;
  ResolvedPolicy policy_;
};

// The policies of a running agent, reconciled with the configuration on
// start and on SIGHUP.
class PolicySet {
 public:
  explicit PolicySet(bool persist) : persist_(persist) {}
  // Attaches new cgroups, updates changed values, detaches removed cgroups.
  Result<void> reconcile(const std::vector<ResolvedPolicy>& wanted);

  struct Stats {
    std::string cgroup;  // relative path
    std::array<uint64_t, TKA_SO__COUNT> counts{};
    ProgramState state;
  };
  std::vector<Stats> stats() const;

 private:
  const bool persist_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::unique_ptr<SockopsPolicy>> by_cgroup_;
};

// Loads (never attaches) one program of sockops.bpf.c, tka_sockops (the
// policies) or tka_iter_apply (their retrofit): `tcpka check`.
Result<void> probe_sockops_load(const char* program);

// Detaches and unpins the persistent policy of a cgroup. false: there was none.
Result<bool> remove_persistent(const CgroupDir& dir);

struct ApplyResult {
  uint64_t applied = 0;
  uint64_t kept = 0;    // the application had keepalive on (and no override)
  uint64_t errors = 0;  // a bpf_setsockopt failed
  size_t netns = 0;     // network namespaces visited
};

// Applies p once to the ESTABLISHED sockets of p's cgroup (and descendants)
// in every network namespace its processes use, and in ours.
Result<ApplyResult> apply_to_existing(const ResolvedPolicy& p);

}  // namespace tcpka
