// SIGHUP and restarts, the pure parts: which keys a reload applies and
// which wait for a restart, the setters a reload calls, the reload and
// start-time metrics, and the precedence of the command line over the file
// when the file is read again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "aggregator.h"
#include "audit_metrics.h"
#include "cli.h"
#include "config.h"
#include "fixtures.h"
#include "metrics.h"
#include "temp_file.h"

namespace tcpka {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing_fixtures::all_features;
using testing_fixtures::make_event;

TEST(PlanReloadTest, LiveKeysTakeTheirNewValue) {
  RunConfig running;
  RunConfig next;
  next.max_series = 7;
  next.gc_interval = 3;
  next.audit_interval = 2;
  next.idle_threshold = 9;
  next.k8s_log_root = "/elsewhere";
  next.state_persist = true;
  next.policies.push_back(PolicySpec{"/app", 10, 2, 3, "both", false});
  const ReloadPlan plan = plan_reload(running, next);
  EXPECT_THAT(plan.restart, IsEmpty());
  EXPECT_EQ(plan.applied.max_series, 7u);
  EXPECT_EQ(plan.applied.gc_interval, 3u);
  EXPECT_EQ(plan.applied.audit_interval, 2u);
  EXPECT_EQ(plan.applied.idle_threshold, 9u);
  EXPECT_EQ(plan.applied.k8s_log_root, "/elsewhere");
  EXPECT_TRUE(plan.applied.state_persist);
  ASSERT_EQ(plan.applied.policies.size(), 1u);
  EXPECT_EQ(plan.applied.policies[0].idle, 10u);
}

TEST(PlanReloadTest, StartOnlyKeysKeepTheRunningValueAndAreNamed) {
  RunConfig running;
  RunConfig next;
  next.listen = "127.0.0.1:1";
  next.backend = Backend::kTimerBracket;
  next.ringbuf_bytes = 1u << 12;
  next.max_sockets = 16;
  next.close_wait_ringbuf_bytes = 1u << 12;
  next.close_wait_slots = 1;
  next.keepalive_persist = true;
  next.max_series = 5;  // live, applied alongside
  const ReloadPlan plan = plan_reload(running, next);
  EXPECT_THAT(plan.restart, ElementsAre("listen", "backend", "ringbuf-bytes", "max-sockets",
                                        "close-wait-ringbuf-bytes", "close-wait-slots",
                                        "keepalive-persist"));
  EXPECT_EQ(plan.applied.listen, running.listen);
  EXPECT_EQ(plan.applied.backend, running.backend);
  EXPECT_EQ(plan.applied.ringbuf_bytes, running.ringbuf_bytes);
  EXPECT_EQ(plan.applied.max_sockets, running.max_sockets);
  EXPECT_EQ(plan.applied.close_wait_ringbuf_bytes, running.close_wait_ringbuf_bytes);
  EXPECT_EQ(plan.applied.close_wait_slots, running.close_wait_slots);
  EXPECT_EQ(plan.applied.keepalive_persist, running.keepalive_persist);
  EXPECT_EQ(plan.applied.max_series, 5u);
}

TEST(PlanReloadTest, UnchangedConfigurationNeedsNothing) {
  RunConfig running;
  running.listen = "[::1]:9000";
  running.max_sockets = 12;
  const ReloadPlan plan = plan_reload(running, running);
  EXPECT_THAT(plan.restart, IsEmpty());
  EXPECT_EQ(plan.applied.listen, "[::1]:9000");
}

// parse_args again over the same argv is what SIGHUP does (main.cpp).
Result<RunConfig> parse_run(const std::vector<std::string>& args) {
  std::vector<std::string> storage = {"tcpka", "run"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& s : storage) argv.push_back(s.c_str());
  argv.push_back(nullptr);
  Invocation inv;
  std::string out, err;
  if (parse_args(static_cast<int>(storage.size()), argv.data(), &inv, &out, &err) >= 0) {
    return Error{err};
  }
  return inv.run;
}

// A config file the test rewrites between SIGHUPs.
struct ConfigFile : testing_common::TempFile {
  ConfigFile() : TempFile("/tmp/tcpka_reload_test.") {}
};

TEST(ReloadPrecedenceTest, CommandLineKeepsWinningOverTheRereadFile) {
  ConfigFile f;
  f.write("max-series = 7\nidle-threshold = 30\n");
  const std::vector<std::string> argv = {"--config", f.path(), "--max-series", "3"};
  auto first = parse_run(argv);
  ASSERT_TRUE(first.ok()) << first.error();
  EXPECT_EQ(first->max_series, 3u);
  EXPECT_EQ(first->idle_threshold, 30u);

  f.write("max-series = 70\nidle-threshold = 60\naudit-interval = 2\n");
  auto again = parse_run(argv);
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(again->max_series, 3u) << "the flag still wins";
  EXPECT_EQ(again->idle_threshold, 60u) << "the file's new value";
  EXPECT_EQ(again->audit_interval, 2u);

  f.write("idle-threshold = 60\n");
  auto removed = parse_run(argv);
  ASSERT_TRUE(removed.ok()) << removed.error();
  EXPECT_EQ(removed->audit_interval, RunConfig{}.audit_interval)
      << "a key removed from the file goes back to its default";
}

TEST(ReloadPrecedenceTest, ABadFileOnReloadIsAnErrorNamingTheValue) {
  ConfigFile f;
  f.write("audit-interval = 5\n");
  const std::vector<std::string> argv = {"--config", f.path()};
  ASSERT_TRUE(parse_run(argv).ok());
  f.write("audit-interval = 0\n");
  auto bad = parse_run(argv);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error(), HasSubstr("--audit-interval"));
  f.write("audit-interval = [\n");
  EXPECT_FALSE(parse_run(argv).ok());
  unlink(f.path().c_str());
  EXPECT_FALSE(parse_run(argv).ok()) << "a vanished file is refused too";
}

