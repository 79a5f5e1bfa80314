/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The ABI shared by the BPF programs and the agent: fixed-width types only,
 * no kernel headers, so both clang -target bpf and g++ compile it unchanged.
 * Change a struct here and both sides change with it; never mirror by hand.
 */
#ifndef TCPKA_BPF_ABI_H
#define TCPKA_BPF_ABI_H

#ifdef __cplusplus
#include <cstdint>
typedef std::uint8_t tka_u8;
typedef std::uint16_t tka_u16;
typedef std::uint32_t tka_u32;
typedef std::uint64_t tka_u64;
typedef std::int32_t tka_s32;
#else
typedef __u8 tka_u8;
typedef __u16 tka_u16;
typedef __u32 tka_u32;
typedef __u64 tka_u64;
typedef __s32 tka_s32;
#endif

/* What an event reports. */
enum tka_event_kind {
	TKA_EV_PROBE = 1,     /* the keepalive timer sent one probe */
	TKA_EV_RECOVERED = 2, /* >= 2 probes were out, then the peer answered */
	TKA_EV_KILL = 3,      /* keepalive ended the connection */
	TKA_EV_GONE = 4,      /* a socket we reported a probe on was destroyed */
};

/* How a kill happened. */
enum tka_outcome {
	TKA_OUTCOME_NONE = 0,
	TKA_OUTCOME_TIMEOUT = 1, /* probe limit or TCP_USER_TIMEOUT ran out */
	TKA_OUTCOME_RESET = 2,   /* the peer answered a probe with RST */
};

enum tka_direction {
	TKA_DIR_UNKNOWN = 0,
	TKA_DIR_INBOUND = 1,  /* accepted from a listener */
	TKA_DIR_OUTBOUND = 2, /* connect()ed */
};

/* Indexes of the drop counters in the BPF program's tka_drops array. */
enum tka_drop_reason {
	TKA_DROP_RINGBUF = 0, /* ring buffer full: an event was lost */
	TKA_DROP_SOCKMAP = 1, /* tka_probed was full: no recovered/gone for it */
	TKA_DROP__COUNT = 2,
};

/* One record of the ring buffer: 80 bytes, no implicit padding. */
struct tka_event {
	tka_u64 ts_ns;     /* bpf_ktime_get_ns(); 0 on probes unless tka_hot.probe_time */
	tka_u64 cookie;    /* socket cookie, 0 when the kernel never assigned one */
	tka_u64 cgroup_id; /* cgroup v2 id (inode number) owning the socket */
	tka_u32 netns;     /* network namespace inode */
	tka_s32 err;       /* errno the application sees (kills), else 0 */
	tka_u8 saddr[16];  /* IPv4 in the first 4 bytes */
	tka_u8 daddr[16];
	tka_u16 family;    /* AF_INET or AF_INET6 */
	tka_u16 sport;     /* host byte order */
	tka_u16 dport;     /* host byte order */
	tka_u8 kind;       /* enum tka_event_kind */
	tka_u8 outcome;    /* enum tka_outcome */
	tka_u8 direction;  /* enum tka_direction */
	tka_u8 probes_out; /* icsk_probes_out after the event */
	tka_u8 state;      /* TCP state (kernel numbering) */
	tka_u8 gone_follows; /* kills: 1 when a TKA_EV_GONE will follow for this socket */
	tka_u8 pad[4];
};

/* The keepalive programs' globals that every keepalive expiry reads, on one
 * cache line (keepalive.bpf.c, tka_hot).
 */
struct tka_hot {
	tka_u64 unanswered;        /* sockets in tka_probed */
	tka_u32 probe_attribution; /* 1: probe events carry cgroup and direction */
	tka_u32 probe_time;        /* 1: probe events carry ts_ns, else 0 */
};

/* Keepalive policy (sockops.bpf.c), one per cgroup; the agent updates it
 * live, the program reads it on every established connection.
 */
#define TKA_POLICY_INBOUND 1
#define TKA_POLICY_OUTBOUND 2

struct tka_policy {
	tka_u32 idle;      /* TCP_KEEPIDLE, seconds */
	tka_u32 intvl;     /* TCP_KEEPINTVL, seconds */
	tka_u32 cnt;       /* TCP_KEEPCNT */
	tka_u8 directions; /* TKA_POLICY_* bits */
	tka_u8 override;   /* 1: also when the application turned keepalive on itself */
	tka_u8 pad[2];
	tka_u64 cgroup_id; /* iter/tcp only: sockets of this cgroup or its descendants */
	tka_u32 cgroup_level; /* depth of cgroup_id below the root (root = 0) */
	tka_u32 pad2;
};

