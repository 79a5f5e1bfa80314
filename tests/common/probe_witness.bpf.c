// SPDX-License-Identifier: GPL-2.0
/*
 * probe_witness.bpf.c: an oracle for the tests and benchmarks, not part of
 * the agent. For the sockets of one network namespace (rodata netns_inum, 0
 * for all) it counts:
 *  - probes: the kernel's own TcpExtTCPKeepAlive, read on this CPU before and
 *    after each tcp_keepalive_timer callback BPF is shown
 *    (timer_expire_entry/exit). tcp_xmit_probe_skb() counts every probe there
 *    under the socket lock, and nothing else on this CPU can while the
 *    callback runs, so the rise is exactly what that callback sent: a method
 *    independent of the agent's (icsk_probes_out rising across the same
 *    bracket). probes == TcpExtTCPKeepAlive when BPF is shown every callback;
 *    the difference is the callbacks it was not shown. One case differs from
 *    the agent by design: a probe the local stack failed to transmit (local
 *    congestion) is counted here, as by the kernel, and not by the agent.
 *  - timeout kills: TcpExtTCPAbortOnTimeout read across the same bracket.
 *    tcp_write_err() counts it on this CPU when the callback gives up on a
 *    peer (the retransmission timer's kills run in another callback, so
 *    they are not counted). For the agent's timer-bracket backend, which
 *    can only recognise a kill inside a callback BPF is shown, this is the
 *    exact expectation; TCPAbortOnTimeout minus it is the kernel's gap.
 *  - expiries of tcp_keepalive_timer as each kind of attachment sees them:
 *    tp_btf, raw_tp and classic tracepoint, to tell a gap of one attachment
 *    kind from a gap of the tracepoint.
 * Portable (built once, with probe reads, on the pinned vmlinux.h): the
 * indices of LINUX_MIB_TCPKEEPALIVE and LINUX_MIB_TCPABORTONTIMEOUT in the
 * kernel's MIB array are not promised stable across versions, and the enum
 * is anonymous (CO-RE cannot relocate its values), so the loader looks them
 * up in the running kernel's BTF and sets them here.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
/* The timer's socket and tka_num, not the agent's detection. */
#include "../../bpf/include/tka_compat.bpf.h"

char LICENSE[] SEC("license") = "GPL";

extern const void tcp_keepalive_timer __ksym;

const volatile __u32 netns_inum = 0;
/* LINUX_MIB_TCPKEEPALIVE and LINUX_MIB_TCPABORTONTIMEOUT on this kernel. */
const volatile __u32 mib_keepalive = 0;
const volatile __u32 mib_abort_on_timeout = 0;

__u64 probes, timeout_kills, expiries_tp_btf, expiries_raw_tp, expiries_tracepoint;

struct bracket {
	__u64 timer;    /* the timer_list of the callback running on this CPU, 0 when none */
	__u64 mib;      /* address of this CPU's TcpExt MIB array of its netns */
	__u64 probes;   /* its TCPKeepAlive at entry */
	__u64 aborts;   /* its TCPAbortOnTimeout at entry */
	__u64 cpu_off;  /* this CPU's per-CPU offset, 0 until known */
	__u64 num;      /* tka_num()'s slot */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bracket);
} brackets SEC(".maps");

static __always_inline __u64 mib_read(__u64 mib, __u32 idx)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), (const void *)(mib + (__u64)idx * sizeof(v)));
	return v;
}

static __always_inline bool in_netns(__u64 sk)
{
	return !netns_inum || BPF_CORE_READ((const struct sock *)sk, __sk_common.skc_net.net, ns.inum) == netns_inum;
}

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(witness_entry, struct timer_list *timer)
{
	__u32 zero = 0;
	struct bracket *b;

	if (timer->function != (void *)&tcp_keepalive_timer)
		return 0;
	b = bpf_map_lookup_elem(&brackets, &zero);
	if (!b)
		return 0;
	b->timer = 0;
	__u64 t = tka_num(&b->num, timer);
	__u64 sk = t - tka_keepalive_timer_offset();

	if (!in_netns(sk))
		return 0;
	__sync_fetch_and_add(&expiries_tp_btf, 1);

	if (!b->cpu_off) {
		/* This CPU's element of our per-CPU array minus its per-CPU
		 * address (pptrs[0] of the map's struct bpf_array).
		 * bpf_this_cpu_ptr() would need a data symbol in kallsyms.
		 */
		__u64 arr = tka_num(&b->num, &brackets);
		__u64 base = 0;

		bpf_probe_read_kernel(&base, sizeof(base),
				      (const void *)(arr + bpf_core_field_offset(struct bpf_array, pptrs)));
		b->cpu_off = tka_num(&b->num, b) - base;
	}
	/* This CPU's TcpExt MIB of the socket's netns. */
	b->mib = (__u64)BPF_CORE_READ((const struct sock *)sk, __sk_common.skc_net.net, mib.net_statistics) +
		 b->cpu_off;
	b->probes = mib_read(b->mib, mib_keepalive);
	b->aborts = mib_read(b->mib, mib_abort_on_timeout);
	b->timer = t;
	return 0;
}

SEC("tp_btf/timer_expire_exit")
int BPF_PROG(witness_exit, struct timer_list *timer)
{
	__u32 zero = 0;
	struct bracket *b = bpf_map_lookup_elem(&brackets, &zero);

	if (!b || !b->timer || b->timer != tka_num(&b->num, timer))
		return 0;
	b->timer = 0;
	/* The per-CPU MIB outlives the callback, whatever became of the sock. */
	__u64 now_probes = mib_read(b->mib, mib_keepalive);
	__u64 now_aborts = mib_read(b->mib, mib_abort_on_timeout);

	if (now_probes > b->probes)
		__sync_fetch_and_add(&probes, now_probes - b->probes);
	if (now_aborts > b->aborts)
		__sync_fetch_and_add(&timeout_kills, now_aborts - b->aborts);
	return 0;
}

SEC("raw_tp/timer_expire_entry")
int witness_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 timer = ctx->args[0];

	if (BPF_CORE_READ((struct timer_list *)timer, function) == (void *)&tcp_keepalive_timer &&
	    in_netns(timer - tka_keepalive_timer_offset()))
		__sync_fetch_and_add(&expiries_raw_tp, 1);
	return 0;
}

/* The record of timer:timer_expire_entry (its tracefs format file). */
struct timer_expire_entry_record {
	__u64 common;
	void *timer;
	unsigned long now;
	void *function;
	unsigned long baseclk;
};

SEC("tracepoint/timer/timer_expire_entry")
int witness_tracepoint(struct timer_expire_entry_record *e)
{
	if (e->function == (void *)&tcp_keepalive_timer &&
	    in_netns((__u64)e->timer - tka_keepalive_timer_offset()))
		__sync_fetch_and_add(&expiries_tracepoint, 1);
	return 0;
}
