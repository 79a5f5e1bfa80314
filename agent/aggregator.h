// Per-socket and per-label-set totals of keepalive events, with the
// cardinality cap. Pure logic: no kernel, no prometheus-cpp; fed by the ring
// buffer thread and read by scrapes, hence the mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "event.h"
#include "socket_table.h"

namespace tcpka {

// The labels shared by the three keepalive metric families.
struct SeriesKey {
  Direction direction = Direction::kUnknown;
  std::string port;    // decimal, or "other" past the cap
  std::string cgroup;  // "/a/b", or "unknown" when the cgroup vanished first
  auto operator<=>(const SeriesKey&) const = default;
};

struct SeriesCounts {
  uint64_t probes = 0;
  uint64_t recovered = 0;
  uint64_t kills_timeout = 0;
  uint64_t kills_reset = 0;
};

struct SocketStats {
  uint64_t cookie = 0;
  Direction direction = Direction::kUnknown;
  std::string cgroup;
  uint64_t probes = 0;
  uint64_t recovered = 0;
  uint64_t kills = 0;
  uint64_t last_ts_ns = 0;
};

inline constexpr std::string_view kUnknownCgroup = "unknown";
inline constexpr std::string_view kOverflowPort = "other";

class Aggregator {
 public:
  // max_series caps the label sets; events that would add one more are
  // folded into port="other" (always allowed, so the cap can be exceeded by
  // at most one "other" set per direction and cgroup). max_sockets caps the
  // per-socket table; sockets past it are counted only in the series.
  Aggregator(uint32_t max_series, size_t max_sockets);

  // A new cap (SIGHUP): label sets past it stay, new ones fold into "other".
  void set_max_series(uint32_t max_series);

  // cgroup: the resolved path, "" when unresolvable; always applied.
  void add(const Event& e, const std::string& cgroup);
  // The same, resolving the path only when the socket is new to the table
  // or its cgroup changed: a known socket's event goes straight to the
  // series it counted in last time (the event path at 1,000 probes a
  // second was dominated by resolving, copying and comparing label strings).
  void add(const Event& e, const std::function<std::string(uint64_t)>& cgroup_of);

  struct Snapshot {
    std::map<SeriesKey, SeriesCounts> series;
    uint64_t overflowed_events = 0;  // events folded into port="other"
    uint64_t untracked_sockets = 0;  // sockets refused by the full table
    size_t sockets = 0;
  };
  Snapshot snapshot() const;

  // Drops every series and socket whose cgroup gone() says no longer exists;
  // "unknown" is kept. Returns the number of series removed.
  size_t remove_cgroups(const std::function<bool(const std::string&)>& gone);

  std::optional<SocketStats> socket(const SocketKey& key) const;
  // Forgets the sockets an audit scan shows are gone: each socket last seen
  // (event ts_ns, CLOCK_MONOTONIC) before scan_start_ns that for_each_live
  // does not visit. Their gone event was lost (ring full) or never sent
  // (keepalive was off when they ended). Returns how many were forgotten.
  using KeyVisitor = std::function<void(const SocketKey&)>;
  size_t sweep(uint64_t scan_start_ns, const std::function<void(const KeyVisitor&)>& for_each_live);

 private:
  SeriesKey key_for(const Event& e, const std::string& cgroup);
  // A socket in the table, and where its events were last counted.
  struct Tracked {
    SocketStats stats;
    SeriesCounts* series = nullptr;  // nullptr: resolve again (std::map nodes are stable)
    uint64_t cgroup_id = 0;          // the id series was resolved for
    bool folded = false;             // series is port="other": count each event folded
    uint64_t swept = 0;              // the last sweep that saw it
  };
  void add(const Event& e, const std::function<std::string(uint64_t)>& cgroup_of, bool cached);
  void count(const Event& e, SeriesCounts& counts, SocketTable<Tracked>::Entry* sock);
  void forget_series();  // drops every socket's cached series

  uint32_t max_series_;
  const size_t max_sockets_;
  mutable std::mutex mu_;
  std::map<SeriesKey, SeriesCounts> series_;
  SocketTable<Tracked> sockets_;
  uint64_t overflowed_ = 0;
  uint64_t untracked_ = 0;
  uint64_t sweeps_ = 0;
};

}  // namespace tcpka
