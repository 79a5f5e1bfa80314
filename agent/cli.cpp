#include "cli.h"

#include <CLI/CLI.hpp>

#include <sstream>

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

}  // namespace

int parse_args(int argc, const char* const argv[], Invocation* inv, std::string* out,
               std::string* err) {
  CLI::App app{"tcpka: TCP keepalive and connection-leak observability"};
  app.require_subcommand(1);
  std::string backend = "auto";

  CLI::App* run = app.add_subcommand("run", "Load, attach and serve Prometheus metrics");
  run->add_option("--listen", inv->run.listen, "HOST:PORT for /metrics and /healthz")
      ->capture_default_str();
  run->set_config("--config", "", "Config file (TOML/INI); keys are the flag names");
  add_backend_flag(run, &backend);
  run->add_option("--max-series", inv->run.max_series,
                  "Cap on label sets of the keepalive metrics; more fold into port=\"other\"")
      ->capture_default_str();
  run->add_option("--gc-interval", inv->run.gc_interval,
                  "Seconds between removals of series whose cgroup is gone")
      ->capture_default_str();
  add_size_flags(run, &inv->run);

  CLI::App* check = app.add_subcommand(
      "check", "Print the kernel's features and the attach path of each signal");
  add_backend_flag(check, &backend);

  CLI::App* watch = app.add_subcommand("watch", "Stream keepalive events, one line each");
  watch->add_flag("--json", inv->json, "One JSON object per line");
  add_backend_flag(watch, &backend);
  add_size_flags(watch, &inv->run);

  std::ostringstream out_s, err_s;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e, out_s, err_s);
    *out = out_s.str();
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    app.exit(e, out_s, err_s);
    *out = out_s.str();
    return 0;
  } catch (const CLI::ParseError& e) {
    // One line naming the bad value; CLI11's multi-line usage is noise here.
    std::string msg = e.what();
    for (char& c : msg) {
      if (c == '\n') c = ' ';
    }
    *err = "tcpka: " + msg + " (see tcpka --help)\n";
    return 2;
  }

  if (run->parsed()) {
    inv->command = Command::kRun;
  } else if (check->parsed()) {
    inv->command = Command::kCheck;
  } else {
    inv->command = Command::kWatch;
  }
  auto b = parse_backend(backend);
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
