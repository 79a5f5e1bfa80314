// The subcommands. main() only parses and dispatches to these.
#pragma once

#include <functional>

#include "cli.h"
#include "result.h"

namespace tcpka {

// reload re-reads the command line and config file (SIGHUP).
int run_agent(const RunConfig& cfg, const std::function<Result<RunConfig>()>& reload);
int run_check(const RunConfig& cfg);
int run_watch(const RunConfig& cfg, bool json);
int run_keepalive_apply(const PolicySpec& spec);
int run_keepalive_remove(const PolicySpec& spec);
int run_audit(const AuditFilter& filter, bool json, const std::string& k8s_log_root);

}  // namespace tcpka
