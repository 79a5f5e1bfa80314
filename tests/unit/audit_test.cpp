#include "audit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tcpka {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

// The record is the ABI between audit.bpf.c and user space.
static_assert(sizeof(tka_sock_rec) == 128, "tka_sock_rec changed: update both sides");
static_assert(offsetof(tka_sock_rec, comm) + sizeof(tka_sock_rec::comm) == 128,
              "comm is the last 16 bytes");

// ---------------------------------------------------------------------------
// A small recursive-descent JSON parser (RFC 8259), strict enough to tell
// valid output from broken output: it also checks strings are valid UTF-8.

struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string text;  // decoded string, or the number as written
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;  // in order, duplicates kept
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view s) : s_(s) {}

  // The whole input as one value, surrounded by optional whitespace.
  std::optional<Json> parse() {
    Json v;
    skip_ws();
    if (!value(&v, 0)) return std::nullopt;
    skip_ws();
    if (i_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[i_]; }
  void skip_ws() {
    while (!at_end() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  bool value(Json* out, int depth) {
    if (depth > 64) return false;
    switch (peek()) {
      case '{':
        return object(out, depth);
      case '[':
        return array(out, depth);
      case '"':
        out->type = Json::Type::kString;
        return string(&out->text);
      case 't':
        out->type = Json::Type::kBool;
        out->boolean = true;
        return literal("true");
      case 'f':
        out->type = Json::Type::kBool;
        return literal("false");
      case 'n':
        out->type = Json::Type::kNull;
        return literal("null");
      default:
        return number(out);
    }
  }

  bool object(Json* out, int depth) {
    out->type = Json::Type::kObject;
    ++i_;  // {
    skip_ws();
    if (peek() == '}') {
      ++i_;
      return true;
    }
    for (;;) {
      skip_ws();
      std::string key;
      if (peek() != '"' || !string(&key)) return false;
      skip_ws();
      if (peek() != ':') return false;
      ++i_;
      skip_ws();
      Json v;
      if (!value(&v, depth + 1)) return false;
      out->members.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() == '}') {
        ++i_;
        return true;
      }
      return false;
    }
  }

  bool array(Json* out, int depth) {
    out->type = Json::Type::kArray;
    ++i_;  // [
    skip_ws();
    if (peek() == ']') {
      ++i_;
      return true;
    }
    for (;;) {
      skip_ws();
      Json v;
      if (!value(&v, depth + 1)) return false;
      out->items.push_back(std::move(v));
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() == ']') {
        ++i_;
        return true;
      }
      return false;
    }
  }

  static void append_utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xc0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      *out += static_cast<char>(0xe0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // One UTF-8 encoded character starting at a byte >= 0x80 (RFC 3629).
  bool utf8_char(std::string* out) {
    const auto byte = [&](size_t k) { return static_cast<unsigned char>(s_[i_ + k]); };
    const unsigned char lead = byte(0);
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // range of the second byte
    if (lead >= 0xc2 && lead <= 0xdf) {
      len = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      len = 3;
      if (lead == 0xe0) lo = 0xa0;
      if (lead == 0xed) hi = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      len = 4;
      if (lead == 0xf0) lo = 0x90;
      if (lead == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (i_ + len > s_.size()) return false;
    if (byte(1) < lo || byte(1) > hi) return false;
    for (size_t k = 2; k < len; ++k) {
      if (byte(k) < 0x80 || byte(k) > 0xbf) return false;
    }
    out->append(s_.substr(i_, len));
    i_ += len;
    return true;
  }

  bool string(std::string* out) {
    ++i_;  // "
    for (;;) {
      if (at_end()) return false;
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c >= 0x80) {
        if (!utf8_char(out)) return false;
        continue;
      }
      if (c != '\\') {
        *out += static_cast<char>(c);
        ++i_;
        continue;
      }
      ++i_;
      if (at_end()) return false;
      const char e = s_[i_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          *out += e;
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'n':
          *out += '\n';
          break;
        case 'r':
          *out += '\r';
          break;
        case 't':
          *out += '\t';
          break;
        case 'u': {
          if (i_ + 4 > s_.size()) return false;
          uint32_t cp = 0;
          for (int k = 0; k < 4; ++k) {
            const char h = s_[i_++];
            cp <<= 4;
            if (h >= '0' && h <= '9') {
              cp |= static_cast<uint32_t>(h - '0');
            } else if (h >= 'a' && h <= 'f') {
              cp |= static_cast<uint32_t>(h - 'a' + 10);
            } else if (h >= 'A' && h <= 'F') {
              cp |= static_cast<uint32_t>(h - 'A' + 10);
            } else {
              return false;
            }
          }
          append_utf8(cp, out);
          break;
        }
        default:
          return false;
      }
    }
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  bool number(Json* out) {
    const size_t start = i_;
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++i_;
    } else {
      return false;
    }
    if (peek() == '.') {
      ++i_;
      if (!is_digit(peek())) return false;
      while (is_digit(peek())) ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!is_digit(peek())) return false;
      while (is_digit(peek())) ++i_;
    }
    out->type = Json::Type::kNumber;
    out->text = std::string(s_.substr(start, i_ - start));
    out->number = std::strtod(out->text.c_str(), nullptr);
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

std::optional<Json> parse_json(std::string_view s) {
  return JsonParser(s).parse();
}

// How often `key` occurs in the object.
int count_key(const Json& obj, std::string_view key) {
  int n = 0;
  for (const auto& [k, v] : obj.members) n += k == key ? 1 : 0;
  return n;
}

// The member `key` of the object; the test fails (and a null is returned)
// when it is missing.
const Json& member(const Json& obj, std::string_view key) {
  static const Json kMissing;
  for (const auto& [k, v] : obj.members) {
    if (k == key) return v;
  }
  ADD_FAILURE() << "no key " << key;
  return kMissing;
}

TEST(JsonValidator, AcceptsValidJson) {
  for (const char* ok : {
           "[]",
           "{}",
           " [ ] \n",
           "0",
           "-0.5e+3",
           "\"\"",
           "{\"a\":[1,-2.5E3,true,false,null,\"x\\u00e9\\n\\\"\\\\\\/\"],\"b\":{}}",
           "[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]",
       }) {
    EXPECT_TRUE(parse_json(ok).has_value()) << ok;
  }
}

TEST(JsonValidator, RejectsBrokenJson) {
  for (const char* bad : {
           "",
           "[",
           "]",
           "[1,]",
           "[,1]",
           "[1 2]",
           "{\"a\":}",
           "{\"a\" 1}",
           "{\"a\":1,}",
           "{a:1}",
           "{\"a\":1}}",
           "\"unterminated",
           "[\"bad \\x escape\"]",
           "[\"\\u12G4\"]",
           "[\"tab\there\"]",
           "tru",
           "nul",
           "01",
           "1.",
           ".5",
           "+1",
           "1e",
           "nan",
           "[1] x",
           "[\"\xc3\"]",          // truncated UTF-8 sequence
           "[\"\xff\"]",          // never valid in UTF-8
           "[\"\xed\xa0\x80\"]",  // an encoded surrogate
       }) {
    EXPECT_FALSE(parse_json(bad).has_value()) << bad;
  }
}

TEST(JsonValidator, DecodesWhatItParses) {
  auto v = parse_json("{\"s\":\"a\\\"b\\\\c\\u0041\",\"n\":12.5,\"k\":1,\"k\":2}");
  ASSERT_TRUE(v.has_value());
  ASSERT_EQ(v->type, Json::Type::kObject);
  EXPECT_EQ(member(*v, "s").text, "a\"b\\cA");
  EXPECT_EQ(member(*v, "n").number, 12.5);
  EXPECT_EQ(count_key(*v, "k"), 2);
  EXPECT_EQ(count_key(*v, "missing"), 0);
}

// ---------------------------------------------------------------------------
// kernel_hz

TEST(KernelHz, IsACommonConfigHz) {
  EXPECT_THAT(kernel_hz(), AnyOf(100u, 250u, 300u, 1000u));
}

TEST(KernelHz, IsOneTickOfTheCoarseClock) {
  timespec res{};
  ASSERT_EQ(clock_getres(CLOCK_MONOTONIC_COARSE, &res), 0);
  ASSERT_EQ(res.tv_sec, 0);
  ASSERT_GT(res.tv_nsec, 0);
  EXPECT_EQ(kernel_hz(),
            static_cast<unsigned>(std::lround(1e9 / static_cast<double>(res.tv_nsec))));
}

// ---------------------------------------------------------------------------
// decode_rec

// An ESTABLISHED IPv4 record with a distinct value in every field.
tka_sock_rec make_rec() {
  tka_sock_rec r;
  std::memset(&r, 0, sizeof(r));
  r.sk = 0xffff888012345678ull;
  r.cookie = 0x1122334455667788ull;
  r.cgroup_id = 4242;
  r.netns = 4026531840u;
  r.pid = 1234;
  r.fd = 7;
  r.family = AF_INET;
  const uint8_t s4[4] = {10, 1, 2, 3};
  const uint8_t d4[4] = {192, 168, 0, 9};
  std::memcpy(r.saddr, s4, 4);
  std::memcpy(r.daddr, d4, 4);
  // Junk after the IPv4 address must not matter.
  std::memset(r.saddr + 4, 0xee, 12);
  std::memset(r.daddr + 4, 0xdd, 12);
  r.sport = 5432;
  r.dport = 40001;
  r.state = 1;
  r.ka_on = 1;
  r.ka_time_j = 7500;   // 30 s at HZ=250
  r.ka_intvl_j = 2500;  // 10 s
  r.ka_probes = 9;
  r.probes_out = 3;
  r.lastrcv_j = 625;  // 2.5 s
  r.direction = TKA_DIR_INBOUND;
  std::memcpy(r.comm, "postgres", 8);
  return r;
}

std::string no_cgroup(uint64_t) {
  return "";
}

TEST(DecodeRec, EveryField) {
  const tka_sock_rec r = make_rec();
  std::vector<uint64_t> asked;
  const AuditRow row = decode_rec(r, 250, [&](uint64_t id) {
    asked.push_back(id);
    return std::string("/system.slice/db.service");
  });
  EXPECT_EQ(row.key.family, AF_INET);
  EXPECT_EQ(row.key.saddr, "10.1.2.3");
  EXPECT_EQ(row.key.daddr, "192.168.0.9");
  EXPECT_EQ(row.key.sport, 5432);
  EXPECT_EQ(row.key.dport, 40001);
  EXPECT_EQ(row.key.netns, 4026531840u);
  EXPECT_EQ(row.state, "established");
  EXPECT_EQ(row.cookie, 0x1122334455667788ull);
  EXPECT_EQ(row.cgroup_id, 4242u);
  EXPECT_EQ(asked, std::vector<uint64_t>{4242});
  EXPECT_EQ(row.cgroup, "/system.slice/db.service");
  EXPECT_EQ(row.direction, Direction::kInbound);
  EXPECT_EQ(row.pid, 1234u);
  EXPECT_EQ(row.fd, 7u);
  EXPECT_EQ(row.comm, "postgres");
  EXPECT_TRUE(row.keepalive);
  EXPECT_EQ(row.keepalive_idle, 30u);
  EXPECT_EQ(row.keepalive_intvl, 10u);
  EXPECT_EQ(row.keepalive_cnt, 9u);
  EXPECT_EQ(row.probes_out, 3u);
  EXPECT_DOUBLE_EQ(row.idle_seconds, 2.5);
  EXPECT_FALSE(row.state_seconds.has_value());
  EXPECT_FALSE(row.state_seconds_min.has_value());
  EXPECT_FALSE(row.probes_sent.has_value());
  EXPECT_FALSE(row.kills.has_value());
}

TEST(DecodeRec, JiffiesUseTheGivenHz) {
  const tka_sock_rec r = make_rec();
  const AuditRow at1000 = decode_rec(r, 1000, no_cgroup);
  EXPECT_EQ(at1000.keepalive_idle, 7u);  // 7.5 s, whole seconds
  EXPECT_EQ(at1000.keepalive_intvl, 2u);
  EXPECT_DOUBLE_EQ(at1000.idle_seconds, 0.625);
  const AuditRow at100 = decode_rec(r, 100, no_cgroup);
  EXPECT_EQ(at100.keepalive_idle, 75u);
  EXPECT_EQ(at100.keepalive_intvl, 25u);
  EXPECT_DOUBLE_EQ(at100.idle_seconds, 6.25);
  // Neither the count nor the probes in flight are times.
  EXPECT_EQ(at100.keepalive_cnt, 9u);
  EXPECT_EQ(at100.probes_out, 3u);
}

TEST(DecodeRec, DirectionOutOfRangeIsUnknown) {
  tka_sock_rec r = make_rec();
  r.direction = TKA_DIR_OUTBOUND;
  EXPECT_EQ(decode_rec(r, 250, no_cgroup).direction, Direction::kOutbound);
  r.direction = TKA_DIR_OUTBOUND + 1;
  EXPECT_EQ(decode_rec(r, 250, no_cgroup).direction, Direction::kUnknown);
}

TEST(DecodeRec, KeepaliveOff) {
  tka_sock_rec r = make_rec();
  r.ka_on = 0;
  EXPECT_FALSE(decode_rec(r, 250, no_cgroup).keepalive);
}

TEST(DecodeRec, StateNamesFromKernelNumbers) {
  const std::vector<std::pair<uint8_t, std::string>> cases = {
      {1, "established"}, {2, "syn_sent"},  {3, "syn_recv"},  {4, "fin_wait1"},
      {5, "fin_wait2"},   {6, "time_wait"}, {7, "close"},     {8, "close_wait"},
      {9, "last_ack"},    {10, "listen"},   {11, "closing"},  {12, "new_syn_recv"},
      {0, "unknown"},     {14, "unknown"},  {255, "unknown"},
  };
  for (const auto& [num, name] : cases) {
    tka_sock_rec r = make_rec();
    r.state = num;
    EXPECT_EQ(decode_rec(r, 250, no_cgroup).state, name) << "state " << int{num};
  }
}

TEST(DecodeRec, Ipv6UsesAll16Bytes) {
  tka_sock_rec r = make_rec();
  r.family = AF_INET6;
  ASSERT_EQ(inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", r.saddr), 1);
  ASSERT_EQ(inet_pton(AF_INET6, "fd00::abcd:ef01", r.daddr), 1);
  const AuditRow row = decode_rec(r, 250, no_cgroup);
  EXPECT_EQ(row.key.family, AF_INET6);
  EXPECT_EQ(row.key.saddr, "2001:db8:1:2:3:4:5:6");
  EXPECT_EQ(row.key.daddr, "fd00::abcd:ef01");
}

TEST(DecodeRec, Ipv4MappedIpv6) {
  tka_sock_rec r = make_rec();
  r.family = AF_INET6;
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:10.1.2.3", r.saddr), 1);
  std::memset(r.daddr, 0, sizeof(r.daddr));
  const AuditRow row = decode_rec(r, 250, no_cgroup);
  EXPECT_EQ(row.key.saddr, "::ffff:10.1.2.3");
  EXPECT_EQ(row.key.daddr, "::");
}

TEST(DecodeRec, CommOf16BytesWithoutNul) {
  tka_sock_rec r = make_rec();
  std::memcpy(r.comm, "abcdefghijklmnop", 16);
  EXPECT_EQ(decode_rec(r, 250, no_cgroup).comm, "abcdefghijklmnop");
}

TEST(DecodeRec, CommEndsAtTheFirstNul) {
  tka_sock_rec r = make_rec();
  std::memcpy(r.comm, "nginx\0garbagexy", 16);
  EXPECT_EQ(decode_rec(r, 250, no_cgroup).comm, "nginx");
  std::memset(r.comm, 0, sizeof(r.comm));
  EXPECT_EQ(decode_rec(r, 250, no_cgroup).comm, "");
}

TEST(DecodeRec, ExactStateAge) {
  tka_sock_rec r = make_rec();
  r.since_ns = 500'000'000;
  r.now_ns = 10'500'000'000;
  r.since_exact = 1;
  const AuditRow row = decode_rec(r, 250, no_cgroup);
  ASSERT_TRUE(row.state_seconds.has_value());
  EXPECT_DOUBLE_EQ(*row.state_seconds, 10.0);
  EXPECT_FALSE(row.state_seconds_min.has_value());
}

TEST(DecodeRec, LowerBoundStateAge) {
  tka_sock_rec r = make_rec();
  r.since_ns = 1'000'000'000;
  r.now_ns = 3'250'000'000;
  r.since_exact = 0;
  const AuditRow row = decode_rec(r, 250, no_cgroup);
  EXPECT_FALSE(row.state_seconds.has_value());
  ASSERT_TRUE(row.state_seconds_min.has_value());
  EXPECT_DOUBLE_EQ(*row.state_seconds_min, 2.25);
}

TEST(DecodeRec, NoStateAgeWhenUnknownOrInTheFuture) {
  for (uint8_t exact : {0, 1}) {
    tka_sock_rec r = make_rec();
    r.since_exact = exact;
    r.since_ns = 0;
    r.now_ns = 5'000'000'000;
    AuditRow row = decode_rec(r, 250, no_cgroup);
    EXPECT_FALSE(row.state_seconds.has_value()) << int{exact};
    EXPECT_FALSE(row.state_seconds_min.has_value()) << int{exact};

    r.since_ns = 5'000'000'001;  // after now: clock skew, not a negative age
    row = decode_rec(r, 250, no_cgroup);
    EXPECT_FALSE(row.state_seconds.has_value()) << int{exact};
    EXPECT_FALSE(row.state_seconds_min.has_value()) << int{exact};
  }
}

TEST(DecodeRec, StateBeganThisNanosecond) {
  tka_sock_rec r = make_rec();
  r.since_exact = 1;
  r.since_ns = r.now_ns = 7'000'000'000;
  const AuditRow row = decode_rec(r, 250, no_cgroup);
  ASSERT_TRUE(row.state_seconds.has_value());
  EXPECT_EQ(*row.state_seconds, 0.0);
}

// ---------------------------------------------------------------------------
// dedupe

AuditRow make_row(std::string state, std::string saddr, uint16_t sport, std::string daddr,
                  uint16_t dport, uint64_t cookie, uint32_t pid, uint32_t fd = 3) {
  AuditRow r;
  r.key.netns = 4026531840u;
  r.key.family = AF_INET;
  r.key.saddr = std::move(saddr);
  r.key.daddr = std::move(daddr);
  r.key.sport = sport;
  r.key.dport = dport;
  r.state = std::move(state);
  r.cookie = cookie;
  r.sock = 0xffff888000000000ull + cookie;  // one socket per cookie
  r.pid = pid;
  r.fd = fd;
  r.comm = "p" + std::to_string(pid);
  return r;
}

TEST(DedupeTest, SocketsWithoutCookiesStayApart) {
  // Cookies are 0 until the kernel assigns one (before Linux 5.12, most of
  // them): the socket's identity decides, not the cookie.
  std::vector<AuditRow> in = {make_row("close_wait", "10.0.0.1", 80, "10.0.0.2", 1000, 0, 1),
                              make_row("close_wait", "10.0.0.1", 80, "10.0.0.2", 1001, 0, 1),
                              make_row("close_wait", "10.0.0.1", 80, "10.0.0.2", 1001, 0, 2)};
  in[0].sock = 0xffff888000001000ull;
  in[1].sock = 0xffff888000002000ull;
  in[2].sock = in[1].sock;  // the same socket, held by a second process
  const auto out = dedupe(in);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].key.dport, 1000);
  EXPECT_EQ(out[1].key.dport, 1001);
  EXPECT_EQ(out[1].pid, 1u) << "the lowest pid";
}

TEST(Dedupe, SharedSocketListedOnceWithTheLowestPid) {
  const AuditRow by30 = make_row("established", "10.0.0.1", 80, "10.0.0.2", 5000, 77, 30, 4);
  const AuditRow by10 = make_row("established", "10.0.0.1", 80, "10.0.0.2", 5000, 77, 10, 9);
  for (const auto& input : {std::vector<AuditRow>{by30, by10}, std::vector<AuditRow>{by10, by30}}) {
    const auto out = dedupe(input);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].pid, 10u);
    EXPECT_EQ(out[0].fd, 9u);
    EXPECT_EQ(out[0].comm, "p10");
  }
}

