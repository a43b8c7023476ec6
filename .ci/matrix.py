"""Prints the interop matrix of docs/interop.md from `jsonconn check -json`
reports: one row per peer, one column per group of cases, with the count of
each verdict. Usage: python3 .ci/matrix.py NAME=REPORT.json ..."""

import json
import sys

GROUPS = [("1", "framing (1.x)"), ("2", "limits (2.x)"), ("3", "connections (3.x)")]
VERDICTS = ["pass", "non-strict", "fail", "info", "skipped"]


def counts(cases):
    n = {v: 0 for v in VERDICTS}
    for c in cases:
        n[c["verdict"]] += 1
    return ", ".join(f"{n[v]} {v}" for v in VERDICTS if n[v])


def main(args):
    print("| peer | " + " | ".join(title for _, title in GROUPS) + " | all |")
    print("|---" * (len(GROUPS) + 2) + "|")
    for arg in args:
        name, path = arg.split("=", 1)
        with open(path) as f:
            report = json.load(f)
        cells = [counts([c for c in report["cases"] if c["id"].split(".")[0] == g]) for g, _ in GROUPS]
        print(f"| {name} | " + " | ".join(cells) + f" | {counts(report['cases'])} |")


if __name__ == "__main__":
    main(sys.argv[1:])
