// SPDX-License-Identifier: GPL-2.0
/*
 * audit.bpf.c: every TCP socket that a process holds, with its owner, its
 * keepalive settings and how long it has been in its state.
 *
 * tka_set_state (tp_btf/inet_sock_set_state): records in sk_storage when a
 * TCP socket entered CLOSE_WAIT (and each state after it, and each state of a
 * socket the iterator already gave storage), and reports how long a socket
 * stayed in CLOSE_WAIT when the application finally closes it. It also
 * assigns the socket cookie on ESTABLISHED, so keepalive events carry one.
 *
 * tka_iter_socks (iter/task_file): one pass over every process's open files
 * in every network namespace; for each TCP socket writes a tka_sock_rec with
 * the owner (pid, comm), state, addresses, effective keepalive values (the
 * socket's own or its namespace's sysctl, as keepalive_time_when() resolves
 * them), probes out, time since the last receive, and the state age.
 * iter/task_file was chosen over iter/tcp because it sees all namespaces in
 * one pass and knows the owner; it skips threads that share their leader's
 * file table. It does not see sockets without a file descriptor (in an
 * accept queue, orphaned after close(), TIME_WAIT): none of those holds an
 * application resource.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "tcpka.h"
#include "include/tka_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* The iterator records "first seen" for sockets whose state began before we
 * watched (the agent sets this; a one-shot `tcpka audit` leaves no trace).
 */
const volatile bool tka_mark_first_seen = false;

/* Lost updates and events, read by the agent. */
__u64 tka_audit_drops[2]; /* 0: sk_storage allocation, 1: ring buffer full */

struct tka_sk_state {
	__u64 since_ns;
	__u8 state;
	__u8 exact; /* since_ns is the transition time, not a first sighting */
	__u8 pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tka_sk_state);
} tka_state SEC(".maps");

/* 256 KiB: about 10,000 CLOSE_WAIT durations between two reads. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} tka_cw_events SEC(".maps");

/* A quarter of tka_cw_events, set by the agent with the ring's size (0: ask
 * the ring, one more helper call per event).
 */
const volatile __u64 tka_cw_wake_bytes = 0;

/* Wake the reader only when a quarter of the ring is waiting. */
static __always_inline __u64 tka_cw_wake_flags(void)
{
	__u64 quarter = tka_cw_wake_bytes ? tka_cw_wake_bytes
					  : bpf_ringbuf_query(&tka_cw_events, BPF_RB_RING_SIZE) / 4;

	return bpf_ringbuf_query(&tka_cw_events, BPF_RB_AVAIL_DATA) >= quarter ? BPF_RB_FORCE_WAKEUP
										 : BPF_RB_NO_WAKEUP;
}

/*
 * When the sockets without storage of ours entered CLOSE_WAIT: one slot per
 * socket cookie hash, claimed on entry, freed on leaving. A slot costs three
 * atomics on a preallocated line, where sk_storage costs two allocations on
 * entry and two RCU frees when the socket ends: under connection churn,
 * where every connection passes CLOSE_WAIT on its passive side, the storage
 * was half of this program's cost, and its frees 0.8% of the CPU besides
 * (tests/bench/RESULTS.md). A socket whose slot is held by another one still
 * in CLOSE_WAIT gets storage as before. Size set by the agent
 * (--close-wait-slots), pinned beside tka_state. The default, 1024 slots
 * (24 KiB), is the largest the kernel allocates from its direct map rather
 * than vmalloc (32 KiB): 8192 slots in 4 KiB pages cost this program ~20 ns
 * more per run under churn (tests/bench/RESULTS.md).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct tka_cw_slot);
} tka_cw_slots SEC(".maps");

/* tka_cw_slots' max_entries - 1 (a power of two), set with it by the agent. */
const volatile __u32 tka_cw_slot_mask = 1023;

/* The slot of the socket with this cookie (unique per socket, never reused;
 * the verifier allows no arithmetic on the socket's address).
 */
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

/* Takes sk's slot for its CLOSE_WAIT entry at now; false when another
 * socket still in CLOSE_WAIT holds it.
 */
