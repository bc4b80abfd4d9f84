#!/usr/bin/env python3
"""Validate the evaluation corpus (secrets.jsonl, benign.jsonl) and print counts.

Checks: every record is one JSON object on one line; fields and types are right; kinds are
'category.subkind' (benign kinds start with 'benign.'); every listed secret is a non-empty exact
substring of its line; lines carry no newline; no duplicate secrets within a record.
Exit status 1 on any error.  Usage: python3 validate.py [--per-kind]
"""
import collections, json, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
KIND = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*\.[a-z0-9]+(?:_[a-z0-9]+)*$")


def load(name):
    recs, errs = [], []
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            if not raw.endswith("\n"):
                errs.append(f"{name}:{n}: missing trailing newline")
            try:
                r = json.loads(raw)
            except json.JSONDecodeError as e:
                errs.append(f"{name}:{n}: bad JSON: {e}")
                continue
            if not isinstance(r, dict):
                errs.append(f"{name}:{n}: not an object")
                continue
            recs.append((n, r))
    return recs, errs


def main():
    per_kind = "--per-kind" in sys.argv
    errs = []
    sec, e = load("secrets.jsonl"); errs += e
    ben, e = load("benign.jsonl"); errs += e

    kinds = collections.Counter()
    kind_lines = collections.Counter()
    kind_secrets = collections.Counter()
    n_secret_lines = n_context = n_secrets = 0
    for n, r in sec:
        where = f"secrets.jsonl:{n}"
        if set(r) != {"line", "secrets", "kind"}:
            errs.append(f"{where}: fields must be line, secrets, kind (got {sorted(r)})")
            continue
        line, secrets, kind = r["line"], r["secrets"], r["kind"]
        if not isinstance(line, str) or "\n" in line or "\r" in line:
            errs.append(f"{where}: line must be a single-line string")
        if not isinstance(kind, str) or not KIND.match(kind) or kind.startswith("benign."):
            errs.append(f"{where}: bad kind {kind!r}")
        if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
            errs.append(f"{where}: secrets must be a list of strings")
            continue
        if len(set(secrets)) != len(secrets):
            errs.append(f"{where}: duplicate secret in list")
        for s in secrets:
            if not s:
                errs.append(f"{where}: empty secret")
            elif s not in line:
                errs.append(f"{where}: secret not a substring of line: {s[:40]!r}")
        kinds[kind] += 1
        if secrets:
            n_secret_lines += 1
            n_secrets += len(secrets)
            kind_lines[kind] += 1
            kind_secrets[kind] += len(secrets)
        else:
            n_context += 1

    bkinds = collections.Counter()
    for n, r in ben:
        where = f"benign.jsonl:{n}"
        if set(r) != {"line", "kind"}:
            errs.append(f"{where}: fields must be line, kind (got {sorted(r)})")
            continue
        if not isinstance(r["line"], str) or "\n" in r["line"] or "\r" in r["line"]:
            errs.append(f"{where}: line must be a single-line string")
        if not isinstance(r["kind"], str) or not KIND.match(r["kind"]) or not r["kind"].startswith("benign."):
            errs.append(f"{where}: bad kind {r['kind']!r}")
        bkinds[r["kind"]] += 1

    fams = collections.Counter(k.split(".")[0] for k in kind_lines)
    if per_kind:
        print(f"{'kind':45} {'records':>7} {'secret_lines':>12} {'secrets':>8}")
        for k in sorted(kinds):
            print(f"{k:45} {kinds[k]:7} {kind_lines[k]:12} {kind_secrets[k]:8}")
        print()
        for k in sorted(bkinds):
            print(f"{k:45} {bkinds[k]:7}")
        print()
    print(f"secrets.jsonl records:      {len(sec)}")
    print(f"  secret-bearing lines:     {n_secret_lines}")
    print(f"  secrets (substrings):     {n_secrets}")
    print(f"  context lines ([]):       {n_context}")
    print(f"  secret kinds:             {len(kind_lines)}  (families: {len(fams)})")
    print(f"benign.jsonl lines:         {len(ben)}")
    print(f"  benign kinds:             {len(bkinds)}")
    if errs:
        print(f"\n{len(errs)} ERROR(S):")
        for e in errs[:50]:
            print("  " + e)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
