#include "cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "cgroup.h"
#include "fixtures.h"

namespace tcpka {
namespace {

using ::testing::HasSubstr;
using testing_fixtures::TempCgroups;

struct Parsed {
  int rc = -100;
  Invocation inv;
  std::string out;
  std::string err;
};

Parsed parse_vector(const std::vector<std::string>& args) {
  std::vector<std::string> storage = {"tcpka"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& s : storage) argv.push_back(s.c_str());
  argv.push_back(nullptr);
  Parsed p;
  p.rc = parse_args(static_cast<int>(storage.size()), argv.data(), &p.inv, &p.out, &p.err);
  return p;
}

Parsed parse(std::initializer_list<std::string> args) {
  return parse_vector(args);
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

TEST(ParseArgsTest, WebConfigFileFromFlagAndConfigFile) {
  TempFile web("http_server_config:\n  headers:\n    X-Frame-Options: deny\n", "web.yml");
  Parsed p = parse({"run", "--web-config-file", web.path()});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.run.web_config_file, web.path());
  TempFile cfg("web-config-file = \"" + web.path() + "\"\n");
  Parsed q = parse({"run", "--config", cfg.path()});
  ASSERT_EQ(q.rc, -1) << q.err;
  EXPECT_EQ(q.inv.run.web_config_file, web.path());
}

TEST(ParseArgsTest, BadWebConfigFileFailsNamingFileLineAndKey) {
  TempFile web("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher: x\n", "web.yml");
  Parsed p = parse({"run", "--web-config-file", web.path()});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("web config file " + web.path() +
                               ": line 4: tls_server_config.cipher: unknown key"));
  // Missing certificate files are refused before anything is loaded, too.
  TempFile nocert("tls_server_config:\n  cert_file: a.crt\n  key_file: b.key\n", "web.yml");
  Parsed q = parse({"run", "--web-config-file", nocert.path()});
  EXPECT_EQ(q.rc, 2);
  EXPECT_THAT(q.err, HasSubstr("tls_server_config.cert_file: cannot load"));
  Parsed r = parse({"run", "--web-config-file", "/nonexistent/web.yml"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, HasSubstr("web config file /nonexistent/web.yml: cannot be read"));
}

// Keepalive policies name cgroups, which parse_args() checks on the host's
// cgroup2 mount: these tests make cgroups of their own there, and fail
// without a cgroup2 mount.
class KeepaliveArgsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = find_cgroup2_mount();
    ASSERT_TRUE(m.has_value()) << "no cgroup2 mount in /proc/self/mountinfo";
    char buf[PATH_MAX];
    ASSERT_NE(::realpath(m->c_str(), buf), nullptr) << *m;
    root_ = buf;
    cgroups_ = std::make_unique<TempCgroups>(root_);
    auto a = cgroups_->make("cli-a");
    ASSERT_TRUE(a.ok()) << a.error();
    auto b = cgroups_->make("cli-b");
    ASSERT_TRUE(b.ok()) << b.error();
    rel_a_ = *a;
    rel_b_ = *b;
    abs_a_ = root_ + rel_a_;
    abs_b_ = root_ + rel_b_;
  }
  void TearDown() override { cgroups_.reset(); }

  std::string missing() const { return root_ + "/" + TempCgroups::name("cli-missing"); }

  std::string root_;
  std::unique_ptr<TempCgroups> cgroups_;
  std::string rel_a_, rel_b_, abs_a_, abs_b_;
};

TEST_F(KeepaliveArgsTest, RunWithoutPoliciesHasNone) {
  Parsed p = parse({"run"});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_TRUE(p.inv.run.policies.empty());
  EXPECT_FALSE(p.inv.run.keepalive_persist);
}

