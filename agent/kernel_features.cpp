#include "kernel_features.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string_view>

#include "cgroup.h"

namespace tcpka {

namespace {

// Number of arguments of a raw tracepoint from its btf_trace_<name> typedef
// (a pointer to a function whose first argument is the void *ctx), or -1.
int tracepoint_args(const btf* vmlinux, const char* name) {
  const std::string tname = std::string("btf_trace_") + name;
  const int id = btf__find_by_name_kind(vmlinux, tname.c_str(), BTF_KIND_TYPEDEF);
  if (id < 0) return -1;
  const btf_type* t = btf__type_by_id(vmlinux, btf__type_by_id(vmlinux, id)->type);
  if (!t || !btf_is_ptr(t)) return -1;
  t = btf__type_by_id(vmlinux, t->type);
  if (!t || !btf_is_func_proto(t)) return -1;
  return static_cast<int>(btf_vlen(t)) - 1;
}

bool enum_has(const btf* vmlinux, const char* type, std::string_view value) {
  const int id = btf__find_by_name_kind(vmlinux, type, BTF_KIND_ENUM);
  if (id < 0) return false;
  const btf_type* t = btf__type_by_id(vmlinux, id);
  const struct btf_enum* e = btf_enum(t);
  for (unsigned i = 0; i < btf_vlen(t); ++i) {
    if (value == btf__name_by_offset(vmlinux, e[i].name_off)) return true;
  }
  return false;
}

}  // namespace

Ksym kallsyms_find(std::istream& in, std::string_view symbol) {
  std::string addr, type, name;
  while (in >> addr >> type) {
    std::getline(in, name);
    // "name" or "name\t[module]"; the address is 0 under kptr_restrict.
    std::string_view n(name);
    while (!n.empty() && (n.front() == ' ' || n.front() == '\t')) n.remove_prefix(1);
    if (n == symbol) {
      return addr.find_first_not_of('0') != std::string::npos ? Ksym::kVisible : Ksym::kHidden;
    }
  }
  return Ksym::kAbsent;
}

bool kallsyms_has(std::istream& in, std::string_view symbol) {
  return kallsyms_find(in, symbol) == Ksym::kVisible;
}

namespace {

// Loads (never attaches) a two-instruction fentry program on
// tcp_keepalive_timer: the only honest test of "fentry works here".
void probe_fentry(const btf* vmlinux, Features* f) {
  const int fn = btf__find_by_name_kind(vmlinux, "tcp_keepalive_timer", BTF_KIND_FUNC);
  if (fn < 0) {
    f->fentry_detail = "tcp_keepalive_timer has no BTF FUNC record";
    return;
  }
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_FENTRY,
              .attach_btf_id = static_cast<__u32>(fn));
  const int fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "tka_fentry_probe", "GPL", insns, 2, &opts);
  if (fd >= 0) {
    f->fentry = true;
    f->fentry_detail = "loads";
    ::close(fd);
  } else {
    f->fentry_detail = std::string("load refused: ") + strerror(errno);
  }
}

// Why the kernel's BTF could not be read, naming the file and the kernel
// option. libbpf 1.1 also falls back to a vmlinux ELF under /boot and
// /lib/modules; those are the rare case, so the message names the usual file.
std::string btf_failure(int err) {
  const char* path = kVmlinuxBtf;
  std::string why;
  struct stat st {};
  if (::stat(path, &st) != 0) {
    why = std::string(path) + " is missing (" + strerror(errno) + ")";
  } else if (::access(path, R_OK) != 0) {
    why = std::string(path) + " is not readable (" + strerror(errno) + ")";
  } else if (st.st_size == 0) {
    why = std::string(path) + " is empty";
  } else {
    why = std::string(path) + " is not valid BTF (" + std::to_string(st.st_size) +
          " bytes: " + strerror(err) + ")";
  }
  return "no kernel BTF: " + why +
         "; tcpka needs a kernel built with CONFIG_DEBUG_INFO_BTF=y";
}

}  // namespace

Features probe_features() {
  Features f;
  f.cgroup2 = find_cgroup2_mount();
  struct stat st {};
  f.kprobes = ::stat("/sys/bus/event_source/devices/kprobe/type", &st) == 0;
  std::ifstream kallsyms("/proc/kallsyms");
  const Ksym timer = kallsyms_find(kallsyms, "tcp_keepalive_timer");
  f.ksym_keepalive_timer = timer == Ksym::kVisible;
  f.ksym_hidden = timer == Ksym::kHidden;

  // The same lookup libbpf does when it loads our programs, so a BTF we
  // refuse is one libbpf could not have used either.
  // libbpf's own warning would make a second, vaguer line: ours says it.
  const libbpf_print_fn_t old_print = libbpf_set_print(nullptr);
  btf* vmlinux = btf__load_vmlinux_btf();
  const int load_err = errno;
  libbpf_set_print(old_print);
  if (!vmlinux) {
    errno = load_err;
    f.btf_error = btf_failure(errno);
    return f;
  }
  f.btf = true;
  f.tp_timer_expire = tracepoint_args(vmlinux, "timer_expire_entry") >= 1 &&
                      tracepoint_args(vmlinux, "timer_expire_exit") >= 1;
  const int reset_args = tracepoint_args(vmlinux, "tcp_send_reset");
  f.tp_send_reset = reset_args >= 2;
  // The reason argument arrived in Linux 6.10 together with the enum.
  f.rst_reason =
      reset_args >= 3 && enum_has(vmlinux, "sk_rst_reason", "SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT");
  f.tp_error_report = tracepoint_args(vmlinux, "inet_sk_error_report") >= 1;
  f.tp_receive_reset = tracepoint_args(vmlinux, "tcp_receive_reset") >= 1;
  f.tp_destroy_sock = tracepoint_args(vmlinux, "tcp_destroy_sock") >= 1;
  probe_fentry(vmlinux, &f);
  btf__free(vmlinux);
  return f;
}

