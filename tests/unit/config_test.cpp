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

}  // namespace
}  // namespace tcpka
