// SPDX-License-Identifier: GPL-2.0
/*
 * keepalive.bpf.c: what the kernel's TCP keepalive machinery does, per socket.
 *
 * Observes (all tp_btf, no kprobe/fentry needed; Linux 5.10 on):
 *  - probes: the expiry of a socket's keepalive timer (sk->sk_timer, or
 *    icsk_keepalive_timer where the kernel moved it), whose function is
 *    tcp_keepalive_timer (timer_expire_entry/exit bracket). icsk_probes_out
 *    rising across the bracket means tcp_write_wakeup() sent one probe.
 *  - recovered: a socket that had >= 2 probes out (one went unanswered for a
 *    whole interval) and is back at 0 at its next keepalive expiry. Such
 *    sockets, and only those, are remembered in tka_probed.
 *  - kills by timeout, two interchangeable programs on tcp_send_reset, one
 *    loaded: the reset reason SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT (6.12+;
 *    tka_send_reset), or an active reset inside the keepalive-timer bracket
 *    of a socket that is not an orphan in FIN_WAIT2 (any kernel;
 *    tka_reset_bracket). tcp_keepalive_timer sends no other active reset.
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
#include "include/tka_compat.bpf.h"
#include "include/tka_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Static function: libbpf resolves the address from /proc/kallsyms. */
extern const void tcp_keepalive_timer __ksym;

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
	__u64 cgroup;        /* the socket's struct cgroup (0: the root's), read at entry */
	__u8 probes_before;  /* icsk_probes_out at entry */
	__u8 killed;         /* a kill was seen inside the callback */
	__u8 direction;      /* enum tka_direction, read at entry */
	__u8 attributed;     /* cgroup and direction were read at entry */
	__u8 pad[4];
	/* tka_num()'s slots, one per program: a program may run inside
	 * another's bracket (tcp_destroy_sock inside the timer callback).
	 */
	__u64 num_entry, num_exit, num_reset, num_recv, num_destroy;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tka_bracket);
} tka_bracket_map SEC(".maps");

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
static __always_inline bool tka_forget(__u64 key)
{
	if (bpf_map_delete_elem(&tka_probed, &key))
		return false;
	__sync_fetch_and_add(tka_unanswered_bucket(key), -1);
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
	__sync_fetch_and_add(tka_unanswered_bucket(key), 1);
	__sync_fetch_and_add(&tka_hot.unanswered, 1);
}

static __always_inline struct tka_bracket *tka_bracket(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tka_bracket_map, &zero);
}


/* The socket whose keepalive timer this is, as an address. */
static __always_inline __u64 tka_timer_sock(__u64 *slot, const struct timer_list *timer)
{
	return tka_num(slot, timer) - tka_keepalive_timer_offset();
}

/*
 * Set by the agent only under TCPKA_TEST_BLIND=probe: the timer entry then
 * lets every keepalive timer pass unseen, the fault met on Linux 7.2 before
 * the kernel matrix existed (the tracepoint fired, our filter missed). The
 * self-check and `tcpka check` must name it
 * (tests/integration/self_check_test.cpp). Tested after the timer's
 * function, so only keepalive expiries pay its load: the verifier knows its
 * value but keeps the branch, whose target other paths reach too.
 */