TEST(SizeOptionsTest, CloseWaitRingMustBeAPowerOfTwoOfPages) {
  auto ok = parse_run({"--close-wait-ringbuf-bytes", "4096", "--state-persist"});
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok->close_wait_ringbuf_bytes, 4096u);
  EXPECT_TRUE(ok->state_persist);
  EXPECT_EQ(RunConfig{}.close_wait_ringbuf_bytes, 1u << 18);
  EXPECT_FALSE(RunConfig{}.state_persist);
  for (const char* bad : {"0", "1000", "12288", "-1", "x"}) {
    auto r = parse_run({"--close-wait-ringbuf-bytes", bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(r.error(), HasSubstr("--close-wait-ringbuf-bytes")) << bad;
  }
}

TEST(SizeOptionsTest, CloseWaitSlotsArePowersOfTwo) {
  EXPECT_EQ(RunConfig{}.close_wait_slots, 1024u);
  for (const char* good : {"1", "2", "8192", "1048576"}) {
    auto ok = parse_run({"--close-wait-slots", good});
    ASSERT_TRUE(ok.ok()) << good << ": " << ok.error();
    EXPECT_EQ(ok->close_wait_slots, std::stoul(good));
  }
  for (const char* bad : {"0", "3", "1000", "2097152", "-1", "x"}) {
    auto r = parse_run({"--close-wait-slots", bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(r.error(), HasSubstr("--close-wait-slots")) << bad;
  }
}

TEST(ReloadSettersTest, LowerSeriesCapFoldsOnlyNewSeries) {
  Aggregator agg(10, 100);
  agg.add(make_event(EventKind::kProbe, Direction::kInbound, 80, 1), "/a");
  agg.add(make_event(EventKind::kProbe, Direction::kInbound, 81, 1), "/a");
  agg.set_max_series(1);
  agg.add(make_event(EventKind::kProbe, Direction::kInbound, 80, 1), "/a");  // existing set
  agg.add(make_event(EventKind::kProbe, Direction::kInbound, 82, 1), "/a");  // new: folded
  const auto snap = agg.snapshot();
  EXPECT_EQ(snap.series.at(SeriesKey{Direction::kInbound, "80", "/a"}).probes, 2u);
  EXPECT_EQ(snap.series.at(SeriesKey{Direction::kInbound, "other", "/a"}).probes, 1u);
  EXPECT_EQ(snap.overflowed_events, 1u);
  agg.set_max_series(100);
  agg.add(make_event(EventKind::kProbe, Direction::kInbound, 83, 1), "/a");
  EXPECT_EQ(agg.snapshot().series.count(SeriesKey{Direction::kInbound, "83", "/a"}), 1u);
}

TEST(ReloadSettersTest, IdleThresholdAppliesFromTheNextScan) {
  AuditMetrics m(300);
  AuditRow r;
  r.state = "established";
  r.cgroup = "/a";
  r.idle_seconds = 10;
  auto idle = [&] {
    for (const auto& f : m.families()) {
      if (f.name != "tcpka_idle_sockets_without_keepalive") continue;
      double sum = 0;
      for (const auto& x : f.metric) sum += x.gauge.value;
      return sum;
    }
    return -1.0;
  };
  m.update({r});
  EXPECT_EQ(idle(), 0);
  m.set_idle_threshold(5);
  EXPECT_EQ(idle(), 0) << "the gauge changes with the next scan";
  m.update({r});
  EXPECT_EQ(idle(), 1);
}

TEST(StartTimeTest, ProcessStartTimeIsThisProcesssAndInThePast) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double start = process_start_time_seconds();
  // This test binary started moments ago; btime has one-second resolution.
  EXPECT_LE(start, now + 1.0);
  EXPECT_GT(start, now - 600.0);
  EXPECT_EQ(process_start_time_seconds(), start) << "a constant of the process";
}

TEST(StartTimeTest, StartAndReloadMetricsExported) {
  Aggregator agg(10, 10);
  AgentCounters counters;
  auto plan = plan_for(all_features(), Backend::kAuto);
  ASSERT_TRUE(plan.ok());
  MetricsCollector c(agg, AgentInfo{"1", "r", *plan, 1700000000.5}, MetricSources{}, counters);
  counters.reload_success_time = 1700000100;
  std::string out = render_metrics(c);
  EXPECT_THAT(out, HasSubstr("# TYPE process_start_time_seconds gauge\n"
                             "process_start_time_seconds 1700000000.5\n"));
  EXPECT_THAT(out, HasSubstr("\ntcpka_config_last_reload_successful 1\n"));
  EXPECT_THAT(out, HasSubstr("\ntcpka_config_last_reload_success_timestamp_seconds 1700000100\n"));
  counters.reload_ok = false;
  out = render_metrics(c);
  EXPECT_THAT(out, HasSubstr("\ntcpka_config_last_reload_successful 0\n"));
  EXPECT_THAT(out, HasSubstr("\ntcpka_config_last_reload_success_timestamp_seconds 1700000100\n"))
      << "a refused reload leaves the time of the last good one";
}

}  // namespace
}  // namespace tcpka
