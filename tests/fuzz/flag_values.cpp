// The values parsed by hand rather than by CLI11: the keepalive policy spec
// (`--keepalive-policy` and the config file's list), the --listen address
// and the --backend name.
#include <sys/socket.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto p = tcpka::parse_policy_spec(text)) {
    // Whatever parses is in range: nothing else checks before the kernel sees it.
    if (!tcpka::validate_policy(*p, "")) std::abort();
  } else if (p.error().empty()) {
    std::abort();
  }

  if (auto l = tcpka::parse_listen(text)) {
    if (l->port == 0 || (l->family != AF_INET && l->family != AF_INET6)) std::abort();
  } else if (l.error().empty()) {
    std::abort();
  }

  if (auto b = tcpka::parse_backend(text)) {
    if (tcpka::backend_name(*b) != text) std::abort();
  }
  return 0;
}
