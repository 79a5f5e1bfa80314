// SPDX-License-Identifier: GPL-2.0
/*
 * sockops.bpf.c: turn TCP keepalive on for the sockets of a cgroup, with no
 * change to the application.
 *
 * tka_sockops (cgroup sock_ops, one load per policy, attached to the policy's
 * cgroup v2 directory, so it also runs for descendant cgroups): on
 * ACTIVE_ESTABLISHED (connect()ed) and PASSIVE_ESTABLISHED (accepted) sets
 * SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT with
 * bpf_setsockopt(), values read from tka_policy on every connection so the
 * agent changes them without re-attaching.
 *
 * tka_iter_apply (iter/tcp): the same for sockets that already exist, in the
 * network namespace the iterator is created in, limited to sockets whose
 * cgroup is the policy's cgroup or one of its descendants. bpf_setsockopt()
 * from iter/tcp needs Linux 5.15; the agent loads this program only where a
 * load probe says the kernel allows it (sockops alone works from 5.10).
 *
 * A socket whose SO_KEEPALIVE is already on (the application set it before
 * connect(), or the listener carried it) keeps its own values unless the
 * policy says override; before Linux 6.1 the program cannot tell, and
 * applies the policy (tka_apply()). Nested policies: the innermost cgroup's program runs
 * first, so it wins unless an outer policy overrides. An application that
 * sets keepalive options after the connection is established replaces ours:
 * sockops has no hook on the application's setsockopt().
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "tcpka.h"
#include "include/tka_compat.bpf.h"
#include "include/tka_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define TKA_SOL_SOCKET 1
#define TKA_SO_KEEPALIVE 9
#define TKA_SOL_TCP 6
#define TKA_TCP_KEEPIDLE 4
#define TKA_TCP_KEEPINTVL 5
#define TKA_TCP_KEEPCNT 6

/* The policy of this load; entry 0 only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tka_policy);
} tka_policy_map SEC(".maps");

/* enum tka_sockops_stat counters, read by the agent. */
__u64 tka_so_stats[TKA_SO__COUNT];

static __always_inline void tka_so_count(__u32 stat)
{
	if (stat < TKA_SO__COUNT)
		__sync_fetch_and_add(&tka_so_stats[stat], 1);
}

static __always_inline struct tka_policy *tka_policy(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tka_policy_map, &zero);
}

/*
 * Applies pol to the socket behind ctx (a bpf_sock_ops or a tcp_sock: the
 * helpers take either, and this is inlined into each program).
 */
static __always_inline int tka_apply(void *ctx, const struct tka_policy *pol, bool inbound)
{
	int on = 0, val;
	bool unknown = false;

	/* Before Linux 6.1 (commit 38566ec06f52, sk_getsockopt() reused),
	 * bpf_getsockopt(SOL_SOCKET) knows only SO_MARK, SO_PRIORITY and
	 * SO_BINDTODEVICE, and no other way shows this program the flag: the
	 * application's own keepalive cannot be told apart, and the policy is
	 * applied as with override, counted apart.
	 */
	if (bpf_getsockopt(ctx, TKA_SOL_SOCKET, TKA_SO_KEEPALIVE, &on, sizeof(on))) {
		unknown = true;
		on = 0;
	}
	if (on && !pol->override) {
		tka_so_count(inbound ? TKA_SO_KEPT_IN : TKA_SO_KEPT_OUT);
		return TKA_APPLY_KEPT;
	}
	/* Timers first: the kernel arms the keepalive timer when SO_KEEPALIVE
	 * goes on, with whatever TCP_KEEPIDLE is at that moment.
	 */
	val = pol->idle;
	if (bpf_setsockopt(ctx, TKA_SOL_TCP, TKA_TCP_KEEPIDLE, &val, sizeof(val))) {
		tka_so_count(TKA_SO_ERR_IDLE);
		return TKA_APPLY_ERROR;
	}
	val = pol->intvl;
	if (bpf_setsockopt(ctx, TKA_SOL_TCP, TKA_TCP_KEEPINTVL, &val, sizeof(val))) {
		tka_so_count(TKA_SO_ERR_INTVL);
		return TKA_APPLY_ERROR;
	}
	val = pol->cnt;
	if (bpf_setsockopt(ctx, TKA_SOL_TCP, TKA_TCP_KEEPCNT, &val, sizeof(val))) {
		tka_so_count(TKA_SO_ERR_CNT);
		return TKA_APPLY_ERROR;
	}
	val = 1;
	if (bpf_setsockopt(ctx, TKA_SOL_SOCKET, TKA_SO_KEEPALIVE, &val, sizeof(val))) {
		tka_so_count(TKA_SO_ERR_KEEPALIVE);
		return TKA_APPLY_ERROR;
	}
	tka_so_count(inbound ? TKA_SO_APPLIED_IN : TKA_SO_APPLIED_OUT);
	if (unknown)
		tka_so_count(inbound ? TKA_SO_UNKNOWN_IN : TKA_SO_UNKNOWN_OUT);
	return TKA_APPLY_SET;
}