TEST_F(KeepaliveArgsTest, SinglePolicyFromFlags) {
  Parsed p = parse({"run", "--keepalive-cgroup", abs_a_, "--keepalive-idle", "60",
                    "--keepalive-intvl", "10", "--keepalive-cnt", "5"});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.command, Command::kRun);
  ASSERT_EQ(p.inv.run.policies.size(), 1u);
  const PolicySpec& ps = p.inv.run.policies[0];
  EXPECT_EQ(ps.cgroup, abs_a_);
  EXPECT_EQ(ps.idle, 60u);
  EXPECT_EQ(ps.intvl, 10u);
  EXPECT_EQ(ps.cnt, 5u);
  EXPECT_EQ(ps.direction, "both");
  EXPECT_FALSE(ps.override);
  EXPECT_FALSE(p.inv.run.keepalive_persist);
}

TEST_F(KeepaliveArgsTest, SinglePolicyEveryFlag) {
  Parsed p = parse({"run", "--keepalive-cgroup", rel_a_, "--keepalive-idle", "32767",
                    "--keepalive-intvl", "1", "--keepalive-cnt", "127", "--keepalive-direction",
                    "inbound", "--keepalive-override", "--keepalive-persist"});
  ASSERT_EQ(p.rc, -1) << p.err;
  ASSERT_EQ(p.inv.run.policies.size(), 1u);
  const PolicySpec& ps = p.inv.run.policies[0];
  EXPECT_EQ(ps.cgroup, rel_a_);
  EXPECT_EQ(ps.idle, 32767u);
  EXPECT_EQ(ps.intvl, 1u);
  EXPECT_EQ(ps.cnt, 127u);
  EXPECT_EQ(ps.direction, "inbound");
  EXPECT_TRUE(ps.override);
  EXPECT_TRUE(p.inv.run.keepalive_persist);
}

struct OutOfRange {
  const char* flag;
  const char* value;
  const char* range;
};

class KeepaliveRangeTest : public KeepaliveArgsTest,
                           public ::testing::WithParamInterface<OutOfRange> {};

TEST_P(KeepaliveRangeTest, FailsNamingFlagAndValue) {
  const OutOfRange& o = GetParam();
  std::vector<std::string> args = {"run", "--keepalive-cgroup", abs_a_, "--keepalive-idle",
                                   "5",   "--keepalive-intvl",  "2",    "--keepalive-cnt",
                                   "3"};
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == o.flag) args[i + 1] = o.value;
  }
  Parsed p = parse_vector(args);
  EXPECT_EQ(p.rc, 2) << o.flag << " " << o.value << " was accepted";
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr(std::string(o.flag) + ": '" + o.value + "' is not in " + o.range));
}

INSTANTIATE_TEST_SUITE_P(Values, KeepaliveRangeTest,
                         ::testing::Values(OutOfRange{"--keepalive-idle", "0", "1..32767"},
                                           OutOfRange{"--keepalive-idle", "32768", "1..32767"},
                                           OutOfRange{"--keepalive-intvl", "0", "1..32767"},
                                           OutOfRange{"--keepalive-intvl", "32768", "1..32767"},
                                           OutOfRange{"--keepalive-cnt", "0", "1..127"},
                                           OutOfRange{"--keepalive-cnt", "128", "1..127"}));

