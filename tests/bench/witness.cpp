// tests/common/probe_witness.bpf.c for the sockets of this process's network
// namespace: prints "ready", and on SIGTERM or SIGINT one line
//   probes N tp_btf N raw_tp N tracepoint N
// (probes sent inside the keepalive-timer callbacks BPF was shown, by the
// kernel's own count; expiries as each attachment kind saw them).
// Used by tests/bench/probe_accuracy.sh.
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <exception>

#include "probe_witness.h"

int main() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, nullptr);

  struct stat ns {};
  if (stat("/proc/self/ns/net", &ns) != 0) {
    std::perror("witness: /proc/self/ns/net");
    return 1;
  }
  try {
    tcpka::test::ProbeWitness w(static_cast<uint32_t>(ns.st_ino));
    std::printf("ready\n");
    std::fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    std::printf("probes %llu tp_btf %llu raw_tp %llu tracepoint %llu\n",
                static_cast<unsigned long long>(w.probes()),
                static_cast<unsigned long long>(w.expiries_tp_btf()),
                static_cast<unsigned long long>(w.expiries_raw_tp()),
                static_cast<unsigned long long>(w.expiries_tracepoint()));
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "witness: %s\n", e.what());
    return 1;
  }
  return 0;
}
