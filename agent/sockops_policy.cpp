#include "sockops_policy.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "bpf_object.h"
#include "sockops.skel.h"

namespace tcpka {

namespace {

bool bpffs_mounted(const char* dir) {
  struct statfs fs {};
  return ::statfs(dir, &fs) == 0 && fs.f_type == BPF_FS_MAGIC;
}

// Number of tka_sockops programs attached directly to the cgroup.
int our_programs_on(int cgroup_fd) {
  __u32 ids[64];
  __u32 count = 64;
  __u32 flags = 0;
  if (bpf_prog_query(cgroup_fd, BPF_CGROUP_SOCK_OPS, 0, &flags, ids, &count) != 0) return 0;
  int ours = 0;
  for (__u32 i = 0; i < count; ++i) {
    const int fd = bpf_prog_get_fd_by_id(ids[i]);
    if (fd < 0) continue;
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && std::string(info.name) == "tka_sockops") {
      ++ours;
    }
    ::close(fd);
  }
  return ours;
}

// Opens and loads sockops.bpf.c with only `program` autoloaded.
Result<sockops_bpf*> load_sockops(const char* program, const tka_policy& values) {
  capture_libbpf_log();
  sockops_bpf* skel = sockops_bpf__open();
  if (!skel) return Error{"opening the sockops BPF object failed: " + errstr(errno)};
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel->obj) {
    bpf_program__set_autoload(prog, std::string(bpf_program__name(prog)) == program);
  }
  if (test_refuses(Part::kPolicies)) load_as_refused(skel->obj);
  if (int err = sockops_bpf__load(skel); err) {
    sockops_bpf__destroy(skel);
    return Error{std::string("loading ") + program + " failed: " + errstr(err) + take_log_tail(25)};
  }
  take_log_tail(0);
  const __u32 zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel->maps.tka_policy_map), &zero, &values, BPF_ANY) != 0) {
    const int err = errno;
    sockops_bpf__destroy(skel);
    return Error{"writing the keepalive policy map failed: " + errstr(err)};
  }
  return skel;
}

}  // namespace

tka_policy ResolvedPolicy::to_bpf() const {
  tka_policy p{};
  p.idle = spec.idle;
  p.intvl = spec.intvl;
  p.cnt = spec.cnt;
  p.directions = (spec.direction != "outbound" ? TKA_POLICY_INBOUND : 0) |
                 (spec.direction != "inbound" ? TKA_POLICY_OUTBOUND : 0);
  p.override = spec.override ? 1 : 0;
  p.cgroup_id = dir.id;
  p.cgroup_level = dir.level;
  return p;
}

Result<ResolvedPolicy> resolve_policy(const PolicySpec& spec, const std::string& root) {
  auto dir = resolve_cgroup_dir(spec.cgroup, root);
  if (!dir) return Error{dir.error()};
  return ResolvedPolicy{spec, *dir};
}

std::string pin_path(uint64_t cgroup_id) {
  return std::string(kPinDir) + "/keepalive-" + std::to_string(cgroup_id);
}

