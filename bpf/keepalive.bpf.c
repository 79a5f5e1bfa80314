// SPDX-License-Identifier: GPL-2.0
/*
 * keepalive.bpf.c: what the kernel's TCP keepalive machinery does, per socket.
 *
 * Observes (all tp_btf, no kprobe/fentry needed):
 *  - probes: the expiry of a socket's sk_timer whose function is
 *    tcp_keepalive_timer (timer_expire_entry/exit bracket). icsk_probes_out
 *    rising across the bracket means tcp_write_wakeup() sent one probe.
 *  - recovered: a socket that had >= 2 probes out (one went unanswered for a
 *    whole interval) and is back at 0 at its next keepalive expiry. Such
 *    sockets, and only those, are remembered in tka_probed.
 *  - kills by timeout, two interchangeable ways chosen by rodata kill_mode:
 *    the reset reason SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT on tcp_send_reset
 *    (6.10+), or an error report inside the keepalive-timer bracket (any
 *    kernel with the tracepoint).
 *  - kills by reset: tcp_receive_reset while keepalive probes are out.
 *  - gone: tcp_destroy_sock for sockets with keepalive on (only those can
 *    have been probed), so the agent can forget them.
 * Ignores on purpose: retransmission/zero-window timeouts (another timer;
 * packets_out or queued data), orphaned FIN_WAIT2 sockets reaped by the same
 * timer (not a keepalive decision), resets outside probing.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "tcpka.h"
#include "include/tka_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Static function: libbpf resolves the address from /proc/kallsyms. */
extern const void tcp_keepalive_timer __ksym;

/* How timeout kills are recognised; set by the agent before load. */
const volatile __u32 tka_kill_mode = TKA_KILL_RESET_REASON;

/* Events lost in the kernel, by enum tka_drop_reason; read by the agent. */
__u64 tka_drops[TKA_DROP__COUNT];

/*
 * Every keepalive expiry reads these: a cache line of their own.
 *
 * unanswered: how many sockets tka_probed holds. Only they can produce a
 * "recovered" event, so while it is 0 (every peer answers, the normal case)
 * the timer entry and tcp_destroy_sock skip their lookup: a cold hash lookup
 * costs ~550 ns here, twice what the rest of a probe costs
 * (tests/bench/RESULTS.md).
 *
 * probe_attribution: whether probe events carry the socket's cgroup and
 * direction (else cgroup id 0, direction unknown); the agent sets it, also
 * while the programs run. They live on two lines of struct sock
 * (sk_max_ack_backlog, sk_cgrp_data) that nothing else on the keepalive path
 * touches, and reading them was ~36 ns of each keepalive expiry
 * (tests/bench/RESULTS.md). They never change while the socket lives, so
 * `tcpka run` turns this off and attributes a probe itself, from the
 * socket's earlier events or its audit scan, and turns it on again while
 * its socket table is full. Kill, recovered and gone events always carry
 * them.
 *
 * probe_time: whether probe events carry the time (bpf_ktime_get_ns(), else
 * 0). Set by the agent: `tcpka run` stamps probes itself, on reading them.
 */
struct tka_hot tka_hot SEC(".data.tka_hot") __attribute__((aligned(64))) = {
	.probe_attribution = 1,
	.probe_time = 1,
};

/*
 * The same count split by a hash of the socket's address (the key of
 * tka_probed): how many of its entries fall in each bucket. While some
 * sockets have an unanswered probe (half-open connections, the case this
 * agent is for), a socket whose bucket is empty cannot be in tka_probed, so
 * the timer entry of an answered socket and tcp_destroy_sock skip the cold
 * lookup for nearly all sockets instead of for none. 16 KiB: allocated from
 * the kernel's direct map, and read only while tka_hot.unanswered is not 0.
 */
#define TKA_UNANSWERED_BUCKETS_LOG2 12
__u32 tka_unanswered_in[1 << TKA_UNANSWERED_BUCKETS_LOG2] SEC(".data.tka_unanswered_in");

/*
 * A socket's address as a number (addr), for its bucket: its distance from a
 * fixed address, tka_unanswered_in's. The verifier allows no arithmetic on a
 * pointer but adding and subtracting a number, nor reading a spilled one in
 * parts; but the difference of two pointers is a number to a program loaded
 * with CAP_PERFMON, which the agent needs anyway (the timer bracket keeps
 * the socket's address in a map). No helper call: tcp_destroy_sock runs this
 * for every socket end while any socket has an unanswered probe, and it cost
 * ~8-24 ns more with bpf_probe_read_kernel() (tests/bench/RESULTS.md).
 */
