#include "startup.h"

#include <cerrno>
#include <ctime>

namespace tcpka {

Result<Attached> load_and_attach(const RunConfig& cfg) {
  const Features features = probe_features();
  auto plan = plan_for(features, cfg.backend);
  if (!plan) return Error{plan.error()};
  LoadOptions opts{*plan, cfg.ringbuf_bytes, cfg.max_sockets};
  auto bpf = KeepaliveBpf::load(opts);
  if (!bpf) return Error{bpf.error()};
  if (auto a = bpf.value()->attach(); !a) return Error{a.error()};
  return Attached{std::move(plan.value()), std::move(bpf.value())};
}

SignalWaiter::SignalWaiter() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  sigaddset(&set_, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  // Writes to a closed socket or pipe must fail with EPIPE, not kill us.
  signal(SIGPIPE, SIG_IGN);
}

int SignalWaiter::wait(std::chrono::milliseconds timeout) {
  timespec ts{static_cast<time_t>(timeout.count() / 1000),
              static_cast<long>((timeout.count() % 1000) * 1000000)};
  for (;;) {
    const int sig = sigtimedwait(&set_, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;
    if (errno != EINTR) return 0;
  }
}

}  // namespace tcpka
