// What the running kernel offers, probed once at start-up, and the attach
// path chosen for each signal from it. plan_for() is pure so every
// combination of kernel features is unit-tested.
#pragma once

#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "result.h"

namespace tcpka {

// Where the kernel exposes its BTF (CONFIG_DEBUG_INFO_BTF).
inline constexpr const char* kVmlinuxBtf = "/sys/kernel/btf/vmlinux";

struct Features {
  bool btf = false;  // /sys/kernel/btf/vmlinux parsed
  std::string btf_error;
  bool ksym_keepalive_timer = false;  // tcp_keepalive_timer in /proc/kallsyms
  bool ksym_hidden = false;           // ...listed, but its address reads as 0 (no CAP_SYSLOG)
  bool tp_timer_expire = false;       // timer:timer_expire_entry + _exit
  bool tp_send_reset = false;         // tcp:tcp_send_reset
  bool rst_reason = false;            // ...carrying SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT (6.12+)
  bool tp_receive_reset = false;      // tcp:tcp_receive_reset
  bool tp_destroy_sock = false;       // tcp:tcp_destroy_sock
  bool tp_set_state = false;          // sock:inet_sock_set_state
  // What picks the build of each object and the code paths inside it
  // (bpf/include/tka_compat.bpf.h), each probed, never inferred from the
  // kernel's version:
  bool rdonly_cast = false;    // kfunc bpf_rdonly_cast (6.2): the plain-load builds
  bool cookie_helper = false;  // bpf_get_socket_cookie() in tracing programs (5.12), a load probe
  bool atomics = false;        // BPF cmpxchg and xchg (5.12), a load probe
  bool iter_task_file = false;       // iter/task_file (5.8): the audit's scan
  bool iter_tcp_setsockopt = false;  // bpf_setsockopt() in iter/tcp (5.15), a load probe
  // Reported only: no fentry or kprobe backend ships yet.
  bool fentry = false;
  std::string fentry_detail;
  bool kprobes = false;
  std::optional<std::string> cgroup2;  // mount point
};

Features probe_features();

// How a /proc/kallsyms text lists a symbol: not at all, with address 0
// (kptr_restrict hides it from readers without CAP_SYSLOG), or usable.
enum class Ksym { kAbsent, kHidden, kVisible };
Ksym kallsyms_find(std::istream& kallsyms, std::string_view symbol);
// Whether a /proc/kallsyms text lists the symbol with a real (non-zero)
// address; kptr_restrict shows every address as zeros.
bool kallsyms_has(std::istream& kallsyms, std::string_view symbol);

// One observed signal and how it is attached.
struct SignalPath {
  std::string signal;  // "probe", "recovered", "kill_timeout", "kill_reset", "socket_gone"
  std::string attach;  // e.g. "tp_btf/tcp_send_reset (reason)"
  bool available = false;
  std::string missing;  // what the kernel lacks, when !available
};

// The parts of the agent, which load and fail independently: the keepalive
// counters, the socket audit (the scan), the state tracker (CLOSE_WAIT
// ages and durations) and the keepalive policies (sockops).
enum class Part { kKeepalive, kAudit, kStateTracker, kPolicies };
inline constexpr Part kParts[] = {Part::kKeepalive, Part::kAudit, Part::kStateTracker,
                                  Part::kPolicies};
std::string_view part_name(Part p);  // "keepalive", "audit", "state_tracker", "policies"

// What the kernel lacks for a part, "" when nothing: from the features
// alone, before anything is loaded (the verifier may still refuse it).
std::string part_gap(const Features& f, Part p);

struct Plan {
  Backend backend = Backend::kAuto;  // never kAuto once planned
  std::vector<SignalPath> signals;
  std::vector<std::string> programs;  // keepalive programs to load and attach
  // The keepalive part cannot run here (then no programs and every signal
  // unobserved), and why.
  std::string keepalive_gap;
  // Which build of each object and which paths inside it (tka_compat.bpf.h).
  bool plain_loads = false;    // the TKA_RO=1 builds (bpf_rdonly_cast)
  bool cookie_helper = false;  // bpf_get_socket_cookie() in tracing programs
};

// Fails when the kernel has no BTF (nothing can run), or when the requested
// backend is not supported by this kernel; the message says which and why.
Result<Plan> plan_for(const Features& f, Backend requested);

// The signals a plan cannot observe, each as "signal (what is missing)".
std::vector<std::string> unobserved(const Plan& p);
// Whether the plan observes that signal (false for an unknown name).
bool observed(const Plan& p, std::string_view signal);
// --strict: an error naming every unobserved signal and why, if any.
Result<void> require_every_signal(const Plan& p);

// Human-readable report for `tcpka check`.
std::string describe(const Features& f);

}  // namespace tcpka
