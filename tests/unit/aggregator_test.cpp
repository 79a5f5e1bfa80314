#include "aggregator.h"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include "fixtures.h"

#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace tcpka {
namespace {

using testing_fixtures::make_event;

Event probe(Direction dir, uint16_t sport, uint16_t dport) {
  return make_event(EventKind::kProbe, dir, sport, dport);
}

SeriesKey key(Direction d, std::string port, std::string cgroup) {
  return SeriesKey{d, std::move(port), std::move(cgroup)};
}

TEST(AggregatorTest, CountsEachKindPerSeries) {
  Aggregator agg(100, 100);
  // Inbound connection to local port 5432 from peer port 40000.
  agg.add(probe(Direction::kInbound, 5432, 40000), "/db");
  agg.add(probe(Direction::kInbound, 5432, 40000), "/db");
  agg.add(make_event(EventKind::kRecovered, Direction::kInbound, 5432, 40000), "/db");
  agg.add(make_event(EventKind::kKill, Direction::kInbound, 5432, 40001, Outcome::kTimeout), "/db");
  agg.add(make_event(EventKind::kKill, Direction::kInbound, 5432, 40002, Outcome::kReset), "/db");
  agg.add(make_event(EventKind::kKill, Direction::kInbound, 5432, 40003, Outcome::kReset), "/db");
  // Outbound to remote port 443: the series port is dport.
  agg.add(probe(Direction::kOutbound, 50000, 443), "/web");

  const auto snap = agg.snapshot();
  ASSERT_EQ(snap.series.size(), 2u);
  const auto& db = snap.series.at(key(Direction::kInbound, "5432", "/db"));
  EXPECT_EQ(db.probes, 2u);
  EXPECT_EQ(db.recovered, 1u);
  EXPECT_EQ(db.kills_timeout, 1u);
  EXPECT_EQ(db.kills_reset, 2u);
  const auto& web = snap.series.at(key(Direction::kOutbound, "443", "/web"));
  EXPECT_EQ(web.probes, 1u);
  EXPECT_EQ(web.recovered, 0u);
  EXPECT_EQ(web.kills_timeout, 0u);
  EXPECT_EQ(web.kills_reset, 0u);
  EXPECT_EQ(snap.overflowed_events, 0u);
  EXPECT_EQ(snap.untracked_sockets, 0u);
}

TEST(AggregatorTest, SameLabelsDifferentCgroupsAreDifferentSeries) {
  Aggregator agg(100, 100);
  agg.add(probe(Direction::kInbound, 80, 1), "/a");
  agg.add(probe(Direction::kInbound, 80, 2), "/b");
  agg.add(probe(Direction::kOutbound, 3, 80), "/a");
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.size(), 3u);
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "80", "/a")).probes, 1u);
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "80", "/b")).probes, 1u);
  EXPECT_EQ(snap.series.at(key(Direction::kOutbound, "80", "/a")).probes, 1u);
}

TEST(AggregatorTest, EmptyCgroupBecomesUnknown) {
  Aggregator agg(100, 100);
  agg.add(probe(Direction::kInbound, 80, 1), "");
  const auto snap = agg.snapshot();
  ASSERT_EQ(snap.series.size(), 1u);
  EXPECT_EQ(snap.series.begin()->first.cgroup, "unknown");
  EXPECT_EQ(snap.series.begin()->first.cgroup, kUnknownCgroup);
  EXPECT_EQ(snap.series.begin()->first.port, "80");
}

TEST(AggregatorTest, MaxSeriesFoldsNewLabelSetsIntoOther) {
  Aggregator agg(2, 100);
  agg.add(probe(Direction::kInbound, 1, 9), "/a");
  agg.add(probe(Direction::kInbound, 2, 9), "/a");
  // Cap reached: new ports fold into "other".
  agg.add(probe(Direction::kInbound, 3, 9), "/a");
  agg.add(probe(Direction::kInbound, 4, 9), "/a");
  // An existing label set is still counted on its own port.
  agg.add(probe(Direction::kInbound, 1, 10), "/a");

  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.size(), 3u);
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "1", "/a")).probes, 2u);
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "2", "/a")).probes, 1u);
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "other", "/a")).probes, 2u);
  EXPECT_EQ(snap.series.count(key(Direction::kInbound, "3", "/a")), 0u);
  EXPECT_EQ(snap.series.count(key(Direction::kInbound, "4", "/a")), 0u);
  EXPECT_EQ(snap.overflowed_events, 2u);
}

