#!/usr/bin/env bash
# Offline validation of what deploy/ ships for containers and Kubernetes:
#
# 1. deploy/docker/Dockerfile and .dockerignore, statically. There is no
#    container engine where tcpka is developed and tested, so the image is
#    never really built here; instead: bookworm base images, two stages, the
#    build dependencies of deploy/local/deps.sh, no compiler or -dev package
#    in the runtime stage, the shared libraries of a real build (TCPKA_BIN,
#    set by ctest) covered by the runtime packages, `sh -n` on every RUN step,
#    ENTRYPOINT and CMD.
# 2. `kubectl kustomize deploy/kubernetes` renders, and an overlay's `images:`
#    entry replaces the placeholder image.
# 3. Every rendered object against the real schemas, with no cluster:
#    - kubernetes-models and @kubernetes-models/prometheus-operator (npm): JSON
#      schema validators compiled from the Kubernetes OpenAPI spec and from
#      the prometheus-operator CRDs (types, enums, required fields, formats).
#      They allow unknown fields, as the API server does without strict field
#      validation;
#    - so the same packages' TypeScript declarations, generated from the same
#      schemas, are type-checked against the objects with the TypeScript
#      compiler: an unknown field or a wrong type anywhere fails, as
#      `kubectl apply --validate=strict` would. (TypeScript names the first
#      problem of each object; fix it and run again to see the next.)
# 4. The DaemonSet's security properties (no privileged, no privilege
#    escalation, read-only root, drop ALL, exactly BPF PERFMON SYSLOG
#    NET_ADMIN and never SYS_ADMIN, no host namespaces, only the expected
#    hostPaths and all read-only, probes, resources) and the references
#    between the objects (selectors, ports, ConfigMap key, the job label the
#    alert rules use).
# 5. The ConfigMap's tcpka.toml through the real `tcpka run` parser (TCPKA_BIN).
#
# The npm packages (exact versions in tests/deploy/package-lock.json) are
# installed with `npm ci` into TCPKA_DEPLOY_NODE_DIR (default
# build/deploy-validate), once per lock file; that needs the npm registry the
# first time. Needs node >= 20, npm and kubectl.
#
# Usage: bash tests/deploy/validate_manifests.sh   (ctest: deploy.manifests)
# Environment: TCPKA_BIN (a built tcpka, for the checks that need it),
# TCPKA_DEPLOY_NODE_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
ok() {
  passed=$((passed + 1))
  echo "ok   - $*"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL - $*"
}
check() {  # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

for tool in kubectl node npm awk; do
  command -v "$tool" >/dev/null || { echo "validate_manifests.sh: $tool is required" >&2; exit 1; }
done
tcpka_bin=${TCPKA_BIN:-}
if [[ -n $tcpka_bin && ! -x $tcpka_bin ]]; then
  echo "validate_manifests.sh: TCPKA_BIN=$tcpka_bin is not executable" >&2
  exit 1
fi

# ------------------------------------------------------------- 1. Dockerfile
echo "# deploy/docker/Dockerfile (static: no container engine here, no real build)"
dockerfile=deploy/docker/Dockerfile

# One logical instruction per line, "STAGE<TAB>INSTRUCTION<TAB>ARGUMENTS": the
# continuation lines joined, and comment lines dropped, also inside a
# continued instruction, as the Dockerfile parser does.
awk '
  function flush(   kw, rest) {
    if (cur == "") return
    sub(/^[ \t]+/, "", cur)
    kw = toupper(cur); sub(/[ \t].*/, "", kw)
    rest = cur; sub(/^[^ \t]+[ \t]*/, "", rest)
    if (kw == "FROM") stage++
    printf "%d\t%s\t%s\n", stage, kw, rest
    cur = ""
  }
  BEGIN { stage = 0; cur = "" }
  /^[ \t]*#/ { next }
  /^[ \t]*$/ { next }
  {
    line = $0
    if (sub(/\\[ \t]*$/, "", line)) { cur = cur line " "; next }
    cur = cur line
    flush()
  }
  END { flush() }
' "$dockerfile" >"$tmp/instructions"

stages=$(awk -F'\t' '$2 == "FROM"' "$tmp/instructions" | wc -l)
check "Dockerfile is multi-stage ($stages stages)" test "$stages" -ge 2
while IFS=$'\t' read -r _ _ args; do
  image=$(awk '{ for (i = 1; i <= NF; i++) if ($i !~ /^--/) { print $i; exit } }' <<<"$args")
  check "FROM $image is Debian 12 (bookworm)" \
    grep -Eq '^debian:(bookworm|12)([-.][A-Za-z0-9._-]*)?(@sha256:[0-9a-f]{64})?$' <<<"$image"
done < <(awk -F'\t' '$2 == "FROM"' "$tmp/instructions")

final=$stages
stage_of() { awk -F'\t' -v s="$1" -v k="$2" '$1 == s && $2 == k { print $3 }' "$tmp/instructions"; }
# The packages of every `apt-get install` in a stage, one a line.
apt_packages() {
  stage_of "$1" RUN | awk '{
    for (i = 1; i <= NF; i++) {
      if ($i == "install" && $(i - 1) ~ /apt(-get)?$/) {
        for (j = i + 1; j <= NF; j++) {
          if ($j == "&&" || $j == ";" || $j == "|" || $j == "||") break
          if ($j !~ /^-/) print $j
        }
      }
    }
  }' | sort -u
}
apt_packages "$final" >"$tmp/runtime-packages"
apt_packages 1 >"$tmp/build-packages"

