#include "cgroup.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace tcpka {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const char a = s[i + 1], b = s[i + 2], c = s[i + 3];
      if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        out += static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0'));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace

std::optional<std::string> cgroup2_mount_from_mountinfo(std::string_view text) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    auto f = split_spaces(line);
    // id parent maj:min root mountpoint options [optional...] - fstype source super
    size_t dash = 0;
    for (size_t i = 6; i < f.size(); ++i) {
      if (f[i] == "-") {
        dash = i;
        break;
      }
    }
    if (dash == 0 || dash + 1 >= f.size()) continue;
    if (f[dash + 1] == "cgroup2") return unescape_octal(f[4]);
  }
  return std::nullopt;
}

std::optional<std::string> find_cgroup2_mount() {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream ss;
  ss << in.rdbuf();
  return cgroup2_mount_from_mountinfo(ss.str());
}

Result<CgroupDir> resolve_cgroup_dir(std::string_view path, const std::string& root) {
  const std::string given(path);
  // Never let "" mean the mount itself, i.e. the root cgroup.
  if (given.empty()) return Error{"the cgroup path is empty"};
  if (root.empty()) return Error{"'" + given + "': this host has no cgroup v2 mount"};
  char real_root[PATH_MAX];
  if (!::realpath(root.c_str(), real_root)) {
    return Error{"cgroup2 mount " + root + ": " + strerror(errno)};
  }
  const std::string rootp = real_root;
  // An absolute path is tried as given, then under the mount; a relative
  // one only under the mount (never against the working directory).
  std::vector<std::string> tries;
  if (given[0] == '/') tries.push_back(given);
  tries.push_back(rootp + (given[0] == '/' ? "" : "/") + given);
  std::string candidate;
  char buf[PATH_MAX];
  for (const std::string& c : tries) {
    if (!::realpath(c.c_str(), buf)) continue;
    const std::string cand = buf;
    if (cand == rootp || (cand.size() > rootp.size() && cand.compare(0, rootp.size(), rootp) == 0 &&
                          cand[rootp.size()] == '/')) {
      candidate = cand;
      break;
    }
  }
  if (candidate.empty()) {
    return Error{"'" + given + "' is not a directory of the cgroup v2 hierarchy at " + rootp};
  }
  struct statfs fs {};
  struct stat st {};
  if (::statfs(candidate.c_str(), &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC ||
      ::stat(candidate.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error{"'" + given + "' is not a cgroup v2 directory"};
  }
  CgroupDir d;
  d.abs = candidate;
  d.rel = candidate == rootp ? "/" : candidate.substr(rootp.size());
  d.id = st.st_ino;
  for (char c : d.rel) d.level += c == '/';
  if (d.rel == "/") d.level = 0;
  return d;
}

CgroupResolver::CgroupResolver(std::string root, std::chrono::milliseconds min_rescan)
    : root_(std::move(root)), min_rescan_(min_rescan) {}

std::string CgroupResolver::path(uint64_t id) {
  if (root_.empty()) return "";
  std::lock_guard lock(mu_);
  if (auto it = by_id_.find(id); it != by_id_.end()) return it->second;
  const auto now = std::chrono::steady_clock::now();
  if (auto m = missing_.find(id); m != missing_.end()) {
    // A scan did not find it: its cgroup is gone. Try again only after a
    // while (a scan may have raced removals around it), and within the
    // budget of scans, so ids of vanished cgroups cannot make us scan on
    // every event.
    if (now - m->second < kRetryMissing || (scanned_ && now - last_scan_ < min_rescan_)) {
      return "";
    }
  }
  // An id never looked up is almost always a cgroup created since the last
  // scan: scan now, whatever the budget, or its first events would be filed
  // under "unknown". That happened whenever another miss had just used the
  // budget, and it made tests miscount the first probe of a fresh cgroup.
  // The cost is bounded by how fast cgroups are created.
  rescan_locked();
  last_scan_ = now;
  scanned_ = true;
  if (auto it = by_id_.find(id); it != by_id_.end()) {
    missing_.erase(id);
    return it->second;
  }
  if (missing_.size() >= kMaxMissing) missing_.clear();
  missing_[id] = now;
  return "";
}

bool CgroupResolver::exists(std::string_view rel) const {
  if (root_.empty()) return false;
  struct stat st {};
  const std::string full = root_ + std::string(rel);
  return ::stat(full.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void CgroupResolver::rescan_locked() {
  namespace fs = std::filesystem;
  by_id_.clear();
  struct stat st {};
  if (::stat(root_.c_str(), &st) == 0) by_id_[st.st_ino] = "/";
  // A hand-written walk, not recursive_directory_iterator: cgroups come and
  // go while we read, and that iterator ends the whole walk at the first
  // directory that vanished under it. Here a vanished directory is skipped.
  std::vector<std::string> pending = {""};  // relative paths still to list
  while (!pending.empty()) {
    const std::string rel = std::move(pending.back());
    pending.pop_back();
    std::error_code ec;
    for (fs::directory_iterator it(root_ + rel, ec), end; !ec && it != end; it.increment(ec)) {
      if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
      const std::string child = rel + "/" + it->path().filename().string();
      if (::stat((root_ + child).c_str(), &st) != 0) continue;
      by_id_[st.st_ino] = child;
      pending.push_back(child);
    }
  }
}

}  // namespace tcpka
