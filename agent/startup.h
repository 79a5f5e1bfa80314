// The start-up sequence shared by run and watch: check the capabilities,
// probe the kernel once, plan an attach path per signal, load, attach. Also
// the signal handling they share.
#pragma once

#include <signal.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bpf_loader.h"
#include "config.h"
#include "kernel_features.h"
#include "result.h"

namespace tcpka {

// Exit statuses of run, check and watch (README, "Exit status").
inline constexpr int kExitCannotRun = 1;  // the kernel or the capabilities cannot run the agent
inline constexpr int kExitBadInput = 2;   // a bad argument or config file; nothing was loaded
inline constexpr int kExitStrict = 3;     // --strict and a signal would not be observed

// The capabilities a start needs, from what the kernel checks (see
// kernel/bpf/syscall.c, bpf_prog_load(), and kallsyms_show_value()).
struct CapabilityNeeds {
  bool policies = false;       // sock_ops programs: CAP_NET_ADMIN
  bool kallsyms_hidden = false;  // tcp_keepalive_timer's address reads as 0
};

// The effective capabilities of this process, by number (CAP_BPF...).
bool has_capability(int cap);

// Every missing capability named with what it is needed for, or nothing.
// `has` is has_capability() outside unit tests.
Result<void> check_capabilities(const CapabilityNeeds& needs,
                                const std::function<bool(int)>& has = has_capability);

struct Attached {
  Plan plan;
  std::unique_ptr<KeepaliveBpf> bpf;
};

// BTF, capabilities and plan from the probed features; nothing loaded. On
// failure *status says how to exit (kExitCannotRun or, with cfg.strict,
// kExitStrict).
Result<Plan> plan_start(const RunConfig& cfg, const Features& features, int* status,
                        const std::function<bool(int)>& has = has_capability);
// Loads and attaches the programs of plan. probe_attribution, probe_time:
// see LoadOptions (`tcpka run` labels and stamps probes itself).
Result<Attached> attach_plan(const RunConfig& cfg, Plan plan, bool probe_attribution = true,
                             bool probe_time = true);
// Both, for the commands that need the keepalive part (watch): it failing
// is an error.
Result<Attached> load_and_attach(const RunConfig& cfg, const Features& features, int* status);

// One log line per signal the plan does not observe; empty when none.
std::vector<std::string> degraded_lines(const Plan& plan);

// A part of the agent as it runs in this process: on, or off and why (what
// the kernel lacks, or the load's error with the verifier's words).
struct PartState {
  PartState() = default;
  PartState(Part p, bool is_on, std::string off_why)
      : part(p), on(is_on), why(std::move(off_why)) {}
  Part part = Part::kKeepalive;
  bool on = false;
  std::string why;  // when off
  // When on but not as planned: the build that loaded, and why
  // (load_either_build).
  std::string note;
};

// The state of a part from its gap (part_gap()) and, when there is none,
// the result of loading it.
// Which build loaded, when not the planned one (load_either_build).
template <typename T>
std::string build_note_of(const std::unique_ptr<T>& loaded) {
  return loaded ? loaded->build_note() : "";
}
inline std::string build_note_of(const Attached& a) {
  return build_note_of(a.bpf);
}

template <typename T>
PartState part_state(Part p, const std::string& gap, const Result<T>& loaded) {
  if (!gap.empty()) return {p, false, "the kernel lacks it: " + gap};
  if (!loaded) return {p, false, loaded.error()};
  PartState on{p, true, ""};
  on.note = build_note_of(loaded.value());
  return on;
}

// The keepalive part did not load: every signal of the plan is unobserved,
// for that reason.
void keepalive_off(Plan* plan, const std::string& why);

// The policies part: off when the kernel lacks what it needs or refuses
// the sockops program (a load, no attach).
PartState policies_state(const Features& f);

// One log line per part that is off; empty when none.
std::vector<std::string> part_lines(const std::vector<PartState>& parts);
// Whether anything is off: a part, or a signal of the plan.
bool degraded(const Plan& plan, const std::vector<PartState>& parts);
// --strict: an error naming every part that is off, if any.
Result<void> require_every_part(const std::vector<PartState>& parts);
// What /healthz says while every part that started still runs: "ok", or
// "degraded: " and what is off (README, "Health").
std::string health_text(const Plan& plan, const std::vector<PartState>& parts);

// Blocks SIGINT, SIGTERM and SIGHUP in this thread and every thread created
// after it, so they are only ever taken by wait().
class SignalWaiter {
 public:
  SignalWaiter();
  // The signal received, or 0 when the timeout passed first.
  int wait(std::chrono::milliseconds timeout);

 private:
  sigset_t set_{};
};

}  // namespace tcpka