SEC("sockops")
int tka_sockops(struct bpf_sock_ops *skops)
{
	struct tka_policy *pol;
	bool inbound;

	if (skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		inbound = true;
	else if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		inbound = false;
	else
		return 1;
	pol = tka_policy();
	if (!pol || !(pol->directions & (inbound ? TKA_POLICY_INBOUND : TKA_POLICY_OUTBOUND)))
		return 1;
	tka_apply(skops, pol, inbound);
	return 1;
}

/* Before Linux 6.1 a cgroup kept its ancestors' ids (ancestor_ids[]), not
 * pointers to them (ancestors[]).
 */
struct cgroup___tka_old {
	__u64 ancestor_ids[0];
} __attribute__((preserve_access_index));

/* Whether the socket's cgroup is pol's cgroup or below it. */
static __always_inline bool tka_in_cgroup(const struct sock *sk, const struct tka_policy *pol)
{
	const struct cgroup *cg = (const void *)tka_sock_cgroup(sk);
	__u32 level = pol->cgroup_level;
	__u64 id = 0;

	if (!cg || BPF_CORE_READ(cg, level) < (int)level || level >= 256)
		return false;
	/* The ancestor at depth i (the cgroup itself at its own level). */
	if (bpf_core_field_exists(struct cgroup, ancestors)) {
		struct cgroup *anc = NULL;

		bpf_core_read(&anc, sizeof(anc), &cg->ancestors[level]);
		id = anc ? BPF_CORE_READ(anc, kn, id) : 0;
	} else {
		bpf_core_read(&id, sizeof(id), &((const struct cgroup___tka_old *)cg)->ancestor_ids[level]);
	}
	return id && id == pol->cgroup_id;
}

SEC("iter/tcp")
int tka_iter_apply(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tka_policy *pol = tka_policy();
	struct tcp_sock *tp;
	struct sock *sk;
	bool inbound;

	if (!skc || !pol)
		return 0;
	/* NULL for request and timewait sockets. */
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	sk = (struct sock *)tp;
	if (sk->__sk_common.skc_state != TCP_ESTABLISHED || !tka_in_cgroup(sk, pol))
		return 0;
	inbound = tka_direction(sk) == TKA_DIR_INBOUND;
	if (!(pol->directions & (inbound ? TKA_POLICY_INBOUND : TKA_POLICY_OUTBOUND)))
		return 0;

	int res = tka_apply(tp, pol, inbound);
	__u16 sport = sk->__sk_common.skc_num;
	__u16 dport = bpf_ntohs(sk->__sk_common.skc_dport);

	BPF_SEQ_PRINTF(ctx->meta->seq, "%u %u %d\n", sport, dport, res);
	return 0;
}
