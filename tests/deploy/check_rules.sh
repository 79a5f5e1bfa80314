#!/usr/bin/env bash
# Checks what deploy/ ships for Prometheus and Grafana (ctest: deploy.rules):
#   1. promtool check rules deploy/prometheus/rules.yml
#   2. promtool test rules tests/deploy/rules_test.yml (every alert fires, and
#      does not fire where it must not)
#   3. deploy/kubernetes/prometheusrule.yaml is rules.yml's groups under
#      `spec:`, byte for byte (and, with python3-yaml, equal once parsed);
#      `--regenerate` rewrites it from rules.yml instead of failing
#   4. every metric name in rules.yml and in the dashboard's queries is one the
#      agent exports (README.md's metric tables; _bucket/_sum/_count for the
#      histograms) or `up`
#   5. the dashboard: uid, title, schemaVersion, template variables, unique
#      panel ids and refIds, every target has an expr, every $variable is
#      defined, and every expr (and label_values() selector) parses: they are
#      checked by promtool as recording rules, with $variables replaced by ".*"
#      and $__rate_interval/$__interval/$__range by 5m
# Each home-made check is first run on a bad input it must reject.
# Needs promtool, python3 and python3-yaml.
set -euo pipefail
cd "$(dirname "$0")/../.."

RULES=deploy/prometheus/rules.yml
RULES_TEST=tests/deploy/rules_test.yml
PROMRULE=deploy/kubernetes/prometheusrule.yaml
DASHBOARD=deploy/grafana/tcpka-dashboard.json
README=README.md

regenerate=false
case "${1:-}" in
  "") ;;
  --regenerate) regenerate=true ;;
  *) echo "usage: $0 [--regenerate]" >&2; exit 2 ;;
esac

for tool in promtool python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (deploy/local/deps.sh installs it)" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# --- 1, 2: promtool -----------------------------------------------------------
step "promtool check rules $RULES"
promtool check rules "$RULES"

step "promtool test rules $RULES_TEST"
promtool test rules "$RULES_TEST"

# Every alert of rules.yml has a unit test, and the required alerts exist.
step "alerts present and unit-tested"
alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\) *$/\1/p' "$RULES")
[[ -n $alerts ]] || fail "no alert found in $RULES"
for a in TcpkaCloseWaitLeakGrowing TcpkaCloseWaitTooOld TcpkaKeepaliveKillBurst \
         TcpkaHalfOpenSuspects TcpkaAgentDown TcpkaAgentAbsent TcpkaBpfProgramDetached \
         TcpkaEventsDropped; do
  grep -qx "$a" <<<"$alerts" || fail "$RULES has no alert $a"
done
for a in $alerts; do
  grep -Eq "^ *alertname: *$a *$" "$RULES_TEST" || fail "$a has no test in $RULES_TEST"
done
echo "OK: $(wc -w <<<"$alerts") alerts, each with a test"

# --- 3: the PrometheusRule -----------------------------------------------------
# The expected file: a fixed header, then rules.yml from `groups:` on,
# indented by two spaces (empty lines stay empty).
render_prometheusrule() {
  cat <<'EOF'
# Generated from deploy/prometheus/rules.yml: do not edit by hand. After a change
# to rules.yml, run `bash tests/deploy/check_rules.sh --regenerate`.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: tcpka
  namespace: tcpka
  labels:
    app.kubernetes.io/name: tcpka
spec:
EOF
  sed -n '/^groups:/,$p' "$RULES" | sed 's/^\(.\)/  \1/'
}

step "$PROMRULE matches $RULES"
grep -q '^groups:' "$RULES" || fail "$RULES has no top-level groups:"
render_prometheusrule >"$tmp/prometheusrule.yaml"
if $regenerate; then
  mkdir -p "$(dirname "$PROMRULE")"
  cp "$tmp/prometheusrule.yaml" "$PROMRULE"
  echo "regenerated $PROMRULE"
fi
[[ -f $PROMRULE ]] || fail "$PROMRULE is missing (run $0 --regenerate)"
if ! diff -u "$PROMRULE" "$tmp/prometheusrule.yaml"; then
  fail "$PROMRULE differs from $RULES (diff above; run $0 --regenerate)"
fi
echo "OK: text identical to the rendering of $RULES"

