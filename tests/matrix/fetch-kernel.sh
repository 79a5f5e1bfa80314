#!/usr/bin/env bash
# fetch-kernel.sh NAME: downloads the current Debian amd64 kernel of the
# matrix line NAME (tests/matrix/kernels.list) and prints the directory that
# holds it, ready to boot:
#   DIR/version       the kernel release (uname -r)
#   DIR/vmlinuz       the kernel
#   DIR/root/         the packages' files, with lib/modules/VERSION depmod-ed
# Everything lives under $TCPKA_KERNEL_CACHE (default /var/cache/tcpka-kernels),
# outside the source tree, and a kernel already there is not fetched again.
# apt runs with a private sources list, state and cache: the host's apt
# configuration is never read for sources nor changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:?usage: fetch-kernel.sh NAME}
cache=${TCPKA_KERNEL_CACHE:-/var/cache/tcpka-kernels}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

IFS=, read -r -a suites < <(awk -v n="$name" '$1 == n && $2 != "-" {print $2}' "$here/kernels.list")
((${#suites[@]})) || { echo "fetch-kernel.sh: no kernel line '$name' in kernels.list" >&2; exit 2; }

apt_dir=$cache/apt/$name
mkdir -p "$apt_dir"/{lists/partial,archives/partial}
for s in "${suites[@]}"; do
  case $s in
    *-security) echo "deb [signed-by=$keyring] http://deb.debian.org/debian-security $s main" ;;
    *) echo "deb [signed-by=$keyring] http://deb.debian.org/debian $s main" ;;
  esac
done >"$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=/dev/null"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir" -o Dir::State::status=/dev/null
  -o APT::Architecture=amd64 -o APT::Architectures::=amd64 -o Debug::NoLocking=1
  -o APT::Sandbox::User=root -o Acquire::Languages=none)

# The lists at most a day old: a second run of the matrix the same day does
# not ask the mirror again.
if [[ -z $(find "$apt_dir/lists" -name '*_Packages*' -mtime -1 2>/dev/null | head -1) ]]; then
  apt-get "${apt_opts[@]}" -qq update >&2
fi
acache() { apt-cache "${apt_opts[@]}" "$@"; }
# linux-image-amd64 depends on exactly one versioned image package.
meta=$(acache show --no-all-versions linux-image-amd64 | awk -F': ' '$1 == "Depends" {print $2}')
image=$(tr ',' '\n' <<<"$meta" | sed -E 's/^ *//; s/ .*//' | grep -E '^linux-image-[0-9]' | head -1)
[[ -n $image ]] || { echo "fetch-kernel.sh: $name: no linux-image in '$meta'" >&2; exit 1; }
version=${image#linux-image-}
dir=$cache/$name/$version
if [[ -f $dir/ready ]]; then
  echo "$dir"
  exit 0
fi

rm -rf "$dir"
mkdir -p "$dir/debs" "$dir/root"
# From 7.x linux-image-VER is a meta package: the kernel is in
# linux-binary-VER and the modules in linux-modules-VER.
pkgs=("$image")
deps=$(acache show --no-all-versions "$image" | awk -F': ' '$1 == "Depends" {print $2}')
for d in $(tr ',' '\n' <<<"$deps" | sed -E 's/^ *//; s/ .*//'); do
  [[ $d == linux-binary-"$version" || $d == linux-modules-"$version" ]] && pkgs+=("$d")
done
(cd "$dir/debs" && apt-get "${apt_opts[@]}" -qq download "${pkgs[@]}" >&2)
for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
rm -rf "$dir/debs"

# Merged /usr (trixie on): modules under usr/lib/modules; depmod -b and
# modprobe -d want BASE/lib/modules.
[[ -e $dir/root/lib ]] || ln -s usr/lib "$dir/root/lib"
kver=$(ls "$dir/root/lib/modules")
for k in "$dir/root/boot/vmlinuz-$kver" "$dir/root/lib/modules/$kver/vmlinuz"; do
  [[ -f $k ]] && ln -sf "${k#"$dir/"}" "$dir/vmlinuz"
done
[[ -e $dir/vmlinuz ]] || { echo "fetch-kernel.sh: $name: no vmlinuz in ${pkgs[*]}" >&2; exit 1; }
# busybox insmod in the initramfs and the guest's modprobe both take
# uncompressed modules; the packages ship .ko.xz (6.12 on) or .ko.zst.
find "$dir/root/lib/modules/$kver" -name '*.ko.xz' -exec xz -d {} +
find "$dir/root/lib/modules/$kver" -name '*.ko.zst' -exec zstd -q -d --rm {} +
# The packages ship no modules.dep (the postinst makes it).
depmod -b "$dir/root" "$kver"
echo "$kver" >"$dir/version"
touch "$dir/ready"
echo "$dir"
