// tcpka: parse the command line, hand over to the subcommand.
#include <cstdio>

#include "cli.h"
#include "commands.h"

int main(int argc, char** argv) {
  tcpka::Invocation inv;
  std::string out, err;
  const int rc = tcpka::parse_args(argc, argv, &inv, &out, &err);
  std::fputs(out.c_str(), stdout);
  std::fputs(err.c_str(), stderr);
  if (rc >= 0) return rc;
  switch (inv.command) {
    case tcpka::Command::kRun:
      return tcpka::run_agent(inv.run, [argc, argv]() -> tcpka::Result<tcpka::RunConfig> {
        tcpka::Invocation again;
        std::string out, err;
        if (tcpka::parse_args(argc, argv, &again, &out, &err) >= 0) {
          return tcpka::Error{err.empty() ? "bad configuration" : err};
        }
        return again.run;
      });
    case tcpka::Command::kCheck:
      return tcpka::run_check(inv.run);
    case tcpka::Command::kWatch:
      return tcpka::run_watch(inv.run, inv.json);
    case tcpka::Command::kKeepaliveApply:
      return tcpka::run_keepalive_apply(inv.policy);
    case tcpka::Command::kKeepaliveRemove:
      return tcpka::run_keepalive_remove(inv.policy);
    case tcpka::Command::kAudit:
      return tcpka::run_audit(inv.filter, inv.json, inv.run.k8s_log_root);
  }
  return 2;
}
