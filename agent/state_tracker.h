// The state tracker (state.bpf.c): when sockets enter CLOSE_WAIT, and how
// long they stay, for the audit's exact ages and the CLOSE_WAIT duration
// histogram. A part of its own: it needs Linux 5.12, and the agent runs
// without it elsewhere.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bpf_loader.h"
#include "result.h"
#include "tcpka.h"

struct state_bpf;
struct ring_buffer;
struct bpf_link;

namespace tcpka {

struct StateTrackerOptions {
  bool plain_loads = false;  // the TKA_RO=1 build (Plan::plain_loads)
  // false: load but do not attach (`tcpka check`).
  bool attach = true;
  // Directory under bpffs where the CLOSE_WAIT records are pinned, shared
  // with `tcpka audit` and reused by the next agent; "" = none.
  std::string pin_dir;
  // Size of the CLOSE_WAIT duration ring (tka_cw_events); 0: the built-in 256 KiB.
  uint32_t cw_ringbuf_bytes = 0;
  // Slots for CLOSE_WAIT entry times (tka_cw_slots, a power of two); 0: 1024.
  uint32_t cw_slots = 0;
};

class StateTracker {
 public:
  // In the probe-read build where the kernel refuses the plain-load one
  // (load_either_build; build_note() says so).
  static Result<std::unique_ptr<StateTracker>> load(const StateTrackerOptions& opts);
  // "" when the planned build loaded, else which one did and why.
  const std::string& build_note() const { return build_note_; }
  ~StateTracker();
  StateTracker(const StateTracker&) = delete;
  StateTracker& operator=(const StateTracker&) = delete;

  // CLOSE_WAIT durations (seconds, cgroup id) as sockets leave the state.
  Result<void> open_events(std::function<void(double, uint64_t)> sink);
  // Waits up to timeout_ms (events wake the reader only when a quarter of
  // the ring is waiting), then reads what is there; returns events or -errno.
  int poll(int timeout_ms);
  // Reads what is in the ring without waiting.
  int consume();
  std::vector<ProgramState> programs() const;
  std::array<uint64_t, TKA_STATE_DROP__COUNT> drops() const;
  // The CLOSE_WAIT records, for the scan's object to share.
  int slots_fd() const;
  int more_fd() const;
  // true: leave the records pinned on exit, for the next agent.
  void keep_pin(bool keep) { keep_pin_ = keep; }

 private:
  StateTracker() = default;
  static Result<std::unique_ptr<StateTracker>> load_build(const StateTrackerOptions& opts,
                                                          bool plain);
  state_bpf* skel_ = nullptr;
  std::string build_note_;
  bpf_link* link_ = nullptr;
  ring_buffer* rb_ = nullptr;
  std::function<void(double, uint64_t)> sink_;
  std::vector<std::string> pinned_;  // paths we pinned (or reused) and remove again
  std::atomic<bool> keep_pin_{false};
};

}  // namespace tcpka
