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

#include "audit.skel.h"

namespace tcpka {

namespace {

std::string errstr(int err) {
  return strerror(err < 0 ? -err : err);
}

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

AuditRow decode_rec(const tka_sock_rec& r, unsigned hz,
                    const std::function<std::string(uint64_t)>& cgroup_path) {
  AuditRow row;
  row.key = make_socket_key(r.netns, r.family, r.saddr, r.daddr, r.sport, r.dport);
  row.state = std::string(tcp_state_name(r.state));
  row.cookie = r.cookie;
  row.cgroup_id = r.cgroup_id;
  row.cgroup = cgroup_path(r.cgroup_id);
  row.pid = r.pid;
  row.fd = r.fd;
  row.comm = std::string(r.comm, strnlen(r.comm, sizeof(r.comm)));
  row.keepalive = r.ka_on != 0;
  row.keepalive_idle = r.ka_time_j / hz;
  row.keepalive_intvl = r.ka_intvl_j / hz;
  row.keepalive_cnt = r.ka_probes;
  row.probes_out = r.probes_out;
  // A listener never receives data itself: its lrcvtime is 0, and "idle
  // since boot" would make every listener match --idle-over.
  row.idle_seconds = row.state == "listen" ? 0 : static_cast<double>(r.lastrcv_j) / hz;
  if (r.since_ns && r.now_ns >= r.since_ns) {
    const double age = static_cast<double>(r.now_ns - r.since_ns) / 1e9;
    if (r.since_exact) {
      row.state_seconds = age;
    } else {
      row.state_seconds_min = age;
    }
  }
  return row;
}

std::vector<AuditRow> dedupe(std::vector<AuditRow> rows, bool display_order) {
  // Sort indices, move each row once: rows are large, and moving them
  // through two sorts was a tenth of an audit's time.
  std::vector<uint32_t> idx(rows.size());
  std::iota(idx.begin(), idx.end(), 0u);
  std::sort(idx.begin(), idx.end(), [&](uint32_t x, uint32_t y) {
    const AuditRow &a = rows[x], &b = rows[y];
    return std::tie(a.cookie, a.pid, a.fd) < std::tie(b.cookie, b.pid, b.fd);
  });
  idx.erase(std::unique(idx.begin(), idx.end(),
                        [&](uint32_t x, uint32_t y) { return rows[x].cookie == rows[y].cookie; }),
            idx.end());
  if (!display_order) {
    // Counting only: keep the chosen rows where they are, with no second
    // vector of rows (the agent's peak memory at 50,000 sockets).
    std::vector<bool> keep(rows.size());
    for (uint32_t i : idx) keep[i] = true;
    size_t w = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (!keep[i]) continue;
      if (w != i) rows[w] = std::move(rows[i]);
      ++w;
    }
    rows.resize(w);
    return rows;
  }
  // Integers first: comparing address strings for every pair was most of
  // the sort's time.
  std::sort(idx.begin(), idx.end(), [&](uint32_t x, uint32_t y) {
    const AuditRow &a = rows[x], &b = rows[y];
    return std::tie(a.state, a.key.netns, a.key.sport, a.key.dport, a.key.saddr, a.key.daddr,
                    a.pid) < std::tie(b.state, b.key.netns, b.key.sport, b.key.dport, b.key.saddr,
                                      b.key.daddr, b.pid);
  });
  std::vector<AuditRow> out;
  out.reserve(idx.size());
  for (uint32_t i : idx) out.push_back(std::move(rows[i]));
  return out;
}

std::vector<AuditRow> decode_scan(const std::vector<tka_sock_rec>& recs, unsigned hz,
                                  const std::function<std::string(uint64_t)>& cgroup_path,
                                  bool display_order) {
  std::vector<AuditRow> rows;
  rows.reserve(recs.size());
  // Records come grouped by process, so mostly by cgroup: remember the last.
  uint64_t last_id = 0;
  std::string last_path;
  bool have_last = false;
  const std::function<std::string(uint64_t)> cached = [&](uint64_t id) {
    if (!have_last || id != last_id) {
      last_path = cgroup_path(id);
      last_id = id;
      have_last = true;
    }
    return last_path;
  };
  for (const auto& r : recs) rows.push_back(decode_rec(r, hz, cached));
  return dedupe(std::move(rows), display_order);
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
  void key(std::string_view k) {
    out_ += ",\"";
    out_ += k;
    out_ += "\":";
  }
  void num(uint64_t v) {
    char buf[24];
    out_.append(buf, std::to_chars(buf, buf + sizeof(buf), v).ptr);
  }
  void fixed3(double v) {
    char buf[352];  // the longest fixed rendering of a double with 3 decimals
    out_.append(buf, std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed, 3).ptr);
  }
  void str(std::string_view s) { json_append_quoted(out_, s); }
  void null() { out_ += "null"; }
  void boolean(bool b) { out_ += b ? "true" : "false"; }

