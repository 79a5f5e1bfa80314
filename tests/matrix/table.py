#!/usr/bin/env python3
"""table.py KERNELS_LIST OUT NAME...: the kernel matrix's verdict and table.

For each kernel NAME, OUT/NAME holds what guest-tests.sh left: `tcpka check`
(check.txt), `check --backend reset-reason` (check-reason.status), the
gtest XML (tests.xml). A kernel passes when what check reports off is
exactly what KERNELS_LIST declares for it, and every test ran and passed
(none skipped). Prints a Markdown table, kernel by signal, writes it to
OUT/table.md, and exits 1 if any kernel failed.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

SIGNALS = ["probe", "recovered", "kill_timeout", "kill_reset", "socket_gone"]
PARTS = ["keepalive", "audit", "state_tracker", "policies"]


def declared(kernels_list):
    out = {}
    with open(kernels_list) as f:
        for line in f:
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            # "~word": seen by the tests only, not by check.
            out[words[0]] = {w for w in words[2:] if w != "-" and not w.startswith("~")}
    return out


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def kernel_row(name, d, lacks):
    row = {"name": name, "kernel": read(os.path.join(d, "kernel")).strip() or "?"}
    problems = []
    if os.path.exists(os.path.join(d, "error")):
        problems.append(read(os.path.join(d, "error")).strip())
    check = read(os.path.join(d, "check.txt"))
    if not check:
        problems.append("no `tcpka check` output")
    # The signals' paths come before the end-to-end proof, whose lines
    # start with the same names.
    check, _, e2e = check.partition("\nend to end")
    if not e2e:
        problems.append("`tcpka check` proved nothing end to end")
    for line in e2e.splitlines():
        if "NOT SEEN" in line or "NOT RUN" in line:
            problems.append("check, end to end: " + line.strip())
    off = set()
    paths = {}
    for s in SIGNALS:
        m = re.search(r"^  %s +(.*)$" % s, check, re.M)
        if not m:
            paths[s] = "?"
            continue
        text = m.group(1)
        if text.startswith("NOT OBSERVED"):
            off.add(s)
            paths[s] = "**not observed**" + text[len("NOT OBSERVED"):]
        else:
            paths[s] = text
    for p in PARTS:
        m = re.search(r"^  %s +(on|OFF)(.*)$" % p, check, re.M)
        if m and m.group(1) == "OFF":
            off.add(p)
    if "to open sockets: NO" in check:
        off.add("keepalive_apply")
    if read(os.path.join(d, "check-reason.status")).strip() not in ("", "0"):
        off.add("reset_reason")
    row["paths"] = paths
    row["off"] = off
    row["build"] = "plain loads" if "plain-load build" in check else "probe reads"
    if off != lacks:
        more, fewer = sorted(off - lacks), sorted(lacks - off)
        problems.append(
            "check found off %s, kernels.list declares %s%s%s"
            % (sorted(off) or "nothing", sorted(lacks) or "nothing",
               "; not declared: %s" % more if more else "",
               "; declared but on: %s" % fewer if fewer else ""))
    note = read(os.path.join(d, "tests.note")).strip()
    if note:
        row["tests"] = note
    else:
        xml = os.path.join(d, "tests.xml")
        try:
            suites = ET.parse(xml).getroot()
            cases = suites.iter("testcase")
            total = failed = skipped = 0
            names = []
            for c in cases:
                total += 1
                bad = c.find("failure")
                if bad is None:
                    bad = c.find("error")
                if bad is not None:
                    failed += 1
                    # Its name and the failure's first lines: CI shows the
                    # end of the log only.
                    text = (bad.get("message") or bad.text or "").strip().splitlines()
                    names.append("%s.%s: %s" % (c.get("classname"), c.get("name"),
                                                " / ".join(text[:3])[:400]))
                elif c.get("result") == "skipped" or c.find("skipped") is not None:
                    skipped += 1
            row["tests"] = "%d/%d passed" % (total - failed - skipped, total)
            if failed or skipped or total == 0:
                problems.append("%d failed, %d skipped of %d tests (%s)"
                                % (failed, skipped, total, os.path.join(d, "tests.log")))
            problems.extend("failed: " + n for n in names)
        except (OSError, ET.ParseError):
            row["tests"] = "none"
            if not problems:
                problems.append("no test results")
    row["seconds"] = read(os.path.join(d, "seconds")).strip() or "?"
    row["problems"] = problems
    return row


def main():
    kernels_list, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    decl = declared(kernels_list)
    rows = [kernel_row(n, os.path.join(out, n), decl.get(n, set())) for n in names]
    lines = ["| kernel | " + " | ".join(SIGNALS) + " | parts and paths off | matches kernels.list | tests | time |",
             "|---" * (len(SIGNALS) + 5) + "|"]
    for r in rows:
        off = ", ".join(sorted(r["off"] - set(SIGNALS))) or "none"
        lines.append("| %s (%s; %s) | %s | %s | %s | %s | %s s |" % (
            r["kernel"], r["name"], r["build"],
            " | ".join(r["paths"].get(s, "?") for s in SIGNALS), off,
            "no" if r["problems"] else "yes", r["tests"], r["seconds"]))
    table = "\n".join(lines) + "\n"
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table)
    print(table)
    failed = False
    problems = []
    for r in rows:
        for p in r["problems"]:
            problems.append("matrix: %s (%s): %s" % (r["name"], r["kernel"], p))
            failed = True
    print("\n".join(problems))
    # tests/run.sh prints these again after every tier's verdict.
    with open(os.path.join(out, "problems.txt"), "w") as f:
        f.write("".join(p + "\n" for p in problems))
    print("matrix: %s" % ("FAILED" if failed else "every kernel matches kernels.list and passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