TEST(AggregatorTest, OverflowKeepsDirectionAndCgroup) {
  Aggregator agg(1, 100);
  agg.add(probe(Direction::kInbound, 1, 9), "/a");
  agg.add(make_event(EventKind::kKill, Direction::kOutbound, 9, 7, Outcome::kReset), "/b");
  agg.add(probe(Direction::kOutbound, 9, 8), "");
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.at(key(Direction::kOutbound, "other", "/b")).kills_reset, 1u);
  EXPECT_EQ(snap.series.at(key(Direction::kOutbound, "other", "unknown")).probes, 1u);
  EXPECT_EQ(snap.overflowed_events, 2u);
}

TEST(AggregatorTest, ProbeTracksSocket) {
  Aggregator agg(100, 100);
  Event e = probe(Direction::kInbound, 80, 1);
  e.ts_ns = 10;
  agg.add(e, "/a");
  e.ts_ns = 20;
  agg.add(e, "/a");
  e.kind = EventKind::kRecovered;
  e.ts_ns = 30;
  agg.add(e, "/a");

  auto s = agg.socket(e.sock);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->probes, 2u);
  EXPECT_EQ(s->recovered, 1u);
  EXPECT_EQ(s->cookie, e.cookie);
  EXPECT_EQ(s->direction, Direction::kInbound);
  EXPECT_EQ(s->cgroup, "/a");
  EXPECT_EQ(s->last_ts_ns, 30u);
  EXPECT_EQ(agg.snapshot().sockets, 1u);

  SocketKey other = e.sock;
  other.sport = 81;
  EXPECT_FALSE(agg.socket(other).has_value());
}

TEST(AggregatorTest, GoneRemovesSocketWithoutCounting) {
  Aggregator agg(100, 100);
  Event e = probe(Direction::kOutbound, 50000, 443);
  agg.add(e, "/a");
  ASSERT_TRUE(agg.socket(e.sock).has_value());
  e.kind = EventKind::kGone;
  agg.add(e, "/a");
  EXPECT_FALSE(agg.socket(e.sock).has_value());
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.sockets, 0u);
  const auto& c = snap.series.at(key(Direction::kOutbound, "443", "/a"));
  EXPECT_EQ(c.probes, 1u);
  EXPECT_EQ(c.recovered, 0u);
  EXPECT_EQ(c.kills_timeout + c.kills_reset, 0u);
}

TEST(AggregatorTest, GoneOfUnknownSocketAddsNothing) {
  Aggregator agg(100, 100);
  agg.add(make_event(EventKind::kGone, Direction::kInbound, 1, 2), "/a");
  const auto snap = agg.snapshot();
  EXPECT_TRUE(snap.series.empty());
  EXPECT_EQ(snap.sockets, 0u);
}

TEST(AggregatorTest, KillKeepsSocketUntilGone) {
  for (Outcome o : {Outcome::kTimeout, Outcome::kReset}) {
    Aggregator agg(100, 100);
    Event e = probe(Direction::kInbound, 22, 60000);
    agg.add(e, "/ssh");
    ASSERT_TRUE(agg.socket(e.sock).has_value());
    e.kind = EventKind::kKill;
    e.outcome = o;
    e.gone_follows = true;
    agg.add(e, "/ssh");
    // The application may still hold the dead socket: the audit shows its kill.
    ASSERT_TRUE(agg.socket(e.sock).has_value());
    EXPECT_EQ(agg.socket(e.sock)->kills, 1u);
    EXPECT_EQ(agg.socket(e.sock)->probes, 1u);
    e.kind = EventKind::kGone;
    agg.add(e, "/ssh");
    EXPECT_FALSE(agg.socket(e.sock).has_value());
    EXPECT_EQ(agg.snapshot().sockets, 0u);
  }
}

TEST(AggregatorTest, KillWithoutGoneEventDropsTheSocketAtOnce) {
  Aggregator agg(100, 100);
  Event e = probe(Direction::kOutbound, 50000, 443);
  agg.add(e, "/app");
  e.kind = EventKind::kKill;
  e.outcome = Outcome::kTimeout;
  e.gone_follows = false;  // the kernel map was full: no gone event will come
  agg.add(e, "/app");
  EXPECT_FALSE(agg.socket(e.sock).has_value());
  EXPECT_EQ(agg.snapshot().sockets, 0u);
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kOutbound, "443", "/app")).kills_timeout, 1u);
}

TEST(AggregatorTest, KillOfUnseenSocketTracksItWithItsKill) {
  Aggregator agg(100, 100);
  Event e = make_event(EventKind::kKill, Direction::kInbound, 22, 60000, Outcome::kTimeout);
  e.gone_follows = true;
  agg.add(e, "/ssh");
  ASSERT_TRUE(agg.socket(e.sock).has_value());
  EXPECT_EQ(agg.socket(e.sock)->kills, 1u);
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.sockets, 1u);
  EXPECT_EQ(snap.untracked_sockets, 0u);
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "22", "/ssh")).kills_timeout, 1u);
}

