// Test data shared by several unit-test files.
#pragma once

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "event.h"
#include "kernel_features.h"
#include "result.h"

namespace tcpka::testing_fixtures {

// An IPv4 event between two fixed addresses.
inline Event make_event(EventKind kind, Direction dir, uint16_t sport, uint16_t dport,
                        Outcome outcome = Outcome::kNone) {
  Event e;
  e.kind = kind;
  e.outcome = outcome;
  e.direction = dir;
  e.sock.netns = 4026531840u;
  e.sock.family = AF_INET;
  e.sock.saddr = "10.0.0.1";
  e.sock.daddr = "10.0.0.2";
  e.sock.sport = sport;
  e.sock.dport = dport;
  e.cookie = 1000u + sport;
  e.ts_ns = 1;
  return e;
}

// A kernel that has everything tcpka can use.
inline Features all_features() {
  Features f;
  f.btf = true;
  f.ksym_keepalive_timer = true;
  f.tp_timer_expire = true;
  f.tp_send_reset = true;
  f.rst_reason = true;
  f.tp_receive_reset = true;
  f.tp_destroy_sock = true;
  f.tp_set_state = true;
  f.rdonly_cast = true;
  f.cookie_helper = true;
  f.atomics = true;
  f.iter_task_file = true;
  f.iter_tcp_setsockopt = true;
  f.fentry = true;
  f.fentry_detail = "loads";
  f.kprobes = true;
  f.cgroup2 = "/sys/fs/cgroup";
  return f;
}

// Cgroups a test creates under the real cgroup2 mount, every one named
// "tcpka-unit-<pid>-<tag>", removed (deepest first) when this goes out of
// scope, also when the test fails. It never touches a directory it did not make.
class TempCgroups {
 public:
  explicit TempCgroups(std::string root) : root_(std::move(root)) {}
  TempCgroups(const TempCgroups&) = delete;
  TempCgroups& operator=(const TempCgroups&) = delete;
  ~TempCgroups() {
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) ::rmdir(it->c_str());
  }

  static std::string name(const std::string& tag) {
    return "tcpka-unit-" + std::to_string(::getpid()) + "-" + tag;
  }

  // Creates the cgroup `tag` under `parent_rel` ("" for the root, else a
  // path relative to the mount that this object made) and returns its path
  // relative to the mount: "/tcpka-unit-<pid>-<tag>".
  Result<std::string> make(const std::string& tag, const std::string& parent_rel = "") {
    const std::string rel = parent_rel + "/" + name(tag);
    const std::string path = root_ + rel;
    if (::mkdir(path.c_str(), 0755) != 0) {
      return Error{"mkdir " + path + ": " + std::strerror(errno)};
    }
    made_.push_back(path);
    return rel;
  }

  const std::string& root() const { return root_; }

 private:
  std::string root_;
  std::vector<std::string> made_;  // absolute paths, in creation order
};

}  // namespace tcpka::testing_fixtures
