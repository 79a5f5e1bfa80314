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
#include <utility>

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
  uint64_t first_ts_ns = 0;  // its first event the agent read
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

  // Called, under the aggregator's lock (keep it short), with true when
  // probes need the kernel's labels and with false when they no longer do:
  // while the per-socket table is nearly full (from 15/16 of max_sockets
  // until it is under 7/8), as a probe that finds no room cannot wait for
  // its labels (add); and while a socket no scan can show waits (sweep).
  void on_kernel_labels(std::function<void(bool)> fn);

  // cgroup: the resolved path, "" when unresolvable; always applied, and
  // the event's direction with it.
  void add(const Event& e, const std::string& cgroup);
  // The same, resolving the path only when the socket is new to the table
  // or its cgroup changed: a known socket's event goes straight to the
  // series it counted in last time (the event path at 1,000 probes a
  // second was dominated by resolving, copying and comparing label strings).
  //
  // An event without attribution (cgroup_id 0: `tcpka run` loads the BPF
  // programs so that probe events carry none, keepalive.bpf.c) takes the
  // socket's from the table. A probe of a socket the table cannot attribute
  // yet counts on the socket at once and waits for its series: the next
  // audit scan (sweep) or the socket's next attributed event (a kill,
  // recovered or gone event, or a probe while the kernel labels them) names
  // it.
  using CgroupOf = std::function<std::string(uint64_t)>;
  void add(const Event& e, const CgroupOf& cgroup_of);

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
  // Probes waiting for their socket's attribution (see add), and on how
  // many sockets; of those, how many no scan could show (see sweep): they
  // wait for the kernel's labels, not for a scan.
  struct Held {
    uint64_t probes = 0;
    size_t sockets = 0;
    size_t unseen = 0;
  };
  Held held() const;

  // What an audit scan shows of each live socket. for_each_live visits each
  // with its cookie (0: none assigned) and the cgroup and direction the
  // scan read from it. cgroup is the path of cgroup_id, "" when unresolvable.
  using LiveVisitor = std::function<void(const SocketKey&, uint64_t cookie, uint64_t cgroup_id,
                                         const std::string& cgroup, Direction)>;
  // Applies an audit scan: gives the sockets that wait for attribution the
  // scan's (their held probes join their series), and forgets the sockets
  // the scan shows are gone: each socket last seen (event ts_ns: the
  // kernel's time, or when the agent read a probe without one;
  // CLOCK_MONOTONIC) before scan_start_ns that for_each_live does not visit.
  // Their gone event was lost (ring full) or never sent (keepalive was off
  // when they ended). Returns how many sockets were forgotten.
  //
  // A socket with held probes is also found by its cookie: one killed by
  // timeout while the kernel showed BPF none of its callbacks' events
  // (tests/bench/RESULTS.md, "Probes BPF is not shown") lost its local port
  // (tcp_done unhashes it), so the scan shows it under another key, and its
  // kill, which would have named it, never came.
  //
  // Except a socket with held probes that the scan does not show: it has no
  // file descriptor a scan could find (the kernel's own, a child still in a
  // listener's accept queue). It is kept, marked unseen, its probes wait for
  // the kernel's labels (on_kernel_labels), and no sweep forgets it after:
  // only its gone event does.
  size_t sweep(uint64_t scan_start_ns, const std::function<void(const LiveVisitor&)>& for_each_live);

 private:
  SeriesKey key_for(const SocketKey& sock, Direction direction, const std::string& cgroup);
  // A socket in the table, and where its events were last counted.
  struct Tracked {
    SocketStats stats;
    SeriesCounts* series = nullptr;  // nullptr: resolve again (std::map nodes are stable)
    uint64_t cgroup_id = 0;          // the id series was resolved for; 0: not attributed yet
    bool folded = false;             // series is port="other": count each event folded
    uint64_t swept = 0;              // the last sweep that saw it
    uint64_t held = 0;               // probes in stats but in no series yet: see add
    bool unseen = false;             // no scan can show it: see sweep
  };
  using Entry = SocketTable<Tracked>::Entry;
  void add(const Event& e, const CgroupOf& cgroup_of, bool cached);
  void add_locked(const Event& e, const CgroupOf& cgroup_of, bool cached);
  // Calls on_kernel_labels_ when the table filled up or has room again, or
  // when the first unseen socket began or the last one ended waiting.
  void update_kernel_labels();
  // The series of a socket with this attribution, and whether it is the
  // port="other" one. sock, when given, is attributed with it, and its held
  // probes are counted there.
  std::pair<SeriesCounts*, bool> attribute(const SocketKey& key, Entry* sock, uint64_t cgroup_id,
                                           Direction direction, const std::string& cgroup);
  void count(const Event& e, SeriesCounts& counts, Entry* sock);
  void forget_series();  // drops every socket's cached series

  uint32_t max_series_;
  const size_t max_sockets_;
  mutable std::mutex mu_;
  std::map<SeriesKey, SeriesCounts> series_;
  SocketTable<Tracked> sockets_;
  uint64_t overflowed_ = 0;
  uint64_t untracked_ = 0;
  Held held_;
  std::function<void(bool)> on_kernel_labels_;
  bool full_ = false;
  bool kernel_labels_ = false;  // as last passed to on_kernel_labels_
  uint64_t sweeps_ = 0;
};

}  // namespace tcpka
