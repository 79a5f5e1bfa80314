#include "self_check.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <iterator>
#include <optional>
#include <vector>

namespace tcpka {

namespace {

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::optional<uint64_t> number(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

bool is_number(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<std::string> numeric_entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (is_number(e->d_name)) out.emplace_back(e->d_name);
  }
  closedir(d);
  return out;
}

}  // namespace

Result<NetstatCounts> parse_netstat(std::string_view text) {
  // "TcpExt: name name ...\nTcpExt: value value ...\n": the first TcpExt
  // line names the columns, the second holds them.
  std::optional<std::vector<std::string_view>> names;
  std::optional<uint64_t> keepalive, aborts;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.rfind("TcpExt:", 0) != 0) continue;
    auto w = words(line.substr(7));
    if (!names) {
      names = std::move(w);
      continue;
    }
    if (w.size() != names->size()) return Error{"TcpExt: names and values differ in number"};
    for (size_t i = 0; i < w.size(); ++i) {
      if ((*names)[i] == "TCPKeepAlive") keepalive = number(w[i]);
      if ((*names)[i] == "TCPAbortOnTimeout") aborts = number(w[i]);
    }
    break;
  }
  if (!keepalive || !aborts) return Error{"TcpExt: no TCPKeepAlive or TCPAbortOnTimeout value"};
  return NetstatCounts{*keepalive, *aborts};
}

NetnsCounts read_netns_counts(const std::string& proc) {
  NetnsCounts out;
  for (const auto& pid : numeric_entries(proc)) {
    const std::string task_dir = proc + "/" + pid + "/task";
    for (const auto& tid : numeric_entries(task_dir)) {
      const std::string netstat = task_dir + "/" + tid + "/net/netstat";
      // Each network namespace has its own proc entry for netstat, so the
      // file's inode names the namespace. Its ns/net link would too, but
      // following that link needs ptrace rights over the task (the
      // DaemonSet has none over other pods' processes); the file does not.
      struct stat st {};
      if (stat(netstat.c_str(), &st) != 0) continue;
      const uint64_t ns = st.st_ino;
      if (out.count(ns)) continue;
      std::ifstream f(netstat);
      const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      // A task that exited between the two reads: another of the
      // namespace's tasks may still be read.
      if (auto counts = parse_netstat(text)) out.emplace(ns, *counts);
    }
  }
  return out;
}

SelfCheck::Window SelfCheck::feed(const NetnsCounts& kernel, uint64_t agent_probes,
                                  uint64_t agent_timeouts) {
  if (!started_) {
    started_ = true;
    prev_ = kernel;
    agent_base_ = agent_probes_ = agent_probes;
    timeouts_base_ = agent_timeouts_ = agent_timeouts;
    return last_ = Window{};
  }
  Window w;
  uint64_t timeouts = 0;
  for (const auto& [ns, now] : kernel) {
    auto it = prev_.find(ns);
    // A namespace first seen now is only a baseline: what it counted
    // before cannot be told from what it counted in this window. One whose
    // counters went back is a new namespace with a reused inode.
    if (it == prev_.end() || now.keepalive < it->second.keepalive ||
        now.abort_on_timeout < it->second.abort_on_timeout) {
      continue;
    }
    w.kernel_probes += now.keepalive - it->second.keepalive;
    timeouts += now.abort_on_timeout - it->second.abort_on_timeout;
  }
  prev_ = kernel;
  w.agent_probes = agent_probes >= agent_probes_ ? agent_probes - agent_probes_ : 0;
  agent_probes_ = agent_probes;
  agent_timeouts_ = agent_timeouts;
  // The agent also sees namespaces the kernel side cannot read (no task
  // in them, or one not yet seen at the window's start): its surplus is
  // normal. Only this window's surplus is carried, so it cannot hide a
  // later blindness for longer than one window.
  const uint64_t available = w.agent_probes + carry_;
  w.unseen = w.kernel_probes > available ? w.kernel_probes - available : 0;
  carry_ = std::min(available > w.kernel_probes ? available - w.kernel_probes : 0, w.agent_probes);
  kernel_probes_ += w.kernel_probes;
  kernel_timeouts_ += timeouts;
  unseen_total_ += w.unseen;
  return last_ = w;
}

}  // namespace tcpka
