#include "aggregator.h"

#include <set>
#include <unordered_map>

namespace tcpka {

namespace {

// What every event of a socket tells its entry, held or counted.
void seen(const Event& e, SocketStats& sock) {
  if (e.cookie) sock.cookie = e.cookie;
  if (!sock.first_ts_ns) sock.first_ts_ns = e.ts_ns;
  sock.last_ts_ns = e.ts_ns;
}

}  // namespace

Aggregator::Aggregator(uint32_t max_series, size_t max_sockets)
    : max_series_(max_series), max_sockets_(max_sockets) {}

void Aggregator::set_max_series(uint32_t max_series) {
  std::lock_guard lock(mu_);
  max_series_ = max_series;
  // A higher cap gives sockets folded into "other" their own series again.
  forget_series();
}

void Aggregator::forget_series() {
  for (auto& e : sockets_) e.value.series = nullptr;
}

SeriesKey Aggregator::key_for(const SocketKey& sock, Direction direction,
                              const std::string& cgroup) {
  SeriesKey key{direction, std::to_string(service_port(sock, direction)),
                cgroup.empty() ? std::string(kUnknownCgroup) : cgroup};
  if (series_.count(key) == 0 && series_.size() >= max_series_) key.port = kOverflowPort;
  return key;
}

void Aggregator::add(const Event& e, const std::string& cgroup) {
  add(
      e, [&cgroup](uint64_t) { return cgroup; }, false);
}

void Aggregator::add(const Event& e, const CgroupOf& cgroup_of) { add(e, cgroup_of, true); }

void Aggregator::on_kernel_labels(std::function<void(bool)> fn) {
  std::lock_guard lock(mu_);
  on_kernel_labels_ = std::move(fn);
  kernel_labels_ = false;
  update_kernel_labels();
}

void Aggregator::update_kernel_labels() {
  if (!on_kernel_labels_) return;
  // Before it is full: a burst of new sockets' probes already in the ring
  // still finds room to wait while the kernel starts labelling. Room again
  // a little lower, so that a table at the mark does not flip it per event.
  const size_t n = sockets_.size();
  if (!full_ && n >= max_sockets_ - max_sockets_ / 16) {
    full_ = true;
  } else if (full_ && n < max_sockets_ - max_sockets_ / 8) {
    full_ = false;
  }
  const bool want = full_ || held_.unseen > 0;
  if (want != kernel_labels_) {
    kernel_labels_ = want;
    on_kernel_labels_(want);
  }
}

void Aggregator::add(const Event& e, const CgroupOf& cgroup_of, bool cached) {
  std::lock_guard lock(mu_);
  add_locked(e, cgroup_of, cached);
  update_kernel_labels();
}

void Aggregator::add_locked(const Event& e, const CgroupOf& cgroup_of, bool cached) {
  Entry* entry = sockets_.find(e.sock);
  // The entry of an earlier socket at the same addresses and ports (its
  // gone event was lost, or never sent: keepalive was off at its end) must
  // not lend this one its labels. Known cookies that differ tell them apart.
  if (entry && e.cookie && entry->value.stats.cookie && e.cookie != entry->value.stats.cookie) {
    if (entry->value.held) attribute(entry->key, entry, 0, Direction::kUnknown, "");
    entry->value = Tracked{};
  }
  Tracked* sock = entry ? &entry->value : nullptr;
  // No lookup for id 0 (no labels): a miss would rescan the cgroup tree.
  auto path_of = [&](uint64_t id) { return id || !cached ? cgroup_of(id) : std::string(); };
  // The event's attribution, else the socket's: the labels of a socket's
  // series (direction, service port, cgroup) do not change while it lives.
  uint64_t cgroup_id = e.cgroup_id;
  Direction direction = e.direction;
  if (cached && !cgroup_id && sock && sock->cgroup_id) {
    cgroup_id = sock->cgroup_id;
    direction = sock->stats.direction;
  }
  if (e.kind == EventKind::kGone) {
    // The gone event is attributed: held probes go where it says.
    if (sock && sock->held) attribute(e.sock, entry, cgroup_id, direction, path_of(cgroup_id));
    if (entry) sockets_.erase(entry);
    return;
  }
  bool refused = false;
  if (cached && !cgroup_id && e.kind == EventKind::kProbe) {
    // Counted on the socket now, in a series once something names it.
    if (!sock && sockets_.size() < max_sockets_) {
      entry = sockets_.emplace(e.sock);
      sock = &entry->value;
    }
    if (sock) {
      seen(e, sock->stats);
      ++sock->stats.probes;
      if (!sock->held++) ++held_.sockets;
      ++held_.probes;
      return;
    }
    // No room to wait in: counted at once, under "unknown".
    ++untracked_;
    refused = true;
  }
  if (cached && sock && sock->series && sock->cgroup_id == cgroup_id &&
      sock->stats.direction == direction) {
    if (sock->folded) ++overflowed_;
    count(e, *sock->series, entry);
    return;
  }
  if (!sock && !refused) {
    if (sockets_.size() < max_sockets_) {
      entry = sockets_.emplace(e.sock);
    } else {
      ++untracked_;
    }
  }
  auto [counts, folded] = attribute(e.sock, entry, cgroup_id, direction, path_of(cgroup_id));
  if (folded) ++overflowed_;
  count(e, *counts, entry);
}

std::pair<SeriesCounts*, bool> Aggregator::attribute(const SocketKey& key, Entry* sock,
                                                     uint64_t cgroup_id, Direction direction,
                                                     const std::string& cgroup) {
  SeriesKey skey = key_for(key, direction, cgroup);
  const bool folded = skey.port == kOverflowPort;
  SeriesCounts& counts = series_[std::move(skey)];
  if (sock) {
    Tracked& t = sock->value;
    t.stats.direction = direction;
    t.stats.cgroup = cgroup;
    // An unresolved cgroup ("unknown") is looked up again next time: the
    // cgroup may only have been created since the last rescan.
    t.series = cgroup.empty() ? nullptr : &counts;
    t.cgroup_id = cgroup_id;
    t.folded = folded;
    if (t.held) {
      counts.probes += t.held;
      if (folded) overflowed_ += t.held;
      held_.probes -= t.held;
      --held_.sockets;
      if (t.unseen) --held_.unseen;
      t.held = 0;
    }
  }
  return {&counts, folded};
}

void Aggregator::count(const Event& e, SeriesCounts& counts, SocketTable<Tracked>::Entry* entry) {
  SocketStats* sock = entry ? &entry->value.stats : nullptr;
  if (sock) seen(e, *sock);
  switch (e.kind) {
    case EventKind::kProbe:
      ++counts.probes;
      if (sock) ++sock->probes;
      break;
    case EventKind::kRecovered:
      ++counts.recovered;
      if (sock) ++sock->recovered;
      break;
    case EventKind::kKill:
      if (e.outcome == Outcome::kReset) {
        ++counts.kills_reset;
      } else {
        ++counts.kills_timeout;
      }
      // Kept until its gone event: the application may hold the dead
      // socket open for a while, and the audit shows it with its kill. A
      // socket the kernel could not track gets no gone event: drop it now.
      if (sock) {
        ++sock->kills;
        if (!e.gone_follows) sockets_.erase(entry);
      }
      break;
    case EventKind::kGone:
      break;
  }
}

Aggregator::Snapshot Aggregator::snapshot() const {
  std::lock_guard lock(mu_);
  return Snapshot{series_, overflowed_, untracked_, sockets_.size()};
}

size_t Aggregator::remove_cgroups(const std::function<bool(const std::string&)>& gone) {
  std::lock_guard lock(mu_);
  std::set<std::string> dead;
  std::set<std::string> alive;
  auto is_dead = [&](const std::string& cg) {
    if (cg == kUnknownCgroup || cg.empty() || alive.count(cg)) return false;
    if (dead.count(cg)) return true;
    if (gone(cg)) {
      dead.insert(cg);
      return true;
    }
    alive.insert(cg);
    return false;
  };
  size_t removed = 0;
  for (auto it = series_.begin(); it != series_.end();) {
    if (is_dead(it->first.cgroup)) {
      it = series_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  sockets_.erase_if([&](const auto& e) { return is_dead(e.value.stats.cgroup); });
  update_kernel_labels();
  // Removed series took their nodes with them: no cached pointer may remain.
  if (removed) forget_series();
  return removed;
}

size_t Aggregator::sweep(uint64_t scan_start_ns,
                         const std::function<void(const LiveVisitor&)>& for_each_live) {
  std::lock_guard lock(mu_);
  if (sockets_.empty()) return 0;
  const uint64_t gen = ++sweeps_;
  // The held sockets by cookie (see the header): few, and only while
  // probes wait. The table does not change during the scan's visit.
  std::unordered_map<uint64_t, Entry*> held_by_cookie;
  if (held_.sockets) {
    for (Entry& e : sockets_) {
      if (e.value.held && e.value.stats.cookie) held_by_cookie.emplace(e.value.stats.cookie, &e);
    }
  }
  for_each_live([&](const SocketKey& key, uint64_t cookie, uint64_t cgroup_id,
                    const std::string& cgroup, Direction direction) {
    Entry* e = sockets_.find(key);
    if (!e && cookie && !held_by_cookie.empty()) {
      const auto it = held_by_cookie.find(cookie);
      if (it != held_by_cookie.end()) e = it->second;
    }
    if (!e) return;
    e->value.swept = gen;
    // Under the key its events came with: the port labels are the
    // connection's, not the unhashed socket's.
    if (e->value.held) attribute(e->key, e, cgroup_id, direction, cgroup);
    e->value.unseen = false;  // a scan can show it after all
  });
  // An event after the scan began may be of a socket the scan missed.
  auto unshown = [&](const Entry& e) {
    return e.value.swept != gen && e.value.stats.last_ts_ns < scan_start_ns;
  };
  // Waiting for labels, it is unseen if it existed before the scan began:
  // not its last event, read while a slow scan ran (a second on a loaded or
  // emulated machine, with a probe read every second), which would keep it
  // waiting forever. One that got its descriptor only during the scan is
  // marked too: the kernel labels its probes until the next scan shows it.
  auto missed = [&](const Entry& e) {
    return e.value.swept != gen && e.value.stats.first_ts_ns < scan_start_ns;
  };
  if (held_.sockets) {
    for (Entry& e : sockets_) {
      if (e.value.held && !e.value.unseen && missed(e)) {
        e.value.unseen = true;
        ++held_.unseen;
      }
    }
  }
  const size_t forgotten =
      sockets_.erase_if([&](const Entry& e) { return !e.value.unseen && unshown(e); });
  update_kernel_labels();
  return forgotten;
}

Aggregator::Held Aggregator::held() const {
  std::lock_guard lock(mu_);
  return held_;
}

std::optional<SocketStats> Aggregator::socket(const SocketKey& key) const {
  std::lock_guard lock(mu_);
  if (auto* e = sockets_.find(key)) return e->value.stats;
  return std::nullopt;
}

}  // namespace tcpka