Result<Plan> plan_for(const Features& f, Backend requested) {
  if (!f.btf) {
    return Error{f.btf_error.empty() ? std::string("no kernel BTF (") + kVmlinuxBtf + ")"
                                     : f.btf_error};
  }
  if (!f.ksym_keepalive_timer) {
    return Error{f.ksym_hidden ? "tcp_keepalive_timer's address is hidden in /proc/kallsyms "
                                 "(kptr_restrict or perf_event_paranoid, and no CAP_SYSLOG)"
                               : "tcp_keepalive_timer is not in /proc/kallsyms"};
  }
  if (!f.tp_timer_expire) {
    return Error{"the kernel has no timer:timer_expire_entry/exit tracepoints"};
  }
  Plan p;
  const bool reason_ok = f.tp_send_reset && f.rst_reason;
  const bool bracket_ok = f.tp_error_report;
  switch (requested) {
    case Backend::kAuto:
      if (reason_ok) {
        p.backend = Backend::kResetReason;
      } else if (bracket_ok) {
        p.backend = Backend::kTimerBracket;
      } else {
        return Error{
            "no way to see keepalive kills: neither tcp_send_reset with a reset reason "
            "nor sock:inet_sk_error_report exists"};
      }
      break;
    case Backend::kResetReason:
      if (!reason_ok) {
        return Error{
            "--backend reset-reason: this kernel's tcp_send_reset tracepoint carries no "
            "SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT (Linux 6.10+); use timer-bracket"};
      }
      p.backend = requested;
      break;
    case Backend::kTimerBracket:
      if (!bracket_ok) {
        return Error{"--backend timer-bracket: the kernel has no sock:inet_sk_error_report"};
      }
      p.backend = requested;
      break;
  }
  const std::string bracket = "tp_btf/timer_expire_entry+exit";
  p.signals.push_back({"probe", bracket, true, ""});
  p.signals.push_back({"recovered", bracket, true, ""});
  p.programs = {"tka_timer_entry", "tka_timer_exit"};
  if (p.backend == Backend::kResetReason) {
    p.signals.push_back({"kill_timeout", "tp_btf/tcp_send_reset", true, ""});
    p.programs.push_back("tka_send_reset");
  } else {
    p.signals.push_back({"kill_timeout", "tp_btf/inet_sk_error_report", true, ""});
    p.programs.push_back("tka_err_report");
  }
  p.signals.push_back({"kill_reset", "tp_btf/tcp_receive_reset", f.tp_receive_reset,
                       f.tp_receive_reset ? "" : "no tcp:tcp_receive_reset tracepoint"});
  if (f.tp_receive_reset) p.programs.push_back("tka_recv_reset");
  p.signals.push_back({"socket_gone", "tp_btf/tcp_destroy_sock", f.tp_destroy_sock,
                       f.tp_destroy_sock ? "" : "no tcp:tcp_destroy_sock tracepoint"});
  if (f.tp_destroy_sock) p.programs.push_back("tka_destroy");
  return p;
}

std::vector<std::string> unobserved(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& s : p.signals) {
    if (!s.available) out.push_back(s.signal + " (" + s.missing + ")");
  }
  return out;
}

bool observed(const Plan& p, std::string_view signal) {
  for (const auto& s : p.signals) {
    if (s.signal == signal) return s.available;
  }
  return false;
}

Result<void> require_every_signal(const Plan& p) {
  const auto missing = unobserved(p);
  if (missing.empty()) return {};
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
  return Error{"--strict: refusing to start without every signal; not observed on this kernel: " +
               list};
}

std::string describe(const Features& f) {
  auto yn = [](bool b) { return b ? "yes" : "no"; };
  std::string s;
  s += std::string("kernel BTF:                       ") + yn(f.btf) +
       (f.btf ? "" : " (" + f.btf_error + ")") + "\n";
  s += std::string("tcp_keepalive_timer in kallsyms:  ") + yn(f.ksym_keepalive_timer) + "\n";
  s += std::string("tp timer_expire_entry/exit:       ") + yn(f.tp_timer_expire) + "\n";
  s += std::string("tp tcp_send_reset:                ") + yn(f.tp_send_reset) + "\n";
  s += std::string("  with reset reason (6.10+):      ") + yn(f.rst_reason) + "\n";
  s += std::string("tp inet_sk_error_report:          ") + yn(f.tp_error_report) + "\n";
  s += std::string("tp tcp_receive_reset:             ") + yn(f.tp_receive_reset) + "\n";
  s += std::string("tp tcp_destroy_sock:              ") + yn(f.tp_destroy_sock) + "\n";
  s += std::string("fentry:                           ") + yn(f.fentry) + " (" + f.fentry_detail +
       "; no fentry backend is shipped)\n";
  s += std::string("kprobes:                          ") + yn(f.kprobes) +
       " (no kprobe backend is shipped)\n";
  s += std::string("cgroup v2 mount:                  ") + (f.cgroup2 ? *f.cgroup2 : "none") + "\n";
  return s;
}

}  // namespace tcpka