 private:
  std::string& out_;
};

}  // namespace

std::string rows_to_json(const std::vector<AuditRow>& rows) {
  std::string j = "[";
  j.reserve(rows.size() * 560 + 8);
  JsonOut w(j);
  for (size_t i = 0; i < rows.size(); ++i) {
    const AuditRow& r = rows[i];
    j += i ? ",\n{\"family\":" : "\n{\"family\":";
    w.num(r.key.family == AF_INET6 ? 6 : 4);
    w.key("state"), w.str(r.state);
    w.key("saddr"), w.str(r.key.saddr);
    w.key("sport"), w.num(r.key.sport);
    w.key("daddr"), w.str(r.key.daddr);
    w.key("dport"), w.num(r.key.dport);
    w.key("netns"), w.num(r.key.netns);
    w.key("cgroup");
    r.cgroup.empty() ? w.null() : w.str(r.cgroup);
    w.key("pid"), w.num(r.pid);
    w.key("comm"), w.str(r.comm);
    w.key("fd"), w.num(r.fd);
    w.key("cookie"), w.num(r.cookie);
    w.key("keepalive"), w.boolean(r.keepalive);
    w.key("keepalive_idle"), w.num(r.keepalive_idle);
    w.key("keepalive_intvl"), w.num(r.keepalive_intvl);
    w.key("keepalive_cnt"), w.num(r.keepalive_cnt);
    w.key("probes_out"), w.num(r.probes_out);
    w.key("idle_seconds"), w.fixed3(r.idle_seconds);
    w.key("state_seconds");
    r.state_seconds ? w.fixed3(*r.state_seconds) : w.null();
    w.key("state_seconds_min");
    r.state_seconds_min ? w.fixed3(*r.state_seconds_min) : w.null();
    w.key("probes_sent");
    r.probes_sent ? w.num(*r.probes_sent) : w.null();
    w.key("kills");
    r.kills ? w.num(*r.kills) : w.null();
    w.key("namespace");
    r.pod ? w.str(r.pod->namespace_) : w.null();
    w.key("pod");
    r.pod ? w.str(r.pod->pod) : w.null();
    w.key("container");
    r.pod && !r.pod->container.empty() ? w.str(r.pod->container) : w.null();
    j += '}';
  }
  j += rows.empty() ? "]\n" : "\n]\n";
  return j;
}

std::string rows_to_table(const std::vector<AuditRow>& rows) {
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
  std::string out;
  char line[512];
  std::snprintf(line, sizeof(line), "%-11s %-28s %-28s %-22s %-14s %-16s %9s %9s  %s\n", "STATE",
                "LOCAL", "PEER", "PROCESS", "NETNS", "KEEPALIVE", "IDLE", "AGE", "CGROUP");
  out += line;
  for (const AuditRow& r : rows) {
    const std::string proc = std::to_string(r.pid) + "/" + printable(r.comm);
    const std::string ka = r.keepalive ? std::to_string(r.keepalive_idle) + "/" +
                                             std::to_string(r.keepalive_intvl) + "/" +
                                             std::to_string(r.keepalive_cnt)
                                       : std::string("off");
    // The fixed-width columns; the cgroup, of any length, is appended.
    std::snprintf(line, sizeof(line), "%-11s %-28s %-28s %-22s %-14u %-16s %9s %9s  ",
                  r.state.c_str(), endpoint(r.key.saddr, r.key.sport, r.key.family).c_str(),
                  endpoint(r.key.daddr, r.key.dport, r.key.family).c_str(), proc.c_str(),
                  r.key.netns, ka.c_str(), secs(r.idle_seconds).c_str(), age_text(r).c_str());
    out += line;
    out += r.cgroup.empty() ? "?" : printable(r.cgroup);
    out += "\n";
  }
  return out;
}

std::string state_pin_if_possible() {
  struct statfs fs {};
  if (::statfs("/sys/fs/bpf", &fs) != 0 || fs.f_type != BPF_FS_MAGIC) return "";
  return kStatePin;
}

