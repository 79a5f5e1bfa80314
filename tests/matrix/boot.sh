#!/usr/bin/env bash
# boot.sh KDIR OUT COMMAND...: boots the kernel in KDIR (from fetch-kernel.sh)
# under qemu with TCG and runs COMMAND in it as root, in the directory this
# was called from; returns COMMAND's exit status (124 when the guest ran out
# of time, 125 when it never ran COMMAND).
#
# The guest's root filesystem is this host's own /, shared read-only over
# virtio-9p, so it runs this host's binaries (the tcpka build, gtest, nft, ip)
# on its own kernel. A busybox initramfs made here loads that kernel's own
# virtio_pci, 9pnet_virtio and 9p modules and mounts it; guest-init.sh then
# gives it tmpfs for /run and /tmp, a cgroup v2 hierarchy, bpffs, tracefs, and
# the kernel's module tree. OUT, a directory of this host, is shared
# read-write: COMMAND's output lands in OUT/output, the serial console in
# OUT/console.log.
#
# Environment: TCPKA_GUEST_TIMEOUT (seconds, default 1800), TCPKA_GUEST_MEM
# (default 3G), TCPKA_GUEST_SMP (default 2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kdir=$(cd "${1:?usage: boot.sh KDIR OUT COMMAND...}" && pwd)
mkdir -p "${2:?usage: boot.sh KDIR OUT COMMAND...}"
out=$(cd "$2" && pwd)
shift 2
(($#)) || { echo "usage: boot.sh KDIR OUT COMMAND..." >&2; exit 2; }
kver=$(cat "$kdir/version")
command -v qemu-system-x86_64 >/dev/null || { echo "boot.sh: no qemu-system-x86_64 (Debian: qemu-system-x86)" >&2; exit 125; }
busybox=$(command -v busybox) || { echo "boot.sh: no busybox (Debian: busybox-static)" >&2; exit 125; }
# It runs alone in the initramfs: it must be the static build.
if ldd "$busybox" >/dev/null 2>&1; then
  echo "boot.sh: $busybox is dynamically linked (Debian: busybox-static)" >&2
  exit 125
fi

# The job: what guest-init.sh runs, as written here.
rm -f "$out/status" "$out/output"
{
  echo "cd $(printf '%q' "$PWD")"
  printf 'export PATH=%q\n' "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  for v in $(compgen -e | grep -E '^TCPKA_|^GTEST_' || true); do printf 'export %s=%q\n' "$v" "${!v}"; done
  printf '%q ' "$@"
  echo
} >"$out/job.sh"

# The initramfs: busybox, the modules that mount the root, and /init.
initrd=$(mktemp -d)
trap 'rm -rf "$initrd"' EXIT
mkdir -p "$initrd"/{bin,dev,proc,sys,newroot,modules}
cp "$busybox" "$initrd/bin/busybox"
ln -s busybox "$initrd/bin/sh"
n=0
for m in virtio_pci 9pnet_virtio 9p; do
  # A module not in the tree is built in (7.x ships no modules.builtin).
  deps=$(modprobe -d "$kdir/root" -S "$kver" --show-depends "$m" 2>/dev/null) || continue
  while read -r verb path _; do
    [[ $verb == insmod ]] || continue
    base=$(basename "$path")
    ls "$initrd"/modules/*-"$base" >/dev/null 2>&1 && continue
    cp "$path" "$initrd/modules/$(printf '%02d' $n)-$base"
    n=$((n + 1))
  done <<<"$deps"
done
cat >"$initrd/init" <<INIT
#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
for m in /modules/*.ko; do [ -e "\$m" ] && /bin/busybox insmod "\$m"; done
if ! /bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose root /newroot; then
  echo "tcpka-guest: mounting the host's root over 9p failed" >/dev/console
  /bin/busybox poweroff -f
fi
/bin/busybox umount /proc
exec /bin/busybox switch_root /newroot $here/guest-init.sh
INIT
chmod +x "$initrd/init"
(cd "$initrd" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initrd.gz"

timeout_s=${TCPKA_GUEST_TIMEOUT:-1800}
rc=0
# </dev/null: qemu reads stdin, and in a loop it would eat the loop's input.
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
  -accel tcg,thread=multi -smp "${TCPKA_GUEST_SMP:-2}" -m "${TCPKA_GUEST_MEM:-3G}" -cpu max \
  -kernel "$kdir/vmlinuz" -initrd "$out/initrd.gz" \
  -append "console=ttyS0 panic=-1 oops=panic rdinit=/init quiet loglevel=4" \
  -nographic -no-reboot -monitor none -serial "file:$out/console.log" \
  -nic none \
  -virtfs "local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap" \
  -virtfs "local,path=$out,mount_tag=results,security_model=none" \
  </dev/null >"$out/qemu.log" 2>&1 || rc=$?
rm -f "$out/initrd.gz"
if ((rc == 124 || rc == 137)); then
  echo "boot.sh: the $kver guest ran out of its ${timeout_s} s" >&2
  exit 124
fi
if [[ ! -f $out/status ]]; then
  if grep -q 'Kernel panic' "$out/console.log"; then
    echo "boot.sh: the $kver guest's kernel panicked ($(grep -m1 -E 'Oops|BUG:|Kernel panic' \
      "$out/console.log" | sed 's/^\[[^]]*\] //')); console: $out/console.log" >&2
  else
    echo "boot.sh: the $kver guest did not finish the command (qemu exit $rc); console:" >&2
  fi
  tail -30 "$out/console.log" >&2
  exit 125
fi
exit "$(cat "$out/status")"
