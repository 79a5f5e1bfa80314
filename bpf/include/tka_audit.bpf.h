/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the state tracker (state.bpf.c) records of sockets in CLOSE_WAIT and
 * the socket scan (audit.bpf.c) reads back: the same map definitions in both
 * objects, so the scan's object takes the tracker's maps (bpf_map__reuse_fd)
 * when the tracker runs, and empty ones of its own when it does not. Keyed
 * by socket cookie, a number: the scan holds no pointer to a socket that the
 * verifier would trust (agent/audit.h says why), so it cannot use
 * sk_storage.
 */
#ifndef TKA_AUDIT_BPF_H
#define TKA_AUDIT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "../tcpka.h"

/*
 * When the sockets in CLOSE_WAIT entered it: one slot per socket cookie
 * hash, claimed on entry, freed on leaving. A slot costs three atomics on a
 * preallocated line, where per-socket storage cost two allocations on entry
 * and two RCU frees when the socket ends: under connection churn, where
 * every connection passes CLOSE_WAIT on its passive side, that was half of
 * the tracker's cost (tests/bench/RESULTS.md). A socket whose slot is held
 * by another one still in CLOSE_WAIT goes to tka_cw_more. Size set by the
 * agent (--close-wait-slots). The default, 1024 slots (24 KiB), is the
 * largest the kernel allocates from its direct map rather than vmalloc
 * (32 KiB): 8192 slots in 4 KiB pages cost the tracker ~20 ns more per run
 * under churn (tests/bench/RESULTS.md).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct tka_cw_slot);
} tka_cw_slots SEC(".maps");

/* tka_cw_slots' max_entries - 1 (a power of two), set with it by the agent. */
const volatile __u32 tka_cw_slot_mask = 1023;

/*
 * CLOSE_WAIT entry times of the sockets whose slot another socket held,
 * by cookie: a large leak, where slots collide. Allocated per entry; when
 * full, the entry time is lost (counted) and the scan shows a lower bound.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} tka_cw_more SEC(".maps");

/* The slot of the socket with this cookie (unique per socket, never reused). */
static __always_inline struct tka_cw_slot *tka_cw_slot_of(__u64 cookie)
{
	/* Fibonacci hashing: cookies are sequential per CPU. */
	__u32 i = (__u32)((cookie * 0x9E3779B97F4A7C15ULL) >> 32) & tka_cw_slot_mask;

	return bpf_map_lookup_elem(&tka_cw_slots, &i);
}

/* The slot's entry time when it holds the socket with this cookie, else 0. */
static __always_inline __u64 tka_cw_slot_since(const struct tka_cw_slot *slot, __u64 cookie)
{
	__u64 since;

	if (!cookie || *(volatile __u64 *)&slot->cookie != cookie)
		return 0;
	since = slot->since_ns;
	/* Freed and claimed again meanwhile: since may be the next one's. */
	return *(volatile __u64 *)&slot->cookie == cookie ? since : 0;
}

/* When the socket with this cookie entered CLOSE_WAIT, 0 when unknown. */
static __always_inline __u64 tka_cw_since(__u64 cookie)
{
	struct tka_cw_slot *slot;
	__u64 *more, since = 0;

	if (!cookie)
		return 0;
	slot = tka_cw_slot_of(cookie);
	if (slot)
		since = tka_cw_slot_since(slot, cookie);
	if (!since) {
		more = bpf_map_lookup_elem(&tka_cw_more, &cookie);
		if (more)
			since = *more;
	}
	return since;
}

#endif /* TKA_AUDIT_BPF_H */