compilers='^(clang|llvm|gcc|g\+\+|cpp|c\+\+|cmake|make|ninja-build|build-essential|binutils|bpftool|pkg-config|pkgconf|git|libtool|autoconf|automake)([-0-9.].*)?$|-dev$|-dbg$'
if grep -Eq "$compilers" "$tmp/runtime-packages"; then
  fail "runtime stage installs no compiler or -dev package: $(grep -E "$compilers" "$tmp/runtime-packages" | tr '\n' ' ')"
else
  ok "runtime stage installs no compiler or -dev package ($(tr '\n' ' ' <"$tmp/runtime-packages"))"
fi
for p in libbpf1 libelf1 zlib1g libprometheus-cpp-core1.0 libssl3 libcrypt1 libstdc++6; do
  check "runtime stage installs $p" grep -qx -- "$p" "$tmp/runtime-packages"
done
bad_copy=$(stage_of "$final" COPY | grep -v -- '--from=' || true)
check "runtime stage copies only from the build stage" test -z "$bad_copy"

# The build dependencies are those of deploy/local/deps.sh (its "# build"
# block), so the image and the tests build with the same packages.
awk '/^packages=\(/ { on = 1; next } on && /^\)/ { exit }
     on && /^[ \t]*# build/ { b = 1; next } on && /^[ \t]*# / { b = 0; next }
     on && b { sub(/#.*/, ""); for (i = 1; i <= NF; i++) print $i }' \
  deploy/local/deps.sh | sort -u >"$tmp/deps-build"
check "deploy/local/deps.sh has a '# build' package list" test -s "$tmp/deps-build"
missing=$(comm -23 "$tmp/deps-build" "$tmp/build-packages" | tr '\n' ' ')
check "build stage installs every build package of deploy/local/deps.sh${missing:+ (missing: $missing)}" test -z "$missing"
cmake_run=$(stage_of 1 RUN | grep -- 'cmake -S' || true)
check "build stage configures with -DTCPKA_BUILD_TESTS=OFF" grep -q -- '-DTCPKA_BUILD_TESTS=OFF' <<<"$cmake_run"
check "build stage uses the pinned vmlinux.h (no -DTCPKA_VMLINUX_H)" \
  test -z "$(grep -- '-DTCPKA_VMLINUX_H' <<<"$cmake_run")"
build_name=$(awk -F'\t' '$1 == 1 && $2 == "FROM"' "$tmp/instructions" | awk '{ print $NF }')
from_refs=$(stage_of "$final" COPY | grep -o -- '--from=[^ ]*' | sed 's/--from=//' | sort -u)
for ref in $from_refs; do
  check "COPY --from=$ref names the build stage" test "$ref" = "$build_name"
done

norm() { tr -d ' \t'; }
entrypoint=$(stage_of "$final" ENTRYPOINT | tail -n1)
cmd=$(stage_of "$final" CMD | tail -n1)
check "ENTRYPOINT is [\"/usr/local/bin/tcpka\"]" test "$(norm <<<"$entrypoint")" = '["/usr/local/bin/tcpka"]'
check "CMD is [\"run\",\"--config\",\"/etc/tcpka/tcpka.toml\"]" \
  test "$(norm <<<"$cmd")" = '["run","--config","/etc/tcpka/tcpka.toml"]'

# Shell syntax of every shell-form RUN, with the shell Debian's /bin/sh is.
sh_check=$(command -v dash || command -v sh)
n=0
bad_runs=""
while IFS=$'\t' read -r st _ body; do
  [[ $body == \[* ]] && continue  # exec form
  n=$((n + 1))
  if ! "$sh_check" -n <<<"$body" 2>"$tmp/sh-err"; then
    bad_runs+=" stage $st RUN #$n: $(tr '\n' ' ' <"$tmp/sh-err")"
  fi
done < <(awk -F'\t' '$2 == "RUN"' "$tmp/instructions")
check "every RUN step ($n) passes $(basename "$sh_check") -n${bad_runs:+:$bad_runs}" test -z "$bad_runs"

# .dockerignore is an allow-list: what the build reads must be let in.
ign=.dockerignore
check ".dockerignore starts by excluding everything (*)" \
  test "$(grep -v '^[[:space:]]*#' "$ign" | grep -v '^[[:space:]]*$' | head -n1)" = '*'
for need in CMakeLists.txt cmake $(sed -n 's/^add_subdirectory(\([a-z]*\))/\1/p' CMakeLists.txt); do
  [[ $need == tests ]] && continue  # TCPKA_BUILD_TESTS=OFF
  check ".dockerignore lets $need into the context" grep -Eqx "!${need}/?" "$ign"
done

# The shared libraries of a real build, by Debian package: each must be in
# the runtime stage or in debian:bookworm-slim already (libc6, libgcc-s1).
if [[ -z $tcpka_bin ]]; then
  echo "skip - runtime packages against ldd (set TCPKA_BIN; ctest does)"
elif ! command -v dpkg >/dev/null; then
  fail "runtime packages against ldd: dpkg is required (Debian)"
else
  uncovered=""
  while read -r lib; do
    pkg=""
    for cand in "$lib" "$(realpath "$lib")" "${lib#/usr}" "/usr$lib"; do
      pkg=$(dpkg -S "$cand" 2>/dev/null | head -n1 | cut -d: -f1) && [[ -n $pkg ]] && break
    done
    case $pkg in
      libc6 | libgcc-s1) ;;
      "") uncovered+=" $lib(no package)" ;;
      *) grep -qx -- "$pkg" "$tmp/runtime-packages" || uncovered+=" $lib($pkg)" ;;
    esac
  done < <(ldd "$tcpka_bin" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) { print $i; break } }')
  check "every shared library of $tcpka_bin is in the runtime stage${uncovered:+: missing$uncovered}" \
    test -z "$uncovered"
