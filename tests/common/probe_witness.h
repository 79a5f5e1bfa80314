// The probe witness of probe_witness.bpf.c, loaded and attached for the
// object's lifetime: an oracle for the integration tests and benchmarks.
#pragma once

#include <bpf/btf.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include "probe_witness.skel.h"

namespace tcpka::test {

class ProbeWitness {
 public:
  // Counts for the sockets of the network namespace with inode netns_inum
  // (0: every namespace). Throws when it cannot load or attach.
  explicit ProbeWitness(uint32_t netns_inum) {
    skel_ = probe_witness_bpf__open();
    if (!skel_) throw std::runtime_error("probe witness: open failed");
    skel_->rodata->netns_inum = netns_inum;
    skel_->rodata->mib_keepalive = mib_index("LINUX_MIB_TCPKEEPALIVE");
    skel_->rodata->mib_abort_on_timeout = mib_index("LINUX_MIB_TCPABORTONTIMEOUT");
    // A classic tracepoint needs tracefs (libbpf reads the event's id there),
    // which a host need not have mounted: count without it then.
    has_tracepoint_ =
        access("/sys/kernel/tracing/events/timer/timer_expire_entry", F_OK) == 0 ||
        access("/sys/kernel/debug/tracing/events/timer/timer_expire_entry", F_OK) == 0;
    if (!has_tracepoint_) bpf_program__set_autoload(skel_->progs.witness_tracepoint, false);
    if (probe_witness_bpf__load(skel_) != 0 || probe_witness_bpf__attach(skel_) != 0) {
      probe_witness_bpf__destroy(skel_);
      throw std::runtime_error("probe witness: load or attach failed");
    }
  }
  ~ProbeWitness() { probe_witness_bpf__destroy(skel_); }
  ProbeWitness(const ProbeWitness&) = delete;
  ProbeWitness& operator=(const ProbeWitness&) = delete;

  // Probes sent by the keepalive-timer callbacks BPF was shown, by the
  // kernel's own count (TcpExtTCPKeepAlive): equal to that counter's rise
  // unless some callbacks reached no BPF program.
  uint64_t probes() const { return load(skel_->bss->probes); }
  // Connections killed by timeout in those callbacks, by the kernel's own
  // count (TcpExtTCPAbortOnTimeout): keepalive kills only, as the
  // retransmission timer's run in another callback.
  uint64_t timeout_kills() const { return load(skel_->bss->timeout_kills); }
  // tcp_keepalive_timer expiries as tp_btf, raw_tp and a classic tracepoint
  // saw them (the last only with tracefs mounted).
  uint64_t expiries_tp_btf() const { return load(skel_->bss->expiries_tp_btf); }
  uint64_t expiries_raw_tp() const { return load(skel_->bss->expiries_raw_tp); }
  std::optional<uint64_t> expiries_tracepoint() const {
    if (!has_tracepoint_) return std::nullopt;
    return load(skel_->bss->expiries_tracepoint);
  }

 private:
  static uint64_t load(const uint64_t& v) { return __atomic_load_n(&v, __ATOMIC_RELAXED); }
  // The value of an enumerator of the running kernel's (anonymous) MIB
  // enum, from its BTF: the indices move between kernel versions.
  static uint32_t mib_index(const char* name) {
    btf* vmlinux = btf__load_vmlinux_btf();
    if (!vmlinux) throw std::runtime_error("probe witness: no kernel BTF");
    for (uint32_t id = 1; id < btf__type_cnt(vmlinux); ++id) {
      const btf_type* t = btf__type_by_id(vmlinux, id);
      if (!btf_is_enum(t)) continue;
      const struct btf_enum* e = btf_enum(t);
      for (uint16_t i = 0; i < btf_vlen(t); ++i) {
        if (std::strcmp(btf__name_by_offset(vmlinux, e[i].name_off), name) == 0) {
          const uint32_t v = static_cast<uint32_t>(e[i].val);
          btf__free(vmlinux);
          return v;
        }
      }
    }
    btf__free(vmlinux);
    throw std::runtime_error(std::string("probe witness: no ") + name + " in the kernel's BTF");
  }
  probe_witness_bpf* skel_ = nullptr;
  bool has_tracepoint_ = false;
};

}  // namespace tcpka::test
