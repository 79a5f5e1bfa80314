#include "audit.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <numeric>
#include <unordered_map>

#include "audit.skel.h"
#include "audit_compat.skel.h"
#include "bpf_object.h"

namespace tcpka {

namespace {

bool known_state(std::string_view s) {
  for (unsigned i = 1; i <= 13; ++i) {
    if (tcp_state_name(i) == s) return true;
  }
  return false;
}

Result<double> parse_seconds(std::string_view key, std::string_view v) {
  double out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || !std::isfinite(out) ||
      out < 0) {
    return Error{std::string(key) + ": '" + std::string(v) + "' is not a number of seconds >= 0"};
  }
  return out;
}

}  // namespace

unsigned kernel_hz() {
  timespec res{};
  if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0 || res.tv_sec != 0 || res.tv_nsec <= 0) {
    return 250;  // unreachable on Linux; a sane default rather than a division by zero
  }
  return static_cast<unsigned>(std::lround(1e9 / static_cast<double>(res.tv_nsec)));
}

bool in_initial_pid_namespace() {
  // The initial pid namespace has a fixed inode number (PROC_PID_INIT_INO,
  // include/linux/proc_ns.h); every other one gets a new one.
  constexpr ino_t kInitialPidNs = 0xEFFFFFFC;
  struct stat st {};
  return stat("/proc/self/ns/pid", &st) == 0 && st.st_ino == kInitialPidNs;
}

void decode_into(const tka_sock_rec& r, unsigned hz, const std::string& cgroup, AuditRow& row) {
  // Assigned field by field: a reused row keeps its strings' capacity.
  row.key = make_socket_key(r.netns, r.family, r.saddr, r.daddr, r.sport, r.dport);
  row.state.assign(tcp_state_name(r.state));
  row.cookie = r.cookie;
  row.sock = r.sk;
  row.cgroup_id = r.cgroup_id;
  row.cgroup.assign(cgroup);
  row.direction = r.direction <= TKA_DIR_OUTBOUND ? static_cast<Direction>(r.direction)
                                                  : Direction::kUnknown;
  row.pid = r.pid;
  row.fd = r.fd;
  row.comm.assign(r.comm, strnlen(r.comm, sizeof(r.comm)));
  row.keepalive = r.ka_on != 0;
  row.keepalive_idle = r.ka_time_j / hz;
  row.keepalive_intvl = r.ka_intvl_j / hz;
  row.keepalive_cnt = r.ka_probes;
  row.probes_out = r.probes_out;
  // A listener never receives data itself: its lrcvtime is 0, and "idle
  // since boot" would make every listener match --idle-over.
  row.idle_seconds = row.state == "listen" ? 0 : static_cast<double>(r.lastrcv_j) / hz;
  row.state_seconds.reset();
  row.state_seconds_min.reset();
  if (r.since_ns && r.now_ns >= r.since_ns) {
    const double age = static_cast<double>(r.now_ns - r.since_ns) / 1e9;
    if (r.since_exact) {
      row.state_seconds = age;
    } else {
      row.state_seconds_min = age;
    }
  }
  row.probes_sent.reset();
  row.kills.reset();
  row.pod.reset();
}

AuditRow decode_rec(const tka_sock_rec& r, unsigned hz,
                    const std::function<std::string(uint64_t)>& cgroup_path) {
  AuditRow row;
  decode_into(r, hz, cgroup_path(r.cgroup_id), row);
  return row;
}

namespace {

// What dedupe orders by, copied out of the rows (or records) into one small
// array: the sorts compared fields of rows 400 bytes apart, and the cache
// misses and string comparisons were most of an audit's user-space time.
struct OrderKey {
  uint64_t sock;
  uint32_t pid, fd, netns;
  uint16_t sport, dport;
  uint32_t state;  // rank of the state's name among the names present
  uint32_t idx;
};

// Ranks state names by their text, as the display order compares them.
class StateRanks {
 public:
  uint32_t intern(std::string_view name) {
    // Real rows carry one of the 14 names of tcp_state_name().
    for (uint32_t i = 0; i < names_.size(); ++i) {
      if (names_[i] == name) return i;
    }
    names_.push_back(name);
    return static_cast<uint32_t>(names_.size() - 1);
  }
  // Replaces each interned number by the name's rank in text order.
  void rank(std::vector<OrderKey>& keys) const {
    std::vector<uint32_t> by_text(names_.size());
    std::iota(by_text.begin(), by_text.end(), 0u);
    std::sort(by_text.begin(), by_text.end(),
              [&](uint32_t a, uint32_t b) { return names_[a] < names_[b]; });
    std::vector<uint32_t> rank_of(names_.size());
    for (uint32_t r = 0; r < by_text.size(); ++r) rank_of[by_text[r]] = r;
    for (auto& k : keys) k.state = rank_of[k.state];
  }