TEST(Dedupe, SameProcessTwoFdsListedOnce) {
  const auto out = dedupe({make_row("listen", "0.0.0.0", 80, "0.0.0.0", 0, 5, 10, 8),
                           make_row("listen", "0.0.0.0", 80, "0.0.0.0", 0, 5, 10, 4)});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].pid, 10u);
}

TEST(Dedupe, DistinctCookiesAllKept) {
  const auto out = dedupe({make_row("established", "10.0.0.1", 80, "10.0.0.2", 5000, 1, 10),
                           make_row("established", "10.0.0.1", 80, "10.0.0.2", 5001, 2, 10),
                           make_row("established", "10.0.0.1", 80, "10.0.0.2", 5002, 3, 10)});
  EXPECT_EQ(out.size(), 3u);
}

TEST(Dedupe, CountingModeKeepsTheSameRows) {
  const std::vector<AuditRow> in = {
      make_row("listen", "0.0.0.0", 22, "0.0.0.0", 0, 9, 5),
      make_row("established", "10.0.0.2", 80, "10.0.0.9", 5000, 2, 30, 4),
      make_row("established", "10.0.0.2", 80, "10.0.0.9", 5000, 2, 10, 7),
      make_row("close_wait", "10.0.0.2", 81, "10.0.0.9", 5001, 4, 6)};
  const auto out = dedupe(in, false);
  ASSERT_EQ(out.size(), 3u);
  // The shared socket once, with its lowest pid: the same rows as the
  // display order, in no particular order.
  for (const auto& r : out) {
    if (r.cookie == 2) {
      EXPECT_EQ(r.pid, 10u);
    }
  }
  auto cookies = [](std::vector<AuditRow> rows) {
    std::vector<uint64_t> c;
    for (const auto& r : rows) c.push_back(r.cookie);
    std::sort(c.begin(), c.end());
    return c;
  };
  EXPECT_EQ(cookies(out), cookies(dedupe(in)));
}

