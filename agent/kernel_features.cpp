#include "kernel_features.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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

// The verifier's log of a program that failed to load, or "".
struct ProbeLoad {
  int fd = -1;
  int err = 0;
  std::string log;
};

ProbeLoad probe_load(bpf_prog_type type, const bpf_insn* insns, size_t n,
                     bpf_attach_type attach = static_cast<bpf_attach_type>(0),
                     __u32 attach_btf_id = 0) {
  ProbeLoad r;
  r.log.resize(4096);
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = attach,
              .attach_btf_id = attach_btf_id, .log_level = 1,
              .log_size = static_cast<__u32>(r.log.size()), .log_buf = r.log.data());
  r.fd = bpf_prog_load(type, "tka_probe", "GPL", insns, n, &opts);
  r.err = r.fd < 0 ? errno : 0;
  r.log.resize(std::strlen(r.log.c_str()));
  if (r.fd >= 0) ::close(r.fd);
  return r;
}

// Whether programs of this kind may call helper `id`, the way libbpf's
// libbpf_probe_bpf_helper() tells (which does not take tracing programs): a
// program that calls it with no arguments is refused either way, and only
// the log says whether the helper was known to the verifier.
bool helper_allowed(bpf_prog_type type, bpf_attach_type attach, __u32 attach_btf_id, int id) {
  const bpf_insn insns[] = {
      {BPF_JMP | BPF_CALL, 0, 0, 0, id},
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  const ProbeLoad r = probe_load(type, insns, 3, attach, attach_btf_id);
  if (r.fd >= 0) return true;
  if (r.log.empty()) return false;  // refused before the verifier ran
  return r.log.find("unknown func") == std::string::npos &&
         r.log.find("invalid func") == std::string::npos &&
         r.log.find("cannot use helper") == std::string::npos;
}

// BPF_ATOMIC cmpxchg on the stack (Linux 5.12; older verifiers refuse the
// instruction).
bool atomics_work() {
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 0},
      {BPF_STX | BPF_MEM | BPF_DW, BPF_REG_10, BPF_REG_1, -8, 0},
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_STX | BPF_ATOMIC | BPF_DW, BPF_REG_10, BPF_REG_1, -8, BPF_CMPXCHG},
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  return probe_load(BPF_PROG_TYPE_SOCKET_FILTER, insns, 6).fd >= 0;
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
  // The reason argument arrived in Linux 6.10, the keepalive reason in 6.12:
  // the enum value decides, not the version.
  f.rst_reason =
      reset_args >= 3 && enum_has(vmlinux, "sk_rst_reason", "SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT");
  f.tp_receive_reset = tracepoint_args(vmlinux, "tcp_receive_reset") >= 1;
  f.tp_destroy_sock = tracepoint_args(vmlinux, "tcp_destroy_sock") >= 1;
  f.tp_set_state = tracepoint_args(vmlinux, "inet_sock_set_state") >= 3;
  f.rdonly_cast = btf__find_by_name_kind(vmlinux, "bpf_rdonly_cast", BTF_KIND_FUNC) > 0;
  f.iter_task_file = btf__find_by_name_kind(vmlinux, "bpf_iter_task_file", BTF_KIND_FUNC) > 0;
  // Helpers by a load probe: which ones a program type may call is not in BTF.
  const int destroy_tp =
      btf__find_by_name_kind(vmlinux, "btf_trace_tcp_destroy_sock", BTF_KIND_TYPEDEF);
  f.cookie_helper = destroy_tp > 0 && helper_allowed(BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP,
                                                     static_cast<__u32>(destroy_tp),
                                                     BPF_FUNC_get_socket_cookie);
  const int iter_tcp = btf__find_by_name_kind(vmlinux, "bpf_iter_tcp", BTF_KIND_FUNC);
  f.iter_tcp_setsockopt = iter_tcp > 0 && helper_allowed(BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER,
                                                         static_cast<__u32>(iter_tcp),
                                                         BPF_FUNC_setsockopt);
  f.atomics = atomics_work();
  probe_fentry(vmlinux, &f);
  btf__free(vmlinux);
  return f;
}

std::string_view part_name(Part p) {
  switch (p) {
    case Part::kKeepalive:
      return "keepalive";
    case Part::kAudit:
      return "audit";
    case Part::kStateTracker:
      return "state_tracker";
    case Part::kPolicies:
      return "policies";
  }
  return "?";
}

namespace {

std::string keepalive_gap(const Features& f) {
  if (!f.ksym_keepalive_timer) {
    return f.ksym_hidden ? "tcp_keepalive_timer's address is hidden in /proc/kallsyms "
                           "(kptr_restrict or perf_event_paranoid, and no CAP_SYSLOG)"
                         : "tcp_keepalive_timer is not in /proc/kallsyms";
  }
  if (!f.tp_timer_expire) return "the kernel has no timer:timer_expire_entry/exit tracepoints";
  return "";
}

}  // namespace