 private:
  std::vector<std::string_view> names_;
};

// The indices dedupe keeps, in its order. tie_less(x, y) orders two entries
// whose state, namespace and ports are equal: by addresses, then pid.
template <typename TieLess>
std::vector<uint32_t> dedupe_order(std::vector<OrderKey> keys, const StateRanks& states,
                                   bool display_order, TieLess tie_less) {
  std::sort(keys.begin(), keys.end(), [](const OrderKey& a, const OrderKey& b) {
    return std::tie(a.sock, a.pid, a.fd, a.idx) < std::tie(b.sock, b.pid, b.fd, b.idx);
  });
  keys.erase(std::unique(keys.begin(), keys.end(),
                         [](const OrderKey& a, const OrderKey& b) { return a.sock == b.sock; }),
             keys.end());
  if (display_order) {
    states.rank(keys);
    std::sort(keys.begin(), keys.end(), [&](const OrderKey& a, const OrderKey& b) {
      if (std::tie(a.state, a.netns, a.sport, a.dport) !=
          std::tie(b.state, b.netns, b.sport, b.dport)) {
        return std::tie(a.state, a.netns, a.sport, a.dport) <
               std::tie(b.state, b.netns, b.sport, b.dport);
      }
      return tie_less(a.idx, b.idx);
    });
  } else {
    // Counting only: the entries' own order.
    std::sort(keys.begin(), keys.end(),
              [](const OrderKey& a, const OrderKey& b) { return a.idx < b.idx; });
  }
  std::vector<uint32_t> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) out[i] = keys[i].idx;
  return out;
}

std::vector<uint32_t> scan_order(const std::vector<tka_sock_rec>& recs, bool display_order) {
  std::vector<OrderKey> keys(recs.size());
  StateRanks states;
  for (uint32_t i = 0; i < recs.size(); ++i) {
    const tka_sock_rec& r = recs[i];
    keys[i] = {
        r.sk, r.pid, r.fd, r.netns, r.sport, r.dport, states.intern(tcp_state_name(r.state)),
        i};
  }
  return dedupe_order(std::move(keys), states, display_order, [&](uint32_t x, uint32_t y) {
    const tka_sock_rec &a = recs[x], &b = recs[y];
    // Rare (equal ports in one namespace and state): the addresses as text,
    // as the rows compare them.
    const SocketKey ka = make_socket_key(a.netns, a.family, a.saddr, a.daddr, a.sport, a.dport);
    const SocketKey kb = make_socket_key(b.netns, b.family, b.saddr, b.daddr, b.sport, b.dport);
    return std::tie(ka.saddr, ka.daddr, a.pid) < std::tie(kb.saddr, kb.daddr, b.pid);
  });
}

}  // namespace

std::vector<AuditRow> dedupe(std::vector<AuditRow> rows, bool display_order) {
  std::vector<OrderKey> keys(rows.size());
  StateRanks states;
  for (uint32_t i = 0; i < rows.size(); ++i) {
    const AuditRow& r = rows[i];
    keys[i] = {r.sock, r.pid, r.fd, r.key.netns, r.key.sport, r.key.dport, states.intern(r.state),
               i};
  }
  const std::vector<uint32_t> order =
      dedupe_order(std::move(keys), states, display_order, [&](uint32_t x, uint32_t y) {
        const AuditRow &a = rows[x], &b = rows[y];
        return std::tie(a.key.saddr, a.key.daddr, a.pid) <
               std::tie(b.key.saddr, b.key.daddr, b.pid);
      });
  std::vector<AuditRow> out;
  out.reserve(order.size());
  for (uint32_t i : order) out.push_back(std::move(rows[i]));
  return out;
}

