#!/usr/bin/env bash
# The one list of packages tcpka needs to build, run and test, on Debian 12 /
# Ubuntu 22.04+. Idempotent; run as root.
set -euo pipefail

packages=(
  # build
  cmake make g++ pkg-config git
  clang llvm            # compiles bpf/*.bpf.c (-target bpf)
  bpftool               # vmlinux.h, `gen object`, `gen skeleton`
  libbpf-dev libelf-dev zlib1g-dev
  libcli11-dev prometheus-cpp-dev
  libssl-dev libcrypt-dev  # TLS (OpenSSL) and bcrypt (libxcrypt) for --web-config-file
  # tests
  libgtest-dev libgmock-dev
  libclang-rt-dev       # libFuzzer and clang's sanitizer runtimes (tests/fuzz.sh)
  nftables iproute2     # test namespaces and packet drops
  prometheus            # promtool (rule tests, metrics lint) and a real server for the e2e test
  python3 python3-yaml  # tests/deploy checks
  openssl curl          # certificates and TLS clients of tests/integration/http_test.cpp
  # the kernel matrix (tests/matrix): Debian's kernels booted under qemu
  qemu-system-x86 busybox-static cpio kmod xz-utils zstd
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# `kubectl kustomize` renders deploy/kubernetes offline. Debian ships kubectl
# as kubernetes-client; a kubectl installed some other way serves as well.
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
# tests/deploy/validate_manifests.sh installs its pinned schema validators
# with npm (the machines ship node 20; Debian's nodejs is the fallback).
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