TEST(Dedupe, SortedByStateThenNamespaceAndPorts) {
  const auto out = dedupe({
      make_row("listen", "0.0.0.0", 22, "0.0.0.0", 0, 1, 5),
      make_row("established", "10.0.0.2", 80, "10.0.0.9", 5000, 2, 6),
      make_row("close_wait", "10.0.0.1", 443, "10.0.0.3", 6000, 3, 7),
      make_row("established", "10.0.0.1", 80, "10.0.0.9", 5001, 4, 8),
      make_row("established", "10.0.0.1", 80, "10.0.0.8", 5002, 5, 9),
      make_row("established", "10.0.0.1", 80, "10.0.0.9", 4999, 6, 9),
  });
  ASSERT_EQ(out.size(), 6u);
  std::vector<uint64_t> cookies;
  for (const auto& r : out) cookies.push_back(r.cookie);
  // close_wait < established < listen; then netns, local port, peer port,
  // addresses (integers first: the sort is on the audit's hot path).
  EXPECT_EQ(cookies, (std::vector<uint64_t>{3, 6, 2, 4, 5, 1}));
}

TEST(Dedupe, Empty) {
  EXPECT_TRUE(dedupe({}).empty());
}

// A socket held by `pid` through fd 3, from the fields dedupe orders by.
tka_sock_rec order_rec(uint8_t state, const uint8_t (&saddr)[4], uint16_t sport,
                       const uint8_t (&daddr)[4], uint16_t dport, uint64_t cookie, uint32_t pid,
                       uint32_t fd = 3) {
  tka_sock_rec r = make_rec();
  r.state = state;
  std::memcpy(r.saddr, saddr, 4);
  std::memcpy(r.daddr, daddr, 4);
  r.sport = sport;
  r.dport = dport;
  r.cookie = cookie;
  r.sk = 0xffff888000000000ull + cookie;  // one socket per cookie
  r.pid = pid;
  r.fd = fd;
  r.cgroup_id = cookie % 3;  // interleaved cgroups
  return r;
}

