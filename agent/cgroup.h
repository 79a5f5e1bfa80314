// cgroup v2: where the hierarchy is mounted, and cgroup id -> path.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "result.h"

namespace tcpka {

// The mount point of the cgroup2 file system in a /proc/PID/mountinfo text,
// octal escapes (\040) decoded. nullopt when there is none.
std::optional<std::string> cgroup2_mount_from_mountinfo(std::string_view mountinfo);

// The same for this process, reading /proc/self/mountinfo.
std::optional<std::string> find_cgroup2_mount();

// A cgroup v2 directory named by the user.
struct CgroupDir {
  std::string abs;     // absolute path of the directory
  std::string rel;     // relative to the cgroup2 mount, leading slash ("/" for the root)
  uint64_t id = 0;     // the kernel's cgroup id (inode number)
  uint32_t level = 0;  // depth below the root (root = 0)
};

// `path` is absolute, or relative to the cgroup2 mount ("/system.slice/x");
// it must be a directory of the cgroup2 mount at `root`.
Result<CgroupDir> resolve_cgroup_dir(std::string_view path, const std::string& root);

// Maps the cgroup ids the kernel reports (the kernfs node id, which is the
// inode number of the cgroup's directory) to paths relative to the cgroup2
// mount with a leading slash, as /proc/PID/cgroup shows them.
class CgroupResolver {
 public:
  // An empty root means "no cgroup2 on this host": every id resolves to "".
  // min_rescan: the least time between two scans made to look again for an
  // id a scan did not find (a new id is always scanned for at once).
  explicit CgroupResolver(std::string root,
                          std::chrono::milliseconds min_rescan = std::chrono::milliseconds(50));

  // "" when the id is unknown even after a rescan (the cgroup is gone).
  std::string path(uint64_t id);
  // Whether a relative path ("/a/b") is still a cgroup directory.
  bool exists(std::string_view rel) const;
  const std::string& root() const { return root_; }

 private:
  void rescan_locked();

  std::string root_;
  std::chrono::milliseconds min_rescan_;
  std::mutex mu_;
  std::unordered_map<uint64_t, std::string> by_id_;
  // Ids a scan did not find, and when: not rescanned for until kRetryMissing.
  static constexpr std::chrono::seconds kRetryMissing{1};
  static constexpr size_t kMaxMissing = 4096;
  std::unordered_map<uint64_t, std::chrono::steady_clock::time_point> missing_;
  std::chrono::steady_clock::time_point last_scan_{};
  bool scanned_ = false;
};

}  // namespace tcpka
