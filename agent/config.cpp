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

Result<PolicySpec> parse_policy_spec(std::string_view spec) {
  PolicySpec p;
  const std::string where = "--keepalive-policy '" + std::string(spec) + "'";
  auto number = [&](std::string_view key, std::string_view v, uint32_t* out) -> Result<void> {
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size()) {
      return Error{where + ": " + std::string(key) + " '" + std::string(v) + "' is not a number"};
    }
    return {};
  };
  bool have_cgroup = false;
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      return Error{where + ": '" + std::string(item) + "' is not key=value"};
    std::string_view key = item.substr(0, eq), val = item.substr(eq + 1);
    Result<void> r;
    if (key == "cgroup") {
      p.cgroup = std::string(val);
      have_cgroup = true;
    } else if (key == "idle") {
      r = number(key, val, &p.idle);
    } else if (key == "intvl") {
      r = number(key, val, &p.intvl);
    } else if (key == "cnt") {
      r = number(key, val, &p.cnt);
    } else if (key == "direction") {
      p.direction = std::string(val);
    } else if (key == "override") {
      if (val != "true" && val != "false") {
        return Error{where + ": override '" + std::string(val) + "' is not true or false"};
      }
      p.override = val == "true";
    } else {
      return Error{where + ": unknown key '" + std::string(key) + "'"};
    }
    if (!r) return Error{r.error()};
  }
  if (!have_cgroup) return Error{where + ": no cgroup="};
  if (auto v = validate_policy(p, where + ": "); !v) return Error{v.error()};
  return p;
}

Result<void> validate_policy(const PolicySpec& p, std::string_view prefix) {
  const std::string f(prefix);
  if (p.cgroup.empty()) return Error{f + "cgroup: empty"};
  // The kernel's own limits (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT).
  if (p.idle < 1 || p.idle > 32767) {
    return Error{f + "idle: '" + std::to_string(p.idle) + "' is not in 1..32767"};
  }
  if (p.intvl < 1 || p.intvl > 32767) {
    return Error{f + "intvl: '" + std::to_string(p.intvl) + "' is not in 1..32767"};
  }
  if (p.cnt < 1 || p.cnt > 127) {
    return Error{f + "cnt: '" + std::to_string(p.cnt) + "' is not in 1..127"};
  }
  if (p.direction != "inbound" && p.direction != "outbound" && p.direction != "both") {
    return Error{f + "direction: '" + p.direction + "' is not inbound, outbound or both"};
  }
  return {};
}

Result<void> validate(const RunConfig& cfg) {
  if (auto l = parse_listen(cfg.listen); !l) return Error{l.error()};
  if (cfg.max_series < 1) return Error{"--max-series: '0' must be at least 1"};
  if (cfg.gc_interval < 1 || cfg.gc_interval > 86400) {
    return Error{"--gc-interval: '" + std::to_string(cfg.gc_interval) + "' is not in 1..86400"};
  }
  const uint32_t page = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  for (const auto& [flag, rb] :
       {std::pair<const char*, uint32_t>{"--ringbuf-bytes", cfg.ringbuf_bytes},
        {"--close-wait-ringbuf-bytes", cfg.close_wait_ringbuf_bytes}}) {
    if (rb < page || (rb & (rb - 1)) != 0) {
      return Error{std::string(flag) + ": '" + std::to_string(rb) +
                   "' is not a power of two of at least the page size (" + std::to_string(page) +
                   ")"};
    }
  }
  if (cfg.close_wait_slots < 1 || cfg.close_wait_slots > (1u << 20) ||
      (cfg.close_wait_slots & (cfg.close_wait_slots - 1)) != 0) {
    return Error{"--close-wait-slots: '" + std::to_string(cfg.close_wait_slots) +
                 "' is not a power of two in 1..1048576"};
  }
  if (cfg.max_sockets < 1) return Error{"--max-sockets: '0' must be at least 1"};
  if (cfg.self_check_interval > 3600) {
    return Error{"--self-check-interval: '" + std::to_string(cfg.self_check_interval) +
                 "' is not in 0..3600"};
  }
  if (cfg.audit_interval < 1 || cfg.audit_interval > 3600) {
    return Error{"--audit-interval: '" + std::to_string(cfg.audit_interval) +
                 "' is not in 1..3600"};
  }
  return {};
}

ReloadPlan plan_reload(const RunConfig& running, const RunConfig& next) {
  ReloadPlan plan{next, {}};
  RunConfig& a = plan.applied;
  // Sized or bound at start: the listening socket, the loaded programs and
  // their maps, the policies' pinning mode.
  auto keep = [&](const char* key, auto RunConfig::*field) {
    if (!(a.*field == running.*field)) {
      plan.restart.push_back(key);
      a.*field = running.*field;
    }
  };
  keep("listen", &RunConfig::listen);
  keep("backend", &RunConfig::backend);
  keep("ringbuf-bytes", &RunConfig::ringbuf_bytes);
  keep("max-sockets", &RunConfig::max_sockets);
  keep("close-wait-ringbuf-bytes", &RunConfig::close_wait_ringbuf_bytes);
  keep("close-wait-slots", &RunConfig::close_wait_slots);
  keep("keepalive-persist", &RunConfig::keepalive_persist);
  return plan;
}

}  // namespace tcpka
