#include "cli.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <sstream>
#include <vector>

#include "cgroup.h"
#include "web_security.h"

namespace tcpka {

namespace {

void add_backend_flag(CLI::App* cmd, std::string* backend) {
  cmd->add_option("--backend", *backend,
                  "How keepalive kills by timeout are seen: auto, reset-reason (Linux 6.12+), "
                  "timer-bracket")
      ->capture_default_str();
}

void add_size_flags(CLI::App* cmd, RunConfig* cfg) {
  cmd->add_option("--ringbuf-bytes", cfg->ringbuf_bytes,
                  "Kernel ring buffer size for events (power of two)")
      ->capture_default_str();
  cmd->add_option("--max-sockets", cfg->max_sockets,
                  "Probed sockets tracked in the kernel map and the agent's table")
      ->capture_default_str();
}

struct Parsed {
  Command command = Command::kRun;
  std::string backend = "auto";
  std::string config;              // run --config
  PolicySpec single;               // run --keepalive-cgroup/-idle/-intvl/-cnt/-direction/-override
  bool single_given = false;       // any of those flags
  std::string single_missing;      // the required ones among them not given
  std::vector<std::string> specs;  // run --keepalive-policy
  std::string audit_state;
  double audit_min_age = 0;
  double audit_idle_over = 0;
};

void add_policy_values(CLI::App* cmd, PolicySpec* p, const std::string& prefix) {
  cmd->add_option("--" + prefix + "idle", p->idle,
                  "TCP_KEEPIDLE: idle seconds before the first probe (1..32767)");
  cmd->add_option("--" + prefix + "intvl", p->intvl,
                  "TCP_KEEPINTVL: seconds between probes (1..32767)");
  cmd->add_option("--" + prefix + "cnt", p->cnt,
                  "TCP_KEEPCNT: unanswered probes before the kill (1..127)");
  cmd->add_option("--" + prefix + "direction", p->direction, "inbound, outbound or both")
      ->capture_default_str();
  cmd->add_flag("--" + prefix + "override", p->override,
                "Also sockets whose application turned keepalive on itself");
}

// One pass of CLI11 over args (without argv[0]). Throws CLI::ParseError.
Parsed parse_once(const std::vector<std::string>& args, Invocation* inv, std::string* help) {
  CLI::App app{"tcpka: TCP keepalive and connection-leak observability", "tcpka"};
  app.require_subcommand(1);
  // A value given twice (config file, then command line) keeps the last.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  Parsed p;

  CLI::App* run = app.add_subcommand("run", "Load, attach and serve Prometheus metrics");
  run->add_option("--listen", inv->run.listen, "HOST:PORT for /metrics and /healthz")
      ->capture_default_str();
  run->add_option("--web-config-file", inv->run.web_config_file,
                  "TLS and basic auth for the HTTP endpoint: a file in the Prometheus "
                  "exporter-toolkit web-config format");
  // CLI11 2.1 reads config files for the top-level app only, so `run
  // --config` is a plain option and parse_args() reads the file itself.
  run->add_option("--config", p.config,
                  "Config file (TOML or INI); keys are the long flag names, top level or "
                  "under [run]; flags on the command line win");
  add_backend_flag(run, &p.backend);
  run->add_option("--max-series", inv->run.max_series,
                  "Cap on label sets of the keepalive metrics; more fold into port=\"other\"")
      ->capture_default_str();
  run->add_option("--gc-interval", inv->run.gc_interval,
                  "Seconds between removals of series whose cgroup is gone")
      ->capture_default_str();
  add_size_flags(run, &inv->run);
  run->add_option("--close-wait-ringbuf-bytes", inv->run.close_wait_ringbuf_bytes,
                  "Kernel ring buffer size for CLOSE_WAIT durations (power of two)")
      ->capture_default_str();
  run->add_option("--close-wait-slots", inv->run.close_wait_slots,
                  "Slots for when sockets entered CLOSE_WAIT (power of two; a socket whose slot "
                  "is taken goes to a hash map)")
      ->capture_default_str();
  run->add_option("--keepalive-cgroup", p.single.cgroup,
                  "Set keepalive on the TCP sockets of this cgroup v2 directory (absolute, or "
                  "relative to the cgroup2 mount) and its descendants while the agent runs");
  add_policy_values(run, &p.single, "keepalive-");
  run->add_option("--keepalive-policy", p.specs,
                  "Another policy: cgroup=PATH,idle=S,intvl=S,cnt=N[,direction=D][,override=true]"
                  " (repeatable; in a config file, a list)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_option("--audit-interval", inv->run.audit_interval,
                  "Seconds between socket audits refreshing tcpka_sockets and friends (1..3600)")
      ->capture_default_str();
  run->add_option("--self-check-interval", inv->run.self_check_interval,
                  "Seconds per self-check window: the kernel's keepalive counters of every "
                  "network namespace against the probes the agent saw (0 turns it off)")
      ->capture_default_str();
  run->add_option("--idle-threshold", inv->run.idle_threshold,
                  "ESTABLISHED sockets without keepalive idle this many seconds count in "
                  "tcpka_idle_sockets_without_keepalive")
      ->capture_default_str();
  run->add_option("--k8s-log-root", inv->run.k8s_log_root,
                  "Directory holding the kubelet's pods/ and containers/ logs, for the namespace, "
                  "pod and container labels (\"\" turns them off)")
      ->capture_default_str();
  run->add_flag("--keepalive-persist", inv->run.keepalive_persist,
                "Pin the policies under /sys/fs/bpf/tcpka so they outlive the agent; the next "
                "start replaces them atomically, `tcpka keepalive remove` removes them");
  run->add_flag("--state-persist", inv->run.state_persist,
                "Keep the state maps pinned under /sys/fs/bpf/tcpka (sockstate, closewait, "
                "closewait_more) on exit, so the next agent continues the state ages");

  run->add_flag("--strict", inv->run.strict,
                "Refuse to start (exit status 3) when this kernel cannot observe every signal "
                "or run every part, instead of running degraded");

  CLI::App* keepalive = app.add_subcommand("keepalive", "Keepalive policies outside `run`");
  keepalive->require_subcommand(1);
  CLI::App* apply = keepalive->add_subcommand(
      "apply", "Apply a policy once to the ESTABLISHED sockets that already exist in a cgroup");
  apply->add_option("--cgroup", inv->policy.cgroup, "cgroup v2 directory")->required();
  add_policy_values(apply, &inv->policy, "");
  for (const char* req : {"--idle", "--intvl", "--cnt"}) apply->get_option(req)->required();
  CLI::App* remove = keepalive->add_subcommand(
      "remove", "Remove the persistent (--keepalive-persist) policy of a cgroup");
  remove->add_option("--cgroup", inv->policy.cgroup, "cgroup v2 directory")->required();

  CLI::App* audit = app.add_subcommand(
      "audit", "List every TCP socket held by a process: owner, state age, keepalive");
  audit->add_flag("--json", inv->json, "One JSON array of objects");
  audit->add_option("--state", p.audit_state, "Only this state (established, close_wait, ...)");
  audit->add_option("--min-age", p.audit_min_age,
                    "Only sockets known to be in their state for at least this many seconds");
  audit->add_flag("--no-keepalive", inv->filter.no_keepalive, "Only sockets without SO_KEEPALIVE");
  audit->add_option("--idle-over", p.audit_idle_over,
                    "Only sockets that received nothing for more than this many seconds");
  audit
      ->add_option("--k8s-log-root", inv->run.k8s_log_root,
                   "Directory holding the kubelet's pods/ and containers/ logs")
      ->capture_default_str();

  CLI::App* check =
      app.add_subcommand("check", "Print the kernel's features and the attach path of each signal");
  add_backend_flag(check, &p.backend);
  check->add_flag("--strict", inv->run.strict,
                  "Fail (exit status 3) when a signal cannot be observed or a part is off "
                  "(the policies too, which `run` uses only when one is configured)");

  CLI::App* watch = app.add_subcommand("watch", "Stream keepalive events, one line each");
  watch->add_flag("--json", inv->json, "One JSON object per line");
  add_backend_flag(watch, &p.backend);
  add_size_flags(watch, &inv->run);

  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    *help = (app.get_subcommands().empty() ? &app : app.get_subcommands().front())->help();
    throw;
  } catch (const CLI::CallForAllHelp&) {
    *help = app.help("", CLI::AppFormatMode::All);
    throw;
  }
  if (run->parsed()) {
    p.command = Command::kRun;
  } else if (check->parsed()) {
    p.command = Command::kCheck;
  } else if (watch->parsed()) {
    p.command = Command::kWatch;
  } else if (audit->parsed()) {
    p.command = Command::kAudit;
    if (audit->count("--state")) inv->filter.state = p.audit_state;
    if (audit->count("--min-age")) inv->filter.min_age = p.audit_min_age;
    if (audit->count("--idle-over")) inv->filter.idle_over = p.audit_idle_over;
  } else {
    p.command = apply->parsed() ? Command::kKeepaliveApply : Command::kKeepaliveRemove;
  }
  for (const char* flag : {"--keepalive-cgroup", "--keepalive-idle", "--keepalive-intvl",
                           "--keepalive-cnt", "--keepalive-direction", "--keepalive-override"}) {
    p.single_given = p.single_given || run->count(flag) > 0;
  }
  for (const char* flag : {"--keepalive-idle", "--keepalive-intvl", "--keepalive-cnt"}) {
    if (run->count(flag) == 0)
      p.single_missing += std::string(p.single_missing.empty() ? "" : ", ") + flag;
  }
  return p;
}

// Turns the items of a config file into `--key value...` arguments.
std::vector<std::string> config_args(const std::string& path) {
  std::vector<std::string> out;
  for (const CLI::ConfigItem& item : CLI::ConfigTOML().from_file(path)) {
    if (item.name == "--" || item.name == "++") continue;  // section markers
    if (!item.parents.empty() && !(item.parents.size() == 1 && item.parents[0] == "run")) {
      throw CLI::ConfigError("config file " + path + ": unknown section [" + item.parents[0] + "]");
    }
    std::string name = item.name;
    for (char& c : name) {
      if (c == '_') c = '-';
    }
    if (name == "config") throw CLI::ConfigError("config file " + path + ": 'config' is not a key");
    if (item.inputs.size() == 1) {
      out.push_back("--" + name + "=" + item.inputs[0]);  // also right for flags (x = true)
    } else {
      out.push_back("--" + name);
      out.insert(out.end(), item.inputs.begin(), item.inputs.end());
    }
  }
  return out;
}

std::string one_line(std::string msg) {
  for (char& c : msg) {
    if (c == '\n') c = ' ';
  }
  return msg;
}

// Builds inv->run.policies from the flags and checks every cgroup exists;
// for keepalive apply/remove, checks inv->policy.
Result<void> collect_policies(const Parsed& p, Invocation* inv) {
  const auto root = find_cgroup2_mount().value_or("");
  auto check_cgroup = [&](const std::string& flag, const std::string& path) -> Result<void> {
    auto dir = resolve_cgroup_dir(path, root);
    if (!dir) return Error{flag + ": " + dir.error()};
    return {};
  };
  if (p.command == Command::kKeepaliveApply) {
    if (auto v = validate_policy(inv->policy, "--"); !v) return v;
    return check_cgroup("--cgroup", inv->policy.cgroup);
  }
  if (p.command == Command::kKeepaliveRemove) return check_cgroup("--cgroup", inv->policy.cgroup);
  if (p.command == Command::kAudit) return validate_filter(inv->filter);
  if (p.command != Command::kRun) return {};

  std::vector<PolicySpec>& out = inv->run.policies;
  if (p.single_given) {
    if (p.single.cgroup.empty()) {
      return Error{"--keepalive-idle/-intvl/-cnt/-direction/-override need --keepalive-cgroup"};
    }
    if (!p.single_missing.empty()) {
      return Error{
          "--keepalive-cgroup needs --keepalive-idle, --keepalive-intvl and "
          "--keepalive-cnt; missing: " +
          p.single_missing};
    }
    if (auto v = validate_policy(p.single, "--keepalive-"); !v) return v;
    if (auto c = check_cgroup("--keepalive-cgroup", p.single.cgroup); !c) return c;
    out.push_back(p.single);
  }
  for (const std::string& spec : p.specs) {
    auto ps = parse_policy_spec(spec);
    if (!ps) return Error{ps.error()};
    if (auto c = check_cgroup("--keepalive-policy '" + spec + "'", ps->cgroup); !c) return c;
    out.push_back(*ps);
  }
  // One policy per cgroup: two would stack two programs on it.
  for (size_t i = 0; i < out.size(); ++i) {
    for (size_t j = i + 1; j < out.size(); ++j) {
      if (resolve_cgroup_dir(out[i].cgroup, root)->id ==
          resolve_cgroup_dir(out[j].cgroup, root)->id) {
        return Error{"two keepalive policies for cgroup '" + out[j].cgroup + "'"};
      }
    }
  }
  if (inv->run.keepalive_persist && out.empty()) {
    return Error{"--keepalive-persist: there is no keepalive policy to persist"};
  }
  return {};
}

}  // namespace

