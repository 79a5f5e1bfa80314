// Pod attribution from names: a socket's cgroup path (pod UID and container
// ID), /var/log/pods/<namespace>_<pod>_<uid> and
// /var/log/containers/<pod>_<namespace>_<container>-<id>.log.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "k8s.h"

namespace {

bool lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto ref = tcpka::parse_pod_cgroup(text)) {
    if (ref->pod_uid.size() != 36) std::abort();
    if (!ref->container_id.empty() &&
        (ref->container_id.size() != 64 || !lower_hex(ref->container_id))) {
      std::abort();
    }
  }
  if (auto pod = tcpka::parse_pod_log_dir(text)) {
    if (pod->first.size() != 36 || pod->second.namespace_.empty() || pod->second.pod.empty()) {
      std::abort();
    }
  }
  if (auto c = tcpka::parse_container_log(text)) {
    if (c->first.size() != 64 || !lower_hex(c->first) || c->second.container.empty()) {
      std::abort();
    }
  }
  return 0;
}
