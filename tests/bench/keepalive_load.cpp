// Holds N loopback TCP connections whose both ends probe with keepalive every
// second (SO_KEEPALIVE, TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, TCP_KEEPCNT=100): 2N
// probing sockets. The peers are alive, so every probe is answered. The
// connections are opened evenly over SPREAD_MS (default 1000), so their
// keepalive timers are spread over the second as on a host whose connections
// did not all start at once (0: all at once, one burst of expiries). Prints
// "ready" once every connection is established and waits for SIGTERM or
// SIGINT. Stays under the 20,000 open-file limit up to 9,000 connections.
// usage: keepalive_load CONNECTIONS [SPREAD_MS]   (tests/bench/bpf_cost.sh)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

bool keepalive_every_second(int fd) {
  const int on = 1, idle = 1, intvl = 1, cnt = 100;
  return setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || std::atoi(argv[1]) <= 0 || std::atoi(argv[1]) > 9000 ||
      (argc == 3 && std::atoi(argv[2]) < 0)) {
    std::fprintf(stderr, "usage: %s CONNECTIONS(1..9000) [SPREAD_MS]\n", argv[0]);
    return 2;
  }
  const int n = std::atoi(argv[1]);
  const auto spread = std::chrono::milliseconds(argc == 3 ? std::atoi(argv[2]) : 1000);
  const auto start = std::chrono::steady_clock::now();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, nullptr);

  const int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (l < 0 || bind(l, reinterpret_cast<sockaddr*>(&a), len) || listen(l, 4096) ||
      getsockname(l, reinterpret_cast<sockaddr*>(&a), &len)) {
    std::perror("listen");
    return 1;
  }
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    std::this_thread::sleep_until(start + spread * i / n);
    const int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || !keepalive_every_second(c) ||
        connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      std::perror("connect");
      return 1;
    }
    const int s = accept(l, nullptr, nullptr);
    if (s < 0 || !keepalive_every_second(s)) {
      std::perror("accept");
      return 1;
    }
    fds.push_back(c);
    fds.push_back(s);
  }
  std::printf("ready\n");
  std::fflush(stdout);
  int sig;
  sigwait(&set, &sig);
  return 0;
}
