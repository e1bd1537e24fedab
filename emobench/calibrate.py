"""A/A calibration: how far do the ratios move between runs of an unchanged tree, and so which
tolerance keeps false alarms rare while still seeing a real regression.

The unit of replication is the run, not the sample: samples inside one run are tight while runs
differ, so the thresholds come from run-to-run spread. Each headline ratio is taken on a log
scale (a 20% rise and its inverse are the same size); with N runs giving standard deviation s,
a new run's log-ratio differs from the baseline (the median of the N) by noise of about
s * sqrt(1 + 1/N). With m ratios gated, each gets alpha / m so that the whole gate's false-alarm
rate is alpha (Bonferroni); a ratio's threshold (two-sided) is Student's t(1 - alpha/(2m), N - 1)
times that noise; the smallest change it detects with 80% power adds z(0.8) times the same.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from emobench import report as R

DEFAULT_ALPHA = 0.05  # for the whole gate (all ratios together), split Bonferroni-style
POWER = 0.80
MIN_THRESHOLD = 0.03  # never gate tighter than 3%: identical runs would give 0
MIN_RUNS = 3


@dataclass(frozen=True)
class Calibration:
    backbone: str
    key: str
    runs: int
    median_ratio: float
    spread: float  # max / min - 1 over the runs
    log_sd: float  # run-to-run standard deviation of log(ratio)
    threshold: float  # relative move that gates at the false-alarm rate
    detectable: float  # relative move seen with 80% power

    @property
    def rule_key(self) -> str:
        return self.key


def run_ratios(reports: list[R.Report]) -> dict[tuple[str, str], list[float]]:
    """Every portable ratio of every run: {(backbone, key): [ratio per run]}."""
    out: dict[tuple[str, str], list[float]] = {}
    for report in reports:
        for row in R.metric_rows(report):
            if row.kind == R.PORTABLE and row.ratio is not None and row.ratio > 0:
                out.setdefault((row.backbone, row.key), []).append(row.ratio)
    return out


def calibrate(reports: list[R.Report], alpha: float = DEFAULT_ALPHA) -> list[Calibration]:
    """Per portable ratio: run-to-run spread, the gate's threshold and the detectable change."""
    if len(reports) < MIN_RUNS:
        raise ValueError(f"calibration needs at least {MIN_RUNS} runs, got {len(reports)}")
    return calibrate_values(run_ratios(reports), alpha)


def calibrate_values(
    values_by_key: dict[tuple[str, str], list[float]], alpha: float = DEFAULT_ALPHA
) -> list[Calibration]:
    """The thresholds for these per-run ratios. `alpha` is the false-alarm rate of the whole
    gate: with m ratios checked, each gets alpha / m (Bonferroni), so a run of an unchanged
    tree fails with probability at most alpha, not m times that."""
    from scipy.stats import norm, t

    usable = {k: v for k, v in values_by_key.items() if len(v) >= MIN_RUNS}
    per_ratio = alpha / max(1, len(usable))
    out = []
    for (backbone, key), values in usable.items():
        n = len(values)
        logs = [math.log(v) for v in values]
        sd = statistics.stdev(logs)
        noise = sd * math.sqrt(1 + 1 / n)
        crit = float(t.ppf(1 - per_ratio / 2, n - 1))
        threshold = max(MIN_THRESHOLD, math.expm1(crit * noise))
        detectable = max(threshold, math.expm1((crit + float(norm.ppf(POWER))) * noise))
        out.append(
            Calibration(
                backbone,
                key,
                n,
                statistics.median(values),
                max(values) / min(values) - 1,
                sd,
                threshold,
                detectable,
            )
        )
    return out


def thresholds(calibrations: list[Calibration]) -> dict[str, float]:
    """One threshold per ratio, keyed "backbone/metric": what a baseline carries."""
    return {f"{c.backbone}/{c.key}": c.threshold for c in calibrations}


def combine_runs(reports: list[R.Report]) -> R.Report:
    """Several runs as one report: the last run's figures, with every run's portable ratios in
    `run_ratios`, which the check uses (their median) instead of the single run's ratio."""
    import dataclasses

    if len(reports) == 1:
        return reports[0]
    per_run = {f"{b}/{k}": values for (b, k), values in run_ratios(reports).items()}
    return dataclasses.replace(reports[-1], run_ratios=per_run)


def calibrated_baseline(
    reports: list[R.Report], alpha: float = DEFAULT_ALPHA
) -> tuple[R.Report, list[Calibration]]:
    """The last run as the baseline, carrying every run's ratios and the calibrated thresholds:
    `check` then compares a new ratio with the median of the runs, at that threshold."""
    import dataclasses

    calibrations = calibrate(reports, alpha)
    per_run = {f"{b}/{k}": values for (b, k), values in run_ratios(reports).items()}
    base = dataclasses.replace(reports[-1], thresholds=thresholds(calibrations), run_ratios=per_run)
    return base, calibrations