static __always_inline __u64 tka_addr(const void *sk)
{
	return (__u64)sk - (__u64)tka_unanswered_in;
}

static __always_inline __u32 *tka_unanswered_bucket(__u64 addr)
{
	/* Fibonacci hashing: socket addresses are a slab's stride apart. */
	__u32 i = (addr * 0x9E3779B97F4A7C15ULL) >> (64 - TKA_UNANSWERED_BUCKETS_LOG2);

	return &tka_unanswered_in[i & ((1 << TKA_UNANSWERED_BUCKETS_LOG2) - 1)];
}

/* Whether the socket at addr may be in tka_probed: false means it is not. */
static __always_inline bool tka_maybe_probed(__u64 addr)
{
	return *tka_unanswered_bucket(addr) != 0;
}

/* Events to the agent. Size set by the agent before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} tka_events SEC(".maps");

/* Which socket an entry of tka_probed was made for. */
struct tka_probed_val {
	__u64 cookie;   /* 0 when the socket had none yet */
	__u32 portpair; /* skc_portpair */
	__u32 pad;
};

/*
 * Sockets with a keepalive probe unanswered for a whole interval (a second
 * probe went out), keyed by the address of their struct sock, until the
 * peer answers (recovered), the socket ends (tcp_destroy_sock) or another
 * socket is found at the address. This would live in sk_storage, but the
 * timer hooks only have the timer_list: the sock derived from it is not a
 * trusted pointer and the verifier refuses it to bpf_sk_storage_get(). A
 * probe of a socket whose peer answers (nearly all of them) touches no map:
 * its event is read from the socket itself. A plain hash (not LRU): when
 * full we count the loss instead of silently evicting.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tka_probed_val);
} tka_probed SEC(".maps");

/* The keepalive-timer callback running on this CPU, if any. */
struct tka_bracket {
	__u64 sk;            /* struct sock address, 0 when none */
	__u16 sport;         /* local port at entry (before 6.10 only): tcp_done() may clear it */
	__u8 state;          /* TCP state at entry (before 6.10 only): CLOSE once tcp_done() ran */
	__u8 probes_before;  /* icsk_probes_out at entry */
	__u8 killed;         /* a kill was seen inside the callback */
	__u8 direction;      /* enum tka_direction, read at entry */
	__u8 pad[2];
	__u64 cgroup;        /* the socket's struct cgroup, read at entry; 0: not read */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tka_bracket);
} tka_bracket_map SEC(".maps");

/* Local flavour so this builds against any vmlinux.h; CO-RE resolves it. */
enum sk_rst_reason___tka { SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT___tka = 15 };

static __always_inline void tka_count_drop(__u32 reason)
{
	if (reason < TKA_DROP__COUNT)
		__sync_fetch_and_add(&tka_drops[reason], 1);
}

/* Whether tka_destroy will report this socket's end: keepalive is on. */
static __always_inline __u8 tka_gone_follows(const struct sock *sk)
{
	return tka_sock_flag(sk, SOCK_KEEPOPEN) ? 1 : 0;
}

/* A filled event, not yet submitted; NULL (and counted) when the ring is full. */
static __always_inline struct tka_event *tka_reserve(const struct sock *sk, __u8 kind, __u8 outcome,
						     __s32 err, __u64 cookie)
{
	struct tka_event *e = bpf_ringbuf_reserve(&tka_events, sizeof(*e), 0);

	if (!e) {
		tka_count_drop(TKA_DROP_RINGBUF);
		return NULL;
	}
	tka_fill(e, sk, kind);
	e->gone_follows = kind == TKA_EV_KILL ? tka_gone_follows(sk) : 0;
	e->outcome = outcome;
	e->err = err;
	if (cookie)
		e->cookie = cookie;
	return e;
}

static __always_inline void tka_emit(const struct sock *sk, __u8 kind, __u8 outcome, __s32 err,
				     __u64 cookie)
{
	struct tka_event *e = tka_reserve(sk, kind, outcome, err, cookie);

	/* A kill wakes the reader at once, even with probes waiting unwoken. */
	if (e)
		bpf_ringbuf_submit(e, kind == TKA_EV_KILL ? BPF_RB_FORCE_WAKEUP : 0);
}

/* A quarter of tka_events, set by the agent with the ring's size (0: ask the
 * ring, one more helper call per event).
 */
const volatile __u64 tka_wake_bytes = 0;