TEST(AggregatorTest, MaxSocketsCountsUntracked) {
  Aggregator agg(100, 2);
  agg.add(probe(Direction::kInbound, 80, 1), "/a");
  agg.add(probe(Direction::kInbound, 80, 2), "/a");
  agg.add(probe(Direction::kInbound, 80, 3), "/a");
  agg.add(probe(Direction::kInbound, 80, 3), "/a");
  // Already tracked sockets are still updated.
  agg.add(probe(Direction::kInbound, 80, 1), "/a");

  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.sockets, 2u);
  EXPECT_EQ(snap.untracked_sockets, 2u);
  // Untracked sockets are still counted in the series.
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "80", "/a")).probes, 5u);
  EXPECT_FALSE(agg.socket(probe(Direction::kInbound, 80, 3).sock).has_value());
  auto first = agg.socket(probe(Direction::kInbound, 80, 1).sock);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->probes, 2u);
}

TEST(AggregatorTest, FreedSocketSlotIsReused) {
  Aggregator agg(100, 1);
  Event a = probe(Direction::kInbound, 80, 1);
  Event b = probe(Direction::kInbound, 80, 2);
  agg.add(a, "/a");
  agg.add(b, "/a");
  EXPECT_FALSE(agg.socket(b.sock).has_value());
  a.kind = EventKind::kGone;
  agg.add(a, "/a");
  agg.add(b, "/a");
  EXPECT_TRUE(agg.socket(b.sock).has_value());
  EXPECT_EQ(agg.snapshot().untracked_sockets, 1u);
}

TEST(AggregatorTest, RemoveCgroupsDropsGoneSeriesAndSockets) {
  Aggregator agg(100, 100);
  const Event a1 = probe(Direction::kInbound, 80, 1);
  const Event a2 = probe(Direction::kOutbound, 2, 443);
  const Event b1 = probe(Direction::kInbound, 80, 3);
  const Event u1 = probe(Direction::kInbound, 80, 4);
  agg.add(a1, "/gone");
  agg.add(a2, "/gone");
  agg.add(b1, "/alive");
  agg.add(u1, "");
  ASSERT_EQ(agg.snapshot().series.size(), 4u);

  std::map<std::string, int> asked;
  const size_t removed = agg.remove_cgroups([&](const std::string& cg) {
    ++asked[cg];
    return cg == "/gone";
  });
  EXPECT_EQ(removed, 2u);
  // Once per cgroup, and never for "unknown".
  EXPECT_EQ(asked, (std::map<std::string, int>{{"/alive", 1}, {"/gone", 1}}));

  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.size(), 2u);
  EXPECT_EQ(snap.series.count(key(Direction::kInbound, "80", "/alive")), 1u);
  EXPECT_EQ(snap.series.count(key(Direction::kInbound, "80", "unknown")), 1u);
  EXPECT_FALSE(agg.socket(a1.sock).has_value());
  EXPECT_FALSE(agg.socket(a2.sock).has_value());
  EXPECT_TRUE(agg.socket(b1.sock).has_value());
  EXPECT_TRUE(agg.socket(u1.sock).has_value());
  EXPECT_EQ(snap.sockets, 2u);
}

TEST(AggregatorTest, RemoveCgroupsUsesTheSocketsLatestCgroup) {
  Aggregator agg(100, 100);
  Event e = probe(Direction::kInbound, 80, 1);
  agg.add(e, "/old");
  e.kind = EventKind::kProbe;
  agg.add(e, "/new");  // the socket moved cgroup: its stats now say /new
  int calls = 0;
  EXPECT_EQ(agg.remove_cgroups([&](const std::string& cg) {
    ++calls;
    return cg == "/new";
  }),
            1u);
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(agg.socket(e.sock).has_value());
}

TEST(AggregatorTest, RemoveCgroupsNothingGone) {
  Aggregator agg(100, 100);
  agg.add(probe(Direction::kInbound, 80, 1), "/a");
  EXPECT_EQ(agg.remove_cgroups([](const std::string&) { return false; }), 0u);
  EXPECT_EQ(agg.snapshot().series.size(), 1u);
  EXPECT_EQ(agg.snapshot().sockets, 1u);
}

TEST(AggregatorTest, RemovedSeriesFreeRoomUnderTheCap) {
  Aggregator agg(1, 100);
  agg.add(probe(Direction::kInbound, 80, 1), "/gone");
  agg.remove_cgroups([](const std::string& cg) { return cg == "/gone"; });
  agg.add(probe(Direction::kInbound, 81, 1), "/a");
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.count(key(Direction::kInbound, "81", "/a")), 1u);
  EXPECT_EQ(snap.overflowed_events, 0u);
}

