// The web-config file (exporter-toolkit format, strict YAML subset): parse,
// and check that a refusal is one line naming where.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "web_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = tcpka::parse_web_config(text);
  if (!r.ok()) {
    const std::string& e = r.error();
    if (e.empty() || e.find('\n') != std::string::npos) std::abort();
  } else if (r.value().tls && r.value().tls->cert_file.empty()) {
    std::abort();  // TLS without a certificate must be refused, not accepted
  }
  return 0;
}
