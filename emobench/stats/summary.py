"""Summary statistics of raw timing samples."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import lru_cache

NOISY_IQR_RATIO = 0.10  # IQR/median above this flags a measurement as noisy
MEDIAN_CI_LEVEL = 0.95
# A tail percentile from a handful of samples is just the maximum. MLPerf's rule of thumb for a
# confident estimate: p90 from at least 64 samples, p99 from at least 662; below that: None.
MIN_SAMPLES_FOR = {90: 64, 99: 662}
PERCENTILE_METHOD = "linear interpolation between order statistics (numpy's default)"


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), q in [0, 100]."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@lru_cache(maxsize=4096)
def median_ci_ranks(n: int, level: float = MEDIAN_CI_LEVEL) -> tuple[int, int] | None:
    """0-based ranks (lo, hi) of the order statistics that bound the median with `level`
    confidence, whatever the distribution; None when n is too small (n < 6 at 95%).

    The count of samples below the true median is Binomial(n, 1/2), so [x_(k), x_(n-1-k)]
    covers it with probability 1 - 2 * P(B <= k - 1) for the largest k that keeps that >= level.
    """
    from scipy.stats import binom

    alpha = 1.0 - level
    k = int(binom.ppf(alpha / 2, n, 0.5))  # smallest k with P(B <= k) >= alpha/2
    if binom.cdf(k, n, 0.5) > alpha / 2:
        k -= 1  # P(B <= k) must stay within alpha/2
    # x_(k+1) (1-based) is the lowest bound whose miss probability is P(B <= k) <= alpha/2
    lo = k
    if lo < 0:
        return None
    return lo, n - 1 - lo


def median_ci(sorted_values: list[float]) -> tuple[float, float] | None:
    """Distribution-free 95% confidence interval of the median, from order statistics."""
    ranks = median_ci_ranks(len(sorted_values))
    if ranks is None:
        return None
    return sorted_values[ranks[0]], sorted_values[ranks[1]]


def median_ci_halfwidth(sorted_values: list[float]) -> float | None:
    """The larger side of the median's 95% interval, relative to the median; None if unknown."""
    ci = median_ci(sorted_values)
    if ci is None:
        return None
    median = percentile(sorted_values, 50)
    if median <= 0:
        return None
    return max(median - ci[0], ci[1] - median) / median


@dataclass(frozen=True)
class Stats:
    """Raw samples and their summary; `unit` names what the samples measure."""

    unit: str
    n: int
    median: float
    mean: float
    stdev: float
    min: float
    p90: float | None  # None when n < MIN_SAMPLES_FOR[90]
    p99: float | None  # None when n < MIN_SAMPLES_FOR[99]
    iqr: float
    noisy: bool  # IQR/median > NOISY_IQR_RATIO
    samples: list[float]
    median_ci_low: float | None = None  # 95% distribution-free interval; None when n < 6
    median_ci_high: float | None = None

    @classmethod
    def from_samples(cls, samples: list[float], unit: str) -> Stats:
        if not samples:
            raise ValueError("Stats need at least one sample")
        ordered = sorted(samples)
        median = percentile(ordered, 50)
        iqr = percentile(ordered, 75) - percentile(ordered, 25)
        ci = median_ci(ordered)
        return cls(
            unit=unit,
            n=len(samples),
            median=median,
            mean=statistics.fmean(samples),
            stdev=statistics.stdev(samples) if len(samples) > 1 else 0.0,
            min=ordered[0],
            p90=percentile(ordered, 90) if len(ordered) >= MIN_SAMPLES_FOR[90] else None,
            p99=percentile(ordered, 99) if len(ordered) >= MIN_SAMPLES_FOR[99] else None,
            iqr=iqr,
            noisy=median > 0 and iqr / median > NOISY_IQR_RATIO,
            samples=list(samples),
            median_ci_low=ci[0] if ci else None,
            median_ci_high=ci[1] if ci else None,
        )

    def scaled(self, factor: float, unit: str) -> Stats:
        """The same samples multiplied by `factor`, e.g. ms per batch -> us per image."""
        return Stats.from_samples([s * factor for s in self.samples], unit)


def t_interval(values: list[float], level: float = MEDIAN_CI_LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean of `values` (at least 2; runs, not
    samples: each value is one run's figure). The mean at both ends when every value is equal."""
    from scipy.stats import t

    n = len(values)
    if n < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {n}")
    try:
        mean = statistics.fmean(values)
        sd = statistics.stdev(values)
    except OverflowError:  # values past the float range: the mean of halves, open both ways
        return statistics.fmean([v / 2 for v in values]) * 2, -math.inf, math.inf
    half = float(t.ppf(1 - (1 - level) / 2, n - 1)) * sd / math.sqrt(n)
    if not math.isfinite(half):
        return mean, -math.inf, math.inf
    return mean, mean - half, mean + half


def log_t_interval(
    ratios: list[float], level: float = MEDIAN_CI_LEVEL
) -> tuple[float, float, float]:
    """(geometric mean, low, high): the t interval of the mean log ratio, back on the ratio scale
    (a 20% rise and its inverse are the same size). Every ratio must be positive and finite."""
    if any(not (r > 0 and math.isfinite(r)) for r in ratios):
        raise ValueError("a log-ratio interval needs positive, finite ratios")
    mean, low, high = t_interval([math.log(r) for r in ratios], level)
    return _exp(mean), _exp(low), _exp(high)


def _exp(x: float) -> float:
    """exp that saturates: inf above the float range (an open bound), 0 below it."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def median_ci_min_n(level: float = MEDIAN_CI_LEVEL) -> int:
    """The fewest samples that give the median a distribution-free interval at `level`."""
    n = 1
    while median_ci_ranks(n, level) is None:
        n += 1
    return n