void for_each_row(const std::vector<tka_sock_rec>& recs, unsigned hz,
                  const std::function<std::string(uint64_t)>& cgroup_path, bool display_order,
                  const std::function<void(AuditRow&)>& fn) {
  // Records come grouped by process, so mostly by cgroup: remember the last.
  // In display order they interleave: each id is resolved once.
  std::unordered_map<uint64_t, std::string> paths;
  const std::string* last = nullptr;
  uint64_t last_id = 0;
  AuditRow row;
  for (uint32_t i : scan_order(recs, display_order)) {
    const tka_sock_rec& r = recs[i];
    if (!last || r.cgroup_id != last_id) {
      auto it = paths.find(r.cgroup_id);
      if (it == paths.end()) it = paths.emplace(r.cgroup_id, cgroup_path(r.cgroup_id)).first;
      last = &it->second;
      last_id = r.cgroup_id;
    }
    decode_into(r, hz, *last, row);
    fn(row);
  }
}

std::vector<AuditRow> decode_scan(const std::vector<tka_sock_rec>& recs, unsigned hz,
                                  const std::function<std::string(uint64_t)>& cgroup_path,
                                  bool display_order) {
  std::vector<AuditRow> rows;
  rows.reserve(recs.size());
  for_each_row(recs, hz, cgroup_path, display_order,
               [&](AuditRow& row) { rows.push_back(std::move(row)); });
  return rows;
}

std::optional<double> state_age(const AuditRow& row) {
  return row.state_seconds ? row.state_seconds : row.state_seconds_min;
}

bool matches(const AuditRow& row, const AuditFilter& f) {
  if (f.state && row.state != *f.state) return false;
  if (f.no_keepalive && row.keepalive) return false;
  if (f.idle_over && row.idle_seconds < *f.idle_over) return false;
  if (f.min_age) {
    const auto age = state_age(row);
    if (!age || *age < *f.min_age) return false;
  }
  return true;
}

Result<void> validate_filter(const AuditFilter& f) {
  if (f.state && !known_state(*f.state)) {
    return Error{"--state: '" + *f.state +
                 "' is not a TCP state (established, syn_sent, syn_recv, fin_wait1, fin_wait2, "
                 "time_wait, close, close_wait, last_ack, listen, closing)"};
  }
  if (f.min_age && (!std::isfinite(*f.min_age) || *f.min_age < 0)) {
    return Error{"--min-age: must be a number of seconds >= 0"};
  }
  if (f.idle_over && (!std::isfinite(*f.idle_over) || *f.idle_over < 0)) {
    return Error{"--idle-over: must be a number of seconds >= 0"};
  }
  return {};
}

Result<AuditFilter> parse_filter_query(std::string_view query) {
  AuditFilter f;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string given(item.substr(0, eq));
    std::string key = given;
    std::string_view val = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
    std::replace(key.begin(), key.end(), '_', '-');
    if (key == "state") {
      f.state = std::string(val);
    } else if (key == "min-age") {
      auto v = parse_seconds("min-age", val);
      if (!v) return Error{v.error()};
      f.min_age = *v;
    } else if (key == "idle-over") {
      auto v = parse_seconds("idle-over", val);
      if (!v) return Error{v.error()};
      f.idle_over = *v;
    } else if (key == "no-keepalive") {
      if (!val.empty() && val != "1" && val != "true") {
        return Error{"no-keepalive: '" + std::string(val) + "' is not true"};
      }
      f.no_keepalive = true;
    } else {
      return Error{"unknown parameter '" + given + "'"};
    }
  }
  if (auto v = validate_filter(f); !v) return Error{v.error()};
  return f;
}

namespace {

// Appends JSON fragments without temporaries: at tens of thousands of rows
// the allocations of string concatenation were most of the audit's time.
class JsonOut {
 public:
  explicit JsonOut(std::string& out) : out_(out) {}
  // The separator, the quoted name and the colon, as one literal.
  void key(std::string_view sep_name_colon) { out_ += sep_name_colon; }
  void num(uint64_t v) {
    char buf[24];
    out_.append(buf, std::to_chars(buf, buf + sizeof(buf), v).ptr);
  }
  void fixed3(double v) {
    char buf[352];  // the longest fixed rendering of a double with 3 decimals
    out_.append(buf, std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed, 3).ptr);
  }
  void str(std::string_view s) {
    // Addresses, states and most names need no escape: copied whole.
    for (char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') return json_append_quoted(out_, s);
    }
    out_ += '"';
    out_ += s;
    out_ += '"';
  }
  void null() { out_ += "null"; }
  void boolean(bool b) { out_ += b ? "true" : "false"; }

