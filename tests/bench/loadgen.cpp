// Load generator for the all-in overhead benchmarks (tests/bench/overhead.sh,
// tests/bench/scrape.sh). Loopback only; every mode but `ports` ends on its own.
//
//   tcpka_bench_loadgen rr SECONDS CONNS
//     Request/response ping-pong of 64-byte messages over CONNS loopback
//     connections (TCP_NODELAY, one message in flight per connection): one
//     client thread and one echo-server thread, each with epoll. Prints the
//     transactions per second.
//   tcpka_bench_loadgen churn SECONDS [THREADS]
//     Connection churn: THREADS (default 2) client threads each loop
//     connect / wait for the server's FIN / close, while as many server
//     threads loop accept / close. The server closes first, so the TIME_WAIT
//     sockets are on the listener's side and a client's ephemeral port is
//     free again as soon as its socket closes. Prints the connections per
//     second.
//   tcpka_bench_loadgen ports N
//     N listeners on distinct ports, one connection to each, keepalive on both
//     ends (TCP_KEEPIDLE=1 TCP_KEEPINTVL=1 TCP_KEEPCNT=100): every socket
//     sends a probe about every second and its peer answers it. Prints "ready"
//     and waits for SIGTERM or SIGINT. Uses 3N open files (20,000 per process
//     allowed: N at most 6,000 or so).
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_net.h"

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "tcpka_bench_loadgen: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

// A listener on 127.0.0.1 with a port the kernel picks, returned in *addr.
int listen_any(int backlog, sockaddr_in* addr) {
  const int l = bench::listen_loopback(backlog, addr, SOCK_CLOEXEC);
  if (l < 0) die("listen");
  return l;
}

// One loopback connection to l: the client end in *c, the server end in *s.
void connect_pair(int l, const sockaddr_in& addr, int* c, int* s, bool keepalive = false) {
  if (!bench::connect_pair(l, addr, c, s, {.keepalive = keepalive, .type_flags = SOCK_CLOEXEC})) {
    die("connect");
  }
}

int connect_to(const sockaddr_in& a) {
  const int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0) die("socket");
  if (connect(c, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) die("connect");
  return c;
}

void set_int(int fd, int level, int opt, int value, const char* what) {
  if (setsockopt(fd, level, opt, &value, sizeof(value)) != 0) die(what);
}

void set_nonblock(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) die("fcntl");
}

// Writes all of buf to a non-blocking socket; with one small message in flight
// per connection the send buffer never fills, so EAGAIN is only retried.
void write_all(int fd, const char* buf, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      die("write");
    }
    buf += w;
    n -= static_cast<size_t>(w);
  }
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// --- rr ---------------------------------------------------------------------

constexpr size_t kMsg = 64;

int rr(int seconds, int conns) {
  sockaddr_in addr;
  const int l = listen_any(conns, &addr);
  std::vector<int> cli, srv;
  for (int i = 0; i < conns; ++i) {
    int c, s;
    connect_pair(l, addr, &c, &s);
    cli.push_back(c);
    srv.push_back(s);
  }
  close(l);
  for (int fd : cli) set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
  for (int fd : srv) set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");

  std::atomic<bool> stop{false};
  // Echo server: writes back whatever arrives, until stop.
  std::thread server([&] {
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    for (int fd : srv) {
      set_nonblock(fd);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
    }
    std::vector<epoll_event> evs(static_cast<size_t>(conns));
    char buf[4096];
    while (!stop.load(std::memory_order_relaxed)) {
      const int n = epoll_wait(ep, evs.data(), conns, 50);
      for (int i = 0; i < n; ++i) {
        const int fd = evs[i].data.fd;
        const ssize_t r = read(fd, buf, sizeof(buf));
        if (r > 0) {
          write_all(fd, buf, static_cast<size_t>(r));
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        }
      }
    }
    close(ep);
  });

  // Client: one message in flight per connection; a transaction is one whole
  // 64-byte reply.
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  std::vector<size_t> got(static_cast<size_t>(conns), 0);
  char msg[kMsg];
  std::memset(msg, 'x', sizeof(msg));
  for (int i = 0; i < conns; ++i) {
    set_nonblock(cli[i]);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cli[i], &ev) != 0) die("epoll_ctl");
  }
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::seconds(seconds);
  for (int fd : cli) write_all(fd, msg, kMsg);
  uint64_t done = 0;
  std::vector<epoll_event> evs(static_cast<size_t>(conns));
  char buf[4096];
  while (Clock::now() < deadline) {
    const int n = epoll_wait(ep, evs.data(), conns, 50);
    for (int i = 0; i < n; ++i) {
      const uint32_t c = evs[i].data.u32;
      const ssize_t r = read(cli[c], buf, sizeof(buf));
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) die("rr read");
      got[c] += static_cast<size_t>(r);
      if (got[c] >= kMsg) {  // one in flight: a whole reply, never more
        got[c] -= kMsg;
        ++done;
        write_all(cli[c], msg, kMsg);
      }
    }
  }
  const double elapsed = seconds_since(t0);
  stop = true;
  server.join();
  close(ep);
  for (int fd : cli) close(fd);
  for (int fd : srv) close(fd);
  std::printf("%.0f\n", static_cast<double>(done) / elapsed);
  std::fprintf(stderr, "rr: %llu transactions in %.3f s over %d connections\n",
               static_cast<unsigned long long>(done), elapsed, conns);
  return 0;
}

