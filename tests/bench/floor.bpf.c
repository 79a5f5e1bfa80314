// SPDX-License-Identifier: GPL-2.0
/*
 * floor.bpf.c: empty tp_btf programs on the tracepoints that tcpka's programs
 * use, for tests/bench/bpf_cost.sh. With BPF statistics on, an empty program's
 * run_time_ns / run_cnt is the floor of a program on that hook: the cost of
 * the statistics themselves (two clock reads) and of the call, with no work.
 * The tkb_ prefix keeps them apart from the agent's tka_ programs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/timer_expire_entry")
int tkb_timer_entry(void *ctx)
{
	return 0;
}

SEC("tp_btf/timer_expire_exit")
int tkb_timer_exit(void *ctx)
{
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int tkb_set_state(void *ctx)
{
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int tkb_destroy(void *ctx)
{
	return 0;
}

/* The hooks of tka_send_reset and tka_recv_reset, which the storm's abortive
 * closes also drive.
 */
SEC("tp_btf/tcp_send_reset")
int tkb_send_reset(void *ctx)
{
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int tkb_recv_reset(void *ctx)
{
	return 0;
}
