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
#include "tcpka.h"

struct audit_bpf;
struct ring_buffer;
struct bpf_link;

namespace tcpka {

struct AuditRow {
  SocketKey key;
  std::string state;  // "established", "close_wait", ...
  uint64_t cookie = 0;
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
// display_order false: by cookie, which is enough for counting (the agent's
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
  bool track_states = false;     // load tka_set_state (the agent)
  bool mark_first_seen = false;  // iterator records first sightings
  // Pinned state map shared between the agent and `tcpka audit`; "" = none.
  std::string state_pin;
  // false: load tka_set_state (when tracking) but do not attach it (check).
  bool attach = true;
  // Size of the CLOSE_WAIT duration ring (tka_cw_events); 0: the built-in 256 KiB.
  uint32_t cw_ringbuf_bytes = 0;
  // Slots for CLOSE_WAIT entry times (tka_cw_slots, a power of two); 0: the
  // built-in 1024 when tracking, else the size of the pinned map reused.
  uint32_t cw_slots = 0;
};

class AuditBpf {
 public:
  static Result<std::unique_ptr<AuditBpf>> load(const AuditOptions& opts);
  ~AuditBpf();
  AuditBpf(const AuditBpf&) = delete;
  AuditBpf& operator=(const AuditBpf&) = delete;

  // One pass of the iterator over every process's TCP sockets.
  Result<std::vector<tka_sock_rec>> scan();
  // CLOSE_WAIT durations (seconds, cgroup id) as sockets leave the state.
  Result<void> open_events(std::function<void(double, uint64_t)> sink);
  // Waits up to timeout_ms (events wake the reader only when a quarter of
  // the ring is waiting), then reads what is there; returns events or -errno.
  int poll(int timeout_ms);
  // Reads what is in the ring without waiting.
  int consume();
  std::vector<ProgramState> programs() const;
  std::array<uint64_t, 2> drops() const;  // storage allocation, ring buffer
  // true: leave the state map and slots pinned on exit, for the next agent.
  void keep_pin(bool keep) { keep_pin_ = keep; }

 private:
  AuditBpf() = default;
  audit_bpf* skel_ = nullptr;
  bpf_link* iter_link_ = nullptr;
  bpf_link* state_link_ = nullptr;
  ring_buffer* rb_ = nullptr;
  std::function<void(double, uint64_t)> sink_;
  std::vector<std::string> pinned_;  // paths we pinned (or reused) and remove again
  std::atomic<bool> keep_pin_{false};
};

// Where the agent pins its state map when bpffs is mounted.
inline constexpr const char* kStatePin = "/sys/fs/bpf/tcpka/sockstate";
// Its CLOSE_WAIT slots, beside it (the file name under kStatePin's directory).
inline constexpr const char* kCloseWaitPinName = "closewait";
// kStatePin if bpffs is mounted at /sys/fs/bpf, else "".
std::string state_pin_if_possible();

}  // namespace tcpka
