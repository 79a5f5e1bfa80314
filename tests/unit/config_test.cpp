#include "config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace tcpka {
namespace {

using ::testing::HasSubstr;

TEST(ParseListenTest, AcceptsIpv4HostAndPort) {
  auto l = parse_listen("127.0.0.1:9977");
  ASSERT_TRUE(l.ok()) << l.error();
  EXPECT_EQ(l->host, "127.0.0.1");
  EXPECT_EQ(l->port, 9977);
  EXPECT_EQ(l->family, AF_INET);
}

TEST(ParseListenTest, AcceptsBracketedIpv6) {
  auto l = parse_listen("[::1]:80");
  ASSERT_TRUE(l.ok()) << l.error();
  EXPECT_EQ(l->host, "::1");
  EXPECT_EQ(l->port, 80);
  EXPECT_EQ(l->family, AF_INET6);
}

TEST(ParseListenTest, EmptyHostMeansAllIpv4) {
  auto l = parse_listen(":9977");
  ASSERT_TRUE(l.ok()) << l.error();
  EXPECT_EQ(l->host, "0.0.0.0");
  EXPECT_EQ(l->port, 9977);
  EXPECT_EQ(l->family, AF_INET);
}

TEST(ParseListenTest, LocalhostIsLoopback) {
  auto l = parse_listen("localhost:1");
  ASSERT_TRUE(l.ok()) << l.error();
  EXPECT_EQ(l->host, "127.0.0.1");
  EXPECT_EQ(l->port, 1);
  EXPECT_EQ(l->family, AF_INET);
}

TEST(ParseListenTest, AcceptsHighestPort) {
  auto l = parse_listen("10.0.0.1:65535");
  ASSERT_TRUE(l.ok()) << l.error();
  EXPECT_EQ(l->port, 65535);
}

class ParseListenRejectsTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ParseListenRejectsTest, RejectsWithMessageNamingTheText) {
  const std::string text = GetParam();
  auto l = parse_listen(text);
  ASSERT_FALSE(l.ok()) << "accepted '" << text << "' as " << l->host << " port " << l->port;
  EXPECT_THAT(l.error(), HasSubstr("'" + text + "'"));
  EXPECT_THAT(l.error(), HasSubstr("--listen"));
}

INSTANTIATE_TEST_SUITE_P(BadAddresses, ParseListenRejectsTest,
                         ::testing::Values("127.0.0.1",        // no colon
                                           "9977",             // no colon
                                           "127.0.0.1:0",      // port 0
                                           "127.0.0.1:65536",  // port too big
                                           "127.0.0.1:abc",    // port not a number
                                           "127.0.0.1:",       // empty port
                                           "127.0.0.1:80x",    // trailing junk
                                           "127.0.0.1:-1",     // negative
                                           "abc",              // nothing usable
                                           "1.2.3:80",         // three-part IPv4
                                           "[::1",             // unterminated bracket
                                           "[zz::]:80",        // bad IPv6
                                           "::1:80",           // IPv6 without brackets
                                           "example.com:80",   // hostnames need DNS
                                           ""));

TEST(ParseListenTest, BadPortMessageNamesThePort) {
  auto l = parse_listen("127.0.0.1:65536");
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(l.error(), HasSubstr("'65536'"));
}

TEST(ParseListenTest, BadHostMessageNamesTheHost) {
  auto l = parse_listen("example.com:80");
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(l.error(), HasSubstr("'example.com'"));
}

TEST(ParseBackendTest, AcceptsEveryName) {
  for (Backend b : {Backend::kAuto, Backend::kResetReason, Backend::kTimerBracket}) {
    auto parsed = parse_backend(backend_name(b));
    ASSERT_TRUE(parsed.ok()) << parsed.error();
    EXPECT_EQ(*parsed, b);
  }
  EXPECT_EQ(backend_name(Backend::kAuto), "auto");
  EXPECT_EQ(backend_name(Backend::kResetReason), "reset-reason");
  EXPECT_EQ(backend_name(Backend::kTimerBracket), "timer-bracket");
}