 private:
  std::string& out_;
};

}  // namespace

RowText::RowText(bool json, std::string& out) : json_(json), out_(out) {
  if (json_) {
    out_ += '[';
    return;
  }
  char line[512];
  std::snprintf(line, sizeof(line), "%-11s %-28s %-28s %-22s %-14s %-16s %9s %9s  %s\n", "STATE",
                "LOCAL", "PEER", "PROCESS", "NETNS", "KEEPALIVE", "IDLE", "AGE", "CGROUP");
  out_ += line;
}

void RowText::add(const AuditRow& r) {
  json_ ? add_json(r) : add_line(r);
  ++rows_;
}

void RowText::finish() {
  if (json_) out_ += rows_ ? "\n]\n" : "]\n";
}

void RowText::add_json(const AuditRow& r) {
  JsonOut w(out_);
  out_ += rows_ ? ",\n{\"family\":" : "\n{\"family\":";
  w.num(r.key.family == AF_INET6 ? 6 : 4);
  w.key(",\"state\":"), w.str(r.state);
  w.key(",\"saddr\":"), w.str(r.key.saddr);
  w.key(",\"sport\":"), w.num(r.key.sport);
  w.key(",\"daddr\":"), w.str(r.key.daddr);
  w.key(",\"dport\":"), w.num(r.key.dport);
  w.key(",\"netns\":"), w.num(r.key.netns);
  w.key(",\"cgroup\":");
  r.cgroup.empty() ? w.null() : w.str(r.cgroup);
  w.key(",\"pid\":"), w.num(r.pid);
  w.key(",\"comm\":"), w.str(r.comm);
  w.key(",\"fd\":"), w.num(r.fd);
  w.key(",\"cookie\":"), w.num(r.cookie);
  w.key(",\"keepalive\":"), w.boolean(r.keepalive);
  w.key(",\"keepalive_idle\":"), w.num(r.keepalive_idle);
  w.key(",\"keepalive_intvl\":"), w.num(r.keepalive_intvl);
  w.key(",\"keepalive_cnt\":"), w.num(r.keepalive_cnt);
  w.key(",\"probes_out\":"), w.num(r.probes_out);
  w.key(",\"idle_seconds\":"), w.fixed3(r.idle_seconds);
  w.key(",\"state_seconds\":");
  r.state_seconds ? w.fixed3(*r.state_seconds) : w.null();
  w.key(",\"state_seconds_min\":");
  r.state_seconds_min ? w.fixed3(*r.state_seconds_min) : w.null();
  w.key(",\"probes_sent\":");
  r.probes_sent ? w.num(*r.probes_sent) : w.null();
  w.key(",\"kills\":");
  r.kills ? w.num(*r.kills) : w.null();
  w.key(",\"namespace\":");
  r.pod ? w.str(r.pod->namespace_) : w.null();
  w.key(",\"pod\":");
  r.pod ? w.str(r.pod->pod) : w.null();
  w.key(",\"container\":");
  r.pod && !r.pod->container.empty() ? w.str(r.pod->container) : w.null();
  out_ += '}';
}

void RowText::add_line(const AuditRow& r) {
  auto endpoint = [](const std::string& a, uint16_t p, uint16_t family) {
    return (family == AF_INET6 ? "[" + a + "]" : a) + ":" + std::to_string(p);
  };
  auto secs = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1fs", v);
    return std::string(buf);
  };
  auto age_text = [&](const AuditRow& r) -> std::string {
    if (r.state_seconds) return secs(*r.state_seconds);
    if (r.state_seconds_min) return ">" + secs(*r.state_seconds_min);
    return "?";
  };
  // One row is one line: control characters in names must not break it.
  auto printable = [](std::string s) {
    for (char& c : s) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    return s;
  };
  char line[512];
  const std::string proc = std::to_string(r.pid) + "/" + printable(r.comm);
  const std::string ka = r.keepalive ? std::to_string(r.keepalive_idle) + "/" +
                                           std::to_string(r.keepalive_intvl) + "/" +
                                           std::to_string(r.keepalive_cnt)
                                     : std::string("off");
  // The fixed-width columns; the cgroup, of any length, is appended.
  std::snprintf(line, sizeof(line), "%-11s %-28s %-28s %-22s %-14u %-16s %9s %9s  ",
                r.state.c_str(), endpoint(r.key.saddr, r.key.sport, r.key.family).c_str(),
                endpoint(r.key.daddr, r.key.dport, r.key.family).c_str(), proc.c_str(), r.key.netns,
                ka.c_str(), secs(r.idle_seconds).c_str(), age_text(r).c_str());
  out_ += line;
  out_ += r.cgroup.empty() ? "?" : printable(r.cgroup);
  out_ += "\n";
}

