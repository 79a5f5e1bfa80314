// Holds N loopback TCP connections (2N sockets) open until SIGTERM or SIGINT,
// so the benchmarks can measure at a given socket count. Prints "ready" once
// every connection is established. Stays under the 20,000 open-file limit up
// to 9,000 connections: run several for more (tests/bench/lib.sh does).
//   --keepalive     both ends of every connection probe every second
//                   (SO_KEEPALIVE, TCP_KEEPIDLE=1, TCP_KEEPINTVL=1,
//                   TCP_KEEPCNT=100): 2N probing sockets. The peers are alive,
//                   so every probe is answered.
//   --print-port    prints "port P" (the listener's port) before "ready", so a
//                   benchmark can drop its packets (bpf_cost.sh, halfopen)
//   --spread-ms MS  opens the connections evenly over MS milliseconds, so
//                   their keepalive timers spread over the second as on a host
//                   whose connections did not all start at once (default 0:
//                   all at once, one burst of expiries).
// usage: tcpka_hold_sockets [--keepalive] [--print-port] [--spread-ms MS] CONNECTIONS
//        (tests/bench/lib.sh, keepalive_scale.sh, bpf_cost.sh)
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "bench_net.h"

namespace {

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--keepalive] [--print-port] [--spread-ms MS] CONNECTIONS(1..9000)\n",
               argv0);
  return 2;
}

// A whole number from lo to hi, or -1.
long number(const char* s, long lo, long hi) {
  char* end;
  errno = 0;
  const long v = std::strtol(s, &end, 10);
  return (end == s || *end || errno || v < lo || v > hi) ? -1 : v;
}

}  // namespace

int main(int argc, char** argv) {
  bool keepalive = false, print_port = false;
  long spread_ms = 0, n = -1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--keepalive") == 0) {
      keepalive = true;
    } else if (std::strcmp(argv[i], "--print-port") == 0) {
      print_port = true;
    } else if (std::strcmp(argv[i], "--spread-ms") == 0 && i + 1 < argc) {
      if ((spread_ms = number(argv[++i], 0, 3'600'000)) < 0) return usage(argv[0]);
    } else if (n < 0) {
      if ((n = number(argv[i], 1, 9000)) < 0) return usage(argv[0]);
    } else {
      return usage(argv[0]);
    }
  }
  if (n < 0) return usage(argv[0]);

  const auto start = std::chrono::steady_clock::now();
  const auto spread = std::chrono::milliseconds(spread_ms);
  const sigset_t stop = bench::block_stop_signals();
  sockaddr_in addr;
  const int l = bench::listen_loopback(4096, &addr);
  if (l < 0) {
    std::perror("listen");
    return 1;
  }
  for (long i = 0; i < n; ++i) {
    std::this_thread::sleep_until(start + spread * i / n);
    int c, s;  // both held open until the process exits
    if (!bench::connect_pair(l, addr, &c, &s, {.keepalive = keepalive})) {
      std::perror("connect");
      return 1;
    }
  }
  if (print_port) std::printf("port %u\n", ntohs(addr.sin_port));
  bench::print_ready();
  bench::wait_signal(stop);
  return 0;
}