TEST(AggregatorTest, ConcurrentAddsAreAllCounted) {
  Aggregator agg(100, 1000);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&agg, t] {
      for (int i = 0; i < kPerThread; ++i) {
        agg.add(probe(Direction::kInbound, 80, static_cast<uint16_t>(t * 10 + i % 10)), "/a");
        (void)agg.snapshot();
      }
    });
  }
  for (auto& th : threads) th.join();
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "80", "/a")).probes,
            static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(snap.sockets, static_cast<size_t>(kThreads * 10));
}

// The resolving overload, as the agent's event path uses it: a map of
// cgroup ids to paths that a test can change, and a count of lookups.
struct Resolver {
  std::map<uint64_t, std::string> paths;
  int calls = 0;
  std::function<std::string(uint64_t)> fn() {
    return [this](uint64_t id) {
      ++calls;
      auto it = paths.find(id);
      return it == paths.end() ? std::string() : it->second;
    };
  }
};

Event probe_in(uint64_t cgroup_id, uint16_t peer) {
  Event e = probe(Direction::kInbound, 80, peer);
  e.cgroup_id = cgroup_id;
  return e;
}

TEST(AggregatorCacheTest, KnownSocketIsNotResolvedAgain) {
  Aggregator agg(100, 100);
  Resolver r{{{7, "/a"}}};
  auto fn = r.fn();
  for (int i = 0; i < 5; ++i) agg.add(probe_in(7, 1), fn);
  agg.add(probe_in(7, 2), fn);
  EXPECT_EQ(r.calls, 2);  // once per socket
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kInbound, "80", "/a")).probes, 6u);
  EXPECT_EQ(agg.socket(probe_in(7, 1).sock)->probes, 5u);
}

TEST(AggregatorCacheTest, NewCgroupIdIsResolvedAndCountedThere) {
  Aggregator agg(100, 100);
  Resolver r{{{7, "/a"}, {8, "/b"}}};
  auto fn = r.fn();
  agg.add(probe_in(7, 1), fn);
  agg.add(probe_in(8, 1), fn);  // the process moved the socket's cgroup
  agg.add(probe_in(8, 1), fn);
  EXPECT_EQ(r.calls, 2);
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "80", "/a")).probes, 1u);
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "80", "/b")).probes, 2u);
  EXPECT_EQ(agg.socket(probe_in(8, 1).sock)->cgroup, "/b");
}

TEST(AggregatorCacheTest, UnresolvedCgroupIsTriedAgainNextEvent) {
  Aggregator agg(100, 100);
  Resolver r;
  auto fn = r.fn();
  agg.add(probe_in(7, 1), fn);
  agg.add(probe_in(7, 1), fn);
  r.paths[7] = "/late";  // a rescan found it
  agg.add(probe_in(7, 1), fn);
  agg.add(probe_in(7, 1), fn);
  EXPECT_EQ(r.calls, 3);
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "80", "unknown")).probes, 2u);
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "80", "/late")).probes, 2u);
}

TEST(AggregatorCacheTest, RemovedSeriesAreNeverCountedThroughTheCache) {
  Aggregator agg(100, 100);
  Resolver r{{{7, "/gone"}, {8, "/kept"}}};
  auto fn = r.fn();
  agg.add(probe_in(7, 1), fn);
  agg.add(probe_in(8, 2), fn);
  EXPECT_EQ(agg.remove_cgroups([](const std::string& cg) { return cg == "/gone"; }), 1u);
  // The kept socket's cache was dropped with the removal: resolved again,
  // counted in its live series.
  agg.add(probe_in(8, 2), fn);
  // An id reused for the gone cgroup's socket address starts afresh.
  agg.add(probe_in(7, 1), fn);
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "80", "/kept")).probes, 2u);
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "80", "/gone")).probes, 1u);
  EXPECT_EQ(r.calls, 4);
}

TEST(AggregatorCacheTest, RaisedCapGivesFoldedSocketsTheirOwnSeries) {
  Aggregator agg(1, 100);
  Resolver r{{{7, "/a"}, {8, "/b"}}};
  auto fn = r.fn();
  agg.add(probe_in(7, 1), fn);
  agg.add(probe_in(8, 2), fn);  // past the cap: port "other"
  agg.add(probe_in(8, 2), fn);
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kInbound, "other", "/b")).probes, 2u);
  agg.set_max_series(10);
  agg.add(probe_in(8, 2), fn);
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "80", "/b")).probes, 1u);
  EXPECT_EQ(snap.overflowed_events, 2u);
}