std::string rows_to_json(const std::vector<AuditRow>& rows) {
  std::string out;
  out.reserve(rows.size() * 560 + 8);
  RowText text(true, out);
  for (const AuditRow& r : rows) text.add(r);
  text.finish();
  return out;
}

std::string rows_to_table(const std::vector<AuditRow>& rows) {
  std::string out;
  RowText text(false, out);
  for (const AuditRow& r : rows) text.add(r);
  text.finish();
  return out;
}

std::string state_pin_if_possible() {
  struct statfs fs {};
  if (::statfs("/sys/fs/bpf", &fs) != 0 || fs.f_type != BPF_FS_MAGIC) return "";
  return kStatePin;
}

std::string state_dir_if_possible() {
  const std::string pin = state_pin_if_possible();
  return pin.empty() ? "" : pin.substr(0, pin.rfind('/'));
}

bool reuse_pinned(const std::string& path, bpf_map* map, bool any_size) {
  if (path.empty()) return false;
  const int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return false;
  bpf_map_info info{};
  __u32 len = sizeof(info);
  bool fits = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
              info.type == static_cast<__u32>(bpf_map__type(map)) &&
              info.value_size == bpf_map__value_size(map) &&
              info.key_size == bpf_map__key_size(map);
  if (fits && any_size && info.max_entries && (info.max_entries & (info.max_entries - 1)) == 0) {
    bpf_map__set_max_entries(map, info.max_entries);
  }
  fits = fits && info.max_entries == bpf_map__max_entries(map);
  const bool reused = fits && bpf_map__reuse_fd(map, fd) == 0;
  ::close(fd);
  return reused;
}

Result<std::unique_ptr<AuditBpf>> AuditBpf::load(const AuditOptions& opts) {
  std::string note;
  auto loaded = load_either_build<AuditBpf>(
      opts.plain_loads, [&](bool plain) { return load_build(opts, plain); }, &note);
  if (loaded) (*loaded)->build_note_ = note;
  return loaded;
}

Result<std::unique_ptr<AuditBpf>> AuditBpf::load_build(const AuditOptions& opts, bool plain) {
  capture_libbpf_log();
  std::unique_ptr<AuditBpf> self(new AuditBpf());
  self->skel_ =
      plain ? audit_bpf__open()
            : open_skeleton_with<audit_bpf>(audit_bpf__create_skeleton, audit_compat_bpf__elf_bytes,
                                            audit_bpf__destroy);
  if (!self->skel_) {
    return Error{"opening the audit BPF object failed: " + errstr(errno) + take_log_tail(20)};
  }
  auto* skel = self->skel_;
  self->mark_first_seen_ = opts.mark_first_seen;
  skel->rodata->tka_mark_first_seen = opts.mark_first_seen;

  // The CLOSE_WAIT records: the tracker's of this process, else the ones a
  // running agent pinned (of whatever size), else empty ones of our own.
  const std::string dir =
      opts.state_pin.empty() ? "" : opts.state_pin.substr(0, opts.state_pin.rfind('/'));
  if (opts.tracker) {
    if (bpf_map__reuse_fd(skel->maps.tka_cw_slots, opts.tracker->slots_fd()) != 0 ||
        bpf_map__reuse_fd(skel->maps.tka_cw_more, opts.tracker->more_fd()) != 0) {
      return Error{"sharing the state tracker's maps with the audit failed: " + errstr(errno)};
    }
  } else if (!dir.empty()) {
    reuse_pinned(dir + "/" + kCloseWaitPinName, skel->maps.tka_cw_slots, true);
    reuse_pinned(dir + "/" + kCloseWaitMorePinName, skel->maps.tka_cw_more, true);
  }
  skel->rodata->tka_cw_slot_mask = bpf_map__max_entries(skel->maps.tka_cw_slots) - 1;
  // First sightings pinned by a crashed agent (or kept by --state-persist)
  // are reused: they are still right for the sockets they name.
  const bool seen_reused = reuse_pinned(opts.state_pin, skel->maps.tka_seen, false);
  if (test_refuses(Part::kAudit) || (plain && test_refuses_plain(Part::kAudit))) {
    load_as_refused(skel->obj);
  }
  if (int err = audit_bpf__load(skel); err) {
    return Error{"loading the audit BPF program failed: " + errstr(err) + take_log_tail(25)};
  }
  take_log_tail(0);
  self->iter_link_ = bpf_program__attach_iter(skel->progs.tka_iter_socks, nullptr);
  if (!self->iter_link_) return Error{"attaching the socket iterator failed: " + errstr(errno)};
  if (opts.mark_first_seen && !opts.state_pin.empty()) {
    if (!seen_reused) {
      ::mkdir(dir.c_str(), 0700);
      ::unlink(opts.state_pin.c_str());
    }
    if (seen_reused || bpf_map__pin(skel->maps.tka_seen, opts.state_pin.c_str()) == 0) {
      self->pinned_ = opts.state_pin;
    }
  }
  return self;
}

