// What the user asked for, and the checks that refuse bad values before
// anything is loaded into the kernel.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "result.h"

namespace tcpka {

// How kills by probe timeout are recognised in the kernel.
enum class Backend {
  kAuto,          // the best one the running kernel supports
  kResetReason,   // tcp:tcp_send_reset's reason (Linux 6.10+)
  kTimerBracket,  // error report inside the keepalive-timer callback
};

std::string_view backend_name(Backend b);
Result<Backend> parse_backend(std::string_view text);

struct ListenAddress {
  std::string host;  // numeric IPv4 or IPv6 (without brackets)
  uint16_t port = 0;
  int family = 0;  // AF_INET or AF_INET6
};

// "HOST:PORT", "[V6]:PORT" or ":PORT" (all IPv4 addresses). Hosts must be
// numeric or "localhost": the agent never waits on DNS at start-up.
Result<ListenAddress> parse_listen(std::string_view text);

struct RunConfig {
  std::string listen = "127.0.0.1:9977";
  Backend backend = Backend::kAuto;
  // Cap on the label sets (direction, port, cgroup) of the keepalive metrics.
  uint32_t max_series = 10000;
  // Seconds between scans that drop series of cgroups that no longer exist.
  uint32_t gc_interval = 30;
  // Ring buffer size in bytes (a power of two, multiple of the page size).
  uint32_t ringbuf_bytes = 1u << 20;
  // Entries of the map of probed sockets.
  uint32_t max_sockets = 65536;
};

Result<void> validate(const RunConfig& cfg);

}  // namespace tcpka
