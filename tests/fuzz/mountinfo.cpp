// /proc/self/mountinfo: where cgroup2 is mounted, octal escapes decoded.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cgroup.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto mount = tcpka::cgroup2_mount_from_mountinfo(text)) {
    // Decoding escapes only ever shortens.
    if (mount->empty() || mount->size() > size) std::abort();
  }
  return 0;
}
