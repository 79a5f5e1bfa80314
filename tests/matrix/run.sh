#!/usr/bin/env bash
# run.sh [BUILD]: the kernel matrix, a tier of tests/run.sh. For each line of
# tests/matrix/kernels.list: fetch the kernel (fetch-kernel.sh), boot it under
# qemu on this host's root (boot.sh), run guest-tests.sh in it, and check
# that `tcpka check` found exactly what the line says the kernel lacks and
# that every test passed; the "host" line is checked in place (its tests are
# the main tier's). Ends with a table, kernel by signal, also written to
# BUILD/matrix/table.md. Fails if any kernel fails; nothing is skipped.
#
# Environment: TCPKA_MATRIX_ONLY="name ..." runs those lines alone (for
# work on one kernel; CI runs them all); TCPKA_GUEST_TIMEOUT (boot.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
out=$build/matrix
rm -rf "$out"
mkdir -p "$out"

names=$(awk '!/^#/ && NF {print $1}' "$here/kernels.list")
if [[ -n ${TCPKA_MATRIX_ONLY:-} ]]; then names=$TCPKA_MATRIX_ONLY; fi
status=0
for name in $names; do
  dir=$out/$name
  mkdir -p "$dir"
  start=$SECONDS
  if [[ $name == host ]]; then
    # The host's tests are the main tier; here only what check finds.
    TCPKA_MATRIX_FILTER=- "$here/guest-tests.sh" host "$build" "$dir" >/dev/null 2>&1
    echo "main tier" >"$dir/tests.note"
  else
    kdir=$("$here/fetch-kernel.sh" "$name") || {
      echo "matrix: $name: fetching the kernel failed" >&2
      echo "fetch failed" >"$dir/error"
      status=1
      continue
    }
    # Inside the guest the results directory is the 9p share.
    (cd "$root" && "$here/boot.sh" "$kdir" "$dir" \
      "$here/guest-tests.sh" "$name" "$build" /run/tcpka-results) 2> >(tee "$dir/boot.err" >&2) ||
      true
    if [[ ! -f $dir/tests.xml ]]; then
      echo "no test results: $(head -n1 "$dir/boot.err" 2>/dev/null)" >"$dir/error"
    fi
  fi
  echo $((SECONDS - start)) >"$dir/seconds"
  printf 'matrix: %-9s %4d s\n' "$name" $((SECONDS - start))
done

python3 "$here/table.py" "$here/kernels.list" "$out" $names || status=1
exit "$status"
