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
 * Built against the running kernel's vmlinux.h: LINUX_MIB_TCPKEEPALIVE and
 * LINUX_MIB_TCPABORTONTIMEOUT are indices into the kernel's MIB array that
 * are not promised stable across versions, which is fine for a test tool
 * and why the agent does not do this.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
/* tka_ro only (a read-only cast), not the agent's detection. */
#include "../../bpf/include/tka_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

extern const void tcp_keepalive_timer __ksym;

const volatile __u32 netns_inum = 0;

__u64 probes, timeout_kills, expiries_tp_btf, expiries_raw_tp, expiries_tracepoint;

struct bracket {
	__u64 timer;    /* the timer_list of the callback running on this CPU, 0 when none */
	__u64 mib;      /* address of this CPU's TcpExt MIB array of its netns */
	__u64 probes;   /* its TCPKeepAlive at entry */
	__u64 aborts;   /* its TCPAbortOnTimeout at entry */
	__u64 cpu_off;  /* this CPU's per-CPU offset, 0 until known */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bracket);
} brackets SEC(".maps");

static __always_inline bool in_netns(const void *timer)
{
	const struct sock *sk = (const void *)timer - bpf_core_field_offset(struct sock, sk_timer);

	return !netns_inum || BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum) == netns_inum;
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
	if (!in_netns(timer))
		return 0;
	__sync_fetch_and_add(&expiries_tp_btf, 1);

	if (!b->cpu_off) {
		/* This CPU's element of our per-CPU array minus its per-CPU
		 * address (pptrs[0], read through a struct that starts with a
		 * pointer: the verifier refuses a flexible array's elements).
		 * bpf_this_cpu_ptr() would need a data symbol in kallsyms.
		 */
		const char *arr = (const char *)tka_ro(struct bpf_array, &brackets);
		const void *base = tka_ro(struct llist_node, arr + bpf_core_field_offset(struct bpf_array, pptrs))->next;

		b->cpu_off = (__u64)b - (__u64)base;
	}
	const struct sock *sk = tka_ro(struct sock, (const void *)timer - bpf_core_field_offset(struct sock, sk_timer));
	const struct net *net = tka_ro(struct net, sk->__sk_common.skc_net.net);

	/* Stored and read back as numbers: the map forgets they were pointers. */
	b->mib = (__u64)net->mib.net_statistics;
	b->mib = *(volatile __u64 *)&b->mib + *(volatile __u64 *)&b->cpu_off;
	const struct linux_mib *mib = tka_ro(struct linux_mib, (const void *)*(volatile __u64 *)&b->mib);

	b->probes = mib->mibs[LINUX_MIB_TCPKEEPALIVE];
	b->aborts = mib->mibs[LINUX_MIB_TCPABORTONTIMEOUT];
	b->timer = (__u64)timer;
	return 0;
}

SEC("tp_btf/timer_expire_exit")
int BPF_PROG(witness_exit, struct timer_list *timer)
{
	__u32 zero = 0;
	struct bracket *b = bpf_map_lookup_elem(&brackets, &zero);

	if (!b || !b->timer || b->timer != (__u64)timer)
		return 0;
	b->timer = 0;
	/* The per-CPU MIB outlives the callback, whatever became of the sock. */
	const struct linux_mib *mib = tka_ro(struct linux_mib, (const void *)*(volatile __u64 *)&b->mib);
	__u64 now_probes = mib->mibs[LINUX_MIB_TCPKEEPALIVE];
	__u64 now_aborts = mib->mibs[LINUX_MIB_TCPABORTONTIMEOUT];

	if (now_probes > b->probes)
		__sync_fetch_and_add(&probes, now_probes - b->probes);
	if (now_aborts > b->aborts)
		__sync_fetch_and_add(&timeout_kills, now_aborts - b->aborts);
	return 0;
}

SEC("raw_tp/timer_expire_entry")
int witness_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	struct timer_list *timer = (void *)ctx->args[0];

	if (BPF_CORE_READ(timer, function) == (void *)&tcp_keepalive_timer && in_netns(timer))
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
	if (e->function == (void *)&tcp_keepalive_timer && in_netns(e->timer))
		__sync_fetch_and_add(&expiries_tracepoint, 1);
	return 0;
}