# python3-yaml is a test dependency (deploy/local/deps.sh): no check is skipped.
python3 -c 'import yaml' 2>/dev/null || fail "python3-yaml is missing (deploy/local/deps.sh installs it)"
if true; then
  python3 - "$RULES" "$PROMRULE" <<'EOF'
import sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
pr = yaml.safe_load(open(sys.argv[2]))
want = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule"}
for k, v in want.items():
    assert pr.get(k) == v, f"{k} is {pr.get(k)!r}, want {v!r}"
md = pr["metadata"]
assert md.get("name") == "tcpka" and md.get("namespace") == "tcpka", md
assert md.get("labels", {}).get("app.kubernetes.io/name") == "tcpka", md
assert set(pr["spec"]) == {"groups"}, f"spec has {sorted(pr['spec'])}"
assert set(rules) == {"groups"}, f"rules.yml has {sorted(rules)}"
assert pr["spec"]["groups"] == rules["groups"], "spec.groups != rules.yml groups"

# Rule hygiene: every alert has a severity and the three annotations.
n = 0
for g in rules["groups"]:
    for r in g["rules"]:
        if "alert" not in r:
            continue
        n += 1
        sev = r.get("labels", {}).get("severity")
        assert sev in ("critical", "warning", "info"), f"{r['alert']}: severity {sev!r}"
        for a in ("summary", "description", "runbook"):
            assert str(r.get("annotations", {}).get(a, "")).strip(), f"{r['alert']}: no {a}"
        rb = r["annotations"]["runbook"]
        assert "tcpka " in rb or "curl " in rb or "tcpka_" in rb, \
            f"{r['alert']}: the runbook names no tcpka command, endpoint or metric"
print(f"OK: parsed, spec.groups == rules.yml groups; {n} alerts with severity, summary, description, runbook")
EOF
fi

# --- 4, 5: metric names and dashboard queries ----------------------------------
# One Python helper, used on the real files and on bad inputs it must reject.
cat >"$tmp/lint.py" <<'EOF'
"""lint.py MODE ...: checks the metric names and dashboard of tcpka.

  names README FILE...      every metric in FILE's exprs (rules file: expr:
                            fields; .json: a Grafana dashboard's targets and
                            label_values() selectors) is exported per README
  dashboard JSON OUT        checks the dashboard's structure and writes its
                            exprs, made concrete, as recording rules to OUT
"""
import json, re, sys

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan", "atan2"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range",
                    "__range_s", "__range_ms"}


def exported(readme):
    """Metric names of README.md's metric tables (first column), plus the
    _bucket/_sum/_count series of histograms, plus up."""
    names = set()
    for line in open(readme):
        m = re.match(r"^\|\s*`(tcpka_[a-z_]+)`\s*\|\s*(\w+)\s*\|", line)
        if not m:
            continue
        names.add(m.group(1))
        if m.group(2) == "histogram":
            names |= {m.group(1) + s for s in ("_bucket", "_sum", "_count")}
    if len(names) < 10:
        sys.exit(f"FAIL: only {len(names)} metric names found in {readme}'s tables")
    return names | {"up"}


