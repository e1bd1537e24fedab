"""The regression gate's statistics: run-level thresholds (Student's t over A/A runs, Bonferroni
over the ratios), a one-sided Mann-Whitney U test, and a bootstrap interval of a median ratio."""

from __future__ import annotations

import math
import statistics

DEFAULT_ALPHA = 0.05  # for the whole gate (all ratios together), split Bonferroni-style


POWER = 0.80


MIN_THRESHOLD = 0.03  # never gate tighter than 3%: identical runs would give 0


MIN_RUNS = 3


def usable(values: list[float]) -> list[float]:
    """The per-run ratios a log scale can take (positive and finite)."""
    return [v for v in values if v > 0 and math.isfinite(v)]


def geometric_mean(values: list[float]) -> float:
    """The centre the gate compares: the mean on the log scale."""
    return math.exp(statistics.fmean(math.log(v) for v in values))


def gate_threshold(
    baseline_runs: list[float], family: int, alpha: float = DEFAULT_ALPHA
) -> tuple[float, float]:
    """(threshold, detectable change at 80% power) for a check's mean log-ratio against the
    mean of `baseline_runs` (at least MIN_RUNS), `family` ratios sharing the false-alarm rate
    `alpha`. Both relative, floored at MIN_THRESHOLD."""
    from scipy.stats import norm, t

    runs = usable(baseline_runs)
    n = len(runs)
    if n < MIN_RUNS:
        raise ValueError(f"a run-level threshold needs at least {MIN_RUNS} runs, got {n}")
    sd = statistics.stdev(math.log(v) for v in runs)
    noise = sd * math.sqrt(1 + 1 / n)  # a check's runs share one machine state: one run
    crit = float(t.ppf(1 - alpha / family / 2, n - 1))
    threshold = max(MIN_THRESHOLD, math.expm1(crit * noise))
    return threshold, max(threshold, math.expm1((crit + float(norm.ppf(POWER))) * noise))


BOOTSTRAP_ROUNDS = 400


BOOTSTRAP_MAX_SAMPLES = 200  # resample at most this many per side: enough for a median's CI


def mann_whitney_p_greater(current: list[float], baseline: list[float]) -> float:
    """One-sided p-value that `current` tends to be larger than `baseline`
    (scipy.stats.mannwhitneyu, tie-corrected); 1.0 when there are too few samples to tell."""
    from scipy.stats import mannwhitneyu

    if len(current) < 2 or len(baseline) < 2:
        return 1.0
    if len(set(current) | set(baseline)) == 1:
        return 1.0  # all equal: nothing to rank
    return float(mannwhitneyu(current, baseline, alternative="greater").pvalue)


def ratio_interval(
    up: list[float], dn: list[float], rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> tuple[float, float]:
    """95% percentile-bootstrap interval (scipy.stats.bootstrap, the two samples resampled
    independently) of median(up) / median(dn) from one report's own samples."""
    import numpy as np
    from scipy.stats import bootstrap

    rng = np.random.default_rng(seed)
    a = rng.permutation(up)[:BOOTSTRAP_MAX_SAMPLES]
    b = rng.permutation(dn)[:BOOTSTRAP_MAX_SAMPLES]
    result = bootstrap(
        (a, b),
        lambda x, y, axis=-1: np.median(x, axis=axis) / np.median(y, axis=axis),
        n_resamples=rounds,
        method="percentile",
        paired=False,
        vectorized=True,
        random_state=rng,
    )
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)
