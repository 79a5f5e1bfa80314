// Holds N loopback TCP connections (2N sockets) open until SIGTERM, so the
// benchmarks can measure the audit at a given socket count. Prints "ready"
// once every connection is established. Each process stays under the
// 20,000 open-file limit: run several for larger counts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CONNECTIONS\n", argv[0]);
    return 2;
  }
  const int n = std::atoi(argv[1]);
  const int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(l, reinterpret_cast<sockaddr*>(&a), len) || listen(l, 4096) ||
      getsockname(l, reinterpret_cast<sockaddr*>(&a), &len)) {
    std::perror("listen");
    return 1;
  }
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    const int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      std::perror("connect");
      return 1;
    }
    const int s = accept(l, nullptr, nullptr);
    if (s < 0) {
      std::perror("accept");
      return 1;
    }
    fds.push_back(c);
    fds.push_back(s);
  }
  std::printf("ready\n");
  std::fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int sig;
  sigwait(&set, &sig);
  return 0;
}