TEST(AggregatorCacheTest, KillWithoutGoneDropsTheCachedSocket) {
  Aggregator agg(100, 100);
  Resolver r{{{7, "/a"}}};
  auto fn = r.fn();
  agg.add(probe_in(7, 1), fn);
  Event kill = probe_in(7, 1);
  kill.kind = EventKind::kKill;
  kill.outcome = Outcome::kTimeout;
  agg.add(kill, fn);  // gone_follows == 0
  EXPECT_FALSE(agg.socket(kill.sock).has_value());
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kInbound, "80", "/a")).kills_timeout, 1u);
}

TEST(AggregatorSweepTest, ForgetsSocketsTheScanNoLongerShows) {
  Aggregator agg(100, 100);
  Event a = probe(Direction::kInbound, 80, 1), b = probe(Direction::kInbound, 80, 2);
  a.ts_ns = b.ts_ns = 100;
  agg.add(a, "/a");
  agg.add(b, "/a");
  const size_t removed = agg.sweep(200, [&](const Aggregator::LiveVisitor& visit) {
    visit(a.sock, 0, 7, "/a", Direction::kInbound);
    visit(probe(Direction::kInbound, 80, 3).sock, 0, 7, "/a",
          Direction::kInbound);  // never tracked
  });
  EXPECT_EQ(removed, 1u);
  EXPECT_TRUE(agg.socket(a.sock).has_value());
  EXPECT_FALSE(agg.socket(b.sock).has_value());
  // Counts stay: only the per-socket table forgets.
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kInbound, "80", "/a")).probes, 2u);
}

TEST(AggregatorSweepTest, KeepsSocketsSeenSinceTheScanBegan) {
  Aggregator agg(100, 100);
  Event e = probe(Direction::kInbound, 80, 1);
  e.ts_ns = 300;  // its first event came after the scan started: the scan may have missed it
  agg.add(e, "/a");
  EXPECT_EQ(agg.sweep(200, [](const Aggregator::LiveVisitor&) {}), 0u);
  EXPECT_TRUE(agg.socket(e.sock).has_value());
  EXPECT_EQ(agg.sweep(400, [](const Aggregator::LiveVisitor&) {}), 1u);
  EXPECT_EQ(agg.snapshot().sockets, 0u);
}

TEST(AggregatorSweepTest, EachSweepNeedsItsOwnSighting) {
  Aggregator agg(100, 100);
  Event e = probe(Direction::kInbound, 80, 1);
  agg.add(e, "/a");
  EXPECT_EQ(agg.sweep(10,
                      [&](const Aggregator::LiveVisitor& visit) {
                        visit(e.sock, 0, 7, "/a", Direction::kInbound);
                      }),
            0u);
  EXPECT_EQ(agg.sweep(10, [](const Aggregator::LiveVisitor&) {}), 1u);
}

// `tcpka run`'s probe events come without attribution (cgroup id 0,
// direction unknown: keepalive.bpf.c, tka_hot.probe_attribution).
Event bare_probe(uint16_t sport, uint16_t dport, uint64_t ts_ns = 0) {
  Event e = probe(Direction::kUnknown, sport, dport);
  e.cgroup_id = 0;
  e.ts_ns = ts_ns;
  return e;
}

Event with_attribution(Event e, uint64_t cgroup_id, Direction d) {
  e.cgroup_id = cgroup_id;
  e.direction = d;
  return e;
}

TEST(AggregatorAttributionTest, KnownSocketLendsItsAttributionToBareProbes) {
  Aggregator agg(100, 100);
  Resolver r{{{7, "/a"}}};
  auto fn = r.fn();
  agg.add(with_attribution(bare_probe(80, 1), 7, Direction::kInbound), fn);
  for (int i = 0; i < 3; ++i) agg.add(bare_probe(80, 1), fn);
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kInbound, "80", "/a")).probes, 4u);
  EXPECT_EQ(agg.snapshot().series.size(), 1u);
  EXPECT_EQ(agg.held().probes, 0u);
}

