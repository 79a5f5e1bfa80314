#include "cli.h"

#include <CLI/CLI.hpp>

#include <sstream>
#include <vector>

namespace tcpka {

namespace {

void add_backend_flag(CLI::App* cmd, std::string* backend) {
  cmd->add_option("--backend", *backend,
                  "How keepalive kills by timeout are seen: auto, reset-reason (Linux 6.10+), "
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
  std::string config;  // run --config
};

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

  CLI::App* check =
      app.add_subcommand("check", "Print the kernel's features and the attach path of each signal");
  add_backend_flag(check, &p.backend);

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
  p.command = run->parsed() ? Command::kRun : check->parsed() ? Command::kCheck : Command::kWatch;
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
    out.push_back("--" + name);
    out.insert(out.end(), item.inputs.begin(), item.inputs.end());
  }
  return out;
}

std::string one_line(std::string msg) {
  for (char& c : msg) {
    if (c == '\n') c = ' ';
  }
  return msg;
}

}  // namespace

int parse_args(int argc, const char* const argv[], Invocation* inv, std::string* out,
               std::string* err) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string help;
  Parsed p;
  try {
    p = parse_once(args, inv, &help);
    if (p.command == Command::kRun && !p.config.empty()) {
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
    *err = "tcpka: " + one_line(e.what()) + " (see tcpka --help)\n";
    return 2;
  }

  inv->command = p.command;
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
  return -1;
}

}  // namespace tcpka
