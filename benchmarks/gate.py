"""How noisy are the ratios, and does the gate see a 25% change? Run by hand, on an idle machine.

`.venv/bin/python benchmarks/gate.py spread --runs 5`: runs configs/ci.toml back to back,
alternating paired (interleaved ABBA rounds, the default) and sequential (one pipeline's loop,
then the other's) runs, and prints per headline ratio the spread over the runs of each kind
(max/min - 1) and the largest deviation from their median.

`.venv/bin/python benchmarks/gate.py gate --runs 10 [--tolerance 0.4]`: runs the suite N times
and checks each run against the stored baseline of this machine class, with the thresholds it
carries from `emobench calibrate` (`--tolerance` adds a `portable` rule: a floor under them, as
.ci/run does): the number of false alarms (exact and portable failures). Then two injected
regressions against the last run: the stored baseline with direct48's batch-1 latency 25%
faster (so the run looks 25% slower), and with its preprocessing ratios 25% higher.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

from emobench import baseline as B
from emobench import report as R
from emobench.config import load_suite
from emobench.runner import run_benchmark

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


def gate(runs: int, tolerance: float | None) -> None:
    config = load_suite(SUITE)
    source = B.resolve_baseline("ci")
    # no tolerance: the thresholds the calibrated baseline carries (as .ci/run uses them)
    rules = {R.PORTABLE: tolerance} if tolerance is not None else {}
    failures = 0
    last = None
    for i in range(runs):
        report = run_benchmark(config, kind="run")
        base = source.select(report).baseline.report
        verdicts = B.check(report, base, rules)
        failed = [v for v in verdicts if v.failed and v.kind in (R.EXACT, R.PORTABLE)]
        failures += bool(failed)
        worst = max(
            (abs(v.delta) for v in verdicts if v.kind == R.PORTABLE and v.delta is not None),
            default=0.0,
        )
        names = ", ".join(f"{v.backbone} {v.metric} {v.delta:+.0%}" for v in failed[:3])
        print(
            f"run {i + 1}: {'FAIL ' + names if failed else 'pass'}; largest ratio move "
            f"{worst:.1%}; {report.wall_time_s:.1f} s"
            + (" BUSY" if report.contention and report.contention.busy else "")
        )
        last = report
    carried = source.select(last).baseline.report.thresholds if last else {}
    used = (
        f"{tolerance:.0%}"
        if tolerance is not None
        else (
            "the baseline's calibrated thresholds: "
            + ", ".join(f"{k} {v:.1%}" for k, v in sorted(carried.items()))
        )
    )
    print(f"false alarms: {failures} of {runs} runs at portable {used}")
    assert last is not None
    stored = source.select(last).baseline.report
    for name, base in (
        # direct48 25% faster in the baseline: its latency ratio 1/0.75 = 1.33x higher
        ("direct48 latency 25% faster in the baseline",
         _scaled(stored, ("latency_b1_median_ms",), 1 / 0.75)),
        ("preprocessing ratios 25% higher in the baseline",
         _scaled(stored, ("preprocess_per_image_pil_us", "preprocess_batched_tensor_us"), 1.25)),
    ):  # fmt: skip
        verdicts = B.check(last, base, rules)
        failed = [v for v in verdicts if v.failed and v.kind == R.PORTABLE]
        shown = "; ".join(f"{v.backbone} {v.metric} {v.delta:+.1%}" for v in failed)
        print(f"injected: {name}: {'FAIL (detected): ' + shown if failed else 'pass (MISSED)'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=("spread", "gate"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--tolerance", type=float, default=None, help="default: the baseline's thresholds"
    )
    args = parser.parse_args()
    if args.what == "spread":
        spread(args.runs)
    else:
        gate(args.runs, args.tolerance)


if __name__ == "__main__":
    main()