// for_each_row orders records itself; it must give what decoding every
// record and dedupe() give, including where the address text decides
// ("10.0.0.10" < "10.0.0.9") and for a socket held twice.
TEST(ForEachRow, SameRowsAndOrderAsDedupe) {
  const uint8_t a9[4] = {10, 0, 0, 9}, a10[4] = {10, 0, 0, 10}, a1[4] = {10, 0, 0, 1};
  const std::vector<tka_sock_rec> recs = {
      order_rec(10, a1, 22, a1, 0, 1, 5),       order_rec(1, a9, 80, a1, 5000, 2, 30, 4),
      order_rec(1, a10, 80, a1, 5000, 3, 6),    order_rec(8, a1, 443, a9, 6000, 4, 7),
      order_rec(1, a9, 80, a1, 5000, 2, 10, 7), order_rec(1, a9, 80, a10, 5000, 5, 9),
      order_rec(1, a9, 80, a10, 5000, 6, 8),    order_rec(2, a1, 80, a9, 4999, 7, 9),
      order_rec(6, a1, 80, a9, 4999, 8, 9),     order_rec(1, a1, 79, a9, 5001, 9, 9)};
  auto path = [](uint64_t id) { return "/cg" + std::to_string(id); };
  for (bool display : {true, false}) {
    std::vector<AuditRow> all;
    for (const auto& r : recs) all.push_back(decode_rec(r, 250, path));
    const std::vector<AuditRow> want = dedupe(all, display);
    std::vector<std::string> got_json;
    for_each_row(recs, 250, path, display,
                 [&](AuditRow& row) { got_json.push_back(rows_to_json({row})); });
    std::vector<std::string> want_json;
    for (const auto& r : want) want_json.push_back(rows_to_json({r}));
    EXPECT_EQ(got_json, want_json) << "display order " << display;
    EXPECT_EQ(decode_scan(recs, 250, path, display).size(), want.size());
  }
  std::vector<uint64_t> cookies;
  for (const auto& r : decode_scan(recs, 250, path)) cookies.push_back(r.cookie);
  // close_wait < established < listen < syn_sent < time_wait; then ports;
  // then "10.0.0.10" before "10.0.0.9", the peer address, the pid.
  EXPECT_EQ(cookies, (std::vector<uint64_t>{4, 9, 3, 2, 6, 5, 1, 7, 8}));
}

