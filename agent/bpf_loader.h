// Owns the keepalive BPF skeleton: open -> set rodata and map sizes -> load
// -> attach, one cleanup path (the destructor), errors as values that carry
// libbpf's message and the verifier log tail.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernel_features.h"
#include "result.h"
#include "tcpka.h"

struct keepalive_bpf;
struct ring_buffer;
struct bpf_link;

namespace tcpka {

struct LoadOptions {
  Plan plan;
  uint32_t ringbuf_bytes = 1u << 20;
  uint32_t max_sockets = 65536;
  // Probe events with the socket's cgroup and direction (keepalive.bpf.c,
  // tka_hot.probe_attribution); without, cgroup_id 0 and direction unknown, and
  // the reader attributes them (Aggregator::add). See also
  // KeepaliveBpf::set_probe_attribution.
  bool probe_attribution = true;
  // Probe events with the time (ts_ns); without, 0, and the reader stamps
  // them on reading (keepalive.bpf.c, tka_hot.probe_time).
  bool probe_time = true;
};

struct ProgramState {
  std::string program;  // BPF program name, e.g. "tka_timer_entry"
  std::string attach;   // its section, e.g. "tp_btf/timer_expire_entry"
  bool attached = false;
};

using EventSink = std::function<void(const void* data, size_t size)>;

class KeepaliveBpf {
 public:
  // Loads the programs of opts.plan into the kernel (nothing attached yet).
  // In the probe-read build where the kernel refuses the plain-load one
  // (load_either_build; build_note() says so).
  static Result<std::unique_ptr<KeepaliveBpf>> load(const LoadOptions& opts);
  ~KeepaliveBpf();
  KeepaliveBpf(const KeepaliveBpf&) = delete;
  KeepaliveBpf& operator=(const KeepaliveBpf&) = delete;

  Result<void> attach();
  // Events go to sink from the thread that calls poll().
  Result<void> open_events(EventSink sink);
  // Waits up to timeout_ms; returns events consumed or -errno.
  int poll(int timeout_ms);

  // Changes LoadOptions::probe_attribution while the programs run: the
  // probes of expiries after this call follow it.
  void set_probe_attribution(bool on);

  std::vector<ProgramState> programs() const;
  std::array<uint64_t, TKA_DROP__COUNT> drops() const;
  // "" when the planned build loaded, else which one did and why.
  const std::string& build_note() const { return build_note_; }

 private:
  KeepaliveBpf() = default;
  static Result<std::unique_ptr<KeepaliveBpf>> load_build(const LoadOptions& opts, bool plain);

  keepalive_bpf* skel_ = nullptr;
  ring_buffer* rb_ = nullptr;
  EventSink sink_;
  LoadOptions opts_;
  std::vector<std::pair<std::string, bpf_link*>> links_;
  std::string build_note_;
};

}  // namespace tcpka
