// The self-check's reading of every network namespace's counters
// (agent/self_check.h, read_netns_counts), timed: what the agent's main
// thread spends per --self-check-interval. Usage: tcpka_self_check_cost
// [ROUNDS]; prints tasks, namespaces and the mean and worst time per read.
// Run it with many tasks and namespaces around (tests/bench/RESULTS.md).
#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "self_check.h"

namespace {

size_t count_tasks() {
  size_t n = 0;
  DIR* proc = opendir("/proc");
  if (!proc) return 0;
  while (dirent* p = readdir(proc)) {
    if (p->d_name[0] < '0' || p->d_name[0] > '9') continue;
    DIR* tasks = opendir(("/proc/" + std::string(p->d_name) + "/task").c_str());
    if (!tasks) continue;
    while (dirent* t = readdir(tasks)) n += t->d_name[0] >= '0' && t->d_name[0] <= '9';
    closedir(tasks);
  }
  closedir(proc);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 50;
  double total = 0, worst = 0;
  size_t namespaces = 0;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    namespaces = tcpka::read_netns_counts().size();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    total += ms;
    worst = std::max(worst, ms);
  }
  std::printf("tasks %zu namespaces %zu: %.2f ms per read (worst %.2f) over %d rounds\n",
              count_tasks(), namespaces, total / rounds, worst, rounds);
  return 0;
}
