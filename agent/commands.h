// The subcommands. main() only parses and dispatches to these.
#pragma once

#include "cli.h"

namespace tcpka {

int run_agent(const RunConfig& cfg);
int run_check(const RunConfig& cfg);
int run_watch(const RunConfig& cfg, bool json);

}  // namespace tcpka
