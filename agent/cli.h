// The command line: `tcpka run|check|watch` and their flags, parsed by
// CLI11, checked by validate() before anything touches the kernel.
#pragma once

#include <string>

#include "audit.h"
#include "config.h"

namespace tcpka {

enum class Command { kRun, kCheck, kWatch, kKeepaliveApply, kKeepaliveRemove, kAudit };

struct Invocation {
  Command command = Command::kRun;
  RunConfig run;       // run: every flag; check/watch: backend and sizes
  bool json = false;   // watch --json
  PolicySpec policy;   // keepalive apply (everything) / remove (cgroup)
  AuditFilter filter;  // audit
};

// Returns -1 when the command should go on, or the exit status to leave with
// (0 after --help, 2 on any bad argument). Messages go to out/err.
int parse_args(int argc, const char* const argv[], Invocation* inv, std::string* out,
               std::string* err);

}  // namespace tcpka