TEST(ParseBackendTest, RejectsUnknownNameAndNamesIt) {
  auto parsed = parse_backend("fentry");
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.error(), HasSubstr("'fentry'"));
  EXPECT_THAT(parsed.error(), HasSubstr("--backend"));
  EXPECT_FALSE(parse_backend("").ok());
  EXPECT_FALSE(parse_backend("Auto").ok());
}

TEST(ValidateTest, DefaultsAreValid) {
  RunConfig cfg;
  auto v = validate(cfg);
  EXPECT_TRUE(v.ok()) << v.error();
}

TEST(ValidateTest, RejectsBadListen) {
  RunConfig cfg;
  cfg.listen = "nowhere";
  auto v = validate(cfg);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.error(), HasSubstr("'nowhere'"));
}

TEST(ValidateTest, RejectsRingbufNotPowerOfTwo) {
  RunConfig cfg;
  cfg.ringbuf_bytes = 3u << 20;
  auto v = validate(cfg);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.error(), HasSubstr("--ringbuf-bytes"));
  EXPECT_THAT(v.error(), HasSubstr(std::to_string(3u << 20)));
}

TEST(ValidateTest, RejectsRingbufBelowPageSize) {
  const long page = sysconf(_SC_PAGESIZE);
  ASSERT_GT(page, 1);
  RunConfig cfg;
  cfg.ringbuf_bytes = static_cast<uint32_t>(page / 2);  // a power of two, but too small
  auto v = validate(cfg);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.error(), HasSubstr("--ringbuf-bytes"));

  cfg.ringbuf_bytes = 0;
  EXPECT_FALSE(validate(cfg).ok());

  cfg.ringbuf_bytes = static_cast<uint32_t>(page);
  auto ok = validate(cfg);
  EXPECT_TRUE(ok.ok()) << ok.error();
}

TEST(ValidateTest, RejectsZeroGcInterval) {
  RunConfig cfg;
  cfg.gc_interval = 0;
  auto v = validate(cfg);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.error(), HasSubstr("--gc-interval"));
}

TEST(ValidateTest, RejectsHugeGcInterval) {
  RunConfig cfg;
  cfg.gc_interval = 86401;
  EXPECT_FALSE(validate(cfg).ok());
  cfg.gc_interval = 86400;
  EXPECT_TRUE(validate(cfg).ok());
}

TEST(ValidateTest, SelfCheckIntervalIsZeroTo3600) {
  RunConfig cfg;
  cfg.self_check_interval = 0;  // off
  EXPECT_TRUE(validate(cfg).ok());
  cfg.self_check_interval = 3600;
  EXPECT_TRUE(validate(cfg).ok());
  cfg.self_check_interval = 3601;
  auto v = validate(cfg);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.error(), HasSubstr("--self-check-interval"));
}

TEST(ValidateTest, RejectsZeroMaxSeries) {
  RunConfig cfg;
  cfg.max_series = 0;
  auto v = validate(cfg);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.error(), HasSubstr("--max-series"));
}

TEST(ValidateTest, RejectsZeroMaxSockets) {
  RunConfig cfg;
  cfg.max_sockets = 0;
  auto v = validate(cfg);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.error(), HasSubstr("--max-sockets"));
}

PolicySpec valid_policy() {
  PolicySpec p;
  p.cgroup = "/x";
  p.idle = 5;
  p.intvl = 2;
  p.cnt = 3;
  return p;
}

TEST(ValidatePolicyTest, AcceptsValidAndBoundaryValues) {
  PolicySpec p = valid_policy();
  auto v = validate_policy(p, "--keepalive-");
  EXPECT_TRUE(v.ok()) << v.error();

  p.idle = 1;
  p.intvl = 1;
  p.cnt = 1;
  v = validate_policy(p, "--keepalive-");
  EXPECT_TRUE(v.ok()) << v.error();

  p.idle = 32767;
  p.intvl = 32767;
  p.cnt = 127;
  v = validate_policy(p, "--keepalive-");
  EXPECT_TRUE(v.ok()) << v.error();

  for (const char* d : {"inbound", "outbound", "both"}) {
    p.direction = d;
    v = validate_policy(p, "--keepalive-");
    EXPECT_TRUE(v.ok()) << d << ": " << v.error();
  }
}

