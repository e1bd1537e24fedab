"""What a `compare` costs on this machine, in units of one vgg16 upscale224 batch-1 forward.

Run by hand (not a test): `.venv/bin/python benchmarks/cost.py [--runs 1]`. In one process it
times the unit forward with torch.utils.benchmark, then the default `compare --backbone vgg16
--device cpu`, `--quick`, and the default again, and sets every upscale224/direct48 ratio of
the quick run beside the default run's (and the second default run's, to show how much two
default runs differ). Targets (issue "any machine"): default <= 150 units, quick <= 40 units,
every timing ratio of quick within 10% of the default's.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.utils.benchmark as tb

from emobench.config import QUICK, RunConfig
from emobench.models import build_model
from emobench.results import metric_rows
from emobench.scenarios.compare import run_benchmark

DEFAULT_TARGET = 150
QUICK_TARGET = 40
RATIO_TOLERANCE = 0.10


def unit_forward_s() -> float:
    """Median seconds of one vgg16 upscale224 batch-1 forward (torch.utils.benchmark)."""
    model = build_model("vgg16", "upscale224").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        m = tb.Timer("model(x)", globals={"model": model, "x": x}).blocked_autorange(min_run_time=2)
    return float(m.median)


def run(quick: bool) -> tuple[float, dict[str, float | None], object]:
    extra = dict(QUICK) if quick else {}
    config = RunConfig(backbones=("vgg16",), device="cpu", quick=quick, **extra)  # type: ignore[arg-type]
    started = time.perf_counter()
    report = run_benchmark(config)
    wall = time.perf_counter() - started
    ratios = {row.key: row.ratio for row in metric_rows(report) if row.ratio is not None}
    return wall, ratios, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1, help="default+quick pairs to run")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"capability {torch.backends.cpu.get_cpu_capability()}"
    )
    for i in range(args.runs):
        unit_before = unit_forward_s()
        default_s, default_ratios, default_report = run(quick=False)
        quick_s, quick_ratios, quick_report = run(quick=True)
        _, again_ratios, _ = run(quick=False)  # how far two default runs differ
        unit_after = unit_forward_s()
        unit = (unit_before + unit_after) / 2
        print(
            f"\nrun {i + 1}: unit forward {unit * 1000:.1f} ms "
            f"(before {unit_before * 1000:.1f}, after {unit_after * 1000:.1f})"
        )
        for name, wall, target, rep in (
            ("default", default_s, DEFAULT_TARGET, default_report),
            ("quick", quick_s, QUICK_TARGET, quick_report),
        ):
            units = wall / unit
            busy = rep.contention.note if rep.contention and rep.contention.busy else "idle"  # type: ignore[attr-defined]
            verdict = "meets" if units <= target else "MISSES"
            print(
                f"  {name:7s} {wall:6.1f} s = {units:6.1f} units "
                f"({verdict} <= {target}); machine: {busy}"
            )
        print(
            f"  {'ratio (upscale224/direct48)':38s} {'default':>9s} {'quick':>9s} {'diff':>7s}"
            f" {'default again':>14s} {'diff':>7s}"
        )
        worst = 0.0
        for key, d in default_ratios.items():
            q = quick_ratios.get(key)
            if q is None or d is None:
                continue
            diff = q / d - 1
            again = again_ratios.get(key)
            again_diff = again / d - 1 if again else float("nan")
            flag = "" if abs(diff) <= RATIO_TOLERANCE else "  <-- over 10%"
            worst = max(worst, abs(diff))
            print(
                f"  {key:38s} {d:8.2f}x {q:8.2f}x {diff:+6.1%} {again or float('nan'):13.2f}x"
                f" {again_diff:+6.1%}{flag}"
            )
        print(f"  largest ratio difference: {worst:.1%}")


if __name__ == "__main__":
    main()
