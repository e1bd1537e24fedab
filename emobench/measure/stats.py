"""Summary statistics of raw timing samples."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

NOISY_IQR_RATIO = 0.10  # IQR/median above this flags a measurement as noisy


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), q in [0, 100]."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True)
class Stats:
    """Raw samples and their summary; `unit` names what the samples measure."""

    unit: str
    n: int
    median: float
    mean: float
    stdev: float
    min: float
    p90: float
    p99: float
    iqr: float
    noisy: bool  # IQR/median > NOISY_IQR_RATIO
    samples: list[float]

    @classmethod
    def from_samples(cls, samples: list[float], unit: str) -> Stats:
        if not samples:
            raise ValueError("Stats need at least one sample")
        ordered = sorted(samples)
        median = percentile(ordered, 50)
        iqr = percentile(ordered, 75) - percentile(ordered, 25)
        return cls(
            unit=unit,
            n=len(samples),
            median=median,
            mean=statistics.fmean(samples),
            stdev=statistics.stdev(samples) if len(samples) > 1 else 0.0,
            min=ordered[0],
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            iqr=iqr,
            noisy=median > 0 and iqr / median > NOISY_IQR_RATIO,
            samples=list(samples),
        )

    def scaled(self, factor: float, unit: str) -> Stats:
        """The same samples multiplied by `factor`, e.g. ms per batch -> us per image."""
        return Stats.from_samples([s * factor for s in self.samples], unit)