const volatile __u8 tka_test_blind = 0;

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(tka_timer_entry, struct timer_list *timer)
{
	/* Every timer_list on the host expires through here: compare first. */
	if (timer->function != (void *)&tcp_keepalive_timer || tka_test_blind)
		return 0;

	struct tka_bracket *b = tka_bracket();

	if (!b)
		return 0;
	__u64 key = tka_timer_sock(&b->num_entry, timer);
	/* Each field once: the lines are cold, a second since this socket
	 * last ran.
	 */
	const struct sock *s = TKA_VIEW(struct sock, key);
	__u8 probes = TKA_F(TKA_VIEW(struct inet_connection_sock, key), icsk_probes_out);

	b->sk = key;
	b->probes_before = probes;
	b->killed = 0;
	/* The attribution of a probe event, when wanted
	 * (tka_hot.probe_attribution), read here rather than at exit: its two
	 * socket lines are cold either way (the callback never touches them),
	 * but here their misses overlap with this program's own miss on the
	 * socket, where at exit each one stalled the event on its own.
	 * Measured: exit ~300 -> ~210 ns per probe, entry +30-40 ns
	 * (tests/bench/RESULTS.md). Of the cgroup only its address: the exit
	 * reads the id from it, as the cgroup and its kernfs node are shared by
	 * the cgroup's sockets and stay cached, where here those two loads
	 * waited for the socket's cold line (~5 ns per probe).
	 */
	b->attributed = tka_hot.probe_attribution ? 1 : 0;
	if (b->attributed) {
		b->cgroup = tka_sock_cgroup((const void *)key);
		b->direction = tka_direction_of(TKA_F(s, sk_max_ack_backlog));
	}

	/* Only an ACK resets icsk_probes_out (tcp_ack): the peer answered. */
	if (probes == 0 && tka_hot.unanswered) {
		struct tka_probed_val *v = tka_maybe_probed(key) ? bpf_map_lookup_elem(&tka_probed, &key) : NULL;

		if (v) {
			bool same = tka_same_sock(v, TKA_F(s, __sk_common.skc_portpair),
						  TKA_F(s, __sk_common.skc_cookie.counter));

			if (tka_forget(key) && same)
				tka_emit((const void *)key, TKA_EV_RECOVERED, TKA_OUTCOME_NONE, 0, 0);
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

	if (!b || !b->sk || b->sk != tka_timer_sock(&b->num_exit, timer))
		return 0;
	__u64 key = b->sk;

	b->sk = 0;
	/* A killed socket may already be freed: read nothing more from it. */
	if (b->killed)
		return 0;

	const struct sock *s = TKA_VIEW(struct sock, key);
	__u8 probes = TKA_F(TKA_VIEW(struct inet_connection_sock, key), icsk_probes_out);

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
	 * cost it one more cold line (skc_portpair). The reads cannot fault:
	 * plain loads through tka_ro are covered by the exception table, and
	 * the compat build reads with bpf_probe_read_kernel.
	 */
	if (probes <= b->probes_before)
		return 0;
	/* The normal case ends here with one event and no map: the peer
	 * answers every probe, so probes_out only ever goes 0 -> 1.
	 */
	if (probes >= 2)
		tka_remember(key, TKA_F(s, __sk_common.skc_portpair), TKA_F(s, __sk_common.skc_cookie.counter));

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

	if (b->attributed) {
		/* The socket is alive (its probe count grew, no kill): it
		 * still holds its cgroup. Were it freed by a close() on another
		 * CPU since, the cgroup is freed only after an RCU grace
		 * period, which this softirq holds back.
		 */
		cgroup_id = tka_cgroup_id_at(b->cgroup);
		direction = b->direction;
	}
	tka_fill_attr(e, (const void *)key, TKA_EV_PROBE, cgroup_id, direction);
	/* Reading the clock was ~45 ns of this program (tests/bench/RESULTS.md):
	 * the agent stamps the probe when it reads it; `tcpka watch` asks for
	 * the kernel's time.
	 */
	e->ts_ns = tka_hot.probe_time ? bpf_ktime_get_ns() : 0;
	bpf_ringbuf_submit(e, tka_wake_flags());
	return 0;
}

/* A keepalive kill of sk: the exit must not read the socket again. */
static __always_inline void tka_kill_timeout(struct tka_bracket *b, const struct sock *sk)
{
	/* tcp_write_err() follows and reports sk_err_soft ?: ETIMEDOUT. */
	__s32 err = TKA_F(TKA_VIEW(struct sock, sk), sk_err_soft);

	if (b)
		b->killed = 1;
	tka_emit(sk, TKA_EV_KILL, TKA_OUTCOME_TIMEOUT, err ? err : TKA_ETIMEDOUT, tka_cookie(sk));
}

/* Local flavour: kernels before 6.10 have no enum sk_rst_reason; CO-RE
 * resolves the value on the running kernel.
 */
enum sk_rst_reason___tka { SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT___tka = 15 };

/* Kill by timeout, 6.12+: tcp_keepalive_timer resets with its own reason
 * (the agent loads this only where BTF has the value).
 */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tka_send_reset, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	if (!bpf_core_enum_value_exists(enum sk_rst_reason___tka, SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT___tka))
		return 0;
	/* Active resets only: skb is the packet answered by a passive reset. */
	if (!sk || skb)
		return 0;
	if (reason != (int)bpf_core_enum_value(enum sk_rst_reason___tka,
					  SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT___tka))
		return 0;
	struct tka_bracket *b = tka_bracket();

	if (b && b->sk != tka_num(&b->num_reset, sk))
		b = NULL;
	tka_kill_timeout(b, sk);
	return 0;
}

/*
 * Kill by timeout, any kernel: an active reset (tcp_send_active_reset, which
 * traces tcp_send_reset with no skb) inside this socket's keepalive-timer
 * callback. The callback sends one in two cases: the probe limit or
 * TCP_USER_TIMEOUT ran out (a kill, tcp_write_err() follows), or the socket
 * is an orphan in FIN_WAIT2 that the application closed long ago (not a
 * keepalive decision). Only the arguments every kernel has are read: 6.10
 * added a third, the reason.
 */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tka_reset_bracket, const struct sock *sk, const struct sk_buff *skb)
{
	if (!sk || skb)
		return 0;
	struct tka_bracket *b = tka_bracket();

	if (!b || !b->sk || b->sk != tka_num(&b->num_reset, sk))
		return 0;
	if (TKA_F(TKA_VIEW(struct sock, sk), __sk_common.skc_state) == TCP_FIN_WAIT2 &&
	    tka_sock_flag(sk, SOCK_DEAD))
		return 0;
	tka_kill_timeout(b, sk);
	return 0;
}

