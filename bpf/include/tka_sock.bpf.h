/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Reading a struct sock into a tka_event. Every read goes through
 * tka_compat.bpf.h's views, so the same code works on trusted pointers
 * (tracepoint arguments), on the sock derived from its keepalive timer, and on
 * both builds of an object (plain loads, or bpf_probe_read_kernel).
 */
#ifndef TKA_SOCK_BPF_H
#define TKA_SOCK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "../tcpka.h"
#include "tka_compat.bpf.h"

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
static __always_inline __u8 tka_direction_of(__u32 sk_max_ack_backlog)
{
	return sk_max_ack_backlog ? TKA_DIR_INBOUND : TKA_DIR_OUTBOUND;
}

static __always_inline __u8 tka_direction(const void *sk)
{
	return tka_direction_of(TKA_F(TKA_VIEW(struct sock, sk), sk_max_ack_backlog));
}

/* Whether sk has a SOCK_* flag (enum sock_flags) set. */
#define tka_sock_flag(sk, flag)                                                                    \
	((TKA_F(TKA_VIEW(struct sock, (sk)), __sk_common.skc_flags) &                              \
	  (1UL << bpf_core_enum_value(enum sock_flags, flag))) != 0)

/*
 * Everything but ts_ns from sk, with the socket's attribution given:
 * cgroup_id (tka_sock_cgroup_id) and direction (tka_direction_of), read by
 * the caller, possibly earlier. They live on two lines of struct sock
 * (sk_max_ack_backlog, sk_cgrp_data) that TCP's timers and transmit path
 * never touch, so where they are read decides who pays the two cache misses.
 * The caller stamps the time, or leaves it to the reader (probe events:
 * ~45 ns of the clock's here, keepalive.bpf.c).
 */
static __always_inline void tka_fill_attr(struct tka_event *e, const void *sk, __u8 kind,
					  __u64 cgroup_id, __u8 direction)
{
	const struct sock *s = TKA_VIEW(struct sock, sk);
	const struct inet_sock *inet = TKA_VIEW(struct inet_sock, sk);
	__u16 family = TKA_F(s, __sk_common.skc_family);

	e->kind = kind;
	e->family = family;
	e->outcome = TKA_OUTCOME_NONE;
	e->err = 0;
	e->cookie = TKA_F(s, __sk_common.skc_cookie.counter);
	e->cgroup_id = cgroup_id;
	e->netns = TKA_F(s, __sk_common.skc_net.net, ns.inum);
	/* inet_sport, not skc_num: tcp_set_state(TCP_CLOSE) may have given an
	 * ephemeral port back (inet_put_port clears skc_num), the source port
	 * of its packets stays.
	 */
	e->sport = bpf_ntohs(TKA_F(inet, inet_sport));
	e->dport = bpf_ntohs(TKA_F(s, __sk_common.skc_dport));
	e->state = TKA_F(s, __sk_common.skc_state);
	e->probes_out = TKA_F(TKA_VIEW(struct inet_connection_sock, sk), icsk_probes_out);
	e->direction = direction;
	e->gone_follows = 0;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	if (family == TKA_AF_INET6) {
		TKA_COPY(e->saddr, s, __sk_common.skc_v6_rcv_saddr);
		TKA_COPY(e->daddr, s, __sk_common.skc_v6_daddr);
	} else {
		__builtin_memset(e->saddr, 0, sizeof(e->saddr));
		__builtin_memset(e->daddr, 0, sizeof(e->daddr));
		*(__u32 *)e->saddr = TKA_F(s, __sk_common.skc_rcv_saddr);
		*(__u32 *)e->daddr = TKA_F(s, __sk_common.skc_daddr);
	}
}

/* Everything but kind from sk, and the time. */
static __always_inline void tka_fill(struct tka_event *e, const void *sk, __u8 kind)
{
	e->ts_ns = bpf_ktime_get_ns();
	tka_fill_attr(e, sk, kind, tka_sock_cgroup_id(sk), tka_direction(sk));
}

#endif /* TKA_SOCK_BPF_H */