TEST(DecodeInto, OverwritesEveryFieldOfAUsedRow) {
  AuditRow used = decode_rec(make_rec(), 250, [](uint64_t) { return "/a/long/cgroup/path/x"; });
  used.pod = PodLabels{"ns", "pod", "c"};
  used.probes_sent = 3;
  used.kills = 1;
  used.state_seconds = 5;
  tka_sock_rec other = make_rec();
  other.state = 10;
  other.since_ns = 10;
  other.now_ns = 2000000010;
  std::memcpy(other.comm, "x\0", 2);
  decode_into(other, 100, "", used);
  EXPECT_EQ(rows_to_json({used}), rows_to_json({decode_rec(other, 100, no_cgroup)}));
}

// ---------------------------------------------------------------------------
// state_age and matches

AuditRow filter_row(std::string state, bool keepalive, double idle,
                    std::optional<double> exact = std::nullopt,
                    std::optional<double> lower = std::nullopt) {
  AuditRow r = make_row(std::move(state), "10.0.0.1", 80, "10.0.0.2", 5000, 1, 1);
  r.keepalive = keepalive;
  r.idle_seconds = idle;
  r.state_seconds = exact;
  r.state_seconds_min = lower;
  return r;
}

TEST(StateAge, ExactElseLowerBoundElseUnknown) {
  EXPECT_EQ(state_age(filter_row("close_wait", false, 0, 5.0, std::nullopt)), 5.0);
  EXPECT_EQ(state_age(filter_row("close_wait", false, 0, std::nullopt, 70.0)), 70.0);
  EXPECT_EQ(state_age(filter_row("close_wait", false, 0, 5.0, 70.0)), 5.0);
  EXPECT_EQ(state_age(filter_row("close_wait", false, 0)), std::nullopt);
}

TEST(Matches, EmptyFilterMatchesEverything) {
  const AuditFilter f;
  EXPECT_TRUE(matches(filter_row("established", true, 0), f));
  EXPECT_TRUE(matches(filter_row("listen", false, 1e9), f));
  EXPECT_TRUE(matches(filter_row("close_wait", false, 0, 1.0), f));
}

TEST(Matches, State) {
  AuditFilter f;
  f.state = "close_wait";
  EXPECT_TRUE(matches(filter_row("close_wait", true, 0), f));
  EXPECT_FALSE(matches(filter_row("established", true, 0), f));
  EXPECT_FALSE(matches(filter_row("last_ack", true, 0), f));
}

TEST(Matches, MinAgeUsesExactElseLowerBound) {
  AuditFilter f;
  f.min_age = 60;
  EXPECT_TRUE(matches(filter_row("close_wait", true, 0, 60.0), f));  // boundary
  EXPECT_TRUE(matches(filter_row("close_wait", true, 0, 3600.0), f));
  EXPECT_FALSE(matches(filter_row("close_wait", true, 0, 59.999), f));
  EXPECT_TRUE(matches(filter_row("close_wait", true, 0, std::nullopt, 60.0), f));
  EXPECT_FALSE(matches(filter_row("close_wait", true, 0, std::nullopt, 59.0), f));
  // The exact age wins over a (larger) lower bound.
  EXPECT_FALSE(matches(filter_row("close_wait", true, 0, 10.0, 100.0), f));
  EXPECT_TRUE(matches(filter_row("close_wait", true, 0, 100.0, 10.0), f));
  // Unknown ages are excluded, even by min_age=0.
  EXPECT_FALSE(matches(filter_row("close_wait", true, 0), f));
  f.min_age = 0;
  EXPECT_FALSE(matches(filter_row("close_wait", true, 0), f));
  EXPECT_TRUE(matches(filter_row("close_wait", true, 0, 0.0), f));
}

TEST(Matches, NoKeepalive) {
  AuditFilter f;
  f.no_keepalive = true;
  EXPECT_TRUE(matches(filter_row("established", false, 0), f));
  EXPECT_FALSE(matches(filter_row("established", true, 0), f));
}

TEST(Matches, IdleOverIsInclusive) {
  AuditFilter f;
  f.idle_over = 300;
  EXPECT_TRUE(matches(filter_row("established", true, 300.0), f));
  EXPECT_TRUE(matches(filter_row("established", true, 301.0), f));
  EXPECT_FALSE(matches(filter_row("established", true, 299.999), f));
  EXPECT_FALSE(matches(filter_row("established", true, 0), f));
}

TEST(Matches, AllFiltersCombined) {
  AuditFilter f;
  f.state = "established";
  f.min_age = 60;
  f.no_keepalive = true;
  f.idle_over = 300;
  EXPECT_TRUE(matches(filter_row("established", false, 300, 60.0), f));
  EXPECT_TRUE(matches(filter_row("established", false, 900, std::nullopt, 61.0), f));
  // Each condition alone can exclude the row.
  EXPECT_FALSE(matches(filter_row("close_wait", false, 300, 60.0), f));
  EXPECT_FALSE(matches(filter_row("established", false, 300, 59.0), f));
  EXPECT_FALSE(matches(filter_row("established", false, 300), f));
  EXPECT_FALSE(matches(filter_row("established", true, 300, 60.0), f));
  EXPECT_FALSE(matches(filter_row("established", false, 299, 60.0), f));
}

TEST(Matches, StateAndNoKeepalive) {
  AuditFilter f;
  f.state = "close_wait";
  f.no_keepalive = true;
  EXPECT_TRUE(matches(filter_row("close_wait", false, 0), f));
  EXPECT_FALSE(matches(filter_row("close_wait", true, 0), f));
  EXPECT_FALSE(matches(filter_row("established", false, 0), f));
}