TEST(AggregatorAttributionTest, BareProbesOfANewSocketWaitForTheScan) {
  Aggregator agg(100, 100);
  Resolver r;
  auto fn = r.fn();
  for (int i = 0; i < 3; ++i) agg.add(bare_probe(50000, 443, 300), fn);
  // On the socket at once (/sockets shows them), in no series yet.
  EXPECT_TRUE(agg.snapshot().series.empty());
  EXPECT_EQ(agg.socket(bare_probe(50000, 443).sock)->probes, 3u);
  EXPECT_EQ(agg.held().probes, 3u);
  EXPECT_EQ(agg.held().sockets, 1u);
  // The scan names it: the scan's cgroup path, no lookup of our own.
  EXPECT_EQ(agg.sweep(200,
                      [&](const Aggregator::LiveVisitor& visit) {
                        visit(bare_probe(50000, 443).sock, 0, 9, "/web", Direction::kOutbound);
                      }),
            0u);
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kOutbound, "443", "/web")).probes, 3u);
  EXPECT_EQ(agg.held().probes, 0u);
  EXPECT_EQ(agg.held().sockets, 0u);
  // From now on counted at once, in the same series.
  agg.add(bare_probe(50000, 443, 400), fn);
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kOutbound, "443", "/web")).probes, 4u);
  EXPECT_EQ(agg.socket(bare_probe(50000, 443).sock)->cgroup, "/web");
  EXPECT_EQ(r.calls, 0);
}

TEST(AggregatorAttributionTest, AKillCarriesHeldProbesIntoItsSeries) {
  Aggregator agg(100, 100);
  Resolver r{{{7, "/db"}}};
  auto fn = r.fn();
  agg.add(bare_probe(5432, 40000), fn);
  agg.add(bare_probe(5432, 40000), fn);
  Event kill = with_attribution(bare_probe(5432, 40000), 7, Direction::kInbound);
  kill.kind = EventKind::kKill;
  kill.outcome = Outcome::kTimeout;  // gone_follows 0: the socket is dropped with it
  agg.add(kill, fn);
  const SeriesCounts s = agg.snapshot().series.at(key(Direction::kInbound, "5432", "/db"));
  EXPECT_EQ(s.probes, 2u);
  EXPECT_EQ(s.kills_timeout, 1u);
  EXPECT_EQ(agg.held().probes, 0u);
  EXPECT_FALSE(agg.socket(kill.sock).has_value());
}

TEST(AggregatorAttributionTest, AGoneEventCarriesHeldProbesIntoItsSeries) {
  Aggregator agg(100, 100);
  Resolver r{{{7, "/db"}}};
  auto fn = r.fn();
  agg.add(bare_probe(5432, 40000), fn);
  Event gone = with_attribution(bare_probe(5432, 40000), 7, Direction::kInbound);
  gone.kind = EventKind::kGone;
  agg.add(gone, fn);
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kInbound, "5432", "/db")).probes, 1u);
  EXPECT_EQ(agg.held().sockets, 0u);
  EXPECT_EQ(agg.snapshot().sockets, 0u);
}

TEST(AggregatorAttributionTest, ASocketNoScanShowsWaitsForTheKernelsLabels) {
  Aggregator agg(100, 100);
  std::vector<bool> calls;
  agg.on_kernel_labels([&](bool on) { calls.push_back(on); });
  Resolver r{{{7, "/a"}}};
  auto fn = r.fn();
  agg.add(bare_probe(80, 1, 100), fn);
  agg.add(bare_probe(80, 1, 150), fn);
  agg.add(bare_probe(80, 2, 300), fn);  // after the scan began: may have been missed
  // A socket without a file descriptor (the kernel's own, a child in an
  // accept queue): the scan cannot show it. Kept, and the kernel asked for
  // labels; the other one waits for the next scan.
  EXPECT_EQ(agg.sweep(200, [](const Aggregator::LiveVisitor&) {}), 0u);
  EXPECT_EQ(calls, std::vector<bool>{true});
  EXPECT_EQ(agg.held().unseen, 1u);
  EXPECT_EQ(agg.held().sockets, 2u);
  EXPECT_TRUE(agg.snapshot().series.empty());
  // Its next probe comes labelled: all three in its series.
  agg.add(with_attribution(bare_probe(80, 1, 1100), 7, Direction::kInbound), fn);
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kInbound, "80", "/a")).probes, 3u);
  EXPECT_EQ(agg.held().unseen, 0u);
  EXPECT_EQ(calls, (std::vector<bool>{true, false}));
  // From now on it needs no scan, and no sweep forgets it: its gone event does.
  agg.add(bare_probe(80, 1, 2100), fn);
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kInbound, "80", "/a")).probes, 4u);
  EXPECT_EQ(agg.sweep(5000, [](const Aggregator::LiveVisitor&) {}), 0u);
  EXPECT_TRUE(agg.socket(bare_probe(80, 1).sock).has_value());
  EXPECT_EQ(calls, (std::vector<bool>{true, false, true}));  // the other one is unseen now
  Event gone = with_attribution(bare_probe(80, 1, 5100), 7, Direction::kInbound);
  gone.kind = EventKind::kGone;
  agg.add(gone, fn);
  EXPECT_FALSE(agg.socket(gone.sock).has_value());
  EXPECT_EQ(r.calls, 1);
}

