"""How fast and how cheaply every bad input is refused (issue #13, item 15).

Run by hand (not a test): `.venv/bin/python benchmarks/bad_input.py [--repeat 3] [--only TEXT]`.
Each case of the bad-input matrix (tests/bad_inputs.py, also run in-process by
tests/cli/test_bad_input.py) runs as a fresh `emobench` process in a folder of crafted files; the
table gives the exit code, the first stderr line, the wall time (median of --repeat runs) and
the child's peak RSS. Target: a usage error answered in under 0.5 s. Cases marked `torch` need
the device or a rebuilt report and import torch (about 4 s and 800 MB) by design.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.bad_inputs, and emobench from this checkout

from tests.bad_inputs import CASES, Case  # noqa: E402

TARGET_S = 0.5
# the console script's entry, with its name, so messages read as they do for a user
ENTRY = "import sys; sys.argv[0] = 'emobench'; from emobench.cli import app; app()"
MAKE_FIXTURES = (
    "import sys; from pathlib import Path; from tests.bad_inputs import make_fixtures; "
    "make_fixtures(Path(sys.argv[1]))"
)


def run_case(case: Case, folder: Path) -> tuple[int, str, float, float]:
    """(exit code, first stderr line, seconds, peak RSS in MiB) of one fresh process."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", ENTRY, *case.args],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        lines = err.read().decode(errors="replace").splitlines()
    return proc.returncode, (lines[0] if lines else ""), seconds, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (median reported)")
    parser.add_argument("--only", default="", help="only cases whose command contains this")
    args = parser.parse_args()
    cases = [c for c in CASES if args.only in c.command]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # in another process: building the reports imports torch, and a child forked from a
        # process holding torch would count its pages in the peak RSS measured here
        subprocess.run(
            [sys.executable, "-c", MAKE_FIXTURES, str(folder)],
            env=os.environ | {"PYTHONPATH": str(ROOT)},
            check=True,
        )
        for case in cases:
            runs = [run_case(case, folder) for _ in range(args.repeat)]
            code, line, _s, _m = runs[-1]
            seconds = statistics.median(r[2] for r in runs)
            rss = max(r[3] for r in runs)
            ok = code == 2 and line.startswith("error: ") and case.message in line
            rows.append((case, code, line, seconds, rss, ok))

    print("| command | exit | first stderr line | s | peak MiB | |")
    print("| --- | --- | --- | ---: | ---: | --- |")
    for case, code, line, seconds, rss, ok in rows:
        command = case.command if len(case.command) <= 60 else case.command[:57] + "..."
        shown = line if len(line) <= 110 else line[:107] + "..."
        flags = ("torch" if case.needs_torch else "") + ("" if ok else " MISMATCH")
        shown = shown.replace("|", "\\|")
        print(f"| `{command}` | {code} | {shown} | {seconds:.2f} | {rss:.0f} | {flags.strip()} |")

    print()
    print("| surface | tried | refused in < 0.5 s | refused, needing torch | failed |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for group in dict.fromkeys(r[0].group for r in rows):
        mine = [r for r in rows if r[0].group == group]
        fast = sum(1 for r in mine if r[5] and r[3] < TARGET_S)
        torch_ok = sum(1 for r in mine if r[5] and r[0].needs_torch)
        failed = sum(1 for r in mine if not r[5] or (not r[0].needs_torch and r[3] >= TARGET_S))
        print(f"| {group} | {len(mine)} | {fast} | {torch_ok} | {failed} |")

    usage = [r for r in rows if not r[0].needs_torch]
    device = [r for r in rows if r[0].needs_torch]
    slow = [r for r in usage if r[3] >= TARGET_S]
    slowest = max(usage, key=lambda r: r[3])
    print()
    print(
        f"{len(rows)} cases; without torch: {len(usage)}, median "
        f"{statistics.median(r[3] for r in usage):.2f} s, max {slowest[3]:.2f} s "
        f"(`{slowest[0].command}`), peak RSS max {max(r[4] for r in usage):.0f} MiB, "
        f"{len(slow)} at or over {TARGET_S} s"
    )
    if device:
        print(
            f"needing torch: {len(device)}, median {statistics.median(r[3] for r in device):.2f} s"
            f", max {max(r[3] for r in device):.2f} s"
        )
    mismatched = [r for r in rows if not r[5]]
    for case, code, line, *_rest in mismatched:
        print(f"MISMATCH: {case.command}: exit {code}, {line!r}, expected {case.message!r}")
    return 1 if mismatched or slow else 0


if __name__ == "__main__":
    sys.exit(main())