// ---------------------------------------------------------------------------
// validate_filter and parse_filter_query

TEST(ValidateFilter, AcceptsSaneFilters) {
  AuditFilter f;
  EXPECT_TRUE(validate_filter(f).ok());
  for (const char* s : {"established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2",
                        "time_wait", "close", "close_wait", "last_ack", "listen", "closing"}) {
    f.state = s;
    EXPECT_TRUE(validate_filter(f).ok()) << s;
  }
  f.min_age = 0;
  f.idle_over = 0;
  f.no_keepalive = true;
  EXPECT_TRUE(validate_filter(f).ok());
  f.min_age = 86400.5;
  f.idle_over = 1.5;
  EXPECT_TRUE(validate_filter(f).ok());
}

TEST(ValidateFilter, RejectsUnknownStates) {
  for (const char* s : {"bogus", "", "unknown", "CLOSE_WAIT", "close-wait", "established "}) {
    AuditFilter f;
    f.state = s;
    const auto v = validate_filter(f);
    EXPECT_FALSE(v.ok()) << "'" << s << "'";
    EXPECT_THAT(v.error(), HasSubstr("'" + std::string(s) + "'"));
  }
}

TEST(ValidateFilter, RejectsBadNumbers) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (double bad : {-1.0, -0.001, inf, -inf, nan}) {
    AuditFilter f;
    f.min_age = bad;
    auto v = validate_filter(f);
    EXPECT_FALSE(v.ok()) << bad;
    EXPECT_THAT(v.error(), HasSubstr("--min-age"));
    f = AuditFilter{};
    f.idle_over = bad;
    v = validate_filter(f);
    EXPECT_FALSE(v.ok()) << bad;
    EXPECT_THAT(v.error(), HasSubstr("--idle-over"));
  }
}

TEST(ParseFilterQuery, Empty) {
  for (const char* q : {"", "&", "&&", "&&&"}) {
    auto f = parse_filter_query(q);
    ASSERT_TRUE(f.ok()) << q << ": " << f.error();
    EXPECT_FALSE(f->state.has_value());
    EXPECT_FALSE(f->min_age.has_value());
    EXPECT_FALSE(f->no_keepalive);
    EXPECT_FALSE(f->idle_over.has_value());
  }
}

TEST(ParseFilterQuery, EveryKey) {
  auto f = parse_filter_query("state=close_wait&min-age=60&no-keepalive&idle-over=1.5");
  ASSERT_TRUE(f.ok()) << f.error();
  EXPECT_EQ(f->state, "close_wait");
  EXPECT_EQ(f->min_age, 60.0);
  EXPECT_TRUE(f->no_keepalive);
  EXPECT_EQ(f->idle_over, 1.5);
}

TEST(ParseFilterQuery, UnderscoresAndEmptyItems) {
  auto f = parse_filter_query("&&min_age=60&&no_keepalive=1&idle_over=300&");
  ASSERT_TRUE(f.ok()) << f.error();
  EXPECT_EQ(f->min_age, 60.0);
  EXPECT_TRUE(f->no_keepalive);
  EXPECT_EQ(f->idle_over, 300.0);
  EXPECT_FALSE(f->state.has_value());
}

TEST(ParseFilterQuery, MinAgeSpellings) {
  for (const char* q : {"min-age=60", "min_age=60"}) {
    auto f = parse_filter_query(q);
    ASSERT_TRUE(f.ok()) << q << ": " << f.error();
    EXPECT_EQ(f->min_age, 60.0) << q;
  }
}

TEST(ParseFilterQuery, NoKeepaliveSpellings) {
  for (const char* q : {"no-keepalive", "no-keepalive=", "no-keepalive=1", "no-keepalive=true",
                        "no_keepalive=true"}) {
    auto f = parse_filter_query(q);
    ASSERT_TRUE(f.ok()) << q << ": " << f.error();
    EXPECT_TRUE(f->no_keepalive) << q;
  }
  for (const char* q : {"no-keepalive=0", "no-keepalive=false", "no-keepalive=yes"}) {
    auto f = parse_filter_query(q);
    EXPECT_FALSE(f.ok()) << q;
    EXPECT_THAT(f.error(), HasSubstr("no-keepalive")) << q;
  }
}

TEST(ParseFilterQuery, UnknownKeyIsNamed) {
  auto f = parse_filter_query("state=listen&colour=blue");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.error(), HasSubstr("colour"));
  f = parse_filter_query("verbose");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.error(), HasSubstr("verbose"));
}

TEST(ParseFilterQuery, BadNumbers) {
  for (const char* key : {"min-age", "idle-over"}) {
    for (const char* val : {"abc", "-1", "1e999", "inf", "nan", "", "5s", "1,5", " 5", "+5"}) {
      const std::string q = std::string(key) + "=" + val;
      auto f = parse_filter_query(q);
      EXPECT_FALSE(f.ok()) << q;
      EXPECT_THAT(f.error(), HasSubstr(key)) << q;
    }
    // A key without a value is a missing number too.
    EXPECT_FALSE(parse_filter_query(key).ok()) << key;
  }
}

TEST(ParseFilterQuery, GoodNumbers) {
  auto f = parse_filter_query("min-age=0&idle-over=0.25");
  ASSERT_TRUE(f.ok()) << f.error();
  EXPECT_EQ(f->min_age, 0.0);
  EXPECT_EQ(f->idle_over, 0.25);
  f = parse_filter_query("idle-over=1e3");
  ASSERT_TRUE(f.ok()) << f.error();
  EXPECT_EQ(f->idle_over, 1000.0);
}

TEST(ParseFilterQuery, BogusState) {
  auto f = parse_filter_query("state=bogus");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.error(), HasSubstr("bogus"));
  EXPECT_FALSE(parse_filter_query("state=").ok());
  EXPECT_FALSE(parse_filter_query("state").ok());
}

TEST(ParseFilterQuery, LastValueWins) {
  auto f = parse_filter_query("state=listen&state=close_wait&min-age=5&min-age=7");
  ASSERT_TRUE(f.ok()) << f.error();
  EXPECT_EQ(f->state, "close_wait");
  EXPECT_EQ(f->min_age, 7.0);
}

// ---------------------------------------------------------------------------
// rows_to_json

