#include "aggregator.h"

#include <set>

namespace tcpka {

Aggregator::Aggregator(uint32_t max_series, size_t max_sockets)
    : max_series_(max_series), max_sockets_(max_sockets) {}

void Aggregator::set_max_series(uint32_t max_series) {
  std::lock_guard lock(mu_);
  max_series_ = max_series;
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
  std::lock_guard lock(mu_);
  if (e.kind == EventKind::kGone) {
    sockets_.erase(e.sock);
    return;
  }
  SeriesCounts& counts = series_[key_for(e, cgroup)];
  auto it = sockets_.find(e.sock);
  if (it == sockets_.end()) {
    if (sockets_.size() < max_sockets_) {
      it = sockets_.emplace(e.sock, SocketStats{}).first;
    } else {
      ++untracked_;
    }
  }
  SocketStats* sock = it == sockets_.end() ? nullptr : &it->second;
  if (sock) {
    if (e.cookie) sock->cookie = e.cookie;
    sock->direction = e.direction;
    sock->cgroup = cgroup;
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
        if (!e.gone_follows) sockets_.erase(it);
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
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    it = is_dead(it->second.cgroup) ? sockets_.erase(it) : std::next(it);
  }
  return removed;
}

std::optional<SocketStats> Aggregator::socket(const SocketKey& key) const {
  std::lock_guard lock(mu_);
  if (auto it = sockets_.find(key); it != sockets_.end()) return it->second;
  return std::nullopt;
}

}  // namespace tcpka
