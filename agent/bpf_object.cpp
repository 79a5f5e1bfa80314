#include "bpf_object.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string_view>
#include <vector>

namespace tcpka {

namespace {

// libbpf reports through a global print callback; we keep what it says
// during a load so a failure can quote the verifier instead of a bare errno.
std::mutex g_log_mu;
std::string g_log;

int capture_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[1024];
  const int n = vsnprintf(buf, sizeof(buf), fmt, args);
  std::lock_guard lock(g_log_mu);
  g_log += buf;
  if (g_log.size() > (1u << 20)) g_log.erase(0, g_log.size() - (1u << 19));
  return n;
}

}  // namespace

void capture_libbpf_log() {
  libbpf_set_print(capture_print);
}

std::string take_log_tail(size_t lines) {
  std::lock_guard lock(g_log_mu);
  std::vector<std::string> all;
  std::stringstream ss(g_log);
  for (std::string l; std::getline(ss, l);) all.push_back(l);
  g_log.clear();
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    out += "\n  " + all[i];
  }
  return out;
}

std::string errstr(int err) {
  return strerror(err < 0 ? -err : err);
}

int poll_ring(ring_buffer* rb, int timeout_ms) {
  const int woken = ring_buffer__poll(rb, timeout_ms);
  if (woken < 0) return woken;
  const int rest = ring_buffer__consume(rb);
  return rest < 0 ? rest : woken + rest;
}

namespace {

bool test_refuse_listed(const std::string& name) {
  const char* env = std::getenv("TCPKA_TEST_REFUSE");
  if (!env) return false;
  std::string_view list(env);
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

bool test_refuses(Part p) {
  return test_refuse_listed(std::string(part_name(p)));
}

bool test_refuses_plain(Part p) {
  return test_refuse_listed("plain:" + std::string(part_name(p)));
}

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

bool test_blind(std::string_view signal) {
  const char* env = std::getenv("TCPKA_TEST_BLIND");
  return env && signal == env;
}

void load_as_refused(bpf_object* obj) {
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    bpf_program__set_type(prog, BPF_PROG_TYPE_SOCKET_FILTER);
  }
}

}  // namespace tcpka