TEST(AggregatorAttributionTest, ASocketProbingThroughASlowScanIsStillUnseen) {
  // A probe a second, and a scan that takes longer than one (loaded or
  // emulated machines): its last probe is always read after the scan began.
  Aggregator agg(100, 100);
  std::vector<bool> calls;
  agg.on_kernel_labels([&](bool on) { calls.push_back(on); });
  Resolver r;
  auto fn = r.fn();
  agg.add(bare_probe(80, 1, 100), fn);
  agg.add(bare_probe(80, 1, 1100), fn);
  agg.add(bare_probe(80, 1, 2100), fn);
  agg.sweep(2000, [](const Aggregator::LiveVisitor&) {});
  EXPECT_EQ(agg.held().unseen, 1u);
  EXPECT_EQ(calls, std::vector<bool>{true});
  EXPECT_EQ(agg.snapshot().sockets, 1u) << "not forgotten: its last event came during the scan";
}

TEST(AggregatorAttributionTest, AnUnseenSocketAScanShowsLaterIsLabelledAndSweptAgain) {
  Aggregator agg(100, 100);
  std::vector<bool> calls;
  agg.on_kernel_labels([&](bool on) { calls.push_back(on); });
  Resolver r;
  auto fn = r.fn();
  const SocketKey sock = bare_probe(80, 1).sock;
  agg.add(bare_probe(80, 1, 100), fn);
  agg.sweep(200, [](const Aggregator::LiveVisitor&) {});
  EXPECT_EQ(agg.held().unseen, 1u);
  // Accepted since: now it has a file descriptor.
  agg.sweep(300, [&](const Aggregator::LiveVisitor& visit) {
    visit(sock, 0, 9, "/web", Direction::kInbound);
  });
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kInbound, "80", "/web")).probes, 1u);
  EXPECT_EQ(agg.held().unseen, 0u);
  EXPECT_EQ(calls, (std::vector<bool>{true, false}));
  EXPECT_EQ(agg.sweep(400, [](const Aggregator::LiveVisitor&) {}), 1u);  // closed, gone event lost
}

// A socket killed by timeout in a callback BPF was not shown: no kill event
// names it, and tcp_done() unhashed it, so the scan shows it with local
// port 0. Its cookie still finds it, and its probes join its series, under
// its connection's ports.
TEST(AggregatorAttributionTest, AHeldSocketTheScanShowsUnderAnotherKeyIsFoundByItsCookie) {
  Aggregator agg(100, 100);
  Resolver r;
  auto fn = r.fn();
  Event probe1 = bare_probe(80, 1, 100);
  probe1.cookie = 42;
  agg.add(probe1, fn);
  agg.add(probe1, fn);
  SocketKey unhashed = probe1.sock;
  unhashed.sport = 0;
  agg.sweep(200, [&](const Aggregator::LiveVisitor& visit) {
    visit(unhashed, 41, 9, "/web", Direction::kInbound);  // another socket's cookie
  });
  EXPECT_EQ(agg.held().probes, 2u) << "a cookie that differs names another socket";
  agg.sweep(300, [&](const Aggregator::LiveVisitor& visit) {
    visit(unhashed, 42, 9, "/web", Direction::kInbound);
  });
  EXPECT_EQ(agg.held().probes, 0u);
  EXPECT_EQ(agg.held().unseen, 0u);
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kInbound, "80", "/web")).probes, 2u);
  EXPECT_EQ(agg.snapshot().series.count(key(Direction::kInbound, "0", "/web")), 0u);
}

TEST(AggregatorAttributionTest, ACookieMismatchLetsGoOfHeldProbes) {
  Aggregator agg(100, 100);
  Resolver r;
  auto fn = r.fn();
  Event first = bare_probe(80, 1, 100);
  first.cookie = 1;
  agg.add(first, fn);
  agg.sweep(200, [](const Aggregator::LiveVisitor&) {});  // unseen
  Event next = bare_probe(80, 1, 300);
  next.cookie = 2;
  agg.add(next, fn);
  // The earlier socket's probe, never labelled, counts under "unknown"; the
  // new socket's waits for its own labels.
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kUnknown, "1", "unknown")).probes, 1u);
  EXPECT_EQ(agg.held().probes, 1u);
  EXPECT_EQ(agg.held().sockets, 1u);
  EXPECT_EQ(agg.held().unseen, 0u);
}