struct BadValue {
  const char* key;  // idle, intvl or cnt
  uint32_t value;
  const char* range;
};

class ValidatePolicyRangeTest : public ::testing::TestWithParam<BadValue> {};

TEST_P(ValidatePolicyRangeTest, MessageIsPrefixKeyAndValue) {
  const BadValue& b = GetParam();
  PolicySpec p = valid_policy();
  const std::string key = b.key;
  uint32_t* field = key == "idle" ? &p.idle : key == "intvl" ? &p.intvl : &p.cnt;
  *field = b.value;
  const std::string tail = key + ": '" + std::to_string(b.value) + "' is not in " + b.range;
  auto v = validate_policy(p, "--keepalive-");
  ASSERT_FALSE(v.ok()) << key << "=" << b.value << " was accepted";
  EXPECT_EQ(v.error(), "--keepalive-" + tail);
  // The prefix is just prepended: keepalive apply uses "--".
  auto w = validate_policy(p, "--");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error(), "--" + tail);
}

INSTANTIATE_TEST_SUITE_P(
    OutOfRange, ValidatePolicyRangeTest,
    ::testing::Values(BadValue{"idle", 0, "1..32767"}, BadValue{"idle", 32768, "1..32767"},
                      BadValue{"idle", 4294967295u, "1..32767"}, BadValue{"intvl", 0, "1..32767"},
                      BadValue{"intvl", 32768, "1..32767"}, BadValue{"cnt", 0, "1..127"},
                      BadValue{"cnt", 128, "1..127"}));

TEST(ValidatePolicyTest, ExactMessage) {
  PolicySpec p = valid_policy();
  p.idle = 0;
  auto v = validate_policy(p, "--keepalive-");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error(), "--keepalive-idle: '0' is not in 1..32767");
}

TEST(ValidatePolicyTest, RejectsBadDirection) {
  PolicySpec p = valid_policy();
  for (const char* d : {"", "in", "Both", "inbound,outbound"}) {
    p.direction = d;
    auto v = validate_policy(p, "--keepalive-");
    ASSERT_FALSE(v.ok()) << "direction '" << d << "' was accepted";
    EXPECT_EQ(v.error(),
              "--keepalive-direction: '" + std::string(d) + "' is not inbound, outbound or both");
  }
}

TEST(ValidatePolicyTest, RejectsEmptyCgroup) {
  PolicySpec p = valid_policy();
  p.cgroup = "";
  auto v = validate_policy(p, "--keepalive-");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error(), "--keepalive-cgroup: empty");
}

TEST(ValidatePolicyTest, DefaultPolicyIsInvalid) {
  // Nothing is set: an unset value must not slip through as "the kernel default".
  EXPECT_FALSE(validate_policy(PolicySpec{}, "--").ok());
  PolicySpec p;
  p.cgroup = "/x";
  auto v = validate_policy(p, "--");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error(), "--idle: '0' is not in 1..32767");
}

TEST(ParsePolicySpecTest, ParsesEveryKey) {
  auto p = parse_policy_spec("cgroup=/a/b,idle=60,intvl=10,cnt=5,direction=inbound,override=true");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->cgroup, "/a/b");
  EXPECT_EQ(p->idle, 60u);
  EXPECT_EQ(p->intvl, 10u);
  EXPECT_EQ(p->cnt, 5u);
  EXPECT_EQ(p->direction, "inbound");
  EXPECT_TRUE(p->override);
}

TEST(ParsePolicySpecTest, Defaults) {
  auto p = parse_policy_spec("cgroup=system.slice/x.service,idle=5,intvl=2,cnt=3");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->cgroup, "system.slice/x.service");
  EXPECT_EQ(p->idle, 5u);
  EXPECT_EQ(p->intvl, 2u);
  EXPECT_EQ(p->cnt, 3u);
  EXPECT_EQ(p->direction, "both");
  EXPECT_FALSE(p->override);
}

