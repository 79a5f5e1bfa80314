// What every owner of a BPF skeleton shares: libbpf's messages kept for
// error texts that quote the verifier, the choice between an object's two
// builds, and the test hook that makes the kernel refuse a part.
#pragma once

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

#include "kernel_features.h"
#include "result.h"

namespace tcpka {

// Routes libbpf's messages (but its debug ones) into a buffer that
// take_log_tail() empties; installed by the loaders before each load.
void capture_libbpf_log();
// The last `lines` lines libbpf printed since the last call, each on its own
// indented line; empties the buffer.
std::string take_log_tail(size_t lines);
std::string errstr(int err);
// Up to the first newline (error texts quote libbpf's log below it).
std::string first_line(const std::string& s);

// Opens a skeleton of type Skel with the bytes of another build of the same
// source (bpf/include/tka_compat.bpf.h, cmake/BpfSkeleton.cmake TWINS: the
// build checks that the two skeletons match). nullptr and errno on failure.
template <typename Skel>
Skel* open_skeleton_with(int (*create)(Skel*), const void* (*elf_bytes)(size_t*),
                         void (*destroy)(Skel*)) {
  Skel* obj = static_cast<Skel*>(std::calloc(1, sizeof(Skel)));
  if (!obj) {
    errno = ENOMEM;
    return nullptr;
  }
  if (int err = create(obj); err) {
    destroy(obj);
    errno = -err;
    return nullptr;
  }
  obj->skeleton->data = const_cast<void*>(elf_bytes(&obj->skeleton->data_sz));
  if (int err = bpf_object__open_skeleton(obj->skeleton, nullptr); err) {
    destroy(obj);
    errno = -err;
    return nullptr;
  }
  return obj;
}

// A part's object in the build the plan chose (load(opts, plain)), and,
// where that was the plain-load build and the kernel refused it, in the
// probe-read build: the same programs, each read of kernel memory a
// bpf_probe_read_kernel(), which verifiers since 5.10 take. Verifiers differ
// between builds of one kernel version (the development host's 6.18 took
// the plain loads in one build and refused one in the next), and a part
// must not go off for the way it reads. *note says which build loaded when
// it is not the planned one. When both fail, the plain build's error, which
// quotes the verifier, comes first.
template <typename T>
Result<std::unique_ptr<T>> load_either_build(
    bool plain, const std::function<Result<std::unique_ptr<T>>(bool plain)>& load,
    std::string* note) {
  note->clear();
  Result<std::unique_ptr<T>> first = load(plain);
  if (first || !plain) return first;
  Result<std::unique_ptr<T>> probe_read = load(false);
  if (!probe_read) {
    return Error{first.error() + "\n  and the probe-read build: " + first_line(probe_read.error())};
  }
  *note = "probe-read build: the plain-load build was refused: " + first_line(first.error());
  return probe_read;
}

// Waits up to timeout_ms for a ring buffer, then reads everything in it:
// the programs submit most records without a wake-up (one each, an
// irq_work, was most of their cost), so epoll does not report them and the
// ring is read whether or not it woke us. Records read, or -errno.
int poll_ring(ring_buffer* rb, int timeout_ms);

// Test hook: TCPKA_TEST_REFUSE=part[,part...] (names of part_name()). The
// programs of a part named there are loaded as socket filters, which the
// kernel refuses, so the tests can force the refusal of each part on any
// kernel and show that the others still count.
bool test_refuses(Part p);
// The same for one build: TCPKA_TEST_REFUSE=plain:part refuses only the
// part's plain-load build (load_either_build).
bool test_refuses_plain(Part p);
// Test hook: TCPKA_TEST_BLIND=probe loads the keepalive programs blind to
// probes (they load, attach and see nothing), so the tests can show that
// the self-check names a blind agent (agent/self_check.h).
bool test_blind(std::string_view signal);
void load_as_refused(bpf_object* obj);

}  // namespace tcpka
