#!/bin/bash
# The guest's modprobe (/proc/sys/kernel/modprobe, guest-init.sh): the running
# kernel's modules from the kernel cache, where fetch-kernel.sh unpacked and
# depmod-ed them.
kver=$(uname -r)
for base in "${TCPKA_KERNEL_CACHE:-/var/cache/tcpka-kernels}"/*/"$kver"/root; do
  [[ -d $base/lib/modules/$kver ]] && exec /sbin/modprobe -d "$base" "$@"
done
echo "guest-modprobe.sh: no module tree for $kver" >&2
exit 1
