// The self-check: the kernel's own TCP counters (TcpExt in
// /proc/PID/net/netstat), read for every network namespace the agent can
// see, against what the agent's programs reported. A probe the kernel
// counted and the agent never saw means the agent is blind (a tracepoint
// that moved, a filter that no longer matches), which its own metrics
// cannot show (README, "Self-check").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "result.h"

namespace tcpka {

// The two TcpExt counters the self-check reads.
struct NetstatCounts {
  uint64_t keepalive = 0;         // TcpExtTCPKeepAlive: keepalive probes sent
  uint64_t abort_on_timeout = 0;  // TcpExtTCPAbortOnTimeout: every timeout kill
};

// The TcpExt lines of a /proc/net/netstat (a header line of names, then one
// of values); an error when either counter is missing.
Result<NetstatCounts> parse_netstat(std::string_view text);

// Each network namespace's counters, keyed by the inode of its netstat
// file in /proc (one per namespace; see read_netns_counts).
using NetnsCounts = std::map<uint64_t, NetstatCounts>;

// Every network namespace that a task under proc (normally "/proc") is in,
// read once each through that task's net/netstat. Tasks, not processes: a
// thread may have entered a namespace of its own (setns). Tasks that exit
// while it reads are skipped. Without the host's pid namespace this is the
// namespaces of our own pid namespace's tasks. Needs no rights over the
// tasks: the netstat files are world-readable.
NetnsCounts read_netns_counts(const std::string& proc = "/proc");

// The self-check's figures since its first window, as /metrics shows them.
struct SelfCheckFigures {
  uint64_t kernel_probes = 0, agent_probes = 0;
  uint64_t kernel_timeouts = 0, agent_timeouts = 0;
  uint64_t unseen_total = 0, last_unseen = 0;
  size_t namespaces = 0;
};

// Compares, window by window, the probes the kernel counted with those the
// agent saw. Windows end when feed() is called; the agent's total must be
// read after the kernel's counts, once its reader has drained what the
// kernel had submitted by then, except for the first feed (the baseline),
// which takes the agent's total of the moment the kernel was read.
class SelfCheck {
 public:
  struct Window {
    uint64_t kernel_probes = 0;  // TcpExtTCPKeepAlive increase, namespaces seen at both ends
    uint64_t agent_probes = 0;   // probe events the agent read
    uint64_t unseen = 0;         // kernel probes beyond what the agent saw
  };
  // The first call only sets the baseline (returns an empty window).
  Window feed(const NetnsCounts& kernel, uint64_t agent_probes, uint64_t agent_timeouts);

  // Since the first feed.
  uint64_t kernel_probes() const { return kernel_probes_; }
  uint64_t kernel_timeouts() const { return kernel_timeouts_; }
  uint64_t agent_probes() const { return agent_probes_ - agent_base_; }
  uint64_t agent_timeouts() const { return agent_timeouts_ - timeouts_base_; }
  uint64_t unseen_total() const { return unseen_total_; }
  const Window& last() const { return last_; }
  size_t namespaces() const { return prev_.size(); }
  bool started() const { return started_; }
  SelfCheckFigures figures() const {
    return {kernel_probes(), agent_probes(), kernel_timeouts(), agent_timeouts(),
            unseen_total(),  last_.unseen,   namespaces()};
  }

 private:
  bool started_ = false;
  NetnsCounts prev_;
  uint64_t agent_base_ = 0, agent_probes_ = 0;
  uint64_t timeouts_base_ = 0, agent_timeouts_ = 0;
  uint64_t kernel_probes_ = 0, kernel_timeouts_ = 0, unseen_total_ = 0;
  // Agent probes of the last window beyond the kernel's: probes sent just
  // after the kernel was read but read by the agent before the window
  // closed, which the kernel counts in the next window.
  uint64_t carry_ = 0;
  Window last_;
};

}  // namespace tcpka
