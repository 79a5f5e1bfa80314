// The socket audit: every TCP socket a process holds, its owner, state age
// and effective keepalive, as rows that `tcpka audit`, /sockets and the
// gauges of `tcpka run` share. Decoding, filtering and formatting are pure;
// AuditBpf owns the kernel side.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bpf_loader.h"
#include "event.h"
#include "k8s.h"
#include "result.h"
#include "state_tracker.h"
#include "tcpka.h"

struct audit_bpf;
struct bpf_link;
struct bpf_map;

namespace tcpka {

struct AuditRow {
  SocketKey key;
  std::string state;  // "established", "close_wait", ...
  uint64_t cookie = 0;  // 0 when the kernel has not assigned one
  // Which socket (its kernel address): one socket held by several processes
  // is one row. Never shown.
  uint64_t sock = 0;
  uint64_t cgroup_id = 0;
  std::string cgroup;  // "" when unknown
  Direction direction = Direction::kUnknown;  // not in the JSON: the agent attributes probes by it
  uint32_t pid = 0;
  uint32_t fd = 0;
  std::string comm;
  bool keepalive = false;
  uint32_t keepalive_idle = 0;  // effective, seconds
  uint32_t keepalive_intvl = 0;
  uint32_t keepalive_cnt = 0;
  unsigned probes_out = 0;
  double idle_seconds = 0;                  // since the last data received
  std::optional<double> state_seconds;      // since the state began, when seen happen
  std::optional<double> state_seconds_min;  // at least this (first seen), otherwise
  std::optional<uint64_t> probes_sent;      // seen by a running agent
  std::optional<uint64_t> kills;
  std::optional<PodLabels> pod;  // on Kubernetes nodes
};

struct AuditFilter {
  std::optional<std::string> state;
  std::optional<double> min_age;    // state age known to be at least this
  bool no_keepalive = false;        // only sockets without SO_KEEPALIVE
  std::optional<double> idle_over;  // idle_seconds at least this
};

// Kernel HZ, from the resolution of the coarse clocks (one tick).
unsigned kernel_hz();

// Whether this process is in the host's (initial) pid namespace. The scan
// (iter/task_file) walks the tasks of the pid namespace that creates it: in
// any other, it shows only that namespace's processes and their sockets.
bool in_initial_pid_namespace();

// Raw record to row; cgroup_path resolves the cgroup id.
AuditRow decode_rec(const tka_sock_rec& rec, unsigned hz,
                    const std::function<std::string(uint64_t)>& cgroup_path);
// The same into an existing row (every field set; its strings' storage reused).
void decode_into(const tka_sock_rec& rec, unsigned hz, const std::string& cgroup, AuditRow& row);
// One row per socket (a socket shared by several processes is listed with
// the lowest pid), sorted by state then addresses.
// display_order false: by socket, which is enough for counting (the agent's
// periodic scan) and skips the sort on address strings.
std::vector<AuditRow> dedupe(std::vector<AuditRow> rows, bool display_order = true);
// The rows dedupe() would give for the records of one scan, decoded one at
// a time into the same row and handed to fn in order: no vector of rows.
void for_each_row(const std::vector<tka_sock_rec>& recs, unsigned hz,
                  const std::function<std::string(uint64_t)>& cgroup_path, bool display_order,
                  const std::function<void(AuditRow&)>& fn);
// for_each_row into a vector.
std::vector<AuditRow> decode_scan(const std::vector<tka_sock_rec>& recs, unsigned hz,
                                  const std::function<std::string(uint64_t)>& cgroup_path,
                                  bool display_order = true);

bool matches(const AuditRow& row, const AuditFilter& f);
// The known state age: exact, else the lower bound, else nullopt.
std::optional<double> state_age(const AuditRow& row);

// "state" must name a TCP state ("close_wait"); numbers non-negative.
Result<void> validate_filter(const AuditFilter& f);
// /sockets?state=close_wait&min-age=60&no-keepalive&idle-over=300 (also
// with underscores).
Result<AuditFilter> parse_filter_query(std::string_view query);

std::string rows_to_json(const std::vector<AuditRow>& rows);
std::string rows_to_table(const std::vector<AuditRow>& rows);

// rows_to_json (json) or rows_to_table, a row at a time, appended to out:
// the caller may write out and clear it between rows.
class RowText {
 public:
  RowText(bool json, std::string& out);  // appends the opening or the header
  void add(const AuditRow& row);
  void finish();  // appends the closing

 private:
  void add_json(const AuditRow& row);
  void add_line(const AuditRow& row);
  bool json_;
  std::string& out_;
  size_t rows_ = 0;
};

struct AuditOptions {
  bool plain_loads = false;      // the TKA_RO=1 build (Plan::plain_loads)
  bool mark_first_seen = false;  // the scan records first sightings (the agent)
  // Pinned map of first sightings (tka_seen) shared between the agent and
  // `tcpka audit`; "" = none. The state tracker's maps are looked for beside
  // it when no tracker is given.
  std::string state_pin;
  // The state tracker of this process, whose CLOSE_WAIT records the scan
  // reads; nullptr: the pinned ones, else none (no exact CLOSE_WAIT ages).
  const StateTracker* tracker = nullptr;
};

// The socket scan (audit.bpf.c): one pass of iter/task_file over every
// process's TCP sockets.
class AuditBpf {
 public:
  // In the probe-read build where the kernel refuses the plain-load one
  // (load_either_build; build_note() says so).
  static Result<std::unique_ptr<AuditBpf>> load(const AuditOptions& opts);
  // "" when the planned build loaded, else which one did and why.
  const std::string& build_note() const { return build_note_; }
  ~AuditBpf();
  AuditBpf(const AuditBpf&) = delete;
  AuditBpf& operator=(const AuditBpf&) = delete;

  // One pass of the iterator over every process's TCP sockets. With
  // mark_first_seen, the first sightings of sockets this pass did not see
  // (they are gone) are removed after it.
  Result<std::vector<tka_sock_rec>> scan();
  std::vector<ProgramState> programs() const;
  // First sightings not recorded: the map was full.
  uint64_t drops() const;
  // true: leave the map of first sightings pinned on exit, for the next agent.
  void keep_pin(bool keep) { keep_pin_ = keep; }

 private:
  AuditBpf() = default;
  Result<void> prune_seen(uint64_t gen);
  static Result<std::unique_ptr<AuditBpf>> load_build(const AuditOptions& opts, bool plain);
  audit_bpf* skel_ = nullptr;
  std::string build_note_;
  bpf_link* iter_link_ = nullptr;
  bool mark_first_seen_ = false;
  std::string pinned_;  // the path we pinned (or reused) and remove again
  std::atomic<bool> keep_pin_{false};
};

// Where the agent pins its map of first sightings when bpffs is mounted; the
// state tracker's maps are beside it.
inline constexpr const char* kStatePin = "/sys/fs/bpf/tcpka/sockstate";
// The names of the state tracker's pins in kStatePin's directory: the
// CLOSE_WAIT slots and the entries that did not fit in them.
inline constexpr const char* kCloseWaitPinName = "closewait";
inline constexpr const char* kCloseWaitMorePinName = "closewait_more";
// kStatePin if bpffs is mounted at /sys/fs/bpf, else "".
std::string state_pin_if_possible();
// Its directory, where the state tracker pins its maps; "" likewise.
std::string state_dir_if_possible();

// Reuses the map pinned at path for map when it has the same layout
// (type, key and value size, and size unless any_size); true when reused.
bool reuse_pinned(const std::string& path, bpf_map* map, bool any_size);

}  // namespace tcpka