fi

# ------------------------------------------------------------ 2. kustomize
echo "# kubectl kustomize deploy/kubernetes"
rendered=$tmp/rendered.yaml
if kubectl kustomize deploy/kubernetes >"$rendered" 2>"$tmp/kustomize-err"; then
  ok "kubectl kustomize deploy/kubernetes renders ($(grep -c '^kind:' "$rendered") objects)"
else
  fail "kubectl kustomize deploy/kubernetes: $(cat "$tmp/kustomize-err")"
  echo "$passed passed, $failed failed"
  exit 1
fi
overlay=$tmp/overlay
mkdir -p "$overlay"
cat >"$overlay/kustomization.yaml" <<EOF
resources:
  - $(realpath --relative-to="$overlay" "$root/deploy/kubernetes")
images:
  - name: tcpka
    newName: registry.invalid/tcpka
    newTag: "1.2.3"
EOF
if kubectl kustomize "$overlay" 2>&1 | grep -q 'image: registry.invalid/tcpka:1.2.3$'; then
  ok "an overlay's images: entry replaces the tcpka image"
else
  fail "an overlay's images: entry replaces the tcpka image"
fi

# --------------------------------------------------------- 3. npm packages
node_dir=${TCPKA_DEPLOY_NODE_DIR:-$root/build/deploy-validate}
mkdir -p "$node_dir"
stamp=$(cat tests/deploy/package.json tests/deploy/package-lock.json | sha256sum | cut -c1-32)
if [[ ! -d $node_dir/node_modules || "$(cat "$node_dir/.installed" 2>/dev/null)" != "$stamp" ]]; then
  cp tests/deploy/package.json tests/deploy/package-lock.json "$node_dir/"
  rm -f "$node_dir/.installed"
  if ! (cd "$node_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) >"$tmp/npm.log" 2>&1; then
    cat "$tmp/npm.log"
    fail "npm ci of tests/deploy/package-lock.json into $node_dir"
    echo "$passed passed, $failed failed"
    exit 1
  fi
  echo "$stamp" >"$node_dir/.installed"
fi
versions=$(cd "$node_dir" && node -e '
  const r = (p) => JSON.parse(require("fs").readFileSync(`node_modules/${p}/package.json`)).version;
  console.log(["kubernetes-models", "@kubernetes-models/prometheus-operator", "typescript", "yaml"]
    .map((p) => `${p}@${r(p)}`).join(" "));')
echo "# schemas: $versions (node $(node --version))"

# ------------------------------------------------ 3-4. schemas and security
mkdir -p "$node_dir/gen"
cat >"$node_dir/gen/validate.mjs" <<'EOF'
// Written by tests/deploy/validate_manifests.sh: validates rendered manifests.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import ts from "typescript";

const [renderedPath, outDir] = process.argv.slice(2);
const imageCmd = JSON.parse(process.env.TCPKA_IMAGE_CMD || "null");
const here = path.dirname(fileURLToPath(import.meta.url));
let passed = 0, failed = 0;
const ok = (m) => { passed++; console.log(`ok   - ${m}`); };
const fail = (m) => { failed++; console.log(`FAIL - ${m}`); };
const check = (cond, m, why) => (cond ? ok(m) : fail(why ? `${m}: ${why}` : m));
const id = (o) => `${o?.kind}/${o?.metadata?.name}`;

// ---- parse: strict YAML, no duplicate keys, no warnings
const docs = YAML.parseAllDocuments(fs.readFileSync(renderedPath, "utf8"), { uniqueKeys: true });
const objects = [];
for (const d of docs) {
  const problems = [...d.errors, ...d.warnings];
  if (problems.length) fail(`YAML: ${problems.map((e) => e.message).join("; ")}`);
  const o = d.toJS();
  if (o !== null && o !== undefined) objects.push(o);
}

// ---- schemas
// apiVersion group -> package holding its models; the core groups are in
// kubernetes-models under their apiVersion ("v1", "apps/v1", ...).
const crdPackages = { "monitoring.coreos.com": "@kubernetes-models/prometheus-operator" };
function modelModule(o) {
  const av = String(o.apiVersion ?? "");
  const group = av.includes("/") ? av.split("/")[0] : "";
  const pkg = crdPackages[group] ?? "kubernetes-models";
  return `${pkg}/${av}/${o.kind}`;
}
const tsLines = [];
const tsDocs = [];  // [firstLine, lastLine, object]
for (const [i, o] of objects.entries()) {
  const mod = modelModule(o);
  let Model;
  try {
    Model = (await import(mod))[o.kind];
  } catch (e) {
    Model = undefined;
  }
  if (typeof Model !== "function") {
    fail(`${id(o)}: no schema for ${o.apiVersion} ${o.kind}`);
    continue;
  }
  try {
    new Model(o).validate();
    ok(`${id(o)} (${o.apiVersion}): valid against the ${mod.split("/" + o.apiVersion)[0]} schema`);
  } catch (e) {
    const errs = (e.errors ?? []).map((x) => `${x.instancePath} ${x.message} ${JSON.stringify(x.params)}`);
    fail(`${id(o)}: schema: ${errs.length ? errs.join("; ") : e.message}`);
  }
  tsLines.push(`import type { I${o.kind} as T${i} } from "${mod}";`);
  const body = JSON.stringify(o, null, 2).split("\n");
  const first = tsLines.length + 1;
  tsLines.push(`export const doc${i}: T${i} = ${body[0]}`, ...body.slice(1));
  tsLines[tsLines.length - 1] += ";";
  tsDocs.push([first, tsLines.length, o]);
}
// Unknown fields and wrong types, strictly: the packages' declarations of the
// same schemas, against the objects as object literals (excess property
// checks reach every nesting level).
const genFile = path.join(here, "manifests.mts");
fs.writeFileSync(genFile, tsLines.join("\n") + "\n");
const program = ts.createProgram([genFile], {
  noEmit: true, strict: true, skipLibCheck: true, types: [],
  target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
});
const diags = ts.getPreEmitDiagnostics(program);
const byDoc = new Map();
for (const d of diags) {
  const line = d.file ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
  const doc = tsDocs.find(([a, b]) => line >= a && line <= b);
  const key = doc ? id(doc[2]) : "generated file";
  const text = line ? tsLines[line - 1].trim() : "";
  const msg = `line ${line - (doc ? doc[0] - 1 : 0)} of its JSON (${text}): ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`;
  byDoc.set(key, [...(byDoc.get(key) ?? []), msg]);
}
for (const [, , o] of tsDocs) {
  const errs = byDoc.get(id(o)) ?? [];
  check(errs.length === 0, `${id(o)}: no unknown field, every type right (TypeScript, strict)`, errs.join("; "));
  byDoc.delete(id(o));
}
for (const [k, errs] of byDoc) fail(`${k}: ${errs.join("; ")}`);

// ---- the objects tcpka needs, and their references
const find = (kind) => objects.filter((o) => o.kind === kind);
const one = (kind) => {
  const l = find(kind);
  check(l.length === 1, `exactly one ${kind}`, `found ${l.length}`);
  return l[0];
};
const ns = one("Namespace");
const ds = one("DaemonSet");
const sa = one("ServiceAccount");
const cm = one("ConfigMap");
const svc = one("Service");
const pm = one("PodMonitor");
const rule = one("PrometheusRule");
if (!ds?.spec?.template?.spec) {
  fail("DaemonSet has no pod template: nothing more to check");
  console.log(`__counts ${passed} ${failed}`);
  process.exit(0);
}
const nsName = ns?.metadata?.name;
for (const o of objects) {
  if (o.kind === "Namespace") continue;
  check(o.metadata?.namespace === nsName, `${id(o)} is in namespace ${nsName}`, `namespace ${o.metadata?.namespace}`);
}
const pod = ds.spec.template.spec;
const podLabels = ds.spec.template.metadata?.labels ?? {};
const subset = (sel, labels) => Object.entries(sel ?? {}).every(([k, v]) => labels[k] === v);
const nonEmpty = (sel) => Object.keys(sel ?? {}).length > 0;
check(nonEmpty(ds.spec.selector?.matchLabels) && subset(ds.spec.selector.matchLabels, podLabels),
  "DaemonSet selector matches its pod template's labels");

// ---- 4. security properties
const norm = (c) => String(c).toUpperCase().replace(/^CAP_/, "");
const sameSet = (a, b) => a.length === b.length && [...a].sort().join() === [...b].sort().join();
const wantCaps = ["BPF", "PERFMON", "SYSLOG", "NET_ADMIN"];
check(pod.hostNetwork !== true, "hostNetwork is off");
check(pod.hostPID === true, "hostPID is on: the audit's iterator walks the tasks of the agent's pid namespace");
check(pod.hostIPC !== true, "hostIPC is off");
check(pod.hostUsers !== false, "no user namespace (hostUsers is not false): BPF checks capabilities in the initial one");
check(pod.automountServiceAccountToken === false, "pod mounts no service account token");
check(sa?.automountServiceAccountToken === false, "ServiceAccount does not automount its token");
check(pod.serviceAccountName === sa?.metadata?.name, `pod runs as ServiceAccount ${sa?.metadata?.name}`);
check(!pod.securityContext?.seLinuxOptions?.type?.includes("spc_t"), "no SELinux super-privileged type");
const containers = [...(pod.initContainers ?? []), ...(pod.containers ?? []), ...(pod.ephemeralContainers ?? [])];
check(containers.length > 0, "the pod has containers");
for (const c of containers) {
  const sc = c.securityContext ?? {};
  const where = `container ${c.name}`;
  check(sc.privileged === false, `${where}: privileged is false`, `privileged: ${sc.privileged}`);
  check(sc.allowPrivilegeEscalation === false, `${where}: allowPrivilegeEscalation is false`, `${sc.allowPrivilegeEscalation}`);
  check(sc.readOnlyRootFilesystem === true, `${where}: readOnlyRootFilesystem is true`, `${sc.readOnlyRootFilesystem}`);
  const drop = (sc.capabilities?.drop ?? []).map(norm);
  const add = (sc.capabilities?.add ?? []).map(norm);
  check(sameSet(drop, ["ALL"]), `${where}: capabilities drop ALL`, `drop: ${JSON.stringify(drop)}`);
  check(sameSet(add, wantCaps), `${where}: capabilities add exactly ${wantCaps.join(" ")}`, `add: ${JSON.stringify(add)}`);
  check(!add.includes("SYS_ADMIN") && !add.includes("ALL"), `${where}: never SYS_ADMIN`);
  for (const p of ["livenessProbe", "readinessProbe"]) {
    const g = c[p]?.httpGet;
    check(g?.path === "/healthz" && (c.ports ?? []).some((x) => x.name === g?.port || x.containerPort === g?.port),
      `${where}: ${p} is httpGet /healthz on a port of the container`, JSON.stringify(c[p]));
  }
  const r = c.resources ?? {};
  for (const k of ["requests", "limits"]) {
    for (const res of ["cpu", "memory"]) {
      check(r[k]?.[res] !== undefined && quantity(r[k][res]) !== null, `${where}: resources.${k}.${res} is set`, `${r[k]?.[res]}`);
    }
  }
  for (const res of ["cpu", "memory"]) {
    const q = quantity(r.requests?.[res]), l = quantity(r.limits?.[res]);
    check(q !== null && l !== null && q <= l, `${where}: ${res} request <= limit`);
  }
}
// Kubernetes quantities (the API server's grammar): number, then a suffix.
function quantity(v) {
  if (typeof v === "number") return v;
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$/.exec(String(v));
  if (!m) return null;
  const mult = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
    n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
  const s = m[2] ?? "";
  return Number(m[1]) * (s in mult ? mult[s] : s ? Number("1" + s) : 1);
}
// hostPaths: only these, each mounted at the same path (the agent reads fixed
// paths), read-only except bpffs, which keepalive-persist writes pins to.
const allowedHost = ["/sys/kernel/btf", "/sys/fs/cgroup", "/var/log/pods", "/var/log/containers", "/sys/fs/bpf"];
const writableHost = ["/sys/fs/bpf"];
for (const v of pod.volumes ?? []) {
  if (!v.hostPath) continue;
  const hp = v.hostPath.path.replace(/\/+$/, "");
  check(allowedHost.includes(hp), `hostPath ${hp} is one tcpka needs`, `allowed: ${allowedHost.join(" ")}`);
  const mounts = containers.flatMap((c) => (c.volumeMounts ?? []).filter((m) => m.name === v.name).map((m) => [c, m]));
  check(mounts.length > 0, `hostPath ${hp} is mounted`);
  for (const [c, m] of mounts) {
    if (!writableHost.includes(hp)) {
      check(m.readOnly === true, `hostPath ${hp} is mounted read-only in ${c.name}`, `readOnly: ${m.readOnly}`);
    }
    check(m.mountPath.replace(/\/+$/, "") === hp, `hostPath ${hp} is mounted at the same path in ${c.name}`, m.mountPath);
    check(m.mountPropagation !== "Bidirectional", `hostPath ${hp} does not propagate mounts to the host`);
  }
}
const tol = pod.tolerations ?? [];
check(tol.some((t) => t.operator === "Exists" && !t.key && !t.effect), "tolerates every taint (runs on every node)");
check(ds.spec.updateStrategy?.type === "RollingUpdate" && ds.spec.updateStrategy?.rollingUpdate?.maxUnavailable === 1,
  "RollingUpdate with maxUnavailable 1");
check((pod.terminationGracePeriodSeconds ?? 30) > 5, "terminationGracePeriodSeconds leaves the agent its 5 s to exit");

// ---- the agent container, its config and who scrapes it
const agent = (pod.containers ?? [])[0] ?? {};
const metricsPort = (agent.ports ?? []).find((p) => p.name === "metrics");
check(metricsPort?.containerPort === 9977 && (metricsPort?.protocol ?? "TCP") === "TCP", "container port metrics is 9977/TCP");
check(/(^|\/)tcpka(:[^/]+)?$/.test(agent.image ?? ""), `image ${agent.image} is the tcpka placeholder`);
const args = [...(agent.command ?? []), ...(agent.args ?? [])];
if (imageCmd) {
  check(agent.command === undefined && JSON.stringify(agent.args) === JSON.stringify(imageCmd),
    "DaemonSet args are the image's CMD, with the image's ENTRYPOINT", `args ${JSON.stringify(agent.args)}, CMD ${JSON.stringify(imageCmd)}`);
}
const cfgPath = args[args.indexOf("--config") + 1];
check(args.includes("--config") && typeof cfgPath === "string", "the agent runs with --config");
const cfgMount = (agent.volumeMounts ?? []).find((m) => cfgPath?.startsWith(m.mountPath.replace(/\/?$/, "/")));
const cfgVolume = (pod.volumes ?? []).find((v) => v.name === cfgMount?.name);
const cfgKey = cfgMount ? cfgPath.slice(cfgMount.mountPath.replace(/\/?$/, "/").length) : undefined;
check(cfgVolume?.configMap?.name === cm?.metadata?.name && cfgMount?.subPath === undefined,
  `--config ${cfgPath} is in the ConfigMap ${cm?.metadata?.name}, mounted as a directory (updates reach it)`);
const toml = cm?.data?.[cfgKey];
check(typeof toml === "string", `ConfigMap ${cm?.metadata?.name} has the key ${cfgKey}`);
if (typeof toml === "string") {
  fs.writeFileSync(path.join(outDir, "tcpka.toml"), toml);
  const listen = /^\s*listen\s*=\s*"([^"]*)"/m.exec(toml)?.[1];
  const m = /^(.*):([0-9]+)$/.exec(listen ?? "");
  check(m && ["0.0.0.0", "[::]", ""].includes(m[1]) && Number(m[2]) === metricsPort?.containerPort,
    `tcpka.toml listens on every address at the metrics port (listen = "${listen}")`,
    "the kubelet's probes and Prometheus come to the pod IP");
}
const svcPort = (svc?.spec?.ports ?? []).find((p) => p.name === "metrics");
check(nonEmpty(svc?.spec?.selector) && subset(svc.spec.selector, podLabels), "Service selects the agent pods");
check(svcPort?.port === 9977 && (svcPort?.targetPort === "metrics" || svcPort?.targetPort === 9977),
  "Service port metrics 9977 targets the container port");