std::string part_gap(const Features& f, Part p) {
  if (!f.btf) return f.btf_error.empty() ? "no kernel BTF" : f.btf_error;
  switch (p) {
    case Part::kKeepalive:
      return keepalive_gap(f);
    case Part::kAudit:
      return f.iter_task_file ? "" : "no iter/task_file socket iterator (Linux 5.8)";
    case Part::kStateTracker:
      if (!f.tp_set_state) return "no sock:inet_sock_set_state tracepoint";
      if (!f.cookie_helper) {
        return "tracing programs cannot call bpf_get_socket_cookie() (Linux 5.12)";
      }
      if (!f.atomics) return "no BPF atomic compare-and-exchange (Linux 5.12)";
      return "";
    case Part::kPolicies:
      return f.cgroup2 ? "" : "no cgroup v2 mount";
  }
  return "";
}

Result<Plan> plan_for(const Features& f, Backend requested) {
  if (!f.btf) {
    return Error{f.btf_error.empty() ? std::string("no kernel BTF (") + kVmlinuxBtf + ")"
                                     : f.btf_error};
  }
  Plan p;
  p.plain_loads = f.rdonly_cast;
  p.cookie_helper = f.cookie_helper;
  const bool reason_ok = f.tp_send_reset && f.rst_reason;
  const bool bracket_ok = f.tp_send_reset;
  switch (requested) {
    case Backend::kAuto:
      p.backend = reason_ok ? Backend::kResetReason : Backend::kTimerBracket;
      break;
    case Backend::kResetReason:
      if (!reason_ok) {
        return Error{
            "--backend reset-reason: this kernel's tcp_send_reset tracepoint carries no "
            "SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT (Linux 6.12+); use timer-bracket"};
      }
      p.backend = requested;
      break;
    case Backend::kTimerBracket:
      p.backend = requested;
      break;
  }
  p.keepalive_gap = keepalive_gap(f);
  const std::string& gap = p.keepalive_gap;
  auto add = [&](const char* signal, const std::string& attach, bool kernel_has,
                 const std::string& missing, const char* program) {
    const bool on = gap.empty() && kernel_has;
    p.signals.push_back({signal, attach, on, on ? "" : (gap.empty() ? missing : gap)});
    if (on && program) p.programs.push_back(program);
  };
  const std::string bracket = "tp_btf/timer_expire_entry+exit";
  add("probe", bracket, true, "", nullptr);
  add("recovered", bracket, true, "", nullptr);
  if (gap.empty()) p.programs = {"tka_timer_entry", "tka_timer_exit"};
  if (p.backend == Backend::kResetReason) {
    add("kill_timeout", "tp_btf/tcp_send_reset (reason)", true, "", "tka_send_reset");
  } else {
    add("kill_timeout", "tp_btf/tcp_send_reset (in the timer bracket)", bracket_ok,
        "no tcp:tcp_send_reset tracepoint", "tka_reset_bracket");
  }
  add("kill_reset", "tp_btf/tcp_receive_reset", f.tp_receive_reset,
      "no tcp:tcp_receive_reset tracepoint", "tka_recv_reset");
  add("socket_gone", "tp_btf/tcp_destroy_sock", f.tp_destroy_sock,
      "no tcp:tcp_destroy_sock tracepoint", "tka_destroy");
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
  auto line = [&](const char* what, bool v, const std::string& more = "") {
    char head[40];
    std::snprintf(head, sizeof(head), "%-34s", (std::string(what) + ":").c_str());
    s += head + std::string(yn(v)) + (more.empty() ? "" : " (" + more + ")") + "\n";
  };
  line("kernel BTF", f.btf, f.btf ? "" : f.btf_error);
  line("tcp_keepalive_timer in kallsyms", f.ksym_keepalive_timer);
  line("tp timer_expire_entry/exit", f.tp_timer_expire);
  line("tp tcp_send_reset", f.tp_send_reset);
  line("  keepalive reset reason (6.12+)", f.rst_reason);
  line("tp tcp_receive_reset", f.tp_receive_reset);
  line("tp tcp_destroy_sock", f.tp_destroy_sock);
  line("tp inet_sock_set_state", f.tp_set_state);
  line("kfunc bpf_rdonly_cast (6.2+)", f.rdonly_cast,
       f.rdonly_cast ? "plain-load builds" : "bpf_probe_read_kernel builds");
  line("socket cookie in tracing (5.12+)", f.cookie_helper);
  line("BPF atomics (5.12+)", f.atomics);
  line("iter/task_file (5.8+)", f.iter_task_file);
  line("setsockopt in iter/tcp (5.15+)", f.iter_tcp_setsockopt);
  line("fentry", f.fentry, f.fentry_detail + "; no fentry backend is shipped");
  line("kprobes", f.kprobes, "no kprobe backend is shipped");
  char head[40];
  std::snprintf(head, sizeof(head), "%-34s", "cgroup v2 mount:");
  s += head + (f.cgroup2 ? *f.cgroup2 : std::string("none")) + "\n";
  return s;
}

}  // namespace tcpka
