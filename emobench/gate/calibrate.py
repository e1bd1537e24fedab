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

Each runtime variant of a report (torch, onnxruntime, its int8 file, a --threads count) is its
own set of ratios with its own spread and threshold. A report of plain torch only keeps the
names it had before runtimes existed, "backbone/metric"; any other report names every
variant's ratios "variant|backbone/metric". Runs pool only when they hold the same variants
in the same order.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from emobench import results as R
from emobench.errors import UsageError
from emobench.names import TORCH_RUNTIME
from emobench.results.runs import (  # noqa: F401  (store and the CLI read them here)
    VARIANT_SEP,
    distinct_runs,
    run_identity,
    runs_held,
    variant_run_ratios,
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

# One ratio across runs: (backbone, key) in a report of plain torch only, stored under
# "backbone/metric" as before runtimes existed; (backbone, key, variant) in any other report,
# stored under "variant|backbone/metric" (ratio_name).
RatioId = tuple[str, ...]


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
    # the runtime variant of the ratio; None in a report of plain torch only
    variant: str | None = None

    @property
    def rule_key(self) -> str:
        return self.key

    @property
    def name(self) -> str:
        """What the baseline's thresholds and run_ratios call this ratio."""
        ident = (self.backbone, self.key)
        return ratio_name(ident if self.variant is None else (*ident, self.variant))


def keyed_per_variant(report: R.Report) -> bool:
    """Whether the report names its runs' ratios per variant: all but plain torch only."""
    return report.variants != [TORCH_RUNTIME]


def ratio_id(report: R.Report, variant: str, backbone: str, key: str) -> RatioId:
    return (backbone, key, variant) if keyed_per_variant(report) else (backbone, key)


def ratio_name(ident: RatioId) -> str:
    """The stored name of a ratio: "backbone/metric" or "variant|backbone/metric"."""
    backbone, key, *variant = ident
    name = f"{backbone}/{key}"
    return f"{variant[0]}{VARIANT_SEP}{name}" if variant else name


def gate_run_ratios(report: R.Report, variant: str) -> dict[str, list[float]]:
    """The run_ratios the check of one variant reads: that variant's under "backbone/metric",
    and every other variant's under its own "variant|..." name, never read as this variant's
    but counted in the gate's family (Bonferroni over every ratio the whole check gates, as
    calibrate counted them, so each variant gates at the threshold calibrate printed)."""
    own = variant_run_ratios(report, variant)
    prefix = f"{variant}{VARIANT_SEP}"
    others = {
        k: v for k, v in report.run_ratios.items() if VARIANT_SEP in k and not k.startswith(prefix)
    }
    return own | others


def _variants_text(variants: list[str]) -> str:
    return "[" + ", ".join(variants) + "]"


def check_same_variants(reports: list[R.Report]) -> None:
    """Runs pool only when they hold the same runtime variants in the same order: the ratios
    of `--runtime torch --runtime onnxruntime` and of the two the other way round are never
    one run's. UsageError naming both lists otherwise."""
    first = reports[0].variants if reports else []
    for report in reports[1:]:
        if report.variants != first:
            raise UsageError(
                f"the reports hold different runtime variants: {_variants_text(first)} and "
                f"{_variants_text(report.variants)}; runs pool only with the same variants in "
                "the same order (the same --runtime, --quantize and --threads options)"
            )


def run_ratios(reports: list[R.Report]) -> dict[RatioId, list[float]]:
    """Every portable ratio of every run and runtime variant: {ratio id: [ratio per run]}
    (RatioId: (backbone, key) for plain torch reports, else (backbone, key, variant)). A
    report that already holds several runs (`--repeat`, an earlier combination) gives each of
    its runs. The reports must hold the same variants in the same order (UsageError)."""
    check_same_variants(reports)
    out: dict[RatioId, list[float]] = {}
    for report in reports:
        for variant in report.variants:
            held_by_name = variant_run_ratios(report, variant)
            for row in R.metric_rows(report.view(variant)):
                if row.kind != R.PORTABLE or row.ratio is None or row.ratio <= 0:
                    continue
                held = usable(held_by_name.get(f"{row.backbone}/{row.key}") or [])
                ident = ratio_id(report, variant, row.backbone, row.key)
                out.setdefault(ident, []).extend(held or [row.ratio])
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
    values_by_key: dict[RatioId, list[float]], alpha: float = DEFAULT_ALPHA
) -> list[Calibration]:
    """The thresholds for these per-run ratios. `alpha` is the false-alarm rate of the whole
    gate: with m ratios checked (of every runtime variant), each gets alpha / m (Bonferroni),
    so a run of an unchanged tree fails with probability at most alpha, not m times that."""
    good = {k: usable(v) for k, v in values_by_key.items()}
    good = {k: v for k, v in good.items() if len(v) >= MIN_RUNS}
    family = max(1, len(good))
    out = []
    for (backbone, key, *variant), values in good.items():
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
                variant[0] if variant else None,
            )
        )
    return out


def thresholds(calibrations: list[Calibration]) -> dict[str, float]:
    """One threshold per ratio, keyed "backbone/metric" (plain torch reports) or
    "variant|backbone/metric": what a baseline carries."""
    return {c.name: c.threshold for c in calibrations}


def combine_runs(reports: list[R.Report]) -> R.Report:
    """Several runs as one report: the last run's figures, with every run's portable ratios of
    every runtime variant in `run_ratios` (the check compares their geometric mean instead of
    the single run's ratio; the runs must hold the same variants in the same order) and
    the contention record of the busiest run (one busy run makes the whole check's timings
    unreliable)."""
    import dataclasses

    if len(reports) == 1:
        return reports[0]
    per_run = {ratio_name(i): values for i, values in run_ratios(reports).items()}
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
    per_run = {ratio_name(i): values for i, values in run_ratios(reports).items()}
    base = dataclasses.replace(
        reports[-1], thresholds=thresholds(calibrations), run_ratios=per_run, gate_alpha=alpha
    )
    return base, calibrations