/* Wake the reader only when a quarter of the ring is waiting. */
static __always_inline __u64 tka_wake_flags(void)
{
	__u64 quarter = tka_wake_bytes ? tka_wake_bytes : bpf_ringbuf_query(&tka_events, BPF_RB_RING_SIZE) / 4;

	return bpf_ringbuf_query(&tka_events, BPF_RB_AVAIL_DATA) >= quarter ? BPF_RB_FORCE_WAKEUP
									      : BPF_RB_NO_WAKEUP;
}

/* Whether entry v of tka_probed was made for this socket and not for an
 * earlier one at the same address (the ports differ, or both have cookies
 * and they differ).
 */
static __always_inline bool tka_same_sock(const struct tka_probed_val *v, __u32 portpair, __u64 cookie)
{
	return v->portpair == portpair && (!v->cookie || !cookie || v->cookie == cookie);
}

/* Removes key from tka_probed; true when this call removed it. Entries,
 * tka_hot.unanswered and the key's bucket change together: the timer hooks of a
 * socket can race tcp_destroy_sock from close() on another CPU, and only one
 * delete wins.
 */
static __always_inline bool tka_forget(__u64 key, __u64 addr)
{
	if (bpf_map_delete_elem(&tka_probed, &key))
		return false;
	__sync_fetch_and_add(tka_unanswered_bucket(addr), -1);
	__sync_fetch_and_add(&tka_hot.unanswered, -1);
	return true;
}

/* A second probe went out unanswered: remember the socket for its recovery. */
static __always_inline void tka_remember(__u64 key, __u32 portpair, __u64 cookie)
{
	struct tka_probed_val *cur = bpf_map_lookup_elem(&tka_probed, &key);
	struct tka_probed_val v = {.cookie = cookie, .portpair = portpair};

	if (cur) {
		/* Left by an earlier socket at this address (an entry made after
		 * a close() on another CPU raced this callback): take it over.
		 */
		if (!tka_same_sock(cur, portpair, cookie))
			bpf_map_update_elem(&tka_probed, &key, &v, BPF_EXIST);
		return;
	}
	if (bpf_map_update_elem(&tka_probed, &key, &v, BPF_NOEXIST)) {
		tka_count_drop(TKA_DROP_SOCKMAP);
		return;
	}
	/* The bucket first: a reader that sees the total sees the bucket. */
	__sync_fetch_and_add(tka_unanswered_bucket(tka_addr((void *)key)), 1);
	__sync_fetch_and_add(&tka_hot.unanswered, 1);
}

static __always_inline struct tka_bracket *tka_bracket(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tka_bracket_map, &zero);
}


