// A hash table of sockets for the event path: open addressing over a dense
// vector of entries. The agent looks one socket up per keepalive probe, a
// second after its last one, so every lookup starts cold; a node-based
// std::unordered_map costs a miss on the bucket, one on the node before the
// bucket's first (libstdc++ buckets point there) and one on the node itself,
// and was a third of the agent's CPU at 10,000 probing sockets. Here a lookup
// reads one 8-byte slot (neighbours share its cache line) and the entry.
// Not thread-safe; erasing moves the last entry into the hole, so pointers
// and indexes are valid only until the next emplace or erase.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "event.h"

namespace tcpka {

template <typename V>
class SocketTable {
 public:
  struct Entry {
    SocketKey key;
    V value;
    size_t hash;
  };

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

  // The entry for key, or nullptr.
  Entry* find(const SocketKey& key) {
    if (entries_.empty()) return nullptr;
    const size_t h = hash(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot s = slots_[i];
      if (s.index == 0) return nullptr;
      if (s.tag == tag(h)) {
        Entry& e = entries_[s.index - 1];
        if (e.key == key) return &e;
      }
    }
  }

  const Entry* find(const SocketKey& key) const {
    return const_cast<SocketTable*>(this)->find(key);
  }

  // Adds key with a value-initialised V; key must not be in the table.
  Entry* emplace(const SocketKey& key) {
    if ((entries_.size() + 1) * 2 > slots_.size()) grow();
    const size_t h = hash(key);
    entries_.push_back(Entry{key, V{}, h});
    place(h, static_cast<uint32_t>(entries_.size()));
    return &entries_.back();
  }

  bool erase(const SocketKey& key) {
    Entry* e = find(key);
    if (!e) return false;
    erase(e);
    return true;
  }

  // e must point into this table.
  void erase(Entry* e) {
    const size_t index = static_cast<size_t>(e - entries_.data());
    remove_slot(slot_of(e->hash, index + 1));
    const size_t last = entries_.size() - 1;
    if (index != last) {
      // The last entry fills the hole; its slot follows it.
      const size_t moved = slot_of(entries_[last].hash, last + 1);
      entries_[index] = std::move(entries_[last]);
      slots_[moved].index = static_cast<uint32_t>(index + 1);
    }
    entries_.pop_back();
  }

  // Erases every entry for which pred(entry) is true; returns how many.
  template <typename Pred>
  size_t erase_if(Pred pred) {
    size_t removed = 0;
    for (size_t i = 0; i < entries_.size();) {
      if (pred(entries_[i])) {
        erase(&entries_[i]);  // the last entry moves to i: look at i again
        ++removed;
      } else {
        ++i;
      }
    }
    return removed;
  }

  typename std::vector<Entry>::iterator begin() { return entries_.begin(); }
  typename std::vector<Entry>::iterator end() { return entries_.end(); }

 private:
  struct Slot {
    uint32_t index = 0;  // 1-based into entries_; 0: empty
    uint32_t tag = 0;    // high bits of the hash: most mismatches never touch the entry
  };
  // SocketKeyHash spreads poorly in its low bits (ports in sequence map to
  // neighbouring values), which linear probing turns into long runs: finish
  // it with MurmurHash3's 64-bit mixer.
  static size_t hash(const SocketKey& key) {
    uint64_t h = SocketKeyHash{}(key);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
  }
  static uint32_t tag(size_t h) { return static_cast<uint32_t>(h >> 32) | 1u; }
  size_t home(size_t h) const { return h & mask_; }

  void place(size_t h, uint32_t index) {
    size_t i = home(h);
    while (slots_[i].index != 0) i = (i + 1) & mask_;
    slots_[i] = Slot{index, tag(h)};
  }

  size_t slot_of(size_t h, size_t index) const {
    size_t i = home(h);
    while (slots_[i].index != index) i = (i + 1) & mask_;
    return i;
  }

  // Backward-shift deletion: no tombstones, probe runs stay short.
  void remove_slot(size_t i) {
    size_t j = i;
    for (;;) {
      j = (j + 1) & mask_;
      if (slots_[j].index == 0) break;
      const size_t k = home(entries_[slots_[j].index - 1].hash);
      // Move j back to i unless its home lies cyclically in (i, j].
      const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
  }

  void grow() {
    const size_t n = slots_.empty() ? 16 : slots_.size() * 2;
    slots_.assign(n, Slot{});
    mask_ = n - 1;
    for (size_t i = 0; i < entries_.size(); ++i)
      place(entries_[i].hash, static_cast<uint32_t>(i + 1));
  }

  std::vector<Entry> entries_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace tcpka