TEST(AggregatorAttributionTest, RemovingCgroupsKeepsSocketsThatWait) {
  Aggregator agg(100, 100);
  Resolver r{{{7, "/gone"}}};
  auto fn = r.fn();
  agg.add(with_attribution(bare_probe(80, 1), 7, Direction::kInbound), fn);
  agg.add(bare_probe(80, 2), fn);
  EXPECT_EQ(agg.remove_cgroups([](const std::string& cg) { return cg == "/gone"; }), 1u);
  EXPECT_EQ(agg.held().probes, 1u);
  EXPECT_TRUE(agg.socket(bare_probe(80, 2).sock).has_value());
  EXPECT_FALSE(agg.socket(bare_probe(80, 1).sock).has_value());
}

TEST(AggregatorAttributionTest, NoRoomToWaitCountsAtOnceAsUnknown) {
  Aggregator agg(100, 1);
  Resolver r{{{7, "/a"}}};
  auto fn = r.fn();
  agg.add(with_attribution(bare_probe(80, 1), 7, Direction::kInbound), fn);
  agg.add(bare_probe(80, 2), fn);  // the table is full
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.at(key(Direction::kUnknown, "2", "unknown")).probes, 1u);
  EXPECT_EQ(snap.untracked_sockets, 1u);
  EXPECT_EQ(agg.held().probes, 0u);
}

TEST(AggregatorAttributionTest, AnEarlierSocketAtTheSameAddressLendsNoLabels) {
  Aggregator agg(100, 100);
  Resolver r{{{7, "/old"}}};
  auto fn = r.fn();
  Event old = with_attribution(bare_probe(80, 1), 7, Direction::kInbound);
  old.cookie = 1;
  agg.add(old, fn);
  // Its gone event was lost; a new socket has the same ports.
  Event next = bare_probe(80, 1);
  next.cookie = 2;
  agg.add(next, fn);
  EXPECT_EQ(agg.snapshot().series.at(key(Direction::kInbound, "80", "/old")).probes, 1u);
  EXPECT_EQ(agg.held().probes, 1u);
  EXPECT_EQ(agg.socket(next.sock)->probes, 1u);  // its own count, not the old one's
  EXPECT_EQ(agg.socket(next.sock)->cookie, 2u);
  // A probe without a cookie cannot tell: it is taken for the same socket.
  Event unknown = bare_probe(80, 1);
  unknown.cookie = 0;
  agg.add(unknown, fn);
  EXPECT_EQ(agg.held().probes, 2u);
  EXPECT_EQ(agg.socket(next.sock)->probes, 2u);
}

TEST(AggregatorAttributionTest, ANearlyFullTableAsksForKernelAttributionUntilItHasRoom) {
  Aggregator agg(100, 16);
  std::vector<bool> calls;
  agg.on_kernel_labels([&](bool on) { calls.push_back(on); });
  Resolver r{{{7, "/a"}}};
  auto fn = r.fn();
  auto add = [&](uint16_t peer, EventKind kind) {
    Event e = with_attribution(bare_probe(80, peer), 7, Direction::kInbound);
    e.kind = kind;
    agg.add(e, fn);
  };
  for (uint16_t p = 1; p <= 14; ++p) add(p, EventKind::kProbe);
  EXPECT_TRUE(calls.empty());
  add(15, EventKind::kProbe);  // 15 of 16: a burst already in the ring still fits
  EXPECT_EQ(calls, std::vector<bool>{true});
  add(16, EventKind::kProbe);
  add(14, EventKind::kGone);  // 15 and 14 left: not yet
  add(15, EventKind::kGone);
  EXPECT_EQ(calls, std::vector<bool>{true});
  add(16, EventKind::kGone);  // 13: room again
  EXPECT_EQ(calls, (std::vector<bool>{true, false}));
  // A sweep that forgets sockets counts too.
  for (uint16_t p = 20; p < 22; ++p) add(p, EventKind::kProbe);
  EXPECT_EQ(calls, (std::vector<bool>{true, false, true}));
  agg.sweep(~0ull, [](const Aggregator::LiveVisitor&) {});
  EXPECT_EQ(calls, (std::vector<bool>{true, false, true, false}));
}

TEST(AggregatorAttributionTest, HeldProbesPastTheCapFoldIntoOtherEachCounted) {
  Aggregator agg(1, 100);
  Resolver r{{{7, "/a"}}};
  auto fn = r.fn();
  agg.add(with_attribution(bare_probe(80, 1), 7, Direction::kInbound), fn);
  agg.add(bare_probe(81, 2), fn);
  agg.add(bare_probe(81, 2), fn);
  agg.sweep(0, [&](const Aggregator::LiveVisitor& visit) {
    visit(bare_probe(81, 2).sock, 0, 7, "/a", Direction::kInbound);
  });
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.at(key(Direction::kInbound, "other", "/a")).probes, 2u);
  EXPECT_EQ(snap.overflowed_events, 2u);
}

}  // namespace
}  // namespace tcpka
