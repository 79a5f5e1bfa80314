#!/usr/bin/env bash
# update.sh [MATRIX-NAME]: makes bpf/include/vmlinux/vmlinux.h again from the
# BTF of a Debian kernel of the matrix (default: trixie), booted with
# tests/matrix/boot.sh. Why the header is pinned: cmake/BpfSkeleton.cmake.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
name=${1:-trixie}
kdir=$("$root/tests/matrix/fetch-kernel.sh" "$name")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$root/tests/matrix/boot.sh" "$kdir" "$out" \
  sh -c 'bpftool btf dump file /sys/kernel/btf/vmlinux format c >/run/tcpka-results/vmlinux.h'
{
  echo "/* The BTF of Linux $(cat "$kdir/version") (Debian $name), by bpf/include/vmlinux/update.sh. */"
  cat "$out/vmlinux.h"
} >"$here/vmlinux.h"
echo "wrote $here/vmlinux.h"