const pms = pm?.spec ?? {};
check(nonEmpty(pms.selector?.matchLabels) && subset(pms.selector.matchLabels, podLabels), "PodMonitor selects the agent pods");
check(pms.namespaceSelector?.any === true || (pms.namespaceSelector?.matchNames ?? [pm?.metadata?.namespace]).includes(ds.metadata.namespace),
  "PodMonitor looks in the agent's namespace");
const eps = pms.podMetricsEndpoints ?? [];
check(eps.length > 0 && eps.every((e) => e.port === "metrics" && (e.path ?? "/metrics") === "/metrics" && e.interval === "30s"),
  "PodMonitor scrapes port metrics, /metrics, every 30s");
const job = pms.jobLabel ? podLabels[pms.jobLabel] : `${pm?.metadata?.namespace}/${pm?.metadata?.name}`;
check(job === "tcpka", `PodMonitor's job label is "tcpka" (jobLabel ${pms.jobLabel})`, `job would be "${job}"`);
const fullMatch = (re, s) => new RegExp(`^(?:${re})$`).test(s);
check(eps.every((e) => (e.relabelings ?? []).some((r) => /^labeldrop$/i.test(r.action ?? "") &&
    ["namespace", "pod", "container"].every((l) => fullMatch(r.regex ?? "", l)))),
  "PodMonitor drops the target labels namespace, pod, container (the agent's own pod labels stay as they are)");