const std::vector<std::string> kJsonKeys = {"family",
                                            "state",
                                            "saddr",
                                            "sport",
                                            "daddr",
                                            "dport",
                                            "netns",
                                            "cgroup",
                                            "pid",
                                            "comm",
                                            "fd",
                                            "cookie",
                                            "keepalive",
                                            "keepalive_idle",
                                            "keepalive_intvl",
                                            "keepalive_cnt",
                                            "probes_out",
                                            "idle_seconds",
                                            "state_seconds",
                                            "state_seconds_min",
                                            "probes_sent",
                                            "kills"};

// An IPv4 row with keepalive, exact age and agent counters.
AuditRow full_row() {
  AuditRow r = make_row("established", "10.0.0.1", 5432, "10.0.0.2", 40000,
                        std::numeric_limits<uint64_t>::max(), 4321, 17);
  r.cgroup = "/system.slice/db.service";
  r.comm = "postgres";
  r.keepalive = true;
  r.keepalive_idle = 60;
  r.keepalive_intvl = 10;
  r.keepalive_cnt = 5;
  r.probes_out = 2;
  r.idle_seconds = 1.0 / 3;
  r.state_seconds = 12.5;
  r.probes_sent = 8;
  r.kills = 1;
  return r;
}

// An IPv6 row without keepalive, age or counters.
AuditRow sparse_row() {
  AuditRow r = make_row("close_wait", "2001:db8::1", 443, "2001:db8::2", 50000, 99, 7, 3);
  r.key.family = AF_INET6;
  r.comm = "nginx";
  r.idle_seconds = 2.25;
  return r;
}

TEST(RowsToJson, EmptyList) {
  EXPECT_EQ(rows_to_json({}), "[]\n");
}

TEST(RowsToJson, EveryKeyExactlyOnce) {
  for (const AuditRow& row : {full_row(), sparse_row()}) {
    const std::string out = rows_to_json({row});
    auto v = parse_json(out);
    ASSERT_TRUE(v.has_value()) << out;
    ASSERT_EQ(v->type, Json::Type::kArray);
    ASSERT_EQ(v->items.size(), 1u);
    const Json& o = v->items[0];
    ASSERT_EQ(o.type, Json::Type::kObject);
    for (const std::string& k : kJsonKeys) EXPECT_EQ(count_key(o, k), 1) << k << " in " << out;
    // No key at all (also any added later) appears twice.
    for (const auto& [k, unused] : o.members) EXPECT_EQ(count_key(o, k), 1) << k << " in " << out;
  }
}

TEST(RowsToJson, FullRowValues) {
  const std::string out = rows_to_json({full_row()});
  auto v = parse_json(out);
  ASSERT_TRUE(v.has_value()) << out;
  ASSERT_EQ(v->items.size(), 1u);
  const Json& o = v->items[0];
  EXPECT_EQ(member(o, "family").text, "4");
  EXPECT_EQ(member(o, "state").text, "established");
  EXPECT_EQ(member(o, "saddr").text, "10.0.0.1");
  EXPECT_EQ(member(o, "sport").text, "5432");
  EXPECT_EQ(member(o, "daddr").text, "10.0.0.2");
  EXPECT_EQ(member(o, "dport").text, "40000");
  EXPECT_EQ(member(o, "netns").text, "4026531840");
  EXPECT_EQ(member(o, "cgroup").type, Json::Type::kString);
  EXPECT_EQ(member(o, "cgroup").text, "/system.slice/db.service");
  EXPECT_EQ(member(o, "pid").text, "4321");
  EXPECT_EQ(member(o, "comm").text, "postgres");
  EXPECT_EQ(member(o, "fd").text, "17");
  EXPECT_EQ(member(o, "cookie").text, "18446744073709551615");  // all 64 bits, as written
  EXPECT_EQ(member(o, "keepalive").type, Json::Type::kBool);
  EXPECT_TRUE(member(o, "keepalive").boolean);
  EXPECT_EQ(member(o, "keepalive_idle").text, "60");
  EXPECT_EQ(member(o, "keepalive_intvl").text, "10");
  EXPECT_EQ(member(o, "keepalive_cnt").text, "5");
  EXPECT_EQ(member(o, "probes_out").text, "2");
  EXPECT_EQ(member(o, "idle_seconds").text, "0.333");
  EXPECT_EQ(member(o, "state_seconds").type, Json::Type::kNumber);
  EXPECT_EQ(member(o, "state_seconds").number, 12.5);
  EXPECT_EQ(member(o, "state_seconds_min").type, Json::Type::kNull);
  EXPECT_EQ(member(o, "probes_sent").text, "8");
  EXPECT_EQ(member(o, "kills").text, "1");
  EXPECT_THAT(out, HasSubstr("\"idle_seconds\":0.333,"));
  EXPECT_THAT(out, HasSubstr("\"state_seconds\":12.500,"));
}

TEST(RowsToJson, SparseRowValues) {
  AuditRow r = sparse_row();
  r.state_seconds_min = 30.0;
  const std::string out = rows_to_json({r});
  auto v = parse_json(out);
  ASSERT_TRUE(v.has_value()) << out;
  ASSERT_EQ(v->items.size(), 1u);
  const Json& o = v->items[0];
  EXPECT_EQ(member(o, "family").text, "6");
  EXPECT_EQ(member(o, "saddr").text, "2001:db8::1");
  EXPECT_EQ(member(o, "cgroup").type, Json::Type::kNull);
  EXPECT_EQ(member(o, "keepalive").type, Json::Type::kBool);
  EXPECT_FALSE(member(o, "keepalive").boolean);
  EXPECT_EQ(member(o, "idle_seconds").text, "2.250");
  EXPECT_EQ(member(o, "state_seconds").type, Json::Type::kNull);
  EXPECT_EQ(member(o, "state_seconds_min").text, "30.000");
  EXPECT_EQ(member(o, "probes_sent").type, Json::Type::kNull);
  EXPECT_EQ(member(o, "kills").type, Json::Type::kNull);
}

TEST(RowsToJson, CommIsEscaped) {
  AuditRow r = full_row();
  r.comm = "a\"b\\c\td\x01";
  const std::string out = rows_to_json({r});
  EXPECT_THAT(out, HasSubstr("\"comm\":\"a\\\"b\\\\c\\td\\u0001\""));
  auto v = parse_json(out);
  ASSERT_TRUE(v.has_value()) << out;
  EXPECT_EQ(member(v->items.at(0), "comm").text, r.comm);
}

