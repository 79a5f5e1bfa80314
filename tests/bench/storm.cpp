// A bounded loopback load that drives many timers and state changes that are
// not keepalive, for tests/bench/bpf_cost.sh:
//  - PINGPONG connections exchange 32-byte requests and replies, each pair
//    pausing a random 1..250 ms between exchanges. Every exchange arms
//    retransmit/loss-probe and delayed-ACK timers that then expire with
//    nothing to do (timer_expire_entry/exit, not tcp_keepalive_timer).
//  - one thread churns connections at up to CHURN per second: connect,
//    accept, one exchange, close. Half close normally (FIN, TIME_WAIT), half
//    abortively (SO_LINGER 0: RST), which drives inet_sock_set_state,
//    tcp_destroy_sock, tcp_send_reset and tcp_receive_reset.
// usage: storm SECONDS PINGPONG CHURN
// Sets everything up, prints "ready", starts on SIGUSR1, runs SECONDS, prints
// "done exchanges=E churned=C", then waits for SIGTERM or SIGINT to exit.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <queue>
#include <random>
#include <thread>
#include <vector>

#include "bench_net.h"

namespace {

using Clock = std::chrono::steady_clock;

int listener(sockaddr_in* a) {
  const int l = bench::listen_loopback(4096, a);
  if (l < 0) {
    std::perror("listen");
    std::exit(1);
  }
  return l;
}

void churn(int l, sockaddr_in a, int rate, Clock::time_point end, std::atomic<long>& done) {
  const auto step = std::chrono::nanoseconds(1'000'000'000L / rate);
  auto next = Clock::now();
  char buf[16] = {};
  for (long i = 0; Clock::now() < end; ++i) {
    next += step;
    std::this_thread::sleep_until(next);
    int c, s;
    if (!bench::connect_pair(l, a, &c, &s)) {  // ports exhausted: back off briefly
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      next = Clock::now();
      continue;
    }
    if (write(c, buf, sizeof(buf)) != sizeof(buf) || read(s, buf, sizeof(buf)) <= 0 ||
        write(s, buf, sizeof(buf)) != sizeof(buf) || read(c, buf, sizeof(buf)) <= 0) {
      std::perror("churn exchange");
    }
    if (i % 2) {
      const linger lg{1, 0};
      setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c);
    close(s);
    done.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || std::atoi(argv[1]) <= 0 || std::atoi(argv[2]) <= 0 ||
      std::atoi(argv[2]) > 9000 || std::atoi(argv[3]) <= 0) {
    std::fprintf(stderr, "usage: %s SECONDS PINGPONG(1..9000) CHURN_PER_SECOND\n", argv[0]);
    return 2;
  }
  const int seconds = std::atoi(argv[1]);
  const int npp = std::atoi(argv[2]);
  const int rate = std::atoi(argv[3]);
  sigset_t set = bench::block_stop_signals({SIGUSR1});  // threads inherit the mask

  sockaddr_in pa, ca;
  const int pl = listener(&pa);
  const int cl = listener(&ca);
  // Ping-pong pairs: index i has client fds[2i] and server fds[2i+1].
  std::vector<int> fds;
  const int ep = epoll_create1(0);
  for (int i = 0; i < npp; ++i) {
    int c, s;
    if (!bench::connect_pair(pl, pa, &c, &s)) {
      std::perror("connect");
      return 1;
    }
    for (int fd : {c, s}) {
      fcntl(fd, F_SETFL, O_NONBLOCK);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(fds.size());
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      fds.push_back(fd);
    }
  }
  bench::print_ready();
  if (bench::wait_signal(set) != SIGUSR1) return 0;

  const auto end = Clock::now() + std::chrono::seconds(seconds);
  std::atomic<long> churned{0};
  std::thread churner(churn, cl, ca, rate, end, std::ref(churned));

  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> pause_ms(1, 250);
  using Due = std::pair<Clock::time_point, int>;  // when, pair index
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due;
  for (int i = 0; i < npp; ++i) due.emplace(Clock::now() + std::chrono::milliseconds(pause_ms(rng)), i);
  long exchanges = 0;
  char buf[32] = {};
  std::vector<epoll_event> evs(256);
  while (true) {
    auto now = Clock::now();
    if (now >= end) break;
    while (!due.empty() && due.top().first <= now) {
      const int i = due.top().second;
      due.pop();
      if (write(fds[2 * i], buf, sizeof(buf)) != sizeof(buf)) std::perror("request");
    }
    int timeout = 1;
    if (!due.empty()) {
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(due.top().first - now);
      timeout = static_cast<int>(std::max<long>(0, std::min<long>(wait.count(), 100)));
    }
    const int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), timeout);
    for (int k = 0; k < n; ++k) {
      const uint32_t idx = evs[k].data.u32;
      const ssize_t r = read(fds[idx], buf, sizeof(buf));
      if (r <= 0) continue;
      if (idx % 2) {  // server: answer
        if (write(fds[idx], buf, static_cast<size_t>(r)) != r) std::perror("reply");
      } else {  // client: got the reply, pause, then ask again
        ++exchanges;
        due.emplace(Clock::now() + std::chrono::milliseconds(pause_ms(rng)), static_cast<int>(idx / 2));
      }
    }
  }
  churner.join();
  std::printf("done exchanges=%ld churned=%ld\n", exchanges, churned.load());
  std::fflush(stdout);
  sigdelset(&set, SIGUSR1);
  bench::wait_signal(set);
  return 0;
}
