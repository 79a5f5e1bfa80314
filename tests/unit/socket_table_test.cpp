#include "socket_table.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace tcpka {
namespace {

SocketKey key(uint16_t sport, uint16_t dport, std::string daddr = "10.0.0.2") {
  return SocketKey{4026531840u, AF_INET, "10.0.0.1", std::move(daddr), sport, dport};
}

TEST(SocketTableTest, FindEmplaceErase) {
  SocketTable<int> t;
  EXPECT_EQ(t.find(key(1, 2)), nullptr);
  t.emplace(key(1, 2))->value = 7;
  t.emplace(key(2, 1))->value = 8;
  ASSERT_NE(t.find(key(1, 2)), nullptr);
  EXPECT_EQ(t.find(key(1, 2))->value, 7);
  EXPECT_EQ(t.find(key(2, 1))->value, 8);
  EXPECT_EQ(t.find(key(1, 2, "10.0.0.3")), nullptr);
  EXPECT_TRUE(t.erase(key(1, 2)));
  EXPECT_FALSE(t.erase(key(1, 2)));
  EXPECT_EQ(t.find(key(1, 2)), nullptr);
  EXPECT_EQ(t.find(key(2, 1))->value, 8);  // moved into the hole, still found
  EXPECT_EQ(t.size(), 1u);
}

TEST(SocketTableTest, EraseIfVisitsEveryEntryOnce) {
  SocketTable<int> t;
  for (int i = 0; i < 1000; ++i) t.emplace(key(static_cast<uint16_t>(i), 80))->value = i;
  int visits = 0;
  EXPECT_EQ(t.erase_if([&](const auto& e) {
    ++visits;
    return e.value % 3 == 0;
  }),
            334u);
  EXPECT_EQ(visits, 1000);
  EXPECT_EQ(t.size(), 666u);
  for (int i = 0; i < 1000; ++i) {
    auto* e = t.find(key(static_cast<uint16_t>(i), 80));
    if (i % 3 == 0) {
      EXPECT_EQ(e, nullptr) << i;
    } else {
      ASSERT_NE(e, nullptr) << i;
      EXPECT_EQ(e->value, i);
    }
  }
}

// Random operations against std::unordered_map as the oracle: the
// backward-shift deletion and the moves of the last entry are where an open
// addressing table goes wrong, and only long mixed sequences reach them.
TEST(SocketTableTest, AgreesWithUnorderedMapUnderRandomOperations) {
  SocketTable<uint64_t> t;
  std::unordered_map<SocketKey, uint64_t, SocketKeyHash> oracle;
  std::mt19937_64 rng(42);
  for (int step = 0; step < 200000; ++step) {
    // Few distinct keys, in sequence: collisions and long probe runs.
    const SocketKey k = key(static_cast<uint16_t>(rng() % 3000), 80);
    const auto op = rng() % 10;
    if (op < 5) {
      auto* e = t.find(k);
      const auto it = oracle.find(k);
      ASSERT_EQ(e != nullptr, it != oracle.end()) << step;
      if (e) {
        ASSERT_EQ(e->value, it->second) << step;
        e->value = it->second = rng();
      }
    } else if (op < 8) {
      if (!oracle.count(k)) {
        const uint64_t v = rng();
        t.emplace(k)->value = v;
        oracle[k] = v;
      }
    } else {
      ASSERT_EQ(t.erase(k), oracle.erase(k) == 1) << step;
    }
    ASSERT_EQ(t.size(), oracle.size()) << step;
  }
  size_t seen = 0;
  for (auto& e : t) {
    ASSERT_EQ(oracle.at(e.key), e.value);
    ++seen;
  }
  EXPECT_EQ(seen, oracle.size());
}

}  // namespace
}  // namespace tcpka
