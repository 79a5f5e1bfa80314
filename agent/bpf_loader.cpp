#include "bpf_loader.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <sstream>

#include "bpf_object.h"
#include "keepalive.skel.h"
#include "keepalive_compat.skel.h"

namespace tcpka {

namespace {

int on_sample(void* ctx, void* data, size_t size) {
  static_cast<const EventSink*>(ctx)->operator()(data, size);
  return 0;
}

}  // namespace

Result<std::unique_ptr<KeepaliveBpf>> KeepaliveBpf::load(const LoadOptions& opts) {
  std::string note;
  auto loaded = load_either_build<KeepaliveBpf>(
      opts.plan.plain_loads, [&](bool plain) { return load_build(opts, plain); }, &note);
  if (loaded) (*loaded)->build_note_ = note;
  return loaded;
}

Result<std::unique_ptr<KeepaliveBpf>> KeepaliveBpf::load_build(const LoadOptions& opts,
                                                               bool plain) {
  capture_libbpf_log();
  std::unique_ptr<KeepaliveBpf> self(new KeepaliveBpf());
  self->opts_ = opts;
  self->skel_ = plain ? keepalive_bpf__open()
                      : open_skeleton_with<keepalive_bpf>(keepalive_bpf__create_skeleton,
                                                          keepalive_compat_bpf__elf_bytes,
                                                          keepalive_bpf__destroy);
  if (!self->skel_) {
    return Error{"opening the BPF object failed: " + errstr(errno) + take_log_tail(20)};
  }
  auto* skel = self->skel_;
  skel->rodata->tka_cookie_helper = opts.plan.cookie_helper ? 1 : 0;
  bpf_map__set_max_entries(skel->maps.tka_events, opts.ringbuf_bytes);
  skel->rodata->tka_wake_bytes = opts.ringbuf_bytes / 4;  // saves a helper call per event
  skel->rodata->tka_test_blind = test_blind("probe") ? 1 : 0;
  skel->data_tka_hot->tka_hot.probe_attribution = opts.probe_attribution ? 1 : 0;
  skel->data_tka_hot->tka_hot.probe_time = opts.probe_time ? 1 : 0;
  bpf_map__set_max_entries(skel->maps.tka_probed, opts.max_sockets);

  bpf_program* prog;
  bpf_object__for_each_program(prog, skel->obj) {
    const auto& want = opts.plan.programs;
    const bool load = std::find(want.begin(), want.end(), bpf_program__name(prog)) != want.end();
    bpf_program__set_autoload(prog, load);
  }
  if (test_refuses(Part::kKeepalive) || (plain && test_refuses_plain(Part::kKeepalive))) {
    load_as_refused(skel->obj);
  }
  if (int err = keepalive_bpf__load(skel); err) {
    std::string hint;
    if (err == -EPERM || err == -EACCES) {
      hint = " (needs root, or CAP_BPF + CAP_PERFMON; is the kernel in lockdown=confidentiality?)";
    }
    return Error{"loading the keepalive BPF programs failed: " + errstr(err) + hint +
                 take_log_tail(25)};
  }
  take_log_tail(0);
  return self;
}

KeepaliveBpf::~KeepaliveBpf() {
  if (rb_) ring_buffer__free(rb_);
  for (auto& [name, link] : links_) bpf_link__destroy(link);
  if (skel_) keepalive_bpf__destroy(skel_);
}

Result<void> KeepaliveBpf::attach() {
  // The timer entry last: it opens the bracket that the exit closes and the
  // reset programs read. Attached before the exit, an expiry in between
  // would leave a bracket open on its CPU, and a later reset of that socket
  // there would read as a keepalive kill.
  std::vector<bpf_program*> order;
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (bpf_program__autoload(prog) && prog != skel_->progs.tka_timer_entry) order.push_back(prog);
  }
  if (bpf_program__autoload(skel_->progs.tka_timer_entry)) {
    order.push_back(skel_->progs.tka_timer_entry);
  }
  for (bpf_program* prog : order) {
    bpf_link* link = bpf_program__attach(prog);
    if (!link) {
      const int err = errno;
      return Error{std::string("attaching ") + bpf_program__name(prog) + " (" +
                   bpf_program__section_name(prog) + ") failed: " + errstr(err) +
                   take_log_tail(10)};
    }
    links_.emplace_back(bpf_program__name(prog), link);
  }
  return {};
}

Result<void> KeepaliveBpf::open_events(EventSink sink) {
  sink_ = std::move(sink);
  rb_ = ring_buffer__new(bpf_map__fd(skel_->maps.tka_events), on_sample, &sink_, nullptr);
  if (!rb_) return Error{"opening the ring buffer failed: " + errstr(errno)};
  return {};
}

int KeepaliveBpf::poll(int timeout_ms) {
  return poll_ring(rb_, timeout_ms);
}

std::vector<ProgramState> KeepaliveBpf::programs() const {
  std::vector<ProgramState> out;
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (!bpf_program__autoload(prog)) continue;
    ProgramState s{bpf_program__name(prog), bpf_program__section_name(prog), false};
    s.attached = std::any_of(links_.begin(), links_.end(),
                             [&](const auto& l) { return l.first == s.program; });
    out.push_back(std::move(s));
  }
  return out;
}

void KeepaliveBpf::set_probe_attribution(bool on) {
  // The map's memory, mapped: the next keepalive expiry sees it.
  __atomic_store_n(&skel_->data_tka_hot->tka_hot.probe_attribution, on ? 1u : 0u, __ATOMIC_RELAXED);
}

std::array<uint64_t, TKA_DROP__COUNT> KeepaliveBpf::drops() const {
  std::array<uint64_t, TKA_DROP__COUNT> out{};
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = __atomic_load_n(&skel_->bss->tka_drops[i], __ATOMIC_RELAXED);
  }
  return out;
}

}  // namespace tcpka