TEST_F(KeepaliveArgsTest, NonNumericValueFails) {
  Parsed p = parse({"run", "--keepalive-cgroup", abs_a_, "--keepalive-idle", "5m",
                    "--keepalive-intvl", "2", "--keepalive-cnt", "3"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("5m"));
  Parsed q = parse({"run", "--keepalive-cgroup", abs_a_, "--keepalive-idle", "-1",
                    "--keepalive-intvl", "2", "--keepalive-cnt", "3"});
  EXPECT_EQ(q.rc, 2) << "idle became "
                     << (q.inv.run.policies.empty() ? 0 : q.inv.run.policies[0].idle);
}

TEST_F(KeepaliveArgsTest, BadDirectionFails) {
  Parsed p =
      parse({"run", "--keepalive-cgroup", abs_a_, "--keepalive-idle", "5", "--keepalive-intvl", "2",
             "--keepalive-cnt", "3", "--keepalive-direction", "sideways"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("--keepalive-direction: 'sideways'"));
}

TEST_F(KeepaliveArgsTest, CgroupWithoutValuesFailsNamingTheMissingOnes) {
  Parsed p = parse({"run", "--keepalive-cgroup", abs_a_});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("--keepalive-idle"));
  EXPECT_THAT(p.err, HasSubstr("--keepalive-intvl"));
  EXPECT_THAT(p.err, HasSubstr("--keepalive-cnt"));
  EXPECT_TRUE(p.inv.run.policies.empty());

  Parsed q = parse(
      {"run", "--keepalive-cgroup", abs_a_, "--keepalive-intvl", "2", "--keepalive-cnt", "3"});
  EXPECT_EQ(q.rc, 2);
  expect_one_line(q.err);
  EXPECT_THAT(q.err, HasSubstr("--keepalive-idle"));
}

TEST_F(KeepaliveArgsTest, ValuesWithoutCgroupFail) {
  for (std::vector<std::string> extra : std::vector<std::vector<std::string>>{
           {"--keepalive-idle", "5", "--keepalive-intvl", "2", "--keepalive-cnt", "3"},
           {"--keepalive-idle", "5"},
           {"--keepalive-direction", "inbound"},
           {"--keepalive-override"}}) {
    extra.insert(extra.begin(), "run");
    Parsed p = parse_vector(extra);
    EXPECT_EQ(p.rc, 2) << extra[1] << " without --keepalive-cgroup was accepted";
    expect_one_line(p.err);
    EXPECT_THAT(p.err, HasSubstr("--keepalive-cgroup")) << extra[1];
  }
}

TEST_F(KeepaliveArgsTest, MissingCgroupDirFailsNamingIt) {
  Parsed p = parse({"run", "--keepalive-cgroup", missing(), "--keepalive-idle", "5",
                    "--keepalive-intvl", "2", "--keepalive-cnt", "3"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("--keepalive-cgroup"));
  EXPECT_THAT(p.err, HasSubstr("'" + missing() + "'"));
}

TEST_F(KeepaliveArgsTest, CgroupOutsideCgroup2Fails) {
  Parsed p = parse({"run", "--keepalive-cgroup", "/tmp", "--keepalive-idle", "5",
                    "--keepalive-intvl", "2", "--keepalive-cnt", "3"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("'/tmp'"));
}

TEST_F(KeepaliveArgsTest, TwoPolicySpecs) {
  const std::string a = "cgroup=" + abs_a_ + ",idle=5,intvl=2,cnt=3";
  const std::string b =
      "cgroup=" + rel_b_ + ",idle=600,intvl=60,cnt=9,direction=outbound,override=true";
  Parsed p = parse({"run", "--keepalive-policy", a, "--keepalive-policy", b});
  ASSERT_EQ(p.rc, -1) << p.err;
  ASSERT_EQ(p.inv.run.policies.size(), 2u);
  const PolicySpec& pa = p.inv.run.policies[0];
  EXPECT_EQ(pa.cgroup, abs_a_);
  EXPECT_EQ(pa.idle, 5u);
  EXPECT_EQ(pa.intvl, 2u);
  EXPECT_EQ(pa.cnt, 3u);
  EXPECT_EQ(pa.direction, "both");
  EXPECT_FALSE(pa.override);
  const PolicySpec& pb = p.inv.run.policies[1];
  EXPECT_EQ(pb.cgroup, rel_b_);
  EXPECT_EQ(pb.idle, 600u);
  EXPECT_EQ(pb.intvl, 60u);
  EXPECT_EQ(pb.cnt, 9u);
  EXPECT_EQ(pb.direction, "outbound");
  EXPECT_TRUE(pb.override);
}

TEST_F(KeepaliveArgsTest, FlagsAndSpecTogether) {
  Parsed p = parse({"run", "--keepalive-policy", "cgroup=" + rel_b_ + ",idle=7,intvl=8,cnt=9",
                    "--keepalive-cgroup", abs_a_, "--keepalive-idle", "5", "--keepalive-intvl", "2",
                    "--keepalive-cnt", "3"});
  ASSERT_EQ(p.rc, -1) << p.err;
  ASSERT_EQ(p.inv.run.policies.size(), 2u);
  EXPECT_EQ(p.inv.run.policies[0].cgroup, abs_a_);
  EXPECT_EQ(p.inv.run.policies[0].idle, 5u);
  EXPECT_EQ(p.inv.run.policies[1].cgroup, rel_b_);
  EXPECT_EQ(p.inv.run.policies[1].idle, 7u);
}

TEST_F(KeepaliveArgsTest, BadSpecsFailNamingTheSpec) {
  for (const std::string& spec : {
           "cgroup=" + abs_a_ + ",idle=5,intvl=2,cnt=3,speed=9",     // bad key
           "cgroup=" + abs_a_ + ",idle=five,intvl=2,cnt=3",          // bad number
           std::string("idle=5,intvl=2,cnt=3"),                      // no cgroup
           "cgroup=" + abs_a_ + ",idle=5,intvl=2,cnt=3,override=1",  // bad override
           "cgroup=" + abs_a_ + ",idle=5,intvl=2,cnt=128",           // out of range
           "cgroup=" + missing() + ",idle=5,intvl=2,cnt=3",          // no such cgroup
       }) {
    Parsed p = parse({"run", "--keepalive-policy", spec});
    EXPECT_EQ(p.rc, 2) << spec << " was accepted";
    expect_one_line(p.err);
    EXPECT_THAT(p.err, HasSubstr("--keepalive-policy '" + spec + "'"));
  }
}

TEST_F(KeepaliveArgsTest, MissingSpecCgroupIsNamed) {
  const std::string spec = "cgroup=" + missing() + ",idle=5,intvl=2,cnt=3";
  Parsed p = parse({"run", "--keepalive-policy", spec});
  EXPECT_EQ(p.rc, 2);
  EXPECT_THAT(p.err, HasSubstr("'" + missing() + "' is not"));
}

TEST_F(KeepaliveArgsTest, TwoPoliciesForOneCgroupFail) {
  const std::string spec_rel = "cgroup=" + rel_a_ + ",idle=7,intvl=8,cnt=9";
  const std::string spec_abs = "cgroup=" + abs_a_ + ",idle=5,intvl=2,cnt=3";
  // Flags with the absolute path, a spec with the path relative to the mount.
  Parsed p =
      parse({"run", "--keepalive-cgroup", abs_a_, "--keepalive-idle", "5", "--keepalive-intvl", "2",
             "--keepalive-cnt", "3", "--keepalive-policy", spec_rel});
  EXPECT_EQ(p.rc, 2) << "two policies for " << abs_a_ << " were accepted";
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("two keepalive policies"));
  EXPECT_THAT(p.err, HasSubstr(rel_a_));
  // Two specs, spelled differently.
  Parsed q = parse({"run", "--keepalive-policy", spec_abs, "--keepalive-policy", spec_rel});
  EXPECT_EQ(q.rc, 2);
  EXPECT_THAT(q.err, HasSubstr("two keepalive policies"));
  // Two specs, spelled the same, with the second one in between others.
  Parsed r = parse({"run", "--keepalive-policy", spec_abs, "--keepalive-policy",
                    "cgroup=" + abs_b_ + ",idle=5,intvl=2,cnt=3", "--keepalive-policy",
                    "cgroup=" + abs_a_ + "/,idle=1,intvl=1,cnt=1"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, HasSubstr("two keepalive policies"));
}

TEST_F(KeepaliveArgsTest, ParentAndChildAreDifferentCgroups) {
  auto inner = cgroups_->make("cli-inner", rel_a_);
  ASSERT_TRUE(inner.ok()) << inner.error();
  Parsed p = parse({"run", "--keepalive-policy", "cgroup=" + rel_a_ + ",idle=5,intvl=2,cnt=3",
                    "--keepalive-policy", "cgroup=" + *inner + ",idle=6,intvl=2,cnt=3"});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.run.policies.size(), 2u);
}

TEST_F(KeepaliveArgsTest, PersistWithoutPolicyFails) {
  Parsed p = parse({"run", "--keepalive-persist"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("--keepalive-persist"));
}

TEST_F(KeepaliveArgsTest, PersistWithSpec) {
  Parsed p = parse({"run", "--keepalive-persist", "--keepalive-policy",
                    "cgroup=" + rel_a_ + ",idle=5,intvl=2,cnt=3"});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_TRUE(p.inv.run.keepalive_persist);
  EXPECT_EQ(p.inv.run.policies.size(), 1u);
}

TEST_F(KeepaliveArgsTest, ConfigFilePolicies) {
  TempFile f("keepalive-policy = [\"cgroup=" + abs_a_ +
             ",idle=5,intvl=2,cnt=3\", \"cgroup=" + rel_b_ +
             ",idle=50,intvl=20,cnt=30,direction=inbound,override=true\"]\n"
             "keepalive-persist = true\n");
  Parsed p = parse({"run", "--config", f.path()});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_TRUE(p.inv.run.keepalive_persist);
  ASSERT_EQ(p.inv.run.policies.size(), 2u);
  const PolicySpec& pa = p.inv.run.policies[0];
  EXPECT_EQ(pa.cgroup, abs_a_);
  EXPECT_EQ(pa.idle, 5u);
  EXPECT_EQ(pa.intvl, 2u);
  EXPECT_EQ(pa.cnt, 3u);
  EXPECT_EQ(pa.direction, "both");
  EXPECT_FALSE(pa.override);
  const PolicySpec& pb = p.inv.run.policies[1];
  EXPECT_EQ(pb.cgroup, rel_b_);
  EXPECT_EQ(pb.idle, 50u);
  EXPECT_EQ(pb.intvl, 20u);
  EXPECT_EQ(pb.cnt, 30u);
  EXPECT_EQ(pb.direction, "inbound");
  EXPECT_TRUE(pb.override);
}

TEST_F(KeepaliveArgsTest, ConfigFileSinglePolicyInRunSection) {
  TempFile f(
      "[run]\n"
      "keepalive-cgroup = \"" +
      rel_a_ +
      "\"\n"
      "keepalive-idle = 11\n"
      "keepalive-intvl = 12\n"
      "keepalive-cnt = 13\n"
      "keepalive-direction = \"outbound\"\n"
      "keepalive-override = true\n"
      "keepalive-policy = [\"cgroup=" +
      rel_b_ + ",idle=5,intvl=2,cnt=3\"]\n");
  Parsed p = parse({"run", "--config", f.path()});
  ASSERT_EQ(p.rc, -1) << p.err;
  ASSERT_EQ(p.inv.run.policies.size(), 2u);
  const PolicySpec& pa = p.inv.run.policies[0];
  EXPECT_EQ(pa.cgroup, rel_a_);
  EXPECT_EQ(pa.idle, 11u);
  EXPECT_EQ(pa.intvl, 12u);
  EXPECT_EQ(pa.cnt, 13u);
  EXPECT_EQ(pa.direction, "outbound");
  EXPECT_TRUE(pa.override);
  EXPECT_EQ(p.inv.run.policies[1].cgroup, rel_b_);
  EXPECT_FALSE(p.inv.run.keepalive_persist);
}

TEST_F(KeepaliveArgsTest, CommandLineValueOverridesConfigFile) {
  TempFile f("keepalive-cgroup = \"" + rel_a_ +
             "\"\nkeepalive-idle = 11\nkeepalive-intvl = 12\nkeepalive-cnt = 13\n");
  Parsed p = parse({"run", "--config", f.path(), "--keepalive-idle", "99"});
  ASSERT_EQ(p.rc, -1) << p.err;
  ASSERT_EQ(p.inv.run.policies.size(), 1u);
  EXPECT_EQ(p.inv.run.policies[0].idle, 99u);
  EXPECT_EQ(p.inv.run.policies[0].cnt, 13u);
}

TEST_F(KeepaliveArgsTest, ConfigFileWithBadSpecFails) {
  TempFile f("keepalive-policy = [\"cgroup=" + abs_a_ + ",idle=0,intvl=2,cnt=3\"]\n");
  Parsed p = parse({"run", "--config", f.path()});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("idle: '0' is not in 1..32767"));
}

TEST_F(KeepaliveArgsTest, ConfigFileWithDuplicateCgroupFails) {
  TempFile f("keepalive-policy = [\"cgroup=" + abs_a_ +
             ",idle=5,intvl=2,cnt=3\", \"cgroup=" + rel_a_ + ",idle=6,intvl=2,cnt=3\"]\n");
  Parsed p = parse({"run", "--config", f.path()});
  EXPECT_EQ(p.rc, 2);
  EXPECT_THAT(p.err, HasSubstr("two keepalive policies"));
}

TEST_F(KeepaliveArgsTest, ConfigFilePersistWithoutPolicyFails) {
  TempFile f("keepalive-persist = true\n");
  Parsed p = parse({"run", "--config", f.path()});
  EXPECT_EQ(p.rc, 2);
  EXPECT_THAT(p.err, HasSubstr("--keepalive-persist"));
}

TEST_F(KeepaliveArgsTest, ApplyWithEveryValue) {
  Parsed p = parse(
      {"keepalive", "apply", "--cgroup", rel_a_, "--idle", "30", "--intvl", "4", "--cnt", "2"});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.command, Command::kKeepaliveApply);
  EXPECT_EQ(p.inv.policy.cgroup, rel_a_);
  EXPECT_EQ(p.inv.policy.idle, 30u);
  EXPECT_EQ(p.inv.policy.intvl, 4u);
  EXPECT_EQ(p.inv.policy.cnt, 2u);
  EXPECT_EQ(p.inv.policy.direction, "both");
  EXPECT_FALSE(p.inv.policy.override);
  EXPECT_TRUE(p.inv.run.policies.empty());

  Parsed q = parse({"keepalive", "apply", "--cgroup", abs_b_, "--idle", "1", "--intvl", "32767",
                    "--cnt", "127", "--direction", "outbound", "--override"});
  ASSERT_EQ(q.rc, -1) << q.err;
  EXPECT_EQ(q.inv.command, Command::kKeepaliveApply);
  EXPECT_EQ(q.inv.policy.cgroup, abs_b_);
  EXPECT_EQ(q.inv.policy.idle, 1u);
  EXPECT_EQ(q.inv.policy.intvl, 32767u);
  EXPECT_EQ(q.inv.policy.cnt, 127u);
  EXPECT_EQ(q.inv.policy.direction, "outbound");
  EXPECT_TRUE(q.inv.policy.override);
}

TEST_F(KeepaliveArgsTest, ApplyWithoutAValueFails) {
  const std::vector<std::vector<std::string>> cases = {
      {"--cgroup", abs_a_, "--intvl", "2", "--cnt", "3"},
      {"--cgroup", abs_a_, "--idle", "5", "--cnt", "3"},
      {"--cgroup", abs_a_, "--idle", "5", "--intvl", "2"},
      {"--idle", "5", "--intvl", "2", "--cnt", "3"},
  };
  const char* missing_flag[] = {"--idle", "--intvl", "--cnt", "--cgroup"};
  for (size_t i = 0; i < cases.size(); ++i) {
    std::vector<std::string> args = {"keepalive", "apply"};
    args.insert(args.end(), cases[i].begin(), cases[i].end());
    Parsed p = parse_vector(args);
    EXPECT_EQ(p.rc, 2) << "keepalive apply without " << missing_flag[i] << " was accepted";
    expect_one_line(p.err);
    EXPECT_THAT(p.err, HasSubstr(missing_flag[i]));
  }
}

TEST_F(KeepaliveArgsTest, ApplyOutOfRangeFails) {
  Parsed p = parse(
      {"keepalive", "apply", "--cgroup", rel_a_, "--idle", "0", "--intvl", "2", "--cnt", "3"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("--idle: '0' is not in 1..32767"));
  Parsed q = parse(
      {"keepalive", "apply", "--cgroup", rel_a_, "--idle", "5", "--intvl", "2", "--cnt", "128"});
  EXPECT_EQ(q.rc, 2);
  EXPECT_THAT(q.err, HasSubstr("--cnt: '128' is not in 1..127"));
  Parsed r = parse({"keepalive", "apply", "--cgroup", rel_a_, "--idle", "5", "--intvl", "2",
                    "--cnt", "3", "--direction", "up"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, HasSubstr("--direction: 'up'"));
}

TEST_F(KeepaliveArgsTest, ApplyMissingCgroupFails) {
  Parsed p = parse(
      {"keepalive", "apply", "--cgroup", missing(), "--idle", "5", "--intvl", "2", "--cnt", "3"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("--cgroup"));
  EXPECT_THAT(p.err, HasSubstr("'" + missing() + "'"));
}

TEST_F(KeepaliveArgsTest, Remove) {
  Parsed p = parse({"keepalive", "remove", "--cgroup", rel_a_});
  ASSERT_EQ(p.rc, -1) << p.err;
  EXPECT_EQ(p.inv.command, Command::kKeepaliveRemove);
  EXPECT_EQ(p.inv.policy.cgroup, rel_a_);

  Parsed q = parse({"keepalive", "remove", "--cgroup", abs_b_});
  ASSERT_EQ(q.rc, -1) << q.err;
  EXPECT_EQ(q.inv.command, Command::kKeepaliveRemove);
  EXPECT_EQ(q.inv.policy.cgroup, abs_b_);
}

TEST_F(KeepaliveArgsTest, RemoveBadArgumentsFail) {
  Parsed p = parse({"keepalive", "remove"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  EXPECT_THAT(p.err, HasSubstr("--cgroup"));

  Parsed q = parse({"keepalive", "remove", "--cgroup", missing()});
  EXPECT_EQ(q.rc, 2);
  EXPECT_THAT(q.err, HasSubstr("'" + missing() + "'"));

  Parsed r = parse({"keepalive", "remove", "--cgroup", rel_a_, "--idle", "5"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, HasSubstr("--idle"));
}

TEST_F(KeepaliveArgsTest, EmptyCgroupFails) {
  // `--cgroup "$CG"` with CG unset must not select the root cgroup.
  Parsed p =
      parse({"keepalive", "apply", "--cgroup", "", "--idle", "5", "--intvl", "2", "--cnt", "3"});
  EXPECT_EQ(p.rc, 2);
  Parsed q = parse({"run", "--keepalive-cgroup", "", "--keepalive-idle", "5", "--keepalive-intvl",
                    "2", "--keepalive-cnt", "3"});
  EXPECT_EQ(q.rc, 2);
  Parsed r = parse({"keepalive", "remove", "--cgroup", ""});
  EXPECT_EQ(r.rc, 2) << "keepalive remove --cgroup '' was accepted as cgroup '"
                     << r.inv.policy.cgroup << "'";
}

TEST_F(KeepaliveArgsTest, KeepaliveAloneFails) {
  Parsed p = parse({"keepalive"});
  EXPECT_EQ(p.rc, 2);
  expect_one_line(p.err);
  Parsed q = parse({"keepalive", "list"});
  EXPECT_EQ(q.rc, 2);
  expect_one_line(q.err);
}

TEST_F(KeepaliveArgsTest, KeepaliveFlagsBelongToRun) {
  Parsed p = parse({"watch", "--keepalive-cgroup", abs_a_});
  EXPECT_EQ(p.rc, 2);
  Parsed q = parse({"check", "--keepalive-persist"});
  EXPECT_EQ(q.rc, 2);
}

TEST_F(KeepaliveArgsTest, HelpListsTheNewFlags) {
  Parsed p = parse({"run", "--help"});
  EXPECT_EQ(p.rc, 0);
  for (const char* flag : {"--keepalive-cgroup", "--keepalive-idle", "--keepalive-intvl",
                           "--keepalive-cnt", "--keepalive-direction", "--keepalive-override",
                           "--keepalive-policy", "--keepalive-persist"}) {
    EXPECT_THAT(p.out, HasSubstr(flag));
  }
  Parsed q = parse({"--help"});
  EXPECT_THAT(q.out, HasSubstr("keepalive"));
}

}  // namespace
}  // namespace tcpka
