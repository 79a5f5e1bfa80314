// The start-up sequence shared by run and watch: probe the kernel once, plan
// an attach path per signal, load, attach. Also the signal handling they
// share.
#pragma once

#include <signal.h>

#include <chrono>
#include <memory>

#include "bpf_loader.h"
#include "config.h"
#include "kernel_features.h"
#include "result.h"

namespace tcpka {

struct Attached {
  Plan plan;
  std::unique_ptr<KeepaliveBpf> bpf;
};

Result<Attached> load_and_attach(const RunConfig& cfg);

// Blocks SIGINT, SIGTERM and SIGHUP in this thread and every thread created
// after it, so they are only ever taken by wait().
class SignalWaiter {
 public:
  SignalWaiter();
  // The signal received, or 0 when the timeout passed first.
  int wait(std::chrono::milliseconds timeout);

 private:
  sigset_t set_{};
};

}  // namespace tcpka