// --- churn ------------------------------------------------------------------

int churn(int seconds, int threads) {
  sockaddr_in addr;
  const int l = listen_any(4096, &addr);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> total{0};
  std::vector<std::thread> servers, clients;
  for (int t = 0; t < threads; ++t) {
    servers.emplace_back([&] {
      for (;;) {
        const int s = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
        if (s < 0) {
          if (stop.load()) return;  // shutdown(l) woke us
          if (errno == EINTR || errno == ECONNABORTED) continue;
          die("accept");
        }
        close(s);  // the server closes first: FIN to the client
      }
    });
  }
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::seconds(seconds);
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&] {
      uint64_t n = 0;
      char b;
      while (Clock::now() < deadline) {
        const int c = connect_to(addr);
        ssize_t r;
        while ((r = read(c, &b, 1)) < 0 && errno == EINTR) {
        }
        if (r != 0) die("churn read");  // expect EOF
        close(c);
        ++n;
      }
      total += n;
    });
  }
  for (auto& c : clients) c.join();
  const double elapsed = seconds_since(t0);
  stop = true;
  shutdown(l, SHUT_RDWR);
  for (auto& s : servers) s.join();
  close(l);
  std::printf("%.0f\n", static_cast<double>(total.load()) / elapsed);
  std::fprintf(stderr, "churn: %llu connections in %.3f s, %d client threads\n",
               static_cast<unsigned long long>(total.load()), elapsed, threads);
  return 0;
}

// --- ports ------------------------------------------------------------------

int ports(int n) {
  // Signals blocked before any socket exists: SIGTERM during set-up still
  // ends us through the wait below, never half-way by default action.
  const sigset_t stop = bench::block_stop_signals();
  for (int i = 0; i < n; ++i) {
    sockaddr_in addr;
    // A non-zero backlog: accepted sockets inherit it and count as inbound.
    const int l = listen_any(4, &addr);
    int c, s;  // all three held open until the process exits
    connect_pair(l, addr, &c, &s, /*keepalive=*/true);
  }
  bench::print_ready();
  bench::wait_signal(stop);
  return 0;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s rr SECONDS CONNS\n"
               "       %s churn SECONDS [THREADS]\n"
               "       %s ports N\n",
               argv0, argv0, argv0);
  return 2;
}

int positive(const char* s) {
  char* end;
  const long v = std::strtol(s, &end, 10);
  return (*end || v <= 0 || v > 1000000) ? -1 : static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc < 3) return usage(argv[0]);
  const std::string_view mode = argv[1];
  const int a = positive(argv[2]);
  if (a < 0) return usage(argv[0]);
  if (mode == "rr" && argc == 4) {
    const int conns = positive(argv[3]);
    return conns < 0 ? usage(argv[0]) : rr(a, conns);
  }
  if (mode == "churn" && (argc == 3 || argc == 4)) {
    const int threads = argc == 4 ? positive(argv[3]) : 2;
    return threads < 0 ? usage(argv[0]) : churn(a, threads);
  }
  if (mode == "ports" && argc == 3) return ports(a);
  return usage(argv[0]);
}
