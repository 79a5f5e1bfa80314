// What the user asked for, and the checks that refuse bad values before
// anything is loaded into the kernel.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "result.h"

namespace tcpka {

// How kills by probe timeout are recognised in the kernel.
enum class Backend {
  kAuto,          // the best one the running kernel supports
  kResetReason,   // tcp:tcp_send_reset's keepalive reason (Linux 6.12+)
  kTimerBracket,  // an active reset inside the keepalive-timer callback
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

// One keepalive policy: what the sockops program sets on the TCP sockets of
// a cgroup (and its descendants).
struct PolicySpec {
  std::string cgroup;  // cgroup v2 directory: absolute, or relative to the cgroup2 mount
  uint32_t idle = 0;   // TCP_KEEPIDLE, 1..32767 s
  uint32_t intvl = 0;  // TCP_KEEPINTVL, 1..32767 s
  uint32_t cnt = 0;    // TCP_KEEPCNT, 1..127
  std::string direction = "both";  // inbound | outbound | both
  bool override = false;           // also sockets whose application set keepalive itself
};

// "cgroup=PATH,idle=S,intvl=S,cnt=N[,direction=D][,override=true|false]".
Result<PolicySpec> parse_policy_spec(std::string_view spec);
// Value ranges and direction, not the cgroup (see resolve_cgroup_dir()).
// Messages are prefix + key: "--keepalive-" gives "--keepalive-idle: '0' is
// not in 1..32767".
Result<void> validate_policy(const PolicySpec& p, std::string_view prefix);

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
  // Ring buffer of CLOSE_WAIT durations, bytes (a power of two, multiple of
  // the page size).
  uint32_t close_wait_ringbuf_bytes = 1u << 18;
  // Slots for the entry times of sockets in CLOSE_WAIT (a power of two); a
  // socket whose slot is taken goes to a hash map instead.
  uint32_t close_wait_slots = 1024;
  // Keepalive policies (sockops), at most one per cgroup.
  std::vector<PolicySpec> policies;
  // Pin each policy's link under bpffs so it outlives the agent.
  bool keepalive_persist = false;
  // Seconds between audit scans that refresh the socket gauges.
  uint32_t audit_interval = 5;
  // Seconds per self-check window (agent/self_check.h); 0 turns it off.
  uint32_t self_check_interval = 30;
  // ESTABLISHED without keepalive and idle this long: a half-open suspect.
  uint32_t idle_threshold = 300;
  // Where the kubelet's pods/ and containers/ log directories are (pod
  // labels); "" turns pod attribution off.
  std::string k8s_log_root = "/var/log";
  // Exporter-toolkit web-config file (TLS, basic auth); "" serves plain HTTP.
  std::string web_config_file;
  // Refuse to start when a signal cannot be observed or a part is off on
  // this kernel, instead of running degraded.
  bool strict = false;
  // Keep the state maps (first sightings, CLOSE_WAIT records) pinned on
  // exit, so the next agent continues the state ages instead of starting
  // them as lower bounds.
  bool state_persist = false;
};

Result<void> validate(const RunConfig& cfg);

// What SIGHUP applies. `next` is the configuration read again (config file
// under the command line, as at start). Keys that can change in a running
// agent take their new value; the others keep the running one and are
// named in `restart` (flag names, without dashes).
struct ReloadPlan {
  RunConfig applied;
  std::vector<std::string> restart;
};
ReloadPlan plan_reload(const RunConfig& running, const RunConfig& next);

}  // namespace tcpka
