"""How noisy are the ratios, and does the gate see a 25% change? Run by hand, on an idle machine.

`.venv/bin/python benchmarks/gate.py spread --runs 5`: runs configs/ci.toml back to back,
alternating paired (interleaved ABBA rounds, the default) and sequential (one pipeline's loop,
then the other's) runs, and prints per headline ratio the spread over the runs of each kind
(max/min - 1) and the largest deviation from their median.

`.venv/bin/python benchmarks/gate.py gate --runs 10 --repeat 3 [--tolerance 0.4]`: N checks as
.ci/run makes them (`emobench ci --repeat 3`: each check is R runs of the suite, their ratios
combined), each against the stored baseline of this machine class at the thresholds its runs'
spread gives (`--tolerance` adds a `portable` rule: a floor under them): the number of false
alarms (exact and portable failures) and the largest threshold used. Then two injected
regressions against every check: the stored baseline with direct48's batch-1 latency 25%
faster (so the check looks 25% slower), and with its preprocessing ratios 25% higher.

`.venv/bin/python benchmarks/gate.py replay --checks DIR`: the checks `gate --save DIR` kept,
judged again against the stored baseline (after a new calibration): nothing is measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

from emobench import results as R
from emobench.config import load_suite
from emobench.gate import store as S
from emobench.gate import verdicts as B
from emobench.gate.calibrate import combine_runs
from emobench.scenarios.compare import run_benchmark

SUITE = Path("configs/ci.toml")
HEADLINE = (
    "latency_b1_median_ms",
    "preprocess_per_image_pil_us",
    "preprocess_batched_tensor_us",
    "throughput_b1_images_per_s",
    "throughput_b8_images_per_s",
    "end_to_end_b8_images_per_s",
)


def ratios(report: R.Report) -> dict[tuple[str, str], float]:
    return {
        (row.backbone, row.key): row.ratio
        for row in R.metric_rows(report)
        if row.key in HEADLINE and row.ratio is not None
    }


def spread(runs: int) -> None:
    config = load_suite(SUITE)
    seen: dict[str, list[dict[tuple[str, str], float]]] = {"paired": [], "sequential": []}
    for i in range(runs):
        for mode in ("paired", "sequential"):
            cfg = dataclasses.replace(config, paired=mode == "paired")
            report = run_benchmark(cfg, kind="run")
            busy = report.contention.busy if report.contention else False
            print(f"run {i + 1} {mode}: {report.wall_time_s:.1f} s" + (" BUSY" if busy else ""))
            seen[mode].append(ratios(report))
    head = ["paired spread", "max dev", "sequential", "max dev"]
    print(f"\n{'ratio':42s} " + " ".join(f"{h:>13s}" for h in head))
    for key in sorted(seen["paired"][0]):
        cells = []
        for mode in ("paired", "sequential"):
            values = [r[key] for r in seen[mode] if key in r]
            med = statistics.median(values)
            cells += [max(values) / min(values) - 1, max(abs(v / med - 1) for v in values)]
        name = f"{key[0]} {key[1]}"
        print(f"{name:42s} " + " ".join(f"{c:13.1%}" for c in cells))


def _scaled(base: R.Report, keys: tuple[str, ...], factor: float) -> R.Report:
    """The stored baseline as if these ratios had been `factor` x: its per-run ratios (what a
    calibrated baseline compares with) and its paired ratios."""
    run_ratios = {
        k: [x * factor for x in v] if k.split("/", 1)[1] in keys else v
        for k, v in base.run_ratios.items()
    }
    paired = [
        dataclasses.replace(
            p,
            ratio=p.ratio * factor,
            ci_low=p.ci_low * factor if p.ci_low else None,
            ci_high=p.ci_high * factor if p.ci_high else None,
            ratios=[x * factor for x in p.ratios],
        )
        if p.key in keys
        else p
        for p in base.paired
    ]
    return dataclasses.replace(base, run_ratios=run_ratios, paired=paired)


INJECTIONS = (
    # direct48 25% faster in the baseline: its latency ratio 1/0.75 = 1.33x higher
    ("direct48 latency 25% faster in the baseline", ("latency_b1_median_ms",), 1 / 0.75),
    ("preprocessing ratios 25% higher in the baseline",
     ("preprocess_per_image_pil_us", "preprocess_batched_tensor_us"), 1.25),
    ("per-image preprocessing ratio 25% higher", ("preprocess_per_image_pil_us",), 1.25),
    ("batched preprocessing ratio 25% higher", ("preprocess_batched_tensor_us",), 1.25),
)  # fmt: skip


def judge(i: int, check: R.Report, source: S.BaselineSource, rules: dict[str, float]) -> bool:
    """Print one check's verdict line; True when it failed (an exact or portable failure)."""
    base = source.select(check).baseline.report
    verdicts = B.check(check, base, rules)
    failed = [v for v in verdicts if v.failed and v.kind in (R.EXACT, R.PORTABLE)]
    moves = [v for v in verdicts if v.kind == R.PORTABLE and v.delta is not None and v.threshold]
    worst = max(moves, key=lambda v: abs(v.delta or 0.0) / (v.threshold or 1.0), default=None)
    names = ", ".join(
        f"{v.backbone} {v.metric}" + ("" if v.delta is None else f" {v.delta:+.1%}")
        for v in failed[:3]
    )
    closest = (
        f"{worst.backbone} {worst.metric} {worst.delta:+.1%} of +-{worst.threshold:.1%}"
        if worst and worst.delta is not None and worst.threshold
        else "none"
    )
    runs = max((len(v) for v in check.run_ratios.values()), default=1)
    busy = " BUSY" if check.contention and check.contention.busy else ""
    print(
        f"check {i} ({runs} runs): {'FAIL ' + names if failed else 'pass'}; closest to its "
        f"threshold: {closest}; {check.wall_time_s:.1f} s{busy}",
        flush=True,
    )
    return bool(failed)


