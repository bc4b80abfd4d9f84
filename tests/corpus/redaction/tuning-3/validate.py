#!/usr/bin/env python3
"""Check the evaluation corpus for internal consistency.

    python3 validate.py             # structural checks + counts
    python3 validate.py --rebuild   # also regenerate into a temp dir and compare bytes
    python3 validate.py --markdown  # print the per-kind count tables used in README.md

Checks:
  * every line of secrets.jsonl / benign.jsonl parses as a JSON object
  * keys are exactly {line, secrets, kind} / {line, kind}, with the right types
  * every listed secret is a non-empty exact substring of its line
  * an empty secrets list only occurs on a context line of a multi-line block
    (a neighbouring line has the same kind, and the block lists secrets somewhere)
  * at least 400 secret-bearing lines and at least 300 benign lines
  * no duplicate lines within or across the two files
  * no benign line contains any listed secret
Exit status is non-zero on any failure.
"""
import argparse
import collections
import filecmp
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
KIND_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
MIN_SECRET_LINES = 400
MIN_BENIGN_LINES = 300


def load(path, keys, errors):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            if not raw.endswith("\n"):
                errors.append(f"{path}:{n}: missing trailing newline")
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                errors.append(f"{path}:{n}: not JSON: {e}")
                continue
            if not isinstance(obj, dict):
                errors.append(f"{path}:{n}: not an object")
                continue
            if set(obj) != keys:
                errors.append(f"{path}:{n}: keys {sorted(obj)} != {sorted(keys)}")
                continue
            if not isinstance(obj["line"], str) or not obj["line"].strip():
                errors.append(f"{path}:{n}: line must be a non-empty string")
            elif "\n" in obj["line"] or "\r" in obj["line"]:
                errors.append(f"{path}:{n}: line contains a newline")
            if not isinstance(obj["kind"], str) or not KIND_RE.match(obj["kind"]):
                errors.append(f"{path}:{n}: bad kind {obj.get('kind')!r}")
            if "secrets" in keys:
                s = obj["secrets"]
                if not isinstance(s, list) or not all(isinstance(x, str) and x for x in s):
                    errors.append(f"{path}:{n}: secrets must be a list of non-empty strings")
                else:
                    for x in s:
                        if x not in obj["line"]:
                            errors.append(f"{path}:{n}: secret {x[:40]!r} is not a substring of the line")
                    if len(set(s)) != len(s):
                        errors.append(f"{path}:{n}: duplicate entries in secrets")
            rows.append((n, obj))
    return rows


def check_context_lines(rows, errors):
    objs = [o for _, o in rows]
    i = 0
    while i < len(objs):
        j = i
        while j + 1 < len(objs) and objs[j + 1]["kind"] == objs[i]["kind"]:
            j += 1
        run = objs[i:j + 1]
        if any(not o["secrets"] for o in run):
            if len(run) < 2:
                errors.append(f"secrets.jsonl:{rows[i][0]}: empty secrets on a line that is not part of a block")
            elif not any(o["secrets"] for o in run):
                errors.append(f"secrets.jsonl:{rows[i][0]}: block of kind {run[0]['kind']} lists no secret at all")
        i = j + 1


def tables(s_rows, b_rows):
    sk = collections.Counter(o["kind"] for _, o in s_rows if o["secrets"])
    ck = collections.Counter(o["kind"] for _, o in s_rows if not o["secrets"])
    bk = collections.Counter(o["kind"] for _, o in b_rows)
    return sk, ck, bk