static __always_inline bool tka_cw_claim(const struct sock *sk, __u64 cookie, __u64 now)
{
	struct tka_cw_slot *slot;
	__u64 held;

	if (!cookie)
		return false;
	slot = tka_cw_slot_of(cookie);
	if (!slot)
		return false;
	held = *(volatile __u64 *)&slot->cookie;
	if (held == TKA_CW_SLOT_BUSY)
		return false;
	if (held) {
		/* Left behind by a socket that left CLOSE_WAIT while no agent
		 * ran, or whose memory is another socket's by now (TCP socks are
		 * SLAB_TYPESAFE_BY_RCU; a plain load through tka_ro cannot fault):
		 * then the socket there is not in CLOSE_WAIT under that cookie,
		 * and never will be again.
		 */
		const struct sock *o = tka_ro(struct sock, (void *)slot->sk);

		if ((__u64)o->__sk_common.skc_cookie.counter == held &&
		    o->__sk_common.skc_state == TCP_CLOSE_WAIT)
			return false;
	}
	if (__sync_val_compare_and_swap(&slot->cookie, held, TKA_CW_SLOT_BUSY) != held)
		return false;
	slot->sk = (__u64)sk;
	slot->since_ns = now;
	/* Published last, by an atomic (a full barrier): readers match the
	 * cookie before they trust sk and since_ns.
	 */
	__sync_lock_test_and_set(&slot->cookie, cookie);
	return true;
}

/* Frees the slot of the socket with this cookie as it leaves CLOSE_WAIT;
 * its entry time, 0 when it had none.
 */
static __always_inline __u64 tka_cw_release(__u64 cookie)
{
	struct tka_cw_slot *slot = tka_cw_slot_of(cookie);
	__u64 since;

	if (!slot)
		return 0;
	since = tka_cw_slot_since(slot, cookie);
	if (!since || __sync_val_compare_and_swap(&slot->cookie, cookie, 0) != cookie)
		return 0;
	return since;
}

/* How long sk stayed in CLOSE_WAIT, to the agent. */
static __always_inline void tka_cw_report(const struct sock *sk, __u64 duration_ns)
{
	struct tka_cw_event *e = bpf_ringbuf_reserve(&tka_cw_events, sizeof(*e), 0);

	if (!e) {
		__sync_fetch_and_add(&tka_audit_drops[1], 1);
		return;
	}
	e->duration_ns = duration_ns;
	e->cgroup_id = sk->sk_cgrp_data.cgroup->kn->id;
	/* No wakeup per event: one (an irq_work each) tripled this program's
	 * cost under connection churn. The agent drains the ring at least once
	 * a second, and is woken at once when a quarter of it is waiting.
	 */
	bpf_ringbuf_submit(e, tka_cw_wake_flags());
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tka_set_state, const struct sock *sk, int oldstate, int newstate)
{
	struct tka_sk_state *st = NULL;
	bool reported = false;
	__u64 now, since;

	if (sk->sk_protocol != TKA_IPPROTO_TCP)
		return 0;
	/* Keepalive events read skc_cookie: assign it once, when the
	 * connection is made, so they carry one.
	 */
	if (newstate == TCP_ESTABLISHED)
		bpf_get_socket_cookie((void *)sk);
	/*
	 * Per-socket storage is the audit's record of when a socket's state
	 * began. Allocating it for every new socket made this program ~590 ns
	 * per run under churn and cost ~11% of the churn rate
	 * (tests/bench/RESULTS.md), so only CLOSE_WAIT, the state whose age is
	 * a leak, is recorded for every socket, and in a slot (tka_cw_slots)
	 * rather than storage where it can. Sockets that already have storage
	 * (seen by the audit iterator, or whose slot was taken) keep it up to
	 * date; the others get a lower-bound age from the iterator's first
	 * sighting. Most sockets have no storage of any map: one load tells,
	 * where the helper call would cost a call per state change.
	 */
	if (sk->sk_bpf_storage)
		st = bpf_sk_storage_get(&tka_state, (void *)sk, 0, 0);
	if (newstate == TCP_CLOSE_WAIT && !st) {
		now = bpf_ktime_get_ns();
		if (tka_cw_claim(sk, bpf_get_socket_cookie((void *)sk), now))
			return 0;
		st = bpf_sk_storage_get(&tka_state, (void *)sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st) {
			__sync_fetch_and_add(&tka_audit_drops[0], 1);
			return 0;
		}
	} else if (oldstate == TCP_CLOSE_WAIT) {
		now = bpf_ktime_get_ns();
		since = tka_cw_release((__u64)sk->__sk_common.skc_cookie.counter);
		if (since) {
			tka_cw_report(sk, now - since);
			reported = true;
		}
	} else if (st) {
		now = bpf_ktime_get_ns();
	} else {
		return 0;
	}
	if (!st)
		return 0;
	if (!reported && oldstate == TCP_CLOSE_WAIT && st->state == TCP_CLOSE_WAIT && st->exact)
		tka_cw_report(sk, now - st->since_ns);
	st->since_ns = now;
	st->state = newstate;
	st->exact = 1;
	return 0;
}

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
#define TKA_SK(tp, field) ((tp)->inet_conn.icsk_inet.sk.field)

