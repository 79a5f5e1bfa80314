// /proc/kallsyms: whether tcp_keepalive_timer has a real address.
#include <cstdint>
#include <sstream>
#include <string>

#include "kernel_features.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  tcpka::kallsyms_has(in, "tcp_keepalive_timer");
  return 0;
}