FRAMINGS = [
    ("Docker json-file `{\"log\":...,\"stream\":...,\"time\":...}`", re.compile(r'^\{"log":')),
    ("CRI `<ts> stdout F ...`", re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z (stdout|stderr) F ")),
    ("`kubectl logs --prefix` `[pod/.../c] ...`", re.compile(r"^\[pod/")),
    ("compose `svc-1  \\| ...`", re.compile(r"^[a-z]+-\d +\| ")),
    ("`<RFC3339Nano> ` prefix (`kubectl logs --timestamps`, CI)", re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z ")),
]


def framing(rows):
    c = collections.Counter()
    for _, o in rows:
        for name, rx in FRAMINGS:
            if rx.match(o["line"]):
                c[name] += 1
                break
        else:
            c["bare (what the application printed)"] += 1
    return c


def markdown(s_rows, b_rows):
    sk, ck, bk = tables(s_rows, b_rows)
    fs, fb = framing(s_rows), framing(b_rows)
    out0 = ["### Framing mix", "", "| framing | secrets.jsonl | benign.jsonl |", "|---|---:|---:|"]
    out0 += [f"| {k} | {fs.get(k, 0)} | {fb.get(k, 0)} |" for k in sorted(set(fs) | set(fb), key=lambda k: -fs.get(k, 0))]
    out0 += [""]
    cat = collections.Counter()
    for k, v in sk.items():
        cat[k.split(".")[0]] += v
    out = out0 + ["### secrets.jsonl by category", "", "| category | lines with secrets |", "|---|---:|"]
    out += [f"| {k} | {v} |" for k, v in sorted(cat.items(), key=lambda x: (-x[1], x[0]))]
    out += ["", "### secrets.jsonl by kind", "", "| kind | lines with secrets | block-context lines |", "|---|---:|---:|"]
    kinds = sorted(set(sk) | set(ck), key=lambda k: (k.split(".")[0], -sk.get(k, 0), k))
    out += [f"| {k} | {sk.get(k, 0)} | {ck.get(k, 0)} |" for k in kinds]
    out += ["", "### benign.jsonl by kind", "", "| kind | lines |", "|---|---:|"]
    out += [f"| {k} | {v} |" for k, v in sorted(bk.items(), key=lambda x: (-x[1], x[0]))]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rebuild", action="store_true", help="regenerate with gen/build.py into a temp dir and compare bytes")
    ap.add_argument("--markdown", action="store_true", help="print per-kind tables in Markdown")
    args = ap.parse_args()

    errors = []
    sp, bp = os.path.join(HERE, "secrets.jsonl"), os.path.join(HERE, "benign.jsonl")
    s_rows = load(sp, {"line", "secrets", "kind"}, errors)
    b_rows = load(bp, {"line", "kind"}, errors)
    check_context_lines(s_rows, errors)

    n_secret_lines = sum(1 for _, o in s_rows if o["secrets"])
    if n_secret_lines < MIN_SECRET_LINES:
        errors.append(f"only {n_secret_lines} secret-bearing lines (< {MIN_SECRET_LINES})")
    if len(b_rows) < MIN_BENIGN_LINES:
        errors.append(f"only {len(b_rows)} benign lines (< {MIN_BENIGN_LINES})")

    seen = {}
    for name, rows in (("secrets.jsonl", s_rows), ("benign.jsonl", b_rows)):
        for n, o in rows:
            key = o["line"]
            if key in seen:
                errors.append(f"{name}:{n}: duplicate of {seen[key]}")
            else:
                seen[key] = f"{name}:{n}"

    all_secrets = sorted({x for _, o in s_rows for x in o["secrets"]}, key=len, reverse=True)
    # substring search: index benign lines once, test each secret
    blob = "\x00".join(o["line"] for _, o in b_rows)
    for x in all_secrets:
        if x in blob:
            where = next(f"benign.jsonl:{n}" for n, o in b_rows if x in o["line"])
            errors.append(f"{where}: benign line contains listed secret {x[:40]!r}")

    if args.rebuild:
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([sys.executable, os.path.join(HERE, "gen", "build.py"), "--out", d], capture_output=True, text=True)
            if r.returncode != 0:
                errors.append("gen/build.py failed: " + r.stderr.strip()[-400:])
            else:
                for fn in ("secrets.jsonl", "benign.jsonl"):
                    if not filecmp.cmp(os.path.join(d, fn), os.path.join(HERE, fn), shallow=False):
                        errors.append(f"{fn}: regenerated file differs from the committed one")

    if args.markdown:
        print(markdown(s_rows, b_rows))
        print()

    sk, ck, bk = tables(s_rows, b_rows)
    print(f"secrets.jsonl: {len(s_rows)} lines, {n_secret_lines} with secrets, {sum(ck.values())} block-context lines, "
          f"{sum(len(o['secrets']) for _, o in s_rows)} listed secrets, {len(sk)} kinds")
    print(f"benign.jsonl:  {len(b_rows)} lines, {len(bk)} kinds")
    if errors:
        print(f"\nFAILED: {len(errors)} problem(s)")
        for e in errors[:50]:
            print("  " + e)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