Result<std::unique_ptr<SockopsPolicy>> SockopsPolicy::attach(const ResolvedPolicy& p,
                                                             bool persist) {
  std::unique_ptr<SockopsPolicy> self(new SockopsPolicy());
  self->persist_ = persist;
  self->policy_ = p;
  auto skel = load_sockops("tka_sockops", p.to_bpf());
  if (!skel) return Error{skel.error()};
  self->skel_ = *skel;
  const std::string where = "cgroup " + p.dir.rel;

  self->cgroup_fd_ = ::open(p.dir.abs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (self->cgroup_fd_ < 0) return Error{where + ": " + errstr(errno)};
  // The lock is on the cgroup directory itself, held as long as we own the
  // policy: it is the same inode for every process on the host, whatever
  // its mount namespace, and the kernel drops it when the holder dies. So a
  // start can never take a policy from an agent that is still running.
  if (::flock(self->cgroup_fd_, LOCK_EX | LOCK_NB) != 0) {
    return Error{where + " already has a tcpka keepalive policy held by another running agent"};
  }
  const int cg_fd = self->cgroup_fd_;

  const std::string pin = pin_path(p.dir.id);
  bpf_program* prog = self->skel_->progs.tka_sockops;
  if (persist && !bpffs_mounted("/sys/fs/bpf")) {
    return Error{"--keepalive-persist: no bpffs at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)"};
  }
  if (::access(pin.c_str(), F_OK) == 0) {
    // An earlier persistent run: swap its program for ours in place, so
    // the cgroup is never without a policy and never has two.
    bpf_link* link = bpf_link__open(pin.c_str());
    if (!link) return Error{where + ": opening pinned link " + pin + ": " + errstr(errno)};
    self->link_ = link;
    if (int err = bpf_link__update_program(link, prog); err) {
      return Error{where + ": replacing the pinned policy failed: " + errstr(err)};
    }
    if (!persist && bpf_link__unpin(link) != 0) {
      return Error{where + ": unpinning " + pin + ": " + errstr(errno)};
    }
    return self;
  }
  // We hold the lock, so a program still there belongs to an agent that
  // died moments ago (its link goes with its last fd) or to another tool.
  for (int i = 0; our_programs_on(cg_fd) > 0; ++i) {
    if (i == 20) return Error{where + " has a tka_sockops program that is not ours"};
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  bpf_link* link = bpf_program__attach_cgroup(prog, cg_fd);
  if (!link) return Error{where + ": attaching sockops failed: " + errstr(errno)};
  self->link_ = link;
  if (persist) {
    ::mkdir(kPinDir, 0700);
    if (int err = bpf_link__pin(link, pin.c_str()); err) {
      return Error{where + ": pinning " + pin + " failed: " + errstr(err)};
    }
  }
  return self;
}

SockopsPolicy::~SockopsPolicy() {
  if (link_) {
    // A pinned link outlives us; otherwise closing its last fd detaches it.
    if (persist_) bpf_link__disconnect(link_);
    bpf_link__destroy(link_);
  }
  if (skel_) sockops_bpf__destroy(skel_);
  if (cgroup_fd_ >= 0) ::close(cgroup_fd_);  // releases the flock
}

Result<void> SockopsPolicy::update(const ResolvedPolicy& p) {
  const tka_policy values = p.to_bpf();
  const __u32 zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.tka_policy_map), &zero, &values, BPF_ANY)) {
    return Error{"updating the policy of " + p.dir.rel + ": " + errstr(errno)};
  }
  policy_ = p;
  return {};
}

std::array<uint64_t, TKA_SO__COUNT> SockopsPolicy::stats() const {
  std::array<uint64_t, TKA_SO__COUNT> out{};
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = __atomic_load_n(&skel_->bss->tka_so_stats[i], __ATOMIC_RELAXED);
  }
  return out;
}

ProgramState SockopsPolicy::state() const {
  // Still attached? A removed cgroup, or `keepalive remove` on a pinned
  // policy, detaches the link under us: the kernel then reports no cgroup.
  bool attached = false;
  if (link_) {
    bpf_link_info info{};
    __u32 len = sizeof(info);
    attached = bpf_obj_get_info_by_fd(bpf_link__fd(link_), &info, &len) == 0 &&
               info.cgroup.cgroup_id != 0;
  }
  return ProgramState{"tka_sockops", "sockops:" + policy_.dir.rel, attached};
}

Result<void> PolicySet::reconcile(const std::vector<ResolvedPolicy>& wanted) {
  std::lock_guard lock(mu_);
  std::set<uint64_t> keep;
  for (const auto& p : wanted) {
    keep.insert(p.dir.id);
    auto it = by_cgroup_.find(p.dir.id);
    if (it != by_cgroup_.end()) {
      if (auto r = it->second->update(p); !r) return r;
      continue;
    }
    auto attached = SockopsPolicy::attach(p, persist_);
    if (!attached) return Error{attached.error()};
    by_cgroup_.emplace(p.dir.id, std::move(attached.value()));
  }
  for (auto it = by_cgroup_.begin(); it != by_cgroup_.end();) {
    if (keep.count(it->first)) {
      ++it;
      continue;
    }
    // Dropped from the configuration: it goes even in persist mode.
    if (persist_) {
      if (auto r = remove_persistent(it->second->policy().dir); !r) return Error{r.error()};
    }
    it = by_cgroup_.erase(it);
  }
  return {};
}

