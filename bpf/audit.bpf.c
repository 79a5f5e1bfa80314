// SPDX-License-Identifier: GPL-2.0
/*
 * audit.bpf.c: every TCP socket that a process holds, with its owner, its
 * keepalive settings and how long it has been in its state.
 *
 * tka_iter_socks (iter/task_file, Linux 5.8): one pass over every process's
 * open files in every network namespace; for each TCP socket writes a
 * tka_sock_rec with the owner (pid, comm), state, addresses, effective
 * keepalive values (the socket's own or its namespace's sysctl, as
 * keepalive_time_when() resolves them), probes out, time since the last
 * receive, and the state age: exact for CLOSE_WAIT when the state tracker
 * (state.bpf.c) saw the socket enter it, else the first time a scan of the
 * agent saw it in that state (tka_seen). iter/task_file was chosen over
 * iter/tcp because it sees all namespaces in one pass and knows the owner;
 * it skips threads that share their leader's file table. It does not see
 * sockets without a file descriptor (in an accept queue, orphaned after
 * close(), TIME_WAIT): none of those holds an application resource.
 *
 * The socket is reached from the file through plain fields (an S_IFSOCK
 * inode's file holds its struct socket in private_data), not through
 * bpf_sock_from_file() (5.11) and bpf_skc_to_tcp_sock(): some verifiers
 * refuse those helpers the socket behind the file (an untrusted pointer,
 * 6.18 build v1272), and so the scan uses no helper that takes a socket,
 * nor sk_storage, and keys what it remembers by address and cookie.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "tcpka.h"
#include "include/tka_compat.bpf.h"
#include "include/tka_audit.bpf.h"
#include "include/tka_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* The scan records "first seen" for sockets whose state began before we
 * watched (the agent sets this; a one-shot `tcpka audit` leaves no trace).
 */
const volatile bool tka_mark_first_seen = false;

/* The agent's scan number, stamped on the first-seen entries a scan
 * visits: the agent removes the ones a scan did not visit (their sockets are
 * gone), so the map holds only live sockets.
 */
__u64 tka_scan_gen;

/* First-seen entries lost to a full tka_seen; read by the agent. */
__u64 tka_seen_drops;

/* When a scan of the agent first saw a socket in its current state, by the
 * socket's address; the entry names its socket (cookie, ports, remote
 * address), so another socket later at the address is not taken for it.
 * Allocated per entry: sockets held by processes on the node.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 18);
	__type(key, __u64);
	__type(value, struct tka_seen);
} tka_seen SEC(".maps");

#define TKA_S_IFMT 00170000
#define TKA_S_IFSOCK 0140000

/*
 * libbpf resolves each CO-RE relocation's root type by a pass over all of
 * the kernel's BTF (~1 ms per distinct type here, most of the audit's load
 * time; see tests/bench/RESULTS.md). The iterator therefore reads through
 * as few distinct types as it can: the socket's fields through the
 * tcp_sock, and its context without CO-RE. That context is the attach
 * function's arguments, one u64 slot each in the order of
 * DEFINE_BPF_ITER_FUNC(task_file, ...) (btf_ctx_access() checks every load
 * against the kernel's own types), and seq_file is bpf_iter_meta's first
 * member.
 */
struct tka_iter_meta {
	struct seq_file *seq;
};

struct tka_task_file_ctx {
	struct tka_iter_meta *meta;
	struct task_struct *task;
	__u32 fd;
	__u32 pad;
	struct file *file;
};

/* A struct sock field, read through the tcp_sock it is part of. */
#define TKA_SK(tp, field) TKA_F(tp, inet_conn.icsk_inet.sk.field)

/* Scratch for tka_num(), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tka_audit_num SEC(".maps");

/* Whether entry e was made for this socket, not for an earlier one at its
 * address.
 */
static __always_inline bool tka_seen_is(const struct tka_seen *e, const struct tka_sock_rec *r,
					__u32 dkey)
{
	return e->sport == r->sport && e->dport == r->dport && e->daddr == dkey &&
	       (!e->cookie || !r->cookie || e->cookie == r->cookie);
}

