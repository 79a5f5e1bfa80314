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
  bool rst_reason = false;            // ...carrying SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT (6.10+)
  bool tp_error_report = false;       // sock:inet_sk_error_report
  bool tp_receive_reset = false;      // tcp:tcp_receive_reset
  bool tp_destroy_sock = false;       // tcp:tcp_destroy_sock
  // Reported only: no fentry or kprobe backend ships yet, since none can be
  // tested on the project's machines (see README, "Kernel support").
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

struct Plan {
  Backend backend = Backend::kAuto;  // never kAuto once planned
  std::vector<SignalPath> signals;
  std::vector<std::string> programs;  // BPF programs to load and attach
};

// Fails when a required signal cannot be observed, or when the requested
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
