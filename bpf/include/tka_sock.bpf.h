/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Reading a struct sock into a tka_event. Everything goes through CO-RE
 * reads so the same code works on trusted pointers (tracepoint arguments) and
 * on the sock we derive from a timer_list by pointer arithmetic.
 */
#ifndef TKA_SOCK_BPF_H
#define TKA_SOCK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "../tcpka.h"

#define TKA_AF_INET 2
#define TKA_AF_INET6 10
#define TKA_IPPROTO_TCP 6
#define TKA_SOCK_STREAM 1
#define TKA_ETIMEDOUT 110
#define TKA_ECONNRESET 104
#define TKA_EPIPE 32

/*
 * Direction from one kernel fact: a socket accepted from a listener is a
 * clone of it (sk_clone_lock copies struct sock wholesale and nothing resets
 * sk_max_ack_backlog), so it carries the listener's non-zero backlog; a
 * connect()ed socket never listened and has 0. Unlike tracking SYN_SENT vs
 * SYN_RECV transitions this also classifies sockets that existed before the
 * agent started, and it needs no per-socket state. Misclassified: children of
 * a listen(fd, 0) listener (shown as outbound).
 */
static __always_inline __u8 tka_direction(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_max_ack_backlog) ? TKA_DIR_INBOUND : TKA_DIR_OUTBOUND;
}

static __always_inline void tka_fill(struct tka_event *e, const struct sock *sk, __u8 kind)
{
	const struct inet_connection_sock *icsk = (const void *)sk;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	e->ts_ns = bpf_ktime_get_ns();
	e->kind = kind;
	e->family = family;
	e->outcome = TKA_OUTCOME_NONE;
	e->err = 0;
	e->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	e->cgroup_id = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
	e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->probes_out = BPF_CORE_READ(icsk, icsk_probes_out);
	e->direction = tka_direction(sk);
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	e->gone_follows = 0;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	if (family == TKA_AF_INET6) {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		BPF_CORE_READ_INTO((__u32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->daddr, sk, __sk_common.skc_daddr);
	}
}

#endif /* TKA_SOCK_BPF_H */
