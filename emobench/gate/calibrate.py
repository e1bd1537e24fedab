"""A/A calibration: how far do the ratios move between runs of an unchanged tree, and so which
tolerance keeps false alarms rare while still seeing a real regression.

The unit of replication is the run, not the sample: samples inside one run are tight while runs
differ (on a shared 2-core VM a run's vgg16 latency ratio sits at 14.4-14.9x for some minutes and
16.1-16.6x for others, with a +-3% interval inside each run), so the thresholds come from
run-to-run spread. Each headline ratio is taken on a log scale (a 20% rise and its inverse are
the same size). The baseline is N runs with mean log-ratio mu and standard deviation s; a check
compares the mean of its runs' log-ratios with mu. Its runs (`ci --repeat n`) follow each other
within minutes and share the machine's state of the moment (measured: all three runs of a check
moved the per-image preprocessing ratio by +7.5% together), so their mean counts as one run,
not n independent ones: the noise of the comparison is s * sqrt(1 + 1/N). Repeating still
helps: one disturbed run moves the mean by a third of its excursion. With m ratios gated, each
gets alpha / m so that the whole gate's false-alarm rate is alpha (Bonferroni); a ratio's
threshold (two-sided) is Student's t(1 - alpha/(2m), N - 1) times that noise; the smallest
change it detects with 80% power adds z(0.8) times the same.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from emobench import results as R
from emobench.results.runs import (  # noqa: F401  (store and the CLI read them here)
    distinct_runs,
    run_identity,
    runs_held,
)
from emobench.stats.gate import (  # noqa: F401  (re-exported: the gate reads them here)
    DEFAULT_ALPHA,
    MIN_RUNS,
    MIN_THRESHOLD,
    POWER,
    gate_threshold,
    geometric_mean,
    usable,
)


@dataclass(frozen=True)
class Calibration:
    backbone: str
    key: str
    runs: int
    mean_ratio: float  # geometric mean of the runs' ratios: the centre the check compares
    spread: float  # max / min - 1 over the runs
    log_sd: float  # run-to-run standard deviation of log(ratio)
    threshold: float  # relative move that gates at the false-alarm rate
    detectable: float  # relative move seen with 80% power

    @property
    def rule_key(self) -> str:
        return self.key


def run_ratios(reports: list[R.Report]) -> dict[tuple[str, str], list[float]]:
    """Every portable ratio of every run: {(backbone, key): [ratio per run]}. A report that
    already holds several runs (`--repeat`, an earlier combination) gives each of its runs."""
    out: dict[tuple[str, str], list[float]] = {}
    for report in reports:
        for row in R.metric_rows(report):
            if row.kind != R.PORTABLE or row.ratio is None or row.ratio <= 0:
                continue
            held = usable(report.run_ratios.get(f"{row.backbone}/{row.key}") or [])
            out.setdefault((row.backbone, row.key), []).extend(held or [row.ratio])
    return out


def calibrate(reports: list[R.Report], alpha: float = DEFAULT_ALPHA) -> list[Calibration]:
    """Per portable ratio: run-to-run spread, the gate's threshold and the detectable change."""
    values = run_ratios(reports)
    runs = max((len(v) for v in values.values()), default=0)
    if runs < MIN_RUNS:
        raise ValueError(f"calibration needs at least {MIN_RUNS} runs, got {runs}")
    return calibrate_values(values, alpha)


def family_size(values_by_key: dict[str, list[float]]) -> int:
    """How many ratios the gate tests at once (those with enough runs): the Bonferroni m."""
    return max(1, sum(len(usable(v)) >= MIN_RUNS for v in values_by_key.values()))


def calibrate_values(
    values_by_key: dict[tuple[str, str], list[float]], alpha: float = DEFAULT_ALPHA
) -> list[Calibration]:
    """The thresholds for these per-run ratios. `alpha` is the false-alarm rate of the whole
    gate: with m ratios checked, each gets alpha / m (Bonferroni), so a run of an unchanged
    tree fails with probability at most alpha, not m times that."""
    good = {k: usable(v) for k, v in values_by_key.items()}
    good = {k: v for k, v in good.items() if len(v) >= MIN_RUNS}
    family = max(1, len(good))
    out = []
    for (backbone, key), values in good.items():
        threshold, detectable = gate_threshold(values, family, alpha)
        out.append(
            Calibration(
                backbone,
                key,
                len(values),
                geometric_mean(values),
                max(values) / min(values) - 1,
                statistics.stdev(math.log(v) for v in values),
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
    `run_ratios` (the check compares their geometric mean instead of the single run's ratio) and
    the contention record of the busiest run (one busy run makes the whole check's timings
    unreliable)."""
    import dataclasses

    if len(reports) == 1:
        return reports[0]
    per_run = {f"{b}/{k}": values for (b, k), values in run_ratios(reports).items()}
    seen = [r.contention for r in reports if r.contention is not None]
    busiest = max(seen, key=lambda c: (c.busy, c.other_cpu_fraction), default=None)
    return dataclasses.replace(reports[-1], run_ratios=per_run, contention=busiest)


def calibrated_baseline(
    reports: list[R.Report], alpha: float = DEFAULT_ALPHA
) -> tuple[R.Report, list[Calibration]]:
    """The last run as the baseline, carrying every run's ratios, the gate's false-alarm rate
    and (for the record) the thresholds: `check` derives them again from the runs, so a baseline
    of several report files gates the same way."""
    import dataclasses

    calibrations = calibrate(reports, alpha)
    per_run = {f"{b}/{k}": values for (b, k), values in run_ratios(reports).items()}
    base = dataclasses.replace(
        reports[-1], thresholds=thresholds(calibrations), run_ratios=per_run, gate_alpha=alpha
    )
    return base, calibrations