TEST(ParsePolicySpecTest, KeysInAnyOrderAndOverrideFalse) {
  auto p =
      parse_policy_spec("override=false,cnt=127,direction=outbound,intvl=32767,idle=1,cgroup=/");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->cgroup, "/");
  EXPECT_EQ(p->idle, 1u);
  EXPECT_EQ(p->intvl, 32767u);
  EXPECT_EQ(p->cnt, 127u);
  EXPECT_EQ(p->direction, "outbound");
  EXPECT_FALSE(p->override);
}

TEST(ParsePolicySpecTest, CgroupMayContainEquals) {
  // Only the first '=' separates key and value.
  auto p = parse_policy_spec("cgroup=/a=b,idle=5,intvl=2,cnt=3");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->cgroup, "/a=b");
}

struct BadSpec {
  const char* spec;
  const char* detail;  // what the message says after "--keepalive-policy '<spec>': "
};

class ParsePolicySpecRejectsTest : public ::testing::TestWithParam<BadSpec> {};

TEST_P(ParsePolicySpecRejectsTest, MessageNamesTheSpecAndTheProblem) {
  const BadSpec& b = GetParam();
  auto p = parse_policy_spec(b.spec);
  ASSERT_FALSE(p.ok()) << "accepted '" << b.spec << "'";
  EXPECT_EQ(p.error(), "--keepalive-policy '" + std::string(b.spec) + "': " + b.detail);
}

INSTANTIATE_TEST_SUITE_P(
    BadSpecs, ParsePolicySpecRejectsTest,
    ::testing::Values(
        BadSpec{"", "no cgroup="}, BadSpec{"idle=5,intvl=2,cnt=3", "no cgroup="},
        BadSpec{"cgroup=,idle=5,intvl=2,cnt=3", "cgroup: empty"},
        BadSpec{"cgroup=/a,idle=5,intvl=2,cnt=3,colour=red", "unknown key 'colour'"},
        BadSpec{"cgroup=/a,IDLE=5,intvl=2,cnt=3", "unknown key 'IDLE'"},
        BadSpec{"cgroup=/a,idle,intvl=2,cnt=3", "'idle' is not key=value"},
        BadSpec{"cgroup=/a,,idle=5,intvl=2,cnt=3", "'' is not key=value"},
        BadSpec{"cgroup=/a,idle=x,intvl=2,cnt=3", "idle 'x' is not a number"},
        BadSpec{"cgroup=/a,idle=,intvl=2,cnt=3", "idle '' is not a number"},
        BadSpec{"cgroup=/a,idle=5s,intvl=2,cnt=3", "idle '5s' is not a number"},
        BadSpec{"cgroup=/a,idle=-1,intvl=2,cnt=3", "idle '-1' is not a number"},
        BadSpec{"cgroup=/a,idle=5,intvl=4294967296,cnt=3", "intvl '4294967296' is not a number"},
        BadSpec{"cgroup=/a,idle=5,intvl=2,cnt= 3", "cnt ' 3' is not a number"},
        BadSpec{"cgroup=/a,idle=5,intvl=2,cnt=3,override=yes",
                "override 'yes' is not true or false"},
        BadSpec{"cgroup=/a,idle=5,intvl=2,cnt=3,override=", "override '' is not true or false"},
        BadSpec{"cgroup=/a,idle=0,intvl=2,cnt=3", "idle: '0' is not in 1..32767"},
        BadSpec{"cgroup=/a,idle=32768,intvl=2,cnt=3", "idle: '32768' is not in 1..32767"},
        BadSpec{"cgroup=/a,idle=5,intvl=0,cnt=3", "intvl: '0' is not in 1..32767"},
        BadSpec{"cgroup=/a,idle=5,intvl=32768,cnt=3", "intvl: '32768' is not in 1..32767"},
        BadSpec{"cgroup=/a,idle=5,intvl=2,cnt=0", "cnt: '0' is not in 1..127"},
        BadSpec{"cgroup=/a,idle=5,intvl=2,cnt=128", "cnt: '128' is not in 1..127"},
        BadSpec{"cgroup=/a,idle=5,intvl=2", "cnt: '0' is not in 1..127"},
        BadSpec{"cgroup=/a,idle=5,intvl=2,cnt=3,direction=sideways",
                "direction: 'sideways' is not inbound, outbound or both"}));

}  // namespace
}  // namespace tcpka