SEC("tp_btf/timer_expire_entry")
int BPF_PROG(tka_timer_entry, struct timer_list *timer)
{
	/* Every timer_list on the host expires through here: compare first. */
	if (timer->function != (void *)&tcp_keepalive_timer)
		return 0;

	const struct sock *sk = (void *)timer - bpf_core_field_offset(struct sock, sk_timer);
	struct tka_bracket *b = tka_bracket();
	__u64 key = (__u64)sk;
	/* Plain loads (tka_ro), each field once: the lines are cold, a
	 * second since this socket last ran.
	 */
	const struct sock *s = tka_ro(struct sock, sk);
	__u8 probes = tka_ro(struct inet_connection_sock, sk)->icsk_probes_out;

	if (!b)
		return 0;
	b->sk = key;
	b->probes_before = probes;
	b->killed = 0;
	/* The attribution of a probe event, when wanted
	 * (tka_hot.probe_attribution), read here rather than at exit: its two
	 * socket lines are cold either way (the callback never touches them),
	 * but here their misses overlap with this program's own miss on the
	 * socket, where at exit each one stalled the event on its own.
	 * Measured: exit ~300 -> ~210 ns per probe, entry +30-40 ns
	 * (tests/bench/RESULTS.md). Of the cgroup only its address (0: not
	 * attributed): the exit reads the id from it, as the cgroup and its
	 * kernfs node are shared by the cgroup's sockets and stay cached, where
	 * here those two loads waited for the socket's cold line (~5 ns per
	 * probe).
	 */
	b->cgroup = 0;
	if (tka_hot.probe_attribution) {
		b->cgroup = (__u64)s->sk_cgrp_data.cgroup;
		b->direction = tka_direction_of(s->sk_max_ack_backlog);
	}
	if (tka_kill_mode == TKA_KILL_TIMER_BRACKET) {
		/* tka_err_report reports a kill after tcp_done() made the
		 * socket CLOSE and maybe gave its port back: keep both as they
		 * were. One more cold line, only on kernels before 6.10.
		 */
		__u32 portpair = s->__sk_common.skc_portpair;

		/* skc_portpair is the union of skc_dport and skc_num, in that order. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		b->sport = portpair >> 16;
#else
		b->sport = portpair & 0xffff;
#endif
		b->state = s->__sk_common.skc_state;
	}

	/* Only an ACK resets icsk_probes_out (tcp_ack): the peer answered. */
	if (probes == 0 && tka_hot.unanswered) {
		__u64 addr = tka_addr(sk);
		struct tka_probed_val *v = tka_maybe_probed(addr) ? bpf_map_lookup_elem(&tka_probed, &key) : NULL;

		if (v) {
			bool same = tka_same_sock(v, s->__sk_common.skc_portpair,
						  s->__sk_common.skc_cookie.counter);

			if (tka_forget(key, addr) && same)
				tka_emit(sk, TKA_EV_RECOVERED, TKA_OUTCOME_NONE, 0, 0);
		}
	}
	return 0;
}

SEC("tp_btf/timer_expire_exit")
int BPF_PROG(tka_timer_exit, struct timer_list *timer)
{
	/* The callback ended with sock_put(): the sock, and the timer inside
	 * it, may be freed by now. Match the bracket by address before reading
	 * anything through the pointer.
	 */
	struct tka_bracket *b = tka_bracket();
	__u64 key = (__u64)timer - bpf_core_field_offset(struct sock, sk_timer);

	if (!b || !b->sk || b->sk != key)
		return 0;
	b->sk = 0;
	/* A killed socket may already be freed: read nothing more from it. */
	if (b->killed)
		return 0;

	const struct sock *sk = (void *)key;
	const struct sock *s = tka_ro(struct sock, sk);
	__u8 probes = tka_ro(struct inet_connection_sock, sk)->icsk_probes_out;

	/* Unchanged: idle time not reached, data in flight, or the probe was
	 * held back by local congestion (retried at TCP_RESOURCE_PROBE_INTERVAL).
	 * Also, in a race never seen yet: the callback has released the socket
	 * lock, and an ACK processed on another CPU since zeroed the count
	 * (tcp_ack). The tests' witness would count that probe and fail them
	 * (tests/bench/RESULTS.md, "Probes BPF is not shown").
	 *
	 * This test also names the socket. TCP socks are SLAB_TYPESAFE_BY_RCU:
	 * one that died in the callback without a kill we saw (the orphaned
	 * FIN_WAIT2 reaper, a close() on another CPU) may be freed by now, and
	 * its memory may already hold another socket. A socket starts with
	 * icsk_probes_out 0 (sk_prot_alloc zeroes it, inet_csk_clone_lock
	 * resets it), and its first probe comes a second or more after it was
	 * made: another socket here has 0, never more than probes_before. A
	 * freed one kept the count it had, and it died without this probe if
	 * the count did not grow. So no identity check at the entry, which would
	 * cost it one more cold line (skc_portpair).
	 */
	if (probes <= b->probes_before)
		return 0;
	/* The normal case ends here with one event and no map: the peer
	 * answers every probe, so probes_out only ever goes 0 -> 1.
	 */
	if (probes >= 2)
		tka_remember(key, s->__sk_common.skc_portpair, s->__sk_common.skc_cookie.counter);

	/* Probes are the bulk of the events: no wake-up per probe (each one an
	 * irq_work, ~12 us under a burst). The agent drains the ring at least
	 * once a second; past a quarter full the reader is woken at once.
	 */
	struct tka_event *e = bpf_ringbuf_reserve(&tka_events, sizeof(*e), 0);

	if (!e) {
		tka_count_drop(TKA_DROP_RINGBUF);
		return 0;
	}
	/* Attributed at the entry, or not at all: cgroup id 0 (no cgroup has
	 * it) tells the agent to attribute the probe itself.
	 */
	__u64 cgroup_id = 0;
	__u8 direction = TKA_DIR_UNKNOWN;

	if (b->cgroup) {
		/* The socket is alive (its probe count grew, no kill): it
		 * still holds its cgroup. Were it freed by a close() on another
		 * CPU since, the cgroup is freed only after an RCU grace
		 * period, which this softirq holds back; and the loads cannot
		 * fault (tka_ro).
		 */
		cgroup_id = tka_ro(struct cgroup, (void *)b->cgroup)->kn->id;
		direction = b->direction;
	}
	tka_fill_attr(e, sk, TKA_EV_PROBE, cgroup_id, direction);
	/* Reading the clock was ~45 ns of this program (tests/bench/RESULTS.md):
	 * the agent stamps the probe when it reads it; `tcpka watch` asks for
	 * the kernel's time.
	 */
	e->ts_ns = tka_hot.probe_time ? bpf_ktime_get_ns() : 0;
	bpf_ringbuf_submit(e, tka_wake_flags());
	return 0;
}

static __always_inline void tka_mark_killed(const struct sock *sk)
{
	struct tka_bracket *b = tka_bracket();

	if (b && b->sk == (__u64)sk)
		b->killed = 1;
}

/* Kill by timeout, 6.10+: tcp_keepalive_timer resets with its own reason. */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tka_send_reset, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	if (tka_kill_mode != TKA_KILL_RESET_REASON)
		return 0;
	/* Active resets only: skb is the packet answered by a passive reset. */
	if (!sk || skb)
		return 0;
	if (reason != (int)bpf_core_enum_value(enum sk_rst_reason___tka,
					  SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT___tka))
		return 0;

	/* tcp_write_err() follows and reports sk_err_soft ?: ETIMEDOUT. */
	__s32 err = BPF_CORE_READ(sk, sk_err_soft);

	tka_mark_killed(sk);
	tka_emit(sk, TKA_EV_KILL, TKA_OUTCOME_TIMEOUT, err ? err : TKA_ETIMEDOUT,
		 bpf_get_socket_cookie((void *)sk));
	return 0;
}