def metric_names(expr):
    """The metric names a PromQL expression selects (string literals, label
    matchers, ranges, grouping clauses, functions and keywords removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    e = re.sub(r"#[^\n]*", " ", e)
    if "{" in e and re.search(r"\{[^}]*__name__", e):
        raise ValueError(f"__name__ matchers are not allowed: {expr}")
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = GROUPING.sub(" ", e)
    out = set()
    for m in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)", e):
        word, rest = m.group(1), e[m.end():]
        if re.match(r"\s*\(", rest) or word.lower() in KEYWORDS:
            continue
        out.add(word)
    return out


def rule_exprs(path):
    """(where, expr) of a Prometheus rule file's expr fields; inline or block
    scalars. Without PyYAML, on purpose: it may be missing."""
    lines = open(path).read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:-\s+)?expr:\s*(.*)$", lines[i])
        if not m:
            i += 1
            continue
        where, val = f"{path}:{i + 1}", m.group(2).strip()
        if val and val[0] in "|>":
            ind = len(m.group(1))
            body = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or
                                      len(lines[i]) - len(lines[i].lstrip()) > ind):
                body.append(lines[i].strip())
                i += 1
            yield where, "\n".join(body).strip()
            continue
        if val[:1] in "'\"":
            val = val[1:-1]
        yield where, val
        i += 1


def label_values_selector(query):
    """The series selector of a Grafana label_values(selector, label) query."""
    m = re.match(r"^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", query, re.S)
    return m.group(1) if m else None


def dashboard_exprs(path):
    d = json.load(open(path))
    for p in all_panels(d):
        for t in p.get("targets", []):
            yield f"panel {p.get('id')} ({p.get('title')}) {t.get('refId')}", t.get("expr", "")
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            sel = label_values_selector(q)
            if sel is None:
                raise ValueError(f"variable {v.get('name')}: not a label_values() query: {q}")
            yield f"variable {v.get('name')}", sel


def all_panels(d):
    for p in d.get("panels", []):
        yield p
        yield from p.get("panels", [])


def check_names(readme, files):
    ok = exported(readme)
    bad, n = [], 0
    for f in files:
        items = dashboard_exprs(f) if f.endswith(".json") else rule_exprs(f)
        for where, expr in items:
            n += 1
            names = metric_names(expr)
            if not names and "vector(" not in expr:
                bad.append(f"{where}: selects no metric: {expr}")
            for name in sorted(names - ok):
                bad.append(f"{where}: {name} is not a metric the agent exports")
    if n == 0:
        bad.append("no expression found")
    for b in bad:
        print("FAIL:", b)
    if bad:
        sys.exit(1)
    print(f"OK: {n} expressions use only exported metrics ({', '.join(files)})")


def concrete(expr):
    e = expr
    for b in ("__rate_interval", "__interval", "__range"):
        e = e.replace("${%s}" % b, "5m").replace("$" + b, "5m")
    e = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}|\$[A-Za-z_][A-Za-z0-9_]*", ".*", e)
    return e


def check_dashboard(path, out):
    d = json.load(open(path))
    bad = []
    want = {"uid": "tcpka", "title": "tcpka: TCP keepalive and connection leaks"}
    for k, v in want.items():
        if d.get(k) != v:
            bad.append(f"{k} is {d.get(k)!r}, want {v!r}")
    if not isinstance(d.get("schemaVersion"), int) or not 36 <= d["schemaVersion"] <= 41:
        bad.append(f"schemaVersion {d.get('schemaVersion')!r} is not ~38")

    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        bad.append("no `datasource` variable of type datasource for prometheus")
    cg = variables.get("cgroup", {})
    q = cg.get("query")
    q = q.get("query", "") if isinstance(q, dict) else (q or "")
    if cg.get("type") != "query" or not re.match(r"^label_values\(tcpka_sockets\b.*,\s*cgroup\)$", q):
        bad.append("no `cgroup` variable label_values(tcpka_sockets..., cgroup)")
    for name, v in variables.items():
        if v.get("type") == "query":
            if v.get("datasource", {}).get("uid") != "${datasource}":
                bad.append(f"variable {name} does not use ${{datasource}}")
            if v.get("includeAll") and v.get("allValue") != ".*":
                bad.append(f"variable {name}: includeAll needs allValue \".*\" (labels may be absent)")

    rules, ids = [], set()
    for p in all_panels(d):
        pid, title = p.get("id"), p.get("title")
        if pid in ids or not isinstance(pid, int):
            bad.append(f"panel {title!r}: id {pid!r} missing or not unique")
        ids.add(pid)
        if "gridPos" not in p:
            bad.append(f"panel {title!r}: no gridPos")
        if p.get("type") == "row":
            continue
        if p.get("type") not in ("timeseries", "stat", "table", "gauge", "bargauge", "text"):
            bad.append(f"panel {title!r}: unexpected type {p.get('type')!r}")
        targets = p.get("targets", [])
        if not targets and p.get("type") != "text":
            bad.append(f"panel {title!r}: no targets")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            bad.append(f"panel {title!r}: datasource is not ${{datasource}}")
        refids = [t.get("refId") for t in targets]
        if len(set(refids)) != len(refids) or not all(refids):
            bad.append(f"panel {title!r}: refIds {refids} missing or not unique")
        for t in targets:
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                bad.append(f"panel {title!r} {t.get('refId')}: no expr")
                continue
            for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expr):
                if var not in variables and var not in GRAFANA_BUILTINS:
                    bad.append(f"panel {title!r} {t.get('refId')}: ${var} is not a variable")
            rules.append({"record": f"dashboard:panel{pid}:{t.get('refId')}", "expr": concrete(expr)})
    for name, v in variables.items():
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            sel = label_values_selector(q)
            if sel is None:
                bad.append(f"variable {name}: not a label_values() query: {q}")
                continue
            for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", sel):
                if var not in variables:
                    bad.append(f"variable {name}: ${var} is not a variable")
            rules.append({"record": f"dashboard:variable:{name}", "expr": concrete(sel)})
    if not rules:
        bad.append("no queries")
    for b in bad:
        print("FAIL:", b)
    if bad:
        sys.exit(1)
    # YAML is a superset of JSON: promtool reads this as a rule file.
    json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(out, "w"), indent=1)
    print(f"OK: {len(ids)} panels, {len(variables)} variables, {len(rules)} queries to parse")


if __name__ == "__main__":
    if sys.argv[1] == "names":
        check_names(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "dashboard":
        check_dashboard(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
EOF

step "self-test of the checks on bad inputs"
expect_fail() { # what, command...: the command must fail
  local what=$1; shift
  if "$@" >"$tmp/out" 2>&1; then cat "$tmp/out"; fail "the check accepted $what"; fi
  echo "OK: rejects $what"
}
cat >"$tmp/bad_name.yml" <<'EOF'
groups:
  - name: bad
    rules:
      - alert: Bad
        expr: |-
          sum by (cgroup) (rate(tcpka_keepalive_kils_total{outcome="timeout"}[5m])) > 0
EOF
expect_fail "a misspelled metric in a rule" python3 "$tmp/lint.py" names "$README" "$tmp/bad_name.yml"
cat >"$tmp/bad_up.yml" <<'EOF'
groups:
  - name: bad
    rules:
      - record: bad
        expr: node_up{job="tcpka"} == 0 and on (instance) up
EOF
expect_fail "a metric that is not the agent's" python3 "$tmp/lint.py" names "$README" "$tmp/bad_up.yml"
python3 - "$DASHBOARD" "$tmp" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
p = next(p for p in d["panels"] if p.get("targets"))
bad = json.loads(json.dumps(d)); q = next(x for x in bad["panels"] if x["id"] == p["id"])
q["targets"][0]["expr"] = "sum by (cgroup) (rate(tcpka_keepalive_probes_sent_total[$__rate_interval])"
json.dump(bad, open(sys.argv[2] + "/bad_parse.json", "w"))
bad = json.loads(json.dumps(d)); q = next(x for x in bad["panels"] if x["id"] == p["id"])
q["targets"].append(dict(q["targets"][0]))
json.dump(bad, open(sys.argv[2] + "/bad_refid.json", "w"))
bad = json.loads(json.dumps(d)); q = next(x for x in bad["panels"] if x["id"] == p["id"])
q["targets"][0]["expr"] = 'sum(tcpka_sockets{cgroup=~"$cgroups"})'
json.dump(bad, open(sys.argv[2] + "/bad_var.json", "w"))
bad = json.loads(json.dumps(d)); q = next(x for x in bad["panels"] if x["id"] == p["id"])
q["targets"][0]["expr"] = 'sum(rate(tcpka_close_wait_duration_seconds_buckets[5m]))'
json.dump(bad, open(sys.argv[2] + "/bad_metric.json", "w"))
EOF
python3 "$tmp/lint.py" dashboard "$tmp/bad_parse.json" "$tmp/bad_parse_rules.json" >/dev/null
expect_fail "a dashboard expr that does not parse" promtool check rules "$tmp/bad_parse_rules.json"
expect_fail "duplicate refIds" python3 "$tmp/lint.py" dashboard "$tmp/bad_refid.json" "$tmp/x.json"
expect_fail "an undefined dashboard variable" python3 "$tmp/lint.py" dashboard "$tmp/bad_var.json" "$tmp/x.json"
expect_fail "a misspelled metric in the dashboard" python3 "$tmp/lint.py" names "$README" "$tmp/bad_metric.json"

step "metric names in $RULES and $DASHBOARD are exported by the agent ($README)"
python3 "$tmp/lint.py" names "$README" "$RULES" "$DASHBOARD"

step "dashboard $DASHBOARD"
python3 "$tmp/lint.py" dashboard "$DASHBOARD" "$tmp/dashboard_rules.json"
promtool check rules "$tmp/dashboard_rules.json"

step "all deploy rule and dashboard checks passed"