std::vector<PolicySet::Stats> PolicySet::stats() const {
  std::lock_guard lock(mu_);
  std::vector<Stats> out;
  for (const auto& [id, pol] : by_cgroup_) {
    out.push_back(Stats{pol->policy().dir.rel, pol->stats(), pol->state()});
  }
  return out;
}

Result<void> probe_sockops_load(const char* program) {
  auto skel = load_sockops(program, tka_policy{});
  if (!skel) return Error{skel.error()};
  sockops_bpf__destroy(*skel);
  return {};
}

Result<bool> remove_persistent(const CgroupDir& dir) {
  const std::string pin = pin_path(dir.id);
  if (::access(pin.c_str(), F_OK) != 0) return false;
  bpf_link* link = bpf_link__open(pin.c_str());
  if (!link) return Error{"opening " + pin + ": " + errstr(errno)};
  // Detach first: the link stays attached while anything holds it open.
  const int err = bpf_link__detach(link);
  const int unpin = bpf_link__unpin(link);
  bpf_link__destroy(link);
  if (err) return Error{"detaching " + pin + ": " + errstr(err)};
  if (unpin) return Error{"unpinning " + pin + ": " + errstr(unpin)};
  return true;
}

namespace {

// Network namespaces (inode -> an open fd) used by the processes of a
// cgroup tree, plus our own.
std::map<uint64_t, int> netns_of_cgroup(const std::string& dir) {
  std::map<uint64_t, int> out;
  auto add = [&](const std::string& ns_path) {
    const int fd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0) return;
    if (::fstat(fd, &st) != 0 || !out.emplace(st.st_ino, fd).second) ::close(fd);
  };
  add("/proc/thread-self/ns/net");
  std::error_code ec;
  std::vector<std::string> dirs = {dir};
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) dirs.push_back(it->path().string());
  }
  for (const auto& d : dirs) {
    std::ifstream procs(d + "/cgroup.procs");
    for (std::string pid; std::getline(procs, pid);) add("/proc/" + pid + "/ns/net");
  }
  return out;
}

}  // namespace

Result<ApplyResult> apply_to_existing(const ResolvedPolicy& p) {
  auto skel = load_sockops("tka_iter_apply", p.to_bpf());
  if (!skel) return Error{skel.error()};
  std::unique_ptr<sockops_bpf, void (*)(sockops_bpf*)> guard(*skel, sockops_bpf__destroy);
  bpf_link* link = bpf_program__attach_iter(guard->progs.tka_iter_apply, nullptr);
  if (!link) return Error{"attaching the tcp iterator failed: " + errstr(errno)};
  std::unique_ptr<bpf_link, int (*)(bpf_link*)> link_guard(link, bpf_link__destroy);

  ApplyResult result;
  std::string failure;
  auto namespaces = netns_of_cgroup(p.dir.abs);
  for (const auto& [inode, ns_fd] : namespaces) {
    if (!failure.empty()) break;
    // iter/tcp walks the network namespace of whoever creates the iterator:
    // enter each one in a thread of its own and leave ours untouched.
    std::thread worker([&, fd = ns_fd] {
      if (::setns(fd, CLONE_NEWNET) != 0) {
        failure = "setns: " + errstr(errno);
        return;
      }
      const int it = bpf_iter_create(bpf_link__fd(link));
      if (it < 0) {
        failure = "bpf_iter_create: " + errstr(errno);
        return;
      }
      std::string text;
      char buf[8192];
      for (ssize_t n; (n = ::read(it, buf, sizeof(buf))) > 0;) text.append(buf, n);
      ::close(it);
      std::istringstream lines(text);
      unsigned sport, dport;
      int res;
      while (lines >> sport >> dport >> res) {
        if (res == TKA_APPLY_SET) ++result.applied;
        if (res == TKA_APPLY_KEPT) ++result.kept;
        if (res == TKA_APPLY_ERROR) ++result.errors;
      }
      ++result.netns;
    });
    worker.join();
  }
  for (const auto& [inode, ns_fd] : namespaces) ::close(ns_fd);
  if (!failure.empty()) return Error{failure};
  return result;
}

}  // namespace tcpka
