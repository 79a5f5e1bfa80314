/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What differs between the kernels tcpka runs on (Linux 5.10 to 7.x), in one
 * place. Every object that includes this is built twice (cmake/BpfSkeleton.cmake):
 *
 *  - TKA_RO=1, for kernels with the bpf_rdonly_cast kfunc (6.2+): kernel
 *    memory is read through plain loads, which the kernel's exception table
 *    makes safe (one instruction a field);
 *  - TKA_RO=0, the compat twin: through bpf_probe_read_kernel (a helper call a
 *    field, ~5x the cost, tests/bench/RESULTS.md).
 *
 * The agent picks the twin from the kernel's BTF (agent/kernel_features.cpp).
 * A runtime switch cannot do it: the kfunc must resolve for the object to
 * load at all. libbpf 1.1 (Debian 12) has no bpf_ksym_exists() and cannot
 * poison the call of an unresolved weak kfunc, and kernels before 6.4 refuse a
 * program that loads a kfunc's address. The two objects have the same maps,
 * globals and programs (a build step checks their skeletons), so one skeleton
 * type serves both.
 *
 * Helpers that only newer kernels allow in tracing programs are behind
 * rodata switches the agent sets from a load probe: the verifier sees the
 * switch as a constant and never checks the branch it cannot take.
 * Fields that moved or changed are read through CO-RE flavours (types named
 * ___tka below) behind bpf_core_field_exists().
 */
#ifndef TKA_COMPAT_BPF_H
#define TKA_COMPAT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef TKA_RO
#error "build with -DTKA_RO=0 or -DTKA_RO=1 (cmake/BpfSkeleton.cmake)"
#endif

#if TKA_RO
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
/* p (a pointer or an address) as a read-only `const type *`. */
#define tka_ro(type, p) ((const type *)bpf_rdonly_cast((const void *)(p), bpf_core_type_id_kernel(type)))
/* A view of p for TKA_F(): the read-only cast, or p itself (compat). */
#define TKA_VIEW(type, p) tka_ro(type, p)
/* A field of a view, following pointers: TKA_F(s, a.b, c) is s->a.b->c. */
#define TKA_F(view, ...) ((view)->___arrow(__VA_ARGS__))
/* sizeof(dst) bytes of a field of a view into dst. */
#define TKA_COPY(dst, view, field) __builtin_memcpy((dst), &(view)->field, sizeof(dst))
#else
#define TKA_VIEW(type, p) ((const type *)(const void *)(p))
#define TKA_F(view, ...) BPF_CORE_READ(view, __VA_ARGS__)
#define TKA_COPY(dst, view, field) bpf_core_read((dst), sizeof(dst), &(view)->field)
#endif

/*
 * bpf_get_socket_cookie() in tracing programs (Linux 5.12, commit
 * c5dbb89fc2ac); set by the agent. Without it a socket's cookie is read as the
 * kernel left it: 0 until something (ss, SO_COOKIE, a BPF program) asked.
 */
const volatile __u8 tka_cookie_helper = 0;

/* The cookie of a socket the program was handed (a trusted pointer). */
static __always_inline __u64 tka_cookie(const struct sock *sk)
{
	if (tka_cookie_helper)
		return bpf_get_socket_cookie((void *)sk);
	return TKA_F(TKA_VIEW(struct sock, sk), __sk_common.skc_cookie.counter);
}

/*
 * A pointer as a number, for hashing and arithmetic the verifier refuses on
 * pointers: stored in a map value and read back (the verifier then forgets it
 * was a pointer; storing one needs CAP_PERFMON, which the agent has). slot is
 * the caller's own u64 of a per-CPU map value, one per program: programs on
 * other CPUs do not share it, nor other programs on this one. The same program
 * nested on one CPU (an interrupt between the store and the load, before
 * Linux 6.2 stopped raw tracepoint programs from nesting) could read the
 * inner run's number: a window of two instructions. Kernels from 6.12
 * refuse the earlier way, the difference of two pointers.
 */
static __always_inline __u64 tka_num(__u64 *slot, const void *p)
{
	*slot = (__u64)p;
	return *(volatile __u64 *)slot;
}

/*
 * Where the keepalive timer lives in a TCP socket: sk->sk_timer, or, since a
 * 2025 change that stable kernels took too, icsk->icsk_keepalive_timer (sk_timer
 * is the retransmit timer there). Not by version: Debian's 6.12.118 and 7.2
 * have the new place, this project's 6.18.44 host the old. A wrong guess is
 * silent: the socket derived from the timer is another one's memory, whose
 * probe count never changes (the blind probes on 7.2 before this).
 */
struct inet_connection_sock___tka_ka7 {
	struct timer_list icsk_keepalive_timer;
} __attribute__((preserve_access_index));

static __always_inline __u64 tka_keepalive_timer_offset(void)
{
	if (bpf_core_field_exists(struct inet_connection_sock___tka_ka7, icsk_keepalive_timer))
		return bpf_core_field_offset(struct inet_connection_sock___tka_ka7, icsk_keepalive_timer);
	return bpf_core_field_offset(struct sock, sk_timer);
}

/*
 * The cgroup of a socket. Linux 5.15 made sock_cgroup_data hold a plain
 * `struct cgroup *cgroup`; before, `val` held it, unless net_prio or net_cls
 * (cgroup v1) had taken the word over (low bits set), when the socket counts
 * as the root cgroup's (sock_cgroup_ptr()).
 */
struct sock_cgroup_data___tka_old {
	__u64 val;
} __attribute__((preserve_access_index));

struct sock___tka_old {
	struct sock_cgroup_data___tka_old sk_cgrp_data;
} __attribute__((preserve_access_index));

/* The root cgroup's id (kernfs ids start at 1). */
#define TKA_ROOT_CGROUP_ID 1

/* The cgroup v2 id of sk (an address or pointer). */
static __always_inline __u64 tka_sock_cgroup_id(const void *sk)
{
	if (bpf_core_field_exists(struct sock_cgroup_data, cgroup))
		return TKA_F(TKA_VIEW(struct sock, sk), sk_cgrp_data.cgroup, kn, id);
	__u64 v = BPF_CORE_READ((const struct sock___tka_old *)sk, sk_cgrp_data.val);

	if (!v || (v & 3))
		return TKA_ROOT_CGROUP_ID;
	return BPF_CORE_READ((const struct cgroup *)v, kn, id);
}

/* The address of sk's struct cgroup (0 when the root's), for reading its id
 * later with tka_cgroup_id_at(): a socket's first cache line, read early.
 */
static __always_inline __u64 tka_sock_cgroup(const void *sk)
{
	if (bpf_core_field_exists(struct sock_cgroup_data, cgroup))
		return (__u64)TKA_F(TKA_VIEW(struct sock, sk), sk_cgrp_data.cgroup);
	__u64 v = BPF_CORE_READ((const struct sock___tka_old *)sk, sk_cgrp_data.val);

	return (v & 3) ? 0 : v;
}

static __always_inline __u64 tka_cgroup_id_at(__u64 cgroup)
{
	if (!cgroup)
		return TKA_ROOT_CGROUP_ID;
	return TKA_F(TKA_VIEW(struct cgroup, cgroup), kn, id);
}

#endif /* TKA_COMPAT_BPF_H */