AuditBpf::~AuditBpf() {
  if (iter_link_) bpf_link__destroy(iter_link_);
  // The shared map lives only as long as the agent that fills it, unless
  // kept for the next one (--state-persist).
  if (!pinned_.empty() && !keep_pin_) {
    ::unlink(pinned_.c_str());
    // The directory too, when nothing else (a persistent policy) is in it.
    ::rmdir(pinned_.substr(0, pinned_.rfind('/')).c_str());
  }
  if (skel_) audit_bpf__destroy(skel_);
}

Result<std::vector<tka_sock_rec>> AuditBpf::scan() {
  // Each scan stamps the first sightings it visits with its number.
  const uint64_t gen = ++skel_->bss->tka_scan_gen;
  const int fd = bpf_iter_create(bpf_link__fd(iter_link_));
  if (fd < 0) return Error{"bpf_iter_create: " + errstr(errno)};
  // Read straight into the records' storage: no staging copy. A read may
  // end inside a record, so the byte count is kept apart from the size.
  std::vector<tka_sock_rec> out(8192);
  size_t bytes = 0;
  for (;;) {
    const size_t cap = out.size() * sizeof(tka_sock_rec);
    if (cap - bytes < (64u << 10)) {
      out.resize(out.size() * 2);
      continue;
    }
    const ssize_t n = ::read(fd, reinterpret_cast<char*>(out.data()) + bytes, cap - bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Error{"reading the socket iterator: " + errstr(err)};
    }
    if (n == 0) break;
    bytes += static_cast<size_t>(n);
  }
  out.resize(bytes / sizeof(tka_sock_rec));
  ::close(fd);
  if (mark_first_seen_) {
    if (auto r = prune_seen(gen); !r) return Error{r.error()};
  }
  return out;
}

Result<void> AuditBpf::prune_seen(uint64_t gen) {
  // In batches: a map of 50,000 sockets in a few system calls, where one
  // call per key took ~50 ms a scan.
  constexpr uint32_t kBatch = 4096;
  const int fd = bpf_map__fd(skel_->maps.tka_seen);
  std::vector<uint64_t> keys(kBatch), gone;
  std::vector<tka_seen> vals(kBatch);
  uint64_t in = 0, out = 0;  // the kernel's batch cursor (a bucket number for hashes)
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (bool first = true;; first = false) {
    __u32 count = kBatch;
    const int err =
        bpf_map_lookup_batch(fd, first ? nullptr : &in, &out, keys.data(), vals.data(), &count, &opts);
    if (err && errno != ENOENT) return Error{"reading the first-sightings map: " + errstr(errno)};
    for (__u32 i = 0; i < count; ++i) {
      if (vals[i].gen != gen) gone.push_back(keys[i]);
    }
    if (err) break;  // ENOENT: the last batch
    in = out;
  }
  if (gone.empty()) return {};
  __u32 count = static_cast<__u32>(gone.size());
  if (bpf_map_delete_batch(fd, gone.data(), &count, &opts) != 0 && errno != ENOENT) {
    return Error{"pruning the first-sightings map: " + errstr(errno)};
  }
  return {};
}

std::vector<ProgramState> AuditBpf::programs() const {
  return {{"tka_iter_socks", "iter/task_file", iter_link_ != nullptr}};
}

uint64_t AuditBpf::drops() const {
  return __atomic_load_n(&skel_->bss->tka_seen_drops, __ATOMIC_RELAXED);
}

}  // namespace tcpka