/* Kill by reset: the peer answered a keepalive probe with RST (it rebooted). */
SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tka_recv_reset, struct sock *sk)
{
	/* Every reset the host receives passes here, and the first test
	 * rejects nearly all.
	 */
	if (!TKA_F(TKA_VIEW(struct inet_connection_sock, sk), icsk_probes_out))
		return 0;
	const struct tcp_sock *tp = TKA_VIEW(struct tcp_sock, sk);
	int state, err;

	/* Probes with nothing in flight and nothing queued are keepalive
	 * probes; zero-window probes (tcp_probe_timer) have data queued.
	 */
	if (TKA_F(tp, packets_out) || TKA_F(tp, write_seq) != TKA_F(tp, snd_nxt))
		return 0;
	if (!tka_sock_flag(sk, SOCK_KEEPOPEN))
		return 0;
	/* Mirrors tcp_reset(): CLOSE ignores the RST, CLOSE_WAIT reports EPIPE. */
	state = TKA_F(TKA_VIEW(struct sock, sk), __sk_common.skc_state);
	if (state == TCP_CLOSE || state == TCP_SYN_SENT)
		return 0;
	err = state == TCP_CLOSE_WAIT ? TKA_EPIPE : TKA_ECONNRESET;
	tka_emit(sk, TKA_EV_KILL, TKA_OUTCOME_RESET, err, tka_cookie(sk));
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(tka_destroy, struct sock *sk)
{
	bool probed = false;

	if (tka_hot.unanswered) {
		struct tka_bracket *b = tka_bracket();
		__u64 key = b ? tka_num(&b->num_destroy, sk) : 0;

		probed = key && tka_maybe_probed(key) && tka_forget(key);
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
