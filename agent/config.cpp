#include "config.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>

namespace tcpka {

std::string_view backend_name(Backend b) {
  switch (b) {
    case Backend::kAuto:
      return "auto";
    case Backend::kResetReason:
      return "reset-reason";
    case Backend::kTimerBracket:
      return "timer-bracket";
  }
  return "?";
}

Result<Backend> parse_backend(std::string_view text) {
  for (Backend b : {Backend::kAuto, Backend::kResetReason, Backend::kTimerBracket}) {
    if (text == backend_name(b)) return b;
  }
  return Error{"--backend: '" + std::string(text) +
               "' is not one of auto, reset-reason, timer-bracket"};
}

Result<ListenAddress> parse_listen(std::string_view text) {
  const std::string quoted = "--listen: '" + std::string(text) + "'";
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return Error{quoted + " is not HOST:PORT"};
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);

  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port == 0 || port > 65535) {
    return Error{quoted + " has a bad port '" + std::string(port_text) + "' (1..65535)"};
  }

  ListenAddress out;
  out.port = static_cast<uint16_t>(port);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    out.host = std::string(host.substr(1, host.size() - 2));
    out.family = AF_INET6;
    in6_addr a6{};
    if (inet_pton(AF_INET6, out.host.c_str(), &a6) != 1) {
      return Error{quoted + " has a bad IPv6 host '" + out.host + "'"};
    }
    return out;
  }
  if (host.empty()) {
    out.host = "0.0.0.0";
  } else if (host == "localhost") {
    out.host = "127.0.0.1";
  } else {
    out.host = std::string(host);
  }
  out.family = AF_INET;
  in_addr a4{};
  if (inet_pton(AF_INET, out.host.c_str(), &a4) != 1) {
    return Error{quoted + " has a bad host '" + std::string(host) +
                 "' (a numeric IPv4 address, [IPv6], localhost or empty)"};
  }
  return out;
}

Result<void> validate(const RunConfig& cfg) {
  if (auto l = parse_listen(cfg.listen); !l) return Error{l.error()};
  if (cfg.max_series < 1) return Error{"--max-series: must be at least 1"};
  if (cfg.gc_interval < 1 || cfg.gc_interval > 86400) {
    return Error{"--gc-interval: '" + std::to_string(cfg.gc_interval) + "' is not in 1..86400"};
  }
  const uint32_t page = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  const uint32_t rb = cfg.ringbuf_bytes;
  if (rb < page || (rb & (rb - 1)) != 0) {
    return Error{"--ringbuf-bytes: '" + std::to_string(rb) +
                 "' is not a power of two of at least the page size (" + std::to_string(page) +
                 ")"};
  }
  if (cfg.max_sockets < 1) return Error{"--max-sockets: must be at least 1"};
  return {};
}

}  // namespace tcpka
