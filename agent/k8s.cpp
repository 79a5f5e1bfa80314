#include "k8s.h"

#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace tcpka {

namespace {

bool all_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) &&
           !std::isupper(static_cast<unsigned char>(c));
  });
}

// A pod UID, 8-4-4-4-12 hex with '-' or (systemd) '_' separators; returned
// with dashes.
std::optional<std::string> as_uid(std::string_view s) {
  if (s.size() != 36) return std::nullopt;
  std::string out(s);
  for (size_t i = 0; i < out.size(); ++i) {
    const bool sep = i == 8 || i == 13 || i == 18 || i == 23;
    if (sep) {
      if (out[i] != '-' && out[i] != '_') return std::nullopt;
      out[i] = '-';
    } else if (!std::isxdigit(static_cast<unsigned char>(out[i]))) {
      return std::nullopt;
    }
  }
  return out;
}

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    std::string_view seg = path.substr(0, slash);
    if (!seg.empty()) out.push_back(seg);
    if (slash == std::string_view::npos) break;
    path = path.substr(slash + 1);
  }
  return out;
}

// "pod<uid>" possibly inside "kubepods-burstable-pod<uid>.slice".
std::optional<std::string> pod_uid_of(std::string_view seg) {
  if (seg.size() > 6 && seg.substr(seg.size() - 6) == ".slice") seg.remove_suffix(6);
  const size_t at = seg.rfind("pod");
  if (at == std::string_view::npos) return std::nullopt;
  if (at != 0 && seg[at - 1] != '-') return std::nullopt;
  return as_uid(seg.substr(at + 3));
}

std::string container_id_of(std::string_view seg) {
  if (seg.size() > 6 && seg.substr(seg.size() - 6) == ".scope") seg.remove_suffix(6);
  // CRI-O's monitor process is not the container.
  if (seg.rfind("crio-conmon-", 0) == 0) return "";
  for (std::string_view prefix : {"cri-containerd-", "crio-", "docker-", "containerd-"}) {
    if (seg.rfind(prefix, 0) == 0) {
      seg.remove_prefix(prefix.size());
      break;
    }
  }
  return seg.size() == 64 && all_hex(seg) ? std::string(seg) : "";
}

}  // namespace

std::optional<PodRef> parse_pod_cgroup(std::string_view cgroup_path) {
  const auto segs = segments(cgroup_path);
  for (size_t i = 0; i < segs.size(); ++i) {
    // The pod cgroup always sits under a kubepods cgroup.
    bool under_kubepods = false;
    for (size_t j = 0; j < i; ++j)
      under_kubepods |= segs[j].find("kubepods") != std::string_view::npos;
    if (!under_kubepods) continue;
    auto uid = pod_uid_of(segs[i]);
    if (!uid) continue;
    PodRef ref{*uid, ""};
    if (i + 1 < segs.size()) ref.container_id = container_id_of(segs[i + 1]);
    return ref;
  }
  return std::nullopt;
}

std::optional<std::pair<std::string, PodLabels>> parse_pod_log_dir(std::string_view name) {
  const size_t a = name.find('_');
  const size_t b = name.rfind('_');
  if (a == std::string_view::npos || a == b || a == 0 || b == a + 1) return std::nullopt;
  auto uid = as_uid(name.substr(b + 1));
  if (!uid) return std::nullopt;
  PodLabels l;
  l.namespace_ = std::string(name.substr(0, a));
  l.pod = std::string(name.substr(a + 1, b - a - 1));
  return std::make_pair(*uid, l);
}

std::optional<std::pair<std::string, PodLabels>> parse_container_log(std::string_view name) {
  if (name.size() < 5 || name.substr(name.size() - 4) != ".log") return std::nullopt;
  name.remove_suffix(4);
  const size_t dash = name.rfind('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const std::string_view id = name.substr(dash + 1);
  if (id.size() != 64 || !all_hex(id)) return std::nullopt;
  const std::string_view rest = name.substr(0, dash);
  const size_t a = rest.find('_');
  const size_t b = rest.find('_', a == std::string_view::npos ? 0 : a + 1);
  if (a == std::string_view::npos || b == std::string_view::npos || a == 0 || b == a + 1 ||
      b + 1 >= rest.size() || rest.find('_', b + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  PodLabels l;
  l.pod = std::string(rest.substr(0, a));
  l.namespace_ = std::string(rest.substr(a + 1, b - a - 1));
  l.container = std::string(rest.substr(b + 1));
  return std::make_pair(std::string(id), l);
}

PodResolver::PodResolver(std::string log_root, std::chrono::milliseconds min_rescan)
    : root_(std::move(log_root)), min_rescan_(min_rescan) {}

namespace {
std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') out.emplace_back(e->d_name);
  }
  ::closedir(d);
  return out;
}
}  // namespace

void PodResolver::rescan_locked() {
  pods_.clear();
  containers_.clear();
  for (const auto& name : list_dir(root_ + "/pods")) {
    if (auto p = parse_pod_log_dir(name)) pods_[p->first] = p->second;
  }
  for (const auto& name : list_dir(root_ + "/containers")) {
    if (auto c = parse_container_log(name)) containers_[c->first] = c->second.container;
  }
}

std::optional<PodLabels> PodResolver::labels(const std::string& cgroup_path) {
  if (root_.empty()) return std::nullopt;
  const auto ref = parse_pod_cgroup(cgroup_path);
  if (!ref) return std::nullopt;
  std::lock_guard lock(mu_);
  auto known = [&] {
    return pods_.count(ref->pod_uid) &&
           (ref->container_id.empty() || containers_.count(ref->container_id));
  };
  const auto now = std::chrono::steady_clock::now();
  // A new pod or container appears in the logs when it starts: rescan on a
  // miss, at most once per min_rescan_.
  if (!known() && (!scanned_ || now - last_scan_ >= min_rescan_)) {
    rescan_locked();
    last_scan_ = now;
    scanned_ = true;
  }
  auto pod = pods_.find(ref->pod_uid);
  if (pod == pods_.end()) return std::nullopt;
  PodLabels out = pod->second;
  if (auto c = containers_.find(ref->container_id); c != containers_.end())
    out.container = c->second;
  return out;
}

}  // namespace tcpka