SEC("iter/task_file")
int tka_iter_socks(struct bpf_iter__task_file *kctx)
{
	const struct tka_task_file_ctx *ctx = (const void *)kctx;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct tka_sock_rec rec;
	__u32 zero = 0;

	if (!task || !file)
		return 0;
	/* Sockets only: sockfs inodes, whose files hold their struct socket
	 * (sock_alloc_file()), which points back at the file. An O_PATH file
	 * of a socket's path is S_IFSOCK too, and holds nothing.
	 */
	if ((file->f_inode->i_mode & TKA_S_IFMT) != TKA_S_IFSOCK)
		return 0;
	const void *sock = file->private_data;
	__u64 *num = bpf_map_lookup_elem(&tka_audit_num, &zero);

	if (!sock || !num || (__u64)TKA_F(TKA_VIEW(struct socket, sock), file) != tka_num(num, file))
		return 0;
	__u64 sk = (__u64)TKA_F(TKA_VIEW(struct socket, sock), sk);

	if (!sk)
		return 0;
	const struct tcp_sock *tp = TKA_VIEW(struct tcp_sock, sk);

	/* A TCP stream socket (as sk_is_tcp()): a raw IPPROTO_TCP socket is no
	 * tcp_sock, and neither is MPTCP's (its subflows hold no file).
	 */
	if (TKA_SK(tp, sk_protocol) != TKA_IPPROTO_TCP || TKA_SK(tp, sk_type) != TKA_SOCK_STREAM)
		return 0;
	__u16 family = TKA_SK(tp, __sk_common.skc_family);

	if (family != TKA_AF_INET && family != TKA_AF_INET6)
		return 0;

	const struct net *net = TKA_VIEW(struct net, TKA_SK(tp, __sk_common.skc_net.net));
	__u32 now_j = (__u32)bpf_jiffies64();

	__builtin_memset(&rec, 0, sizeof(rec));
	rec.sk = tka_num(num, (const void *)sk);
	/* 0 until the kernel assigned one: the state tracker does when the
	 * connection is established (ss and SO_COOKIE do too).
	 */
	rec.cookie = TKA_SK(tp, __sk_common.skc_cookie.counter);
	rec.cgroup_id = tka_sock_cgroup_id((const void *)sk);
	rec.direction = tka_direction_of(TKA_SK(tp, sk_max_ack_backlog));
	rec.now_ns = bpf_ktime_get_ns();
	rec.netns = TKA_F(net, ns.inum);
	rec.pid = task->tgid;
	rec.fd = ctx->fd;
	bpf_probe_read_kernel(&rec.comm, sizeof(rec.comm), task->comm);
	rec.family = family;
	rec.sport = TKA_SK(tp, __sk_common.skc_num);
	rec.dport = bpf_ntohs(TKA_SK(tp, __sk_common.skc_dport));
	rec.state = TKA_SK(tp, __sk_common.skc_state);
	if (family == TKA_AF_INET6) {
		bpf_probe_read_kernel(&rec.saddr, sizeof(rec.saddr),
				      &tp->inet_conn.icsk_inet.sk.__sk_common.skc_v6_rcv_saddr);
		bpf_probe_read_kernel(&rec.daddr, sizeof(rec.daddr),
				      &tp->inet_conn.icsk_inet.sk.__sk_common.skc_v6_daddr);
	} else {
		*(__u32 *)rec.saddr = TKA_SK(tp, __sk_common.skc_rcv_saddr);
		*(__u32 *)rec.daddr = TKA_SK(tp, __sk_common.skc_daddr);
	}
	rec.ka_on = !!(TKA_SK(tp, __sk_common.skc_flags) &
		       (1UL << bpf_core_enum_value(enum sock_flags, SOCK_KEEPOPEN)));
	/* keepalive_time_when() and friends: 0 on the socket means the sysctl. */
	rec.ka_time_j = TKA_F(tp, keepalive_time);
	if (!rec.ka_time_j)
		rec.ka_time_j = TKA_F(net, ipv4.sysctl_tcp_keepalive_time);
	rec.ka_intvl_j = TKA_F(tp, keepalive_intvl);
	if (!rec.ka_intvl_j)
		rec.ka_intvl_j = TKA_F(net, ipv4.sysctl_tcp_keepalive_intvl);
	rec.ka_probes = TKA_F(tp, keepalive_probes);
	if (!rec.ka_probes)
		rec.ka_probes = TKA_F(net, ipv4.sysctl_tcp_keepalive_probes);
	rec.probes_out = TKA_F(tp, inet_conn.icsk_probes_out);
	rec.lastrcv_j = now_j - TKA_F(tp, inet_conn.icsk_ack.lrcvtime);

	/* A CLOSE_WAIT entry the state tracker recorded is exact. */
	if (rec.state == TCP_CLOSE_WAIT) {
		rec.since_ns = tka_cw_since(rec.cookie);
		rec.since_exact = rec.since_ns != 0;
	}
	if (!rec.since_exact) {
		/* The remote address's first 4 bytes name the socket enough,
		 * with its ports and cookie.
		 */
		__u32 dkey = *(__u32 *)rec.daddr;
		struct tka_seen *e = bpf_map_lookup_elem(&tka_seen, &rec.sk);

		if (e && tka_seen_is(e, &rec, dkey) && e->state == rec.state) {
			rec.since_ns = e->since_ns;
			if (tka_mark_first_seen)
				e->gen = tka_scan_gen;
		} else if (tka_mark_first_seen) {
			/* Its state began before we watched: remember when we
			 * first saw it.
			 */
			struct tka_seen v = {
				.since_ns = rec.now_ns,
				.cookie = rec.cookie,
				.gen = tka_scan_gen,
				.daddr = dkey,
				.sport = rec.sport,
				.dport = rec.dport,
				.state = rec.state,
			};

			if (bpf_map_update_elem(&tka_seen, &rec.sk, &v, BPF_ANY))
				__sync_fetch_and_add(&tka_seen_drops, 1);
			else
				rec.since_ns = rec.now_ns;
		}
	}
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}
