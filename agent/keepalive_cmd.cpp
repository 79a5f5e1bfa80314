// `tcpka keepalive apply|remove`: policies outside a running agent.
#include <cstdio>

#include "commands.h"
#include "kernel_features.h"
#include "sockops_policy.h"

namespace tcpka {

int run_keepalive_apply(const PolicySpec& spec) {
  auto p = resolve_policy(spec, find_cgroup2_mount().value_or(""));
  if (!p) {
    std::fprintf(stderr, "tcpka: %s\n", p.error().c_str());
    return 2;
  }
  // bpf_setsockopt() from iter/tcp: Linux 5.15. Said plainly rather than
  // as the verifier's "unknown func".
  if (!probe_features().iter_tcp_setsockopt) {
    std::fprintf(stderr,
                 "tcpka: keepalive apply: this kernel does not let iter/tcp programs call "
                 "bpf_setsockopt() (Linux 5.15): open sockets cannot be changed; a running "
                 "agent's policy (--keepalive-policy) still covers new connections\n");
    return 1;
  }
  auto r = apply_to_existing(*p);
  if (!r) {
    std::fprintf(stderr, "tcpka: keepalive apply: %s\n", r.error().c_str());
    return 1;
  }
  std::printf(
      "cgroup %s: keepalive set on %llu established sockets, %llu kept their own keepalive, "
      "%llu errors (%zu network namespaces)\n",
      p->dir.rel.c_str(), static_cast<unsigned long long>(r->applied),
      static_cast<unsigned long long>(r->kept), static_cast<unsigned long long>(r->errors),
      r->netns);
  return r->errors ? 1 : 0;
}

int run_keepalive_remove(const PolicySpec& spec) {
  auto dir = resolve_cgroup_dir(spec.cgroup, find_cgroup2_mount().value_or(""));
  if (!dir) {
    std::fprintf(stderr, "tcpka: %s\n", dir.error().c_str());
    return 2;
  }
  auto r = remove_persistent(*dir);
  if (!r) {
    std::fprintf(stderr, "tcpka: keepalive remove: %s\n", r.error().c_str());
    return 1;
  }
  std::printf("cgroup %s: %s\n", dir->rel.c_str(),
              *r ? "persistent keepalive policy removed" : "no persistent keepalive policy");
  return 0;
}

}  // namespace tcpka
