#!/bin/bash
# guest-init.sh: PID 1 of a tests/matrix/boot.sh guest, on the host's root
# (read-only 9p). Mounts what a node has, runs the job boot.sh wrote, saves its
# exit status, powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
self_dir=$(cd "$(dirname "$0")" && pwd -P)  # before a tmpfs can hide it
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
# A writable /tmp and /var/tmp must not hide a checkout that lives there (CI
# may clone into /tmp): the host's stay reachable under /run/host, and the
# checkout (this script's) and the job's directory are bound back below.
mkdir -p /run/host/tmp /run/host/var/tmp
mount --bind /tmp /run/host/tmp
mount --bind /var/tmp /run/host/var/tmp
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
keep_visible() {
  local path=$1 top
  for top in /tmp /var/tmp; do
    [[ $path == "$top"/* ]] || continue
    local first=${path#"$top"/}
    first=$top/${first%%/*}
    mountpoint -q "$first" && return
    mkdir -p "$first" && mount --bind "/run/host$first" "$first"
  done
}
keep_visible "$self_dir"
# cgroup v2 alone, at /sys/fs/cgroup, as on most Kubernetes nodes (the host
# here has the hybrid layout).
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf
mkdir -p /run/tcpka-results
mount -t 9p -o trans=virtio,version=9p2000.L results /run/tcpka-results
out=/run/tcpka-results
# The job starts with `cd DIR` (boot.sh).
keep_visible "$(sed -n '1s/^cd //p' "$out/job.sh")"
kver=$(uname -r)
# The kernel's own modules (nf_tables, veth...): /lib/modules is the host's
# and read-only, so the kernel's request_module() runs guest-modprobe.sh,
# which points modprobe at the tree fetch-kernel.sh unpacked.
echo "$self_dir/guest-modprobe.sh" >/proc/sys/kernel/modprobe
ip link set lo up
# QEMU's multi-threaded TCG does not keep every vCPU's translated code in step
# with the kernel's live patching of its own text: a vCPU can run the int3 of
# a static branch being flipped after the flip ended, an oops in interrupt
# context ("Oops: int3" in call_timer_fn, seen on 6.12) that panics the guest.
# Each agent start and stop flips the static keys of its tracepoints, and each
# test's nftables table the netfilter hook keys. Holding each key on for the
# guest's life leaves them nothing to flip: the tracepoints enabled in tracefs
# (recording off, so nothing is written), and a table with an input and an
# output hook in the guest's own namespace (its chains accept everything).
# A tracepoint also re-patches its static call whenever it goes from one
# probe to two or back (tracepoint_add_func(), tracepoint_remove_func()): the
# same hazard, met on 6.12 in call_timer_fn while a test restarted the agent
# ten times. So each tracepoint gets a second probe for the guest's life,
# perf counting it, and an agent's attach and detach only move it between
# two probes and more, which patches nothing.
holders=()
if [[ -d /sys/kernel/tracing/events ]]; then
  echo 0 >/sys/kernel/tracing/tracing_on
  for ev in timer/timer_expire_entry timer/timer_expire_exit tcp/tcp_send_reset \
    tcp/tcp_receive_reset tcp/tcp_destroy_sock sock/inet_sock_set_state; do
    echo 1 >"/sys/kernel/tracing/events/$ev/enable" 2>/dev/null || continue
    perf stat -a -e "${ev/\//:}" -- sleep infinity >/dev/null 2>&1 &
    holders+=($!)
  done
  sleep 1
  for pid in "${holders[@]}"; do
    kill -0 "$pid" 2>/dev/null || echo "tcpka-guest: a perf holder of a tracepoint failed" >/dev/console
  done
fi
nft 'add table inet tka_guest; add chain inet tka_guest in { type filter hook input priority 0; };
     add chain inet tka_guest out { type filter hook output priority 0; }' 2>/dev/null
hostname "tcpka-$kver" 2>/dev/null
# Debian kernels default to perf_event_paranoid 3 and kptr_restrict 0.
{
  echo "guest: $(uname -r) $(cat /proc/cmdline)"
  bash "$out/job.sh"
  echo $? >"$out/status.tmp"
} >"$out/output" 2>&1 </dev/null
sync
mv "$out/status.tmp" "$out/status"
sync
umount /run/tcpka-results
echo o >/proc/sysrq-trigger
sleep 10
