"""Does "16x faster inference" get the same verdict run after run? Run by hand, alone on the
machine (issue #22: the point-estimate verdict flipped between holds and does not hold on one
machine).

`.venv/bin/python benchmarks/claims_repeat.py [--runs 3] [--out DIR] [--dry-run]`: runs N default
`emobench compare --backbone vgg16` in a row (each writing DIR/run-i.json), then `emobench
claims` on each report alone (DIR/claims-i.md) and on all of them together (DIR/pooled.md,
the reports of one machine class pooled as runs), and prints the "16x faster inference" verdict
of each run and the pooled one, with the measured ratio and its interval. Exit 1 when the runs'
verdicts flip between holds and does not hold (inconclusive beside either is not a flip: it is
what an interval straddling the threshold should say). `--dry-run` prints the commands only.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

CLAIM = "16x faster inference"
BACKBONE = "vgg16"
HOLDS, FAILS = "holds", "does not hold"


def emobench() -> list[str]:
    return [sys.executable, "-m", "emobench"]


def commands(runs: int, out: Path) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """(the compare commands, the claims commands: one per run, then the pooled one)."""
    reports = [out / f"run-{i + 1}.json" for i in range(runs)]
    compare = [
        [*emobench(), "compare", "--backbone", BACKBONE, "--out", str(r), "--force"]
        for r in reports
    ]
    claims = [
        [*emobench(), "claims", str(r), "--markdown", str(out / f"claims-{i + 1}.md"), "--force"]
        for i, r in enumerate(reports)
    ]
    pooled_md = str(out / "pooled.md")
    claims.append([*emobench(), "claims", *map(str, reports), "--markdown", pooled_md, "--force"])
    return compare, claims, [str(out / f"claims-{i + 1}.md") for i in range(runs)] + [pooled_md]


def rows_of(markdown: str, claim: str, backbone: str) -> list[dict[str, str]]:
    """The claims table's rows (as header -> cell) for one claim and backbone."""
    lines = [ln for ln in markdown.splitlines() if ln.startswith("| ")]
    if not lines:
        return []
    head = [c.strip() for c in lines[0].strip("|").split(" | ")]
    out = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        row = dict(zip(head, cells, strict=False))
        if row.get("claim") == claim and row.get("backbone") == backbone:
            out.append(row)
    return out


def verdicts_of(markdown: str, claim: str = CLAIM, backbone: str = BACKBONE) -> list[str]:
    """The verdicts of one claim for one backbone: one per machine class."""
    return [row["verdict"] for row in rows_of(markdown, claim, backbone)]


def flipped(verdicts: list[str]) -> bool:
    """Whether the runs disagree outright: one holds where another does not hold."""
    return HOLDS in verdicts and FAILS in verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="compare runs in a row (default 3)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the reports")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="claims-repeat-"))
    compare, claims, markdown = commands(args.runs, out)
    if args.dry_run:
        for cmd in [*compare, *claims]:
            print(shlex.join(["emobench", *cmd[len(emobench()) :]]))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for cmd in [*compare, *claims]:
        print("$", shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    per_run: list[str] = []
    for i, md in enumerate(markdown):
        rows = rows_of(Path(md).read_text(), CLAIM, BACKBONE)
        label = f"run {i + 1}" if i < args.runs else "pooled"
        for row in rows:
            print(
                f"{label:7s} {row['verdict']:14s} {row['measured [95% CI]']:24s} "
                f"(threshold {row['threshold']}, {row['machine class']})"
            )
        if i < args.runs:
            per_run += [row["verdict"] for row in rows]
    if flipped(per_run):
        print(f"FLIP: '{CLAIM}' read both {HOLDS} and {FAILS} across the runs")
        return 1
    print(f"no flip: '{CLAIM}' read {', '.join(per_run)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