/* Kill by timeout, any kernel: tcp_write_err() inside the keepalive timer. */
SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(tka_err_report, const struct sock *sk)
{
	struct tka_bracket *b;

	if (tka_kill_mode != TKA_KILL_TIMER_BRACKET)
		return 0;
	b = tka_bracket();
	if (!b || b->sk != (__u64)sk)
		return 0;
	b->killed = 1;
	struct tka_event *e = tka_reserve(sk, TKA_EV_KILL, TKA_OUTCOME_TIMEOUT,
					  BPF_CORE_READ(sk, sk_err), bpf_get_socket_cookie((void *)sk));
	if (!e)
		return 0;
	/* tcp_write_err() reports after tcp_done(): the socket is already
	 * CLOSE and may have given its port back (inet_put_port). Report it as
	 * it was when the timer fired.
	 */
	e->sport = b->sport;
	e->state = b->state;
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

/* Kill by reset: the peer answered a keepalive probe with RST (it rebooted). */
SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tka_recv_reset, struct sock *sk)
{
	/* Plain loads (tka_ro), not one helper call per field: every reset the
	 * host receives passes here, and the first test rejects nearly all.
	 */
	const struct tcp_sock *tp = tka_ro(struct tcp_sock, sk);
	int state, err;

	if (!tka_ro(struct inet_connection_sock, sk)->icsk_probes_out)
		return 0;
	/* Probes with nothing in flight and nothing queued are keepalive
	 * probes; zero-window probes (tcp_probe_timer) have data queued.
	 */
	if (tp->packets_out || tp->write_seq != tp->snd_nxt)
		return 0;
	if (!tka_sock_flag(sk, SOCK_KEEPOPEN))
		return 0;
	/* Mirrors tcp_reset(): CLOSE ignores the RST, CLOSE_WAIT reports EPIPE. */
	state = tka_ro(struct sock, sk)->__sk_common.skc_state;
	if (state == TCP_CLOSE || state == TCP_SYN_SENT)
		return 0;
	err = state == TCP_CLOSE_WAIT ? TKA_EPIPE : TKA_ECONNRESET;
	tka_emit(sk, TKA_EV_KILL, TKA_OUTCOME_RESET, err, bpf_get_socket_cookie(sk));
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(tka_destroy, struct sock *sk)
{
	__u64 key = (__u64)sk;
	bool probed = false;

	if (tka_hot.unanswered) {
		__u64 addr = tka_addr(sk);

		probed = tka_maybe_probed(addr) && tka_forget(key, addr);
	}

	/* Every TCP socket ends here: only those with keepalive on can have
	 * been probed, and the agent forgets the ones it knows. (One whose
	 * application turned keepalive off after a probe is still in the agent's
	 * table; the agent drops it with its cgroup.)
	 */
	if (!probed && !tka_sock_flag(sk, SOCK_KEEPOPEN))
		return 0;
	struct tka_event *e = tka_reserve(sk, TKA_EV_GONE, TKA_OUTCOME_NONE, 0, 0);

	if (e)
		bpf_ringbuf_submit(e, tka_wake_flags());
	return 0;
}
