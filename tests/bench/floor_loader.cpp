// Loads and attaches the empty floor programs of floor.bpf.c, turns BPF run
// time statistics on (BPF_ENABLE_STATS: on while this process lives, for every
// program on the host, and off again when it exits however it exits, unlike
// the kernel.bpf_stats_enabled sysctl), prints "ready", and keeps all that
// until SIGTERM or SIGINT. Used by tests/bench/bpf_cost.sh.
#include <bpf/bpf.h>
#include <unistd.h>

#include <cstdio>

#include "bench_net.h"
#include "floor.skel.h"

int main() {
  const sigset_t stop = bench::block_stop_signals();

  const int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (stats_fd < 0) {
    std::fprintf(stderr, "floor: BPF_ENABLE_STATS failed (%d)\n", stats_fd);
    return 1;
  }
  floor_bpf* skel = floor_bpf__open_and_load();
  if (!skel) {
    std::fprintf(stderr, "floor: load failed\n");
    return 1;
  }
  if (floor_bpf__attach(skel) != 0) {
    std::fprintf(stderr, "floor: attach failed\n");
    floor_bpf__destroy(skel);
    return 1;
  }
  bench::print_ready();
  bench::wait_signal(stop);
  floor_bpf__destroy(skel);
  close(stats_fd);
  return 0;
}
