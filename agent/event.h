// Events from the kernel, decoded and formatted for `tcpka watch`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "tcpka.h"

namespace tcpka {

enum class EventKind { kProbe, kRecovered, kKill, kGone };
enum class Outcome { kNone, kTimeout, kReset };
enum class Direction { kUnknown, kInbound, kOutbound };

std::string_view kind_name(EventKind k);
std::string_view outcome_name(Outcome o);
std::string_view direction_name(Direction d);
// Kernel TCP state number to "established", "close_wait", ...
std::string_view tcp_state_name(unsigned state);

// A socket as user space names it: unique among live sockets of the host.
struct SocketKey {
  uint32_t netns = 0;
  uint16_t family = 0;
  std::string saddr, daddr;
  uint16_t sport = 0, dport = 0;
  auto operator<=>(const SocketKey&) const = default;
};

// For hash tables of sockets (SocketTable, socket_table.h). The agent looks
// one up per keepalive event; an ordered map compared address strings at
// every step of the tree.
struct SocketKeyHash {
  size_t operator()(const SocketKey& k) const noexcept {
    size_t h = std::hash<std::string>{}(k.saddr);
    auto mix = [&h](size_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
    mix(std::hash<std::string>{}(k.daddr));
    mix((static_cast<size_t>(k.netns) << 32) | (static_cast<size_t>(k.sport) << 16) | k.dport);
    mix(k.family);
    return h;
  }
};

// A SocketKey from the raw fields the BPF records carry (IPv4 addresses in
// the first 4 bytes).
SocketKey make_socket_key(uint32_t netns, uint16_t family, const uint8_t* saddr,
                          const uint8_t* daddr, uint16_t sport, uint16_t dport);

struct Event {
  EventKind kind = EventKind::kProbe;
  Outcome outcome = Outcome::kNone;
  Direction direction = Direction::kUnknown;
  SocketKey sock;
  uint64_t ts_ns = 0;
  uint64_t cookie = 0;
  uint64_t cgroup_id = 0;
  int err = 0;
  unsigned probes_out = 0;
  unsigned state = 0;
  bool gone_follows = false;  // kills: a kGone event will end the socket's entry
};

// Returns false when the record is not a well-formed tka_event (size, enum
// values, address family): a corrupt record is dropped, never half-used.
bool decode_event(const void* data, size_t size, Event* out);

// The local port for inbound sockets, the remote one for outbound sockets.
uint16_t service_port(const SocketKey& sock, Direction direction);
inline uint16_t service_port(const Event& e) { return service_port(e.sock, e.direction); }

// One line of `tcpka watch`; cgroup is the resolved path.
std::string format_text(const Event& e, std::string_view cgroup);
std::string format_json(const Event& e, std::string_view cgroup);

// JSON string literal with quotes, escaping control characters.
std::string json_quote(std::string_view s);
// The same, appended to out (no temporary: the audit writes 20k rows).
void json_append_quoted(std::string& out, std::string_view s);
// s with every byte that is not part of valid UTF-8 replaced by U+FFFD:
// cgroup and pod names are bytes, and Prometheus refuses a whole scrape over
// one label value that is not UTF-8.
void append_valid_utf8(std::string& out, std::string_view s);

}  // namespace tcpka