const exprs = (rule?.spec?.groups ?? []).flatMap((g) => g.rules ?? []).map((r) => String(r.expr ?? ""));
const jobs = [...new Set(exprs.flatMap((e) => [...e.matchAll(/\bjob\s*=\s*"([^"]*)"/g)].map((m) => m[1])))];
check(jobs.length > 0 && jobs.every((j) => j === job), `the alert rules' job selectors (${jobs.join(", ")}) match the PodMonitor's job`);

console.log(`__counts ${passed} ${failed}`);
EOF
echo "# schemas and security of the rendered objects"
cmd_json=$(sed 's/[[:space:]]//g' <<<"$cmd")
TCPKA_IMAGE_CMD=$cmd_json node "$node_dir/gen/validate.mjs" "$rendered" "$tmp" >"$tmp/node.out" 2>&1 || true
grep -v '^__counts ' "$tmp/node.out" || true
if counts=$(grep '^__counts ' "$tmp/node.out"); then
  read -r _ np nf <<<"$counts"
  passed=$((passed + np))
  failed=$((failed + nf))
else
  fail "the schema validator did not finish"
fi

# ------------------------------------------------ 5. tcpka.toml, for real
if [[ -z $tcpka_bin ]]; then
  echo "skip - tcpka.toml through tcpka's parser (set TCPKA_BIN; ctest does)"
elif [[ -f $tmp/tcpka.toml ]]; then
  # A bad --backend is refused after the file is read and checked, and before
  # anything is loaded: any other message means the file was refused.
  rc=0
  "$tcpka_bin" run --config "$tmp/tcpka.toml" --backend validate-only >/dev/null 2>"$tmp/parse-err" || rc=$?
  if [[ $rc == 2 ]] && grep -q "^tcpka: --backend: 'validate-only'" "$tmp/parse-err"; then
    ok "tcpka run accepts the ConfigMap's tcpka.toml"
  else
    fail "tcpka run accepts the ConfigMap's tcpka.toml: exit $rc, $(cat "$tmp/parse-err")"
  fi
fi

echo "$passed passed, $failed failed"
((failed == 0))
