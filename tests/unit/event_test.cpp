#include "event.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "tcpka.h"

namespace tcpka {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The ring-buffer ABI: user space reads these offsets, BPF writes them.
static_assert(sizeof(tka_event) == 80);
static_assert(offsetof(tka_event, ts_ns) == 0);
static_assert(offsetof(tka_event, cookie) == 8);
static_assert(offsetof(tka_event, cgroup_id) == 16);
static_assert(offsetof(tka_event, netns) == 24);
static_assert(offsetof(tka_event, err) == 28);
static_assert(offsetof(tka_event, saddr) == 32);
static_assert(offsetof(tka_event, daddr) == 48);
static_assert(offsetof(tka_event, family) == 64);
static_assert(offsetof(tka_event, sport) == 66);
static_assert(offsetof(tka_event, dport) == 68);
static_assert(offsetof(tka_event, kind) == 70);
static_assert(offsetof(tka_event, outcome) == 71);
static_assert(offsetof(tka_event, direction) == 72);
static_assert(offsetof(tka_event, probes_out) == 73);
static_assert(offsetof(tka_event, state) == 74);

tka_event v4_event() {
  tka_event r{};
  r.ts_ns = 123456789012345ull;
  r.cookie = 0xdeadbeefcafeull;
  r.cgroup_id = 4242;
  r.netns = 4026531840u;
  r.err = 0;
  const uint8_t s[4] = {10, 0, 0, 1};
  const uint8_t d[4] = {192, 168, 1, 200};
  std::memcpy(r.saddr, s, 4);
  std::memcpy(r.daddr, d, 4);
  r.family = AF_INET;
  r.sport = 5432;
  r.dport = 40000;
  r.kind = TKA_EV_PROBE;
  r.outcome = TKA_OUTCOME_NONE;
  r.direction = TKA_DIR_INBOUND;
  r.probes_out = 1;
  r.state = 1;
  return r;
}

tka_event v6_event() {
  tka_event r{};
  r.ts_ns = 1;
  r.cookie = 77;
  r.cgroup_id = 9;
  r.netns = 12;
  r.family = AF_INET6;
  EXPECT_EQ(inet_pton(AF_INET6, "2001:db8::1", r.saddr), 1);
  EXPECT_EQ(inet_pton(AF_INET6, "fe80::abcd:1", r.daddr), 1);
  r.sport = 50000;
  r.dport = 443;
  r.kind = TKA_EV_KILL;
  r.outcome = TKA_OUTCOME_TIMEOUT;
  r.direction = TKA_DIR_OUTBOUND;
  r.probes_out = 9;
  r.err = ETIMEDOUT;
  r.state = 7;
  return r;
}

TEST(DecodeEventTest, Ipv4EveryField) {
  const tka_event r = v4_event();
  Event e;
  ASSERT_TRUE(decode_event(&r, sizeof(r), &e));
  EXPECT_EQ(e.kind, EventKind::kProbe);
  EXPECT_EQ(e.outcome, Outcome::kNone);
  EXPECT_EQ(e.direction, Direction::kInbound);
  EXPECT_EQ(e.sock.netns, 4026531840u);
  EXPECT_EQ(e.sock.family, AF_INET);
  EXPECT_EQ(e.sock.saddr, "10.0.0.1");
  EXPECT_EQ(e.sock.daddr, "192.168.1.200");
  EXPECT_EQ(e.sock.sport, 5432);
  EXPECT_EQ(e.sock.dport, 40000);
  EXPECT_EQ(e.ts_ns, 123456789012345ull);
  EXPECT_EQ(e.cookie, 0xdeadbeefcafeull);
  EXPECT_EQ(e.cgroup_id, 4242u);
  EXPECT_EQ(e.err, 0);
  EXPECT_EQ(e.probes_out, 1u);
  EXPECT_EQ(e.state, 1u);
}

TEST(DecodeEventTest, Ipv6EveryField) {
  const tka_event r = v6_event();
  Event e;
  ASSERT_TRUE(decode_event(&r, sizeof(r), &e));
  EXPECT_EQ(e.kind, EventKind::kKill);
  EXPECT_EQ(e.outcome, Outcome::kTimeout);
  EXPECT_EQ(e.direction, Direction::kOutbound);
  EXPECT_EQ(e.sock.netns, 12u);
  EXPECT_EQ(e.sock.family, AF_INET6);
  EXPECT_EQ(e.sock.saddr, "2001:db8::1");
  EXPECT_EQ(e.sock.daddr, "fe80::abcd:1");
  EXPECT_EQ(e.sock.sport, 50000);
  EXPECT_EQ(e.sock.dport, 443);
  EXPECT_EQ(e.ts_ns, 1u);
  EXPECT_EQ(e.cookie, 77u);
  EXPECT_EQ(e.cgroup_id, 9u);
  EXPECT_EQ(e.err, ETIMEDOUT);
  EXPECT_EQ(e.probes_out, 9u);
  EXPECT_EQ(e.state, 7u);
}

TEST(DecodeEventTest, Ipv4MappedIpv6) {
  tka_event r = v6_event();
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:10.1.2.3", r.saddr), 1);
  Event e;
  ASSERT_TRUE(decode_event(&r, sizeof(r), &e));
  EXPECT_EQ(e.sock.saddr, "::ffff:10.1.2.3");
}

TEST(DecodeEventTest, AcceptsLongerRecord) {
  // The ring buffer rounds records up; only the first 80 bytes are the event.
  std::vector<unsigned char> buf(sizeof(tka_event) + 8, 0xff);
  const tka_event r = v4_event();
  std::memcpy(buf.data(), &r, sizeof(r));
  Event e;
  ASSERT_TRUE(decode_event(buf.data(), buf.size(), &e));
  EXPECT_EQ(e.sock.saddr, "10.0.0.1");
}

class DecodeKindsTest
    : public ::testing::TestWithParam<std::tuple<int, int, int, EventKind, Outcome, Direction>> {};

TEST_P(DecodeKindsTest, MapsKindOutcomeDirection) {
  const auto& [kind, outcome, direction, want_kind, want_outcome, want_direction] = GetParam();
  for (tka_event r : {v4_event(), v6_event()}) {
    r.kind = static_cast<tka_u8>(kind);
    r.outcome = static_cast<tka_u8>(outcome);
    r.direction = static_cast<tka_u8>(direction);
    Event e;
    ASSERT_TRUE(decode_event(&r, sizeof(r), &e));
    EXPECT_EQ(e.kind, want_kind);
    EXPECT_EQ(e.outcome, want_outcome);
    EXPECT_EQ(e.direction, want_direction);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllKinds, DecodeKindsTest,
    ::testing::Values(std::make_tuple(TKA_EV_PROBE, TKA_OUTCOME_NONE, TKA_DIR_INBOUND,
                                      EventKind::kProbe, Outcome::kNone, Direction::kInbound),
                      std::make_tuple(TKA_EV_RECOVERED, TKA_OUTCOME_NONE, TKA_DIR_OUTBOUND,
                                      EventKind::kRecovered, Outcome::kNone, Direction::kOutbound),
                      std::make_tuple(TKA_EV_KILL, TKA_OUTCOME_TIMEOUT, TKA_DIR_INBOUND,
                                      EventKind::kKill, Outcome::kTimeout, Direction::kInbound),
                      std::make_tuple(TKA_EV_KILL, TKA_OUTCOME_RESET, TKA_DIR_OUTBOUND,
                                      EventKind::kKill, Outcome::kReset, Direction::kOutbound),
                      std::make_tuple(TKA_EV_GONE, TKA_OUTCOME_NONE, TKA_DIR_UNKNOWN,
                                      EventKind::kGone, Outcome::kNone, Direction::kUnknown)));

TEST(DecodeEventTest, RejectsShortRecord) {
  const tka_event r = v4_event();
  Event e;
  EXPECT_FALSE(decode_event(&r, sizeof(r) - 1, &e));
  EXPECT_FALSE(decode_event(&r, 0, &e));
}

TEST(DecodeEventTest, RejectsBadFamily) {
  for (int family : {0, AF_UNIX, AF_PACKET, 0xffff}) {
    tka_event r = v4_event();
    r.family = static_cast<tka_u16>(family);
    Event e;
    EXPECT_FALSE(decode_event(&r, sizeof(r), &e)) << family;
  }
}

TEST(DecodeEventTest, RejectsBadKind) {
  for (int kind : {0, 5, 255}) {
    tka_event r = v4_event();
    r.kind = static_cast<tka_u8>(kind);
    Event e;
    EXPECT_FALSE(decode_event(&r, sizeof(r), &e)) << kind;
  }
}

TEST(DecodeEventTest, RejectsBadOutcome) {
  for (int outcome : {3, 255}) {
    tka_event r = v4_event();
    r.kind = TKA_EV_KILL;
    r.outcome = static_cast<tka_u8>(outcome);
    Event e;
    EXPECT_FALSE(decode_event(&r, sizeof(r), &e)) << outcome;
  }
}

TEST(DecodeEventTest, RejectsBadDirection) {
  for (int direction : {3, 128}) {
    tka_event r = v4_event();
    r.direction = static_cast<tka_u8>(direction);
    Event e;
    EXPECT_FALSE(decode_event(&r, sizeof(r), &e)) << direction;
  }
}

TEST(DecodeEventTest, RejectedRecordLeavesOutputUntouched) {
  tka_event r = v4_event();
  r.kind = 0;
  Event e;
  e.sock.saddr = "sentinel";
  e.cookie = 99;
  EXPECT_FALSE(decode_event(&r, sizeof(r), &e));
  EXPECT_EQ(e.sock.saddr, "sentinel");
  EXPECT_EQ(e.cookie, 99u);
}

Event decoded(const tka_event& r) {
  Event e;
  EXPECT_TRUE(decode_event(&r, sizeof(r), &e));
  return e;
}

TEST(FormatJsonTest, Ipv4ProbeExactly) {
  const Event e = decoded(v4_event());
  EXPECT_EQ(format_json(e, "/system.slice/pg.service"),
            "{\"event\":\"probe\",\"ts_ns\":123456789012345,\"family\":4,"
            "\"saddr\":\"10.0.0.1\",\"sport\":5432,\"daddr\":\"192.168.1.200\",\"dport\":40000,"
            "\"direction\":\"inbound\",\"netns\":4026531840,"
            "\"cgroup\":\"/system.slice/pg.service\",\"cgroup_id\":4242,"
            "\"cookie\":244837814094590,\"state\":\"established\",\"probes_out\":1,"
            "\"outcome\":null,\"errno\":0,\"error\":null}");
}

TEST(FormatJsonTest, Ipv6KillWithError) {
  const Event e = decoded(v6_event());
  const std::string j = format_json(e, "/a");
  EXPECT_THAT(j, HasSubstr("\"event\":\"kill\""));
  EXPECT_THAT(j, HasSubstr("\"family\":6"));
  EXPECT_THAT(j, HasSubstr("\"saddr\":\"2001:db8::1\""));
  EXPECT_THAT(j, HasSubstr("\"sport\":50000"));
  EXPECT_THAT(j, HasSubstr("\"daddr\":\"fe80::abcd:1\""));
  EXPECT_THAT(j, HasSubstr("\"dport\":443"));
  EXPECT_THAT(j, HasSubstr("\"direction\":\"outbound\""));
  EXPECT_THAT(j, HasSubstr("\"netns\":12"));
  EXPECT_THAT(j, HasSubstr("\"cgroup\":\"/a\""));
  EXPECT_THAT(j, HasSubstr("\"cgroup_id\":9"));
  EXPECT_THAT(j, HasSubstr("\"cookie\":77"));
  EXPECT_THAT(j, HasSubstr("\"state\":\"close\""));
  EXPECT_THAT(j, HasSubstr("\"probes_out\":9"));
  EXPECT_THAT(j, HasSubstr("\"outcome\":\"timeout\""));
  EXPECT_THAT(j, HasSubstr("\"errno\":" + std::to_string(ETIMEDOUT)));
  EXPECT_THAT(j, HasSubstr("\"error\":\"ETIMEDOUT\""));
  EXPECT_EQ(j.front(), '{');
  EXPECT_EQ(j.back(), '}');
  EXPECT_THAT(j, Not(HasSubstr("\n")));
}

TEST(FormatJsonTest, NullsForEmptyCgroupZeroCookieNoOutcomeNoError) {
  tka_event r = v4_event();
  r.cookie = 0;
  Event e = decoded(r);
  const std::string j = format_json(e, "");
  EXPECT_THAT(j, HasSubstr("\"cgroup\":null"));
  EXPECT_THAT(j, HasSubstr("\"cookie\":null"));
  EXPECT_THAT(j, HasSubstr("\"outcome\":null"));
  EXPECT_THAT(j, HasSubstr("\"errno\":0"));
  EXPECT_THAT(j, HasSubstr("\"error\":null"));
}

TEST(FormatJsonTest, ResetKillAndGone) {
  tka_event r = v4_event();
  r.kind = TKA_EV_KILL;
  r.outcome = TKA_OUTCOME_RESET;
  r.err = ECONNRESET;
  std::string j = format_json(decoded(r), "/x");
  EXPECT_THAT(j, HasSubstr("\"outcome\":\"reset\""));
  EXPECT_THAT(j, HasSubstr("\"error\":\"ECONNRESET\""));

  r.kind = TKA_EV_GONE;
  r.outcome = TKA_OUTCOME_NONE;
  r.direction = TKA_DIR_UNKNOWN;
  r.err = 0;
  j = format_json(decoded(r), "/x");
  EXPECT_THAT(j, HasSubstr("\"event\":\"gone\""));
  EXPECT_THAT(j, HasSubstr("\"direction\":\"unknown\""));

  r.kind = TKA_EV_RECOVERED;
  j = format_json(decoded(r), "/x");
  EXPECT_THAT(j, HasSubstr("\"event\":\"recovered\""));
}

TEST(FormatJsonTest, QuotesCgroupPath) {
  const Event e = decoded(v4_event());
  EXPECT_THAT(format_json(e, "/we\"ird\\path"), HasSubstr("\"cgroup\":\"/we\\\"ird\\\\path\""));
}

TEST(FormatJsonTest, KeysInDocumentedOrder) {
  const std::string j = format_json(decoded(v6_event()), "/a");
  const char* keys[] = {"event", "ts_ns",      "family",  "saddr",  "sport",     "daddr",
                        "dport", "direction",  "netns",   "cgroup", "cgroup_id", "cookie",
                        "state", "probes_out", "outcome", "errno",  "error"};
  size_t pos = 0;
  for (const char* k : keys) {
    const size_t at = j.find("\"" + std::string(k) + "\":", pos);
    ASSERT_NE(at, std::string::npos) << k << " missing after offset " << pos << " in " << j;
    pos = at + 1;
  }
}

TEST(FormatTextTest, Ipv4Probe) {
  const std::string t = format_text(decoded(v4_event()), "/svc");
  EXPECT_THAT(t, HasSubstr("probe"));
  EXPECT_THAT(t, HasSubstr("10.0.0.1:5432 -> 192.168.1.200:40000"));
  EXPECT_THAT(t, HasSubstr("inbound"));
  EXPECT_THAT(t, HasSubstr("probes_out=1"));
  EXPECT_THAT(t, HasSubstr("err=-"));
  EXPECT_THAT(t, HasSubstr("netns=4026531840"));
  EXPECT_THAT(t, HasSubstr("cgroup=/svc"));
  EXPECT_THAT(t, HasSubstr("cookie=244837814094590"));
  EXPECT_THAT(t, Not(HasSubstr("\n")));
}

TEST(FormatTextTest, Ipv6KillBracketsAddresses) {
  tka_event r = v6_event();
  r.cookie = 0;
  const std::string t = format_text(decoded(r), "");
  EXPECT_THAT(t, HasSubstr("kill"));
  EXPECT_THAT(t, HasSubstr("timeout"));
  EXPECT_THAT(t, HasSubstr("[2001:db8::1]:50000 -> [fe80::abcd:1]:443"));
  EXPECT_THAT(t, HasSubstr("err=ETIMEDOUT"));
  EXPECT_THAT(t, HasSubstr("cgroup=?"));
  EXPECT_THAT(t, HasSubstr("cookie=-"));
}

TEST(JsonQuoteTest, PlainText) {
  EXPECT_EQ(json_quote(""), "\"\"");
  EXPECT_EQ(json_quote("abc/def"), "\"abc/def\"");
}

TEST(JsonQuoteTest, EscapesQuotesAndBackslash) {
  EXPECT_EQ(json_quote("a\"b"), "\"a\\\"b\"");
  EXPECT_EQ(json_quote("a\\b"), "\"a\\\\b\"");
}

TEST(JsonQuoteTest, EscapesControlCharacters) {
  EXPECT_EQ(json_quote("\n\t\r"), "\"\\n\\t\\r\"");
  EXPECT_EQ(json_quote(std::string_view("\x01\x1f", 2)), "\"\\u0001\\u001f\"");
  EXPECT_EQ(json_quote(std::string_view("a\0b", 3)), "\"a\\u0000b\"");
  EXPECT_EQ(json_quote("\b\f"), "\"\\u0008\\u000c\"");
}

TEST(JsonQuoteTest, PassesUtf8AndDelThrough) {
  EXPECT_EQ(json_quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(json_quote("\x7f"), "\"\x7f\"");
}

TEST(ServicePortTest, InboundIsLocalPortOutboundIsRemote) {
  Event e;
  e.sock.sport = 5432;
  e.sock.dport = 40000;
  e.direction = Direction::kInbound;
  EXPECT_EQ(service_port(e), 5432);
  e.direction = Direction::kOutbound;
  EXPECT_EQ(service_port(e), 40000);
}

TEST(TcpStateNameTest, KernelNumbering) {
  EXPECT_EQ(tcp_state_name(1), "established");
  EXPECT_EQ(tcp_state_name(2), "syn_sent");
  EXPECT_EQ(tcp_state_name(7), "close");
  EXPECT_EQ(tcp_state_name(8), "close_wait");
  EXPECT_EQ(tcp_state_name(10), "listen");
  EXPECT_EQ(tcp_state_name(12), "new_syn_recv");
}

TEST(TcpStateNameTest, OutOfRangeIsUnknown) {
  EXPECT_EQ(tcp_state_name(0), "unknown");
  EXPECT_EQ(tcp_state_name(14), "unknown");
  EXPECT_EQ(tcp_state_name(255), "unknown");
  EXPECT_EQ(tcp_state_name(~0u), "unknown");
}

TEST(NamesTest, KindOutcomeDirection) {
  EXPECT_EQ(kind_name(EventKind::kProbe), "probe");
  EXPECT_EQ(kind_name(EventKind::kRecovered), "recovered");
  EXPECT_EQ(kind_name(EventKind::kKill), "kill");
  EXPECT_EQ(kind_name(EventKind::kGone), "gone");
  EXPECT_EQ(outcome_name(Outcome::kNone), "");
  EXPECT_EQ(outcome_name(Outcome::kTimeout), "timeout");
  EXPECT_EQ(outcome_name(Outcome::kReset), "reset");
  EXPECT_EQ(direction_name(Direction::kUnknown), "unknown");
  EXPECT_EQ(direction_name(Direction::kInbound), "inbound");
  EXPECT_EQ(direction_name(Direction::kOutbound), "outbound");
}

}  // namespace
}  // namespace tcpka
