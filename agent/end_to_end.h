// `tcpka check`'s proof that the keepalive programs see what the kernel
// does, beyond a verifier load: a real loopback connection in a network
// namespace of its own, keepalive after one second (TCP_KEEPIDLE 1) for a
// probe, then its peer made to vanish (TCP_REPAIR, then close: no FIN, no
// RST) so that the next probe is answered by RST, a kill by reset. Each is
// looked for in the programs' ring buffer, and the kernel's own counter
// (TcpExtTCPKeepAlive of that namespace) and the errno the application gets
// say what really happened. Programs that load, attach and see nothing (the
// fault met on Linux 7.2 before the kernel matrix) fail it.
#pragma once

#include <string>
#include <vector>

#include "bpf_loader.h"
#include "result.h"

namespace tcpka {

struct EndToEndSignal {
  std::string signal;  // "probe" or "kill_reset"
  bool seen = false;
  std::string detail;  // what the kernel and the application showed
};

struct EndToEnd {
  std::string where;  // where the connection ran
  std::vector<EndToEndSignal> signals;
};

// bpf: the keepalive programs, loaded and attached, its events not opened
// yet (this opens them). Proves the signals of plan that it observes among
// probe and kill_reset; takes about three seconds. An error when the
// connection itself could not be made.
Result<EndToEnd> prove_end_to_end(KeepaliveBpf& bpf, const Plan& plan);

}  // namespace tcpka