def summary(checks: list[R.Report], source: S.BaselineSource, rules: dict[str, float]) -> None:
    """False alarms, the thresholds used, and each injected regression against every check."""
    base = source.select(checks[-1]).baseline.report
    alpha = base.gate_alpha
    print(f"baseline: {len(next(iter(base.run_ratios.values()), []))} runs, false-alarm rate "
          f"{alpha if alpha is not None else 'default'} for the whole gate")  # fmt: skip
    widest: dict[str, float] = {}
    for check in checks:
        for v in B.check(check, source.select(check).baseline.report, rules):
            if v.kind == R.PORTABLE and v.threshold is not None and v.pipeline == "ratio":
                name = f"{v.backbone}/{v.metric}"
                widest[name] = max(widest.get(name, 0.0), v.threshold)
    print("thresholds used (largest over the checks):")
    for name, value in sorted(widest.items()):
        print(f"  {name:48s} {value:6.1%}")
    for name, keys, factor in INJECTIONS:
        caught = 0
        shown = ""
        for check in checks:
            stored = source.select(check).baseline.report
            verdicts = B.check(check, _scaled(stored, keys, factor), rules)
            failed = [v for v in verdicts if v.failed and v.kind == R.PORTABLE]
            caught += bool(failed)
            if failed and not shown:
                shown = "; ".join(f"{v.backbone} {v.metric} {v.delta:+.1%}" for v in failed)
        print(f"injected: {name}: detected in {caught} of {len(checks)} checks"
              + (f" (e.g. {shown})" if shown else ""))  # fmt: skip


def gate(runs: int, repeat: int, tolerance: float | None, save: Path | None) -> None:
    config = load_suite(SUITE)
    source = S.resolve_baseline("ci")
    # no tolerance: the thresholds the calibrated baseline's runs give (as .ci/run uses them)
    rules = {R.PORTABLE: tolerance} if tolerance is not None else {}
    checks = []
    failures = 0
    for i in range(runs):
        check = combine_runs([run_benchmark(config, kind="run") for _ in range(repeat)])
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            R.save(check, save / f"check-{i + 1:02d}.json")
        failures += judge(i + 1, check, source, rules)
        checks.append(check)
    print(f"false alarms: {failures} of {runs} checks")
    summary(checks, source, rules)


def replay(folder: Path, tolerance: float | None) -> None:
    """The checks saved by `gate --save`, judged again against the stored baseline (after a
    new calibration, or at another false-alarm rate): nothing is measured."""
    source = S.resolve_baseline("ci")
    rules = {R.PORTABLE: tolerance} if tolerance is not None else {}
    checks = [R.load(p) for p in sorted(folder.glob("check-*.json"))]
    if not checks:
        raise SystemExit(f"{folder}: no check-*.json (saved by `gate --save`)")
    failures = sum(judge(i + 1, c, source, rules) for i, c in enumerate(checks))
    print(f"false alarms: {failures} of {len(checks)} checks")
    summary(checks, source, rules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=("spread", "gate", "replay"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3, help="runs per check (ci --repeat)")
    parser.add_argument("--save", type=Path, default=None, help="keep each check's report here")
    parser.add_argument("--checks", type=Path, default=None, help="replay: the --save folder")
    parser.add_argument(
        "--tolerance", type=float, default=None, help="default: the baseline's thresholds"
    )
    args = parser.parse_args()
    if args.what == "spread":
        spread(args.runs)
    elif args.what == "replay":
        if args.checks is None:
            parser.error("replay needs --checks FOLDER")
        replay(args.checks, args.tolerance)
    else:
        gate(args.runs, args.repeat, args.tolerance, args.save)


if __name__ == "__main__":
    main()