Result<std::unique_ptr<AuditBpf>> AuditBpf::load(const AuditOptions& opts) {
  std::unique_ptr<AuditBpf> self(new AuditBpf());
  self->skel_ = audit_bpf__open();
  if (!self->skel_) return Error{"opening the audit BPF object failed: " + errstr(errno)};
  auto* skel = self->skel_;
  skel->rodata->tka_mark_first_seen = opts.mark_first_seen;
  bpf_program__set_autoload(skel->progs.tka_set_state, opts.track_states);
  if (opts.cw_ringbuf_bytes) {
    bpf_map__set_max_entries(skel->maps.tka_cw_events, opts.cw_ringbuf_bytes);
  }
  bool reused = false;
  if (!opts.state_pin.empty()) {
    const int fd = bpf_obj_get(opts.state_pin.c_str());
    // A pin left by a crashed agent is reused: its entries are still right
    // for the sockets they belong to. One of another layout (an older
    // version) would fail the load: the agent replaces it, `audit` ignores it.
    if (fd >= 0) {
      bpf_map_info info{};
      __u32 len = sizeof(info);
      const bool fits = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
                        info.type == BPF_MAP_TYPE_SK_STORAGE &&
                        info.value_size == bpf_map__value_size(skel->maps.tka_state) &&
                        info.key_size == bpf_map__key_size(skel->maps.tka_state);
      if (fits) reused = bpf_map__reuse_fd(skel->maps.tka_state, fd) == 0;
      ::close(fd);
    }
  }
  if (int err = audit_bpf__load(skel); err) {
    return Error{"loading the audit BPF programs failed: " + errstr(err)};
  }
  self->iter_link_ = bpf_program__attach_iter(skel->progs.tka_iter_socks, nullptr);
  if (!self->iter_link_) return Error{"attaching the socket iterator failed: " + errstr(errno)};
  if (opts.track_states && opts.attach) {
    self->state_link_ = bpf_program__attach(skel->progs.tka_set_state);
    if (!self->state_link_) {
      return Error{"attaching tka_set_state (tp_btf/inet_sock_set_state) failed: " + errstr(errno)};
    }
    if (!opts.state_pin.empty() && !reused) {
      ::mkdir("/sys/fs/bpf/tcpka", 0700);
      ::unlink(opts.state_pin.c_str());
      if (bpf_map__pin(skel->maps.tka_state, opts.state_pin.c_str()) == 0) {
        self->pinned_ = opts.state_pin;
      }
    } else if (reused) {
      self->pinned_ = opts.state_pin;
    }
  }
  return self;
}

AuditBpf::~AuditBpf() {
  if (rb_) ring_buffer__free(rb_);
  if (state_link_) bpf_link__destroy(state_link_);
  if (iter_link_) bpf_link__destroy(iter_link_);
  // The shared state map lives only as long as the agent that tracks it,
  // unless kept for the next one (--state-persist).
  if (!pinned_.empty() && !keep_pin_) {
    ::unlink(pinned_.c_str());
    // The directory too, when nothing else (a persistent policy) is in it.
    ::rmdir(pinned_.substr(0, pinned_.rfind('/')).c_str());
  }
  if (skel_) audit_bpf__destroy(skel_);
}

Result<std::vector<tka_sock_rec>> AuditBpf::scan() {
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
  return out;
}

namespace {
int on_cw(void* ctx, void* data, size_t size) {
  if (size < sizeof(tka_cw_event)) return 0;
  tka_cw_event e;
  std::memcpy(&e, data, sizeof(e));
  (*static_cast<std::function<void(double, uint64_t)>*>(ctx))(
      static_cast<double>(e.duration_ns) / 1e9, e.cgroup_id);
  return 0;
}
}  // namespace

Result<void> AuditBpf::open_events(std::function<void(double, uint64_t)> sink) {
  sink_ = std::move(sink);
  rb_ = ring_buffer__new(bpf_map__fd(skel_->maps.tka_cw_events), on_cw, &sink_, nullptr);
  if (!rb_) return Error{"opening the audit ring buffer failed: " + errstr(errno)};
  return {};
}

int AuditBpf::poll(int timeout_ms) {
  const int woken = ring_buffer__poll(rb_, timeout_ms);
  if (woken < 0) return woken;
  const int rest = ring_buffer__consume(rb_);
  return rest < 0 ? rest : woken + rest;
}

int AuditBpf::consume() {
  return ring_buffer__consume(rb_);
}

std::vector<ProgramState> AuditBpf::programs() const {
  std::vector<ProgramState> out = {{"tka_iter_socks", "iter/task_file", iter_link_ != nullptr}};
  if (state_link_) out.push_back({"tka_set_state", "tp_btf/inet_sock_set_state", true});
  return out;
}

std::array<uint64_t, 2> AuditBpf::drops() const {
  return {__atomic_load_n(&skel_->bss->tka_audit_drops[0], __ATOMIC_RELAXED),
          __atomic_load_n(&skel_->bss->tka_audit_drops[1], __ATOMIC_RELAXED)};
}

}  // namespace tcpka
