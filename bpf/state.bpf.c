// SPDX-License-Identifier: GPL-2.0
/*
 * state.bpf.c: the state tracker. How long TCP sockets stay in CLOSE_WAIT.
 *
 * tka_set_state (tp_btf/inet_sock_set_state): records when a TCP socket
 * entered CLOSE_WAIT (tka_cw_slots, else tka_cw_more, by cookie), and reports
 * how long it stayed (tka_cw_events) when it leaves, usually because the
 * application finally closed it. It also assigns each connection its socket
 * cookie when it is established, so keepalive events and the audit carry
 * one. The audit (audit.bpf.c) reads the entry times to show a CLOSE_WAIT
 * socket's exact age.
 *
 * Needs bpf_get_socket_cookie() in tracing programs and the BPF atomics
 * (cmpxchg, xchg): Linux 5.12. The agent runs without this part elsewhere.
 * Ignores every other state's age: the audit shows a lower bound (first
 * seen) for those.
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

/* Lost entries and events, by enum tka_state_drop; read by the agent. */
__u64 tka_state_drops[TKA_STATE_DROP__COUNT];

/* Entries in tka_cw_more: while 0 (no slot collided), a socket leaving
 * CLOSE_WAIT without a slot skips the hash lookup.
 */
__u64 tka_cw_more_n;

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

/* Takes the slot of the socket at sk_addr (with this cookie) for its
 * CLOSE_WAIT entry at now; false when another socket still in CLOSE_WAIT
 * holds it.
 */
static __always_inline bool tka_cw_claim(__u64 sk_addr, __u64 cookie, __u64 now)
{
	struct tka_cw_slot *slot = tka_cw_slot_of(cookie);
	__u64 held;

	if (!slot)
		return false;
	held = *(volatile __u64 *)&slot->cookie;
	if (held == TKA_CW_SLOT_BUSY)
		return false;
	if (held) {
		/* Left behind by a socket that left CLOSE_WAIT while no agent
		 * ran, or whose memory is another socket's by now (TCP socks are
		 * SLAB_TYPESAFE_BY_RCU; the reads cannot fault): then the socket
		 * there is not in CLOSE_WAIT under that cookie, and never will
		 * be again.
		 */
		const struct sock *o = TKA_VIEW(struct sock, slot->sk);

		if ((__u64)TKA_F(o, __sk_common.skc_cookie.counter) == held &&
		    TKA_F(o, __sk_common.skc_state) == TCP_CLOSE_WAIT)
			return false;
	}
	if (__sync_val_compare_and_swap(&slot->cookie, held, TKA_CW_SLOT_BUSY) != held)
		return false;
	slot->sk = sk_addr;
	slot->since_ns = now;
	/* Published last, by an atomic (a full barrier): readers match the
	 * cookie before they trust sk and since_ns.
	 */
	__sync_lock_test_and_set(&slot->cookie, cookie);
	return true;
}

/* Ends the CLOSE_WAIT record of the socket with this cookie as it leaves the
 * state; its entry time, 0 when it had none.
 */
static __always_inline __u64 tka_cw_release(__u64 cookie)
{
	struct tka_cw_slot *slot = tka_cw_slot_of(cookie);
	__u64 since = slot ? tka_cw_slot_since(slot, cookie) : 0;

	if (since) {
		if (__sync_val_compare_and_swap(&slot->cookie, cookie, 0) != cookie)
			return 0;
		return since;
	}
	if (!tka_cw_more_n)
		return 0;
	__u64 *more = bpf_map_lookup_elem(&tka_cw_more, &cookie);

	if (!more)
		return 0;
	since = *more;
	if (bpf_map_delete_elem(&tka_cw_more, &cookie))
		return 0;
	__sync_fetch_and_add(&tka_cw_more_n, -1);
	return since;
}

/* How long sk stayed in CLOSE_WAIT, to the agent. */
static __always_inline void tka_cw_report(const struct sock *sk, __u64 duration_ns)
{
	struct tka_cw_event *e = bpf_ringbuf_reserve(&tka_cw_events, sizeof(*e), 0);

	if (!e) {
		__sync_fetch_and_add(&tka_state_drops[TKA_STATE_DROP_RINGBUF], 1);
		return;
	}
	e->duration_ns = duration_ns;
	e->cgroup_id = tka_sock_cgroup_id(sk);
	/* No wakeup per event: one (an irq_work each) tripled this program's
	 * cost under connection churn. The agent drains the ring at least once
	 * a second, and is woken at once when a quarter of it is waiting.
	 */
	bpf_ringbuf_submit(e, tka_cw_wake_flags());
}

/* Scratch for tka_num(), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tka_state_num SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tka_set_state, const struct sock *sk, int oldstate, int newstate)
{
	__u64 cookie, since;

	if (sk->sk_protocol != TKA_IPPROTO_TCP)
		return 0;
	/* Keepalive events and the audit read skc_cookie: assign it once,
	 * when the connection is made, so they carry one.
	 */
	if (newstate == TCP_ESTABLISHED) {
		bpf_get_socket_cookie((void *)sk);
		return 0;
	}
	if (newstate == TCP_CLOSE_WAIT) {
		__u32 zero = 0;
		__u64 *num = bpf_map_lookup_elem(&tka_state_num, &zero);
		__u64 now = bpf_ktime_get_ns();

		cookie = bpf_get_socket_cookie((void *)sk);
		if (!num || !cookie)
			return 0;
		if (tka_cw_claim(tka_num(num, sk), cookie, now))
			return 0;
		if (bpf_map_update_elem(&tka_cw_more, &cookie, &now, BPF_NOEXIST)) {
			__sync_fetch_and_add(&tka_state_drops[TKA_STATE_DROP_MORE_FULL], 1);
			return 0;
		}
		__sync_fetch_and_add(&tka_cw_more_n, 1);
		return 0;
	}
	if (oldstate != TCP_CLOSE_WAIT)
		return 0;
	cookie = sk->__sk_common.skc_cookie.counter;
	since = cookie ? tka_cw_release(cookie) : 0;
	if (since)
		tka_cw_report(sk, bpf_ktime_get_ns() - since);
	return 0;
}
