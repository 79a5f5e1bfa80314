// Loopback TCP set-up shared by the benchmark load tools (hold_sockets,
// storm, loadgen): a listener, connected pairs, keepalive every second, and
// the "ready" line the scripts wait for before they measure.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <initializer_list>

namespace bench {

// A listener on 127.0.0.1 with a port the kernel picks, returned in *addr;
// -1 with errno set on failure. type_flags are or-ed into the socket type
// (SOCK_CLOEXEC).
inline int listen_loopback(int backlog, sockaddr_in* addr, int type_flags = 0) {
  const int l = socket(AF_INET, SOCK_STREAM | type_flags, 0);
  if (l < 0) return -1;
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(*addr);
  if (bind(l, reinterpret_cast<sockaddr*>(addr), len) != 0 || listen(l, backlog) != 0 ||
      getsockname(l, reinterpret_cast<sockaddr*>(addr), &len) != 0) {
    const int e = errno;
    close(l);
    errno = e;
    return -1;
  }
  return l;
}

// SO_KEEPALIVE with TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, TCP_KEEPCNT=100: a probe
// about every second, and a live peer that answers it is never given up on.
inline bool keepalive_every_second(int fd) {
  const int on = 1, idle = 1, intvl = 1, cnt = 100;
  return setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) == 0;
}

struct PairOptions {
  bool keepalive = false;  // keepalive_every_second() on both ends
  int type_flags = 0;      // or-ed into both sockets' type (SOCK_CLOEXEC)
};

// One loopback connection to the listener l bound at addr: the connect()ed
// end in *c, the accept()ed end in *s. Keepalive is set on the client before
// connect() and on the server end as soon as it is accepted. On failure it
// closes what it opened and returns false with errno set.
inline bool connect_pair(int l, const sockaddr_in& addr, int* c, int* s, PairOptions o = {}) {
  *c = socket(AF_INET, SOCK_STREAM | o.type_flags, 0);
  if (*c < 0) return false;
  if ((o.keepalive && !keepalive_every_second(*c)) ||
      connect(*c, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = errno;
    close(*c);
    errno = e;
    return false;
  }
  *s = accept4(l, nullptr, nullptr, o.type_flags);
  if (*s < 0 || (o.keepalive && !keepalive_every_second(*s))) {
    const int e = errno;
    close(*c);
    if (*s >= 0) close(*s);
    errno = e;
    return false;
  }
  return true;
}

// Blocks SIGTERM, SIGINT and `extra` in this thread and in the threads it
// starts later, so that they end the process only through wait_signal(),
// never half-way through set-up by their default action.
inline sigset_t block_stop_signals(std::initializer_list<int> extra = {}) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  for (int sig : extra) sigaddset(&set, sig);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Prints "ready", the line the benchmark scripts wait for.
inline void print_ready() {
  std::printf("ready\n");
  std::fflush(stdout);
}

// Waits for one of the (blocked) signals of set; returns it.
inline int wait_signal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace bench