SEC("iter/task_file")
int tka_iter_socks(struct bpf_iter__task_file *kctx)
{
	const struct tka_task_file_ctx *ctx = (const void *)kctx;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct tka_sock_rec rec;
	struct socket *sock;
	struct sock *sk;

	if (!task || !file)
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = sock->sk;
	/* bpf_skc_to_tcp_sock() checks for a full IPPROTO_TCP sock. */
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	/* SOCK_STREAM too: a raw IPPROTO_TCP socket is no tcp_sock. */
	if (TKA_SK(tp, sk_type) != TKA_SOCK_STREAM)
		return 0;

	/* Plain loads through BTF pointers (no bpf_probe_read_kernel call per
	 * field): the helper calls were the largest single cost of a scan.
	 */
	const struct net *net = TKA_SK(tp, __sk_common.skc_net.net);
	__u16 family = TKA_SK(tp, __sk_common.skc_family);
	__u32 now_j = (__u32)bpf_jiffies64();

	if (family != TKA_AF_INET && family != TKA_AF_INET6)
		return 0;
	__builtin_memset(&rec, 0, sizeof(rec));
	rec.cookie = bpf_get_socket_cookie(sk);
	rec.cgroup_id = TKA_SK(tp, sk_cgrp_data.cgroup)->kn->id;
	rec.direction = tka_direction_of(TKA_SK(tp, sk_max_ack_backlog));
	rec.now_ns = bpf_ktime_get_ns();
	rec.netns = net->ns.inum;
	rec.pid = task->tgid;
	rec.fd = ctx->fd;
	bpf_probe_read_kernel(&rec.comm, sizeof(rec.comm), task->comm);
	rec.family = family;
	rec.sport = TKA_SK(tp, __sk_common.skc_num);
	rec.dport = bpf_ntohs(TKA_SK(tp, __sk_common.skc_dport));
	rec.state = TKA_SK(tp, __sk_common.skc_state);
	if (family == TKA_AF_INET6) {
		bpf_probe_read_kernel(&rec.saddr, sizeof(rec.saddr),
				      &TKA_SK(tp, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8));
		bpf_probe_read_kernel(&rec.daddr, sizeof(rec.daddr),
				      &TKA_SK(tp, __sk_common.skc_v6_daddr.in6_u.u6_addr8));
	} else {
		*(__u32 *)rec.saddr = TKA_SK(tp, __sk_common.skc_rcv_saddr);
		*(__u32 *)rec.daddr = TKA_SK(tp, __sk_common.skc_daddr);
	}
	rec.ka_on = !!(TKA_SK(tp, __sk_common.skc_flags) &
		       (1UL << bpf_core_enum_value(enum sock_flags, SOCK_KEEPOPEN)));
	/* keepalive_time_when() and friends: 0 on the socket means the sysctl. */
	rec.ka_time_j = tp->keepalive_time;
	if (!rec.ka_time_j)
		rec.ka_time_j = net->ipv4.sysctl_tcp_keepalive_time;
	rec.ka_intvl_j = tp->keepalive_intvl;
	if (!rec.ka_intvl_j)
		rec.ka_intvl_j = net->ipv4.sysctl_tcp_keepalive_intvl;
	rec.ka_probes = tp->keepalive_probes;
	if (!rec.ka_probes)
		rec.ka_probes = net->ipv4.sysctl_tcp_keepalive_probes;
	rec.probes_out = tp->inet_conn.icsk_probes_out;
	rec.lastrcv_j = now_j - tp->inet_conn.icsk_ack.lrcvtime;

	/* A CLOSE_WAIT entry the state tracker kept in a slot is exact. */
	__u64 cw_since = 0;

	if (rec.state == TCP_CLOSE_WAIT) {
		struct tka_cw_slot *slot = tka_cw_slot_of(rec.cookie);

		cw_since = slot ? tka_cw_slot_since(slot, rec.cookie) : 0;
	}
	struct tka_sk_state *st = bpf_sk_storage_get(&tka_state, sk, 0,
						     tka_mark_first_seen ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	/* No room to remember the first sighting: the age stays unknown. */
	if (!st && tka_mark_first_seen)
		__sync_fetch_and_add(&tka_audit_drops[0], 1);
	if (st && st->since_ns && st->state == rec.state) {
		rec.since_ns = st->since_ns;
		rec.since_exact = st->exact;
	} else if (cw_since) {
		rec.since_ns = cw_since;
		rec.since_exact = 1;
		/* Storage from now on, as for any socket a scan saw: the state
		 * tracker records its next states (the slot still reports the
		 * CLOSE_WAIT duration, once).
		 */
		if (st) {
			st->since_ns = cw_since;
			st->state = TCP_CLOSE_WAIT;
			st->exact = 1;
		}
	} else if (st && tka_mark_first_seen) {
		/* State began before we watched: remember when we first saw it. */
		st->since_ns = rec.now_ns;
		st->state = rec.state;
		st->exact = 0;
		rec.since_ns = rec.now_ns;
	}
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}