TEST(RowsToJson, CgroupIsEscaped) {
  AuditRow r = full_row();
  r.cgroup = "/we\"ird\\path";
  auto v = parse_json(rows_to_json({r}));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(member(v->items.at(0), "cgroup").text, r.cgroup);
}

TEST(RowsToJson, SeveralRowsAreValidJson) {
  AuditRow quoted = sparse_row();
  quoted.comm = "q\"\\";
  const std::vector<AuditRow> rows = {full_row(), sparse_row(), quoted};
  const std::string out = rows_to_json(rows);
  EXPECT_EQ(out.back(), '\n');
  auto v = parse_json(out);
  ASSERT_TRUE(v.has_value()) << out;
  ASSERT_EQ(v->type, Json::Type::kArray);
  ASSERT_EQ(v->items.size(), 3u);
  EXPECT_EQ(member(v->items[0], "pid").text, "4321");
  EXPECT_EQ(member(v->items[1], "pid").text, "7");
  EXPECT_EQ(member(v->items[2], "comm").text, "q\"\\");
  // Broken variants of the same output are told apart.
  EXPECT_FALSE(parse_json(out.substr(0, out.size() - 3)).has_value());
  EXPECT_FALSE(parse_json(out + ",").has_value());
  std::string no_comma = out;
  no_comma.erase(no_comma.find("},") + 1, 1);
  EXPECT_FALSE(parse_json(no_comma).has_value());
}

TEST(RowsToJson, DecodedRowIsValidJson) {
  tka_sock_rec rec = make_rec();
  std::memcpy(rec.comm, "ab\"cd\\ef\nghijkl", 16);
  const std::string out = rows_to_json({decode_rec(rec, 250, no_cgroup)});
  auto v = parse_json(out);
  ASSERT_TRUE(v.has_value()) << out;
  EXPECT_EQ(member(v->items.at(0), "comm").text, "ab\"cd\\ef\nghijkl");
}

// The kernel truncates a task name to 15 bytes without regard for UTF-8
// (prctl(PR_SET_NAME, "ééééééééé") leaves seven "é" and a lone 0xc3 in
// /proc/<pid>/comm), so comm can be any bytes. JSON text must be UTF-8
// (RFC 8259 section 8.1), or strict consumers such as Python's json.loads
// on bytes fail on the whole document.
TEST(RowsToJson, NonUtf8CommStillGivesValidJson) {
  tka_sock_rec rec = make_rec();
  std::memset(rec.comm, 0, sizeof(rec.comm));
  std::memcpy(rec.comm, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3", 15);
  const std::string out = rows_to_json({decode_rec(rec, 250, no_cgroup)});
  EXPECT_TRUE(parse_json(out).has_value()) << out;
}

TEST(RowText, InPiecesTheSameTextAsAtOnce) {
  AuditRow quoted = sparse_row();
  quoted.comm = "q\"\\";
  const std::vector<AuditRow> rows = {full_row(), sparse_row(), quoted};
  for (bool json : {true, false}) {
    std::string all, piece;
    RowText text(json, piece);
    for (const auto& r : rows) {
      text.add(r);
      all += piece;
      piece.clear();
    }
    text.finish();
    all += piece;
    EXPECT_EQ(all, json ? rows_to_json(rows) : rows_to_table(rows));
  }
}

// ---------------------------------------------------------------------------
// rows_to_table

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

TEST(RowsToTable, HeaderOnlyForNoRows) {
  const std::string out = rows_to_table({});
  const auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(words_of(lines[0]),
            (std::vector<std::string>{"STATE", "LOCAL", "PEER", "PROCESS", "NETNS", "KEEPALIVE",
                                      "IDLE", "AGE", "CGROUP"}));
}

TEST(RowsToTable, OneLinePerRow) {
  AuditRow v4 = full_row();
  v4.keepalive = false;
  v4.idle_seconds = 1.5;
  v4.state_seconds = 12.5;

  AuditRow v6 = sparse_row();
  v6.keepalive = true;
  v6.keepalive_idle = 60;
  v6.keepalive_intvl = 10;
  v6.keepalive_cnt = 5;
  v6.idle_seconds = 0;
  v6.state_seconds_min = 30.5;

  AuditRow unknown_age = full_row();
  unknown_age.state = "listen";
  unknown_age.state_seconds.reset();
  unknown_age.idle_seconds = 3600;

  const std::string out = rows_to_table({v4, v6, unknown_age});
  EXPECT_EQ(out.back(), '\n');
  const auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 4u) << out;
  EXPECT_EQ(words_of(lines[0]).front(), "STATE");
  EXPECT_EQ(
      words_of(lines[1]),
      (std::vector<std::string>{"established", "10.0.0.1:5432", "10.0.0.2:40000", "4321/postgres",
                                "4026531840", "off", "1.5s", "12.5s", "/system.slice/db.service"}));
  EXPECT_EQ(words_of(lines[2]),
            (std::vector<std::string>{"close_wait", "[2001:db8::1]:443", "[2001:db8::2]:50000",
                                      "7/nginx", "4026531840", "60/10/5", "0.0s", ">30.5s", "?"}));
  EXPECT_EQ(words_of(lines[3]),
            (std::vector<std::string>{"listen", "10.0.0.1:5432", "10.0.0.2:40000", "4321/postgres",
                                      "4026531840", "60/10/5", "3600.0s", "?",
                                      "/system.slice/db.service"}));
}

TEST(RowsToTable, ExactAgeWinsOverLowerBound) {
  AuditRow r = full_row();
  r.state_seconds = 2.0;
  r.state_seconds_min = 99.0;
  const auto lines = lines_of(rows_to_table({r}));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(words_of(lines[1]).at(7), "2.0s");
}

// A line longer than the 512-byte buffer in rows_to_table is cut by
// snprintf: the cgroup's tail and the newline are lost and the next row is
// glued onto it. Cgroup paths may be up to PATH_MAX; nested container
// runtimes make long ones.
TEST(RowsToTable, LongCgroupPathKeepsOneLinePerRow) {
  const std::string cgroup = "/system.slice/docker-" + std::string(64, 'a') + ".scope/" +
                             std::string(250, 'b') + "/cri-containerd-" + std::string(64, 'c') +
                             ".scope";
  AuditRow first = full_row();
  first.cgroup = cgroup;
  AuditRow second = sparse_row();
  second.cgroup = cgroup;
  const auto lines = lines_of(rows_to_table({first, second}));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(words_of(lines[1]).back(), cgroup);
  EXPECT_EQ(words_of(lines[2]).back(), cgroup);
}

}  // namespace
}  // namespace tcpka
