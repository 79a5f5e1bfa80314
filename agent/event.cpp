#include "event.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <charconv>
#include <cstdio>
#include <cstring>

namespace tcpka {

std::string_view kind_name(EventKind k) {
  switch (k) {
    case EventKind::kProbe:
      return "probe";
    case EventKind::kRecovered:
      return "recovered";
    case EventKind::kKill:
      return "kill";
    case EventKind::kGone:
      return "gone";
  }
  return "?";
}

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kNone:
      return "";
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kReset:
      return "reset";
  }
  return "?";
}

std::string_view direction_name(Direction d) {
  switch (d) {
    case Direction::kUnknown:
      return "unknown";
    case Direction::kInbound:
      return "inbound";
    case Direction::kOutbound:
      return "outbound";
  }
  return "?";
}

std::string_view tcp_state_name(unsigned state) {
  // include/net/tcp_states.h
  static constexpr std::string_view kNames[] = {
      "unknown",   "established", "syn_sent",     "syn_recv",      "fin_wait1",
      "fin_wait2", "time_wait",   "close",        "close_wait",    "last_ack",
      "listen",    "closing",     "new_syn_recv", "bound_inactive"};
  if (state < sizeof(kNames) / sizeof(kNames[0])) return kNames[state];
  return "unknown";
}

namespace {

std::string addr_text(uint16_t family, const uint8_t* raw) {
  if (family == AF_INET) {
    // glibc's inet_ntop formats IPv4 through sprintf: a visible share of an
    // audit of many sockets. Same text, written directly.
    std::string out;
    out.reserve(15);
    for (int i = 0; i < 4; ++i) {
      char digits[3];  // a byte has at most 3: to_chars cannot fail here
      if (i) out += '.';
      out.append(digits, std::to_chars(digits, digits + sizeof(digits), raw[i]).ptr);
    }
    return out;
  }
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, raw, buf, sizeof(buf));
  return buf;
}

}  // namespace

SocketKey make_socket_key(uint32_t netns, uint16_t family, const uint8_t* saddr,
                          const uint8_t* daddr, uint16_t sport, uint16_t dport) {
  return SocketKey{netns, family, addr_text(family, saddr), addr_text(family, daddr), sport,
                   dport};
}

bool decode_event(const void* data, size_t size, Event* out) {
  static_assert(sizeof(tka_event) == 80, "the ring-buffer ABI changed: update both sides");
  if (size < sizeof(tka_event)) return false;
  tka_event raw;
  std::memcpy(&raw, data, sizeof(raw));
  if (raw.family != AF_INET && raw.family != AF_INET6) return false;
  if (raw.kind < TKA_EV_PROBE || raw.kind > TKA_EV_GONE) return false;
  if (raw.outcome > TKA_OUTCOME_RESET || raw.direction > TKA_DIR_OUTBOUND) return false;

  Event e;
  e.kind = static_cast<EventKind>(raw.kind - TKA_EV_PROBE);
  e.outcome = static_cast<Outcome>(raw.outcome);
  e.direction = static_cast<Direction>(raw.direction);
  e.sock = make_socket_key(raw.netns, raw.family, raw.saddr, raw.daddr, raw.sport, raw.dport);
  e.ts_ns = raw.ts_ns;
  e.cookie = raw.cookie;
  e.cgroup_id = raw.cgroup_id;
  e.err = raw.err;
  e.probes_out = raw.probes_out;
  e.state = raw.state;
  e.gone_follows = raw.gone_follows != 0;
  *out = std::move(e);
  return true;
}

uint16_t service_port(const SocketKey& sock, Direction direction) {
  return direction == Direction::kInbound ? sock.sport : sock.dport;
}

namespace {

std::string endpoint(const SocketKey& s, bool local) {
  const std::string& a = local ? s.saddr : s.daddr;
  const uint16_t p = local ? s.sport : s.dport;
  return (s.family == AF_INET6 ? "[" + a + "]" : a) + ":" + std::to_string(p);
}

std::string errno_name(int err) {
  if (err == 0) return "-";
  const char* name = strerrorname_np(err);
  return name ? name : std::to_string(err);
}

}  // namespace

std::string format_text(const Event& e, std::string_view cgroup) {
  char head[64];
  std::snprintf(head, sizeof(head), "%-9s %-7s", std::string(kind_name(e.kind)).c_str(),
                e.outcome == Outcome::kNone ? "-" : std::string(outcome_name(e.outcome)).c_str());
  std::string line = head;
  line += " " + endpoint(e.sock, true) + " -> " + endpoint(e.sock, false);
  line += " " + std::string(direction_name(e.direction));
  line += " probes_out=" + std::to_string(e.probes_out);
  line += " err=" + errno_name(e.err);
  line += " netns=" + std::to_string(e.sock.netns);
  line += " cgroup=" + std::string(cgroup.empty() ? "?" : cgroup);
  line += " cookie=" + (e.cookie ? std::to_string(e.cookie) : std::string("-"));
  return line;
}

namespace {

// Length of the valid UTF-8 sequence at s[i], 0 when it is not one.
size_t utf8_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n;
  unsigned min;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  unsigned cp = c & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

}  // namespace

void append_valid_utf8(std::string& out, std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (const size_t n = utf8_len(s, i); n > 0) {
      out.append(s.substr(i, n));
      i += n - 1;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
    }
  }
}

std::string json_quote(std::string_view s) {
  std::string out;
  json_append_quoted(out, s);
  return out;
}

void json_append_quoted(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else if (c < 0x80) {
          out += static_cast<char>(c);
        } else if (const size_t n = utf8_len(s, i); n > 0) {
          out.append(s.substr(i, n));
          i += n - 1;
        } else {
          // Process names are bytes, JSON is UTF-8: a stray byte becomes U+FFFD.
          out += "\\ufffd";
        }
    }
  }
  out += '"';
}

std::string format_json(const Event& e, std::string_view cgroup) {
  std::string j = "{";
  j += "\"event\":" + json_quote(kind_name(e.kind));
  j += ",\"ts_ns\":" + std::to_string(e.ts_ns);
  j += ",\"family\":" + std::to_string(e.sock.family == AF_INET6 ? 6 : 4);
  j += ",\"saddr\":" + json_quote(e.sock.saddr);
  j += ",\"sport\":" + std::to_string(e.sock.sport);
  j += ",\"daddr\":" + json_quote(e.sock.daddr);
  j += ",\"dport\":" + std::to_string(e.sock.dport);
  j += ",\"direction\":" + json_quote(direction_name(e.direction));
  j += ",\"netns\":" + std::to_string(e.sock.netns);
  j += ",\"cgroup\":" + (cgroup.empty() ? std::string("null") : json_quote(cgroup));
  j += ",\"cgroup_id\":" + std::to_string(e.cgroup_id);
  j += ",\"cookie\":" + (e.cookie ? std::to_string(e.cookie) : std::string("null"));
  j += ",\"state\":" + json_quote(tcp_state_name(e.state));
  j += ",\"probes_out\":" + std::to_string(e.probes_out);
  j += ",\"outcome\":" +
       (e.outcome == Outcome::kNone ? std::string("null") : json_quote(outcome_name(e.outcome)));
  j += ",\"errno\":" + std::to_string(e.err);
  j += ",\"error\":" + (e.err ? json_quote(errno_name(e.err)) : std::string("null"));
  j += "}";
  return j;
}

}  // namespace tcpka