/* Counters of sockops.bpf.c, indexes of its tka_so_stats array. */
enum tka_sockops_stat {
	TKA_SO_APPLIED_IN = 0,  /* policy set on an inbound socket */
	TKA_SO_APPLIED_OUT = 1, /* ...on an outbound socket */
	TKA_SO_KEPT_IN = 2,     /* left alone: the application had keepalive on */
	TKA_SO_KEPT_OUT = 3,
	TKA_SO_ERR_KEEPALIVE = 4, /* bpf_{get,set}sockopt(SO_KEEPALIVE) failed */
	TKA_SO_ERR_IDLE = 5,      /* bpf_setsockopt(TCP_KEEPIDLE) failed */
	TKA_SO_ERR_INTVL = 6,
	TKA_SO_ERR_CNT = 7,
	/* The kernel could not say whether the application had keepalive on
	 * (bpf_getsockopt(SOL_SOCKET, SO_KEEPALIVE) before Linux 6.1): the
	 * policy was applied, as with override.
	 */
	TKA_SO_UNKNOWN_IN = 8,
	TKA_SO_UNKNOWN_OUT = 9,
	TKA_SO__COUNT = 10,
};

/* What tka_iter_apply prints per socket it considered (one line each):
 * "<sport> <dport> <TKA_APPLY_*>".
 */
enum tka_apply_result {
	TKA_APPLY_SET = 0,   /* policy applied */
	TKA_APPLY_KEPT = 1,  /* application's own keepalive kept */
	TKA_APPLY_ERROR = 2, /* a bpf_setsockopt failed */
};

/* One TCP socket as the audit iterator (audit.bpf.c, iter/task_file) writes
 * it: one record per (process, socket), 128 bytes. Times in jiffies are
 * converted by the agent, which knows HZ.
 */
struct tka_sock_rec {
	tka_u64 sk;         /* the struct sock's address: which socket (never shown) */
	tka_u64 cookie;     /* 0 when the kernel has not assigned one */
	tka_u64 cgroup_id;
	tka_u64 since_ns;   /* bpf_ktime_get_ns() when the current state began, 0 unknown */
	tka_u64 now_ns;     /* bpf_ktime_get_ns() at this record */
	tka_u32 netns;
	tka_u32 pid;        /* owning process (thread-group id) */
	tka_u32 fd;
	tka_u32 lastrcv_j;  /* jiffies since the last data received (as ss's lastrcv) */
	tka_u32 ka_time_j;  /* effective keepalive idle: the socket's, else the netns sysctl */
	tka_u32 ka_intvl_j; /* effective interval, likewise */
	tka_u8 saddr[16];
	tka_u8 daddr[16];
	tka_u16 family;
	tka_u16 sport;
	tka_u16 dport;
	tka_u8 state;
	tka_u8 ka_on;       /* SO_KEEPALIVE */
	tka_u8 ka_probes;   /* effective probe count */
	tka_u8 probes_out;
	tka_u8 since_exact; /* 1: since_ns is when the state began; 0: when first seen */
	tka_u8 direction;   /* enum tka_direction */
	tka_u8 pad[4];
	char comm[16];
};

/* When a scan of the agent first saw a socket in its state (audit.bpf.c,
 * tka_seen, keyed by the socket's address), 40 bytes.
 */
struct tka_seen {
	tka_u64 since_ns;
	tka_u64 cookie;   /* the socket's, 0 when it had none */
	tka_u64 gen;      /* the last scan that saw it (tka_scan_gen) */
	tka_u32 daddr;    /* the remote address's first 4 bytes */
	tka_u16 sport;
	tka_u16 dport;
	tka_u8 state;
	tka_u8 pad[7];
};

/* Indexes of the state tracker's drop counters (state.bpf.c, tka_state_drops). */
enum tka_state_drop {
	TKA_STATE_DROP_MORE_FULL = 0, /* tka_cw_more full: a CLOSE_WAIT entry time not recorded */
	TKA_STATE_DROP_RINGBUF = 1,   /* tka_cw_events full: a CLOSE_WAIT duration lost */
	TKA_STATE_DROP__COUNT = 2,
};

/* When a socket entered CLOSE_WAIT, in the slot its cookie hashes to
 * (state.bpf.c, tka_cw_slots), 24 bytes. cookie names the socket and is the
 * slot's lock: 0 free, TKA_CW_SLOT_BUSY while being filled.
 */
struct tka_cw_slot {
	tka_u64 cookie;
	tka_u64 sk;       /* struct sock address: is it still there, in CLOSE_WAIT? */
	tka_u64 since_ns; /* bpf_ktime_get_ns() at the transition */
};
#define TKA_CW_SLOT_BUSY (~(tka_u64)0)

/* A socket left CLOSE_WAIT after the agent saw it enter (state.bpf.c). */
struct tka_cw_event {
	tka_u64 duration_ns;
	tka_u64 cgroup_id;
};

#endif /* TCPKA_BPF_ABI_H */
