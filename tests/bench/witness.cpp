// tests/common/probe_witness.bpf.c for the sockets of this process's network
// namespace: prints "ready", and on SIGTERM or SIGINT one line
//   probes N tp_btf N raw_tp N tracepoint N
// (probes sent inside the keepalive-timer callbacks BPF was shown, by the
// kernel's own count; expiries as each attachment kind saw them, the
// classic tracepoint's "-" without tracefs).
// Used by tests/bench/probe_accuracy.sh. Signals and "ready" as bench_net.h has them.
#include <sys/stat.h>

#include <cstdio>
#include <exception>
#include <string>

#include "bench_net.h"
#include "probe_witness.h"

int main() {
  const sigset_t stop = bench::block_stop_signals();

  struct stat ns {};
  if (stat("/proc/self/ns/net", &ns) != 0) {
    std::perror("witness: /proc/self/ns/net");
    return 1;
  }
  try {
    tcpka::test::ProbeWitness w(static_cast<uint32_t>(ns.st_ino));
    bench::print_ready();
    bench::wait_signal(stop);
    const auto tp = w.expiries_tracepoint();
    std::printf("probes %llu tp_btf %llu raw_tp %llu tracepoint %s\n",
                static_cast<unsigned long long>(w.probes()),
                static_cast<unsigned long long>(w.expiries_tp_btf()),
                static_cast<unsigned long long>(w.expiries_raw_tp()),
                tp ? std::to_string(*tp).c_str() : "-");
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "witness: %s\n", e.what());
    return 1;
  }
  return 0;
}
