// Pod attribution without the API server: a socket's cgroup path names the
// pod (by UID) and the container (by runtime ID) on a Kubernetes node; the
// kubelet's log directories name them.
//   /var/log/pods/<namespace>_<pod>_<pod-uid>/<container>/N.log
//   /var/log/containers/<pod>_<namespace>_<container>-<container-id>.log
// Cgroup layouts understood (cgroup v2; anywhere in the path, so nested
// kubelet roots and kind nodes work too):
//   systemd driver:  .../kubepods[-<qos>]-pod<uid with _>.slice/<runtime>-<id>.scope
//                    (runtime: cri-containerd, crio, docker)
//   cgroupfs driver: .../kubepods[/<qos>]/pod<uid>/[crio-]<id>
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace tcpka {

struct PodRef {
  std::string pod_uid;       // with dashes
  std::string container_id;  // 64 hex, "" for the pod-level cgroup
};

// The pod UID and container ID in a cgroup path; nullopt outside pods.
std::optional<PodRef> parse_pod_cgroup(std::string_view cgroup_path);

struct PodLabels {
  std::string namespace_;
  std::string pod;
  std::string container;  // "" when the container has no log (the pause container)
  bool operator==(const PodLabels&) const = default;
};

// "<namespace>_<pod>_<uid>" of /var/log/pods.
std::optional<std::pair<std::string, PodLabels>> parse_pod_log_dir(std::string_view name);
// "<pod>_<namespace>_<container>-<id>.log" of /var/log/containers: (id, labels).
std::optional<std::pair<std::string, PodLabels>> parse_container_log(std::string_view name);

// Resolves a cgroup path to pod labels (nullopt outside pods).
using PodLabeler = std::function<std::optional<PodLabels>(const std::string& cgroup)>;

// Appends namespace, pod and container to a label list when the cgroup is a
// pod's; labels stay as they were on hosts without Kubernetes.
template <typename LabelList>
void add_pod_labels(LabelList& labels, const PodLabeler& labeler, const std::string& cgroup) {
  if (!labeler) return;
  if (auto p = labeler(cgroup)) {
    labels.push_back({"container", p->container});
    labels.push_back({"namespace", p->namespace_});
    labels.push_back({"pod", p->pod});
  }
}

class PodResolver {
 public:
  // log_root: where pods/ and containers/ are ("/var/log"); "" disables.
  explicit PodResolver(std::string log_root,
                       std::chrono::milliseconds min_rescan = std::chrono::seconds(1));
  // nullopt for cgroups outside pods, and for pods the node has no logs of.
  std::optional<PodLabels> labels(const std::string& cgroup_path);

 private:
  void rescan_locked();

  std::string root_;
  std::chrono::milliseconds min_rescan_;
  std::mutex mu_;
  std::map<std::string, PodLabels> pods_;          // uid -> namespace, pod
  std::map<std::string, std::string> containers_;  // id -> container name
  std::chrono::steady_clock::time_point last_scan_{};
  bool scanned_ = false;
};

}  // namespace tcpka
