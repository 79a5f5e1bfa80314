// Test data shared by several unit-test files.
#pragma once

#include <sys/socket.h>

#include <cstdint>

#include "event.h"
#include "kernel_features.h"

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
  f.tp_error_report = true;
  f.tp_receive_reset = true;
  f.tp_destroy_sock = true;
  f.fentry = true;
  f.fentry_detail = "loads";
  f.kprobes = true;
  f.cgroup2 = "/sys/fs/cgroup";
  return f;
}

}  // namespace tcpka::testing_fixtures
