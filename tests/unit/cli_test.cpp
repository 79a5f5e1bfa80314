#include "cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

namespace tcpka {
namespace {

using ::testing::HasSubstr;

struct Parsed {
  int rc = -100;
  Invocation inv;
  std::string out;
  std::string err;
};

Parsed parse(std::initializer_list<std::string> args) {
  std::vector<std::string> storage = {"tcpka"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& s : storage) argv.push_back(s.c_str());
  argv.push_back(nullptr);
  Parsed p;
  p.rc = parse_args(static_cast<int>(storage.size()), argv.data(), &p.inv, &p.out, &p.err);
  return p;
}

// A file in a fresh temporary directory, removed with it.
class TempFile {
 public:
  explicit TempFile(const std::string& contents, const std::string& name = "tcpka.toml") {
    char tmpl[] = "/tmp/tcpka_cli_test.XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (d == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = d;
    path_ = dir_ + "/" + name;
    std::ofstream(path_) << contents;
  }
  ~TempFile() {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

void expect_one_line(const std::string& err) {
  ASSERT_FALSE(err.empty());
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(err.back(), '\n') << err;
}

TEST(ParseArgsTest, RunWithDefaults) {
  Parsed p = parse({"run"});
  EXPECT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.command, Command::kRun);
  const RunConfig defaults;
  EXPECT_EQ(p.inv.run.listen, defaults.listen);
  EXPECT_EQ(p.inv.run.listen, "127.0.0.1:9977");
  EXPECT_EQ(p.inv.run.backend, Backend::kAuto);
  EXPECT_EQ(p.inv.run.max_series, defaults.max_series);
  EXPECT_EQ(p.inv.run.gc_interval, defaults.gc_interval);
  EXPECT_EQ(p.inv.run.ringbuf_bytes, defaults.ringbuf_bytes);
  EXPECT_EQ(p.inv.run.max_sockets, defaults.max_sockets);
  EXPECT_FALSE(p.inv.json);
  EXPECT_TRUE(p.err.empty()) << p.err;
}

TEST(ParseArgsTest, RunListenSetsIt) {
  Parsed p = parse({"run", "--listen", "1.2.3.4:5"});
  EXPECT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.run.listen, "1.2.3.4:5");
}

TEST(ParseArgsTest, RunEveryFlag) {
  Parsed p = parse({"run", "--listen=[::1]:80", "--backend", "timer-bracket", "--max-series", "12",
                    "--gc-interval", "5", "--ringbuf-bytes", "65536", "--max-sockets", "9"});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.run.listen, "[::1]:80");
  EXPECT_EQ(p.inv.run.backend, Backend::kTimerBracket);
  EXPECT_EQ(p.inv.run.max_series, 12u);
  EXPECT_EQ(p.inv.run.gc_interval, 5u);
  EXPECT_EQ(p.inv.run.ringbuf_bytes, 65536u);
  EXPECT_EQ(p.inv.run.max_sockets, 9u);
}

TEST(ParseArgsTest, BadListenIsOneLineNamingTheValue) {
  Parsed p = parse({"run", "--listen", "nowhere:80"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("nowhere:80"));
}

TEST(ParseArgsTest, UnknownFlagFails) {
  Parsed p = parse({"run", "--frobnicate"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("--frobnicate"));
}

TEST(ParseArgsTest, NoSubcommandFails) {
  Parsed p = parse({});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
}

TEST(ParseArgsTest, UnknownSubcommandFails) {
  Parsed p = parse({"serve"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
}

TEST(ParseArgsTest, HelpPrintsUsageAndExitsZero) {
  Parsed p = parse({"--help"});
  EXPECT_EQ(p.rc, 0);
  EXPECT_THAT(p.out, HasSubstr("Usage"));
  EXPECT_THAT(p.out, HasSubstr("run"));
  EXPECT_THAT(p.out, HasSubstr("check"));
  EXPECT_THAT(p.out, HasSubstr("watch"));
  EXPECT_TRUE(p.err.empty()) << p.err;
}

TEST(ParseArgsTest, SubcommandHelpListsItsFlags) {
  Parsed p = parse({"run", "--help"});
  EXPECT_EQ(p.rc, 0);
  EXPECT_THAT(p.out, HasSubstr("--listen"));
  EXPECT_THAT(p.out, HasSubstr("--max-series"));
}

TEST(ParseArgsTest, BadBackendFails) {
  Parsed p = parse({"run", "--backend", "nope"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("nope"));
}

TEST(ParseArgsTest, NegativeMaxSeriesFails) {
  Parsed p = parse({"run", "--max-series", "-1"});
  EXPECT_EQ(p.rc, 2) << "max_series became " << p.inv.run.max_series;
  expect_one_line(p.err);
}

TEST(ParseArgsTest, NonNumericMaxSeriesFails) {
  Parsed p = parse({"run", "--max-series", "abc"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("abc"));
}

TEST(ParseArgsTest, ZeroMaxSeriesFails) {
  Parsed p = parse({"run", "--max-series", "0"});
  EXPECT_EQ(p.rc, 2);
  EXPECT_THAT(p.err, HasSubstr("--max-series"));
}

TEST(ParseArgsTest, BadRingbufFails) {
  Parsed p = parse({"watch", "--ringbuf-bytes", "1000"});
  EXPECT_EQ(p.rc, 2);
  EXPECT_THAT(p.err, HasSubstr("--ringbuf-bytes"));
}

TEST(ParseArgsTest, WatchJson) {
  Parsed p = parse({"watch", "--json"});
  EXPECT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.command, Command::kWatch);
  EXPECT_TRUE(p.inv.json);
}

TEST(ParseArgsTest, WatchWithoutJson) {
  Parsed p = parse({"watch", "--backend", "reset-reason", "--max-sockets", "100"});
  EXPECT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.command, Command::kWatch);
  EXPECT_FALSE(p.inv.json);
  EXPECT_EQ(p.inv.run.backend, Backend::kResetReason);
  EXPECT_EQ(p.inv.run.max_sockets, 100u);
}

TEST(ParseArgsTest, Check) {
  Parsed p = parse({"check"});
  EXPECT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.command, Command::kCheck);
}

TEST(ParseArgsTest, CheckBackend) {
  Parsed p = parse({"check", "--backend", "timer-bracket"});
  EXPECT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.command, Command::kCheck);
  EXPECT_EQ(p.inv.run.backend, Backend::kTimerBracket);
}

TEST(ParseArgsTest, ListenIsNotAFlagOfCheck) {
  Parsed p = parse({"check", "--listen", "1.2.3.4:5"});
  EXPECT_EQ(p.rc, 2);
}

TEST(ParseArgsTest, ConfigFileApplies) {
  TempFile f("listen = \"127.0.0.1:1234\"\nmax-series = 7\n");
  Parsed p = parse({"run", "--config", f.path()});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.run.listen, "127.0.0.1:1234");
  EXPECT_EQ(p.inv.run.max_series, 7u);
  EXPECT_EQ(p.inv.run.gc_interval, RunConfig{}.gc_interval);
}

TEST(ParseArgsTest, ConfigFileEveryKey) {
  TempFile f(
      "listen = \"[::1]:9000\"\n"
      "backend = \"timer-bracket\"\n"
      "max-series = 11\n"
      "gc-interval = 60\n"
      "ringbuf-bytes = 262144\n"
      "max-sockets = 12\n");
  Parsed p = parse({"run", "--config", f.path()});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.run.listen, "[::1]:9000");
  EXPECT_EQ(p.inv.run.backend, Backend::kTimerBracket);
  EXPECT_EQ(p.inv.run.max_series, 11u);
  EXPECT_EQ(p.inv.run.gc_interval, 60u);
  EXPECT_EQ(p.inv.run.ringbuf_bytes, 262144u);
  EXPECT_EQ(p.inv.run.max_sockets, 12u);
}

TEST(ParseArgsTest, CommandLineOverridesConfigFile) {
  TempFile f("listen = \"127.0.0.1:1234\"\nmax-series = 7\n");
  Parsed p = parse({"run", "--config", f.path(), "--listen", "127.0.0.1:4321"});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.run.listen, "127.0.0.1:4321");
  EXPECT_EQ(p.inv.run.max_series, 7u);

  Parsed q = parse({"run", "--max-series", "3", "--config", f.path()});
  ASSERT_EQ(q.rc, -1) << q.err;
  EXPECT_EQ(q.inv.run.listen, "127.0.0.1:1234");
  EXPECT_EQ(q.inv.run.max_series, 3u);
}

TEST(ParseArgsTest, MissingConfigFileFails) {
  Parsed p = parse({"run", "--config", "/nonexistent/tcpka/nope.toml"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("/nonexistent/tcpka/nope.toml"));
}

TEST(ParseArgsTest, ConfigFileWithBadNumberFails) {
  TempFile f("max-series = \"x\"\n");
  Parsed p = parse({"run", "--config", f.path()});
  EXPECT_EQ(p.rc, 2) << "max_series became " << p.inv.run.max_series;
  expect_one_line(p.err);
}

TEST(ParseArgsTest, ConfigFileWithBadListenFails) {
  TempFile f("listen = \"example.com:80\"\n");
  Parsed p = parse({"run", "--config", f.path()});
  EXPECT_EQ(p.rc, 2);
  EXPECT_THAT(p.err, HasSubstr("example.com:80"));
}

}  // namespace
}  // namespace tcpka