int parse_args(int argc, const char* const argv[], Invocation* inv, std::string* out,
               std::string* err) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // CLI11 says only "A subcommand is required" for a misspelt one.
  if (!args.empty() && !args[0].empty() && args[0][0] != '-') {
    const std::vector<std::string> known = {"run", "check", "watch", "audit", "keepalive"};
    if (std::find(known.begin(), known.end(), args[0]) == known.end()) {
      *err = "tcpka: unknown command '" + args[0] +
             "' (one of run, check, watch, audit, keepalive; see tcpka --help)\n";
      return 2;
    }
  }
  std::string help;
  Parsed p;
  std::string where;  // names the config file once the command line alone parsed
  try {
    p = parse_once(args, inv, &help);
    if (p.command == Command::kRun && !p.config.empty()) {
      where = "config file " + p.config + ": ";
      // Again, with the file's keys first so the command line overrides them.
      std::vector<std::string> merged = {"run"};
      const auto from_file = config_args(p.config);
      merged.insert(merged.end(), from_file.begin(), from_file.end());
      // The top-level app takes no options, so args[0] is "run".
      merged.insert(merged.end(), args.begin() + 1, args.end());
      *inv = Invocation{};
      p = parse_once(merged, inv, &help);
    }
  } catch (const CLI::CallForHelp&) {
    *out = help;
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    *out = help;
    return 0;
  } catch (const CLI::Error& e) {
    // One line naming the bad value; CLI11's multi-line usage is noise here.
    std::string msg = one_line(e.what());
    if (!where.empty() && msg.rfind(where, 0) != 0) msg = where + msg;
    *err = "tcpka: " + msg + " (see tcpka --help)\n";
    return 2;
  }

  inv->command = p.command;
  if (auto r = collect_policies(p, inv); !r) {
    *err = "tcpka: " + r.error() + "\n";
    return 2;
  }
  auto b = parse_backend(p.backend);
  if (!b) {
    *err = "tcpka: " + b.error() + "\n";
    return 2;
  }
  inv->run.backend = *b;
  if (auto v = validate(inv->run); !v) {
    *err = "tcpka: " + v.error() + "\n";
    return 2;
  }
  if (p.command == Command::kRun && !inv->run.web_config_file.empty()) {
    // Certificates and keys are loaded too, so a bad one is refused here.
    if (auto w = WebSecurity::load(inv->run.web_config_file); !w) {
      *err = "tcpka: --web-config-file: " + w.error() + "\n";
      return 2;
    }
  }
  return -1;
}

}  // namespace tcpka
