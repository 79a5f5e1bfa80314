// `tcpka watch`: the events as they happen, one line each.
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cgroup.h"
#include "commands.h"
#include "event.h"
#include "startup.h"
#include "state_tracker.h"

namespace tcpka {

int run_watch(const RunConfig& cfg, bool json) {
  SignalWaiter signals;
  int status = kExitCannotRun;
  const Features features = probe_features();
  auto attached = load_and_attach(cfg, features, &status);
  if (!attached) {
    std::fprintf(stderr, "tcpka: %s\n", attached.error().c_str());
    return status;
  }
  for (const auto& line : degraded_lines(attached->plan)) {
    std::fprintf(stderr, "tcpka: %s\n", line.c_str());
  }
  // The state tracker assigns socket cookies as connections establish, so
  // probe events of sockets opened from now on carry one (the kernel
  // assigns cookies lazily; the timer hooks cannot ask for one). Without
  // it (before Linux 5.12) events carry the cookies others asked for.
  std::unique_ptr<StateTracker> tracker;
  if (part_gap(features, Part::kStateTracker).empty()) {
    auto t = StateTracker::load({attached->plan.plain_loads, true, "", 0, 0});
    if (t) {
      tracker = std::move(t.value());
    } else {
      std::fprintf(stderr, "tcpka: the state tracker is off, events carry fewer cookies: %s\n",
                   t.error().c_str());
    }
  }
  CgroupResolver cgroups(find_cgroup2_mount().value_or(""));
  bool out_closed = false;
  auto r = attached->bpf->open_events([&](const void* data, size_t size) {
    Event e;
    if (!decode_event(data, size, &e) || e.kind == EventKind::kGone || out_closed) return;
    const std::string cg = cgroups.path(e.cgroup_id);
    const std::string line = json ? format_json(e, cg) : format_text(e, cg);
    if (std::fprintf(stdout, "%s\n", line.c_str()) < 0 || std::fflush(stdout) != 0) {
      out_closed = true;  // the reader went away (EPIPE): stop like `head` expects
    }
  });
  if (!r) {
    std::fprintf(stderr, "tcpka: %s\n", r.error().c_str());
    return 1;
  }
  // On stderr even with --json: it tells scripts that everything is attached.
  std::fprintf(stderr, "tcpka: watching (backend %s), Ctrl-C to stop\n",
               std::string(backend_name(attached->plan.backend)).c_str());
  while (!out_closed) {
    const int n = attached->bpf->poll(200);
    if (n < 0 && n != -EINTR) {
      std::fprintf(stderr, "tcpka: ring buffer poll failed: %s\n", strerror(-n));
      return 1;
    }
    const int sig = signals.wait(std::chrono::milliseconds(0));
    if (sig == SIGINT || sig == SIGTERM) break;
  }
  return 0;
}

}  // namespace tcpka
