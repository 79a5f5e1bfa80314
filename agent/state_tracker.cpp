#include "state_tracker.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "audit.h"
#include "bpf_object.h"
#include "state.skel.h"
#include "state_compat.skel.h"

namespace tcpka {

Result<std::unique_ptr<StateTracker>> StateTracker::load(const StateTrackerOptions& opts) {
  std::string note;
  auto loaded = load_either_build<StateTracker>(
      opts.plain_loads, [&](bool plain) { return load_build(opts, plain); }, &note);
  if (loaded) (*loaded)->build_note_ = note;
  return loaded;
}

Result<std::unique_ptr<StateTracker>> StateTracker::load_build(const StateTrackerOptions& opts,
                                                               bool plain) {
  capture_libbpf_log();
  std::unique_ptr<StateTracker> self(new StateTracker());
  self->skel_ =
      plain ? state_bpf__open()
            : open_skeleton_with<state_bpf>(state_bpf__create_skeleton, state_compat_bpf__elf_bytes,
                                            state_bpf__destroy);
  if (!self->skel_) {
    return Error{"opening the state tracker's BPF object failed: " + errstr(errno) +
                 take_log_tail(20)};
  }
  auto* skel = self->skel_;
  // The tracker runs only where tracing programs may ask for a cookie.
  skel->rodata->tka_cookie_helper = 1;
  if (opts.cw_ringbuf_bytes) {
    bpf_map__set_max_entries(skel->maps.tka_cw_events, opts.cw_ringbuf_bytes);
  }
  // A quarter of the ring, for its wake-up test: one helper call less per event.
  skel->rodata->tka_cw_wake_bytes = bpf_map__max_entries(skel->maps.tka_cw_events) / 4;
  if (opts.cw_slots) bpf_map__set_max_entries(skel->maps.tka_cw_slots, opts.cw_slots);

  // Records pinned by a crashed agent (or kept by --state-persist) are
  // reused: their entries are still right for the sockets they belong to.
  // Slots of another size are replaced (their sockets' ages become lower
  // bounds).
  const std::string slots_pin = opts.pin_dir.empty() ? "" : opts.pin_dir + "/" + kCloseWaitPinName;
  const std::string more_pin =
      opts.pin_dir.empty() ? "" : opts.pin_dir + "/" + kCloseWaitMorePinName;
  const bool slots_reused = reuse_pinned(slots_pin, skel->maps.tka_cw_slots, false);
  const bool more_reused = reuse_pinned(more_pin, skel->maps.tka_cw_more, false);
  skel->rodata->tka_cw_slot_mask = bpf_map__max_entries(skel->maps.tka_cw_slots) - 1;
  if (test_refuses(Part::kStateTracker) || (plain && test_refuses_plain(Part::kStateTracker))) {
    load_as_refused(skel->obj);
  }
  if (int err = state_bpf__load(skel); err) {
    return Error{"loading the state tracker's BPF program failed: " + errstr(err) +
                 take_log_tail(25)};
  }
  take_log_tail(0);
  if (more_reused) {
    // The program skips the map while its count is 0 (tka_cw_more_n, in
    // .bss, 0 in every new object): count what the reused map holds, before
    // the program runs.
    __u64 key = 0, next = 0, n = 0;
    const int fd = bpf_map__fd(skel->maps.tka_cw_more);
    for (bool first = true; bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0;
         first = false) {
      key = next;
      ++n;
    }
    __atomic_store_n(&skel->bss->tka_cw_more_n, n, __ATOMIC_RELAXED);
  }
  if (!opts.attach) return self;
  self->link_ = bpf_program__attach(skel->progs.tka_set_state);
  if (!self->link_) {
    return Error{"attaching tka_set_state (tp_btf/inet_sock_set_state) failed: " + errstr(errno)};
  }
  auto pin = [&](const std::string& path, bpf_map* map, bool reused) {
    if (path.empty()) return;
    if (!reused) {
      ::mkdir(opts.pin_dir.c_str(), 0700);
      ::unlink(path.c_str());
      if (bpf_map__pin(map, path.c_str()) != 0) return;
    }
    self->pinned_.push_back(path);
  };
  pin(slots_pin, skel->maps.tka_cw_slots, slots_reused);
  pin(more_pin, skel->maps.tka_cw_more, more_reused);
  return self;
}

StateTracker::~StateTracker() {
  if (rb_) ring_buffer__free(rb_);
  if (link_) bpf_link__destroy(link_);
  // The records live only as long as the agent that keeps them, unless
  // kept for the next one (--state-persist).
  if (!pinned_.empty() && !keep_pin_) {
    for (const std::string& p : pinned_) ::unlink(p.c_str());
    // The directory too, when nothing else (a persistent policy) is in it.
    ::rmdir(pinned_.front().substr(0, pinned_.front().rfind('/')).c_str());
  }
  if (skel_) state_bpf__destroy(skel_);
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

Result<void> StateTracker::open_events(std::function<void(double, uint64_t)> sink) {
  sink_ = std::move(sink);
  rb_ = ring_buffer__new(bpf_map__fd(skel_->maps.tka_cw_events), on_cw, &sink_, nullptr);
  if (!rb_) return Error{"opening the state tracker's ring buffer failed: " + errstr(errno)};
  return {};
}

int StateTracker::poll(int timeout_ms) {
  return poll_ring(rb_, timeout_ms);
}

int StateTracker::consume() {
  return rb_ ? ring_buffer__consume(rb_) : 0;
}

std::vector<ProgramState> StateTracker::programs() const {
  return {{"tka_set_state", "tp_btf/inet_sock_set_state", link_ != nullptr}};
}

std::array<uint64_t, TKA_STATE_DROP__COUNT> StateTracker::drops() const {
  std::array<uint64_t, TKA_STATE_DROP__COUNT> out{};
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = __atomic_load_n(&skel_->bss->tka_state_drops[i], __ATOMIC_RELAXED);
  }
  return out;
}

int StateTracker::slots_fd() const {
  return bpf_map__fd(skel_->maps.tka_cw_slots);
}

int StateTracker::more_fd() const {
  return bpf_map__fd(skel_->maps.tka_cw_more);
}

}  // namespace tcpka
