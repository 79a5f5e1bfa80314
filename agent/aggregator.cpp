#include "aggregator.h"

#include <set>

namespace tcpka {

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

SeriesKey Aggregator::key_for(const Event& e, const std::string& cgroup) {
  SeriesKey key{e.direction, std::to_string(service_port(e)),
                cgroup.empty() ? std::string(kUnknownCgroup) : cgroup};
  if (series_.count(key) == 0 && series_.size() >= max_series_) {
    key.port = kOverflowPort;
    ++overflowed_;
  }
  return key;
}

void Aggregator::add(const Event& e, const std::string& cgroup) {
  add(
      e, [&cgroup](uint64_t) { return cgroup; }, false);
}

void Aggregator::add(const Event& e, const std::function<std::string(uint64_t)>& cgroup_of) {
  add(e, cgroup_of, true);
}

void Aggregator::add(const Event& e, const std::function<std::string(uint64_t)>& cgroup_of,
                     bool cached) {
  std::lock_guard lock(mu_);
  if (e.kind == EventKind::kGone) {
    sockets_.erase(e.sock);
    return;
  }
  auto* entry = sockets_.find(e.sock);
  Tracked* sock = entry ? &entry->value : nullptr;
  // The labels of a socket's series (direction, service port, cgroup) do
  // not change while it lives; only its cgroup id can (a process moved).
  if (cached && sock && sock->series && sock->cgroup_id == e.cgroup_id &&
      sock->stats.direction == e.direction) {
    if (sock->folded) ++overflowed_;
    count(e, *sock->series, entry);
    return;
  }
  const std::string cgroup = cgroup_of(e.cgroup_id);
  SeriesKey key = key_for(e, cgroup);
  const bool folded = key.port == kOverflowPort;
  SeriesCounts& counts = series_[std::move(key)];
  if (!sock) {
    if (sockets_.size() < max_sockets_) {
      entry = sockets_.emplace(e.sock);
      sock = &entry->value;
    } else {
      ++untracked_;
    }
  }
  if (sock) {
    sock->stats.direction = e.direction;
    sock->stats.cgroup = cgroup;
    // An unresolved cgroup ("unknown") is looked up again next time: the
    // cgroup may only have been created since the last rescan.
    sock->series = cgroup.empty() ? nullptr : &counts;
    sock->cgroup_id = e.cgroup_id;
    sock->folded = folded;
  }
  count(e, counts, entry);
}

void Aggregator::count(const Event& e, SeriesCounts& counts, SocketTable<Tracked>::Entry* entry) {
  SocketStats* sock = entry ? &entry->value.stats : nullptr;
  if (sock) {
    if (e.cookie) sock->cookie = e.cookie;
    sock->last_ts_ns = e.ts_ns;
  }
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
  // Removed series took their nodes with them: no cached pointer may remain.
  if (removed) forget_series();
  return removed;
}

size_t Aggregator::sweep(uint64_t scan_start_ns,
                         const std::function<void(const KeyVisitor&)>& for_each_live) {
  std::lock_guard lock(mu_);
  if (sockets_.empty()) return 0;
  const uint64_t gen = ++sweeps_;
  for_each_live([&](const SocketKey& key) {
    if (auto* e = sockets_.find(key)) e->value.swept = gen;
  });
  // An event after the scan began may be of a socket the scan missed.
  return sockets_.erase_if([&](const auto& e) {
    return e.value.swept != gen && e.value.stats.last_ts_ns < scan_start_ns;
  });
}

std::optional<SocketStats> Aggregator::socket(const SocketKey& key) const {
  std::lock_guard lock(mu_);
  if (auto* e = sockets_.find(key)) return e->value.stats;
  return std::nullopt;
}

}  // namespace tcpka
